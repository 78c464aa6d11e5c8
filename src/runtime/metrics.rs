//! Node metrics (atomics updated by the engine threads, read by [`super::Node::metrics`]) and
//! the state-change log lines. The runtime calls in from a handful of one-line hooks; the
//! names here are the names every language uses (see docs/OBSERVABILITY.md).

use crate::core::{Message, MessageBody, NodeId, Role, SoftState};
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
    pub(crate) snapshots_sent: AtomicU64,
    pub(crate) snapshots_taken: AtomicU64,
    pub(crate) snapshots_installed: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) fsync_seconds: AtomicHistogram,
    pub(crate) apply_seconds: AtomicHistogram,
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
            snapshots_sent: AtomicU64::new(0),
            snapshots_taken: AtomicU64::new(0),
            snapshots_installed: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            fsync_seconds: AtomicHistogram::new(&LATENCY_BUCKETS),
            apply_seconds: AtomicHistogram::new(&LATENCY_BUCKETS),
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

    /// A batch of `n` proposals reached the core.
    pub(crate) fn on_proposals(&self, n: usize, accepted: bool) {
        if accepted {
            self.proposals.fetch_add(n as u64, Relaxed);
            self.append_batch_entries.observe(n as f64);
        } else {
            self.proposals_dropped.fetch_add(n as u64, Relaxed);
        }
    }

    /// `Node::step` got `bytes` bytes; `ok` if they were decoded and queued.
    pub(crate) fn on_step(&self, bytes: usize, ok: bool) {
        if ok {
            self.messages_received.fetch_add(1, Relaxed);
            self.bytes_received.fetch_add(bytes as u64, Relaxed);
        } else {
            self.messages_refused.fetch_add(1, Relaxed);
        }
    }

    /// `n` committed entries go to the apply thread.
    pub(crate) fn on_committed(&self, n: usize) {
        self.entries_committed.fetch_add(n as u64, Relaxed);
    }

    /// A message goes to the transport; the first chunk of a snapshot is logged.
    pub(crate) fn on_send(&self, m: &Message) {
        self.messages_sent.fetch_add(1, Relaxed);
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
            snapshots_sent: self.snapshots_sent.load(Relaxed),
            snapshots_taken: self.snapshots_taken.load(Relaxed),
            snapshots_installed: self.snapshots_installed.load(Relaxed),
            fsyncs: self.fsyncs.load(Relaxed),
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
            counters: self.counters(),
            fsync_seconds: self.fsync_seconds.snapshot(),
            apply_seconds: self.apply_seconds.snapshot(),
            append_batch_entries: self.append_batch_entries.snapshot(),
        }
    }
}

/// Monotonic counters of a node since it started (names as in docs/OBSERVABILITY.md,
/// prefixed `raft_` and suffixed `_total` in the text export).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Times a (different) leader became known.
    pub leader_changes: u64,
    /// Commands accepted into the leader's log through this node.
    pub proposals: u64,
    /// Commands refused by the core (not leader, busy, too large...).
    pub proposals_dropped: u64,
    /// Committed entries handed to the state machine.
    pub entries_committed: u64,
    /// Read-index requests made on this node.
    pub reads: u64,
    /// Raft messages received through `Node::step` (decoded successfully).
    pub messages_received: u64,
    /// Bytes of the messages counted in `messages_received`.
    pub bytes_received: u64,
    /// Inbound messages refused (undecodable, or refused by the core).
    pub messages_refused: u64,
    /// Raft messages handed to the transport.
    pub messages_sent: u64,
    /// Snapshot transfers started by this node as leader.
    pub snapshots_sent: u64,
    /// Snapshots of the state machine stored.
    pub snapshots_taken: u64,
    /// Snapshots received from a leader and restored into the state machine.
    pub snapshots_installed: u64,
    /// fsync calls (`LogStore::sync`) by the storage thread.
    pub fsyncs: u64,
}

/// A point-in-time view of a node's metrics ([`super::Node::metrics`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeMetrics {
    /// This node's id.
    pub node_id: NodeId,
    /// Current role.
    pub role: Role,
    /// Current term.
    pub term: u64,
    /// Known leader (0 if none).
    pub leader: NodeId,
    /// Commit index.
    pub commit_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// Last log index.
    pub last_index: u64,
    /// Monotonic counters.
    pub counters: Counters,
    /// Duration of each fsync of the log, in seconds.
    pub fsync_seconds: Histogram,
    /// Duration of each batch applied to the state machine, in seconds.
    pub apply_seconds: Histogram,
    /// Entries per proposal batch appended by the leader.
    pub append_batch_entries: Histogram,
}

/// Numeric code of a role in the metrics (`raft_role`): 0 follower, 1 precandidate,
/// 2 candidate, 3 leader (the C `raft_role` values).
pub fn role_code(r: Role) -> u64 {
    match r {
        Role::Follower => 0,
        Role::PreCandidate => 1,
        Role::Candidate => 2,
        Role::Leader => 3,
    }
}

