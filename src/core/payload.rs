//! [`Payload`]: an entry's immutable bytes, shared instead of copied. Cloning an entry (into
//! the unstable log, a ready, storage, every follower's append, the apply batch) only bumps
//! a reference count.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Shared, immutable bytes (encoded on the wire exactly like a `Vec<u8>`).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Payload(Arc<[u8]>);

impl Payload {
    /// The bytes as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }
}

impl Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload(v.into())
    }
}

impl From<&[u8]> for Payload {
    fn from(v: &[u8]) -> Self {
        Payload(v.into())
    }
}

impl<const N: usize> From<&[u8; N]> for Payload {
    fn from(v: &[u8; N]) -> Self {
        Payload(v.as_slice().into())
    }
}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<Vec<u8>> for Payload {
    fn eq(&self, other: &Vec<u8>) -> bool {
        *self.0 == other[..]
    }
}

impl PartialEq<Payload> for Vec<u8> {
    fn eq(&self, other: &Payload) -> bool {
        self[..] == *other.0
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0[..], f)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::bytes::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::bytes::deserialize(d).map(Payload::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_and_wire_format_matches_vec() {
        let p = Payload::from(vec![1u8, 2, 3]);
        let q = p.clone();
        assert!(std::ptr::eq(p.as_ptr(), q.as_ptr()), "clone must not copy");
        assert_eq!(p, vec![1u8, 2, 3]);
        let enc = postcard::to_stdvec(&p).unwrap();
        assert_eq!(enc, postcard::to_stdvec(&vec![1u8, 2, 3]).unwrap());
        assert_eq!(postcard::from_bytes::<Payload>(&enc).unwrap(), p);
    }
}
