//! Hand-scripted pitfall scenarios at the core level: every message is delivered, dropped
//! or held by the test, so each step of the scenario is exact.

use raft::core::{
    ConfState, Config, Entry, EntryKind, MemStorage, Message, MessageBody, NodeId, RawNode, Role,
    Storage,
};
use std::collections::BTreeMap;

#[path = "scenarios/interaction.rs"]
mod interaction;

struct Net {
    nodes: BTreeMap<NodeId, RawNode<MemStorage>>,
    stores: BTreeMap<NodeId, MemStorage>,
    queue: Vec<Message>,
    applied: BTreeMap<NodeId, Vec<Entry>>,
    cfg: fn(NodeId) -> Config,
}

fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.election_ticks = 10;
    c.heartbeat_ticks = 1;
    c.max_msg_bytes = 1; // one entry per append, so scenarios can place entries exactly
    c
}

/// Check-quorum off: these scenarios move leadership by hand between nodes that heard
/// from a leader a moment ago or were just started (with it on, leader stickiness, and
/// the election timeout a started node waits before voting, would refuse those votes).
fn no_lease(id: NodeId) -> Config {
    let mut c = config(id);
    c.check_quorum = false;
    c
}

impl Net {
    fn new(n: u64) -> Net {
        Net::with_cfg(n, config)
    }

    fn with_cfg(n: u64, cfg: fn(NodeId) -> Config) -> Net {
        let conf = ConfState::with_voters(1..=n);
        let mut net = Net {
            nodes: BTreeMap::new(),
            stores: BTreeMap::new(),
            queue: Vec::new(),
            applied: BTreeMap::new(),
            cfg,
        };
        for id in 1..=n {
            let s = MemStorage::new_with_conf(conf.clone());
            net.nodes
                .insert(id, RawNode::new(cfg(id), s.clone()).unwrap());
            net.stores.insert(id, s);
            net.applied.insert(id, Vec::new());
        }
        net
    }

    /// Processes every ready of node `id` with immediate, durable persistence.
    fn settle(&mut self, id: NodeId) {
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
            for c in rd.snapshot_chunks {
                let ok = s.write_snapshot_chunk(&c.meta, c.offset, &c.data);
                if c.done {
                    let ok = ok && s.finish_incoming_snapshot(&c.meta).is_ok();
                    n.snapshot_received(&c.meta, ok);
                }
            }
            self.queue.extend(rd.messages);
            self.queue.extend(rd.persisted_messages);
            n.on_persisted(rd.number);
            if let Some(e) = rd.committed_entries.last() {
                let idx = e.index;
                self.applied
                    .get_mut(&id)
                    .unwrap()
                    .extend(rd.committed_entries);
                n.on_applied(idx);
            }
        }
    }

    fn settle_all(&mut self) {
        let ids: Vec<_> = self.nodes.keys().copied().collect();
        for id in ids {
            self.settle(id);
        }
    }

    /// Delivers queued messages matching `keep` (others are dropped) until quiet.
    fn deliver(&mut self, keep: impl Fn(&Message) -> bool) {
        for _ in 0..1000 {
            self.settle_all();
            let msgs = std::mem::take(&mut self.queue);
            if msgs.is_empty() {
                return;
            }
            for m in msgs {
                if keep(&m) {
                    if let Some(n) = self.nodes.get_mut(&m.to) {
                        n.step(m);
                    }
                }
            }
        }
    }

    /// Makes `id` campaign (election timeout) and delivers only among `allowed`.
    fn elect(&mut self, id: NodeId, allowed: &[NodeId]) {
        self.campaign(id, allowed, true);
    }

    /// Like [`Net::elect`], but only votes travel: the new leader's first entries reach
    /// nobody.
    fn elect_votes_only(&mut self, id: NodeId, allowed: &[NodeId]) {
        self.campaign(id, allowed, false);
        self.settle_all();
        self.queue.clear();
    }

    fn campaign(&mut self, id: NodeId, allowed: &[NodeId], all_messages: bool) {
        let allowed = allowed.to_vec();
        for _ in 0..200 {
            self.nodes.get_mut(&id).unwrap().tick();
            self.deliver(|m| {
                allowed.contains(&m.from)
                    && allowed.contains(&m.to)
                    && (all_messages
                        || matches!(
                            m.body,
                            MessageBody::Vote { .. } | MessageBody::VoteResponse { .. }
                        ))
            });
            if self.nodes[&id].raft.role == Role::Leader {
                break;
            }
        }
        assert_eq!(
            self.nodes[&id].raft.role,
            Role::Leader,
            "node {id} should lead"
        );
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.queue.retain(|m| m.to != id && m.from != id);
    }

    fn restart(&mut self, id: NodeId) {
        let s = self.stores[&id].clone();
        let mut c = (self.cfg)(id);
        c.applied = s.snapshot_meta().index;
        self.nodes.insert(id, RawNode::new(c, s).unwrap());
        self.applied.insert(id, Vec::new());
    }

    fn node(&self, id: NodeId) -> &RawNode<MemStorage> {
        &self.nodes[&id]
    }

    fn propose(&mut self, id: NodeId, data: &[u8]) -> u64 {
        self.nodes
            .get_mut(&id)
            .unwrap()
            .propose(vec![data.to_vec()])
            .unwrap()
    }
}

