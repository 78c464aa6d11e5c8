//! The Raft protocol state machine: elections, replication, commitment, membership, reads
//! and leadership transfer. Driven by [`super::RawNode`]; never blocks and never does I/O.
//!
//! Split by concern, as etcd-io/raft splits `raft.go`, `tracker/`, `confchange/` and
//! `read_only.go`: this file holds the state, the roles and the message dispatch
//! ([`Raft::step`], [`Raft::tick`]); [`election`] the campaigns, votes, check-quorum and
//! leadership transfer; [`replication`] appends, commitment and proposals; [`snapshot`]
//! snapshot send and install; [`membership`] the configuration history; [`reads`]
//! read-index and lease reads.

mod election;
mod incarnation;
mod membership;
mod reads;
mod replication;
mod snapshot;
#[cfg(test)]
mod tests;

pub use membership::{decode_conf_change, encode_conf_change};
use reads::{Forwarded, PendingRead};
use snapshot::Incoming;

use super::config::Config;
use super::log::RaftLog;
use super::message::{Message, MessageBody};
use super::progress::{Progress, ProgressState};
use super::rng::Rng;
use super::storage::Storage;
use super::types::{ConfState, HardState, NodeId, SnapshotMeta, NO_NODE};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// The highest term a node ever enters. A message with a higher term is refused (and
/// counted in [`Raft::refused_messages`]), and a node at this term no longer campaigns, so
/// no term arithmetic can overflow and one forged message cannot push a cluster to a term
/// it could never leave. One election per nanosecond would need 292 years to get here.
pub const MAX_TERM: u64 = u64::MAX >> 1;

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower = 0,
    /// Collecting pre-votes; has not raised its term.
    PreCandidate = 1,
    /// Collecting votes in a new term.
    Candidate = 2,
    /// Leads the cluster.
    Leader = 3,
}

/// Why a proposal or request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// This node is not the leader; the known leader's id (or [`NO_NODE`]).
    NotLeader(NodeId),
    /// The leader's uncommitted bytes, or this node's forwarded reads, are at their cap.
    Busy,
    /// A leadership transfer is in progress.
    TransferInProgress,
    /// A configuration change is already in flight (or the leader has not yet committed an
    /// entry of its term).
    ConfChangeInProgress,
    /// The configuration moved: its current id differs from the expected one.
    ConfMismatch {
        /// The current configuration id (index of its entry).
        current: u64,
    },
    /// The change itself is invalid.
    InvalidConfChange(String),
    /// A bad argument (for example an unknown transfer target).
    Invalid(String),
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::NotLeader(l) => write!(f, "not the leader (leader: {l})"),
            ProposeError::Busy => {
                write!(f, "busy: too many uncommitted bytes or forwarded reads")
            }
            ProposeError::TransferInProgress => write!(f, "leadership transfer in progress"),
            ProposeError::ConfChangeInProgress => write!(f, "configuration change in progress"),
            ProposeError::ConfMismatch { current } => {
                write!(f, "configuration moved (current id {current})")
            }
            ProposeError::InvalidConfChange(e) => write!(f, "invalid configuration change: {e}"),
            ProposeError::Invalid(e) => write!(f, "invalid request: {e}"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// The answer to a read-index request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    /// Caller's request id.
    pub ctx: u64,
    /// The read index; `None` if the read could not be served (no leader, leadership lost).
    pub index: Option<u64>,
}

/// A chunk of an incoming snapshot to be written durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The snapshot.
    pub meta: SnapshotMeta,
    /// Offset of `data`.
    pub offset: u64,
    /// Bytes.
    pub data: Vec<u8>,
    /// Last chunk: after writing, verify and install the snapshot, then report with
    /// [`super::RawNode::snapshot_received`].
    pub done: bool,
}

