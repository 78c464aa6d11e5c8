//! Runtime configuration with safe defaults.

use crate::core::{ConfState, NodeId};
use crate::storage::FsyncPolicy;
use std::path::PathBuf;
use std::time::Duration;

/// The highest allowed [`NodeConfig::max_command_bytes`]: a peer message (64 MiB) minus
/// 1 MiB for the message and entry headers, so an entry of this size is always sendable.
pub const MAX_COMMAND_BYTES_LIMIT: usize = crate::codec::DEFAULT_MAX_MESSAGE_BYTES - (1 << 20);

/// Settings of one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// Initial membership, used only when the node starts with empty storage.
    pub bootstrap: ConfState,
    /// Tick length: the unit of protocol time.
    pub tick: Duration,
    /// Base election timeout (each timeout is drawn from `[T, 2T)`).
    pub election_timeout: Duration,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Data directory; `None` keeps everything in memory (lost on restart).
    pub data_dir: Option<PathBuf>,
    /// fsync policy of the data directory.
    pub fsync: FsyncPolicy,
    /// The cluster this node belongs to (default 0): recorded in a new data directory's
    /// identity, and a data directory of another cluster (or node) is refused at start.
    pub cluster_id: u64,
    /// Take a snapshot after this many applied entries (0 = only on demand).
    pub snapshot_entries: u64,
    /// Entries kept behind a snapshot for slow followers.
    pub snapshot_trailing: u64,
    /// Uncommitted bytes the leader accepts before refusing proposals as busy.
    pub max_uncommitted_bytes: u64,
    /// Byte cap of one append message.
    pub max_msg_bytes: u64,
    /// Largest command a proposal may carry (default 32 MiB); a larger one is refused up
    /// front with [`Error::TooLarge`](super::Error::TooLarge). At most
    /// [`MAX_COMMAND_BYTES_LIMIT`] so that one entry always fits in one peer message (64 MiB)
    /// and in one WAL record (256 MiB).
    pub max_command_bytes: usize,
    /// Largest snapshot a follower accepts from a leader (default 64 GiB): an
    /// InstallSnapshot announcing a larger total size is refused before anything is written.
    pub max_snapshot_bytes: u64,
    /// Pre-vote (default on).
    pub pre_vote: bool,
    /// Check-quorum (default on).
    pub check_quorum: bool,
    /// Bytes the inbound queue (messages, proposals, requests) may hold; beyond it inputs
    /// are refused at once (`Busy`; a dropped message for transports).
    pub inbox_bytes: usize,
    /// Bytes of entries and snapshot data written but not yet durable; beyond it the leader
    /// refuses proposals (`Busy`) and a follower drops incoming appends until the disk
    /// catches up.
    pub storage_queue_bytes: u64,
    /// Bytes of committed entries handed to the state machine but not yet applied; beyond
    /// it committed entries wait in the log and proposals are refused (`Busy`). Heartbeats
    /// and elections never wait on it.
    pub apply_queue_bytes: u64,
    /// Seed for randomized timeouts (defaults to a value derived from the id and time).
    pub seed: Option<u64>,
    /// Client sessions unused for this many log entries expire (0 = never). The value is
    /// carried inside every session command this node proposes, so replicas never disagree.
    pub session_expiry_entries: u64,
    /// Opt-in lease reads: `Some(max_clock_drift)` lets the leader answer `read_index`
    /// without a heartbeat round while it heard from a quorum within the election timeout
    /// minus this drift. Safe only if clocks drift less than declared; needs check-quorum.
    /// Off (`None`) by default.
    pub lease_reads_max_clock_drift: Option<Duration>,
    /// Let the threads that hand work to the node (proposals, [`Node::step`] /
    /// [`Node::step_message`], storage completions) run the protocol step themselves when
    /// nobody else is running one, instead of waking the Raft thread. Fewer thread
    /// hand-offs: lower latency for in-process clusters and embedders that deliver messages
    /// on their own threads. The Raft thread still runs the timers, and proposals that arrive
    /// while others are in flight are still batched on it. With this on,
    /// [`MessageSink`](super::MessageSink) callbacks and failure completions may run on the
    /// calling thread, inside `propose` or `step`. Off by default.
    ///
    /// [`Node::step`]: super::Node::step
    /// [`Node::step_message`]: super::Node::step_message
    pub caller_runs: bool,
    /// Automatic rejoin of a voter that lost its state (it comes back with a new
    /// incarnation: a wiped data directory under the same id). `Some(lag)` (the default,
    /// 64): the leader demotes it to learner, catches it up by snapshot and log, and
    /// promotes it once its log is within `lag` entries of the leader's. `None`: the
    /// leader logs an error and the operator re-admits it (a membership change making it a
    /// learner, then [`Node::promote_learner`](super::Node::promote_learner)); until then it
    /// is not counted. Only the leader's setting acts: give every node the same.
    /// Either way its votes and acknowledgements are ignored until it is re-admitted.
    pub auto_rejoin: Option<u64>,
}

