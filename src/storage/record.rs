//! WAL record encoding.
//!
//! Layout (little endian): `len u32 | crc32c u32 | term u64 | index u64 | kind u8 | payload`.
//! `len` counts the bytes after the crc field (`17 + payload.len()`); the crc covers exactly
//! those bytes.

use crate::core::{Entry, EntryKind};
use crate::crc32c::crc32c;

/// Bytes of the `len` and `crc` fields that precede a record body.
pub const RECORD_PREFIX: usize = 8;
/// Bytes of the fixed part of a record body (`term`, `index`, `kind`).
pub const BODY_FIXED: usize = 17;
/// Largest payload a record may carry; larger `len` fields are treated as corruption.
pub const MAX_PAYLOAD: usize = 256 << 20;

/// Appends the encoded record for `e` to `out`; returns the number of bytes added.
pub fn encode(e: &Entry, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    let len = (BODY_FIXED + e.data.len()) as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&e.term.to_le_bytes());
    out.extend_from_slice(&e.index.to_le_bytes());
    out.push(e.kind as u8);
    out.extend_from_slice(&e.data);
    let crc = crc32c(&out[start + RECORD_PREFIX..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// Outcome of parsing one record from the front of a buffer.
#[derive(Debug)]
pub enum Parsed {
    /// A valid record and its total encoded length.
    Record(Entry, usize),
    /// The buffer ends before the record does.
    Incomplete,
    /// The `len` field is out of range.
    BadLen(u32),
    /// The record is complete but its crc does not match.
    BadCrc,
    /// The crc matches but the kind byte is unknown.
    BadKind(u8),
}

/// Decodes the entry kind byte.
pub fn kind_from_u8(b: u8) -> Option<EntryKind> {
    match b {
        0 => Some(EntryKind::Normal),
        1 => Some(EntryKind::ConfChange),
        2 => Some(EntryKind::Noop),
        _ => None,
    }
}

/// Parses the record at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.len() < RECORD_PREFIX {
        return Parsed::Incomplete;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().unwrap());
    if (len as usize) < BODY_FIXED || len as usize > BODY_FIXED + MAX_PAYLOAD {
        return Parsed::BadLen(len);
    }
    let total = RECORD_PREFIX + len as usize;
    if buf.len() < total {
        return Parsed::Incomplete;
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    let body = &buf[RECORD_PREFIX..total];
    if crc32c(body) != crc {
        return Parsed::BadCrc;
    }
    let term = u64::from_le_bytes(body[0..8].try_into().unwrap());
    let index = u64::from_le_bytes(body[8..16].try_into().unwrap());
    let Some(kind) = kind_from_u8(body[16]) else {
        return Parsed::BadKind(body[16]);
    };
    let entry = Entry {
        term,
        index,
        kind,
        data: body[BODY_FIXED..].to_vec().into(),
    };
    Parsed::Record(entry, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let e = Entry {
            term: 3,
            index: 9,
            kind: EntryKind::ConfChange,
            data: b"hello".to_vec().into(),
        };
        let mut buf = Vec::new();
        let n = encode(&e, &mut buf);
        assert_eq!(n, buf.len());
        match parse(&buf) {
            Parsed::Record(d, len) => {
                assert_eq!(d, e);
                assert_eq!(len, n);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&buf[..n - 1]), Parsed::Incomplete));
        buf[n - 1] ^= 1;
        assert!(matches!(parse(&buf), Parsed::BadCrc));
    }
}
