//! The simulated disk: writes land in a page-cache copy at once and become durable only
//! when a sync completes; a crash keeps the durable copy plus a random prefix of the
//! unsynced writes (torn writes).

use crate::core::{ConfState, Entry, HardState, MemStorage, SnapshotMeta};

/// One write operation, replayed on the durable copy at sync time.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Hard state write.
    HardState(HardState),
    /// Log append (replacing the suffix from the first entry's index).
    Append(Vec<Entry>),
    /// A chunk of an incoming snapshot.
    Chunk(SnapshotMeta, u64, Vec<u8>),
    /// Verify and install the incoming snapshot.
    FinishSnapshot(SnapshotMeta),
    /// A snapshot taken locally, with compaction.
    CreateSnapshot(SnapshotMeta, Vec<u8>, u64),
}

/// A disk with a volatile page cache.
pub struct Disk {
    /// What the running node sees (includes unsynced writes).
    pub cache: MemStorage,
    durable: MemStorage,
    unsynced: Vec<WriteOp>,
}

impl Disk {
    /// A fresh disk bootstrapped with `conf`.
    pub fn new(conf: ConfState) -> Self {
        let s = MemStorage::new_with_conf(conf);
        Disk {
            durable: s.deep_clone(),
            cache: s,
            unsynced: Vec::new(),
        }
    }

    /// Applies a write to the cache; returns the result of a snapshot finish.
    pub fn write(&mut self, op: WriteOp) -> Result<(), String> {
        let r = apply(&self.cache, &op);
        self.unsynced.push(op);
        r
    }

    /// What has been synced (what a crash right now would keep at least).
    pub fn durable(&self) -> &MemStorage {
        &self.durable
    }

    /// True if writes are waiting for a sync.
    pub fn dirty(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// Makes every write so far durable.
    pub fn sync(&mut self) {
        for op in self.unsynced.drain(..) {
            let _ = apply(&self.durable, &op);
        }
    }

    /// Loses the cache: keeps the durable state plus `keep` of the unsynced writes.
    pub fn crash(&mut self, keep: usize) {
        let n = keep.min(self.unsynced.len());
        for op in self.unsynced.drain(..).take(n) {
            let _ = apply(&self.durable, &op);
        }
        self.unsynced.clear();
        self.cache = self.durable.deep_clone();
    }
}

fn apply(s: &MemStorage, op: &WriteOp) -> Result<(), String> {
    match op {
        WriteOp::HardState(hs) => s.set_hard_state(*hs),
        WriteOp::Append(es) => s.append(es),
        WriteOp::Chunk(meta, off, data) => {
            if !s.write_snapshot_chunk(meta, *off, data) {
                return Err("chunk out of order".into());
            }
        }
        WriteOp::FinishSnapshot(meta) => return s.finish_incoming_snapshot(meta),
        WriteOp::CreateSnapshot(meta, data, trailing) => {
            s.create_snapshot(meta.clone(), data.clone(), *trailing)
        }
    }
    Ok(())
}
