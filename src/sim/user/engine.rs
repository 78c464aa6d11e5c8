//! The event loop of one run: virtual time, ticks, a faulty network, disk syncs, the fault
//! schedule and the clients, all driven from one seed.

use super::checks::Checks;
use super::clients::{Attempt, Client, ClientCtx, Current, Mode, Workload};
use super::faults::{Fault, FaultConfig, Scheduled};
use super::model::{OpKind, Operation};
use super::replica::{Broken, Factory, Replica};
use super::report::Check;
use super::timeline::Timeline;
use super::Settings;
use crate::core::rng::Rng;
use crate::core::{ConfChange, ConfState, Config, Message, ProposeError, Role};
use crate::runtime::session::{encode_plain, encode_session, SessionId, DEFAULT_EXPIRY_ENTRIES};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Ev {
    /// Every node's clock ticks (one event for all: fewer queue operations).
    Tick,
    Deliver(Box<Message>),
    Sync(u64),
    Fault(usize),
    Wake(u64, u64),
}

/// A value per directed link between the nodes 1..=n (a dense table: looked up for every
/// message). Links naming other ids read as the default and ignore writes: no such node
/// sends or receives.
struct Links<T> {
    n: u64,
    v: Vec<T>,
}

impl<T: Copy + Default> Links<T> {
    fn new(n: u64) -> Self {
        Links {
            n,
            v: vec![T::default(); ((n + 1) * (n + 1)) as usize],
        }
    }

    fn slot(&self, from: u64, to: u64) -> Option<usize> {
        (from <= self.n && to <= self.n).then(|| (from * (self.n + 1) + to) as usize)
    }

    fn get(&self, from: u64, to: u64) -> T {
        self.slot(from, to).map_or_else(T::default, |i| self.v[i])
    }

    fn set(&mut self, from: u64, to: u64, value: T) {
        if let Some(i) = self.slot(from, to) {
            self.v[i] = value;
        }
    }

    fn clear(&mut self) {
        self.v.fill(T::default());
    }
}

/// A failure found by the engine: (check, node, index, message).
pub(super) type Found = (Check, Option<u64>, Option<u64>, String);

/// One run of the simulation.
pub(super) struct Engine<'a> {
    pub now: u64,
    s: &'a Settings,
    faults: &'a FaultConfig,
    net: Rng,
    work_rng: Rng,
    nodes: BTreeMap<u64, Replica>,
    queue: Timeline<Ev>,
    /// Per link: the latest delivery time scheduled (for FIFO links).
    link_clock: Links<u64>,
    /// Per link: messages on it are lost.
    cut: Links<bool>,
    paused: BTreeMap<u64, (u64, u64)>,
    pub checks: Checks,
    factory: &'a mut Factory,
    workload: &'a mut Workload,
    clients: Vec<Client>,
    pub history: Vec<Operation>,
    schedule: &'a [Scheduled],
    /// How many scheduled faults were reached.
    pub injected: usize,
    pub delivered: u64,
    next_ctx: u64,
    voters: Vec<u64>,
    /// Set once the workload is over: scheduled faults are no longer injected.
    pub settling: bool,
}