fn term_at(net: &Net, id: NodeId, i: u64) -> u64 {
    net.node(id).raft.log.term(i).unwrap_or(0)
}

/// Raft paper Figure 8: a leader must not commit an entry of an earlier term by counting
/// replicas, or a later leader may overwrite it.
#[test]
fn figure_8_old_term_entry_not_committed_by_counting() {
    let mut net = Net::with_cfg(5, no_lease);
    // (a) S1 leads and appends entry idx.
    net.elect(1, &[1, 2, 3, 4, 5]);
    net.deliver(|_| true);
    let base = net.node(1).raft.log.last_index();
    let idx = net.propose(1, b"a");
    assert_eq!(idx, base + 1);
    // The new entry reaches no one before S1 crashes.
    net.settle(1);
    net.queue.clear();
    // (b) S1 crashes; S5 wins with S3, S4 and appends its own entry at idx (not replicated).
    net.crash(1);
    net.elect_votes_only(5, &[3, 4, 5]);
    let t5 = net.node(5).raft.term;
    net.queue.clear();
    net.nodes
        .get_mut(&5)
        .unwrap()
        .propose(vec![b"b".to_vec()])
        .unwrap();
    net.settle(5);
    net.queue.clear();
    // (c) S5 crashes; S1 restarts and wins with S1, S2, S3, then replicates idx (old term) to S3.
    net.crash(5);
    net.restart(1);
    net.elect_votes_only(1, &[1, 2, 3]);
    let t1 = net.node(1).raft.term;
    assert!(t1 > t5);
    // Deliver only appends of entries up to idx (and their answers): entry idx (old term)
    // is now on a majority (S1, S2, S3) but must not be committed.
    net.settle_all();
    for _ in 0..40 {
        net.nodes.get_mut(&1).unwrap().tick();
        let msgs = std::mem::take(&mut net.queue);
        for mut m in msgs {
            // Entries after idx are cut off in transit: only the old-term entry travels.
            if let MessageBody::Append { entries, .. } = &mut m.body {
                entries.retain(|e| e.index <= idx);
            }
            let pair = |a: NodeId| (m.from == 1 && m.to == a) || (m.from == a && m.to == 1);
            if pair(2) || pair(3) {
                net.nodes.get_mut(&m.to).unwrap().step(m);
            }
        }
        net.settle_all();
    }
    assert!(term_at(&net, 3, idx) < t1, "S3 holds the old-term entry");
    assert!(
        net.node(1).raft.log.committed < idx,
        "old-term entry committed by counting replicas (Figure 8)"
    );
    // Once an entry of the leader's own term reaches a majority, both commit together.
    net.deliver(|m| [1, 2, 3].contains(&m.from) && [1, 2, 3].contains(&m.to));
    assert!(net.node(1).raft.log.committed > idx);
}

