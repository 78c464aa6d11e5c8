//! Elections and leadership: heartbeat cadence, transfer timeout and targets, the quick
//! first pre-vote retry, election back-off, and a new leader's first append.

use super::Cluster;
use crate::core::{Message, MessageBody, NodeId, ProposeError, Role};

fn is_heartbeat(m: &Message) -> bool {
    matches!(m.body, MessageBody::Heartbeat { .. })
}

/// A leader broadcasts exactly one heartbeat per follower every `heartbeat_ticks` ticks,
/// and none in between.
#[test]
fn heartbeats_follow_heartbeat_ticks_exactly() {
    let mut c = Cluster::new(3, |c| {
        c.heartbeat_ticks = 3;
        c.election_ticks = 12;
    });
    c.elect(1);
    for round in 0..6 {
        for t in 1..=3 {
            c.node(1).tick();
            let hb = c.deliver(|_| true).into_iter().filter(is_heartbeat).count();
            let want = if t == 3 { 2 } else { 0 };
            assert_eq!(hb, want, "round {round}, tick {t}");
        }
    }
    assert_eq!(c.node(1).raft.role, Role::Leader);
}

/// A transfer to an unreachable node blocks proposals for exactly one election timeout,
/// then the leader gives it up and accepts proposals again.
#[test]
fn transfer_to_unreachable_node_is_abandoned_after_election_timeout() {
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    assert_eq!(c.node(1).transfer_leader(Some(3)), Ok(3));
    let first = c.take();
    assert!(
        first
            .iter()
            .any(|m| m.to == 3 && m.body == MessageBody::TimeoutNow),
        "a caught-up target gets TimeoutNow at once: {first:?}"
    );
    let et = c.node(1).raft.cfg.election_ticks;
    for t in 1..et {
        c.node(1).tick();
        c.deliver(|m| m.to != 3 && m.from != 3);
        assert_eq!(
            c.node(1).propose(vec![b"x".to_vec()]),
            Err(ProposeError::TransferInProgress),
            "tick {t}"
        );
        assert_eq!(c.node(1).raft.transferee, 3);
    }
    c.node(1).tick();
    assert_eq!(c.node(1).raft.transferee, crate::core::NO_NODE);
    assert!(c.node(1).propose(vec![b"x".to_vec()]).is_ok());
}

/// Transfer targets: `None` picks the most up-to-date other voter; the leader itself, a
/// non-voter and an unknown node are refused; a target that is behind gets entries first.
#[test]
fn transfer_target_choice_and_refusals() {
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    // Node 3 misses one entry.
    c.node(1).propose(vec![b"a".to_vec()]).unwrap();
    c.deliver(|m| m.to != 3 && m.from != 3);
    assert_eq!(c.node(1).transfer_leader(None), Ok(2));
    c.take();
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    c.node(1).propose(vec![b"a".to_vec()]).unwrap();
    c.deliver(|m| m.to != 2 && m.from != 2);
    assert_eq!(c.node(1).transfer_leader(None), Ok(3));
    assert!(matches!(
        c.node(1).transfer_leader(Some(1)),
        Err(ProposeError::Invalid(_))
    ));
    assert!(matches!(
        c.node(1).transfer_leader(Some(7)),
        Err(ProposeError::Invalid(_))
    ));
    // Node 2 is behind: it gets the missing entries, not TimeoutNow, until it catches up.
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    c.node(1).propose(vec![b"a".to_vec()]).unwrap();
    c.deliver(|m| m.to != 2 && m.from != 2);
    assert_eq!(c.node(1).transfer_leader(Some(2)), Ok(2));
    let sent = c.take();
    assert!(
        sent.iter()
            .any(|m| m.to == 2 && matches!(m.body, MessageBody::Append { .. })),
        "{sent:?}"
    );
    assert!(!sent.iter().any(|m| m.body == MessageBody::TimeoutNow));
    for m in sent {
        c.node(m.to).step(m);
    }
    let seen = c.deliver(|_| true);
    assert!(seen
        .iter()
        .any(|m| m.to == 2 && m.body == MessageBody::TimeoutNow));
    assert_eq!(c.node(2).raft.role, Role::Leader);
    // A follower cannot transfer.
    assert_eq!(
        c.node(1).transfer_leader(Some(3)),
        Err(ProposeError::NotLeader(2))
    );
}

/// TimeoutNow makes the target campaign at once in a real election (no pre-vote), marked
/// as a transfer so that followers in a lease still grant it.
#[test]
fn timeout_now_starts_a_real_transfer_election() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    let term = c.node(1).raft.term;
    assert_eq!(c.node(1).transfer_leader(Some(2)), Ok(2));
    let sent = c.take();
    for m in sent {
        c.node(m.to).step(m);
    }
    let votes: Vec<Message> = c
        .take()
        .into_iter()
        .filter(|m| m.from == 2 && matches!(m.body, MessageBody::Vote { .. }))
        .collect();
    assert_eq!(votes.len(), 2, "{votes:?}");
    for v in &votes {
        assert_eq!(v.term, term + 1);
        assert!(matches!(
            v.body,
            MessageBody::Vote {
                pre_vote: false,
                transfer: true,
                ..
            }
        ));
        c.queue.push(v.clone());
    }
    c.deliver(|_| true);
    assert_eq!(c.node(2).raft.role, Role::Leader);
}

