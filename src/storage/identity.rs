//! The store's identity file (`identity`): whose state a data directory holds.
//!
//! Layout (48 bytes): `magic "RAFTIDN1" | version u32 = 1 | cluster_id u64 | node_id u64 |
//! incarnation [u8; 16] | crc32c u32` (crc over every byte before it). Written once, atomically
//! (temp file, fsync, rename, directory fsync), when the directory is created. The incarnation
//! is random (from the OS, via `getrandom`): a wiped and re-created directory gets a new one
//! even under the same cluster and node ids.

use super::fsutil::{io_err, le_u32, le_u64, write_atomic};
use crate::core::{StorageError, StorageResult};
use crate::crc32c::crc32c;
use std::fmt;
use std::path::Path;

/// Name of the identity file.
pub const IDENTITY_FILE: &str = "identity";
const MAGIC: &[u8; 8] = b"RAFTIDN1";
const VERSION: u32 = 1;
const LEN: usize = 48;

/// Whose state a store directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The cluster the directory was created for.
    pub cluster_id: u64,
    /// The node the directory was created for.
    pub node_id: u64,
    /// Random id drawn when the directory was created.
    pub incarnation: [u8; 16],
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {} node {} incarnation ",
            self.cluster_id, self.node_id
        )?;
        for b in self.incarnation {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Identity {
    /// A new identity with a random incarnation.
    pub fn generate(cluster_id: u64, node_id: u64) -> StorageResult<Identity> {
        let mut incarnation = [0u8; 16];
        getrandom::fill(&mut incarnation)
            .map_err(|e| StorageError::Io(format!("draw a random incarnation id: {e}")))?;
        Ok(Identity {
            cluster_id,
            node_id,
            incarnation,
        })
    }

    /// Encodes the identity file.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.cluster_id.to_le_bytes());
        b.extend_from_slice(&self.node_id.to_le_bytes());
        b.extend_from_slice(&self.incarnation);
        let crc = crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes an identity file; `path` names it in errors.
    pub fn decode(b: &[u8], path: &Path) -> StorageResult<Identity> {
        let bad = |off: usize, what: String| {
            StorageError::Io(format!("{}: byte offset {off}: {what}", path.display()))
        };
        if b.len() != LEN {
            return Err(bad(
                0,
                format!("identity file is {} bytes, expected {LEN}", b.len()),
            ));
        }
        if &b[0..8] != MAGIC {
            return Err(bad(0, "bad identity magic".into()));
        }
        if le_u32(b, LEN - 4) != crc32c(&b[..LEN - 4]) {
            return Err(bad(LEN - 4, "identity crc mismatch".into()));
        }
        let v = le_u32(b, 8);
        if v != VERSION {
            return Err(bad(8, format!("unsupported identity version {v}")));
        }
        Ok(Identity {
            cluster_id: le_u64(b, 12),
            node_id: le_u64(b, 20),
            incarnation: b[28..44].try_into().expect("16 bytes"),
        })
    }

    /// Refuses with [`StorageError::WrongOwner`] if the configuration names another cluster
    /// or node (`None`: not checked).
    pub fn check(
        &self,
        dir: &Path,
        cluster_id: Option<u64>,
        node_id: Option<u64>,
    ) -> StorageResult<()> {
        let cluster_ok = cluster_id.is_none_or(|c| c == self.cluster_id);
        let node_ok = node_id.is_none_or(|n| n == self.node_id);
        if cluster_ok && node_ok {
            return Ok(());
        }
        let show = |v: Option<u64>| v.map_or("any".to_string(), |v| v.to_string());
        Err(StorageError::WrongOwner(format!(
            "{}: the directory holds the state of cluster {} node {}, but this node is \
             configured as cluster {} node {}; refusing to start on another node's state \
             (point the node at its own data directory, or re-add it under a new id with an \
             empty one)",
            dir.display(),
            self.cluster_id,
            self.node_id,
            show(cluster_id),
            show(node_id)
        )))
    }
}

/// Reads `dir/identity`, `None` if absent.
pub fn read_identity(dir: &Path) -> StorageResult<Option<Identity>> {
    let path = dir.join(IDENTITY_FILE);
    match std::fs::read(&path) {
        Ok(b) => Identity::decode(&b, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path.display(), e)),
    }
}

/// Atomically writes `dir/identity`.
pub fn write_identity(dir: &Path, id: &Identity, fsync: bool) -> std::io::Result<()> {
    write_atomic(dir, IDENTITY_FILE, &id.encode(), fsync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_random_incarnation() {
        let a = Identity::generate(7, 3).unwrap();
        let b = Identity::generate(7, 3).unwrap();
        assert_ne!(a.incarnation, b.incarnation);
        let p = Path::new("identity");
        assert_eq!(Identity::decode(&a.encode(), p).unwrap(), a);
        let mut bytes = a.encode();
        bytes[13] ^= 1;
        assert!(Identity::decode(&bytes, p).is_err());
        assert!(a.check(p, Some(7), Some(3)).is_ok());
        assert!(a.check(p, None, None).is_ok());
        let e = a.check(p, Some(8), Some(3)).unwrap_err().to_string();
        assert!(
            e.contains("cluster 7 node 3") && e.contains("cluster 8 node 3"),
            "{e}"
        );
    }
}
