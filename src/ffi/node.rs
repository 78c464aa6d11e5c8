//! `raft_node`: starting, driving, inspecting and stopping a node.

use super::buf::{raft_buf, with_reader, with_writer};
use super::config::{Callbacks, ConfigData, Userdata};
use super::handle::{self, Object};
use super::{
    boundary, bytes_arg, callback_scope, fail, from_error, in_user_callback, raft_status, slice_arg,
};
use crate::core::{ConfChange, ConfState, Entry, HardState, SnapshotMeta};
use crate::core::{NodeId, Role};
use crate::runtime::{Committed, MessageSink, Node, NodeConfig, StateMachine};
use crate::storage::{ExternalStore, FsyncPolicy, LogStore, Persister};
use crate::transport::{SendClass, TcpTransport, TransportConfig};
use parking_lot::RwLock;
use std::collections::BTreeSet;
use std::ffi::{c_int, c_void};
use std::io::{Read, Write};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Opaque handle of a running node. All `raft_node_*` functions are thread-safe.
pub struct raft_node {
    _private: [u8; 0],
}

/// A node's role.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum raft_role {
    /// Follows a leader (or waits for one).
    Follower = 0,
    /// Collecting pre-votes.
    PreCandidate = 1,
    /// Collecting votes.
    Candidate = 2,
    /// Leads the cluster.
    Leader = 3,
}

impl From<Role> for raft_role {
    fn from(r: Role) -> Self {
        match r {
            Role::Follower => raft_role::Follower,
            Role::PreCandidate => raft_role::PreCandidate,
            Role::Candidate => raft_role::Candidate,
            Role::Leader => raft_role::Leader,
        }
    }
}

/// Voter ids reported inline by [`raft_node_status`]; use [`raft_node_voters`] for more.
pub const RAFT_STATUS_MAX_VOTERS: usize = 16;

/// A snapshot of a node's state, filled by [`raft_node_status`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct raft_node_status_info {
    /// This node's id.
    pub id: u64,
    /// Current role.
    pub role: raft_role,
    /// Current term.
    pub term: u64,
    /// Known leader (0 if unknown).
    pub leader: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// Number of voters in the configuration in force (may exceed
    /// `RAFT_STATUS_MAX_VOTERS`).
    pub voter_count: usize,
    /// The first `min(voter_count, RAFT_STATUS_MAX_VOTERS)` voter ids, ascending.
    pub voters: [u64; RAFT_STATUS_MAX_VOTERS],
}

/// Completion of [`raft_node_propose_async`]: `status` is `RAFT_STATUS_OK` with the state
/// machine's response (borrowed for the call; NULL/0 when none) once applied on this node,
/// or an error. Runs exactly once: on the apply thread on success, otherwise on an engine
/// thread or the proposing thread (before `raft_node_propose_async` returns).
pub type raft_propose_callback = Option<
    unsafe extern "C" fn(
        cb_userdata: *mut c_void,
        status: raft_status,
        response: *const u8,
        response_len: usize,
    ),
>;

/// What a `raft_node` handle owns.
pub(crate) struct NodeObj {
    pub(crate) node: Arc<Node>,
    store: Option<Arc<ExternalStore>>,
    transport: Option<Arc<TcpTransport>>,
    _userdata: Arc<Userdata>,
}

impl NodeObj {
    fn shutdown(&self) -> Result<(), crate::runtime::Error> {
        self.node.shutdown()?;
        if let Some(t) = &self.transport {
            t.shutdown();
        }
        Ok(())
    }
}

struct CSink {
    send: unsafe extern "C" fn(*mut c_void, u64, *const u8, usize),
    userdata: Arc<Userdata>,
}

impl MessageSink for CSink {
    fn send(&self, to: NodeId, bytes: Vec<u8>, _class: SendClass) {
        // SAFETY: the user's callback with the user's userdata and borrowed bytes.
        callback_scope(|| unsafe {
            (self.send)(self.userdata.ptr, to, bytes.as_ptr(), bytes.len())
        });
    }
}

struct CPersister {
    persist: unsafe extern "C" fn(
        *mut c_void,
        u64,
        *const super::raft_hard_state,
        u64,
        *const super::raft_entry,
        usize,
    ),
    persist_snapshot:
        unsafe extern "C" fn(*mut c_void, u64, u64, u64, *const u8, usize, *const u8, usize, bool),
    userdata: Arc<Userdata>,
}

fn ptr_or_null(b: &[u8]) -> *const u8 {
    if b.is_empty() {
        std::ptr::null()
    } else {
        b.as_ptr()
    }
}

