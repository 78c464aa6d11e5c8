//! The `Node` Python class.

use crate::args::{ids_of, parse_peers, resolve, seconds, timeout_of, FOREVER};
use crate::dicts::{metrics_dict, status_dict};
use crate::errors::{stopped_error, to_pyerr, type_error, value_error, FailureCause};
use crate::sink::{self, SenderThread};
use crate::state_machine::PyStateMachine;
use crate::wait::{wait_interruptible, wait_raw};
use crossbeam_channel::bounded;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use raft::core::{ConfChange, NodeId, Status};
use raft::runtime::{Error, MessageSink, Node, NodeConfig, ProposeResult};
use raft::storage::FsyncPolicy;
use raft::transport::{SendClass, TcpTransport, TlsConfig, TransportConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How often a proposal that found no leader looks again (until its timeout).
const LEADER_RETRY: Duration = Duration::from_millis(10);

/// A sink that drops everything (single-node clusters without a transport).
struct NullSink;

impl MessageSink for NullSink {
    fn send(&self, _: NodeId, _: Vec<u8>, _: SendClass) {}
}

/// The running parts; `None` once closed.
struct Running {
    node: Arc<Node>,
    tcp: Option<Arc<TcpTransport>>,
    sender: Option<SenderThread>,
}

/// A Raft node running on its own threads. See the package documentation.
#[pyclass(subclass, weakref, module = "raft_manager._native", name = "Node")]
pub(crate) struct PyNode {
    id: NodeId,
    running: Mutex<Option<Running>>,
    /// The Python objects the engine holds one reference each to (the state machine, a
    /// callback transport), for the garbage collector: a cycle through them (a state
    /// machine that keeps its node) is found and broken by `__clear__`, which stops the node.
    engine_refs: Mutex<Vec<Py<PyAny>>>,
    cause: FailureCause,
    listen: Option<SocketAddr>,
    /// The process that started the node: after `os.fork()` its threads exist only there.
    pid: u32,
}

/// Completes a `concurrent.futures.Future`; if dropped unanswered (the node stopped), fails
/// it with the node's failure or `ShutdownError`.
struct FutureCompletion {
    future: Option<Py<PyAny>>,
    node: Weak<Node>,
    cause: FailureCause,
}

impl FutureCompletion {
    fn complete(&mut self, r: ProposeResult) {
        let Some(fut) = self.future.take() else {
            return;
        };
        let cause = self.cause.clone();
        let _ = Python::try_attach(move |py| {
            let fut = fut.bind(py);
            // A cancelled future refuses results: nothing to do then.
            let res = match r {
                Ok(Some(b)) => fut.call_method1("set_result", (PyBytes::new(py, &b),)),
                Ok(None) => fut.call_method1("set_result", (py.None(),)),
                Err(e) => {
                    let err = to_pyerr(py, e, Some(&cause));
                    fut.call_method1("set_exception", (err.into_value(py),))
                }
            };
            drop(res);
        });
    }
}

impl Drop for FutureCompletion {
    fn drop(&mut self) {
        if self.future.is_some() {
            let failure = self.node.upgrade().and_then(|n| n.failure());
            let e = stopped_error(failure, &self.cause);
            self.complete(Err(e));
        }
    }
}

impl PyNode {
    /// True in a child process forked after the node started.
    fn forked(&self) -> bool {
        std::process::id() != self.pid
    }

    fn forked_error(&self, py: Python<'_>) -> PyErr {
        let msg = format!(
            "node {} was started in process {} and cannot be used after os.fork() (this is {})",
            self.id,
            self.pid,
            std::process::id()
        );
        to_pyerr(py, Error::Failed(msg), None)
    }

    fn running<R>(&self, py: Python<'_>, f: impl FnOnce(&Running) -> R) -> PyResult<R> {
        if self.forked() {
            return Err(self.forked_error(py));
        }
        match &*self.running.lock() {
            Some(r) => Ok(f(r)),
            None => Err(to_pyerr(py, Error::Shutdown, None)),
        }
    }

    fn node(&self, py: Python<'_>) -> PyResult<Arc<Node>> {
        self.running(py, |r| r.node.clone())
    }

    /// Refuses calls that wait for the apply thread when made from inside `apply`.
    fn check_not_in_callback(&self, py: Python<'_>) -> PyResult<()> {
        if crate::state_machine::inside_callback() {
            return Err(self.err(py, Error::WouldDeadlock));
        }
        Ok(())
    }

    fn tcp(&self, py: Python<'_>) -> PyResult<Arc<TcpTransport>> {
        self.running(py, |r| r.tcp.clone())?
            .ok_or_else(|| value_error("addresses are only used with the built-in TCP transport"))
    }

    fn err(&self, py: Python<'_>, e: Error) -> PyErr {
        to_pyerr(py, e, Some(&self.cause))
    }

    /// Runs a blocking engine call on a helper thread and waits for it interruptibly.
    fn blocking<T: Send + 'static>(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
        f: impl FnOnce(&Node, Duration) -> Result<T, Error> + Send + 'static,
    ) -> PyResult<T> {
        let node = self.node(py)?;
        let (tx, rx) = bounded(1);
        let n = node.clone();
        std::thread::Builder::new()
            .name("raft-pycall".into())
            .spawn(crate::logging::inherit(move || {
                let _ = tx.send(f(&n, timeout.unwrap_or(FOREVER)));
            }))
            .map_err(|e| value_error(format!("cannot start helper thread: {e}")))?;
        // The engine enforces the timeout; wait a little longer for its answer.
        let outer = timeout.map(|t| t + Duration::from_millis(500));
        wait_interruptible(py, &rx, outer, &node, &self.cause)
    }

    /// Changes membership to the (voters, learners) `target` computes from a status. With
    /// `expected`, once and only if the configuration id is still `expected`; without it,
    /// compare-and-set on the status read, recomputed when another change lands first.
    fn conf_change(
        &self,
        py: Python<'_>,
        target: impl Fn(&Status) -> PyResult<(Vec<NodeId>, Vec<NodeId>)> + Send + 'static,
        expected: Option<u64>,
        addrs: Vec<(NodeId, String)>,
        timeout: Option<Duration>,
    ) -> PyResult<()> {
        let resolved: Vec<(NodeId, SocketAddr)> = addrs
            .iter()
            .map(|(id, a)| Ok((*id, resolve(a)?)))
            .collect::<PyResult<_>>()?;
        self.check_not_in_callback(py)?;
        if !resolved.is_empty() {
            let tcp = self.tcp(py)?;
            for (id, a) in resolved {
                tcp.add_peer(id, a);
            }
        }
        // A refusal computed by `target` travels back as the Python error it is.
        let refused: Arc<Mutex<Option<PyErr>>> = Arc::default();
        let stash = refused.clone();
        let make = move |st: &Status| match target(st) {
            Ok((voters, learners)) => Ok(ConfChange::Enter { voters, learners }),
            Err(e) => {
                *stash.lock() = Some(e);
                Err(Error::Invalid("refused".into()))
            }
        };
        let r = self.blocking(py, timeout, move |n, t| match expected {
            Some(x) => {
                let cc = make(&n.status()?)?;
                n.change_membership(cc, Some(x), t)
            }
            None => n.change_membership_from(make, t),
        });
        let refusal = refused.lock().take();
        match refusal {
            Some(e) => Err(e),
            None => r,
        }
    }
}

