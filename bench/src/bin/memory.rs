//! Memory: 3 `bench-node` processes (TCP, DiskStorage, fsync always, snapshot_entries
//! 100000 with 10000 trailing entries, so the log is compacted). The leader commits
//! `--entries` 64-byte commands; then each process reports its VmRSS.
//! `--storage mem` keeps the log in memory (MemStorage) instead.
//!
//! `--idle N` measures idle nodes instead: N nodes (rounded up to clusters of 3) in this one
//! process, in-process transport, `MemStorage`, default `NodeConfig` except a 1 s election
//! timeout and 100 ms heartbeats; once every cluster has a leader and `--settle` seconds of
//! idling (heartbeats only) have passed, the growth of this process's VmRSS divided by N.
//!
//! `memory [--entries 1000000] [--storage disk|mem] [--fsync always|never]`
//! `memory --idle 1000 [--settle 3]`

use raft_bench::*;
use std::time::{Duration, Instant};

fn main() {
    let a = Args::parse();
    if a.str("idle").is_some() {
        return idle(a.num("idle", 1000), a.float("settle", 3.0));
    }
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

/// Idle nodes in one process: VmRSS growth per node and threads per node.
fn idle(n: u64, settle: f64) {
    let clusters = n.div_ceil(3);
    let before = rss_kib();
    let threads_before = threads();
    let t = Instant::now();
    let mut nets = Vec::new();
    for c in 0..clusters {
        let ids = [c * 3 + 1, c * 3 + 2, c * 3 + 3];
        let (net, _) = start_cluster(&ids, |cfg| {
            cfg.election_timeout = Duration::from_millis(1000);
            cfg.heartbeat_interval = Duration::from_millis(100);
        });
        nets.push(net);
    }
    let started = t.elapsed().as_secs_f64();
    let mut leaderless = 0;
    for net in &nets {
        if net.leader(Duration::from_secs(30)).is_none() {
            leaderless += 1;
        }
    }
    let cpu0 = cpu_secs();
    std::thread::sleep(Duration::from_secs_f64(settle));
    let cpu = (cpu_secs() - cpu0) / settle;
    let after = rss_kib();
    let nodes = clusters * 3;
    let threads_after = threads();
    let per_node = (after.saturating_sub(before)) as f64 / 1024.0 / nodes as f64;
    let per_node_threads = threads_after.saturating_sub(threads_before) as f64 / nodes as f64;
    bench_line("memory.idle.nodes", nodes as f64, "nodes");
    bench_line("memory.idle.per_node.rss", per_node, "MiB");
    bench_line("memory.idle.per_node.threads", per_node_threads, "threads");
    bench_line("memory.idle.cpu", cpu * 100.0, "%core");
    table(
        &format!(
            "Idle nodes: {nodes} nodes ({clusters} clusters of 3) in one process, MemStorage, in-process transport, {settle} s idle after every cluster elected (start took {started:.1} s, {leaderless} clusters without a leader)"
        ),
        &["RSS before MiB", "RSS after MiB", "per node MiB", "threads per node", "CPU while idle"],
        &[vec![
            format!("{:.1}", before as f64 / 1024.0),
            format!("{:.1}", after as f64 / 1024.0),
            format!("{per_node:.3}"),
            format!("{per_node_threads:.1}"),
            format!("{:.1} % of a core", cpu * 100.0),
        ]],
    );
    for net in nets {
        net.shutdown();
    }
}

/// Threads of this process (from /proc/self/status).
fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of this process in seconds (from /proc/self/stat, 100 Hz ticks).
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // After the command name: state is field 0, utime field 11, stime field 12.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}
