//! Serde helpers that encode `Vec<u8>` as one byte string instead of a sequence of `u8`
//! (same postcard wire format, one copy instead of a call per byte).

use serde::de::{Deserializer, Error, SeqAccess, Visitor};
use serde::Serializer;
use std::fmt;

/// Serializes bytes as a byte string.
pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(data)
}

/// Deserializes a byte string (or a sequence of bytes) into a `Vec<u8>`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_byte_buf(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // Cap the preallocation: the length comes from untrusted input.
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element()? {
            v.push(b);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Fast(#[serde(with = "super")] Vec<u8>);

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Plain(Vec<u8>);

    #[test]
    fn same_wire_format_as_a_plain_vec() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let fast = postcard::to_stdvec(&Fast(data.clone())).unwrap();
            let plain = postcard::to_stdvec(&Plain(data.clone())).unwrap();
            assert_eq!(fast, plain);
            assert_eq!(postcard::from_bytes::<Fast>(&plain).unwrap().0, data);
        }
        assert!(
            postcard::from_bytes::<Fast>(&[5, 1, 2]).is_err(),
            "truncated input"
        );
    }
}
