//! The Raft protocol state machine: elections, replication, commitment, membership, reads
//! and leadership transfer. Driven by [`super::RawNode`]; never blocks and never does I/O.

use super::confchange::apply_conf_change;
use super::config::Config;
use super::log::RaftLog;
use super::message::{Message, MessageBody};
use super::progress::{Progress, ProgressState};
use super::quorum::{self, VoteResult};
use super::rng::Rng;
use super::storage::{Storage, StorageError};
use super::types::{
    ConfChange, ConfState, Entry, EntryKind, HardState, NodeId, SnapshotMeta, NO_NODE,
};
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

#[derive(Debug, Clone)]
struct PendingRead {
    ctx: u64,
    index: u64,
    from: NodeId,
    round: u64,
}

/// A read-index request this node forwarded to a leader and still waits for.
#[derive(Debug, Clone)]
struct Forwarded {
    /// The leader the request went to.
    leader: NodeId,
    /// The term of that leader when the request was sent.
    term: u64,
    /// This node's tick count when the request was sent.
    sent: u64,
}

#[derive(Debug, Clone)]
struct Incoming {
    meta: SnapshotMeta,
    next_offset: u64,
    complete: bool,
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
        self.conf().is_voter(self.id()) && !self.removed
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
        });
    }

    fn send_after_persist(&mut self, to: NodeId, term: u64, body: MessageBody) {
        self.msgs_after_persist.push(Message {
            from: self.id(),
            to,
            term,
            body,
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

    /// Fails every forwarded read: its leader or term is gone, so an answer can no longer be
    /// trusted (or may never come).
    fn fail_forwarded(&mut self) {
        for ctx in std::mem::take(&mut self.forwarded).into_keys() {
            self.read_states.push(ReadState { ctx, index: None });
        }
    }

    fn fail_reads(&mut self) {
        for r in self.reads.drain(..) {
            if r.from == self.cfg.id {
                self.read_states.push(ReadState {
                    ctx: r.ctx,
                    index: None,
                });
            }
        }
        let waiting: Vec<_> = self.reads_waiting.drain(..).collect();
        for (ctx, from) in waiting {
            if from == self.cfg.id {
                self.read_states.push(ReadState { ctx, index: None });
            }
        }
        self.read_acks.clear();
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

    fn become_pre_candidate(&mut self) {
        // Does not change term or vote; forgets the leader so its own pre-votes are not
        // refused by its own stickiness.
        self.votes.clear();
        self.progress.clear();
        self.role = Role::PreCandidate;
        self.leader = NO_NODE;
        self.fail_reads();
        self.fail_forwarded();
    }

    fn become_candidate(&mut self) {
        // start_election checked term < MAX_TERM; a pre-candidate's term does not move.
        let term = self.term.saturating_add(1);
        self.reset(term);
        self.vote = self.id();
        self.role = Role::Candidate;
    }

    fn become_leader(&mut self) {
        let term = self.term;
        self.reset(term);
        self.role = Role::Leader;
        self.leader = self.id();
        self.lost_elections = 0;
        let last = self.log.last_index();
        for id in self.member_ids() {
            let mut p = Progress::new(
                last + 1,
                self.cfg.max_inflight_msgs,
                self.cfg.max_inflight_bytes,
            );
            p.recent_active = true;
            if id == self.id() {
                p.matched = self.log.persisted;
                p.become_replicate();
            }
            self.progress.insert(id, p);
        }
        // No membership change until an entry of this term commits (single-server bug fix).
        let noop = Entry {
            term: self.term,
            index: last + 1,
            kind: EntryKind::Noop,
            data: Vec::new().into(),
        };
        self.pending_conf_index = noop.index;
        self.append_local(vec![noop]);
        self.bcast_append();
    }

    fn member_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .confs
            .iter()
            .flat_map(|(_, c)| c.all_members())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
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

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.transferee != NO_NODE {
            self.transfer_elapsed += 1;
            if self.transfer_elapsed >= self.cfg.election_ticks {
                self.transferee = NO_NODE;
                self.transfer_elapsed = 0;
            }
        }
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let id = self.id();
                let active = |n: NodeId| {
                    n == id
                        || self
                            .progress
                            .get(&n)
                            .map(|p| p.recent_active)
                            .unwrap_or(false)
                };
                if !quorum::is_quorum(self.conf(), active) {
                    tracing::info!(
                        node = id,
                        term = self.term,
                        "no quorum heard; stepping down"
                    );
                    let term = self.term;
                    self.become_follower(term, NO_NODE);
                    return;
                }
                for (n, p) in self.progress.iter_mut() {
                    p.recent_active = *n == id;
                }
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    /// Starts a (pre-)election; `transfer` skips pre-vote and stickiness.
    fn start_election(&mut self, transfer: bool) {
        if !self.promotable() {
            return;
        }
        if self.term >= MAX_TERM {
            tracing::error!(
                node = self.id(),
                term = self.term,
                "term at its maximum: not campaigning"
            );
            return;
        }
        if self.cfg.pre_vote && !transfer {
            self.become_pre_candidate();
            self.reset_timeout();
            if std::mem::take(&mut self.quick_prevote_retry) {
                let et = self.cfg.election_ticks;
                self.randomized_timeout = self.rng.range((et / 4).max(1), (et / 2).max(2));
            }
            self.votes.insert(self.id(), true);
            self.request_votes(true, false);
        } else {
            self.become_candidate();
            self.votes.insert(self.id(), true);
            self.request_votes(false, transfer);
        }
        self.check_votes();
    }

    fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
        let term = if pre_vote {
            self.term.saturating_add(1)
        } else {
            self.term
        };
        let (li, lt) = (self.log.last_index(), self.log.last_term());
        let voters: Vec<NodeId> = {
            let c = self.conf();
            let mut v: Vec<NodeId> = c.voters.iter().chain(&c.voters_outgoing).copied().collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        for to in voters {
            if to == self.id() {
                continue;
            }
            let body = MessageBody::Vote {
                pre_vote,
                last_index: li,
                last_term: lt,
                transfer,
            };
            if pre_vote {
                self.msgs.push(Message {
                    from: self.id(),
                    to,
                    term,
                    body,
                });
            } else {
                // The candidate's own term and vote must be durable before it asks.
                self.send_after_persist(to, term, body);
            }
        }
    }

    fn check_votes(&mut self) {
        match quorum::vote_result(self.conf(), &self.votes) {
            VoteResult::Won => {
                if self.role == Role::PreCandidate {
                    self.become_candidate();
                    self.votes.insert(self.id(), true);
                    self.request_votes(false, false);
                    self.check_votes();
                } else {
                    self.become_leader();
                }
            }
            VoteResult::Lost => {
                let term = self.term;
                if self.role == Role::Candidate {
                    self.lost_elections += 1;
                }
                self.become_follower(term, NO_NODE);
            }
            VoteResult::Pending => {}
        }
    }

    // ----- messages --------------------------------------------------------------------

    /// Handles one message from a peer.
    pub fn step(&mut self, m: Message) {
        if m.to != self.id() || m.from == NO_NODE || m.from == self.id() {
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
    /// [`MAX_TERM`], or it comes from outside the latest configuration and is a vote request
    /// (while that configuration has members) or reaches a node that hears from a live leader.
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
            MessageBody::Vote { .. } => !conf.is_voter(m.from) && !conf.voters.is_empty(),
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

    fn handle_vote(&mut self, from: NodeId, term: u64, pre_vote: bool, li: u64, lt: u64) {
        let can_vote = self.vote == from
            || (self.vote == NO_NODE && self.leader == NO_NODE)
            || (pre_vote && term > self.term);
        // Tie-break concurrent pre-campaigns for the same term with equal logs: the higher
        // id goes ahead, so two nodes that time out together do not split the real vote.
        let yield_to_higher = pre_vote
            && self.role == Role::PreCandidate
            && Some(term) == self.term.checked_add(1)
            && li == self.log.last_index()
            && lt == self.log.last_term()
            && from < self.id();
        if can_vote && !yield_to_higher && self.log.is_up_to_date(li, lt) {
            if pre_vote {
                // Granting a pre-vote changes nothing here (no timer reset).
                self.msgs.push(Message {
                    from: self.id(),
                    to: from,
                    term,
                    body: MessageBody::VoteResponse {
                        pre_vote: true,
                        reject: false,
                    },
                });
            } else {
                self.election_elapsed = 0;
                self.vote = from;
                self.send_after_persist(
                    from,
                    self.term,
                    MessageBody::VoteResponse {
                        pre_vote: false,
                        reject: false,
                    },
                );
            }
        } else {
            self.send(
                from,
                MessageBody::VoteResponse {
                    pre_vote,
                    reject: true,
                },
            );
        }
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

    fn handle_leader_message(&mut self, m: Message) {
        match m.body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.handle_append(m.from, prev_index, prev_term, entries, commit),
            MessageBody::Heartbeat { commit, read_ctx } => {
                let c = commit.min(self.log.last_index());
                self.log.commit_to(c);
                self.send(m.from, MessageBody::HeartbeatResponse { read_ctx });
            }
            MessageBody::Snapshot {
                meta,
                offset,
                data,
                done,
            } => self.handle_snapshot_chunk(m.from, meta, offset, data, done),
            _ => {}
        }
        // The commit index may have moved: configurations it covers are now committed.
        self.prune_confs();
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    ) {
        if self.incoming.as_ref().is_some_and(|i| i.complete) {
            // A received snapshot is being installed; the leader will retry.
            return;
        }
        if prev_index < self.log.committed {
            let idx = self.log.committed;
            self.send_after_persist(
                from,
                self.term,
                MessageBody::AppendResponse {
                    index: idx,
                    reject: false,
                    hint_index: 0,
                    hint_term: 0,
                },
            );
            return;
        }
        let old_last = self.log.last_index();
        match self
            .log
            .maybe_append(prev_index, prev_term, commit, &entries)
        {
            Some((last_new, first_appended)) => {
                if first_appended != 0 {
                    if first_appended <= old_last {
                        self.truncate_confs(first_appended);
                    }
                    let skip = (first_appended - prev_index - 1) as usize;
                    for e in &entries[skip..] {
                        self.note_appended(e);
                    }
                }
                self.send_after_persist(
                    from,
                    self.term,
                    MessageBody::AppendResponse {
                        index: last_new,
                        reject: false,
                        hint_index: 0,
                        hint_term: 0,
                    },
                );
            }
            None => {
                let probe = prev_index.min(self.log.last_index());
                let (hint_index, hint_term) = self.log.find_conflict_by_term(probe, prev_term);
                self.send(
                    from,
                    MessageBody::AppendResponse {
                        index: prev_index,
                        reject: true,
                        hint_index,
                        hint_term,
                    },
                );
            }
        }
    }

    fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Vec<u8>,
        done: bool,
    ) {
        let max = self.cfg.max_snapshot_bytes;
        let end = offset.checked_add(data.len() as u64);
        if meta.size > max || end.is_none_or(|e| e > max) {
            tracing::warn!(
                from,
                size = meta.size,
                max,
                "snapshot above max_snapshot_bytes refused"
            );
            self.refused_messages += 1;
            return;
        }
        if meta.index <= self.log.committed {
            // Already have everything the snapshot covers.
            self.send_after_persist(
                from,
                self.term,
                MessageBody::SnapshotResponse {
                    index: meta.index,
                    next_offset: meta.size,
                    done: true,
                    reject: false,
                },
            );
            return;
        }
        let same = self
            .incoming
            .as_ref()
            .is_some_and(|i| i.meta.same_snapshot(&meta));
        if !same {
            if offset != 0 {
                self.send(
                    from,
                    MessageBody::SnapshotResponse {
                        index: meta.index,
                        next_offset: 0,
                        done: false,
                        reject: true,
                    },
                );
                return;
            }
            self.incoming = Some(Incoming {
                meta: meta.clone(),
                next_offset: 0,
                complete: false,
            });
        }
        let inc = self.incoming.as_mut().expect("incoming snapshot");
        if inc.complete || offset != inc.next_offset {
            let next = inc.next_offset;
            if !inc.complete {
                self.send(
                    from,
                    MessageBody::SnapshotResponse {
                        index: meta.index,
                        next_offset: next,
                        done: false,
                        reject: false,
                    },
                );
            }
            return;
        }
        inc.next_offset += data.len() as u64;
        inc.complete = done;
        let next = inc.next_offset;
        self.snapshot_chunks.push(SnapshotChunk {
            meta: meta.clone(),
            offset,
            data,
            done,
        });
        if !done {
            self.send_after_persist(
                from,
                self.term,
                MessageBody::SnapshotResponse {
                    index: meta.index,
                    next_offset: next,
                    done: false,
                    reject: false,
                },
            );
        }
    }

    /// Storage finished (or failed) installing a fully received snapshot.
    pub fn snapshot_received(&mut self, meta: &SnapshotMeta, ok: bool) {
        let Some(inc) = self.incoming.take() else {
            return;
        };
        if !inc.meta.same_snapshot(meta) {
            self.incoming = Some(inc);
            return;
        }
        let to = self.leader;
        if !ok {
            if to != NO_NODE {
                self.send(
                    to,
                    MessageBody::SnapshotResponse {
                        index: meta.index,
                        next_offset: 0,
                        done: false,
                        reject: true,
                    },
                );
            }
            return;
        }
        // Storage has dropped the entries the snapshot covers; the state machine must
        // restore it unless it has already applied past it.
        if meta.index > self.log.applying {
            if self.log.match_term(meta.index, meta.term) {
                self.log.commit_to(meta.index);
                self.log.applying = meta.index;
            } else {
                self.log.restore(meta.clone());
            }
            // The snapshot's configuration is the committed one up to its index. Local
            // configurations at or below it may come from a log the snapshot replaced (the
            // store may already answer `match_term` from the new snapshot), so they must
            // not become "committed" here; later ones still in the log stay.
            let last = self.log.last_index();
            let tail: Vec<_> = self
                .confs
                .drain(..)
                .filter(|c| c.0 > meta.index && c.0 <= last)
                .collect();
            self.confs = vec![(meta.conf_index, meta.conf.clone())];
            self.confs.extend(tail);
            self.pending_restore = Some(meta.clone());
        }
        if to != NO_NODE {
            self.send_after_persist(
                to,
                self.term,
                MessageBody::SnapshotResponse {
                    index: meta.index,
                    next_offset: meta.size,
                    done: true,
                    reject: false,
                },
            );
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

    fn handle_append_response(
        &mut self,
        from: NodeId,
        index: u64,
        reject: bool,
        hint_index: u64,
        hint_term: u64,
    ) {
        if !self.progress.contains_key(&from) {
            return;
        }
        if reject {
            if index == 0 && hint_index == 0 {
                return; // notification of a higher term handled by the term check
            }
            let next_probe = if hint_term > 0 {
                self.log.find_conflict_by_term(hint_index, hint_term).0 + 1
            } else {
                hint_index + 1
            };
            let p = self.progress.get_mut(&from).expect("progress");
            if p.maybe_decr_to(index, next_probe) {
                if p.state == ProgressState::Replicate {
                    p.become_probe();
                }
                self.send_append(from);
            }
            return;
        }
        let p = self.progress.get_mut(&from).expect("progress");
        let moved = p.maybe_update(index);
        p.inflights.free_to(index);
        if moved {
            match p.state {
                ProgressState::Probe => p.become_replicate(),
                ProgressState::Snapshot => {
                    if p.snapshot
                        .as_ref()
                        .is_none_or(|s| p.matched >= s.meta.index)
                    {
                        p.become_probe();
                    }
                }
                ProgressState::Replicate => {}
            }
            if self.maybe_commit() {
                self.bcast_pending = true;
            } else {
                self.maybe_send_append(from, false);
            }
            if from == self.transferee && self.progress[&from].matched == self.log.last_index() {
                self.send(from, MessageBody::TimeoutNow);
            }
        } else {
            self.maybe_send_append(from, false);
        }
    }

    fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        index: u64,
        next_offset: u64,
        done: bool,
        reject: bool,
    ) {
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        if p.state != ProgressState::Snapshot {
            return;
        }
        let Some(s) = p.snapshot.as_mut() else { return };
        if s.meta.index != index {
            return;
        }
        s.stalled_rounds = 0;
        if done {
            p.matched = p.matched.max(index);
            p.become_probe();
            p.next = p.next.max(index + 1);
            self.send_append(from);
            return;
        }
        if reject {
            s.acked = next_offset;
            s.sent = next_offset;
            s.sent_done = false;
        } else {
            s.acked = s.acked.max(next_offset);
            if s.sent < s.acked || next_offset < s.acked {
                s.sent = s.acked;
            }
            if next_offset < s.sent && next_offset == s.acked {
                // The follower asks to resume from where its durable prefix ends.
                s.sent = next_offset;
                s.sent_done = false;
            }
        }
        self.send_snapshot_chunks(from);
    }

    /// Appends entries at the leader and schedules replication.
    fn append_local(&mut self, mut entries: Vec<Entry>) {
        let first = self.log.last_index() + 1;
        for (next, e) in (first..).zip(entries.iter_mut()) {
            e.term = self.term;
            e.index = next;
        }
        for e in &entries {
            if e.kind == EntryKind::Normal {
                self.uncommitted.push_back((e.index, e.size()));
                self.uncommitted_bytes += e.size();
            }
        }
        self.log.append(&entries);
        for e in &entries {
            self.note_appended(e);
        }
        self.bcast_pending = true;
    }

    fn maybe_commit(&mut self) -> bool {
        let id = self.id();
        let persisted = self.log.persisted;
        let prog = &self.progress;
        let idx = quorum::committed_index(self.conf(), |n| {
            if n == id {
                persisted
            } else {
                prog.get(&n).map(|p| p.matched).unwrap_or(0)
            }
        });
        // Only entries of the current term are committed by counting (Figure 8).
        if idx > self.log.committed && self.log.term(idx) == Ok(self.term) {
            let first_own_term = self
                .log
                .term(self.log.committed)
                .map(|t| t != self.term)
                .unwrap_or(true);
            self.log.commit_to(idx);
            self.on_committed(first_own_term);
            return true;
        }
        false
    }

    fn on_committed(&mut self, first_own_term: bool) {
        let c = self.log.committed;
        while let Some(&(i, b)) = self.uncommitted.front() {
            if i > c {
                break;
            }
            self.uncommitted_bytes -= b;
            self.uncommitted.pop_front();
        }
        self.prune_confs();
        if first_own_term {
            let waiting: Vec<_> = self.reads_waiting.drain(..).collect();
            for (ctx, from) in waiting {
                self.read_index_from(ctx, from);
            }
        }
        if self.role != Role::Leader {
            return;
        }
        // Leave joint consensus automatically once C_old,new commits.
        if self.conf().is_joint() && self.conf_index() <= c && self.pending_conf_index <= c {
            let data = encode_conf_change(&ConfChange::LeaveJoint);
            let idx = self.log.last_index() + 1;
            self.pending_conf_index = idx;
            self.append_local(vec![Entry {
                term: self.term,
                index: idx,
                kind: EntryKind::ConfChange,
                data: data.into(),
            }]);
        }
        // A leader removed by a committed configuration hands over and steps down.
        if !self.conf().is_voter(self.id()) && self.conf_index() <= c && !self.conf().is_joint() {
            tracing::info!(
                node = self.id(),
                "removed from the configuration; stepping down"
            );
            if let Some(to) = self.most_up_to_date_voter() {
                self.send_append(to);
                self.send(to, MessageBody::TimeoutNow);
            }
            let term = self.term;
            self.become_follower(term, NO_NODE);
            self.removed = !self.conf().contains(self.id());
        }
    }

    fn most_up_to_date_voter(&self) -> Option<NodeId> {
        let id = self.id();
        self.conf()
            .voters
            .iter()
            .filter(|&&v| v != id)
            .max_by_key(|&&v| self.progress.get(&v).map(|p| p.matched).unwrap_or(0))
            .copied()
    }

    /// Sends what a follower needs next (entries, or a snapshot), even if that is an empty
    /// append (to probe or carry the commit index).
    fn send_append(&mut self, to: NodeId) {
        self.maybe_send_append(to, true);
    }

    /// Sends what a follower needs next; with `send_if_empty` false nothing is sent when
    /// there are no new entries (no append/ack ping-pong).
    fn maybe_send_append(&mut self, to: NodeId, send_if_empty: bool) {
        if to == self.id() {
            return;
        }
        let Some(p) = self.progress.get(&to) else {
            return;
        };
        if p.state == ProgressState::Snapshot {
            self.send_snapshot_chunks(to);
            return;
        }
        if p.is_paused() {
            return;
        }
        let next = p.next;
        let prev_index = next - 1;
        let prev_term = self.log.term(prev_index);
        let entries = self.log.entries(next, self.cfg.max_msg_bytes);
        let (prev_term, entries) = match (prev_term, entries) {
            (Ok(_), Ok(e)) if e.is_empty() && !send_if_empty => return,
            (Ok(t), Ok(e)) => (t, e),
            (Err(StorageError::Compacted), _) | (_, Err(StorageError::Compacted)) => {
                self.start_snapshot(to);
                return;
            }
            (Ok(t), Err(StorageError::Unavailable)) => (t, Vec::new()),
            (a, b) => {
                tracing::error!(?a, ?b, "cannot read log for replication");
                return;
            }
        };
        let commit = self.log.committed;
        let p = self.progress.get_mut(&to).expect("progress");
        let bytes: u64 = entries.iter().map(Entry::size).sum();
        if let Some(last) = entries.last() {
            if p.state == ProgressState::Replicate {
                p.next = last.index + 1;
                p.inflights.add(last.index, bytes);
            } else {
                p.probe_sent = true;
            }
        } else if p.state == ProgressState::Probe {
            p.probe_sent = true;
        }
        self.send(
            to,
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
    }

    fn start_snapshot(&mut self, to: NodeId) {
        let meta = self.log.storage.snapshot_meta();
        if meta.index == 0 {
            tracing::error!(to, "log compacted but no snapshot to send");
            return;
        }
        tracing::debug!(to, index = meta.index, "sending snapshot");
        self.progress
            .get_mut(&to)
            .expect("progress")
            .become_snapshot(meta);
        self.send_snapshot_chunks(to);
    }

    fn send_snapshot_chunks(&mut self, to: NodeId) {
        loop {
            let Some(p) = self.progress.get(&to) else {
                return;
            };
            let Some(s) = p.snapshot.as_ref() else { return };
            let window = self.cfg.snapshot_window * self.cfg.snapshot_chunk_bytes as u64;
            if s.sent_done || s.sent - s.acked >= window {
                return;
            }
            let (index, offset, size) = (s.meta.index, s.sent, s.meta.size);
            let data =
                match self
                    .log
                    .storage
                    .snapshot_chunk(index, offset, self.cfg.snapshot_chunk_bytes)
                {
                    Ok(d) => d,
                    Err(StorageError::SnapshotOutOfDate) => {
                        // A newer snapshot replaced it: start over with that one.
                        self.start_snapshot(to);
                        return;
                    }
                    Err(e) => {
                        tracing::error!(%e, "cannot read snapshot chunk");
                        return;
                    }
                };
            let done = offset + data.len() as u64 >= size;
            let p = self.progress.get_mut(&to).expect("progress");
            let s = p.snapshot.as_mut().expect("snapshot transfer");
            let meta = s.meta.clone();
            s.sent += data.len() as u64;
            s.sent_done = done;
            self.send(
                to,
                MessageBody::Snapshot {
                    meta,
                    offset,
                    data,
                    done,
                },
            );
            if done {
                return;
            }
        }
    }

    fn bcast_append(&mut self) {
        let ids: Vec<NodeId> = self.progress.keys().copied().collect();
        for id in ids {
            self.send_append(id);
        }
    }

    /// Broadcasts a heartbeat round: every broadcast gets the next round number, and the
    /// tick it was sent at is kept for lease reads.
    fn bcast_heartbeat(&mut self) {
        self.read_round += 1;
        self.read_bcast_pending = false;
        let read_ctx = self.read_round;
        let now = self.ticks;
        if self.round_ticks.back().is_none_or(|&(_, t)| t != now) {
            self.round_ticks.push_back((read_ctx, now));
        }
        // Rounds sent an election timeout ago or earlier can no longer hold a lease.
        let et = self.cfg.election_ticks;
        while self
            .round_ticks
            .front()
            .is_some_and(|&(_, t)| now - t >= et)
        {
            self.round_ticks.pop_front();
        }
        let ids: Vec<NodeId> = self.progress.keys().copied().collect();
        let committed = self.log.committed;
        for id in ids {
            if id == self.id() {
                continue;
            }
            let m = self.progress[&id].matched;
            self.send(
                id,
                MessageBody::Heartbeat {
                    commit: m.min(committed),
                    read_ctx,
                },
            );
        }
        // A single voter acknowledges its own round at once.
        self.advance_reads();
    }

    /// True if batched appends or a read round wait for [`Self::flush`].
    pub fn has_pending_broadcast(&self) -> bool {
        self.role == Role::Leader && (self.bcast_pending || self.read_bcast_pending)
    }

    /// Sends pending broadcasts (batched appends and read rounds); called once per ready.
    pub fn flush(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        if self.bcast_pending {
            self.bcast_pending = false;
            self.bcast_append();
        }
        if self.read_bcast_pending {
            self.bcast_heartbeat();
        }
    }

    /// Storage reported entries/hard state durable up to `(index, term)`.
    pub fn on_persisted(&mut self, index: u64, term: u64) {
        self.log.stable_to(index, term);
        if self.role == Role::Leader {
            let id = self.id();
            let persisted = self.log.persisted;
            if let Some(p) = self.progress.get_mut(&id) {
                p.matched = p.matched.max(persisted);
                p.next = p.next.max(persisted + 1);
            }
            if self.maybe_commit() {
                self.bcast_pending = true;
            }
        }
    }

    // ----- proposals -------------------------------------------------------------------

    /// Appends a batch of commands; returns the index of the first one.
    pub fn propose(&mut self, commands: Vec<Vec<u8>>) -> Result<u64, ProposeError> {
        self.check_can_propose()?;
        let bytes: u64 = commands.iter().map(|c| c.len() as u64 + 24).sum();
        if self.uncommitted_bytes > 0
            && self.uncommitted_bytes + bytes > self.cfg.max_uncommitted_bytes
        {
            return Err(ProposeError::Busy);
        }
        let first = self.log.last_index() + 1;
        let entries = commands
            .into_iter()
            .map(|data| Entry {
                term: 0,
                index: 0,
                kind: EntryKind::Normal,
                data: data.into(),
            })
            .collect();
        self.append_local(entries);
        Ok(first)
    }

    fn check_can_propose(&self) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader(self.leader));
        }
        if self.transferee != NO_NODE {
            return Err(ProposeError::TransferInProgress);
        }
        Ok(())
    }

    /// Proposes a membership change. `expected` is the configuration id the caller saw
    /// (compare-and-set); the change is refused if the configuration moved.
    pub fn propose_conf_change(
        &mut self,
        cc: ConfChange,
        expected: Option<u64>,
    ) -> Result<u64, ProposeError> {
        self.check_can_propose()?;
        if let Some(x) = expected {
            if x != self.conf_index() {
                return Err(ProposeError::ConfMismatch {
                    current: self.conf_index(),
                });
            }
        }
        if self.pending_conf_index > self.log.committed || self.confs.len() > 1 {
            return Err(ProposeError::ConfChangeInProgress);
        }
        apply_conf_change(self.conf(), &cc)
            .map_err(|e| ProposeError::InvalidConfChange(e.to_string()))?;
        let idx = self.log.last_index() + 1;
        self.pending_conf_index = idx;
        self.append_local(vec![Entry {
            term: self.term,
            index: idx,
            kind: EntryKind::ConfChange,
            data: encode_conf_change(&cc).into(),
        }]);
        Ok(idx)
    }

    /// Called for every entry appended to the log: configurations take effect on append.
    fn note_appended(&mut self, e: &Entry) {
        if e.kind != EntryKind::ConfChange {
            return;
        }
        let Some(cc) = decode_conf_change(&e.data) else {
            tracing::error!(index = e.index, "undecodable configuration entry ignored");
            return;
        };
        match apply_conf_change(self.conf(), &cc) {
            Ok(conf) => {
                self.confs.push((e.index, conf));
                self.on_conf_changed();
            }
            Err(err) => tracing::warn!(index = e.index, %err, "configuration entry has no effect"),
        }
    }

    fn truncate_confs(&mut self, from: u64) {
        let before = self.confs.len();
        while self.confs.len() > 1 && self.confs.last().is_some_and(|c| c.0 >= from) {
            self.confs.pop();
        }
        if self.confs.len() != before {
            self.on_conf_changed();
        }
    }

    fn prune_confs(&mut self) {
        let c = self.log.committed;
        while self.confs.len() > 1 && self.confs[1].0 <= c {
            self.confs.remove(0);
        }
        if self.role != Role::Leader {
            return;
        }
        // Drop progress of nodes no longer in any pending or committed configuration.
        let members = self.member_ids();
        self.progress.retain(|id, _| members.contains(id));
    }

    fn on_conf_changed(&mut self) {
        if self.role == Role::Leader {
            let last = self.log.last_index();
            for id in self.member_ids() {
                self.progress.entry(id).or_insert_with(|| {
                    let mut p = Progress::new(
                        last,
                        self.cfg.max_inflight_msgs,
                        self.cfg.max_inflight_bytes,
                    );
                    p.recent_active = true;
                    p
                });
            }
        } else if self.role != Role::Follower && !self.promotable() {
            let term = self.term;
            self.become_follower(term, NO_NODE);
        }
        if self.conf().contains(self.id()) {
            self.removed = false;
        }
    }

    /// Starts a leadership transfer to `to` (or to the most up-to-date voter when `None`).
    pub fn transfer_leader(&mut self, to: Option<NodeId>) -> Result<NodeId, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader(self.leader));
        }
        let to = match to {
            Some(t) => t,
            None => self
                .most_up_to_date_voter()
                .ok_or_else(|| ProposeError::Invalid("no other voter to transfer to".into()))?,
        };
        if to == self.id() {
            return Err(ProposeError::Invalid("already the leader".into()));
        }
        if !self.conf().is_voter(to) {
            return Err(ProposeError::Invalid(format!("node {to} is not a voter")));
        }
        self.transferee = to;
        self.transfer_elapsed = 0;
        // The lease is given up the moment a transfer starts, for the rest of this term.
        self.lease_revoked = true;
        if self.progress.get(&to).map(|p| p.matched) == Some(self.log.last_index()) {
            self.send(to, MessageBody::TimeoutNow);
        } else {
            self.send_append(to);
        }
        Ok(to)
    }

    // ----- reads -----------------------------------------------------------------------

    /// Requests a linearizable read index; the answer arrives as a [`ReadState`].
    ///
    /// A follower forwards the request to its leader and tracks it until the answer, a
    /// change of leader or term, or `forwarded_read_timeout_ticks`; at most
    /// `max_forwarded_reads` are tracked at once (beyond that: [`ProposeError::Busy`]).
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        match self.role {
            Role::Leader => {
                self.read_index_from(ctx, self.id());
                Ok(())
            }
            _ if self.leader != NO_NODE => {
                if self.forwarded.contains_key(&ctx) {
                    return Err(ProposeError::Invalid(format!(
                        "read context {ctx} is already in flight"
                    )));
                }
                if self.forwarded.len() >= self.cfg.max_forwarded_reads {
                    return Err(ProposeError::Busy);
                }
                let leader = self.leader;
                self.forwarded.insert(
                    ctx,
                    Forwarded {
                        leader,
                        term: self.term,
                        sent: self.ticks,
                    },
                );
                self.send(leader, MessageBody::ReadIndex { ctx });
                Ok(())
            }
            _ => Err(ProposeError::NotLeader(NO_NODE)),
        }
    }

    /// Forwarded read requests still waiting for their leader's answer.
    pub fn forwarded_reads(&self) -> usize {
        self.forwarded.len()
    }

    /// Completes a forwarded read with a leader's answer, if the answer is for a request
    /// still tracked and comes from the leader and term it was sent to; anything else (a
    /// late answer, one from before a restart, another node or term) is ignored and counted.
    fn handle_read_index_response(
        &mut self,
        from: NodeId,
        term: u64,
        ctx: u64,
        index: u64,
        ok: bool,
    ) {
        match self.forwarded.get(&ctx) {
            Some(f) if f.leader == from && f.term == term => {
                self.forwarded.remove(&ctx);
                self.read_states.push(ReadState {
                    ctx,
                    index: ok.then_some(index),
                });
            }
            _ => {
                self.ignored_read_responses += 1;
                tracing::debug!(from, term, ctx, "unexpected read-index response ignored");
            }
        }
    }

    /// Fails forwarded reads unanswered for `forwarded_read_timeout_ticks`.
    fn expire_forwarded(&mut self) {
        if self.forwarded.is_empty() {
            return;
        }
        let timeout = self.cfg.forwarded_read_timeout();
        let now = self.ticks;
        let expired: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, f)| now - f.sent >= timeout)
            .map(|(&ctx, _)| ctx)
            .collect();
        for ctx in expired {
            self.forwarded.remove(&ctx);
            self.read_states.push(ReadState { ctx, index: None });
        }
    }

    fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed) == Ok(self.term)
    }

    fn read_index_from(&mut self, ctx: u64, from: NodeId) {
        if !self.committed_in_term() {
            self.reads_waiting.push((ctx, from));
            return;
        }
        let index = self.log.committed;
        if let Some(drift) = self.cfg.lease_read_max_drift {
            if self.lease_valid(drift) {
                self.answer_read(ctx, from, index);
                return;
            }
        }
        // Confirmed by the next round broadcast (sent after this request arrived).
        self.reads.push_back(PendingRead {
            ctx,
            index,
            from,
            round: self.read_round + 1,
        });
        self.read_bcast_pending = true;
    }

    /// The highest heartbeat round a quorum has acknowledged (the leader's own latest
    /// round counts for itself).
    fn quorum_acked_round(&self) -> u64 {
        let id = self.id();
        let acks = &self.read_acks;
        let own = self.read_round;
        quorum::committed_index(self.conf(), |n| {
            if n == id {
                own
            } else {
                acks.get(&n).copied().unwrap_or(0)
            }
        })
    }

    /// The lease holds while less than `election_ticks - drift` ticks passed since the
    /// *send* time of the latest round a quorum acknowledged: every follower of that quorum
    /// received it later and refuses votes for an election timeout after that. Late acks
    /// and other follower messages cannot extend it; a transfer revokes it for the term.
    fn lease_valid(&self, drift: u64) -> bool {
        if self.transferee != NO_NODE || self.lease_revoked {
            return false;
        }
        let acked = self.quorum_acked_round();
        if acked == 0 {
            return false;
        }
        let Some(&(_, sent)) = self.round_ticks.iter().rev().find(|&&(r, _)| r <= acked) else {
            return false; // sent too long ago to be remembered
        };
        self.ticks - sent < self.cfg.election_ticks.saturating_sub(drift)
    }

    fn advance_reads(&mut self) {
        let round = self.quorum_acked_round();
        while let Some(r) = self.reads.front() {
            if r.round > round {
                break;
            }
            let r = self.reads.pop_front().expect("read");
            self.answer_read(r.ctx, r.from, r.index);
        }
    }

    fn answer_read(&mut self, ctx: u64, from: NodeId, index: u64) {
        if from == self.id() {
            self.read_states.push(ReadState {
                ctx,
                index: Some(index),
            });
        } else {
            self.send(
                from,
                MessageBody::ReadIndexResponse {
                    ctx,
                    index,
                    ok: true,
                },
            );
        }
    }
}

/// Encodes a membership change for a log entry.
pub fn encode_conf_change(cc: &ConfChange) -> Vec<u8> {
    postcard::to_stdvec(cc).expect("encoding a configuration change")
}

/// Decodes a membership change from a log entry.
pub fn decode_conf_change(data: &[u8]) -> Option<ConfChange> {
    postcard::from_bytes(data).ok()
}
