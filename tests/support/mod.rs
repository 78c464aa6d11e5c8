//! Shared by the runtime test binaries: an in-process network, a counting state machine,
//! cluster helpers.
#![allow(dead_code)] // each test binary uses its own subset

use parking_lot::RwLock;
use raft::core::{NodeId, Role};
use raft::runtime::{Committed, MessageSink, Node, NodeConfig, StateMachine};
use raft::transport::SendClass;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Routes message bytes between nodes of one process; links can be cut.
#[derive(Default)]
pub struct Net {
    pub nodes: RwLock<HashMap<NodeId, Arc<Node>>>,
    pub down: RwLock<HashSet<NodeId>>,
    /// Start nodes with `NodeConfig::caller_runs`.
    pub caller_runs: bool,
}

impl Net {
    pub fn new(caller_runs: bool) -> Arc<Net> {
        Arc::new(Net {
            caller_runs,
            ..Net::default()
        })
    }
}

pub struct Sink {
    pub net: Arc<Net>,
    pub from: NodeId,
}

impl MessageSink for Sink {
    fn send(&self, to: NodeId, bytes: Vec<u8>, _class: SendClass) {
        let down = self.net.down.read();
        if down.contains(&to) || down.contains(&self.from) {
            return;
        }
        if let Some(n) = self.net.nodes.read().get(&to) {
            let _ = n.step(&bytes);
        }
    }
}

/// A key-value-ish state machine: appends commands, answers with the running count.
pub struct Counter {
    pub applied: Arc<RwLock<Vec<Vec<u8>>>>,
    pub delay: Duration,
}

impl StateMachine for Counter {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        std::thread::sleep(self.delay);
        let mut a = self.applied.write();
        Ok(batch
            .iter()
            .map(|c| {
                a.push(c.data.to_vec());
                Some((a.len() as u64).to_le_bytes().to_vec())
            })
            .collect())
    }
    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        let a = self.applied.read();
        for c in a.iter() {
            out.write_all(&(c.len() as u32).to_le_bytes())
                .map_err(|e| e.to_string())?;
            out.write_all(c).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let mut buf = Vec::new();
        input.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        let mut a = self.applied.write();
        a.clear();
        let mut p = 0;
        while p + 4 <= buf.len() {
            let n = u32::from_le_bytes(buf[p..p + 4].try_into().unwrap()) as usize;
            a.push(buf[p + 4..p + 4 + n].to_vec());
            p += 4 + n;
        }
        Ok(())
    }
}

/// A transport for single-node clusters: nothing to send to.
pub struct Nowhere;

impl MessageSink for Nowhere {
    fn send(&self, _: NodeId, _: Vec<u8>, _: SendClass) {}
}

/// Starts a single-voter node over `dir` (snapshots every `snapshot_entries`) and waits until
/// it leads.
pub fn single_node(
    dir: &std::path::Path,
    applied: &Arc<RwLock<Vec<Vec<u8>>>>,
    snapshot_entries: u64,
    caller_runs: bool,
) -> Node {
    let mut c = NodeConfig::new(1, [1]);
    c.caller_runs = caller_runs;
    c.data_dir = Some(dir.to_path_buf());
    c.snapshot_entries = snapshot_entries;
    c.snapshot_trailing = 1;
    c.election_timeout = Duration::from_millis(100);
    c.heartbeat_interval = Duration::from_millis(20);
    let sm = Counter {
        applied: applied.clone(),
        delay: Duration::ZERO,
    };
    let n = Node::start(c, Box::new(sm), Arc::new(Nowhere)).expect("start");
    let end = Instant::now() + Duration::from_secs(5);
    while n.status().unwrap().role != Role::Leader && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    n
}

pub fn cfg(id: NodeId, caller_runs: bool) -> NodeConfig {
    let mut c = NodeConfig::new(id, [1, 2, 3]);
    c.caller_runs = caller_runs;
    c.election_timeout = Duration::from_millis(150);
    c.heartbeat_interval = Duration::from_millis(30);
    c.seed = Some(id * 7919);
    c
}

pub fn start(net: &Arc<Net>, id: NodeId, delay: Duration) -> Arc<RwLock<Vec<Vec<u8>>>> {
    let applied = Arc::new(RwLock::new(Vec::new()));
    let sm = Counter {
        applied: applied.clone(),
        delay,
    };
    let sink = Arc::new(Sink {
        net: net.clone(),
        from: id,
    });
    let node = Node::start(cfg(id, net.caller_runs), Box::new(sm), sink).expect("start");
    net.nodes.write().insert(id, Arc::new(node));
    applied
}

pub fn leader(net: &Net, timeout: Duration) -> Option<NodeId> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        for (id, n) in net.nodes.read().iter() {
            if net.down.read().contains(id) {
                continue;
            }
            if let Ok(s) = n.status() {
                if s.role == Role::Leader {
                    return Some(*id);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

pub fn node(net: &Net, id: NodeId) -> Arc<Node> {
    net.nodes.read()[&id].clone()
}

/// Runs `f` on a thread and waits up to `limit` for it; `None` if it is still running (a
/// hang), so a deadlock fails the test instead of hanging the suite.
pub fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}
