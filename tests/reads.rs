//! Reads at the core level, every message delivered, dropped or held by the test: the lease
//! is measured from the send time of a quorum-acknowledged heartbeat round, a restarted node
//! refuses votes for an election timeout, and forwarded reads are tracked (answered only by
//! the leader and term they went to, failed on leader/term change, expired, capped).

use raft::core::{Config, Message, MessageBody, NodeId, ProposeError, ReadState, Role, NO_NODE};
#[path = "support/raw_cluster.rs"]
mod raw_cluster;
use raw_cluster::RawCluster as Net;

const ET: u64 = 10;
const DRIFT: u64 = 2;
/// Lease length in ticks: `ET - DRIFT` after the send of a quorum-acknowledged round.
const LEASE: u64 = ET - DRIFT;

fn cfg(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.election_ticks = ET;
    c.heartbeat_ticks = 1;
    c
}

fn lease_cfg(id: NodeId) -> Config {
    let mut c = cfg(id);
    c.lease_read_max_drift = Some(DRIFT);
    c
}

fn is_heartbeat_ack(m: &Message) -> bool {
    matches!(m.body, MessageBody::HeartbeatResponse { .. })
}

// ----- lease reads ---------------------------------------------------------------------

/// With a fresh quorum-acknowledged round the leader answers a read at once, without a
/// round trip (the lease works at all).
#[test]
fn lease_read_is_served_locally_while_valid() {
    let mut net = Net::new(3, lease_cfg);
    let l = net.leader().unwrap();
    let commit = net.node(l).raft.log.committed;
    assert_eq!(
        net.read_now(l, 1),
        Some(ReadState {
            ctx: 1,
            index: Some(commit)
        })
    );
}

/// An acknowledgement of an old round that arrives late (the leader cannot hear its
/// followers meanwhile) does not extend the lease: it holds from the round's send time.
#[test]
fn late_heartbeat_ack_does_not_extend_lease() {
    let mut net = Net::new(3, lease_cfg);
    let l = net.leader().unwrap();
    // Round sent now; its acknowledgements are held back.
    net.tick(l);
    let mut held = Vec::new();
    for m in net.take() {
        net.step(m);
    }
    for m in net.take() {
        if is_heartbeat_ack(&m) {
            held.push(m);
        }
    }
    assert!(!held.is_empty());
    // The followers' messages no longer reach the leader, except the held acks, delivered
    // late (LEASE - 1 ticks after their round was sent).
    for _ in 0..LEASE - 1 {
        net.tick(l);
        net.deliver(|m| m.to != l);
    }
    for m in held {
        net.step(m);
    }
    net.settle(l);
    // The old code renewed "heard" here, keeping the lease for LEASE more ticks.
    net.tick(l);
    net.deliver(|m| m.to != l);
    assert_eq!(net.node(l).raft.role, Role::Leader);
    assert_eq!(
        net.read_now(l, 7),
        None,
        "lease read served {} ticks after the last acknowledged round was sent",
        LEASE
    );
}

/// Followers that cannot hear the leader (one-way partition) but keep forwarding
/// read-index requests to it do not renew its lease; once the lease has run out the
/// leader confirms reads with a round again (which cannot complete here).
#[test]
fn follower_read_index_does_not_renew_lease() {
    let mut net = Net::new(3, lease_cfg);
    let l = net.leader().unwrap();
    let fs = net.followers();
    let mut ctx = 100;
    for _ in 0..LEASE + 2 {
        net.tick(l);
        for &f in &fs {
            ctx += 1;
            net.node_mut(f).read_index(ctx).unwrap();
        }
        net.deliver(|m| m.from != l);
    }
    assert_eq!(net.node(l).raft.role, Role::Leader);
    assert_eq!(
        net.read_now(l, 1),
        None,
        "follower ReadIndex requests renewed the lease"
    );
}

