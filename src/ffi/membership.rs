//! Changing a cluster's membership through a `raft_node` (leader only).

use super::node::{raft_node, status_of, with_node};
use super::{fail, raft_status, slice_arg};
use crate::core::ConfChange;
use crate::core::NodeId;
use std::collections::BTreeSet;
use std::time::Duration;

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
