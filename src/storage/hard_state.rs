//! The hard state file (`hardstate`) and the store metadata file (`store.meta`).
//!
//! `hardstate` (40 bytes): `magic "RAFTHS01" | version u32 | term u64 | vote u64 | commit u64 |
//! crc32c u32` (crc over every byte before it). Replaced atomically (temp, fsync, rename,
//! directory fsync), so it is never torn: a bad crc is corruption.
//!
//! `store.meta`: `magic "RAFTSTOR" | version u32 | conf_len u32 | conf (postcard ConfState) |
//! crc32c u32`. Written last when the directory is created (its presence marks a complete
//! store); holds the bootstrap membership. Version 2 stores also have `identity`,
//! `hardstate` and `wal.head` from creation on; version 1 stores are upgraded on open.
//!
//! `wal.head` (24 bytes): `magic "RAFTWHD1" | version u32 | first index of the newest segment
//! u64 (0: none) | crc32c u32`.

use super::fsutil::{io_err, le_u32, le_u64, write_atomic};
use crate::core::{ConfState, HardState, StorageError, StorageResult};
use crate::crc32c::crc32c;
use std::path::Path;

/// Name of the hard state file.
pub const HARD_STATE_FILE: &str = "hardstate";
/// Name of the store metadata file.
pub const STORE_META_FILE: &str = "store.meta";
const HS_MAGIC: &[u8; 8] = b"RAFTHS01";
const META_MAGIC: &[u8; 8] = b"RAFTSTOR";
const VERSION: u32 = 1;
/// Version of `store.meta` written by this build (1: before identity, hardstate and wal.head
/// were created with the store).
pub const STORE_VERSION: u32 = 2;
/// Encoded size of the hard state file.
pub const HS_LEN: usize = 40;

/// Encodes a hard state file.
pub fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut b = Vec::with_capacity(HS_LEN);
    b.extend_from_slice(HS_MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&hs.term.to_le_bytes());
    b.extend_from_slice(&hs.vote.to_le_bytes());
    b.extend_from_slice(&hs.commit.to_le_bytes());
    let crc = crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a hard state file; `path` is used in error messages.
pub fn decode_hard_state(b: &[u8], path: &Path) -> StorageResult<HardState> {
    let bad = |off: usize, what: &str| {
        StorageError::Io(format!("{}: byte offset {off}: {what}", path.display()))
    };
    if b.len() != HS_LEN {
        return Err(bad(
            0,
            &format!("hard state file is {} bytes, expected {HS_LEN}", b.len()),
        ));
    }
    if &b[0..8] != HS_MAGIC {
        return Err(bad(0, "bad hard state magic"));
    }
    if le_u32(b, 36) != crc32c(&b[..36]) {
        return Err(bad(36, "hard state crc mismatch"));
    }
    if le_u32(b, 8) != VERSION {
        return Err(bad(8, "unsupported hard state version"));
    }
    Ok(HardState {
        term: le_u64(b, 12),
        vote: le_u64(b, 20),
        commit: le_u64(b, 28),
    })
}

/// Reads `dir/hardstate`, `None` if it was never written.
pub fn read_hard_state(dir: &Path) -> StorageResult<Option<HardState>> {
    let path = dir.join(HARD_STATE_FILE);
    match std::fs::read(&path) {
        Ok(b) => decode_hard_state(&b, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path.display(), e)),
    }
}

/// Atomically replaces `dir/hardstate`.
pub fn write_hard_state(dir: &Path, hs: &HardState, fsync: bool) -> std::io::Result<()> {
    write_atomic(dir, HARD_STATE_FILE, &encode_hard_state(hs), fsync)
}

/// Atomically writes `dir/store.meta` (version [`STORE_VERSION`]) holding the bootstrap
/// membership.
pub fn write_store_meta(dir: &Path, conf: &ConfState, fsync: bool) -> std::io::Result<()> {
    let conf_bytes = postcard::to_allocvec(conf).expect("encode ConfState");
    let mut b = Vec::new();
    b.extend_from_slice(META_MAGIC);
    b.extend_from_slice(&STORE_VERSION.to_le_bytes());
    b.extend_from_slice(&(conf_bytes.len() as u32).to_le_bytes());
    b.extend_from_slice(&conf_bytes);
    let crc = crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    write_atomic(dir, STORE_META_FILE, &b, fsync)
}

/// Reads `dir/store.meta` as `(version, bootstrap membership)`, `None` if absent.
pub fn read_store_meta(dir: &Path) -> StorageResult<Option<(u32, ConfState)>> {
    let path = dir.join(STORE_META_FILE);
    let b = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path.display(), e)),
    };
    let bad = |off: usize, what: &str| {
        StorageError::Io(format!("{}: byte offset {off}: {what}", path.display()))
    };
    if b.len() < 20 || &b[0..8] != META_MAGIC {
        return Err(bad(0, "bad store.meta header"));
    }
    let n = le_u32(&b, 12) as usize;
    if b.len() != 20 + n {
        return Err(bad(12, "store.meta length mismatch"));
    }
    if le_u32(&b, 16 + n) != crc32c(&b[..16 + n]) {
        return Err(bad(16 + n, "store.meta crc mismatch"));
    }
    let v = le_u32(&b, 8);
    if v != 1 && v != STORE_VERSION {
        return Err(bad(
            8,
            &format!("unsupported store.meta version {v} (this build reads 1 and 2)"),
        ));
    }
    postcard::from_bytes(&b[16..16 + n])
        .map(|c| Some((v, c)))
        .map_err(|e| bad(16, &format!("decode bootstrap ConfState: {e}")))
}

/// Name of the file recording the newest WAL segment.
pub const WAL_HEAD_FILE: &str = "wal.head";
const HEAD_MAGIC: &[u8; 8] = b"RAFTWHD1";

/// Atomically replaces `dir/wal.head` with the first index of the newest WAL segment
/// (0: the WAL holds no segment). Raised after a segment is created, lowered before segments
/// are removed, so a segment it names that is gone was removed by someone else.
pub fn write_wal_head(dir: &Path, first: u64, fsync: bool) -> std::io::Result<()> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(HEAD_MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&first.to_le_bytes());
    let crc = crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    write_atomic(dir, WAL_HEAD_FILE, &b, fsync)
}

/// Reads `dir/wal.head`, `None` if absent.
pub fn read_wal_head(dir: &Path) -> StorageResult<Option<u64>> {
    let path = dir.join(WAL_HEAD_FILE);
    let b = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path.display(), e)),
    };
    let bad = |off: usize, what: &str| {
        StorageError::Io(format!("{}: byte offset {off}: {what}", path.display()))
    };
    if b.len() != 24 || &b[0..8] != HEAD_MAGIC {
        return Err(bad(0, "bad wal.head header"));
    }
    if le_u32(&b, 20) != crc32c(&b[..20]) {
        return Err(bad(20, "wal.head crc mismatch"));
    }
    if le_u32(&b, 8) != VERSION {
        return Err(bad(8, "unsupported wal.head version"));
    }
    Ok(Some(le_u64(&b, 12)))
}
