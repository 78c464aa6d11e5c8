//! Python bindings for raft-manager: the `raft_manager._native` extension module.
//!
//! The Python-facing API lives in `python/raft_manager/__init__.py`; this crate provides the
//! `Node` class, a Python-object state machine and transport, and the log bridge.

mod args;
mod dicts;
mod errors;
mod logging;
mod node;
mod sim;
mod sink;
mod state_machine;
mod wait;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<node::PyNode>()?;
    m.add_class::<state_machine::SnapshotReader>()?;
    m.add_class::<sim::PySimulation>()?;
    m.add_function(wrap_pyfunction!(logging::_install_logging, m)?)?;
    m.add_function(wrap_pyfunction!(logging::_drain_logs, m)?)?;
    Ok(())
}
