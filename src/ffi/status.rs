//! Inspecting a `raft_node`: status, members, configuration id and replication progress.

use super::node::{raft_node, raft_role, with_node};
use super::{fail, from_error, raft_status};
use crate::core::ConfState;

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
