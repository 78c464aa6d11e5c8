//! Failover: 3 `bench-node` processes over TCP with DiskStorage (fsync always), election
//! timeout 150 ms. Each run SIGKILLs the leader and measures the time from the kill until a
//! new leader has committed (and applied) a write, then restarts the killed node from its
//! data directory and waits for it to catch up before the next run.
//!
//! `failover [--runs 50] [--election-ms 150] [--fsync always|never]`

use raft_bench::*;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn main() {
    let a = Args::parse();
    let runs = a.num("runs", 50);
    let election_ms = a.num("election-ms", 150);
    let fsync = a.str("fsync").unwrap_or_else(|| "always".into());
    let dir = scratch_dir("failover");
    let mut procs = spawn_cluster(
        Some(&dir),
        &[
            "--fsync".into(),
            fsync.clone(),
            "--election-ms".into(),
            election_ms.to_string(),
        ],
    );
    let mut samples = Vec::new();
    let mut failed = 0;
    let started = Instant::now();
    for run in 0..runs {
        let Some(l) = find_leader(&mut procs, Duration::from_secs(10)) else {
            eprintln!("failover: run {run}: no leader");
            failed += 1;
            continue;
        };
        // Some committed traffic first, so the new leader has a log to agree on.
        let _ = procs[l].cmd("FILL 200 16");
        let old = procs[l].id;
        let t_kill = now_ns();
        procs[l].kill();
        let others: Vec<usize> = (0..3).filter(|&i| i != l).collect();
        for &i in &others {
            procs[i].send(&format!("AWAIT {old} 10000"));
        }
        let mut got = None;
        for &i in &others {
            let r = procs[i].recv();
            if let Some(ns) = r.strip_prefix("COMMITTED ") {
                got = Some(ns.parse::<u128>().unwrap() - t_kill);
            }
        }
        match got {
            Some(ns) => samples.push(ns as u64),
            None => {
                eprintln!("failover: run {run}: no new leader committed within 10 s");
                failed += 1;
            }
        }
        procs[l].restart();
        // Wait until the restarted node has applied what the leader has committed.
        let end = Instant::now() + Duration::from_secs(10);
        let nl = find_leader(&mut procs, Duration::from_secs(10)).unwrap_or(others[0]);
        let commit = procs[nl].status().map(|s| s.3).unwrap_or(0);
        while Instant::now() < end {
            if let Some(s) = procs[l].status() {
                if s.4 >= commit && s.1 != 0 {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let mut sorted = samples.clone();
    sorted.sort_unstable();
    let (p50, p99) = (
        pct_us(&sorted, 0.5) / 1000.0,
        pct_us(&sorted, 0.99) / 1000.0,
    );
    let (min, max) = (
        sorted.first().map(|&v| v as f64 / 1e6).unwrap_or(f64::NAN),
        sorted.last().map(|&v| v as f64 / 1e6).unwrap_or(f64::NAN),
    );
    bench_line("failover.tcp.disk.p50", p50, "ms");
    bench_line("failover.tcp.disk.p99", p99, "ms");
    bench_line("failover.tcp.disk.max", max, "ms");
    table(
        &format!(
            "Failover: leader SIGKILLed, time until a new leader committed a write; election timeout {election_ms} ms, {} runs in {:.0} s",
            samples.len(),
            started.elapsed().as_secs_f64()
        ),
        &["runs", "failed", "min ms", "p50 ms", "p99 ms", "max ms"],
        &[vec![
            samples.len().to_string(),
            failed.to_string(),
            format!("{min:.1}"),
            format!("{p50:.1}"),
            format!("{p99:.1}"),
            format!("{max:.1}"),
        ]],
    );
    for p in procs {
        p.quit();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
