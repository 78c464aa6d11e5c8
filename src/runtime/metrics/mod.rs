//! Node metrics (atomics updated by the engine threads, read by [`super::Node::metrics`]) and
//! the state-change log lines. The runtime calls in from a handful of one-line hooks; the
//! names here are the names every language uses (see docs/OBSERVABILITY.md).

mod view;

pub use view::{role_code, Counters, Labelled, NodeMetrics, PeerTraffic};

use crate::core::{Message, MessageBody, NodeId, ProposeError, Role, SoftState};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histogram buckets; the last bucket is +Inf.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Upper bounds of the append-batch-size histogram (entries); the last bucket is +Inf.
pub const BATCH_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// A histogram snapshot: cumulative-free per-bucket counts (`buckets[i]` counts samples in
/// `(bounds[i-1], bounds[i]]`, the last one above every bound), their sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Upper bounds of the buckets (the implicit last bucket is +Inf).
    pub bounds: Vec<f64>,
    /// Samples per bucket; `bounds.len() + 1` entries.
    pub buckets: Vec<u64>,
    /// Sum of all samples.
    pub sum: f64,
    /// Number of samples.
    pub count: u64,
}

/// Why something was dropped (the `reason` label of `raft_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A proposal reached a node that is not the leader.
    NotLeader = 0,
    /// A proposal was refused by the leader's flow control (uncommitted bytes at their
    /// cap, or a leadership transfer in progress).
    Busy = 1,
    /// An input (proposal, message, read...) was refused because the node's inbox held
    /// `inbox_bytes` already.
    InboxFull = 2,
    /// A command above `max_command_bytes`.
    TooLarge = 3,
    /// An inbound message that was undecodable, claimed another sender, or was refused by
    /// the core.
    InvalidMessage = 4,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 5] = [
        DropReason::NotLeader,
        DropReason::Busy,
        DropReason::InboxFull,
        DropReason::TooLarge,
        DropReason::InvalidMessage,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::NotLeader => "not_leader",
            DropReason::Busy => "busy",
            DropReason::InboxFull => "inbox_full",
            DropReason::TooLarge => "too_large",
            DropReason::InvalidMessage => "invalid_message",
        }
    }
}

/// Peers with their own byte counters; traffic with further peers is counted in the
/// totals only (members are few, and removed ids are never reused).
pub const MAX_PEER_METRICS: usize = 64;

/// Per-peer byte counters in a fixed, lock-free table: a slot is claimed for a peer id once
/// (compare-and-swap on the id) and never released.
struct PeerTable {
    ids: [AtomicU64; MAX_PEER_METRICS],
    sent: [AtomicU64; MAX_PEER_METRICS],
    received: [AtomicU64; MAX_PEER_METRICS],
}

impl PeerTable {
    const fn new() -> Self {
        PeerTable {
            ids: [const { AtomicU64::new(0) }; MAX_PEER_METRICS],
            sent: [const { AtomicU64::new(0) }; MAX_PEER_METRICS],
            received: [const { AtomicU64::new(0) }; MAX_PEER_METRICS],
        }
    }

    /// The slot of `id`, claimed on first use; `None` for id 0 or a full table.
    fn slot(&self, id: NodeId) -> Option<usize> {
        if id == 0 {
            return None;
        }
        for (i, slot) in self.ids.iter().enumerate() {
            match slot.load(Relaxed) {
                cur if cur == id => return Some(i),
                0 => match slot.compare_exchange(0, id, Relaxed, Relaxed) {
                    Ok(_) => return Some(i),
                    Err(cur) if cur == id => return Some(i),
                    Err(_) => {}
                },
                _ => {}
            }
        }
        None
    }

    fn add(&self, which: &[AtomicU64; MAX_PEER_METRICS], id: NodeId, n: u64) {
        if let Some(i) = self.slot(id) {
            which[i].fetch_add(n, Relaxed);
        }
    }

    fn snapshot(&self) -> Vec<PeerTraffic> {
        let mut v: Vec<PeerTraffic> = (0..MAX_PEER_METRICS)
            .filter_map(|i| {
                let id = self.ids[i].load(Relaxed);
                (id != 0).then(|| PeerTraffic {
                    id,
                    bytes_sent: self.sent[i].load(Relaxed),
                    bytes_received: self.received[i].load(Relaxed),
                })
            })
            .collect();
        v.sort_by_key(|p| p.id);
        v
    }
}

/// Lock-free histogram with fixed buckets.
pub(crate) struct AtomicHistogram {
    bounds: &'static [f64; 12],
    buckets: [AtomicU64; 13],
    /// Sum in micro-units (µs for latencies, 1e-6 entries for sizes) to stay integral.
    sum_micros: AtomicU64,
}

