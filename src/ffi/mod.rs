//! The C API (the only place with `extern "C"`). The header `include/raft.h` is generated
//! from this module by cbindgen (see `build.rs`); the doc comments below become the header
//! comments.
//!
//! # Conventions
//! * Every fallible function returns a [`raft_status`]; results are written to `out_*`
//!   parameters **only on success**. [`raft_status_str`] names a status and
//!   [`raft_last_error_message`] gives the calling thread's last error detail.
//! * Handles (`raft_config_builder`, `raft_config`, `raft_node`) are opaque and validated:
//!   a freed, consumed or forged handle yields `RAFT_STATUS_INVALID_HANDLE` instead of
//!   undefined behaviour. Every `*_free(NULL)` is a no-op.
//! * Input bytes are copied before a call returns; nothing owned by the caller is retained.
//!   Owned output bytes come as a [`raft_buf`] released with [`raft_buf_free`] (never C
//!   `free()`). Bytes handed to callbacks are borrowed for the callback's duration only.
//! * A panic inside the library is caught at the boundary and reported as
//!   `RAFT_STATUS_PANIC`. Callbacks must not unwind (C++ exceptions) or `longjmp` through
//!   the library.
//!
//! # Threads
//! * `raft_config_builder_*` functions are not thread-safe for one builder; use a builder
//!   from one thread at a time. `raft_config` and `raft_node` handles may be used from any
//!   thread concurrently.
//! * A node runs three engine threads: the *Raft* thread (protocol and timers), the
//!   *storage* thread (writes, fsync) and the *apply* thread (state machine). The send
//!   callback runs on the Raft or storage thread; apply, snapshot, restore and role-change
//!   callbacks run on the apply thread (restore of the latest snapshot also runs on the
//!   thread calling [`raft_node_start`]), never concurrently with each other for one node.
//!   The log callback may run on any thread that logs. With custom storage
//!   ([`raft_config_builder_set_storage_callbacks`]) the persist callback runs on the storage
//!   thread and the persist-snapshot callback on the storage or snapshot thread; the
//!   node waits for [`raft_node_persisted`] before relying on the write.
//! * Inside a callback only enqueue-only calls are allowed: [`raft_node_step`],
//!   [`raft_node_propose_async`] and [`raft_node_persisted`]. Blocking calls (propose, read_index, transfer_leader,
//!   status, shutdown, free) return `RAFT_STATUS_WOULD_DEADLOCK` there.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod buf;
mod config;
mod config_callbacks;
mod handle;
mod log;
mod membership;
mod metrics;
mod node;
mod ops;
mod sim;
mod status;

pub use buf::*;
pub use config::*;
pub use config_callbacks::*;
pub use log::*;
pub use membership::*;
pub use metrics::*;
pub use node::*;
pub use ops::*;
pub use sim::*;
pub use status::*;

use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Outcome of a C API call. Values are stable: grouped in families by hundreds, never
/// renumbered; retired values stay reserved.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum raft_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 100,
    /// An argument was out of range or malformed (e.g. undecodable message bytes).
    InvalidArgument = 101,
    /// A handle was NULL-like, freed, consumed, of the wrong type or forged.
    InvalidHandle = 102,
    /// The caller's buffer is too small.
    BufferTooSmall = 103,
    /// The call would deadlock: a blocking call from inside a callback.
    WouldDeadlock = 104,
    /// A command above the configured maximum (`raft_config_builder_set_max_command_bytes`,
    /// default 32 MiB) was refused up front; nothing was proposed.
    TooLarge = 105,
    /// This node is not the leader (see `raft_node_status` for the known leader).
    NotLeader = 200,
    /// Not accepted now, retry later: an admission limit was reached (queue full, too many
    /// uncommitted bytes) or another membership change is still in flight.
    Busy = 201,
    /// The call timed out; a proposal may still commit later.
    Timeout = 202,
    /// Outcome unknown: leadership was lost before the proposal committed. It may still
    /// commit under the new leader, or be lost; the node has not failed. Retry only
    /// idempotent commands or ones proposed with `raft_node_propose_session`.
    Dropped = 203,
    /// The node is shut down.
    ShutDown = 300,
    /// The node failed (fatal error or panic on an engine thread) and stopped.
    Failed = 301,
    /// Storage failed (opening the data directory, I/O).
    Storage = 302,
    /// A panic was caught at the API boundary.
    Panic = 900,
}

/// Returns a static, NUL-terminated description of a `raft_status` value; unknown values
/// give `"unknown status"`. Thread-safe; never NULL.
#[no_mangle]
pub extern "C" fn raft_status_str(status: u32) -> *const c_char {
    let s: &'static [u8] = match status {
        0 => b"ok\0",
        100 => b"null argument\0",
        101 => b"invalid argument\0",
        102 => b"invalid handle\0",
        103 => b"buffer too small\0",
        104 => b"would deadlock: blocking call inside a callback\0",
        105 => b"too large: command above max_command_bytes\0",
        200 => b"not the leader\0",
        201 => b"busy: retry later\0",
        202 => b"timed out\0",
        203 => b"outcome unknown: leadership lost before commit\0",
        300 => b"node is shut down\0",
        301 => b"node failed\0",
        302 => b"storage error\0",
        900 => b"panic caught at the API boundary\0",
        _ => b"unknown status\0",
    };
    s.as_ptr().cast()
}