/// One-way partition: the leader's messages are lost, the followers' arrive. The
/// followers elect a new leader and commit a write while still forwarding reads to the
/// old one; the old leader must not answer a read from its (expired) lease.
#[test]
fn one_way_partition_old_leader_serves_no_stale_lease_read() {
    let mut net = Net::new(3, lease_cfg);
    let old = net.leader().unwrap();
    let fs = net.followers();
    let old_commit = net.node(old).raft.log.committed;
    let old_term = net.node(old).raft.term;
    let mut ctx = 1000;
    let mut new_leader = None;
    for _ in 0..10 * ET {
        for &f in &fs {
            let n = net.node_mut(f);
            if n.raft.leader == old {
                ctx += 1;
                n.read_index(ctx).unwrap();
            }
        }
        net.tick_all();
        // Higher-term messages would make the old leader step down; the test holds them
        // back (as if delayed) to look at its lease alone.
        net.deliver(|m| m.from != old && !(m.to == old && m.term > old_term));
        if let Some(l) = net.leader().filter(|&l| l != old) {
            new_leader = Some(l);
            break;
        }
    }
    let new = new_leader.expect("followers elect a new leader");
    net.node_mut(new).propose(vec![b"w".to_vec()]).unwrap();
    for _ in 0..3 {
        net.tick_all();
        net.deliver(|m| m.from != old && m.to != old);
    }
    let new_commit = net.node(new).raft.log.committed;
    assert!(
        new_commit > old_commit + 1,
        "the new leader committed a write"
    );
    assert_eq!(net.node(old).raft.role, Role::Leader);
    // Any index the old leader can give is stale now.
    assert_eq!(
        net.read_now(old, 1),
        None,
        "stale lease read at the old leader"
    );
}

// ----- votes after a restart -----------------------------------------------------------

fn vote_request(from: NodeId, to: NodeId, term: u64, pre_vote: bool, transfer: bool) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::Vote {
            pre_vote,
            last_index: 1 << 20,
            last_term: term,
            transfer,
        },
    }
}

fn granted(msgs: &[Message], to: NodeId) -> bool {
    msgs.iter()
        .any(|m| m.to == to && matches!(m.body, MessageBody::VoteResponse { reject: false, .. }))
}

/// A restarted node refuses votes and pre-votes for an election timeout after it starts
/// (it may have acknowledged the leader's lease just before it crashed), but honours a
/// leadership transfer at once; after an election timeout it grants them again.
#[test]
fn restarted_follower_refuses_votes_for_an_election_timeout() {
    let mut net = Net::new(3, lease_cfg);
    let l = net.leader().unwrap();
    let fs = net.followers();
    let (a, b) = (fs[0], fs[1]);
    let term = net.node(a).raft.term;
    net.crash(a);
    net.nodes.remove(&l); // the leader is gone too
    net.restart(a);
    assert_eq!(net.node(a).raft.leader, NO_NODE);
    for pre_vote in [true, false] {
        net.step(vote_request(b, a, term + 1, pre_vote, false));
        let out = net.take();
        assert!(
            !granted(&out, b),
            "restarted node granted a {} at once",
            if pre_vote { "pre-vote" } else { "vote" }
        );
    }
    for _ in 0..ET - 1 {
        net.tick(a);
        net.queue.clear();
        net.step(vote_request(b, a, term + 1, true, false));
        assert!(!granted(&net.take(), b), "pre-vote granted within ET");
    }
    net.tick(a);
    net.queue.clear();
    net.step(vote_request(b, a, term + 1, true, false));
    assert!(granted(&net.take(), b), "pre-vote refused after ET");
}

#[test]
fn restarted_follower_honours_transfer_votes_at_once() {
    let mut net = Net::new(3, lease_cfg);
    let fs = net.followers();
    let (a, b) = (fs[0], fs[1]);
    let term = net.node(a).raft.term;
    net.crash(a);
    net.restart(a);
    net.step(vote_request(b, a, term + 1, false, true));
    assert!(granted(&net.take(), b), "transfer vote refused");
}