impl NodeMetrics {
    /// Every metric as `(name, kind, help, value)` with the names shared by every language:
    /// gauges and counters as numbers; histograms are listed by [`NodeMetrics::histograms`].
    pub fn scalars(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
        let c = &self.counters;
        vec![
            ("raft_term", "gauge", "Current term.", self.term),
            (
                "raft_role",
                "gauge",
                "Role: 0 follower, 1 precandidate, 2 candidate, 3 leader.",
                role_code(self.role),
            ),
            (
                "raft_leader_id",
                "gauge",
                "Known leader id (0 if none).",
                self.leader,
            ),
            (
                "raft_commit_index",
                "gauge",
                "Commit index.",
                self.commit_index,
            ),
            (
                "raft_applied_index",
                "gauge",
                "Applied index.",
                self.applied_index,
            ),
            (
                "raft_last_index",
                "gauge",
                "Last log index.",
                self.last_index,
            ),
            (
                "raft_leader_changes_total",
                "counter",
                "Times a different leader became known.",
                c.leader_changes,
            ),
            (
                "raft_proposals_total",
                "counter",
                "Commands accepted into the log through this node.",
                c.proposals,
            ),
            (
                "raft_proposals_dropped_total",
                "counter",
                "Commands refused by the core.",
                c.proposals_dropped,
            ),
            (
                "raft_entries_committed_total",
                "counter",
                "Committed entries handed to the state machine.",
                c.entries_committed,
            ),
            (
                "raft_reads_total",
                "counter",
                "Read-index requests made on this node.",
                c.reads,
            ),
            (
                "raft_messages_received_total",
                "counter",
                "Raft messages received.",
                c.messages_received,
            ),
            (
                "raft_received_bytes_total",
                "counter",
                "Bytes of the Raft messages received.",
                c.bytes_received,
            ),
            (
                "raft_messages_refused_total",
                "counter",
                "Inbound messages refused (undecodable or refused by the core).",
                c.messages_refused,
            ),
            (
                "raft_messages_sent_total",
                "counter",
                "Raft messages handed to the transport.",
                c.messages_sent,
            ),
            (
                "raft_snapshots_sent_total",
                "counter",
                "Snapshot transfers started as leader.",
                c.snapshots_sent,
            ),
            (
                "raft_snapshots_taken_total",
                "counter",
                "Snapshots of the state machine stored.",
                c.snapshots_taken,
            ),
            (
                "raft_snapshots_installed_total",
                "counter",
                "Snapshots received and restored.",
                c.snapshots_installed,
            ),
            (
                "raft_fsyncs_total",
                "counter",
                "fsync calls of the log.",
                c.fsyncs,
            ),
        ]
    }

    /// The histograms as `(name, help, histogram)`.
    pub fn histograms(&self) -> Vec<(&'static str, &'static str, &Histogram)> {
        vec![
            (
                "raft_fsync_seconds",
                "Duration of each fsync of the log.",
                &self.fsync_seconds,
            ),
            (
                "raft_apply_seconds",
                "Duration of each batch applied to the state machine.",
                &self.apply_seconds,
            ),
            (
                "raft_append_batch_entries",
                "Entries per proposal batch appended by the leader.",
                &self.append_batch_entries,
            ),
        ]
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
        m.on_proposals(3, true);
        m.on_fsync(Duration::from_millis(2));
        let st = crate::core::Status {
            id: 7,
            role: Role::Leader,
            term: 5,
            leader: 7,
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
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in:\n{text}"
            );
        }
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

/// A [`NodeMetrics`] view for `prometheus-client`.
#[derive(Debug)]
struct Export(NodeMetrics);

impl prometheus_client::collector::Collector for Export {
    fn encode(
        &self,
        mut enc: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::NoLabelSet;
        use prometheus_client::metrics::MetricType;
        for (name, kind, help, v) in self.0.scalars() {
            if kind == "counter" {
                // The encoder appends `_total` to counters.
                let base = name.strip_suffix("_total").unwrap_or(name);
                let mut m = enc.encode_descriptor(base, help, None, MetricType::Counter)?;
                m.encode_counter::<NoLabelSet, _, u64>(&v, None)?;
            } else {
                let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
                m.encode_gauge(&(v as i64))?;
            }
        }
        for (name, help, h) in self.0.histograms() {
            let mut buckets: Vec<(f64, u64)> = h
                .bounds
                .iter()
                .copied()
                .zip(h.buckets.iter().copied())
                .collect();
            buckets.push((f64::MAX, h.buckets.last().copied().unwrap_or(0)));
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
            m.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
        }
        Ok(())
    }
}

impl NodeMetrics {
    /// The metrics in the Prometheus text exposition format (via `prometheus-client`): what
    /// `raft-kv --metrics-addr` serves and C `raft_node_metrics_text` returns.
    pub fn to_prometheus_text(&self) -> String {
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register_collector(Box::new(Export(self.clone())));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }
}