#[pymethods]
impl PyNode {
    #[new]
    #[pyo3(signature = (node_id, peers, state_machine, data_dir=None, *, transport=None,
        listen=None, election_timeout=0.5, heartbeat_interval=0.05, snapshot_entries=100_000,
        fsync=true, cluster_id=0, secret=None, snapshot_trailing=10_000, join=false,
        caller_runs=false, max_command_bytes=33_554_432, max_snapshot_bytes=68_719_476_736,
        tls=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        node_id: NodeId,
        peers: &Bound<'_, PyAny>,
        state_machine: &Bound<'_, PyAny>,
        data_dir: Option<PathBuf>,
        transport: Option<&Bound<'_, PyAny>>,
        listen: Option<String>,
        election_timeout: f64,
        heartbeat_interval: f64,
        snapshot_entries: u64,
        fsync: bool,
        cluster_id: u64,
        secret: Option<&Bound<'_, PyAny>>,
        snapshot_trailing: u64,
        join: bool,
        caller_runs: bool,
        max_command_bytes: usize,
        max_snapshot_bytes: u64,
        tls: Option<(PathBuf, PathBuf, PathBuf)>,
    ) -> PyResult<Self> {
        if node_id == 0 {
            return Err(value_error("node_id must be non-zero"));
        }
        let (mut ids, addrs) = parse_peers(peers)?;
        if join {
            ids.remove(&node_id);
            if ids.is_empty() {
                return Err(value_error(
                    "join=True needs the ids of the existing voters in peers",
                ));
            }
        } else {
            ids.insert(node_id);
        }
        let mut cfg = NodeConfig::new(node_id, ids.iter().copied());
        cfg.election_timeout = seconds("election_timeout", election_timeout)?;
        cfg.heartbeat_interval = seconds("heartbeat_interval", heartbeat_interval)?;
        cfg.tick = cfg.tick.min(cfg.heartbeat_interval);
        cfg.snapshot_entries = snapshot_entries;
        cfg.snapshot_trailing = snapshot_trailing;
        cfg.fsync = if fsync {
            FsyncPolicy::Always
        } else {
            FsyncPolicy::UnsafeNever
        };
        cfg.data_dir = data_dir;
        cfg.cluster_id = cluster_id;
        cfg.caller_runs = caller_runs;
        cfg.max_command_bytes = max_command_bytes;
        cfg.max_snapshot_bytes = max_snapshot_bytes;
        cfg.validate().map_err(value_error)?;
        let cause: FailureCause = Arc::new(Mutex::new(None));
        let sm = PyStateMachine::new(state_machine, cause.clone())?;
        let secret: Option<Vec<u8>> = match secret {
            None => None,
            Some(s) => Some(if let Ok(st) = s.extract::<String>() {
                st.into_bytes()
            } else {
                s.extract::<Vec<u8>>()
                    .map_err(|_| type_error("secret must be bytes or str"))?
            }),
        };

        let node_slot: Arc<OnceLock<Weak<Node>>> = Arc::new(OnceLock::new());
        let mut tcp = None;
        let mut sender = None;
        let mut local = None;
        let sink: Arc<dyn MessageSink> = match transport {
            Some(t) if !t.is_none() => {
                if !t.getattr_opt("send")?.is_some_and(|s| s.is_callable()) {
                    return Err(type_error(
                        "transport must have a callable send(to, message)",
                    ));
                }
                if listen.is_some() || secret.is_some() || tls.is_some() {
                    return Err(value_error(
                        "listen, secret and tls apply only to the built-in TCP transport",
                    ));
                }
                let (s, thread) = sink::start(node_id, t.clone().unbind())?;
                sender = Some(thread);
                Arc::new(s)
            }
            _ => {
                if addrs.is_empty() && listen.is_none() {
                    if ids.len() > 1 || join {
                        return Err(type_error(
                            "peers must be a dict {id: \"host:port\"} unless a transport is given",
                        ));
                    }
                    Arc::new(NullSink)
                } else {
                    let listen_addr = match listen
                        .as_deref()
                        .or(addrs.get(&node_id).map(|s| s.as_str()))
                    {
                        Some(a) => resolve(a)?,
                        None => {
                            return Err(value_error(
                                "listen address required (or list this node in peers)",
                            ))
                        }
                    };
                    let mut tc = TransportConfig::new(node_id, cluster_id, listen_addr);
                    for (&id, a) in &addrs {
                        if id != node_id {
                            tc.peers.insert(id, resolve(a)?);
                        }
                    }
                    for id in &ids {
                        if *id != node_id && !tc.peers.contains_key(id) {
                            return Err(value_error(format!("no address for peer {id}")));
                        }
                    }
                    tc.secret = secret;
                    if let Some((cert, key, ca)) = &tls {
                        let t = TlsConfig::from_files(cert, key, ca)
                            .map_err(|e| value_error(format!("TLS: {e}")))?;
                        tc.tls = Some(t);
                    }
                    let slot = node_slot.clone();
                    let on_message = Arc::new(move |from: u64, bytes: Vec<u8>| {
                        if let Some(n) = slot.get().and_then(|w| w.upgrade()) {
                            if let Err(e) = n.step_from(from, &bytes) {
                                tracing::debug!(from, %e, "dropped a message");
                            }
                        }
                    });
                    let t = py
                        .detach(|| crate::logging::scoped(|| TcpTransport::start(tc, on_message)))
                        .map_err(|e| value_error(format!("cannot listen on {listen_addr}: {e}")))?;
                    local = Some(t.local_addr());
                    let t = Arc::new(t);
                    tcp = Some(t.clone());
                    t
                }
            }
        };
        let started = py.detach(|| crate::logging::scoped(|| Node::start(cfg, Box::new(sm), sink)));
        let node = match started {
            Ok(n) => Arc::new(n),
            Err(e) => {
                if let Some(mut s) = sender {
                    py.detach(|| s.stop());
                }
                if let Some(t) = &tcp {
                    py.detach(|| t.shutdown());
                }
                return Err(to_pyerr(py, e, Some(&cause)));
            }
        };
        let _ = node_slot.set(Arc::downgrade(&node));
        let mut engine_refs = vec![state_machine.clone().unbind()];
        if let (Some(t), Some(_)) = (transport, &sender) {
            engine_refs.push(t.clone().unbind());
        }
        Ok(PyNode {
            id: node_id,
            running: Mutex::new(Some(Running { node, tcp, sender })),
            engine_refs: Mutex::new(engine_refs),
            cause,
            listen: local,
            pid: std::process::id(),
        })
    }

    /// This node's id.
    #[getter]
    fn id(&self) -> NodeId {
        self.id
    }

    /// The bound TCP address ("host:port") with the built-in transport, else None.
    #[getter]
    fn listen_addr(&self) -> Option<String> {
        self.listen.map(|a| a.to_string())
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.running.lock().is_none()
    }

    /// Why the node failed (e.g. the state machine raised), or None.
    #[getter]
    fn failure(&self) -> Option<String> {
        self.running.lock().as_ref().and_then(|r| r.node.failure())
    }

    /// Delivers message bytes from a peer. Raises ValueError on malformed bytes. `sender`
    /// (recommended) is the node id the transport received the bytes from: a message
    /// claiming another sender is refused with ValueError and changes nothing.
    #[pyo3(signature = (message, sender=None))]
    fn step(&self, py: Python<'_>, message: &[u8], sender: Option<u64>) -> PyResult<()> {
        let node = self.node(py)?;
        // Without the GIL: with caller_runs this thread may run a protocol pass.
        py.detach(|| match sender {
            Some(from) => node.step_from(from, message),
            None => node.step(message),
        })
        .map_err(|e| self.err(py, e))
    }

    /// Proposes a command and waits (GIL released) until it is applied on this node; returns
    /// the state machine's response.
    #[pyo3(signature = (command, timeout=None, *, client_id=None, seq=None))]
    fn propose(
        &self,
        py: Python<'_>,
        command: &[u8],
        timeout: Option<f64>,
        client_id: Option<u64>,
        seq: Option<u64>,
    ) -> PyResult<Option<Py<PyBytes>>> {
        let timeout = timeout_of(timeout)?;
        self.check_not_in_callback(py)?;
        let session = match (client_id, seq) {
            (None, None) => None,
            (Some(c), Some(s)) if s > 0 => Some((c, s)),
            _ => {
                return Err(value_error(
                    "client_id and seq go together, and seq counts from 1",
                ))
            }
        };
        let node = self.node(py)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let (tx, rx) = bounded(1);
            let done = move |r| {
                let _ = tx.send(r);
            };
            let command = command.to_vec();
            // The GIL is released while proposing: with caller_runs the Raft step (and a
            // user transport's send) may run on this thread.
            match session {
                None => py.detach(|| node.propose_async(command, done)),
                Some((c, s)) => py.detach(|| node.propose_session_async(c, s, command, done)),
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match wait_raw(py, &rx, left, &node, &self.cause)? {
                Ok(r) => return Ok(r.map(|b| PyBytes::new(py, &b).unbind())),
                // No leader known yet (nothing was proposed): look again until the timeout,
                // as the Rust `Node::propose` does.
                Err(Error::NotLeader(0))
                    if !deadline.is_some_and(|d| Instant::now() + 5 * LEADER_RETRY >= d) =>
                {
                    py.detach(|| std::thread::sleep(LEADER_RETRY));
                    py.check_signals()?;
                }
                Err(e) => return Err(self.err(py, e)),
            }
        }
    }

    /// Proposes a command; returns a `concurrent.futures.Future` completed with the response.
    fn propose_async(&self, py: Python<'_>, command: &[u8]) -> PyResult<Py<PyAny>> {
        let fut = py
            .import("concurrent.futures")?
            .getattr("Future")?
            .call0()?
            .unbind();
        let node = match self.node(py) {
            Ok(n) => n,
            Err(e) => {
                fut.bind(py)
                    .call_method1("set_exception", (e.into_value(py),))?;
                return Ok(fut);
            }
        };
        let mut done = FutureCompletion {
            future: Some(fut.clone_ref(py)),
            node: Arc::downgrade(&node),
            cause: self.cause.clone(),
        };
        let command = command.to_vec();
        py.detach(|| node.propose_async(command, move |r| done.complete(r)));
        Ok(fut)
    }

    /// Waits for a linearizable read point and returns its index: reads of local state after
    /// this returns see every write acknowledged before the call.
    #[pyo3(signature = (timeout=None))]
    fn read_index(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u64> {
        let timeout = timeout_of(timeout)?;
        self.check_not_in_callback(py)?;
        self.blocking(py, timeout, |n, t| n.read_index(t))
    }

    /// Role, term, leader, indexes, membership and (on the leader) every member's progress.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let node = self.node(py)?;
        let s = py.detach(|| node.status()).map_err(|e| self.err(py, e))?;
        status_dict(py, &s)
    }

    /// Every metric by its name (the names of Rust `Node::metrics()`, C `raft_node_metrics`
    /// and the Prometheus export): gauges and counters as ints, labelled counters as dicts
    /// (`raft_dropped_total` by reason, `raft_peer_*_bytes_total` by peer id) and histograms
    /// as dicts with `bounds`, `buckets` (per bucket, the last one above every bound), `sum`
    /// and `count`.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let node = self.node(py)?;
        let m = py.detach(|| node.metrics()).map_err(|e| self.err(py, e))?;
        metrics_dict(py, &m)
    }

    /// Every metric in the Prometheus text exposition format.
    fn metrics_text(&self, py: Python<'_>) -> PyResult<String> {
        let node = self.node(py)?;
        let m = py.detach(|| node.metrics()).map_err(|e| self.err(py, e))?;
        Ok(m.to_prometheus_text())
    }

    /// Adds `node_id` as a learner (non-voting member). Call on the leader.
    #[pyo3(signature = (node_id, addr=None, *, timeout=None))]
    fn add_learner(
        &self,
        py: Python<'_>,
        node_id: NodeId,
        addr: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let addrs = addr.map(|a| vec![(node_id, a)]).unwrap_or_default();
        self.conf_change(
            py,
            move |s| {
                if s.conf.is_voter(node_id) {
                    return Err(value_error(format!("node {node_id} is already a voter")));
                }
                let mut learners = s.conf.learners.clone();
                if !learners.contains(&node_id) {
                    learners.push(node_id);
                }
                Ok((s.conf.voters.clone(), learners))
            },
            None,
            addrs,
            timeout_of(timeout)?,
        )
    }

    /// Promotes learner `node_id` to voter once its log is within `max_lag` entries of the
    /// leader's (waiting up to `timeout` for it to catch up). A node that is not a learner is
    /// refused with ValueError unless `force=True`, which makes it a voter at once without
    /// waiting for it to catch up. Call on the leader.
    #[pyo3(signature = (node_id, addr=None, *, timeout=None, force=false, max_lag=1000))]
    fn add_voter(
        &self,
        py: Python<'_>,
        node_id: NodeId,
        addr: Option<String>,
        timeout: Option<f64>,
        force: bool,
        max_lag: u64,
    ) -> PyResult<()> {
        let addrs = addr.map(|a| vec![(node_id, a)]).unwrap_or_default();
        if !force {
            let timeout = timeout_of(timeout)?;
            let node = self.node(py)?;
            let conf = py
                .detach(|| node.status())
                .map_err(|e| self.err(py, e))?
                .conf;
            if conf.is_voter(node_id) {
                return Ok(());
            }
            if !conf.learners.contains(&node_id) {
                return Err(value_error(format!(
                    "node {node_id} is not a learner: add it with add_learner() and let it \
                     catch up first, or pass force=True to make it a voter at once"
                )));
            }
            self.check_not_in_callback(py)?;
            for (id, a) in addrs {
                let a = resolve(&a)?;
                self.tcp(py)?.add_peer(id, a);
            }
            return self.blocking(py, timeout, move |n, t| {
                n.promote_learner(node_id, max_lag, t)
            });
        }
        self.conf_change(
            py,
            move |s| {
                let mut voters = s.conf.voters.clone();
                if !voters.contains(&node_id) {
                    voters.push(node_id);
                }
                let learners = s
                    .conf
                    .learners
                    .iter()
                    .copied()
                    .filter(|&l| l != node_id)
                    .collect();
                Ok((voters, learners))
            },
            None,
            addrs,
            timeout_of(timeout)?,
        )
    }

    /// Removes `node_id` (voter or learner) from the cluster. Call on the leader.
    #[pyo3(signature = (node_id, *, timeout=None))]
    fn remove(&self, py: Python<'_>, node_id: NodeId, timeout: Option<f64>) -> PyResult<()> {
        self.conf_change(
            py,
            move |s| {
                if !s.conf.contains(node_id) {
                    return Err(value_error(format!("node {node_id} is not a member")));
                }
                let keep = |v: &Vec<NodeId>| v.iter().copied().filter(|&x| x != node_id).collect();
                Ok((keep(&s.conf.voters), keep(&s.conf.learners)))
            },
            None,
            Vec::new(),
            timeout_of(timeout)?,
        )
    }

    /// Moves to the given voters and learners (joint consensus when several voters change).
    /// `expected_conf_id` (see `status()["conf_id"]`) refuses the change if membership moved.
    /// `addrs` gives the TCP addresses of new members.
    #[pyo3(signature = (voters, learners=None, expected_conf_id=None, *, addrs=None, timeout=None))]
    fn change_membership(
        &self,
        py: Python<'_>,
        voters: &Bound<'_, PyAny>,
        learners: Option<&Bound<'_, PyAny>>,
        expected_conf_id: Option<u64>,
        addrs: Option<BTreeMap<NodeId, String>>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let voters = ids_of(voters, "voters")?;
        let learners = match learners {
            Some(l) => ids_of(l, "learners")?,
            None => Vec::new(),
        };
        if voters.is_empty() {
            return Err(value_error("voters must not be empty"));
        }
        self.conf_change(
            py,
            move |_| Ok((voters.clone(), learners.clone())),
            expected_conf_id,
            addrs.unwrap_or_default().into_iter().collect(),
            timeout_of(timeout)?,
        )
    }

    /// Registers (or updates) the TCP address of member `node_id`. With the built-in TCP
    /// transport every member needs the address of every other member: call this on each
    /// existing node when a new member joins.
    fn add_peer(&self, py: Python<'_>, node_id: NodeId, addr: &str) -> PyResult<()> {
        if node_id == 0 {
            return Err(value_error("node ids must be non-zero"));
        }
        let a = resolve(addr)?;
        self.tcp(py)?.add_peer(node_id, a);
        Ok(())
    }

    /// Hands leadership to `to` (or the most up-to-date voter); returns the target's id.
    #[pyo3(signature = (to=None))]
    fn transfer_leader(&self, py: Python<'_>, to: Option<NodeId>) -> PyResult<NodeId> {
        let node = self.node(py)?;
        py.detach(|| node.transfer_leader(to))
            .map_err(|e| self.err(py, e))
    }

    /// Stops the node: pending proposals fail with ShutdownError. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let running = self.running.lock().take();
        if let Some(mut r) = running {
            if self.forked() {
                // The engine threads live in the parent: joining them here is impossible.
                // Forget this copy (the parent still owns and closes the node).
                std::mem::forget(r);
                return Err(self.forked_error(py));
            }
            if crate::state_machine::inside_callback() || crate::sink::inside_send() {
                *self.running.lock() = Some(r);
                return Err(self.err(py, Error::WouldDeadlock));
            }
            py.detach(|| stop_running(&mut r));
            drop(r);
            self.engine_refs.lock().clear();
        }
        Ok(())
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        // Never wait for a lock here; a node being closed is skipped.
        let Some(refs) = self.engine_refs.try_lock() else {
            return Ok(());
        };
        for r in refs.iter() {
            // Once for our own reference and once for the engine's: both belong to this
            // node, so an object reachable only through them is garbage with it.
            visit.call(r)?;
            visit.call(r)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        let running = self.running.get_mut().take();
        if let Some(mut r) = running {
            if crate::state_machine::inside_callback() {
                // Collected on one of the node's own threads: the threads are told to stop
                // and end on their own when the engine is dropped.
                drop(r);
            } else {
                Python::attach(|py| py.detach(|| stop_running(&mut r)));
                drop(r);
            }
        }
        self.engine_refs.get_mut().clear();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { "closed" } else { "running" };
        format!("<raft_manager.Node id={} {state}>", self.id)
    }
}

/// Stops the engine, the TCP transport and the callback sender of a running node.
fn stop_running(r: &mut Running) {
    let _ = r.node.shutdown();
    if let Some(t) = &r.tcp {
        t.shutdown();
    }
    if let Some(s) = r.sender.as_mut() {
        s.stop();
    }
}

impl Drop for PyNode {
    fn drop(&mut self) {
        let Some(mut r) = self.running.get_mut().take() else {
            return;
        };
        if std::process::id() != self.pid {
            std::mem::forget(r); // forked child: the engine threads are the parent's
            return;
        }
        // Dropped while attached: release the GIL so engine threads can finish.
        let done = Python::try_attach(|py| py.detach(|| stop_running(&mut r)));
        if done.is_none() {
            // The interpreter is finalizing: engine threads may wait for it forever, so
            // joining them could hang the process. Leave them (the process is exiting).
            std::mem::forget(r);
        }
    }
}
