//! `raft_node`: starting and stopping a node, and the C callbacks it wires into the engine
//! (transport, custom storage, state machine). Driving it: `ops.rs`; inspecting it:
//! `status.rs`, `metrics.rs`; membership: `membership.rs`.

use super::buf::{raft_buf, with_reader, with_writer};
use super::config::ConfigData;
use super::config_callbacks::{Callbacks, Userdata};
use super::handle::{self, Object};
use super::{boundary, callback_scope, fail, from_error, in_user_callback, raft_status};
use crate::core::{ConfState, Entry, HardState, SnapshotMeta};
use crate::core::{NodeId, Role};
use crate::runtime::{Committed, MessageSink, Node, NodeConfig, StateMachine};
use crate::storage::{ExternalStore, FsyncPolicy, LogStore, Persister};
use crate::transport::{SendClass, TcpTransport, TransportConfig};
use parking_lot::RwLock;
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
    if let Some(rejoin) = d.auto_rejoin {
        nc.auto_rejoin = rejoin;
    }
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

/// Maps a runtime call without output to its status.
pub(super) fn status_of(r: Result<(), crate::runtime::Error>) -> raft_status {
    match r {
        Ok(()) => raft_status::Ok,
        Err(e) => from_error(e),
    }
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