/// Returns the loaded library's version as a static NUL-terminated string (compare with the
/// `RAFT_VERSION_*` macros of the header you compiled against). Thread-safe; never NULL.
#[no_mangle]
pub extern "C" fn raft_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Copies the calling thread's last error detail (set by the last failing call on this
/// thread) into `buf` as a NUL-terminated string, truncated to `cap - 1` bytes. `out_len`
/// (optional) receives the full length without the NUL. Empty when no call failed yet.
#[no_mangle]
pub unsafe extern "C" fn raft_last_error_message(
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> raft_status {
    boundary(|| {
        if buf.is_null() || cap == 0 {
            return raft_status::NullArgument;
        }
        LAST_ERROR.with(|e| {
            let e = e.borrow();
            let n = e.len().min(cap - 1);
            // SAFETY: the caller guarantees `buf` holds `cap` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(e.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
                if !out_len.is_null() {
                    *out_len = e.len();
                }
            }
        });
        raft_status::Ok
    })
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
    static CALLBACK_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Records `msg` as the calling thread's last error and returns `status`.
pub(crate) fn fail(status: raft_status, msg: impl Into<String>) -> raft_status {
    let msg = msg.into();
    LAST_ERROR.with(|e| *e.borrow_mut() = msg);
    status
}

/// Maps a runtime error to a status, recording its text.
pub(crate) fn from_error(e: crate::runtime::Error) -> raft_status {
    use crate::runtime::Error as E;
    let s = match &e {
        E::NotLeader(_) => raft_status::NotLeader,
        E::Busy => raft_status::Busy,
        E::Shutdown => raft_status::ShutDown,
        E::Timeout => raft_status::Timeout,
        E::Dropped => raft_status::Dropped,
        E::Invalid(_) | E::ConfMoved { .. } => raft_status::InvalidArgument,
        E::Storage(_) => raft_status::Storage,
        E::Failed(_) => raft_status::Failed,
        E::WouldDeadlock => raft_status::WouldDeadlock,
        E::TooLarge { .. } => raft_status::TooLarge,
    };
    fail(s, e.to_string())
}

/// Borrows the caller's `len` bytes at `p`, checked before the slice exists: `len` 0 gives
/// an empty slice (any `p`), NULL with data gives `RAFT_STATUS_NULL_ARGUMENT`, and a length
/// no allocation can have (above `isize::MAX`) gives `RAFT_STATUS_INVALID_ARGUMENT`.
///
/// # Safety
/// Unless refused, `p` must hold `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    p: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], raft_status> {
    unsafe { slice_arg(p, len, what) }
}

/// [`bytes_arg`] for any element type: `count` elements of `T` at `p`, refusing a size in
/// bytes above `isize::MAX`.
///
/// # Safety
/// Unless refused, `p` must hold `count` readable, initialized `T`s that outlive `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(
    p: *const T,
    count: usize,
    what: &str,
) -> Result<&'a [T], raft_status> {
    if count == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(fail(raft_status::NullArgument, format!("{what} is NULL")));
    }
    let fits = count
        .checked_mul(std::mem::size_of::<T>())
        .is_some_and(|b| b <= isize::MAX as usize);
    if !fits {
        return Err(fail(
            raft_status::InvalidArgument,
            format!("{what}: length {count} is larger than any buffer"),
        ));
    }
    // SAFETY: non-NULL, size within isize::MAX, readable per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, count) })
}

/// Runs a boundary body, turning a panic into `RAFT_STATUS_PANIC`.
/// Logs go to the C log callback ([`log::c_dispatch`], scoped: threads started here inherit
/// it).
pub(crate) fn boundary(f: impl FnOnce() -> raft_status) -> raft_status {
    crate::log_scope::scoped(log::c_dispatch(), || {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(s) => s,
            Err(_) => fail(raft_status::Panic, "panic caught at the C API boundary"),
        }
    })
}

/// Like [`boundary`] for functions without a status result.
pub(crate) fn boundary_void(f: impl FnOnce()) {
    crate::log_scope::scoped(log::c_dispatch(), || {
        let _ = catch_unwind(AssertUnwindSafe(f));
    })
}

/// Runs a C callback, marking the thread as inside a callback.
pub(crate) fn callback_scope<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CALLBACK_DEPTH.with(|d| d.set(d.get() - 1));
        }
    }
    CALLBACK_DEPTH.with(|d| d.set(d.get() + 1));
    let _reset = Reset;
    f()
}

/// True when the calling thread is running a user callback.
pub(crate) fn in_user_callback() -> bool {
    CALLBACK_DEPTH.with(|d| d.get() > 0) || crate::runtime::inside_callback()
}
