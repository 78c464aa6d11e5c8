//! Plain data types shared by the core, storage, codec and runtime.

use super::payload::Payload;
use serde::{Deserialize, Serialize};

/// Identifier of a node. `0` is reserved to mean "no node".
pub type NodeId = u64;

/// The "no node" id (no leader known, no vote cast).
pub const NO_NODE: NodeId = 0;

/// What a log entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum EntryKind {
    /// A command for the user's state machine.
    Normal = 0,
    /// An encoded [`ConfChange`]; takes effect when appended.
    ConfChange = 1,
    /// The empty entry a new leader appends so earlier entries commit.
    Noop = 2,
}

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: u64,
    /// Position in the log (1-based).
    pub index: u64,
    /// Kind of payload.
    pub kind: EntryKind,
    /// Payload bytes (shared: cloning an entry does not copy them).
    pub data: Payload,
}

impl Entry {
    /// Approximate in-memory/on-wire size used for byte caps.
    pub fn size(&self) -> u64 {
        self.data.len() as u64 + 24
    }
}

/// State that must be durable before dependent messages are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Candidate voted for in `term` ([`NO_NODE`] if none).
    pub vote: NodeId,
    /// Highest index known committed.
    pub commit: u64,
}

/// Cluster membership: voters, learners and (during joint consensus) the outgoing voters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfState {
    /// Voters of the (incoming) configuration, sorted.
    pub voters: Vec<NodeId>,
    /// Voters of the outgoing configuration; empty unless in a joint configuration.
    pub voters_outgoing: Vec<NodeId>,
    /// Non-voting members that receive the log, sorted.
    pub learners: Vec<NodeId>,
    /// Ids removed from the cluster; they are never reused (sorted).
    pub removed: Vec<NodeId>,
}

impl ConfState {
    /// A configuration of the given voters and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        let mut v: Vec<NodeId> = voters.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        ConfState {
            voters: v,
            ..Default::default()
        }
    }

    /// True while a joint (C_old,new) configuration is in force.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// True if `id` votes in either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// True if `id` is a member of any kind.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Every member (voters of both halves, then learners), sorted and unique.
    pub fn all_members(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self
            .voters
            .iter()
            .chain(&self.voters_outgoing)
            .chain(&self.learners)
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// A membership change request, carried by an [`EntryKind::ConfChange`] entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChange {
    /// Move to the given target configuration. With more than one voter changing this
    /// enters joint consensus; the leader leaves it automatically once it commits.
    Enter {
        /// Target voters.
        voters: Vec<NodeId>,
        /// Target learners.
        learners: Vec<NodeId>,
    },
    /// Leave joint consensus (C_new), appended by the leader when C_old,new commits.
    LeaveJoint,
}

/// Metadata describing a snapshot: the state-machine state up to and including `index`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Last log index covered by the snapshot.
    pub index: u64,
    /// Term of the entry at `index`.
    pub term: u64,
    /// Membership as of `index`.
    pub conf: ConfState,
    /// Index of the configuration entry `conf` came from (0 if from bootstrap).
    pub conf_index: u64,
    /// Total size of the snapshot data in bytes.
    pub size: u64,
    /// CRC32C of the whole snapshot data.
    pub checksum: u32,
}

impl SnapshotMeta {
    /// Whether `other` is the same snapshot: same index, term, size and data checksum. The
    /// one identity the core and every store use to decide whether a chunk continues a
    /// transfer, so a different snapshot at the same index and term (another leader's state
    /// machine serialized differently) restarts the transfer everywhere at once.
    pub fn same_snapshot(&self, other: &SnapshotMeta) -> bool {
        self.index == other.index
            && self.term == other.term
            && self.size == other.size
            && self.checksum == other.checksum
    }
}
