//! A voter's disk is wiped in the simulator ([`Sim::wipe`]: it restarts empty under a new
//! incarnation, as a node restarted on a wiped data directory with the same id) while the
//! network is faulty and nodes crash and lose power. The runtime's rejoin logic (run
//! unchanged by the simulated nodes) must demote it to learner, catch it up and promote it
//! again; until it is demoted no election may count its vote (checked at every election:
//! the durable votes of the other nodes must make a quorum on their own), and every
//! invariant plus linearizability of the client history must hold.
//!
//! `RAFT_SIM_SEEDS=N` runs more seeds, `RAFT_SIM_SEED=S` replays one (each failure names
//! its seed).

#[path = "support/sim.rs"]
mod sim_support;

use raft::core::{ConfChange, ConfState, Config, NodeId};
use raft::sim::{Faults, Sim, Violation};
use sim_support::{cfg, client_op, et_ms, heal_and_recover, seeds};
use std::collections::BTreeSet;

/// Incarnations on (a real data directory has one): node `id` starts as incarnation `id`.
fn tracked(id: NodeId) -> Config {
    let mut c = cfg(id);
    c.incarnation = id;
    c
}

/// What one run did.
#[derive(Default)]
struct Counts {
    wipes: u64,
    /// Wiped voters that are voters again (demoted and promoted).
    rejoined: u64,
    /// Wiped voters left learners by a leader change between demotion and promotion (a
    /// documented limit: a new leader does not know they were rejoining), promoted here as
    /// the operator would.
    operator: u64,
    acked: u64,
}

/// The leader's configuration if it is committed (no change in flight) and not joint.
fn settled_conf(sim: &Sim) -> Option<ConfState> {
    let r = &sim.node(sim.leader()?)?.raft;
    let conf = r.conf();
    (r.conf_index() <= r.log.committed && !conf.is_joint()).then(|| conf.clone())
}

/// Voter `x` may be wiped now: every other voter knows its current incarnation (the
/// documented precondition: incarnations are learned on first contact), no other node is
/// being re-admitted, and a majority of the voters other than it is up (a wipe of a
/// majority loses committed entries: not a rejoin).
fn may_wipe(sim: &Sim, x: NodeId, rejoining: &BTreeSet<NodeId>) -> bool {
    let Some(conf) = settled_conf(sim) else {
        return false;
    };
    if !conf.voters.contains(&x) || !rejoining.is_empty() {
        return false;
    }
    let inc = sim.incarnation(x);
    let known = conf
        .voters
        .iter()
        .filter(|&&v| v != x)
        .all(|&v| sim.known_incarnation(v, x) == Some(inc));
    let up = conf
        .voters
        .iter()
        .filter(|&&v| v != x && sim.is_up(v))
        .count();
    known && up * 2 > conf.voters.len()
}

