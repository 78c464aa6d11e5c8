//! Durable state that knows whose it is: a data directory of another cluster or node, one
//! missing a file its own records require, or a directory that is not a store at all is
//! refused (by `DiskStorage::open`, `Node::start`, `raft-kv` and `raft-manager`), and damage a
//! power loss can cause in unsynced bytes is a torn tail, not corruption. Every test works on
//! real files in a temporary directory.

use raft::core::Storage;
use raft::core::{ConfState, HardState, Role, StorageError};
use raft::runtime::{Committed, MessageSink, Node, NodeConfig, StateMachine};
use raft::storage::conformance::entries;
use raft::storage::segment::HEADER_LEN;
use raft::storage::{DiskOptions, DiskStorage, LogStore};
use raft::transport::SendClass;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store_support::{manager, wal_files, TempDir};

#[path = "support/store.rs"]
mod store_support;

/// Options of a store owned by `node` of `cluster`.
fn owned(cluster: u64, node: u64) -> DiskOptions {
    DiskOptions {
        cluster_id: Some(cluster),
        node_id: Some(node),
        bootstrap: ConfState::with_voters([1]),
        ..Default::default()
    }
}

/// A store of cluster 1 node 1 holding `n` entries of term 1, committed, hard state term 1
/// vote 1.
fn populated(dir: &Path, n: u64) {
    let s = DiskStorage::open(dir, owned(1, 1)).unwrap();
    s.append(&entries(1, n, 1)).unwrap();
    s.sync().unwrap();
    s.set_hard_state(HardState {
        term: 1,
        vote: 1,
        commit: n,
    })
    .unwrap();
}

fn open_err(dir: &Path, opts: DiskOptions) -> StorageError {
    match DiskStorage::open(dir, opts) {
        Ok(_) => panic!("{} opened but should have been refused", dir.display()),
        Err(e) => e,
    }
}

/// Starts `raft-kv` as node 1 of a one-node cluster on `dir` and waits (bounded) for it to
/// exit; returns its exit code and output. A server that does not exit within 10 s is killed
/// and reported as code -1.
fn raft_kv(dir: &Path, cluster: u64) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raft-kv"))
        .args([
            "--id",
            "1",
            "--peers",
            "1=127.0.0.1:0",
            "--client",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .args(["--cluster-id", &cluster.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    (code, text)
}

fn manager_refuses(dir: &Path, what: &str) {
    let (code, out) = manager(&[Path::new("inspect"), dir]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("REFUSED") && out.contains(what), "{out}");
    assert!(!out.contains("all checksums OK"), "{out}");
}

#[test]
fn data_dir_of_another_cluster_or_node_is_refused() {
    let d = TempDir::new("owner");
    populated(d.path(), 17);
    let id = DiskStorage::open(d.path(), owned(1, 1)).unwrap().identity();
    assert_eq!((id.cluster_id, id.node_id), (1, 1));
    for (cluster, node) in [(2, 1), (1, 2)] {
        let e = open_err(d.path(), owned(cluster, node));
        let msg = e.to_string();
        assert!(matches!(e, StorageError::WrongOwner(_)), "{msg}");
        assert!(msg.contains("cluster 1 node 1"), "{msg}");
        assert!(
            msg.contains(&format!("cluster {cluster} node {node}")),
            "{msg}"
        );
    }
    // The right owner still opens it, with everything in place.
    let s = DiskStorage::open(d.path(), owned(1, 1)).unwrap();
    assert_eq!(s.last_index(), 17);
    assert_eq!(s.identity(), id, "the identity is written once");
    drop(s);

    // Through raft-kv: the server refuses to start on another cluster's directory.
    let (code, out) = raft_kv(d.path(), 2);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("cluster 1 node 1") && out.contains("cluster 2 node 1"),
        "{out}"
    );
}

/// A state machine that records nothing (the tests only start and stop nodes).
struct Nop;

impl StateMachine for Nop {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        Ok(vec![None; batch.len()])
    }
    fn snapshot(&mut self, _out: &mut dyn Write) -> Result<(), String> {
        Ok(())
    }
    fn restore(&mut self, _input: &mut dyn Read) -> Result<(), String> {
        Ok(())
    }
}

struct Nowhere;

impl MessageSink for Nowhere {
    fn send(&self, _to: u64, _bytes: Vec<u8>, _class: SendClass) {}
}

fn node_cfg(dir: &Path, cluster: u64) -> NodeConfig {
    let mut c = NodeConfig::new(1, [1]);
    c.data_dir = Some(dir.to_path_buf());
    c.cluster_id = cluster;
    c.election_timeout = Duration::from_millis(100);
    c.heartbeat_interval = Duration::from_millis(20);
    c
}

#[test]
fn node_start_refuses_another_clusters_data_dir() {
    let d = TempDir::new("node");
    let dir = d.sub("data");
    {
        let n = Node::start(node_cfg(&dir, 7), Box::new(Nop), Arc::new(Nowhere)).unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while n.status().unwrap().role != Role::Leader {
            assert!(Instant::now() < end, "no leader");
            std::thread::sleep(Duration::from_millis(5));
        }
        n.propose(b"x".to_vec(), Duration::from_secs(5)).unwrap();
        n.shutdown().unwrap();
    }
    let err = match Node::start(node_cfg(&dir, 8), Box::new(Nop), Arc::new(Nowhere)) {
        Ok(_) => panic!("started on another cluster's data dir"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("cluster 7 node 1") && err.contains("cluster 8 node 1"),
        "{err}"
    );
    let n = Node::start(node_cfg(&dir, 7), Box::new(Nop), Arc::new(Nowhere)).unwrap();
    n.shutdown().unwrap();
}

#[test]
fn deleted_only_wal_segment_is_refused() {
    let d = TempDir::new("nowal");
    populated(d.path(), 60);
    let segs = wal_files(d.path());
    assert_eq!(segs.len(), 1);
    fs::remove_file(&segs[0]).unwrap();
    let e = open_err(d.path(), owned(1, 1));
    assert!(matches!(e, StorageError::Missing(_)), "{e}");
    assert!(
        e.to_string().contains("wal-00000000000000000001.log"),
        "{e}"
    );
    manager_refuses(d.path(), "wal-00000000000000000001.log is missing");
    let (code, out) = raft_kv(d.path(), 1);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("is missing"), "{out}");
}

#[test]
fn deleted_last_of_several_segments_is_refused() {
    let d = TempDir::new("lastwal");
    {
        let opts = DiskOptions {
            segment_bytes: 2048,
            ..owned(1, 1)
        };
        let s = DiskStorage::open(d.path(), opts).unwrap();
        s.append(&entries(1, 200, 1)).unwrap();
        s.sync().unwrap();
    }
    let segs = wal_files(d.path());
    assert!(segs.len() > 2, "{segs:?}");
    fs::remove_file(segs.last().unwrap()).unwrap();
    let e = open_err(d.path(), owned(1, 1));
    assert!(matches!(e, StorageError::Missing(_)), "{e}");
    manager_refuses(d.path(), "is missing");
}

#[test]
fn deleted_hard_state_is_refused() {
    let d = TempDir::new("nohs");
    populated(d.path(), 5);
    fs::remove_file(d.sub("hardstate")).unwrap();
    let e = open_err(d.path(), owned(1, 1));
    assert!(matches!(e, StorageError::Missing(_)), "{e}");
    assert!(e.to_string().contains("vote twice"), "{e}");
    manager_refuses(d.path(), "hardstate file is missing");
    let (code, out) = raft_kv(d.path(), 1);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("hardstate file is missing"), "{out}");
}