/// The protocol state of one node.
pub struct Raft<S: Storage> {
    /// Settings.
    pub cfg: Config,
    /// Current term.
    pub term: u64,
    /// Vote in the current term.
    pub vote: NodeId,
    /// Role.
    pub role: Role,
    /// Known leader.
    pub leader: NodeId,
    /// The log.
    pub log: RaftLog<S>,
    /// Configuration history: the latest committed configuration first, then every
    /// configuration appended after it (the last one is in force).
    confs: Vec<(u64, ConfState)>,
    /// Leader: progress of every member.
    pub progress: BTreeMap<NodeId, Progress>,
    votes: HashMap<NodeId, bool>,
    election_elapsed: u64,
    heartbeat_elapsed: u64,
    randomized_timeout: u64,
    lost_elections: u64,
    /// The first pre-vote round after hearing from a leader gives up early: a peer that
    /// heard the (now dead) leader a tick later ignores it (stickiness) but will grant it
    /// moments later, so waiting a whole new timeout would double the failover time.
    quick_prevote_retry: bool,
    rng: Rng,
    /// Messages to send now.
    pub msgs: Vec<Message>,
    /// Messages to send once the current ready is durable.
    pub msgs_after_persist: Vec<Message>,
    uncommitted: VecDeque<(u64, u64)>,
    uncommitted_bytes: u64,
    pending_conf_index: u64,
    /// Leader: target of an ongoing leadership transfer.
    pub transferee: NodeId,
    transfer_elapsed: u64,
    bcast_pending: bool,
    reads: VecDeque<PendingRead>,
    reads_waiting: Vec<(u64, NodeId)>,
    /// Leader: the last heartbeat round broadcast (every heartbeat broadcast is a round).
    read_round: u64,
    /// Leader: the highest round each follower acknowledged in this term.
    read_acks: HashMap<NodeId, u64>,
    read_bcast_pending: bool,
    /// Leader: `(first round, tick)` for every tick in which rounds were broadcast, oldest
    /// first; ticks older than an election timeout are dropped (they can no longer hold a
    /// lease), so at most `election_ticks + 1` entries.
    round_ticks: VecDeque<(u64, u64)>,
    /// Ticks since this node started (its logical clock; lease and expiry times).
    ticks: u64,
    /// A freshly started node refuses votes for an election timeout, as if it had heard a
    /// leader (thesis 6.4.1): it may have acknowledged a leader's lease before it restarted.
    boot_sticky: bool,
    /// Read-index requests forwarded to a leader, by context.
    forwarded: BTreeMap<u64, Forwarded>,
    /// Read-index responses ignored because they did not match a forwarded request (late,
    /// from another node or term, or from before a restart).
    pub ignored_read_responses: u64,
    /// Answers to read-index requests, for the next ready.
    pub read_states: Vec<ReadState>,
    incoming: Option<Incoming>,
    /// Snapshot chunks to write, for the next ready.
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// A snapshot the state machine must restore before applying later entries.
    pub pending_restore: Option<SnapshotMeta>,
    lease_revoked: bool,
    /// Set when this node learned it was removed from the configuration.
    pub removed: bool,
    /// Messages refused because their term is above [`MAX_TERM`], or because a node outside
    /// the latest configuration tried to raise the term of a healthy cluster.
    pub refused_messages: u64,
    /// Incarnations of the voters this node has heard from (see [`incarnation`]).
    peer_incarnations: BTreeMap<NodeId, u64>,
    /// `peer_incarnations` changed since [`Raft::take_incarnation_changes`].
    incarnations_changed: bool,
    /// Voters that came back with a new incarnation: id -> (known, new).
    replaced: BTreeMap<NodeId, (u64, u64)>,
    /// Incarnations last seen from non-voters (volatile): a change resets the leader's
    /// progress for that node (what the old incarnation acknowledged is gone).
    learner_incarnations: BTreeMap<NodeId, u64>,
    /// Incarnations seen replaced (volatile): messages still in flight from them are
    /// dropped, so a stale acknowledgement cannot count for the new incarnation.
    retired: BTreeMap<NodeId, u64>,
    /// A peer knows this node by another incarnation; not re-admitted yet.
    amnesiac: bool,
    /// Re-admitted after coming back with a new incarnation (stale mismatches are ignored).
    readmitted: bool,
}