/// A stale or reordered AppendEntries that does not conflict never truncates the log.
#[test]
fn stale_append_does_not_truncate() {
    let mut net = Net::with_cfg(3, no_lease);
    net.elect(1, &[1, 2, 3]);
    net.deliver(|_| true);
    for i in 0..5u8 {
        net.propose(1, &[i]);
    }
    // Capture the appends to node 2 instead of delivering them.
    net.settle_all();
    let mut held = Vec::new();
    for _ in 0..20 {
        let msgs = std::mem::take(&mut net.queue);
        for m in msgs {
            if m.to == 2 && matches!(m.body, MessageBody::Append { .. }) {
                held.push(m.clone());
            }
            if let Some(n) = net.nodes.get_mut(&m.to) {
                n.step(m);
            }
        }
        net.settle_all();
    }
    let last = net.node(2).raft.log.last_index();
    assert!(last >= 6);
    // Replay every old append (duplicated, reordered: newest first).
    held.reverse();
    for m in held {
        net.nodes.get_mut(&2).unwrap().step(m);
        net.settle(2);
        assert_eq!(
            net.node(2).raft.log.last_index(),
            last,
            "stale append truncated the log"
        );
    }
    for m in net.queue.iter().filter(|m| m.from == 2) {
        if let MessageBody::AppendResponse { reject, .. } = m.body {
            assert!(!reject, "stale appends must not be rejected as conflicts");
        }
    }
}

/// A follower's conflicting uncommitted tail is overwritten by the new leader's log, using
/// fast backtracking.
#[test]
fn conflicting_uncommitted_tail_is_overwritten() {
    let mut net = Net::with_cfg(3, no_lease);
    net.elect(1, &[1, 2, 3]);
    net.deliver(|_| true);
    let committed = net.node(1).raft.log.committed;
    // Leader 1 appends 20 entries that reach nobody.
    for i in 0..20u8 {
        net.propose(1, &[i]);
    }
    net.settle(1);
    net.queue.clear();
    // 2 wins without 1 and commits its own entries.
    net.elect(2, &[2, 3]);
    for i in 0..3u8 {
        net.propose(2, &[100 + i]);
    }
    net.deliver(|m| m.from != 1 && m.to != 1);
    assert!(net.node(2).raft.log.committed > committed);
    // 1 rejoins: its conflicting tail is replaced.
    let rejects_before = net.queue.len();
    let _ = rejects_before;
    let mut appends_to_1 = 0;
    for _ in 0..200 {
        net.settle_all();
        let msgs = std::mem::take(&mut net.queue);
        if msgs.is_empty() {
            // Heartbeats drive progress.
            net.nodes.get_mut(&2).unwrap().tick();
            continue;
        }
        for m in msgs {
            if m.to == 1 && matches!(m.body, MessageBody::Append { .. }) {
                appends_to_1 += 1;
            }
            if let Some(n) = net.nodes.get_mut(&m.to) {
                n.step(m);
            }
        }
        if net.node(1).raft.log.last_index() == net.node(2).raft.log.last_index()
            && net.node(1).raft.log.committed == net.node(2).raft.log.committed
        {
            break;
        }
    }
    let l2 = net.node(2).raft.log.last_index();
    let st = |i| format!("{:?}", net.node(i).status());
    assert_eq!(
        net.node(1).raft.log.last_index(),
        l2,
        "\n{}\n{}",
        st(1),
        st(2)
    );
    for i in 1..=l2 {
        assert_eq!(
            term_at(&net, 1, i),
            term_at(&net, 2, i),
            "logs differ at {i}"
        );
    }
    // Fast backtracking: far fewer probes than the 20 conflicting entries.
    assert!(
        appends_to_1 < 15,
        "took {appends_to_1} appends to find the match point"
    );
    let data: Vec<_> = net.applied[&1]
        .iter()
        .filter(|e| e.kind == EntryKind::Normal)
        .map(|e| e.data[0])
        .collect();
    assert!(
        data.iter().all(|&d| d >= 100),
        "node 1 applied an overwritten entry: {data:?}"
    );
}

