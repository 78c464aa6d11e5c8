//! The `raft-kv` server as separate processes over real sockets on 127.0.0.1:
//! - the failover scenario of `raft-kv-demo` (kill the leader, fail over, nothing
//!   acknowledged is lost, the killed node catches up after restart);
//! - a network partition made with the `BLOCK` test hook: the majority elects a leader and
//!   commits, the isolated old leader never serves a stale read nor acknowledges a write, and
//!   after healing every acknowledged write is present everywhere.
//!
//! Every wait is bounded by the harness deadline, so a failing run ends in well under 60 s.

#[path = "../src/bin/raft_kv/cluster.rs"]
mod cluster;
#[path = "../src/bin/raft_kv/scenario.rs"]
mod scenario;

use cluster::{request, Cluster};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const ELECTION_MS: u64 = 150;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-kv"))
}

fn cluster(extra: &[&str]) -> Cluster {
    let mut c = Cluster::new(bin(), 3, ELECTION_MS, extra).expect("lay out the cluster");
    c.deadline = Instant::now() + Duration::from_secs(45);
    c
}

/// Keeps the data and logs of a failed test for post-mortem.
struct KeepOnPanic<'a>(&'a mut Cluster);

impl Drop for KeepOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.keep = true;
            eprintln!(
                "cluster data and node logs kept in {}",
                self.0.root.display()
            );
        }
    }
}

#[test]
fn failover_via_processes() {
    let mut c = cluster(&["--snapshot-entries", "50"]);
    let g = KeepOnPanic(&mut c);
    let r = scenario::failover(g.0, &mut |s| eprintln!("{s}")).expect("failover scenario");
    assert_eq!(r.keys, 120);
    assert_ne!(r.old_leader, r.new_leader);
    // A few election timeouts, with generous slack for a loaded test machine.
    assert!(
        r.committed_after < Duration::from_secs(5),
        "failover took {:?}",
        r.committed_after
    );
}

/// Issue 13 item 3: a PUT above `--max-command-bytes` is refused with an error line by the
/// leader, which keeps leading (same term) and serving later writes and reads.
#[test]
fn oversized_put_is_refused_and_the_cluster_keeps_serving() {
    let mut c = cluster(&["--max-command-bytes", "1024"]);
    let g = KeepOnPanic(&mut c);
    g.0.spawn_all().expect("spawn");
    g.0.wait_up(&[1, 2, 3], Duration::from_secs(10))
        .expect("up");
    let l =
        g.0.wait_leader(&[1, 2, 3], 0, Duration::from_secs(10))
            .expect("leader");
    let big = "v".repeat(2000);
    for _ in 0..3 {
        let a = g.0.request(l.id, &format!("PUT big {big}"));
        assert!(
            a.as_deref()
                .is_ok_and(|a| a.starts_with("ERR") && a.contains("exceeds")),
            "oversized PUT answered {a:?}"
        );
    }
    assert_eq!(g.0.request(l.id, "PUT small 1").as_deref(), Ok("OK"));
    assert_eq!(g.0.request(l.id, "GET small").as_deref(), Ok("VALUE 1"));
    assert_eq!(g.0.request(l.id, "GET big").as_deref(), Ok("NOTFOUND"));
    let now = g.0.status(l.id).expect("status");
    assert!(
        now.is_leader() && now.term == l.term,
        "leadership moved: {now:?}"
    );
    g.0.stop_all();
}

/// A request whose answer is checked for not being a (possibly stale) success.
fn refused(answer: &Result<String, String>) -> bool {
    match answer {
        Ok(a) => a.starts_with("ERR NOTLEADER") || a.starts_with("ERR TIMEOUT"),
        // The connection must work: the old leader's process is alive.
        Err(_) => false,
    }
}

