//! The simulator's power-loss mode: nodes lose power ([`Sim::power_loss`]: any subset of
//! their unsynced writes survives, not a prefix) under a faulty network, a snapshot policy
//! and key-value clients; every invariant, linearizability of the client history and
//! recovery after healing must hold. `RAFT_SIM_SEEDS=N` runs more seeds; `RAFT_SIM_SEED=S`
//! replays one.

use raft::core::{Config, NodeId};
use raft::sim::{Faults, Sim, Violation, TICK_MS};

const ET: u64 = 20;

fn cfg(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.election_ticks = ET;
    c.heartbeat_ticks = 4;
    c.max_msg_bytes = 256;
    c.max_inflight_msgs = 4;
    c.snapshot_chunk_bytes = 64;
    c.max_uncommitted_bytes = 4096;
    c
}

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("RAFT_SIM_SEED") {
        return vec![s.parse().expect("RAFT_SIM_SEED must be a number")];
    }
    let n = std::env::var("RAFT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (1..=n).collect()
}

/// One seeded run; returns (power losses, unsynced writes lost, acknowledged writes).
fn run(seed: u64) -> Result<(u64, u64, u64), Violation> {
    let n = if seed.is_multiple_of(2) { 3 } else { 5 };
    // A slow disk, so that power often fails with writes waiting for a sync.
    let mut faults = if seed.is_multiple_of(3) {
        Faults::none()
    } else {
        Faults::harsh()
    };
    faults.sync_ms = (5, 60);
    let mut sim = Sim::new(seed, n, faults, cfg);
    if seed.is_multiple_of(2) {
        sim.set_snapshot_policy(6 + seed % 7, seed % 4);
    }
    let (mut losses, mut lost) = (0u64, 0u64);
    for _ in 0..80 {
        let ids = sim.ids();
        let node = ids[sim.rand(0, ids.len() as u64) as usize];
        match sim.rand(0, 100) {
            0..=29 => {
                let target = sim.leader().unwrap_or(node);
                for _ in 0..sim.rand(1, 4) {
                    sim.propose(target);
                }
            }
            30..=49 => {
                let target = if sim.rand(0, 4) == 0 {
                    node
                } else {
                    sim.leader().unwrap_or(node)
                };
                let key = format!("k{}", sim.rand(0, 3));
                let value = format!("v{}", sim.rand(0, 1000));
                match sim.rand(0, 3) {
                    0 => {
                        sim.client_get(target, &key);
                    }
                    1 => {
                        sim.client_put(target, &key, &value);
                    }
                    _ => {
                        let exp = format!("v{}", sim.rand(0, 1000));
                        sim.client_cas(target, &key, Some(&exp), &value);
                    }
                }
            }
            50..=64 => {
                // Power loss of a node (the leader half the time), keeping a majority up.
                let victim = match sim.leader() {
                    Some(l) if sim.rand(0, 2) == 0 => l,
                    _ => node,
                };
                let voters = sim.conf().map(|c| c.voters).unwrap_or_default();
                let up = voters
                    .iter()
                    .filter(|&&v| sim.is_up(v) && v != victim)
                    .count();
                if up * 2 > voters.len() && sim.is_up(victim) {
                    lost += sim.power_loss(victim) as u64;
                    losses += 1;
                }
            }
            65..=79 => {
                for &i in &ids {
                    if !sim.is_up(i) {
                        sim.restart(i)?;
                    }
                }
            }
            80..=87 => sim.isolate(node),
            _ => sim.heal(),
        }
        let ms = sim.rand(1, 40);
        sim.run_for(ms)?;
    }
    sim.check_global()?;
    sim.heal();
    sim.faults = Faults::none();
    for &i in &sim.ids() {
        sim.restart(i)?;
    }
    let deadline = sim.now + 40 * ET * TICK_MS;
    let mut wrote: Vec<Vec<u8>> = Vec::new();
    let mut ok = false;
    while sim.now < deadline && !ok {
        if let Some(l) = sim.leader() {
            wrote.extend(sim.propose(l));
        }
        let until = sim.now + ET * TICK_MS;
        ok = sim.run_until(until, |s| {
            wrote.iter().any(|w| s.acked.contains_key(w)) && s.min_applied() >= s.max_commit()
        })?;
    }
    if !ok {
        return Err(Violation::new(
            seed,
            format!("no recovery after healing:\n{}", sim.describe()),
        ));
    }
    sim.check_global()?;
    sim.check_linearizable()?;
    Ok((losses, lost, sim.stats.acked))
}

#[test]
fn power_losses_keep_every_invariant() {
    let seeds = seeds(60);
    let (mut losses, mut lost, mut acked) = (0, 0, 0);
    for &seed in &seeds {
        match run(seed) {
            Ok((l, w, a)) => {
                losses += l;
                lost += w;
                acked += a;
            }
            Err(v) => panic!("seed {seed} (replay with RAFT_SIM_SEED={seed}): {v}"),
        }
    }
    println!(
        "sim power loss: {} seeds, {losses} power losses, {lost} unsynced writes lost, \
         {acked} acknowledged writes",
        seeds.len()
    );
    assert!(losses > 0 && lost > 0 && acked > 0);
}
