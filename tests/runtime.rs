//! The threaded runtime: replication over an in-process transport, failover, slow apply
//! that must not cause elections, shutdown semantics.

use parking_lot::RwLock;
use raft::core::{ConfChange, NodeId, Role};
use raft::runtime::{Committed, Error, MessageSink, Node, NodeConfig, StateMachine};
use raft::transport::SendClass;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Routes message bytes between nodes of one process; links can be cut.
#[derive(Default)]
struct Net {
    nodes: RwLock<HashMap<NodeId, Arc<Node>>>,
    down: RwLock<HashSet<NodeId>>,
    /// Start nodes with `NodeConfig::caller_runs`.
    caller_runs: bool,
}

impl Net {
    fn new(caller_runs: bool) -> Arc<Net> {
        Arc::new(Net {
            caller_runs,
            ..Net::default()
        })
    }
}

struct Sink {
    net: Arc<Net>,
    from: NodeId,
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
struct Counter {
    applied: Arc<RwLock<Vec<Vec<u8>>>>,
    delay: Duration,
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
struct Nowhere;

impl MessageSink for Nowhere {
    fn send(&self, _: NodeId, _: Vec<u8>, _: SendClass) {}
}

/// Starts a single-voter node over `dir` (snapshots every `snapshot_entries`) and waits until
/// it leads.
fn single_node(
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

fn cfg(id: NodeId, caller_runs: bool) -> NodeConfig {
    let mut c = NodeConfig::new(id, [1, 2, 3]);
    c.caller_runs = caller_runs;
    c.election_timeout = Duration::from_millis(150);
    c.heartbeat_interval = Duration::from_millis(30);
    c.seed = Some(id * 7919);
    c
}

fn start(net: &Arc<Net>, id: NodeId, delay: Duration) -> Arc<RwLock<Vec<Vec<u8>>>> {
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

fn leader(net: &Net, timeout: Duration) -> Option<NodeId> {
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

fn node(net: &Net, id: NodeId) -> Arc<Node> {
    net.nodes.read()[&id].clone()
}

#[test]
fn replicates_and_fails_over() {
    replicates_and_fails_over_with(false);
}

#[test]
fn replicates_and_fails_over_caller_runs() {
    replicates_and_fails_over_with(true);
}

fn replicates_and_fails_over_with(caller_runs: bool) {
    let net = Net::new(caller_runs);
    let logs: Vec<_> = (1..=3).map(|i| start(&net, i, Duration::ZERO)).collect();
    let l = leader(&net, Duration::from_secs(5)).expect("leader");
    let n = node(&net, l);
    for i in 0..100u32 {
        let r = n
            .propose(i.to_le_bytes().to_vec(), Duration::from_secs(5))
            .expect("propose");
        assert_eq!(r, Some(((i + 1) as u64).to_le_bytes().to_vec()));
    }
    // A follower refuses with the leader's id.
    let f = (1..=3).find(|&i| i != l).unwrap();
    assert_eq!(
        node(&net, f).propose(vec![1], Duration::from_secs(1)),
        Err(Error::NotLeader(l))
    );
    // Kill the leader: a new one takes over and nothing acknowledged is lost.
    net.down.write().insert(l);
    node(&net, l).shutdown().unwrap();
    let l2 = leader(&net, Duration::from_secs(5)).expect("new leader");
    assert_ne!(l2, l);
    node(&net, l2)
        .propose(b"after".to_vec(), Duration::from_secs(5))
        .expect("propose after failover");
    let idx = node(&net, l2)
        .read_index(Duration::from_secs(5))
        .expect("read index");
    assert!(idx >= 101);
    let log = logs[(l2 - 1) as usize].read().clone();
    assert_eq!(log.len(), 101);
    for (i, c) in log.iter().take(100).enumerate() {
        assert_eq!(c, &(i as u32).to_le_bytes().to_vec());
    }
    assert_eq!(
        node(&net, l).propose(vec![1], Duration::from_secs(1)),
        Err(Error::Shutdown)
    );
    for id in 1..=3 {
        node(&net, id).shutdown().unwrap();
    }
}

#[test]
fn slow_apply_does_not_cause_elections() {
    slow_apply_does_not_cause_elections_with(false);
}

#[test]
fn slow_apply_does_not_cause_elections_caller_runs() {
    slow_apply_does_not_cause_elections_with(true);
}

fn slow_apply_does_not_cause_elections_with(caller_runs: bool) {
    let net = Net::new(caller_runs);
    for i in 1..=3 {
        // Apply sleeps longer than the election timeout.
        start(&net, i, Duration::from_millis(400));
    }
    let l = leader(&net, Duration::from_secs(5)).expect("leader");
    let term = node(&net, l).status().unwrap().term;
    let n = node(&net, l);
    for i in 0..4u8 {
        n.propose(vec![i], Duration::from_secs(10))
            .expect("propose");
    }
    for id in 1..=3 {
        let s = node(&net, id).status().unwrap();
        assert_eq!(
            s.term, term,
            "node {id} saw an election while apply was slow"
        );
    }
    assert_eq!(node(&net, l).status().unwrap().role, Role::Leader);
    for id in 1..=3 {
        node(&net, id).shutdown().unwrap();
    }
}

#[test]
fn durable_restart_and_bad_input() {
    durable_restart_and_bad_input_with(false);
}

#[test]
fn durable_restart_and_bad_input_caller_runs() {
    durable_restart_and_bad_input_with(true);
}

fn durable_restart_and_bad_input_with(caller_runs: bool) {
    let dir = std::env::temp_dir().join(format!("raft-rt-{}-{caller_runs}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let applied = Arc::new(RwLock::new(Vec::new()));
    let n = single_node(&dir, &applied, 20, caller_runs);
    for i in 0..50u8 {
        n.propose(vec![i], Duration::from_secs(5)).expect("propose");
    }
    assert!(matches!(n.step(b"garbage"), Err(Error::Invalid(_))));
    n.shutdown().unwrap();
    n.shutdown().unwrap();
    drop(n);
    let again = Arc::new(RwLock::new(Vec::new()));
    let n = single_node(&dir, &again, 20, caller_runs);
    let end = Instant::now() + Duration::from_secs(5);
    while again.read().len() < 50 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        again.read().len(),
        50,
        "restart restores the snapshot and replays the log"
    );
    assert_eq!(*again.read(), *applied.read());
    n.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A single-voter cluster answers linearizable reads (the leader's own ack is its quorum).
#[test]
fn single_voter_read_index() {
    let mut c = NodeConfig::new(1, [1]);
    c.election_timeout = Duration::from_millis(150);
    c.heartbeat_interval = Duration::from_millis(30);
    let sm = Counter {
        applied: Arc::new(RwLock::new(Vec::new())),
        delay: Duration::ZERO,
    };
    let node = Node::start(c, Box::new(sm), Arc::new(Nowhere)).expect("start");
    let end = Instant::now() + Duration::from_secs(10);
    while node.propose(b"x".to_vec(), Duration::from_secs(1)).is_err() {
        assert!(Instant::now() < end, "no leader");
        std::thread::sleep(Duration::from_millis(20));
    }
    let read = node.read_index(Duration::from_secs(5)).expect("read index");
    assert!(read >= 2);
    node.shutdown().unwrap();
}

#[test]
fn client_sessions_apply_retries_once_and_survive_restart() {
    let dir = std::env::temp_dir().join(format!("raft-rt-sess-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let t = Duration::from_secs(5);
    let applied = Arc::new(RwLock::new(Vec::new()));
    let n = single_node(&dir, &applied, 5, false);
    let first = n.propose_session(42, 1, b"once".to_vec(), t).unwrap();
    // The retry returns the recorded response and is not applied again.
    assert_eq!(
        n.propose_session(42, 1, b"once".to_vec(), t).unwrap(),
        first
    );
    assert_eq!(applied.read().iter().filter(|c| c == &b"once").count(), 1);
    let second = n.propose_session(42, 2, b"twice".to_vec(), t).unwrap();
    assert_ne!(second, first);
    assert!(matches!(
        n.propose_session(42, 1, b"once".to_vec(), t),
        Err(Error::Invalid(_))
    ));
    // Enough entries for snapshots: the session table travels in them.
    for i in 0..12u8 {
        n.propose(vec![i], t).unwrap();
    }
    n.shutdown().unwrap();
    drop(n);
    let again = Arc::new(RwLock::new(Vec::new()));
    let n = single_node(&dir, &again, 5, false);
    assert_eq!(
        n.propose_session(42, 2, b"twice".to_vec(), t).unwrap(),
        second
    );
    assert_eq!(again.read().iter().filter(|c| c == &b"twice").count(), 1);
    n.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn learner_auto_promotion_and_removal() {
    learner_auto_promotion_and_removal_with(false);
}

#[test]
fn learner_auto_promotion_and_removal_caller_runs() {
    learner_auto_promotion_and_removal_with(true);
}

fn learner_auto_promotion_and_removal_with(caller_runs: bool) {
    let net = Net::new(caller_runs);
    let logs: Vec<_> = (1..=3).map(|i| start(&net, i, Duration::ZERO)).collect();
    let l = leader(&net, Duration::from_secs(5)).expect("leader");
    let n = node(&net, l);
    for i in 0..20u8 {
        n.propose(vec![i], Duration::from_secs(5)).unwrap();
    }
    // Node 4 starts knowing only the existing voters: it waits to be added.
    let log4 = start(&net, 4, Duration::ZERO);
    let t = Duration::from_secs(5);
    assert!(matches!(n.add_learner(2, None, t), Err(Error::Invalid(_))));
    n.add_learner(4, Some(5), t).expect("add learner");
    let end = Instant::now() + t;
    while !n.status().unwrap().conf.voters.contains(&4) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = n.status().unwrap();
    assert!(
        st.conf.voters.contains(&4),
        "learner was not promoted: {:?}",
        st.conf
    );
    assert!(st.conf.learners.is_empty());
    // A change against a configuration id that is no longer current is refused, typed.
    let stale = ConfChange::Enter {
        voters: st.conf.voters.clone(),
        learners: vec![],
    };
    assert!(matches!(
        n.change_membership(stale, Some(st.conf_index.saturating_sub(1)), t),
        Err(Error::ConfMoved { current }) if current >= st.conf_index
    ));
    // Remove another follower; the cluster keeps committing with the new membership.
    let f = (1..=3).find(|&i| i != l).unwrap();
    n.remove_member(f, t).expect("remove");
    assert!(!n.status().unwrap().conf.contains(f));
    n.propose(b"after".to_vec(), t).unwrap();
    let end = Instant::now() + t;
    while log4.read().len() < 21 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*log4.read(), *logs[(l - 1) as usize].read());
    for id in 1..=4 {
        node(&net, id).shutdown().unwrap();
    }
}

#[test]
fn lease_reads_are_opt_in_and_validated() {
    let sm = || {
        Box::new(Counter {
            applied: Arc::new(RwLock::new(Vec::new())),
            delay: Duration::ZERO,
        })
    };
    assert!(NodeConfig::new(1, [1])
        .lease_reads_max_clock_drift
        .is_none());
    let mut c = NodeConfig::new(1, [1]);
    c.lease_reads_max_clock_drift = Some(Duration::from_millis(10));
    c.check_quorum = false;
    assert!(matches!(
        Node::start(c, sm(), Arc::new(Nowhere)),
        Err(Error::Invalid(_))
    ));
    let mut c = NodeConfig::new(1, [1]);
    c.lease_reads_max_clock_drift = Some(Duration::from_secs(5));
    assert!(matches!(
        Node::start(c, sm(), Arc::new(Nowhere)),
        Err(Error::Invalid(_))
    ));
    // A valid lease configuration serves reads.
    let mut c = NodeConfig::new(1, [1]);
    c.election_timeout = Duration::from_millis(100);
    c.heartbeat_interval = Duration::from_millis(20);
    c.lease_reads_max_clock_drift = Some(Duration::from_millis(20));
    let n = Node::start(c, sm(), Arc::new(Nowhere)).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while n.status().unwrap().role != Role::Leader && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    n.propose(b"x".to_vec(), Duration::from_secs(5)).unwrap();
    assert!(n.read_index(Duration::from_secs(5)).unwrap() >= 2);
    n.shutdown().unwrap();
}

/// Many threads propose at once while the nodes run passes on callers' threads: every
/// proposal completes once, in one order on every node.
#[test]
fn concurrent_proposers_caller_runs() {
    let net = Net::new(true);
    let logs: Vec<_> = (1..=3).map(|i| start(&net, i, Duration::ZERO)).collect();
    let l = leader(&net, Duration::from_secs(5)).expect("leader");
    let n = node(&net, l);
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let n = n.clone();
            std::thread::spawn(move || {
                for i in 0..300u32 {
                    let cmd = [t.to_le_bytes(), i.to_le_bytes()].concat();
                    n.propose(cmd, Duration::from_secs(10)).expect("propose");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let end = Instant::now() + Duration::from_secs(5);
    while logs.iter().any(|l| l.read().len() < 2400) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let leader_log = logs[(l - 1) as usize].read().clone();
    assert_eq!(leader_log.len(), 2400);
    let mut seen: Vec<_> = leader_log.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2400, "a command was applied twice");
    for log in &logs {
        assert_eq!(*log.read(), leader_log);
    }
    for id in 1..=3 {
        node(&net, id).shutdown().unwrap();
    }
}

// ----- issue "Runtime you can prove": stalls, duplicates, engine threads ----------------

/// Runs `f` on a thread and waits up to `limit` for it; `None` if it is still running (a
/// hang), so a deadlock fails the test instead of hanging the suite.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn session_retries_proposed_at_once_apply_once_on_every_replica() {
    let net = Net::new(false);
    let logs: Vec<_> = (1..=3).map(|id| start(&net, id, Duration::ZERO)).collect();
    let l = node(&net, leader(&net, Duration::from_secs(10)).expect("leader"));
    let (tx, rx) = crossbeam_channel::unbounded();
    for seq in 1..=200u64 {
        for _ in 0..2 {
            let tx = tx.clone();
            l.propose_session_async(9, seq, seq.to_le_bytes().to_vec(), move |r| {
                let _ = tx.send((seq, r));
            });
        }
    }
    let mut answers: HashMap<u64, Vec<Option<Vec<u8>>>> = HashMap::new();
    for _ in 0..400 {
        let (seq, r) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("completion");
        if let Ok(resp) = r {
            answers.entry(seq).or_default().push(resp);
        }
    }
    for (seq, a) in &answers {
        assert!(a.windows(2).all(|w| w[0] == w[1]), "seq {seq}: {a:?}");
    }
    let end = Instant::now() + Duration::from_secs(10);
    while logs.iter().any(|a| a.read().len() < 200) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Every command once, on every replica, in the same order.
    for a in &logs {
        let a = a.read();
        assert_eq!(a.len(), 200, "applied {} times, expected 200", a.len());
        assert_eq!(*a, *logs[0].read());
    }
    for n in net.nodes.read().values() {
        n.shutdown().unwrap();
    }
}

/// A memory store that goes through the storage thread and whose `sync` stalls once.
struct StallStore {
    inner: raft::core::MemStorage,
    stall: std::sync::atomic::AtomicBool,
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

/// Records, for each node's sink, the names of the threads that called it.
struct ThreadLog {
    net: Arc<Net>,
    from: NodeId,
    seen: Arc<parking_lot::Mutex<Vec<(NodeId, String)>>>,
}

impl MessageSink for ThreadLog {
    fn send(&self, to: NodeId, bytes: Vec<u8>, _class: SendClass) {
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.seen.lock().push((self.from, name));
        if let Some(n) = self.net.nodes.read().get(&to) {
            let _ = n.step(&bytes);
        }
    }
}

#[test]
fn caller_runs_never_runs_a_pass_on_engine_threads() {
    let net = Net::new(true);
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let dir = std::env::temp_dir().join(format!("raft-rt-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for id in 1..=3 {
        let mut c = cfg(id, true);
        c.data_dir = Some(dir.join(id.to_string()));
        let sm = Counter {
            applied: Arc::new(RwLock::new(Vec::new())),
            delay: Duration::ZERO,
        };
        let sink = Arc::new(ThreadLog {
            net: net.clone(),
            from: id,
            seen: seen.clone(),
        });
        let n = Node::start(c, Box::new(sm), sink).unwrap();
        net.nodes.write().insert(id, Arc::new(n));
    }
    let l = node(&net, leader(&net, Duration::from_secs(10)).expect("leader"));
    for i in 0..200u32 {
        l.propose(i.to_le_bytes().to_vec(), Duration::from_secs(5))
            .unwrap();
    }
    for n in net.nodes.read().values() {
        n.shutdown().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    // A storage thread sends its own node's persisted messages; any other engine thread
    // calling a sink means a pass ran there.
    for (owner, thread) in seen.lock().iter() {
        let foreign_storage =
            thread.starts_with("raft-storage-") && thread != &format!("raft-storage-{owner}");
        assert!(
            !(foreign_storage
                || thread.starts_with("raft-apply-")
                || thread.starts_with("raft-snapshot")),
            "node {owner}'s pass ran on engine thread {thread}"
        );
    }
}

#[test]
fn a_node_dropped_inside_its_own_callback_stops_its_threads() {
    fn threads_named(suffix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                    .filter(|c| c.trim().starts_with("raft-") && c.trim().ends_with(suffix))
                    .count()
            })
            .unwrap_or(0)
    }
    /// Drops the node it holds from inside `apply`.
    struct Dropper(Arc<parking_lot::Mutex<Option<Arc<Node>>>>);
    impl StateMachine for Dropper {
        fn apply(&mut self, b: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
            if b.iter().any(|c| c.data == b"drop") {
                drop(self.0.lock().take());
            }
            Ok(vec![])
        }
        fn snapshot(&mut self, _: &mut dyn Write) -> Result<(), String> {
            Ok(())
        }
        fn restore(&mut self, _: &mut dyn Read) -> Result<(), String> {
            Ok(())
        }
    }
    let slot = Arc::new(parking_lot::Mutex::new(None));
    let mut c = NodeConfig::new(9, [9]);
    c.election_timeout = Duration::from_millis(100);
    c.heartbeat_interval = Duration::from_millis(20);
    let n = Arc::new(Node::start(c, Box::new(Dropper(slot.clone())), Arc::new(Nowhere)).unwrap());
    *slot.lock() = Some(n.clone());
    let end = Instant::now() + Duration::from_secs(5);
    while n
        .propose(b"warm".to_vec(), Duration::from_millis(200))
        .is_err()
        && Instant::now() < end
    {}
    assert!(threads_named("-9") >= 3);
    n.propose_async(b"drop".to_vec(), |_| {});
    drop(n); // The state machine now holds the last handle and drops it in `apply`.
    let end = Instant::now() + Duration::from_secs(5);
    while threads_named("-9") > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(threads_named("-9"), 0, "threads outlived their node");
}
