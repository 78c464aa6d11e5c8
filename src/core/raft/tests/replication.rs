//! Replication bookkeeping: a follower whose configuration entry is overwritten goes back
//! to the previous configuration, an acknowledgement that commits nothing sends nothing,
//! committed proposals stop counting against the uncommitted-bytes cap, a stale-term
//! notice is not taken for a rejected probe, pipelined and probing appends, and a demoted
//! leader's `removed` flag.

use super::Cluster;
use crate::core::{ConfChange, Message, MessageBody, ProgressState, ProposeError};

/// Node 3 appends the leader's configuration entry (removing node 5) but nobody else does;
/// node 2, elected without it, overwrites that index: node 3's configuration is the old
/// one again.
#[test]
fn overwritten_conf_entry_reverts_the_configuration() {
    let mut c = Cluster::new(5, |c| c.check_quorum = false);
    c.elect(1);
    let idx = c
        .node(1)
        .propose_conf_change(
            ConfChange::Enter {
                voters: vec![1, 2, 3, 4],
                learners: vec![],
            },
            None,
        )
        .unwrap();
    for m in c.take() {
        if m.to == 3 {
            c.node(3).step(m);
        }
    }
    c.take();
    assert_eq!(c.node(3).raft.conf().voters, vec![1, 2, 3, 4]);
    assert_eq!(c.node(3).raft.log.last_index(), idx);

    c.node(2).campaign();
    c.deliver(|m| m.from != 1 && m.to != 1);
    assert_eq!(c.node(2).raft.role, super::Role::Leader);
    let term = c.node(2).raft.term;
    assert_eq!(c.node(3).raft.log.term(idx), Ok(term));
    assert_eq!(c.node(3).raft.conf().voters, vec![1, 2, 3, 4, 5]);
}

/// With five voters, the first acknowledgement of a new entry moves nothing to commit: the
/// leader sends nothing back (no broadcast of an unchanged commit index).
#[test]
fn an_acknowledgement_that_commits_nothing_sends_nothing() {
    let mut c = Cluster::new(5, |c| c.check_quorum = false);
    c.elect(1);
    let committed = c.node(1).raft.log.committed;
    c.node(1).propose(vec![b"x".to_vec()]).unwrap();
    for m in c.take() {
        let to = m.to;
        c.node(to).step(m);
    }
    let acks = c.take();
    let ack = acks.into_iter().find(|m| m.from == 2 && m.to == 1).unwrap();
    c.node(1).step(ack);
    assert_eq!(c.node(1).raft.log.committed, committed);
    assert_eq!(c.take(), Vec::<Message>::new());
}

/// Once a proposal commits, its bytes no longer count against `max_uncommitted_bytes`.
#[test]
fn committed_proposals_free_the_uncommitted_budget() {
    let mut c = Cluster::new(3, |c| {
        c.check_quorum = false;
        c.max_uncommitted_bytes = 100;
    });
    c.elect(1);
    c.node(1).propose(vec![vec![7; 50]]).unwrap();
    assert_eq!(
        c.node(1).propose(vec![vec![8; 50]]),
        Err(ProposeError::Busy)
    );
    c.deliver(|_| true);
    let log = &c.node(1).raft.log;
    assert_eq!(log.committed, log.last_index());
    assert_eq!(c.node(1).raft.uncommitted_bytes, 0);
    c.node(1).propose(vec![vec![9; 50]]).unwrap();
}

/// A same-term append rejection with index 0 and no hint is the notice a node sends a
/// stale leader: it carries no log information and must not reset a waiting probe.
#[test]
fn stale_leader_notice_does_not_move_a_probe() {
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    let term = c.node(1).raft.term;
    let p = c.node(1).raft.progress.get_mut(&2).unwrap();
    p.become_probe();
    p.next = 1;
    p.probe_sent = true;
    c.node(1).step(Message {
        from: 2,
        to: 1,
        term,
        body: MessageBody::AppendResponse {
            index: 0,
            reject: true,
            hint_index: 0,
            hint_term: 0,
        },
        from_incarnation: 0,
        to_incarnation: 0,
    });
    let p = &c.node(1).raft.progress[&2];
    assert_eq!(
        (p.state, p.next, p.probe_sent),
        (ProgressState::Probe, 1, true)
    );
    assert_eq!(c.take(), Vec::<Message>::new());
}

