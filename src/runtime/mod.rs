//! The threaded runtime: a [`Node`] runs the core on a Raft thread (protocol and timers
//! only), writes on a storage thread with group commit and applies on an apply thread.

mod apply;
pub mod apply_core;
mod clock;
mod config;
mod driver;
mod error;
pub mod metrics;
mod node;
mod node_slot;
mod raft_loop;
pub(crate) mod readmission;
pub mod session;
mod state_machine;
mod storage_worker;

pub use config::{NodeConfig, MAX_COMMAND_BYTES_LIMIT};
pub use error::Error;
pub use metrics::{Counters, DropReason, Histogram, NodeMetrics, PeerTraffic};
pub use node::{inside_callback, Node, ProposeResult};
pub use node_slot::NodeSlot;
pub use state_machine::{Committed, MessageSink, StateMachine};
