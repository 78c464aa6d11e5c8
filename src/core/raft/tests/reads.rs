//! Reads: forwarded-read bookkeeping (cap, duplicates, expiry, answers that do not match),
//! the quorum round that confirms a read-index, reads failed on step-down, reads waiting
//! for the leader's first commit, and the lease boundary.

use super::Cluster;
use crate::core::{Message, MessageBody, NodeId, ProposeError, ReadState, Role, NO_NODE};

fn read_states(c: &mut Cluster, id: NodeId) -> Vec<ReadState> {
    c.settle();
    c.reads.remove(&id).unwrap_or_default()
}

fn heartbeats(msgs: &[Message]) -> Vec<Message> {
    msgs.iter()
        .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
        .cloned()
        .collect()
}

/// Steps `msgs` into their nodes and returns what those nodes send back.
fn exchange(c: &mut Cluster, msgs: Vec<Message>) -> Vec<Message> {
    for m in msgs {
        c.node(m.to).step(m);
    }
    c.take()
}

/// A follower tracks at most `max_forwarded_reads` forwarded reads, refuses a context
/// already in flight, and fails each one `forwarded_read_timeout_ticks` after it was sent.
#[test]
fn forwarded_reads_are_capped_and_expire_on_time() {
    let mut c = Cluster::new(3, |c| {
        c.max_forwarded_reads = 2;
        c.forwarded_read_timeout_ticks = Some(5);
        c.election_ticks = 20;
    });
    c.elect(1);
    for _ in 0..3 {
        c.node(2).tick();
    }
    assert_eq!(c.node(2).read_index(10), Ok(()));
    assert!(matches!(
        c.node(2).read_index(10),
        Err(ProposeError::Invalid(_))
    ));
    assert_eq!(c.node(2).read_index(11), Ok(()));
    assert_eq!(c.node(2).read_index(12), Err(ProposeError::Busy));
    assert_eq!(c.node(2).raft.forwarded_reads(), 2);
    let sent = c.take();
    assert_eq!(
        sent.iter()
            .filter(|m| m.to == 1 && matches!(m.body, MessageBody::ReadIndex { .. }))
            .count(),
        2
    );
    for t in 1..5 {
        c.node(2).tick();
        c.take();
        assert!(read_states(&mut c, 2).is_empty(), "tick {t}");
        assert_eq!(c.node(2).raft.forwarded_reads(), 2);
    }
    c.node(2).tick();
    c.take();
    assert_eq!(
        read_states(&mut c, 2),
        vec![
            ReadState {
                ctx: 10,
                index: None
            },
            ReadState {
                ctx: 11,
                index: None
            }
        ]
    );
    assert_eq!(c.node(2).raft.forwarded_reads(), 0);
    // A candidate without a leader cannot forward.
    c.node(3).raft.leader = NO_NODE;
    assert_eq!(
        c.node(3).read_index(1),
        Err(ProposeError::NotLeader(NO_NODE))
    );
}

/// Only the answer of the leader and term the read went to completes it; every other one
/// (another node, another term, an unknown or finished context) is ignored and counted.
#[test]
fn read_index_responses_must_match_the_forwarded_request() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    let term = c.node(2).raft.term;
    c.node(2).read_index(20).unwrap();
    c.take();
    let r = &mut c.node(2).raft;
    r.handle_read_index_response(3, term, 20, 9, true);
    assert_eq!(r.ignored_read_responses, 1);
    r.handle_read_index_response(1, term - 1, 20, 9, true);
    assert_eq!(r.ignored_read_responses, 2);
    r.handle_read_index_response(1, term, 21, 9, true);
    assert_eq!(r.ignored_read_responses, 3);
    assert_eq!(r.forwarded_reads(), 1);
    r.handle_read_index_response(1, term, 20, 9, true);
    assert_eq!(r.ignored_read_responses, 3);
    assert_eq!(r.forwarded_reads(), 0);
    r.handle_read_index_response(1, term, 20, 9, true);
    assert_eq!(r.ignored_read_responses, 4);
    assert_eq!(
        read_states(&mut c, 2),
        vec![ReadState {
            ctx: 20,
            index: Some(9)
        }]
    );
    // A refusal completes the read without an index.
    c.node(2).read_index(22).unwrap();
    c.take();
    c.node(2)
        .raft
        .handle_read_index_response(1, term, 22, 0, false);
    assert_eq!(
        read_states(&mut c, 2),
        vec![ReadState {
            ctx: 22,
            index: None
        }]
    );
}

