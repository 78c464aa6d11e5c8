//! The hand-off between a transport and the node it feeds: the transport must exist (and
//! have its receive callback) before the node can be started with it as the node's sink,
//! so the callback routes into a slot that is filled once the node is running.

use super::Node;
use crate::transport::OnMessage;
use std::sync::{Arc, OnceLock};

/// Routes received frames to a [`Node`] started after the transport. Frames that arrive
/// before [`NodeSlot::set`] are dropped, which Raft tolerates like any lost message.
#[derive(Clone, Default)]
pub struct NodeSlot(Arc<OnceLock<Arc<Node>>>);

impl NodeSlot {
    /// An empty slot.
    pub fn new() -> NodeSlot {
        NodeSlot::default()
    }

    /// The transport's receive callback: hands each frame to the node with
    /// [`Node::step_from`], so a frame whose claimed sender is not the peer the transport
    /// authenticated is refused. Errors are the node's to count; nothing is returned.
    pub fn on_message(&self) -> OnMessage {
        let slot = self.0.clone();
        Arc::new(move |from, bytes| {
            if let Some(node) = slot.get() {
                let _ = node.step_from(from, &bytes);
            }
        })
    }

    /// Fills the slot; from now on frames reach `node`. Fails (giving `node` back) if the
    /// slot was already filled.
    pub fn set(&self, node: Arc<Node>) -> Result<(), Arc<Node>> {
        self.0.set(node)
    }

    /// The node, once set.
    pub fn get(&self) -> Option<&Arc<Node>> {
        self.0.get()
    }
}
