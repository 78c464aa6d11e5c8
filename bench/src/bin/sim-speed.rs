//! How much faster than real time the user simulator (`raft::sim`) runs a cluster with a
//! trivial state machine: virtual time simulated / wall time spent, over many seeds, on a
//! healthy cluster and under the default fault model (everything checked as in a test).
//!
//! The ratio is given against wall time and, because a shared machine inflates wall time,
//! against the process's CPU time too (from /proc/self/stat, Linux only).
//!
//! `sim-speed [--nodes 3] [--seeds 50] [--clients 3] [--ops 200]`

use raft::runtime::{Committed, StateMachine};
use raft::sim::{FaultConfig, Request, SimStateMachine, Simulation};
use raft_bench::*;
use std::time::Instant;

/// A counter: every command adds one; the answer and the query give the count.
#[derive(Default)]
struct Counter(u64);

impl StateMachine for Counter {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        Ok(batch
            .iter()
            .map(|_| {
                self.0 += 1;
                Some(self.0.to_le_bytes().to_vec())
            })
            .collect())
    }

    fn snapshot(&mut self, out: &mut dyn std::io::Write) -> Result<(), String> {
        out.write_all(&self.0.to_le_bytes())
            .map_err(|e| e.to_string())
    }

    fn restore(&mut self, input: &mut dyn std::io::Read) -> Result<(), String> {
        let mut b = [0u8; 8];
        input.read_exact(&mut b).map_err(|e| e.to_string())?;
        self.0 = u64::from_le_bytes(b);
        Ok(())
    }
}

impl SimStateMachine for Counter {
    fn query(&mut self, _: &[u8]) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }

    fn state_hash(&mut self) -> Option<u64> {
        Some(self.0)
    }
}

/// CPU seconds (user + system) this process has used, if /proc says.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn main() {
    let a = Args::parse();
    let (nodes, seeds, clients, ops) = (
        a.num("nodes", 3),
        a.num("seeds", 50),
        a.num("clients", 3),
        a.num("ops", 200),
    );
    println!("{nodes}-node simulated cluster, {clients} clients x {ops} requests, {seeds} seeds");
    println!(
        "{:<10} {:>10} {:>8} {:>8} {:>10} {:>12} {:>12}",
        "faults", "virtual s", "wall s", "cpu s", "ops done", "x wall", "x cpu"
    );
    for (name, faults) in [
        ("none", FaultConfig::none()),
        ("default", FaultConfig::default()),
    ] {
        let mut sim = Simulation::builder(Counter::default)
            .nodes(nodes)
            .clients(clients)
            .ops_per_client(ops)
            .faults(faults)
            .workload(|ctx| {
                Some(match ctx.rand(2) {
                    0 => Request::write(b"incr".to_vec()),
                    _ => Request::read(b"count".to_vec()),
                })
            })
            .build()
            .expect("valid settings");
        let (t, cpu0) = (Instant::now(), cpu_seconds());
        let (mut virt_ms, mut done) = (0u64, 0u64);
        for seed in 0..seeds {
            let r = sim.run(seed);
            if let Some(f) = r.failure {
                panic!("{f}");
            }
            virt_ms += r.virtual_ms;
            done += r.completed;
        }
        let wall = t.elapsed().as_secs_f64();
        let virt = virt_ms as f64 / 1000.0;
        let cpu = cpu0.zip(cpu_seconds()).map(|(a, b)| (b - a).max(0.01));
        let ratio = virt / wall;
        let cpu_ratio = cpu.map_or(0.0, |c| virt / c);
        println!(
            "{name:<10} {virt:>10.1} {wall:>8.3} {:>8.2} {done:>10} {ratio:>12.0} {cpu_ratio:>12.0}",
            cpu.unwrap_or(0.0)
        );
        bench_line(
            &format!("sim_speed_{nodes}n_faults_{name}"),
            ratio,
            "x_realtime",
        );
        if cpu.is_some() {
            bench_line(
                &format!("sim_speed_{nodes}n_faults_{name}_cpu"),
                cpu_ratio,
                "x_realtime_per_cpu_s",
            );
        }
    }
}
