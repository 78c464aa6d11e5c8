//! A Python object with `send(to, message)` as the transport.
//!
//! The Raft thread never waits for the interpreter: [`CallbackSink::send`] only queues, and
//! one sender thread per node attaches to the interpreter once per batch of queued messages
//! and calls `transport.send(to, message)` for each.

use crate::errors::describe;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use raft::core::NodeId;
use raft::runtime::MessageSink;
use raft::transport::SendClass;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

thread_local! {
    /// Set on a sender thread: `close()` from inside `transport.send` would join itself.
    static IN_SENDER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True on a sender thread, i.e. inside `transport.send`.
pub(crate) fn inside_send() -> bool {
    IN_SENDER.with(|f| f.get())
}

/// Messages queued for the sender thread; beyond this they are dropped (Raft retries).
const QUEUE: usize = 16_384;

/// Queues outgoing messages for the sender thread.
pub(crate) struct CallbackSink {
    tx: Sender<(NodeId, Vec<u8>)>,
}

impl MessageSink for CallbackSink {
    fn send(&self, to: NodeId, bytes: Vec<u8>, _class: SendClass) {
        if self.tx.try_send((to, bytes)).is_err() {
            tracing::debug!(to, "callback transport queue full; message dropped");
        }
    }
}

/// The sender thread and its stop flag.
pub(crate) struct SenderThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl SenderThread {
    /// Stops the thread and waits for it (call without holding the GIL).
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Creates the sink and starts the thread that calls `transport.send`.
pub(crate) fn start(
    node_id: NodeId,
    transport: Py<PyAny>,
) -> PyResult<(CallbackSink, SenderThread)> {
    let (tx, rx) = bounded(QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name(format!("raft-pysend-{node_id}"))
        .spawn(crate::logging::inherit(move || run(transport, rx, flag)))
        .map_err(|e| crate::errors::value_error(format!("cannot start sender thread: {e}")))?;
    Ok((
        CallbackSink { tx },
        SenderThread {
            stop,
            handle: Some(handle),
        },
    ))
}

fn run(transport: Py<PyAny>, rx: Receiver<(NodeId, Vec<u8>)>, stop: Arc<AtomicBool>) {
    IN_SENDER.with(|f| f.set(true));
    let mut batch = Vec::new();
    while !stop.load(Ordering::Acquire) {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(m) => batch.push(m),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let attached = Python::try_attach(|py| {
            let t = transport.bind(py);
            for (to, bytes) in batch.drain(..) {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                if let Err(e) = t.call_method1("send", (to, PyBytes::new(py, &bytes))) {
                    tracing::warn!(to, "transport.send raised {}", describe(py, &e));
                }
            }
        });
        if attached.is_none() {
            break; // interpreter finalizing
        }
        batch.clear();
    }
    // Release the transport object while attached (if the interpreter is still there).
    let _ = Python::try_attach(move |_py| drop(transport));
}
