//! The simulated disk: writes land in a page-cache copy at once and become durable only
//! when a sync completes. A process crash keeps the durable copy plus a random prefix of the
//! unsynced writes (the page cache is written back in order). A power loss keeps a random
//! subset (not a prefix) of them, as the real store's recovery leaves it after losing
//! unsynced pages and directory operations in any order (see [`Disk::power_loss`]).

use crate::core::rng::Rng;
use crate::core::{ConfState, Entry, HardState, MemStorage, SnapshotMeta, Storage};

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

    /// Loses the cache as a power loss does: each unsynced write survives or not at random
    /// (`seed`), independently of the others, except where the real store's recovery
    /// restores an order: an append that would follow a lost one is cut at the hole (the
    /// WAL is truncated at the first damaged record after the synced mark); a hard state is
    /// kept only if every append before it is (the store syncs entries before writing a
    /// hard state); a local snapshot whose entry was lost supersedes the log (recovery
    /// discards a log that does not hold the snapshot's entry). Returns how many unsynced
    /// writes were lost.
    pub fn power_loss(&mut self, seed: u64) -> usize {
        let mut rng = Rng::new(seed);
        let mut lost = 0;
        let mut appends_intact = true;
        for op in self.unsynced.drain(..) {
            let keep = rng.chance(1, 2);
            let applies = match &op {
                WriteOp::Append(es) => {
                    let fits = es
                        .first()
                        .is_some_and(|e| e.index <= self.durable.last_index() + 1);
                    let ok = keep && fits;
                    appends_intact &= ok;
                    ok
                }
                WriteOp::HardState(_) => keep && appends_intact,
                WriteOp::CreateSnapshot(meta, data, _)
                    if keep && self.durable.term(meta.index).ok() != Some(meta.term) =>
                {
                    if meta.index > self.durable.snapshot_meta().index {
                        self.durable.apply_snapshot(meta.clone(), data.clone());
                    }
                    continue;
                }
                _ => keep,
            };
            if applies {
                let _ = apply(&self.durable, &op);
            } else {
                lost += 1;
            }
        }
        self.cache = self.durable.deep_clone();
        lost
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
