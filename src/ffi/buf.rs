//! Owned byte buffers and the snapshot writer/reader handed to callbacks.

use super::{boundary, fail, raft_status};
use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};

/// A byte buffer owned by the library (`data` is NULL when `len` is 0). Release it with
/// [`raft_buf_free`], never with C `free()`. A zero-initialized `raft_buf` is empty.
#[repr(C)]
#[derive(Debug)]
pub struct raft_buf {
    /// First byte, or NULL when empty.
    pub data: *mut u8,
    /// Length in bytes.
    pub len: usize,
}

impl raft_buf {
    pub(crate) fn from_vec(v: Vec<u8>) -> raft_buf {
        if v.is_empty() {
            return raft_buf {
                data: std::ptr::null_mut(),
                len: 0,
            };
        }
        let b = v.into_boxed_slice();
        let len = b.len();
        raft_buf {
            data: Box::into_raw(b).cast::<u8>(),
            len,
        }
    }

    /// Takes the contents out, leaving the buffer empty.
    ///
    /// # Safety
    /// `self` must be empty or hold a buffer made by [`raft_buf::from_vec`].
    pub(crate) unsafe fn take(&mut self) -> Option<Vec<u8>> {
        if self.data.is_null() {
            self.len = 0;
            return None;
        }
        let slice = std::ptr::slice_from_raw_parts_mut(self.data, self.len);
        self.data = std::ptr::null_mut();
        self.len = 0;
        // SAFETY: made by `from_vec` from a boxed slice of exactly this length.
        Some(unsafe { Box::from_raw(slice) }.into_vec())
    }
}

/// Replaces the contents of `out` with a copy of `data[0..len]` (freeing what `out` held).
/// `out` must be zero-initialized or hold a library-owned buffer; `data` may be NULL only
/// when `len` is 0 (which leaves `out` empty). Used by the apply callback to return a
/// response. Callable from any thread.
#[no_mangle]
pub unsafe extern "C" fn raft_buf_set(
    out: *mut raft_buf,
    data: *const u8,
    len: usize,
) -> raft_status {
    boundary(|| {
        if out.is_null() {
            return fail(raft_status::NullArgument, "raft_buf_set: out is NULL");
        }
        // SAFETY: caller contract above. The input is copied before the old contents are
        // freed: `data` may point into the buffer `out` holds.
        unsafe {
            let copy = match super::bytes_arg(data, len, "raft_buf_set: data") {
                Ok(b) => b.to_vec(),
                Err(st) => return st,
            };
            let out = &mut *out;
            drop(out.take());
            if !copy.is_empty() {
                *out = raft_buf::from_vec(copy);
            }
        }
        raft_status::Ok
    })
}

/// Frees the bytes held by `buf` and sets it empty. `buf == NULL` and empty buffers are
/// no-ops. Callable from any thread.
#[no_mangle]
pub unsafe extern "C" fn raft_buf_free(buf: *mut raft_buf) {
    super::boundary_void(|| {
        if !buf.is_null() {
            // SAFETY: caller passes a library-owned or empty buffer.
            drop(unsafe { (*buf).take() });
        }
    })
}

/// Where a snapshot callback writes the state machine's contents. Valid only during the
/// snapshot callback it was passed to, on that callback's thread.
pub struct raft_snapshot_writer {
    out: *mut std::ffi::c_void,
}

/// Where a restore callback reads a snapshot's contents. Valid only during the restore
/// callback it was passed to, on that callback's thread.
pub struct raft_snapshot_reader {
    input: *mut std::ffi::c_void,
}

