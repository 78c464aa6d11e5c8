//! [`Node`]: the core behind three threads. The Raft thread runs protocol logic and timers
//! only; a storage thread writes and fsyncs (group commit) and a apply thread runs the
//! state machine, each fed by a bounded queue, so a slow disk or state machine never
//! delays heartbeats.

use super::apply::{self, ApplyJob, Completion};
use super::config::NodeConfig;
use super::error::Error;
use super::session::{self, SessionTable};
use super::state_machine::{MessageSink, StateMachine};
use super::storage_worker::{self, StorageJob};
use crate::codec;
use crate::core::{ConfChange, Config, Message, NodeId, RawNode, ReadState, Role, Status, Storage};
use crate::storage::{DiskOptions, DiskStorage, LogStore};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a membership change waits before retrying when another one is in flight.
const BUSY_RETRY: Duration = Duration::from_millis(5);

/// Result of a proposal: the state machine's response bytes.
pub type ProposeResult = Result<Option<Vec<u8>>, Error>;

/// Completes a read-index request.
pub(crate) type ReadDone = Box<dyn FnOnce(Result<u64, Error>) + Send>;

pub(crate) enum Input {
    Step(Message),
    Propose(Vec<u8>, Completion),
    ConfChange(ConfChange, Option<u64>, Completion),
    ReadIndex(ReadDone),
    Transfer(Option<NodeId>, Sender<Result<NodeId, Error>>),
    Status(Sender<Status>),
    AutoPromote(NodeId, u64),
    Persisted(u64, u64, Vec<(crate::core::SnapshotMeta, bool)>),
    Applied(u64),
    Fatal(String),
    Shutdown,
}

/// State shared by the handle and the threads.
pub(crate) struct Shared {
    pub(crate) failed: Mutex<Option<String>>,
    pub(crate) stopped: AtomicBool,
}

impl Shared {
    pub(crate) fn fail(&self, why: String) {
        tracing::error!(%why, "node failed");
        let mut f = self.failed.lock();
        if f.is_none() {
            *f = Some(why);
        }
    }
}

