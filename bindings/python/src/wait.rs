//! Blocking on an engine completion from Python: in short slices with the GIL released, so
//! Ctrl-C (and any other signal handler) runs while a call waits.

use crate::errors::{stopped_error, to_pyerr, FailureCause};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use pyo3::prelude::*;
use raft::runtime::{Error, Node};
use std::time::{Duration, Instant};

/// How often a blocked call wakes up to let Python handle signals (Ctrl-C).
const SLICE: Duration = Duration::from_millis(50);

/// Waits for `rx` in short slices with the GIL released, checking for signals in between.
pub(crate) fn wait_interruptible<T: Send>(
    py: Python<'_>,
    rx: &Receiver<Result<T, Error>>,
    timeout: Option<Duration>,
    node: &Node,
    cause: &FailureCause,
) -> PyResult<T> {
    wait_raw(py, rx, timeout, node, cause)?.map_err(|e| to_pyerr(py, e, Some(cause)))
}

/// [`wait_interruptible`] that hands back the engine's own error (a Python error only for
/// signals, the timeout and a stopped node).
pub(crate) fn wait_raw<T: Send>(
    py: Python<'_>,
    rx: &Receiver<Result<T, Error>>,
    timeout: Option<Duration>,
    node: &Node,
    cause: &FailureCause,
) -> PyResult<Result<T, Error>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            None => SLICE,
        };
        match py.detach(|| rx.recv_timeout(slice)) {
            Ok(r) => return Ok(r),
            Err(RecvTimeoutError::Timeout) => {
                py.check_signals()?;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(to_pyerr(py, Error::Timeout, None));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                // The completion was dropped unanswered: the node stopped (its failure may
                // be recorded a moment later).
                let failure = py.detach(|| {
                    let until = Instant::now() + Duration::from_millis(200);
                    loop {
                        let f = node.failure();
                        if f.is_some() || cause.lock().is_none() || Instant::now() >= until {
                            return f;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                });
                let e = stopped_error(failure, cause);
                return Err(to_pyerr(py, e, Some(cause)));
            }
        }
    }
}
