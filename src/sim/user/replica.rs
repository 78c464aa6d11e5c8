//! One simulated node running the user's state machine: the production core, a disk that
//! loses unsynced writes on a crash, and the runtime's apply logic ([`ApplyCore`]: client
//! sessions, membership) exactly as a real node runs it.

use super::checks::{Checks, SnapshotShadow};
use super::report::Check;
use super::SimStateMachine;
use crate::core::{ConfState, Config, Entry, MemStorage, Message, RawNode, ReadState, Ready};
use crate::core::{SnapshotMeta, Storage};
use crate::runtime::apply_core::{ApplyCore, ApplyObserver, EntryResult};
use crate::runtime::session::SessionTable;
use crate::runtime::Committed;
use crate::sim::ready::ReadyIo;
use std::collections::BTreeMap;

/// Makes a fresh, empty instance of the user's state machine.
pub type Factory = dyn FnMut() -> Box<dyn SimStateMachine>;

/// A check that failed inside a replica: which check, at which index, and why.
pub(super) type Broken = (Check, Option<u64>, String);

/// What the engine learns from one processed ready.
pub(super) struct Processed {
    /// Messages to send now.
    pub send_now: Vec<Message>,
    /// Answers to read-index requests.
    pub reads: Vec<ReadState>,
}

/// A node of the user simulation.
pub(super) struct Replica {
    id: u64,
    cfg: Config,
    /// The running core (`None` while crashed).
    pub raw: Option<RawNode<MemStorage>>,
    /// The disk side of the Ready contract (shared with the core simulator's node); also
    /// holds the snapshot policy.
    pub io: ReadyIo,
    /// The user's state machine.
    pub machine: Box<dyn SimStateMachine>,
    core: ApplyCore,
    /// A sync is scheduled.
    pub sync_scheduled: bool,
    /// Recent outcomes by index: (term, result), for answering the proposing client.
    pub results: BTreeMap<u64, (u64, EntryResult)>,
    /// The index of the snapshot this incarnation was last restored from (0: none).
    pub restored_from: u64,
    /// A copy restored from this node's latest snapshot, applying the same commands.
    shadow: Option<SnapshotShadow>,
    /// Buffers [`Replica::apply`] reuses (kept empty between calls).
    scratch: Scratch,
}

/// What one call of [`Replica::apply`] collects before feeding the checks.
#[derive(Default)]
struct Scratch {
    /// (index, term) of every entry the state machine received.
    reached: Vec<(u64, u64)>,
    /// (last index of a batch, state hash after it).
    hashes: Vec<(u64, u64)>,
    /// (index, term, outcome) of every entry with an outcome, in log order.
    results: Vec<(u64, u64, EntryResult)>,
}

impl Replica {
    /// A node with a fresh disk bootstrapped with `conf`.
    pub fn new(cfg: Config, conf: ConfState, machine: Box<dyn SimStateMachine>) -> Self {
        let io = ReadyIo::new(conf.clone());
        let raw = RawNode::new(cfg.clone(), io.cache().clone()).expect("valid config");
        Replica {
            id: cfg.id,
            cfg,
            raw: Some(raw),
            io,
            machine,
            core: ApplyCore::new(0, 0, conf, 0, SessionTable::new()),
            sync_scheduled: false,
            results: BTreeMap::new(),
            restored_from: 0,
            shadow: None,
            scratch: Scratch::default(),
        }
    }

    /// Last index applied to the state machine.
    pub fn applied(&self) -> u64 {
        self.core.applied
    }

    /// The configuration as of the applied index.
    pub fn conf(&self) -> &ConfState {
        &self.core.conf
    }

    /// Crash: the core, the state machine and unsynced writes are lost (`keep` picks how
    /// many unsynced writes survive as torn writes).
    pub fn crash(&mut self, keep: u64) {
        self.raw = None;
        self.io.crash(keep);
        self.results.clear();
        self.shadow = None;
        self.sync_scheduled = false;
    }

    /// Restart from durable state with a fresh state machine: restore the stored snapshot
    /// (if any), then the core replays the log.
    pub fn restart(&mut self, seed: u64, machine: Box<dyn SimStateMachine>) -> Result<(), String> {
        self.machine = machine;
        let meta = self.io.cache().snapshot_meta();
        if meta.index > 0 {
            self.restore(&meta)?;
        } else {
            self.core = self.io.initial_apply_core()?;
            self.restored_from = 0;
        }
        self.raw = Some(self.io.start(&self.cfg, seed)?);
        Ok(())
    }

    /// True if writes or messages wait for a sync.
    pub fn has_unsynced(&self) -> bool {
        self.io.has_unsynced()
    }

    /// Completes a sync; returns the messages that waited for durability.
    pub fn sync(&mut self) -> Vec<Message> {
        self.io.sync(self.raw.as_mut()).1
    }

