//! Integration tests of the durable storage engine against its public API.

use raft::core::{ConfState, Entry, EntryKind, HardState, MemStorage, SnapshotMeta, Storage};
use raft::storage::conformance::{conformance_suite, entries, entry};
use raft::storage::{DiskOptions, DiskStorage, LogStore};
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use store_support::{files_with_prefix, flip_byte, manager, name, wal_files, TempDir};

#[path = "support/store.rs"]
mod store_support;

fn small_opts() -> DiskOptions {
    DiskOptions {
        segment_bytes: 4096,
        cache_bytes: 1024,
        bootstrap: ConfState::with_voters([1, 2, 3]),
        ..Default::default()
    }
}

/// Options for a store owned by `node` of `cluster`.
fn owned(cluster: u64, node: u64) -> DiskOptions {
    DiskOptions {
        cluster_id: Some(cluster),
        node_id: Some(node),
        ..small_opts()
    }
}

fn open(dir: &Path) -> DiskStorage {
    DiskStorage::open(dir, small_opts()).expect("open store")
}

fn open_err(dir: &Path) -> String {
    match DiskStorage::open(dir, small_opts()) {
        Ok(_) => panic!("store opened but should have been refused"),
        Err(e) => e.to_string(),
    }
}

/// Entries with growing terms and sizes.
fn varied(lo: u64, hi: u64) -> Vec<Entry> {
    (lo..=hi)
        .map(|i| Entry {
            term: 1 + i / 100,
            index: i,
            kind: if i % 17 == 0 {
                EntryKind::ConfChange
            } else {
                EntryKind::Normal
            },
            data: vec![(i % 251) as u8; (i % 97) as usize].into(),
        })
        .collect()
}

fn record_len(e: &Entry) -> u64 {
    8 + 17 + e.data.len() as u64
}

/// A store (small segments) holding entries 1..=`n` of term 1, synced.
fn synced_log(dir: &Path, n: u64) -> DiskStorage {
    let s = open(dir);
    s.append(&entries(1, n, 1)).unwrap();
    s.sync().unwrap();
    s
}

/// Takes a local snapshot at `index` (term 1) holding `data`, compacting everything before.
fn local_snapshot(s: &DiskStorage, index: u64, data: &[u8]) -> SnapshotMeta {
    let meta = SnapshotMeta {
        index,
        term: 1,
        ..Default::default()
    };
    s.create_snapshot(meta, &mut &data[..], 0).unwrap()
}

/// The bytes of the store's snapshot.
fn snapshot_bytes(s: &DiskStorage) -> Vec<u8> {
    let (_, mut r) = s.open_snapshot().unwrap().unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    got
}

/// 49 synced entries, then entry 50 written but never synced (the only bytes a crash may
/// tear); returns the last segment and its length.
fn unsynced_tail(dir: &Path) -> (PathBuf, u64) {
    let s = synced_log(dir, 49);
    s.append(&entries(50, 50, 1)).unwrap();
    drop(s);
    let last = wal_files(dir).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    (last, len)
}

/// A crash right after an incoming snapshot was installed (renamed into place) and before
/// anything else happened.
fn installed_without_log_reset(dir: &Path, meta: &SnapshotMeta) {
    fs::rename(
        dir.join("incoming.partial"),
        dir.join(format!("snap-{:020}-{:020}.snap", meta.index, meta.term)),
    )
    .unwrap();
}

#[test]
fn conformance_mem_storage() {
    conformance_suite(|| MemStorage::new_with_conf(ConfState::default()));
}

#[test]
fn conformance_disk_storage() {
    let root = TempDir::new("conformance");
    let n = AtomicU64::new(0);
    conformance_suite(|| {
        let dir = root
            .path()
            .join(n.fetch_add(1, Ordering::Relaxed).to_string());
        DiskStorage::open(&dir, DiskOptions::default()).unwrap()
    });
    // Tiny segments and no cache: every read goes to disk across segment boundaries.
    conformance_suite(|| {
        let dir = root
            .path()
            .join(n.fetch_add(1, Ordering::Relaxed).to_string());
        let opts = DiskOptions {
            segment_bytes: 64,
            cache_bytes: 0,
            ..Default::default()
        };
        DiskStorage::open(&dir, opts).unwrap()
    });
}

