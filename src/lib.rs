//! raft-manager: a Raft consensus library with one core served to Rust, C and Python.
#![deny(missing_docs)]

pub mod codec;
pub mod core;
pub mod crc32c;
pub mod ffi;
pub mod runtime;
pub mod sim;
pub mod storage;
pub mod transport;
