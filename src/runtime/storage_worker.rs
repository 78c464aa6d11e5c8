//! The storage thread: writes readies in order, one fsync per group of queued readies
//! (group commit), then releases the messages that waited for durability. Its reports go to
//! the Raft loop's control queue, which never blocks.

use super::driver::{mark_engine_thread, Control, Inbox};
use super::node::Shared;
use super::state_machine::MessageSink;
use crate::core::SnapshotChunk;
use crate::core::{Entry, HardState, Message, SnapshotMeta};
use crate::storage::LogStore;
use crossbeam_channel::Receiver;
use std::sync::Arc;

/// One ready's durable work.
pub(crate) struct StorageJob {
    pub number: u64,
    /// Bytes of entries and chunks (the Raft loop's storage budget).
    pub bytes: u64,
    pub hard_state: Option<HardState>,
    pub entries: Vec<Entry>,
    pub chunks: Vec<SnapshotChunk>,
    pub messages: Vec<Message>,
}

pub(crate) fn run(
    store: Arc<dyn LogStore>,
    jobs: Receiver<StorageJob>,
    sink: Arc<dyn MessageSink>,
    raft: Inbox,
    shared: Arc<Shared>,
) {
    mark_engine_thread();
    let mut written = store.initial_state().map(|(hs, _)| hs).unwrap_or_default();
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while let Ok(j) = jobs.try_recv() {
            group.push(j);
            if group.len() >= 256 {
                break;
            }
        }
        let mut snaps = Vec::new();
        let mut result = Ok(());
        for j in &group {
            result = write_job(store.as_ref(), j, &mut snaps, &mut written);
            if result.is_err() {
                break;
            }
        }
        // Only entries and snapshot chunks need the sync here: a term/vote change was made
        // durable inside `write_job`, and a commit-only hard state is not written at all. A
        // group without either (the commit-index readies that follow every commit) releases
        // its messages at once: everything before it was synced by an earlier group. Saves
        // one fdatasync per commit per node at low concurrency.
        let wrote = group
            .iter()
            .any(|j| !j.entries.is_empty() || !j.chunks.is_empty());
        if result.is_ok() && wrote {
            let t = std::time::Instant::now();
            result = store.sync().map_err(|e| e.to_string());
            shared.metrics.on_fsync(t.elapsed());
        }
        if let Err(e) = result {
            if shared.stopped.load(std::sync::atomic::Ordering::Acquire) {
                // Shutting down: a write abandoned by the store is not a failure.
                return;
            }
            // An fsync or write error is fatal: nothing written since the last good sync
            // can be trusted, and retrying could pretend data is safe when it is not.
            shared.fail(format!("storage: {e}"));
            raft.control(Control::Fatal(format!("storage: {e}")));
            return;
        }
        let last = group.last().map(|j| j.number).unwrap_or(0);
        let n = group.len();
        let bytes = group.iter().map(|j| j.bytes).sum();
        for j in group {
            for m in j.messages {
                shared.metrics.on_send(&m);
                sink.send_message(m);
            }
        }
        // One report covers the whole group (readies complete in order).
        let done = Control::Persisted {
            number: last,
            jobs: n as u64,
            bytes,
            snaps,
        };
        if !raft.control(done) {
            return;
        }
    }
}

/// Writes one ready's durable work (without syncing); term/vote changes sync first.
pub(crate) fn write_job(
    store: &dyn LogStore,
    j: &StorageJob,
    snaps: &mut Vec<(SnapshotMeta, bool)>,
    written: &mut HardState,
) -> Result<(), String> {
    if !j.entries.is_empty() {
        store.append(&j.entries).map_err(|e| e.to_string())?;
    }
    if let Some(hs) = j.hard_state {
        // Term and vote must be durable before dependent messages; the commit index is not
        // needed for safety (it is relearned from the leader), so a commit-only change does
        // not cost an extra atomic file replacement.
        if hs.term != written.term || hs.vote != written.vote {
            // The hard state is durable at once and carries the commit index: the entries
            // it may cover must be durable first, or a crash could pair that commit index
            // with an older, overwritten entry.
            store.sync().map_err(|e| e.to_string())?;
            store.set_hard_state(hs).map_err(|e| e.to_string())?;
            *written = hs;
        }
    }
    for c in &j.chunks {
        let ok = store
            .write_snapshot_chunk(&c.meta, c.offset, &c.data)
            .map_err(|e| e.to_string())?;
        if !ok {
            // The store's transfer is not where the core's is: report the chunk as failed
            // so the core drops its transfer and the sender starts again.
            tracing::warn!(
                index = c.meta.index,
                offset = c.offset,
                "snapshot chunk refused by the store; restarting the transfer"
            );
            snaps.push((c.meta.clone(), false));
        } else if c.done {
            let res = store.finish_incoming_snapshot(&c.meta);
            if let Err(e) = &res {
                tracing::warn!(index = c.meta.index, %e, "received snapshot refused");
            }
            snaps.push((c.meta.clone(), res.is_ok()));
        }
    }
    Ok(())
}
