//! Durable storage: the write-side [`LogStore`] trait the runtime uses, the on-disk engine
//! [`DiskStorage`], an embedder-provided store ([`ExternalStore`]), an operator inspection API ([`inspect`]) and a conformance suite
//! ([`conformance`]) that every [`LogStore`] implementation should pass.
//!
//! The on-disk format is documented in `docs/STORAGE.md`.

pub mod conformance;
mod disk;
mod external;
mod fsutil;
pub mod hard_state;
pub mod identity;
pub mod inspect;
pub mod power_loss;
pub mod record;
mod recovery;
pub mod segment;
pub mod snapshot_file;

pub use disk::DiskStorage;
pub use external::{Completer, ExternalStore, Persister};

use crate::core::{ConfState, Entry, HardState, MemStorage, SnapshotMeta, Storage};
use crate::core::{StorageError, StorageResult};
use std::io::Read;

/// The write side of Raft storage, used by the runtime's storage thread.
pub trait LogStore: Storage {
    /// Appends entries; `entries[0].index` may be `<= last_index() + 1`, in which case the
    /// existing suffix from that index is replaced. Entries at or before the compaction
    /// point are skipped. Not durable until [`LogStore::sync`].
    fn append(&self, entries: &[Entry]) -> StorageResult<()>;
    /// Stores the hard state (term, vote, commit) atomically; durable at the latest after
    /// the next [`LogStore::sync`] (the storage thread syncs before releasing the messages of
    /// a ready).
    fn set_hard_state(&self, hs: HardState) -> StorageResult<()>;
    /// Makes all appends so far durable (one fsync covers every append before it: group
    /// commit is the caller batching many appends before one sync).
    fn sync(&self) -> StorageResult<()>;
    /// Durably writes a chunk of an incoming snapshot at `offset`; `Ok(false)` if `offset` is
    /// not where the durable prefix ends (the caller then asks the sender to resume from
    /// [`Storage::partial_snapshot`]'s offset). A chunk for a different `meta` starts a new
    /// transfer (only at offset 0), discarding the previous partial one.
    fn write_snapshot_chunk(
        &self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> StorageResult<bool>;
    /// Verifies size and CRC32C (`meta.size`, `meta.checksum`) of the fully received
    /// snapshot, installs it (atomic rename), and drops log entries it covers (keeping the
    /// log if it holds entry `meta.index` with `meta.term`). Err on checksum mismatch (the
    /// partial snapshot is discarded).
    fn finish_incoming_snapshot(&self, meta: &SnapshotMeta) -> StorageResult<()>;
    /// Stores a snapshot taken locally from the state machine (data streamed from `data`),
    /// computing size and checksum into the stored meta (returned), then compacts the log up
    /// to `meta.index - keep_trailing`. `meta.index` must be in the log with `meta.term` and
    /// newer than the current snapshot ([`StorageError::SnapshotOutOfDate`] otherwise).
    fn create_snapshot(
        &self,
        meta: SnapshotMeta,
        data: &mut dyn Read,
        keep_trailing: u64,
    ) -> StorageResult<SnapshotMeta>;
    /// Opens the latest snapshot's data for reading (restore at start, or to send), `None` if
    /// there is none. Stores that keep the data where it can rot ([`DiskStorage`]) verify
    /// its size and checksum before returning (an error if they do not match), so a reader
    /// that stops early never sees damaged bytes; the reader also fails at the end on a
    /// mismatch.
    fn open_snapshot(&self) -> StorageResult<Option<(SnapshotMeta, Box<dyn Read + Send>)>>;
    /// True if a write is complete when it returns and `sync` does nothing (memory
    /// stores); the runtime then writes on the Raft thread instead of the storage thread.
    fn durable_on_write(&self) -> bool {
        false
    }
    /// Called once when the node shuts down, before its threads are joined: a store whose
    /// writes wait on someone else (e.g. [`ExternalStore`]) abandons those waits so the
    /// threads can exit. The default does nothing.
    fn close(&self) {}
}

/// When [`DiskStorage`] calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// fsync on every [`LogStore::sync`], hard state write, snapshot and directory change.
    #[default]
    Always,
    /// Never fsync. A power loss or kernel crash can lose or corrupt acknowledged data.
    /// Only for tests and benchmarks.
    UnsafeNever,
}

