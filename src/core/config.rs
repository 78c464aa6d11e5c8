//! Core configuration with safe defaults.

use super::types::NodeId;

/// Settings of one node's protocol core. Times are in ticks.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// Base election timeout `ET`; each timeout is drawn from `[ET, 2·ET)`.
    pub election_ticks: u64,
    /// Heartbeat interval (must be below `election_ticks`).
    pub heartbeat_ticks: u64,
    /// Pre-vote before real elections (on by default).
    pub pre_vote: bool,
    /// Leader steps down when it cannot hear from a quorum within `ET` (on by default).
    pub check_quorum: bool,
    /// Byte cap of one append message.
    pub max_msg_bytes: u64,
    /// Messages in flight per follower in Replicate.
    pub max_inflight_msgs: usize,
    /// Bytes in flight per follower in Replicate.
    pub max_inflight_bytes: u64,
    /// Uncommitted bytes the leader accepts before refusing proposals as busy.
    pub max_uncommitted_bytes: u64,
    /// Bytes handed to the state machine per ready.
    pub max_apply_bytes: u64,
    /// Size of a snapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Snapshot chunks in flight per follower.
    pub snapshot_window: u64,
    /// Largest snapshot accepted from a leader: a snapshot announcing a larger total size
    /// (or chunks running past the announced size) is refused and counted in
    /// [`Raft::refused_messages`](super::Raft::refused_messages).
    pub max_snapshot_bytes: u64,
    /// Seed of this node's random election timeouts.
    pub seed: u64,
    /// Index the state machine has applied at start (the restored snapshot's index).
    pub applied: u64,
    /// Lease reads: opt-in; `Some(max_clock_drift_ticks)` enables them (requires check-quorum).
    pub lease_read_max_drift: Option<u64>,
    /// A read index forwarded to the leader fails (`index: None`) when unanswered after
    /// this many ticks; `None` (the default) means two election timeouts.
    pub forwarded_read_timeout_ticks: Option<u64>,
    /// Forwarded read-index requests tracked at once; more are refused as busy (default
    /// 4096, about 40 bytes each).
    pub max_forwarded_reads: usize,
    /// This node's incarnation: a random id of its data directory (0, the default: not
    /// tracked). Messages carry it; a voter that comes back with another one is not counted
    /// until it is re-admitted (see `raft::incarnation`).
    pub incarnation: u64,
    /// The incarnations of voters this node heard from before (node id -> incarnation), as
    /// stored by the caller from [`crate::core::Raft::take_incarnation_changes`].
    pub peer_incarnations: std::collections::BTreeMap<NodeId, u64>,
}

impl Config {
    /// Defaults for node `id`: ET = 10 ticks, heartbeat = 1 tick, pre-vote and check-quorum on.
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            max_msg_bytes: 1 << 20,
            max_inflight_msgs: 256,
            max_inflight_bytes: 32 << 20,
            max_uncommitted_bytes: 64 << 20,
            max_apply_bytes: 8 << 20,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_window: 4,
            max_snapshot_bytes: 64 << 30,
            seed: id,
            applied: 0,
            lease_read_max_drift: None,
            forwarded_read_timeout_ticks: None,
            max_forwarded_reads: 4096,
            incarnation: 0,
            peer_incarnations: Default::default(),
        }
    }

    /// Ticks after which an unanswered forwarded read fails.
    pub fn forwarded_read_timeout(&self) -> u64 {
        self.forwarded_read_timeout_ticks
            .unwrap_or(self.election_ticks.saturating_mul(2))
    }

    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("node id must be non-zero".into());
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return Err("election_ticks must exceed heartbeat_ticks > 0".into());
        }
        if self.max_inflight_msgs == 0 || self.max_msg_bytes == 0 || self.snapshot_chunk_bytes == 0
        {
            return Err("flow-control limits must be non-zero".into());
        }
        if self.forwarded_read_timeout_ticks == Some(0) || self.max_forwarded_reads == 0 {
            return Err("forwarded read timeout and cap must be non-zero".into());
        }
        if let Some(drift) = self.lease_read_max_drift {
            if !self.check_quorum {
                return Err("lease reads require check_quorum".into());
            }
            if drift >= self.election_ticks {
                return Err("lease read clock drift must be below election_ticks".into());
            }
        }
        Ok(())
    }
}