/// Without check-quorum there is no leader stickiness, so no boot stickiness either
/// (lease reads require check-quorum).
#[test]
fn boot_stickiness_follows_check_quorum() {
    fn no_cq(id: NodeId) -> Config {
        let mut c = cfg(id);
        c.check_quorum = false;
        c
    }
    let mut net = Net::new(3, no_cq);
    let fs = net.followers();
    let (a, b) = (fs[0], fs[1]);
    let term = net.node(a).raft.term;
    net.crash(a);
    net.restart(a);
    net.step(vote_request(b, a, term + 1, true, false));
    assert!(granted(&net.take(), b));
}

// ----- forwarded reads -----------------------------------------------------------------

/// A follower's read is answered through the leader.
#[test]
fn forwarded_read_is_answered_by_the_leader() {
    let mut net = Net::new(3, cfg);
    let f = net.followers()[0];
    let commit = net.node(f).raft.log.committed;
    net.node_mut(f).read_index(5).unwrap();
    assert_eq!(net.node(f).raft.forwarded_reads(), 1);
    for _ in 0..3 {
        net.tick_all();
        net.deliver(|_| true);
    }
    assert_eq!(
        net.answer(f, 5),
        Some(ReadState {
            ctx: 5,
            index: Some(commit)
        })
    );
    assert_eq!(net.node(f).raft.forwarded_reads(), 0);
}

fn read_response(from: NodeId, to: NodeId, term: u64, ctx: u64, index: u64) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::ReadIndexResponse {
            ctx,
            index,
            ok: true,
        },
    }
}

/// A follower restarted with a read outstanding ignores the leader's late answer to it
/// (it would otherwise complete a newer read with the old index).
#[test]
fn late_read_index_response_after_restart_is_ignored() {
    let mut net = Net::new(3, cfg);
    let l = net.leader().unwrap();
    let f = net.followers()[0];
    net.node_mut(f).read_index(1).unwrap();
    // Deliver everything but hold the leader's answers.
    let mut held = Vec::new();
    for _ in 0..5 {
        net.tick(l);
        for m in net.take() {
            if matches!(m.body, MessageBody::ReadIndexResponse { .. }) {
                held.push(m);
            } else {
                net.step(m);
            }
        }
    }
    let late: Vec<Message> = held
        .into_iter()
        .filter(|m| matches!(m.body, MessageBody::ReadIndexResponse { ctx: 1, .. }))
        .collect();
    assert_eq!(late.len(), 1, "the leader answered the read");
    net.crash(f);
    net.restart(f);
    // The restarted follower learns the leader, then gets the old answer.
    net.tick(l);
    net.deliver(|_| true);
    assert_eq!(net.node(f).raft.leader, l);
    net.step(late[0].clone());
    net.settle(f);
    assert_eq!(net.answer(f, 1), None, "late answer completed a read");
    assert_eq!(net.node(f).raft.ignored_read_responses, 1);
}

/// An answer must come from the leader the request went to, in the same term.
#[test]
fn read_index_response_from_another_node_or_term_is_ignored() {
    let mut net = Net::new(3, cfg);
    let l = net.leader().unwrap();
    let fs = net.followers();
    let (f, other) = (fs[0], fs[1]);
    let term = net.node(f).raft.term;
    net.node_mut(f).read_index(9).unwrap();
    net.take(); // the request is lost
    net.step(read_response(other, f, term, 9, 1));
    net.settle(f);
    assert_eq!(net.answer(f, 9), None, "answer from a non-leader accepted");
    // A higher term makes the follower drop its leader and fail the read.
    net.step(read_response(l, f, term + 1, 9, 1));
    net.settle(f);
    assert_eq!(
        net.answer(f, 9),
        Some(ReadState {
            ctx: 9,
            index: None
        })
    );
    assert_eq!(net.node(f).raft.ignored_read_responses, 2);
}

