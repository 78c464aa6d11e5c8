//! Shared by the simulator test binaries (tests/simulation.rs, sim_power_loss.rs,
//! sim_rejoin.rs): the node configuration, the seed list (`RAFT_SIM_SEEDS=N` runs more,
//! `RAFT_SIM_SEED=S` replays one), random client operations, and the final "heal and
//! recover" phase.
#![allow(dead_code)] // each test binary uses its own subset

use raft::core::{Config, NodeId};
use raft::sim::{Faults, Sim, Violation, TICK_MS};

/// Election timeout of the simulated nodes, in ticks.
pub const ET: u64 = 20;

/// The election timeout in virtual milliseconds.
pub fn et_ms() -> u64 {
    ET * TICK_MS
}

/// Small messages, windows and snapshot chunks, so that every seed exercises flow control
/// and multi-chunk snapshots.
pub fn cfg(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.election_ticks = ET;
    c.heartbeat_ticks = 4;
    c.max_msg_bytes = 256;
    c.max_inflight_msgs = 4;
    c.snapshot_chunk_bytes = 64;
    c.max_uncommitted_bytes = 4096;
    c
}

/// Seeds 1..=`default` (`RAFT_SIM_SEEDS` overrides the count), or only `RAFT_SIM_SEED`.
pub fn seeds(default: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("RAFT_SIM_SEED") {
        return vec![s.parse().expect("RAFT_SIM_SEED must be a number")];
    }
    let n = std::env::var("RAFT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (1..=n).collect()
}

/// A random get, put or compare-and-set on one of `keys` keys at `node`.
pub fn kv_op(sim: &mut Sim, node: NodeId, keys: u64) {
    let key = format!("k{}", sim.rand(0, keys));
    let value = format!("v{}", sim.rand(0, 1000));
    match sim.rand(0, 3) {
        0 => {
            sim.client_get(node, &key);
        }
        1 => {
            sim.client_put(node, &key, &value);
        }
        _ => {
            let expected = format!("v{}", sim.rand(0, 1000));
            let expected = (sim.rand(0, 4) > 0).then_some(expected);
            sim.client_cas(node, &key, expected.as_deref(), &value);
        }
    }
}

/// A random key-value client operation on 3 keys at a node that is usually, but not
/// always, the leader.
pub fn client_op(sim: &mut Sim, random_node: NodeId) {
    let node = if sim.rand(0, 4) == 0 {
        random_node
    } else {
        sim.leader().unwrap_or(random_node)
    };
    kv_op(sim, node, 3);
}

/// Heals every link, clears the faults and restarts every node, then requires progress
/// within 40 election timeouts: a leader commits a fresh write and every member catches up.
/// The global invariants are checked before and after.
pub fn heal_and_recover(sim: &mut Sim, seed: u64) -> Result<(), Violation> {
    sim.check_global()?;
    sim.heal();
    sim.faults = Faults::none();
    for i in sim.ids() {
        sim.restart(i)?;
    }
    let deadline = sim.now + 40 * et_ms();
    let mut wrote: Vec<Vec<u8>> = Vec::new();
    let mut ok = false;
    while sim.now < deadline && !ok {
        // Retry at whoever leads now: a write proposed to a deposed leader is dropped.
        if let Some(l) = sim.leader() {
            wrote.extend(sim.propose(l));
        }
        let until = sim.now + et_ms();
        ok = sim.run_until(until, |s| {
            wrote.iter().any(|w| s.acked.contains_key(w)) && s.min_applied() >= s.max_commit()
        })?;
    }
    if !ok {
        return Err(Violation::new(
            seed,
            format!("cluster did not recover after healing:\n{}", sim.describe()),
        ));
    }
    sim.check_global()
}
