//! The threaded runtime: replication over an in-process transport, failover, slow apply
//! that must not cause elections, shutdown semantics.

mod support;

use parking_lot::RwLock;
use raft::core::{ConfChange, NodeId, Role};
use raft::runtime::{Committed, Error, MessageSink, Node, NodeConfig, StateMachine};
use raft::transport::SendClass;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

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