/// Options for [`DiskStorage::open`].
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// fsync policy (default [`FsyncPolicy::Always`]).
    pub fsync: FsyncPolicy,
    /// A new segment is started once the current one reaches this size (default 64 MiB).
    pub segment_bytes: u64,
    /// Bytes of recent entries kept in memory (default 64 MiB); older ones are read from disk.
    pub cache_bytes: u64,
    /// Membership of a brand-new directory (ignored when the directory already holds a store).
    pub bootstrap: ConfState,
    /// The cluster the directory must belong to: recorded in its `identity` file when it is
    /// created (0 if `None`), and an existing directory of another cluster is refused with
    /// [`StorageError::WrongOwner`]. `None` (default) skips the check.
    pub cluster_id: Option<u64>,
    /// The node the directory must belong to, like `cluster_id`.
    pub node_id: Option<u64>,
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions {
            fsync: FsyncPolicy::Always,
            segment_bytes: 64 << 20,
            cache_bytes: 64 << 20,
            bootstrap: ConfState::default(),
            cluster_id: None,
            node_id: None,
        }
    }
}

impl LogStore for MemStorage {
    fn durable_on_write(&self) -> bool {
        true
    }

    fn append(&self, entries: &[Entry]) -> StorageResult<()> {
        if let Some(first) = entries.first() {
            let last = self.last_index();
            if first.index > last + 1 {
                return Err(StorageError::Io(format!(
                    "append at index {} leaves a gap after the last index {last}",
                    first.index
                )));
            }
        }
        MemStorage::append(self, entries);
        Ok(())
    }

    fn set_hard_state(&self, hs: HardState) -> StorageResult<()> {
        MemStorage::set_hard_state(self, hs);
        Ok(())
    }

    fn sync(&self) -> StorageResult<()> {
        Ok(())
    }

    fn write_snapshot_chunk(
        &self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> StorageResult<bool> {
        Ok(MemStorage::write_snapshot_chunk(self, meta, offset, data))
    }

    fn finish_incoming_snapshot(&self, meta: &SnapshotMeta) -> StorageResult<()> {
        MemStorage::finish_incoming_snapshot(self, meta).map_err(StorageError::Io)
    }

    fn create_snapshot(
        &self,
        mut meta: SnapshotMeta,
        data: &mut dyn Read,
        keep_trailing: u64,
    ) -> StorageResult<SnapshotMeta> {
        let buf = read_local_snapshot(self, &mut meta, data)?;
        MemStorage::create_snapshot(self, meta.clone(), buf, keep_trailing);
        Ok(meta)
    }

    fn open_snapshot(&self) -> StorageResult<Option<(SnapshotMeta, Box<dyn Read + Send>)>> {
        let meta = self.snapshot_meta();
        if meta.index == 0 {
            return Ok(None);
        }
        Ok(Some((
            meta,
            Box::new(std::io::Cursor::new(self.snapshot_data())),
        )))
    }
}

/// Checks that a locally taken snapshot is newer than the store's and matches its log, reads
/// its data into memory and fills in `meta.size` and `meta.checksum`.
pub(crate) fn read_local_snapshot(
    store: &dyn Storage,
    meta: &mut SnapshotMeta,
    data: &mut dyn Read,
) -> StorageResult<Vec<u8>> {
    if meta.index <= store.snapshot_meta().index {
        return Err(StorageError::SnapshotOutOfDate);
    }
    let t = store.term(meta.index)?;
    if t != meta.term {
        return Err(StorageError::Io(format!(
            "snapshot at index {} claims term {} but the log has term {t}",
            meta.index, meta.term
        )));
    }
    let mut buf = Vec::new();
    data.read_to_end(&mut buf)
        .map_err(|e| StorageError::Io(format!("read snapshot data: {e}")))?;
    meta.size = buf.len() as u64;
    meta.checksum = crate::crc32c::crc32c(&buf);
    Ok(buf)
}