/// Ticks a node that hears nothing until it sends (pre-)vote requests; returns the ticks
/// taken and the requests.
fn ticks_to_campaign(c: &mut Cluster, id: NodeId) -> (u64, Vec<Message>) {
    for t in 1..1000 {
        c.node(id).tick();
        let votes: Vec<Message> = c
            .take()
            .into_iter()
            .filter(|m| m.from == id && matches!(m.body, MessageBody::Vote { .. }))
            .collect();
        if !votes.is_empty() {
            return (t, votes);
        }
    }
    panic!("node {id} never campaigned");
}

/// After losing its leader a follower pre-campaigns within [et, 2 et); if that round
/// fails, the first retry comes after a random [et/4, et/2) ticks (a peer that heard the dead leader
/// a tick later may still have refused), and the next after a whole timeout again.
#[test]
fn first_prevote_retry_is_quick_then_a_full_timeout() {
    let mut quick_retries = std::collections::BTreeSet::new();
    for seed in 1..=20 {
        let mut c = Cluster::new(3, |c| {
            c.election_ticks = 20;
            c.seed = seed * 1000 + c.id;
        });
        c.elect(1);
        // The leader is gone; node 2's requests reach nobody.
        let (first, votes) = ticks_to_campaign(&mut c, 2);
        assert!(
            (20..40).contains(&first),
            "seed {seed}: first after {first}"
        );
        assert!(votes
            .iter()
            .all(|m| matches!(m.body, MessageBody::Vote { pre_vote: true, .. })));
        assert_eq!(c.node(2).raft.role, Role::PreCandidate);
        let (quick, _) = ticks_to_campaign(&mut c, 2);
        assert!((5..10).contains(&quick), "seed {seed}: retry after {quick}");
        quick_retries.insert(quick);
        let (again, _) = ticks_to_campaign(&mut c, 2);
        assert!((20..40).contains(&again), "seed {seed}: then after {again}");
    }
    // Randomized over the whole range, so that nodes retrying together spread out.
    assert!(quick_retries.len() >= 3, "{quick_retries:?}");
}

/// A candidate refused by a quorum steps down and counts the lost election (its next
/// timeout is widened); hearing a leader clears the count.
#[test]
fn lost_election_is_counted_and_cleared_by_a_leader() {
    let mut c = Cluster::new(3, |c| {
        c.pre_vote = false;
        c.check_quorum = false;
    });
    // Node 3 has a longer log, so it refuses node 1.
    c.elect(3);
    c.node(3).propose(vec![b"a".to_vec()]).unwrap();
    c.deliver(|m| m.to != 1 && m.from != 1);
    assert_eq!(c.node(1).raft.lost_elections, 0);
    c.node(1).campaign();
    // Nodes 2 and 3 have the longer log: both refuse.
    c.deliver(|_| true);
    assert_eq!(c.node(1).raft.role, Role::Follower);
    assert_eq!(c.node(1).raft.lost_elections, 1);
    // Another leader is heard: the count is cleared.
    c.elect(2);
    assert_eq!(c.node(1).raft.lost_elections, 0);
}

/// A new leader's first append to each follower carries only its no-op entry, right after
/// its previous last index; a conf change is refused until that no-op commits.
#[test]
fn new_leader_appends_its_noop_after_its_last_entry() {
    let mut c = Cluster::new(3, |c| c.check_quorum = false);
    c.elect(1);
    c.node(1).propose(vec![b"a".to_vec()]).unwrap();
    c.deliver(|_| true);
    let last = c.node(2).raft.log.last_index();
    c.node(2).campaign();
    let mut appends = Vec::new();
    for _ in 0..10 {
        let msgs = c.take();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            if m.from == 2 && matches!(m.body, MessageBody::Append { .. }) {
                appends.push(m);
            } else {
                c.node(m.to).step(m);
            }
        }
    }
    assert_eq!(c.node(2).raft.role, Role::Leader);
    assert_eq!(c.node(2).raft.log.last_index(), last + 1);
    assert_eq!(
        c.node(2).propose_conf_change(
            crate::core::ConfChange::Enter {
                voters: vec![1, 2],
                learners: vec![]
            },
            None
        ),
        Err(ProposeError::ConfChangeInProgress)
    );
    assert_eq!(appends.len(), 2, "{appends:?}");
    for m in &appends {
        match &m.body {
            MessageBody::Append {
                prev_index,
                entries,
                ..
            } => {
                assert_eq!(*prev_index, last);
                assert_eq!(entries.len(), 1);
                assert_eq!(entries[0].index, last + 1);
            }
            _ => unreachable!(),
        }
    }
}
