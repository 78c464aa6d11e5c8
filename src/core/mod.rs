//! The pure Raft state machine: no threads, clocks, I/O or global randomness.
//!
//! Time enters as [`RawNode::tick`], randomness as a seed in [`Config`], messages through
//! [`RawNode::step`]. Work leaves as a [`Ready`]: messages to send, state to persist, entries
//! to apply. See `docs/ARCHITECTURE.md` for the contract.

mod bytes;
mod confchange;
mod config;
mod log;
mod message;
mod payload;
mod progress;
mod quorum;
mod raft;
mod raw_node;
pub mod rng;
mod storage;
mod types;

pub use confchange::{apply_conf_change, ConfChangeError};
pub use config::Config;
pub use message::{Message, MessageBody};
pub use payload::Payload;
pub use progress::ProgressState;
pub use quorum::is_quorum as quorum_contains;
pub use raft::{
    decode_conf_change, encode_conf_change, ProposeError, Raft, ReadState, Role, SnapshotChunk,
    MAX_TERM,
};
pub use raw_node::{PeerStatus, RawNode, Ready, SoftState, Status};
pub use storage::{MemStorage, Storage, StorageError, StorageResult};
pub use types::{
    ConfChange, ConfState, Entry, EntryKind, HardState, NodeId, SnapshotMeta, NO_NODE,
};
