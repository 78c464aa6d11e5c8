//! Read-only inspection of a store directory, for the `raft-manager` operator tool.
//!
//! [`inspect_dir`] checks every checksum (segment headers and records, hard state, store
//! metadata, snapshot headers and data) without modifying anything. [`verify_dirs`] compares
//! the logs of several replicas.

use super::hard_state::{self, HARD_STATE_FILE, STORE_META_FILE, WAL_HEAD_FILE};
use super::identity::{self, Identity, IDENTITY_FILE};
use super::segment::{self, corrupt, Tail};
use super::snapshot_file::{self, PARTIAL_FILE};
use crate::core::{ConfState, HardState, SnapshotMeta, StorageError, StorageResult};
use std::fs::File;
use std::path::{Path, PathBuf};

/// One WAL segment as found on disk.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// Path of the segment file.
    pub file: PathBuf,
    /// First index (from the name and header).
    pub first_index: u64,
    /// Last index held, `None` if the segment holds no record.
    pub last_index: Option<u64>,
    /// File size in bytes.
    pub bytes: u64,
    /// Description of a torn tail (which opening the store would truncate), if any.
    pub torn_tail: Option<String>,
}

/// The state of a store directory.
#[derive(Debug, Clone)]
pub struct Report {
    /// The directory.
    pub dir: PathBuf,
    /// Format version of `store.meta` (1: written before identities; upgraded on open).
    pub format_version: u32,
    /// Bootstrap membership from `store.meta`.
    pub bootstrap: ConfState,
    /// Whose state the directory holds (`None` only in a version 1 store).
    pub identity: Option<Identity>,
    /// Hard state (`None` only in a version 1 store that never wrote one).
    pub hard_state: Option<HardState>,
    /// WAL segments, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// The current snapshot and its file (data checksum verified).
    pub snapshot: Option<(SnapshotMeta, PathBuf)>,
    /// Superseded snapshot files that opening the store would remove.
    pub stale_snapshots: Vec<PathBuf>,
    /// Incoming partial snapshot and its received byte count.
    pub partial: Option<(SnapshotMeta, u64)>,
    /// Index of `terms[0]`.
    pub log_first: u64,
    /// Terms of the log entries the store would expose after opening (physical log).
    pub terms: Vec<u64>,
    /// Non-fatal findings (torn tails, leftovers of interrupted operations).
    pub warnings: Vec<String>,
}

impl Report {
    /// Index of the last entry in the log, or the snapshot index if the log is empty.
    pub fn last_index(&self) -> u64 {
        if self.terms.is_empty() {
            self.snapshot.as_ref().map_or(0, |(m, _)| m.index)
        } else {
            self.log_first + self.terms.len() as u64 - 1
        }
    }

    /// Term of `index` if known from the log or the snapshot point.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index >= self.log_first {
            if let Some(t) = self.terms.get((index - self.log_first) as usize) {
                return Some(*t);
            }
        }
        match &self.snapshot {
            Some((m, _)) if m.index == index => Some(m.term),
            _ => None,
        }
    }

    /// The lowest index whose term is known.
    pub fn lowest_known(&self) -> u64 {
        let snap = self.snapshot.as_ref().map(|(m, _)| m.index);
        match (self.terms.is_empty(), snap) {
            (false, Some(s)) => s.min(self.log_first),
            (false, None) => self.log_first,
            (true, Some(s)) => s,
            (true, None) => 1,
        }
    }
}

