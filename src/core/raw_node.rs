//! [`RawNode`]: the core's driving interface, in the shape of etcd-io/raft's Ready/Advance.
//!
//! The contract for a driver (runtime or simulator), for each [`Ready`] in order:
//! 1. send `messages` right away (the leader's appends go out in parallel with its own write);
//! 2. persist `hard_state`, `entries` (replacing any suffix from `entries[0].index`) and
//!    `snapshot_chunks` (a `done` chunk is verified and installed, then reported with
//!    [`RawNode::snapshot_received`]);
//! 3. once all of that is durable, send `persisted_messages` and call
//!    [`RawNode::on_persisted`] with the ready's `number` (readies complete in order);
//! 4. restore the state machine from storage's snapshot if `snapshot` is set, then apply
//!    `committed_entries` in order and report progress with [`RawNode::on_applied`].

use super::config::Config;
use super::message::Message;
use super::progress::ProgressState;
use super::raft::{ProposeError, Raft, ReadState, Role, SnapshotChunk};
use super::storage::Storage;
use super::types::{ConfChange, ConfState, Entry, HardState, NodeId, SnapshotMeta};
use std::collections::VecDeque;

/// Role and leader as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftState {
    /// Role.
    pub role: Role,
    /// Term.
    pub term: u64,
    /// Known leader (0 if none).
    pub leader: NodeId,
}

/// Work for the driver; see the module docs for the processing contract.
#[derive(Debug, Default)]
pub struct Ready {
    /// Sequence number, passed back to [`RawNode::on_persisted`].
    pub number: u64,
    /// Set when role, term or leader changed.
    pub soft_state: Option<SoftState>,
    /// Hard state to persist, when it changed.
    pub hard_state: Option<HardState>,
    /// Entries to append durably.
    pub entries: Vec<Entry>,
    /// Incoming snapshot chunks to write durably.
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// The state machine must restore storage's snapshot before applying later entries.
    pub snapshot: Option<SnapshotMeta>,
    /// Committed, durable entries to apply in order.
    pub committed_entries: Vec<Entry>,
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// Messages to send only after this ready's writes are durable.
    pub persisted_messages: Vec<Message>,
    /// Answers to read-index requests.
    pub read_states: Vec<ReadState>,
}

impl Ready {
    /// True if the ready has something to persist (entries, hard state or chunks).
    pub fn needs_persist(&self) -> bool {
        self.hard_state.is_some() || !self.entries.is_empty() || !self.snapshot_chunks.is_empty()
    }
}

/// Replication state of one member, as seen by the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Member id.
    pub id: NodeId,
    /// Highest index known to match.
    pub matched: u64,
    /// Next index to send.
    pub next: u64,
    /// Probe, Replicate or Snapshot.
    pub state: &'static str,
    /// A learner (receives the log, does not vote) rather than a voter.
    pub learner: bool,
}

/// A snapshot of a node's state for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Node id.
    pub id: NodeId,
    /// Role.
    pub role: Role,
    /// Term.
    pub term: u64,
    /// Known leader.
    pub leader: NodeId,
    /// The candidate this node voted for in `term` (0 if none).
    pub voted_for: NodeId,
    /// This node is a learner of the configuration in force (its role is then always
    /// follower: it never campaigns).
    pub learner: bool,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// Configuration in force.
    pub conf: ConfState,
    /// Id of the configuration in force (index of its entry).
    pub conf_index: u64,
    /// Leader only: every member's progress.
    pub peers: Vec<PeerStatus>,
    /// Messages refused for a term above [`MAX_TERM`](super::raft::MAX_TERM) or from a
    /// non-member trying to raise the term of a healthy cluster.
    pub refused_messages: u64,
}

#[derive(Debug)]
struct InFlight {
    number: u64,
    last: Option<(u64, u64)>,
    snapshot: Option<u64>,
}

/// The core behind a Ready/advance interface.
pub struct RawNode<S: Storage> {
    /// The protocol state (read-only use recommended).
    pub raft: Raft<S>,
    prev_hs: HardState,
    prev_soft: SoftState,
    handed: Option<(u64, u64)>,
    next_number: u64,
    in_flight: VecDeque<InFlight>,
    /// Committed entries are held back (the driver's apply work is over its budget).
    apply_paused: bool,
}

impl<S: Storage> RawNode<S> {
    /// Builds a node from configuration and storage.
    pub fn new(cfg: Config, storage: S) -> Result<Self, String> {
        let raft = Raft::new(cfg, storage)?;
        let prev_hs = raft.hard_state();
        let prev_soft = soft(&raft);
        Ok(RawNode {
            raft,
            prev_hs,
            prev_soft,
            handed: None,
            next_number: 1,
            in_flight: VecDeque::new(),
            apply_paused: false,
        })
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Steps a message received from a peer.
    pub fn step(&mut self, m: Message) {
        self.raft.step(m);
    }

    /// Proposes commands (batched into one append); returns the first command's index.
    pub fn propose(&mut self, commands: Vec<Vec<u8>>) -> Result<u64, ProposeError> {
        self.raft.propose(commands)
    }

    /// Proposes a membership change (compare-and-set against `expected` when given).
    pub fn propose_conf_change(
        &mut self,
        cc: ConfChange,
        expected: Option<u64>,
    ) -> Result<u64, ProposeError> {
        self.raft.propose_conf_change(cc, expected)
    }

    /// Requests a read index for `ctx`.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        self.raft.read_index(ctx)
    }