impl<S: Storage> Raft<S> {
    /// Builds the protocol state from storage.
    pub fn new(cfg: Config, storage: S) -> Result<Self, String> {
        cfg.validate()?;
        let (hs, bootstrap_conf) = storage.initial_state().map_err(|e| e.to_string())?;
        let snap = storage.snapshot_meta();
        let snap_index = snap.index;
        // The membership as of the latest snapshot, or the bootstrap one without a snapshot.
        let base_conf = if snap.index > 0 {
            snap.conf.clone()
        } else {
            bootstrap_conf
        };
        let log = RaftLog::new(storage, hs.commit, cfg.applied)?;
        let mut r = Raft {
            rng: Rng::new(cfg.seed),
            term: hs.term,
            vote: hs.vote,
            role: Role::Follower,
            leader: NO_NODE,
            log,
            confs: vec![(snap.conf_index, base_conf)],
            progress: BTreeMap::new(),
            votes: HashMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            lost_elections: 0,
            quick_prevote_retry: true,
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            uncommitted: VecDeque::new(),
            uncommitted_bytes: 0,
            pending_conf_index: 0,
            transferee: NO_NODE,
            transfer_elapsed: 0,
            bcast_pending: false,
            reads: VecDeque::new(),
            reads_waiting: Vec::new(),
            read_round: 0,
            read_acks: HashMap::new(),
            read_bcast_pending: false,
            round_ticks: VecDeque::new(),
            ticks: 0,
            boot_sticky: true,
            forwarded: BTreeMap::new(),
            ignored_read_responses: 0,
            read_states: Vec::new(),
            incoming: None,
            snapshot_chunks: Vec::new(),
            pending_restore: None,
            lease_revoked: false,
            removed: false,
            refused_messages: 0,
            peer_incarnations: cfg.peer_incarnations.clone(),
            incarnations_changed: false,
            replaced: BTreeMap::new(),
            learner_incarnations: BTreeMap::new(),
            retired: BTreeMap::new(),
            amnesiac: false,
            // Re-admitted before a restart: this node recorded its own incarnation.
            readmitted: cfg.incarnation != 0
                && cfg.peer_incarnations.get(&cfg.id) == Some(&cfg.incarnation),
            cfg,
        };
        // Replay configuration entries after the snapshot (they took effect when appended);
        // entries kept behind the snapshot for slow followers are already in its membership.
        let mut next = r.log.first_index().max(snap_index + 1);
        let last = r.log.last_index();
        while next <= last {
            let batch = r
                .log
                .slice(next, last + 1, 4 << 20)
                .map_err(|e| e.to_string())?;
            next += batch.len() as u64;
            for e in &batch {
                r.note_appended(e);
            }
        }
        r.prune_confs();
        if let Some((meta, offset)) = r.log.storage.partial_snapshot() {
            r.incoming = Some(Incoming {
                meta,
                next_offset: offset,
                complete: false,
            });
        }
        r.reset_timeout();
        Ok(r)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The configuration in force.
    pub fn conf(&self) -> &ConfState {
        &self
            .confs
            .last()
            .expect("configuration history is never empty")
            .1
    }

    /// Configuration entries appended but not yet known committed.
    pub fn pending_conf_changes(&self) -> usize {
        self.confs.len() - 1
    }

    /// Id (entry index) of the configuration in force.
    pub fn conf_index(&self) -> u64 {
        self.confs.last().expect("configuration history").0
    }

    /// The hard state to persist.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// True if this node may campaign (a voter of the configuration in force).
    pub fn promotable(&self) -> bool {
        self.conf().is_voter(self.id()) && !self.removed && !self.amnesiac
    }

    fn reset_timeout(&mut self) {
        let et = self.cfg.election_ticks;
        let widen = 1 + self.lost_elections.min(2);
        self.randomized_timeout = self.rng.range(et, et + et * widen);
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.msgs.push(Message {
            from: self.id(),
            to,
            term: self.term,
            body,
            from_incarnation: 0,
            to_incarnation: 0,
        });
    }

    fn send_after_persist(&mut self, to: NodeId, term: u64, body: MessageBody) {
        self.msgs_after_persist.push(Message {
            from: self.id(),
            to,
            term,
            body,
            from_incarnation: 0,
            to_incarnation: 0,
        });
    }

    // ----- roles -----------------------------------------------------------------------

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = NO_NODE;
        }
        self.leader = NO_NODE;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_timeout();
        self.votes.clear();
        self.transferee = NO_NODE;
        self.transfer_elapsed = 0;
        self.uncommitted.clear();
        self.uncommitted_bytes = 0;
        self.progress.clear();
        self.round_ticks.clear();
        self.lease_revoked = false;
        self.bcast_pending = false;
        self.read_bcast_pending = false;
        self.fail_reads();
        self.fail_forwarded();
    }

    /// Becomes a follower in `term` of `leader`.
    pub fn become_follower(&mut self, term: u64, leader: NodeId) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
        if leader != NO_NODE {
            self.lost_elections = 0;
        }
    }

    // ----- time ------------------------------------------------------------------------

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks >= self.cfg.election_ticks {
            self.boot_sticky = false;
        }
        self.expire_forwarded();
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.promotable() && self.election_elapsed >= self.randomized_timeout {
                self.election_elapsed = 0;
                // Back off only after a real split vote, not a refused pre-vote.
                if self.role == Role::Candidate {
                    self.lost_elections += 1;
                }
                self.start_election(false);
            }
        }
    }

    // ----- messages --------------------------------------------------------------------

    /// Handles one message from a peer.
    pub fn step(&mut self, m: Message) {
        if m.to != self.id() || m.from == NO_NODE || m.from == self.id() {
            return;
        }
        if !self.check_incarnations(&m) {
            return;
        }
        // A node whose removal is committed here is refused, even if it comes back with old
        // state (ids are never reused). Its hand-over TimeoutNow is still honoured.
        if self.confs[0].1.removed.contains(&m.from) && m.body != MessageBody::TimeoutNow {
            tracing::debug!(from = m.from, "message from a removed node refused");
            return;
        }
        if m.term > self.term && self.refuse_higher_term(&m) {
            self.refused_messages += 1;
            return;
        }
        if m.term > self.term {
            if let MessageBody::Vote { transfer, .. } = m.body {
                // A freshly started node counts as having heard a leader (`boot_sticky`).
                let in_lease = self.cfg.check_quorum
                    && (self.boot_sticky
                        || (self.leader != NO_NODE
                            && self.election_elapsed < self.cfg.election_ticks));
                if !transfer && in_lease {
                    // Leader stickiness: a live leader exists, ignore the disruption.
                    return;
                }
            }
            match &m.body {
                MessageBody::Vote { pre_vote: true, .. } => {}
                MessageBody::VoteResponse {
                    pre_vote: true,
                    reject: false,
                } => {}
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Snapshot { .. } => self.become_follower(m.term, m.from),
                _ => self.become_follower(m.term, NO_NODE),
            }
        } else if m.term < self.term {
            match &m.body {
                MessageBody::Append { .. } | MessageBody::Heartbeat { .. }
                    if self.cfg.check_quorum || self.cfg.pre_vote =>
                {
                    // Tell a stale leader about the newer term so it steps down.
                    self.send(
                        m.from,
                        MessageBody::AppendResponse {
                            index: 0,
                            reject: true,
                            hint_index: 0,
                            hint_term: 0,
                        },
                    );
                }
                MessageBody::Vote { pre_vote: true, .. } => {
                    self.send(
                        m.from,
                        MessageBody::VoteResponse {
                            pre_vote: true,
                            reject: true,
                        },
                    );
                }
                _ => {}
            }
            return;
        }

        match m.body {
            MessageBody::Vote {
                pre_vote,
                last_index,
                last_term,
                ..
            } => self.handle_vote(m.from, m.term, pre_vote, last_index, last_term),
            _ => match self.role {
                Role::Leader => self.step_leader(m),
                Role::Candidate | Role::PreCandidate => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            },
        }
    }

    /// True if a message with a term above ours must not move us: its term is above
    /// [`MAX_TERM`], or it comes from outside the latest configuration (not even a learner)
    /// and is a vote request (while that configuration has members) or reaches a node that
    /// hears from a live leader.
    fn refuse_higher_term(&self, m: &Message) -> bool {
        if m.term > MAX_TERM {
            tracing::warn!(
                from = m.from,
                term = m.term,
                "message term above the maximum refused"
            );
            return true;
        }
        let conf = self.conf();
        let refuse = match m.body {
            // A learner may campaign: it was promoted in entries this node lacks yet (it may
            // hold committed entries no voter here has, e.g. when the leader that promoted it
            // is gone). Nodes outside the configuration are refused.
            MessageBody::Vote { .. } => !conf.contains(m.from) && !conf.voters.is_empty(),
            _ => {
                !conf.contains(m.from)
                    && self.leader != NO_NODE
                    && self.election_elapsed < self.cfg.election_ticks
            }
        };
        if refuse {
            tracing::warn!(
                from = m.from,
                term = m.term,
                "higher term from a non-member refused"
            );
        }
        refuse
    }

    fn step_follower(&mut self, m: Message) {
        match m.body {
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::Snapshot { .. } => {
                if self.leader != m.from {
                    // Requests forwarded to no leader or another one cannot be answered.
                    self.fail_forwarded();
                }
                self.election_elapsed = 0;
                self.boot_sticky = false;
                self.leader = m.from;
                self.lost_elections = 0;
                self.quick_prevote_retry = true;
                self.handle_leader_message(m);
            }
            MessageBody::TimeoutNow => {
                tracing::info!(node = self.id(), "leadership transfer: campaigning now");
                self.start_election(true);
            }
            MessageBody::ReadIndex { ctx } => {
                self.send(
                    m.from,
                    MessageBody::ReadIndexResponse {
                        ctx,
                        index: 0,
                        ok: false,
                    },
                );
            }
            MessageBody::ReadIndexResponse { ctx, index, ok } => {
                self.handle_read_index_response(m.from, m.term, ctx, index, ok)
            }
            _ => {}
        }
    }

    fn step_candidate(&mut self, m: Message) {
        match m.body {
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::Snapshot { .. } => {
                let term = self.term;
                self.become_follower(term, m.from);
                self.boot_sticky = false;
                self.handle_leader_message(m);
            }
            MessageBody::VoteResponse { pre_vote, reject }
                if pre_vote == (self.role == Role::PreCandidate) =>
            {
                self.votes.insert(m.from, !reject);
                self.check_votes();
            }
            MessageBody::ReadIndex { ctx } => {
                self.send(
                    m.from,
                    MessageBody::ReadIndexResponse {
                        ctx,
                        index: 0,
                        ok: false,
                    },
                );
            }
            MessageBody::ReadIndexResponse { ctx, index, ok } => {
                self.handle_read_index_response(m.from, m.term, ctx, index, ok)
            }
            _ => {}
        }
    }

    // ----- leader ----------------------------------------------------------------------

    fn step_leader(&mut self, m: Message) {
        let from = m.from;
        if let Some(p) = self.progress.get_mut(&from) {
            p.recent_active = true;
        }
        match m.body {
            MessageBody::AppendResponse {
                index,
                reject,
                hint_index,
                hint_term,
            } => self.handle_append_response(from, index, reject, hint_index, hint_term),
            MessageBody::HeartbeatResponse { read_ctx } => {
                let behind = match self.progress.get_mut(&from) {
                    Some(p) => {
                        p.probe_sent = false;
                        if p.state == ProgressState::Snapshot {
                            if let Some(s) = p.snapshot.as_mut() {
                                s.stalled_rounds += 1;
                                if s.stalled_rounds >= 3 {
                                    s.stalled_rounds = 0;
                                    s.sent = s.acked;
                                    s.sent_done = false;
                                }
                            }
                            true
                        } else {
                            if p.state == ProgressState::Replicate && p.inflights.full() {
                                // Acknowledgements may have been lost: make room to probe.
                                p.inflights.free_first();
                            }
                            p.matched < self.log.last_index()
                        }
                    }
                    None => false,
                };
                if behind {
                    self.send_append(from);
                }
                // Only rounds actually sent count (a bogus higher round would extend the lease).
                if read_ctx > 0 && read_ctx <= self.read_round {
                    let e = self.read_acks.entry(from).or_insert(0);
                    *e = (*e).max(read_ctx);
                    self.advance_reads();
                }
            }
            MessageBody::SnapshotResponse {
                index,
                next_offset,
                done,
                reject,
            } => self.handle_snapshot_response(from, index, next_offset, done, reject),
            MessageBody::ReadIndex { ctx } => self.read_index_from(ctx, from),
            MessageBody::ReadIndexResponse { ctx, index, ok } => {
                self.handle_read_index_response(from, m.term, ctx, index, ok)
            }
            _ => {}
        }
    }
}
