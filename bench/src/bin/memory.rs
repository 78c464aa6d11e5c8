//! Memory: 3 `bench-node` processes (TCP, DiskStorage, fsync always, snapshot_entries
//! 100000 with 10000 trailing entries, so the log is compacted). The leader commits
//! `--entries` 64-byte commands; then each process reports its VmRSS.
//! `--storage mem` keeps the log in memory (MemStorage) instead.
//!
//! `memory [--entries 1000000] [--storage disk|mem] [--fsync always|never]`

use raft_bench::*;
use std::time::{Duration, Instant};

fn main() {
    let a = Args::parse();
    let n = a.num("entries", 1_000_000);
    let storage = a.str("storage").unwrap_or_else(|| "disk".into());
    let fsync = a.str("fsync").unwrap_or_else(|| "always".into());
    let dir = scratch_dir("memory");
    let mut procs = spawn_cluster(
        if storage == "mem" { None } else { Some(&dir) },
        &[
            "--fsync".into(),
            fsync.clone(),
            "--election-ms".into(),
            "1000".into(),
            "--snapshot-entries".into(),
            "100000".into(),
            "--snapshot-trailing".into(),
            "10000".into(),
        ],
    );
    let l = find_leader(&mut procs, Duration::from_secs(15)).expect("no leader");
    let before: Vec<u64> = procs.iter_mut().map(rss).collect();
    let t = Instant::now();
    let r = procs[l].cmd(&format!("FILL {n} 1024"));
    let fill = t.elapsed().as_secs_f64();
    assert!(r.starts_with("FILLED"), "fill failed: {r}");
    // Let followers apply the tail.
    let commit = procs[l].status().map(|s| s.3).unwrap_or(0);
    let end = Instant::now() + Duration::from_secs(30);
    for p in procs.iter_mut() {
        while Instant::now() < end && p.status().map(|s| s.4).unwrap_or(0) < commit {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let after: Vec<u64> = procs.iter_mut().map(rss).collect();
    let mut rows = Vec::new();
    for (i, p) in procs.iter().enumerate() {
        let role = if i == l { "leader" } else { "follower" };
        bench_line(
            &format!(
                "memory.{storage}.{}M.node{}.{role}.rss",
                n as f64 / 1e6,
                p.id
            ),
            after[i] as f64 / 1024.0,
            "MiB",
        );
        rows.push(vec![
            format!("{} ({role})", p.id),
            format!("{:.1}", before[i] as f64 / 1024.0),
            format!("{:.1}", after[i] as f64 / 1024.0),
        ]);
    }
    let max = *after.iter().max().unwrap() as f64 / 1024.0;
    bench_line(
        &format!("memory.{storage}.{}M.max_node.rss", n as f64 / 1e6),
        max,
        "MiB",
    );
    table(
        &format!(
            "Memory: VmRSS per node process after {n} 64-byte entries ({storage} storage, fsync {fsync}, snapshot every 100000 entries; fill took {fill:.1} s)"
        ),
        &["node", "RSS at start MiB", "RSS after MiB"],
        &rows,
    );
    for p in procs {
        p.quit();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn rss(p: &mut Proc) -> u64 {
    p.cmd("RSS")
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
