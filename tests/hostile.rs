//! Hostile peers and careless callers (issue 13): forged terms, non-members and oversized
//! snapshots must not disrupt a healthy cluster (core level: every message is delivered by
//! the test); forged senders and oversized commands are refused by the runtime's `Node`.

use raft::core::{
    ConfState, Config, HardState, MemStorage, Message, MessageBody, NodeId, RawNode, Role,
    SnapshotMeta, MAX_TERM,
};
use raft::runtime::{Committed, Error, MessageSink, Node, NodeConfig, StateMachine};
use raft::transport::SendClass;
#[path = "support/raw_cluster.rs"]
mod raw_cluster;
use raw_cluster::RawCluster as Net;

/// `n` voters with default configurations: a leader is elected and has committed on every
/// node, then three election timeouts of heartbeats pass with every message delivered.
fn healthy(n: u64) -> Net {
    let mut net = Net::new(n, Config::new);
    net.heartbeat_rounds(3);
    net
}

/// What these tests add to the shared harness.
trait Hostile {
    fn heartbeat_rounds(&mut self, rounds: u64);
    fn inject(&mut self, m: Message);
    fn terms(&self) -> Vec<u64>;
    fn assert_serving(&mut self);
    fn refused(&self) -> u64;
}

impl Hostile for Net {
    /// Ticks every node `rounds` election timeouts' worth, delivering everything.
    fn heartbeat_rounds(&mut self, rounds: u64) {
        for _ in 0..rounds * 10 {
            for n in self.nodes.values_mut() {
                n.tick();
            }
            self.deliver(|_| true);
        }
    }

    fn inject(&mut self, m: Message) {
        self.nodes.get_mut(&m.to).unwrap().step(m);
        self.deliver(|_| true);
    }

    fn terms(&self) -> Vec<u64> {
        self.nodes.values().map(|n| n.raft.term).collect()
    }

    /// The cluster still commits: a proposal on the leader is committed everywhere.
    fn assert_serving(&mut self) {
        let leader = self.leader().expect("a leader");
        let idx = self
            .nodes
            .get_mut(&leader)
            .unwrap()
            .propose(vec![b"x".to_vec()])
            .unwrap();
        self.deliver(|_| true);
        self.heartbeat_rounds(1);
        for (id, n) in &self.nodes {
            assert!(n.raft.log.committed >= idx, "node {id} did not commit");
        }
    }

    fn refused(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| n.status().refused_messages)
            .sum()
    }
}

fn all_bodies(last_index: u64) -> Vec<MessageBody> {
    vec![
        MessageBody::Heartbeat {
            commit: 0,
            read_ctx: 0,
        },
        MessageBody::Append {
            prev_index: 0,
            prev_term: 0,
            entries: vec![],
            commit: 0,
        },
        MessageBody::Vote {
            pre_vote: false,
            last_index: last_index + 100,
            last_term: MAX_TERM,
            transfer: true,
        },
        MessageBody::Vote {
            pre_vote: true,
            last_index: last_index + 100,
            last_term: MAX_TERM,
            transfer: false,
        },
        MessageBody::VoteResponse {
            pre_vote: false,
            reject: false,
        },
        MessageBody::AppendResponse {
            index: 0,
            reject: true,
            hint_index: 0,
            hint_term: 0,
        },
        MessageBody::HeartbeatResponse { read_ctx: 0 },
    ]
}

/// Issue 13 item 1: a heartbeat (or any message) with term `u64::MAX` or just above
/// `MAX_TERM`, impersonating a member, moves no term and the leader stays; each is counted.
#[test]
fn max_term_messages_are_refused_and_counted() {
    let mut net = healthy(3);
    let terms = net.terms();
    let leader = net.leader().unwrap();
    let last = net.nodes[&leader].raft.log.last_index();
    let mut sent = 0;
    for term in [u64::MAX, MAX_TERM + 1] {
        for body in all_bodies(last) {
            let others: Vec<NodeId> = (1..=3).filter(|&i| i != leader).collect();
            let pairs = [
                (leader, others[0]),
                (leader, others[1]),
                (others[0], leader),
                (others[1], leader),
            ];
            for (from, to) in pairs {
                net.inject(Message {
                    from,
                    to,
                    term,
                    body: body.clone(),
                });
                sent += 1;
            }
        }
    }
    assert_eq!(net.terms(), terms, "a forged term moved the cluster");
    assert_eq!(net.leader(), Some(leader));
    assert_eq!(net.refused(), sent);
    net.heartbeat_rounds(3);
    assert_eq!(net.terms(), terms);
    assert_eq!(net.leader(), Some(leader));
    net.assert_serving();
}

/// A node restarted at a term no campaign can leave (persisted by an older version) does
/// not wrap its term to 0 (and win), nor overflow; a single voter would otherwise elect
/// itself at once.
#[test]
fn node_at_max_term_never_wraps() {
    for term in [u64::MAX, MAX_TERM] {
        for voters in [vec![1], vec![1, 2, 3]] {
            let s = MemStorage::new_with_conf(ConfState::with_voters(voters.clone()));
            s.set_hard_state(HardState {
                term,
                vote: 0,
                commit: 0,
            });
            let mut n = RawNode::new(Config::new(1), s).unwrap();
            for i in 0..200 {
                n.tick();
                while n.has_ready() {
                    let rd = n.ready();
                    n.on_persisted(rd.number);
                }
                assert_eq!(n.raft.term, term, "voters {voters:?} tick {i}: term moved");
                assert_ne!(n.raft.role, Role::Leader);
            }
            // A pre-vote from a peer at the same term must not overflow either.
            n.step(Message {
                from: 2,
                to: 1,
                term,
                body: MessageBody::Vote {
                    pre_vote: true,
                    last_index: 5,
                    last_term: 1,
                    transfer: false,
                },
            });
            assert_eq!(n.raft.term, term);
        }
    }
}

