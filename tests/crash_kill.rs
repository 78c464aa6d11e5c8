//! Crash tests of the store. SIGKILL mode: a child (`raft-crash-writer`) appends and syncs entries, printing
//! `ack <index>` after each `sync()`; the parent SIGKILLs it at random (seeded) moments,
//! reopens the store and checks that every acknowledged entry is present, in order, with the
//! right content. `RAFT_CRASH_KILLS=N` sets the number of kills (default 200),
//! `RAFT_CRASH_SEED=S` replays a run. Power-loss mode: see
//! [`power_loss_never_loses_acknowledged_entries`].

use raft::core::{Entry, EntryKind, SnapshotMeta, Storage};
use raft::storage::power_loss::PowerLossRecorder;
use raft::storage::{DiskOptions, DiskStorage, LogStore};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Same payload convention as `src/bin/raft-crash-writer.rs`.
fn payload(i: u64) -> Vec<u8> {
    let len = (i * 7919 % 300) as usize;
    let mut v = format!("entry-{i}-").into_bytes();
    v.extend((0..len).map(|k| (i as usize + k) as u8));
    v
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Reopens the store in `dir` after a crash and checks every entry up to `acked` (and the
/// snapshot, if any); returns whether a snapshot was present.
fn check_reopened(dir: &Path, opts: &DiskOptions, acked: u64, ctx: &str) -> bool {
    let s = DiskStorage::open(dir, opts.clone())
        .unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    assert!(
        s.last_index() >= acked,
        "{ctx}: last index {} < acknowledged {acked}",
        s.last_index()
    );
    let snap = s.snapshot_meta();
    assert!(
        snap.index <= acked,
        "{ctx}: snapshot {} beyond acked {acked}",
        snap.index
    );
    if snap.index > 0 {
        let (m, mut r) = s.open_snapshot().unwrap().unwrap();
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        assert_eq!(
            data,
            format!("snapshot-{}", m.index).repeat(50).into_bytes(),
            "{ctx}"
        );
    }
    let first = s.first_index();
    assert!(first <= snap.index + 1, "{ctx}");
    if acked >= first {
        let got = s.entries(first, acked + 1, u64::MAX).unwrap();
        assert_eq!(got.len() as u64, acked + 1 - first, "{ctx}");
        for (k, e) in got.iter().enumerate() {
            assert_eq!(e.index, first + k as u64, "{ctx}");
            assert_eq!(e.term, 1, "{ctx}");
            assert_eq!(e.data, payload(e.index), "{ctx}: entry {}", e.index);
        }
    }
    snap.index > 0
}

/// The power-loss mode: the writer's loop (as `raft-crash-writer`) runs in this process on
/// a store whose fsyncs a [`PowerLossRecorder`] observes. At a random fsync the power
/// fails: the recorder materialises what the disk could hold after losing its page cache
/// (unsynced pages lost, zeroed or garbled, unsynced creations/unlinks/renames undone) and
/// that fsync and every later one fail, so nothing is acknowledged past that point. The next
/// round reopens the image (its recovery fsyncs are observed too: power can fail during
/// recovery) and every acknowledged entry must be there. `RAFT_POWER_LOSSES=N` sets the
/// number of power losses (default 200), `RAFT_CRASH_SEED=S` replays a run.
#[test]
fn power_loss_never_loses_acknowledged_entries() {
    let seed = env_u64("RAFT_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let losses = env_u64("RAFT_POWER_LOSSES").unwrap_or(200);
    println!("power loss seed = {seed} (replay with RAFT_CRASH_SEED={seed}), losses = {losses}");
    let mut rng = Rng(seed);
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let root = base.join(format!("raft-crash-power-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let opts = DiskOptions {
        segment_bytes: 16 << 10,
        cache_bytes: 8 << 10,
        ..Default::default()
    };
    let mut dir = root.join("gen-0");
    let (mut acked, mut snapshots_seen, mut in_recovery) = (0u64, 0u64, 0u64);
    for round in 0..losses {
        let image = root.join(format!("gen-{}", round + 1));
        let rec = PowerLossRecorder::new(&dir).unwrap();
        let fail_at = rng.next() % 300;
        let image_seed = rng.next();
        let lost = Arc::new(AtomicBool::new(false));
        {
            let (image, lost) = (image.clone(), lost.clone());
            rec.set_trigger(move |n, rec| {
                if n == fail_at {
                    rec.image(image_seed, &image)?;
                    lost.store(true, Ordering::SeqCst);
                }
                if lost.load(Ordering::SeqCst) {
                    return Err(std::io::Error::other("power lost"));
                }
                Ok(())
            });
        }
        let obs = rec.observe();
        let mut wrng = Rng(rng.next());
        if let Ok(s) = DiskStorage::open(&dir, opts.clone()) {
            'write: loop {
                let first = s.last_index() + 1;
                let n = 1 + wrng.next() % 16;
                let batch: Vec<Entry> = (first..first + n)
                    .map(|i| Entry {
                        term: 1,
                        index: i,
                        kind: EntryKind::Normal,
                        data: payload(i).into(),
                    })
                    .collect();
                if s.append(&batch).is_err() || s.sync().is_err() {
                    break 'write;
                }
                acked = s.last_index();
                if wrng.next().is_multiple_of(40) {
                    let meta = SnapshotMeta {
                        index: acked,
                        term: 1,
                        ..Default::default()
                    };
                    let data = format!("snapshot-{acked}").repeat(50).into_bytes();
                    if s.create_snapshot(meta, &mut &data[..], 64).is_err() {
                        break 'write;
                    }
                }
            }
        } else {
            assert!(
                lost.load(Ordering::SeqCst),
                "round {round} (seed {seed}): open failed without a power loss"
            );
            in_recovery += 1;
        }
        drop(obs);
        assert!(
            lost.load(Ordering::SeqCst),
            "round {round}: the power never failed"
        );
        let ctx = format!("power loss {round} (seed {seed}, fsync {fail_at})");
        if check_reopened(&image, &opts, acked, &ctx) {
            snapshots_seen += 1;
        }
        let _ = std::fs::remove_dir_all(&dir);
        dir = image;
    }
    println!(
        "power loss: {losses} losses ({in_recovery} during recovery), {acked} entries \
         acknowledged, snapshot present in {snapshots_seen} reopens"
    );
    assert!(acked > 0, "nothing was ever acknowledged");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn sigkill_never_loses_acknowledged_entries() {
    let seed = env_u64("RAFT_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let kills = env_u64("RAFT_CRASH_KILLS").unwrap_or(200);
    println!("crash_kill seed = {seed} (replay with RAFT_CRASH_SEED={seed}), kills = {kills}");
    eprintln!("crash_kill seed = {seed}");
    let mut rng = Rng(seed);
    let dir = std::env::temp_dir().join(format!("raft-crash-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = DiskOptions {
        segment_bytes: 16 << 10,
        cache_bytes: 8 << 10,
        ..Default::default()
    };
    let started = Instant::now();
    let mut acked = 0u64;
    let mut snapshots_seen = 0;
    for round in 0..kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_raft-crash-writer"))
            .arg(&dir)
            .arg(rng.next().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn raft-crash-writer");
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        std::thread::sleep(Duration::from_micros(500 + rng.next() % 25_000));
        child.kill().expect("kill");
        let status = child.wait().unwrap();
        let out = reader.join().unwrap();
        if status.signal() != Some(libc::SIGKILL) {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("round {round}: writer exited on its own ({status}): {err}");
        }
        // Only complete lines are acknowledgements.
        for line in out.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let n: u64 = line.trim().strip_prefix("ack ").unwrap().parse().unwrap();
            assert!(n >= acked, "acks go backwards: {n} < {acked}");
            acked = n;
        }

        if check_reopened(&dir, &opts, acked, &format!("round {round} (seed {seed})")) {
            snapshots_seen += 1;
        }
    }
    println!(
        "crash_kill: {kills} kills, {acked} entries acknowledged, snapshot present in \
         {snapshots_seen} reopens, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(acked > 0, "the writer never acknowledged anything");
    // The store is still writable after all the crashes.
    let s = DiskStorage::open(&dir, opts).unwrap();
    let next = s.last_index() + 1;
    s.append(&[raft::core::Entry {
        term: 1,
        index: next,
        kind: raft::core::EntryKind::Normal,
        data: payload(next).into(),
    }])
    .unwrap();
    s.sync().unwrap();
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
