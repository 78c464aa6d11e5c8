//! [`Node`]: the core behind three threads. The Raft thread runs protocol logic and timers
//! only; a storage thread writes and fsyncs (group commit) and an apply thread runs the
//! state machine and every user completion. Hand-offs never block (see [`super::driver`]):
//! work is accounted in bytes and refused or paused over budget, so a slow disk or state
//! machine never delays heartbeats and no thread can wait on one that waits on it.

use super::apply::{self, ApplyJob, Completion};
use super::clock::TickClock;
use super::config::NodeConfig;
use super::driver::{self, Control, Driver, Inbox};
use super::error::Error;
use super::raft_loop::{Budgets, LoopStart, RaftLoop};
use super::session::{self, SessionId, SessionTable};
use super::state_machine::{MessageSink, StateMachine};
use super::storage_worker::{self, StorageJob};
use crate::codec;
use crate::core::{ConfChange, Config, Message, NodeId, RawNode, Role, Status, Storage};
use crate::storage::{DiskOptions, DiskStorage, LogStore};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a membership change waits before retrying when another one is in flight.
const BUSY_RETRY: Duration = Duration::from_millis(5);
/// How often a blocking call that found no leader looks again (until its timeout).
const LEADER_RETRY: Duration = Duration::from_millis(10);

/// Result of a proposal: the state machine's response bytes.
pub type ProposeResult = Result<Option<Vec<u8>>, Error>;

/// Completes a read-index request.
pub(crate) type ReadDone = Box<dyn FnOnce(Result<u64, Error>) + Send>;

/// An input from outside the engine to the Raft loop.
pub(crate) enum Input {
    Step(Message),
    Propose(Vec<u8>, Completion),
    ConfChange(ConfChange, Option<u64>, Completion),
    ReadIndex(ReadDone),
    Transfer(Option<NodeId>, Sender<Result<NodeId, Error>>),
    Status(Sender<Status>),
    AutoPromote(NodeId, u64),
}

impl Input {
    /// Payload bytes, for the inbox's byte budget.
    pub(crate) fn payload_bytes(&self) -> usize {
        match self {
            Input::Step(m) => usize::try_from(m.size()).unwrap_or(usize::MAX),
            Input::Propose(d, _) => d.len(),
            _ => 0,
        }
    }
}

