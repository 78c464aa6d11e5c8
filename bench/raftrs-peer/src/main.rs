//! W1 and W2 on tikv/raft-rs 0.7 for comparison with raft-manager's `w1` and `w2`: the small
//! harness any engineer would write around `RawNode`. One thread per node runs the Ready loop
//! (drain the inbox, tick, `ready` → send, persist, apply, `advance`), nodes talk through
//! crossbeam channels (W1, typed messages, no serialization) or TCP (W2, protobuf frames);
//! the log lives in raft-rs's `MemStorage`, compacted every 100 000 applied entries to the
//! trailing 10 000 (as the openraft peer snapshots). W2 adds an append-only WAL file per node:
//! each Ready's entries and hard state are appended and `fdatasync`ed before `advance` and
//! before the persisted messages (the followers' acks) leave.
//!
//! ```text
//! raftrs-peer [w1] [--secs 4] [--warmup 1] [--windows 1,16,64,256]
//! raftrs-peer w2   [--secs 4] [--warmup 1] [--windows 1,16,64,256] [--fsync always|never]
//! raftrs-peer node --id N --peers 1=ADDR,2=ADDR,3=ADDR --wal FILE [--fsync always|never]
//! ```
//! Prints `BENCH name=w1.raftrs.cN.{ops,p50,p99,p999}` (and `w2.raftrs.disk-fsync-always.tcp.cN.*`).

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use protobuf::Message as _;
use raft::prelude::*;
use raft::storage::MemStorage;
use raft::StateRole;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A proposal's completion: `true` once the leader applied it.
type Done = Box<dyn FnOnce(bool) + Send>;

/// What a node thread receives.
enum Msg {
    Propose(Vec<u8>, Done),
    Raft(Box<Message>),
}

/// Where a node's outgoing messages go.
trait Outbox: Send {
    fn send(&mut self, msgs: Vec<Message>);
    /// Called once per Ready after all its messages were handed over.
    fn flush(&mut self) {}
}

/// In-process: the target's inbox.
struct ChanOut(HashMap<u64, Sender<Msg>>);

impl Outbox for ChanOut {
    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            if let Some(tx) = self.0.get(&m.to) {
                let _ = tx.send(Msg::Raft(Box::new(m)));
            }
        }
    }
}

/// Over TCP: length-prefixed protobuf frames, one buffered connection per peer, TCP_NODELAY,
/// flushed once per Ready.
struct TcpOut {
    addrs: HashMap<u64, SocketAddr>,
    conns: HashMap<u64, BufWriter<TcpStream>>,
}

impl TcpOut {
    fn conn(&mut self, to: u64) -> Option<&mut BufWriter<TcpStream>> {
        if !self.conns.contains_key(&to) {
            let s = TcpStream::connect_timeout(self.addrs.get(&to)?, Duration::from_millis(200))
                .ok()?;
            s.set_nodelay(true).ok()?;
            self.conns
                .insert(to, BufWriter::with_capacity(256 << 10, s));
        }
        self.conns.get_mut(&to)
    }
}

impl Outbox for TcpOut {
    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let to = m.to;
            let bytes = m.write_to_bytes().expect("encode");
            let ok = match self.conn(to) {
                Some(w) => w
                    .write_all(&(bytes.len() as u32).to_le_bytes())
                    .and_then(|_| w.write_all(&bytes))
                    .is_ok(),
                None => false,
            };
            if !ok {
                self.conns.remove(&to); // raft retries; reconnect on the next send
            }
        }
    }
    fn flush(&mut self) {
        let mut bad = Vec::new();
        for (&to, w) in self.conns.iter_mut() {
            if w.flush().is_err() {
                bad.push(to);
            }
        }
        for to in bad {
            self.conns.remove(&to);
        }
    }
}

/// The append-only WAL of W2: entries and hard state, length-prefixed protobuf.
struct Wal {
    file: std::fs::File,
    buf: Vec<u8>,
    fsync: bool,
}

impl Wal {
    fn append(&mut self, ents: &[Entry], hs: Option<&HardState>) {
        self.buf.clear();
        for e in ents {
            let b = e.write_to_bytes().expect("encode entry");
            self.buf.push(1);
            self.buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(&b);
        }
        if let Some(hs) = hs {
            let b = hs.write_to_bytes().expect("encode hard state");
            self.buf.push(2);
            self.buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(&b);
        }
        if self.buf.is_empty() {
            return;
        }
        self.file.write_all(&self.buf).expect("wal write");
        if self.fsync {
            self.file.sync_data().expect("wal fdatasync");
        }
    }
}