/// A read-index is confirmed by a heartbeat round sent after the request: acks of the
/// round already in flight when it arrived do not answer it.
#[test]
fn read_index_waits_for_a_round_sent_after_the_request() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    let commit = c.node(1).raft.log.committed;
    c.node(1).tick();
    let old_round = heartbeats(&c.take());
    assert_eq!(old_round.len(), 2);
    c.node(1).read_index(5).unwrap();
    let new_round = heartbeats(&c.take());
    assert_eq!(new_round.len(), 2, "the read triggers its own round");
    let acks = exchange(&mut c, old_round);
    exchange(&mut c, acks);
    assert!(
        read_states(&mut c, 1).is_empty(),
        "answered by an old round"
    );
    // One follower's ack of the new round makes a quorum with the leader.
    let acks = exchange(
        &mut c,
        new_round.into_iter().filter(|m| m.to == 2).collect(),
    );
    exchange(&mut c, acks);
    assert_eq!(
        read_states(&mut c, 1),
        vec![ReadState {
            ctx: 5,
            index: Some(commit)
        }]
    );
}

/// A follower's read forwarded to the leader is answered to it, with the leader's commit.
#[test]
fn forwarded_read_is_answered_through_the_leader() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    let commit = c.node(1).raft.log.committed;
    c.node(2).read_index(8).unwrap();
    c.deliver(|_| true);
    assert_eq!(
        read_states(&mut c, 2),
        vec![ReadState {
            ctx: 8,
            index: Some(commit)
        }]
    );
    assert!(read_states(&mut c, 1).is_empty());
}

/// A leader that steps down fails its own pending reads (and only those: a follower's
/// forwarded read fails at the follower), including reads still waiting for its first
/// commit.
#[test]
fn step_down_fails_own_pending_and_waiting_reads() {
    let mut c = Cluster::new(3, |_| {});
    c.elect(1);
    c.node(1).read_index(1).unwrap();
    c.node(2).read_index(2).unwrap();
    let msgs = c.take();
    for m in msgs {
        if matches!(m.body, MessageBody::ReadIndex { .. }) {
            c.node(m.to).step(m);
        }
    }
    c.take();
    assert_eq!(c.node(1).raft.reads.len(), 2);
    let term = c.node(1).raft.term;
    c.node(1).step(Message {
        from_incarnation: 0,
        to_incarnation: 0,
        from: 3,
        to: 1,
        term: term + 1,
        body: MessageBody::AppendResponse {
            index: 0,
            reject: true,
            hint_index: 0,
            hint_term: 0,
        },
    });
    assert_eq!(c.node(1).raft.role, Role::Follower);
    let sent = c.take();
    assert!(
        !sent
            .iter()
            .any(|m| matches!(m.body, MessageBody::ReadIndexResponse { .. })),
        "{sent:?}"
    );
    assert_eq!(
        read_states(&mut c, 1),
        vec![ReadState {
            ctx: 1,
            index: None
        }]
    );

    // A new leader whose no-op has not committed keeps reads waiting, and fails them if
    // it steps down.
    let mut c = Cluster::new(3, |_| {});
    c.node(1).campaign();
    c.deliver(|m| {
        matches!(
            m.body,
            MessageBody::Vote { .. } | MessageBody::VoteResponse { .. }
        )
    });
    assert_eq!(c.node(1).raft.role, Role::Leader);
    c.take();
    c.node(1).read_index(3).unwrap();
    c.take();
    assert!(read_states(&mut c, 1).is_empty());
    let term = c.node(1).raft.term;
    c.node(1).step(Message {
        from_incarnation: 0,
        to_incarnation: 0,
        from: 2,
        to: 1,
        term: term + 1,
        body: MessageBody::AppendResponse {
            index: 0,
            reject: true,
            hint_index: 0,
            hint_term: 0,
        },
    });
    assert_eq!(
        read_states(&mut c, 1),
        vec![ReadState {
            ctx: 3,
            index: None
        }]
    );
}

