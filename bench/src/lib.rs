//! Shared pieces of the raft-manager benchmark programs: argument parsing, latency
//! histograms, the `BENCH` output format, a counting state machine, an in-process
//! transport and a closed-loop load driver built on `Node::propose_async`.

use parking_lot::{Mutex, RwLock};
use raft::core::{Message, NodeId, Role};
use raft::runtime::{Committed, Error, MessageSink, Node, NodeConfig, StateMachine};
use raft::transport::SendClass;
use std::collections::HashMap;
#[allow(unused_imports)]
use std::io::BufRead as _;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `--key value` flags (and bare `--flag` as "1").
pub struct Args(HashMap<String, String>);

impl Args {
    /// Parses the process arguments.
    pub fn parse() -> Args {
        let mut m = HashMap::new();
        let v: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < v.len() {
            let k = v[i].trim_start_matches("--").to_string();
            if i + 1 < v.len() && !v[i + 1].starts_with("--") {
                m.insert(k, v[i + 1].clone());
                i += 2;
            } else {
                m.insert(k, "1".into());
                i += 1;
            }
        }
        Args(m)
    }
    /// A numeric flag with a default.
    pub fn num(&self, k: &str, d: u64) -> u64 {
        self.0
            .get(k)
            .map(|v| {
                v.replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("--{k}: bad number {v}"))
            })
            .unwrap_or(d)
    }
    /// A float flag with a default.
    pub fn float(&self, k: &str, d: f64) -> f64 {
        self.0
            .get(k)
            .map(|v| v.parse().expect("number"))
            .unwrap_or(d)
    }
    /// A string flag.
    pub fn str(&self, k: &str) -> Option<String> {
        self.0.get(k).cloned()
    }
    /// A list of numbers, comma separated.
    pub fn list(&self, k: &str, d: &[u64]) -> Vec<u64> {
        match self.0.get(k) {
            Some(v) => v
                .split(',')
                .map(|x| x.parse().expect("number list"))
                .collect(),
            None => d.to_vec(),
        }
    }
}

/// Prints the machine-readable line of one figure.
pub fn bench_line(name: &str, value: f64, unit: &str) {
    println!("BENCH name={name} value={value:.3} unit={unit}");
}

/// Percentile (0..=1) of sorted nanosecond samples, in microseconds.
pub fn pct_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Resident set size of this process in KiB (from /proc/self/status).
pub fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Counts applied commands; its state (the count and a running checksum) is 16 bytes.
pub struct CountSm {
    /// Commands applied so far (shared with the benchmark).
    pub applied: Arc<AtomicU64>,
    sum: u64,
}

impl CountSm {
    /// A new machine and its applied counter.
    pub fn new() -> (CountSm, Arc<AtomicU64>) {
        let a = Arc::new(AtomicU64::new(0));
        (
            CountSm {
                applied: a.clone(),
                sum: 0,
            },
            a,
        )
    }
}

impl StateMachine for CountSm {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        for c in batch {
            self.sum = self
                .sum
                .wrapping_add(c.data.first().copied().unwrap_or(0) as u64);
        }
        self.applied
            .fetch_add(batch.len() as u64, Ordering::Release);
        Ok(Vec::new())
    }
    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        out.write_all(&self.applied.load(Ordering::Acquire).to_le_bytes())
            .and_then(|_| out.write_all(&self.sum.to_le_bytes()))
            .map_err(|e| e.to_string())
    }
    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let mut b = [0u8; 16];
        input.read_exact(&mut b).map_err(|e| e.to_string())?;
        self.applied.store(
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            Ordering::Release,
        );
        self.sum = u64::from_le_bytes(b[8..].try_into().unwrap());
        Ok(())
    }
}

/// In-process transport: a sink hands each message straight to the target's
/// `Node::step_message` (or, with `RAFT_BENCH_ENCODE=1`, the encoded bytes to `Node::step`);
/// no queues of its own.
pub struct Net {
    /// Go through the codec (encode + decode) for every message.
    encode: bool,
    nodes: RwLock<HashMap<NodeId, Arc<Node>>>,
    down: RwLock<Vec<NodeId>>,
    any_down: AtomicBool,
    /// Messages the target refused (inbox full or node stopped).
    pub refused: AtomicU64,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            encode: std::env::var("RAFT_BENCH_ENCODE").is_ok_and(|v| v == "1"),
            nodes: RwLock::default(),
            down: RwLock::default(),
            any_down: AtomicBool::default(),
            refused: AtomicU64::default(),
        }
    }
}