#[test]
fn partitioned_leader_serves_no_stale_reads() {
    let mut c = cluster(&["--test-hooks", "--request-timeout-ms", "1500"]);
    let g = KeepOnPanic(&mut c);
    let c = &mut *g.0;
    let ids: Vec<u64> = c.nodes.keys().copied().collect();
    c.spawn_all().expect("spawn");
    c.wait_up(&ids, Duration::from_secs(10)).expect("nodes up");
    let old = c
        .wait_leader(&ids, 0, Duration::from_secs(10))
        .expect("first leader");
    let others: Vec<u64> = ids.iter().copied().filter(|&i| i != old.id).collect();
    eprintln!("leader {} in term {}", old.id, old.term);

    // Writes acknowledged before the partition.
    let mut acked = BTreeMap::new();
    let mut hint = old.id;
    let mut redirects = 0;
    let t = Duration::from_secs(10);
    for i in 0..20 {
        let (k, v) = (format!("before-{i:02}"), format!("b{i}"));
        let a = c.write(&mut hint, &ids, &format!("PUT {k} {v}"), t, &mut redirects);
        assert_eq!(a.as_deref(), Ok("OK"));
        acked.insert(k, v);
    }
    c.write(&mut hint, &ids, "PUT x old", t, &mut redirects)
        .expect("PUT x old");
    assert_eq!(c.request(hint, "GET x").as_deref(), Ok("VALUE old"));
    assert_eq!(hint, old.id, "leadership moved without a fault");

    // Isolate the leader: it drops all traffic to and from both peers.
    for &p in &others {
        assert_eq!(
            c.request(old.id, &format!("BLOCK {p}")).as_deref(),
            Ok("OK")
        );
    }
    eprintln!("leader {} isolated", old.id);
    // A read and a write at the isolated leader, issued at once (it still believes it leads).
    let old_addr = c.nodes[&old.id].client;
    let io = Duration::from_secs(5);
    let early_get = std::thread::spawn(move || request(old_addr, "GET x", io));
    let early_put =
        std::thread::spawn(move || request(old_addr, "PUT x written-at-isolated-leader", io));

    // The majority side elects a new leader and commits.
    let new = c
        .wait_leader(&others, old.term, Duration::from_secs(10))
        .expect("majority elects a leader");
    eprintln!("node {} leads the majority in term {}", new.id, new.term);
    let mut hint = new.id;
    for i in 0..20 {
        let (k, v) = (format!("during-{i:02}"), format!("d{i}"));
        let a = c.write(
            &mut hint,
            &others,
            &format!("PUT {k} {v}"),
            t,
            &mut redirects,
        );
        assert_eq!(a.as_deref(), Ok("OK"));
        acked.insert(k, v);
    }
    let a = c.write(&mut hint, &others, "CAS x old new", t, &mut redirects);
    assert_eq!(a.as_deref(), Ok("OK"), "the majority sees x=old");
    acked.insert("x".into(), "new".into());

    // The isolated old leader must not answer with x's stale value (or any value), and must
    // not acknowledge the write it received.
    let g1 = early_get.join().expect("early get");
    assert!(refused(&g1), "GET at the isolated leader answered {g1:?}");
    let p1 = early_put.join().expect("early put");
    assert!(refused(&p1), "PUT at the isolated leader answered {p1:?}");
    let g2 = c.request(old.id, "GET x");
    assert!(
        refused(&g2),
        "GET at the isolated old leader answered {g2:?}"
    );
    let p2 = c.request(old.id, "PUT x late-write-at-isolated-node");
    assert!(
        refused(&p2),
        "PUT at the isolated old leader answered {p2:?}"
    );
    // Check-quorum: the isolated node steps down within a couple of election timeouts.
    let end = c.until(Duration::from_secs(5));
    loop {
        let s = c.status(old.id).expect("status of the isolated node");
        if !s.is_leader() {
            break;
        }
        assert!(Instant::now() < end, "isolated node still leads: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("isolated node refused: {g1:?} {p1:?} {g2:?} {p2:?}");

    // Heal; the old leader rejoins as a follower and catches up.
    for &p in &others {
        assert_eq!(
            c.request(old.id, &format!("UNBLOCK {p}")).as_deref(),
            Ok("OK")
        );
    }
    let end = c.until(Duration::from_secs(10));
    loop {
        let (l, o) = (c.status(hint), c.status(old.id));
        if let (Some(l), Some(o)) = (&l, &o) {
            if l.is_leader() && o.leader == l.id && o.applied >= l.commit {
                break;
            }
        }
        assert!(
            Instant::now() < end,
            "old leader did not catch up: {l:?} {o:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every acknowledged write is present, at the leader and at the healed node; the writes
    // sent to the isolated leader were not applied.
    let leader = c
        .wait_leader(&ids, 0, Duration::from_secs(10))
        .expect("leader after healing");
    for at in [leader.id, old.id] {
        scenario::check_all(c, at, &acked).expect("acknowledged writes survive");
    }
    c.stop_all();
}

#[test]
fn partitioned_follower_does_not_disrupt_the_majority() {
    // Also runs the transport authenticated, in a non-default cluster.
    let mut c = cluster(&[
        "--test-hooks",
        "--request-timeout-ms",
        "1500",
        "--secret",
        "demo-secret",
        "--cluster-id",
        "42",
    ]);
    let g = KeepOnPanic(&mut c);
    let c = &mut *g.0;
    let ids: Vec<u64> = c.nodes.keys().copied().collect();
    c.spawn_all().expect("spawn");
    c.wait_up(&ids, Duration::from_secs(10)).expect("nodes up");
    let leader = c
        .wait_leader(&ids, 0, Duration::from_secs(10))
        .expect("leader");
    let follower = *ids.iter().find(|&&i| i != leader.id).expect("follower");
    let majority: Vec<u64> = ids.iter().copied().filter(|&i| i != follower).collect();
    let (mut hint, mut redirects, t) = (leader.id, 0, Duration::from_secs(10));
    let mut acked = BTreeMap::new();
    c.write(&mut hint, &ids, "PUT y old", t, &mut redirects)
        .expect("PUT y old");

    // Cut the follower off from both peers (blocked on the follower's side).
    for &p in &majority {
        assert_eq!(
            c.request(follower, &format!("BLOCK {p}")).as_deref(),
            Ok("OK")
        );
    }
    // The majority keeps its leader and commits.
    for i in 0..20 {
        let (k, v) = (format!("cut-{i:02}"), format!("c{i}"));
        let a = c.write(
            &mut hint,
            &majority,
            &format!("PUT {k} {v}"),
            t,
            &mut redirects,
        );
        assert_eq!(a.as_deref(), Ok("OK"));
        acked.insert(k, v);
    }
    c.write(&mut hint, &majority, "PUT y new", t, &mut redirects)
        .expect("PUT y new");
    acked.insert("y".into(), "new".into());
    // Let the follower's election timer expire a few times.
    std::thread::sleep(Duration::from_millis(5 * ELECTION_MS));
    // Its local copy of y is stale, so a read there must not be served.
    let g1 = c.request(follower, "GET y");
    assert!(refused(&g1), "GET at the cut-off follower answered {g1:?}");
    let s = c.status(hint).expect("leader status");
    assert!(
        s.is_leader() && s.term == leader.term,
        "majority disrupted: {s:?}"
    );

    // Heal: pre-vote keeps the returning follower from forcing an election.
    for &p in &majority {
        assert_eq!(
            c.request(follower, &format!("UNBLOCK {p}")).as_deref(),
            Ok("OK")
        );
    }
    let end = c.until(Duration::from_secs(10));
    loop {
        let (l, f) = (c.status(hint), c.status(follower));
        if let (Some(l), Some(f)) = (&l, &f) {
            if l.is_leader() && f.leader == l.id && f.applied >= l.commit {
                assert_eq!(l.term, leader.term, "healing caused an election");
                break;
            }
        }
        assert!(
            Instant::now() < end,
            "follower did not catch up: {l:?} {f:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    scenario::check_all(c, follower, &acked).expect("follower has every acknowledged write");
    c.stop_all();
}

#[test]
fn single_node_cluster_serves_linearizable_reads() {
    let mut c = Cluster::new(bin(), 1, ELECTION_MS, &[]).expect("lay out");
    c.deadline = Instant::now() + Duration::from_secs(30);
    c.spawn_all().expect("spawn");
    c.wait_up(&[1], Duration::from_secs(10)).expect("up");
    c.wait_leader(&[1], 0, Duration::from_secs(10))
        .expect("leader");
    assert_eq!(c.request(1, "GET a").as_deref(), Ok("NOTFOUND"));
    assert_eq!(c.request(1, "PUT a 1").as_deref(), Ok("OK"));
    assert_eq!(c.request(1, "GET a").as_deref(), Ok("VALUE 1"));
    assert_eq!(c.request(1, "CAS a 2 3").as_deref(), Ok("MISMATCH"));
    assert_eq!(c.request(1, "CAS a 1 3").as_deref(), Ok("OK"));
    assert_eq!(c.request(1, "GET a").as_deref(), Ok("VALUE 3"));
    assert_eq!(c.request(1, "DEL a").as_deref(), Ok("OK"));
    assert_eq!(c.request(1, "GET a").as_deref(), Ok("NOTFOUND"));
    assert!(c
        .request(1, "BLOCK 2")
        .is_ok_and(|a| a.starts_with("ERR test hooks are disabled")));
    assert!(c
        .request(1, "PUT a")
        .is_ok_and(|a| a.starts_with("ERR usage")));
    c.stop_all();
}
