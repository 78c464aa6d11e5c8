//! The read side of log storage that the core consults, and an in-memory implementation.

use super::types::{ConfState, Entry, HardState, SnapshotMeta};
use parking_lot::RwLock;
use std::fmt;
use std::sync::Arc;

/// Errors a storage read can return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The requested index is before the first index (compacted into a snapshot).
    Compacted,
    /// The requested index is after the last index.
    Unavailable,
    /// The requested snapshot was replaced by a newer one.
    SnapshotOutOfDate,
    /// An I/O or corruption error; the message names the file and offset where known.
    Io(String),
    /// The path does not exist (nothing to open or inspect).
    NotFound(String),
    /// The directory is not a store directory (no store metadata, or foreign files where a
    /// new store would be created).
    NotADataDir(String),
    /// The store belongs to another cluster or node than the configuration says.
    WrongOwner(String),
    /// A file the store's own records say must exist is gone (hard state, identity, a WAL
    /// segment, or entries up to the recorded end of the log): refusing to start on a
    /// partial state that would forget votes or acknowledged entries.
    Missing(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Compacted => write!(f, "log index compacted"),
            StorageError::Unavailable => write!(f, "log index unavailable"),
            StorageError::SnapshotOutOfDate => write!(f, "snapshot out of date"),
            StorageError::Io(e) => write!(f, "storage I/O error: {e}"),
            StorageError::NotFound(e) => write!(f, "not found: {e}"),
            StorageError::NotADataDir(e) => write!(f, "not a data directory: {e}"),
            StorageError::WrongOwner(e) => write!(f, "data directory belongs elsewhere: {e}"),
            StorageError::Missing(e) => write!(f, "data directory is incomplete: {e}"),
        }
    }
}

impl std::error::Error for StorageError {}

/// Result of a storage read.
pub type StorageResult<T> = Result<T, StorageError>;

/// Read access to durable Raft state. Implementations are shared between the Raft thread
/// (reads) and a storage thread (writes), so every method takes `&self`.
///
/// Invariants: `first_index() <= snapshot_meta().index + 1` (a trailing part of the log may be
/// kept behind the snapshot for slow followers); `term(first_index() - 1)` is known; entries
/// are contiguous in `[first_index, last_index]`.
pub trait Storage: Send + Sync {
    /// Hard state and membership recovered at start.
    fn initial_state(&self) -> StorageResult<(HardState, ConfState)>;
    /// Entries in `[lo, hi)`, stopping once `max_bytes` is exceeded (always at least one).
    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> StorageResult<Vec<Entry>>;
    /// Term of the entry at `index`.
    fn term(&self, index: u64) -> StorageResult<u64>;
    /// First index still held in the log.
    fn first_index(&self) -> u64;
    /// Last index held in the log (the snapshot index when the log is empty).
    fn last_index(&self) -> u64;
    /// Metadata of the latest snapshot (index 0 when there is none).
    fn snapshot_meta(&self) -> SnapshotMeta;
    /// Up to `max_len` bytes of snapshot `index`'s data starting at `offset`.
    fn snapshot_chunk(&self, index: u64, offset: u64, max_len: usize) -> StorageResult<Vec<u8>>;
    /// A partly received snapshot and the offset its durable prefix reaches, for resuming.
    fn partial_snapshot(&self) -> Option<(SnapshotMeta, u64)> {
        None
    }
}

impl<T: Storage + ?Sized> Storage for Arc<T> {
    fn initial_state(&self) -> StorageResult<(HardState, ConfState)> {
        (**self).initial_state()
    }
    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> StorageResult<Vec<Entry>> {
        (**self).entries(lo, hi, max_bytes)
    }
    fn term(&self, index: u64) -> StorageResult<u64> {
        (**self).term(index)
    }
    fn first_index(&self) -> u64 {
        (**self).first_index()
    }
    fn last_index(&self) -> u64 {
        (**self).last_index()
    }
    fn snapshot_meta(&self) -> SnapshotMeta {
        (**self).snapshot_meta()
    }
    fn snapshot_chunk(&self, index: u64, offset: u64, max_len: usize) -> StorageResult<Vec<u8>> {
        (**self).snapshot_chunk(index, offset, max_len)
    }
    fn partial_snapshot(&self) -> Option<(SnapshotMeta, u64)> {
        (**self).partial_snapshot()
    }
}