/// State shared by the handle and the threads.
pub(crate) struct Shared {
    pub(crate) failed: Mutex<Option<String>>,
    pub(crate) stopped: AtomicBool,
    /// Highest index the state machine has applied (written by the apply thread, read for
    /// status without a wake-up of the Raft thread).
    pub(crate) applied: AtomicU64,
    /// Bytes of committed entries applied so far (the apply budget's other half).
    pub(crate) applied_bytes: AtomicU64,
    /// Set by the Raft loop while it holds entries back; the apply thread wakes it when set.
    pub(crate) apply_paused: AtomicBool,
    /// Bytes queued in the inbox.
    pub(crate) inbox_bytes: AtomicUsize,
    /// Counters and histograms (see [`super::metrics`]).
    pub(crate) metrics: super::metrics::Metrics,
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
    inbox: Inbox,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    max_msg: usize,
    max_command: usize,
    store: Arc<dyn LogStore>,
    session_expiry: u64,
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
                        cluster_id: Some(cfg.cluster_id),
                        node_id: Some(cfg.id),
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
        let mut sessions = SessionTable::new();
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
        // The leader fills its window to a lagging follower at once: keep the window within
        // what a follower (same configuration) queues, or the excess is dropped and resent.
        core_cfg.max_inflight_bytes = (cfg.storage_queue_bytes / 2)
            .min(cfg.inbox_bytes as u64 / 2)
            .max(cfg.max_msg_bytes);
        core_cfg.max_snapshot_bytes = cfg.max_snapshot_bytes;
        core_cfg.applied = snap.index;
        core_cfg.incarnation = store.incarnation();
        core_cfg.peer_incarnations = store.peer_incarnations();
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
        let incarnation = core_cfg.seed.rotate_left(17) ^ core_cfg.seed;
        let election_ticks = core_cfg.election_ticks;
        let raw = RawNode::new(core_cfg, store.clone()).map_err(Error::Invalid)?;
        let shared = Arc::new(Shared {
            failed: Mutex::new(None),
            stopped: AtomicBool::new(false),
            applied: AtomicU64::new(0),
            applied_bytes: AtomicU64::new(0),
            apply_paused: AtomicBool::new(false),
            inbox_bytes: AtomicUsize::new(0),
            metrics: Default::default(),
        });
        let (in_tx, ctl_tx, queues) = driver::queues();
        let (st_tx, st_rx) = crossbeam_channel::unbounded::<StorageJob>();
        let (ap_tx, ap_rx) = crossbeam_channel::unbounded::<ApplyJob>();
        let id = cfg.id;
        let lp = RaftLoop::new(LoopStart {
            raw,
            queues,
            storage: st_tx,
            apply: ap_tx,
            sink: sink.clone(),
            shared: shared.clone(),
            clock: TickClock::new(Instant::now(), cfg.tick, election_ticks.saturating_mul(2)),
            budgets: Budgets {
                storage_bytes: cfg.storage_queue_bytes,
                apply_bytes: cfg.apply_queue_bytes,
            },
            incarnation,
            auto_rejoin: cfg.auto_rejoin,
        });
        let inbox = Driver::start(lp, in_tx, ctl_tx, cfg.caller_runs, cfg.inbox_bytes);
        let driver = Driver::of(&inbox);
        let mut threads = Vec::new();
        let spawned = (|| {
            {
                let (store, sink, inbox, shared) =
                    (store.clone(), sink.clone(), inbox.clone(), shared.clone());
                threads.push(spawn(
                    format!("raft-storage-{id}"),
                    shared.clone(),
                    inbox.clone(),
                    move || storage_worker::run(store, st_rx, sink, inbox, shared),
                )?);
            }
            {
                let (store, inbox, shared) = (store.clone(), inbox.clone(), shared.clone());
                let policy = apply::SnapshotPolicy {
                    every: cfg.snapshot_entries,
                    trailing: cfg.snapshot_trailing,
                };
                let conf = store.snapshot_meta();
                threads.push(spawn(
                    format!("raft-apply-{id}"),
                    shared.clone(),
                    inbox.clone(),
                    move || {
                        apply::run(
                            apply::ApplyStart {
                                sm,
                                store,
                                raft: inbox,
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
            let d = driver.clone();
            threads.push(spawn(
                format!("raft-core-{id}"),
                shared.clone(),
                inbox.clone(),
                move || d.run_raft_thread(),
            )?);
            Ok(())
        })();
        if let Err(e) = spawned {
            // Without a Raft thread nothing would ever stop the others.
            driver.abandon();
            for t in threads {
                let _ = t.join();
            }
            return Err(e);
        }
        Ok(Node {
            id,
            inbox,
            shared,
            threads: Mutex::new(threads),
            max_msg: codec::DEFAULT_MAX_MESSAGE_BYTES,
            max_command: cfg.max_command_bytes,
            store,
            session_expiry: cfg.session_expiry_entries,
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
        self.inbox.try_send(input).map_err(|(_, e)| e)
    }

    /// Delivers message bytes received from a peer (any thread). Malformed bytes are
    /// refused with an error and change nothing.
    pub fn step(&self, bytes: &[u8]) -> Result<(), Error> {
        let mut from = None;
        let r = codec::decode(bytes, self.max_msg)
            .map_err(|e| Error::Invalid(e.to_string()))
            .and_then(|m| {
                from = Some(m.from);
                self.step_message(m)
            });
        self.count_step(from, bytes.len(), &r);
        r
    }

    fn count_step(&self, from: Option<NodeId>, len: usize, r: &Result<(), Error>) {
        let invalid = matches!(r, Err(Error::Invalid(_)));
        self.shared.metrics.on_step(from, len, r.is_ok(), invalid);
    }

    /// Like [`Node::step`], for transports that know who sent the bytes: `from` is the
    /// sender the transport authenticated (or the in-process sender). A message claiming
    /// another sender is refused with [`Error::Invalid`] and changes nothing, so one peer
    /// cannot forge votes or acknowledgements "from" another.
    pub fn step_from(&self, from: NodeId, bytes: &[u8]) -> Result<(), Error> {
        let r = codec::decode(bytes, self.max_msg)
            .map_err(|e| Error::Invalid(e.to_string()))
            .and_then(|m| {
                if m.from != from {
                    return Err(Error::Invalid(format!(
                        "message claims sender {} but came from {from}",
                        m.from
                    )));
                }
                self.step_message(m)
            });
        self.count_step(Some(from), bytes.len(), &r);
        r
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
        if let Err(e) = self.check_size(command.len()) {
            return done(Err(e));
        }
        self.submit(session::encode_plain(&command), Box::new(done));
    }

    /// The configured [`NodeConfig::max_command_bytes`].
    pub fn max_command_bytes(&self) -> usize {
        self.max_command
    }

    /// Refuses a command above [`NodeConfig::max_command_bytes`] with [`Error::TooLarge`].
    pub fn check_size(&self, len: usize) -> Result<(), Error> {
        if len > self.max_command {
            self.shared
                .metrics
                .on_drop(super::metrics::DropReason::TooLarge);
            return Err(Error::TooLarge {
                len,
                max: self.max_command,
            });
        }
        Ok(())
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
        if let Err(e) = self.check_size(command.len()) {
            return done(Err(e));
        }
        let s = SessionId {
            client,
            seq,
            expiry: self.session_expiry,
        };
        self.submit(session::encode_session(s, &command), Box::new(done));
    }

    /// Blocking form of [`Node::propose_session_async`].
    pub fn propose_session(
        &self,
        client: u64,
        seq: u64,
        command: Vec<u8>,
        timeout: Duration,
    ) -> ProposeResult {
        self.check_size(command.len())?;
        until_leader(timeout, |left| {
            let (tx, rx) = bounded(1);
            let done = move |r| {
                let _ = tx.send(r);
            };
            let s = SessionId {
                client,
                seq,
                expiry: self.session_expiry,
            };
            self.submit(session::encode_session(s, &command), Box::new(done));
            wait(&rx, left)
        })
    }

    fn submit(&self, command: Vec<u8>, done: Completion) {
        if let Err(e) = self.check_alive() {
            return done(Err(e));
        }
        if let Err((Input::Propose(_, d), e)) = self.inbox.try_send(Input::Propose(command, done)) {
            d(Err(e));
        }
    }

    /// Proposes a command and waits up to `timeout` for its response. While no leader is
    /// known (a cluster that is still electing one, a node that just joined), it keeps
    /// trying until `timeout` and then returns [`Error::NotLeader`]`(0)`; a follower that
    /// knows the leader answers [`Error::NotLeader`] with its id at once. [`Error::Dropped`]
    /// means leadership was lost before commit: the outcome is unknown.
    pub fn propose(&self, command: Vec<u8>, timeout: Duration) -> ProposeResult {
        self.check_size(command.len())?;
        until_leader(timeout, |left| {
            let (tx, rx) = bounded(1);
            let done = move |r| {
                let _ = tx.send(r);
            };
            self.submit(session::encode_plain(&command), Box::new(done));
            wait(&rx, left)
        })
    }

    /// Proposes a membership change; `expected` is the configuration id the caller saw
    /// (refused with [`Error::ConfMoved`] if it moved). Waits until the change is applied; a
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
        self.change_membership_from(
            |st| {
                if st.conf.contains(id) {
                    return Err(Error::Invalid(format!("node {id} is already a member")));
                }
                let mut learners = st.conf.learners.clone();
                learners.push(id);
                Ok(ConfChange::Enter {
                    voters: st.conf.voters.clone(),
                    learners,
                })
            },
            timeout,
        )?;
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
                match self.change_membership(
                    promotion(&st.conf, id),
                    Some(st.conf_index),
                    left.max(Duration::from_millis(100)),
                ) {
                    // Another change landed meanwhile: look again.
                    Err(Error::ConfMoved { .. }) if Instant::now() < deadline => {}
                    r => return r,
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes `id` from the cluster (it may be this node: a leader hands over first).
    pub fn remove_member(&self, id: NodeId, timeout: Duration) -> Result<(), Error> {
        self.change_membership_from(
            |st| {
                if !st.conf.contains(id) {
                    return Err(Error::Invalid(format!("node {id} is not a member")));
                }
                let keep = |ids: &[NodeId]| ids.iter().copied().filter(|&v| v != id).collect();
                Ok(ConfChange::Enter {
                    voters: keep(&st.conf.voters),
                    learners: keep(&st.conf.learners),
                })
            },
            timeout,
        )
    }

    /// Makes the change `make` computes from the current status, compare-and-set on that
    /// status's configuration id; if another change lands first ([`Error::ConfMoved`]), calls
    /// `make` again on a fresh status, until `timeout`. An error from `make` is returned as is.
    pub fn change_membership_from(
        &self,
        make: impl Fn(&Status) -> Result<ConfChange, Error>,
        timeout: Duration,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status()?;
            let cc = make(&st)?;
            let left = deadline.saturating_duration_since(Instant::now());
            match self.change_membership(cc, Some(st.conf_index), left) {
                Err(Error::ConfMoved { .. }) if Instant::now() + BUSY_RETRY < deadline => {
                    std::thread::sleep(BUSY_RETRY)
                }
                r => return r,
            }
        }
    }

    /// Returns a linearizable read index once the local state machine has applied it: a
    /// read of local state after this returns is linearizable. The index is a log index:
    /// it counts the leader's no-op entries and configuration changes, which are applied
    /// by the runtime but never reach [`StateMachine::apply`], so a state machine that
    /// counts its own commands must not wait for its counter to reach it. While no leader
    /// is known it keeps trying until `timeout`, then returns [`Error::NotLeader`]`(0)`.
    pub fn read_index(&self, timeout: Duration) -> Result<u64, Error> {
        self.shared.metrics.reads.fetch_add(1, Ordering::Relaxed);
        let r = until_leader(timeout, |left| {
            let (tx, rx) = bounded(1);
            self.enqueue(Input::ReadIndex(Box::new(move |r| {
                let _ = tx.send(r);
            })))?;
            wait(&rx, left)
        });
        match r {
            // The deadline passed while the read waited for a leader: say so (a read has no
            // side effect, so nothing is hidden by it).
            Err(Error::Timeout) if self.status().is_ok_and(|s| s.leader == 0) => {
                Err(Error::NotLeader(0))
            }
            r => r,
        }
    }

    /// Asynchronous [`Node::read_index`]: `done` runs on the apply thread once the local
    /// state machine has applied the read index (or with the error; a read that finds no
    /// leader for two election timeouts fails with [`Error::NotLeader`]). A refusal at once
    /// (`Busy`, `Shutdown`, failed node) runs `done` on the calling thread.
    pub fn read_index_async(&self, done: impl FnOnce(Result<u64, Error>) + Send + 'static) {
        if let Err(e) = self.check_alive() {
            return done(Err(e));
        }
        if let Err((Input::ReadIndex(d), e)) = self.inbox.try_send(Input::ReadIndex(Box::new(done)))
        {
            d(Err(e));
        }
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

    /// Current metrics: the gauges of [`Node::status`] plus counters and histograms (names in
    /// docs/OBSERVABILITY.md, shared with C `raft_node_metrics_text` and Python
    /// `Node.metrics()`).
    pub fn metrics(&self) -> Result<super::metrics::NodeMetrics, Error> {
        let s = self.status()?;
        Ok(self.shared.metrics.snapshot(&s))
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
        self.stop_threads();
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
        Ok(())
    }
}

impl Node {
    /// Tells every thread to stop, without waiting.
    fn stop_threads(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.inbox.control(Control::Shutdown);
        // A store waiting on its embedder must not keep the threads from exiting.
        self.store.close();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if inside_callback() {
            // Dropped inside one of its own callbacks: joining would wait on this very
            // thread. The threads are told to stop and end on their own.
            self.stop_threads();
        } else {
            let _ = self.shutdown();
        }
    }
}

/// The change that moves learner `id` to the voters.
pub(crate) fn promotion(conf: &crate::core::ConfState, id: NodeId) -> ConfChange {
    let mut voters = conf.voters.clone();
    voters.push(id);
    let learners = conf.learners.iter().copied().filter(|&l| l != id).collect();
    ConfChange::Enter { voters, learners }
}

/// The change that moves voter `id` to the learners.
pub(crate) fn demotion(conf: &crate::core::ConfState, id: NodeId) -> ConfChange {
    let voters = conf.voters.iter().copied().filter(|&v| v != id).collect();
    let mut learners = conf.learners.clone();
    learners.push(id);
    ConfChange::Enter { voters, learners }
}

/// Runs `call` with the time left until it returns something other than "no leader
/// known" ([`Error::NotLeader`]`(0)`: nothing was proposed or asked) or `timeout` passes.
fn until_leader<T>(
    timeout: Duration,
    mut call: impl FnMut(Duration) -> Result<T, Error>,
) -> Result<T, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match call(left) {
            // Another attempt only if it has time to get its answer: the last one must not
            // turn "no leader" into a timeout of its own making.
            Err(Error::NotLeader(0)) if Instant::now() + 5 * LEADER_RETRY < deadline => {
                std::thread::sleep(LEADER_RETRY)
            }
            r => return r,
        }
    }
}

fn wait<T>(rx: &Receiver<Result<T, Error>>, timeout: Duration) -> Result<T, Error> {
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(RecvTimeoutError::Timeout) => Err(Error::Timeout),
        Err(RecvTimeoutError::Disconnected) => Err(Error::Shutdown),
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

fn spawn(
    name: String,
    shared: Arc<Shared>,
    inbox: Inbox,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(crate::log_scope::inherit(move || {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                let msg = panic_message(p.as_ref());
                shared.fail(format!("thread {name} panicked: {msg}"));
                inbox.control(Control::Fatal(msg));
            }
        }))
        .map_err(|e| Error::Failed(format!("cannot spawn thread: {e}")))
}
