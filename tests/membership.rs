//! Membership changes, leader transfer and reads, scripted in the deterministic simulator
//! (its invariants — including "quorums of successive configurations overlap" and "at most
//! one configuration change in flight" — are checked after every step).

use raft::core::{ConfChange, Config, NodeId, ProposeError, Role};
use raft::sim::{Faults, Sim, TICK_MS};

const ET: u64 = 20;

fn et_ms() -> u64 {
    ET * TICK_MS
}

fn cfg(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.election_ticks = ET;
    c.heartbeat_ticks = 4;
    c
}

fn lease_cfg(id: NodeId) -> Config {
    let mut c = cfg(id);
    c.lease_read_max_drift = Some(4);
    c
}

fn cluster(n: u64, seed: u64, cfg: fn(NodeId) -> Config) -> Sim {
    let mut sim = Sim::new(seed, n, Faults::none(), cfg);
    assert!(sim
        .run_until(10 * et_ms(), |s| s.leader().is_some())
        .unwrap());
    sim.run_for(et_ms()).unwrap();
    sim
}

fn enter(voters: &[NodeId], learners: &[NodeId]) -> ConfChange {
    ConfChange::Enter {
        voters: voters.to_vec(),
        learners: learners.to_vec(),
    }
}

fn write(sim: &mut Sim) {
    let l = sim.leader().expect("leader");
    let d = sim.propose(l).expect("leader accepts");
    let end = sim.now + 20 * et_ms();
    assert!(
        sim.run_until(end, |s| s.acked.contains_key(&d)).unwrap(),
        "write not committed:\n{}",
        sim.describe()
    );
}

fn wait_conf(sim: &mut Sim, voters: &[NodeId]) {
    let want = voters.to_vec();
    let end = sim.now + 20 * et_ms();
    let ok = sim
        .run_until(end, |s| {
            s.leader()
                .and_then(|l| s.node(l))
                .is_some_and(|n| n.raft.conf().voters == want && n.raft.pending_conf_changes() == 0)
        })
        .unwrap();
    assert!(
        ok,
        "configuration {want:?} not reached:\n{}",
        sim.describe()
    );
}

fn self_removal(n: u64) {
    let mut sim = cluster(n, 100 + n, cfg);
    write(&mut sim);
    let old = sim.leader().unwrap();
    let rest: Vec<NodeId> = sim.ids().into_iter().filter(|&i| i != old).collect();
    sim.propose_conf_change(old, enter(&rest, &[])).unwrap();
    // The old leader keeps replicating until the change commits, then hands over.
    let t0 = sim.now;
    let end = t0 + 10 * et_ms();
    let moved = sim
        .run_until(end, |s| s.leader().is_some_and(|l| l != old))
        .unwrap();
    assert!(
        moved,
        "no new leader after self-removal:\n{}",
        sim.describe()
    );
    let took = sim.now - t0;
    assert!(
        took <= 2 * et_ms(),
        "new leader took {took} ms (> 2 election timeouts)"
    );
    assert_ne!(sim.role(old), Some(Role::Leader));
    assert!(
        sim.propose(old).is_none(),
        "removed leader still accepts proposals"
    );
    write(&mut sim);
    // The removed node never campaigns again.
    let term = sim.node(old).unwrap().raft.term;
    sim.isolate(old);
    sim.run_for(20 * et_ms()).unwrap();
    assert_eq!(
        sim.node(old).unwrap().raft.term,
        term,
        "removed node kept campaigning"
    );
    sim.check_global().unwrap();
}

#[test]
fn leader_self_removal_2_nodes() {
    self_removal(2);
}

#[test]
fn leader_self_removal_3_nodes() {
    self_removal(3);
}

#[test]
fn leader_self_removal_5_nodes() {
    self_removal(5);
}

/// Ongaro's 2015 single-server change bug: a new leader must not change the configuration
/// before it commits an entry of its own term, or an uncommitted change from the previous
/// term and the new one can form disjoint quorums.
#[test]
fn single_server_change_counterexample_4_nodes() {
    let mut sim = cluster(4, 7, cfg);
    write(&mut sim);
    let l1 = sim.leader().unwrap();
    let others: Vec<NodeId> = sim.ids().into_iter().filter(|&i| i != l1).collect();
    let (a, b, c) = (others[0], others[1], others[2]);
    // Add node 5; only `a` receives the entry before the leader dies.
    sim.add_fresh_node(5);
    sim.cut(l1, b);
    sim.cut(l1, c);
    sim.cut(l1, 5);
    sim.propose_conf_change(l1, enter(&[1, 2, 3, 4, 5], &[]))
        .unwrap();
    sim.run_for(5).unwrap();
    sim.crash(l1);
    sim.heal();
    // b or c becomes leader of a new term without the uncommitted addition, and tries to
    // remove `a` straight away.
    let end = sim.now + 20 * et_ms();
    let found = sim
        .run_until(end, |s| s.leader().is_some_and(|l| l != l1))
        .unwrap();
    assert!(found);
    let l2 = sim.leader().unwrap();
    let keep: Vec<NodeId> = [1, 2, 3, 4]
        .into_iter()
        .filter(|&i| i != a || l2 == a)
        .collect();
    let early = sim.propose_conf_change(l2, enter(&keep, &[]));
    let committed_own_term = {
        let n = sim.node(l2).unwrap();
        n.raft.log.term(n.raft.log.committed).ok() == Some(n.raft.term)
    };
    if !committed_own_term {
        assert!(
            early.as_ref().is_err_and(|e| e.contains("in progress")),
            "new leader changed the configuration before committing in its term: {early:?}"
        );
    }
    // After its no-op commits, one change at a time goes through; the simulator checks
    // that successive committed configurations keep overlapping quorums.
    sim.run_for(5 * et_ms()).unwrap();
    write(&mut sim);
    sim.restart(l1).unwrap();
    sim.run_for(5 * et_ms()).unwrap();
    let l = sim.leader().unwrap();
    let conf = sim.node(l).unwrap().raft.conf().clone();
    let mut v = conf.voters.clone();
    v.retain(|&x| x != a || l == a);
    if v.len() < conf.voters.len() {
        sim.propose_conf_change(l, enter(&v, &[])).unwrap();
        wait_conf(&mut sim, &v);
    }
    write(&mut sim);
    sim.check_global().unwrap();
}

