//! Storage CPU cost where the checksum dominates: WAL append (fsync off, so the figure is
//! encoding + CRC32C + buffered writes, not the disk) and snapshot verify (reading a
//! snapshot back through the checksumming reader), plus raw CRC32C throughput.
//!
//! `storage-crc [--entries 200000] [--entry-bytes 1024] [--batch 64] [--snapshot-mib 256]
//! [--rounds 5]` — each figure is the best of `--rounds` runs.

use raft::core::{ConfState, Entry, EntryKind, SnapshotMeta};
use raft::storage::{DiskOptions, DiskStorage, FsyncPolicy, LogStore};
use raft_bench::*;
use std::io::Read;
use std::time::Instant;

fn opts() -> DiskOptions {
    DiskOptions {
        fsync: FsyncPolicy::UnsafeNever,
        bootstrap: ConfState {
            voters: vec![1],
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Seconds to append `n` entries of `bytes` bytes in batches of `batch` (then one sync).
fn wal_append(n: u64, bytes: usize, batch: u64) -> f64 {
    let dir = scratch_dir("storage-crc-wal");
    let s = DiskStorage::open(&dir, opts()).expect("open store");
    let payload: raft::core::Payload = vec![0x5au8; bytes].into();
    let t = Instant::now();
    let mut i = 1;
    while i <= n {
        let hi = (i + batch).min(n + 1);
        let es: Vec<Entry> = (i..hi)
            .map(|index| Entry {
                term: 1,
                index,
                kind: EntryKind::Normal,
                data: payload.clone(),
            })
            .collect();
        s.append(&es).expect("append");
        i = hi;
    }
    s.sync().expect("sync");
    let secs = t.elapsed().as_secs_f64();
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
    secs
}

/// Seconds to read back (and so verify) a snapshot of `mib` MiB.
fn snapshot_verify(mib: u64) -> f64 {
    let dir = scratch_dir("storage-crc-snap");
    let s = DiskStorage::open(&dir, opts()).expect("open store");
    s.append(&[Entry {
        term: 1,
        index: 1,
        kind: EntryKind::Normal,
        data: Vec::new().into(),
    }])
    .expect("append");
    let data: Vec<u8> = (0..mib << 20).map(|i| (i * 31 % 251) as u8).collect();
    s.create_snapshot(
        SnapshotMeta {
            index: 1,
            term: 1,
            ..Default::default()
        },
        &mut &data[..],
        0,
    )
    .expect("create snapshot");
    drop(data);
    // Warm the page cache so the figure is the verify cost, not the disk.
    let read_all = |s: &DiskStorage| {
        let (_, mut r) = s.open_snapshot().expect("open").expect("a snapshot");
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = r.read(&mut buf).expect("read verifies the checksum");
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        assert_eq!(total, mib << 20);
    };
    read_all(&s);
    let t = Instant::now();
    read_all(&s);
    let secs = t.elapsed().as_secs_f64();
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
    secs
}

fn best(rounds: u64, mut f: impl FnMut() -> f64) -> f64 {
    (0..rounds.max(1))
        .map(|_| f())
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let a = Args::parse();
    let n = a.num("entries", 200_000);
    let bytes = a.num("entry-bytes", 1024) as usize;
    let batch = a.num("batch", 64).max(1);
    let mib = a.num("snapshot-mib", 256);
    let rounds = a.num("rounds", 5);

    let buf: Vec<u8> = (0..64u64 << 20).map(|i| (i * 7 % 253) as u8).collect();
    let crc_secs = best(rounds, || {
        let t = Instant::now();
        std::hint::black_box(raft::crc32c::crc32c(std::hint::black_box(&buf)));
        t.elapsed().as_secs_f64()
    });
    let wal_secs = best(rounds, || wal_append(n, bytes, batch));
    let snap_secs = best(rounds, || snapshot_verify(mib));

    let crc_gbs = 64.0 / 1024.0 / crc_secs;
    let wal_mbs = (n as f64 * bytes as f64) / (1 << 20) as f64 / wal_secs;
    let wal_eps = n as f64 / wal_secs;
    let snap_mbs = mib as f64 / snap_secs;
    table(
        "storage CPU cost (best of rounds)",
        &["figure", "value"],
        &[
            vec!["crc32c raw (64 MiB)".into(), format!("{crc_gbs:.2} GiB/s")],
            vec![
                format!("WAL append {n} x {bytes} B, batch {batch}, no fsync"),
                format!("{wal_mbs:.0} MiB/s ({wal_eps:.0} entries/s)"),
            ],
            vec![
                format!("snapshot verify {mib} MiB (page cache)"),
                format!("{snap_mbs:.0} MiB/s"),
            ],
        ],
    );
    bench_line("storage.crc32c.raw", crc_gbs, "GiB/s");
    bench_line("storage.wal_append.nofsync", wal_mbs, "MiB/s");
    bench_line("storage.wal_append.nofsync.entries", wal_eps, "entries/s");
    bench_line("storage.snapshot_verify", snap_mbs, "MiB/s");
}
