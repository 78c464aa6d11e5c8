//! A storage conformance suite: the same behavioural checks for every [`LogStore`].
//!
//! Call [`conformance_suite`] from a test with a factory returning a fresh, empty store
//! (bootstrapped with no members). It panics on the first failed check. It is run against
//! [`crate::core::MemStorage`] and [`super::DiskStorage`] in `tests/storage.rs`.

use super::LogStore;
use crate::core::{ConfState, Entry, EntryKind, HardState, SnapshotMeta, StorageError};
use std::io::Read;

/// An entry whose payload is derived from its index and term.
pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: format!("entry-{index}-{term}").into_bytes().into(),
    }
}

/// Entries `lo..=hi` with term `term`.
pub fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..=hi).map(|i| entry(i, term)).collect()
}

fn read_all(r: &mut dyn Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).expect("read snapshot");
    v
}

/// Runs every check, each against a fresh store from `make`.
pub fn conformance_suite<S: LogStore>(make: impl Fn() -> S) {
    check_empty(&make());
    check_append_and_read(&make());
    check_suffix_replacement(&make());
    check_hard_state(&make());
    check_create_snapshot(&make());
    check_incoming_snapshot_resets_log(&make());
    check_incoming_snapshot_keeps_log(&make());
    check_incoming_snapshot_bad_checksum(&make());
}

/// A fresh store is empty.
pub fn check_empty<S: LogStore>(s: &S) {
    assert_eq!(s.first_index(), 1);
    assert_eq!(s.last_index(), 0);
    assert_eq!(s.term(0), Ok(0));
    assert_eq!(s.entries(1, 1, u64::MAX), Ok(vec![]));
    assert_eq!(s.entries(1, 2, u64::MAX), Err(StorageError::Unavailable));
    assert_eq!(s.snapshot_meta().index, 0);
    assert!(s.open_snapshot().unwrap().is_none());
    assert!(s.partial_snapshot().is_none());
    assert_eq!(s.initial_state().unwrap().0, HardState::default());
}

/// Appended entries read back by range, term and byte cap.
pub fn check_append_and_read<S: LogStore>(s: &S) {
    let mut es = entries(1, 5, 1);
    es.extend(entries(6, 10, 2));
    s.append(&es[..4]).unwrap();
    s.append(&es[4..]).unwrap();
    s.sync().unwrap();
    assert_eq!(s.first_index(), 1);
    assert_eq!(s.last_index(), 10);
    assert_eq!(s.entries(1, 11, u64::MAX).unwrap(), es);
    assert_eq!(s.entries(3, 7, u64::MAX).unwrap(), es[2..6].to_vec());
    assert_eq!(s.term(5), Ok(1));
    assert_eq!(s.term(6), Ok(2));
    assert_eq!(s.term(11), Err(StorageError::Unavailable));
    assert_eq!(s.entries(0, 2, u64::MAX), Err(StorageError::Compacted));
    assert_eq!(s.entries(1, 12, u64::MAX), Err(StorageError::Unavailable));
    // Byte cap: always at least one entry, never more than the cap beyond the first.
    assert_eq!(s.entries(1, 11, 0).unwrap(), es[..1].to_vec());
    let two = es[0].size() + es[1].size();
    assert_eq!(s.entries(1, 11, two).unwrap(), es[..2].to_vec());
    // A gap is refused.
    assert!(s.append(&[entry(12, 2)]).is_err());
    assert_eq!(s.last_index(), 10);
}

/// Appending at an existing index replaces the suffix.
pub fn check_suffix_replacement<S: LogStore>(s: &S) {
    s.append(&entries(1, 10, 1)).unwrap();
    s.append(&entries(6, 8, 2)).unwrap();
    s.sync().unwrap();
    assert_eq!(s.last_index(), 8);
    let mut want = entries(1, 5, 1);
    want.extend(entries(6, 8, 2));
    assert_eq!(s.entries(1, 9, u64::MAX).unwrap(), want);
    s.append(&entries(9, 9, 3)).unwrap();
    assert_eq!(s.term(9), Ok(3));
    assert_eq!(s.last_index(), 9);
    // Replacing from the very first entry.
    s.append(&entries(1, 2, 4)).unwrap();
    assert_eq!(s.last_index(), 2);
    assert_eq!(s.entries(1, 3, u64::MAX).unwrap(), entries(1, 2, 4));
}

/// The hard state round-trips.
pub fn check_hard_state<S: LogStore>(s: &S) {
    let hs = HardState {
        term: 7,
        vote: 3,
        commit: 0,
    };
    s.set_hard_state(hs).unwrap();
    assert_eq!(s.initial_state().unwrap().0, hs);
}

