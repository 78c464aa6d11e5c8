//! Catch-up: 3 nodes in one process (memory storage, in-process transport). One follower is
//! cut off while the leader commits `--entries` 64-byte commands with the other follower;
//! then its links are healed and we time how long it takes to apply everything.
//! By default snapshots are off, so the follower catches up from the log (AppendEntries
//! streaming); `--snapshot` turns on snapshot_entries=100000 so it gets a snapshot plus the tail.
//!
//! `--tcp` runs the same experiment with 3 `bench-node` processes (TCP, DiskStorage, fsync
//! always): the follower process is killed, the others commit the entries, the follower is
//! restarted from its data directory and we time until it has applied the leader's commit.
//!
//! `catchup [--entries 1000000] [--snapshot] [--tcp]`

use raft_bench::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn main() {
    let a = Args::parse();
    let n = a.num("entries", 1_000_000);
    let snap = a.str("snapshot").is_some();
    if a.str("tcp").is_some() {
        return tcp(n, snap);
    }
    let (net, counters) = start_cluster(&[1, 2, 3], |c| {
        c.election_timeout = Duration::from_millis(1000);
        c.heartbeat_interval = Duration::from_millis(100);
        c.snapshot_entries = if snap { 100_000 } else { 0 };
    });
    let l = net.leader(Duration::from_secs(10)).expect("no leader");
    let f = (1..=3).find(|&i| i != l).unwrap();
    net.set_down(f, true);
    let base = counters[(f - 1) as usize].load(Ordering::Acquire);
    let t = Instant::now();
    let r = closed_loop(
        &net.node(l),
        1024,
        64,
        Duration::ZERO,
        Duration::ZERO,
        Some(n),
    );
    let fill_secs = t.elapsed().as_secs_f64();
    assert_eq!(r.errors, 0, "fill failed: {:?}", r.first_error);
    let target = counters[(l - 1) as usize].load(Ordering::Acquire);
    let behind = target - base;
    if std::env::var_os("CATCHUP_PAUSE").is_some() {
        // Lets a profiler attach for the catch-up phase only.
        eprintln!("filled; healing in 1 s");
        std::thread::sleep(Duration::from_secs(1));
    }
    let t = Instant::now();
    net.set_down(f, false);
    let end = t + Duration::from_secs(120);
    let mut first = None;
    loop {
        let applied = counters[(f - 1) as usize].load(Ordering::Acquire);
        if applied >= target {
            break;
        }
        if first.is_none() && applied > base {
            first = Some(t.elapsed().as_secs_f64());
        }
        assert!(Instant::now() < end, "follower did not catch up in 120 s");
        std::thread::sleep(Duration::from_micros(200));
    }
    let secs = t.elapsed().as_secs_f64();
    let mb = behind as f64 * 64.0 / 1e6 / secs;
    let eps = behind as f64 / secs;
    let mode = if snap { "snapshot" } else { "log" };
    bench_line(&format!("catchup.mem.inproc.{mode}.mbps"), mb, "MB/s");
    bench_line(
        &format!("catchup.mem.inproc.{mode}.entries_per_sec"),
        eps,
        "entries/s",
    );
    bench_line(&format!("catchup.mem.inproc.{mode}.secs"), secs, "s");
    // Time from the heal to the first entry applied (finding the follower: a heartbeat).
    bench_line(
        &format!("catchup.mem.inproc.{mode}.first_apply_secs"),
        first.unwrap_or(secs),
        "s",
    );
    // Messages the follower's full inbox refused (each costs a retry).
    bench_line(
        &format!("catchup.mem.inproc.{mode}.refused"),
        net.refused.load(Ordering::Relaxed) as f64,
        "messages",
    );
    table(
        &format!("Catch-up: follower {behind} entries behind (filled in {fill_secs:.1} s), in-process, memory storage, via {mode}"),
        &["entries behind", "seconds", "entries/s", "MB/s (64-byte payloads)"],
        &[vec![behind.to_string(), format!("{secs:.2}"), format!("{eps:.0}"), format!("{mb:.1}")]],
    );
    net.shutdown();
}

fn tcp(n: u64, snap: bool) {
    let dir = scratch_dir("catchup");
    let mut procs = spawn_cluster(
        Some(&dir),
        &[
            "--election-ms".into(),
            "1000".into(),
            "--snapshot-entries".into(),
            if snap { "100000" } else { "0" }.into(),
        ],
    );
    let l = find_leader(&mut procs, Duration::from_secs(15)).expect("no leader");
    let f = (l + 1) % 3;
    procs[f].kill();
    let t = Instant::now();
    let r = procs[l].cmd(&format!("FILL {n} 1024"));
    let fill_secs = t.elapsed().as_secs_f64();
    assert!(r.starts_with("FILLED"), "fill failed: {r}");
    let commit = procs[l].status().expect("status").3;
    let t = Instant::now();
    procs[f].restart();
    let ready_secs = t.elapsed().as_secs_f64();
    let end = t + Duration::from_secs(120);
    let mut first = None;
    let mut start_applied = None;
    loop {
        let s = procs[f].status().expect("status");
        if s.4 >= commit {
            break;
        }
        // The restarted process answers once it has recovered; the first change after that
        // is the first entry applied from the leader.
        let base = *start_applied.get_or_insert(s.4);
        if first.is_none() && s.4 > base {
            first = Some(t.elapsed().as_secs_f64());
        }
        assert!(Instant::now() < end, "follower did not catch up in 120 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    let secs = t.elapsed().as_secs_f64();
    let mb = n as f64 * 64.0 / 1e6 / secs;
    let eps = n as f64 / secs;
    let mode = if snap { "snapshot" } else { "log" };
    bench_line(&format!("catchup.disk.tcp.{mode}.mbps"), mb, "MB/s");
    bench_line(
        &format!("catchup.disk.tcp.{mode}.entries_per_sec"),
        eps,
        "entries/s",
    );
    bench_line(&format!("catchup.disk.tcp.{mode}.secs"), secs, "s");
    // Time from the restart to the first entry applied (process start, recovery, dialling).
    bench_line(
        &format!("catchup.disk.tcp.{mode}.first_apply_secs"),
        first.unwrap_or(secs),
        "s",
    );
    bench_line(
        &format!("catchup.disk.tcp.{mode}.ready_secs"),
        ready_secs,
        "s",
    );
    table(
        &format!("Catch-up over TCP + DiskStorage (fsync always): follower process restarted {n} entries behind (filled in {fill_secs:.1} s), via {mode}; time includes process start"),
        &["entries behind", "seconds", "entries/s", "MB/s (64-byte payloads)"],
        &[vec![n.to_string(), format!("{secs:.2}"), format!("{eps:.0}"), format!("{mb:.1}")]],
    );
    for p in procs {
        p.quit();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