thread_local! {
    static IN_CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` marked as a user callback, so calls that would deadlock are refused.
pub(crate) fn in_callback<R>(f: impl FnOnce() -> R) -> R {
    IN_CALLBACK.with(|c| c.set(true));
    let r = f();
    IN_CALLBACK.with(|c| c.set(false));
    r
}

/// True while running a user callback on an engine thread.
pub fn inside_callback() -> bool {
    IN_CALLBACK.with(|c| c.get())
}

/// A running Raft node. Cheap to share behind an `Arc`; every method is thread-safe.
pub struct Node {
    id: NodeId,
    inbox: Sender<Input>,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    max_msg: usize,
    store: Arc<dyn LogStore>,
}

impl Node {
    /// Starts a node: opens storage (a data directory, or memory), restores the latest
    /// snapshot into `sm`, and starts the Raft, storage and apply threads.
    pub fn start(
        cfg: NodeConfig,
        sm: Box<dyn StateMachine>,
        sink: Arc<dyn MessageSink>,
    ) -> Result<Node, Error> {
        cfg.validate().map_err(Error::Invalid)?;
        let store: Arc<dyn LogStore> = match &cfg.data_dir {
            Some(dir) => Arc::new(
                DiskStorage::open(
                    dir,
                    DiskOptions {
                        fsync: cfg.fsync,
                        bootstrap: cfg.bootstrap.clone(),
                        ..Default::default()
                    },
                )
                .map_err(|e| Error::Storage(e.to_string()))?,
            ),
            None => Arc::new(crate::core::MemStorage::new_with_conf(
                cfg.bootstrap.clone(),
            )),
        };
        Self::start_with_store(cfg, sm, sink, store)
    }

    /// Starts a node over a caller-provided store.
    pub fn start_with_store(
        cfg: NodeConfig,
        mut sm: Box<dyn StateMachine>,
        sink: Arc<dyn MessageSink>,
        store: Arc<dyn LogStore>,
    ) -> Result<Node, Error> {
        cfg.validate().map_err(Error::Invalid)?;
        // Restore the latest snapshot (session table, then user state) before anything else.
        let mut sessions = SessionTable::new(cfg.session_expiry_entries);
        let snap = store.snapshot_meta();
        if snap.index > 0 {
            let (_, mut r) = store
                .open_snapshot()
                .map_err(|e| Error::Storage(e.to_string()))?
                .ok_or_else(|| Error::Storage("snapshot metadata without data".into()))?;
            sessions = super::apply::restore_into(sm.as_mut(), &mut r).map_err(Error::Failed)?;
        }
        let mut core_cfg = Config::new(cfg.id);
        core_cfg.election_ticks = cfg.ticks(cfg.election_timeout);
        core_cfg.heartbeat_ticks = cfg.ticks(cfg.heartbeat_interval);
        core_cfg.pre_vote = cfg.pre_vote;
        core_cfg.check_quorum = cfg.check_quorum;
        core_cfg.max_uncommitted_bytes = cfg.max_uncommitted_bytes;
        core_cfg.max_msg_bytes = cfg.max_msg_bytes;
        core_cfg.applied = snap.index;
        core_cfg.lease_read_max_drift = cfg.lease_reads_max_clock_drift.map(|d| {
            // Round the drift up to whole ticks (a larger margin is the safe direction).
            let tick = cfg.tick.as_micros().max(1);
            d.as_micros().div_ceil(tick) as u64
        });
        core_cfg.seed = cfg.seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ cfg.id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        });
        let raw = RawNode::new(core_cfg, store.clone()).map_err(Error::Invalid)?;
        let shared = Arc::new(Shared {
            failed: Mutex::new(None),
            stopped: AtomicBool::new(false),
        });
        let (in_tx, in_rx) = bounded::<Input>(cfg.inbox_capacity);
        let (st_tx, st_rx) = bounded::<StorageJob>(1024);
        let (ap_tx, ap_rx) = bounded::<ApplyJob>(1024);
        let mut threads = Vec::new();
        let id = cfg.id;
        {
            let (store, sink, in_tx, shared) =
                (store.clone(), sink.clone(), in_tx.clone(), shared.clone());
            threads.push(spawn(
                format!("raft-storage-{id}"),
                shared.clone(),
                in_tx.clone(),
                move || storage_worker::run(store, st_rx, sink, in_tx, shared),
            )?);
        }
        {
            let (store, in_tx, shared) = (store.clone(), in_tx.clone(), shared.clone());
            let policy = apply::SnapshotPolicy {
                every: cfg.snapshot_entries,
                trailing: cfg.snapshot_trailing,
            };
            let conf = store.snapshot_meta();
            threads.push(spawn(
                format!("raft-apply-{id}"),
                shared.clone(),
                in_tx.clone(),
                move || {
                    apply::run(
                        apply::ApplyStart {
                            sm,
                            store,
                            raft: in_tx,
                            shared,
                            policy,
                            snap: conf,
                            sessions,
                        },
                        ap_rx,
                    )
                },
            )?);
        }
        {
            let shared2 = shared.clone();
            let tick = cfg.tick;
            let mut raft = RaftLoop {
                raw,
                inbox: in_rx,
                storage: st_tx,
                apply: ap_tx,
                sink,
                tick,
                pending: BTreeMap::new(),
                reads: HashMap::new(),
                next_read: 1,
                outstanding: 0,
                last_role: Role::Follower,
                auto_promote: HashMap::new(),
                inline_writes: store.durable_on_write(),
                written: store.initial_state().map(|(hs, _)| hs).unwrap_or_default(),
                shared: shared2.clone(),
            };
            threads.push(spawn(
                format!("raft-core-{id}"),
                shared2,
                in_tx.clone(),
                move || raft.run(),
            )?);
        }
        Ok(Node {
            id,
            inbox: in_tx,
            shared,
            threads: Mutex::new(threads),
            max_msg: codec::DEFAULT_MAX_MESSAGE_BYTES,
            store,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    fn check_alive(&self) -> Result<(), Error> {
        if let Some(f) = self.shared.failed.lock().clone() {
            return Err(Error::Failed(f));
        }
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(Error::Shutdown);
        }
        Ok(())
    }

    fn enqueue(&self, input: Input) -> Result<(), Error> {
        self.check_alive()?;
        match self.inbox.try_send(input) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::Busy),
            Err(TrySendError::Disconnected(_)) => Err(Error::Shutdown),
        }
    }

    /// Delivers message bytes received from a peer (any thread). Malformed bytes are
    /// refused with an error and change nothing.
    pub fn step(&self, bytes: &[u8]) -> Result<(), Error> {
        let m = codec::decode(bytes, self.max_msg).map_err(|e| Error::Invalid(e.to_string()))?;
        if m.to != self.id {
            return Err(Error::Invalid(format!(
                "message for node {} delivered to {}",
                m.to, self.id
            )));
        }
        self.enqueue(Input::Step(m))
    }

    /// Delivers a message handed over in process without encoding (see
    /// [`MessageSink::send_message`]). Any thread.
    pub fn step_message(&self, m: Message) -> Result<(), Error> {
        if m.to != self.id {
            return Err(Error::Invalid(format!(
                "message for node {} delivered to {}",
                m.to, self.id
            )));
        }
        self.enqueue(Input::Step(m))
    }

    /// Proposes a command; `done` runs on the apply thread once it is applied here (with the
    /// state machine's response) or on another thread when it fails.
    pub fn propose_async(
        &self,
        command: Vec<u8>,
        done: impl FnOnce(ProposeResult) + Send + 'static,
    ) {
        self.submit(session::encode_plain(&command), Box::new(done));
    }

    /// Proposes a command of client session `client` with sequence number `seq` (exactly
    /// once: a retry of an applied command returns the recorded response without applying
    /// it again). Each client numbers its commands 1, 2, 3, ... and retries with the same
    /// number; a number older than the client's latest is refused.
    pub fn propose_session_async(
        &self,
        client: u64,
        seq: u64,
        command: Vec<u8>,
        done: impl FnOnce(ProposeResult) + Send + 'static,
    ) {
        self.submit(
            session::encode_session(client, seq, &command),
            Box::new(done),
        );
    }

    /// Blocking form of [`Node::propose_session_async`].
    pub fn propose_session(
        &self,
        client: u64,
        seq: u64,
        command: Vec<u8>,
        timeout: Duration,
    ) -> ProposeResult {
        let (tx, rx) = bounded(1);
        self.propose_session_async(client, seq, command, move |r| {
            let _ = tx.send(r);
        });
        wait(&rx, timeout)
    }

    fn submit(&self, command: Vec<u8>, done: Completion) {
        if let Err(e) = self.check_alive() {
            return done(Err(e));
        }
        match self.inbox.try_send(Input::Propose(command, done)) {
            Ok(()) => {}
            Err(TrySendError::Full(Input::Propose(_, d))) => d(Err(Error::Busy)),
            Err(TrySendError::Disconnected(Input::Propose(_, d))) => d(Err(Error::Shutdown)),
            Err(_) => {}
        }
    }

    /// Proposes a command and waits up to `timeout` for its response.
    pub fn propose(&self, command: Vec<u8>, timeout: Duration) -> ProposeResult {
        let (tx, rx) = bounded(1);
        self.propose_async(command, move |r| {
            let _ = tx.send(r);
        });
        wait(&rx, timeout)
    }

    /// Proposes a membership change; `expected` is the configuration id the caller saw
    /// (refused with [`Error::Invalid`] if it moved). Waits until the change is applied; a
    /// change made while another is still in flight waits for that one to commit first, and
    /// gets [`Error::Busy`] (nothing proposed) if it does not within `timeout`.
    pub fn change_membership(
        &self,
        cc: ConfChange,
        expected: Option<u64>,
        timeout: Duration,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let (tx, rx) = bounded(1);
            self.enqueue(Input::ConfChange(
                cc.clone(),
                expected,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            ))?;
            let left = deadline.saturating_duration_since(Instant::now());
            match wait(&rx, left) {
                // Another change is in flight (or the leader is at its admission limit):
                // wait for it to commit, as hashicorp/raft queues changes, then try again.
                Err(Error::Busy) if Instant::now() + BUSY_RETRY < deadline => {
                    std::thread::sleep(BUSY_RETRY)
                }
                r => return r.map(|_| ()),
            }
        }
    }

    /// Adds `id` as a learner (it receives the log but does not vote). With
    /// `auto_promote_lag`, the leader promotes it to voter by itself once its log is within
    /// that many entries of the leader's.
    pub fn add_learner(
        &self,
        id: NodeId,
        auto_promote_lag: Option<u64>,
        timeout: Duration,
    ) -> Result<(), Error> {
        let st = self.status()?;
        if st.conf.contains(id) {
            return Err(Error::Invalid(format!("node {id} is already a member")));
        }
        let mut learners = st.conf.learners.clone();
        learners.push(id);
        let cc = ConfChange::Enter {
            voters: st.conf.voters.clone(),
            learners,
        };
        self.change_membership(cc, Some(st.conf_index), timeout)?;
        if let Some(lag) = auto_promote_lag {
            self.enqueue(Input::AutoPromote(id, lag))?;
        }
        Ok(())
    }

    /// Promotes learner `id` to voter once its log is within `max_lag` entries of the
    /// leader's; [`Error::Timeout`] if it does not catch up within `timeout`.
    pub fn promote_learner(
        &self,
        id: NodeId,
        max_lag: u64,
        timeout: Duration,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status()?;
            if !st.conf.learners.contains(&id) {
                return Err(Error::Invalid(format!("node {id} is not a learner")));
            }
            if st.role != Role::Leader {
                return Err(Error::NotLeader(st.leader));
            }
            let caught_up = st
                .peers
                .iter()
                .any(|p| p.id == id && p.matched + max_lag >= st.last_index);
            if caught_up {
                let left = deadline.saturating_duration_since(Instant::now());
                return self.change_membership(
                    promotion(&st.conf, id),
                    Some(st.conf_index),
                    left.max(Duration::from_millis(100)),
                );
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes `id` from the cluster (it may be this node: a leader hands over first).
    pub fn remove_member(&self, id: NodeId, timeout: Duration) -> Result<(), Error> {
        let st = self.status()?;
        if !st.conf.contains(id) {
            return Err(Error::Invalid(format!("node {id} is not a member")));
        }
        let cc = ConfChange::Enter {
            voters: st
                .conf
                .voters
                .iter()
                .copied()
                .filter(|&v| v != id)
                .collect(),
            learners: st
                .conf
                .learners
                .iter()
                .copied()
                .filter(|&v| v != id)
                .collect(),
        };
        self.change_membership(cc, Some(st.conf_index), timeout)
    }

    /// Returns a linearizable read index once the local state machine has applied it: a
    /// read of local state after this returns is linearizable.
    pub fn read_index(&self, timeout: Duration) -> Result<u64, Error> {
        let (tx, rx) = bounded(1);
        self.enqueue(Input::ReadIndex(Box::new(move |r| {
            let _ = tx.send(r);
        })))?;
        wait(&rx, timeout)
    }

    /// Transfers leadership to `to` (or the most up-to-date voter).
    pub fn transfer_leader(&self, to: Option<NodeId>) -> Result<NodeId, Error> {
        let (tx, rx) = bounded(1);
        self.enqueue(Input::Transfer(to, tx))?;
        wait(&rx, Duration::from_secs(5))
    }

    /// Current status (role, term, leader, indexes, members, per-follower progress).
    pub fn status(&self) -> Result<Status, Error> {
        let (tx, rx) = bounded(1);
        self.enqueue(Input::Status(tx))?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| self.check_alive().err().unwrap_or(Error::Timeout))
    }

    /// The failure that stopped the node, if any.
    pub fn failure(&self) -> Option<String> {
        self.shared.failed.lock().clone()
    }

    /// Stops the node and joins every thread. Idempotent. Refused with
    /// [`Error::WouldDeadlock`] when called from inside a callback.
    pub fn shutdown(&self) -> Result<(), Error> {
        if inside_callback() {
            return Err(Error::WouldDeadlock);
        }
        self.shared.stopped.store(true, Ordering::Release);
        let _ = self
            .inbox
            .send_timeout(Input::Shutdown, Duration::from_millis(100));
        // A store waiting on its embedder must not keep the threads from exiting.
        self.store.close();
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !inside_callback() {
            let _ = self.shutdown();
        }
    }
}

/// The change that moves learner `id` to the voters.
fn promotion(conf: &crate::core::ConfState, id: NodeId) -> ConfChange {
    let mut voters = conf.voters.clone();
    voters.push(id);
    let learners = conf.learners.iter().copied().filter(|&l| l != id).collect();
    ConfChange::Enter { voters, learners }
}

fn wait<T>(rx: &Receiver<Result<T, Error>>, timeout: Duration) -> Result<T, Error> {
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(RecvTimeoutError::Timeout) => Err(Error::Timeout),
        Err(RecvTimeoutError::Disconnected) => Err(Error::Shutdown),
    }
}

fn spawn(
    name: String,
    shared: Arc<Shared>,
    inbox: Sender<Input>,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                shared.fail(format!("thread {name} panicked: {msg}"));
                let _ = inbox.try_send(Input::Fatal(msg));
            }
        })
        .map_err(|e| Error::Failed(format!("cannot spawn thread: {e}")))
}

struct PendingProposal {
    term: u64,
    done: Completion,
}

struct RaftLoop {
    raw: RawNode<Arc<dyn LogStore>>,
    inbox: Receiver<Input>,
    storage: Sender<StorageJob>,
    apply: Sender<ApplyJob>,
    sink: Arc<dyn MessageSink>,
    tick: Duration,
    pending: BTreeMap<u64, PendingProposal>,
    reads: HashMap<u64, ReadDone>,
    next_read: u64,
    outstanding: u64,
    last_role: Role,
    /// Learners to promote once they are within the given lag of the leader's log.
    auto_promote: HashMap<NodeId, u64>,
    /// The store is durable when a write returns (memory): write on this thread.
    inline_writes: bool,
    /// Term and vote last written inline.
    written: crate::core::HardState,
    shared: Arc<Shared>,
}

impl RaftLoop {
    fn run(&mut self) {
        let mut next_tick = Instant::now() + self.tick;
        let mut stop = None;
        while stop.is_none() {
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                next_tick += self.tick;
                if next_tick < now {
                    next_tick = now + self.tick;
                }
            }
            // Busy: take what is queued without reading the clock again; idle: sleep until
            // the next tick.
            let next = match self.inbox.try_recv() {
                Ok(i) => Ok(i),
                Err(crossbeam_channel::TryRecvError::Empty) => self.inbox.recv_deadline(next_tick),
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    Err(RecvTimeoutError::Disconnected)
                }
            };
            match next {
                Ok(i) => {
                    let mut batch = Vec::new();
                    stop = self.handle(i, &mut batch);
                    // Drain what else is queued: many proposals become one append.
                    for _ in 0..4096 {
                        if stop.is_some() {
                            break;
                        }
                        match self.inbox.try_recv() {
                            Ok(i) => stop = self.handle(i, &mut batch),
                            Err(_) => break,
                        }
                    }
                    self.propose_batch(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = Some(Error::Shutdown),
            }
            self.process_ready();
        }
        let why = stop.unwrap_or(Error::Shutdown);
        for (_, p) in std::mem::take(&mut self.pending) {
            (p.done)(Err(why.clone()));
        }
        for (_, r) in self.reads.drain() {
            r(Err(why.clone()));
        }
        // Fail anything still queued.
        while let Ok(i) = self.inbox.try_recv() {
            match i {
                Input::Propose(_, d) | Input::ConfChange(_, _, d) => d(Err(why.clone())),
                Input::ReadIndex(d) => d(Err(why.clone())),
                _ => {}
            }
        }
    }

    fn handle(&mut self, input: Input, batch: &mut Vec<(Vec<u8>, Completion)>) -> Option<Error> {
        match input {
            Input::Step(m) => self.raw.step(m),
            Input::Propose(data, done) => batch.push((data, done)),
            Input::ConfChange(cc, expected, done) => {
                self.propose_batch(std::mem::take(batch));
                match self.raw.propose_conf_change(cc, expected) {
                    Ok(idx) => {
                        let term = self.raw.raft.term;
                        self.pending.insert(idx, PendingProposal { term, done });
                    }
                    Err(e) => done(Err(e.into())),
                }
            }
            Input::ReadIndex(done) => {
                let ctx = self.next_read;
                self.next_read += 1;
                match self.raw.read_index(ctx) {
                    Ok(()) => {
                        self.reads.insert(ctx, done);
                    }
                    Err(e) => done(Err(e.into())),
                }
            }
            Input::Transfer(to, reply) => {
                let _ = reply.send(self.raw.transfer_leader(to).map_err(Error::from));
            }
            Input::Status(reply) => {
                let _ = reply.send(self.raw.status());
            }
            Input::AutoPromote(id, lag) => {
                self.auto_promote.insert(id, lag);
            }
            Input::Persisted(number, jobs, snaps) => {
                self.outstanding -= jobs;
                for (meta, ok) in snaps {
                    self.raw.snapshot_received(&meta, ok);
                }
                self.raw.on_persisted(number);
            }
            Input::Applied(index) => self.raw.on_applied(index),
            Input::Fatal(why) => return Some(Error::Failed(why)),
            Input::Shutdown => return Some(Error::Shutdown),
        }
        None
    }

    fn propose_batch(&mut self, batch: Vec<(Vec<u8>, Completion)>) {
        if batch.is_empty() {
            return;
        }
        let (cmds, dones): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        match self.raw.propose(cmds) {
            Ok(first) => {
                let term = self.raw.raft.term;
                for (i, done) in dones.into_iter().enumerate() {
                    self.pending
                        .insert(first + i as u64, PendingProposal { term, done });
                }
            }
            Err(e) => {
                let e: Error = e.into();
                for d in dones {
                    d(Err(e.clone()));
                }
            }
        }
    }

    /// Leader only: promotes one caught-up learner registered for automatic promotion.
    fn maybe_auto_promote(&mut self) {
        if self.auto_promote.is_empty() || self.raw.raft.role != Role::Leader {
            return;
        }
        let st = self.raw.status();
        let ready = self.auto_promote.iter().find_map(|(&id, &lag)| {
            let p = st.peers.iter().find(|p| p.id == id)?;
            (st.conf.learners.contains(&id) && p.matched + lag >= st.last_index).then_some(id)
        });
        let Some(id) = ready else { return };
        let cc = promotion(&st.conf, id);
        if self
            .raw
            .propose_conf_change(cc, Some(st.conf_index))
            .is_ok()
        {
            tracing::info!(node = id, "learner caught up: promoting to voter");
            self.auto_promote.remove(&id);
        }
    }

    fn process_ready(&mut self) {
        self.maybe_auto_promote();
        while self.raw.has_ready() {
            let rd = self.raw.ready();
            if let Some(ss) = rd.soft_state {
                if self.last_role == Role::Leader && ss.role != Role::Leader {
                    // Leadership lost: outcomes of pending proposals are unknown.
                    for (_, p) in std::mem::take(&mut self.pending) {
                        (p.done)(Err(Error::Dropped));
                    }
                }
                self.last_role = ss.role;
                let _ = self.apply.send(ApplyJob::RoleChange(ss));
            }
            let persist = rd.needs_persist() || !rd.persisted_messages.is_empty();
            for m in rd.messages {
                self.send(m);
            }
            for rs in rd.read_states {
                self.answer_read(rs);
            }
            let job = StorageJob {
                number: rd.number,
                hard_state: rd.hard_state,
                entries: rd.entries,
                chunks: rd.snapshot_chunks,
                messages: rd.persisted_messages,
            };
            if self.inline_writes && self.outstanding == 0 {
                // A memory store is done when the write returns: no storage-thread round
                // trip (and no I/O on this thread).
                if let Err(e) = self.write_inline(job) {
                    self.shared.fail(format!("storage: {e}"));
                    return;
                }
            } else if persist || self.outstanding > 0 {
                self.outstanding += 1;
                if self.storage.send(job).is_err() {
                    self.shared.fail("storage thread stopped".into());
                }
            } else {
                self.raw.on_persisted(rd.number);
            }
            if let Some(meta) = rd.snapshot {
                let _ = self.apply.send(ApplyJob::Restore(meta));
            }
            if !rd.committed_entries.is_empty() {
                let mut items = Vec::with_capacity(rd.committed_entries.len());
                for e in rd.committed_entries {
                    let done = match self.pending.remove(&e.index) {
                        Some(p) if p.term == e.term => Some(p.done),
                        Some(p) => {
                            (p.done)(Err(Error::Dropped));
                            None
                        }
                        None => None,
                    };
                    items.push((e, done));
                }
                if self.apply.send(ApplyJob::Entries(items)).is_err() {
                    self.shared.fail("apply thread stopped".into());
                }
            }
        }
    }

    fn write_inline(&mut self, job: StorageJob) -> Result<(), String> {
        let store = self.raw.raft.log.storage.clone();
        let mut snaps = Vec::new();
        storage_worker::write_job(store.as_ref(), &job, &mut snaps, &mut self.written)?;
        for m in job.messages {
            self.sink.send_message(m);
        }
        for (meta, ok) in snaps {
            self.raw.snapshot_received(&meta, ok);
        }
        self.raw.on_persisted(job.number);
        Ok(())
    }

    fn answer_read(&mut self, rs: ReadState) {
        let Some(done) = self.reads.remove(&rs.ctx) else {
            return;
        };
        match rs.index {
            Some(index) => {
                let _ = self.apply.send(ApplyJob::ReadBarrier(index, done));
            }
            None => done(Err(Error::NotLeader(self.raw.raft.leader))),
        }
    }

    fn send(&self, m: Message) {
        self.sink.send_message(m);
    }
}
