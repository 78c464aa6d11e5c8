//! Linearizable reads: read-index with a quorum heartbeat round, lease reads, and the
//! tracking of reads forwarded to a leader (etcd-io/raft: `read_only.go`).

use super::{ProposeError, Raft, ReadState, Role};
use crate::core::message::MessageBody;
use crate::core::quorum;
use crate::core::storage::Storage;
use crate::core::types::{NodeId, NO_NODE};

/// A read waiting for the heartbeat round that proves this leader current.
#[derive(Debug, Clone)]
pub(super) struct PendingRead {
    pub(super) ctx: u64,
    pub(super) index: u64,
    pub(super) from: NodeId,
    pub(super) round: u64,
}

/// A read-index request this node forwarded to a leader and still waits for.
#[derive(Debug, Clone)]
pub(super) struct Forwarded {
    /// The leader the request went to.
    pub(super) leader: NodeId,
    /// The term of that leader when the request was sent.
    pub(super) term: u64,
    /// This node's tick count when the request was sent.
    pub(super) sent: u64,
}

impl<S: Storage> Raft<S> {
    /// Fails every forwarded read: its leader or term is gone, so an answer can no longer be
    /// trusted (or may never come).
    pub(super) fn fail_forwarded(&mut self) {
        for ctx in std::mem::take(&mut self.forwarded).into_keys() {
            self.read_states.push(ReadState { ctx, index: None });
        }
    }

    pub(super) fn fail_reads(&mut self) {
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
    pub(super) fn handle_read_index_response(
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
    pub(super) fn expire_forwarded(&mut self) {
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

    pub(super) fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed) == Ok(self.term)
    }

    pub(super) fn read_index_from(&mut self, ctx: u64, from: NodeId) {
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
    pub(super) fn quorum_acked_round(&self) -> u64 {
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
    pub(super) fn lease_valid(&self, drift: u64) -> bool {
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

    pub(super) fn advance_reads(&mut self) {
        let round = self.quorum_acked_round();
        while let Some(r) = self.reads.front() {
            if r.round > round {
                break;
            }
            let r = self.reads.pop_front().expect("read");
            self.answer_read(r.ctx, r.from, r.index);
        }
    }

    pub(super) fn answer_read(&mut self, ctx: u64, from: NodeId, index: u64) {
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
