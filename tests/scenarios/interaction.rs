//! Interaction scenarios in the style of etcd-io/raft's interaction tests: each message is
//! delivered, held or dropped by hand, and each step's outcome is asserted exactly.

use super::{no_lease, term_at, Net};
use raft::core::{
    ConfState, Entry, EntryKind, MemStorage, Message, MessageBody, NodeId, RawNode, Role,
    SnapshotMeta, Storage,
};

fn is_append(m: &Message) -> bool {
    matches!(m.body, MessageBody::Append { .. })
}

/// Delivers every queued message between members of `group` until quiet (others dropped).
fn deliver_within(net: &mut Net, group: &[NodeId]) {
    let g = group.to_vec();
    net.deliver(|m| g.contains(&m.from) && g.contains(&m.to));
}

/// A term-T append held in the network reaches a follower after it acknowledged the
/// leader of T+1: the follower must refuse it (answering with its newer term) and keep its
/// log, term and commit index.
#[test]
fn stale_append_across_terms_is_refused() {
    let mut net = Net::with_cfg(3, no_lease);
    net.elect(1, &[1, 2, 3]);
    net.deliver(|_| true);
    let k = net.node(1).raft.log.last_index();
    let t1 = net.node(1).raft.term;
    // Leader 1 appends x at k+1; its append to 2 is held, everything else is lost.
    net.propose(1, b"x");
    net.settle(1);
    let held: Vec<Message> = net
        .queue
        .drain(..)
        .filter(|m| m.to == 2 && is_append(m))
        .collect();
    assert!(held.iter().any(|m| matches!(&m.body,
        MessageBody::Append { entries, .. } if entries.iter().any(|e| e.index == k + 1))));
    // 3 leads term T+1 with 2; its entry at k+1 reaches 2, which acknowledges it.
    net.crash(1);
    net.elect(3, &[2, 3]);
    net.deliver(|m| m.from != 1 && m.to != 1);
    let t3 = net.node(3).raft.term;
    assert!(t3 > t1);
    assert_eq!(term_at(&net, 2, k + 1), t3);
    let before = (
        net.node(2).raft.log.last_index(),
        net.node(2).raft.log.committed,
        net.node(2).raft.term,
    );
    // The stale append of term T arrives now.
    for m in held {
        assert_eq!(m.term, t1);
        net.nodes.get_mut(&2).unwrap().step(m);
        net.settle(2);
    }
    let after = (
        net.node(2).raft.log.last_index(),
        net.node(2).raft.log.committed,
        net.node(2).raft.term,
    );
    assert_eq!(after, before, "a stale-term append changed the follower");
    assert_eq!(term_at(&net, 2, k + 1), t3, "the T+1 entry was overwritten");
    // The only answer to the old leader is a refusal carrying the newer term.
    for m in net.queue.iter().filter(|m| m.from == 2 && m.to == 1) {
        assert_eq!(m.term, t3);
        assert!(matches!(
            m.body,
            MessageBody::AppendResponse { reject: true, .. }
        ));
    }
}

/// An older, shorter append (a prefix of what the follower already holds) arrives after
/// the longer one: nothing is truncated and the answer acknowledges only what it carried.
#[test]
fn older_shorter_append_does_not_truncate() {
    let mut net = Net::with_cfg(5, no_lease);
    net.elect(1, &[1, 2, 3, 4, 5]);
    net.deliver(|_| true);
    let n = net.node(1).raft.log.last_index();
    for i in 0..5u8 {
        net.propose(1, &[i]);
    }
    // Only 1 and 2 talk (not a quorum of five): nothing new commits anywhere.
    deliver_within(&mut net, &[1, 2]);
    let last = net.node(2).raft.log.last_index();
    assert_eq!(last, n + 5);
    assert_eq!(net.node(2).raft.log.committed, n);
    // AE(prev n, entries n+1..=n+2): a delayed copy from earlier in the same term.
    let leader = &net.node(1).raft;
    let entries: Vec<Entry> = (n + 1..=n + 2)
        .map(|i| leader.log.slice(i, i + 1, u64::MAX).unwrap().remove(0))
        .collect();
    let m = Message {
        from_incarnation: 0,
        to_incarnation: 0,
        from: 1,
        to: 2,
        term: leader.term,
        body: MessageBody::Append {
            prev_index: n,
            prev_term: leader.log.term(n).unwrap(),
            entries,
            commit: n,
        },
    };
    net.queue.clear();
    net.nodes.get_mut(&2).unwrap().step(m);
    net.settle(2);
    assert_eq!(
        net.node(2).raft.log.last_index(),
        last,
        "a prefix append truncated the follower's log"
    );
    let acks: Vec<_> = net.queue.iter().filter(|m| m.from == 2).collect();
    assert_eq!(acks.len(), 1);
    assert!(matches!(
        acks[0].body,
        MessageBody::AppendResponse {
            index,
            reject: false,
            ..
        } if index == n + 2
    ));
}

