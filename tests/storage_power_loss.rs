//! Power loss under the real on-disk store: a random Raft-like workload (appends, suffix
//! replacement, syncs, hard state, local snapshots with compaction, received snapshots, small
//! segments) runs on a [`DiskStorage`] whose every fsync is observed by a
//! [`PowerLossRecorder`]. Right before random fsyncs the recorder materialises what a power
//! loss there could leave (synced bytes exact; unsynced pages new, old, zeroed or garbage;
//! unsynced creations, unlinks and renames kept or undone, each independently). Each image is
//! reopened with the real recovery code, which must open it (nothing in it was damaged after
//! being synced) and hold everything acknowledged: synced entries not since replaced, the
//! hard state, the snapshot (verified).
//!
//! `RAFT_POWER_LOSS_SEEDS=N` runs N seeds (default 24); `RAFT_POWER_LOSS_SEED=S` replays one.

use raft::core::{ConfState, Entry, EntryKind, HardState, SnapshotMeta, Storage};
use raft::storage::power_loss::PowerLossRecorder;
use raft::storage::{DiskOptions, DiskStorage, LogStore};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn payload(index: u64, term: u64) -> Vec<u8> {
    let mut v = format!("entry-{index}-{term}-").into_bytes();
    let len = ((index * 7919 + term * 31) % 900) as usize;
    v.extend((0..len).map(|k| (index as usize * 13 + k) as u8));
    v
}

fn snap_data(index: u64) -> Vec<u8> {
    format!("snapshot-{index};")
        .repeat(40 + (index % 300) as usize)
        .into_bytes()
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: payload(index, term).into(),
    }
}

/// What a power loss right now must preserve, and what it may show.
#[derive(Clone, Debug, Default)]
struct Expect {
    /// Entries made durable by the last completed sync: index -> term.
    acked: BTreeMap<u64, u64>,
    /// Lowest index a replacement (suffix cut or snapshot reset) has started at since then.
    cut: Option<u64>,
    /// (term, vote) of the acknowledged hard state and of one being written.
    hard: BTreeSet<(u64, u64)>,
    /// Acknowledged snapshot index and ones being installed.
    snaps: BTreeSet<u64>,
    /// Every term ever written at each index.
    written: BTreeMap<u64, BTreeSet<u64>>,
}

fn opts(seg: u64) -> DiskOptions {
    DiskOptions {
        segment_bytes: seg,
        cache_bytes: 2 << 10,
        bootstrap: ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        },
        cluster_id: Some(7),
        node_id: Some(1),
        ..Default::default()
    }
}

fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("raft-power-loss-{}", std::process::id()))
}

/// Checks one power-loss image against what was acknowledged when it was taken.
fn check_image(dir: &Path, seg: u64, ex: &Expect) -> Result<(), String> {
    let s = DiskStorage::open(dir, opts(seg)).map_err(|e| format!("refused to open: {e}"))?;
    let hs = s.hard_state();
    if !ex.hard.contains(&(hs.term, hs.vote)) {
        return Err(format!(
            "hard state term {} vote {} is neither acknowledged nor being written ({:?})",
            hs.term, hs.vote, ex.hard
        ));
    }
    let snap = s.snapshot_meta();
    if !ex.snaps.contains(&snap.index) {
        return Err(format!(
            "snapshot {} is neither acknowledged nor being installed ({:?})",
            snap.index, ex.snaps
        ));
    }
    if snap.index > 0 {
        let (m, mut r) = s
            .open_snapshot()
            .map_err(|e| format!("snapshot unreadable: {e}"))?
            .ok_or("snapshot meta without data")?;
        let mut data = Vec::new();
        r.read_to_end(&mut data)
            .map_err(|e| format!("snapshot read: {e}"))?;
        if data != snap_data(m.index) {
            return Err(format!("snapshot {} holds the wrong data", m.index));
        }
    }
    let (first, last) = (s.first_index(), s.last_index());
    if hs.commit > last {
        return Err(format!("commit {} beyond the last index {last}", hs.commit));
    }
    if first <= last {
        let got = s
            .entries(first, last + 1, u64::MAX)
            .map_err(|e| format!("entries {first}..={last}: {e}"))?;
        for e in &got {
            let ok = ex
                .written
                .get(&e.index)
                .is_some_and(|t| t.contains(&e.term));
            if !ok || e.data[..] != payload(e.index, e.term)[..] {
                return Err(format!(
                    "entry {} term {} was never written like this",
                    e.index, e.term
                ));
            }
        }
    }
    let cut = ex.cut.unwrap_or(u64::MAX);
    for (&i, &t) in ex.acked.range(snap.index + 1..cut.max(snap.index + 1)) {
        match s.term(i) {
            Ok(got) if got == t => {}
            other => {
                return Err(format!(
                    "acknowledged entry {i} (term {t}) lost: {other:?} (log {first}..={last}, \
                     snapshot {})",
                    snap.index
                ))
            }
        }
    }
    Ok(())
}

