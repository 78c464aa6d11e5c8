//! A deterministic simulator for the core: N nodes, a virtual clock, a seeded scheduler, a
//! faulty network (drop, delay, duplicate, reorder, partitions) and a disk that loses writes
//! not yet reported durable. Every step is checked against Raft's safety invariants; a
//! violation is returned as an error naming the seed, so a run replays exactly.

mod bias;
mod checks;
mod disk;
mod invariants;
pub mod linearizability;
mod node;
pub mod oracle;
pub mod porcupine;
mod ready;
pub mod user;

pub use bias::Bias;
pub use invariants::Violation;
pub use user::{
    kv, Check, ClientCtx, Failure, Fault, FaultConfig, KvModel, Model, OpKind, Operation, Report,
    Request, Scheduled, Shrunk, SimBuilder, SimStateMachine, Simulation,
};

use crate::core::rng::Rng;
use crate::core::{ConfChange, ConfState, Config, Message, MessageBody, NodeId, ReadState, Role};
use linearizability::{History, Op, Outcome};
use node::{KvCommand, SimNode};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};

/// Virtual milliseconds per tick.
pub const TICK_MS: u64 = 5;

/// Fault rates and shapes for a run (probabilities in parts per 1000).
#[derive(Debug, Clone)]
pub struct Faults {
    /// Message drop rate.
    pub drop_per_mille: u64,
    /// Message duplication rate.
    pub dup_per_mille: u64,
    /// Message delay range in ms (reordering follows from random delays).
    pub delay_ms: (u64, u64),
    /// Disk sync latency range in ms.
    pub sync_ms: (u64, u64),
}

impl Faults {
    /// A healthy network and disk.
    pub fn none() -> Self {
        Faults {
            drop_per_mille: 0,
            dup_per_mille: 0,
            delay_ms: (1, 3),
            sync_ms: (1, 2),
        }
    }

    /// A hostile network and slow disk.
    pub fn harsh() -> Self {
        Faults {
            drop_per_mille: 50,
            dup_per_mille: 20,
            delay_ms: (1, 40),
            sync_ms: (1, 15),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Tick(NodeId),
    Deliver(u64),
    Sync(NodeId),
    /// A crash scheduled by a [`Bias`] ends.
    Restart(NodeId),
    /// Isolate a node (a [`Bias`] partition right after a vote).
    Isolate(NodeId),
    /// Reconnect a node isolated by a [`Bias`].
    Rejoin(NodeId),
}

/// A pending client proposal.
#[derive(Debug, Clone)]
struct Pending {
    node: NodeId,
    index: u64,
    data: Vec<u8>,
    /// The history event of a key-value client operation, and whether it is a CAS.
    op: Option<(usize, bool)>,
}

/// A pending linearizable read.
#[derive(Debug, Clone)]
struct PendingRead {
    op: usize,
    node: NodeId,
    ctx: u64,
    key: String,
    index: Option<u64>,
}

/// Counters collected during a run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Elections started (real, not pre-vote).
    pub elections: u64,
    /// Terms in which no leader was elected although a candidate campaigned.
    pub split_terms: u64,
    /// Proposals acknowledged to clients.
    pub acked: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Held leader messages delivered after a newer term began ([`Bias::hold_stale`]).
    pub stale_delivered: u64,
    /// Crashes between a promise's write and its sync ([`Bias::crash_before_send`]).
    pub crashes_before_send: u64,
}

/// The simulated cluster.
pub struct Sim {
    /// Seed of this run.
    pub seed: u64,
    /// Current virtual time in ms.
    pub now: u64,
    rng: Rng,
    nodes: BTreeMap<NodeId, SimNode>,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    /// Messages on the wire: key -> (message, time it left its sender).
    in_flight: BTreeMap<u64, (Message, u64)>,
    /// Faults in force.
    pub faults: Faults,
    cut: HashSet<(NodeId, NodeId)>,
    inv: invariants::Checker,
    pending: Vec<Pending>,
    /// Proposals acknowledged: data -> index.
    pub acked: BTreeMap<Vec<u8>, u64>,
    next_cmd: u64,
    /// Counters.
    pub stats: Stats,
    candidate_terms: BTreeSet<u64>,
    /// Read results observed by clients: (node, ctx, read state).
    pub reads: Vec<(NodeId, ReadState)>,
    /// Print role changes and non-heartbeat messages (set from `RAFT_SIM_TRACE`).
    pub trace: bool,
    history: History,
    pending_reads: Vec<PendingRead>,
    next_ctx: u64,
    cfg: Box<dyn Fn(NodeId) -> Config>,
    /// Fault schedules aimed at rare interleavings.
    pub bias: Bias,
    steps: checks::StepState,
    held: Vec<Message>,
    max_term: u64,
    /// Paused nodes: (end of the pause, ticks missed so far).
    paused: BTreeMap<NodeId, (u64, u64)>,
}

impl Sim {
    /// A cluster of `n` voters with ids 1..=n, configured by `cfg(id)`.
    pub fn new(
        seed: u64,
        n: u64,
        faults: Faults,
        cfg: impl Fn(NodeId) -> Config + 'static,
    ) -> Self {
        let conf = ConfState::with_voters(1..=n);
        Self::with_members(seed, &conf, faults, cfg)
    }