#[test]
fn round_trip_across_reopen() {
    let d = TempDir::new("roundtrip");
    let es = varied(1, 600);
    let hs = HardState {
        term: 7,
        vote: 2,
        commit: 450,
    };
    {
        let s = open(d.path());
        assert_eq!(
            s.initial_state().unwrap().1,
            ConfState::with_voters([1, 2, 3])
        );
        for chunk in es.chunks(37) {
            s.append(chunk).unwrap();
        }
        s.set_hard_state(hs).unwrap();
        s.sync().unwrap();
        // Older entries come back from disk (cache is 1 KiB).
        assert_eq!(s.entries(1, 601, u64::MAX).unwrap(), es);
    }
    assert!(wal_files(d.path()).len() > 3, "expected several segments");
    let s = open(d.path());
    let (hs2, conf) = s.initial_state().unwrap();
    assert_eq!(hs2, hs);
    assert_eq!(conf, ConfState::with_voters([1, 2, 3]));
    assert_eq!(s.first_index(), 1);
    assert_eq!(s.last_index(), 600);
    assert_eq!(s.entries(1, 601, u64::MAX).unwrap(), es);
    assert_eq!(s.term(599), Ok(6));
    // The bootstrap option is ignored for an existing directory.
    drop(s);
    let other = DiskOptions {
        bootstrap: ConfState::with_voters([9]),
        ..small_opts()
    };
    let s = DiskStorage::open(d.path(), other).unwrap();
    assert_eq!(
        s.initial_state().unwrap().1,
        ConfState::with_voters([1, 2, 3])
    );
}

#[test]
fn second_open_of_same_dir_is_refused() {
    let d = TempDir::new("lock");
    let _s = open(d.path());
    assert!(open_err(d.path()).contains("already open"));
}

#[test]
fn suffix_replacement_survives_reopen() {
    let d = TempDir::new("suffix");
    {
        let s = synced_log(d.path(), 400);
        let before = wal_files(d.path()).len();
        s.append(&entries(100, 120, 2)).unwrap();
        s.sync().unwrap();
        assert!(wal_files(d.path()).len() < before, "later segments removed");
        assert_eq!(s.last_index(), 120);
    }
    let s = open(d.path());
    assert_eq!(s.last_index(), 120);
    let mut want = entries(1, 99, 1);
    want.extend(entries(100, 120, 2));
    assert_eq!(s.entries(1, 121, u64::MAX).unwrap(), want);
    s.append(&entries(121, 130, 3)).unwrap();
    s.sync().unwrap();
    drop(s);
    let s = open(d.path());
    assert_eq!(s.last_index(), 130);
    assert_eq!(s.term(125), Ok(3));
    assert_eq!(s.term(110), Ok(2));
}

#[test]
fn torn_tail_partial_record_is_truncated() {
    let d = TempDir::new("torn");
    let (last, len) = unsynced_tail(d.path());
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let s = open(d.path());
    assert_eq!(s.last_index(), 49);
    assert_eq!(s.entries(1, 50, u64::MAX).unwrap(), entries(1, 49, 1));
    let e50 = entry(50, 1);
    assert_eq!(
        fs::metadata(&last).unwrap().len(),
        len - record_len(&e50),
        "torn record removed from the file"
    );
    s.append(&entries(50, 51, 2)).unwrap();
    s.sync().unwrap();
    drop(s);
    let s = open(d.path());
    assert_eq!(s.last_index(), 51);
    assert_eq!(s.term(50), Ok(2));
}

#[test]
fn torn_tail_bad_crc_in_last_record_is_truncated() {
    let d = TempDir::new("torncrc");
    let (last, len) = unsynced_tail(d.path());
    flip_byte(&last, len - 2);
    let s = open(d.path());
    assert_eq!(s.last_index(), 49);
    assert_eq!(s.entries(1, 50, u64::MAX).unwrap(), entries(1, 49, 1));
}