/// Forwarded reads fail (index None) as soon as the follower stops following the leader
/// they went to (here: it times out and pre-campaigns), not after the caller's timeout.
#[test]
fn forwarded_reads_fail_on_leader_change() {
    let mut net = Net::new(3, cfg);
    let l = net.leader().unwrap();
    let f = net.followers()[0];
    net.node_mut(f).read_index(3).unwrap();
    net.node_mut(f).read_index(4).unwrap();
    net.take();
    net.nodes.remove(&l);
    let mut ticks = 0;
    while net.node(f).raft.role == Role::Follower {
        net.tick(f);
        net.queue.clear();
        ticks += 1;
        assert!(ticks <= 2 * ET);
    }
    assert!(ticks < 2 * ET, "failed by the pre-campaign, not by expiry");
    assert_eq!(
        net.answer(f, 3),
        Some(ReadState {
            ctx: 3,
            index: None
        })
    );
    assert_eq!(
        net.answer(f, 4),
        Some(ReadState {
            ctx: 4,
            index: None
        })
    );
    assert_eq!(net.node(f).raft.forwarded_reads(), 0);
}

/// A forwarded read whose request or answer is lost fails after its timeout (default two
/// election timeouts) while the leader stays in place.
#[test]
fn forwarded_reads_expire() {
    let mut net = Net::new(3, cfg);
    let f = net.followers()[0];
    net.node_mut(f).read_index(11).unwrap();
    let is_read = |m: &Message| {
        matches!(
            m.body,
            MessageBody::ReadIndex { .. } | MessageBody::ReadIndexResponse { .. }
        )
    };
    net.deliver(|m| !is_read(m));
    for _ in 0..2 * ET - 1 {
        net.tick_all();
        net.deliver(|m| !is_read(m));
    }
    assert_eq!(net.answer(f, 11), None, "expired early");
    net.tick_all();
    assert_eq!(
        net.answer(f, 11),
        Some(ReadState {
            ctx: 11,
            index: None
        })
    );
    assert_eq!(net.node(f).raft.role, Role::Follower);
}

/// The number of tracked forwarded reads is capped (busy beyond it); a context already in
/// flight is refused.
#[test]
fn forwarded_reads_are_capped() {
    fn capped(id: NodeId) -> Config {
        let mut c = cfg(id);
        c.max_forwarded_reads = 2;
        c.forwarded_read_timeout_ticks = Some(3);
        c
    }
    let mut net = Net::new(3, capped);
    let f = net.followers()[0];
    let n = net.node_mut(f);
    n.read_index(1).unwrap();
    assert!(matches!(n.read_index(1), Err(ProposeError::Invalid(_))));
    n.read_index(2).unwrap();
    assert_eq!(n.read_index(3), Err(ProposeError::Busy));
    // Room again once they expire (custom timeout: 3 ticks).
    net.take();
    for _ in 0..3 {
        net.tick_all();
        net.deliver(|m| !matches!(m.body, MessageBody::ReadIndex { .. }));
    }
    assert_eq!(
        net.answer(f, 1),
        Some(ReadState {
            ctx: 1,
            index: None
        })
    );
    net.node_mut(f).read_index(3).unwrap();
}

// ----- simulated: lease reads under one-way partitions and pauses -----------------------

mod simulated {
    use raft::core::{Config, NodeId};
    use raft::sim::{Faults, Sim, TICK_MS};

    const SIM_ET: u64 = 20;

    fn lease_cfg(id: NodeId) -> Config {
        let mut c = Config::new(id);
        c.election_ticks = SIM_ET;
        c.heartbeat_ticks = 4;
        c.lease_read_max_drift = Some(2);
        c
    }

    fn et_ms() -> u64 {
        SIM_ET * TICK_MS
    }