impl Persister for CPersister {
    fn persist(
        &self,
        token: u64,
        hard_state: Option<HardState>,
        first_index_replaced: Option<u64>,
        entries: &[Entry],
    ) {
        let ces: Vec<super::raft_entry> = entries
            .iter()
            .map(|e| super::raft_entry {
                term: e.term,
                index: e.index,
                kind: e.kind as u8,
                data: ptr_or_null(&e.data),
                len: e.data.len(),
            })
            .collect();
        let hs = hard_state.map(|h| super::raft_hard_state {
            term: h.term,
            vote: h.vote,
            commit: h.commit,
        });
        let hs_ptr = hs
            .as_ref()
            .map_or(std::ptr::null(), |h| h as *const super::raft_hard_state);
        let ents = if ces.is_empty() {
            std::ptr::null()
        } else {
            ces.as_ptr()
        };
        // SAFETY: the user's callback; every pointer stays valid for the call.
        callback_scope(|| unsafe {
            (self.persist)(
                self.userdata.ptr,
                token,
                hs_ptr,
                first_index_replaced.unwrap_or(0),
                ents,
                ces.len(),
            )
        });
    }

    fn persist_snapshot(&self, token: u64, meta: &SnapshotMeta, data: &[u8], keep_log: bool) {
        let mb = postcard::to_allocvec(meta).unwrap_or_default();
        // SAFETY: the user's callback; the buffers stay valid for the call.
        callback_scope(|| unsafe {
            (self.persist_snapshot)(
                self.userdata.ptr,
                token,
                meta.index,
                meta.term,
                mb.as_ptr(),
                mb.len(),
                ptr_or_null(data),
                data.len(),
                keep_log,
            )
        });
    }
}

struct CMachine {
    cb: Callbacks,
    userdata: Arc<Userdata>,
}

impl StateMachine for CMachine {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let apply = self.cb.apply.ok_or("no apply callback")?;
        let mut out = Vec::with_capacity(batch.len());
        for c in batch {
            let mut buf = raft_buf::from_vec(Vec::new());
            // SAFETY: the user's callback; `buf` is a valid empty library buffer.
            let rc = callback_scope(|| unsafe {
                apply(
                    self.userdata.ptr,
                    c.index,
                    c.data.as_ptr(),
                    c.data.len(),
                    &mut buf,
                )
            });
            // SAFETY: only `raft_buf_set` may have filled it.
            let resp = unsafe { buf.take() };
            if rc != 0 {
                return Err(format!("apply callback returned {rc} at index {}", c.index));
            }
            out.push(resp);
        }
        Ok(out)
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        let Some(snapshot) = self.cb.snapshot else {
            return Ok(());
        };
        let ud = self.userdata.ptr;
        // SAFETY: the user's callback with a writer valid for its duration.
        let rc = with_writer(out, |w| callback_scope(|| unsafe { snapshot(ud, w) }));
        if rc != 0 {
            return Err(format!("snapshot callback returned {rc}"));
        }
        Ok(())
    }

    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let Some(restore) = self.cb.restore else {
            return Ok(());
        };
        let ud = self.userdata.ptr;
        // SAFETY: the user's callback with a reader valid for its duration.
        let rc = with_reader(input, |r| callback_scope(|| unsafe { restore(ud, r) }));
        if rc != 0 {
            return Err(format!("restore callback returned {rc}"));
        }
        Ok(())
    }

    fn on_role_change(&mut self, role: Role, term: u64, leader: NodeId) {
        if let Some(f) = self.cb.role_change {
            let role = raft_role::from(role);
            // SAFETY: the user's callback.
            callback_scope(|| unsafe { f(self.userdata.ptr, role, term, leader) });
        }
    }
}

