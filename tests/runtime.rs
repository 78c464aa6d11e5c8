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