/// Inspects `dir` read-only, checking every checksum. What would stop the store from opening
/// is an `Err`: [`StorageError::NotFound`] for a missing path,
/// [`StorageError::NotADataDir`] for anything without `store.meta`,
/// [`StorageError::Missing`] when a file or entries the store's own records require are gone,
/// [`StorageError::Io`] naming the file and offset for corruption. Recoverable findings
/// (torn tails, leftovers of interrupted operations) are warnings.
pub fn inspect_dir(dir: &Path) -> StorageResult<Report> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::NotFound(format!(
                "{}: no such file or directory",
                dir.display()
            )))
        }
        Err(e) => return Err(StorageError::Io(format!("{}: {e}", dir.display()))),
        Ok(m) if !m.is_dir() => {
            return Err(StorageError::NotADataDir(format!(
                "{}: not a directory",
                dir.display()
            )))
        }
        Ok(_) => {}
    }
    let mut warnings = Vec::new();
    let Some((format_version, bootstrap)) = hard_state::read_store_meta(dir)? else {
        return Err(StorageError::NotADataDir(format!(
            "{}: no {STORE_META_FILE}: this is not a raft-manager data directory (or its \
             {STORE_META_FILE} was deleted)",
            dir.display()
        )));
    };
    let legacy = format_version < hard_state::STORE_VERSION;
    if legacy {
        warnings.push(format!(
            "store format version {format_version}: identity and wal.head are recorded on \
             the next open (upgrade)"
        ));
    }
    let missing = |file: &str, why: &str| {
        StorageError::Missing(format!(
            "{}: the {file} file is missing: {why}",
            dir.display()
        ))
    };
    let identity = identity::read_identity(dir)?;
    if identity.is_none() && !legacy {
        return Err(missing(
            IDENTITY_FILE,
            "the directory no longer says whose state it holds",
        ));
    }
    let hard_state = hard_state::read_hard_state(dir)?;
    if hard_state.is_none() && !legacy {
        return Err(missing(
            HARD_STATE_FILE,
            "the node's term and vote are lost, and starting would let it vote twice in a term",
        ));
    }
    let wal_head = hard_state::read_wal_head(dir)?;
    if wal_head.is_none() && !legacy {
        return Err(missing(
            WAL_HEAD_FILE,
            "a lost WAL segment could not be detected",
        ));
    }

    let snaps = snapshot_file::list(dir)?;
    let mut snapshot = None;
    let mut stale_snapshots = Vec::new();
    for (k, (i, t, name)) in snaps.iter().enumerate() {
        let path = dir.join(name);
        let file = File::open(&path).map_err(|e| corrupt(&path, 0, e))?;
        let (meta, data_offset) = snapshot_file::read_header(&file, &path)?;
        if meta.index != *i || meta.term != *t {
            return Err(corrupt(&path, 0, "snapshot meta does not match file name"));
        }
        snapshot_file::verify_data(&file, &path, &meta, data_offset)?;
        if k + 1 == snaps.len() {
            snapshot = Some((meta, path));
        } else {
            warnings.push(format!(
                "{}: superseded snapshot (removed on open)",
                path.display()
            ));
            stale_snapshots.push(path);
        }
    }

    let partial_path = dir.join(PARTIAL_FILE);
    let partial = match File::open(&partial_path) {
        Ok(f) => match snapshot_file::read_header(&f, &partial_path) {
            Ok((meta, off)) => {
                let len = f
                    .metadata()
                    .map_err(|e| corrupt(&partial_path, 0, e))?
                    .len();
                Some((meta, len.saturating_sub(off)))
            }
            Err(e) => {
                warnings.push(format!(
                    "incoming snapshot unreadable (discarded on open): {e}"
                ));
                None
            }
        },
        Err(_) => None,
    };

    let snap_index = snapshot.as_ref().map_or(0, |(m, _)| m.index);
    let snap_term = snapshot.as_ref().map_or(0, |(m, _)| m.term);
    let mut segments = Vec::new();
    let mut terms = Vec::new();
    let mut log_first = None;
    let mut expected: Option<u64> = None;
    let mut prev_term = 0;
    let list = segment::list(dir)?;
    if let Some(h) = wal_head.filter(|&h| h > 0) {
        if !list.iter().any(|(f, _)| *f == h) {
            return Err(StorageError::Missing(format!(
                "{}: WAL segment {} is missing: {WAL_HEAD_FILE} records it as the newest \
                 segment, so the log once reached it",
                dir.display(),
                segment::file_name(h)
            )));
        }
    }
    for (k, (first, name)) in list.iter().enumerate() {
        let path = dir.join(name);
        let is_last = k + 1 == list.len();
        if let Some(exp) = expected {
            if *first != exp {
                return Err(corrupt(
                    &path,
                    0,
                    format!(
                        "segment starts at index {first} but the previous segment ends at \
                         index {}: a segment is missing or misplaced",
                        exp - 1
                    ),
                ));
            }
        }
        let mut n = 0u64;
        let scan = segment::scan(&path, *first, is_last, prev_term, |e, _, _| {
            prev_term = e.term;
            terms.push(e.term);
            n += 1;
        })?;
        let torn_tail = match &scan.tail {
            Tail::Clean => None,
            Tail::TornHeader => Some("torn header".to_string()),
            Tail::Torn { offset, reason } => Some(format!("at byte offset {offset}: {reason}")),
        };
        if let Some(t) = &torn_tail {
            warnings.push(format!(
                "{}: torn tail {t} (truncated on open)",
                path.display()
            ));
        }
        if scan.tail != Tail::TornHeader {
            log_first.get_or_insert(*first);
            expected = Some(first + n);
        }
        segments.push(SegmentInfo {
            file: path,
            first_index: *first,
            last_index: (n > 0).then(|| first + n - 1),
            bytes: scan.file_len,
            torn_tail,
        });
    }
    let mut log_first = log_first.unwrap_or(snap_index + 1);
    if log_first > snap_index + 1 {
        return Err(corrupt(
            &segments[0].file,
            0,
            format!(
                "log starts at index {log_first} but the snapshot ends at index {snap_index}: \
                 entries are missing"
            ),
        ));
    }
    if log_first <= snap_index {
        let holds = snap_index >= log_first
            && terms.get((snap_index - log_first) as usize) == Some(&snap_term);
        if !holds {
            warnings.push(format!(
                "log does not hold the snapshot's entry (index {snap_index}, term {snap_term}): \
                 interrupted snapshot install; the log is discarded on open"
            ));
            terms.clear();
            log_first = snap_index + 1;
        }
    }
    let report = Report {
        dir: dir.to_path_buf(),
        format_version,
        bootstrap,
        identity,
        hard_state,
        segments,
        snapshot,
        stale_snapshots,
        partial,
        log_first,
        terms,
        warnings,
    };
    let commit = report.hard_state.map_or(0, |h| h.commit);
    if commit > report.last_index() {
        return Err(StorageError::Missing(format!(
            "{}: the hard state records commit index {commit} but the log ends at index {}: \
             committed entries are missing",
            dir.display(),
            report.last_index()
        )));
    }
    Ok(report)
}

