//! A voter whose data directory is wiped and that restarts under the same id (a new
//! incarnation) is not counted until it is re-admitted: it does not vote, its old peers
//! ignore it, and the leader demotes it to learner, catches it up and promotes it again
//! (issue 14, item 4), through the public Rust API with real data directories. With
//! `NodeConfig::auto_rejoin = None` the leader reports it and leaves it to the operator.

mod support;

use parking_lot::RwLock;
use raft::core::{ConfChange, NodeId, Role};
use raft::runtime::{Node, NodeConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Counter, Net, Sink};

const ET: Duration = Duration::from_millis(150);

fn data_dir(root: &Path, id: NodeId) -> PathBuf {
    root.join(format!("node-{id}"))
}

/// Log lines written by the nodes started in a scope of [`capture`].
#[derive(Clone, Default)]
struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn contains(&self, s: &str) -> bool {
        String::from_utf8_lossy(&self.0.lock()).contains(s)
    }
}

/// A dispatcher writing every event (warnings and up) into `out`; nodes started inside
/// `raft::log_scope::scoped` with it log there, whatever the other tests install.
fn capture(out: &Captured) -> tracing::Dispatch {
    let out = out.clone();
    raft::log_scope::dispatch(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || out.clone())
            .finish(),
    )
}

fn start(net: &Arc<Net>, root: &Path, id: NodeId) -> Arc<RwLock<Vec<Vec<u8>>>> {
    start_with(net, root, id, Some(8))
}

fn start_with(
    net: &Arc<Net>,
    root: &Path,
    id: NodeId,
    auto_rejoin: Option<u64>,
) -> Arc<RwLock<Vec<Vec<u8>>>> {
    let mut c = NodeConfig::new(id, [1, 2, 3]);
    c.election_timeout = ET;
    c.heartbeat_interval = Duration::from_millis(30);
    c.seed = Some(id * 7919);
    c.cluster_id = 14;
    c.data_dir = Some(data_dir(root, id));
    c.auto_rejoin = auto_rejoin;
    let applied = Arc::new(RwLock::new(Vec::new()));
    let sm = Counter {
        applied: applied.clone(),
        delay: Duration::ZERO,
    };
    let sink = Arc::new(Sink {
        net: net.clone(),
        from: id,
    });
    let node = Node::start(c, Box::new(sm), sink).expect("start");
    net.nodes.write().insert(id, Arc::new(node));
    applied
}

