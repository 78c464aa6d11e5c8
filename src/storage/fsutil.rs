//! Small filesystem helpers: atomic file replacement, directory fsync, error mapping.

use crate::core::StorageError;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::power_loss::{synced, SyncEvent};

/// Maps an I/O error to [`StorageError::Io`], naming what was being done.
pub fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> StorageError {
    StorageError::Io(format!("{what}: {e}"))
}

/// Fsyncs a directory so renames, creations and removals in it are durable.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    synced(SyncEvent::Dir(dir), || File::open(dir)?.sync_all())
}

/// Fsyncs `file` (at `path`): `fdatasync` if `data_only`, else `fsync`. Every fsync of a
/// store file goes through here (and [`fsync_dir`]) so power-loss tests can observe it.
pub fn sync_file(file: &File, path: &Path, data_only: bool) -> std::io::Result<()> {
    synced(SyncEvent::File(path), || {
        if data_only {
            file.sync_data()
        } else {
            file.sync_all()
        }
    })
}

/// Writes `bytes` to `dir/name` atomically: write `name.tmp`, fsync, rename, fsync the
/// directory. With `fsync == false` the fsyncs are skipped (unsafe mode).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], fsync: bool) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if fsync {
            sync_file(&f, &tmp, false)?;
        }
    }
    fs::rename(&tmp, dir.join(name))?;
    if fsync {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Reads a little-endian u32 at `at`.
pub fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Reads a little-endian u64 at `at`.
pub fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
