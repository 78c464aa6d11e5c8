//! Snapshot files: `snap-<index, 20 digits>-<term, 20 digits>.snap` and `incoming.partial`.
//!
//! Layout: `magic "RAFTSNP1" | version u32 | data_offset u32 | meta_len u32 | crc32c u32 |
//! meta (postcard SnapshotMeta, meta_len bytes) | zero padding | data (meta.size bytes)`.
//! The crc covers `version`, `data_offset`, `meta_len` and the meta bytes. `data_offset` is
//! computed from the meta with `size`/`checksum` at their largest encodings, so the header
//! can be rewritten in place once the data's size and checksum are known.
//! `meta.checksum` is the CRC32C of the data.

use super::fsutil::le_u32;
use super::segment::corrupt;
use crate::core::{SnapshotMeta, StorageResult};
use crate::crc32c::{crc32c, crc32c_append};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Snapshot header magic.
pub const MAGIC: &[u8; 8] = b"RAFTSNP1";
/// Snapshot format version.
pub const VERSION: u32 = 1;
const FIXED: u64 = 24;
/// Name of the file receiving an incoming snapshot.
pub const PARTIAL_FILE: &str = "incoming.partial";

/// File name of the snapshot at `index`/`term`.
pub fn file_name(index: u64, term: u64) -> String {
    format!("snap-{index:020}-{term:020}.snap")
}

/// Parses a snapshot file name into `(index, term)`.
pub fn parse_file_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (i, t) = rest.split_once('-')?;
    let ok = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !ok(i) || !ok(t) {
        return None;
    }
    Some((i.parse().ok()?, t.parse().ok()?))
}

/// Where the data starts for a snapshot with this meta (independent of size/checksum).
pub fn data_offset_for(meta: &SnapshotMeta) -> u64 {
    let mut m = meta.clone();
    m.size = u64::MAX;
    m.checksum = u32::MAX;
    FIXED + postcard::to_allocvec(&m).expect("encode meta").len() as u64
}

/// Encodes the header (without padding) for `meta` with data at `data_offset`.
pub fn encode_header(meta: &SnapshotMeta, data_offset: u64) -> Vec<u8> {
    let m = postcard::to_allocvec(meta).expect("encode meta");
    let mut h = Vec::with_capacity(FIXED as usize + m.len());
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&(data_offset as u32).to_le_bytes());
    h.extend_from_slice(&(m.len() as u32).to_le_bytes());
    let crc = crc32c_append(crc32c(&h[8..20]), &m);
    h.extend_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&m);
    debug_assert!(h.len() as u64 <= data_offset);
    h
}

/// Reads and checks the header of a snapshot file; returns the meta and data offset.
pub fn read_header(file: &File, path: &Path) -> StorageResult<(SnapshotMeta, u64)> {
    let mut fixed = [0u8; FIXED as usize];
    file.read_exact_at(&mut fixed, 0)
        .map_err(|e| corrupt(path, 0, format!("snapshot header: {e}")))?;
    if &fixed[0..8] != MAGIC {
        return Err(corrupt(path, 0, "bad snapshot magic"));
    }
    let data_offset = le_u32(&fixed, 12) as u64;
    let meta_len = le_u32(&fixed, 16) as u64;
    if meta_len > 1 << 24 || FIXED + meta_len > data_offset {
        return Err(corrupt(path, 12, "bad snapshot header lengths"));
    }
    let mut m = vec![0u8; meta_len as usize];
    file.read_exact_at(&mut m, FIXED)
        .map_err(|e| corrupt(path, FIXED, format!("snapshot meta: {e}")))?;
    if crc32c_append(crc32c(&fixed[8..20]), &m) != le_u32(&fixed, 20) {
        return Err(corrupt(path, 20, "snapshot header crc mismatch"));
    }
    let v = le_u32(&fixed, 8);
    if v != VERSION {
        return Err(corrupt(
            path,
            8,
            format!("unsupported snapshot version {v}"),
        ));
    }
    let meta: SnapshotMeta = postcard::from_bytes(&m)
        .map_err(|e| corrupt(path, FIXED, format!("decode snapshot meta: {e}")))?;
    Ok((meta, data_offset))
}

/// Streams `len` bytes of `file` from `offset` and returns their CRC32C.
pub fn crc_of_range(file: &File, offset: u64, len: u64) -> io::Result<u32> {
    let mut buf = vec![0u8; 1 << 16];
    let mut crc = 0;
    let mut done = 0;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], offset + done)?;
        crc = crc32c_append(crc, &buf[..n]);
        done += n as u64;
    }
    Ok(crc)
}

/// Checks that the data of a snapshot file has `meta.size` bytes with `meta.checksum`.
pub fn verify_data(
    file: &File,
    path: &Path,
    meta: &SnapshotMeta,
    data_offset: u64,
) -> StorageResult<()> {
    let len = file
        .metadata()
        .map_err(|e| corrupt(path, 0, format!("stat: {e}")))?
        .len();
    if len != data_offset + meta.size {
        return Err(corrupt(
            path,
            len.min(data_offset + meta.size),
            format!(
                "snapshot data is {} bytes, meta says {}",
                len.saturating_sub(data_offset),
                meta.size
            ),
        ));
    }
    let crc = crc_of_range(file, data_offset, meta.size)
        .map_err(|e| corrupt(path, data_offset, format!("read: {e}")))?;
    if crc != meta.checksum {
        return Err(corrupt(
            path,
            data_offset,
            format!(
                "snapshot data checksum {crc:#010x} does not match meta {:#010x}",
                meta.checksum
            ),
        ));
    }
    Ok(())
}

/// A reader over a snapshot's data that fails at the end if the CRC32C does not match.
pub struct CheckedReader<R> {
    inner: R,
    remaining: u64,
    crc: u32,
    expected: u32,
}

impl<R: Read> CheckedReader<R> {
    /// Reads exactly `size` bytes from `inner`, expecting CRC32C `expected`.
    pub fn new(inner: R, size: u64, expected: u32) -> Self {
        CheckedReader {
            inner,
            remaining: size,
            crc: 0,
            expected,
        }
    }
}

impl<R: Read> Read for CheckedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            if self.crc != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "snapshot data checksum mismatch",
                ));
            }
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "snapshot data shorter than its meta says",
            ));
        }
        self.crc = crc32c_append(self.crc, &buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Lists snapshot files in `dir` as `(index, term, name)`, sorted.
pub fn list(dir: &Path) -> StorageResult<Vec<(u64, u64, String)>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| corrupt(dir, 0, format!("list: {e}")))?;
    for ent in rd {
        let ent = ent.map_err(|e| corrupt(dir, 0, format!("list: {e}")))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if let Some((i, t)) = parse_file_name(&name) {
            out.push((i, t, name));
        }
    }
    out.sort();
    Ok(out)
}
