//! A Python object as the replicated state machine.
//!
//! Snapshots can be plain bytes or streamed both ways:
//!
//! - `snapshot()` may return a binary file-like object; it is read in [`CHUNK`]-sized pieces
//!   (attached to the interpreter for each `read`, detached while the piece is written out)
//!   and closed afterwards.
//! - If the object has `restore_stream(reader)`, it gets a [`SnapshotReader`] instead of one
//!   `bytes` object. The Rust snapshot reader (`&mut dyn Read`) is borrowed by the apply
//!   thread and cannot be handed to Python, so the Python call runs on a short-lived helper
//!   thread while the apply thread serves the reader's requests over a channel: at most one
//!   request's worth of data (a `read(n)`, or a [`READ_AHEAD`] buffer) is in memory at a time.

use crate::errors::{describe, traceback, value_error, FailureCause};
use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::Mutex;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PySlice, PyTuple};
use raft::runtime::{Committed, StateMachine};
use std::cell::Cell;
use std::io::{Read, Write};

/// Size of each `read` on a snapshot stream returned by `snapshot()`.
const CHUNK: usize = 1 << 20;
/// How much a [`SnapshotReader`] fetches at once for small reads and `readline`.
const READ_AHEAD: usize = 64 << 10;

thread_local! {
    /// Set on the helper thread while it runs `restore_stream`.
    static IN_RESTORE_STREAM: Cell<bool> = const { Cell::new(false) };
}

/// True while running state-machine code: one of the runtime's callbacks, or
/// `restore_stream` on its helper thread. Calls that wait for the apply thread would deadlock.
pub(crate) fn inside_callback() -> bool {
    raft::runtime::inside_callback() || IN_RESTORE_STREAM.with(|c| c.get())
}

/// Wraps a Python object with `apply(index, command) -> bytes | None`,
/// `snapshot() -> bytes | file-like` and `restore(data)` (or `restore_stream(reader)`).
/// Every method runs on the node's apply thread and attaches to the interpreter once per
/// call (once per *batch* for `apply`, once per chunk for a snapshot stream), except
/// `restore_stream`, which runs on a helper thread (see the module documentation).
pub(crate) struct PyStateMachine {
    obj: Py<PyAny>,
    cause: FailureCause,
}

/// A `snapshot()` result.
enum Snapshot {
    Data(Vec<u8>),
    Stream(Py<PyAny>),
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

    /// Reads one chunk of a snapshot stream into `buf`; returns its length (0 at the end).
    fn read_chunk(
        &self,
        py: Python<'_>,
        stream: &Bound<'_, PyAny>,
        buf: &mut Vec<u8>,
    ) -> Result<usize, String> {
        let r = stream
            .call_method1("read", (CHUNK,))
            .map_err(|e| self.fail(py, "snapshot() stream read()", e))?;
        let data = as_bytes(&r).ok_or_else(|| {
            self.fail_type(
                py,
                format!(
                    "snapshot() stream read() must return bytes, not {}",
                    type_name(&r)
                ),
            )
        })?;
        buf.extend_from_slice(&data);
        Ok(data.len())
    }