/// Stops a node and drops it (its data directory is then free); callers hold no clone.
fn stop(net: &Arc<Net>, id: NodeId) {
    let n = net.nodes.write().remove(&id).expect("running");
    n.shutdown().expect("shutdown");
    drop(n);
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn wiped_voter_is_not_counted_and_rejoins_as_learner() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let root = std::env::temp_dir().join(format!("raft-rejoin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let net = Net::new(false);
    let mut applied = Vec::new();
    for id in 1..=3 {
        applied.push((id, start(&net, &root, id)));
    }
    let l = support::leader(&net, Duration::from_secs(10)).expect("a leader");
    let others: Vec<NodeId> = (1..=3).filter(|&i| i != l).collect();
    let (y, x) = (others[0], others[1]);

    // Y falls behind: everything below is committed by the leader and X alone.
    net.down.write().insert(y);
    let leader = support::node(&net, l);
    let mut writes = Vec::new();
    for k in 0..20 {
        let cmd = format!("w{k}").into_bytes();
        leader
            .propose(cmd.clone(), Duration::from_secs(5))
            .expect("committed by the leader and X");
        writes.push(cmd);
    }
    let conf_before = leader.status().unwrap().conf_index;
    drop(leader);

    // X loses its data directory and comes back under the same id.
    stop(&net, x);
    std::fs::remove_dir_all(data_dir(&root, x)).unwrap();
    applied.retain(|(id, _)| *id != x);
    applied.push((x, start(&net, &root, x)));
    // X hears from the leader, which knew its old incarnation.
    let xn = support::node(&net, x);
    wait("X to follow the leader", 10 * ET, || {
        xn.status().is_ok_and(|s| s.leader == l)
    });
    drop(xn);

    // The leader goes down and Y comes back: Y lacks the 20 committed writes, so only X's
    // vote could elect it, and X must not give it (nor Y count it).
    stop(&net, l);
    net.down.write().remove(&y);
    let yn = support::node(&net, y);
    let end = Instant::now() + 12 * ET;
    while Instant::now() < end {
        let s = yn.status().unwrap();
        assert_ne!(
            s.role,
            Role::Leader,
            "Y was elected without the committed writes (with the wiped node's vote)"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(yn);

    // The leader returns: X is demoted, caught up and promoted again; nothing is lost.
    applied.retain(|(id, _)| *id != l);
    applied.push((l, start(&net, &root, l)));
    let end = Instant::now() + Duration::from_secs(30);
    let mut status = None;
    while Instant::now() < end {
        if let Some(ld) = support::leader(&net, ET) {
            let s = support::node(&net, ld).status().unwrap();
            // Demotion and promotion are two configuration changes.
            if s.conf.voters.contains(&x) && s.conf_index > conf_before {
                status = Some(s);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = status.expect("X re-admitted (demoted, then promoted) within 30 s");
    assert!(s.conf.learners.is_empty(), "{:?}", s.conf);
    for (id, a) in &applied {
        wait(
            &format!("node {id} to apply every write"),
            Duration::from_secs(20),
            || {
                let a = a.read();
                writes.iter().all(|w| a.contains(w))
            },
        );
    }
    for id in 1..=3 {
        stop(&net, id);
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn without_auto_rejoin_the_leader_waits_for_the_operator() {
    let logs = Captured::default();
    let dispatch = capture(&logs);
    let root = std::env::temp_dir().join(format!("raft-rejoin-op-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let net = Net::new(false);
    let mut applied = std::collections::HashMap::new();
    raft::log_scope::scoped(&dispatch, || {
        for id in 1..=3 {
            applied.insert(id, start_with(&net, &root, id, None));
        }
    });
    let l = support::leader(&net, Duration::from_secs(10)).expect("a leader");
    let x = (1..=3).find(|&i| i != l).unwrap();
    let leader = support::node(&net, l);
    let mut writes = Vec::new();
    for k in 0..10 {
        let cmd = format!("w{k}").into_bytes();
        leader
            .propose(cmd.clone(), Duration::from_secs(5))
            .expect("committed");
        writes.push(cmd);
    }
    wait("X to apply the writes", Duration::from_secs(10), || {
        applied[&x].read().len() >= writes.len()
    });
    let before = leader.status().unwrap();

    // X loses its data directory and comes back under the same id.
    stop(&net, x);
    std::fs::remove_dir_all(data_dir(&root, x)).unwrap();
    raft::log_scope::scoped(&dispatch, || {
        applied.insert(x, start_with(&net, &root, x, None));
    });
    let msg = format!("voter {x} lost its state (new incarnation); automatic rejoin is off");
    wait("the leader's error for the operator", 20 * ET, || {
        logs.contains(&msg)
    });
    // The leader changed nothing by itself: X is still a voter, not counted.
    let s = leader.status().unwrap();
    assert_eq!(s.conf_index, before.conf_index, "{:?}", s.conf);
    assert!(s.conf.voters.contains(&x) && s.conf.learners.is_empty());
    assert!(!logs.contains("demoting it to learner"));
    // Writes go on with the two counted voters.
    leader
        .propose(b"while-x-is-out".to_vec(), Duration::from_secs(5))
        .expect("committed without X");
    writes.push(b"while-x-is-out".to_vec());

    // The operator: X becomes a learner, catches up, and is promoted.
    let voters: Vec<NodeId> = (1..=3).filter(|&i| i != x).collect();
    leader
        .change_membership(
            ConfChange::Enter {
                voters,
                learners: vec![x],
            },
            Some(s.conf_index),
            Duration::from_secs(5),
        )
        .expect("X made a learner");
    leader
        .promote_learner(x, 8, Duration::from_secs(20))
        .expect("X promoted once caught up");
    let s = leader.status().unwrap();
    assert!(
        s.conf.voters.contains(&x) && s.conf.learners.is_empty(),
        "{:?}",
        s.conf
    );
    wait("X to apply every write", Duration::from_secs(20), || {
        let a = applied[&x].read();
        writes.iter().all(|w| a.contains(w))
    });
    drop(leader);
    for id in 1..=3 {
        stop(&net, id);
    }
    let _ = std::fs::remove_dir_all(&root);
}
