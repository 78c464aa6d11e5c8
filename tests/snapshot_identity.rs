//! One snapshot identity (index, term, size, checksum) shared by the core and the store: a
//! follower that partly received one leader's snapshot and then gets a different snapshot
//! with the same index and term from a new leader restarts the transfer and installs the new
//! one, instead of waiting forever for chunks the store refuses. Also: snapshot data is
//! verified before a state machine can read any of it.

use raft::core::{ConfState, Config, Message, MessageBody, RawNode, SnapshotMeta, Storage};
use raft::storage::{DiskOptions, DiskStorage, LogStore};
use std::io::Read;
use std::sync::Arc;
use store_support::TempDir;

#[path = "support/store.rs"]
mod store_support;

fn opts() -> DiskOptions {
    DiskOptions {
        bootstrap: ConfState::with_voters([1, 2, 3]),
        ..Default::default()
    }
}

fn meta_of(data: &[u8]) -> SnapshotMeta {
    SnapshotMeta {
        index: 10,
        term: 2,
        conf: ConfState::with_voters([1, 2, 3]),
        conf_index: 1,
        size: data.len() as u64,
        checksum: raft::crc32c::crc32c(data),
    }
}

fn chunk(from: u64, term: u64, meta: &SnapshotMeta, data: &[u8], at: usize, n: usize) -> Message {
    let end = (at + n).min(data.len());
    Message {
        from_incarnation: 0,
        to_incarnation: 0,
        from,
        to: 2,
        term,
        body: MessageBody::Snapshot {
            meta: meta.clone(),
            offset: at as u64,
            data: data[at..end].to_vec(),
            done: end == data.len(),
        },
    }
}

/// Writes a ready's chunks the way the runtime's storage thread does and reports back.
fn persist(node: &mut RawNode<Arc<DiskStorage>>, store: &DiskStorage) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    while node.has_ready() {
        let rd = node.ready();
        for c in &rd.snapshot_chunks {
            let ok = store
                .write_snapshot_chunk(&c.meta, c.offset, &c.data)
                .unwrap();
            out.push((c.offset, ok));
            if !ok {
                node.snapshot_received(&c.meta, false);
            } else if c.done {
                let res = store.finish_incoming_snapshot(&c.meta);
                node.snapshot_received(&c.meta, res.is_ok());
            }
        }
        if let Some(hs) = rd.hard_state {
            store.set_hard_state(hs).unwrap();
        }
        store.sync().unwrap();
        node.on_persisted(rd.number);
        if rd.snapshot.is_some() || !rd.committed_entries.is_empty() {
            node.on_applied(node.raft.log.committed);
        }
    }
    out
}

#[test]
fn a_different_snapshot_with_the_same_index_and_term_restarts_the_transfer() {
    let d = TempDir::new("same-index");
    let store = Arc::new(DiskStorage::open(d.path(), opts()).unwrap());
    let mut node = RawNode::new(Config::new(2), store.clone()).unwrap();
    let a: Vec<u8> = (0..100u32).map(|i| i as u8).collect();
    let b: Vec<u8> = (0..120u32).map(|i| (i * 7) as u8).collect();
    let (ma, mb) = (meta_of(&a), meta_of(&b));
    assert!(!ma.same_snapshot(&mb));

    // Leader 1 sends half of snapshot A, then is replaced.
    node.step(chunk(1, 2, &ma, &a, 0, 50));
    assert_eq!(persist(&mut node, &store), vec![(0, true)]);
    assert_eq!(
        store.partial_snapshot().map(|(m, n)| (m.size, n)),
        Some((100, 50))
    );

    // Leader 3 sends its own snapshot B (same index and term) from the start.
    node.step(chunk(3, 3, &mb, &b, 0, 60));
    assert_eq!(
        persist(&mut node, &store),
        vec![(0, true)],
        "the new snapshot starts a new transfer in the core and the store alike"
    );
    node.step(chunk(3, 3, &mb, &b, 60, 60));
    assert_eq!(persist(&mut node, &store), vec![(60, true)]);
    let installed = store.snapshot_meta();
    assert!(installed.same_snapshot(&mb), "{installed:?}");
    let (_, mut r) = store.open_snapshot().unwrap().unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(got, b);
}

#[test]
fn damaged_local_snapshot_is_refused_before_any_byte_is_read() {
    let d = TempDir::new("verify");
    let data = vec![9u8; 50_000];
    {
        let s = DiskStorage::open(d.path(), opts()).unwrap();
        s.append(&raft::storage::conformance::entries(1, 10, 1))
            .unwrap();
        s.sync().unwrap();
        s.create_snapshot(
            SnapshotMeta {
                index: 10,
                term: 1,
                ..Default::default()
            },
            &mut &data[..],
            0,
        )
        .unwrap();
    }
    // Flip a byte near the end of the data: a restore that stops early would never see it.
    let snap = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "snap"))
        .unwrap();
    let mut bytes = std::fs::read(&snap).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    std::fs::write(&snap, bytes).unwrap();
    let e = match DiskStorage::open(d.path(), opts()) {
        Ok(s) => match s.open_snapshot() {
            Ok(_) => panic!("a damaged snapshot was handed out for reading"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    assert!(e.contains("checksum"), "{e}");
}