fn node_config(c: &ConfigData) -> NodeConfig {
    let d = &c.data;
    let mut nc = NodeConfig::new(d.id, d.voters.iter().copied());
    if let Some(ms) = d.election_timeout_ms {
        nc.election_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = d.heartbeat_ms {
        nc.heartbeat_interval = Duration::from_millis(ms);
    }
    nc.tick = nc.tick.min(nc.heartbeat_interval);
    nc.data_dir = d.data_dir.clone();
    nc.cluster_id = d.cluster_id;
    if d.unsafe_no_fsync {
        nc.fsync = FsyncPolicy::UnsafeNever;
    }
    nc.caller_runs = d.caller_runs;
    if let Some(n) = d.max_command_bytes {
        nc.max_command_bytes = n;
    }
    if let Some(n) = d.max_snapshot_bytes {
        nc.max_snapshot_bytes = n;
    }
    if let Some(n) = d.snapshot_entries {
        nc.snapshot_entries = n;
        nc.snapshot_trailing = nc.snapshot_trailing.min(n);
    }
    if d.callbacks.snapshot.is_none() {
        nc.snapshot_entries = 0;
    }
    nc
}

/// The custom store of a node started with storage callbacks.
fn external_store(c: &ConfigData) -> Option<Arc<ExternalStore>> {
    let cb = &c.data.callbacks;
    let (persist, persist_snapshot) = (cb.persist?, cb.persist_snapshot?);
    let mem = c
        .data
        .loaded
        .to_mem(ConfState::with_voters(c.data.voters.iter().copied()));
    let p = Arc::new(CPersister {
        persist,
        persist_snapshot,
        userdata: c.userdata.clone(),
    });
    Some(Arc::new(ExternalStore::new(mem, p)))
}

fn start_node(
    nc: NodeConfig,
    sm: Box<dyn StateMachine>,
    sink: Arc<dyn MessageSink>,
    store: &Option<Arc<ExternalStore>>,
) -> Result<Node, crate::runtime::Error> {
    match store {
        Some(s) => Node::start_with_store(nc, sm, sink, s.clone() as Arc<dyn LogStore>),
        None => Node::start(nc, sm, sink),
    }
}

fn start(c: &ConfigData) -> Result<NodeObj, raft_status> {
    let nc = node_config(c);
    let store = external_store(c);
    let sm = Box::new(CMachine {
        cb: c.data.callbacks,
        userdata: c.userdata.clone(),
    });
    let (node, transport) = match c.data.listen {
        Some(listen) => {
            let mut tc = TransportConfig::new(c.data.id, c.data.cluster_id, listen);
            tc.peers = c.data.peers.clone();
            tc.peers.remove(&c.data.id);
            tc.secret = c.data.secret.clone();
            tc.tls = c.data.tls.clone();
            let target: Arc<RwLock<Weak<Node>>> = Arc::new(RwLock::new(Weak::new()));
            let t2 = target.clone();
            let on_message = Arc::new(move |from: u64, bytes: Vec<u8>| {
                let node = t2.read().upgrade();
                if let Some(n) = node {
                    if let Err(e) = n.step_from(from, &bytes) {
                        tracing::debug!(%e, "dropped an inbound message");
                    }
                }
            });
            let t = TcpTransport::start(tc, on_message).map_err(|e| {
                fail(
                    raft_status::Failed,
                    format!("cannot start the TCP transport: {e}"),
                )
            })?;
            let t = Arc::new(t);
            let node = match start_node(nc, sm, t.clone(), &store) {
                Ok(n) => Arc::new(n),
                Err(e) => {
                    t.shutdown();
                    return Err(from_error(e));
                }
            };
            *target.write() = Arc::downgrade(&node);
            (node, Some(t))
        }
        None => {
            let send = c
                .data
                .callbacks
                .send
                .ok_or_else(|| fail(raft_status::InvalidArgument, "no send callback"))?;
            let sink = Arc::new(CSink {
                send,
                userdata: c.userdata.clone(),
            });
            (
                Arc::new(start_node(nc, sm, sink, &store).map_err(from_error)?),
                None,
            )
        }
    };
    Ok(NodeObj {
        node,
        store,
        transport,
        _userdata: c.userdata.clone(),
    })
}

/// Starts a node from `config` (which stays valid) and writes its handle to `*out_node`:
/// opens storage, restores the latest snapshot (restore callback on this thread) and
/// starts the engine threads (and the TCP transport when a listen address is set).
/// Errors: `RAFT_STATUS_STORAGE` (data directory), `RAFT_STATUS_FAILED` (transport bind,
/// restore), `RAFT_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn raft_node_start(
    config: *const super::raft_config,
    out_node: *mut *mut raft_node,
) -> raft_status {
    boundary(|| {
        if out_node.is_null() {
            return fail(raft_status::NullArgument, "out_node is NULL");
        }
        let cfg = match handle::config(config as usize) {
            Ok(c) => c,
            Err(s) => return s,
        };
        let obj = match start(&cfg) {
            Ok(o) => Arc::new(o),
            Err(s) => return s,
        };
        match handle::insert(Object::Node(obj.clone())) {
            Ok(h) => {
                // SAFETY: checked non-NULL.
                unsafe { *out_node = h as *mut raft_node };
                raft_status::Ok
            }
            Err(s) => {
                let _ = obj.shutdown();
                s
            }
        }
    })
}

pub(crate) fn with_node(
    node: *const raft_node,
    blocking: bool,
    f: impl FnOnce(&NodeObj) -> raft_status,
) -> raft_status {
    boundary(|| {
        let n = match handle::node(node as usize) {
            Ok(n) => n,
            Err(s) => return s,
        };
        if blocking && in_user_callback() {
            return fail(
                raft_status::WouldDeadlock,
                "blocking call from inside a callback",
            );
        }
        f(&n)
    })
}

/// Completes the custom-storage write `token` (from [`raft_persist_callback`](super::raft_persist_callback) or
/// [`raft_persist_snapshot_callback`](super::raft_persist_snapshot_callback)): `ok` non-zero
/// once the write is durable — never before — or zero if it failed, which fails the node
/// (it stops with `RAFT_STATUS_FAILED`; there is no retry). Any thread, including inside
/// the persist callback itself (the write then completes at once). Errors:
/// `RAFT_STATUS_INVALID_ARGUMENT` when the node has no storage callbacks or `token` is not
/// outstanding (already completed, unknown, or abandoned because the node shut down).
#[no_mangle]
pub extern "C" fn raft_node_persisted(
    node: *const raft_node,
    token: u64,
    ok: c_int,
) -> raft_status {
    with_node(node, false, |n| match &n.store {
        None => fail(
            raft_status::InvalidArgument,
            "the node has no storage callbacks",
        ),
        Some(s) => {
            if s.persisted(token, ok != 0) {
                raft_status::Ok
            } else {
                fail(
                    raft_status::InvalidArgument,
                    format!("write {token} is not outstanding"),
                )
            }
        }
    })
}

