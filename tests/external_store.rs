//! Custom storage ([`ExternalStore`]): a 3-node in-process cluster where one node keeps its
//! durable state in an embedder-side model completed asynchronously from another thread;
//! that node restarts from the model and catches up. A failed write fails the node.

mod support;

use parking_lot::{Mutex, RwLock};
use raft::core::{ConfState, Entry, HardState, MemStorage, NodeId, SnapshotMeta, Storage};
use raft::runtime::{Node, NodeConfig};
use raft::storage::conformance::conformance_suite;
use raft::storage::{Completer, ExternalStore, LogStore, Persister};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use support::{Counter, Net, Sink};

/// The embedder's "durable" state.
#[derive(Default, Clone)]
struct Durable {
    hard_state: HardState,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    entries: Vec<Entry>,
    persists: u64,
}

impl Durable {
    fn to_mem(&self) -> MemStorage {
        let m = MemStorage::new_with_conf(ConfState::with_voters([1, 2, 3]));
        if let Some((meta, data)) = &self.snapshot {
            m.apply_snapshot(meta.clone(), data.clone());
        }
        m.append(&self.entries);
        m.set_hard_state(self.hard_state);
        m
    }
}

enum Job {
    Log(u64, Option<HardState>, Option<u64>, Vec<Entry>),
    Snap(u64, SnapshotMeta, Vec<u8>, bool),
}

/// Queues writes to a completion thread that applies them to [`Durable`] after a delay and
/// then reports the token.
struct AsyncPersister {
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
}

impl AsyncPersister {
    fn start(durable: Arc<Mutex<Durable>>, store: Arc<Mutex<Weak<ExternalStore>>>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::spawn(move || {
            while let Ok(job) = rx.recv() {
                std::thread::sleep(Duration::from_millis(2));
                let token = {
                    let mut d = durable.lock();
                    d.persists += 1;
                    match job {
                        Job::Log(token, hs, replace, entries) => {
                            if let Some(r) = replace {
                                d.entries.retain(|e| e.index < r);
                            }
                            if let (Some(last), Some(first)) = (d.entries.last(), entries.first()) {
                                assert_eq!(last.index + 1, first.index, "persisted log has a gap");
                            }
                            d.entries.extend(entries);
                            if let Some(hs) = hs {
                                d.hard_state = hs;
                            }
                            token
                        }
                        Job::Snap(token, meta, data, keep_log) => {
                            if keep_log {
                                d.entries.retain(|e| e.index > meta.index);
                            } else {
                                d.entries.clear();
                            }
                            d.snapshot = Some((meta, data));
                            token
                        }
                    }
                };
                let s = store.lock().upgrade();
                if let Some(s) = s {
                    s.persisted(token, true);
                }
            }
        });
        AsyncPersister {
            jobs: Mutex::new(tx),
        }
    }
}

impl Persister for AsyncPersister {
    fn persist(&self, token: u64, hs: Option<HardState>, replace: Option<u64>, entries: &[Entry]) {
        let _ = self
            .jobs
            .lock()
            .send(Job::Log(token, hs, replace, entries.to_vec()));
    }
    fn persist_snapshot(&self, token: u64, meta: &SnapshotMeta, data: &[u8], keep_log: bool) {
        let _ = self
            .jobs
            .lock()
            .send(Job::Snap(token, meta.clone(), data.to_vec(), keep_log));
    }
}

fn start_plain(net: &Arc<Net>, id: NodeId) -> Arc<RwLock<Vec<Vec<u8>>>> {
    support::start(net, id, Duration::ZERO)
}

/// Starts node 3 over an [`ExternalStore`] loaded from `durable`.
fn start_external(net: &Arc<Net>, durable: &Arc<Mutex<Durable>>) -> Arc<RwLock<Vec<Vec<u8>>>> {
    let applied = Arc::new(RwLock::new(Vec::new()));
    let slot = Arc::new(Mutex::new(Weak::new()));
    let p = Arc::new(AsyncPersister::start(durable.clone(), slot.clone()));
    let store = Arc::new(ExternalStore::new(durable.lock().to_mem(), p));
    *slot.lock() = Arc::downgrade(&store);
    let mut c = support::cfg(3, false);
    c.snapshot_entries = 15;
    c.snapshot_trailing = 5;
    let sink = Arc::new(Sink {
        net: net.clone(),
        from: 3,
    });
    let sm = Counter {
        applied: applied.clone(),
        delay: Duration::ZERO,
    };
    let node = Node::start_with_store(c, Box::new(sm), sink, store).expect("start external");
    net.nodes.write().insert(3, Arc::new(node));
    applied
}

fn leader(net: &Net) -> Arc<Node> {
    let id = support::leader(net, Duration::from_secs(10)).expect("no leader");
    support::node(net, id)
}