#[derive(Debug, Default, Clone)]
struct MemInner {
    hard_state: HardState,
    conf: ConfState,
    snapshot: SnapshotMeta,
    snapshot_data: Vec<u8>,
    /// Index and term of the entry just before `entries` (the compaction point).
    offset_index: u64,
    offset_term: u64,
    /// Entries after the compaction point; `entries[0].index == offset_index + 1`.
    entries: Vec<Entry>,
    /// Partly received snapshot: metadata and bytes so far.
    incoming: Option<(SnapshotMeta, Vec<u8>)>,
}

/// An in-memory [`Storage`] with the write operations a runtime needs. Cloning shares the data.
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    inner: Arc<RwLock<MemInner>>,
}

impl MemStorage {
    /// An empty store whose initial membership is `conf` (bootstrap).
    pub fn new_with_conf(conf: ConfState) -> Self {
        let s = MemStorage::default();
        s.inner.write().conf = conf.clone();
        s.inner.write().snapshot.conf = conf;
        s
    }

    /// A deep copy (not sharing data), used by the simulator to model crashes.
    pub fn deep_clone(&self) -> Self {
        MemStorage {
            inner: Arc::new(RwLock::new(self.inner.read().clone())),
        }
    }

    /// Stores the hard state.
    pub fn set_hard_state(&self, hs: HardState) {
        self.inner.write().hard_state = hs;
    }

    /// Current hard state.
    pub fn hard_state(&self) -> HardState {
        self.inner.read().hard_state
    }

    /// Appends entries, replacing any existing suffix from `entries[0].index` on.
    pub fn append(&self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let mut g = self.inner.write();
        let base = g.offset_index + 1;
        if first.index < base {
            // Entries already compacted away are skipped.
            let skip = (base - first.index) as usize;
            if skip >= entries.len() {
                return;
            }
            drop(g);
            return self.append(&entries[skip..]);
        }
        let pos = (first.index - base) as usize;
        assert!(pos <= g.entries.len(), "append leaves a gap in the log");
        g.entries.truncate(pos);
        g.entries.extend_from_slice(entries);
    }

    /// Installs a complete snapshot: data replaces the state, the log is reset after it
    /// unless it already holds the snapshot's entry with the same term.
    pub fn apply_snapshot(&self, meta: SnapshotMeta, data: Vec<u8>) {
        let mut g = self.inner.write();
        let keep = g
            .entries
            .iter()
            .position(|e| e.index == meta.index && e.term == meta.term);
        match keep {
            Some(p) => {
                g.entries.drain(..=p);
            }
            None => g.entries.clear(),
        }
        g.offset_index = meta.index;
        g.offset_term = meta.term;
        if g.hard_state.commit < meta.index {
            g.hard_state.commit = meta.index;
        }
        g.conf = meta.conf.clone();
        g.snapshot = meta;
        g.snapshot_data = data;
        g.incoming = None;
    }

    /// Records a snapshot taken locally at `meta.index` and compacts the log up to
    /// `meta.index - keep_trailing`.
    pub fn create_snapshot(&self, meta: SnapshotMeta, data: Vec<u8>, keep_trailing: u64) {
        let mut g = self.inner.write();
        if meta.index <= g.snapshot.index {
            return;
        }
        let compact_to = meta.index.saturating_sub(keep_trailing);
        if compact_to > g.offset_index {
            let n = ((compact_to - g.offset_index) as usize).min(g.entries.len());
            if n > 0 {
                g.offset_term = g.entries[n - 1].term;
                g.offset_index = g.entries[n - 1].index;
                g.entries.drain(..n);
            }
        }
        g.conf = meta.conf.clone();
        g.snapshot = meta;
        g.snapshot_data = data;
    }

