//! A harness that runs `raft-kv` server processes on 127.0.0.1 and talks to them over the
//! line protocol. Shared by the `raft-kv-demo` binary and the `kv_cluster` integration test.
//!
//! Children are killed when the [`Cluster`] is dropped (also while unwinding from a panic)
//! and, on Linux, by the kernel if the process that started them dies.
#![allow(dead_code)]

#[path = "line_client.rs"]
mod line_client;

use std::collections::BTreeMap;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One parsed `STATUS` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Node id.
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `precandidate`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Known leader (0 = unknown).
    pub leader: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
}

impl Status {
    /// Parses `STATUS id=1 role=leader term=2 leader=1 commit=9 applied=9`.
    pub fn parse(line: &str) -> Option<Status> {
        let rest = line.strip_prefix("STATUS ")?;
        let mut s = Status::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "role" => s.role = v.to_string(),
                "id" => s.id = v.parse().ok()?,
                "term" => s.term = v.parse().ok()?,
                "leader" => s.leader = v.parse().ok()?,
                "commit" => s.commit = v.parse().ok()?,
                "applied" => s.applied = v.parse().ok()?,
                _ => {}
            }
        }
        Some(s)
    }

    /// Formats the status back into its protocol line.
    pub fn line(&self) -> String {
        format!(
            "STATUS id={} role={} term={} leader={} commit={} applied={}",
            self.id, self.role, self.term, self.leader, self.commit, self.applied
        )
    }

    /// True if this node believes it leads.
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }
}

pub use line_client::exchange as request;

/// Where one node listens and keeps its data.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Raft id.
    pub id: u64,
    /// Raft (peer) address.
    pub raft: SocketAddr,
    /// Client protocol address.
    pub client: SocketAddr,
    /// Data directory.
    pub dir: PathBuf,
}

/// A set of `raft-kv` processes.
pub struct Cluster {
    bin: PathBuf,
    /// Temporary directory holding data directories and logs.
    pub root: PathBuf,
    /// The nodes, by id.
    pub nodes: BTreeMap<u64, NodeSpec>,
    children: BTreeMap<u64, Child>,
    /// Election timeout given to every node.
    pub election_ms: u64,
    extra: Vec<String>,
    /// Keep `root` on drop (for post-mortem of a failed run).
    pub keep: bool,
    /// Timeout for one request/answer exchange.
    pub io_timeout: Duration,
    /// No waiting loop of the harness runs past this instant (bounds a failing run).
    pub deadline: Instant,
}

/// Ports the harness picks from: below Linux's ephemeral range (32768-60999), so an outgoing
/// connection of another test or program cannot take a port between our check and the
/// server's bind (or while a killed node is down).
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Picks `n` distinct free ports on 127.0.0.1 outside the ephemeral range (each checked by
/// binding it; all held until every port is picked).
pub fn free_addrs(n: usize) -> std::io::Result<Vec<SocketAddr>> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 32)
        ^ NEXT.fetch_add(0x9E37_79B9, std::sync::atomic::Ordering::Relaxed);
    let mut x = seed | 1;
    let span = u64::from(PORTS.end - PORTS.start);
    let mut held = Vec::with_capacity(n);
    for _ in 0..n * 200 {
        if held.len() == n {
            break;
        }
        // xorshift: a different sequence per process and call.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = PORTS.start + (x % span) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    while held.len() < n {
        held.push(TcpListener::bind("127.0.0.1:0")?);
    }
    held.iter().map(|l| l.local_addr()).collect()
}

impl Cluster {
    /// Lays out `n` nodes (ids 1..=n) in a fresh temporary directory; starts nothing.
    /// `extra` arguments are passed to every server, with `{id}` replaced by the node's id.
    pub fn new(bin: &Path, n: u64, election_ms: u64, extra: &[&str]) -> std::io::Result<Cluster> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root = std::env::temp_dir().join(format!("raft-kv-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&root)?;
        let addrs = free_addrs(2 * n as usize)?;
        let nodes = (1..=n)
            .map(|id| {
                let i = (id - 1) as usize;
                let spec = NodeSpec {
                    id,
                    raft: addrs[2 * i],
                    client: addrs[2 * i + 1],
                    dir: root.join(format!("node-{id}")),
                };
                (id, spec)
            })
            .collect();
        Ok(Cluster {
            bin: bin.to_path_buf(),
            root,
            nodes,
            children: BTreeMap::new(),
            election_ms,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            keep: false,
            io_timeout: Duration::from_secs(5),
            deadline: Instant::now() + Duration::from_secs(50),
        })
    }

    /// When a wait of `timeout` starting now must end: never past [`Cluster::deadline`].
    pub fn until(&self, timeout: Duration) -> Instant {
        (Instant::now() + timeout).min(self.deadline)
    }

    /// The `--peers` argument naming `ids`.
    fn peers_arg(&self, ids: &[u64]) -> String {
        ids.iter()
            .map(|id| format!("{id}={}", self.nodes[id].raft))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Lays out one more node `id` (fresh ports, its own data directory); starts nothing.
    pub fn add_node(&mut self, id: u64) -> std::io::Result<NodeSpec> {
        let a = free_addrs(2)?;
        let spec = NodeSpec {
            id,
            raft: a[0],
            client: a[1],
            dir: self.root.join(format!("node-{id}")),
        };
        self.nodes.insert(id, spec.clone());
        Ok(spec)
    }

    /// Starts node `id` with `--join`: a node being added to the running cluster whose
    /// voters are `voters`.
    pub fn spawn_joiner(&mut self, id: u64, voters: &[u64]) -> std::io::Result<()> {
        let mut ids = voters.to_vec();
        ids.push(id);
        self.spawn_with(id, &ids, &["--join"])
    }

    /// Log file of node `id` (stdout and stderr, appended across restarts).
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.root.join(format!("node-{id}.log"))
    }

    /// Starts (or restarts) node `id` from its data directory.
    pub fn spawn(&mut self, id: u64) -> std::io::Result<()> {
        let all: Vec<u64> = self.nodes.keys().copied().collect();
        self.spawn_with(id, &all, &[])
    }

    /// Starts node `id` with `--peers` naming `peers` and extra arguments `more`.
    fn spawn_with(&mut self, id: u64, peers: &[u64], more: &[&str]) -> std::io::Result<()> {
        let spec = self.nodes[&id].clone();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--id")
            .arg(id.to_string())
            .arg("--peers")
            .arg(self.peers_arg(peers))
            .arg("--client")
            .arg(spec.client.to_string())
            .arg("--data-dir")
            .arg(&spec.dir)
            .arg("--election-ms")
            .arg(self.election_ms.to_string())
            .args(
                self.extra
                    .iter()
                    .map(|x| x.replace("{id}", &id.to_string())),
            )
            .args(more)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn()?;
        self.children.insert(id, child);
        Ok(())
    }

    /// Starts every node.
    pub fn spawn_all(&mut self) -> std::io::Result<()> {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.spawn(id)?;
        }
        Ok(())
    }