    /// A cluster with the given initial membership (every member is started).
    pub fn with_members(
        seed: u64,
        conf: &ConfState,
        faults: Faults,
        cfg: impl Fn(NodeId) -> Config + 'static,
    ) -> Self {
        let mut sim = Sim {
            seed,
            now: 0,
            rng: Rng::new(seed),
            nodes: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            in_flight: BTreeMap::new(),
            faults,
            cut: HashSet::new(),
            inv: invariants::Checker::default(),
            pending: Vec::new(),
            acked: BTreeMap::new(),
            next_cmd: 0,
            stats: Stats::default(),
            candidate_terms: BTreeSet::new(),
            reads: Vec::new(),
            trace: std::env::var("RAFT_SIM_TRACE").is_ok(),
            history: History::new(),
            pending_reads: Vec::new(),
            next_ctx: 1 << 32,
            cfg: Box::new(cfg),
            bias: Bias::default(),
            steps: checks::StepState::default(),
            held: Vec::new(),
            max_term: 0,
            paused: BTreeMap::new(),
        };
        sim.inv.set_initial_conf(conf.clone());
        for id in conf.all_members() {
            sim.add_node(id, conf.clone());
        }
        sim
    }

    /// Starts a brand-new node with empty storage that waits to be added to the
    /// configuration (it learns the membership from the leader's log or snapshot).
    pub fn add_fresh_node(&mut self, id: NodeId) {
        self.add_node(id, ConfState::default());
    }

    /// Adds (and starts) a node with the given bootstrap configuration.
    fn add_node(&mut self, id: NodeId, bootstrap: ConfState) {
        let mut cfg = (self.cfg)(id);
        cfg.seed = self.seed.wrapping_mul(31).wrapping_add(id);
        let (every, trailing) = self
            .nodes
            .values()
            .next()
            .map(|n| (n.io.snapshot_every, n.io.snapshot_trailing))
            .unwrap_or((0, 5));
        let mut node = SimNode::new(cfg, bootstrap);
        node.io.snapshot_every = every;
        node.io.snapshot_trailing = trailing;
        self.nodes.insert(id, node);
        self.inv.set_applied(id, 0);
        let phase = self.rng.range(0, TICK_MS);
        self.schedule(self.now + phase + 1, Event::Tick(id));
    }

    fn schedule(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// Ids of all nodes (up or down).
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// True if the node is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.raw.is_some())
    }

    /// The node's role, if up.
    pub fn role(&self, id: NodeId) -> Option<Role> {
        self.nodes.get(&id)?.raw.as_ref().map(|r| r.raft.role)
    }

    /// The node's core, if up.
    pub fn node(&self, id: NodeId) -> Option<&crate::core::RawNode<crate::core::MemStorage>> {
        self.nodes.get(&id)?.raw.as_ref()
    }

    /// The live leader with the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|n| n.raw.as_ref())
            .filter(|r| r.raft.role == Role::Leader)
            .max_by_key(|r| r.raft.term)
            .map(|r| r.raft.id())
    }

    /// Cuts the link from `a` to `b` (one direction).
    pub fn cut_one_way(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
    }