/// A read at a new leader waits until an entry of its term commits, then is answered at
/// that commit index (never at the older one).
#[test]
fn read_waits_for_the_leaders_first_commit() {
    let mut c = Cluster::new(3, |_| {});
    c.node(1).campaign();
    c.deliver(|m| {
        matches!(
            m.body,
            MessageBody::Vote { .. } | MessageBody::VoteResponse { .. }
        )
    });
    assert_eq!(c.node(1).raft.role, Role::Leader);
    // The no-op's appends were lost; the next heartbeats bring it to the followers.
    c.node(1).read_index(4).unwrap();
    c.take();
    assert!(read_states(&mut c, 1).is_empty());
    for _ in 0..3 {
        c.node(1).tick();
        c.deliver(|_| true);
    }
    let noop = c.node(1).raft.log.last_index();
    assert_eq!(c.node(1).raft.log.committed, noop);
    assert_eq!(
        read_states(&mut c, 1),
        vec![ReadState {
            ctx: 4,
            index: Some(noop)
        }]
    );
}

/// With lease reads (`election_ticks` 20, drift 2) a read is answered at once while less
/// than 18 ticks passed since the send time of the latest round a quorum acknowledged; at
/// 18 it needs a round. A transfer revokes the lease for the rest of the term, even after
/// the transfer is abandoned.
#[test]
fn lease_holds_for_election_ticks_minus_drift_after_the_acked_round() {
    let mut c = Cluster::new(3, |c| {
        c.election_ticks = 20;
        c.lease_read_max_drift = Some(2);
    });
    c.elect(1);
    let commit = c.node(1).raft.log.committed;
    // A round acknowledged by the quorum.
    c.node(1).tick();
    c.deliver(|_| true);
    for e in 0..=18u64 {
        if e > 0 {
            c.node(1).tick();
        }
        c.take(); // later rounds are lost
        c.node(1).read_index(100 + e).unwrap();
        c.take();
        let answered = read_states(&mut c, 1);
        if e < 18 {
            assert_eq!(
                answered,
                vec![ReadState {
                    ctx: 100 + e,
                    index: Some(commit)
                }],
                "{e} ticks after the acked round"
            );
        } else {
            assert!(answered.is_empty(), "lease still valid after {e} ticks");
        }
    }

    let mut c = Cluster::new(3, |c| {
        c.election_ticks = 20;
        c.lease_read_max_drift = Some(2);
    });
    c.elect(1);
    c.node(1).tick();
    c.deliver(|_| true);
    c.node(1).read_index(1).unwrap();
    c.take();
    assert_eq!(read_states(&mut c, 1).len(), 1, "the lease holds");
    // A transfer to node 3, which never answers: no lease reads, during or after it.
    c.node(1).transfer_leader(Some(3)).unwrap();
    c.take();
    c.node(1).read_index(2).unwrap();
    c.take();
    assert!(read_states(&mut c, 1).is_empty());
    for _ in 0..20 {
        c.node(1).tick();
        c.deliver(|m| m.to != 3 && m.from != 3);
    }
    assert_eq!(c.node(1).raft.transferee, NO_NODE);
    assert_eq!(c.node(1).raft.role, Role::Leader);
    read_states(&mut c, 1);
    c.node(1).read_index(3).unwrap();
    c.take();
    assert!(
        read_states(&mut c, 1).is_empty(),
        "lease reads come back after an abandoned transfer"
    );
}
