//! [`ExternalStore`]: a [`LogStore`] whose durability is provided by the embedder.
//!
//! The store keeps an in-memory mirror ([`MemStorage`]) that the core reads from, and hands
//! every write to a [`Persister`] together with a completion token. A write is durable only
//! once the embedder reports the token back with [`ExternalStore::persisted`]; until then
//! [`LogStore::sync`] (and snapshot storage) blocks, so the runtime never sends a vote or an
//! acknowledgement that depends on the write.
//!
//! Group commit: [`LogStore::append`] and [`LogStore::set_hard_state`] only accumulate; one
//! [`LogStore::sync`] issues a single [`Persister::persist`] call covering everything since
//! the previous one.

use super::LogStore;
use crate::core::{ConfState, Entry, HardState, MemStorage, SnapshotMeta, Storage};
use crate::core::{StorageError, StorageResult};
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;

/// The embedder's durable store. Calls come from the node's storage thread (log writes and
/// received snapshots) and from its snapshot thread (locally taken snapshots), one at a
/// time: the next call comes only after the previous one was reported. Each call must be
/// answered with [`ExternalStore::persisted`] for its `token`, from any thread (possibly from
/// inside the call itself); until then the node waits and sends nothing that depends on it.
pub trait Persister: Send + Sync {
    /// Makes one group of writes durable, in this order: if `first_index_replaced` is
    /// `Some(i)`, delete every stored entry with index `>= i`; then append `entries`
    /// (contiguous, following the stored log); then, if `hard_state` is `Some`, replace the
    /// stored hard state. A crash must leave either the whole group or a prefix of it in this
    /// order (writing everything atomically is simplest). Report completion with
    /// [`ExternalStore::persisted`] only after it is durable.
    fn persist(
        &self,
        token: u64,
        hard_state: Option<HardState>,
        first_index_replaced: Option<u64>,
        entries: &[Entry],
    );
    /// Durably stores a snapshot (metadata and data), replacing the previous one. If
    /// `keep_log` is false the whole stored log is obsolete and must be discarded atomically
    /// with storing the snapshot; otherwise entries after `meta.index` must be kept (those at
    /// or before it may be discarded). Report completion with [`ExternalStore::persisted`].
    fn persist_snapshot(&self, token: u64, meta: &SnapshotMeta, data: &[u8], keep_log: bool);
}

#[derive(Default)]
struct Pending {
    hard_state: Option<HardState>,
    replace_from: Option<u64>,
    entries: Vec<Entry>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.replace_from.is_none() && self.entries.is_empty()
    }
}

#[derive(Default)]
struct State {
    pending: Pending,
    next_token: u64,
    /// Tokens handed to the persister and not yet reported.
    outstanding: HashSet<u64>,
    /// Reported tokens not yet collected by their waiter: token -> success.
    done: HashMap<u64, bool>,
    /// Set by [`LogStore::close`]: waits fail instead of blocking.
    closed: bool,
    /// Index of the latest durable snapshot.
    snapshot_index: u64,
}

/// Token bookkeeping shared between the store and its [`Completer`]s.
struct Tokens {
    state: Mutex<State>,
    cond: Condvar,
}

impl Tokens {
    fn persisted(&self, token: u64, ok: bool) -> bool {
        let mut s = self.state.lock();
        if !s.outstanding.remove(&token) {
            return false;
        }
        s.done.insert(token, ok);
        self.cond.notify_all();
        true
    }
}

/// Reports completions of an [`ExternalStore`]'s writes (see [`ExternalStore::completer`]).
#[derive(Clone)]
pub struct Completer(Arc<Tokens>);

impl Completer {
    /// Same as [`ExternalStore::persisted`].
    pub fn persisted(&self, token: u64, ok: bool) -> bool {
        self.0.persisted(token, ok)
    }
}

