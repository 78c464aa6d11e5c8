//! WAL segment files: naming, header, and the recovery scan.
//!
//! A segment `wal-<first index, 20 digits>.log` starts with a 24-byte header
//! `magic "RAFTWAL1" | version u32 | first_index u64 | crc32c u32` (crc over the 20 bytes
//! before it), followed by records (see [`super::record`]) with consecutive indexes starting
//! at `first_index`.

use super::fsutil::{le_u32, le_u64};
use super::record::{self, Parsed};
use crate::core::{Entry, StorageError, StorageResult};
use crate::crc32c::crc32c;
use std::path::Path;

/// Segment header magic.
pub const MAGIC: &[u8; 8] = b"RAFTWAL1";
/// WAL format version.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header in bytes.
pub const HEADER_LEN: u64 = 24;

/// File name of the segment whose first index is `first`.
pub fn file_name(first: u64) -> String {
    format!("wal-{first:020}.log")
}

/// Parses a segment file name back to its first index.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes a segment header.
pub fn encode_header(first: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first.to_le_bytes());
    let crc = crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Formats a corruption error naming the file and byte offset.
pub fn corrupt(path: &Path, offset: u64, what: impl std::fmt::Display) -> StorageError {
    StorageError::Io(format!("{}: byte offset {offset}: {what}", path.display()))
}

/// Checks a segment header against the first index in the file name.
pub fn check_header(h: &[u8], name_first: u64, path: &Path) -> StorageResult<()> {
    if h.len() < HEADER_LEN as usize {
        return Err(corrupt(path, 0, "segment header truncated"));
    }
    if &h[0..8] != MAGIC {
        return Err(corrupt(path, 0, "bad segment magic"));
    }
    if le_u32(h, 20) != crc32c(&h[..20]) {
        return Err(corrupt(path, 20, "segment header crc mismatch"));
    }
    let v = le_u32(h, 8);
    if v != FORMAT_VERSION {
        return Err(corrupt(
            path,
            8,
            format!("unsupported WAL format version {v}"),
        ));
    }
    let first = le_u64(h, 12);
    if first != name_first {
        return Err(corrupt(
            path,
            12,
            format!("header first index {first} does not match file name ({name_first})"),
        ));
    }
    Ok(())
}

/// How a scanned segment ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belongs to a valid record.
    Clean,
    /// The file is shorter than a header (only possible for the last segment).
    TornHeader,
    /// Bytes from `offset` on are a torn last record (only possible for the last segment).
    Torn {
        /// Where the valid prefix ends.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
}

/// Result of scanning one segment.
#[derive(Debug)]
pub struct Scan {
    /// Size of the file on disk.
    pub file_len: u64,
    /// Length of the valid prefix (header plus whole valid records).
    pub valid_len: u64,
    /// Number of valid records.
    pub records: u64,
    /// How the file ends.
    pub tail: Tail,
}

/// Scans the segment at `path` whose name says it starts at `first`. Calls `on_record` with
/// each valid entry, its byte offset and encoded length. A damaged tail is reported (not
/// fixed) when `is_last`; anywhere else damage is an error naming the file and offset.
/// `prev_term` is the term of the entry before `first` (for the monotonic-term check).
pub fn scan(
    path: &Path,
    first: u64,
    is_last: bool,
    prev_term: u64,
    mut on_record: impl FnMut(Entry, u64, u32),
) -> StorageResult<Scan> {
    let data = std::fs::read(path).map_err(|e| corrupt(path, 0, format!("read: {e}")))?;
    let file_len = data.len() as u64;
    if file_len < HEADER_LEN {
        if is_last {
            return Ok(Scan {
                file_len,
                valid_len: 0,
                records: 0,
                tail: Tail::TornHeader,
            });
        }
        return Err(corrupt(path, 0, "segment header truncated"));
    }
    check_header(&data, first, path)?;
    let mut pos = HEADER_LEN as usize;
    let mut expect = first;
    let mut last_term = prev_term;
    let mut records = 0;
    let tail = loop {
        let rest = &data[pos..];
        if rest.is_empty() {
            break Tail::Clean;
        }
        let torn = |reason: String| -> StorageResult<Tail> {
            if is_last {
                Ok(Tail::Torn {
                    offset: pos as u64,
                    reason,
                })
            } else {
                Err(corrupt(path, pos as u64, reason))
            }
        };
        if rest.iter().all(|&b| b == 0) {
            break torn(format!("{} zero bytes after the last record", rest.len()))?;
        }
        match record::parse(rest) {
            Parsed::Record(e, len) => {
                if e.index != expect {
                    return Err(corrupt(
                        path,
                        pos as u64,
                        format!("record has index {}, expected {expect}", e.index),
                    ));
                }
                if e.term < last_term {
                    return Err(corrupt(
                        path,
                        pos as u64,
                        format!(
                            "record {} has term {} lower than the previous term {last_term}",
                            e.index, e.term
                        ),
                    ));
                }
                last_term = e.term;
                on_record(e, pos as u64, len as u32);
                pos += len;
                expect += 1;
                records += 1;
            }
            Parsed::Incomplete => {
                break torn(format!(
                    "partial record ({} bytes) at end of file",
                    rest.len()
                ))?
            }
            Parsed::BadCrc => {
                let len = le_u32(rest, 0) as usize + record::RECORD_PREFIX;
                if len == rest.len() {
                    break torn("crc mismatch in the last record".to_string())?;
                }
                return Err(corrupt(path, pos as u64, "record crc mismatch"));
            }
            Parsed::BadLen(l) => {
                return Err(corrupt(
                    path,
                    pos as u64,
                    format!("invalid record length {l}"),
                ))
            }
            Parsed::BadKind(k) => {
                return Err(corrupt(path, pos as u64, format!("invalid entry kind {k}")))
            }
        }
    };
    Ok(Scan {
        file_len,
        valid_len: pos as u64,
        records,
        tail,
    })
}

/// Lists the segment files in `dir` as `(first index, file name)`, sorted by first index.
pub fn list(dir: &Path) -> StorageResult<Vec<(u64, String)>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir)
        .map_err(|e| StorageError::Io(format!("{}: list: {e}", dir.display())))?;
    for ent in rd {
        let ent = ent.map_err(|e| StorageError::Io(format!("{}: list: {e}", dir.display())))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if let Some(first) = parse_file_name(&name) {
            out.push((first, name));
        }
    }
    out.sort();
    Ok(out)
}