    /// Cuts the link between `a` and `b` in both directions.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Isolates a node from every other.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.ids() {
            if other != id {
                self.cut(id, other);
            }
        }
    }

    /// Splits the cluster into the given groups (no traffic between groups).
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        for (i, g) in groups.iter().enumerate() {
            for h in groups.iter().skip(i + 1) {
                for &a in g {
                    for &b in h {
                        self.cut(a, b);
                    }
                }
            }
        }
    }

    /// Pauses a node's process for `ms` (a GC or SIGSTOP pause): it gets no ticks, messages
    /// or disk completions and serves no client until the pause ends; then it first
    /// catches up on the ticks it missed (a runtime measures elapsed time on a monotonic
    /// clock), then gets the messages that waited.
    pub fn pause(&mut self, id: NodeId, ms: u64) {
        if self.is_up(id) {
            let until = self.now + ms;
            if self.trace {
                println!("{:>6}ms node {id}: paused until {until}ms", self.now);
            }
            let e = self.paused.entry(id).or_insert((until, 0));
            e.0 = e.0.max(until);
        }
    }

    /// True while the node is paused.
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.paused.contains_key(&id)
    }

    /// Defers an event of a paused node to the end of its pause (counting missed ticks);
    /// once the pause is over, runs the missed ticks before the event. True if deferred.
    fn defer_while_paused(&mut self, ev: &Event) -> Result<bool, Violation> {
        let id = match ev {
            Event::Tick(id) | Event::Sync(id) => *id,
            Event::Deliver(key) => match self.in_flight.get(key) {
                Some((m, _)) => m.to,
                None => return Ok(false),
            },
            // Network and crash schedules are not the paused process's own work.
            Event::Restart(_) | Event::Isolate(_) | Event::Rejoin(_) => return Ok(false),
        };
        let Some(&(until, missed)) = self.paused.get(&id) else {
            return Ok(false);
        };
        if self.now < until {
            if let Event::Tick(_) = ev {
                self.paused.insert(id, (until, missed + 1));
                self.schedule(self.now + TICK_MS, Event::Tick(id));
            } else {
                self.schedule(until, ev.clone());
            }
            return Ok(true);
        }
        self.paused.remove(&id);
        if self.trace {
            println!(
                "{:>6}ms node {id}: resumed, {missed} missed ticks",
                self.now
            );
        }
        for _ in 0..missed {
            if let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut()) {
                raw.tick();
                self.drive(id)?;
            }
        }
        Ok(false)
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Crashes a node: volatile state and unsynced writes are lost (a random prefix of the
    /// unsynced writes may survive, as torn writes).
    pub fn crash(&mut self, id: NodeId) {
        self.paused.remove(&id);
        let keep = self.rng.next_u64();
        if let Some(n) = self.nodes.get_mut(&id) {
            n.crash(keep);
        }
        self.pending.retain(|p| p.node != id);
        self.steps.forget(id);
        // Operations in flight on the crashed node never complete (outcome unknown).
        self.pending_reads.retain(|r| r.node != id);
    }

    /// Cuts a node's power: like [`Sim::crash`], but the disk loses unsynced writes
    /// non-prefix (any subset of them survives), as after a power loss; returns how many
    /// unsynced writes were lost.
    pub fn power_loss(&mut self, id: NodeId) -> usize {
        self.paused.remove(&id);
        let seed = self.rng.next_u64();
        let lost = self.nodes.get_mut(&id).map_or(0, |n| n.power_loss(seed));
        self.pending.retain(|p| p.node != id);
        self.steps.forget(id);
        self.pending_reads.retain(|r| r.node != id);
        lost
    }

    /// Restarts a crashed node from its durable state.
    pub fn restart(&mut self, id: NodeId) -> Result<(), Violation> {
        let seed = self.rng.next_u64();
        let n = self.nodes.get_mut(&id).expect("node");
        if n.raw.is_none() {
            n.restart(seed)
                .map_err(|e| Violation::new(self.seed, format!("restart of {id} failed: {e}")))?;
            let applied = n.machine_index();
            self.inv.set_applied(id, applied);
            self.check_restarted_log(id)?;
        }
        Ok(())
    }

    /// Proposes a fresh command at `id`; returns its data if the node accepted it.
    pub fn propose(&mut self, id: NodeId) -> Option<Vec<u8>> {
        self.next_cmd += 1;
        let data =
            crate::runtime::session::encode_plain(format!("cmd-{}", self.next_cmd).as_bytes());
        if self.is_paused(id) {
            return None;
        }
        let raw = self.nodes.get_mut(&id)?.raw.as_mut()?;
        let index = raw.propose(vec![data.clone()]).ok()?;
        self.pending.push(Pending {
            node: id,
            index,
            data: data.clone(),
            op: None,
        });
        Some(data)
    }

    fn propose_kv(&mut self, id: NodeId, cmd: KvCommand, op: Op) -> bool {
        self.next_cmd += 1;
        if self.is_paused(id) {
            return false;
        }
        // Every client write goes through a session of its own, as the runtime's
        // `propose_session` does; some are proposed twice (a client retry), and the
        // runtime's apply logic must answer the second from the session table.
        let session = crate::runtime::session::SessionId {
            client: self.next_cmd,
            seq: 1,
            expiry: node::SESSION_EXPIRY,
        };
        let data = crate::runtime::session::encode_session(session, &cmd.encode(self.next_cmd));
        let retry = self.rng.range(0, 4) == 0;
        let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut()) else {
            return false;
        };
        let Ok(index) = raw.propose(vec![data.clone()]) else {
            return false;
        };
        if retry {
            if let Ok(again) = raw.propose(vec![data.clone()]) {
                self.pending.push(Pending {
                    node: id,
                    index: again,
                    data: data.clone(),
                    op: None,
                });
            }
        }
        let is_cas = matches!(cmd, KvCommand::Cas(..));
        let ev = self.history.invoke(id, op, self.now);
        self.pending.push(Pending {
            node: id,
            index,
            data,
            op: Some((ev, is_cas)),
        });
        true
    }

    /// A client writes `key = value` through node `id`; false if the node refused.
    pub fn client_put(&mut self, id: NodeId, key: &str, value: &str) -> bool {
        let op = Op::Put {
            key: key.into(),
            value: value.into(),
        };
        self.propose_kv(id, KvCommand::Put(key.into(), value.into()), op)
    }

    /// A client compare-and-sets `key` from `expected` to `new` through node `id`.
    pub fn client_cas(&mut self, id: NodeId, key: &str, expected: Option<&str>, new: &str) -> bool {
        let op = Op::Cas {
            key: key.into(),
            expected: expected.map(Into::into),
            new: new.into(),
        };
        let cmd = KvCommand::Cas(key.into(), expected.map(Into::into), new.into());
        self.propose_kv(id, cmd, op)
    }

    /// A client reads `key` linearizably at node `id` (read index, then local state once
    /// applied); false if the node refused.
    pub fn client_get(&mut self, id: NodeId, key: &str) -> bool {
        self.next_ctx += 1;
        let ctx = self.next_ctx;
        if self.is_paused(id) {
            return false;
        }
        let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut()) else {
            return false;
        };
        let leads = raw.raft.role == Role::Leader;
        if raw.read_index(ctx).is_err() {
            return false;
        }
        self.steps.reads.on_request(id, ctx, leads, self.now);
        let op = self
            .history
            .invoke(id, Op::Get { key: key.into() }, self.now);
        self.pending_reads.push(PendingRead {
            op,
            node: id,
            ctx,
            key: key.into(),
            index: None,
        });
        true
    }

    /// UNSAFE on purpose: reads local state at `id` without a read index, to show that the
    /// checker catches the stale reads this allows.
    pub fn client_get_unsafe_local(&mut self, id: NodeId, key: &str) -> bool {
        let Some(n) = self.nodes.get(&id).filter(|n| n.raw.is_some()) else {
            return false;
        };
        let value = n.kv_get(key);
        let op = self
            .history
            .invoke(id, Op::Get { key: key.into() }, self.now);
        self.history.complete(op, self.now, Outcome::Get(value));
        true
    }

    /// The recorded client history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Checks the client history for linearizability.
    pub fn check_linearizable(&self) -> Result<(), Violation> {
        linearizability::check(&self.history)
            .map_err(|e| Violation::new(self.seed, format!("history not linearizable: {e}")))
    }

    /// Proposes a membership change at `id`.
    pub fn propose_conf_change(&mut self, id: NodeId, cc: ConfChange) -> Result<u64, String> {
        if self.is_paused(id) {
            return Err("node paused".into());
        }
        let raw = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.raw.as_mut())
            .ok_or("node down")?;
        raw.propose_conf_change(cc, None).map_err(|e| e.to_string())
    }

    /// Starts a leadership transfer at `id`.
    pub fn transfer(&mut self, id: NodeId, to: Option<NodeId>) -> Result<NodeId, String> {
        if self.is_paused(id) {
            return Err("node paused".into());
        }
        let raw = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.raw.as_mut())
            .ok_or("node down")?;
        raw.transfer_leader(to).map_err(|e| e.to_string())
    }

    /// Requests a read index at `id`.
    pub fn read_index(&mut self, id: NodeId, ctx: u64) -> Result<(), String> {
        let raw = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.raw.as_mut())
            .ok_or("node down")?;
        let leads = raw.raft.role == Role::Leader;
        raw.read_index(ctx).map_err(|e| e.to_string())?;
        self.steps.reads.on_request(id, ctx, leads, self.now);
        // Process the node's resulting work at once (a lease read is answered here).
        self.drive(id).map_err(|v| v.to_string())
    }

    /// Proposes a membership change that only applies if the configuration id is still
    /// `expected` (compare-and-set).
    pub fn propose_conf_change_cas(
        &mut self,
        id: NodeId,
        cc: ConfChange,
        expected: u64,
    ) -> Result<u64, String> {
        let raw = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.raw.as_mut())
            .ok_or("node down")?;
        raw.propose_conf_change(cc, Some(expected))
            .map_err(|e| e.to_string())
    }

    /// Runs for `ms` virtual milliseconds.
    pub fn run_for(&mut self, ms: u64) -> Result<(), Violation> {
        let end = self.now + ms;
        self.run_until(end, |_| false).map(|_| ())
    }

    /// Runs until `pred` holds (checked after each event) or time `deadline`; returns
    /// whether `pred` held.
    pub fn run_until(
        &mut self,
        deadline: u64,
        mut pred: impl FnMut(&Sim) -> bool,
    ) -> Result<bool, Violation> {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > deadline {
                break;
            }
            let Reverse((at, _, ev)) = self.queue.pop().expect("event");
            self.now = at;
            self.handle(ev)?;
            if pred(self) {
                return Ok(true);
            }
        }
        self.now = self.now.max(deadline);
        Ok(pred(self))
    }

    fn handle(&mut self, ev: Event) -> Result<(), Violation> {
        if self.defer_while_paused(&ev)? {
            return Ok(());
        }
        match ev {
            Event::Tick(id) => {
                self.schedule(self.now + TICK_MS, Event::Tick(id));
                if let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut()) {
                    raw.tick();
                    self.drive(id)?;
                }
            }
            Event::Deliver(key) => {
                let Some((m, sent_at)) = self.in_flight.remove(&key) else {
                    return Ok(());
                };
                let to = m.to;
                if self.cut.contains(&(m.from, m.to)) {
                    return Ok(());
                }
                if let Some(raw) = self.nodes.get_mut(&to).and_then(|n| n.raw.as_mut()) {
                    self.stats.delivered += 1;
                    self.steps.reads.on_deliver(&m, sent_at, self.now);
                    raw.step(m);
                    self.drive(to)?;
                }
            }
            Event::Sync(id) => {
                let Some(n) = self.nodes.get_mut(&id) else {
                    return Ok(());
                };
                n.sync_scheduled = false;
                if n.raw.is_none() {
                    return Ok(());
                }
                let (hs, msgs) = n.sync();
                self.inv.check_hard_state(self.seed, id, hs)?;
                for m in msgs {
                    self.release(m, true)?;
                }
                self.drive(id)?;
            }
            Event::Restart(id) => self.restart(id)?,
            Event::Isolate(id) => {
                if self.is_up(id) {
                    self.isolate(id);
                }
            }
            Event::Rejoin(id) => self.cut.retain(|&(a, b)| a != id && b != id),
        }
        Ok(())
    }

    /// Puts a message on the wire (subject to drops, duplicates and delays).
    fn send(&mut self, m: Message) {
        if self.rng.chance(self.faults.drop_per_mille, 1000) {
            return;
        }
        let copies = if self.rng.chance(self.faults.dup_per_mille, 1000) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let (lo, hi) = self.faults.delay_ms;
            let at = self.now + self.rng.range(lo, hi + 1);
            self.seq += 1;
            let key = self.seq;
            self.in_flight.insert(key, (m.clone(), self.now));
            self.schedule(at, Event::Deliver(key));
        }
    }

    /// Processes every ready of node `id`, then checks the per-step invariants.
    fn drive(&mut self, id: NodeId) -> Result<(), Violation> {
        self.drive_readies(id)?;
        self.check_step(id)
    }

    /// Processes every ready of node `id`, checking invariants.
    fn drive_readies(&mut self, id: NodeId) -> Result<(), Violation> {
        loop {
            let n = self.nodes.get_mut(&id).expect("node");
            let Some(raw) = n.raw.as_mut() else {
                return Ok(());
            };
            if !raw.has_ready() {
                return Ok(());
            }
            let rd = raw.ready();
            if self.trace {
                for m in rd.messages.iter().chain(&rd.persisted_messages) {
                    if !m.is_heartbeat() {
                        println!("{:>6}ms {id}->{} t{} {:?}", self.now, m.to, m.term, m.body);
                    }
                }
            }
            self.check_ready_log(id, &rd)?;
            if let Some(ss) = rd.soft_state {
                self.on_term_seen(ss.term);
                if self.trace {
                    println!(
                        "{:>6}ms node {id}: {:?} term {} leader {}",
                        self.now, ss.role, ss.term, ss.leader
                    );
                }
                if ss.role == Role::Candidate {
                    self.stats.elections += 1;
                    self.candidate_terms.insert(ss.term);
                }
                if ss.role == Role::Leader {
                    let raw = self.nodes[&id].raw.as_ref().expect("up");
                    self.inv.on_leader(self.seed, id, ss.term, raw)?;
                }
            }
            for m in &rd.messages {
                if let MessageBody::Append { entries, .. } = &m.body {
                    self.inv.check_sent_entries(self.seed, m.term, entries)?;
                }
            }
            let n = self.nodes.get_mut(&id).expect("node");
            if let Some(raw) = n.raw.as_ref() {
                // Once a leader has committed an entry of its term (before that, entries
                // already committed cluster-wide may still look pending to it), at most one
                // configuration change is in flight.
                let log = &raw.raft.log;
                let settled = log.term(log.committed).ok() == Some(raw.raft.term);
                if raw.raft.role == Role::Leader && settled && raw.raft.pending_conf_changes() > 1 {
                    return Err(Violation::new(
                        self.seed,
                        format!(
                            "leader {id} has {} uncommitted configuration changes",
                            raw.raft.pending_conf_changes()
                        ),
                    ));
                }
            }
            let promised = rd.persisted_messages.iter().any(bias::is_promise);
            let outcome = n.process(rd, self.seed, &mut self.inv)?;
            let need_sync = !n.sync_scheduled && n.has_unsynced();
            if need_sync {
                n.sync_scheduled = true;
            }
            for m in outcome.send_now {
                self.release(m, false)?;
            }
            for rs in outcome.reads {
                if let Some(index) = rs.index {
                    self.check_read_answer(id, id, rs.ctx, index)?;
                }
                if let Some(p) = self
                    .pending_reads
                    .iter()
                    .position(|r| r.node == id && r.ctx == rs.ctx)
                {
                    match rs.index {
                        Some(i) => self.pending_reads[p].index = Some(i),
                        // Refused: the read did not happen.
                        None => {
                            self.pending_reads.remove(p);
                        }
                    }
                }
                self.reads.push((id, rs));
            }
            if need_sync {
                let (lo, hi) = self.faults.sync_ms;
                let at = self.now + self.rng.range(lo, hi + 1);
                self.schedule(at, Event::Sync(id));
            }
            if promised && self.maybe_crash_before_send(id) {
                return Ok(());
            }
            // Acknowledge proposals the proposing node applied.
            let n = self.nodes.get_mut(&id).expect("node");
            let applied = &n.applied_log;
            let mut acked = Vec::new();
            self.pending.retain(|p| {
                if p.node != id {
                    return true;
                }
                match applied.get(&p.index) {
                    Some(d) if *d == p.data => {
                        acked.push((p.data.clone(), p.index, p.op));
                        false
                    }
                    Some(_) => false, // another entry won that index: dropped, not acked
                    None => true,
                }
            });
            for (d, i, op) in acked {
                self.stats.acked += 1;
                if let Some((ev, is_cas)) = op {
                    let outcome = if is_cas {
                        match n.cas_results.get(&i) {
                            Some(&ok) => Outcome::Cas(ok),
                            None => Outcome::Unknown,
                        }
                    } else {
                        Outcome::Put
                    };
                    self.history.complete(ev, self.now, outcome);
                }
                self.acked.insert(d, i);
            }
            // Reads whose index this node has now applied complete with its local value.
            let applied = n.machine_index();
            let now = self.now;
            let history = &mut self.history;
            self.pending_reads.retain(|r| {
                if r.node != id || r.index.is_none_or(|i| i > applied) {
                    return true;
                }
                history.complete(r.op, now, Outcome::Get(n.kv_get(&r.key)));
                false
            });
            n.trim_applied_log();
        }
    }

    /// Checks invariants that span the whole cluster (log matching, acknowledged writes).
    pub fn check_global(&self) -> Result<(), Violation> {
        self.inv.check_logs(self.seed, &self.nodes)?;
        for (data, index) in &self.acked {
            match self.inv.committed_data(*index) {
                Some(d) if d == data => {}
                other => {
                    return Err(Violation::new(
                        self.seed,
                        format!(
                            "acknowledged write {:?} at {index} lost (have {:?})",
                            String::from_utf8_lossy(data),
                            other.map(|d| String::from_utf8_lossy(d).into_owned())
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Committed membership changes seen so far.
    pub fn conf_changes(&self) -> u64 {
        self.inv.conf_changes
    }

    /// Terms in which a candidate campaigned but no leader emerged.
    pub fn split_terms(&self) -> u64 {
        self.candidate_terms
            .iter()
            .filter(|t| !self.inv.has_leader(**t))
            .count() as u64
    }

    /// Highest index known committed by any node.
    pub fn max_commit(&self) -> u64 {
        self.nodes
            .values()
            .filter_map(|n| n.raw.as_ref())
            .map(|r| r.raft.log.committed)
            .max()
            .unwrap_or(0)
    }

    /// Lowest applied index among running nodes that are members of the leader's
    /// configuration (all running nodes when there is no leader).
    pub fn min_applied(&self) -> u64 {
        let conf = self
            .leader()
            .and_then(|l| self.node(l))
            .map(|r| r.raft.conf().clone());
        self.nodes
            .iter()
            .filter(|(id, _)| conf.as_ref().is_none_or(|c| c.contains(**id)))
            .filter_map(|(_, n)| n.raw.as_ref())
            .map(|r| r.raft.log.applied)
            .min()
            .unwrap_or(0)
    }

    /// The configuration in force at the leader (or at any running node without one).
    pub fn conf(&self) -> Option<ConfState> {
        let id = self
            .leader()
            .or_else(|| self.ids().into_iter().find(|&i| self.is_up(i)))?;
        self.node(id).map(|r| r.raft.conf().clone())
    }

    /// Sets the snapshot policy of every node: snapshot every `every` applied entries,
    /// keeping `trailing` entries behind it.
    pub fn set_snapshot_policy(&mut self, every: u64, trailing: u64) {
        for n in self.nodes.values_mut() {
            n.io.snapshot_every = every;
            n.io.snapshot_trailing = trailing;
        }
    }

    /// One line per node describing its state, for failure reports.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, n) in &self.nodes {
            match n.raw.as_ref() {
                None => out.push_str(&format!("node {id}: down\n")),
                Some(r) => {
                    let st = r.status();
                    out.push_str(&format!(
                        "node {id}: {:?} term {} leader {} commit {} applied {} first {} last {} persisted {} conf {:?} peers {:?}\n",
                        st.role, st.term, st.leader, st.commit, st.applied, r.raft.log.first_index(), st.last_index, r.raft.log.persisted, st.conf.voters, st.peers
                    ));
                }
            }
        }
        out
    }

    /// Random number from the run's seeded generator.
    pub fn rand(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.range(lo, hi)
    }
}
