//! WAL segment files: naming, header, synced-length marks, and the recovery scan.
//!
//! A segment `wal-<first index, 20 digits>.log` starts with a header
//! `magic "RAFTWAL1" | version u32 | first_index u64 | crc32c u32` (crc over the 20 bytes
//! before it). Version 2 follows it with two synced-length slots
//! `gen u32 | synced_len u64 | crc32c u32` (crc over `gen`, `synced_len` and the slot number),
//! so the header is [`HEADER_LEN`] bytes; version 1 segments ([`HEADER_LEN_V1`] bytes, no
//! slots) are still read. Then come records (see [`super::record`]) with consecutive indexes
//! starting at `first_index`.
//!
//! After every fsync of the segment the store writes the length that fsync made durable into
//! the slot `gen % 2` (without syncing it; the next fsync carries it). The slot with the
//! highest valid `gen` is the **synced mark**: every byte before it was durable when it was
//! written, so damage before the mark is corruption, while damage at or after it can only be
//! unsynced bytes lost or scrambled by a power loss (a torn tail).

use super::fsutil::{le_u32, le_u64};
use super::record::{self, Parsed};
use crate::core::{Entry, StorageError, StorageResult};
use crate::crc32c::{crc32c, crc32c_append};
use std::path::Path;

/// Segment header magic.
pub const MAGIC: &[u8; 8] = b"RAFTWAL1";
/// WAL format version written by this build.
pub const FORMAT_VERSION: u32 = 2;
/// Size of a version 1 segment header (no synced-length slots).
pub const HEADER_LEN_V1: u64 = 24;
/// Size of one synced-length slot.
pub const SLOT_LEN: u64 = 16;
/// Size of the segment header written by this build (fixed part plus two slots).
pub const HEADER_LEN: u64 = HEADER_LEN_V1 + 2 * SLOT_LEN;

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

/// Encodes a (current version) segment header whose synced mark is the header itself.
pub fn encode_header(first: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first.to_le_bytes());
    let crc = crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    let (off, slot) = encode_slot(1, HEADER_LEN);
    h[off as usize..(off + SLOT_LEN) as usize].copy_from_slice(&slot);
    h
}

/// Encodes the synced-length slot for generation `gen` (> 0) and returns it with the byte
/// offset it is written at (slot `gen % 2`).
pub fn encode_slot(gen: u32, synced_len: u64) -> (u64, [u8; SLOT_LEN as usize]) {
    let k = gen % 2;
    let mut b = [0u8; SLOT_LEN as usize];
    b[0..4].copy_from_slice(&gen.to_le_bytes());
    b[4..12].copy_from_slice(&synced_len.to_le_bytes());
    let crc = crc32c_append(crc32c(&b[..12]), &[k as u8]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    (HEADER_LEN_V1 + k as u64 * SLOT_LEN, b)
}

/// The synced mark of a version 2 header: `(gen, synced_len)` of the valid slot with the
/// highest generation, `None` if neither slot is valid.
pub fn read_mark(h: &[u8]) -> Option<(u32, u64)> {
    (0..2u64)
        .filter_map(|k| {
            let at = (HEADER_LEN_V1 + k * SLOT_LEN) as usize;
            let b = h.get(at..at + SLOT_LEN as usize)?;
            let gen = le_u32(b, 0);
            let crc = crc32c_append(crc32c(&b[..12]), &[k as u8]);
            (gen > 0 && gen % 2 == k as u32 && le_u32(b, 12) == crc).then(|| (gen, le_u64(b, 4)))
        })
        .max()
}

/// Formats a corruption error naming the file and byte offset.
pub fn corrupt(path: &Path, offset: u64, what: impl std::fmt::Display) -> StorageError {
    StorageError::Io(format!("{}: byte offset {offset}: {what}", path.display()))
}

/// Checks a segment header against the first index in the file name; returns its version.
pub fn check_header(h: &[u8], name_first: u64, path: &Path) -> StorageResult<u32> {
    if h.len() < HEADER_LEN_V1 as usize {
        return Err(corrupt(path, 0, "segment header truncated"));
    }
    if &h[0..8] != MAGIC {
        return Err(corrupt(path, 0, "bad segment magic"));
    }
    if le_u32(h, 20) != crc32c(&h[..20]) {
        return Err(corrupt(path, 20, "segment header crc mismatch"));
    }
    let v = le_u32(h, 8);
    if v != 1 && v != FORMAT_VERSION {
        return Err(corrupt(
            path,
            8,
            format!("unsupported WAL format version {v} (this build reads 1 and 2)"),
        ));
    }
    if v == 2 && h.len() < HEADER_LEN as usize {
        return Err(corrupt(path, 0, "segment header truncated"));
    }
    let first = le_u64(h, 12);
    if first != name_first {
        return Err(corrupt(
            path,
            12,
            format!("header first index {first} does not match file name ({name_first})"),
        ));
    }
    Ok(v)
}

/// Header length of a segment of format version `v`.
pub fn header_len(v: u32) -> u64 {
    if v == 1 {
        HEADER_LEN_V1
    } else {
        HEADER_LEN
    }
}

/// How a scanned segment ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belongs to a valid record.
    Clean,
    /// The file is shorter than a header (only possible for the last segment).
    TornHeader,
    /// Bytes from `offset` on are a torn tail: never synced, lost or scrambled by a crash or
    /// power loss (only possible for the last segment).
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
    /// Format version of the segment (0 for a torn header).
    pub version: u32,
    /// The synced mark `(gen, synced_len)` of a version 2 segment.
    pub mark: Option<(u32, u64)>,
}