    /// Copies a snapshot stream to `out` chunk by chunk, then closes it (also on error).
    fn copy_stream(&self, stream: Py<PyAny>, out: &mut dyn Write) -> Result<(), String> {
        let mut buf = Vec::new();
        let copied = loop {
            buf.clear();
            let got = Python::try_attach(|py| self.read_chunk(py, stream.bind(py), &mut buf))
                .unwrap_or_else(|| Err(SHUTTING_DOWN.into()));
            match got {
                Ok(0) => break Ok(()),
                // Written detached: other Python threads run meanwhile.
                Ok(_) => {
                    if let Err(e) = out.write_all(&buf) {
                        break Err(format!("writing the snapshot failed: {e}"));
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let closed = Python::try_attach(|py| self.close_stream(py, stream, copied.is_ok()))
            .unwrap_or(Ok(()));
        copied.and(closed)
    }

    /// Calls the stream's `close()` if it has one. A failure is the node's failure unless an
    /// earlier error already is (`record` false): then it is only logged.
    fn close_stream(&self, py: Python<'_>, stream: Py<PyAny>, record: bool) -> Result<(), String> {
        let s = stream.into_bound(py);
        let r = match s.getattr_opt("close") {
            Ok(Some(c)) if c.is_callable() => c.call0().map(|_| ()),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) if record => Err(self.fail(py, "snapshot() stream close()", e)),
            Err(e) => {
                tracing::warn!(
                    "closing the snapshot stream after an error raised {}",
                    describe(py, &e)
                );
                Ok(())
            }
        }
    }

    /// Runs `restore_stream(reader)` on a helper thread while this (apply) thread feeds the
    /// reader from `input`.
    fn restore_streaming(&self, input: &mut dyn Read) -> Result<(), String> {
        let (req_tx, req_rx) = bounded::<usize>(0);
        let (resp_tx, resp_rx) = bounded::<Result<Vec<u8>, String>>(1);
        let link = Link {
            requests: req_tx,
            responses: resp_rx,
        };
        std::thread::scope(|s| {
            let helper = std::thread::Builder::new()
                .name("raft-restore".into())
                .spawn_scoped(s, move || {
                    crate::logging::scoped(|| self.call_restore_stream(link))
                })
                .map_err(|e| format!("cannot start the restore_stream thread: {e}"))?;
            // Ends when the reader is closed (its request sender dropped).
            let mut read_error = None;
            for want in req_rx.iter() {
                let mut chunk = Vec::with_capacity(want.min(CHUNK));
                let r = match Read::take(&mut *input, want as u64).read_to_end(&mut chunk) {
                    Ok(_) => Ok(chunk),
                    Err(e) => {
                        let msg = format!("reading the snapshot failed: {e}");
                        read_error.get_or_insert(msg.clone());
                        Err(msg)
                    }
                };
                // Fails only if the link is gone, which also ends the loop.
                let _ = resp_tx.send(r);
            }
            let called = helper
                .join()
                .unwrap_or_else(|_| Err("the restore_stream thread panicked".into()));
            called?;
            // Read what Python left (it may stop early, e.g. `pickle.load`): the stored
            // snapshot's checksum is verified at its end.
            if read_error.is_none() {
                if let Err(e) = std::io::copy(input, &mut std::io::sink()) {
                    read_error = Some(format!("reading the snapshot failed: {e}"));
                }
            }
            // The user code may have swallowed the reader's OSError: still a failed restore.
            match read_error {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
    }

    /// The helper thread's part of [`Self::restore_streaming`].
    fn call_restore_stream(&self, link: Link) -> Result<(), String> {
        IN_RESTORE_STREAM.with(|c| c.set(true));
        let r = Python::try_attach(|py| {
            let reader = Py::new(py, SnapshotReader::new(link))
                .map_err(|e| self.fail(py, "restore_stream()", e))?;
            let r = self
                .obj
                .bind(py)
                .call_method1("restore_stream", (reader.clone_ref(py),));
            // Closed before the apply thread continues: later use raises ValueError.
            let reader = reader.get();
            py.detach(|| reader.close_link());
            r.map(|_| ())
                .map_err(|e| self.fail(py, "restore_stream()", e))
        })
        .unwrap_or_else(|| Err(SHUTTING_DOWN.into()));
        IN_RESTORE_STREAM.with(|c| c.set(false));
        r
    }
}

/// Copies `bytes`, `bytearray` or `memoryview` contents; `None` for any other type.
fn as_bytes(v: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Some(b.as_bytes().to_vec());
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return Some(b.to_vec());
    }
    if v.cast::<PyMemoryView>().is_ok() {
        let b = v.call_method0("tobytes").ok()?;
        return b.cast::<PyBytes>().ok().map(|b| b.as_bytes().to_vec());
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
        let snap = Python::try_attach(|py| {
            let r = self
                .obj
                .bind(py)
                .call_method0("snapshot")
                .map_err(|e| self.fail(py, "snapshot()", e))?;
            if let Some(b) = as_bytes(&r) {
                return Ok(Snapshot::Data(b));
            }
            let readable = r
                .getattr_opt("read")
                .map_err(|e| self.fail(py, "snapshot() result", e))?
                .is_some_and(|m| m.is_callable());
            if readable {
                return Ok(Snapshot::Stream(r.unbind()));
            }
            Err(self.fail_type(
                py,
                format!(
                    "snapshot() must return bytes or a binary file-like object with read(), \
                     not {}",
                    type_name(&r)
                ),
            ))
        })
        .unwrap_or_else(|| Err(SHUTTING_DOWN.into()))?;
        match snap {
            Snapshot::Data(data) => out.write_all(&data).map_err(|e| e.to_string()),
            Snapshot::Stream(stream) => self.copy_stream(stream, out),
        }
    }

    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let streaming = Python::try_attach(|py| {
            self.obj
                .bind(py)
                .getattr_opt("restore_stream")
                .map(|m| m.is_some_and(|m| m.is_callable()))
                .map_err(|e| self.fail(py, "restore_stream lookup", e))
        })
        .unwrap_or_else(|| Err(SHUTTING_DOWN.into()))?;
        if streaming {
            return self.restore_streaming(input);
        }
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

/// The reader's end of the channel to the apply thread: a request is a byte count, the
/// answer that many bytes (fewer only at the end of the snapshot).
struct Link {
    requests: Sender<usize>,
    responses: Receiver<Result<Vec<u8>, String>>,
}

/// Why a read failed.
enum ReadError {
    Closed,
    Io(String),
}

impl ReadError {
    fn into_pyerr(self) -> PyErr {
        match self {
            ReadError::Closed => value_error("snapshot reader is closed"),
            ReadError::Io(msg) => PyOSError::new_err(msg),
        }
    }
}

/// An open reader: the link plus a read-ahead buffer (`buf[pos..]` not yet returned).
struct ReaderState {
    link: Link,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl ReaderState {
    /// Fetches up to `want` bytes from the apply thread (fewer only at the end).
    fn fetch(&mut self, want: usize) -> Result<Vec<u8>, ReadError> {
        if self.eof || want == 0 {
            return Ok(Vec::new());
        }
        let lost = || ReadError::Io("the snapshot source went away".into());
        self.link.requests.send(want).map_err(|_| lost())?;
        let data = self
            .link
            .responses
            .recv()
            .map_err(|_| lost())?
            .map_err(ReadError::Io)?;
        if data.len() < want {
            self.eof = true;
        }
        Ok(data)
    }

    /// Takes everything buffered.
    fn take_buffered(&mut self) -> Vec<u8> {
        let out = self.buf.split_off(self.pos);
        self.buf.clear();
        self.pos = 0;
        out
    }

    /// Up to `size` bytes (fewer only at the end), or everything left for `None`.
    fn read(&mut self, size: Option<usize>) -> Result<Vec<u8>, ReadError> {
        let Some(n) = size else {
            let mut out = self.take_buffered();
            loop {
                let chunk = self.fetch(CHUNK)?;
                if chunk.is_empty() {
                    return Ok(out);
                }
                out.extend_from_slice(&chunk);
            }
        };
        let avail = self.buf.len() - self.pos;
        if avail >= n {
            let out = self.buf[self.pos..self.pos + n].to_vec();
            self.pos += n;
            return Ok(out);
        }
        let mut out = self.take_buffered();
        let need = n - out.len();
        let chunk = self.fetch(need.max(READ_AHEAD))?;
        if chunk.len() > need {
            out.extend_from_slice(&chunk[..need]);
            self.buf = chunk;
            self.pos = need;
        } else {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// One line (through `\n`), at most `limit` bytes.
    fn readline(&mut self, limit: Option<usize>) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        loop {
            let room = limit.map_or(usize::MAX, |l| l - out.len());
            let avail = &self.buf[self.pos..];
            let scan = &avail[..avail.len().min(room)];
            if let Some(i) = scan.iter().position(|&b| b == b'\n') {
                out.extend_from_slice(&scan[..=i]);
                self.pos += i + 1;
                return Ok(out);
            }
            out.extend_from_slice(scan);
            self.pos += scan.len();
            if limit == Some(out.len()) {
                return Ok(out);
            }
            let chunk = self.fetch(READ_AHEAD)?;
            if chunk.is_empty() {
                return Ok(out);
            }
            self.buf = chunk;
            self.pos = 0;
        }
    }
}

/// A read-only binary stream over a snapshot, passed to `restore_stream(reader)`; usable
/// only during that call.
#[pyclass(frozen, module = "raft_manager._native", name = "SnapshotReader")]
pub(crate) struct SnapshotReader {
    state: Mutex<Option<ReaderState>>,
}

impl SnapshotReader {
    fn new(link: Link) -> Self {
        SnapshotReader {
            state: Mutex::new(Some(ReaderState {
                link,
                buf: Vec::new(),
                pos: 0,
                eof: false,
            })),
        }
    }

    /// Drops the link: the apply thread stops serving and later reads raise ValueError.
    fn close_link(&self) {
        drop(self.state.lock().take());
    }

    /// Runs `f` on the open state, detached (it may wait for the apply thread).
    fn with_state<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut ReaderState) -> Result<R, ReadError> + Send,
    ) -> PyResult<R> {
        py.detach(|| match self.state.lock().as_mut() {
            Some(s) => f(s),
            None => Err(ReadError::Closed),
        })
        .map_err(ReadError::into_pyerr)
    }

    fn check_open(&self) -> PyResult<()> {
        match self.state.lock().is_some() {
            true => Ok(()),
            false => Err(ReadError::Closed.into_pyerr()),
        }
    }
}

/// A negative or `None` size means "everything".
fn size_of(size: Option<isize>) -> Option<usize> {
    size.and_then(|n| usize::try_from(n).ok())
}

#[pymethods]
impl SnapshotReader {
    /// Reads up to `size` bytes (fewer only at the end of the snapshot); all the rest when
    /// `size` is negative or None (that loads the rest into memory).
    #[pyo3(signature = (size=-1), text_signature = "($self, size=-1)")]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let size = size_of(size);
        let data = self.with_state(py, |s| s.read(size))?;
        Ok(PyBytes::new(py, &data))
    }

    /// Reads into a writable buffer (e.g. a bytearray); returns the number of bytes read.
    fn readinto(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.check_open()?;
        let view = PyMemoryView::from(buffer)?.call_method1("cast", ("B",))?;
        let want = view.len()?;
        let data = self.with_state(py, |s| s.read(Some(want)))?;
        let n = data.len();
        view.set_item(PySlice::new(py, 0, n as isize, 1), PyBytes::new(py, &data))?;
        Ok(n)
    }

    /// Reads one line (through b"\n"), at most `size` bytes when `size` is non-negative.
    #[pyo3(signature = (size=-1), text_signature = "($self, size=-1)")]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let size = size_of(size);
        let data = self.with_state(py, |s| s.readline(size))?;
        Ok(PyBytes::new(py, &data))
    }

    fn readable(&self) -> PyResult<bool> {
        self.check_open()?;
        Ok(true)
    }

    fn writable(&self) -> PyResult<bool> {
        self.check_open()?;
        Ok(false)
    }

    fn seekable(&self) -> PyResult<bool> {
        self.check_open()?;
        Ok(false)
    }

    /// True once closed (the `restore_stream` call returned, or `close()` was called).
    #[getter]
    fn closed(&self) -> bool {
        self.state.lock().is_none()
    }

    /// Stops reading early (the rest of the snapshot is skipped). Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.close_link());
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { "closed" } else { "open" };
        format!("<raft_manager.SnapshotReader {state}>")
    }
}