impl AtomicHistogram {
    const fn new(bounds: &'static [f64; 12]) -> Self {
        AtomicHistogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; 13],
            sum_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, v: f64) {
        let i = self.bounds.iter().position(|&b| v <= b).unwrap_or(12);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((v * 1e6) as u64, Relaxed);
    }

    pub(crate) fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    fn snapshot(&self) -> Histogram {
        let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        Histogram {
            bounds: self.bounds.to_vec(),
            count: buckets.iter().sum(),
            buckets,
            sum: self.sum_micros.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// Counters and histograms of one node, updated by its threads.
pub(crate) struct Metrics {
    pub(crate) leader_changes: AtomicU64,
    pub(crate) proposals: AtomicU64,
    pub(crate) proposals_dropped: AtomicU64,
    pub(crate) entries_committed: AtomicU64,
    pub(crate) reads: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) messages_refused: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    dropped: [AtomicU64; 5],
    peers: PeerTable,
    pub(crate) snapshots_sent: AtomicU64,
    pub(crate) snapshots_taken: AtomicU64,
    pub(crate) snapshots_installed: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) fsync_seconds: AtomicHistogram,
    pub(crate) apply_seconds: AtomicHistogram,
    pub(crate) commit_seconds: AtomicHistogram,
    pub(crate) append_batch_entries: AtomicHistogram,
    /// Last role / term / leader seen, for the change log lines.
    last: parking_lot::Mutex<Option<SoftState>>,
    limiter: RateLimit,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            leader_changes: AtomicU64::new(0),
            proposals: AtomicU64::new(0),
            proposals_dropped: AtomicU64::new(0),
            entries_committed: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            messages_refused: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            dropped: [const { AtomicU64::new(0) }; 5],
            peers: PeerTable::new(),
            snapshots_sent: AtomicU64::new(0),
            snapshots_taken: AtomicU64::new(0),
            snapshots_installed: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            fsync_seconds: AtomicHistogram::new(&LATENCY_BUCKETS),
            apply_seconds: AtomicHistogram::new(&LATENCY_BUCKETS),
            commit_seconds: AtomicHistogram::new(&LATENCY_BUCKETS),
            append_batch_entries: AtomicHistogram::new(&BATCH_BUCKETS),
            last: parking_lot::Mutex::new(None),
            limiter: RateLimit::new(STATE_LOG_BURST, Duration::from_secs(1)),
        }
    }
}

/// State-change lines per second before the rest are counted and summarised.
const STATE_LOG_BURST: u64 = 20;

/// Allows `burst` events per `window`; reports how many were suppressed before.
pub(crate) struct RateLimit {
    burst: u64,
    window: Duration,
    state: parking_lot::Mutex<(Option<Instant>, u64, u64)>,
}

impl RateLimit {
    /// A limit of `burst` events per `window`.
    pub(crate) const fn new(burst: u64, window: Duration) -> Self {
        RateLimit {
            burst,
            window,
            state: parking_lot::const_mutex((None, 0, 0)),
        }
    }

    /// `Some(suppressed_before)` if this event may be logged, `None` if it is suppressed.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let mut s = self.state.lock();
        let (start, used, suppressed) = &mut *s;
        if start.is_none_or(|t| now.duration_since(t) >= self.window) {
            *start = Some(now);
            *used = 0;
        }
        if *used < self.burst {
            *used += 1;
            Some(std::mem::take(suppressed))
        } else {
            *suppressed += 1;
            None
        }
    }
}

pub(crate) fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "precandidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

impl Metrics {
    /// The raft loop saw a new soft state: count leader changes, log role/term/leader changes.
    pub(crate) fn on_soft_state(&self, id: NodeId, ss: SoftState) {
        let prev = self.last.lock().replace(ss);
        let (role, term, leader) = (role_name(ss.role), ss.term, ss.leader);
        if prev.is_none_or(|p| p.leader != ss.leader) && ss.leader != 0 {
            self.leader_changes.fetch_add(1, Relaxed);
        }
        let Some(suppressed) = self.limiter.allow() else {
            return;
        };
        if suppressed > 0 {
            tracing::warn!(node = id, suppressed, "state-change log lines suppressed");
        }
        match prev {
            Some(p) if p.role != ss.role => {
                let from = role_name(p.role);
                tracing::info!(node = id, from, term, leader, "became {role}");
            }
            None => tracing::info!(node = id, term, leader, "started as {role}"),
            Some(p) if p.leader != ss.leader => {
                tracing::info!(node = id, term, leader, from = p.leader, "leader changed")
            }
            Some(p) if p.term != ss.term => {
                tracing::info!(node = id, term, from = p.term, role, "term changed")
            }
            Some(_) => {}
        }
    }

