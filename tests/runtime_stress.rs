//! Runtime under stress (issue "Runtime you can prove"): a disk that stalls under a flood of
//! proposals, and a crawling state machine under thousands of reads. A binary of its own so
//! that its load does not disturb the timing of tests/runtime.rs.

mod support;

use parking_lot::RwLock;
use raft::runtime::{Error, Node, NodeConfig};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// A memory store that goes through the storage thread and whose `sync` stalls once.
struct StallStore {
    inner: raft::core::MemStorage,
    stall: std::sync::atomic::AtomicBool,
    /// Calls of `sync`.
    syncs: std::sync::atomic::AtomicU64,
}

impl raft::core::Storage for StallStore {
    fn initial_state(
        &self,
    ) -> raft::core::StorageResult<(raft::core::HardState, raft::core::ConfState)> {
        self.inner.initial_state()
    }
    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max: u64,
    ) -> raft::core::StorageResult<Vec<raft::core::Entry>> {
        self.inner.entries(lo, hi, max)
    }
    fn term(&self, index: u64) -> raft::core::StorageResult<u64> {
        self.inner.term(index)
    }
    fn first_index(&self) -> u64 {
        self.inner.first_index()
    }
    fn last_index(&self) -> u64 {
        self.inner.last_index()
    }
    fn snapshot_meta(&self) -> raft::core::SnapshotMeta {
        self.inner.snapshot_meta()
    }
    fn snapshot_chunk(&self, i: u64, o: u64, m: usize) -> raft::core::StorageResult<Vec<u8>> {
        self.inner.snapshot_chunk(i, o, m)
    }
}

impl raft::storage::LogStore for StallStore {
    fn append(&self, e: &[raft::core::Entry]) -> raft::core::StorageResult<()> {
        raft::storage::LogStore::append(&self.inner, e)
    }
    fn set_hard_state(&self, hs: raft::core::HardState) -> raft::core::StorageResult<()> {
        raft::storage::LogStore::set_hard_state(&self.inner, hs)
    }
    fn sync(&self) -> raft::core::StorageResult<()> {
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if self.stall.swap(false, std::sync::atomic::Ordering::AcqRel) {
            std::thread::sleep(Duration::from_secs(5));
        }
        Ok(())
    }
    fn write_snapshot_chunk(
        &self,
        meta: &raft::core::SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> raft::core::StorageResult<bool> {
        raft::storage::LogStore::write_snapshot_chunk(&self.inner, meta, offset, data)
    }
    fn finish_incoming_snapshot(
        &self,
        meta: &raft::core::SnapshotMeta,
    ) -> raft::core::StorageResult<()> {
        raft::storage::LogStore::finish_incoming_snapshot(&self.inner, meta)
    }
    fn create_snapshot(
        &self,
        meta: raft::core::SnapshotMeta,
        data: &mut dyn Read,
        trailing: u64,
    ) -> raft::core::StorageResult<raft::core::SnapshotMeta> {
        raft::storage::LogStore::create_snapshot(&self.inner, meta, data, trailing)
    }
    fn open_snapshot(
        &self,
    ) -> raft::core::StorageResult<Option<(raft::core::SnapshotMeta, Box<dyn Read + Send>)>> {
        self.inner.open_snapshot()
    }
}

/// A single-voter node over a [`StallStore`], leading and warmed up.
fn stall_node() -> (Arc<Node>, Arc<StallStore>) {
    let store = Arc::new(StallStore {
        inner: raft::core::MemStorage::new_with_conf(raft::core::ConfState::with_voters([1])),
        stall: false.into(),
        syncs: 0.into(),
    });
    let mut c = NodeConfig::new(1, [1]);
    c.election_timeout = Duration::from_millis(100);
    c.heartbeat_interval = Duration::from_millis(20);
    let sm = Counter {
        applied: Arc::new(RwLock::new(Vec::new())),
        delay: Duration::ZERO,
    };
    let n = Node::start_with_store(c, Box::new(sm), Arc::new(Nowhere), store.clone()).unwrap();
    let n = Arc::new(n);
    let end = Instant::now() + Duration::from_secs(5);
    while n
        .propose(b"warm".to_vec(), Duration::from_millis(200))
        .is_err()
        && Instant::now() < end
    {}
    (n, store)
}

/// Eight threads proposing as fast as the node takes proposals, until `stop`.
fn flood(
    n: &Arc<Node>,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..8)
        .map(|_| {
            let (n, stop) = (n.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    for _ in 0..1000 {
                        n.propose_async(vec![7; 16], |_| {});
                    }
                    std::thread::yield_now();
                }
            })
        })
        .collect()
}

