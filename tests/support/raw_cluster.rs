//! A cluster of `RawNode`s over `MemStorage` in one test, with every message delivered,
//! dropped or held by the test and every ready persisted at once: the core-level harness of
//! tests/reads.rs and tests/hostile.rs.
//!
//! Include it with `#[path = "support/raw_cluster.rs"] mod raw_cluster;`.
#![allow(dead_code)] // each test binary uses its own subset

use raft::core::{
    ConfState, Config, MemStorage, Message, NodeId, RawNode, ReadState, Role, Storage,
};
use std::collections::BTreeMap;

/// Ticks [`RawCluster::new`] waits for a leader and its first commit before giving up.
const ELECTION_BUDGET_TICKS: u64 = 200;

/// The nodes, their stores, the messages in flight and the read answers each node got.
pub struct RawCluster {
    pub nodes: BTreeMap<NodeId, RawNode<MemStorage>>,
    pub stores: BTreeMap<NodeId, MemStorage>,
    pub queue: Vec<Message>,
    pub reads: BTreeMap<NodeId, Vec<ReadState>>,
    pub cfg: fn(NodeId) -> Config,
}

impl RawCluster {
    /// A cluster of `n` voters that has elected a leader and committed its first entry on
    /// every node, with all nodes ticked together (so none is freshly started).
    pub fn new(n: u64, cfg: fn(NodeId) -> Config) -> RawCluster {
        let conf = ConfState::with_voters(1..=n);
        let mut net = RawCluster {
            nodes: BTreeMap::new(),
            stores: BTreeMap::new(),
            queue: Vec::new(),
            reads: BTreeMap::new(),
            cfg,
        };
        for id in 1..=n {
            let s = MemStorage::new_with_conf(conf.clone());
            net.nodes
                .insert(id, RawNode::new(cfg(id), s.clone()).unwrap());
            net.stores.insert(id, s);
        }
        for _ in 0..ELECTION_BUDGET_TICKS {
            net.tick_all();
            net.deliver(|_| true);
            if let Some(l) = net.leader() {
                let c = net.node(l).raft.log.committed;
                if c > 0 && net.nodes.values().all(|n| n.raft.log.committed == c) {
                    // A few more rounds so every follower acknowledged a recent heartbeat.
                    for _ in 0..3 {
                        net.tick_all();
                        net.deliver(|_| true);
                    }
                    return net;
                }
            }
        }
        panic!("no leader elected");
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.raft.role == Role::Leader)
            .max_by_key(|n| n.raft.term)
            .map(|n| n.raft.id())
    }

    pub fn followers(&self) -> Vec<NodeId> {
        let l = self.leader();
        self.nodes
            .keys()
            .copied()
            .filter(|&i| Some(i) != l)
            .collect()
    }

    pub fn node(&self, id: NodeId) -> &RawNode<MemStorage> {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut RawNode<MemStorage> {
        self.nodes.get_mut(&id).unwrap()
    }

    /// Processes every ready of node `id` with immediate, durable persistence.
    pub fn settle(&mut self, id: NodeId) {
        let Some(n) = self.nodes.get_mut(&id) else {
            return;
        };
        let s = &self.stores[&id];
        while n.has_ready() {
            let rd = n.ready();
            s.append(&rd.entries);
            if let Some(hs) = rd.hard_state {
                s.set_hard_state(hs);
            }
            self.queue.extend(rd.messages);
            self.queue.extend(rd.persisted_messages);
            self.reads.entry(id).or_default().extend(rd.read_states);
            n.on_persisted(rd.number);
            if let Some(e) = rd.committed_entries.last() {
                n.on_applied(e.index);
            }
        }
    }

    pub fn settle_all(&mut self) {
        let ids: Vec<_> = self.nodes.keys().copied().collect();
        for id in ids {
            self.settle(id);
        }
    }

    /// Takes every queued message (after settling every node).
    pub fn take(&mut self) -> Vec<Message> {
        self.settle_all();
        std::mem::take(&mut self.queue)
    }

    pub fn step(&mut self, m: Message) {
        if let Some(n) = self.nodes.get_mut(&m.to) {
            n.step(m);
        }
    }

    /// Delivers queued messages matching `keep` (others are dropped) until quiet.
    pub fn deliver(&mut self, keep: impl Fn(&Message) -> bool) {
        for _ in 0..1000 {
            let msgs = self.take();
            if msgs.is_empty() {
                return;
            }
            for m in msgs {
                if keep(&m) {
                    self.step(m);
                }
            }
        }
    }

    pub fn tick(&mut self, id: NodeId) {
        self.node_mut(id).tick();
        self.settle(id);
    }

    pub fn tick_all(&mut self) {
        let ids: Vec<_> = self.nodes.keys().copied().collect();
        for id in ids {
            self.tick(id);
        }
    }

    pub fn crash(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.queue.retain(|m| m.to != id && m.from != id);
        self.reads.remove(&id);
    }

    pub fn restart(&mut self, id: NodeId) {
        let s = self.stores[&id].clone();
        let mut c = (self.cfg)(id);
        c.applied = s.snapshot_meta().index;
        self.nodes.insert(id, RawNode::new(c, s).unwrap());
    }

    /// Issues a read at `id` and settles it; returns the answer if one came at once.
    pub fn read_now(&mut self, id: NodeId, ctx: u64) -> Option<ReadState> {
        self.node_mut(id).read_index(ctx).unwrap();
        self.settle(id);
        self.answer(id, ctx)
    }

    pub fn answer(&self, id: NodeId, ctx: u64) -> Option<ReadState> {
        self.reads
            .get(&id)
            .and_then(|r| r.iter().find(|r| r.ctx == ctx).copied())
    }
}