    /// A batch of `n` proposals reached the core, which appended or refused them.
    pub(crate) fn on_proposals(&self, n: usize, r: &Result<u64, ProposeError>) {
        match r {
            Ok(_) => {
                self.proposals.fetch_add(n as u64, Relaxed);
                self.append_batch_entries.observe(n as f64);
            }
            Err(e) => {
                self.proposals_dropped.fetch_add(n as u64, Relaxed);
                let reason = match e {
                    ProposeError::NotLeader(_) => DropReason::NotLeader,
                    _ => DropReason::Busy,
                };
                self.dropped[reason as usize].fetch_add(n as u64, Relaxed);
            }
        }
    }

    /// Something was dropped for `reason`.
    pub(crate) fn on_drop(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Relaxed);
    }

    /// `Node::step` got `bytes` bytes from `from` (when known); `ok` if they were decoded
    /// and queued. `invalid` marks a refusal of the message itself (not a full inbox).
    pub(crate) fn on_step(&self, from: Option<NodeId>, bytes: usize, ok: bool, invalid: bool) {
        if ok {
            self.messages_received.fetch_add(1, Relaxed);
            self.bytes_received.fetch_add(bytes as u64, Relaxed);
            if let Some(from) = from {
                self.peers.add(&self.peers.received, from, bytes as u64);
            }
        } else {
            self.messages_refused.fetch_add(1, Relaxed);
            if invalid {
                self.on_drop(DropReason::InvalidMessage);
            }
        }
    }

    /// `n` committed entries go to the apply thread.
    pub(crate) fn on_committed(&self, n: usize) {
        self.entries_committed.fetch_add(n as u64, Relaxed);
    }

    /// A message goes to the transport; the first chunk of a snapshot is logged.
    pub(crate) fn on_send(&self, m: &Message) {
        self.messages_sent.fetch_add(1, Relaxed);
        let bytes = crate::codec::encoded_len(m) as u64;
        self.bytes_sent.fetch_add(bytes, Relaxed);
        self.peers.add(&self.peers.sent, m.to, bytes);
        if let MessageBody::Snapshot {
            meta, offset: 0, ..
        } = &m.body
        {
            self.snapshots_sent.fetch_add(1, Relaxed);
            if let Some(suppressed) = self.limiter.allow() {
                let (index, term, bytes) = (meta.index, meta.term, meta.size);
                tracing::info!(
                    node = m.from,
                    to = m.to,
                    index,
                    term,
                    bytes,
                    suppressed,
                    "sending snapshot"
                );
            }
        }
    }

    /// The snapshot thread stored a snapshot of the state machine.
    pub(crate) fn on_snapshot_taken(&self, index: u64, bytes: u64) {
        self.snapshots_taken.fetch_add(1, Relaxed);
        tracing::info!(index, bytes, "snapshot taken");
    }

    /// The state machine was restored from a snapshot received from a leader.
    pub(crate) fn on_snapshot_installed(&self, index: u64, term: u64) {
        self.snapshots_installed.fetch_add(1, Relaxed);
        tracing::info!(index, term, "snapshot installed");
    }

    /// A configuration entry took effect on the apply thread.
    pub(crate) fn on_membership(&self, index: u64, c: &crate::core::ConfState) {
        if self.limiter.allow().is_some() {
            let (voters, outgoing, learners) = (&c.voters, &c.voters_outgoing, &c.learners);
            tracing::info!(
                conf_id = index,
                ?voters,
                ?outgoing,
                ?learners,
                "membership changed"
            );
        }
    }

    /// An fsync (a `LogStore::sync`) took `d`.
    pub(crate) fn on_fsync(&self, d: Duration) {
        self.fsyncs.fetch_add(1, Relaxed);
        self.fsync_seconds.observe_duration(d);
    }

    fn counters(&self) -> Counters {
        Counters {
            leader_changes: self.leader_changes.load(Relaxed),
            proposals: self.proposals.load(Relaxed),
            proposals_dropped: self.proposals_dropped.load(Relaxed),
            entries_committed: self.entries_committed.load(Relaxed),
            reads: self.reads.load(Relaxed),
            messages_received: self.messages_received.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            messages_refused: self.messages_refused.load(Relaxed),
            messages_sent: self.messages_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            snapshots_sent: self.snapshots_sent.load(Relaxed),
            snapshots_taken: self.snapshots_taken.load(Relaxed),
            snapshots_installed: self.snapshots_installed.load(Relaxed),
            fsyncs: self.fsyncs.load(Relaxed),
            dropped: DropReason::ALL.map(|r| (r, self.dropped[r as usize].load(Relaxed))),
        }
    }

    /// The snapshot [`super::Node::metrics`] returns, with the gauges from `status`.
    pub(crate) fn snapshot(&self, s: &crate::core::Status) -> NodeMetrics {
        NodeMetrics {
            node_id: s.id,
            role: s.role,
            term: s.term,
            leader: s.leader,
            commit_index: s.commit,
            applied_index: s.applied,
            last_index: s.last_index,
            voted_for: s.voted_for,
            conf_id: s.conf_index,
            learner: s.learner,
            counters: self.counters(),
            peers: self.peers.snapshot(),
            fsync_seconds: self.fsync_seconds.snapshot(),
            apply_seconds: self.apply_seconds.snapshot(),
            commit_seconds: self.commit_seconds.snapshot(),
            append_batch_entries: self.append_batch_entries.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_sum_and_count() {
        let h = AtomicHistogram::new(&BATCH_BUCKETS);
        for v in [1.0, 3.0, 3.0, 5000.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], 1); // <= 1
        assert_eq!(s.buckets[2], 2); // (2, 4]
        assert_eq!(s.buckets[12], 1); // +Inf
        assert!((s.sum - 5007.0).abs() < 1e-6);
    }

    #[test]
    fn prometheus_text_names_types_and_values() {
        let m = Metrics::default();
        m.on_proposals(3, &Ok(1));
        m.on_proposals(2, &Err(ProposeError::NotLeader(0)));
        m.on_step(Some(2), 100, true, false);
        m.on_step(None, 7, false, true);
        m.on_send(&Message {
            from: 7,
            to: 2,
            term: 5,
            body: MessageBody::Heartbeat {
                commit: 0,
                read_ctx: 0,
            },
        });
        m.on_fsync(Duration::from_millis(2));
        let st = crate::core::Status {
            id: 7,
            role: Role::Leader,
            term: 5,
            leader: 7,
            voted_for: 7,
            learner: false,
            commit: 11,
            applied: 10,
            last_index: 12,
            conf: Default::default(),
            conf_index: 0,
            peers: Vec::new(),
            refused_messages: 0,
        };
        let text = m.snapshot(&st).to_prometheus_text();
        for line in [
            "# TYPE raft_term gauge",
            "raft_term 5",
            "raft_role 3",
            "raft_commit_index 11",
            "# TYPE raft_proposals counter",
            "raft_proposals_total 3",
            "raft_fsyncs_total 1",
            "# TYPE raft_fsync_seconds histogram",
            "raft_fsync_seconds_count 1",
            "raft_append_batch_entries_bucket{le=\"4.0\"} 1",
            "raft_dropped_total{reason=\"not_leader\"} 2",
            "raft_dropped_total{reason=\"invalid_message\"} 1",
            "raft_dropped_total{reason=\"inbox_full\"} 0",
            "raft_peer_received_bytes_total{peer=\"2\"} 100",
            "raft_voted_for 7",
            "# TYPE raft_commit_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in:\n{text}"
            );
        }
        let sent = crate::codec::encode(&Message {
            from: 7,
            to: 2,
            term: 5,
            body: MessageBody::Heartbeat {
                commit: 0,
                read_ctx: 0,
            },
        })
        .len();
        let line = format!("raft_peer_sent_bytes_total{{peer=\"2\"}} {sent}");
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }

    #[test]
    fn peer_table_claims_one_slot_per_peer_and_bounds_the_rest() {
        let t = PeerTable::new();
        assert_eq!(t.slot(0), None);
        assert_eq!(t.slot(5), Some(0));
        assert_eq!(t.slot(9), Some(1));
        assert_eq!(t.slot(5), Some(0));
        for id in 100..100 + MAX_PEER_METRICS as u64 {
            t.add(&t.sent, id, 1);
        }
        // Two slots were taken: 62 of the new ids got one, the rest none.
        let snap = t.snapshot();
        assert_eq!(snap.len(), MAX_PEER_METRICS);
        assert_eq!(t.slot(100 + MAX_PEER_METRICS as u64), None);
    }

    #[test]
    fn rate_limit_allows_a_burst_then_reports_the_suppressed() {
        let r = RateLimit::new(2, Duration::from_secs(3600));
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), None);
        assert_eq!(r.allow(), None);
        let r = RateLimit::new(1, Duration::from_millis(0));
        assert_eq!(r.allow(), Some(0));
        // A zero window restarts every call.
        assert_eq!(r.allow(), Some(0));
    }

    #[test]
    fn leader_changes_count_distinct_known_leaders() {
        let m = Metrics::default();
        let ss = |role, term, leader| SoftState { role, term, leader };
        m.on_soft_state(1, ss(Role::Follower, 1, 0));
        m.on_soft_state(1, ss(Role::Follower, 1, 2));
        m.on_soft_state(1, ss(Role::PreCandidate, 1, 0));
        m.on_soft_state(1, ss(Role::Leader, 2, 1));
        assert_eq!(m.leader_changes.load(Relaxed), 2);
    }
}