/// Runs one seeded workload; returns (images checked, fsyncs seen).
fn run(seed: u64) -> (usize, u64) {
    let mut rng = Rng(seed);
    let root = scratch_root().join(format!("seed-{seed}"));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("store");
    let seg = 1024 + rng.below(12 << 10);
    let ex = Arc::new(Mutex::new(Expect {
        hard: [(0, 0)].into(),
        snaps: [0].into(),
        ..Default::default()
    }));
    let rec = PowerLossRecorder::new(&dir).unwrap();
    let images: Arc<Mutex<Vec<(PathBuf, Expect)>>> = Arc::default();
    {
        let (ex, images, root) = (ex.clone(), images.clone(), root.clone());
        let mut trng = Rng(seed ^ 0x5eed);
        rec.set_trigger(move |n, rec| {
            if trng.below(3) == 0 {
                let out = root.join(format!("image-{n}"));
                rec.image(trng.next(), &out)?;
                images
                    .lock()
                    .unwrap()
                    .push((out, ex.lock().unwrap().clone()));
            }
            Ok(())
        });
    }
    let _obs = rec.observe();
    let s = DiskStorage::open(&dir, opts(seg)).unwrap();

    // The page-cache view: index -> term of the log, snapshot index/term, hard state.
    let mut log: BTreeMap<u64, u64> = BTreeMap::new();
    let mut snap_i = 0u64;
    let mut term = 1u64;
    let mut hs = HardState::default();
    let mut synced_last = 0u64;
    for _ in 0..160 {
        let last = log.keys().next_back().copied().unwrap_or(snap_i);
        match rng.below(100) {
            0..=44 => {
                // Append, sometimes replacing an unsynced-or-uncommitted suffix.
                let lo = hs.commit.max(snap_i) + 1;
                let from = if last >= lo && rng.below(6) == 0 {
                    term += 1;
                    lo + rng.below(last - lo + 1)
                } else {
                    last + 1
                };
                let n = 1 + rng.below(8);
                let batch: Vec<Entry> = (from..from + n).map(|i| entry(i, term)).collect();
                {
                    let mut e = ex.lock().unwrap();
                    if from <= last {
                        e.cut = Some(e.cut.map_or(from, |c| c.min(from)));
                    }
                    for b in &batch {
                        e.written.entry(b.index).or_default().insert(b.term);
                    }
                }
                s.append(&batch).unwrap();
                log.split_off(&from);
                for b in &batch {
                    log.insert(b.index, b.term);
                }
            }
            45..=69 => {
                s.sync().unwrap();
                let mut e = ex.lock().unwrap();
                e.acked = log.clone();
                e.cut = None;
                synced_last = last;
            }
            70..=81 => {
                // As the storage worker: entries durable first, then the hard state.
                s.sync().unwrap();
                synced_last = last;
                {
                    let mut e = ex.lock().unwrap();
                    e.acked = log.clone();
                    e.cut = None;
                }
                let new = HardState {
                    term: term + rng.below(2),
                    vote: rng.below(4),
                    commit: {
                        let lo = hs.commit.max(snap_i).min(synced_last);
                        lo + rng.below(synced_last + 1 - lo)
                    },
                };
                term = new.term;
                ex.lock().unwrap().hard.insert((new.term, new.vote));
                s.set_hard_state(new).unwrap();
                hs = new;
                ex.lock().unwrap().hard = [(new.term, new.vote)].into();
            }
            82..=92 => {
                // A local snapshot of synced entries, with compaction.
                if synced_last <= snap_i {
                    continue;
                }
                let at = snap_i + 1 + rng.below(synced_last - snap_i);
                let Some(&t) = log.get(&at) else { continue };
                let meta = SnapshotMeta {
                    index: at,
                    term: t,
                    ..Default::default()
                };
                ex.lock().unwrap().snaps.insert(at);
                let data = snap_data(at);
                s.create_snapshot(meta, &mut &data[..], rng.below(6))
                    .unwrap();
                snap_i = at;
                log.retain(|&i, _| i > s.first_index() - 1);
                ex.lock().unwrap().snaps = [at].into();
            }
            _ => {
                // A snapshot received from a leader: past the log (reset) or inside it.
                let inside = last > snap_i && rng.below(2) == 0;
                let (at, t) = if inside {
                    let at = snap_i + 1 + rng.below(last - snap_i);
                    (at, log[&at])
                } else {
                    term += 1;
                    (last + 1 + rng.below(5), term)
                };
                let data = snap_data(at);
                let meta = SnapshotMeta {
                    index: at,
                    term: t,
                    size: data.len() as u64,
                    checksum: raft::crc32c::crc32c(&data),
                    conf: ConfState {
                        voters: vec![1, 2, 3],
                        ..Default::default()
                    },
                    ..Default::default()
                };
                {
                    let mut e = ex.lock().unwrap();
                    e.snaps.insert(at);
                    e.written.entry(at).or_default().insert(t);
                    if !inside {
                        // The log is discarded (a follower far behind).
                        let c = e.acked.keys().next().copied().unwrap_or(at);
                        e.cut = Some(e.cut.map_or(c, |x| x.min(c)));
                    }
                }
                let mut off = 0;
                while off < data.len() {
                    let n = (1 + rng.below(3000) as usize).min(data.len() - off);
                    assert!(s
                        .write_snapshot_chunk(&meta, off as u64, &data[off..off + n])
                        .unwrap());
                    off += n;
                }
                // Installing raises the commit index (hard state rewritten, same term/vote).
                s.finish_incoming_snapshot(&meta).unwrap();
                snap_i = at;
                if inside {
                    log.retain(|&i, _| i > s.first_index() - 1);
                } else {
                    log.clear();
                }
                hs = s.hard_state();
                if !inside {
                    synced_last = at;
                }
                let mut e = ex.lock().unwrap();
                e.snaps = [at].into();
                if !inside {
                    e.acked.clear();
                }
            }
        }
    }
    // And a power loss at the very end.
    let out = root.join("image-end");
    rec.image(rng.next(), &out).unwrap();
    images
        .lock()
        .unwrap()
        .push((out, ex.lock().unwrap().clone()));
    let events = rec.events();
    drop(s);

    let images = std::mem::take(&mut *images.lock().unwrap());
    let n = images.len();
    for (img, expect) in images {
        if let Err(e) = check_image(&img, seg, &expect) {
            let mut files: Vec<String> = std::fs::read_dir(&img)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            format!("{n} ({} bytes)", e.metadata().map_or(0, |m| m.len()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            panic!(
                "seed {seed} (replay with RAFT_POWER_LOSS_SEED={seed}): image {} holding \
                 {files:?} (expected {expect:?}): {e}",
                img.display()
            );
        }
        let _ = std::fs::remove_dir_all(&img);
    }
    let _ = std::fs::remove_dir_all(&root);
    (n, events)
}

#[test]
fn power_loss_images_open_and_keep_everything_acknowledged() {
    let seeds: Vec<u64> = match std::env::var("RAFT_POWER_LOSS_SEED") {
        Ok(s) => vec![s.parse().expect("RAFT_POWER_LOSS_SEED")],
        Err(_) => {
            let n: u64 = std::env::var("RAFT_POWER_LOSS_SEEDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(24);
            (1..=n).collect()
        }
    };
    let (mut images, mut events) = (0, 0);
    for &seed in &seeds {
        let (i, e) = run(seed);
        images += i;
        events += e;
    }
    println!(
        "power loss: {} seeds, {events} fsyncs observed, {images} power-loss images reopened",
        seeds.len()
    );
    assert!(images > seeds.len() * 10, "too few images: {images}");
    let _ = std::fs::remove_dir_all(scratch_root());
}
