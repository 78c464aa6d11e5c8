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
use std::collections::BTreeMap;
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

/// File of the peers' incarnations this node has seen (see [`read_peers`]).
pub const PEERS_FILE: &str = "peers";
const PEERS_MAGIC: &[u8; 4] = b"RPEE";

/// Reads `dir/peers`: the incarnation of each voter this node has heard from (node id ->
/// incarnation), empty if absent. Format: magic `RPEE`, u32 version 1, u32 count, count ×
/// (u64 id, u64 incarnation), u32 crc32c of everything before it (little endian).
pub fn read_peers(dir: &Path) -> StorageResult<BTreeMap<u64, u64>> {
    let path = dir.join(PEERS_FILE);
    let b = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err(path.display(), e)),
    };
    let bad = |why: &str| StorageError::Io(format!("{}: byte offset 0: {why}", path.display()));
    if b.len() < 16 || &b[..4] != PEERS_MAGIC || le_u32(&b, 4) != 1 {
        return Err(bad("not a peers file of version 1"));
    }
    let n = le_u32(&b, 8) as usize;
    if n > 1 << 16 || b.len() != 12 + 16 * n + 4 {
        return Err(bad("wrong length"));
    }
    if crc32c(&b[..b.len() - 4]) != le_u32(&b, b.len() - 4) {
        return Err(bad("checksum mismatch"));
    }
    Ok((0..n)
        .map(|k| (le_u64(&b, 12 + 16 * k), le_u64(&b, 20 + 16 * k)))
        .collect())
}

/// Atomically writes `dir/peers` (see [`read_peers`]).
pub fn write_peers(dir: &Path, peers: &BTreeMap<u64, u64>, fsync: bool) -> std::io::Result<()> {
    let mut b = Vec::with_capacity(16 + 16 * peers.len());
    b.extend_from_slice(PEERS_MAGIC);
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&(peers.len() as u32).to_le_bytes());
    for (id, inc) in peers {
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&inc.to_le_bytes());
    }
    let crc = crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    write_atomic(dir, PEERS_FILE, &b, fsync)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_round_trip() {
        let dir = std::env::temp_dir().join(format!("raft-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(read_peers(&dir).unwrap().is_empty());
        let m: BTreeMap<u64, u64> = [(2, 0xdead), (3, 7)].into();
        write_peers(&dir, &m, false).unwrap();
        assert_eq!(read_peers(&dir).unwrap(), m);
        std::fs::write(dir.join(PEERS_FILE), b"RPEE\x01\0\0\0garbage").unwrap();
        assert!(read_peers(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
