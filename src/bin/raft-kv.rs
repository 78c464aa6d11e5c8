//! `raft-kv`: a replicated key-value server built on the public `raft` API.
//!
//! ```text
//! raft-kv --id N --peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 \
//!         --client 127.0.0.1:7201 --data-dir DIR [--listen HOST:PORT] [--join]
//!         [--election-ms 150] [--cluster-id X] [--secret S] [--snapshot-entries N]
//!         [--request-timeout-ms 2000] [--test-hooks] [--tls-cert FILE --tls-key FILE --tls-ca FILE]
//! ```
//!
//! Every flag has an environment equivalent (`RAFT_KV_ID`, `RAFT_KV_PEERS`, ...; see
//! `--help`). Raft traffic flows over the built-in [`TcpTransport`] (its `on_message`
//! callback calls [`Node::step`]); the log, hard state and snapshots live under
//! `--data-dir`. Clients speak a line protocol on `--client` (see `docs/DEMO.md`):
//!
//! | request          | answers                                     |
//! |------------------|---------------------------------------------|
//! | `PUT k v`        | `OK`                                        |
//! | `GET k`          | `VALUE v` / `NOTFOUND` (linearizable)       |
//! | `DEL k`          | `OK`                                        |
//! | `CAS k old new`  | `OK` / `MISMATCH`                           |
//! | `STATUS`         | `STATUS id=.. role=.. term=.. leader=.. commit=.. applied=..` |
//! | `ADD_LEARNER id host:port` / `PROMOTE id` / `DEMOTE id` / `REMOVE id` | `OK` (membership, leader only) |
//! | `TRANSFER [id]`  | `OK <target>` (leader only)                 |
//! | `MEMBERS`        | `MEMBERS conf=.. voters=.. learners=.. outgoing=.. addrs=..` |
//! | `BLOCK p` / `UNBLOCK p` | `OK` (only with `--test-hooks`)      |
//!
//! Errors: `ERR NOTLEADER <id>` (0 = unknown), `ERR BUSY`, `ERR TIMEOUT` (outcome unknown),
//! `ERR <message>`. An empty line gets `ERR empty request`; a line longer than
//! `--max-line-bytes` gets `ERR line too long ...` and the connection is closed; a connection
//! beyond `--max-clients` gets `ERR BUSY too many client connections ...` and is closed.

#[path = "raft_kv/client_port.rs"]
mod client_port;
#[path = "raft_kv/command.rs"]
mod command;