/// A learner promoted while partitioned (it has not seen the change) must still vote once
/// it can, or the cluster cannot elect a leader (etcd #10998).
#[test]
fn learner_promoted_while_partitioned_still_votes() {
    let mut sim = cluster(3, 21, cfg);
    let l = sim.leader().unwrap();
    sim.add_fresh_node(4);
    sim.propose_conf_change(l, enter(&[1, 2, 3], &[4])).unwrap();
    write(&mut sim);
    write(&mut sim);
    sim.isolate(4);
    sim.propose_conf_change(l, enter(&[1, 2, 3, 4], &[]))
        .unwrap();
    wait_conf(&mut sim, &[1, 2, 3, 4]);
    assert!(
        !sim.node(4).unwrap().raft.conf().voters.contains(&4),
        "node 4 saw the change"
    );
    // Kill the leader and one more voter's partner: the survivors need node 4's vote.
    sim.crash(l);
    sim.heal();
    let end = sim.now + 30 * et_ms();
    let ok = sim
        .run_until(end, |s| s.leader().is_some_and(|x| x != l))
        .unwrap();
    assert!(
        ok,
        "no leader without the promoted learner's vote:\n{}",
        sim.describe()
    );
    write(&mut sim);
    sim.check_global().unwrap();
}

/// Joint consensus: replace two voters at once; the leader leaves the joint configuration
/// by itself; proposals with a stale configuration id are refused.
#[test]
fn joint_change_and_compare_and_set() {
    let mut sim = cluster(3, 31, cfg);
    let l = sim.leader().unwrap();
    sim.add_fresh_node(4);
    sim.add_fresh_node(5);
    sim.propose_conf_change(l, enter(&[1, 2, 3], &[4, 5]))
        .unwrap();
    write(&mut sim);
    let l = sim.leader().unwrap();
    let current = sim.node(l).unwrap().raft.conf_index();
    let mut v: Vec<NodeId> = vec![l, 4, 5];
    v.sort_unstable();
    // Compare-and-set against an older configuration id is refused explicitly.
    let e = sim
        .propose_conf_change_cas(l, enter(&v, &[]), current - 1)
        .unwrap_err();
    assert!(e.contains("configuration moved"), "{e}");
    // Two voters replaced at once: joint consensus, left automatically.
    sim.propose_conf_change_cas(l, enter(&v, &[]), current)
        .unwrap();
    let end = sim.now + 5 * et_ms();
    let saw_joint = sim
        .run_until(end, |s| s.node(l).is_some_and(|n| n.raft.conf().is_joint()))
        .unwrap();
    assert!(
        saw_joint,
        "a two-voter change must go through a joint configuration"
    );
    wait_conf(&mut sim, &v);
    assert!(
        !sim.node(l).unwrap().raft.conf().is_joint(),
        "joint configuration not left"
    );
    write(&mut sim);
    sim.check_global().unwrap();
}

/// Leadership transfer to a named node; proposals are held off during the transfer.
#[test]
fn transfer_leadership() {
    let mut sim = cluster(3, 41, cfg);
    write(&mut sim);
    let l = sim.leader().unwrap();
    let to = sim.ids().into_iter().find(|&i| i != l).unwrap();
    assert_eq!(sim.transfer(l, Some(to)), Ok(to));
    assert!(
        sim.propose(l).is_none(),
        "proposals must be held off during a transfer"
    );
    let end = sim.now + 5 * et_ms();
    assert!(sim.run_until(end, |s| s.leader() == Some(to)).unwrap());
    write(&mut sim);
}

