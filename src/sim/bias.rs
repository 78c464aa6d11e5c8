//! Fault schedules aimed at the moments that matter, on top of uniform randomness: a crash
//! between a promise's write and its sync, a partition right after a vote, and leader
//! messages held back and delivered after the cluster moved to a newer term.

use super::{Event, Sim, TICK_MS};
use crate::core::{Message, MessageBody, NodeId};

/// Rates (parts per 1000) of the targeted faults; all zero by default.
#[derive(Debug, Clone, Default)]
pub struct Bias {
    /// After a ready whose released messages would promise something (a vote, a candidacy,
    /// an acknowledgement), crash the node before the sync; it restarts a little later.
    pub crash_before_send: u64,
    /// When a vote is granted, isolate the voter or the candidate right after the grant
    /// arrives, for up to three election timeouts.
    pub cut_after_vote: u64,
    /// Keep a copy of a leader message (append, heartbeat, snapshot chunk) and deliver it
    /// once some node has moved to a newer term.
    pub hold_stale: u64,
    /// Election timeout in ticks of the cluster (to size partitions and restarts).
    pub election_ticks: u64,
}

/// Messages held back for stale delivery (at most this many at once).
const HELD_MAX: usize = 64;

impl Bias {
    /// A mix that makes each targeted interleaving happen many times per long run.
    pub fn rare(election_ticks: u64) -> Self {
        Bias {
            crash_before_send: 4,
            cut_after_vote: 150,
            hold_stale: 15,
            election_ticks,
        }
    }

    fn et_ms(&self) -> u64 {
        self.election_ticks.max(1) * TICK_MS
    }
}

/// True for a message whose sending promises durable state (see the durability invariant).
pub(super) fn is_promise(m: &Message) -> bool {
    matches!(
        m.body,
        MessageBody::Vote {
            pre_vote: false,
            ..
        } | MessageBody::VoteResponse {
            pre_vote: false,
            reject: false,
        } | MessageBody::AppendResponse { reject: false, .. }
    )
}

impl Sim {
    /// Bias hook for every released message.
    pub(super) fn bias_on_release(&mut self, m: &Message) {
        if self.bias.cut_after_vote > 0
            && matches!(
                m.body,
                MessageBody::VoteResponse {
                    pre_vote: false,
                    reject: false
                }
            )
            && self.rng.chance(self.bias.cut_after_vote, 1000)
        {
            let victim = if self.rng.chance(1, 2) { m.from } else { m.to };
            let (lo, hi) = self.faults.delay_ms;
            let at = self.now + hi.max(lo) + 1;
            let back = at + self.rng.range(1, 3 * self.bias.et_ms());
            self.schedule(at, Event::Isolate(victim));
            self.schedule(back, Event::Rejoin(victim));
        }
        if self.bias.hold_stale > 0
            && matches!(
                m.body,
                MessageBody::Append { .. }
                    | MessageBody::Heartbeat { .. }
                    | MessageBody::Snapshot { .. }
            )
            && self.held.len() < HELD_MAX
            && self.rng.chance(self.bias.hold_stale, 1000)
        {
            self.held.push(m.clone());
        }
    }

    /// Some node entered `term`: held messages of older terms are now stale; deliver them.
    pub(super) fn on_term_seen(&mut self, term: u64) {
        if term <= self.max_term {
            return;
        }
        self.max_term = term;
        let (stale, keep): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|m| m.term < term);
        self.held = keep;
        for m in stale {
            let at = self.now + self.rng.range(1, 2 * self.bias.et_ms());
            self.seq += 1;
            let key = self.seq;
            self.in_flight.insert(key, (m, self.now));
            self.schedule(at, Event::Deliver(key));
            self.stats.stale_delivered += 1;
        }
    }

    /// After a ready that wrote a promise, maybe crash `id` before the sync; true if it
    /// crashed. Only while every other node is up, so a majority stays up.
    pub(super) fn maybe_crash_before_send(&mut self, id: NodeId) -> bool {
        if self.bias.crash_before_send == 0
            || !self.rng.chance(self.bias.crash_before_send, 1000)
            || self.ids().iter().any(|&o| o != id && !self.is_up(o))
        {
            return false;
        }
        self.crash(id);
        self.stats.crashes_before_send += 1;
        let back = self.now + self.rng.range(1, self.bias.et_ms());
        self.schedule(back, Event::Restart(id));
        true
    }
}
