//! Mapping of runtime errors to the Python exceptions defined in `raft_manager._errors`.

use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;
use raft::runtime::Error;
use std::sync::Arc;

/// The Python exception that failed a node (raised by the state machine), kept so later
/// `RaftError`s can chain it as their `__cause__`.
/// Holds the failure message and the exception object.
pub(crate) type FailureCause = Arc<Mutex<Option<(String, Py<PyAny>)>>>;

/// The error for a call whose completion was dropped unanswered: the node's recorded
/// failure, else the state machine's failure (recorded before the node notices), else
/// [`Error::Shutdown`].
pub(crate) fn stopped_error(failure: Option<String>, cause: &FailureCause) -> Error {
    if let Some(f) = failure {
        return Error::Failed(f);
    }
    match cause.lock().as_ref() {
        Some((msg, _)) => Error::Failed(msg.clone()),
        None => Error::Shutdown,
    }
}

/// Looks up an exception class of `raft_manager._errors` by name.
fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = py.import("raft_manager._errors")?;
    Ok(module.getattr(name)?.cast_into::<PyType>()?)
}

/// Builds an instance of `raft_manager.<name>(msg, *extra)`.
fn make(py: Python<'_>, name: &str, msg: String) -> PyErr {
    match class(py, name) {
        Ok(ty) => PyErr::from_type(ty, (msg,)),
        Err(e) => e,
    }
}

/// Converts a runtime error into the matching Python exception.
pub(crate) fn to_pyerr(py: Python<'_>, e: Error, cause: Option<&FailureCause>) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::NotLeader(leader) => match class(py, "NotLeaderError") {
            Ok(ty) => PyErr::from_type(ty, (msg, if leader == 0 { None } else { Some(leader) })),
            Err(e) => e,
        },
        Error::Busy => make(py, "BusyError", msg),
        Error::Shutdown => make(py, "ShutdownError", msg),
        Error::Timeout => make(py, "TimeoutError", msg),
        Error::Storage(_) => make(py, "StorageError", msg),
        Error::Invalid(s) => PyValueError::new_err(s),
        Error::ConfMoved { .. } => PyValueError::new_err(msg),
        Error::Failed(_) => {
            let err = make(py, "RaftError", msg);
            if let Some(exc) = cause.and_then(|c| c.lock().as_ref().map(|(_, o)| o.clone_ref(py))) {
                err.set_cause(py, Some(PyErr::from_value(exc.into_bound(py))));
            }
            err
        }
        Error::Dropped | Error::WouldDeadlock => make(py, "RaftError", msg),
        Error::TooLarge { .. } => make(py, "TooLargeError", msg),
    }
}

/// Shorthand for a `TypeError`.
pub(crate) fn type_error(msg: impl Into<String>) -> PyErr {
    PyTypeError::new_err(msg.into())
}

/// Shorthand for a `ValueError`.
pub(crate) fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// One-line description of a Python exception: `TypeName: message`.
pub(crate) fn describe(py: Python<'_>, e: &PyErr) -> String {
    let ty = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let value = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    if value.is_empty() {
        ty
    } else {
        format!("{ty}: {value}")
    }
}

/// The formatted traceback of `e` (empty if it cannot be formatted).
pub(crate) fn traceback(py: Python<'_>, e: &PyErr) -> String {
    let fmt = || -> PyResult<String> {
        let tb = py.import("traceback")?;
        let lines = tb.call_method1("format_exception", (e.value(py),))?;
        let joined: String = lines
            .try_iter()?
            .map(|l| l.and_then(|l| l.extract::<String>()))
            .collect::<PyResult<Vec<String>>>()?
            .concat();
        Ok(joined)
    };
    fmt().unwrap_or_default()
}