#[test]
fn fsync_stall_under_eight_proposers_recovers_and_shuts_down() {
    let (n, store) = stall_node();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    store
        .stall
        .store(true, std::sync::atomic::Ordering::Release);
    let stalled_at = Instant::now();
    let proposers = flood(&n, &stop);
    // Commits resume once the stall ends (5 s), well within 10 s of its start.
    let commit_at_stall = n.status().unwrap().commit;
    let n2 = n.clone();
    let resumed = within(Duration::from_secs(15), move || loop {
        if n2.status().is_ok_and(|s| s.commit > commit_at_stall + 1) {
            return Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    });
    stop.store(true, std::sync::atomic::Ordering::Release);
    for p in proposers {
        p.join().unwrap();
    }
    let resumed = resumed.expect("no commit after the stall: the node is stuck");
    assert!(resumed - stalled_at < Duration::from_secs(10));
    // What was admitted during the flood is bounded: a new proposal gets through.
    let n2 = n.clone();
    let after = within(Duration::from_secs(60), move || loop {
        if n2
            .propose(b"after".to_vec(), Duration::from_secs(5))
            .is_ok()
        {
            return;
        }
    });
    assert!(after.is_some(), "no proposal commits after the flood");
    let down = within(Duration::from_secs(1), move || n.shutdown());
    assert!(down.is_some(), "shutdown hung");
}

#[test]
fn shutdown_during_an_fsync_stall_under_load_returns() {
    let (n, store) = stall_node();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    store
        .stall
        .store(true, std::sync::atomic::Ordering::Release);
    let proposers = flood(&n, &stop);
    // Let the flood fill every queue it can while the disk is stuck.
    std::thread::sleep(Duration::from_secs(1));
    let n2 = n.clone();
    let down = within(Duration::from_secs(10), move || n2.shutdown());
    stop.store(true, std::sync::atomic::Ordering::Release);
    for p in proposers {
        p.join().unwrap();
    }
    assert!(down.is_some(), "shutdown hung behind a stalled disk");
}

#[test]
fn slow_apply_with_2000_reads_keeps_the_leader_and_bounded_memory() {
    fn rss_kib() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
    let net = Net::new(false);
    for id in 1..=3 {
        // Timeouts long enough that a loaded machine does not cause elections by itself.
        let mut c = cfg(id, false);
        c.election_timeout = Duration::from_secs(1);
        c.heartbeat_interval = Duration::from_millis(100);
        let sm = Counter {
            applied: Arc::new(RwLock::new(Vec::new())),
            delay: Duration::from_secs(1),
        };
        let sink = Arc::new(Sink {
            net: net.clone(),
            from: id,
        });
        let n = Node::start(c, Box::new(sm), sink).unwrap();
        net.nodes.write().insert(id, Arc::new(n));
    }
    let lid = leader(&net, Duration::from_secs(10)).expect("leader");
    let l = node(&net, lid);
    let term = l.status().unwrap().term;
    let before = rss_kib();
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..2000u32 {
        if i % 100 == 0 {
            l.propose_async(i.to_le_bytes().to_vec(), |_| {});
        }
        let tx = tx.clone();
        l.read_index_async(move |r| {
            let _ = tx.send(r);
        });
    }
    // While apply crawls (one batch a second), leadership and terms stay put.
    let watch_end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_end {
        for n in net.nodes.read().values() {
            let s = n.status().expect("status");
            assert_eq!(s.term, term, "a slow state machine caused an election");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every read is answered once apply reaches its index (or, if apply is that far
    // behind, after the loop's bound): none is lost, none is refused.
    for _ in 0..2000 {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(_)) | Ok(Err(Error::Timeout)) => {}
            other => panic!("read answered {other:?}"),
        }
    }
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 256 << 10, "RSS grew by {grown} KiB");
    for n in net.nodes.read().values() {
        assert_eq!(n.status().unwrap().term, term);
        n.shutdown().unwrap();
    }
}

/// One proposal at a time: every commit is followed by a ready that only moves the commit
/// index, which needs no fsync (the commit index is relearned from the leader). Before the
/// storage thread skipped those, each commit cost two syncs.
#[test]
fn commit_only_readies_cost_no_sync() {
    let (n, store) = stall_node();
    let before = store.syncs.load(std::sync::atomic::Ordering::Acquire);
    let rounds = 200;
    for i in 0..rounds {
        n.propose(vec![i as u8; 8], Duration::from_secs(5))
            .expect("propose");
    }
    let syncs = store.syncs.load(std::sync::atomic::Ordering::Acquire) - before;
    assert!(
        syncs <= rounds + rounds / 10,
        "{syncs} syncs for {rounds} sequential commits (one per commit expected)"
    );
    assert!(
        syncs >= rounds / 2,
        "{syncs} syncs: entries must still be synced"
    );
    n.shutdown().unwrap();
}