#[test]
fn flipped_bit_mid_segment_refuses_with_file_and_offset() {
    let d = TempDir::new("flip");
    let opts = DiskOptions {
        segment_bytes: 1 << 20,
        ..small_opts()
    };
    let es = entries(1, 50, 1);
    {
        let s = DiskStorage::open(d.path(), opts.clone()).unwrap();
        s.append(&es).unwrap();
        s.sync().unwrap();
    }
    let seg = wal_files(d.path()).pop().unwrap();
    // Byte offset of record 20.
    let off: u64 =
        raft::storage::segment::HEADER_LEN + es[..19].iter().map(record_len).sum::<u64>();
    flip_byte(&seg, off + 30);
    let err = match DiskStorage::open(d.path(), opts) {
        Ok(_) => panic!("opened a corrupt store"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&name(&seg)), "{err}");
    assert!(err.contains(&format!("byte offset {off}")), "{err}");
    assert!(err.contains("crc"), "{err}");
}

#[test]
fn damaged_last_record_of_earlier_segment_refuses() {
    let d = TempDir::new("flipearly");
    drop(synced_log(d.path(), 300));
    let segs = wal_files(d.path());
    assert!(segs.len() >= 2);
    let len = fs::metadata(&segs[0]).unwrap().len();
    flip_byte(&segs[0], len - 1);
    let err = open_err(d.path());
    assert!(err.contains(&name(&segs[0])), "{err}");
}

#[test]
fn missing_middle_segment_refuses() {
    let d = TempDir::new("missing");
    drop(synced_log(d.path(), 400));
    let segs = wal_files(d.path());
    assert!(segs.len() >= 3);
    fs::remove_file(&segs[1]).unwrap();
    let err = open_err(d.path());
    assert!(err.contains(&name(&segs[2])), "{err}");
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn bad_segment_header_refuses() {
    let d = TempDir::new("header");
    drop(synced_log(d.path(), 400));
    let segs = wal_files(d.path());
    flip_byte(&segs[1], 2);
    let err = open_err(d.path());
    assert!(err.contains(&name(&segs[1])), "{err}");
    assert!(err.contains("byte offset 0"), "{err}");
}

#[test]
fn snapshot_create_compaction_and_reopen() {
    let d = TempDir::new("snapshot");
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
    let stored;
    {
        let s = synced_log(d.path(), 400);
        let segs_before = wal_files(d.path()).len();
        let meta = SnapshotMeta {
            index: 300,
            term: 1,
            conf: ConfState::with_voters([1, 2]),
            conf_index: 250,
            ..Default::default()
        };
        stored = s.create_snapshot(meta, &mut &data[..], 20).unwrap();
        assert_eq!(stored.size, data.len() as u64);
        assert!(
            wal_files(d.path()).len() < segs_before,
            "segments compacted"
        );
        assert!(s.first_index() <= 281);
        assert!(s.first_index() > 100, "first_index {}", s.first_index());
        assert!(s.term(300).is_ok());
    }
    assert_eq!(files_with_prefix(d.path(), "snap-").len(), 1);
    let s = open(d.path());
    assert_eq!(s.snapshot_meta(), stored);
    let first = s.first_index();
    assert!(first <= 281 && first > 100, "first_index {first}");
    assert_eq!(s.last_index(), 400);
    assert_eq!(
        s.entries(first, 401, u64::MAX).unwrap(),
        entries(first, 400, 1)
    );
    assert_eq!(s.initial_state().unwrap().1, ConfState::with_voters([1, 2]));
    assert!(s.initial_state().unwrap().0.commit >= 300);
    assert_eq!(s.open_snapshot().unwrap().unwrap().0, stored);
    assert_eq!(snapshot_bytes(&s), data);
    // A newer snapshot replaces the old file and compacts everything.
    let meta2 = SnapshotMeta {
        index: 400,
        term: 1,
        ..stored.clone()
    };
    s.create_snapshot(meta2, &mut &b"newer"[..], 0).unwrap();
    assert_eq!(files_with_prefix(d.path(), "snap-").len(), 1);
    assert_eq!(s.first_index(), 401);
    assert!(wal_files(d.path()).is_empty());
    s.append(&entries(401, 410, 2)).unwrap();
    s.sync().unwrap();
    drop(s);
    let s = open(d.path());
    assert_eq!(s.first_index(), 401);
    assert_eq!(s.last_index(), 410);
    assert_eq!(s.snapshot_meta().index, 400);
}

fn incoming(index: u64, term: u64, data: &[u8]) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        conf: ConfState::with_voters([4, 5, 6]),
        conf_index: index - 1,
        size: data.len() as u64,
        checksum: raft::crc32c::crc32c(data),
    }
}

