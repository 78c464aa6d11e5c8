//! Test helper for `tests/crash_kill.rs`: opens a `DiskStorage` in DIR, appends entries in a
//! loop (taking a snapshot now and then) and prints `ack <last durable index>` after every
//! `sync()`. The parent SIGKILLs it at random moments and checks every acknowledged entry.
//!
//! Usage: `raft-crash-writer DIR SEED`. Entry `i` has term 1 and payload
//! [`payload`]`(i)`; a snapshot at index `s` has data `snapshot-<s>` repeated.

use raft::core::{Entry, EntryKind, SnapshotMeta, Storage};
use raft::storage::{DiskOptions, DiskStorage, LogStore};
use std::io::Write;
use std::path::PathBuf;

/// Payload of entry `i` (shared convention with the test).
fn payload(i: u64) -> Vec<u8> {
    let len = (i * 7919 % 300) as usize;
    let mut v = format!("entry-{i}-").into_bytes();
    v.extend((0..len).map(|k| (i as usize + k) as u8));
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(&args[1]);
    let mut rng: u64 = args[2].parse::<u64>().unwrap() | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let opts = DiskOptions {
        segment_bytes: 16 << 10,
        cache_bytes: 8 << 10,
        ..Default::default()
    };
    let s = DiskStorage::open(&dir, opts).expect("open store");
    let out = std::io::stdout();
    loop {
        let first = s.last_index() + 1;
        let n = 1 + next() % 16;
        let batch: Vec<Entry> = (first..first + n)
            .map(|i| Entry {
                term: 1,
                index: i,
                kind: EntryKind::Normal,
                data: payload(i).into(),
            })
            .collect();
        s.append(&batch).expect("append");
        s.sync().expect("sync");
        let last = s.last_index();
        {
            let mut o = out.lock();
            writeln!(o, "ack {last}").unwrap();
            o.flush().unwrap();
        }
        if next() % 40 == 0 {
            let meta = SnapshotMeta {
                index: last,
                term: 1,
                ..Default::default()
            };
            let data = format!("snapshot-{last}").repeat(50).into_bytes();
            s.create_snapshot(meta, &mut &data[..], 64)
                .expect("snapshot");
        }
    }
}