/// Issue 13 item 2: a node outside the configuration with a higher term (votes with and
/// without transfer, pre-votes, heartbeats, appends, responses) neither moves a term nor
/// deposes the leader.
#[test]
fn non_member_with_higher_term_does_not_disrupt() {
    let mut net = healthy(3);
    let terms = net.terms();
    let leader = net.leader().unwrap();
    let last = net.nodes[&leader].raft.log.last_index();
    let mut sent = 0;
    for body in all_bodies(last) {
        for to in 1..=3 {
            net.inject(Message {
                from: 9,
                to,
                term: terms[0] + 1_000_000,
                body: body.clone(),
            });
            sent += 1;
        }
    }
    assert_eq!(net.terms(), terms, "a non-member moved the term");
    assert_eq!(net.leader(), Some(leader));
    assert_eq!(net.refused(), sent);
    net.assert_serving();
}

/// Issue 13 item 3: a snapshot announcing a total size above `max_snapshot_bytes` (2^62, as
/// in the report), or a chunk running past it, is refused before anything is written.
#[test]
fn oversized_snapshot_is_refused() {
    let mut net = healthy(3);
    let leader = net.leader().unwrap();
    let to = (1..=3).find(|&i| i != leader).unwrap();
    let term = net.nodes[&to].raft.term;
    let before = net.refused();
    let meta = |size: u64| SnapshotMeta {
        index: 1_000,
        term,
        conf: ConfState::with_voters([1, 2, 3]),
        conf_index: 0,
        size,
        checksum: 0,
    };
    for (size, offset) in [
        (1u64 << 62, 0u64),
        (1 << 20, u64::MAX - 3),
        (1 << 20, 64 << 30),
    ] {
        let n = net.nodes.get_mut(&to).unwrap();
        n.step(Message {
            from: leader,
            to,
            term,
            body: MessageBody::Snapshot {
                meta: meta(size),
                offset,
                data: vec![7; 8],
                done: false,
            },
        });
        assert!(
            n.raft.snapshot_chunks.is_empty(),
            "a snapshot of {size} bytes (chunk at {offset}) was accepted"
        );
    }
    assert_eq!(net.refused() - before, 3);
    net.deliver(|_| true);
    assert_eq!(net.leader(), Some(leader));
    net.assert_serving();
}

/// Applies nothing of interest: answers every command with an empty response.
struct Sink;

impl MessageSink for Sink {
    fn send(&self, _: NodeId, _: Vec<u8>, _: SendClass) {}
}

struct Machine;

impl StateMachine for Machine {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        Ok(batch.iter().map(|_| None).collect())
    }
    fn snapshot(&mut self, _: &mut dyn std::io::Write) -> Result<(), String> {
        Ok(())
    }
    fn restore(&mut self, _: &mut dyn std::io::Read) -> Result<(), String> {
        Ok(())
    }
}

/// A single-voter node with `max_command_bytes` = 64 that leads.
fn leader_node() -> Node {
    let mut cfg = NodeConfig::new(1, [1]);
    cfg.max_command_bytes = 64;
    let node = Node::start(cfg, Box::new(Machine), std::sync::Arc::new(Sink)).unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while node.status().unwrap().role != Role::Leader {
        assert!(std::time::Instant::now() < end, "no leader");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    node
}

/// Issue 13 item 3: every proposal call refuses a command above `max_command_bytes` up
/// front with `Error::TooLarge`; the node keeps serving.
#[test]
fn oversized_command_is_refused_with_too_large() {
    let node = leader_node();
    let t = std::time::Duration::from_secs(10);
    let big = vec![1u8; 65];
    let too_large = |r: Result<Option<Vec<u8>>, Error>| {
        assert!(
            matches!(r, Err(Error::TooLarge { len: 65, max: 64 })),
            "got {r:?}"
        );
    };
    too_large(node.propose(big.clone(), t));
    too_large(node.propose_session(7, 1, big.clone(), t));
    let (tx, rx) = std::sync::mpsc::channel();
    node.propose_async(big, move |r| tx.send(r).unwrap());
    too_large(rx.recv().unwrap());
    let applied = node.status().unwrap().applied;
    node.propose(vec![1u8; 64], t).unwrap();
    assert!(node.status().unwrap().applied > applied);
    let mut bad = NodeConfig::new(1, [1]);
    bad.max_command_bytes = 300 << 20;
    assert!(matches!(bad.validate(), Err(e) if e.contains("max_command_bytes")));
    node.shutdown().unwrap();
}

/// Issue 13 item 2: `step_from` refuses a message whose claimed sender is not the one the
/// transport names, and accepts it from the right one.
#[test]
fn step_from_refuses_a_forged_sender() {
    let node = leader_node();
    let m = Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::HeartbeatResponse { read_ctx: 0 },
    };
    let bytes = raft::codec::encode(&m);
    match node.step_from(3, &bytes) {
        Err(Error::Invalid(e)) => assert!(e.contains("claims sender 2"), "{e}"),
        other => panic!("forged sender accepted: {other:?}"),
    }
    node.step_from(2, &bytes).unwrap();
    node.shutdown().unwrap();
}
