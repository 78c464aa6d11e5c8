//! `raft-manager snapshot export DIR FILE` and `raft-manager snapshot import FILE DIR`:
//! backup of a node's latest snapshot, and a new cluster started from one.
//!
//! The exported file is the snapshot file itself (the format of `docs/STORAGE.md`: header
//! with index, term, membership, size and CRC32C, then the data the runtime wrote: the
//! client-session table and the state machine's own snapshot). Import lays out a brand-new
//! data directory that holds that snapshot under a new membership, as a follower does when
//! it receives one from its leader; a node started on it restores the state machine from it.

use raft::core::{ConfState, HardState, SnapshotMeta};
use raft::storage::inspect::inspect_dir;
use raft::storage::snapshot_file::{read_header, verify_data};
use raft::storage::{DiskOptions, DiskStorage, LogStore};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes written per snapshot chunk on import.
const CHUNK: usize = 1 << 20;

/// Copies the latest snapshot of store directory `dir` to `file` (checksums verified on
/// both sides). Works on a running node's directory: the snapshot file is immutable; if a
/// newer snapshot replaces it during the copy, the export fails and can be retried.
pub fn export(dir: &Path, file: &Path) -> Result<SnapshotMeta, String> {
    let report = inspect_dir(dir).map_err(|e| e.to_string())?;
    let (meta, path) = report.snapshot.ok_or_else(|| {
        format!(
            "{} holds no snapshot yet (the node takes one every snapshot_entries applied \
             entries)",
            dir.display()
        )
    })?;
    if file.exists() {
        return Err(format!("{} exists: not overwriting it", file.display()));
    }
    let tmp = file.with_extension("partial");
    std::fs::copy(&path, &tmp).map_err(|e| format!("copy {}: {e}", path.display()))?;
    let check = || -> Result<SnapshotMeta, String> {
        let f = File::open(&tmp).map_err(|e| e.to_string())?;
        let (m, off) = read_header(&f, &tmp).map_err(|e| e.to_string())?;
        verify_data(&f, &tmp, &m, off).map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        Ok(m)
    };
    let copied = check().and_then(|m| {
        std::fs::rename(&tmp, file).map_err(|e| format!("rename to {}: {e}", file.display()))?;
        Ok(m)
    });
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    let m = copied?;
    if m.index != meta.index || m.term != meta.term {
        return Err("the snapshot changed during the copy: retry".into());
    }
    Ok(m)
}

/// Creates store directory `dir` (which must not hold a store) for node `id` of cluster
/// `cluster_id`, whose state is the snapshot in `file`, with membership `voters`. Every node
/// of the new cluster is started on a directory imported from the same file with the same
/// voters.
pub fn import(
    file: &Path,
    dir: &Path,
    voters: &[u64],
    id: u64,
    cluster_id: u64,
) -> Result<SnapshotMeta, String> {
    if voters.is_empty() || voters.contains(&0) {
        return Err("--voters needs at least one non-zero node id".into());
    }
    if id == 0 {
        return Err("--id must be non-zero".into());
    }
    if dir.join("store.meta").exists() {
        return Err(format!("{} already holds a store", dir.display()));
    }
    let f = File::open(file).map_err(|e| format!("open {}: {e}", file.display()))?;
    let (old, offset) = read_header(&f, file).map_err(|e| e.to_string())?;
    verify_data(&f, file, &old, offset).map_err(|e| e.to_string())?;
    let conf = ConfState::with_voters(voters.iter().copied());
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let store = DiskStorage::open(
        dir,
        DiskOptions {
            bootstrap: conf.clone(),
            cluster_id: Some(cluster_id),
            node_id: Some(id),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    // Same data (so same size and checksum) at the same index and term; the membership is
    // the new cluster's.
    let meta = SnapshotMeta {
        conf,
        conf_index: 0,
        ..old.clone()
    };
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < meta.size {
        let n = ((meta.size - done) as usize).min(CHUNK);
        f.read_exact_at(&mut buf[..n], offset + done)
            .map_err(|e| format!("read {}: {e}", file.display()))?;
        if !store
            .write_snapshot_chunk(&meta, done, &buf[..n])
            .map_err(|e| e.to_string())?
        {
            return Err(format!("snapshot chunk at offset {done} refused"));
        }
        done += n as u64;
    }
    if meta.size == 0 {
        store
            .write_snapshot_chunk(&meta, 0, &[])
            .map_err(|e| e.to_string())?;
    }
    store
        .finish_incoming_snapshot(&meta)
        .map_err(|e| e.to_string())?;
    // The log starts after the snapshot: the term must not be behind the snapshot's.
    store
        .set_hard_state(HardState {
            term: meta.term,
            vote: 0,
            commit: meta.index,
        })
        .map_err(|e| e.to_string())?;
    store.sync().map_err(|e| e.to_string())?;
    Ok(meta)
}
