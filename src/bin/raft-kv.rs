//! `raft-kv`: a replicated key-value server built on the public `raft` API.
//!
//! ```text
//! raft-kv --id N --peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 \
//!         --client 127.0.0.1:7201 --data-dir DIR [--election-ms 150] [--cluster-id X]
//!         [--secret S] [--snapshot-entries N] [--request-timeout-ms 2000] [--test-hooks]
//! ```
//!
//! Raft traffic flows over the built-in [`TcpTransport`] (its `on_message` callback calls
//! [`Node::step`]); the log, hard state and snapshots live under `--data-dir`. Clients speak
//! a line protocol on `--client` (see `docs/DEMO.md`):
//!
//! | request          | answers                                     |
//! |------------------|---------------------------------------------|
//! | `PUT k v`        | `OK`                                        |
//! | `GET k`          | `VALUE v` / `NOTFOUND` (linearizable)       |
//! | `DEL k`          | `OK`                                        |
//! | `CAS k old new`  | `OK` / `MISMATCH`                           |
//! | `STATUS`         | `STATUS id=.. role=.. term=.. leader=.. commit=.. applied=..` |
//! | `BLOCK p` / `UNBLOCK p` | `OK` (only with `--test-hooks`)      |
//!
//! Errors: `ERR NOTLEADER <id>` (0 = unknown), `ERR BUSY`, `ERR TIMEOUT` (outcome unknown),
//! `ERR <message>`.

#[path = "raft_kv/command.rs"]
mod command;

use command::{Command, KvMachine, KvMap};
use raft::core::Role;
use raft::runtime::{Error, Node, NodeConfig};
use raft::transport::{OnMessage, TcpTransport, TransportConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Parsed command line.
struct Args {
    id: u64,
    peers: BTreeMap<u64, SocketAddr>,
    client: SocketAddr,
    data_dir: PathBuf,
    election_ms: u64,
    cluster_id: u64,
    secret: Option<String>,
    snapshot_entries: u64,
    request_timeout: Duration,
    test_hooks: bool,
}

const USAGE: &str = "usage: raft-kv --id N --peers ID=HOST:PORT,... --client HOST:PORT \
--data-dir DIR [--election-ms 150] [--cluster-id X] [--secret S] [--snapshot-entries N] \
[--request-timeout-ms MS] [--test-hooks]";

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut id, mut peers, mut client, mut data_dir) = (None, None, None, None);
    let mut a = Args {
        id: 0,
        peers: BTreeMap::new(),
        client: "127.0.0.1:0".parse().expect("literal"),
        data_dir: PathBuf::new(),
        election_ms: 150,
        cluster_id: 1,
        secret: None,
        snapshot_entries: 10_000,
        request_timeout: Duration::from_millis(2000),
        test_hooks: false,
    };
    while let Some(flag) = it.next() {
        if flag == "--test-hooks" {
            a.test_hooks = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--id" => id = Some(num(&val)?),
            "--peers" => {
                let mut m = BTreeMap::new();
                for part in val.split(',').filter(|p| !p.is_empty()) {
                    let (i, addr) = part
                        .split_once('=')
                        .ok_or_else(|| format!("--peers: expected ID=ADDR, got {part}"))?;
                    let addr: SocketAddr = addr
                        .parse()
                        .map_err(|_| format!("--peers: bad address {addr}"))?;
                    m.insert(num(i)?, addr);
                }
                peers = Some(m);
            }
            "--client" => {
                client = Some(
                    val.parse::<SocketAddr>()
                        .map_err(|_| format!("--client: bad address {val}"))?,
                )
            }
            "--data-dir" => data_dir = Some(PathBuf::from(val)),
            "--election-ms" => a.election_ms = num(&val)?,
            "--cluster-id" => a.cluster_id = num(&val)?,
            "--secret" => a.secret = Some(val),
            "--snapshot-entries" => a.snapshot_entries = num(&val)?,
            "--request-timeout-ms" => a.request_timeout = Duration::from_millis(num(&val)?),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    a.id = id.ok_or("--id is required")?;
    a.peers = peers.ok_or("--peers is required")?;
    a.client = client.ok_or("--client is required")?;
    a.data_dir = data_dir.ok_or("--data-dir is required")?;
    if !a.peers.contains_key(&a.id) {
        return Err(format!("--peers must include this node's id {}", a.id));
    }
    if a.election_ms < 20 {
        return Err("--election-ms must be at least 20".into());
    }
    Ok(a)
}

/// Everything a client connection needs.
struct Server {
    id: u64,
    node: Arc<Node>,
    map: KvMap,
    transport: Arc<TcpTransport>,
    test_hooks: bool,
    timeout: Duration,
}

/// Formats a runtime error as a protocol line.
fn err_line(e: &Error) -> String {
    match e {
        Error::NotLeader(l) => format!("ERR NOTLEADER {l}"),
        Error::Busy => "ERR BUSY".into(),
        // A dropped proposal's outcome is unknown, exactly like a timed-out one.
        Error::Timeout | Error::Dropped => "ERR TIMEOUT".into(),
        other => format!("ERR {other}").replace(['\r', '\n'], " "),
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "precandidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

impl Server {
    /// Answers one request line with one response line (without the newline).
    fn handle(&self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&verb, args)) = words.split_first() else {
            return "ERR empty request".into();
        };
        match (verb.to_ascii_uppercase().as_str(), args) {
            ("PUT", [k, v]) => self.write(Command::Put {
                key: k.to_string(),
                value: v.to_string(),
            }),
            ("DEL", [k]) => self.write(Command::Delete { key: k.to_string() }),
            ("CAS", [k, old, new]) => self.write(Command::Cas {
                key: k.to_string(),
                old: old.to_string(),
                new: new.to_string(),
            }),
            ("GET", [k]) => match self.node.read_index(self.timeout) {
                // The local state machine has applied at least the read index: reading it
                // now is linearizable.
                Ok(_) => match self.map.read().get(*k) {
                    Some(v) => format!("VALUE {v}"),
                    None => "NOTFOUND".into(),
                },
                Err(e) => err_line(&e),
            },
            ("STATUS", []) => match self.node.status() {
                Ok(s) => format!(
                    "STATUS id={} role={} term={} leader={} commit={} applied={}",
                    self.id,
                    role_name(s.role),
                    s.term,
                    s.leader,
                    s.commit,
                    s.applied
                ),
                Err(e) => err_line(&e),
            },
            (v @ ("BLOCK" | "UNBLOCK"), [p]) => {
                if !self.test_hooks {
                    return "ERR test hooks are disabled (start with --test-hooks)".into();
                }
                match p.parse::<u64>() {
                    Ok(peer) => {
                        self.transport.set_blocked(peer, v == "BLOCK");
                        "OK".into()
                    }
                    Err(_) => format!("ERR bad peer id {p}"),
                }
            }
            ("PUT", _) => "ERR usage: PUT key value".into(),
            ("GET", _) => "ERR usage: GET key".into(),
            ("DEL", _) => "ERR usage: DEL key".into(),
            ("CAS", _) => "ERR usage: CAS key old new".into(),
            _ => format!("ERR unknown command {verb}"),
        }
    }

    fn write(&self, cmd: Command) -> String {
        match self.node.propose(cmd.encode(), self.timeout) {
            Ok(Some(resp)) => String::from_utf8_lossy(&resp).into_owned(),
            Ok(None) => "ERR no response".into(),
            Err(e) => err_line(&e),
        }
    }

    /// Serves one client connection until it closes.
    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let Ok(mut out) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let req = line.trim_end_matches(['\r', '\n']);
            if req.trim().is_empty() {
                continue;
            }
            let mut resp = self.handle(req);
            resp.push('\n');
            if out.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    }
}

