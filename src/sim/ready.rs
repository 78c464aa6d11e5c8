//! The Ready handling both simulated nodes share (the core simulator's [`super::node`] and
//! the user simulator's replica): a ready's writes go to the simulated disk in the runtime's
//! order, its persisted messages wait for the next sync, finished incoming snapshots are
//! reported to the core, and local snapshots follow one policy. Each node applies the
//! committed entries itself (with its own checks) between [`ReadyIo::persist`] and
//! [`ReadyIo::applied`].

use super::disk::{Disk, WriteOp};
use crate::core::{
    ConfState, Config, Entry, HardState, MemStorage, Message, RawNode, ReadState, Ready,
    SnapshotMeta, Storage,
};
use crate::crc32c::crc32c;
use crate::runtime::apply_core::ApplyCore;
use crate::runtime::session::SessionTable;

/// What is left of a ready once its writes are on the disk: for the node to apply and send.
pub(crate) struct Persisted {
    /// The node must restore storage's snapshot (this one) before applying.
    pub snapshot: Option<SnapshotMeta>,
    /// Committed entries to apply in order.
    pub committed: Vec<Entry>,
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// Answers to read-index requests.
    pub read_states: Vec<ReadState>,
}

/// A simulated node's disk and the messages that wait for it to sync.
pub(crate) struct ReadyIo {
    disk: Disk,
    /// (ready number, its persisted messages), oldest first, until the next sync.
    waiting: Vec<(u64, Vec<Message>)>,
    /// Snapshot every this many applied entries (0: never).
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot.
    pub snapshot_trailing: u64,
}

impl ReadyIo {
    /// A fresh disk bootstrapped with `conf`.
    pub fn new(conf: ConfState) -> Self {
        ReadyIo {
            disk: Disk::new(conf),
            waiting: Vec::new(),
            snapshot_every: 0,
            snapshot_trailing: 5,
        }
    }

    /// What the running core reads (includes unsynced writes).
    pub fn cache(&self) -> &MemStorage {
        &self.disk.cache
    }

    /// What has been synced.
    pub fn durable(&self) -> &MemStorage {
        self.disk.durable()
    }

    /// Starts a core on what the disk holds: `cfg` with `seed`, applied up to the stored
    /// snapshot.
    pub fn start(&self, cfg: &Config, seed: u64) -> Result<RawNode<MemStorage>, String> {
        let mut cfg = cfg.clone();
        cfg.applied = self.disk.cache.snapshot_meta().index;
        cfg.seed = seed;
        RawNode::new(cfg, self.disk.cache.clone())
    }

    /// The apply state to start from when the disk holds no snapshot.
    pub fn initial_apply_core(&self) -> Result<ApplyCore, String> {
        let (_, conf) = self.disk.cache.initial_state().map_err(|e| e.to_string())?;
        Ok(ApplyCore::new(0, 0, conf, 0, SessionTable::new()))
    }

    /// Writes `rd` as the runtime does (entries first: a durable hard state must never name
    /// a commit index whose entries could still be lost; then the hard state, then snapshot
    /// chunks), holds its persisted messages until the next sync (every ready waits, so
    /// that messages keep their order), and reports finished incoming snapshots to `raw`.
    pub fn persist(&mut self, raw: &mut RawNode<MemStorage>, rd: Ready) -> Persisted {
        if !rd.entries.is_empty() {
            let _ = self.disk.write(WriteOp::Append(rd.entries));
        }
        if let Some(hs) = rd.hard_state {
            let _ = self.disk.write(WriteOp::HardState(hs));
        }
        for c in rd.snapshot_chunks {
            let meta = c.meta.clone();
            if self
                .disk
                .write(WriteOp::Chunk(c.meta, c.offset, c.data))
                .is_ok()
                && c.done
            {
                let ok = self
                    .disk
                    .write(WriteOp::FinishSnapshot(meta.clone()))
                    .is_ok();
                raw.snapshot_received(&meta, ok);
            }
        }
        self.waiting.push((rd.number, rd.persisted_messages));
        Persisted {
            snapshot: rd.snapshot,
            committed: rd.committed_entries,
            messages: rd.messages,
            read_states: rd.read_states,
        }
    }

    /// Tells `raw` what the node has applied; true if the snapshot policy wants a local
    /// snapshot now.
    pub fn applied(&self, raw: &mut RawNode<MemStorage>, applied: u64) -> bool {
        raw.on_applied(applied);
        self.snapshot_every > 0
            && applied >= raw.raft.log.storage.snapshot_meta().index + self.snapshot_every
    }

    /// The snapshot bytes stored on the disk (sessions first, then the machine's bytes).
    pub fn snapshot_data(&self) -> Vec<u8> {
        self.disk.cache.snapshot_data()
    }

    /// Stores a local snapshot as the runtime does: `data` (the session table, then the
    /// machine's bytes) taken at the apply state `core`, with compaction.
    pub fn store_snapshot(&mut self, core: &ApplyCore, data: Vec<u8>) {
        let meta = SnapshotMeta {
            index: core.applied,
            term: core.applied_term,
            conf: core.conf.clone(),
            conf_index: core.conf_index,
            size: data.len() as u64,
            checksum: crc32c(&data),
        };
        let _ = self
            .disk
            .write(WriteOp::CreateSnapshot(meta, data, self.snapshot_trailing));
    }

    /// True if writes or messages wait for a sync.
    pub fn has_unsynced(&self) -> bool {
        self.disk.dirty() || !self.waiting.is_empty()
    }

    /// Completes a sync: returns the durable hard state and the messages that waited for
    /// durability, and tells `raw` (if up) which readies are persisted.
    pub fn sync(&mut self, raw: Option<&mut RawNode<MemStorage>>) -> (HardState, Vec<Message>) {
        self.disk.sync();
        let mut out = Vec::new();
        let mut last = 0;
        for (num, msgs) in self.waiting.drain(..) {
            last = num;
            out.extend(msgs);
        }
        if let (Some(raw), true) = (raw, last > 0) {
            raw.on_persisted(last);
        }
        (self.disk.cache.hard_state(), out)
    }

    /// A process crash: unsynced writes are lost except a prefix picked by `keep` (torn
    /// writes), and the messages waiting for a sync are never sent.
    pub fn crash(&mut self, keep: u64) {
        let n = self.waiting.len() as u64 + 1;
        self.disk.crash((keep % (n * 3)) as usize);
        self.waiting.clear();
    }

    /// A power loss: unsynced writes are lost non-prefix ([`Disk::power_loss`]); returns
    /// how many were lost.
    pub fn power_loss(&mut self, seed: u64) -> usize {
        self.waiting.clear();
        self.disk.power_loss(seed)
    }
}
