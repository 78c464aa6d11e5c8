//! The callbacks of a `raft_config_builder` (userdata, transport, state machine, custom
//! storage) and the durable state loaded into it before start.

use super::buf::{raft_buf, raft_snapshot_reader, raft_snapshot_writer};
use super::config::{bytes, edit, raft_config_builder};
use super::{boundary, callback_scope, fail, raft_status};
use crate::core::{ConfState, Entry, EntryKind, HardState, MemStorage, SnapshotMeta};
use std::ffi::{c_int, c_void};
use std::sync::Arc;

/// Finaliser of the callbacks' `userdata`: called exactly once, when the last object that
/// references the userdata (builder, config, or any node started from that config) is
/// freed — normally from [`raft_node_free`](super::raft_node_free) on its calling thread.
pub type raft_userdata_free_callback = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Sends encoded message bytes (borrowed for the call) to node `to`; deliver them to that
/// node's [`raft_node_step`](super::raft_node_step). Must not block for long; dropping
/// messages is allowed (Raft retries). Runs on the node's Raft or storage thread, or, with
/// [`raft_config_builder_set_caller_runs`], on a thread inside `raft_node_step` /
/// `raft_node_propose*` of this node.
pub type raft_send_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, to: u64, data: *const u8, len: usize)>;

/// Applies the committed command `cmd[0..len]` at log `index` (in log order, on the apply
/// thread). To answer the proposer, call `raft_buf_set(out_response, ptr, len)`. Return 0
/// on success; non-zero fails the node (it stops with `RAFT_STATUS_FAILED`).
pub type raft_apply_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        index: u64,
        cmd: *const u8,
        len: usize,
        out_response: *mut raft_buf,
    ) -> c_int,
>;

/// Writes the whole state machine with `raft_snapshot_writer_write` (apply thread). Return
/// 0 on success; non-zero fails the node.
pub type raft_snapshot_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, writer: *mut raft_snapshot_writer) -> c_int>;

/// Replaces the state machine with a snapshot read by `raft_snapshot_reader_read` (apply
/// thread, or the thread calling `raft_node_start` when restarting from a data directory or
/// from a snapshot loaded with `raft_config_builder_load_snapshot`).
/// Return 0 on success; non-zero fails the node (or its start).
pub type raft_restore_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, reader: *mut raft_snapshot_reader) -> c_int>;

/// Called on the apply thread when this node's role, term or known leader changes;
/// `leader` is 0 when unknown.
pub type raft_role_change_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, role: super::raft_role, term: u64, leader: u64),
>;

/// A hard state (term, vote, commit) as passed to [`raft_persist_callback`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct raft_hard_state {
    /// Current term.
    pub term: u64,
    /// Node voted for in `term` (0 if none).
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

/// A log entry as passed to [`raft_persist_callback`]; `data` is borrowed for the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct raft_entry {
    /// Term of the leader that created the entry.
    pub term: u64,
    /// Position in the log (1-based).
    pub index: u64,
    /// Kind of payload (opaque to the embedder: store it and hand it back as is).
    pub kind: u8,
    /// Payload bytes (NULL when `len` is 0).
    pub data: *const u8,
    /// Payload length.
    pub len: usize,
}

/// Makes one group of log writes durable (custom storage, see
/// [`raft_config_builder_set_storage_callbacks`]). Called on the node's *storage* thread.
/// In this order: if `replace_from` is non-zero, delete every stored entry with index
/// `>= replace_from`; append the `n` entries (contiguous, following the stored log;
/// borrowed for the call: copy them); then, if `hard_state` is not NULL, replace the stored
/// hard state. A crash must keep the whole group or a prefix of it in that order (writing it
/// atomically is simplest). Once — and only once — everything is durable, call
/// `raft_node_persisted(node, token, 1)` from any thread (also allowed inside this
/// callback); report a failed write with `ok = 0`, which fails the node (no retry). Until
/// then the node waits: it never sends a vote or an acknowledgement that depends on these
/// writes, and issues no further writes.
pub type raft_persist_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        token: u64,
        hard_state: *const raft_hard_state,
        replace_from: u64,
        entries: *const raft_entry,
        n: usize,
    ),
>;

/// Durably stores a snapshot, replacing the previous one (custom storage). `meta` is an
/// opaque encoding of the snapshot's metadata (index, term, membership; borrowed: copy it)
/// and `data` the state machine image, both to be handed back with
/// [`raft_config_builder_load_snapshot`] on restart. If `keep_log` is false the whole stored
/// log is obsolete and must be discarded atomically with storing the snapshot; otherwise the
/// entries after `index` must be kept (those at or before it may be discarded). Called on
/// the storage thread (received snapshots) or the snapshot thread (local ones); complete it
/// with `raft_node_persisted(node, token, ok)` like [`raft_persist_callback`]. The two
/// callbacks never overlap: the next call comes only after the previous token was reported.
pub type raft_persist_snapshot_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        token: u64,
        index: u64,
        term: u64,
        meta: *const u8,
        meta_len: usize,
        data: *const u8,
        len: usize,
        keep_log: bool,
    ),
