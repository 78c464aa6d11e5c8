//! Replication flow control: a lagging follower is caught up through a pipeline of appends
//! (the flow-control window filled after each answer), not one append per round trip or per
//! heartbeat.

use super::Cluster;
use crate::core::progress::ProgressState;
use crate::core::{Message, MessageBody, NodeId};

/// Delivers the queued messages one hop at a time (every message queued now is delivered,
/// then the answers form the next hop) until quiet or `done`; returns the hops taken.
fn hops_until(c: &mut Cluster, max: usize, done: impl Fn(&mut Cluster) -> bool) -> usize {
    for hop in 0..max {
        if done(c) {
            return hop;
        }
        let msgs: Vec<Message> = c.take();
        for m in msgs {
            let to = m.to;
            c.node(to).step(m);
        }
    }
    panic!("not done after {max} hops");
}

fn last_index(c: &mut Cluster, id: NodeId) -> u64 {
    c.node(id).raft.log.last_index()
}

/// A follower 200 appends behind (1 KiB per append) is caught up in a handful of hops after
/// the heartbeat that finds it: one probe, then the whole window at once. Sending one append
/// per answer took more than 200 hops.
#[test]
fn lagging_follower_gets_a_full_window_after_one_probe() {
    let mut c = Cluster::new(3, |c| {
        c.max_msg_bytes = 1024;
        c.max_inflight_msgs = 256;
        c.max_inflight_bytes = 1 << 30;
    });
    c.elect(1);
    // Node 3 is cut off while 200 KiB of commands commit with node 2.
    for i in 0..2000u32 {
        c.node(1).propose(vec![i.to_le_bytes().repeat(20)]).unwrap();
        c.deliver(|m| m.to != 3 && m.from != 3);
    }
    let target = last_index(&mut c, 1);
    assert!(last_index(&mut c, 3) < 10, "node 3 was cut off");
    // Reconnected: the next heartbeat finds it.
    let hb = c.node(1).raft.cfg.heartbeat_ticks;
    for _ in 0..hb {
        c.node(1).tick();
    }
    let hops = hops_until(&mut c, 1000, |c| last_index(c, 3) == target);
    assert!(hops <= 10, "caught up in {hops} hops, want <= 10");
    assert_eq!(c.node(1).raft.progress[&3].state, ProgressState::Replicate);
}

/// A probe answered exactly at the match point (an empty probe to a caught-up follower)
/// ends probing: the next proposal reaches the follower without waiting for a heartbeat.
#[test]
fn probe_answered_at_match_point_resumes_replication() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    c.node(1).propose(vec![b"a".to_vec()]).unwrap();
    c.deliver(|_| true);
    let matched = c.node(1).raft.progress[&3].matched;
    assert_eq!(matched, last_index(&mut c, 1));
    // The leader falls back to probing node 3 (as after a rejection) and probes it: the
    // probe carries no entries, so the answer is at the match point.
    c.node(1).raft.progress.get_mut(&3).unwrap().become_probe();
    c.node(1).raft.send_append(3);
    let probe = c.take();
    assert!(
        probe.iter().any(|m| m.to == 3
            && matches!(&m.body, MessageBody::Append { entries, .. } if entries.is_empty())),
        "an empty probe to node 3: {probe:?}"
    );
    for m in probe {
        let to = m.to;
        c.node(to).step(m);
    }
    // No tick from here on: only the answers and the proposal drive replication.
    c.deliver(|_| true);
    assert_eq!(c.node(1).raft.progress[&3].state, ProgressState::Replicate);
    c.node(1).propose(vec![b"b".to_vec()]).unwrap();
    c.deliver(|_| true);
    assert_eq!(last_index(&mut c, 3), last_index(&mut c, 1));
}