impl<'a> Engine<'a> {
    pub fn new(
        seed: u64,
        s: &'a Settings,
        faults: &'a FaultConfig,
        schedule: &'a [Scheduled],
        factory: &'a mut Factory,
        workload: &'a mut Workload,
    ) -> Self {
        let mut e = Engine {
            now: 0,
            s,
            faults,
            net: Rng::new(seed ^ 0x6e65_7477_6f72_6b00),
            work_rng: Rng::new(seed ^ 0x776f_726b_6c6f_6164),
            nodes: BTreeMap::new(),
            queue: Timeline::new(),
            link_clock: Links::new(s.nodes),
            cut: Links::new(s.nodes),
            paused: BTreeMap::new(),
            checks: Checks::default(),
            factory,
            workload,
            clients: (1..=s.clients).map(|c| Client::new(c, s.nodes)).collect(),
            history: Vec::new(),
            schedule,
            injected: 0,
            delivered: 0,
            next_ctx: 0,
            voters: (1..=s.nodes).collect(),
            settling: false,
        };
        let conf = ConfState::with_voters(1..=s.nodes);
        for id in 1..=s.nodes {
            let mut cfg = e.config(id);
            cfg.seed = seed.wrapping_mul(31).wrapping_add(id);
            let mut r = Replica::new(cfg, conf.clone(), (e.factory)());
            r.io.snapshot_every = faults.snapshot_every;
            r.io.snapshot_trailing = faults.snapshot_trailing;
            e.nodes.insert(id, r);
        }
        e.schedule(s.tick_ms, Ev::Tick);
        if let Some(f) = schedule.first() {
            e.schedule(f.at_ms, Ev::Fault(0));
        }
        for c in 1..=s.clients {
            e.schedule(c, Ev::Wake(c, 0));
        }
        e
    }

    fn config(&self, id: u64) -> Config {
        let mut c = Config::new(id);
        c.election_ticks = self.s.election_ticks;
        c.heartbeat_ticks = self.s.heartbeat_ticks;
        c.max_msg_bytes = 64 << 10;
        c
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.queue.push(at, ev);
    }

    /// True once every client is done.
    pub fn clients_done(&self) -> bool {
        self.clients.iter().all(|c| c.done)
    }

    /// Runs events until `stop` holds or time `deadline`.
    pub fn run_until(
        &mut self,
        deadline: u64,
        stop: impl Fn(&Engine<'_>) -> bool,
    ) -> Result<bool, Found> {
        while let Some(at) = self.queue.next_at() {
            if at > deadline {
                break;
            }
            let (at, ev) = self.queue.pop().expect("an event is due");
            self.now = at;
            self.handle(ev)?;
            if stop(self) {
                return Ok(true);
            }
        }
        self.now = self.now.max(deadline);
        Ok(stop(self))
    }

    fn handle(&mut self, ev: Ev) -> Result<(), Found> {
        let ev = match self.defer_while_paused(ev)? {
            Some(ev) => ev,
            None => return Ok(()),
        };
        match ev {
            Ev::Tick => {
                self.schedule(self.now + self.s.tick_ms, Ev::Tick);
                for id in 1..=self.s.nodes {
                    if let Some((until, missed)) = self.paused.get_mut(&id) {
                        if self.now < *until {
                            *missed += 1;
                            continue;
                        }
                    }
                    self.resume(id)?;
                    if let Some(raw) = self.raw(id) {
                        raw.tick();
                        self.drive(id)?;
                    }
                }
            }
            Ev::Deliver(m) => {
                if self.cut.get(m.from, m.to) {
                    return Ok(());
                }
                let to = m.to;
                if let Some(raw) = self.nodes.get_mut(&to).and_then(|n| n.raw.as_mut()) {
                    self.delivered += 1;
                    raw.step(*m);
                    self.drive(to)?;
                }
            }
            Ev::Sync(id) => {
                let Some(n) = self.nodes.get_mut(&id) else {
                    return Ok(());
                };
                n.sync_scheduled = false;
                if n.raw.is_none() {
                    return Ok(());
                }
                for m in n.sync() {
                    self.send(m);
                }
                self.drive(id)?;
            }
            Ev::Fault(_) if self.settling => {}
            Ev::Fault(i) => {
                self.injected = self.injected.max(i + 1);
                if let Some(f) = self.schedule.get(i + 1) {
                    self.schedule(f.at_ms.max(self.now), Ev::Fault(i + 1));
                }
                let f = self.schedule[i].fault.clone();
                self.inject(&f)?;
            }
            Ev::Wake(c, token) => self.wake(c, token)?,
        }
        Ok(())
    }

    fn raw(&mut self, id: u64) -> Option<&mut crate::core::RawNode<crate::core::MemStorage>> {
        self.nodes.get_mut(&id)?.raw.as_mut()
    }

    fn up(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.raw.is_some()) && !self.paused.contains_key(&id)
    }

