//! The leader's view of each follower: replication state and flow control.

use super::types::SnapshotMeta;
use std::collections::VecDeque;

/// How the leader is replicating to a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// Matching point unknown: one append at a time until the follower answers.
    Probe,
    /// Matching point known: appends are pipelined optimistically.
    Replicate,
    /// The follower needs a snapshot, being streamed in chunks.
    Snapshot,
}

/// Messages in flight to one follower, bounded by count and bytes.
#[derive(Debug, Clone)]
pub struct Inflights {
    window: VecDeque<(u64, u64)>,
    bytes: u64,
    max_count: usize,
    max_bytes: u64,
}

impl Inflights {
    /// An empty window with the given caps.
    pub fn new(max_count: usize, max_bytes: u64) -> Self {
        Inflights {
            window: VecDeque::new(),
            bytes: 0,
            max_count,
            max_bytes,
        }
    }

    /// True when no more messages may be sent.
    pub fn full(&self) -> bool {
        self.window.len() >= self.max_count || self.bytes >= self.max_bytes
    }

    /// Records a message whose last entry is `last` and whose entries weigh `bytes`.
    pub fn add(&mut self, last: u64, bytes: u64) {
        self.window.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last entry is at or below `index`.
    pub fn free_to(&mut self, index: u64) {
        while let Some(&(last, b)) = self.window.front() {
            if last > index {
                break;
            }
            self.bytes -= b;
            self.window.pop_front();
        }
    }

    /// Frees the oldest message (used when acknowledgements may have been lost).
    pub fn free_first(&mut self) {
        if let Some((_, b)) = self.window.pop_front() {
            self.bytes -= b;
        }
    }

    /// Frees everything.
    pub fn reset(&mut self) {
        self.window.clear();
        self.bytes = 0;
    }

    /// Number of messages in flight.
    pub fn count(&self) -> usize {
        self.window.len()
    }
}

/// A snapshot being streamed to a follower.
#[derive(Debug, Clone)]
pub struct SnapshotTransfer {
    /// The snapshot being sent.
    pub meta: SnapshotMeta,
    /// Highest offset the follower acknowledged as durable.
    pub acked: u64,
    /// Offset of the next chunk to send.
    pub sent: u64,
    /// True once the final chunk has been sent.
    pub sent_done: bool,
    /// Heartbeat rounds without progress (triggers a resend from `acked`).
    pub stalled_rounds: u32,
}

/// Replication progress of one member, kept by the leader.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Highest index known to match the leader's log.
    pub matched: u64,
    /// Next index to send.
    pub next: u64,
    /// Replication state.
    pub state: ProgressState,
    /// In Probe: an append was sent and no answer has come since.
    pub probe_sent: bool,
    /// Flow-control window.
    pub inflights: Inflights,
    /// Heard from within the current check-quorum period.
    pub recent_active: bool,
    /// Set in the Snapshot state.
    pub snapshot: Option<SnapshotTransfer>,
}

impl Progress {
    /// Fresh progress that will probe from `next`.
    pub fn new(next: u64, max_inflight: usize, max_inflight_bytes: u64) -> Self {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight, max_inflight_bytes),
            recent_active: false,
            snapshot: None,
        }
    }

    /// Enters Probe, resending from after the match point.
    pub fn become_probe(&mut self) {
        if let Some(s) = self.snapshot.take() {
            self.next = (self.matched + 1).max(s.meta.index + 1);
        } else {
            self.next = self.matched + 1;
        }
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Enters Replicate (pipelining from after the match point).
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflights.reset();
        self.snapshot = None;
    }

    /// Enters Snapshot, streaming `meta` from offset `resume`.
    pub fn become_snapshot(&mut self, meta: SnapshotMeta) {
        self.state = ProgressState::Snapshot;
        self.inflights.reset();
        self.probe_sent = false;
        self.snapshot = Some(SnapshotTransfer {
            meta,
            acked: 0,
            sent: 0,
            sent_done: false,
            stalled_rounds: 0,
        });
    }

    /// Records a successful append up to `n`; returns true if the match point moved.
    pub fn maybe_update(&mut self, n: u64) -> bool {
        let moved = n > self.matched;
        if moved {
            self.matched = n;
            self.probe_sent = false;
        }
        self.next = self.next.max(n + 1);
        moved
    }

    /// Handles a rejection of the append at `rejected`; `next_probe` is where the leader
    /// will try next (already computed from the follower's hint). Returns false if the
    /// rejection is stale.
    pub fn maybe_decr_to(&mut self, rejected: u64, next_probe: u64) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched + 1;
            return true;
        }
        if self.next == 0 || self.next - 1 != rejected {
            return false;
        }
        self.next = next_probe.max(1).min(rejected).max(self.matched + 1);
        self.probe_sent = false;
        true
    }

    /// True when nothing more may be sent until the follower answers.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }
}