/// Delivers message bytes (copied) received from a peer. Any thread, including inside
/// callbacks. Undecodable bytes or bytes for another node give
/// `RAFT_STATUS_INVALID_ARGUMENT` and change nothing; `RAFT_STATUS_BUSY` when the inbound
/// queue is full (the message may be dropped).
#[no_mangle]
pub unsafe extern "C" fn raft_node_step(
    node: *const raft_node,
    data: *const u8,
    len: usize,
) -> raft_status {
    // SAFETY: `data` holds `len` bytes per contract.
    unsafe { step_with(node, data, len, |n, bytes| n.step(bytes)) }
}

/// Shared body of `raft_node_step` and `raft_node_step_from`.
///
/// # Safety
/// `data` holds `len` bytes (checked non-NULL here).
unsafe fn step_with(
    node: *const raft_node,
    data: *const u8,
    len: usize,
    step: impl FnOnce(&Node, &[u8]) -> Result<(), crate::runtime::Error>,
) -> raft_status {
    with_node(node, false, |n| {
        if data.is_null() {
            return fail(raft_status::NullArgument, "data is NULL");
        }
        // SAFETY: `data` holds `len` bytes per contract.
        match unsafe { bytes_arg(data, len, "data") } {
            Ok(bytes) => status_of(step(&n.node, bytes)),
            Err(st) => st,
        }
    })
}

/// Like `raft_node_step`, for transports that know who sent the bytes: `from` is the
/// sender the transport authenticated (or the in-process sender). A message whose own
/// sender differs from `from` gives `RAFT_STATUS_INVALID_ARGUMENT` and changes nothing, so
/// one peer cannot forge messages "from" another.
#[no_mangle]
pub unsafe extern "C" fn raft_node_step_from(
    node: *const raft_node,
    from: u64,
    data: *const u8,
    len: usize,
) -> raft_status {
    // SAFETY: `data` holds `len` bytes per contract.
    unsafe { step_with(node, data, len, |n, bytes| n.step_from(from, bytes)) }
}

/// Proposes `cmd[0..len]` (copied; `cmd` may be NULL when `len` is 0) and blocks up to
/// `timeout_ms` until it is applied on this node. On success `*out_response` (optional;
/// release with `raft_buf_free`) receives the apply callback's response. While no leader
/// is known (still electing one) it keeps trying within `timeout_ms`. Errors: `NOT_LEADER`
/// (a follower: `raft_node_status` names the leader; or still no leader at the timeout),
/// `BUSY`, `TIMEOUT` (may still commit), `DROPPED` (outcome unknown: leadership lost before
/// commit), `SHUT_DOWN`, `FAILED`, `WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub unsafe extern "C" fn raft_node_propose(
    node: *const raft_node,
    cmd: *const u8,
    len: usize,
    timeout_ms: u64,
    out_response: *mut raft_buf,
) -> raft_status {
    // SAFETY: forwarded caller contract (`cmd` holds `len` bytes, `out_response` valid).
    unsafe {
        propose_blocking(node, cmd, len, out_response, |n, command| {
            n.propose(command, Duration::from_millis(timeout_ms))
        })
    }
}

/// Like `raft_node_propose`, for client session `client_id` with sequence number `seq`
/// (1, 2, 3, ... per client): exactly once. A retry with the same `seq` returns the
/// recorded response without applying the command again; an older `seq` gives
/// `RAFT_STATUS_INVALID_ARGUMENT`. The session table is replicated and kept in snapshots;
/// sessions expire by log position.
#[no_mangle]
pub unsafe extern "C" fn raft_node_propose_session(
    node: *const raft_node,
    client_id: u64,
    seq: u64,
    cmd: *const u8,
    len: usize,
    timeout_ms: u64,
    out_response: *mut raft_buf,
) -> raft_status {
    if seq == 0 {
        return fail(raft_status::InvalidArgument, "seq counts from 1");
    }
    // SAFETY: forwarded caller contract (`cmd` holds `len` bytes, `out_response` valid).
    unsafe {
        propose_blocking(node, cmd, len, out_response, |n, command| {
            n.propose_session(client_id, seq, command, Duration::from_millis(timeout_ms))
        })
    }
}