use clap::Parser;
use client_port::{parse_request, read_request, ClientSlots, Op, Request};
use command::{Command, KvMachine, KvMap, Members};
use raft::core::{ConfChange, ConfState, Role};
use raft::runtime::{Error, Node, NodeConfig, NodeSlot};
use raft::transport::{TcpTransport, TlsConfig, TransportConfig};
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Parses `ID=HOST:PORT,...` into the initial membership with each voter's Raft address.
fn parse_peers(val: &str) -> Result<BTreeMap<u64, SocketAddr>, String> {
    let mut m = BTreeMap::new();
    for part in val.split(',').filter(|p| !p.is_empty()) {
        let (i, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("expected ID=ADDR, got {part}"))?;
        let id = i.parse::<u64>().map_err(|_| format!("not a number: {i}"))?;
        let addr: SocketAddr = addr.parse().map_err(|_| format!("bad address {addr}"))?;
        if m.insert(id, addr).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if m.is_empty() {
        return Err("at least one ID=ADDR is required".into());
    }
    Ok(m)
}

/// Parsed command line.
#[derive(Parser, Debug)]
#[command(
    name = "raft-kv",
    version,
    about = "A replicated key-value server built on raft-manager",
    long_about = "A replicated key-value server built on raft-manager. Raft traffic flows over \
the built-in TCP transport; clients speak a line protocol (PUT, GET, DEL, CAS, STATUS) on \
--client. See docs/DEMO.md."
)]
struct Args {
    /// This node's Raft id (must appear in --peers).
    #[arg(long, env = "RAFT_KV_ID", value_name = "N")]
    id: u64,
    /// Every voter's id and Raft address as the other nodes reach it (advertised), this node
    /// included: the initial membership (with --join: the existing voters, plus this node).
    #[arg(long, env = "RAFT_KV_PEERS", value_name = "ID=HOST:PORT,...", value_parser = parse_peers)]
    peers: BTreeMap<u64, SocketAddr>,
    /// Address the Raft transport binds (e.g. 0.0.0.0:7101); default: this node's --peers
    /// address.
    #[arg(long, env = "RAFT_KV_LISTEN", value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// Start a node that is being added to a running cluster: it never campaigns before the
    /// leader has made it a voter (ADD_LEARNER, then PROMOTE, on the leader).
    #[arg(long, env = "RAFT_KV_JOIN")]
    join: bool,
    /// Address the client line protocol listens on.
    #[arg(long, env = "RAFT_KV_CLIENT", value_name = "HOST:PORT")]
    client: SocketAddr,
    /// Directory of the durable state: write-ahead log, hard state, snapshots.
    #[arg(long, env = "RAFT_KV_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,
    /// Base election timeout in milliseconds (heartbeat = 1/5 of it; at least 20).
    #[arg(long, env = "RAFT_KV_ELECTION_MS", value_name = "MS", default_value_t = 150,
          value_parser = clap::value_parser!(u64).range(20..))]
    election_ms: u64,
    /// Cluster id: the transport refuses connections from other clusters, and a data
    /// directory created for another cluster (or node) is refused at start.
    #[arg(
        long,
        env = "RAFT_KV_CLUSTER_ID",
        value_name = "X",
        default_value_t = 1
    )]
    cluster_id: u64,
    /// Shared secret for mutual HMAC authentication of every Raft connection (visible in the
    /// process list: a demo convenience).
    #[arg(long, env = "RAFT_KV_SECRET", value_name = "S", hide_env_values = true)]
    secret: Option<String>,
    /// Snapshot the state machine every N applied entries.
    #[arg(
        long,
        env = "RAFT_KV_SNAPSHOT_ENTRIES",
        value_name = "N",
        default_value_t = 10_000
    )]
    snapshot_entries: u64,
    /// How long a client request waits for commit or a read index, in milliseconds.
    #[arg(
        long = "request-timeout-ms",
        env = "RAFT_KV_REQUEST_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 2000
    )]
    request_timeout_ms: u64,
    /// Largest command (an encoded PUT/DEL/CAS) the node accepts, in bytes; a larger write
    /// is answered `ERR command of N bytes exceeds the maximum ...` and nothing is proposed.
    #[arg(long, env = "RAFT_KV_MAX_COMMAND_BYTES", value_name = "BYTES", default_value_t = 32 << 20,
          value_parser = clap::value_parser!(u64).range(1..=raft::runtime::MAX_COMMAND_BYTES_LIMIT as u64))]
    max_command_bytes: u64,
    /// A voter that comes back with its state lost (its data directory wiped, restarted
    /// under the same id) is not re-admitted automatically: the leader logs an error and
    /// the operator demotes it (a membership change making it a learner) and promotes it
    /// again once caught up. Default: the leader does that itself (see --rejoin-max-lag).
    #[arg(long, env = "RAFT_KV_MANUAL_REJOIN", conflicts_with = "rejoin_max_lag")]
    manual_rejoin: bool,
    /// Automatic rejoin: a voter that lost its state is demoted to learner, caught up and
    /// promoted again once its log is within N entries of the leader's.
    #[arg(long, env = "RAFT_KV_REJOIN_MAX_LAG", value_name = "N")]
    rejoin_max_lag: Option<u64>,
    /// Enables the BLOCK/UNBLOCK client commands (tests only).
    #[arg(long, env = "RAFT_KV_TEST_HOOKS")]
    test_hooks: bool,
    /// Log level on stderr (error, warn, info, debug, trace); RUST_LOG, when set, overrides
    /// it with a full filter (e.g. `raft::transport=debug,info`).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: tracing_subscriber::filter::LevelFilter,
    /// Serve the node's metrics in the Prometheus text format at http://ADDR/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<SocketAddr>,
    /// Longest client request line in bytes; a longer one is answered with an error and the
    /// connection is closed.
    #[arg(long, env = "RAFT_KV_MAX_LINE_BYTES", value_name = "BYTES",
          default_value_t = client_port::DEFAULT_MAX_LINE_BYTES,
          value_parser = clap::value_parser!(u64).range(64..))]
    max_line_bytes: u64,
    /// Concurrent client connections; more are answered `ERR BUSY` and closed.
    #[arg(long, env = "RAFT_KV_MAX_CLIENTS", value_name = "N",
          default_value_t = client_port::DEFAULT_MAX_CLIENTS,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_clients: u64,
    /// This node's TLS certificate chain (PEM); with --tls-key and --tls-ca, every Raft
    /// connection uses TLS 1.3 with mutual authentication. The certificate must name the node
    /// with the DNS SAN `node-<id>.raft`.
    #[arg(long, env = "RAFT_KV_TLS_CERT", value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// This node's TLS private key (PEM).
    #[arg(long, env = "RAFT_KV_TLS_KEY", value_name = "FILE", requires_all = ["tls_cert", "tls_ca"])]
    tls_key: Option<PathBuf>,
    /// The CA certificate(s) peers' certificates must chain to (PEM).
    #[arg(long, env = "RAFT_KV_TLS_CA", value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// Seconds a client connection may stay silent before it is closed.
    #[arg(long, env = "RAFT_KV_CLIENT_IDLE_SECS", value_name = "SECS",
          default_value_t = client_port::DEFAULT_IDLE_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    client_idle_secs: u64,
}

