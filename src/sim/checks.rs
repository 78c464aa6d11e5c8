//! The simulator's per-step invariants, wired to the [`super::oracle`] checks: every message
//! a node releases, every log a ready changes, every read answered and, after each step,
//! every node's commit index against its leader.

use super::oracle::{self, Durable, LogView, Proof, ReadOracle};
use super::{Sim, Violation, TICK_MS};
use crate::core::{Message, MessageBody, NodeId, Ready, Role, Storage};
use std::collections::BTreeMap;

/// What the step checks remember between steps.
#[derive(Default)]
pub(super) struct StepState {
    /// Reads requested and the proofs leaders collected.
    pub reads: ReadOracle,
    /// node -> (term, index, term at index) of the highest append it acknowledged in this
    /// incarnation.
    acks: BTreeMap<NodeId, (u64, u64, u64)>,
    /// node -> (role, term, commit) after its last step.
    last: BTreeMap<NodeId, (Role, u64, u64)>,
    /// leader -> (term, configuration id, time since it led that term in that configuration
    /// without a pause, time of its last step).
    leading: BTreeMap<NodeId, (u64, u64, u64, u64)>,
}

impl StepState {
    /// Forgets a crashed node's volatile facts.
    pub fn forget(&mut self, id: NodeId) {
        self.acks.remove(&id);
        self.last.remove(&id);
        self.leading.remove(&id);
    }
}

impl Sim {
    fn violation(&self, what: String) -> Violation {
        Violation::new(self.seed, what)
    }

    /// A message leaves node `m.from` (right away, or `persisted` after its ready's writes
    /// became durable): it may only promise what the sender's disk holds.
    pub(super) fn release(&mut self, m: Message, persisted: bool) -> Result<(), Violation> {
        let Some(n) = self.nodes.get(&m.from) else {
            return Ok(());
        };
        let disk = n.durable();
        let hs = disk.hard_state();
        let d = Durable {
            term: hs.term,
            vote: hs.vote,
            last_index: disk.last_index(),
            snapshot_index: disk.snapshot_meta().index,
        };
        oracle::check_promise(&d, &m, persisted).map_err(|e| self.violation(e))?;
        if let (
            Some(raw),
            MessageBody::AppendResponse {
                index,
                reject: false,
                ..
            },
        ) = (n.raw.as_ref(), &m.body)
        {
            if let Ok(t) = raw.raft.log.term(*index) {
                let e = self.steps.acks.entry(m.from).or_insert((m.term, 0, 0));
                if e.0 < m.term || (e.0 == m.term && e.1 < *index) {
                    *e = (m.term, *index, t);
                }
            }
        }
        if let MessageBody::ReadIndexResponse {
            ctx,
            index,
            ok: true,
        } = m.body
        {
            self.check_read_answer(m.from, m.to, ctx, index)?;
        }
        self.bias_on_release(&m);
        self.send(m);
        Ok(())
    }

    /// Leader `leader` answers the read `(origin, ctx)` at `index`.
    pub(super) fn check_read_answer(
        &mut self,
        leader: NodeId,
        origin: NodeId,
        ctx: u64,
        index: u64,
    ) -> Result<(), Violation> {
        if !self.steps.reads.tracks(leader, origin, ctx) {
            return Ok(());
        }
        let Some(raw) = self.node(leader) else {
            return Ok(());
        };
        let (term, conf) = (raw.raft.term, raw.raft.conf().clone());
        let proof = match raw.raft.cfg.lease_read_max_drift {
            // The lease lasts while the peers' election timers (reset when they heard the
            // leader) have not run out; a tick of slack covers timer phases.
            Some(drift) => Proof::Lease((raw.raft.cfg.election_ticks - drift + 1) * TICK_MS),
            None => Proof::Round,
        };
        let now = self.now;
        self.steps
            .reads
            .check_answer(leader, origin, ctx, index, term, &conf, proof, now)
            .map_err(|e| self.violation(e))
    }

    /// Terms never decrease along the part of `id`'s log a ready changed (appended entries,
    /// or everything after an installed snapshot).
    pub(super) fn check_ready_log(&self, id: NodeId, rd: &Ready) -> Result<(), Violation> {
        let lo = match (&rd.snapshot, rd.entries.first()) {
            (Some(meta), _) => meta.index,
            (None, Some(e)) => e.index.saturating_sub(1),
            (None, None) => return Ok(()),
        };
        self.check_log_terms(id, lo)
    }

