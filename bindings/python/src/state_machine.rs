//! A Python object as the replicated state machine.

use crate::errors::{describe, traceback, FailureCause};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};
use raft::runtime::{Committed, StateMachine};
use std::io::{Read, Write};

/// Wraps a Python object with `apply(index, command) -> bytes | None`, `snapshot() -> bytes`
/// and `restore(data)`. Every method runs on the node's apply thread and attaches to the
/// interpreter once per call (once per *batch* for `apply`).
pub(crate) struct PyStateMachine {
    obj: Py<PyAny>,
    cause: FailureCause,
}

impl PyStateMachine {
    /// Checks that `obj` has the three methods and wraps it.
    pub(crate) fn new(obj: &Bound<'_, PyAny>, cause: FailureCause) -> PyResult<Self> {
        for m in ["apply", "snapshot", "restore"] {
            let ok = obj.getattr_opt(m)?.is_some_and(|a| a.is_callable());
            if !ok {
                return Err(crate::errors::type_error(format!(
                    "state_machine must have a callable {m}() method"
                )));
            }
        }
        Ok(PyStateMachine {
            obj: obj.clone().unbind(),
            cause,
        })
    }

    /// Records a Python exception as the node's failure cause and logs it with its traceback.
    fn fail(&self, py: Python<'_>, what: &str, e: PyErr) -> String {
        let msg = format!("{what} raised {}", describe(py, &e));
        tracing::error!("{msg}\n{}", traceback(py, &e).trim_end());
        *self.cause.lock() = Some((msg.clone(), e.into_value(py).into_any()));
        msg
    }

    /// Records a non-exception failure (a wrong return type) as a `TypeError` cause.
    fn fail_type(&self, py: Python<'_>, msg: String) -> String {
        tracing::error!("{msg}");
        let e = crate::errors::type_error(msg.clone());
        let msg = format!("TypeError: {msg}");
        *self.cause.lock() = Some((msg.clone(), e.into_value(py).into_any()));
        msg
    }
}

/// Copies `bytes` or `bytearray` contents; `None` for any other type.
fn as_bytes(v: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Some(b.as_bytes().to_vec());
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return Some(b.to_vec());
    }
    None
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

const SHUTTING_DOWN: &str = "the Python interpreter is shutting down";

impl StateMachine for PyStateMachine {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        Python::try_attach(|py| {
            let obj = self.obj.bind(py);
            let mut out = Vec::with_capacity(batch.len());
            for c in batch {
                let r = obj
                    .call_method1("apply", (c.index, PyBytes::new(py, c.data)))
                    .map_err(|e| self.fail(py, &format!("apply(index={})", c.index), e))?;
                if r.is_none() {
                    out.push(None);
                } else if let Some(b) = as_bytes(&r) {
                    out.push(Some(b));
                } else {
                    return Err(self.fail_type(
                        py,
                        format!(
                            "apply(index={}) must return bytes or None, not {}",
                            c.index,
                            type_name(&r)
                        ),
                    ));
                }
            }
            Ok(out)
        })
        .unwrap_or_else(|| Err(SHUTTING_DOWN.into()))
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        let data = Python::try_attach(|py| {
            let r = self
                .obj
                .bind(py)
                .call_method0("snapshot")
                .map_err(|e| self.fail(py, "snapshot()", e))?;
            as_bytes(&r).ok_or_else(|| {
                self.fail_type(
                    py,
                    format!("snapshot() must return bytes, not {}", type_name(&r)),
                )
            })
        })
        .unwrap_or_else(|| Err(SHUTTING_DOWN.into()))?;
        out.write_all(&data).map_err(|e| e.to_string())
    }

    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let mut data = Vec::new();
        input.read_to_end(&mut data).map_err(|e| e.to_string())?;
        Python::try_attach(|py| {
            self.obj
                .bind(py)
                .call_method1("restore", (PyBytes::new(py, &data),))
                .map(|_| ())
                .map_err(|e| self.fail(py, "restore()", e))
        })
        .unwrap_or_else(|| Err(SHUTTING_DOWN.into()))
    }
}
