//! Hostile peers at the core level (issue 13): forged terms, non-members and oversized
//! snapshots must not disrupt a healthy cluster. Every message is delivered by the test.

use raft::core::{
    ConfState, Config, HardState, MemStorage, Message, MessageBody, NodeId, RawNode, Role, MAX_TERM,
};
use std::collections::BTreeMap;

struct Net {
    nodes: BTreeMap<NodeId, RawNode<MemStorage>>,
    stores: BTreeMap<NodeId, MemStorage>,
    queue: Vec<Message>,
}

impl Net {
    /// `n` voters; node 1 is elected and every message delivered until quiet.
    fn healthy(n: u64) -> Net {
        let conf = ConfState::with_voters(1..=n);
        let mut net = Net {
            nodes: BTreeMap::new(),
            stores: BTreeMap::new(),
            queue: Vec::new(),
        };
        for id in 1..=n {
            let s = MemStorage::new_with_conf(conf.clone());
            net.nodes
                .insert(id, RawNode::new(Config::new(id), s.clone()).unwrap());
            net.stores.insert(id, s);
        }
        // Every node ticks: a fresh node refuses votes for its first election timeout.
        for _ in 0..100 {
            for n in net.nodes.values_mut() {
                n.tick();
            }
            net.deliver();
            if net.leader().is_some() {
                break;
            }
        }
        assert!(net.leader().is_some(), "no leader elected");
        net.heartbeat_rounds(3);
        net
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|(_, n)| n.raft.role == Role::Leader)
            .map(|(&id, _)| id)
    }

    fn settle(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        let s = &self.stores[&id];
        while n.has_ready() {
            let rd = n.ready();
            s.append(&rd.entries);
            if let Some(hs) = rd.hard_state {
                s.set_hard_state(hs);
            }
            self.queue.extend(rd.messages);
            self.queue.extend(rd.persisted_messages);
            n.on_persisted(rd.number);
            if let Some(e) = rd.committed_entries.last() {
                n.on_applied(e.index);
            }
        }
    }

    fn deliver(&mut self) {
        for _ in 0..1000 {
            let ids: Vec<_> = self.nodes.keys().copied().collect();
            for id in ids {
                self.settle(id);
            }
            let msgs = std::mem::take(&mut self.queue);
            if msgs.is_empty() {
                return;
            }
            for m in msgs {
                if let Some(n) = self.nodes.get_mut(&m.to) {
                    n.step(m);
                }
            }
        }
    }

    /// Ticks every node `rounds` election timeouts' worth, delivering everything.
    fn heartbeat_rounds(&mut self, rounds: u64) {
        for _ in 0..rounds * 10 {
            for n in self.nodes.values_mut() {
                n.tick();
            }
            self.deliver();
        }
    }

    fn inject(&mut self, m: Message) {
        self.nodes.get_mut(&m.to).unwrap().step(m);
        self.deliver();
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
        self.deliver();
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
    let mut net = Net::healthy(3);
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
    let mut net = Net::healthy(3);
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