/// A follower holding a divergent, uncommitted suffix that runs past the leader's snapshot
/// installs the snapshot: nothing of the old suffix survives (last index == snapshot index
/// until the leader sends more).
#[test]
fn snapshot_over_divergent_suffix_drops_it() {
    let mut net = Net::with_cfg(5, no_lease);
    net.elect(1, &[1, 2, 3, 4, 5]);
    net.deliver(|_| true);
    let k = net.node(1).raft.log.last_index();
    // Leader 1's 10 entries reach only node 3 (not a quorum of five).
    for i in 0..10u8 {
        net.propose(1, &[i]);
    }
    deliver_within(&mut net, &[1, 3]);
    assert_eq!(net.node(3).raft.log.last_index(), k + 10);
    let t_old = term_at(&net, 3, k + 10);
    // 2 leads a newer term with 4 and 5 and commits 4 entries of its own (plus its no-op).
    net.crash(1);
    net.elect(2, &[2, 4, 5]);
    for i in 0..4u8 {
        net.propose(2, &[100 + i]);
    }
    deliver_within(&mut net, &[2, 4, 5]);
    let s = net.node(2).raft.log.committed;
    assert_eq!(s, k + 5);
    let ts = term_at(&net, 2, s);
    assert!(ts > t_old);
    // 2 snapshots at s and compacts everything.
    let data = vec![7u8; 40];
    let meta = SnapshotMeta {
        index: s,
        term: ts,
        conf: net.node(2).raft.conf().clone(),
        conf_index: net.node(2).raft.conf_index(),
        size: data.len() as u64,
        checksum: raft::crc32c::crc32c(&data),
    };
    net.stores[&2].create_snapshot(meta, data, 0);
    assert!(net.node(2).raft.log.first_index() > k + 1);
    // Only 2 and 3 talk now; 2 probes 3, finds the log compacted and sends the snapshot.
    for _ in 0..30 {
        net.nodes.get_mut(&2).unwrap().tick();
        deliver_within(&mut net, &[2, 3]);
        if net.node(3).raft.log.committed >= s {
            break;
        }
    }
    let f = &net.node(3).raft.log;
    assert!(f.committed >= s, "node 3 did not install the snapshot");
    assert_eq!(f.term(s), Ok(ts));
    assert_eq!(
        f.last_index(),
        s,
        "the divergent suffix after the snapshot index survived"
    );
    assert_eq!(net.stores[&3].last_index(), s);
}

/// Vote, crash before the vote is synced, restart, and a second candidate in the same term:
/// the first candidate never heard the lost vote, so at most one leader in the term.
#[test]
fn vote_lost_before_sync_allows_one_leader_only() {
    let mut net = Net::with_cfg(3, no_lease);
    let t0 = net.node(1).raft.term;
    // Node 1 campaigns: pre-votes travel, then its real vote request reaches node 2 only.
    let mut request = None;
    for _ in 0..200 {
        net.nodes.get_mut(&1).unwrap().tick();
        net.settle(1);
        for m in std::mem::take(&mut net.queue) {
            match m.body {
                MessageBody::Vote {
                    pre_vote: false, ..
                } if m.to == 2 => request = Some(m),
                MessageBody::Vote { pre_vote: true, .. } if m.to == 2 => {
                    net.nodes.get_mut(&2).unwrap().step(m);
                    net.settle(2);
                }
                MessageBody::VoteResponse { .. } if m.to == 1 => {
                    net.nodes.get_mut(&1).unwrap().step(m);
                }
                _ => {}
            }
        }
        if request.is_some() {
            break;
        }
    }
    let request = request.expect("node 1 asked node 2 for its vote");
    let term = request.term;
    assert_eq!(term, t0 + 1);
    // Node 2 grants it, but the write never reaches its disk: only the messages it may
    // send at once leave it; the grant must not be among them.
    let n2 = net.nodes.get_mut(&2).unwrap();
    n2.step(request);
    let rd = n2.ready();
    assert_eq!(rd.hard_state.map(|h| (h.term, h.vote)), Some((term, 1)));
    assert!(
        rd.messages.iter().all(|m| !matches!(
            m.body,
            MessageBody::VoteResponse {
                pre_vote: false,
                reject: false
            }
        )),
        "a vote grant left before the vote was durable"
    );
    for m in rd.messages {
        net.nodes.get_mut(&m.to).unwrap().step(m);
    }
    net.crash(2);
    net.restart(2);
    assert_eq!(
        net.node(2).raft.term,
        t0,
        "the unsynced term survived the crash"
    );
    // Node 3 campaigns in the same term and wins with node 2.
    net.elect(3, &[2, 3]);
    assert_eq!(net.node(3).raft.term, term);
    assert_eq!(net.stores[&2].hard_state().vote, 3);
    net.settle(1);
    assert_ne!(
        net.node(1).raft.role,
        Role::Leader,
        "two leaders in term {term}"
    );
}

