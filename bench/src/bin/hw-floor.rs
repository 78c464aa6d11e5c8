//! Hardware floor of W2's single-proposer latency, measured on this machine in the same run:
//! `fdatasync` of a small append (`--bytes` 100, the size of one 64-byte command with its
//! framing) to a file in the benchmark data directory (the disk W2 writes to), and the round
//! trip of a 64-byte message over a loopback TCP connection (TCP_NODELAY, a thread echoing
//! it back). The two are sampled alternately in `--rounds` chunks so drift hits both.
//! W2's target: 1-in-flight p50 <= 1.2 x (fdatasync p50 + RTT p50).
//!
//! `hw-floor [--syncs 1000] [--pings 10000] [--rounds 4] [--bytes 100]`

use raft_bench::*;

fn main() {
    let a = Args::parse();
    let syncs = a.num("syncs", 1000);
    let pings = a.num("pings", 10_000);
    let rounds = a.num("rounds", 4).max(1);
    let bytes = a.num("bytes", 100) as usize;
    let dir = scratch_dir("hw-floor");
    let (mut sync_ns, mut rtt_ns) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (s, r) = floor_samples(&dir, syncs / rounds, pings / rounds, bytes);
        sync_ns.extend(s);
        rtt_ns.extend(r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    sync_ns.sort_unstable();
    rtt_ns.sort_unstable();
    let mut rows = Vec::new();
    for (name, v) in [("fdatasync", &sync_ns), ("tcp_rtt", &rtt_ns)] {
        let (p50, p99) = (pct_us(v, 0.5), pct_us(v, 0.99));
        bench_line(&format!("floor.{name}.p50"), p50, "us");
        bench_line(&format!("floor.{name}.p99"), p99, "us");
        rows.push(vec![
            name.to_string(),
            v.len().to_string(),
            format!("{p50:.1}"),
            format!("{p99:.1}"),
        ]);
    }
    let floor = pct_us(&sync_ns, 0.5) + pct_us(&rtt_ns, 0.5);
    bench_line("floor.w2.c1.p50", floor, "us");
    table(
        &format!(
            "Hardware floor: fdatasync of a {bytes}-byte append, loopback TCP round trip of 64 bytes (sum of p50s: {floor:.1} us)"
        ),
        &["probe", "samples", "p50 us", "p99 us"],
        &rows,
    );
}