/// The first index where two replicas' logs disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The index.
    pub index: u64,
    /// First replica's directory.
    pub dir_a: PathBuf,
    /// Its term at `index`.
    pub term_a: u64,
    /// Second replica's directory.
    pub dir_b: PathBuf,
    /// Its term at `index`.
    pub term_b: u64,
}

/// Checks that the replicas belong to one cluster (refused with [`StorageError::WrongOwner`]
/// otherwise, as are two directories of one node or two copies of one directory), then that
/// every pair has the same term at every index both know (log entries, or a snapshot's last
/// entry). Returns the lowest divergence, `None` if they agree.
pub fn verify_dirs(dirs: &[PathBuf]) -> StorageResult<Option<Divergence>> {
    let reports = dirs
        .iter()
        .map(|d| inspect_dir(d))
        .collect::<StorageResult<Vec<_>>>()?;
    check_owners(&reports)?;
    Ok(first_divergence(&reports))
}

/// Refuses replicas that cannot be one cluster's: different cluster ids, one node id twice,
/// or one incarnation twice (a copied directory).
pub fn check_owners(reports: &[Report]) -> StorageResult<()> {
    for (k, a) in reports.iter().enumerate() {
        for b in &reports[k + 1..] {
            let (Some(ia), Some(ib)) = (a.identity, b.identity) else {
                continue;
            };
            let what = if ia.cluster_id != ib.cluster_id {
                "belong to different clusters"
            } else if ia.incarnation == ib.incarnation {
                "are copies of one directory (same incarnation)"
            } else if ia.node_id == ib.node_id {
                "belong to the same node"
            } else {
                continue;
            };
            return Err(StorageError::WrongOwner(format!(
                "{} ({ia}) and {} ({ib}) {what}: they are not replicas of one cluster",
                a.dir.display(),
                b.dir.display()
            )));
        }
    }
    Ok(())
}

/// The lowest divergence among already inspected replicas.
pub fn first_divergence(reports: &[Report]) -> Option<Divergence> {
    let mut best: Option<Divergence> = None;
    for (a_i, a) in reports.iter().enumerate() {
        for b in &reports[a_i + 1..] {
            let lo = a.lowest_known().max(b.lowest_known());
            let hi = a.last_index().min(b.last_index());
            let limit = best.as_ref().map_or(u64::MAX, |d| d.index);
            for i in lo..=hi.min(limit.saturating_sub(1)) {
                if let (Some(ta), Some(tb)) = (a.term_at(i), b.term_at(i)) {
                    if ta != tb {
                        best = Some(Divergence {
                            index: i,
                            dir_a: a.dir.clone(),
                            term_a: ta,
                            dir_b: b.dir.clone(),
                            term_b: tb,
                        });
                        break;
                    }
                }
            }
        }
    }
    best
}