/// A transfer to an unreachable node aborts after an election timeout and the old leader
/// serves again; it never serves lease reads after the transfer started.
#[test]
fn transfer_to_partitioned_node_aborts_and_revokes_lease() {
    let mut sim = cluster(3, 51, lease_cfg);
    write(&mut sim);
    let l = sim.leader().unwrap();
    // With a valid lease a read is answered without a heartbeat round.
    sim.read_index(l, 1).unwrap();
    assert!(
        sim.reads
            .iter()
            .any(|(n, r)| *n == l && r.ctx == 1 && r.index.is_some()),
        "lease read not served locally"
    );
    let to = sim.ids().into_iter().find(|&i| i != l).unwrap();
    sim.isolate(to);
    sim.transfer(l, Some(to)).unwrap();
    sim.reads.clear();
    sim.read_index(l, 2).unwrap();
    // Heartbeat acknowledgements are needed now: nothing answered before a round trip.
    sim.run_for(0).unwrap();
    assert!(
        sim.reads.iter().all(|(_, r)| r.ctx != 2),
        "lease read served after the transfer started"
    );
    sim.run_for(3 * et_ms()).unwrap();
    assert_eq!(sim.leader(), Some(l), "transfer should have aborted");
    assert!(
        sim.propose(l).is_some(),
        "proposals resume after the transfer aborts"
    );
    sim.check_global().unwrap();
}

/// A deposed leader that does not know it yet never answers a read index.
#[test]
fn stale_read_attempt_on_deposed_leader_is_refused() {
    let mut sim = cluster(5, 61, cfg);
    write(&mut sim);
    let old = sim.leader().unwrap();
    sim.isolate(old);
    let end = sim.now + 20 * et_ms();
    assert!(sim
        .run_until(end, |s| s.leader().is_some_and(|l| l != old))
        .unwrap());
    write(&mut sim);
    sim.reads.clear();
    // The old leader may still think it leads; its read must not be answered.
    if sim.role(old) == Some(Role::Leader) {
        sim.read_index(old, 9).unwrap();
    }
    sim.run_for(3 * et_ms()).unwrap();
    assert!(
        sim.reads
            .iter()
            .all(|(n, r)| *n != old || r.index.is_none()),
        "deposed leader answered a read: {:?}",
        sim.reads
    );
    assert_ne!(sim.role(old), Some(Role::Leader));
}

/// A follower serves linearizable reads through the leader's read index.
#[test]
fn follower_read_index() {
    let mut sim = cluster(3, 71, cfg);
    write(&mut sim);
    let l = sim.leader().unwrap();
    let f = sim.ids().into_iter().find(|&i| i != l).unwrap();
    sim.read_index(f, 5).unwrap();
    sim.run_for(et_ms()).unwrap();
    let commit = sim.node(l).unwrap().raft.log.committed;
    assert!(sim
        .reads
        .iter()
        .any(|(n, r)| *n == f && r.ctx == 5 && r.index == Some(commit)));
}

/// Refusals are explicit errors, never silent no-ops.
#[test]
fn membership_refusals_are_explicit() {
    let mut sim = cluster(3, 81, cfg);
    write(&mut sim);
    let l = sim.leader().unwrap();
    let f = sim.ids().into_iter().find(|&i| i != l).unwrap();
    let e = sim.propose_conf_change(f, enter(&[1, 2], &[])).unwrap_err();
    assert!(e.contains("not the leader"), "{e}");
    let e = sim.propose_conf_change(l, enter(&[], &[1])).unwrap_err();
    assert!(e.contains("voter"), "{e}");
    sim.propose_conf_change(l, enter(&[1, 2, 3], &[9])).unwrap();
    let e = sim
        .propose_conf_change(l, enter(&[1, 2, 3], &[]))
        .unwrap_err();
    assert!(e.contains("in progress"), "{e}");
    let _ = ProposeError::Busy;
}

/// A removed id that comes back with old state is refused: its messages are ignored, it
/// cannot disturb the cluster, and it cannot be added again.
#[test]
fn removed_node_with_old_state_is_refused() {
    let mut sim = cluster(4, 91, cfg);
    write(&mut sim);
    let l = sim.leader().unwrap();
    let gone = sim.ids().into_iter().find(|&i| i != l).unwrap();
    // It never hears of its removal.
    sim.isolate(gone);
    let rest: Vec<NodeId> = sim.ids().into_iter().filter(|&i| i != gone).collect();
    sim.propose_conf_change(l, enter(&rest, &[])).unwrap();
    wait_conf(&mut sim, &rest);
    write(&mut sim);
    let leader = sim.leader().unwrap();
    let term = sim.node(leader).unwrap().raft.term;
    // It comes back with its old state and campaigns for a while.
    sim.crash(gone);
    sim.restart(gone).unwrap();
    sim.heal();
    sim.run_for(30 * et_ms()).unwrap();
    assert_eq!(
        sim.leader(),
        Some(leader),
        "removed node disturbed the cluster"
    );
    assert_eq!(sim.node(leader).unwrap().raft.term, term);
    write(&mut sim);
    let mut again = rest.clone();
    again.push(gone);
    let e = sim
        .propose_conf_change(leader, enter(&again, &[]))
        .unwrap_err();
    assert!(e.contains("cannot be reused"), "{e}");
    sim.check_global().unwrap();
}