/// Shared view of a node for the load driver.
struct Shared {
    leader: AtomicBool,
    applied: AtomicU64,
}

/// Runs one node's Ready loop until its inbox closes.
fn run_node(
    id: u64,
    voters: Vec<u64>,
    rx: Receiver<Msg>,
    mut out: Box<dyn Outbox>,
    mut wal: Option<Wal>,
    shared: Arc<Shared>,
    campaign: bool,
) {
    let cfg = Config {
        id,
        election_tick: 100, // 1 s at a 10 ms tick, as raft-manager's W1 and W2
        heartbeat_tick: 10,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        pre_vote: true,
        check_quorum: true,
        ..Default::default()
    };
    let store = MemStorage::new_with_conf_state(ConfState::from((voters, vec![])));
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut raw = RawNode::new(&cfg, store, &logger).expect("raft node");
    if campaign {
        raw.campaign().expect("campaign");
    }
    let tick = Duration::from_millis(10);
    let mut next_tick = Instant::now() + tick;
    let mut pending: VecDeque<(u64, u64, Done)> = VecDeque::new();
    let mut last_compact = 0u64;
    loop {
        let now = Instant::now();
        let first = match rx.recv_timeout(next_tick.saturating_duration_since(now)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut handle = |m: Msg, raw: &mut RawNode<MemStorage>| match m {
            Msg::Raft(m) => {
                let _ = raw.step(*m);
            }
            Msg::Propose(data, done) => {
                if raw.raft.state != StateRole::Leader {
                    return done(false);
                }
                match raw.propose(vec![], data) {
                    Ok(()) => {
                        pending.push_back((raw.raft.raft_log.last_index(), raw.raft.term, done))
                    }
                    Err(_) => done(false),
                }
            }
        };
        if let Some(m) = first {
            handle(m, &mut raw);
            // Batch: take what is already queued (bounded) before one Ready.
            for m in rx.try_iter().take(4096) {
                handle(m, &mut raw);
            }
        }
        if Instant::now() >= next_tick {
            raw.tick();
            next_tick += tick;
        }
        if !raw.has_ready() {
            continue;
        }
        let store = raw.raft.raft_log.store.clone();
        let mut ready = raw.ready();
        if !ready.messages().is_empty() {
            out.send(ready.take_messages());
        }
        if *ready.snapshot() != Snapshot::default() {
            store
                .wl()
                .apply_snapshot(ready.snapshot().clone())
                .expect("apply snapshot");
        }
        let apply = |ents: Vec<Entry>, pending: &mut VecDeque<(u64, u64, Done)>| {
            if let Some(last) = ents.last() {
                let (idx, term) = (last.index, last.term);
                while let Some((pi, _, _)) = pending.front() {
                    if *pi > idx {
                        break;
                    }
                    let (pi, pt, done) = pending.pop_front().unwrap();
                    let t = ents
                        .iter()
                        .find(|e| e.index == pi)
                        .map(|e| e.term)
                        .unwrap_or(term);
                    done(t == pt);
                }
                shared.applied.store(idx, Ordering::Release);
            }
        };
        apply(ready.take_committed_entries(), &mut pending);
        if let Some(w) = wal.as_mut() {
            w.append(ready.entries(), ready.hs());
        }
        store.wl().append(ready.entries()).expect("append");
        if let Some(hs) = ready.hs() {
            store.wl().set_hardstate(hs.clone());
        }
        if !ready.persisted_messages().is_empty() {
            out.send(ready.take_persisted_messages());
        }
        let mut light = raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            store.wl().mut_hard_state().set_commit(commit);
        }
        out.send(light.take_messages());
        apply(light.take_committed_entries(), &mut pending);
        raw.advance_apply();
        out.flush();
        shared
            .leader
            .store(raw.raft.state == StateRole::Leader, Ordering::Release);
        // Keep the in-memory log bounded: every 100 000 applied entries, drop all but the
        // trailing 10 000.
        let applied = raw.raft.raft_log.applied;
        if applied >= last_compact + 100_000 {
            store.wl().compact(applied - 10_000).expect("compact");
            last_compact = applied;
        }
    }
}

/// Closed loop: `window` proposals of 64 bytes in flight on the leader's inbox.
struct LoadResult {
    ops: u64,
    errors: u64,
    secs: f64,
    lat: Vec<u64>,
}

