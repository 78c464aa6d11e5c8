//! `raft-kv` as a reference deployment (issue 16), as separate processes over real sockets:
//! - a 3-node cluster grows to 5 and then replaces a node, through the client protocol
//!   (`ADD_LEARNER`, `PROMOTE`, `REMOVE`, `MEMBERS`), while a client keeps writing; every
//!   acknowledged write is then readable on the replacement node;
//! - `raft-manager snapshot export` of a running node and `snapshot import` into the data
//!   directories of a new cluster, which starts with that state and takes writes.

#[path = "../src/bin/raft_kv/cluster.rs"]
mod cluster;

use cluster::{request, Cluster};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ELECTION_MS: u64 = 150;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raft-kv"))
}

fn cluster(extra: &[&str]) -> Cluster {
    let mut c = Cluster::new(bin(), 3, ELECTION_MS, extra).expect("lay out the cluster");
    c.deadline = Instant::now() + Duration::from_secs(100);
    c.spawn_all().expect("spawn");
    c.wait_up(&[1, 2, 3], Duration::from_secs(20)).expect("up");
    c.wait_leader(&[1, 2, 3], 0, Duration::from_secs(20))
        .expect("leader");
    c
}

/// Client addresses a writer may use, by node id (nodes come and go).
type Directory = Arc<Mutex<BTreeMap<u64, SocketAddr>>>;

/// Sends `line` to the leader among `dir`'s nodes (following `ERR NOTLEADER <id>`, else
/// trying each in turn) until an answer other than a redirect, `BUSY` or `TIMEOUT`.
fn to_leader(dir: &Directory, line: &str, timeout: Duration) -> Result<String, String> {
    let end = Instant::now() + timeout;
    let mut at: Option<u64> = None;
    let mut last = String::new();
    let mut turn = 0usize;
    while Instant::now() < end {
        let nodes = dir.lock().clone();
        let id = at
            .filter(|i| nodes.contains_key(i))
            .unwrap_or_else(|| *nodes.keys().nth(turn % nodes.len()).expect("nodes"));
        turn += 1;
        at = None;
        match request(nodes[&id], line, Duration::from_secs(12)) {
            Ok(a) if a.starts_with("ERR NOTLEADER ") => {
                at = a[14..].trim().parse().ok().filter(|&l| l != 0);
                last = a;
            }
            Ok(a) if a == "ERR BUSY" || a == "ERR TIMEOUT" => last = a,
            Ok(a) => return Ok(a),
            Err(e) => last = e,
        }
        if at.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err(format!("{line}: no answer but {last}"))
}

/// Writes `w-<i> <i>` for i = 0, 1, ... until `stop`; returns the acknowledged indexes.
fn writer(dir: Directory, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            // PUT is idempotent: a retried write after an unknown outcome is harmless.
            if let Ok(a) = to_leader(&dir, &format!("PUT w-{i} {i}"), Duration::from_secs(10)) {
                assert_eq!(a, "OK", "PUT w-{i}");
                acked.push(i);
            }
            i += 1;
        }
        acked
    })
}

/// The voters and learners in a `MEMBERS` answer.
fn members(dir: &Directory) -> (String, String) {
    let a = to_leader(dir, "MEMBERS", Duration::from_secs(10)).expect("MEMBERS");
    let field = |name: &str| {
        a.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {a}"))
            .to_string()
    };
    (field("voters="), field("learners="))
}