impl Net {
    /// Registers a node.
    pub fn add(&self, n: Arc<Node>) {
        self.nodes.write().insert(n.id(), n);
    }
    /// The node with this id.
    pub fn node(&self, id: NodeId) -> Arc<Node> {
        self.nodes.read()[&id].clone()
    }
    /// Cuts (or heals) every link of a node.
    pub fn set_down(&self, id: NodeId, down: bool) {
        let mut d = self.down.write();
        d.retain(|&x| x != id);
        if down {
            d.push(id);
        }
        self.any_down.store(!d.is_empty(), Ordering::Release);
    }
    /// The sink node `from` sends through.
    pub fn sink(self: &Arc<Self>, from: NodeId) -> Arc<dyn MessageSink> {
        Arc::new(Sink {
            net: self.clone(),
            from,
        })
    }
    /// Waits for a leader among the nodes that are up.
    pub fn leader(&self, timeout: Duration) -> Option<NodeId> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let nodes: Vec<_> = self.nodes.read().values().cloned().collect();
            for n in nodes {
                if self.down.read().contains(&n.id()) {
                    continue;
                }
                if let Ok(s) = n.status() {
                    if s.role == Role::Leader {
                        return Some(n.id());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
    /// Shuts every node down.
    pub fn shutdown(&self) {
        let nodes: Vec<_> = self.nodes.write().drain().map(|(_, n)| n).collect();
        for n in nodes {
            let _ = n.shutdown();
        }
    }
}

struct Sink {
    net: Arc<Net>,
    from: NodeId,
}

impl Sink {
    fn target(&self, to: NodeId) -> Option<Arc<Node>> {
        if self.net.any_down.load(Ordering::Acquire) {
            let d = self.net.down.read();
            if d.contains(&to) || d.contains(&self.from) {
                return None;
            }
        }
        self.net.nodes.read().get(&to).cloned()
    }
}

impl MessageSink for Sink {
    fn send(&self, to: NodeId, bytes: Vec<u8>, _class: SendClass) {
        if let Some(n) = self.target(to) {
            if n.step(&bytes).is_err() {
                self.net.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// In process, messages are handed over without encoding (as openraft's in-process
    /// network does); set `RAFT_BENCH_ENCODE=1` to go through the codec instead.
    fn send_message(&self, m: Message) {
        if self.net.encode {
            let to = m.to;
            return self.send(to, raft::codec::encode(&m), SendClass::Normal);
        }
        if let Some(n) = self.target(m.to) {
            if n.step_message(m).is_err() {
                self.net.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Starts `ids` as one in-process cluster with memory storage; `tune` adjusts each config.
pub fn start_cluster(
    ids: &[NodeId],
    tune: impl Fn(&mut NodeConfig),
) -> (Arc<Net>, Vec<Arc<AtomicU64>>) {
    let net = Arc::new(Net::default());
    let mut counters = Vec::new();
    for &id in ids {
        let mut c = NodeConfig::new(id, ids.iter().copied());
        c.seed = Some(id.wrapping_mul(7919) ^ std::process::id() as u64);
        tune(&mut c);
        let (sm, applied) = CountSm::new();
        let node = Node::start(c, Box::new(sm), net.sink(id)).expect("start node");
        net.add(Arc::new(node));
        counters.push(applied);
    }
    (net, counters)
}

/// Outcome of a closed-loop run.
pub struct LoadResult {
    /// Proposals committed and applied (on the proposing node) in the measured window.
    pub ops: u64,
    /// Proposals that failed.
    pub errors: u64,
    /// Length of the measured window.
    pub secs: f64,
    /// Sorted latencies (ns) of the proposals completed in the window.
    pub lat: Vec<u64>,
    /// First error seen, if any.
    pub first_error: Option<Error>,
}

impl LoadResult {
    /// Committed-and-applied operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

/// Keeps `window` proposals of `size` bytes in flight on `node` (a semaphore of `window`
/// permits; each completion returns its permit) for `warmup + dur`, measuring only `dur`.
/// With `total` set, stops after that many successful proposals instead.
pub fn closed_loop(
    node: &Node,
    window: usize,
    size: usize,
    warmup: Duration,
    dur: Duration,
    total: Option<u64>,
) -> LoadResult {
    struct St {
        lat: Vec<u64>,
        ops: u64,
        errors: u64,
        first_error: Option<Error>,
    }
    let st = Arc::new(Mutex::new(St {
        lat: Vec::with_capacity(if total.is_some() { 0 } else { 1 << 16 }),
        ops: 0,
        errors: 0,
        first_error: None,
    }));
    let measuring = Arc::new(AtomicBool::new(total.is_some()));
    let (tok_tx, tok_rx) = crossbeam_channel::bounded::<()>(window);
    for _ in 0..window {
        tok_tx.send(()).unwrap();
    }
    let start = Instant::now();
    let mut m_start = start;
    let mut started = total.is_some();
    let end = start + warmup + dur;
    let mut seq: u64 = 0;
    let mut issued: u64 = 0;
    loop {
        let now = Instant::now();
        if !started && now >= start + warmup {
            started = true;
            m_start = now;
            measuring.store(true, Ordering::Release);
        }
        if total.is_none() && now >= end {
            break;
        }
        if let Some(t) = total {
            if issued >= t {
                break;
            }
        }
        if tok_rx.recv_timeout(Duration::from_millis(100)).is_err() {
            continue;
        }
        let mut cmd = vec![0u8; size];
        seq += 1;
        cmd[..8].copy_from_slice(&seq.to_le_bytes());
        let t0 = Instant::now();
        let (st2, tok2, meas) = (st.clone(), tok_tx.clone(), measuring.clone());
        let record = total.is_none();
        issued += 1;
        node.propose_async(cmd, move |r| {
            let ns = t0.elapsed().as_nanos() as u64;
            if meas.load(Ordering::Acquire) {
                let mut s = st2.lock();
                match r {
                    Ok(_) => {
                        s.ops += 1;
                        if record {
                            s.lat.push(ns);
                        }
                    }
                    Err(e) => {
                        s.errors += 1;
                        if s.first_error.is_none() {
                            s.first_error = Some(e);
                        }
                    }
                }
            }
            let _ = tok2.send(());
        });
    }
    let secs = m_start.elapsed().as_secs_f64();
    measuring.store(false, Ordering::Release);
    // Wait for the permits to come back (bounded).
    let drain_end = Instant::now() + Duration::from_secs(10);
    let mut back = 0;
    while back < window && Instant::now() < drain_end {
        if tok_rx.recv_timeout(Duration::from_millis(100)).is_ok() {
            back += 1;
        }
    }
    let mut s = st.lock();
    let mut lat = std::mem::take(&mut s.lat);
    lat.sort_unstable();
    LoadResult {
        ops: s.ops,
        errors: s.errors,
        secs: if total.is_some() {
            start.elapsed().as_secs_f64()
        } else {
            secs
        },
        lat,
        first_error: s.first_error.clone(),
    }
}

/// Path of a sibling binary (built into the same target directory).
pub fn sibling_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().expect("exe dir").join(name)
}

/// Prints a simple table.
pub fn table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    println!("\n{title}");
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:>w$}", c, w = w[i]))
            .collect();
        println!("| {} |", s.join(" | "));
    };
    line(header.iter().map(|s| s.to_string()).collect());
    println!(
        "|{}|",
        w.iter()
            .map(|n| "-".repeat(n + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in rows {
        line(r.clone());
    }
}

/// A `bench-node` child process driven over its stdin/stdout.
pub struct Proc {
    /// Node id.
    pub id: u64,
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    args: Vec<String>,
}

impl Proc {
    /// Starts `bench-node` with these arguments and waits for it to say READY.
    pub fn spawn(id: u64, args: Vec<String>) -> Proc {
        use std::process::{Command, Stdio};
        let mut child = Command::new(sibling_bin("bench-node"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn bench-node (build it with cargo build --release -p raft-bench)");
        let input = child.stdin.take().unwrap();
        let output = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut p = Proc {
            id,
            child,
            input,
            output,
            args,
        };
        let r = p.read();
        assert_eq!(r, "READY", "bench-node {id} did not start");
        p
    }
    fn read(&mut self) -> String {
        use std::io::BufRead;
        let mut s = String::new();
        self.output.read_line(&mut s).expect("read from bench-node");
        s.trim_end().to_string()
    }
    /// Sends a command without waiting for the answer.
    pub fn send(&mut self, cmd: &str) {
        writeln!(self.input, "{cmd}").expect("write to bench-node");
        self.input.flush().unwrap();
    }
    /// Reads one answer.
    pub fn recv(&mut self) -> String {
        self.read()
    }
    /// Sends a command and returns its answer line.
    pub fn cmd(&mut self, cmd: &str) -> String {
        self.send(cmd);
        self.read()
    }
    /// `(is_leader, leader, term, commit, applied, sm_applied)`.
    pub fn status(&mut self) -> Option<(bool, u64, u64, u64, u64, u64)> {
        let r = self.cmd("STATUS");
        let v: Vec<u64> = r
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        if !r.starts_with("STATUS") || v.len() < 6 {
            return None;
        }
        Some((v[0] == 1, v[1], v[2], v[3], v[4], v[5]))
    }
    /// SIGKILLs the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// Starts the same node again (same arguments, same data directory).
    pub fn restart(&mut self) {
        self.kill();
        *self = Proc::spawn(self.id, self.args.clone());
    }
    /// Asks the process to exit and waits.
    pub fn quit(mut self) {
        let _ = writeln!(self.input, "QUIT");
        let _ = self.input.flush();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }
}

/// Free loopback ports (bound, read and released; a small race is accepted).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Starts a 3-process cluster; `extra` is appended to every node's arguments and
/// `data_root` (if any) gets one directory per node.
pub fn spawn_cluster(data_root: Option<&std::path::Path>, extra: &[String]) -> Vec<Proc> {
    let ports = free_ports(3);
    let peers = (1..=3)
        .map(|i| format!("{i}=127.0.0.1:{}", ports[i - 1]))
        .collect::<Vec<_>>()
        .join(",");
    (1..=3u64)
        .map(|id| {
            let mut args = vec![
                "--id".into(),
                id.to_string(),
                "--peers".into(),
                peers.clone(),
            ];
            if let Some(root) = data_root {
                let d = root.join(format!("n{id}"));
                let _ = std::fs::remove_dir_all(&d);
                std::fs::create_dir_all(&d).expect("create data dir");
                args.push("--data-dir".into());
                args.push(d.display().to_string());
            }
            args.extend(extra.iter().cloned());
            Proc::spawn(id, args)
        })
        .collect()
}

/// Index of the process that is leader, waiting up to `timeout`.
pub fn find_leader(procs: &mut [Proc], timeout: Duration) -> Option<usize> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        for (i, p) in procs.iter_mut().enumerate() {
            if let Some((true, ..)) = p.status() {
                return Some(i);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// A scratch directory for durable benchmarks, on the same disk as the work tree
/// (`RAFT_BENCH_DIR` overrides; /tmp may be tmpfs elsewhere, which would hide fsync cost).
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let root: std::path::PathBuf = std::env::var("RAFT_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| {
            sibling_bin("")
                .parent()
                .map(|p| p.join("bench-data"))
                .unwrap_or_else(|| "bench-data".into())
        });
    let d: std::path::PathBuf = root.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Samples of the hardware floor of a durable replicated write, in nanoseconds:
/// `fdatasync` of a `bytes`-byte append to a file in `dir` (`syncs` times) and the round trip
/// of 64 bytes over a loopback TCP connection with TCP_NODELAY to an echoing thread (`pings`
/// times). Returns (fdatasync samples, round-trip samples), unsorted.
pub fn floor_samples(
    dir: &std::path::Path,
    syncs: u64,
    pings: u64,
    bytes: usize,
) -> (Vec<u64>, Vec<u64>) {
    use std::net::{TcpListener, TcpStream};
    let path = dir.join("floor-probe.log");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open probe file");
    let record = vec![0x5au8; bytes];
    let mut sync_ns = Vec::with_capacity(syncs as usize);
    for _ in 0..syncs {
        let t = Instant::now();
        file.write_all(&record).expect("append");
        file.sync_data().expect("fdatasync");
        sync_ns.push(t.elapsed().as_nanos() as u64);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_nodelay(true).unwrap();
        let mut b = [0u8; 64];
        while s.read_exact(&mut b).is_ok() {
            if s.write_all(&b).is_err() {
                break;
            }
        }
    });
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_nodelay(true).unwrap();
    let mut b = [0u8; 64];
    let mut rtt_ns = Vec::with_capacity(pings as usize);
    for i in 0..pings {
        b[..8].copy_from_slice(&i.to_le_bytes());
        let t = Instant::now();
        conn.write_all(&b).expect("ping");
        conn.read_exact(&mut b).expect("pong");
        rtt_ns.push(t.elapsed().as_nanos() as u64);
    }
    drop(conn);
    let _ = echo.join();
    (sync_ns, rtt_ns)
}

/// Context switches (voluntary + involuntary) and CPU time (user + system, seconds) of this
/// whole process so far (getrusage), to report switches and CPU per operation.
pub fn process_usage() -> (u64, f64) {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        (ru.ru_nvcsw + ru.ru_nivcsw) as u64,
        secs(ru.ru_utime) + secs(ru.ru_stime),
    )
}
