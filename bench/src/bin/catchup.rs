//! Catch-up: 3 nodes in one process (memory storage, in-process transport). One follower is
//! cut off while the leader commits `--entries` 64-byte commands with the other follower;
//! then its links are healed and we time how long it takes to apply everything.
//! By default snapshots are off, so the follower catches up from the log (AppendEntries
//! streaming); `--snapshot` turns on snapshot_entries=100000 so it gets a snapshot plus the tail.
//!
//! `catchup [--entries 1000000] [--snapshot]`

use raft_bench::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn main() {
    let a = Args::parse();
    let n = a.num("entries", 1_000_000);
    let snap = a.str("snapshot").is_some();
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
    let t = Instant::now();
    net.set_down(f, false);
    let end = t + Duration::from_secs(120);
    while counters[(f - 1) as usize].load(Ordering::Acquire) < target {
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
    table(
        &format!("Catch-up: follower {behind} entries behind (filled in {fill_secs:.1} s), in-process, memory storage, via {mode}"),
        &["entries behind", "seconds", "entries/s", "MB/s (64-byte payloads)"],
        &[vec![behind.to_string(), format!("{secs:.2}"), format!("{eps:.0}"), format!("{mb:.1}")]],
    );
    net.shutdown();
}