fn admin(dir: &Directory, line: &str) {
    let a = to_leader(dir, line, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    assert!(a.starts_with("OK"), "{line}: {a}");
}

/// Starts node `id` as a joiner and makes it a voter through the client protocol.
fn grow(c: &mut Cluster, dir: &Directory, id: u64, voters: &[u64]) {
    let spec = c.add_node(id).expect("lay out");
    c.spawn_joiner(id, voters).expect("spawn joiner");
    c.wait_up(&[id], Duration::from_secs(20))
        .expect("joiner up");
    admin(dir, &format!("ADD_LEARNER {id} {}", spec.raft));
    let (voters_now, learners) = members(dir);
    assert!(
        learners.split(',').any(|l| l == id.to_string()),
        "{learners}"
    );
    assert!(!voters_now.split(',').any(|v| v == id.to_string()));
    admin(dir, &format!("PROMOTE {id}"));
    dir.lock().insert(id, spec.client);
}

#[test]
fn grow_to_five_and_replace_a_node_while_clients_write() {
    let mut c = cluster(&[]);
    let dir: Directory = Arc::new(Mutex::new(
        c.nodes.iter().map(|(&id, n)| (id, n.client)).collect(),
    ));
    // Refusals first: a node that was never a learner cannot be promoted.
    let refused = to_leader(&dir, "PROMOTE 9", Duration::from_secs(10)).unwrap();
    assert!(refused.contains("not a learner"), "{refused}");
    assert!(
        to_leader(&dir, "ADD_LEARNER 9 nowhere", Duration::from_secs(5))
            .unwrap()
            .starts_with("ERR bad address")
    );
    assert_eq!(
        request(c.nodes[&1].client, "", Duration::from_secs(5)).unwrap(),
        "ERR empty request"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(dir.clone(), stop.clone());

    grow(&mut c, &dir, 4, &[1, 2, 3]);
    grow(&mut c, &dir, 5, &[1, 2, 3, 4]);
    assert_eq!(members(&dir), ("1,2,3,4,5".into(), "".into()));

    // Replace node 1 (add first, then remove: five voters never drop below four working).
    grow(&mut c, &dir, 6, &[1, 2, 3, 4, 5]);
    admin(&dir, "REMOVE 1");
    dir.lock().remove(&1);
    c.kill(1);
    assert_eq!(members(&dir), ("2,3,4,5,6".into(), "".into()));
    // Leadership moves around the new configuration too.
    admin(&dir, "TRANSFER 6");

    // Keep writing a little in the final configuration, then check every acknowledged write.
    let before = Instant::now();
    while before.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let acked = w.join().expect("writer");
    assert!(
        acked.len() >= 20,
        "only {} writes acknowledged",
        acked.len()
    );
    let six = c.nodes[&6].client;
    for i in acked {
        let a = request(six, &format!("GET w-{i}"), Duration::from_secs(10)).unwrap();
        assert_eq!(a, format!("VALUE {i}"), "w-{i} on the replacement node");
    }
    let addrs = to_leader(&dir, "MEMBERS", Duration::from_secs(5)).unwrap();
    assert!(
        addrs.contains(&format!("6={}", c.nodes[&6].raft)),
        "{addrs}"
    );
}

fn manager(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_raft-manager"))
        .args(args)
        .output()
        .expect("run raft-manager");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "raft-manager {args:?}: {text}");
    text
}

#[test]
fn a_new_cluster_starts_from_an_exported_snapshot() {
    let old = cluster(&["--snapshot-entries", "20"]);
    let dir: Directory = Arc::new(Mutex::new(
        old.nodes.iter().map(|(&id, n)| (id, n.client)).collect(),
    ));
    for i in 0..60 {
        let a = to_leader(&dir, &format!("PUT k{i} v{i}"), Duration::from_secs(10)).unwrap();
        assert_eq!(a, "OK");
    }
    // Export from a running node once it has a snapshot (taken every 20 applied entries).
    let file = std::env::temp_dir().join(format!("raft-kv-backup-{}.snap", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let data = old.nodes[&1].dir.to_string_lossy().into_owned();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_raft-manager"))
            .args(["snapshot", "export", &data, &file.to_string_lossy()])
            .output()
            .expect("run raft-manager");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < end,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(old);

    // Three fresh data directories from the same file, then a new cluster on them.
    let mut new = Cluster::new(bin(), 3, ELECTION_MS, &[]).expect("lay out");
    new.deadline = Instant::now() + Duration::from_secs(60);
    for n in new.nodes.values() {
        let out = manager(&[
            "snapshot",
            "import",
            &file.to_string_lossy(),
            &n.dir.to_string_lossy(),
            "--voters",
            "1,2,3",
            "--id",
            &n.id.to_string(),
        ]);
        assert!(out.contains("imported snapshot"), "{out}");
    }
    new.spawn_all().expect("spawn");
    new.wait_up(&[1, 2, 3], Duration::from_secs(20))
        .expect("up");
    let dir: Directory = Arc::new(Mutex::new(
        new.nodes.iter().map(|(&id, n)| (id, n.client)).collect(),
    ));
    // The snapshot holds a prefix k0..k(n-1) of the writes (taken at an entry boundary).
    let mut n = 0;
    while n < 60 {
        match to_leader(&dir, &format!("GET k{n}"), Duration::from_secs(10)).unwrap() {
            a if a == format!("VALUE v{n}") => n += 1,
            a if a == "NOTFOUND" => break,
            a => panic!("GET k{n}: {a}"),
        }
    }
    assert!(n >= 18, "only {n} keys in the restored cluster");
    for i in n..60 {
        let a = to_leader(&dir, &format!("GET k{i}"), Duration::from_secs(10)).unwrap();
        assert_eq!(a, "NOTFOUND", "k{i} after the snapshot's end");
    }
    // The new cluster is a working cluster.
    assert_eq!(
        to_leader(&dir, "PUT after restore", Duration::from_secs(10)).unwrap(),
        "OK"
    );
    for n in new.nodes.values() {
        let a = request(n.client, "GET after", Duration::from_secs(10)).unwrap();
        assert_eq!(a, "VALUE restore");
    }
    // Importing twice into the same directory is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_raft-manager"))
        .args([
            "snapshot",
            "import",
            &file.to_string_lossy(),
            &new.nodes[&1].dir.to_string_lossy(),
            "--voters",
            "1,2,3",
            "--id",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a store"));
    let _ = std::fs::remove_file(&file);
}
