//! Crash recovery: [`DiskStorage::open`] scans and repairs a store directory.

use super::disk::{open_writer, DiskStorage, Inner, Loc, Partial, Segment, SnapFile, LOCK_FILE};
use super::fsutil::{fsync_dir, io_err, sync_file};
use super::hard_state::{self, HARD_STATE_FILE, STORE_META_FILE, WAL_HEAD_FILE};
use super::identity::{self, Identity, IDENTITY_FILE};
use super::segment::{self, corrupt, Tail};
use super::snapshot_file::{self, PARTIAL_FILE};
use super::{DiskOptions, FsyncPolicy};
use crate::core::{ConfState, Entry, HardState, SnapshotMeta, StorageError, StorageResult};
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

impl DiskStorage {
    /// Opens (creating if needed) the store in `dir`, recovering from a crash: a torn tail
    /// of the last segment is truncated (with a warning); any other damage refuses to open
    /// with [`StorageError::Io`] naming the file and byte offset. A directory of another
    /// cluster or node ([`DiskOptions::cluster_id`], [`DiskOptions::node_id`]) is refused
    /// with [`StorageError::WrongOwner`], one missing state its own records say it has (hard
    /// state, identity, a WAL segment, committed entries) with [`StorageError::Missing`], and
    /// a non-empty directory without a store with [`StorageError::NotADataDir`].
    pub fn open(dir: &Path, opts: DiskOptions) -> StorageResult<DiskStorage> {
        let fsync = opts.fsync == FsyncPolicy::Always;
        fs::create_dir_all(dir).map_err(|e| io_err(dir.display(), e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(lock_path.display(), e))?;
        // A process forked by this one (between fork and exec) briefly shares the lock, so
        // a held lock is retried for a moment before the store counts as open elsewhere.
        let mut attempts = 0;
        while let Err(err) = lock.try_lock() {
            attempts += 1;
            let held = matches!(err, fs::TryLockError::WouldBlock);
            if !held || attempts >= 50 {
                return Err(StorageError::Io(format!(
                    "{}: store is already open (lock held): {err}",
                    lock_path.display(),
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }

        // Leftover temp files are incomplete writes that never took effect.
        let mut log_files = Vec::new();
        let mut foreign = Vec::new();
        for ent in fs::read_dir(dir).map_err(|e| io_err(dir.display(), e))? {
            let ent = ent.map_err(|e| io_err(dir.display(), e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                tracing::info!(file = %ent.path().display(), "removing leftover temp file");
                fs::remove_file(ent.path()).map_err(|e| io_err(ent.path().display(), e))?;
            } else if is_log_file(&name) {
                log_files.push(name);
            } else if !is_meta_file(&name) {
                foreign.push(name);
            }
        }

        let (bootstrap, identity, upgrade) = match hard_state::read_store_meta(dir)? {
            Some((version, conf)) => {
                let upgrade = version < hard_state::STORE_VERSION;
                let id = match identity::read_identity(dir)? {
                    Some(id) => id,
                    None if upgrade => {
                        let id = Identity::generate(
                            opts.cluster_id.unwrap_or(0),
                            opts.node_id.unwrap_or(0),
                        )?;
                        tracing::warn!(
                            dir = %dir.display(),
                            identity = %id,
                            "store format version 1: recording this node's identity (upgrade)"
                        );
                        identity::write_identity(dir, &id, fsync)
                            .map_err(|e| io_err(dir.join(IDENTITY_FILE).display(), e))?;
                        id
                    }
                    None => {
                        return Err(StorageError::Missing(format!(
                            "{}: the {IDENTITY_FILE} file is missing, so the directory no \
                             longer says whose state it holds",
                            dir.display()
                        )))
                    }
                };
                (conf, id, upgrade)
            }
            None => {
                let id = create_store(dir, &opts, fsync, &log_files, &foreign)?;
                (opts.bootstrap.clone(), id, false)
            }
        };
        identity.check(dir, opts.cluster_id, opts.node_id)?;
        let mut hs = match hard_state::read_hard_state(dir)? {
            Some(hs) => hs,
            None if upgrade => HardState::default(),
            None => {
                return Err(StorageError::Missing(format!(
                    "{}: the {HARD_STATE_FILE} file is missing: the node's term and vote are \
                     lost, and starting would let it vote twice in a term",
                    dir.display()
                )))
            }
        };
        let wal_head = match hard_state::read_wal_head(dir)? {
            Some(h) => h,
            None if upgrade => 0,
            None => {
                return Err(StorageError::Missing(format!(
                    "{}: the {WAL_HEAD_FILE} file is missing, so a lost WAL segment could \
                     not be detected",
                    dir.display()
                )))
            }
        };

        // Snapshot: the newest complete one wins; older ones are leftovers of an install.
        let snaps = snapshot_file::list(dir)?;
        let (snap, snap_file) = match snaps.last() {
            Some((i, t, name)) => {
                let path = dir.join(name);
                let file = File::open(&path).map_err(|e| io_err(path.display(), e))?;
                let (meta, data_offset) = snapshot_file::read_header(&file, &path)?;
                if meta.index != *i || meta.term != *t {
                    return Err(corrupt(&path, 0, "snapshot meta does not match file name"));
                }
                let len = file
                    .metadata()
                    .map_err(|e| io_err(path.display(), e))?
                    .len();
                if len != data_offset + meta.size {
                    return Err(corrupt(
                        &path,
                        len,
                        format!("snapshot file should be {} bytes", data_offset + meta.size),
                    ));
                }
                (
                    meta,
                    Some(SnapFile {
                        path,
                        file,
                        data_offset,
                    }),
                )
            }
            None => (
                SnapshotMeta {
                    conf: bootstrap.clone(),
                    ..Default::default()
                },
                None,
            ),
        };
        if snaps.len() > 1 {
            for (_, _, name) in &snaps[..snaps.len() - 1] {
                tracing::info!(file = name.as_str(), "removing superseded snapshot");
                fs::remove_file(dir.join(name)).map_err(|e| io_err(name, e))?;
            }
            if fsync {
                fsync_dir(dir).map_err(|e| io_err(dir.display(), e))?;
            }
        }
        let partial = load_partial(dir, &snap)?;

        // WAL segments.
        let cache_limit = opts.cache_bytes;
        let mut segments: BTreeMap<u64, Segment> = BTreeMap::new();
        let mut locs = VecDeque::new();
        let mut cache: VecDeque<Entry> = VecDeque::new();
        let mut cache_bytes = 0u64;
        let mut expected: Option<u64> = None;
        let mut prev_term = 0u64;
        let mut list = segment::list(dir)?;
        if !upgrade && list.iter().any(|(f, _)| *f > wal_head) {
            // wal.head is lowered durably before newer segments are unlinked (suffix
            // replacement, log reset) and raised only after a new segment is durably in
            // place and before anything is appended to it. Segments newer than it are
            // therefore leftovers of an interrupted removal (a power loss may undo any of
            // those unlinks, in any order) or empty: never acknowledged entries.
            for (f, name) in list.iter().filter(|(f, _)| *f > wal_head) {
                tracing::warn!(
                    file = name.as_str(),
                    first_index = f,
                    wal_head,
                    "removing a WAL segment newer than {WAL_HEAD_FILE} (left by an \
                     interrupted removal or segment creation)"
                );
                fs::remove_file(dir.join(name)).map_err(|e| io_err(name, e))?;
            }
            if fsync {
                fsync_dir(dir).map_err(|e| io_err(dir.display(), e))?;
            }
            list.retain(|(f, _)| *f <= wal_head);
        }
        if wal_head > 0 && !list.iter().any(|(f, _)| *f == wal_head) {
            return Err(StorageError::Missing(format!(
                "{}: WAL segment {} is missing: {WAL_HEAD_FILE} records it as the newest \
                 segment, so the log once reached it; starting would forget acknowledged \
                 entries",
                dir.display(),
                segment::file_name(wal_head)
            )));
        }
        for (k, (first, name)) in list.iter().enumerate() {
            let first = *first;
            let is_last = k + 1 == list.len();
            let path = dir.join(name);
            if first == 0 {
                return Err(corrupt(&path, 0, "segment first index 0 is invalid"));
            }
            if let Some(exp) = expected {
                if first != exp && first <= snap.index + 1 {
                    // Compaction unlinks old segments oldest first and then fsyncs the
                    // directory once; a power loss may undo any of those unlinks, leaving
                    // older segments before a gap. Everything before this segment is
                    // covered by the snapshot: those are leftovers, not a hole in the log.
                    for (f, s) in std::mem::take(&mut segments) {
                        tracing::warn!(
                            file = %s.path.display(),
                            first_index = f,
                            snapshot_index = snap.index,
                            next_segment = first,
                            "removing a WAL segment the snapshot covers, left before a gap by \
                             an interrupted compaction"
                        );
                        drop(s.file);
                        fs::remove_file(&s.path).map_err(|e| io_err(s.path.display(), e))?;
                    }
                    if fsync {
                        fsync_dir(dir).map_err(|e| io_err(dir.display(), e))?;
                    }
                    locs.clear();
                    cache.clear();
                    cache_bytes = 0;
                    prev_term = 0;
                } else if first != exp {
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
            let scan = segment::scan(&path, first, is_last, prev_term, |e, offset, len| {
                locs.push_back(Loc {
                    term: e.term,
                    seg: first,
                    offset,
                    len,
                });
                prev_term = e.term;
                cache_bytes += e.size();
                cache.push_back(e);
                while cache_bytes > cache_limit {
                    match cache.pop_front() {
                        Some(old) => cache_bytes -= old.size(),
                        None => break,
                    }
                }
            })?;
            match &scan.tail {
                Tail::Clean => {}
                Tail::TornHeader => {
                    tracing::warn!(
                        file = %path.display(),
                        bytes = scan.file_len,
                        "last segment has a torn header (crash while creating it); removing it"
                    );
                    fs::remove_file(&path).map_err(|e| io_err(path.display(), e))?;
                    if fsync {
                        fsync_dir(dir).map_err(|e| io_err(dir.display(), e))?;
                    }
                    continue;
                }
                Tail::Torn { offset, reason } => {
                    tracing::warn!(
                        file = %path.display(),
                        offset,
                        dropped_bytes = scan.file_len - offset,
                        reason = reason.as_str(),
                        "torn tail in the last WAL segment; truncating it"
                    );
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| io_err(path.display(), e))?;
                    f.set_len(*offset).map_err(|e| io_err(path.display(), e))?;
                    if fsync {
                        sync_file(&f, &path, false).map_err(|e| io_err(path.display(), e))?;
                    }
                }
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_err(path.display(), e))?;
            let (mark_gen, mark) = scan.mark.unwrap_or((0, 0));
            segments.insert(
                first,
                Segment {
                    path,
                    file,
                    len: scan.valid_len,
                    version: scan.version,
                    mark_gen,
                    mark,
                },
            );
            expected = Some(first + scan.records);
        }

        let phys_first = segments.keys().next().copied().unwrap_or(snap.index + 1);
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            fsync,
            segment_bytes: opts.segment_bytes,
            cache_limit,
            hs,
            snap,
            snap_file,
            segments,
            writer: None,
            phys_first,
            locs,
            offset_index: 0,
            offset_term: 0,
            cache,
            cache_bytes,
            partial,
            poisoned: None,
            scratch: Vec::new(),
            identity,
        };

        // Reconcile the log with the snapshot.
        if let Some((&first, seg)) = inner.segments.iter().next() {
            let s = inner.snap.index;
            if first > s + 1 {
                return Err(corrupt(
                    &seg.path,
                    0,
                    format!(
                        "log starts at index {first} but the snapshot ends at index {s}: \
                         entries are missing"
                    ),
                ));
            }
            if first <= s && !inner.log_holds(s, inner.snap.term) {
                tracing::warn!(
                    snapshot_index = s,
                    snapshot_term = inner.snap.term,
                    log_first = first,
                    log_last = inner.last_index(),
                    "log does not hold the snapshot's last entry (interrupted snapshot \
                     install); discarding the log, which the snapshot supersedes"
                );
                inner.reset_log()?;
            }
        }
        if hs.commit < inner.snap.index {
            hs.commit = inner.snap.index;
            inner.hs = hs;
        }
        inner.recompute_offset();
        if hs.commit > inner.last_index() {
            return Err(StorageError::Missing(format!(
                "{}: the hard state records commit index {} but the log ends at index {}: \
                 committed entries are missing",
                dir.display(),
                hs.commit,
                inner.last_index()
            )));
        }
        let newest = inner.segments.keys().next_back().copied().unwrap_or(0);
        if upgrade {
            hard_state::write_hard_state(dir, &inner.hs, fsync)
                .map_err(|e| io_err(dir.join(HARD_STATE_FILE).display(), e))?;
        }
        if upgrade || newest != wal_head {
            hard_state::write_wal_head(dir, newest, fsync)
                .map_err(|e| io_err(dir.join(WAL_HEAD_FILE).display(), e))?;
        }
        if upgrade {
            hard_state::write_store_meta(dir, &bootstrap, fsync)
                .map_err(|e| io_err(dir.join(STORE_META_FILE).display(), e))?;
        }
        if let Some((_, seg)) = inner.segments.iter().next_back() {
            let path = seg.path.clone();
            inner.writer = Some(open_writer(&path).map_err(|e| io_err(path.display(), e))?);
        }
        Ok(DiskStorage {
            inner: Mutex::new(inner),
            _lock: lock,
        })
    }
}

/// WAL segments and snapshot files: the store's data.
pub(super) fn is_log_file(name: &str) -> bool {
    name == PARTIAL_FILE
        || segment::parse_file_name(name).is_some()
        || snapshot_file::parse_file_name(name).is_some()
}

/// The store's small bookkeeping files (and a file system's `lost+found`).
pub(super) fn is_meta_file(name: &str) -> bool {
    [
        LOCK_FILE,
        STORE_META_FILE,
        IDENTITY_FILE,
        HARD_STATE_FILE,
        WAL_HEAD_FILE,
        "lost+found",
    ]
    .contains(&name)
}

/// Creates a store in `dir`, which holds no `store.meta`: identity, an empty hard state and
/// `wal.head` first, `store.meta` last (its presence marks a complete store, so a crash
/// half-way repeats the creation). Refuses a directory holding store data or foreign files.
fn create_store(
    dir: &Path,
    opts: &DiskOptions,
    fsync: bool,
    log_files: &[String],
    foreign: &[String],
) -> StorageResult<Identity> {
    let hs = hard_state::read_hard_state(dir)?;
    let head = hard_state::read_wal_head(dir)?;
    if !log_files.is_empty()
        || hs.is_some_and(|h| h != HardState::default())
        || head.is_some_and(|h| h != 0)
    {
        return Err(StorageError::Missing(format!(
            "{}: the {STORE_META_FILE} file is missing in a directory holding store state \
             ({})",
            dir.display(),
            if log_files.is_empty() {
                HARD_STATE_FILE.to_string()
            } else {
                log_files.join(", ")
            }
        )));
    }
    if let Some(name) = foreign.first() {
        return Err(StorageError::NotADataDir(format!(
            "{}: no {STORE_META_FILE}, and it holds {} entries that are not store files \
             (e.g. {name}); a new store is only created in an empty directory",
            dir.display(),
            foreign.len()
        )));
    }
    let id = match identity::read_identity(dir)? {
        Some(id) => id,
        None => {
            let id = Identity::generate(opts.cluster_id.unwrap_or(0), opts.node_id.unwrap_or(0))?;
            identity::write_identity(dir, &id, fsync)
                .map_err(|e| io_err(dir.join(IDENTITY_FILE).display(), e))?;
            id
        }
    };
    let conf: &ConfState = &opts.bootstrap;
    hard_state::write_hard_state(dir, &HardState::default(), fsync)
        .map_err(|e| io_err(dir.join(HARD_STATE_FILE).display(), e))?;
    hard_state::write_wal_head(dir, 0, fsync)
        .map_err(|e| io_err(dir.join(WAL_HEAD_FILE).display(), e))?;
    hard_state::write_store_meta(dir, conf, fsync)
        .map_err(|e| io_err(dir.join(STORE_META_FILE).display(), e))?;
    tracing::info!(dir = %dir.display(), identity = %id, "created a new store");
    Ok(id)
}

fn load_partial(dir: &Path, snap: &SnapshotMeta) -> StorageResult<Option<Partial>> {
    let path = dir.join(PARTIAL_FILE);
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path.display(), e)),
    };
    let discard = |why: String| -> StorageResult<Option<Partial>> {
        tracing::warn!(file = %path.display(), reason = why.as_str(), "discarding incoming snapshot");
        fs::remove_file(&path).map_err(|e| io_err(path.display(), e))?;
        Ok(None)
    };
    let (meta, data_offset) = match snapshot_file::read_header(&file, &path) {
        Ok(h) => h,
        Err(e) => return discard(format!("unreadable header: {e}")),
    };
    let len = file
        .metadata()
        .map_err(|e| io_err(path.display(), e))?
        .len();
    if len < data_offset {
        return discard("no data".into());
    }
    let durable = len - data_offset;
    if durable > meta.size {
        return discard(format!(
            "{durable} bytes exceed the snapshot size {}",
            meta.size
        ));
    }
    if meta.index <= snap.index {
        return discard(format!(
            "snapshot {} is not newer than the installed snapshot {}",
            meta.index, snap.index
        ));
    }
    Ok(Some(Partial {
        meta,
        file,
        data_offset,
        durable,
    }))
}