thread_local! {
    static ACTIVE_WRITER: Cell<usize> = const { Cell::new(0) };
    static ACTIVE_READER: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` with a writer over `out` that is valid for its duration.
pub(crate) fn with_writer<R>(
    out: &mut dyn Write,
    f: impl FnOnce(*mut raft_snapshot_writer) -> R,
) -> R {
    let mut out: &mut dyn Write = out;
    let mut w = raft_snapshot_writer {
        out: (&mut out as *mut &mut dyn Write).cast(),
    };
    let p: *mut raft_snapshot_writer = &mut w;
    let prev = ACTIVE_WRITER.with(|a| a.replace(p as usize));
    let r = f(p);
    ACTIVE_WRITER.with(|a| a.set(prev));
    r
}

/// Runs `f` with a reader over `input` that is valid for its duration.
pub(crate) fn with_reader<R>(
    input: &mut dyn Read,
    f: impl FnOnce(*mut raft_snapshot_reader) -> R,
) -> R {
    let mut input: &mut dyn Read = input;
    let mut r = raft_snapshot_reader {
        input: (&mut input as *mut &mut dyn Read).cast(),
    };
    let p: *mut raft_snapshot_reader = &mut r;
    let prev = ACTIVE_READER.with(|a| a.replace(p as usize));
    let res = f(p);
    ACTIVE_READER.with(|a| a.set(prev));
    res
}

/// Appends `data[0..len]` to the snapshot being written. Only valid inside the snapshot
/// callback on its thread (otherwise `RAFT_STATUS_INVALID_HANDLE`). An I/O failure returns
/// `RAFT_STATUS_STORAGE`; the callback should then return non-zero.
#[no_mangle]
pub unsafe extern "C" fn raft_snapshot_writer_write(
    writer: *mut raft_snapshot_writer,
    data: *const u8,
    len: usize,
) -> raft_status {
    boundary(|| {
        if writer.is_null() || (data.is_null() && len > 0) {
            return fail(raft_status::NullArgument, "snapshot writer: NULL argument");
        }
        if len > isize::MAX as usize {
            return fail(
                raft_status::InvalidArgument,
                "snapshot writer: length larger than any buffer",
            );
        }
        if ACTIVE_WRITER.with(|a| a.get()) != writer as usize {
            return fail(
                raft_status::InvalidHandle,
                "snapshot writer used outside its callback",
            );
        }
        if len == 0 {
            return raft_status::Ok;
        }
        // SAFETY: `writer` is the live writer of this thread's running callback.
        let out = unsafe { &mut *((*writer).out as *mut &mut dyn Write) };
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        match out.write_all(bytes) {
            Ok(()) => raft_status::Ok,
            Err(e) => fail(raft_status::Storage, format!("snapshot write failed: {e}")),
        }
    })
}

/// Reads up to `cap` bytes of the snapshot into `buf`, filling it completely unless the end
/// is reached; `*out_n` receives the count (0 = end of snapshot). Only valid inside the
/// restore callback on its thread (otherwise `RAFT_STATUS_INVALID_HANDLE`).
#[no_mangle]
pub unsafe extern "C" fn raft_snapshot_reader_read(
    reader: *mut raft_snapshot_reader,
    buf: *mut u8,
    cap: usize,
    out_n: *mut usize,
) -> raft_status {
    boundary(|| {
        if reader.is_null() || buf.is_null() || out_n.is_null() {
            return fail(raft_status::NullArgument, "snapshot reader: NULL argument");
        }
        if cap == 0 || cap > isize::MAX as usize {
            return fail(
                raft_status::InvalidArgument,
                "snapshot reader: cap is 0 or larger than any buffer",
            );
        }
        if ACTIVE_READER.with(|a| a.get()) != reader as usize {
            return fail(
                raft_status::InvalidHandle,
                "snapshot reader used outside its callback",
            );
        }
        // SAFETY: `reader` is the live reader of this thread's running callback; `buf`
        // holds `cap` bytes.
        let input = unsafe { &mut *((*reader).input as *mut &mut dyn Read) };
        let dst = unsafe { std::slice::from_raw_parts_mut(buf, cap) };
        let mut n = 0;
        while n < cap {
            match input.read(&mut dst[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return fail(raft_status::Storage, format!("snapshot read failed: {e}")),
            }
        }
        unsafe { *out_n = n };
        raft_status::Ok
    })
}
