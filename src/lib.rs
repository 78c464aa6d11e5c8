//! raft-manager: a Raft consensus library with one core served to Rust, C and Python.
#![deny(missing_docs)]

pub mod codec;
pub mod core;
pub mod ffi;
pub mod log_scope;
pub mod runtime;
pub mod sim;
pub mod storage;
pub mod transport;

/// CRC32C (Castagnoli), used by the WAL, snapshot files and snapshot transfer
/// ([`SnapshotMeta::checksum`](core::SnapshotMeta::checksum)): the `crc32c` crate (SSE4.2 /
/// ARMv8 CRC instructions, software fallback), re-exported so callers computing a snapshot
/// checksum use the same function.
pub use crc32c;

// `make mutants` only: the integration tests of its fast test set, compiled into this
// crate's test binary (`raft::` in them names this crate).
#[cfg(all(test, raft_mutants))]
extern crate self as raft;
#[cfg(all(test, raft_mutants))]
mod mutants;

#[cfg(test)]
mod crc32c_format {
    use crate::crc32c::{crc32c, crc32c_append};

    /// The on-disk formats depend on these exact values (RFC 3720 B.4 vectors): a store
    /// written before the switch to the `crc32c` crate must still verify.
    #[test]
    fn known_vectors_and_incremental() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31) as u8).collect();
        let (a, b) = data.split_at(337);
        assert_eq!(crc32c_append(crc32c(a), b), crc32c(&data));
    }
}