fn propose(net: &Net, cmd: Vec<u8>) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match leader(net).propose(cmd.clone(), Duration::from_secs(5)) {
            Ok(_) => return,
            Err(e) if Instant::now() < end => {
                eprintln!("retrying a proposal: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("propose: {e}"),
        }
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn external_node_replicates_restarts_and_catches_up() {
    let net = Arc::new(Net::default());
    let durable = Arc::new(Mutex::new(Durable::default()));
    start_plain(&net, 1);
    start_plain(&net, 2);
    let applied3 = start_external(&net, &durable);
    let cmds: Vec<Vec<u8>> = (0..40u32).map(|i| i.to_le_bytes().to_vec()).collect();
    for c in &cmds {
        propose(&net, c.clone());
    }
    wait_for("node 3 to apply everything", || applied3.read().len() == 40);
    assert_eq!(*applied3.read(), cmds);
    {
        let d = durable.lock();
        assert!(d.hard_state.term > 0, "hard state was persisted");
        assert!(d.snapshot.is_some(), "a snapshot was persisted");
        assert!(d.persists > 0);
    }

    // Restart node 3 from the embedder's durable state only.
    let old = net.nodes.write().remove(&3).unwrap();
    old.shutdown().unwrap();
    drop(old);
    let saved = durable.lock().clone();
    let durable2 = Arc::new(Mutex::new(saved));
    let applied3 = start_external(&net, &durable2);
    let more: Vec<Vec<u8>> = (40..60u32).map(|i| i.to_le_bytes().to_vec()).collect();
    for c in &more {
        propose(&net, c.clone());
    }
    let all: Vec<Vec<u8>> = cmds.iter().chain(more.iter()).cloned().collect();
    wait_for("the restarted node to catch up", || *applied3.read() == all);
    let last = net.nodes.read()[&3].status().unwrap().last_index;
    wait_for("the catch-up to be durable", || {
        let d = durable2.lock();
        let snap = d.snapshot.as_ref().map_or(0, |(m, _)| m.index);
        d.entries.last().map_or(snap, |e| e.index) == last
    });
    let nodes: Vec<_> = net.nodes.read().values().cloned().collect();
    for n in nodes {
        n.shutdown().unwrap();
        assert_eq!(n.failure(), None);
    }
}

/// Reports every write as failed, from inside the call.
struct Failing(Mutex<Weak<ExternalStore>>);

impl Persister for Failing {
    fn persist(&self, token: u64, _: Option<HardState>, _: Option<u64>, _: &[Entry]) {
        if let Some(s) = self.0.lock().upgrade() {
            s.persisted(token, false);
        }
    }
    fn persist_snapshot(&self, token: u64, _: &SnapshotMeta, _: &[u8], _: bool) {
        if let Some(s) = self.0.lock().upgrade() {
            s.persisted(token, false);
        }
    }
}

#[test]
fn failed_write_fails_the_node() {
    let p = Arc::new(Failing(Mutex::new(Weak::new())));
    let store = Arc::new(ExternalStore::new(
        MemStorage::new_with_conf(ConfState::with_voters([1])),
        p.clone(),
    ));
    *p.0.lock() = Arc::downgrade(&store);
    let mut c = NodeConfig::new(1, [1]);
    c.election_timeout = Duration::from_millis(100);
    c.heartbeat_interval = Duration::from_millis(20);
    let sm = Counter {
        applied: Arc::new(RwLock::new(Vec::new())),
        delay: Duration::ZERO,
    };
    let node =
        Node::start_with_store(c, Box::new(sm), Arc::new(support::Nowhere), store).expect("start");
    // The first write (the vote of its own election) fails: the node stops.
    wait_for("the node to fail", || node.failure().is_some());
    assert!(node.failure().unwrap().contains("failed"));
    assert!(node.propose(vec![1], Duration::from_secs(1)).is_err());
    node.shutdown().unwrap();
}

#[test]
fn unknown_tokens_are_refused_and_writes_are_grouped() {
    struct Inline(
        Mutex<Weak<ExternalStore>>,
        Mutex<Vec<(Option<u64>, Vec<u64>)>>,
    );
    impl Persister for Inline {
        fn persist(&self, token: u64, _: Option<HardState>, r: Option<u64>, e: &[Entry]) {
            self.1.lock().push((r, e.iter().map(|e| e.index).collect()));
            let s = self.0.lock().upgrade().unwrap();
            assert!(s.persisted(token, true));
            assert!(!s.persisted(token, true), "a token completes once");
        }
        fn persist_snapshot(&self, _: u64, _: &SnapshotMeta, _: &[u8], _: bool) {}
    }
    let p = Arc::new(Inline(Mutex::new(Weak::new()), Mutex::new(Vec::new())));
    let store = Arc::new(ExternalStore::new(MemStorage::default(), p.clone()));
    *p.0.lock() = Arc::downgrade(&store);
    assert!(!store.persisted(99, true));
    let e = |term, index| Entry {
        term,
        index,
        kind: raft::core::EntryKind::Normal,
        data: vec![].into(),
    };
    store.append(&[e(1, 1), e(1, 2), e(1, 3)]).unwrap();
    store.sync().unwrap();
    // Two appends, the second replacing part of the first and of the durable log: one call.
    store.append(&[e(2, 4), e(2, 5)]).unwrap();
    store.append(&[e(3, 3), e(3, 4)]).unwrap();
    store.sync().unwrap();
    store.sync().unwrap(); // nothing pending: no call
    assert!(store.append(&[e(3, 9)]).is_err(), "a gap is refused");
    assert_eq!(
        *p.1.lock(),
        vec![(None, vec![1, 2, 3]), (Some(3), vec![3, 4])]
    );
    assert_eq!(store.last_index(), 4);
}

/// Completes every write inline and keeps nothing (the mirror answers reads).
struct Inline(std::sync::OnceLock<Completer>);

impl Persister for Inline {
    fn persist(&self, token: u64, _: Option<HardState>, _: Option<u64>, _: &[Entry]) {
        assert!(self.0.get().unwrap().persisted(token, true));
    }
    fn persist_snapshot(&self, token: u64, _: &SnapshotMeta, _: &[u8], _: bool) {
        assert!(self.0.get().unwrap().persisted(token, true));
    }
}

#[test]
fn conformance_external_store() {
    conformance_suite(|| {
        let p = Arc::new(Inline(std::sync::OnceLock::new()));
        let s = ExternalStore::new(MemStorage::new_with_conf(ConfState::default()), p.clone());
        let _ = p.0.set(s.completer());
        s
    });
}
