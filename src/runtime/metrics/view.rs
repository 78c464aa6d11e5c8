//! The public, point-in-time view of a node's metrics and its Prometheus text export.

use super::{DropReason, Histogram};
use crate::core::{NodeId, Role};

/// Monotonic counters of a node since it started (names as in docs/OBSERVABILITY.md,
/// prefixed `raft_` and suffixed `_total` in the text export).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Encoded bytes of the messages counted in `messages_sent`.
    pub bytes_sent: u64,
    /// Snapshot transfers started by this node as leader.
    pub snapshots_sent: u64,
    /// Snapshots of the state machine stored.
    pub snapshots_taken: u64,
    /// Snapshots received from a leader and restored into the state machine.
    pub snapshots_installed: u64,
    /// fsync calls (`LogStore::sync`) by the storage thread.
    pub fsyncs: u64,
    /// Drops by reason (`raft_dropped_total{reason}`), every reason listed.
    pub dropped: [(DropReason, u64); 5],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            leader_changes: 0,
            proposals: 0,
            proposals_dropped: 0,
            entries_committed: 0,
            reads: 0,
            messages_received: 0,
            bytes_received: 0,
            messages_refused: 0,
            messages_sent: 0,
            bytes_sent: 0,
            snapshots_sent: 0,
            snapshots_taken: 0,
            snapshots_installed: 0,
            fsyncs: 0,
            dropped: DropReason::ALL.map(|r| (r, 0)),
        }
    }
}

/// A labelled counter family: `(name, help, label name, [(label value, value)])`.
pub type Labelled = (&'static str, &'static str, &'static str, Vec<(String, u64)>);

/// Bytes exchanged with one peer (`raft_peer_sent_bytes_total{peer}` and
/// `raft_peer_received_bytes_total{peer}`): encoded messages handed to the transport for
/// it, and message bytes delivered from it through `Node::step`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerTraffic {
    /// The peer's id.
    pub id: NodeId,
    /// Encoded bytes of the messages sent to it.
    pub bytes_sent: u64,
    /// Bytes of the messages received from it.
    pub bytes_received: u64,
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
    /// The candidate voted for in `term` (0 if none).
    pub voted_for: NodeId,
    /// Id of the configuration in force (the index of its entry; 0 for the initial one).
    pub conf_id: u64,
    /// This node is a learner.
    pub learner: bool,
    /// Monotonic counters.
    pub counters: Counters,
    /// Bytes exchanged per peer (up to [`MAX_PEER_METRICS`](super::MAX_PEER_METRICS) peers).
    pub peers: Vec<PeerTraffic>,
    /// Duration of each fsync of the log, in seconds.
    pub fsync_seconds: Histogram,
    /// Duration of each batch applied to the state machine, in seconds.
    pub apply_seconds: Histogram,
    /// Time from a proposal's append on the leader to its commit, in seconds (leader only).
    pub commit_seconds: Histogram,
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
                "raft_voted_for",
                "gauge",
                "Candidate voted for in the current term (0 if none).",
                self.voted_for,
            ),
            (
                "raft_conf_id",
                "gauge",
                "Id of the configuration in force (index of its entry).",
                self.conf_id,
            ),
            (
                "raft_learner",
                "gauge",
                "1 if this node is a learner of the configuration in force.",
                u64::from(self.learner),
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
                "raft_sent_bytes_total",
                "counter",
                "Encoded bytes of the Raft messages sent.",
                c.bytes_sent,
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
                "raft_commit_seconds",
                "Time from a proposal's append on the leader to its commit.",
                &self.commit_seconds,
            ),
            (
                "raft_append_batch_entries",
                "Entries per proposal batch appended by the leader.",
                &self.append_batch_entries,
            ),
        ]
    }

    /// The labelled counters as `(name, help, label, [(label value, value)])`: drops by
    /// reason and bytes per peer.
    pub fn labelled(&self) -> Vec<Labelled> {
        let per_peer = |f: fn(&PeerTraffic) -> u64| -> Vec<(String, u64)> {
            self.peers
                .iter()
                .map(|p| (p.id.to_string(), f(p)))
                .collect()
        };
        vec![
            (
                "raft_dropped_total",
                "Proposals, messages and other inputs dropped, by reason.",
                "reason",
                self.counters
                    .dropped
                    .iter()
                    .map(|(r, n)| (r.name().to_string(), *n))
                    .collect(),
            ),
            (
                "raft_peer_sent_bytes_total",
                "Encoded bytes of the Raft messages sent to each peer.",
                "peer",
                per_peer(|p| p.bytes_sent),
            ),
            (
                "raft_peer_received_bytes_total",
                "Bytes of the Raft messages received from each peer.",
                "peer",
                per_peer(|p| p.bytes_received),
            ),
        ]
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
        for (name, help, label, values) in self.0.labelled() {
            let base = name.strip_suffix("_total").unwrap_or(name);
            let mut m = enc.encode_descriptor(base, help, None, MetricType::Counter)?;
            for (value, n) in values {
                let labels = [(label, value)];
                let mut fam = m.encode_family(&labels)?;
                fam.encode_counter::<NoLabelSet, _, u64>(&n, None)?;
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