#[test]
fn chunked_incoming_snapshot_resumes_after_restart() {
    let d = TempDir::new("resume");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let meta = incoming(1000, 5, &data);
    let chunk = 8192;
    {
        let s = synced_log(d.path(), 20);
        for k in 0..4 {
            assert!(s
                .write_snapshot_chunk(
                    &meta,
                    k * chunk,
                    &data[(k * chunk) as usize..((k + 1) * chunk) as usize]
                )
                .unwrap());
        }
    }
    // Restart mid-transfer.
    let s = open(d.path());
    assert_eq!(s.partial_snapshot(), Some((meta.clone(), 4 * chunk)));
    assert!(!s
        .write_snapshot_chunk(&meta, 0, &data[..chunk as usize])
        .unwrap());
    let (_, mut off) = s.partial_snapshot().unwrap();
    while off < data.len() as u64 {
        let end = (off + chunk).min(data.len() as u64);
        assert!(s
            .write_snapshot_chunk(&meta, off, &data[off as usize..end as usize])
            .unwrap());
        off = end;
    }
    s.finish_incoming_snapshot(&meta).unwrap();
    assert!(!d.path().join("incoming.partial").exists());
    drop(s);
    let s = open(d.path());
    assert_eq!(s.snapshot_meta(), meta);
    assert_eq!(s.first_index(), 1001);
    assert_eq!(s.last_index(), 1000);
    assert_eq!(s.initial_state().unwrap().1, meta.conf);
    assert!(s.partial_snapshot().is_none());
    assert_eq!(
        s.snapshot_chunk(1000, 500, 100).unwrap(),
        data[500..600].to_vec()
    );
}

#[test]
fn bad_checksum_on_finish_is_refused_and_discarded() {
    let d = TempDir::new("badsum");
    let data = vec![7u8; 20_000];
    let mut meta = incoming(50, 2, &data);
    meta.checksum = meta.checksum.wrapping_add(1);
    let s = open(d.path());
    s.append(&entries(1, 10, 1)).unwrap();
    assert!(s.write_snapshot_chunk(&meta, 0, &data).unwrap());
    let err = s.finish_incoming_snapshot(&meta).unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
    assert!(!d.path().join("incoming.partial").exists());
    assert!(files_with_prefix(d.path(), "snap-").is_empty());
    assert_eq!(s.snapshot_meta().index, 0);
    assert_eq!(s.last_index(), 10);
    // Short data (size mismatch) is refused too.
    let good = incoming(50, 2, &data);
    assert!(s.write_snapshot_chunk(&good, 0, &data[..100]).unwrap());
    assert!(s.finish_incoming_snapshot(&good).is_err());
    drop(s);
    let s = open(d.path());
    assert!(s.partial_snapshot().is_none());
    assert_eq!(s.last_index(), 10);
}

/// Writes a complete incoming snapshot (all chunks durable) without finishing it.
fn receive_fully(s: &DiskStorage, meta: &SnapshotMeta, data: &[u8]) {
    for (k, c) in data.chunks(4096).enumerate() {
        assert!(s.write_snapshot_chunk(meta, k as u64 * 4096, c).unwrap());
    }
}

#[test]
fn crash_before_install_rename_keeps_partial() {
    let d = TempDir::new("crash-a");
    let data = vec![3u8; 10_000];
    let meta = incoming(100, 3, &data);
    {
        let s = synced_log(d.path(), 50);
        receive_fully(&s, &meta, &data);
    }
    let s = open(d.path());
    assert_eq!(s.partial_snapshot(), Some((meta.clone(), 10_000)));
    assert_eq!(s.last_index(), 50);
    s.finish_incoming_snapshot(&meta).unwrap();
    assert_eq!(s.first_index(), 101);
}