/// Builds a node whose log holds entries with `terms` (indexes 1..) and whose term is the
/// last of them.
fn with_log(id: NodeId, terms: &[u64]) -> (RawNode<MemStorage>, MemStorage) {
    let s = MemStorage::new_with_conf(ConfState::with_voters([1, 2]));
    let entries: Vec<Entry> = terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry {
            term: t,
            index: i as u64 + 1,
            kind: EntryKind::Normal,
            data: vec![i as u8].into(),
        })
        .collect();
    s.append(&entries);
    let mut hs = s.hard_state();
    hs.term = terms.iter().copied().max().unwrap_or(0);
    s.set_hard_state(hs);
    let mut c = no_lease(id);
    c.max_msg_bytes = u64::MAX;
    (RawNode::new(c, s.clone()).unwrap(), s)
}

/// Runs one ready of `n` with immediate persistence; returns every message it sends.
fn drain(n: &mut RawNode<MemStorage>, s: &MemStorage) -> Vec<Message> {
    let mut out = Vec::new();
    while n.has_ready() {
        let rd = n.ready();
        s.append(&rd.entries);
        if let Some(hs) = rd.hard_state {
            s.set_hard_state(hs);
        }
        out.extend(rd.messages);
        out.extend(rd.persisted_messages);
        n.on_persisted(rd.number);
        if let Some(e) = rd.committed_entries.last() {
            n.on_applied(e.index);
        }
    }
    out
}

/// Elects node 1 (leader log) over node 2 (follower log) and replicates until the follower
/// matches; returns the number of rejected appends and the `prev_index` of the first
/// accepted append.
fn probes(leader: &[u64], follower: &[u64]) -> (u64, u64) {
    let (mut l, ls) = with_log(1, leader);
    let (mut f, fs) = with_log(2, follower);
    let mut rejects = 0;
    let mut accepted_prev = None;
    for _ in 0..400 {
        if l.raft.role != Role::Leader {
            l.tick();
        }
        let mut to_f = drain(&mut l, &ls);
        while !to_f.is_empty() {
            let mut to_l = Vec::new();
            for m in to_f.drain(..) {
                if let MessageBody::Append {
                    prev_index,
                    prev_term,
                    ..
                } = &m.body
                {
                    if accepted_prev.is_none() && f.raft.log.match_term(*prev_index, *prev_term) {
                        accepted_prev = Some(*prev_index);
                    }
                }
                f.step(m);
                to_l.extend(drain(&mut f, &fs));
            }
            for m in to_l {
                if let MessageBody::AppendResponse { reject: true, .. } = m.body {
                    rejects += 1;
                }
                l.step(m);
            }
            to_f = drain(&mut l, &ls);
        }
        if l.raft.role == Role::Leader && f.raft.log.last_index() == l.raft.log.last_index() {
            break;
        }
        assert!(rejects < 50, "probing does not converge");
    }
    assert_eq!(f.raft.log.last_index(), l.raft.log.last_index());
    (rejects, accepted_prev.expect("an append was accepted"))
}

/// Fast backtracking over a divergence of one term takes exactly one rejected probe, and
/// the next append lands on the last entry both logs share (etcd's TestFastLogRejection
/// cases, adapted to this core's hints).
#[test]
fn one_term_divergence_probe_counts() {
    let cases: &[(&[u64], &[u64], u64, u64)] = &[
        // Follower has a longer run of an older term.
        (&[1, 2, 2, 4, 4, 4, 4], &[1, 2, 2, 3, 3, 3, 3, 3, 3], 1, 3),
        // Same length, one divergent term.
        (&[1, 2, 2, 4, 4, 4, 4], &[1, 2, 2, 3, 3, 3, 3], 1, 3),
        (
            &[1, 1, 1, 1, 3, 3, 3, 3],
            &[1, 1, 1, 1, 2, 2, 2, 2, 2, 2],
            1,
            4,
        ),
        // Follower shorter than the leader, divergent tail.
        (&[1, 1, 1, 1, 3, 3, 3, 3, 3, 3], &[1, 1, 1, 1, 2, 2], 1, 4),
        // Follower merely behind in the same term.
        (&[1, 1, 1, 1, 1, 1], &[1, 1, 1], 1, 3),
        // Follower empty.
        (&[1, 1, 1, 1, 1], &[], 1, 0),
        // Follower's divergent run starts right after index 1.
        (&[1, 5, 5, 5, 5], &[1, 2, 2, 2, 2, 2, 2, 2], 1, 1),
    ];
    for &(leader, follower, want_rejects, want_prev) in cases {
        assert_eq!(
            probes(leader, follower),
            (want_rejects, want_prev),
            "leader {leader:?} follower {follower:?}"
        );
    }
}