impl Args {
    /// Checks what clap cannot: this node is one of the peers.
    fn validate(&self) -> Result<(), String> {
        if !self.peers.contains_key(&self.id) {
            return Err(format!("--peers must include this node's id {}", self.id));
        }
        if self.join && self.peers.len() < 2 {
            return Err("--join needs the existing voters in --peers".into());
        }
        Ok(())
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// How far (in entries) a learner may trail the leader's log to be promoted by `PROMOTE`.
const PROMOTE_MAX_LAG: u64 = 100;
/// Membership requests wait at least this long (a learner may need time to catch up).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a client connection needs.
struct Server {
    id: u64,
    node: Arc<Node>,
    map: KvMap,
    members: Members,
    peers: BTreeMap<u64, SocketAddr>,
    transport: Arc<TcpTransport>,
    test_hooks: bool,
    timeout: Duration,
    max_line: usize,
    idle: Duration,
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

/// `OK` or the error line.
fn unit(r: Result<(), Error>) -> String {
    match r {
        Ok(()) => "OK".into(),
        Err(e) => err_line(&e),
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
        let op = match parse_request(line) {
            Ok(op) => op,
            Err(e) => return e,
        };
        match op {
            Op::Put(k, v) => self.write(Command::Put {
                key: k.to_string(),
                value: v.to_string(),
            }),
            Op::Del(k) => self.write(Command::Delete { key: k.to_string() }),
            Op::Cas(k, old, new) => self.write(Command::Cas {
                key: k.to_string(),
                old: old.to_string(),
                new: new.to_string(),
            }),
            Op::Get(k) => match self.node.read_index(self.timeout) {
                // The local state machine has applied at least the read index: reading it
                // now is linearizable.
                Ok(_) => match self.map.read().get(k) {
                    Some(v) => format!("VALUE {v}"),
                    None => "NOTFOUND".into(),
                },
                Err(e) => err_line(&e),
            },
            Op::Status => match self.node.status() {
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
            Op::Block(peer, block) => {
                if !self.test_hooks {
                    return "ERR test hooks are disabled (start with --test-hooks)".into();
                }
                self.transport.set_blocked(peer, block);
                "OK".into()
            }
            Op::AddLearner(id, addr) => self.add_learner(id, addr),
            Op::Promote(id) => self.confirm(
                self.node.promote_learner(id, PROMOTE_MAX_LAG, self.admin()),
                |c| c.is_voter(id),
            ),
            Op::Demote(id) => self.confirm(
                self.node.change_membership_from(
                    |st| {
                        if !st.conf.is_voter(id) {
                            return Err(Error::Invalid(format!("node {id} is not a voter")));
                        }
                        let voters = st.conf.voters.iter().copied().filter(|&v| v != id);
                        let mut learners = st.conf.learners.clone();
                        learners.push(id);
                        Ok(ConfChange::Enter {
                            voters: voters.collect(),
                            learners,
                        })
                    },
                    self.admin(),
                ),
                |c| c.learners.contains(&id),
            ),
            Op::Remove(id) => self.confirm(self.node.remove_member(id, self.admin()), |c| {
                !c.contains(id)
            }),
            Op::Transfer(to) => match self.node.transfer_leader(to) {
                Ok(target) => format!("OK {target}"),
                Err(e) => err_line(&e),
            },
            Op::Members => self.members_line(),
        }
    }

    fn admin(&self) -> Duration {
        self.timeout.max(ADMIN_TIMEOUT)
    }

    /// The answer to a membership change. An unknown outcome (leadership lost before the
    /// change committed, e.g. a leader removing itself hands over first) is resolved by
    /// watching this node's configuration for a moment: `OK` once `done` holds.
    fn confirm(&self, r: Result<(), Error>, done: impl Fn(&ConfState) -> bool) -> String {
        match r {
            Err(Error::Dropped | Error::Timeout) => {
                let end = std::time::Instant::now() + self.timeout;
                while std::time::Instant::now() < end {
                    if self.node.status().is_ok_and(|s| done(&s.conf)) {
                        return "OK".into();
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                unit(r)
            }
            r => unit(r),
        }
    }

    /// `ADD_LEARNER id addr`: replicates the new member's address (so every node, whoever
    /// leads later, can reach it), then adds it as a learner.
    fn add_learner(&self, id: u64, addr: SocketAddr) -> String {
        let recorded = self.write(Command::Member {
            id,
            addr: addr.to_string(),
        });
        if recorded != "OK" {
            return recorded;
        }
        unit(self.node.add_learner(id, None, self.admin()))
    }

    /// `MEMBERS conf=.. voters=1,2 learners=3 outgoing= addrs=1=HOST:PORT,...` (local view).
    fn members_line(&self) -> String {
        let s = match self.node.status() {
            Ok(s) => s,
            Err(e) => return err_line(&e),
        };
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        // The addresses this node uses: --peers, then those replicated by ADD_LEARNER.
        let mut known = self.members.read().clone();
        known.extend(self.peers.iter().map(|(&id, a)| (id, a.to_string())));
        let addrs = known
            .iter()
            .map(|(id, a)| format!("{id}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "MEMBERS conf={} voters={} learners={} outgoing={} addrs={addrs}",
            s.conf_index,
            list(&s.conf.voters),
            list(&s.conf.learners),
            list(&s.conf.voters_outgoing)
        )
    }

    fn write(&self, cmd: Command) -> String {
        match self.node.propose(cmd.encode(), self.timeout) {
            Ok(Some(resp)) => String::from_utf8_lossy(&resp).into_owned(),
            Ok(None) => "ERR no response".into(),
            Err(e) => err_line(&e),
        }
    }

    /// Serves one client connection until it closes.
    /// Lines are bounded by `max_line`; a silent connection is closed after `idle`.
    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(self.idle));
        let Ok(mut out) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            let req = match read_request(&mut reader, self.max_line, &mut buf) {
                Ok(Request::Line(line)) => line,
                Ok(Request::Closed) | Err(_) => return,
                Ok(bad) => {
                    let refusal = bad.refusal(self.max_line).unwrap_or_default();
                    if out.write_all(format!("{refusal}\n").as_bytes()).is_err() {
                        return;
                    }
                    if bad == Request::TooLong {
                        let _ = out.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    continue;
                }
            };
            let mut resp = self.handle(&req);
            resp.push('\n');
            if out.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Logs to stderr: RUST_LOG when set, else `--log-level`.
fn init_logging(level: tracing_subscriber::filter::LevelFilter) {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// Answers every HTTP request on `listener` with the node's metrics (Prometheus text format).
fn serve_metrics(listener: TcpListener, node: Arc<Node>) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        // Read the request head (bounded); the path is not checked: one resource.
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while head.len() < 16 << 10 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let (status, body) = match node.metrics() {
            Ok(m) => ("200 OK", m.to_prometheus_text()),
            Err(e) => ("503 Service Unavailable", format!("{e}\n")),
        };
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

fn run(a: Args) -> Result<(), String> {
    // Bind the client port first so a taken port fails before any Raft state is touched.
    let client = TcpListener::bind(a.client).map_err(|e| format!("bind {}: {e}", a.client))?;
    let metrics = match a.metrics_addr {
        Some(addr) => Some(TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?),
        None => None,
    };
    std::fs::create_dir_all(&a.data_dir)
        .map_err(|e| format!("create {}: {e}", a.data_dir.display()))?;

    // The transport needs its callback before the node exists; the node needs the transport
    // as its sink. The slot breaks the cycle (frames before it is set are dropped).
    let slot = NodeSlot::new();
    let listen = a.listen.unwrap_or(a.peers[&a.id]);
    let mut tcfg = TransportConfig::new(a.id, a.cluster_id, listen);
    tcfg.peers = a
        .peers
        .iter()
        .filter(|(&id, _)| id != a.id)
        .map(|(&id, &addr)| (id, addr))
        .collect();
    tcfg.secret = a.secret.as_ref().map(|s| s.as_bytes().to_vec());
    if let (Some(cert), Some(key), Some(ca)) = (&a.tls_cert, &a.tls_key, &a.tls_ca) {
        tcfg.tls = Some(TlsConfig::from_files(cert, key, ca).map_err(|e| format!("TLS: {e}"))?);
    }
    // Reconnect quickly to a restarted peer.
    tcfg.reconnect_backoff_max = Duration::from_millis(500);
    tcfg.connect_timeout = Duration::from_secs(1);
    let transport = Arc::new(
        TcpTransport::start(tcfg, slot.on_message())
            .map_err(|e| format!("transport on {listen}: {e}"))?,
    );

    let map = KvMap::default();
    let members = Members::default();
    // A joining node's initial membership is the existing voters (without itself).
    let voters = a.peers.keys().copied().filter(|&id| !a.join || id != a.id);
    let mut cfg = NodeConfig::new(a.id, voters);
    cfg.election_timeout = Duration::from_millis(a.election_ms);
    cfg.heartbeat_interval = Duration::from_millis((a.election_ms / 5).max(10));
    cfg.tick = Duration::from_millis((a.election_ms / 15).clamp(1, 10));
    cfg.data_dir = Some(a.data_dir.clone());
    cfg.cluster_id = a.cluster_id;
    cfg.snapshot_entries = a.snapshot_entries;
    cfg.snapshot_trailing = (a.snapshot_entries / 2).max(1);
    cfg.max_command_bytes = a.max_command_bytes as usize;
    if a.manual_rejoin {
        cfg.auto_rejoin = None;
    } else if let Some(lag) = a.rejoin_max_lag {
        cfg.auto_rejoin = Some(lag);
    }
    // Members added at run time: every node learns their address from the log (or from a
    // snapshot). Addresses given in --peers win: they may differ from a restored
    // snapshot's, e.g. in a new cluster started from an exported snapshot.
    let on_member: command::OnMember = {
        let (transport, given) = (transport.clone(), a.peers.clone());
        Box::new(move |id, addr| match addr.parse::<SocketAddr>() {
            Ok(sa) if !given.contains_key(&id) => transport.add_peer(id, sa),
            Ok(_) => {}
            Err(_) => eprintln!("raft-kv: ignoring bad address {addr} of member {id}"),
        })
    };
    let node = Arc::new(
        Node::start(
            cfg,
            Box::new(KvMachine::new(map.clone(), members.clone(), on_member)),
            transport.clone(),
        )
        .map_err(|e| format!("node start: {e}"))?,
    );
    let _ = slot.set(node.clone());
    if let Some(l) = metrics {
        let node = node.clone();
        std::thread::Builder::new()
            .name("raft-kv-metrics".into())
            .spawn(move || serve_metrics(l, node))
            .map_err(|e| e.to_string())?;
    }

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
        members,
        peers: a.peers.clone(),
        transport,
        test_hooks: a.test_hooks,
        timeout: a.request_timeout(),
        max_line: usize::try_from(a.max_line_bytes).unwrap_or(usize::MAX - 2),
        idle: Duration::from_secs(a.client_idle_secs),
    });
    let slots = ClientSlots::new(usize::try_from(a.max_clients).unwrap_or(usize::MAX));
    for conn in client.incoming() {
        match conn {
            Ok(mut stream) => {
                let Some(slot) = slots.try_admit() else {
                    // Never blocks for long: the line fits any fresh socket buffer.
                    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                    let _ = stream.write_all(slots.busy_line().as_bytes());
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    continue;
                };
                let server = server.clone();
                let spawned = std::thread::Builder::new()
                    .name("raft-kv-client".into())
                    .spawn(move || {
                        let _slot = slot;
                        server.serve(stream)
                    });
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
    let args = Args::parse();
    if let Err(e) = args.validate() {
        eprintln!("raft-kv: {e}");
        return ExitCode::from(2);
    }
    init_logging(args.log_level);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raft-kv: {e}");
            ExitCode::from(1)
        }
    }
}