/// Scans the segment at `path` whose name says it starts at `first`. Calls `on_record` with
/// each valid entry, its byte offset and encoded length. `prev_term` is the term of the entry
/// before `first` (for the monotonic-term check).
///
/// Damage is an error naming the file and offset, except in the last segment (`is_last`)
/// where it is reported as a torn tail (not fixed) when it can only be unsynced bytes: at or
/// after the synced mark of a version 2 segment (anything: zeros, stale bytes, garbage after
/// the last record, more records after a hole); in a version 1 segment only a partial last
/// record, a bad crc in exactly the last record, or an all-zero remainder. A last segment
/// shorter than its synced mark was cut after the fact and is refused.
pub fn scan(
    path: &Path,
    first: u64,
    is_last: bool,
    prev_term: u64,
    mut on_record: impl FnMut(Entry, u64, u32),
) -> StorageResult<Scan> {
    let data = std::fs::read(path).map_err(|e| corrupt(path, 0, format!("read: {e}")))?;
    let file_len = data.len() as u64;
    if file_len < HEADER_LEN_V1 || (file_len < HEADER_LEN && data.get(8..12) == Some(&[2, 0, 0, 0]))
    {
        if is_last {
            return Ok(Scan {
                file_len,
                valid_len: 0,
                records: 0,
                tail: Tail::TornHeader,
                version: 0,
                mark: None,
            });
        }
        return Err(corrupt(path, 0, "segment header truncated"));
    }
    let version = check_header(&data, first, path)?;
    let hlen = header_len(version);
    let mark = if version >= 2 { read_mark(&data) } else { None };
    // Where unsynced bytes may start: damage before this is corruption.
    let synced = match (is_last, version) {
        (false, _) => u64::MAX,
        (true, 1) => 0,
        (true, _) => mark.map_or(hlen, |(_, m)| m.max(hlen)),
    };
    let legacy = is_last && version == 1;
    let mut pos = hlen as usize;
    let mut expect = first;
    let mut last_term = prev_term;
    let mut records = 0;
    let tail = loop {
        let rest = &data[pos..];
        if rest.is_empty() {
            break Tail::Clean;
        }
        // Damage at `pos`: a torn tail if it can only be unsynced bytes, else corruption.
        let damaged = |reason: String, legacy_torn: bool| -> StorageResult<Tail> {
            let torn = if legacy {
                legacy_torn
            } else {
                (pos as u64) >= synced
            };
            if torn {
                Ok(Tail::Torn {
                    offset: pos as u64,
                    reason,
                })
            } else if is_last && !legacy {
                Err(corrupt(
                    path,
                    pos as u64,
                    format!("{reason} (before the synced length {synced}: not a torn write)"),
                ))
            } else {
                Err(corrupt(path, pos as u64, reason))
            }
        };
        if rest.iter().all(|&b| b == 0) {
            break damaged(
                format!("{} zero bytes after the last record", rest.len()),
                true,
            )?;
        }
        match record::parse(rest) {
            Parsed::Record(e, len) => {
                if e.index != expect {
                    break damaged(
                        format!("record has index {}, expected {expect}", e.index),
                        false,
                    )?;
                }
                if e.term < last_term {
                    break damaged(
                        format!(
                            "record {} has term {} lower than the previous term {last_term}",
                            e.index, e.term
                        ),
                        false,
                    )?;
                }
                last_term = e.term;
                on_record(e, pos as u64, len as u32);
                pos += len;
                expect += 1;
                records += 1;
            }
            Parsed::Incomplete => {
                break damaged(
                    format!("partial record ({} bytes) at end of file", rest.len()),
                    true,
                )?
            }
            Parsed::BadCrc => {
                let len = le_u32(rest, 0) as usize + record::RECORD_PREFIX;
                if len == rest.len() {
                    break damaged("crc mismatch in the last record".to_string(), true)?;
                }
                break damaged("record crc mismatch".to_string(), false)?;
            }
            Parsed::BadLen(l) => break damaged(format!("invalid record length {l}"), false)?,
            Parsed::BadKind(k) => break damaged(format!("invalid entry kind {k}"), false)?,
        }
    };
    if is_last && !legacy && synced != u64::MAX && file_len < synced {
        return Err(corrupt(
            path,
            file_len,
            format!(
                "the file ends at byte {file_len} but {synced} bytes of it were synced: \
                 it was cut after the fact"
            ),
        ));
    }
    Ok(Scan {
        file_len,
        valid_len: pos as u64,
        records,
        tail,
        version,
        mark,
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