    /// Handles one ready following the RawNode contract, applying committed entries through
    /// the runtime's apply logic and feeding the checks.
    pub fn process(
        &mut self,
        rd: Ready,
        checks: &mut Checks,
        fresh: &mut Factory,
    ) -> Result<Processed, Broken> {
        let rd = self.io.persist(self.raw.as_mut().expect("up"), rd);
        if let Some(meta) = rd.snapshot {
            self.machine = fresh();
            self.shadow = None;
            self.restore(&meta)
                .map_err(|e| (Check::StateMachine, Some(meta.index), e))?;
        }
        self.apply(&rd.committed, checks)?;
        if self
            .io
            .applied(self.raw.as_mut().expect("up"), self.core.applied)
        {
            self.take_snapshot(fresh)?;
        }
        Ok(Processed {
            send_now: rd.messages,
            reads: rd.read_states,
        })
    }

    /// Applies committed entries through [`ApplyCore`], checking every response and state
    /// hash against the other replicas and against this node's snapshot shadow.
    fn apply(&mut self, entries: &[Entry], checks: &mut Checks) -> Result<(), Broken> {
        if entries.is_empty() {
            return Ok(());
        }
        let id = self.id;
        let machine = &mut self.machine;
        let shadow = &mut self.shadow;
        let mut broken: Option<Broken> = None;
        let Scratch {
            mut reached,
            mut hashes,
            results,
        } = std::mem::take(&mut self.scratch);
        let mut apply_batch = |b: &[Committed<'_>]| {
            let out = machine.apply(b)?;
            reached.extend(b.iter().map(|c| (c.index, c.term)));
            let last = b.last().map_or(0, |c| c.index);
            if let Some(sh) = shadow.as_mut() {
                if broken.is_none() {
                    broken = sh.follow(b, &out, machine.as_mut());
                }
            }
            hashes.push((last, super::checks::hash_of(machine.as_mut())));
            Ok(out)
        };
        let mut obs = Recorder { entries, results };
        self.core
            .apply(&mut apply_batch, entries, &mut obs)
            .map_err(|e| (Check::StateMachine, None, format!("node {id}: {e}")))?;
        if let Some(b) = broken {
            return Err(b);
        }
        for &(index, term) in &reached {
            checks.on_machine_applied(id, index, term)?;
        }
        let mut results = obs.results;
        for (index, term, result) in results.drain(..) {
            checks.on_response(id, index, &result, self.restored_from)?;
            self.results.insert(index, (term, result));
        }
        for &(index, hash) in &hashes {
            checks.on_hash(id, index, hash, self.restored_from)?;
        }
        while self.results.len() > 4096 {
            self.results.pop_first();
        }
        reached.clear();
        hashes.clear();
        self.scratch = Scratch {
            reached,
            hashes,
            results,
        };
        Ok(())
    }

    /// Takes a snapshot as the runtime does (sessions, then the user's bytes), stores it
    /// with compaction, and checks that it round-trips into a fresh state machine.
    fn take_snapshot(&mut self, fresh: &mut Factory) -> Result<(), Broken> {
        let index = self.core.applied;
        let mut data = Vec::new();
        self.core
            .sessions
            .write_to(&mut data)
            .expect("writing to memory");
        let user_start = data.len();
        self.machine.snapshot(&mut data).map_err(|e| {
            (
                Check::StateMachine,
                Some(index),
                format!("snapshot failed: {e}"),
            )
        })?;
        let shadow = SnapshotShadow::new(
            self.id,
            index,
            &data[user_start..],
            self.machine.as_mut(),
            fresh,
        )?;
        self.shadow = Some(shadow);
        self.io.store_snapshot(&self.core, data);
        Ok(())
    }

    /// Restores the state machine and the apply state from the stored snapshot `meta`.
    fn restore(&mut self, meta: &SnapshotMeta) -> Result<(), String> {
        let data = self.io.snapshot_data();
        let mut r = &data[..];
        let sessions = SessionTable::read_from(&mut r)?;
        self.machine.restore(&mut r).map_err(|e| {
            format!(
                "node {}: restore of snapshot {} failed: {e}",
                self.id, meta.index
            )
        })?;
        self.core = ApplyCore::new(
            meta.index,
            meta.term,
            meta.conf.clone(),
            meta.conf_index,
            sessions,
        );
        self.restored_from = meta.index;
        Ok(())
    }
}

/// Collects every entry's outcome from the apply logic, in log order.
struct Recorder<'a> {
    entries: &'a [Entry],
    results: Vec<(u64, u64, EntryResult)>,
}

impl ApplyObserver for Recorder<'_> {
    fn applied(&mut self, pos: usize, index: u64, result: Option<EntryResult>, _: &SessionTable) {
        if let Some(r) = result {
            self.results.push((index, self.entries[pos].term, r));
        }
    }
}
