//! Elections: pre-vote and vote campaigns, vote granting, the leader's tick (heartbeats and
//! check-quorum step-down), and leadership transfer (etcd-io/raft: `raft.go` campaign/poll).

use super::{ProposeError, Raft, Role, MAX_TERM};
use crate::core::message::{Message, MessageBody};
use crate::core::progress::Progress;
use crate::core::quorum::{self, VoteResult};
use crate::core::storage::Storage;
use crate::core::types::{Entry, EntryKind, NodeId, NO_NODE};

impl<S: Storage> Raft<S> {
    pub(super) fn tick_leader(&mut self) {
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
    pub(super) fn start_election(&mut self, transfer: bool) {
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

    pub(super) fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
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
                    from_incarnation: 0,
                    to_incarnation: 0,
                });
            } else {
                // The candidate's own term and vote must be durable before it asks.
                self.send_after_persist(to, term, body);
            }
        }
    }

    pub(super) fn check_votes(&mut self) {
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

    pub(super) fn handle_vote(
        &mut self,
        from: NodeId,
        term: u64,
        pre_vote: bool,
        li: u64,
        lt: u64,
    ) {
        // A node whose state was lost (see `incarnation`) grants nothing until re-admitted.
        let can_vote = !self.amnesiac
            && (self.vote == from
                || (self.vote == NO_NODE && self.leader == NO_NODE)
                || (pre_vote && term > self.term));
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
                    from_incarnation: 0,
                    to_incarnation: 0,
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

    pub(super) fn become_pre_candidate(&mut self) {
        // Does not change term or vote; forgets the leader so its own pre-votes are not
        // refused by its own stickiness.
        self.votes.clear();
        self.progress.clear();
        self.role = Role::PreCandidate;
        self.leader = NO_NODE;
        self.fail_reads();
        self.fail_forwarded();
    }

    pub(super) fn become_candidate(&mut self) {
        // start_election checked term < MAX_TERM; a pre-candidate's term does not move.
        let term = self.term.saturating_add(1);
        self.reset(term);
        self.vote = self.id();
        self.role = Role::Candidate;
    }

    pub(super) fn become_leader(&mut self) {
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

    pub(super) fn most_up_to_date_voter(&self) -> Option<NodeId> {
        let id = self.id();
        self.conf()
            .voters
            .iter()
            .filter(|&&v| v != id)
            .max_by_key(|&&v| self.progress.get(&v).map(|p| p.matched).unwrap_or(0))
            .copied()
    }
}