/// Shared body of the blocking proposals: copies the command, runs `propose`, writes the
/// response to `out_response` only on success.
///
/// # Safety
/// `cmd` holds `len` bytes (or is NULL with `len` 0); `out_response` is NULL or valid.
unsafe fn propose_blocking(
    node: *const raft_node,
    cmd: *const u8,
    len: usize,
    out_response: *mut raft_buf,
    propose: impl FnOnce(&Node, Vec<u8>) -> crate::runtime::ProposeResult,
) -> raft_status {
    with_node(node, true, |n| {
        // SAFETY: `cmd` holds `len` bytes per contract.
        let command = match unsafe { command_arg(&n.node, cmd, len) } {
            Ok(c) => c,
            Err(st) => return st,
        };
        match propose(&n.node, command) {
            Ok(resp) => {
                if !out_response.is_null() {
                    // SAFETY: checked non-NULL; the caller passes an empty or zeroed buffer.
                    unsafe { *out_response = raft_buf::from_vec(resp.unwrap_or_default()) };
                }
                raft_status::Ok
            }
            Err(e) => from_error(e),
        }
    })
}

/// Copies a command after checking its pointer, its length against the node's
/// `max_command_bytes` (`RAFT_STATUS_TOO_LARGE`, before any copy) and against `isize::MAX`.
///
/// # Safety
/// `cmd` holds `len` bytes (or is NULL with `len` 0).
unsafe fn command_arg(node: &Node, cmd: *const u8, len: usize) -> Result<Vec<u8>, raft_status> {
    if cmd.is_null() && len > 0 {
        return Err(fail(raft_status::NullArgument, "cmd is NULL"));
    }
    // SAFETY: per the function contract.
    let bytes = unsafe { bytes_arg(cmd, len, "cmd") }?;
    node.check_size(len).map_err(from_error)?;
    Ok(bytes.to_vec())
}

struct SendPtr(*mut c_void);
// SAFETY: the C contract requires `cb_userdata` to be usable from any thread.
unsafe impl Send for SendPtr {}

/// Proposes `cmd[0..len]` (copied) without blocking; `cb(cb_userdata, ...)` runs exactly
/// once with the outcome (see [`raft_propose_callback`]). Any thread, including inside
/// callbacks. Returns `RAFT_STATUS_OK` when `cb` will be (or already was) called; on any
/// other status `cb` is not called.
#[no_mangle]
pub unsafe extern "C" fn raft_node_propose_async(
    node: *const raft_node,
    cmd: *const u8,
    len: usize,
    cb: raft_propose_callback,
    cb_userdata: *mut c_void,
) -> raft_status {
    with_node(node, false, |n| {
        let Some(cb) = cb else {
            return fail(raft_status::NullArgument, "cb is NULL");
        };
        // SAFETY: `cmd` holds `len` bytes per contract.
        let command = match unsafe { command_arg(&n.node, cmd, len) } {
            Ok(c) => c,
            Err(st) => return st,
        };
        let ud = SendPtr(cb_userdata);
        n.node.propose_async(command, move |r| {
            let ud = ud;
            let (status, resp) = match r {
                Ok(resp) => (raft_status::Ok, resp.unwrap_or_default()),
                Err(e) => (from_error(e), Vec::new()),
            };
            let ptr = if resp.is_empty() {
                std::ptr::null()
            } else {
                resp.as_ptr()
            };
            // SAFETY: the user's callback with borrowed bytes.
            callback_scope(|| unsafe { cb(ud.0, status, ptr, resp.len()) });
        });
        raft_status::Ok
    })
}

/// Obtains a linearizable read index, blocking up to `timeout_ms` until this node's state
/// machine has applied it: reading local state afterwards is linearizable (followers ask
/// the leader). Writes `*out_index` on success: a log index, which counts no-op and
/// membership entries that never reach the apply callback. `NOT_LEADER` if no leader is
/// known within `timeout_ms`; `WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub unsafe extern "C" fn raft_node_read_index(
    node: *const raft_node,
    timeout_ms: u64,
    out_index: *mut u64,
) -> raft_status {
    with_node(node, true, |n| {
        if out_index.is_null() {
            return fail(raft_status::NullArgument, "out_index is NULL");
        }
        match n.node.read_index(Duration::from_millis(timeout_ms)) {
            Ok(i) => {
                // SAFETY: checked non-NULL.
                unsafe { *out_index = i };
                raft_status::Ok
            }
            Err(e) => from_error(e),
        }
    })
}

/// Asks the leader (this node) to hand leadership to voter `to` (0 = the most up-to-date
/// voter). Returns once the transfer has started, not when it completes; watch
/// `raft_node_status`. `NOT_LEADER` on followers; `WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub extern "C" fn raft_node_transfer_leader(node: *const raft_node, to: u64) -> raft_status {
    with_node(node, true, |n| {
        match n.node.transfer_leader((to != 0).then_some(to)) {
            Ok(_) => raft_status::Ok,
            Err(e) => from_error(e),
        }
    })
}

