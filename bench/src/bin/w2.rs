//! W2: 3 nodes as 3 processes (`bench-node`) on 127.0.0.1 over the built-in TCP transport,
//! DiskStorage with fsync ALWAYS, 64-byte commands. The load runs inside the leader process
//! (`propose_async` with 1/16/64/256 in flight), so client networking is not measured.
//!
//! `w2 [--secs 4] [--warmup 1] [--windows 1,16,64,256] [--fsync always|never]`

use raft_bench::*;
use std::time::Duration;

fn main() {
    let a = Args::parse();
    let secs = a.float("secs", 4.0);
    let warmup = a.float("warmup", 1.0);
    let windows = a.list("windows", &[1, 16, 64, 256]);
    let fsync = a.str("fsync").unwrap_or_else(|| "always".into());
    let dir = scratch_dir("w2");
    let mut procs = spawn_cluster(
        Some(&dir),
        &[
            "--fsync".into(),
            fsync.clone(),
            "--election-ms".into(),
            "1000".into(),
        ],
    );
    let l = find_leader(&mut procs, Duration::from_secs(15)).expect("no leader");
    let mut rows = Vec::new();
    for &w in &windows {
        let r = procs[l].cmd(&format!("LOAD {w} {secs} {warmup}"));
        let v: Vec<f64> = r
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(f64::NAN))
            .collect();
        assert!(
            r.starts_with("LOAD") && v.len() == 6,
            "unexpected answer: {r}"
        );
        let ops = v[0] / v[2];
        let tag = format!("w2.disk-fsync-{fsync}.tcp.c{w}");
        bench_line(&format!("{tag}.ops"), ops, "ops/s");
        bench_line(&format!("{tag}.p50"), v[3], "us");
        bench_line(&format!("{tag}.p99"), v[4], "us");
        bench_line(&format!("{tag}.p999"), v[5], "us");
        rows.push(vec![
            w.to_string(),
            format!("{ops:.0}"),
            format!("{:.1}", v[3]),
            format!("{:.1}", v[4]),
            format!("{:.1}", v[5]),
            format!("{}", v[1]),
        ]);
    }
    table(
        &format!("W2: raft-manager, 3 processes over TCP (127.0.0.1), DiskStorage fsync={fsync}, load inside the leader, {secs} s per row"),
        &["in flight", "ops/s", "p50 us", "p99 us", "p999 us", "errors"],
        &rows,
    );
    for p in procs {
        p.quit();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
