//! Typed outcomes of runtime calls.

use crate::core::{NodeId, ProposeError};
use std::fmt;

/// Why a runtime call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// This node is not the leader; the known leader's id (0 if unknown).
    NotLeader(NodeId),
    /// Not accepted now, retry later: the admission limit is reached (uncommitted bytes or
    /// queue full), or another membership change is still in flight.
    Busy,
    /// The node is shut down.
    Shutdown,
    /// The call timed out (a proposal may still commit later).
    Timeout,
    /// Leadership was lost before the proposal committed; its outcome is unknown.
    Dropped,
    /// A bad argument or a refused request (membership, transfer).
    Invalid(String),
    /// A membership change named a configuration id that is no longer current (nothing
    /// was proposed); `current` is the id in force.
    ConfMoved {
        /// The configuration id in force.
        current: u64,
    },
    /// Storage failed; the node has stopped.
    Storage(String),
    /// The node failed (a panic or fatal error) and stopped; the message says why.
    Failed(String),
    /// Called from inside a callback where it would deadlock.
    WouldDeadlock,
    /// A command larger than [`NodeConfig::max_command_bytes`](super::NodeConfig) was
    /// refused up front; nothing was proposed.
    TooLarge {
        /// The command's size in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotLeader(l) => write!(f, "not the leader (leader: {l})"),
            Error::Busy => write!(f, "busy: retry later"),
            Error::Shutdown => write!(f, "node is shut down"),
            Error::Timeout => write!(f, "timed out"),
            Error::Dropped => write!(f, "leadership lost before commit"),
            Error::Invalid(e) => write!(f, "invalid request: {e}"),
            Error::ConfMoved { current } => write!(
                f,
                "invalid request: configuration moved (current id {current})"
            ),
            Error::Storage(e) => write!(f, "storage error: {e}"),
            Error::Failed(e) => write!(f, "node failed: {e}"),
            Error::WouldDeadlock => write!(f, "call would deadlock inside a callback"),
            Error::TooLarge { len, max } => write!(
                f,
                "command of {len} bytes exceeds the maximum of {max} (max_command_bytes)"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<ProposeError> for Error {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NotLeader(l) => Error::NotLeader(l),
            ProposeError::Busy | ProposeError::ConfChangeInProgress => Error::Busy,
            ProposeError::ConfMismatch { current } => Error::ConfMoved { current },
            other => Error::Invalid(other.to_string()),
        }
    }
}