/// Fills `*out` with the node's current status. `SHUT_DOWN` after shutdown;
/// `WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub unsafe extern "C" fn raft_node_status(
    node: *const raft_node,
    out: *mut raft_node_status_info,
) -> raft_status {
    with_node(node, true, |n| {
        if out.is_null() {
            return fail(raft_status::NullArgument, "out is NULL");
        }
        match n.node.status() {
            Ok(s) => {
                let mut info = raft_node_status_info {
                    id: s.id,
                    role: s.role.into(),
                    term: s.term,
                    leader: s.leader,
                    commit: s.commit,
                    applied: s.applied,
                    last_index: s.last_index,
                    voter_count: s.conf.voters.len(),
                    voters: [0; RAFT_STATUS_MAX_VOTERS],
                };
                for (d, v) in info.voters.iter_mut().zip(&s.conf.voters) {
                    *d = *v;
                }
                // SAFETY: checked non-NULL.
                unsafe { *out = info };
                raft_status::Ok
            }
            Err(e) => from_error(e),
        }
    })
}

/// Copies all voter ids into `ids[0..cap]` and their count into `*out_n`. When `cap` is
/// too small returns `RAFT_STATUS_BUFFER_TOO_SMALL` and (as the one exception to the
/// out-parameter rule) writes the needed count to `*out_n`. `WOULD_DEADLOCK` inside a
/// callback.
#[no_mangle]
pub unsafe extern "C" fn raft_node_voters(
    node: *const raft_node,
    ids: *mut u64,
    cap: usize,
    out_n: *mut usize,
) -> raft_status {
    // SAFETY: the caller's contract, as for this function.
    unsafe { copy_members(node, ids, cap, out_n, |c| &c.voters, "voter") }
}

/// Copies all learner ids (ascending) into `ids[0..cap]` and their count into `*out_n`;
/// `RAFT_STATUS_BUFFER_TOO_SMALL` writes the needed count to `*out_n`, as
/// `raft_node_voters` does. `WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub unsafe extern "C" fn raft_node_learners(
    node: *const raft_node,
    ids: *mut u64,
    cap: usize,
    out_n: *mut usize,
) -> raft_status {
    // SAFETY: the caller's contract, as for this function.
    unsafe { copy_members(node, ids, cap, out_n, |c| &c.learners, "learner") }
}

/// Copies the members `pick` selects from the configuration in force (see
/// [`raft_node_voters`]).
///
/// # Safety
/// `ids` holds `cap` entries (or is NULL with `cap` 0); `out_n` is NULL or valid.
unsafe fn copy_members(
    node: *const raft_node,
    ids: *mut u64,
    cap: usize,
    out_n: *mut usize,
    pick: fn(&ConfState) -> &Vec<u64>,
    what: &str,
) -> raft_status {
    with_node(node, true, |n| {
        if out_n.is_null() || (ids.is_null() && cap > 0) {
            return fail(raft_status::NullArgument, "ids or out_n is NULL");
        }
        match n.node.status() {
            // SAFETY: checked non-NULL; `ids` holds `cap` entries.
            Ok(s) => unsafe {
                copy_out(
                    pick(&s.conf),
                    ids,
                    cap,
                    out_n,
                    &format!("{what} buffer too small"),
                )
            },
            Err(e) => from_error(e),
        }
    })
}

/// Writes the id of the configuration in force on this node to `*out_conf_id`: the log
/// index of its configuration entry, 0 for the initial configuration (the voters of
/// `raft_config_builder_add_voter`). It moves with every configuration entry this node
/// appends, committed or not (after a joint change again when the leader appends C_new).
/// Pass it as `expected_conf_id` to `raft_node_change_membership`, reading it before the
/// members (`raft_node_voters`, `raft_node_learners`): a change in between then makes that
/// call fail instead of acting on stale members. `WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub unsafe extern "C" fn raft_node_conf_id(
    node: *const raft_node,
    out_conf_id: *mut u64,
) -> raft_status {
    with_node(node, true, |n| {
        if out_conf_id.is_null() {
            return fail(raft_status::NullArgument, "out_conf_id is NULL");
        }
        match n.node.status() {
            Ok(s) => {
                // SAFETY: checked non-NULL.
                unsafe { *out_conf_id = s.conf_index };
                raft_status::Ok
            }
            Err(e) => from_error(e),
        }
    })
}

/// Writes `items.len()` to `*out_n` and copies the items into `out[0..cap]`, or returns
/// `RAFT_STATUS_BUFFER_TOO_SMALL` (with the needed count in `*out_n`) when they do not fit.
///
/// # Safety
/// `out_n` is valid; `out` holds `cap` elements (may be NULL when `cap` is 0).
unsafe fn copy_out<T: Copy>(
    items: &[T],
    out: *mut T,
    cap: usize,
    out_n: *mut usize,
    too_small: &str,
) -> raft_status {
    // SAFETY: per the function contract.
    unsafe {
        *out_n = items.len();
        if items.len() > cap {
            return fail(raft_status::BufferTooSmall, too_small);
        }
        if !items.is_empty() {
            std::ptr::copy_nonoverlapping(items.as_ptr(), out, items.len());
        }
    }
    raft_status::Ok
}