fn closed_loop(leader: &Sender<Msg>, window: usize, warmup: Duration, dur: Duration) -> LoadResult {
    #[derive(Default)]
    struct St {
        lat: Vec<u64>,
        ops: u64,
        errors: u64,
    }
    let st = Arc::new(Mutex::new(St::default()));
    let measuring = Arc::new(AtomicBool::new(false));
    let (tok_tx, tok_rx) = crossbeam_channel::bounded::<()>(window);
    for _ in 0..window {
        tok_tx.send(()).unwrap();
    }
    let start = Instant::now();
    let (mut m_start, mut started) = (start, false);
    let end = start + warmup + dur;
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        if !started && now >= start + warmup {
            started = true;
            m_start = now;
            measuring.store(true, Ordering::Release);
        }
        if now >= end {
            break;
        }
        if tok_rx.recv_timeout(Duration::from_millis(100)).is_err() {
            continue;
        }
        let mut cmd = vec![0u8; 64];
        seq += 1;
        cmd[..8].copy_from_slice(&seq.to_le_bytes());
        let t0 = Instant::now();
        let (st2, tok2, meas) = (st.clone(), tok_tx.clone(), measuring.clone());
        let done: Done = Box::new(move |ok| {
            let ns = t0.elapsed().as_nanos() as u64;
            if meas.load(Ordering::Acquire) {
                let mut s = st2.lock().unwrap();
                if ok {
                    s.ops += 1;
                    s.lat.push(ns);
                } else {
                    s.errors += 1;
                }
            }
            let _ = tok2.send(());
        });
        if leader.send(Msg::Propose(cmd, done)).is_err() {
            break;
        }
    }
    let secs = m_start.elapsed().as_secs_f64();
    measuring.store(false, Ordering::Release);
    let drain_end = Instant::now() + Duration::from_secs(10);
    let mut back = 0;
    while back < window && Instant::now() < drain_end {
        if tok_rx.recv_timeout(Duration::from_millis(100)).is_ok() {
            back += 1;
        }
    }
    let mut s = st.lock().unwrap();
    let mut lat = std::mem::take(&mut s.lat);
    lat.sort_unstable();
    LoadResult {
        ops: s.ops,
        errors: s.errors,
        secs,
        lat,
    }
}

/// Context switches and CPU seconds of this process so far (getrusage).
fn process_usage() -> (u64, f64) {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        (ru.ru_nvcsw + ru.ru_nivcsw) as u64,
        secs(ru.ru_utime) + secs(ru.ru_stime),
    )
}

fn pct_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// `--key value` flags.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(v: &[String]) -> Args {
        let mut m = HashMap::new();
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
    fn float(&self, k: &str, d: f64) -> f64 {
        self.0
            .get(k)
            .map(|v| v.parse().expect("number"))
            .unwrap_or(d)
    }
    fn str(&self, k: &str) -> Option<String> {
        self.0.get(k).cloned()
    }
    fn windows(&self) -> Vec<usize> {
        self.0
            .get("windows")
            .map(|v| v.split(',').map(|x| x.parse().expect("window")).collect())
            .unwrap_or_else(|| vec![1, 16, 64, 256])
    }
}

fn report(prefix: &str, w: usize, ops: f64, p50: f64, p99: f64, p999: f64) {
    println!("BENCH name={prefix}.c{w}.ops value={ops:.3} unit=ops/s");
    println!("BENCH name={prefix}.c{w}.p50 value={p50:.3} unit=us");
    println!("BENCH name={prefix}.c{w}.p99 value={p99:.3} unit=us");
    println!("BENCH name={prefix}.c{w}.p999 value={p999:.3} unit=us");
}

fn print_table(title: &str, rows: &[(usize, f64, f64, f64, f64, u64)]) {
    println!("\n{title}");
    println!("| in flight | ops/s | p50 us | p99 us | p999 us | errors |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (w, ops, p50, p99, p999, e) in rows {
        println!("| {w} | {ops:.0} | {p50:.1} | {p99:.1} | {p999:.1} | {e} |");
    }
}