/// A [`LogStore`] backed by an in-memory mirror for reads and a [`Persister`] for durability.
pub struct ExternalStore {
    mirror: MemStorage,
    persister: Arc<dyn Persister>,
    shared: Arc<Tokens>,
    /// Serialises writes: at most one call to the persister is outstanding at a time, and
    /// they are issued in order.
    sync_lock: Mutex<()>,
}

impl ExternalStore {
    /// A store starting from `initial`: the durable state the embedder loaded at start
    /// (hard state, membership, snapshot and entries). `persister` receives every later
    /// write. A store serves one node run: once closed (the node shut down) its writes fail.
    pub fn new(initial: MemStorage, persister: Arc<dyn Persister>) -> Self {
        ExternalStore {
            persister,
            shared: Arc::new(Tokens {
                state: Mutex::new(State {
                    next_token: 1,
                    snapshot_index: initial.snapshot_meta().index,
                    ..Default::default()
                }),
                cond: Condvar::new(),
            }),
            sync_lock: Mutex::new(()),
            mirror: initial,
        }
    }

    /// Reports the outcome of the write with `token`: `ok == true` once it is durable,
    /// `false` if it failed (the node then fails; there is no retry). Callable from any
    /// thread, including from inside the [`Persister`] call. Returns false (and does
    /// nothing) when `token` is not an outstanding write.
    pub fn persisted(&self, token: u64, ok: bool) -> bool {
        self.shared.persisted(token, ok)
    }

    /// A handle that reports completions like [`ExternalStore::persisted`] without keeping
    /// the store alive (give it to the [`Persister`] after creating the store).
    pub fn completer(&self) -> Completer {
        Completer(self.shared.clone())
    }

    fn issue(&self) -> StorageResult<u64> {
        let mut s = self.shared.state.lock();
        if s.closed {
            return Err(StorageError::Io("external store closed".into()));
        }
        let t = s.next_token;
        s.next_token += 1;
        s.outstanding.insert(t);
        Ok(t)
    }

    fn wait(&self, token: u64) -> StorageResult<()> {
        let mut s = self.shared.state.lock();
        loop {
            if let Some(ok) = s.done.remove(&token) {
                return if ok {
                    Ok(())
                } else {
                    Err(StorageError::Io(format!(
                        "the embedder reported write {token} as failed"
                    )))
                };
            }
            if s.closed {
                return Err(StorageError::Io("external store closed".into()));
            }
            self.shared.cond.wait(&mut s);
        }
    }

    /// Issues the accumulated log writes as one call and waits; `sync_lock` must be held.
    fn flush(&self) -> StorageResult<()> {
        let pending = std::mem::take(&mut self.shared.state.lock().pending);
        if pending.is_empty() {
            return Ok(());
        }
        let token = self.issue()?;
        self.persister.persist(
            token,
            pending.hard_state,
            pending.replace_from,
            &pending.entries,
        );
        self.wait(token)
    }

    fn store_snapshot(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
        keep_log: bool,
    ) -> StorageResult<()> {
        let _order = self.sync_lock.lock();
        // Never replace a newer durable snapshot (a local snapshot can race a received one).
        if meta.index <= self.shared.state.lock().snapshot_index {
            return Err(StorageError::SnapshotOutOfDate);
        }
        // Earlier log writes reach the embedder first.
        self.flush()?;
        let token = self.issue()?;
        self.persister.persist_snapshot(token, meta, data, keep_log);
        self.wait(token)?;
        self.shared.state.lock().snapshot_index = meta.index;
        Ok(())
    }
}

impl Storage for ExternalStore {
    fn initial_state(&self) -> StorageResult<(HardState, ConfState)> {
        self.mirror.initial_state()
    }
    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> StorageResult<Vec<Entry>> {
        self.mirror.entries(lo, hi, max_bytes)
    }
    fn term(&self, index: u64) -> StorageResult<u64> {
        self.mirror.term(index)
    }
    fn first_index(&self) -> u64 {
        self.mirror.first_index()
    }
    fn last_index(&self) -> u64 {
        self.mirror.last_index()
    }
    fn snapshot_meta(&self) -> SnapshotMeta {
        self.mirror.snapshot_meta()
    }
    fn snapshot_chunk(&self, index: u64, offset: u64, max_len: usize) -> StorageResult<Vec<u8>> {
        self.mirror.snapshot_chunk(index, offset, max_len)
    }
    fn partial_snapshot(&self) -> Option<(SnapshotMeta, u64)> {
        self.mirror.partial_snapshot()
    }
}