/// Maps a runtime call without output to its status.
fn status_of(r: Result<(), crate::runtime::Error>) -> raft_status {
    match r {
        Ok(()) => raft_status::Ok,
        Err(e) => from_error(e),
    }
}

/// Leader only: adds node `id` as a learner (it receives the log but does not vote) and
/// blocks up to `timeout_ms` until the change is applied here. With `auto_promote_lag` > 0
/// the leader promotes it to voter by itself once its log is within that many entries. The
/// new node must be started with the existing voters (it waits to be added). A change made
/// while another is still in flight waits for that one to commit first. Errors:
/// `NOT_LEADER`, `INVALID_ARGUMENT` (already a member, a removed id, or the configuration
/// moved meanwhile: nothing proposed), `BUSY` (the change in flight did not commit within
/// `timeout_ms`: nothing proposed), `TIMEOUT` (may still apply), `DROPPED`, `SHUT_DOWN`,
/// `WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub extern "C" fn raft_node_add_learner(
    node: *const raft_node,
    id: u64,
    auto_promote_lag: u64,
    timeout_ms: u64,
) -> raft_status {
    if id == 0 {
        return fail(raft_status::InvalidArgument, "node id 0 is reserved");
    }
    with_node(node, true, |n| {
        let lag = (auto_promote_lag > 0).then_some(auto_promote_lag);
        status_of(
            n.node
                .add_learner(id, lag, Duration::from_millis(timeout_ms)),
        )
    })
}

/// Leader only: promotes learner `id` to voter once its log is within `max_lag` entries of
/// the leader's (waiting up to `timeout_ms` for it to catch up and for the change to apply).
/// Errors as `raft_node_add_learner`.
#[no_mangle]
pub extern "C" fn raft_node_promote_learner(
    node: *const raft_node,
    id: u64,
    max_lag: u64,
    timeout_ms: u64,
) -> raft_status {
    with_node(node, true, |n| {
        status_of(
            n.node
                .promote_learner(id, max_lag, Duration::from_millis(timeout_ms)),
        )
    })
}

/// Leader only: removes member `id` (a leader may remove itself: it keeps replicating until
/// the change commits, then hands over and steps down). The id can never be added again.
/// Errors as `raft_node_add_learner`.
#[no_mangle]
pub extern "C" fn raft_node_remove_member(
    node: *const raft_node,
    id: u64,
    timeout_ms: u64,
) -> raft_status {
    with_node(node, true, |n| {
        status_of(n.node.remove_member(id, Duration::from_millis(timeout_ms)))
    })
}

/// Leader only: moves the cluster to the configuration of voters `voters[0..voter_count]`
/// (at least one) and learners `learners[0..learner_count]` (ids copied; an array may be
/// NULL when its count is 0), blocking up to `timeout_ms` until the change is applied here.
/// Every member left out is removed for good (ids are never reused), learners included:
/// list the current ones (`raft_node_learners`) to keep them. When more than one voter
/// changes, the cluster goes through joint consensus: C_old,new (elections and commits need
/// a majority of the old and of the new voters), then C_new, which the leader appends by
/// itself once C_old,new commits; the call returns once C_old,new is applied. New voters
/// should join as learners first and catch up. This node may be left out: it keeps leading
/// until C_new commits, then hands over and steps down. With `expected_conf_id` non-zero
/// the change is made only if the configuration id (`raft_node_conf_id`) still has that
/// value; 0 means no check (the initial configuration has id 0, so a cluster's first change
/// cannot be checked). A change made while another is still in flight (including C_new of
/// a joint change) waits for that one to commit first. Errors: `NULL_ARGUMENT` (a NULL
/// array with a non-zero count), `INVALID_ARGUMENT` (no voters, id 0, an id listed twice or
/// in both lists, a removed id, or the configuration id is not `expected_conf_id`: nothing
/// proposed), `NOT_LEADER`, `BUSY` (the change in flight did not commit within
/// `timeout_ms`: nothing proposed), `TIMEOUT` (may still apply), `DROPPED`, `SHUT_DOWN`,
/// `WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub unsafe extern "C" fn raft_node_change_membership(
    node: *const raft_node,
    voters: *const u64,
    voter_count: usize,
    learners: *const u64,
    learner_count: usize,
    expected_conf_id: u64,
    timeout_ms: u64,
) -> raft_status {
    with_node(node, true, |n| {
        if voters.is_null() && voter_count > 0 {
            return fail(raft_status::NullArgument, "voters is NULL");
        }
        if learners.is_null() && learner_count > 0 {
            return fail(raft_status::NullArgument, "learners is NULL");
        }
        if voter_count == 0 {
            return fail(
                raft_status::InvalidArgument,
                "no voters: a configuration needs at least one",
            );
        }
        // SAFETY: each array holds its count of ids per contract (checked non-NULL when
        // the count is non-zero).
        let (voters, learners) =
            match unsafe { (ids_of(voters, voter_count), ids_of(learners, learner_count)) } {
                (Ok(v), Ok(l)) => (v, l),
                (Err(st), _) | (_, Err(st)) => return st,
            };
        if let Err(msg) = check_members(&voters, &learners) {
            return fail(raft_status::InvalidArgument, msg);
        }
        let cc = ConfChange::Enter { voters, learners };
        let expected = (expected_conf_id != 0).then_some(expected_conf_id);
        status_of(
            n.node
                .change_membership(cc, expected, Duration::from_millis(timeout_ms)),
        )
    })
}