/// In the Replicate state appends are pipelined: the next append starts right after the
/// last entry sent, without waiting for the answer.
#[test]
fn pipelined_appends_continue_after_the_last_entry_sent() {
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    assert_eq!(c.node(1).raft.progress[&2].state, ProgressState::Replicate);
    let a = c.node(1).propose(vec![b"a".to_vec()]).unwrap();
    let first = c.take();
    assert!(first.iter().any(|m| m.to == 2));
    let b = c.node(1).propose(vec![b"b".to_vec()]).unwrap();
    let second: Vec<_> = c.take().into_iter().filter(|m| m.to == 2).collect();
    let [m] = &second[..] else {
        panic!("one append to node 2 expected: {second:?}")
    };
    let MessageBody::Append {
        prev_index,
        entries,
        ..
    } = &m.body
    else {
        panic!("append expected: {m:?}")
    };
    assert_eq!(*prev_index, a);
    assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![b]);
}

/// In the Probe state one append is outstanding at a time, even an empty one (a probe of a
/// follower with nothing left to receive).
#[test]
fn an_empty_probe_pauses_the_follower() {
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    let last = c.node(1).raft.log.last_index();
    let p = c.node(1).raft.progress.get_mut(&2).unwrap();
    p.become_probe();
    assert_eq!(p.next, last + 1);
    c.node(1).raft.bcast_append();
    c.node(1).raft.bcast_append();
    let to2: Vec<_> = c.take().into_iter().filter(|m| m.to == 2).collect();
    assert_eq!(to2.len(), 1, "{to2:?}");
    assert!(c.node(1).raft.progress[&2].probe_sent);
}

/// A leader that commits its own demotion to learner steps down and stays a member (it may
/// be promoted again, also by a snapshot, which does not reset the flag); one that commits
/// its removal is marked removed.
#[test]
fn a_leader_demoted_to_learner_is_not_marked_removed() {
    for (learners, removed) in [(vec![1], false), (vec![], true)] {
        let mut c = Cluster::new(3, |c| c.check_quorum = false);
        c.elect(1);
        c.node(1)
            .propose_conf_change(
                ConfChange::Enter {
                    voters: vec![2, 3],
                    learners,
                },
                None,
            )
            .unwrap();
        c.deliver(|_| true);
        let r = &c.node(1).raft;
        assert_eq!(r.role, super::Role::Follower);
        assert_eq!(r.removed, removed);
    }
}

/// The leader keeps the send tick of heartbeat rounds for leases only for one election
/// timeout: with no follower answering, the history stays bounded.
#[test]
fn heartbeat_round_history_is_bounded_by_the_election_timeout() {
    let mut c = Cluster::new(3, |c| {
        c.check_quorum = false;
        c.heartbeat_ticks = 1;
        c.election_ticks = 10;
    });
    c.elect(1);
    for _ in 0..100 {
        c.node(1).tick();
        c.take();
    }
    let r = &c.node(1).raft;
    assert_eq!(r.role, super::Role::Leader);
    assert!(
        r.round_ticks.len() <= 10,
        "{} rounds kept",
        r.round_ticks.len()
    );
    assert!(r.round_ticks.iter().all(|&(_, t)| r.ticks - t < 10));
}

/// A proposal is refused as busy only when the uncommitted bytes (each entry counted as
/// its data plus 24) would exceed `max_uncommitted_bytes`: exactly at the cap it is taken,
/// and with nothing uncommitted even a proposal above the cap is taken (else it could never
/// be).
#[test]
fn uncommitted_cap_boundary_is_exact() {
    let mut c = Cluster::new(3, |c| {
        c.check_quorum = false;
        c.max_uncommitted_bytes = 100;
    });
    c.elect(1);
    c.node(1).propose(vec![vec![0; 200]]).unwrap();
    c.deliver(|_| true);
    assert_eq!(c.node(1).raft.uncommitted_bytes, 0);
    c.node(1).propose(vec![vec![1; 30]]).unwrap(); // 54 bytes
    c.node(1).propose(vec![vec![2; 22]]).unwrap(); // 46: exactly 100
    assert_eq!(c.node(1).raft.uncommitted_bytes, 100);
    assert_eq!(c.node(1).propose(vec![vec![]]), Err(ProposeError::Busy));
}

/// The leader's own entry in the status follows its durable log: matched is the last
/// persisted index and next the one after it.
#[test]
fn leader_status_reports_its_own_progress() {
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    for i in 0..3u8 {
        c.node(1).propose(vec![vec![i]]).unwrap();
        c.deliver(|_| true);
    }
    let last = c.node(1).raft.log.last_index();
    let st = c.node(1).status();
    let me = st.peers.iter().find(|p| p.id == 1).unwrap();
    assert_eq!((me.matched, me.next), (last, last + 1));
}
