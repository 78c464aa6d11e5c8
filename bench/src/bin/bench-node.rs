//! `bench-node`: one raft-manager node as its own process, over the built-in TCP transport,
//! driven by the benchmark programs through stdin/stdout (one command line, one answer line).
//! Load is generated *inside* the leader process (`propose_async` from a local driver), so
//! the figures measure replication (TCP between nodes, disk, fsync), not client networking.
//!
//! ```text
//! bench-node --id N --peers 1=127.0.0.1:P1,2=...,3=... [--data-dir DIR] [--fsync always|never]
//!            [--election-ms 150] [--snapshot-entries 100000] [--caller-runs] [--tls-dir DIR]
//!
//! With `--tls-dir` the peers talk mutually authenticated TLS 1.3 with DIR/ca.pem and this
//! node's DIR/node-N.pem / DIR/node-N.key (written by `w2 --tls`).
//! ```
//! Commands: `STATUS`, `LOAD <window> <secs> <warmup>`, `FILL <n> <window>`,
//! `AWAIT <old_leader> <timeout_ms>`, `RSS`, `QUIT`.

use raft::core::Role;
use raft::runtime::{Node, NodeConfig};
use raft::storage::FsyncPolicy;
use raft::transport::{OnMessage, TcpTransport, TransportConfig};
use raft_bench::*;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let a = Args::parse();
    let id = a.num("id", 0);
    let peers: HashMap<u64, SocketAddr> = a
        .str("peers")
        .expect("--peers")
        .split(',')
        .map(|p| {
            let (i, addr) = p.split_once('=').expect("ID=ADDR");
            (i.parse().expect("id"), addr.parse().expect("addr"))
        })
        .collect();
    let election_ms = a.num("election-ms", 150);
    let slot: Arc<OnceLock<Arc<Node>>> = Arc::new(OnceLock::new());
    let on_message: OnMessage = {
        let slot = slot.clone();
        Arc::new(move |_from, bytes| {
            if let Some(n) = slot.get() {
                let _ = n.step(&bytes);
            }
        })
    };
    let mut tcfg = TransportConfig::new(id, 7, peers[&id]);
    tcfg.peers = peers
        .iter()
        .filter(|(&p, _)| p != id)
        .map(|(&p, &s)| (p, s))
        .collect();
    tcfg.reconnect_backoff_min = Duration::from_millis(10);
    tcfg.reconnect_backoff_max = Duration::from_millis(100);
    tcfg.connect_timeout = Duration::from_millis(500);
    if let Some(dir) = a.str("tls-dir") {
        let dir = std::path::Path::new(&dir);
        let (cert, key) = (format!("node-{id}.pem"), format!("node-{id}.key"));
        let tls = raft::transport::TlsConfig::from_files(
            &dir.join(cert),
            &dir.join(key),
            &dir.join("ca.pem"),
        )
        .expect("TLS files");
        tcfg.tls = Some(tls);
    }
    let transport = Arc::new(TcpTransport::start(tcfg, on_message).expect("transport"));
    let mut cfg = NodeConfig::new(id, peers.keys().copied());
    cfg.election_timeout = Duration::from_millis(election_ms);
    cfg.heartbeat_interval = Duration::from_millis((election_ms / 5).max(10));
    cfg.tick = Duration::from_millis((election_ms / 15).clamp(1, 10));
    cfg.data_dir = a.str("data-dir").map(Into::into);
    cfg.fsync = match a.str("fsync").as_deref() {
        Some("never") => FsyncPolicy::UnsafeNever,
        _ => FsyncPolicy::Always,
    };
    cfg.snapshot_entries = a.num("snapshot-entries", 100_000);
    cfg.snapshot_trailing = a.num("snapshot-trailing", 10_000);
    cfg.caller_runs = a.str("caller-runs").is_some_and(|v| v != "0");
    let (sm, applied) = CountSm::new();
    let node = Arc::new(Node::start(cfg, Box::new(sm), transport.clone()).expect("node start"));
    let _ = slot.set(node.clone());
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    println!("READY");
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let w: Vec<&str> = line.split_whitespace().collect();
        let reply = match w.as_slice() {
            ["STATUS"] => match node.status() {
                Ok(s) => format!(
                    "STATUS {} {} {} {} {} {}",
                    (s.role == Role::Leader) as u8,
                    s.leader,
                    s.term,
                    s.commit,
                    s.applied,
                    applied.load(std::sync::atomic::Ordering::Acquire)
                ),
                Err(e) => format!("ERR {e}"),
            },
            ["LOAD", window, secs, warmup] => {
                let r = closed_loop(
                    &node,
                    window.parse().unwrap(),
                    64,
                    Duration::from_secs_f64(warmup.parse().unwrap()),
                    Duration::from_secs_f64(secs.parse().unwrap()),
                    None,
                );
                format!(
                    "LOAD {} {} {:.3} {:.1} {:.1} {:.1}",
                    r.ops,
                    r.errors,
                    r.secs,
                    pct_us(&r.lat, 0.5),
                    pct_us(&r.lat, 0.99),
                    pct_us(&r.lat, 0.999)
                )
            }
            ["FILL", n, window] => {
                let r = closed_loop(
                    &node,
                    window.parse().unwrap(),
                    64,
                    Duration::ZERO,
                    Duration::ZERO,
                    Some(n.parse().unwrap()),
                );
                format!("FILLED {} {} {:.3}", r.ops, r.errors, r.secs)
            }
            ["AWAIT", old, timeout_ms] => {
                let old: u64 = old.parse().unwrap();
                let end = Instant::now() + Duration::from_millis(timeout_ms.parse().unwrap());
                let mut reply = "NONE".to_string();
                while Instant::now() < end {
                    match node.status() {
                        Ok(s)
                            if s.role == Role::Leader
                                && node
                                    .propose(vec![1; 64], Duration::from_millis(500))
                                    .is_ok() =>
                        {
                            let ns = SystemTime::now()
                                .duration_since(UNIX_EPOCH)
                                .unwrap()
                                .as_nanos();
                            reply = format!("COMMITTED {ns}");
                            break;
                        }
                        Ok(s) if s.leader != 0 && s.leader != old && s.leader != id => {
                            reply = format!("FOLLOWER {}", s.leader);
                            break;
                        }
                        _ => {}
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
                reply
            }
            ["RSS"] => format!("RSS {}", rss_kib()),
            ["QUIT"] => break,
            _ => format!("ERR unknown command {line}"),
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
    let _ = node.shutdown();
    transport.shutdown();
}