/// A local snapshot stores its data, computes size/checksum and compacts the log.
pub fn check_create_snapshot<S: LogStore>(s: &S) {
    s.append(&entries(1, 10, 1)).unwrap();
    s.sync().unwrap();
    let data = b"state machine at 8".repeat(100);
    let meta = SnapshotMeta {
        index: 8,
        term: 1,
        conf: ConfState::with_voters([1, 2, 3]),
        conf_index: 0,
        size: 0,
        checksum: 0,
    };
    let stored = s.create_snapshot(meta.clone(), &mut &data[..], 2).unwrap();
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(stored.checksum, crate::crc32c::crc32c(&data));
    assert_eq!(s.snapshot_meta(), stored);
    assert!(s.first_index() <= 7, "keep_trailing entries must stay");
    assert!(s.first_index() >= 1);
    assert!(s.term(s.first_index() - 1).is_ok());
    assert_eq!(s.last_index(), 10);
    assert_eq!(
        s.entries(s.first_index(), 11, u64::MAX).unwrap(),
        entries(s.first_index(), 10, 1)
    );
    let (m, mut r) = s.open_snapshot().unwrap().expect("snapshot");
    assert_eq!(m, stored);
    assert_eq!(read_all(&mut r), data);
    assert_eq!(s.snapshot_chunk(8, 10, 20).unwrap(), data[10..30].to_vec());
    assert_eq!(
        s.snapshot_chunk(7, 0, 20),
        Err(StorageError::SnapshotOutOfDate)
    );
    assert_eq!(
        s.create_snapshot(meta, &mut &data[..], 0),
        Err(StorageError::SnapshotOutOfDate)
    );
    s.append(&entries(11, 12, 2)).unwrap();
    assert_eq!(s.last_index(), 12);
}

fn incoming_meta(index: u64, term: u64, data: &[u8]) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        conf: ConfState::with_voters([1, 2]),
        conf_index: index,
        size: data.len() as u64,
        checksum: crate::crc32c::crc32c(data),
    }
}

/// A chunked incoming snapshot past the log's end replaces the log.
pub fn check_incoming_snapshot_resets_log<S: LogStore>(s: &S) {
    s.append(&entries(1, 5, 1)).unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let meta = incoming_meta(20, 3, &data);
    assert!(!s.write_snapshot_chunk(&meta, 100, &data[100..200]).unwrap());
    assert!(s.write_snapshot_chunk(&meta, 0, &data[..4000]).unwrap());
    assert_eq!(s.partial_snapshot(), Some((meta.clone(), 4000)));
    assert!(!s
        .write_snapshot_chunk(&meta, 3000, &data[3000..5000])
        .unwrap());
    assert!(s.write_snapshot_chunk(&meta, 4000, &data[4000..]).unwrap());
    s.finish_incoming_snapshot(&meta).unwrap();
    assert!(s.partial_snapshot().is_none());
    assert_eq!(s.snapshot_meta(), meta);
    assert_eq!(s.first_index(), 21);
    assert_eq!(s.last_index(), 20);
    assert_eq!(s.term(20), Ok(3));
    let (hs, conf) = s.initial_state().unwrap();
    assert!(hs.commit >= 20);
    assert_eq!(conf, meta.conf);
    let (_, mut r) = s.open_snapshot().unwrap().expect("snapshot");
    assert_eq!(read_all(&mut r), data);
    s.append(&entries(21, 22, 3)).unwrap();
    assert_eq!(s.entries(21, 23, u64::MAX).unwrap(), entries(21, 22, 3));
}

/// An incoming snapshot whose last entry the log holds keeps the rest of the log.
pub fn check_incoming_snapshot_keeps_log<S: LogStore>(s: &S) {
    s.append(&entries(1, 10, 1)).unwrap();
    let data = b"snap at 5".to_vec();
    let meta = incoming_meta(5, 1, &data);
    assert!(s.write_snapshot_chunk(&meta, 0, &data).unwrap());
    s.finish_incoming_snapshot(&meta).unwrap();
    assert_eq!(s.last_index(), 10);
    assert!(s.first_index() <= 6);
    assert_eq!(s.entries(6, 11, u64::MAX).unwrap(), entries(6, 10, 1));
    assert_eq!(s.term(5), Ok(1));
}

/// A snapshot that fails its checksum is refused and discarded.
pub fn check_incoming_snapshot_bad_checksum<S: LogStore>(s: &S) {
    s.append(&entries(1, 3, 1)).unwrap();
    let data = vec![42u8; 3000];
    let mut meta = incoming_meta(9, 2, &data);
    meta.checksum ^= 1;
    assert!(s.write_snapshot_chunk(&meta, 0, &data).unwrap());
    assert!(s.finish_incoming_snapshot(&meta).is_err());
    assert!(s.partial_snapshot().is_none());
    assert_eq!(s.snapshot_meta().index, 0);
    assert_eq!(s.last_index(), 3);
    assert_eq!(s.entries(1, 4, u64::MAX).unwrap(), entries(1, 3, 1));
}
