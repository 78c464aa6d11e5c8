//! `raft_node_metrics`: a node's counters and gauges as a size-prefixed struct, and every
//! metric (histograms and labelled counters included) as Prometheus text. The names are
//! those of Rust `Node::metrics()` and Python `Node.metrics()` (docs/OBSERVABILITY.md).

use super::buf::raft_buf;
use super::node::{raft_node, with_node};
use super::{fail, from_error, raft_status};
use crate::runtime::{DropReason, NodeMetrics};

/// Why something was dropped: the index into `raft_node_metrics_info.dropped_total` and the
/// `reason` label of `raft_dropped_total`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum raft_drop_reason {
    /// A proposal reached a node that is not the leader (`not_leader`).
    NotLeader = 0,
    /// A proposal refused by the leader's flow control (`busy`).
    Busy = 1,
    /// An input refused because the node's inbox was full (`inbox_full`).
    InboxFull = 2,
    /// A command above `max_command_bytes` (`too_large`).
    TooLarge = 3,
    /// An inbound message undecodable, from a forged sender or refused (`invalid_message`).
    InvalidMessage = 4,
}

/// Number of `raft_drop_reason` values (the length of `raft_node_metrics_info.dropped_total`).
pub const RAFT_DROP_REASON_COUNT: usize = 5;

/// A node's gauges and counters, filled by [`raft_node_metrics`]. Each field is the metric
/// of the same name prefixed `raft_` (docs/OBSERVABILITY.md). Set `size` to
/// `sizeof(raft_node_metrics_info)` before the call: the library writes only the fields that fit
/// in `size` bytes, so a program built against an older, shorter struct keeps working when
/// fields are appended in a later release (fields are only ever appended).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct raft_node_metrics_info {
    /// Set by the caller: `sizeof(raft_node_metrics_info)` as compiled.
    pub size: usize,
    /// Current term.
    pub term: u64,
    /// Role: 0 follower, 1 precandidate, 2 candidate, 3 leader (`raft_role`).
    pub role: u64,
    /// Known leader id (0 if none).
    pub leader_id: u64,
    /// Commit index.
    pub commit_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// Last log index.
    pub last_index: u64,
    /// Candidate voted for in the current term (0 if none).
    pub voted_for: u64,
    /// Id of the configuration in force (index of its entry; 0 for the initial one).
    pub conf_id: u64,
    /// 1 if this node is a learner of the configuration in force, else 0.
    pub learner: u64,
    /// Times a different leader became known.
    pub leader_changes_total: u64,
    /// Commands accepted into the log through this node.
    pub proposals_total: u64,
    /// Commands refused by the core.
    pub proposals_dropped_total: u64,
    /// Committed entries handed to the state machine.
    pub entries_committed_total: u64,
    /// Read-index requests made on this node.
    pub reads_total: u64,
    /// Raft messages received.
    pub messages_received_total: u64,
    /// Bytes of the Raft messages received.
    pub received_bytes_total: u64,
    /// Inbound messages refused.
    pub messages_refused_total: u64,
    /// Raft messages handed to the transport.
    pub messages_sent_total: u64,
    /// Encoded bytes of the Raft messages sent.
    pub sent_bytes_total: u64,
    /// Snapshot transfers started as leader.
    pub snapshots_sent_total: u64,
    /// Snapshots of the state machine stored.
    pub snapshots_taken_total: u64,
    /// Snapshots received and restored.
    pub snapshots_installed_total: u64,
    /// fsync calls of the log.
    pub fsyncs_total: u64,
    /// Drops by reason, indexed by `raft_drop_reason`.
    pub dropped_total: [u64; RAFT_DROP_REASON_COUNT],
}