/// One seeded run.
fn run(seed: u64) -> Result<Counts, Violation> {
    let n = if seed.is_multiple_of(2) { 3 } else { 5 };
    let mut faults = if seed.is_multiple_of(3) {
        Faults::none()
    } else {
        Faults::harsh()
    };
    faults.sync_ms = (1, 20);
    let mut sim = Sim::new(seed, n, faults, tracked);
    sim.set_auto_rejoin(Some(8));
    if seed % 4 < 2 {
        // Catch-up by snapshot as well as by log.
        sim.set_snapshot_policy(6 + seed % 7, seed % 4);
    }
    let mut counts = Counts::default();
    let mut rejoining: BTreeSet<NodeId> = BTreeSet::new();
    for _ in 0..100 {
        let ids = sim.ids();
        let node = ids[sim.rand(0, ids.len() as u64) as usize];
        match sim.rand(0, 100) {
            0..=29 => {
                let target = sim.leader().unwrap_or(node);
                for _ in 0..sim.rand(1, 4) {
                    sim.propose(target);
                }
            }
            30..=49 => client_op(&mut sim, node),
            50..=61 => {
                // Wipe a voter: often a follower the leader knows, sometimes the leader.
                let victim = match sim.leader() {
                    Some(l) if sim.rand(0, 4) == 0 => l,
                    _ => node,
                };
                if may_wipe(&sim, victim, &rejoining) {
                    if sim.trace {
                        println!("{:>6}ms node {victim}: WIPED", sim.now);
                    }
                    sim.wipe(victim);
                    rejoining.insert(victim);
                    counts.wipes += 1;
                    if sim.rand(0, 2) == 0 {
                        sim.restart(victim)?;
                    }
                }
            }
            62..=69 => {
                let voters = sim.conf().map(|c| c.voters).unwrap_or_default();
                let up = voters
                    .iter()
                    .filter(|&&v| sim.is_up(v) && v != node && !rejoining.contains(&v))
                    .count();
                if up * 2 > voters.len() && sim.is_up(node) {
                    sim.power_loss(node);
                }
            }
            70..=81 => {
                for &i in &ids {
                    if !sim.is_up(i) {
                        sim.restart(i)?;
                    }
                }
            }
            82..=89 => sim.isolate(node),
            _ => sim.heal(),
        }
        let ms = sim.rand(1, 40);
        sim.run_for(ms)?;
        note_readmitted(&sim, &mut rejoining, &mut counts);
    }
    heal_and_recover(&mut sim, seed)?;
    // Every wiped voter must be a voter again: demoted and promoted by the leader (given
    // 20 election timeouts), else by the operator.
    for round in 0..2 {
        let deadline = sim.now + 20 * et_ms();
        while !rejoining.is_empty() && sim.now < deadline {
            let until = sim.now + et_ms();
            sim.run_for(until - sim.now)?;
            note_readmitted(&sim, &mut rejoining, &mut counts);
        }
        if round == 0 {
            operator_promotes(&mut sim, &rejoining, &mut counts);
        }
    }
    if !rejoining.is_empty() {
        return Err(Violation::new(
            seed,
            format!(
                "wiped voters {rejoining:?} not re-admitted:\n{}",
                sim.describe()
            ),
        ));
    }
    heal_and_recover(&mut sim, seed)?;
    sim.check_linearizable()?;
    counts.acked = sim.stats.acked;
    Ok(counts)
}

/// Wiped voters that are voters again after having been learners (the leader's view).
fn note_readmitted(sim: &Sim, rejoining: &mut BTreeSet<NodeId>, counts: &mut Counts) {
    let Some(conf) = settled_conf(sim) else {
        return;
    };
    let before = rejoining.len();
    // The checker tracks the demotion itself (a committed configuration without the node
    // as a voter); here only whether the node is a voter again, committed.
    rejoining.retain(|x| !(conf.voters.contains(x) && promoted(sim, *x)));
    counts.rejoined += (before - rejoining.len()) as u64;
    if sim.trace && rejoining.len() != before {
        println!(
            "{:>6}ms re-admitted; still rejoining: {rejoining:?}",
            sim.now
        );
    }
}

/// True once node `x`'s current incarnation was promoted: the leader learned it (a node
/// forgets a voter's incarnation once it is a learner everywhere in its configuration
/// history, and learns the new one on first contact after the promotion).
fn promoted(sim: &Sim, x: NodeId) -> bool {
    let inc = sim.incarnation(x);
    sim.leader()
        .is_some_and(|l| sim.known_incarnation(l, x) == Some(inc))
}

/// A wiped voter left a learner (the leader that demoted it lost office before promoting
/// it): promoted by hand, as docs/STORAGE.md tells the operator.
fn operator_promotes(sim: &mut Sim, rejoining: &BTreeSet<NodeId>, counts: &mut Counts) {
    let Some(l) = sim.leader() else { return };
    let Some(conf) = sim.conf() else { return };
    for &x in rejoining {
        if conf.learners.contains(&x) {
            let mut voters = conf.voters.clone();
            voters.push(x);
            let learners = conf.learners.iter().copied().filter(|&v| v != x).collect();
            if sim
                .propose_conf_change(l, ConfChange::Enter { voters, learners })
                .is_ok()
            {
                counts.operator += 1;
            }
            return;
        }
    }
}

#[test]
fn wiped_voters_rejoin_as_learners_and_never_count_before() {
    let seeds = seeds(100);
    let mut total = Counts::default();
    for &seed in &seeds {
        match run(seed) {
            Ok(c) => {
                total.wipes += c.wipes;
                total.rejoined += c.rejoined;
                total.operator += c.operator;
                total.acked += c.acked;
            }
            Err(v) => panic!("seed {seed} (replay with RAFT_SIM_SEED={seed}): {v}"),
        }
    }
    println!(
        "sim rejoin: {} seeds, {} wipes, {} voters again ({} of them promoted by the \
         operator after a leader change), {} acknowledged writes",
        seeds.len(),
        total.wipes,
        total.rejoined,
        total.operator,
        total.acked
    );
    assert!(total.wipes > 0 && total.rejoined > 0 && total.acked > 0);
}