    /// Starts a leadership transfer.
    pub fn transfer_leader(&mut self, to: Option<NodeId>) -> Result<NodeId, ProposeError> {
        self.raft.transfer_leader(to)
    }

    /// Starts an election now (used by tests and operators).
    pub fn campaign(&mut self) {
        if self.raft.role != Role::Leader {
            let t = self.raft.cfg.election_ticks * 4;
            for _ in 0..t {
                if self.raft.role != Role::Follower {
                    break;
                }
                self.raft.tick();
            }
        }
    }

    /// True if [`Self::ready`] would return work.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.has_pending_broadcast()
            || !r.msgs.is_empty()
            || !r.msgs_after_persist.is_empty()
            || r.hard_state() != self.prev_hs
            || soft(r) != self.prev_soft
            || !r.read_states.is_empty()
            || !r.snapshot_chunks.is_empty()
            || r.pending_restore.is_some()
            || self.unhanded_start().is_some()
            || (!self.apply_paused && r.log.has_next_committed_entries())
    }

    fn unhanded_start(&self) -> Option<u64> {
        let unstable = self.raft.log.unstable_entries();
        let first = unstable.first()?.index;
        let last = unstable.last()?.index;
        let start = match self.handed {
            Some((i, t)) if self.raft.log.match_term(i, t) && i >= first => i + 1,
            _ => first,
        };
        (start <= last).then_some(start)
    }

    /// Collects the pending work. Must be followed by processing it as the module docs say.
    pub fn ready(&mut self) -> Ready {
        self.raft.flush();
        let r = &mut self.raft;
        let mut rd = Ready {
            number: self.next_number,
            ..Default::default()
        };
        self.next_number += 1;
        let s = soft(r);
        if s != self.prev_soft {
            rd.soft_state = Some(s);
            self.prev_soft = s;
        }
        let hs = r.hard_state();
        if hs != self.prev_hs {
            rd.hard_state = Some(hs);
            self.prev_hs = hs;
        }
        if let Some(start) = self.unhanded_start() {
            let r = &mut self.raft;
            let unstable = r.log.unstable_entries();
            let off = unstable[0].index;
            rd.entries = unstable[(start - off) as usize..].to_vec();
            let l = rd.entries.last().expect("entries");
            self.handed = Some((l.index, l.term));
        }
        let r = &mut self.raft;
        rd.snapshot_chunks = std::mem::take(&mut r.snapshot_chunks);
        rd.snapshot = r.pending_restore.take();
        if !self.apply_paused {
            rd.committed_entries = r.log.next_committed_entries(r.cfg.max_apply_bytes);
        }
        if let Some(e) = rd.committed_entries.last() {
            r.log.applying = e.index;
        }
        rd.messages = std::mem::take(&mut r.msgs);
        rd.persisted_messages = std::mem::take(&mut r.msgs_after_persist);
        rd.read_states = std::mem::take(&mut r.read_states);
        self.in_flight.push_back(InFlight {
            number: rd.number,
            last: rd.entries.last().map(|e| (e.index, e.term)),
            snapshot: rd.snapshot.as_ref().map(|s| s.index),
        });
        rd
    }

    /// Reports that every ready up to `number` is durable.
    pub fn on_persisted(&mut self, number: u64) {
        while let Some(f) = self.in_flight.front() {
            if f.number > number {
                break;
            }
            let f = self.in_flight.pop_front().expect("in flight");
            if let Some(idx) = f.snapshot {
                self.raft.log.stable_snapshot_to(idx);
            }
            if let Some((i, t)) = f.last {
                self.raft.on_persisted(i, t);
            }
        }
    }

    /// Holds committed entries back from [`Self::ready`] while `paused` (apply flow
    /// control: a driver whose state machine is behind stops taking more, and everything
    /// else, heartbeats included, goes on).
    pub fn set_apply_paused(&mut self, paused: bool) {
        self.apply_paused = paused;
    }

    /// Reports that the state machine applied everything up to `index`.
    pub fn on_applied(&mut self, index: u64) {
        let log = &mut self.raft.log;
        if index > log.applied {
            log.applied = index.min(log.applying);
        }
    }

    /// Reports the outcome of verifying and installing a fully received snapshot.
    pub fn snapshot_received(&mut self, meta: &SnapshotMeta, ok: bool) {
        self.raft.snapshot_received(meta, ok);
    }

    /// Current status.
    pub fn status(&self) -> Status {
        let r = &self.raft;
        let peers = r
            .progress
            .iter()
            .map(|(&id, p)| PeerStatus {
                id,
                matched: if id == r.id() {
                    r.log.persisted
                } else {
                    p.matched
                },
                next: p.next,
                state: match p.state {
                    ProgressState::Probe => "probe",
                    ProgressState::Replicate => "replicate",
                    ProgressState::Snapshot => "snapshot",
                },
                learner: r.conf().learners.contains(&id),
            })
            .collect();
        Status {
            id: r.id(),
            role: r.role,
            term: r.term,
            leader: r.leader,
            voted_for: r.vote,
            learner: r.conf().learners.contains(&r.id()),
            commit: r.log.committed,
            applied: r.log.applied,
            last_index: r.log.last_index(),
            conf: r.conf().clone(),
            conf_index: r.conf_index(),
            peers,
            refused_messages: r.refused_messages,
        }
    }
}

fn soft<S: Storage>(r: &Raft<S>) -> SoftState {
    SoftState {
        role: r.role,
        term: r.term,
        leader: r.leader,
    }
}
