//! Frame format: `u32 length (big endian) | u8 frame version | payload`.
//!
//! `length` counts the version byte plus the payload, so it is always at least 1. The header is
//! validated (length bounds, version) *before* any buffer for the payload is allocated, so a
//! header claiming 4 GiB costs nothing but a closed connection.
//!
//! [`decode_frame`] is a pure function over a byte buffer (used by the fuzz tests);
//! [`read_frame`] is the streaming variant used on sockets. Both share [`parse_header`].

use std::fmt;
use std::io::{self, Read, Write};

/// Current frame version (the byte after the length).
pub const FRAME_VERSION: u8 = 1;
/// Size of the frame header: 4 length bytes + 1 version byte.
pub const HEADER_LEN: usize = 5;
/// Default maximum payload size (64 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 << 20;
/// The largest payload the 32-bit length field can describe.
pub const MAX_ENCODABLE_PAYLOAD: usize = u32::MAX as usize - 1;

/// Why a frame was refused. Every variant closes the connection it arrived on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is 0 (no room for the version byte).
    BadLength,
    /// The payload would exceed the configured maximum.
    Oversized {
        /// Claimed payload length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// Unknown frame version.
    BadVersion(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadLength => write!(f, "frame length 0"),
            FrameError::Oversized { len, max } => {
                write!(
                    f,
                    "frame payload of {len} bytes exceeds the maximum of {max}"
                )
            }
            FrameError::BadVersion(v) => write!(f, "unknown frame version {v}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Validates a header and returns the payload length it announces.
pub fn parse_header(header: &[u8; HEADER_LEN], max_payload: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 {
        return Err(FrameError::BadLength);
    }
    let payload = len - 1;
    if payload > max_payload {
        return Err(FrameError::Oversized {
            len: payload,
            max: max_payload,
        });
    }
    if header[4] != FRAME_VERSION {
        return Err(FrameError::BadVersion(header[4]));
    }
    Ok(payload)
}

/// Builds the header for a payload of `payload_len` bytes.
///
/// # Panics
/// If `payload_len` exceeds [`MAX_ENCODABLE_PAYLOAD`] (callers check sizes first).
pub fn encode_header(payload_len: usize) -> [u8; HEADER_LEN] {
    assert!(payload_len <= MAX_ENCODABLE_PAYLOAD, "payload too large");
    let len = (payload_len as u32 + 1).to_be_bytes();
    [len[0], len[1], len[2], len[3], FRAME_VERSION]
}

/// Appends one complete frame to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&encode_header(payload.len()));
    out.extend_from_slice(payload);
}

/// Writes one frame (header then payload) to `w`; no flush.
pub fn write_frame<W: Write>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    w.write_all(&encode_header(payload.len()))?;
    w.write_all(payload)
}

/// Result of [`decode_frame`].
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete frame: its payload and how many bytes of the buffer it used.
    Frame {
        /// The payload (borrowed from the input).
        payload: &'a [u8],
        /// Bytes consumed, header included.
        consumed: usize,
    },
    /// The buffer holds a valid prefix; at least `need` bytes in total are required.
    Incomplete {
        /// Total buffer length needed to make progress.
        need: usize,
    },
}

/// Decodes the frame at the start of `buf` without allocating.
pub fn decode_frame(buf: &[u8], max_payload: usize) -> Result<Decoded<'_>, FrameError> {
    // Reject a bad length as soon as the 4 length bytes are present, before waiting for more.
    if buf.len() >= 4 && buf[..4] == [0, 0, 0, 0] {
        return Err(FrameError::BadLength);
    }
    if buf.len() >= 4 {
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len - 1 > max_payload {
            return Err(FrameError::Oversized {
                len: len - 1,
                max: max_payload,
            });
        }
    }
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(Decoded::Incomplete { need: HEADER_LEN });
    };
    let payload_len = parse_header(header, max_payload)?;
    let total = HEADER_LEN + payload_len;
    if buf.len() < total {
        return Ok(Decoded::Incomplete { need: total });
    }
    Ok(Decoded::Frame {
        payload: &buf[HEADER_LEN..total],
        consumed: total,
    })
}

/// Error from [`read_frame`].
#[derive(Debug)]
pub enum ReadError {
    /// The stream failed or ended (`UnexpectedEof` on a clean close between frames too).
    Io(io::Error),
    /// The frame header was invalid.
    Frame(FrameError),
}

/// Reads one frame from a stream. The payload buffer is allocated only after the header has
/// been validated against `max_payload`.
pub fn read_frame<R: Read>(r: &mut R, max_payload: usize) -> Result<Vec<u8>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    r.read_exact(&mut header).map_err(ReadError::Io)?;
    let len = parse_header(&header, max_payload).map_err(ReadError::Frame)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).map_err(ReadError::Io)?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut buf = Vec::new();
        encode_frame(b"hello", &mut buf);
        encode_frame(b"", &mut buf);
        assert_eq!(&buf[..5], &[0, 0, 0, 6, FRAME_VERSION]);
        let Decoded::Frame { payload, consumed } = decode_frame(&buf, 100).unwrap() else {
            panic!()
        };
        assert_eq!((payload, consumed), (&b"hello"[..], 10));
        let Decoded::Frame { payload, consumed } = decode_frame(&buf[10..], 100).unwrap() else {
            panic!()
        };
        assert_eq!((payload, consumed), (&b""[..], 5));
        let mut cur = io::Cursor::new(&buf);
        assert_eq!(read_frame(&mut cur, 100).unwrap(), b"hello");
        assert_eq!(read_frame(&mut cur, 100).unwrap(), b"");
        assert!(matches!(read_frame(&mut cur, 100), Err(ReadError::Io(_))));
    }

    #[test]
    fn incomplete_prefixes() {
        let mut buf = Vec::new();
        encode_frame(b"abcdef", &mut buf);
        for cut in 0..buf.len() {
            assert!(matches!(
                decode_frame(&buf[..cut], 100),
                Ok(Decoded::Incomplete { .. })
            ));
        }
    }

    #[test]
    fn header_errors() {
        assert_eq!(decode_frame(&[0, 0, 0, 0], 10), Err(FrameError::BadLength));
        assert_eq!(
            decode_frame(&[0xff, 0xff, 0xff, 0xff], 10),
            Err(FrameError::Oversized {
                len: u32::MAX as usize - 1,
                max: 10
            })
        );
        assert_eq!(
            decode_frame(&[0, 0, 0, 12, 1], 10),
            Err(FrameError::Oversized { len: 11, max: 10 })
        );
        assert_eq!(
            decode_frame(&[0, 0, 0, 11, 1], 10),
            Ok(Decoded::Incomplete { need: 15 })
        );
        assert_eq!(
            decode_frame(&[0, 0, 0, 2, 7, 0], 10),
            Err(FrameError::BadVersion(7))
        );
        // A 4 GiB claim on a stream fails before allocating.
        let mut cur = io::Cursor::new([0xff, 0xff, 0xff, 0xff, 1]);
        assert!(matches!(
            read_frame(&mut cur, DEFAULT_MAX_FRAME_BYTES),
            Err(ReadError::Frame(FrameError::Oversized { .. }))
        ));
    }
}