    /// Writes a chunk of an incoming snapshot; returns false if `offset` is not where the
    /// received prefix ends.
    pub fn write_snapshot_chunk(&self, meta: &SnapshotMeta, offset: u64, data: &[u8]) -> bool {
        let mut g = self.inner.write();
        let fresh = match &g.incoming {
            Some((m, _)) => !m.same_snapshot(meta),
            None => true,
        };
        if fresh {
            if offset != 0 {
                return false;
            }
            g.incoming = Some((meta.clone(), Vec::new()));
        }
        let (_, buf) = g.incoming.as_mut().expect("incoming snapshot");
        if buf.len() as u64 != offset {
            return false;
        }
        buf.extend_from_slice(data);
        true
    }

    /// Completes an incoming snapshot: checks its size and checksum, then installs it.
    pub fn finish_incoming_snapshot(&self, meta: &SnapshotMeta) -> Result<(), String> {
        let data = {
            let g = self.inner.read();
            match &g.incoming {
                Some((m, buf)) if m.same_snapshot(meta) => buf.clone(),
                _ => return Err("no matching incoming snapshot".into()),
            }
        };
        if data.len() as u64 != meta.size || crate::crc32c::crc32c(&data) != meta.checksum {
            self.inner.write().incoming = None;
            return Err("snapshot checksum mismatch".into());
        }
        self.apply_snapshot(meta.clone(), data);
        Ok(())
    }

    /// The bytes received so far of a partly received snapshot (empty if none).
    pub fn incoming_data(&self) -> Vec<u8> {
        self.inner
            .read()
            .incoming
            .as_ref()
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }

    /// The latest snapshot's data.
    pub fn snapshot_data(&self) -> Vec<u8> {
        self.inner.read().snapshot_data.clone()
    }

    /// Discards entries after `index` (models a disk losing unsynced writes).
    pub fn truncate_after(&self, index: u64) {
        let mut g = self.inner.write();
        let keep = index.saturating_sub(g.offset_index) as usize;
        if keep < g.entries.len() {
            g.entries.truncate(keep);
        }
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> StorageResult<(HardState, ConfState)> {
        let g = self.inner.read();
        Ok((g.hard_state, g.conf.clone()))
    }

    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> StorageResult<Vec<Entry>> {
        let g = self.inner.read();
        let base = g.offset_index + 1;
        if lo < base {
            return Err(StorageError::Compacted);
        }
        let last = g.offset_index + g.entries.len() as u64;
        if hi > last + 1 || lo > hi {
            return Err(StorageError::Unavailable);
        }
        let mut out = Vec::new();
        let mut size = 0;
        for e in &g.entries[(lo - base) as usize..(hi - base) as usize] {
            size += e.size();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, index: u64) -> StorageResult<u64> {
        let g = self.inner.read();
        if index == g.offset_index {
            return Ok(g.offset_term);
        }
        if index < g.offset_index {
            return Err(StorageError::Compacted);
        }
        g.entries
            .get((index - g.offset_index - 1) as usize)
            .map(|e| e.term)
            .ok_or(StorageError::Unavailable)
    }

    fn first_index(&self) -> u64 {
        self.inner.read().offset_index + 1
    }

    fn last_index(&self) -> u64 {
        let g = self.inner.read();
        g.offset_index + g.entries.len() as u64
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.inner.read().snapshot.clone()
    }

    fn snapshot_chunk(&self, index: u64, offset: u64, max_len: usize) -> StorageResult<Vec<u8>> {
        let g = self.inner.read();
        if g.snapshot.index != index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        let start = (offset as usize).min(g.snapshot_data.len());
        let end = (start + max_len).min(g.snapshot_data.len());
        Ok(g.snapshot_data[start..end].to_vec())
    }

    fn partial_snapshot(&self) -> Option<(SnapshotMeta, u64)> {
        let g = self.inner.read();
        g.incoming
            .as_ref()
            .map(|(m, buf)| (m.clone(), buf.len() as u64))
    }
}