>;

/// Durable state handed back by the embedder before start (custom storage).
#[derive(Clone, Default)]
pub(crate) struct Loaded {
    pub(crate) hard_state: Option<HardState>,
    pub(crate) snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    pub(crate) entries: Vec<Entry>,
}

impl Loaded {
    pub(super) fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.snapshot.is_none() && self.entries.is_empty()
    }

    /// The in-memory mirror a node starts from.
    pub(crate) fn to_mem(&self, bootstrap: ConfState) -> MemStorage {
        let m = MemStorage::new_with_conf(bootstrap);
        if let Some((meta, data)) = &self.snapshot {
            m.apply_snapshot(meta.clone(), data.clone());
        }
        m.append(&self.entries);
        if let Some(hs) = self.hard_state {
            m.set_hard_state(hs);
        }
        m
    }
}

/// The user's `userdata` pointer and its finaliser; finalised when the last `Arc` drops.
pub(crate) struct Userdata {
    pub(crate) ptr: *mut c_void,
    pub(super) free: raft_userdata_free_callback,
}

// SAFETY: the C contract requires userdata to be usable from any engine thread.
unsafe impl Send for Userdata {}
unsafe impl Sync for Userdata {}

impl Drop for Userdata {
    fn drop(&mut self) {
        if let Some(f) = self.free {
            // SAFETY: the user's finaliser, called exactly once.
            callback_scope(|| unsafe { f(self.ptr) });
        }
    }
}

/// Callbacks set on a builder.
#[derive(Clone, Copy, Default)]
pub(crate) struct Callbacks {
    pub(crate) send: raft_send_callback,
    pub(crate) apply: raft_apply_callback,
    pub(crate) snapshot: raft_snapshot_callback,
    pub(crate) restore: raft_restore_callback,
    pub(crate) role_change: raft_role_change_callback,
    pub(crate) persist: raft_persist_callback,
    pub(crate) persist_snapshot: raft_persist_snapshot_callback,
}

/// Sets the `userdata` passed first to every node callback, and its finaliser (may be
/// NULL). Replacing an earlier userdata finalises the earlier one now. `userdata` must be
/// usable from any engine thread.
#[no_mangle]
pub extern "C" fn raft_config_builder_set_userdata(
    builder: *mut raft_config_builder,
    userdata: *mut c_void,
    free_userdata: raft_userdata_free_callback,
) -> raft_status {
    boundary(|| {
        let ud = Arc::new(Userdata {
            ptr: userdata,
            free: free_userdata,
        });
        let mut ud = Some(ud);
        let s = edit(builder, |b| {
            Ok(std::mem::replace(&mut b.userdata, ud.take()))
        });
        if let Some(ud) = ud {
            // Not stored (bad handle): do not run the finaliser of an unowned pointer.
            if let Ok(mut u) = Arc::try_unwrap(ud) {
                u.free = None;
            }
        }
        s
    })
}

/// Sets the send callback (required unless a listen address is set).
#[no_mangle]
pub extern "C" fn raft_config_builder_set_send_callback(
    builder: *mut raft_config_builder,
    send: raft_send_callback,
) -> raft_status {
    boundary(|| {
        edit(builder, |b| {
            b.callbacks.send = send;
            Ok(())
        })
    })
}

/// Sets the apply callback (required).
#[no_mangle]
pub extern "C" fn raft_config_builder_set_apply_callback(
    builder: *mut raft_config_builder,
    apply: raft_apply_callback,
) -> raft_status {
    boundary(|| {
        edit(builder, |b| {
            b.callbacks.apply = apply;
            Ok(())
        })
    })
}

/// Sets the snapshot and restore callbacks (both or neither). Without them the state
/// machine is never snapshotted and the log is kept whole.
#[no_mangle]
pub extern "C" fn raft_config_builder_set_snapshot_callbacks(
    builder: *mut raft_config_builder,
    snapshot: raft_snapshot_callback,
    restore: raft_restore_callback,
) -> raft_status {
    boundary(|| {
        if snapshot.is_some() != restore.is_some() {
            return fail(
                raft_status::InvalidArgument,
                "set both snapshot and restore, or neither",
            );
        }
        edit(builder, |b| {
            b.callbacks.snapshot = snapshot;
            b.callbacks.restore = restore;
            Ok(())
        })
    })
}

/// Sets the role-change callback (optional).
#[no_mangle]
pub extern "C" fn raft_config_builder_set_role_change_callback(
    builder: *mut raft_config_builder,
    on_role_change: raft_role_change_callback,
) -> raft_status {
    boundary(|| {
        edit(builder, |b| {
            b.callbacks.role_change = on_role_change;
            Ok(())
        })
    })
}