#[test]
fn deleted_hard_state_of_a_store_that_only_voted_is_refused() {
    // No log at all: only the vote says this node took part in an election.
    let d = TempDir::new("vote");
    {
        let s = DiskStorage::open(d.path(), owned(1, 1)).unwrap();
        s.set_hard_state(HardState {
            term: 4,
            vote: 3,
            commit: 0,
        })
        .unwrap();
    }
    fs::remove_file(d.sub("hardstate")).unwrap();
    assert!(matches!(
        open_err(d.path(), owned(1, 1)),
        StorageError::Missing(_)
    ));
}

#[test]
fn deleted_identity_or_store_meta_is_refused() {
    let d = TempDir::new("noid");
    populated(d.path(), 5);
    fs::remove_file(d.sub("identity")).unwrap();
    assert!(matches!(
        open_err(d.path(), owned(1, 1)),
        StorageError::Missing(_)
    ));
    manager_refuses(d.path(), "identity file is missing");

    let d = TempDir::new("nometa");
    populated(d.path(), 5);
    fs::remove_file(d.sub("store.meta")).unwrap();
    assert!(matches!(
        open_err(d.path(), owned(1, 1)),
        StorageError::Missing(_)
    ));
    manager_refuses(d.path(), "store.meta");
}

#[test]
fn committed_entries_missing_from_a_cut_log_are_refused() {
    let d = TempDir::new("cut");
    populated(d.path(), 60);
    // Cut the (only, fully synced) segment after record 10.
    let seg = wal_files(d.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let per = (len - HEADER_LEN) / 60;
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(HEADER_LEN + 10 * per)
        .unwrap();
    let e = open_err(d.path(), owned(1, 1));
    assert!(e.to_string().contains("synced"), "{e}");
}

#[test]
fn tools_refuse_what_is_not_a_data_dir() {
    let d = TempDir::new("tools");
    let store = d.sub("store");
    populated(&store, 10);
    // A directory that holds something else (like the system temp dir).
    let other = d.sub("other");
    fs::create_dir_all(other.join("sub")).unwrap();
    fs::write(other.join("notes.txt"), b"hello").unwrap();
    manager_refuses(&other, "not a raft-manager data directory");
    let (code, out) = manager(&[Path::new("verify"), &store, &other]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("logs agree"), "{out}");
    // A missing path is "not found", not corruption.
    let missing = d.sub("missing");
    let (code, out) = manager(&[Path::new("inspect"), &missing]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not found") && !out.contains("CORRUPT"),
        "{out}"
    );
    // A file is not a data directory either.
    manager_refuses(&other.join("notes.txt"), "not a directory");
    // Opening a store refuses to create one among foreign files.
    let e = open_err(&other, owned(1, 1));
    assert!(matches!(e, StorageError::NotADataDir(_)), "{e}");
    assert!(!other.join("store.meta").exists());
    // The good store is still fine.
    let (code, out) = manager(&[Path::new("inspect"), &store]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("identity: cluster 1 node 1 incarnation "),
        "{out}"
    );
}

#[test]
fn verify_refuses_replicas_of_different_clusters() {
    let d = TempDir::new("clusters");
    let (a, b, c) = (d.sub("a"), d.sub("b"), d.sub("c"));
    for (dir, cluster, node) in [(&a, 1, 1), (&b, 1, 2), (&c, 2, 3)] {
        let s = DiskStorage::open(dir, owned(cluster, node)).unwrap();
        s.append(&entries(1, 17, 1)).unwrap();
        s.sync().unwrap();
    }
    let (code, out) = manager(&[Path::new("verify"), &a, &b]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("logs agree"), "{out}");
    let (code, out) = manager(&[Path::new("verify"), &a, &b, &c]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("different clusters") && !out.contains("logs agree"),
        "{out}"
    );
    // A copied directory is not a replica either.
    let copy = d.sub("copy");
    fs::create_dir_all(&copy).unwrap();
    for f in fs::read_dir(&a).unwrap() {
        let f = f.unwrap();
        fs::copy(f.path(), copy.join(f.file_name())).unwrap();
    }
    let (code, out) = manager(&[Path::new("verify"), &a, &copy]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("copies of one directory"), "{out}");
}

/// Writes `n` entries after `synced` synced ones without syncing them (they reach the file
/// when the store is dropped, as after a crash of the process before its fsync).
fn synced_then_unsynced(dir: &Path, synced: u64, n: u64) {
    let s = DiskStorage::open(dir, owned(1, 1)).unwrap();
    s.append(&entries(1, synced, 1)).unwrap();
    s.sync().unwrap();
    s.append(&entries(synced + 1, synced + n, 1)).unwrap();
}

#[test]
fn power_loss_hole_in_unsynced_pages_is_a_torn_tail() {
    let d = TempDir::new("hole");
    synced_then_unsynced(d.path(), 20, 200);
    let seg = wal_files(d.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let per = (len - HEADER_LEN) / 220;
    // A page of the unsynced part never reached the disk (zeros), later ones did.
    let hole = HEADER_LEN + 40 * per + 5;
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&vec![0u8; 4096.min((len - hole - 100) as usize)], hole)
        .unwrap();
    drop(f);
    let s = DiskStorage::open(d.path(), owned(1, 1)).unwrap();
    assert_eq!(s.last_index(), 40, "the log ends before the hole");
    assert_eq!(s.entries(1, 41, u64::MAX).unwrap(), entries(1, 40, 1));
    // The store keeps working from there.
    s.append(&entries(41, 45, 2)).unwrap();
    s.sync().unwrap();
    drop(s);
    let s = DiskStorage::open(d.path(), owned(1, 1)).unwrap();
    assert_eq!(s.last_index(), 45);
    assert_eq!(s.term(45), Ok(2));
}

#[test]
fn stale_bytes_in_unsynced_pages_are_a_torn_tail() {
    let d = TempDir::new("stale");
    synced_then_unsynced(d.path(), 20, 100);
    let seg = wal_files(d.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let per = (len - HEADER_LEN) / 120;
    let at = HEADER_LEN + 30 * per + 3;
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&[0xA5; 512], at).unwrap();
    drop(f);
    let s = DiskStorage::open(d.path(), owned(1, 1)).unwrap();
    assert_eq!(s.last_index(), 30);
}

#[test]
fn garbage_appended_after_the_last_record_is_truncated() {
    let d = TempDir::new("garbage");
    populated(d.path(), 30);
    let seg = wal_files(d.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0xFF; 300]).unwrap();
    drop(f);
    let (code, out) = manager(&[Path::new("inspect"), d.path()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("torn tail"), "{out}");
    let s = DiskStorage::open(d.path(), owned(1, 1)).unwrap();
    assert_eq!(s.last_index(), 30);
    assert_eq!(fs::metadata(&seg).unwrap().len(), len, "garbage truncated");
}

#[test]
fn damage_before_the_synced_length_is_still_refused() {
    let d = TempDir::new("synced");
    synced_then_unsynced(d.path(), 50, 10);
    let seg = wal_files(d.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let per = (len - HEADER_LEN) / 60;
    let at = HEADER_LEN + 30 * per + 20;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    drop(f);
    let e = open_err(d.path(), owned(1, 1)).to_string();
    assert!(e.contains("not a torn write"), "{e}");
}
