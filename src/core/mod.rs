//! The pure Raft state machine: no threads, clocks, I/O or global randomness.
//!
//! Time enters as [`RawNode::tick`], randomness as a seed in [`Config`], messages through
//! [`RawNode::step`]. Work leaves as a [`Ready`]: messages to send, state to persist, entries
//! to apply. See `docs/ARCHITECTURE.md` for the contract.

mod message;
mod storage;
mod types;

pub use message::{Message, MessageBody};
pub use storage::{MemStorage, Storage, StorageError, StorageResult};
pub use types::{
    ConfChange, ConfState, Entry, EntryKind, HardState, NodeId, SnapshotMeta, NO_NODE,
};
