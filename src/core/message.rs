//! Protocol messages exchanged between nodes.

use super::types::{Entry, NodeId, SnapshotMeta};
use serde::{Deserialize, Serialize};

/// A Raft message from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// Sender's term (for a pre-vote request: the term it would campaign in).
    pub term: u64,
    /// What the message says.
    pub body: MessageBody,
    /// The sender's incarnation (a random id of its data directory; 0 if not tracked).
    /// Stamped by [`super::RawNode::ready`]; leave it 0 when building messages by hand.
    pub from_incarnation: u64,
    /// The incarnation the sender knows the recipient by (0 if none).
    pub to_incarnation: u64,
}

/// The payload of a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Log replication (AppendEntries).
    Append {
        /// Index of the entry before `entries`.
        prev_index: u64,
        /// Term of the entry at `prev_index`.
        prev_term: u64,
        /// Entries to append (possibly empty).
        entries: Vec<Entry>,
        /// Leader's commit index.
        commit: u64,
    },
    /// Answer to [`MessageBody::Append`].
    AppendResponse {
        /// On success the last index now matching; on reject the rejected `prev_index`.
        index: u64,
        /// True if the prev index/term check failed.
        reject: bool,
        /// On reject: the follower's hint index for fast backtracking.
        hint_index: u64,
        /// On reject: the term of the follower's entry at `hint_index`.
        hint_term: u64,
    },
    /// Leader liveness and commit propagation.
    Heartbeat {
        /// Commit index, capped at what the follower is known to have.
        commit: u64,
        /// ReadIndex round this heartbeat confirms (0 for none).
        read_ctx: u64,
    },
    /// Answer to [`MessageBody::Heartbeat`].
    HeartbeatResponse {
        /// Echoed read round.
        read_ctx: u64,
    },
    /// RequestVote or PreVote.
    Vote {
        /// True for a pre-vote (does not change anyone's term).
        pre_vote: bool,
        /// Candidate's last log index.
        last_index: u64,
        /// Candidate's last log term.
        last_term: u64,
        /// Campaign started by a leadership transfer (ignores leader stickiness).
        transfer: bool,
    },
    /// Answer to [`MessageBody::Vote`].
    VoteResponse {
        /// Answer to a pre-vote.
        pre_vote: bool,
        /// True if the vote is refused.
        reject: bool,
    },
    /// One chunk of a streamed InstallSnapshot.
    Snapshot {
        /// The snapshot being sent.
        meta: SnapshotMeta,
        /// Byte offset of `data` in the snapshot.
        offset: u64,
        /// Chunk bytes.
        #[serde(with = "super::bytes")]
        data: Vec<u8>,
        /// True for the last chunk.
        done: bool,
    },
    /// Answer to [`MessageBody::Snapshot`].
    SnapshotResponse {
        /// Index of the snapshot acknowledged.
        index: u64,
        /// Offset the receiver expects next (resume point).
        next_offset: u64,
        /// True once the whole snapshot is durably stored.
        done: bool,
        /// True if the receiver cannot take this snapshot (it then restarts from `next_offset`).
        reject: bool,
    },
    /// Leadership transfer: start an election now.
    TimeoutNow,
    /// A follower asks the leader for a read index.
    ReadIndex {
        /// Caller's request id.
        ctx: u64,
    },
    /// Leader's answer to [`MessageBody::ReadIndex`].
    ReadIndexResponse {
        /// Caller's request id.
        ctx: u64,
        /// The read index (meaningful only if `ok`).
        index: u64,
        /// False if the leader could not serve the read.
        ok: bool,
    },
}

impl Message {
    /// Approximate encoded size, for queue byte accounting.
    pub fn size(&self) -> u64 {
        match &self.body {
            MessageBody::Append { entries, .. } => {
                48 + entries.iter().map(Entry::size).sum::<u64>()
            }
            MessageBody::Snapshot { data, .. } => 96 + data.len() as u64,
            _ => 48,
        }
    }

    /// True for messages whose loss only costs latency (heartbeats and their answers).
    pub fn is_heartbeat(&self) -> bool {
        matches!(
            self.body,
            MessageBody::Heartbeat { .. } | MessageBody::HeartbeatResponse { .. }
        )
    }
}
