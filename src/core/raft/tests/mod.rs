//! Unit tests of the protocol's timing and bookkeeping that the simulator cannot see from
//! outside (a heartbeat sent every tick, or a transfer that never gives up, is still safe),
//! written against surviving mutants of `make mutants` (docs/TESTING.md), one file per
//! concern, over a small cluster of `RawNode`s driven by hand.

mod election;
mod flow_control;
mod incarnation;
mod membership;
mod reads;
mod replication;

use crate::core::{ConfState, Config, MemStorage, Message, NodeId, RawNode, ReadState, Role};
use std::collections::BTreeMap;

/// A cluster of `RawNode`s with immediate persistence; messages wait in `queue` until the
/// test delivers or drops them.
struct Cluster {
    nodes: BTreeMap<NodeId, (RawNode<MemStorage>, MemStorage)>,
    queue: Vec<Message>,
    /// Read states handed out by each node, in order.
    reads: BTreeMap<NodeId, Vec<ReadState>>,
}

impl Cluster {
    fn new(n: u64, tune: impl Fn(&mut Config)) -> Cluster {
        Cluster::with_conf(ConfState::with_voters(1..=n), tune)
    }

    /// A cluster of the members (voters and learners) of `conf`.
    fn with_conf(conf: ConfState, tune: impl Fn(&mut Config)) -> Cluster {
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            queue: Vec::new(),
            reads: BTreeMap::new(),
        };
        for id in conf.all_members() {
            c.start(id, &conf, &tune);
        }
        c
    }

    /// Starts node `id` on an empty store bootstrapped with `conf` (replacing the node and
    /// its store if it exists: a wiped data directory).
    fn start(&mut self, id: NodeId, conf: &ConfState, tune: impl Fn(&mut Config)) {
        let s = MemStorage::new_with_conf(conf.clone());
        let mut c = Config::new(id);
        tune(&mut c);
        let mut n = RawNode::new(c, s.clone()).unwrap();
        // Past the election timeout a started node waits before granting votes.
        n.raft.boot_sticky = false;
        self.nodes.insert(id, (n, s));
    }

    fn node(&mut self, id: NodeId) -> &mut RawNode<MemStorage> {
        &mut self.nodes.get_mut(&id).unwrap().0
    }

    /// Runs every ready with immediate persistence; queues the messages.
    fn settle(&mut self) {
        for (id, (n, s)) in self.nodes.iter_mut() {
            while n.has_ready() {
                let rd = n.ready();
                s.append(&rd.entries);
                if let Some(hs) = rd.hard_state {
                    s.set_hard_state(hs);
                }
                self.reads.entry(*id).or_default().extend(rd.read_states);
                self.queue.extend(rd.messages);
                self.queue.extend(rd.persisted_messages);
                n.on_persisted(rd.number);
                if let Some(e) = rd.committed_entries.last() {
                    n.on_applied(e.index);
                }
            }
        }
    }

    /// The queued messages (after settling), removed from the queue.
    fn take(&mut self) -> Vec<Message> {
        self.settle();
        std::mem::take(&mut self.queue)
    }

    /// Delivers queued messages matching `keep` (drops the others) until quiet; returns
    /// every message delivered.
    fn deliver(&mut self, keep: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut seen = Vec::new();
        for _ in 0..1000 {
            let msgs = self.take();
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                if keep(&m) {
                    seen.push(m.clone());
                    if let Some((n, _)) = self.nodes.get_mut(&m.to) {
                        n.step(m);
                    }
                }
            }
        }
        seen
    }

    /// Elects `id` with every message delivered.
    fn elect(&mut self, id: NodeId) {
        self.node(id).campaign();
        self.deliver(|_| true);
        assert_eq!(
            self.node(id).raft.role,
            Role::Leader,
            "node {id} should lead"
        );
    }
}