/// Proposals at a follower are refused with the leader's id; the leader refuses when its
/// uncommitted bytes are at the cap.
#[test]
fn not_leader_and_busy_are_typed() {
    let mut net = Net::with_cfg(3, no_lease);
    net.elect(1, &[1, 2, 3]);
    net.deliver(|_| true);
    let e = net
        .nodes
        .get_mut(&2)
        .unwrap()
        .propose(vec![vec![1]])
        .unwrap_err();
    assert_eq!(e, raft::core::ProposeError::NotLeader(1));
    // Nothing reaches the followers: the cap (64 MiB by default) is hit.
    let big = vec![0u8; 1 << 20];
    let mut busy = false;
    for _ in 0..100 {
        match net.nodes.get_mut(&1).unwrap().propose(vec![big.clone()]) {
            Ok(_) => {}
            Err(raft::core::ProposeError::Busy) => {
                busy = true;
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(busy, "uncommitted-bytes cap never refused a proposal");
}

/// Many proposals in one step become one append per follower.
#[test]
fn proposals_are_batched() {
    let mut net = Net::with_cfg(3, no_lease);
    net.cfg = |id| {
        let mut c = no_lease(id);
        c.max_msg_bytes = 1 << 20;
        c
    };
    for id in 1..=3 {
        net.crash(id);
        net.restart(id);
    }
    net.elect(1, &[1, 2, 3]);
    net.deliver(|_| true);
    let n = net.nodes.get_mut(&1).unwrap();
    for i in 0..100u8 {
        n.propose(vec![vec![i]]).unwrap();
    }
    let rd = n.ready();
    let appends: Vec<_> = rd
        .messages
        .iter()
        .filter(|m| matches!(&m.body, MessageBody::Append { entries, .. } if !entries.is_empty()))
        .collect();
    assert_eq!(appends.len(), 2, "one append per follower");
    for m in appends {
        if let MessageBody::Append { entries, .. } = &m.body {
            assert_eq!(entries.len(), 100);
        }
    }
    assert_eq!(rd.entries.len(), 100);
}

/// A single-voter leader answers read-index requests on its own.
#[test]
fn single_voter_read_index_is_answered() {
    let mut net = Net::new(1);
    net.elect(1, &[1]);
    net.propose(1, b"x");
    net.settle_all();
    let n = net.nodes.get_mut(&1).unwrap();
    n.read_index(7).unwrap();
    let rd = n.ready();
    assert_eq!(rd.read_states.len(), 1);
    assert_eq!(rd.read_states[0].ctx, 7);
    assert_eq!(rd.read_states[0].index, Some(n.raft.log.committed));
}

/// Messages from a node whose removal is committed are refused: a removed node with old
/// state and a higher term cannot make members step down.
#[test]
fn removed_node_messages_are_refused() {
    let mut net = Net::with_cfg(3, no_lease);
    net.elect(1, &[1, 2, 3]);
    net.deliver(|_| true);
    let cc = raft::core::ConfChange::Enter {
        voters: vec![1, 2],
        learners: vec![],
    };
    net.nodes
        .get_mut(&1)
        .unwrap()
        .propose_conf_change(cc, None)
        .unwrap();
    net.deliver(|m| m.to != 3 && m.from != 3);
    // Let node 2 learn that the removal committed.
    for _ in 0..3 {
        net.nodes.get_mut(&1).unwrap().tick();
        net.deliver(|m| m.to != 3 && m.from != 3);
    }
    assert!(net.node(2).raft.conf().removed.contains(&3));
    let term = net.node(2).raft.term;
    let (li, lt) = (
        net.node(2).raft.log.last_index(),
        net.node(2).raft.log.last_term(),
    );
    net.nodes.get_mut(&2).unwrap().step(Message {
        from_incarnation: 0,
        to_incarnation: 0,
        from: 3,
        to: 2,
        term: term + 5,
        body: MessageBody::Vote {
            pre_vote: false,
            last_index: li + 10,
            last_term: lt,
            transfer: false,
        },
    });
    assert_eq!(
        net.node(2).raft.term,
        term,
        "a removed node changed a member's term"
    );
    net.settle(2);
    assert!(
        net.queue.iter().all(|m| m.to != 3),
        "a removed node got an answer"
    );
}
