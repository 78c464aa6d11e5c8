//! W1 on openraft 0.9 for comparison with raft-manager's `w1`: 3 nodes in one process,
//! in-memory log and state machine, in-process network (requests handed to the target's
//! `Raft` handle directly, no serialization), 64-byte commands, `window` client tasks each
//! looping `client_write`, measured on the leader.
//!
//! `openraft-peer [--secs 4] [--warmup 1] [--windows 1,16,64,256] [--threads 2]`

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    BasicNode, Config, Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, SnapshotPolicy, StorageError, StoredMembership, Vote,
};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

openraft::declare_raft_types!(
    pub TC:
        D = Vec<u8>,
        R = (),
);

type Nid = u64;
type Raft = openraft::Raft<TC>;

// ---------------------------------------------------------------- log store

#[derive(Default)]
struct LogInner {
    log: BTreeMap<u64, Entry<TC>>,
    vote: Option<Vote<Nid>>,
    committed: Option<LogId<Nid>>,
    last_purged: Option<LogId<Nid>>,
}

#[derive(Clone, Default)]
struct LogStore(Arc<Mutex<LogInner>>);

impl RaftLogReader<TC> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TC>>, StorageError<Nid>> {
        let g = self.0.lock().unwrap();
        Ok(g.log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TC> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TC>, StorageError<Nid>> {
        let g = self.0.lock().unwrap();
        let last = g
            .log
            .iter()
            .next_back()
            .map(|(_, e)| e.log_id)
            .or(g.last_purged);
        Ok(LogState {
            last_purged_log_id: g.last_purged,
            last_log_id: last,
        })
    }
    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }
    async fn save_vote(&mut self, vote: &Vote<Nid>) -> Result<(), StorageError<Nid>> {
        self.0.lock().unwrap().vote = Some(*vote);
        Ok(())
    }
    async fn read_vote(&mut self) -> Result<Option<Vote<Nid>>, StorageError<Nid>> {
        Ok(self.0.lock().unwrap().vote)
    }
    async fn save_committed(&mut self, c: Option<LogId<Nid>>) -> Result<(), StorageError<Nid>> {
        self.0.lock().unwrap().committed = c;
        Ok(())
    }
    async fn read_committed(&mut self) -> Result<Option<LogId<Nid>>, StorageError<Nid>> {
        Ok(self.0.lock().unwrap().committed)
    }
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TC>,
    ) -> Result<(), StorageError<Nid>>
    where
        I: IntoIterator<Item = Entry<TC>> + Send,
        I::IntoIter: Send,
    {
        {
            let mut g = self.0.lock().unwrap();
            for e in entries {
                g.log.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }
    async fn truncate(&mut self, log_id: LogId<Nid>) -> Result<(), StorageError<Nid>> {
        let mut g = self.0.lock().unwrap();
        let _ = g.log.split_off(&log_id.index);
        Ok(())
    }
    async fn purge(&mut self, log_id: LogId<Nid>) -> Result<(), StorageError<Nid>> {
        let mut g = self.0.lock().unwrap();
        let keep = g.log.split_off(&(log_id.index + 1));
        g.log = keep;
        g.last_purged = Some(log_id);
        Ok(())
    }
}

// ---------------------------------------------------------------- state machine

#[derive(Default)]
struct SmInner {
    last_applied: Option<LogId<Nid>>,
    membership: StoredMembership<Nid, BasicNode>,
    count: u64,
    sum: u64,
    snapshot: Option<(SnapshotMeta<Nid, BasicNode>, Vec<u8>)>,
    snap_seq: u64,
}

#[derive(Clone)]
struct Sm {
    inner: Arc<Mutex<SmInner>>,
    applied: Arc<AtomicU64>,
}

impl RaftSnapshotBuilder<TC> for Sm {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TC>, StorageError<Nid>> {
        let mut g = self.inner.lock().unwrap();
        let mut data = g.count.to_le_bytes().to_vec();
        data.extend_from_slice(&g.sum.to_le_bytes());
        g.snap_seq += 1;
        let meta = SnapshotMeta {
            last_log_id: g.last_applied,
            last_membership: g.membership.clone(),
            snapshot_id: format!("s-{}", g.snap_seq),
        };
        g.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TC> for Sm {
    type SnapshotBuilder = Sm;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<Nid>>, StoredMembership<Nid, BasicNode>), StorageError<Nid>> {
        let g = self.inner.lock().unwrap();
        Ok((g.last_applied, g.membership.clone()))
    }
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<Nid>>
    where
        I: IntoIterator<Item = Entry<TC>> + Send,
        I::IntoIter: Send,
    {
        let mut g = self.inner.lock().unwrap();
        let mut out = Vec::new();
        for e in entries {
            g.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(d) => {
                    g.count += 1;
                    g.sum = g.sum.wrapping_add(d.first().copied().unwrap_or(0) as u64);
                    self.applied.fetch_add(1, Ordering::Relaxed);
                }
                EntryPayload::Membership(m) => {
                    g.membership = StoredMembership::new(Some(e.log_id), m);
                }
            }
            out.push(());
        }
        Ok(out)
    }
    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }
    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<Nid>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<Nid, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<Nid>> {
        let data = snapshot.into_inner();
        let mut g = self.inner.lock().unwrap();
        if data.len() >= 16 {
            g.count = u64::from_le_bytes(data[..8].try_into().unwrap());
            g.sum = u64::from_le_bytes(data[8..16].try_into().unwrap());
        }
        g.last_applied = meta.last_log_id;
        g.membership = meta.last_membership.clone();
        g.snapshot = Some((meta.clone(), data));
        Ok(())
    }
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TC>>, StorageError<Nid>> {
        let g = self.inner.lock().unwrap();
        Ok(g.snapshot.as_ref().map(|(m, d)| Snapshot {
            meta: m.clone(),
            snapshot: Box::new(Cursor::new(d.clone())),
        }))
    }
}

