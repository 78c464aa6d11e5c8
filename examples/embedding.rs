//! A complete program embedding raft-manager (docs/EMBEDDING.md walks through it): a
//! replicated key-value map on three nodes in one process, talking over the built-in TCP
//! transport on 127.0.0.1, with durable data directories. Built by `cargo test` and run by
//! `make test-docs`: `cargo run --release --example embedding`.

use raft::runtime::{Committed, Error, Node, NodeConfig, NodeSlot, StateMachine};
use raft::transport::{TcpTransport, TransportConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The replicated state: shared with the code that reads it after `read_index`.
type Map = Arc<Mutex<BTreeMap<String, String>>>;

/// The state machine: commands are `key=value` bytes; the response is the previous value.
struct Kv {
    map: Map,
}

impl StateMachine for Kv {
    /// Runs on the node's apply thread, for committed commands only, in log order.
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let mut map = self.map.lock().map_err(|e| e.to_string())?;
        let mut responses = Vec::with_capacity(batch.len());
        for c in batch {
            let text = String::from_utf8_lossy(c.data);
            let (key, value) = text.split_once('=').unwrap_or((&text, ""));
            let old = map.insert(key.to_string(), value.to_string());
            responses.push(old.map(String::into_bytes));
        }
        Ok(responses)
    }

    /// The whole state, one `key=value` line per entry.
    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        let map = self.map.lock().map_err(|e| e.to_string())?;
        for (k, v) in map.iter() {
            writeln!(out, "{k}={v}").map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Replaces the state with a snapshot written by `snapshot`.
    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let mut map = self.map.lock().map_err(|e| e.to_string())?;
        map.clear();
        for line in BufReader::new(input).lines() {
            let line = line.map_err(|e| e.to_string())?;
            if let Some((k, v)) = line.split_once('=') {
                map.insert(k.to_string(), v.to_string());
            }
        }
        Ok(())
    }
}

/// One cluster member: its node, transport and view of the state.
struct Member {
    node: Arc<Node>,
    transport: Arc<TcpTransport>,
    map: Map,
}

/// Proposes `command` at `nodes[first]`, following `NotLeader` redirects.
fn propose(nodes: &BTreeMap<u64, Member>, first: u64, command: &str) -> Result<String, Error> {
    let mut at = first;
    loop {
        // Waits up to the timeout for a leader to be elected if none is known yet.
        let node = &nodes[&at].node;
        match node.propose(command.into(), Duration::from_secs(5)) {
            Ok(previous) => {
                return Ok(String::from_utf8_lossy(&previous.unwrap_or_default()).into_owned())
            }
            Err(Error::NotLeader(leader)) if leader != 0 => at = leader,
            Err(e) => return Err(e),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("raft-embedding-{}", std::process::id()));
    let ids = [1u64, 2, 3];

    // 1. Transports first: each listens on a free port; received bytes go to the node,
    //    which does not exist yet (a NodeSlot breaks the cycle; Raft tolerates the loss
    //    of anything that arrives before it is set).
    let mut slots = BTreeMap::new();
    let mut transports = BTreeMap::new();
    for id in ids {
        let slot = NodeSlot::new();
        let cfg = TransportConfig::new(id, 42, "127.0.0.1:0".parse()?);
        transports.insert(id, Arc::new(TcpTransport::start(cfg, slot.on_message())?));
        slots.insert(id, slot);
    }
    for (&id, t) in &transports {
        for (&peer, other) in &transports {
            if peer != id {
                t.add_peer(peer, other.local_addr());
            }
        }
    }

    // 2. Nodes: same initial voters everywhere, one data directory each.
    let mut nodes = BTreeMap::new();
    for id in ids {
        let mut cfg = NodeConfig::new(id, ids);
        cfg.data_dir = Some(dir.join(format!("node-{id}")));
        let map = Map::default();
        let transport = transports[&id].clone();
        let sm = Box::new(Kv { map: map.clone() });
        let node = Arc::new(Node::start(cfg, sm, transport.clone())?);
        let _ = slots[&id].set(node.clone());
        nodes.insert(
            id,
            Member {
                node,
                transport,
                map,
            },
        );
    }

    // 3. Writes: go to the leader; the response is the state machine's answer.
    propose(&nodes, 1, "greeting=hello")?;
    let previous = propose(&nodes, 1, "greeting=bonjour")?;
    println!("replaced greeting={previous}");

    // 4. A linearizable read on every node, followers included: after read_index returns,
    //    the local state includes every write acknowledged before the call.
    for (id, m) in &nodes {
        let index = m.node.read_index(Duration::from_secs(5))?;
        let map = m.map.lock().map_err(|e| e.to_string())?;
        let value = map.get("greeting").cloned();
        println!("node {id}: greeting={value:?} (read index {index})");
        assert_eq!(value.as_deref(), Some("bonjour"));
    }

    // 5. Shutdown: the node first (joins its threads), then its transport.
    for m in nodes.values() {
        m.node.shutdown()?;
        m.transport.shutdown();
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
