//! Driving a `raft_node`: delivering messages, proposing, reading, transferring leadership.

use super::buf::raft_buf;
use super::node::{raft_node, status_of, with_node};
use super::{bytes_arg, callback_scope, fail, from_error, raft_status};
use crate::runtime::Node;
use std::ffi::c_void;
use std::time::Duration;

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