// ---------------------------------------------------------------- network

#[derive(Default)]
struct Router(RwLock<HashMap<Nid, Raft>>);

#[derive(Clone)]
struct NetFactory(Arc<Router>);

struct Conn {
    router: Arc<Router>,
    target: Nid,
}

impl Conn {
    fn target(&self) -> Result<Raft, Unreachable> {
        self.router
            .0
            .read()
            .unwrap()
            .get(&self.target)
            .cloned()
            .ok_or_else(|| Unreachable::new(&std::io::Error::other("node is down")))
    }
}

impl RaftNetworkFactory<TC> for NetFactory {
    type Network = Conn;
    async fn new_client(&mut self, target: Nid, _node: &BasicNode) -> Conn {
        Conn {
            router: self.0.clone(),
            target,
        }
    }
}

impl RaftNetwork<TC> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TC>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<Nid>, RPCError<Nid, BasicNode, RaftError<Nid>>> {
        let r = self.target().map_err(RPCError::Unreachable)?;
        r.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TC>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<Nid>,
        RPCError<Nid, BasicNode, RaftError<Nid, InstallSnapshotError>>,
    > {
        let r = self.target().map_err(RPCError::Unreachable)?;
        r.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
    async fn vote(
        &mut self,
        rpc: VoteRequest<Nid>,
        _option: RPCOption,
    ) -> Result<VoteResponse<Nid>, RPCError<Nid, BasicNode, RaftError<Nid>>> {
        let r = self.target().map_err(RPCError::Unreachable)?;
        r.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

// ---------------------------------------------------------------- driver

fn arg(name: &str) -> Option<String> {
    let v: Vec<String> = std::env::args().collect();
    v.iter()
        .position(|a| a == &format!("--{name}"))
        .and_then(|i| v.get(i + 1).cloned())
}

fn pct_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    let threads: usize = arg("threads").map(|v| v.parse().unwrap()).unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let secs: f64 = arg("secs").map(|v| v.parse().unwrap()).unwrap_or(4.0);
    let warmup: f64 = arg("warmup").map(|v| v.parse().unwrap()).unwrap_or(1.0);
    let size: usize = arg("size").map(|v| v.parse().unwrap()).unwrap_or(64);
    let windows: Vec<usize> = arg("windows")
        .map(|v| v.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or(vec![1, 16, 64, 256]);
    let cfg = Arc::new(
        Config {
            cluster_name: "bench".into(),
            heartbeat_interval: 100,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(100_000),
            max_in_snapshot_log_to_keep: 10_000,
            ..Default::default()
        }
        .validate()
        .expect("config"),
    );
    let router = Arc::new(Router::default());
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        let sm = Sm {
            inner: Arc::new(Mutex::new(SmInner::default())),
            applied: Arc::new(AtomicU64::new(0)),
        };
        let raft = Raft::new(
            id,
            cfg.clone(),
            NetFactory(router.clone()),
            LogStore::default(),
            sm,
        )
        .await
        .expect("raft start");
        router.0.write().unwrap().insert(id, raft.clone());
        nodes.insert(id, raft);
    }
    nodes[&1]
        .initialize(std::collections::BTreeSet::from([1u64, 2, 3]))
        .await
        .expect("initialize");
    let leader = nodes[&1]
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.current_leader.is_some(), "leader")
        .await
        .expect("leader")
        .current_leader
        .unwrap();
    let raft = nodes[&leader].clone();
    let mut rows = Vec::new();
    for &w in &windows {
        let start = Instant::now();
        let m_start = start + Duration::from_secs_f64(warmup);
        let end = m_start + Duration::from_secs_f64(secs);
        let mut tasks = Vec::new();
        for t in 0..w {
            let raft = raft.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut seq = t as u64;
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let mut cmd = vec![0u8; size];
                    seq += 1 << 20;
                    cmd[..8].copy_from_slice(&seq.to_le_bytes());
                    let t0 = Instant::now();
                    let r = raft.client_write(cmd).await;
                    let ns = t0.elapsed().as_nanos() as u64;
                    if t0 >= m_start && Instant::now() <= end {
                        match r {
                            Ok(_) => lat.push(ns),
                            Err(_) => errors += 1,
                        }
                    }
                }
                (lat, errors)
            }));
        }
        let mut lat = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.unwrap();
            lat.extend(l);
            errors += e;
        }
        lat.sort_unstable();
        let ops = lat.len() as f64 / secs;
        let (p50, p99, p999) = (pct_us(&lat, 0.5), pct_us(&lat, 0.99), pct_us(&lat, 0.999));
        println!("BENCH name=w1.openraft.c{w}.ops value={ops:.3} unit=ops/s");
        println!("BENCH name=w1.openraft.c{w}.p50 value={p50:.3} unit=us");
        println!("BENCH name=w1.openraft.c{w}.p99 value={p99:.3} unit=us");
        println!("BENCH name=w1.openraft.c{w}.p999 value={p999:.3} unit=us");
        rows.push((w, ops, p50, p99, p999, errors));
    }
    println!("\nW1 peer: openraft 0.9.25, 3 nodes in-process, in-memory log/state machine, {size}-byte commands, {secs} s per row");
    println!("| in flight |  ops/s | p50 us | p99 us | p999 us | errors |");
    println!("|-----------|--------|--------|--------|---------|--------|");
    for (w, ops, p50, p99, p999, e) in rows {
        println!("| {w:>9} | {ops:>6.0} | {p50:>6.1} | {p99:>6.1} | {p999:>7.1} | {e:>6} |");
    }
    for (_, n) in nodes {
        let _ = n.shutdown().await;
    }
}
