//! The wire codec: every encoded message starts with a format-version byte followed by a
//! postcard-encoded [`Message`]. Decoding never panics; bad input yields a [`CodecError`].

use crate::core::Message;
use std::fmt;

/// Current wire-format version, the first byte of every encoded message. Version 2 added
/// the sender's and receiver's incarnations to every message; a message of another version
/// is refused with [`CodecError::UnknownVersion`].
pub const FORMAT_VERSION: u8 = 2;

/// Default upper bound on an encoded message (64 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Why bytes could not be decoded into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Zero-length input.
    Empty,
    /// The first byte names a format this build does not speak.
    UnknownVersion(u8),
    /// The input exceeds the configured maximum.
    TooLarge {
        /// Input length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// The body is not a valid message.
    Malformed(String),
    /// Valid message followed by unexpected bytes.
    TrailingBytes(usize),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Empty => write!(f, "empty message"),
            CodecError::UnknownVersion(v) => write!(
                f,
                "unknown message format version {v} (this node speaks version {FORMAT_VERSION})"
            ),
            CodecError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the maximum of {max}")
            }
            CodecError::Malformed(e) => write!(f, "malformed message: {e}"),
            CodecError::TrailingBytes(n) => write!(f, "{n} trailing bytes after message"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Encodes a message (version byte + postcard body).
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.size() as usize + 8);
    out.push(FORMAT_VERSION);
    // Encoding into a Vec cannot fail for these types.
    postcard::to_io(msg, &mut out).expect("encoding a message into memory");
    out
}

/// The length of [`encode`]`(msg)`, computed without writing the bytes.
pub fn encoded_len(msg: &Message) -> usize {
    let size = postcard::ser_flavors::Size::default();
    // Sizing cannot fail for these types.
    1 + postcard::serialize_with_flavor(msg, size).unwrap_or(0)
}

/// Decodes a message, refusing input longer than `max_len`.
pub fn decode(bytes: &[u8], max_len: usize) -> Result<Message, CodecError> {
    if bytes.len() > max_len {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    let (msg, rest) = postcard::take_from_bytes::<Message>(body)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// The sender id an encoded message claims (its `from` field), read without decoding the
/// rest; `None` if `bytes` does not start like a message of this format.
pub fn sender(bytes: &[u8]) -> Option<u64> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) => postcard::take_from_bytes::<u64>(body).ok().map(|v| v.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Entry, EntryKind, MessageBody};

    fn sample() -> Message {
        Message {
            from_incarnation: 0,
            to_incarnation: 0,
            from: 1,
            to: 2,
            term: 7,
            body: MessageBody::Append {
                prev_index: 3,
                prev_term: 6,
                entries: vec![Entry {
                    term: 7,
                    index: 4,
                    kind: EntryKind::Normal,
                    data: b"hello".to_vec().into(),
                }],
                commit: 3,
            },
        }
    }

    #[test]
    fn sender_is_read_without_decoding() {
        for from in [0, 1, 300, u64::MAX] {
            let bytes = encode(&Message { from, ..sample() });
            assert_eq!(sender(&bytes), Some(from));
        }
        assert_eq!(sender(&[]), None);
        assert_eq!(sender(&[FORMAT_VERSION]), None);
        assert_eq!(sender(&[9, 1]), None);
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = encode(&m);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode(&bytes, 1 << 20).unwrap(), m);
    }

    #[test]
    fn rejects_bad_input() {
        let bytes = encode(&sample());
        assert_eq!(decode(&[], 100), Err(CodecError::Empty));
        assert_eq!(decode(&[9, 1, 2], 100), Err(CodecError::UnknownVersion(9)));
        assert!(matches!(
            decode(&bytes, 4),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 2], 1 << 20),
            Err(CodecError::Malformed(_))
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode(&long, 1 << 20), Err(CodecError::TrailingBytes(1)));
    }

    #[test]
    fn random_bytes_never_panic() {
        // Seeded xorshift so the test is deterministic.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let good = encode(&sample());
        for round in 0..100_000u32 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let mut buf = if round % 2 == 0 {
                good.clone()
            } else {
                vec![FORMAT_VERSION; (s % 64) as usize + 1]
            };
            let n = buf.len();
            for k in 0..(s % 6) {
                let pos = ((s >> (8 * k)) as usize) % n;
                buf[pos] = (s >> (3 * k)) as u8;
            }
            let _ = decode(&buf, 1 << 16);
        }
    }
}