    /// One seed: a lease-reading cluster whose leader repeatedly loses its outgoing links
    /// (a minority of followers still reach it and forward reads to it while the others
    /// elect a new leader), its incoming links, or is paused, or a follower restarts while
    /// cut-off peers campaign, while clients read at every node and write at the newest leader; the
    /// history must stay linearizable. Returns the number of completed operations.
    fn run(seed: u64) -> u64 {
        let n = if seed.is_multiple_of(2) { 3 } else { 5 };
        let mut sim = Sim::new(seed, n, Faults::none(), lease_cfg);
        assert!(sim
            .run_until(10 * et_ms(), |s| s.leader().is_some())
            .unwrap());
        let mut v = 0;
        for _ in 0..6 {
            let Some(l) = sim.leader() else {
                sim.run_for(et_ms()).unwrap();
                continue;
            };
            let others: Vec<NodeId> = sim.ids().into_iter().filter(|&i| i != l).collect();
            match sim.rand(0, 4) {
                0 => {
                    // Just enough followers to make a quorum with the leader still reach
                    // it (and forward reads to it) but hear nothing from it; the others are
                    // cut off both ways.
                    for (i, &o) in others.iter().enumerate() {
                        if i < others.len() / 2 {
                            sim.cut_one_way(l, o);
                        } else {
                            sim.cut(l, o);
                        }
                    }
                }
                1 => others.iter().for_each(|&o| sim.cut_one_way(o, l)),
                2 => {
                    // The followers that do not keep the leader's quorum are cut off from
                    // it and campaign (refused: the others heard the leader); then one that
                    // acknowledged the lease restarts at once and hears nothing from the
                    // leader: it must not vote them in while the lease may hold.
                    let keep = others.len() / 2;
                    others[keep..].iter().for_each(|&o| sim.cut(l, o));
                    sim.run_for(2 * et_ms()).unwrap();
                    sim.crash(others[0]);
                    sim.restart(others[0]).unwrap();
                    sim.cut_one_way(l, others[0]);
                }
                _ => {
                    let ms = sim.rand(et_ms(), 3 * et_ms());
                    sim.pause(l, ms);
                }
            }
            let end = sim.now + 4 * et_ms();
            while sim.now < end {
                v += 1;
                if let Some(w) = sim.leader() {
                    sim.client_put(w, "x", &format!("v{v}"));
                }
                for id in sim.ids() {
                    sim.client_get(id, "x");
                }
                let ms = sim.rand(1, 2 * TICK_MS);
                sim.run_for(ms).unwrap_or_else(|e| panic!("{e}"));
            }
            sim.heal();
            sim.run_for(2 * et_ms()).unwrap();
        }
        sim.run_for(4 * et_ms()).unwrap();
        sim.check_global().unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = sim.check_linearizable() {
            panic!("seed {seed}: {e}");
        }
        sim.history()
            .events()
            .iter()
            .filter(|e| e.complete.is_some())
            .count() as u64
    }

    #[test]
    fn lease_reads_stay_linearizable_under_one_way_partitions_and_pauses() {
        let n: u64 = std::env::var("RAFT_SIM_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(40)
            .min(2000);
        let done: u64 = (1..=n).map(run).sum();
        assert!(
            done > n * 50,
            "the workload must complete operations ({done})"
        );
    }
}

/// The lease stays usable for a whole healthy term: a read on every tick, with every
/// heartbeat round acknowledged at once, is answered locally each time.
#[test]
fn lease_holds_on_every_tick_of_a_healthy_term() {
    let mut net = Net::new(3, lease_cfg);
    let l = net.leader().unwrap();
    for ctx in 1..=3 * ET {
        net.tick_all();
        net.deliver(|_| true);
        assert!(
            net.read_now(l, ctx).is_some_and(|r| r.index.is_some()),
            "lease read {ctx} not served locally"
        );
    }
}