impl NodeConfig {
    /// Defaults for node `id` in a cluster of `voters`.
    pub fn new(id: NodeId, voters: impl IntoIterator<Item = NodeId>) -> Self {
        NodeConfig {
            id,
            bootstrap: ConfState::with_voters(voters),
            tick: Duration::from_millis(10),
            election_timeout: Duration::from_millis(500),
            heartbeat_interval: Duration::from_millis(50),
            data_dir: None,
            fsync: FsyncPolicy::Always,
            cluster_id: 0,
            snapshot_entries: 100_000,
            snapshot_trailing: 10_000,
            max_uncommitted_bytes: 64 << 20,
            max_msg_bytes: 1 << 20,
            max_command_bytes: 32 << 20,
            max_snapshot_bytes: 64 << 30,
            pre_vote: true,
            check_quorum: true,
            inbox_bytes: 16 << 20,
            storage_queue_bytes: 8 << 20,
            apply_queue_bytes: 16 << 20,
            seed: None,
            session_expiry_entries: 100_000,
            lease_reads_max_clock_drift: None,
            caller_runs: false,
            auto_rejoin: Some(64),
        }
    }

    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("node id must be non-zero".into());
        }
        if self.tick.is_zero() {
            return Err("tick must be positive".into());
        }
        if self.heartbeat_interval < self.tick || self.election_timeout <= self.heartbeat_interval {
            return Err("need tick <= heartbeat_interval < election_timeout".into());
        }
        if self.bootstrap.voters.is_empty() {
            return Err("bootstrap configuration needs at least one voter".into());
        }
        if let Some(d) = self.lease_reads_max_clock_drift {
            if !self.check_quorum {
                return Err("lease reads require check_quorum".into());
            }
            if d >= self.election_timeout {
                return Err("lease read clock drift must be below the election timeout".into());
            }
        }
        if self.max_command_bytes == 0 || self.max_command_bytes > MAX_COMMAND_BYTES_LIMIT {
            return Err(format!(
                "max_command_bytes must be in 1..={MAX_COMMAND_BYTES_LIMIT}"
            ));
        }
        if self.max_snapshot_bytes == 0 {
            return Err("max_snapshot_bytes must be positive".into());
        }
        if self.inbox_bytes < super::driver::INPUT_OVERHEAD * 16 {
            return Err("inbox_bytes is too small (at least 2 KiB)".into());
        }
        if self.storage_queue_bytes == 0 || self.apply_queue_bytes == 0 {
            return Err("storage_queue_bytes and apply_queue_bytes must be positive".into());
        }
        Ok(())
    }

    pub(crate) fn ticks(&self, d: Duration) -> u64 {
        (d.as_micros() / self.tick.as_micros().max(1)).max(1) as u64
    }
}
