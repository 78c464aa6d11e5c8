//! The user's replicated state machine and the transport hook the runtime sends through.

use crate::core::{ConfState, Message, MessageBody, NodeId, Role};
use crate::transport::SendClass;
use std::io::{Read, Write};

/// A committed command handed to [`StateMachine::apply`].
#[derive(Debug, Clone, Copy)]
pub struct Committed<'a> {
    /// Log index.
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
    /// Command bytes.
    pub data: &'a [u8],
}

/// The replicated state machine. All methods run on the node's apply thread, never
/// concurrently with each other, strictly in log order.
pub trait StateMachine: Send + 'static {
    /// Applies a batch of committed commands; returns one response per command (or fewer:
    /// missing responses are `None`). An `Err` fails the node loudly.
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String>;
    /// Writes the full state for a snapshot.
    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String>;
    /// Replaces the state with a snapshot's contents.
    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String>;
    /// Called on the apply thread when role, term or leader change.
    fn on_role_change(&mut self, _role: Role, _term: u64, _leader: NodeId) {}
    /// Called on the apply thread when a new configuration is applied.
    fn on_conf_change(&mut self, _conf: &ConfState) {}
}

/// Where the runtime sends encoded messages (the built-in TCP transport or user code).
pub trait MessageSink: Send + Sync + 'static {
    /// Sends encoded message bytes to `to`; must not block for long.
    fn send(&self, to: NodeId, bytes: Vec<u8>, class: SendClass);

    /// Sends a message. The default encodes it (`codec::encode`) and calls [`Self::send`];
    /// an in-process transport may override it to hand the message to the target's
    /// [`super::Node::step_message`] without encoding.
    fn send_message(&self, m: Message) {
        let class = if m.is_heartbeat() {
            SendClass::Heartbeat
        } else if matches!(m.body, MessageBody::Snapshot { .. }) {
            SendClass::Bulk
        } else {
            SendClass::Normal
        };
        self.send(m.to, crate::codec::encode(&m), class);
    }
}

impl MessageSink for crate::transport::TcpTransport {
    fn send(&self, to: NodeId, bytes: Vec<u8>, class: SendClass) {
        if let Err(e) = crate::transport::TcpTransport::send(self, to, bytes, class) {
            tracing::debug!(to, %e, "transport refused a message");
        }
    }
}