/// Copies `count` ids from `ids`.
///
/// # Safety
/// `ids` holds `count` ids (may be NULL when `count` is 0).
unsafe fn ids_of(ids: *const u64, count: usize) -> Result<Vec<NodeId>, raft_status> {
    // SAFETY: per the function contract.
    Ok(unsafe { slice_arg(ids, count, "ids") }?.to_vec())
}

/// Refuses id 0, an id listed twice, or an id in both lists of a target configuration.
fn check_members(voters: &[NodeId], learners: &[NodeId]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for &id in voters.iter().chain(learners) {
        if id == 0 {
            return Err("node id 0 is reserved".into());
        }
        if !seen.insert(id) {
            return Err(if voters.contains(&id) && learners.contains(&id) {
                format!("node {id} is both a voter and a learner")
            } else {
                format!("node {id} is listed twice")
            });
        }
    }
    Ok(())
}

/// Replication progress of one member, as the leader sees it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct raft_peer_progress {
    /// Member id.
    pub id: u64,
    /// Highest log index known to match the leader's log.
    pub match_index: u64,
    /// Next index the leader will send.
    pub next_index: u64,
    /// 0 = probe, 1 = replicate, 2 = snapshot.
    pub state: u8,
    /// 1 if the member is a learner, 0 if a voter (placed in what was padding: the
    /// struct's size and the other fields' offsets are unchanged).
    pub learner: u8,
}

/// Leader only: copies every member's replication progress (including the leader's own
/// durable index) into `out[0..cap]` and their count into `*out_n` (0 on a follower). When
/// `cap` is too small returns `RAFT_STATUS_BUFFER_TOO_SMALL` and writes the needed count to
/// `*out_n`, as `raft_node_voters` does. `WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub unsafe extern "C" fn raft_node_peer_progress(
    node: *const raft_node,
    out: *mut raft_peer_progress,
    cap: usize,
    out_n: *mut usize,
) -> raft_status {
    with_node(node, true, |n| {
        if out_n.is_null() || (out.is_null() && cap > 0) {
            return fail(raft_status::NullArgument, "out or out_n is NULL");
        }
        match n.node.status() {
            Ok(s) => {
                let peers: Vec<raft_peer_progress> = s
                    .peers
                    .iter()
                    .map(|p| raft_peer_progress {
                        id: p.id,
                        match_index: p.matched,
                        next_index: p.next,
                        state: match p.state {
                            "probe" => 0,
                            "replicate" => 1,
                            _ => 2,
                        },
                        learner: u8::from(p.learner),
                    })
                    .collect();
                // SAFETY: checked non-NULL; `out` holds `cap` entries.
                unsafe { copy_out(&peers, out, cap, out_n, "progress buffer too small") }
            }
            Err(e) => from_error(e),
        }
    })
}

/// Stops the node: fails pending calls with `SHUT_DOWN`, stops the transport and joins the
/// engine threads. Idempotent (a second call returns `RAFT_STATUS_OK`); the handle stays
/// valid until [`raft_node_free`]. `RAFT_STATUS_WOULD_DEADLOCK` from inside a callback.
#[no_mangle]
pub extern "C" fn raft_node_shutdown(node: *const raft_node) -> raft_status {
    with_node(node, true, |n| status_of(n.shutdown()))
}

/// Shuts the node down (if needed) and frees the handle; the userdata finaliser runs here
/// when nothing else references it. NULL is a no-op (`RAFT_STATUS_OK`). Refused with
/// `RAFT_STATUS_WOULD_DEADLOCK` (handle left valid) from inside a callback; a freed handle
/// gives `RAFT_STATUS_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn raft_node_free(node: *mut raft_node) -> raft_status {
    boundary(|| {
        if node.is_null() {
            return raft_status::Ok;
        }
        if in_user_callback() {
            return fail(
                raft_status::WouldDeadlock,
                "raft_node_free from inside a callback",
            );
        }
        match handle::remove_if(node as usize, |o| matches!(o, Object::Node(_))) {
            Some(Object::Node(n)) => {
                let _ = n.shutdown();
                drop(n);
                raft_status::Ok
            }
            _ => fail(raft_status::InvalidHandle, "not a live raft_node handle"),
        }
    })
}
