//! W1: 3 nodes in one process, memory storage, in-process transport (typed messages handed
//! straight to `Node::step_message`), 64-byte commands; closed loop with 1/16/64/256
//! proposals in flight (`propose_async` + a semaphore), measured on the leader:
//! committed-and-applied ops/s and commit latency percentiles.
//!
//! Runs each mode on a fresh cluster: `default` (only the Raft threads run the protocol)
//! and `caller-runs` (`NodeConfig::caller_runs`: idle nodes are driven by the thread that
//! hands them work).
//!
//! `w1 [--secs 4] [--warmup 1] [--size 64] [--windows 1,16,64,256]
//!     [--modes default,caller-runs]`

use raft_bench::*;
use std::time::Duration;

fn main() {
    let a = Args::parse();
    let secs = a.float("secs", 4.0);
    let warmup = a.float("warmup", 1.0);
    let size = a.num("size", 64) as usize;
    let windows = a.list("windows", &[1, 16, 64, 256]);
    let modes = a
        .str("modes")
        .unwrap_or_else(|| "default,caller-runs".into());
    for mode in modes.split(',') {
        let (caller_runs, prefix) = match mode {
            "default" => (false, "w1.mem.inproc"),
            "caller-runs" => (true, "w1.mem.inproc.caller_runs"),
            other => panic!("--modes: unknown mode {other} (default, caller-runs)"),
        };
        let (net, _) = start_cluster(&[1, 2, 3], |c| {
            c.election_timeout = Duration::from_millis(1000);
            c.heartbeat_interval = Duration::from_millis(100);
            c.caller_runs = caller_runs;
        });
        let l = net.leader(Duration::from_secs(10)).expect("no leader");
        let node = net.node(l);
        let mut rows = Vec::new();
        for &w in &windows {
            let (cs0, cpu0) = process_usage();
            let r = closed_loop(
                &node,
                w as usize,
                size,
                Duration::from_secs_f64(warmup),
                Duration::from_secs_f64(secs),
                None,
            );
            let (cs1, cpu1) = process_usage();
            // Over warm-up and measurement; ops of the measured window scaled to the whole run.
            let total_ops = r.ops as f64 * (secs + warmup) / secs;
            let (cs_op, cpu_op) = (
                (cs1 - cs0) as f64 / total_ops.max(1.0),
                (cpu1 - cpu0) * 1e6 / total_ops.max(1.0),
            );
            bench_line(&format!("{prefix}.c{w}.switches_per_op"), cs_op, "switches");
            bench_line(&format!("{prefix}.c{w}.cpu_per_op"), cpu_op, "us");
            if let Some(e) = &r.first_error {
                eprintln!("w1 {mode}: window {w}: {} errors, first: {e}", r.errors);
            }
            let ops = r.ops_per_sec();
            let (p50, p99, p999) = (
                pct_us(&r.lat, 0.5),
                pct_us(&r.lat, 0.99),
                pct_us(&r.lat, 0.999),
            );
            bench_line(&format!("{prefix}.c{w}.ops"), ops, "ops/s");
            bench_line(&format!("{prefix}.c{w}.p50"), p50, "us");
            bench_line(&format!("{prefix}.c{w}.p99"), p99, "us");
            bench_line(&format!("{prefix}.c{w}.p999"), p999, "us");
            rows.push(vec![
                w.to_string(),
                format!("{ops:.0}"),
                format!("{p50:.1}"),
                format!("{p99:.1}"),
                format!("{p999:.1}"),
                format!("{cs_op:.1}"),
                format!("{cpu_op:.1}"),
                r.errors.to_string(),
            ]);
        }
        table(
            &format!(
                "W1 ({mode}): raft-manager, 3 nodes in-process, memory storage, {size}-byte commands, {secs} s per row"
            ),
            &[
                "in flight",
                "ops/s",
                "p50 us",
                "p99 us",
                "p999 us",
                "switches/op",
                "CPU us/op",
                "errors",
            ],
            &rows,
        );
        net.shutdown();
    }
}