#[test]
fn crash_after_install_rename_before_log_reset() {
    let d = TempDir::new("crash-b");
    let data = vec![4u8; 10_000];
    let meta = incoming(100, 3, &data);
    {
        let s = synced_log(d.path(), 50);
        receive_fully(&s, &meta, &data);
    }
    installed_without_log_reset(d.path(), &meta);
    let s = open(d.path());
    assert_eq!(s.snapshot_meta(), meta);
    assert_eq!(s.first_index(), 101);
    assert_eq!(s.last_index(), 100);
    assert!(s.initial_state().unwrap().0.commit >= 100);
    assert!(wal_files(d.path()).is_empty(), "superseded log removed");
    s.append(&entries(101, 105, 3)).unwrap();
    s.sync().unwrap();
    drop(s);
    let s = open(d.path());
    assert_eq!(s.last_index(), 105);
}

#[test]
fn crash_after_install_rename_log_holds_snapshot_entry() {
    let d = TempDir::new("crash-b2");
    let data = vec![5u8; 1000];
    let meta = incoming(30, 1, &data);
    {
        let s = synced_log(d.path(), 50);
        receive_fully(&s, &meta, &data);
    }
    installed_without_log_reset(d.path(), &meta);
    let s = open(d.path());
    assert_eq!(s.snapshot_meta(), meta);
    assert_eq!(
        s.last_index(),
        50,
        "log kept: it holds the snapshot's entry"
    );
    assert_eq!(s.entries(31, 51, u64::MAX).unwrap(), entries(31, 50, 1));
}

#[test]
fn crash_before_old_snapshot_removed_and_leftover_temps() {
    let d = TempDir::new("crash-c");
    let old_name;
    let old_bytes;
    let data = vec![6u8; 5000];
    let meta = incoming(200, 4, &data);
    {
        let s = synced_log(d.path(), 60);
        local_snapshot(&s, 40, b"old state");
        old_name = files_with_prefix(d.path(), "snap-").pop().unwrap();
        old_bytes = fs::read(d.path().join(&old_name)).unwrap();
        receive_fully(&s, &meta, &data);
        s.finish_incoming_snapshot(&meta).unwrap();
    }
    // Put the old snapshot back (crash before its removal) and leave temp files of
    // interrupted writes around.
    fs::write(d.path().join(&old_name), &old_bytes).unwrap();
    fs::write(d.path().join("hardstate.tmp"), b"garbage").unwrap();
    fs::write(
        d.path()
            .join(format!("snap-{:020}-{:020}.snap.tmp", 300, 5)),
        b"half a snapshot",
    )
    .unwrap();
    fs::write(d.path().join(format!("wal-{:020}.log.tmp", 201)), b"RAFTW").unwrap();
    let s = open(d.path());
    assert_eq!(s.snapshot_meta(), meta);
    assert_eq!(s.first_index(), 201);
    assert_eq!(files_with_prefix(d.path(), "snap-").len(), 1);
    assert!(!d.path().join(&old_name).exists());
    assert!(fs::read_dir(d.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    assert_eq!(snapshot_bytes(&s), data);
}

#[test]
fn torn_partial_header_and_torn_new_segment_recover() {
    let d = TempDir::new("torn-misc");
    drop(synced_log(d.path(), 10));
    // A segment whose creation was cut short and a partial snapshot with a torn header.
    fs::write(d.path().join(format!("wal-{:020}.log", 11)), b"RAFT").unwrap();
    fs::write(d.path().join("incoming.partial"), b"RAFTSNP1\x01").unwrap();
    let s = open(d.path());
    assert_eq!(s.last_index(), 10);
    assert!(s.partial_snapshot().is_none());
    assert_eq!(wal_files(d.path()).len(), 1);
}

#[test]
fn log_gap_after_snapshot_refuses() {
    let d = TempDir::new("gap");
    {
        let s = synced_log(d.path(), 400);
        local_snapshot(&s, 100, b"x");
    }
    // Remove the segment that continues right after the snapshot.
    let segs = wal_files(d.path());
    fs::remove_file(&segs[0]).unwrap();
    let err = open_err(d.path());
    assert!(err.contains("missing"), "{err}");
}

/// Mounts a 1 MiB tmpfs; `None` (with the reason printed) if that is not possible here.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount() -> Result<Tmpfs, String> {
        let p = std::env::temp_dir().join(format!("raft-enospc-{}", std::process::id()));
        fs::create_dir_all(&p).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&p)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let _ = fs::remove_dir(&p);
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs(p))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = fs::remove_dir(&self.0);
    }
}