fn run(a: Args) -> Result<(), String> {
    // Bind the client port first so a taken port fails before any Raft state is touched.
    let client = TcpListener::bind(a.client).map_err(|e| format!("bind {}: {e}", a.client))?;
    std::fs::create_dir_all(&a.data_dir)
        .map_err(|e| format!("create {}: {e}", a.data_dir.display()))?;

    // The transport needs its callback before the node exists; the node needs the transport
    // as its sink. A once-cell breaks the cycle: frames arriving before it is set are
    // dropped, which Raft tolerates like any lost message.
    let slot: Arc<OnceLock<Arc<Node>>> = Arc::new(OnceLock::new());
    let on_message: OnMessage = {
        let slot = slot.clone();
        Arc::new(move |_from, bytes| {
            if let Some(node) = slot.get() {
                let _ = node.step(&bytes);
            }
        })
    };
    let mut tcfg = TransportConfig::new(a.id, a.cluster_id, a.peers[&a.id]);
    tcfg.peers = a
        .peers
        .iter()
        .filter(|(&id, _)| id != a.id)
        .map(|(&id, &addr)| (id, addr))
        .collect();
    tcfg.secret = a.secret.as_ref().map(|s| s.as_bytes().to_vec());
    // Reconnect quickly to a restarted peer.
    tcfg.reconnect_backoff_max = Duration::from_millis(500);
    tcfg.connect_timeout = Duration::from_secs(1);
    let transport = Arc::new(
        TcpTransport::start(tcfg, on_message)
            .map_err(|e| format!("transport on {}: {e}", a.peers[&a.id]))?,
    );

    let map = KvMap::default();
    let mut cfg = NodeConfig::new(a.id, a.peers.keys().copied());
    cfg.election_timeout = Duration::from_millis(a.election_ms);
    cfg.heartbeat_interval = Duration::from_millis((a.election_ms / 5).max(10));
    cfg.tick = Duration::from_millis((a.election_ms / 15).clamp(1, 10));
    cfg.data_dir = Some(a.data_dir.clone());
    cfg.snapshot_entries = a.snapshot_entries;
    cfg.snapshot_trailing = (a.snapshot_entries / 2).max(1);
    let node = Arc::new(
        Node::start(
            cfg,
            Box::new(KvMachine::new(map.clone())),
            transport.clone(),
        )
        .map_err(|e| format!("node start: {e}"))?,
    );
    let _ = slot.set(node.clone());

    // A failed node (storage error, panic) must not linger half-alive: exit loudly.
    {
        let node = node.clone();
        std::thread::Builder::new()
            .name("raft-kv-watchdog".into())
            .spawn(move || loop {
                if let Some(why) = node.failure() {
                    eprintln!("raft-kv: node failed: {why}");
                    std::process::exit(1);
                }
                std::thread::sleep(Duration::from_millis(200));
            })
            .map_err(|e| e.to_string())?;
    }

    eprintln!(
        "raft-kv: node {} raft {} client {} data {}",
        a.id,
        a.peers[&a.id],
        a.client,
        a.data_dir.display()
    );
    let server = Arc::new(Server {
        id: a.id,
        node,
        map,
        transport,
        test_hooks: a.test_hooks,
        timeout: a.request_timeout,
    });
    for conn in client.incoming() {
        match conn {
            Ok(stream) => {
                let server = server.clone();
                let spawned = std::thread::Builder::new()
                    .name("raft-kv-client".into())
                    .spawn(move || server.serve(stream));
                if let Err(e) = spawned {
                    eprintln!("raft-kv: cannot start a client thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("raft-kv: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("raft-kv: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raft-kv: {e}");
            ExitCode::from(1)
        }
    }
}