fn wait_leader(shared: &[Arc<Shared>], timeout: Duration) -> Option<usize> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(i) = shared.iter().position(|s| s.leader.load(Ordering::Acquire)) {
            return Some(i);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// W1: 3 node threads in this process.
fn w1(a: &Args) {
    let (secs, warmup) = (a.float("secs", 4.0), a.float("warmup", 1.0));
    let ids = [1u64, 2, 3];
    let chans: Vec<(Sender<Msg>, Receiver<Msg>)> =
        ids.iter().map(|_| crossbeam_channel::unbounded()).collect();
    let mailboxes: HashMap<u64, Sender<Msg>> = ids
        .iter()
        .zip(&chans)
        .map(|(&i, (tx, _))| (i, tx.clone()))
        .collect();
    let mut shared = Vec::new();
    let mut threads = Vec::new();
    for (k, &id) in ids.iter().enumerate() {
        let sh = Arc::new(Shared {
            leader: AtomicBool::new(false),
            applied: AtomicU64::new(0),
        });
        shared.push(sh.clone());
        let rx = chans[k].1.clone();
        let out: Box<dyn Outbox> = Box::new(ChanOut(mailboxes.clone()));
        threads.push(std::thread::spawn(move || {
            run_node(id, ids.to_vec(), rx, out, None, sh, id == 1)
        }));
    }
    let l = wait_leader(&shared, Duration::from_secs(10)).expect("no leader");
    let leader = chans[l].0.clone();
    drop(chans);
    let mut rows = Vec::new();
    for w in a.windows() {
        let (cs0, cpu0) = process_usage();
        let r = closed_loop(
            &leader,
            w,
            Duration::from_secs_f64(warmup),
            Duration::from_secs_f64(secs),
        );
        let (cs1, cpu1) = process_usage();
        // Over warm-up and measurement; ops of the measured window scaled to the whole run.
        let total_ops = (r.ops as f64 * (secs + warmup) / secs).max(1.0);
        println!(
            "BENCH name=w1.raftrs.c{w}.switches_per_op value={:.3} unit=switches",
            (cs1 - cs0) as f64 / total_ops
        );
        println!(
            "BENCH name=w1.raftrs.c{w}.cpu_per_op value={:.3} unit=us",
            (cpu1 - cpu0) * 1e6 / total_ops
        );
        let ops = r.ops as f64 / r.secs;
        let (p50, p99, p999) = (
            pct_us(&r.lat, 0.5),
            pct_us(&r.lat, 0.99),
            pct_us(&r.lat, 0.999),
        );
        report("w1.raftrs", w, ops, p50, p99, p999);
        rows.push((w, ops, p50, p99, p999, r.errors));
    }
    print_table(
        &format!("W1: raft-rs 0.7, 3 node threads in-process, MemStorage, crossbeam channels, 64-byte commands, {secs} s per row"),
        &rows,
    );
    drop(leader);
    drop(mailboxes);
    // Node threads hold each other's senders; exit the process instead of joining.
}

/// W2 child: one node over TCP with a WAL, driven over stdin/stdout (`STATUS`, `LOAD w s wu`, `QUIT`).
fn node(a: &Args) {
    let id: u64 = a.str("id").expect("--id").parse().expect("id");
    let peers: HashMap<u64, SocketAddr> = a
        .str("peers")
        .expect("--peers")
        .split(',')
        .map(|p| {
            let (i, s) = p.split_once('=').expect("ID=ADDR");
            (i.parse().expect("id"), s.parse().expect("addr"))
        })
        .collect();
    let fsync = a.str("fsync").as_deref() != Some("never");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(a.str("wal").expect("--wal"))
        .expect("open wal");
    let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
    let listener = TcpListener::bind(peers[&id]).expect("bind");
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { continue };
                let _ = s.set_nodelay(true);
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::with_capacity(256 << 10, s);
                    let mut len = [0u8; 4];
                    let mut buf = Vec::new();
                    while r.read_exact(&mut len).is_ok() {
                        buf.resize(u32::from_le_bytes(len) as usize, 0);
                        if r.read_exact(&mut buf).is_err() {
                            return;
                        }
                        let Ok(m) = Message::parse_from_bytes(&buf) else {
                            return;
                        };
                        if tx.send(Msg::Raft(Box::new(m))).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    let out = Box::new(TcpOut {
        addrs: peers.clone(),
        conns: HashMap::new(),
    });
    let wal = Wal {
        file,
        buf: Vec::new(),
        fsync,
    };
    let sh = Arc::new(Shared {
        leader: AtomicBool::new(false),
        applied: AtomicU64::new(0),
    });
    let mut voters: Vec<u64> = peers.keys().copied().collect();
    voters.sort_unstable();
    {
        let sh = sh.clone();
        std::thread::spawn(move || run_node(id, voters, rx, out, Some(wal), sh, false));
    }
    println!("READY");
    let mut stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let w: Vec<&str> = line.split_whitespace().collect();
        let reply = match w.as_slice() {
            ["STATUS"] => format!("STATUS {}", sh.leader.load(Ordering::Acquire) as u8),
            ["LOAD", window, secs, warmup] => {
                let r = closed_loop(
                    &tx,
                    window.parse().unwrap(),
                    Duration::from_secs_f64(warmup.parse().unwrap()),
                    Duration::from_secs_f64(secs.parse().unwrap()),
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
            ["QUIT"] => break,
            _ => format!("ERR unknown command {line}"),
        };
        let _ = writeln!(stdout, "{reply}");
        let _ = stdout.flush();
    }
    std::process::exit(0);
}

/// A `raftrs-peer node` child process.
struct Child {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: BufReader<std::process::ChildStdout>,
}

impl Child {
    fn cmd(&mut self, c: &str) -> String {
        writeln!(self.input, "{c}").expect("write to node");
        self.input.flush().unwrap();
        let mut s = String::new();
        self.output.read_line(&mut s).expect("read from node");
        s.trim_end().to_string()
    }
}

/// W2: 3 child processes over TCP on 127.0.0.1, WAL with fdatasync, load inside the leader.
fn w2(a: &Args) {
    use std::process::{Command, Stdio};
    let (secs, warmup) = (a.float("secs", 4.0), a.float("warmup", 1.0));
    let fsync = a.str("fsync").unwrap_or_else(|| "always".into());
    let root: std::path::PathBuf = std::env::var("RAFT_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| {
            std::env::current_exe()
                .unwrap()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("bench-data")
        });
    let dir = root.join(format!("raftrs-w2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("data dir");
    let ports: Vec<u16> = {
        let ls: Vec<_> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
    };
    let peers = (1..=3)
        .map(|i| format!("{i}=127.0.0.1:{}", ports[i - 1]))
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().expect("exe");
    let mut kids: Vec<Child> = (1..=3u64)
        .map(|id| {
            let mut c = Command::new(&exe)
                .args([
                    "node",
                    "--id",
                    &id.to_string(),
                    "--peers",
                    &peers,
                    "--fsync",
                    &fsync,
                ])
                .arg("--wal")
                .arg(dir.join(format!("n{id}.wal")))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn node");
            let input = c.stdin.take().unwrap();
            let output = BufReader::new(c.stdout.take().unwrap());
            let mut k = Child {
                child: c,
                input,
                output,
            };
            let mut s = String::new();
            k.output.read_line(&mut s).expect("READY");
            assert_eq!(s.trim(), "READY");
            k
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(20);
    let l = loop {
        if let Some(i) = kids.iter_mut().position(|k| k.cmd("STATUS") == "STATUS 1") {
            break i;
        }
        assert!(Instant::now() < end, "no leader");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rows = Vec::new();
    for w in a.windows() {
        let r = kids[l].cmd(&format!("LOAD {w} {secs} {warmup}"));
        let v: Vec<f64> = r
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(f64::NAN))
            .collect();
        assert!(
            r.starts_with("LOAD") && v.len() == 6,
            "unexpected answer: {r}"
        );
        let ops = v[0] / v[2];
        report(
            &format!("w2.raftrs.disk-fsync-{fsync}.tcp"),
            w,
            ops,
            v[3],
            v[4],
            v[5],
        );
        rows.push((w, ops, v[3], v[4], v[5], v[1] as u64));
    }
    print_table(
        &format!("W2: raft-rs 0.7, 3 processes over TCP (127.0.0.1), MemStorage + append-only WAL fsync={fsync}, load inside the leader, {secs} s per row"),
        &rows,
    );
    for mut k in kids {
        let _ = writeln!(k.input, "QUIT");
        let _ = k.input.flush();
        let _ = k.child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let v: Vec<String> = std::env::args().skip(1).collect();
    let (mode, rest) = match v.first().map(String::as_str) {
        Some(m @ ("w1" | "w2" | "node")) => (m.to_string(), &v[1..]),
        _ => ("w1".to_string(), &v[..]),
    };
    let a = Args::parse(rest);
    match mode.as_str() {
        "w1" => w1(&a),
        "w2" => w2(&a),
        _ => node(&a),
    }
    std::process::exit(0);
}
