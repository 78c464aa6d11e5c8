//! Read-only inspection of a store directory, for the `raft-manager` operator tool.
//!
//! [`inspect_dir`] checks every checksum (segment headers and records, hard state, store
//! metadata, snapshot headers and data) without modifying anything. [`verify_dirs`] compares
//! the logs of several replicas.

use super::hard_state;
use super::segment::{self, corrupt, Tail};
use super::snapshot_file::{self, PARTIAL_FILE};
use crate::core::{ConfState, HardState, SnapshotMeta, StorageResult};
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
    /// Bootstrap membership from `store.meta`, `None` if absent.
    pub bootstrap: Option<ConfState>,
    /// Hard state, `None` if never written.
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

/// Inspects `dir` read-only, checking every checksum. Corruption that would stop the store
/// from opening is an `Err` naming the file and offset; recoverable findings are warnings.
pub fn inspect_dir(dir: &Path) -> StorageResult<Report> {
    if !dir.is_dir() {
        return Err(crate::core::StorageError::Io(format!(
            "{}: not a directory",
            dir.display()
        )));
    }
    let mut warnings = Vec::new();
    let bootstrap = hard_state::read_store_meta(dir)?;
    if bootstrap.is_none() {
        warnings.push("store.meta is missing".to_string());
    }
    let hard_state = hard_state::read_hard_state(dir)?;

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
    Ok(Report {
        dir: dir.to_path_buf(),
        bootstrap,
        hard_state,
        segments,
        snapshot,
        stale_snapshots,
        partial,
        log_first,
        terms,
        warnings,
    })
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

/// Checks that every pair of replicas has the same term at every index both know (log
/// entries, or a snapshot's last entry). Returns the lowest divergence, `None` if they agree.
pub fn verify_dirs(dirs: &[PathBuf]) -> StorageResult<Option<Divergence>> {
    let reports = dirs
        .iter()
        .map(|d| inspect_dir(d))
        .collect::<StorageResult<Vec<_>>>()?;
    Ok(first_divergence(&reports))
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
