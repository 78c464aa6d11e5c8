//! `raft-kv-demo`: runs a 3-node `raft-kv` cluster on 127.0.0.1 and narrates a failover.
//!
//! It starts three `raft-kv` processes (found next to this executable, or given with
//! `--bin PATH` / `RAFT_KV_BIN`), waits for a leader, writes 100 keys, SIGKILLs the leader,
//! measures how long until a new leader commits a write, reads every acknowledged key back,
//! restarts the killed node and shows it catching up. The last line is
//! `DEMO PASSED: ...` (exit 0) or `DEMO FAILED: ...` (exit 1). Children are killed on every
//! exit path. `--keep` keeps the temporary directory (data and node logs).

#[path = "raft_kv/cluster.rs"]
mod cluster;
#[path = "raft_kv/scenario.rs"]
mod scenario;

use clap::Parser;
use cluster::Cluster;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Election timeout of the demo cluster.
const ELECTION_MS: u64 = 150;
/// The whole demo must finish within this.
const DEADLINE: Duration = Duration::from_secs(55);
/// A failover slower than this many election timeouts fails the demo.
const MAX_FAILOVER_TIMEOUTS: u32 = 10;

fn server_binary(arg: Option<String>) -> Result<PathBuf, String> {
    if let Some(p) = arg.or_else(|| std::env::var("RAFT_KV_BIN").ok()) {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().map_err(|e| format!("cannot locate myself: {e}"))?;
    let p = me.with_file_name(format!("raft-kv{}", std::env::consts::EXE_SUFFIX));
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: build it first (make demo does) or pass --bin PATH",
            p.display()
        ))
    }
}

fn run(bin: PathBuf, keep: bool) -> Result<String, String> {
    let mut c = Cluster::new(&bin, 3, ELECTION_MS, &["--snapshot-entries", "50"])
        .map_err(|e| format!("cannot prepare the cluster: {e}"))?;
    c.keep = keep;
    let start = Instant::now();
    let mut say = |s: String| println!("[{:>5.2}s] {s}", start.elapsed().as_secs_f64());
    let outcome = scenario::failover(&mut c, &mut say);
    say("Stopping all nodes.".into());
    c.stop_all();
    let r = match outcome {
        Ok(r) => r,
        Err(e) => {
            c.keep = true;
            return Err(format!("{e} (node logs kept in {})", c.root.display()));
        }
    };
    let limit = Duration::from_millis(ELECTION_MS) * MAX_FAILOVER_TIMEOUTS;
    if r.committed_after > limit {
        c.keep = true;
        return Err(format!(
            "failover took {} ms, over the {} ms allowed",
            r.committed_after.as_millis(),
            limit.as_millis()
        ));
    }
    Ok(format!(
        "leader {} killed, node {} elected in {} ms and committing in {} ms, all {} \
         acknowledged keys survived, node {} caught up in {} ms after restart",
        r.old_leader,
        r.new_leader,
        r.elected_after.as_millis(),
        r.committed_after.as_millis(),
        r.keys,
        r.old_leader,
        r.caught_up_after.as_millis()
    ))
}

/// Parsed command line.
#[derive(Parser, Debug)]
#[command(
    name = "raft-kv-demo",
    version,
    about = "Runs a 3-node raft-kv cluster on 127.0.0.1 and narrates a failover"
)]
struct Args {
    /// The raft-kv server binary (default: $RAFT_KV_BIN, else raft-kv next to this program).
    #[arg(long, value_name = "PATH")]
    bin: Option<String>,
    /// Keep the temporary directory (data and node logs) even on success.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let Args { bin, keep } = Args::parse();
    // A watchdog bounds the demo: exiting kills the children (they die with their parent).
    std::thread::spawn(|| {
        std::thread::sleep(DEADLINE);
        println!(
            "DEMO FAILED: did not finish within {} s",
            DEADLINE.as_secs()
        );
        std::process::exit(1);
    });
    let outcome = match server_binary(bin) {
        Ok(bin) => std::panic::catch_unwind(|| run(bin, keep))
            .unwrap_or_else(|_| Err("the demo panicked (children were killed)".into())),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(s) => {
            println!("DEMO PASSED: {s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("DEMO FAILED: {e}");
            ExitCode::from(1)
        }
    }
}