    /// Kills node `id` with SIGKILL and reaps it.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.children.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Process id of node `id`, if it was started and not killed.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children.get(&id).map(|c| c.id())
    }

    /// Ids of nodes whose process is running.
    pub fn running(&mut self) -> Vec<u64> {
        self.children
            .iter_mut()
            .filter_map(|(&id, c)| matches!(c.try_wait(), Ok(None)).then_some(id))
            .collect()
    }

    /// Kills every node.
    pub fn stop_all(&mut self) {
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }

    /// Sends one request to node `id`.
    pub fn request(&self, id: u64, line: &str) -> Result<String, String> {
        request(self.nodes[&id].client, line, self.io_timeout)
    }

    /// Node `id`'s status, if it answers.
    pub fn status(&self, id: u64) -> Option<Status> {
        self.request(id, "STATUS")
            .ok()
            .and_then(|l| Status::parse(&l))
    }

    /// Waits until every listed node answers `STATUS`.
    pub fn wait_up(&mut self, ids: &[u64], timeout: Duration) -> Result<(), String> {
        let end = self.until(timeout);
        for &id in ids {
            while self.status(id).is_none() {
                if let Some(Ok(Some(st))) = self.children.get_mut(&id).map(|c| c.try_wait()) {
                    let log = std::fs::read_to_string(self.log_path(id)).unwrap_or_default();
                    let last = log.lines().last().unwrap_or("").to_string();
                    return Err(format!("node {id} exited ({st}): {last}"));
                }
                if Instant::now() > end {
                    return Err(format!(
                        "node {id} did not come up (log: {})",
                        self.log_path(id).display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Waits for a node among `among` that reports itself leader in a term above
    /// `after_term`, and whose leadership a majority of `among` agrees on.
    pub fn wait_leader(
        &self,
        among: &[u64],
        after_term: u64,
        timeout: Duration,
    ) -> Result<Status, String> {
        let end = self.until(timeout);
        loop {
            let statuses: Vec<Status> = among.iter().filter_map(|&id| self.status(id)).collect();
            if let Some(l) = statuses
                .iter()
                .filter(|s| s.is_leader() && s.term > after_term)
                .max_by_key(|s| s.term)
            {
                let agree = statuses
                    .iter()
                    .filter(|s| s.term == l.term && s.leader == l.id)
                    .count();
                if agree * 2 > self.nodes.len() {
                    return Ok(l.clone());
                }
            }
            if Instant::now() > end {
                return Err(format!(
                    "no leader among {among:?} above term {after_term} within {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a write (`PUT`, `DEL`, `CAS`) starting at node `*hint`, following `ERR NOTLEADER`
    /// redirects and retrying `BUSY`/`TIMEOUT`/unreachable nodes among `among` until
    /// `timeout`. Returns the final answer (`OK`/`MISMATCH`) and updates `*hint` to the node
    /// that answered. `redirects` counts followed redirects.
    pub fn write(
        &self,
        hint: &mut u64,
        among: &[u64],
        line: &str,
        timeout: Duration,
        redirects: &mut u32,
    ) -> Result<String, String> {
        let end = self.until(timeout);
        let mut last;
        let mut rotate = 0usize;
        loop {
            match self.request(*hint, line) {
                Ok(a) if a == "OK" || a == "MISMATCH" => return Ok(a),
                Ok(a) => {
                    let to = a
                        .strip_prefix("ERR NOTLEADER ")
                        .and_then(|l| l.trim().parse::<u64>().ok());
                    match to {
                        Some(l) if l != 0 && l != *hint && among.contains(&l) => {
                            *hint = l;
                            *redirects += 1;
                            continue;
                        }
                        _ => last = a,
                    }
                }
                Err(e) => last = e,
            }
            if Instant::now() > end {
                return Err(format!(
                    "{line}: gave up after {timeout:?}: last answer: {last}"
                ));
            }
            // No usable redirect: try the next node after a short pause.
            rotate += 1;
            *hint = among[rotate % among.len()];
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