impl raft_node_metrics_info {
    fn from_metrics(m: &NodeMetrics, size: usize) -> Self {
        let c = &m.counters;
        let mut dropped = [0; RAFT_DROP_REASON_COUNT];
        for (r, n) in c.dropped {
            dropped[r as usize] = n;
        }
        // The C enum mirrors the Rust one value for value.
        const _: () = assert!(DropReason::InvalidMessage as usize == RAFT_DROP_REASON_COUNT - 1);
        raft_node_metrics_info {
            size,
            term: m.term,
            role: crate::runtime::metrics::role_code(m.role),
            leader_id: m.leader,
            commit_index: m.commit_index,
            applied_index: m.applied_index,
            last_index: m.last_index,
            voted_for: m.voted_for,
            conf_id: m.conf_id,
            learner: u64::from(m.learner),
            leader_changes_total: c.leader_changes,
            proposals_total: c.proposals,
            proposals_dropped_total: c.proposals_dropped,
            entries_committed_total: c.entries_committed,
            reads_total: c.reads,
            messages_received_total: c.messages_received,
            received_bytes_total: c.bytes_received,
            messages_refused_total: c.messages_refused,
            messages_sent_total: c.messages_sent,
            sent_bytes_total: c.bytes_sent,
            snapshots_sent_total: c.snapshots_sent,
            snapshots_taken_total: c.snapshots_taken,
            snapshots_installed_total: c.snapshots_installed,
            fsyncs_total: c.fsyncs,
            dropped_total: dropped,
        }
    }
}

/// Fills `*out` with the node's gauges and counters. `out->size` must be set by the caller
/// (`INVALID_ARGUMENT` if it is smaller than the `size` field itself); only the first
/// `min(out->size, sizeof(raft_node_metrics_info))` bytes are written. Histograms and per-peer
/// bytes are in [`raft_node_metrics_text`]. `SHUT_DOWN` after shutdown; `WOULD_DEADLOCK`
/// inside a callback.
#[no_mangle]
pub unsafe extern "C" fn raft_node_metrics(
    node: *const raft_node,
    out: *mut raft_node_metrics_info,
) -> raft_status {
    with_node(node, true, |n| {
        if out.is_null() {
            return fail(raft_status::NullArgument, "out is NULL");
        }
        // SAFETY: checked non-NULL; the caller owns at least `size` bytes, of which the
        // first field is `size` itself.
        let size = unsafe { std::ptr::addr_of!((*out).size).read_unaligned() };
        if size < std::mem::size_of::<usize>() {
            return fail(raft_status::InvalidArgument, "out->size is too small");
        }
        match n.node.metrics() {
            Ok(m) => {
                let full = std::mem::size_of::<raft_node_metrics_info>();
                let n = size.min(full);
                let v = raft_node_metrics_info::from_metrics(&m, n);
                // SAFETY: `v` is a plain `repr(C)` value of `full` bytes; the caller's
                // buffer holds `size` bytes; `n` is at most both.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        (&v as *const raft_node_metrics_info).cast::<u8>(),
                        out.cast::<u8>(),
                        n,
                    )
                };
                raft_status::Ok
            }
            Err(e) => from_error(e),
        }
    })
}

/// Writes every metric of the node (gauges, counters, labelled counters, histograms) in the
/// Prometheus text exposition format (UTF-8, `len` bytes, not NUL-terminated) to `*out`;
/// free it with `raft_buf_free`. `*out` is written only on success. `SHUT_DOWN` after
/// shutdown; `WOULD_DEADLOCK` inside a callback.
#[no_mangle]
pub unsafe extern "C" fn raft_node_metrics_text(
    node: *const raft_node,
    out: *mut raft_buf,
) -> raft_status {
    with_node(node, true, |n| {
        if out.is_null() {
            return fail(raft_status::NullArgument, "out is NULL");
        }
        match n.node.metrics() {
            Ok(m) => {
                let buf = raft_buf::from_vec(m.to_prometheus_text().into_bytes());
                // SAFETY: checked non-NULL.
                unsafe { out.write(buf) };
                raft_status::Ok
            }
            Err(e) => from_error(e),
        }
    })
}