    /// A paused node gets no ticks (counted at [`Ev::Tick`]), messages or syncs until its
    /// pause ends: those wait for the end (`None`: deferred).
    fn defer_while_paused(&mut self, ev: Ev) -> Result<Option<Ev>, Found> {
        let id = match &ev {
            Ev::Sync(id) => *id,
            Ev::Deliver(m) => m.to,
            Ev::Tick | Ev::Fault(_) | Ev::Wake(..) => return Ok(Some(ev)),
        };
        match self.paused.get(&id) {
            Some(&(until, _)) if self.now < until => {
                self.schedule(until, ev);
                Ok(None)
            }
            _ => {
                self.resume(id)?;
                Ok(Some(ev))
            }
        }
    }

    /// Ends `id`'s pause if it is over: it first runs the ticks it missed, as a runtime
    /// measuring elapsed time on a monotonic clock would.
    fn resume(&mut self, id: u64) -> Result<(), Found> {
        match self.paused.get(&id) {
            Some(&(until, missed)) if self.now >= until => {
                self.paused.remove(&id);
                for _ in 0..missed {
                    if let Some(raw) = self.raw(id) {
                        raw.tick();
                        self.drive(id)?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Puts a message on the wire: maybe dropped, maybe duplicated, delayed; FIFO per link
    /// unless reordering is on.
    fn send(&mut self, m: Message) {
        if self.net.chance(self.faults.drop_per_mille, 1000) {
            return;
        }
        if self.net.chance(self.faults.dup_per_mille, 1000) {
            let at = self.delivery_time(&m);
            self.schedule(at, Ev::Deliver(Box::new(m.clone())));
        }
        let at = self.delivery_time(&m);
        self.schedule(at, Ev::Deliver(Box::new(m)));
    }

    /// When a message sent now arrives: a random delay, and no earlier than the previous
    /// message on its link unless reordering is on.
    fn delivery_time(&mut self, m: &Message) -> u64 {
        let (lo, hi) = self.faults.delay_ms;
        let mut at = self.now + self.net.range(lo, hi.max(lo) + 1);
        if !self.faults.reorder {
            at = at.max(self.link_clock.get(m.from, m.to));
            self.link_clock.set(m.from, m.to, at);
        }
        at
    }

    /// Processes every ready of node `id`, then lets its clients see what it applied.
    fn drive(&mut self, id: u64) -> Result<(), Found> {
        loop {
            let n = self.nodes.get_mut(&id).expect("node");
            let Some(raw) = n.raw.as_mut() else {
                return Ok(());
            };
            if !raw.has_ready() {
                break;
            }
            let rd = raw.ready();
            let out = n
                .process(rd, &mut self.checks, self.factory)
                .map_err(|b: Broken| (b.0, Some(id), b.1, b.2))?;
            let need_sync = !n.sync_scheduled && n.has_unsynced();
            if need_sync {
                n.sync_scheduled = true;
                let (lo, hi) = self.faults.sync_ms;
                let at = self.now + self.net.range(lo, hi.max(lo) + 1);
                self.schedule(at, Ev::Sync(id));
            }
            for m in out.send_now {
                self.send(m);
            }
            for rs in out.reads {
                self.on_read_state(id, rs.ctx, rs.index);
            }
        }
        self.complete_at(id);
        Ok(())
    }

    fn inject(&mut self, f: &Fault) -> Result<(), Found> {
        match f {
            Fault::Partition(groups) => {
                for (i, g) in groups.iter().enumerate() {
                    for h in &groups[i + 1..] {
                        self.cut_between(g, h);
                    }
                }
            }
            Fault::OneWay(a, b) => {
                self.cut.set(*a, *b, true);
            }
            Fault::Bridge(_, a, b) => self.cut_between(a, b),
            Fault::Heal => self.cut.clear(),
            Fault::Crash(n) => {
                self.paused.remove(n);
                let keep = self.net.next_u64();
                if let Some(r) = self.nodes.get_mut(n) {
                    r.crash(keep);
                }
            }
            Fault::Restart(n) => self.restart(*n)?,
            Fault::Pause(n, ms) => {
                if self.up(*n) {
                    self.paused.insert(*n, (self.now + ms, 0));
                }
            }
            Fault::Demote(n) | Fault::Promote(n) => {
                let promote = matches!(f, Fault::Promote(_));
                self.change_membership(*n, promote)?;
            }
            Fault::Transfer(n) => {
                if let Some(l) = self.leader() {
                    if let Some(raw) = self.raw(l) {
                        let _ = raw.transfer_leader(Some(*n));
                        self.drive(l)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn cut_between(&mut self, a: &[u64], b: &[u64]) {
        for &x in a {
            for &y in b {
                self.cut.set(x, y, true);
                self.cut.set(y, x, true);
            }
        }
    }

    fn restart(&mut self, id: u64) -> Result<(), Found> {
        let seed = self.net.next_u64();
        let fresh = (self.factory)();
        let n = self.nodes.get_mut(&id).expect("node");
        if n.raw.is_none() {
            n.restart(seed, fresh)
                .map_err(|e| (Check::StateMachine, Some(id), None, e))?;
        }
        Ok(())
    }

    /// The live leader with the highest term.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter(|(id, _)| self.up(**id))
            .filter_map(|(id, n)| n.raw.as_ref().map(|r| (id, r)))
            .filter(|(_, r)| r.raft.role == Role::Leader)
            .max_by_key(|(_, r)| r.raft.term)
            .map(|(id, _)| *id)
    }

    /// Demotes `n` to learner or promotes it back, through the leader. The leader itself
    /// is not demoted; a refused change is left for the next fault (or the final heal).
    fn change_membership(&mut self, n: u64, promote: bool) -> Result<(), Found> {
        let Some(l) = self.leader() else {
            return Ok(());
        };
        let conf = self.nodes[&l].raw.as_ref().expect("up").raft.conf().clone();
        if !conf.voters_outgoing.is_empty() || (!promote && l == n) {
            return Ok(());
        }
        let (mut voters, mut learners) = (conf.voters.clone(), conf.learners.clone());
        if promote && learners.contains(&n) {
            learners.retain(|&x| x != n);
            voters.push(n);
        } else if !promote && voters.contains(&n) && voters.len() > 1 {
            voters.retain(|&x| x != n);
            learners.push(n);
        } else {
            return Ok(());
        }
        voters.sort_unstable();
        learners.sort_unstable();
        let raw = self.raw(l).expect("up");
        let _ = raw.propose_conf_change(ConfChange::Enter { voters, learners }, None);
        self.drive(l)
    }

    /// Heals every fault: links, pauses, crashed nodes and demoted voters.
    pub fn heal_all(&mut self) -> Result<(), Found> {
        self.cut.clear();
        let paused: Vec<u64> = self.paused.keys().copied().collect();
        for id in paused {
            self.paused.insert(id, (self.now, self.paused[&id].1));
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.restart(id)?;
        }
        Ok(())
    }

    /// Promotes any original voter still a learner (after [`Self::heal_all`]).
    pub fn restore_voters(&mut self) -> Result<(), Found> {
        let Some(l) = self.leader() else {
            return Ok(());
        };
        let learners = self.nodes[&l]
            .raw
            .as_ref()
            .expect("up")
            .raft
            .conf()
            .learners
            .clone();
        if let Some(&n) = learners.iter().find(|n| self.voters.contains(n)) {
            self.change_membership(n, true)?;
        }
        Ok(())
    }

    /// True when every node is up and has applied the same index as the leader's commit.
    pub fn converged(&self) -> bool {
        let Some(l) = self.leader() else {
            return false;
        };
        let commit = self.nodes[&l].raw.as_ref().expect("up").raft.log.committed;
        let conf = self.nodes[&l].raw.as_ref().expect("up").raft.conf().clone();
        conf.learners.iter().all(|n| !self.voters.contains(n))
            && self
                .nodes
                .iter()
                .all(|(id, n)| self.up(*id) && n.applied() == commit)
    }

    /// The final state hash of every node (they must agree once converged).
    pub fn final_hashes(&mut self) -> Vec<(u64, u64)> {
        self.nodes
            .iter_mut()
            .map(|(id, n)| (*id, super::checks::hash_of(n.machine.as_mut())))
            .collect()
    }

    /// Description of every node, for liveness failures.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, n) in &self.nodes {
            match n.raw.as_ref() {
                None => out.push_str(&format!("\n  node {id}: down")),
                Some(r) => {
                    out.push_str(&format!(
                    "\n  node {id}: {:?} term {} commit {} applied {} voters {:?} learners {:?}{}",
                    r.raft.role,
                    r.raft.term,
                    r.raft.log.committed,
                    n.applied(),
                    n.conf().voters,
                    n.conf().learners,
                    if self.paused.contains_key(id) { " (paused)" } else { "" }
                ))
                }
            }
        }
        out
    }

    // ---- clients ----

    fn wake(&mut self, c: u64, token: u64) -> Result<(), Found> {
        let ci = (c - 1) as usize;
        if self.clients[ci].token != token || self.clients[ci].done {
            return Ok(());
        }
        if self.clients[ci].current.is_none() {
            if self.clients[ci].issued >= self.s.ops_per_client {
                self.clients[ci].done = true;
                return Ok(());
            }
            let mut ctx = ClientCtx {
                client: c,
                op: self.clients[ci].issued,
                rng: &mut self.work_rng,
            };
            let Some(req) = (self.workload)(&mut ctx) else {
                self.clients[ci].done = true;
                return Ok(());
            };
            let client = &mut self.clients[ci];
            client.issued += 1;
            if req.kind() == OpKind::Write {
                client.seq += 1;
            }
            self.history.push(Operation {
                client: c,
                kind: req.kind(),
                input: req.data.clone(),
                invoke: self.now,
                complete: None,
                output: None,
            });
            client.current = Some(Current {
                req,
                hist: self.history.len() - 1,
                seq: client.seq,
                attempts: 0,
                attempt: Attempt::Idle,
                give_up_at: self.now + self.s.op_timeout_ms,
            });
        }
        self.attempt(c)
    }

    /// Schedules the client's next wake-up `after` ms from now, cancelling older ones.
    fn wake_in(&mut self, c: u64, after: u64) {
        let client = &mut self.clients[(c - 1) as usize];
        client.token += 1;
        let token = client.token;
        self.schedule(self.now + after, Ev::Wake(c, token));
    }

    /// Sends (or re-sends) the client's current request to the node it believes leads.
    fn attempt(&mut self, c: u64) -> Result<(), Found> {
        let ci = (c - 1) as usize;
        let now = self.now;
        let Some(cur) = self.clients[ci].current.as_mut() else {
            return Ok(());
        };
        if now >= cur.give_up_at {
            let hist = cur.hist;
            self.history[hist].complete = None;
            self.finish(c, None);
            return Ok(());
        }
        cur.attempts += 1;
        // Rotate away from a node that did not answer the previous attempt.
        if cur.attempts > 1 {
            let h = self.clients[ci].hint;
            let leader = self
                .nodes
                .get(&h)
                .and_then(|n| n.raw.as_ref())
                .map(|r| r.raft.leader);
            self.clients[ci].hint = match leader {
                Some(l) if l != 0 && l != h => l,
                _ => h % self.s.nodes + 1,
            };
        }
        let node = self.clients[ci].hint;
        let cur = self.clients[ci].current.as_ref().expect("current");
        let (mode, seq, data) = (cur.req.mode, cur.seq, cur.req.data.clone());
        if !self.up(node) {
            self.wake_in(c, self.s.retry_ms);
            return Ok(());
        }
        let attempt = match mode {
            Mode::Session | Mode::Plain => {
                let bytes = if mode == Mode::Session {
                    let s = SessionId {
                        client: c,
                        seq,
                        expiry: DEFAULT_EXPIRY_ENTRIES,
                    };
                    encode_session(s, &data)
                } else {
                    encode_plain(&data)
                };
                let raw = self.raw(node).expect("up");
                match raw.propose(vec![bytes]) {
                    Ok(index) => {
                        let term = raw.raft.term;
                        self.checks.on_proposed(index, term, c, seq);
                        Some(Attempt::Proposed { node, index, term })
                    }
                    Err(e) => self.refused(c, e),
                }
            }
            Mode::ReadIndex => {
                self.next_ctx += 1;
                let ctx = self.next_ctx;
                match self.raw(node).expect("up").read_index(ctx) {
                    Ok(()) => Some(Attempt::Reading {
                        node,
                        ctx,
                        index: None,
                    }),
                    Err(e) => self.refused(c, e),
                }
            }
            Mode::Local => {
                let out = self
                    .nodes
                    .get_mut(&node)
                    .expect("node")
                    .machine
                    .query(&data);
                self.finish(c, Some(out));
                return Ok(());
            }
        };
        match attempt {
            Some(a) => {
                self.clients[ci].current.as_mut().expect("current").attempt = a;
                self.wake_in(c, self.s.attempt_timeout_ms);
                self.drive(node)
            }
            None => {
                self.wake_in(c, self.s.retry_ms);
                Ok(())
            }
        }
    }

    fn refused(&mut self, c: u64, e: ProposeError) -> Option<Attempt> {
        if let ProposeError::NotLeader(l) = e {
            if l != 0 {
                self.clients[(c - 1) as usize].hint = l;
            }
        }
        None
    }

    /// Completes the client's current request (`None`: unknown outcome) and schedules
    /// its next one.
    fn finish(&mut self, c: u64, output: Option<Vec<u8>>) {
        let ci = (c - 1) as usize;
        let Some(cur) = self.clients[ci].current.take() else {
            return;
        };
        let op = &mut self.history[cur.hist];
        if output.is_some() {
            op.complete = Some(self.now);
        }
        op.output = output;
        let think = self.work_rng.range(0, self.s.think_ms + 1);
        self.wake_in(c, think);
    }

    fn on_read_state(&mut self, node: u64, ctx: u64, index: Option<u64>) {
        for ci in 0..self.clients.len() {
            let Some(cur) = self.clients[ci].current.as_mut() else {
                continue;
            };
            if let Attempt::Reading {
                node: n, ctx: x, ..
            } = cur.attempt
            {
                if n == node && x == ctx {
                    match index {
                        Some(i) => {
                            cur.attempt = Attempt::Reading {
                                node,
                                ctx,
                                index: Some(i),
                            }
                        }
                        None => {
                            cur.attempt = Attempt::Idle;
                            let c = self.clients[ci].id;
                            self.wake_in(c, self.s.retry_ms);
                        }
                    }
                }
            }
        }
    }

    /// Answers the clients waiting on `node` for what it has now applied.
    fn complete_at(&mut self, node: u64) {
        for ci in 0..self.clients.len() {
            let c = self.clients[ci].id;
            let Some(cur) = self.clients[ci].current.as_ref() else {
                continue;
            };
            let n = self.nodes.get_mut(&node).expect("node");
            match cur.attempt {
                Attempt::Proposed {
                    node: p,
                    index,
                    term,
                } if p == node && n.applied() >= index => {
                    match n.results.get(&index) {
                        Some((t, Ok(resp))) if *t == term => {
                            let out = resp.clone().unwrap_or_default();
                            self.finish(c, Some(out));
                        }
                        // Lost to another leader's entry, refused, or applied from a
                        // snapshot: try again (a session retry is answered from the table).
                        _ => {
                            self.clients[ci].current.as_mut().expect("current").attempt =
                                Attempt::Idle;
                            self.wake_in(c, 0);
                        }
                    }
                }
                Attempt::Reading {
                    node: p,
                    index: Some(i),
                    ..
                } if p == node && n.applied() >= i => {
                    let out = n.machine.query(&cur.req.data);
                    self.finish(c, Some(out));
                }
                _ => {}
            }
        }
    }
}