    /// A restarted node's whole log has non-decreasing terms.
    pub(super) fn check_restarted_log(&self, id: NodeId) -> Result<(), Violation> {
        let lo = self
            .node(id)
            .map_or(0, |r| r.raft.log.first_index().saturating_sub(1));
        self.check_log_terms(id, lo)
    }

    fn check_log_terms(&self, id: NodeId, lo: u64) -> Result<(), Violation> {
        let Some(raw) = self.node(id) else {
            return Ok(());
        };
        let log = &raw.raft.log;
        oracle::check_terms_nondecreasing(|i| log.term(i).ok(), lo, log.last_index())
            .map_err(|e| self.violation(format!("node {id}'s log: {e}")))
    }

    /// Checks after node `id` took a step: its commit index against the leader of its term
    /// and against its own leadership, and that it still holds what it acknowledged.
    pub(super) fn check_step(&mut self, id: NodeId) -> Result<(), Violation> {
        if self.role(id) == Some(Role::Leader) {
            self.check_leader_contact(id)?;
        }
        let Some(raw) = self.node(id) else {
            return Ok(());
        };
        let r = &raw.raft;
        let (role, term, commit) = (r.role, r.term, r.log.committed);
        let me = |i: u64| r.log.term(i).ok();
        let mine = LogView {
            commit,
            last_index: r.log.last_index(),
            term: &me,
        };
        if let Some((_, at, t)) = self.steps.acks.get(&id).filter(|a| a.0 == term) {
            if mine.last_index < *at || me(*at).is_some_and(|x| x != *t) {
                return Err(self.violation(format!(
                    "node {id} acknowledged index {at} (term {t}) in term {term} and then lost it (last index {})",
                    mine.last_index
                )));
            }
        }
        if role == Role::Leader {
            if let Some(&(Role::Leader, t0, c0)) = self.steps.last.get(&id) {
                if t0 == term {
                    oracle::check_leader_commit(term, c0, commit, me(commit))
                        .map_err(|e| self.violation(format!("node {id}: {e}")))?;
                }
            }
        } else if r.leader != 0 {
            if let Some(l) = self.node(r.leader).map(|l| &l.raft) {
                if l.role == Role::Leader && l.term == term {
                    let lt = |i: u64| l.log.term(i).ok();
                    let lv = LogView {
                        commit: l.log.committed,
                        last_index: l.log.last_index(),
                        term: &lt,
                    };
                    oracle::check_follower_commit(&mine, &lv).map_err(|e| {
                        self.violation(format!("node {id} (term {term}, leader {}): {e}", r.leader))
                    })?;
                }
            }
        }
        if role != Role::Leader {
            self.steps.leading.remove(&id);
        }
        self.steps.last.insert(id, (role, term, commit));
        let reads = &mut self.steps.reads;
        reads.max_commit = reads.max_commit.max(commit);
        Ok(())
    }

    /// With check-quorum on, a leader in office (same term and configuration) for more than
    /// two election timeouts heard from a quorum within the last two.
    fn check_leader_contact(&mut self, id: NodeId) -> Result<(), Violation> {
        let Some(r) = self
            .nodes
            .get(&id)
            .and_then(|n| n.raw.as_ref())
            .map(|n| &n.raft)
        else {
            return Ok(());
        };
        if !r.cfg.check_quorum {
            return Ok(());
        }
        let (term, conf_id, now) = (r.term, r.conf_index(), self.now);
        let e = self
            .steps
            .leading
            .entry(id)
            .or_insert((term, conf_id, now, now));
        // A leader not stepped for a while was paused: its ticks (and check-quorum rounds)
        // are caught up at once on resume, so its window starts again then.
        if (e.0, e.1) != (term, conf_id) || now > e.3 + 2 * TICK_MS {
            *e = (term, conf_id, now, now);
        }
        e.3 = now;
        let window = (2 * r.cfg.election_ticks + 2) * TICK_MS;
        if now < e.2 + window {
            return Ok(());
        }
        let reads = &self.steps.reads;
        oracle::check_leader_heard(id, r.conf(), |n| {
            reads.heard_since(id, n, term, now - window)
        })
        .map_err(|e| Violation::new(self.seed, e))
    }
}