#[test]
fn full_disk_returns_error_and_keeps_durable_data() {
    let fs_ = match Tmpfs::mount() {
        Ok(t) => t,
        Err(why) => {
            println!("SKIPPED full_disk test: cannot mount a 1 MiB tmpfs: {why}");
            return;
        }
    };
    let dir = fs_.0.join("store");
    let opts = DiskOptions {
        segment_bytes: 256 << 10,
        ..Default::default()
    };
    let mut acked = 0;
    let err;
    {
        let s = DiskStorage::open(&dir, opts.clone()).unwrap();
        let mut i = 1;
        loop {
            let e = Entry {
                term: 1,
                index: i,
                kind: EntryKind::Normal,
                data: vec![(i % 256) as u8; 20_000].into(),
            };
            match s.append(&[e]).and_then(|_| s.sync()) {
                Ok(()) => acked = i,
                Err(e) => {
                    err = e.to_string();
                    break;
                }
            }
            i += 1;
            assert!(i < 1000, "disk never filled up");
        }
        assert!(acked > 10, "some entries fit");
        assert!(s.poisoned().is_some());
        // Poisoned: later writes fail even if space came back.
        assert!(s.sync().is_err());
        assert!(s.set_hard_state(HardState::default()).is_err());
        assert!(s.append(&[entry(acked + 1, 1)]).is_err());
        // Reads still work.
        assert_eq!(s.entries(1, 2, u64::MAX).unwrap()[0].index, 1);
    }
    println!("disk full after {acked} acknowledged entries: {err}");
    let s = DiskStorage::open(&dir, opts).unwrap();
    assert!(s.last_index() >= acked);
    let got = s.entries(1, acked + 1, u64::MAX).unwrap();
    assert_eq!(got.len() as u64, acked);
    for (k, e) in got.iter().enumerate() {
        assert_eq!(e.index, k as u64 + 1);
        assert_eq!(e.data, vec![(e.index % 256) as u8; 20_000]);
    }
}

#[test]
fn operator_tool_inspect_and_verify() {
    let a = TempDir::new("tool-a");
    let b = TempDir::new("tool-b");
    let c = TempDir::new("tool-c");
    for (d, diverge, node) in [(&a, false, 1), (&b, false, 2), (&c, true, 3)] {
        let s = DiskStorage::open(d.path(), owned(7, node)).unwrap();
        s.append(&entries(1, 200, 1)).unwrap();
        if diverge {
            s.append(&entries(150, 210, 2)).unwrap();
        }
        s.set_hard_state(HardState {
            term: 2,
            vote: 1,
            commit: 100,
        })
        .unwrap();
        s.sync().unwrap();
    }
    {
        let s = open(b.path());
        local_snapshot(&s, 120, b"snap");
    }
    let pa = a.path().to_str().unwrap();
    let pb = b.path().to_str().unwrap();
    let pc = c.path().to_str().unwrap();
    let (code, out) = manager(&["inspect", pa]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("hard state: term 2 vote 1 commit 100"),
        "{out}"
    );
    assert!(out.contains("entries: [1, 200]"), "{out}");
    assert!(out.contains("wal-00000000000000000001.log"), "{out}");
    assert!(out.contains("all checksums OK"), "{out}");
    let (code, out) = manager(&["inspect", pb]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("index 120 term 1"), "{out}");

    let (code, out) = manager(&["verify", pa, pb]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("logs agree"), "{out}");
    let (code, out) = manager(&["verify", pa, pb, pc]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("diverge at index 150"), "{out}");

    // Corruption in the middle of a segment: non-zero exit naming the file.
    let seg = wal_files(a.path())[0].clone();
    flip_byte(&seg, 100);
    let (code, out) = manager(&["inspect", pa]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("CORRUPT"), "{out}");
    assert!(out.contains(&name(&seg)), "{out}");
    let (code, _) = manager(&["inspect"]);
    assert_eq!(code, 2);
}