/// Makes the node store its log, hard state and snapshots through the embedder's callbacks
/// instead of a data directory or memory ("bring your own store"; both required, and
/// incompatible with [`raft_config_builder_set_data_dir`]). Hand the durable state back at
/// start with the `raft_config_builder_load_*` functions, and complete every callback with
/// `raft_node_persisted`.
#[no_mangle]
pub extern "C" fn raft_config_builder_set_storage_callbacks(
    builder: *mut raft_config_builder,
    persist: raft_persist_callback,
    persist_snapshot: raft_persist_snapshot_callback,
) -> raft_status {
    boundary(|| {
        if persist.is_none() || persist_snapshot.is_none() {
            return fail(
                raft_status::NullArgument,
                "both persist and persist_snapshot are required",
            );
        }
        edit(builder, |b| {
            b.callbacks.persist = persist;
            b.callbacks.persist_snapshot = persist_snapshot;
            Ok(())
        })
    })
}

/// Loads the durable hard state (last one persisted) before start (custom storage).
#[no_mangle]
pub extern "C" fn raft_config_builder_load_hard_state(
    builder: *mut raft_config_builder,
    term: u64,
    vote: u64,
    commit: u64,
) -> raft_status {
    boundary(|| {
        edit(builder, |b| {
            b.loaded.hard_state = Some(HardState { term, vote, commit });
            Ok(())
        })
    })
}

/// Loads the durable snapshot before start (custom storage): `meta`/`data` exactly as
/// received by [`raft_persist_snapshot_callback`] (copied). Must precede
/// [`raft_config_builder_load_entry`]. `RAFT_STATUS_INVALID_ARGUMENT` if `meta` does not
/// decode, the data does not match its size and checksum, or entries were already loaded.
#[no_mangle]
pub unsafe extern "C" fn raft_config_builder_load_snapshot(
    builder: *mut raft_config_builder,
    meta: *const u8,
    meta_len: usize,
    data: *const u8,
    len: usize,
) -> raft_status {
    boundary(|| {
        // SAFETY: caller passes `meta_len`/`len` readable bytes.
        let (mb, db) = match unsafe { (bytes(meta, meta_len, "meta"), bytes(data, len, "data")) } {
            (Ok(m), Ok(d)) => (m, d),
            (Err(s), _) | (_, Err(s)) => return s,
        };
        let Ok(m) = postcard::from_bytes::<SnapshotMeta>(mb) else {
            return fail(
                raft_status::InvalidArgument,
                "snapshot meta does not decode",
            );
        };
        if m.index == 0 || m.size != db.len() as u64 || crate::crc32c::crc32c(db) != m.checksum {
            return fail(
                raft_status::InvalidArgument,
                "snapshot data does not match its metadata (size or checksum)",
            );
        }
        let data = db.to_vec();
        edit(builder, |b| {
            if !b.loaded.entries.is_empty() {
                return Err(fail(
                    raft_status::InvalidArgument,
                    "load the snapshot before the entries",
                ));
            }
            b.loaded.snapshot = Some((m, data));
            Ok(())
        })
    })
}

/// Appends one durable log entry (copied) to the state loaded before start (custom
/// storage), in index order: the first one at or before the loaded snapshot's index + 1
/// (index 1 without a snapshot), each next one at the previous index + 1, terms never
/// decreasing; otherwise `RAFT_STATUS_INVALID_ARGUMENT`. `kind` is `raft_entry.kind` as
/// persisted.
#[no_mangle]
pub unsafe extern "C" fn raft_config_builder_load_entry(
    builder: *mut raft_config_builder,
    term: u64,
    index: u64,
    kind: u8,
    data: *const u8,
    len: usize,
) -> raft_status {
    boundary(|| {
        let kind = match kind {
            0 => EntryKind::Normal,
            1 => EntryKind::ConfChange,
            2 => EntryKind::Noop,
            k => return fail(raft_status::InvalidArgument, format!("bad entry kind {k}")),
        };
        // SAFETY: caller passes `len` readable bytes.
        let data = match unsafe { bytes(data, len, "data") } {
            Ok(d) => d.to_vec(),
            Err(s) => return s,
        };
        edit(builder, |b| {
            let l = &mut b.loaded;
            let ok = match l.entries.last() {
                Some(prev) => index == prev.index + 1 && term >= prev.term,
                None => {
                    let snap = l.snapshot.as_ref().map_or(0, |(m, _)| m.index);
                    index >= 1 && index <= snap + 1
                }
            };
            if !ok || term == 0 {
                return Err(fail(
                    raft_status::InvalidArgument,
                    format!("entry {index} (term {term}) does not continue the loaded log"),
                ));
            }
            l.entries.push(Entry {
                term,
                index,
                kind,
                data: data.into(),
            });
            Ok(())
        })
    })
}