impl LogStore for ExternalStore {
    fn append(&self, entries: &[Entry]) -> StorageResult<()> {
        // Entries already compacted into the snapshot are skipped (as the mirror does).
        let base = self.mirror.first_index();
        let skip = entries.iter().take_while(|e| e.index < base).count();
        let entries = &entries[skip..];
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let last = self.mirror.last_index();
        if first.index > last + 1 {
            return Err(StorageError::Io(format!(
                "append at index {} leaves a gap after the last index {last}",
                first.index
            )));
        }
        let mut s = self.shared.state.lock();
        let p = &mut s.pending;
        match p.entries.first().map(|e| e.index) {
            Some(pf) if first.index >= pf => {
                p.entries.truncate((first.index - pf) as usize);
            }
            _ => {
                // Nothing pending at or before this index: everything from it on is either
                // new or replaces durable entries.
                if first.index <= last {
                    p.replace_from =
                        Some(p.replace_from.map_or(first.index, |r| r.min(first.index)));
                }
                p.entries.clear();
            }
        }
        p.entries.extend_from_slice(entries);
        drop(s);
        LogStore::append(&self.mirror, entries)
    }

    fn set_hard_state(&self, hs: HardState) -> StorageResult<()> {
        self.mirror.set_hard_state(hs);
        self.shared.state.lock().pending.hard_state = Some(hs);
        Ok(())
    }

    fn sync(&self) -> StorageResult<()> {
        let _order = self.sync_lock.lock();
        self.flush()
    }

    fn write_snapshot_chunk(
        &self,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> StorageResult<bool> {
        // Partial snapshots are kept in memory only (a restart restarts the transfer).
        Ok(self.mirror.write_snapshot_chunk(meta, offset, data))
    }

    fn finish_incoming_snapshot(&self, meta: &SnapshotMeta) -> StorageResult<()> {
        // The mirror keeps its log only if it holds the snapshot's last entry.
        let keep_log = meta.index >= self.mirror.first_index()
            && self.mirror.term(meta.index).ok() == Some(meta.term);
        let data = match self.mirror.partial_snapshot() {
            Some((m, _)) if m.same_snapshot(meta) => self.mirror.incoming_data(),
            _ => return Err(StorageError::Io("no matching incoming snapshot".into())),
        };
        if data.len() as u64 != meta.size || crate::crc32c::crc32c(&data) != meta.checksum {
            return self
                .mirror
                .finish_incoming_snapshot(meta)
                .map_err(StorageError::Io);
        }
        self.store_snapshot(meta, &data, keep_log)?;
        self.mirror
            .finish_incoming_snapshot(meta)
            .map_err(StorageError::Io)
    }

    fn create_snapshot(
        &self,
        mut meta: SnapshotMeta,
        data: &mut dyn Read,
        keep_trailing: u64,
    ) -> StorageResult<SnapshotMeta> {
        let buf = super::read_local_snapshot(&self.mirror, &mut meta, data)?;
        self.store_snapshot(&meta, &buf, true)?;
        self.mirror
            .create_snapshot(meta.clone(), buf, keep_trailing);
        Ok(meta)
    }

    fn open_snapshot(&self) -> StorageResult<Option<(SnapshotMeta, Box<dyn Read + Send>)>> {
        LogStore::open_snapshot(&self.mirror)
    }

    /// Abandons every wait: outstanding and future writes fail instead of blocking (the node
    /// is shutting down while the embedder still holds tokens). Later reports are ignored.
    fn close(&self) {
        let mut s = self.shared.state.lock();
        s.closed = true;
        s.outstanding.clear();
        self.shared.cond.notify_all();
    }
}
