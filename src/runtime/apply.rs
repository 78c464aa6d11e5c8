//! The apply thread: runs the state machine in log order, in batches, completes proposals
//! with its responses, answers read barriers and takes snapshots by policy.

use super::driver::Inbox;
use super::error::Error;
use super::node::{in_callback, Input, ProposeResult, ReadDone, Shared};
use super::session::{self, SessionTable, Verdict};
use super::state_machine::{Committed, StateMachine};
use crate::core::{
    apply_conf_change, decode_conf_change, ConfState, Entry, EntryKind, SnapshotMeta, SoftState,
};
use crate::storage::LogStore;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Completes a proposal.
pub(crate) type Completion = Box<dyn FnOnce(ProposeResult) + Send>;

/// Work for the apply thread, in log order.
pub(crate) enum ApplyJob {
    Entries(Vec<(Entry, Option<Completion>)>),
    Restore(SnapshotMeta),
    ReadBarrier(u64, ReadDone),
    RoleChange(SoftState),
}

/// When to take snapshots.
pub(crate) struct SnapshotPolicy {
    pub every: u64,
    pub trailing: u64,
}

struct Applier {
    sm: Box<dyn StateMachine>,
    store: Arc<dyn LogStore>,
    raft: Inbox,
    shared: Arc<Shared>,
    policy: SnapshotPolicy,
    applied: u64,
    applied_term: u64,
    conf: ConfState,
    conf_index: u64,
    last_snapshot: u64,
    barriers: Vec<(u64, ReadDone)>,
    sessions: SessionTable,
    snapshots: Sender<(SnapshotMeta, Vec<u8>)>,
}

/// What the apply thread starts from.
pub(crate) struct ApplyStart {
    pub sm: Box<dyn StateMachine>,
    pub store: Arc<dyn LogStore>,
    pub raft: Inbox,
    pub shared: Arc<Shared>,
    pub policy: SnapshotPolicy,
    /// The snapshot the state machine was restored from (index 0 if none).
    pub snap: SnapshotMeta,
    /// The session table restored with it.
    pub sessions: SessionTable,
}

pub(crate) fn run(start: ApplyStart, jobs: Receiver<ApplyJob>) {
    let ApplyStart {
        sm,
        store,
        raft,
        shared,
        policy,
        snap,
        sessions,
    } = start;
    let conf = if snap.index > 0 {
        snap.conf.clone()
    } else {
        store.initial_state().map(|(_, c)| c).unwrap_or_default()
    };
    let (snap_tx, snap_rx) = crossbeam_channel::bounded::<(SnapshotMeta, Vec<u8>)>(1);
    let writer = {
        let (store, raft, shared, trailing) =
            (store.clone(), raft.clone(), shared.clone(), policy.trailing);
        std::thread::Builder::new()
            .name("raft-snapshot".into())
            .spawn(crate::log_scope::inherit(move || {
                write_snapshots(store, snap_rx, raft, shared, trailing)
            }))
            .ok()
    };
    let mut a = Applier {
        sm,
        store,
        raft,
        shared,
        policy,
        applied: snap.index,
        applied_term: snap.term,
        conf,
        conf_index: snap.conf_index,
        last_snapshot: snap.index,
        barriers: Vec::new(),
        sessions,
        snapshots: snap_tx,
    };
    a.shared.applied.store(a.applied, Ordering::Release);
    while let Ok(job) = jobs.recv() {
        if let Err(e) = a.handle(job) {
            a.shared.fail(e.clone());
            a.raft.send(Input::Fatal(e), None);
            break;
        }
        // The Raft thread only uses apply progress for status: publish it without a wake-up.
        a.shared.applied.store(a.applied, Ordering::Release);
    }
    for (_, b) in a.barriers.drain(..) {
        b(Err(Error::Shutdown));
    }
    // Jobs still queued hold completions: fail them rather than dropping silently.
    while let Ok(job) = jobs.try_recv() {
        match job {
            ApplyJob::Entries(items) => {
                for (_, d) in items {
                    if let Some(d) = d {
                        d(Err(Error::Shutdown));
                    }
                }
            }
            ApplyJob::ReadBarrier(_, b) => b(Err(Error::Shutdown)),
            _ => {}
        }
    }
    drop(a);
    if let Some(w) = writer {
        let _ = w.join();
    }
}

/// The snapshot thread: stores snapshots taken by the apply thread and compacts the log.
fn write_snapshots(
    store: Arc<dyn LogStore>,
    jobs: Receiver<(SnapshotMeta, Vec<u8>)>,
    raft: Inbox,
    shared: Arc<Shared>,
    trailing: u64,
) {
    while let Ok((meta, buf)) = jobs.recv() {
        match store.create_snapshot(meta, &mut buf.as_slice(), trailing) {
            Ok(m) => shared.metrics.on_snapshot_taken(m.index, m.size),
            Err(crate::core::StorageError::SnapshotOutOfDate) => {}
            Err(_) if shared.stopped.load(std::sync::atomic::Ordering::Acquire) => return,
            Err(e) => {
                let why = format!("storing snapshot failed: {e}");
                shared.fail(why.clone());
                raft.send(Input::Fatal(why), None);
                return;
            }
        }
    }
}

impl Applier {
    fn handle(&mut self, job: ApplyJob) -> Result<(), String> {
        match job {
            ApplyJob::Entries(items) => {
                let t = std::time::Instant::now();
                self.apply(items)?;
                self.shared
                    .metrics
                    .apply_seconds
                    .observe_duration(t.elapsed());
            }
            ApplyJob::Restore(meta) => {
                let (m, mut r) = self
                    .store
                    .open_snapshot()
                    .map_err(|e| format!("cannot open snapshot: {e}"))?
                    .ok_or("snapshot to restore is missing")?;
                if m.index != meta.index {
                    tracing::warn!(
                        want = meta.index,
                        have = m.index,
                        "restoring a newer snapshot"
                    );
                }
                self.sessions = restore_into(self.sm.as_mut(), &mut r)?;
                self.shared.metrics.on_snapshot_installed(m.index, m.term);
                self.applied = m.index;
                self.applied_term = m.term;
                self.conf = m.conf.clone();
                self.conf_index = m.conf_index;
                self.last_snapshot = m.index;
            }
            ApplyJob::ReadBarrier(index, done) => {
                if self.applied >= index {
                    done(Ok(index));
                } else {
                    self.barriers.push((index, done));
                }
            }
            ApplyJob::RoleChange(ss) => {
                let sm = &mut self.sm;
                in_callback(|| sm.on_role_change(ss.role, ss.term, ss.leader));
            }
        }
        Ok(())
    }

    fn apply(&mut self, items: Vec<(Entry, Option<Completion>)>) -> Result<(), String> {
        let mut items = items.into_iter();
        let mut run = Vec::new();
        loop {
            let next = items.next();
            if let Some(item) = next {
                if item.0.kind == EntryKind::Normal {
                    run.push(item);
                    continue;
                }
                self.apply_run(std::mem::take(&mut run))?;
                let (e, done) = item;
                if e.kind == EntryKind::ConfChange {
                    if let Some(cc) = decode_conf_change(&e.data) {
                        if let Ok(c) = apply_conf_change(&self.conf, &cc) {
                            self.conf = c;
                            self.conf_index = e.index;
                            self.shared.metrics.on_membership(e.index, &self.conf);
                            let (sm, conf) = (&mut self.sm, &self.conf);
                            in_callback(|| sm.on_conf_change(conf));
                        }
                    }
                }
                self.applied = e.index;
                self.applied_term = e.term;
                if let Some(d) = done {
                    in_callback(|| d(Ok(None)));
                }
            } else {
                self.apply_run(std::mem::take(&mut run))?;
                break;
            }
        }
        let applied = self.applied;
        let mut i = 0;
        while i < self.barriers.len() {
            if self.barriers[i].0 <= applied {
                let (idx, b) = self.barriers.swap_remove(i);
                b(Ok(idx));
            } else {
                i += 1;
            }
        }
        if self.policy.every > 0 && self.applied >= self.last_snapshot + self.policy.every {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Applies a run of normal entries as one batch and completes their proposals.
    fn apply_run(&mut self, run: Vec<(Entry, Option<Completion>)>) -> Result<(), String> {
        let Some(first) = run.first().map(|(e, _)| e.index) else {
            return Ok(());
        };
        // Decode every command; retries of applied session commands are answered from
        // the session table and never reach the state machine.
        let mut verdicts = Vec::with_capacity(run.len());
        let mut batch = Vec::with_capacity(run.len());
        for (e, _) in &run {
            let cmd = session::decode(&e.data)
                .ok_or_else(|| format!("undecodable command at index {}", e.index))?;
            let verdict = match cmd.session {
                Some((client, seq)) => self.sessions.check(client, seq),
                None => Verdict::Apply,
            };
            if verdict == Verdict::Apply {
                batch.push(Committed {
                    index: e.index,
                    term: e.term,
                    data: cmd.data,
                });
            }
            verdicts.push((cmd.session, verdict));
        }
        let responses = if batch.is_empty() {
            Vec::new()
        } else {
            let sm = &mut self.sm;
            in_callback(|| sm.apply(&batch))
                .map_err(|e| format!("state machine apply failed at index {first}: {e}"))?
        };
        drop(batch);
        let mut responses = responses.into_iter();
        for ((e, done), (sess, verdict)) in run.into_iter().zip(verdicts) {
            let result = match verdict {
                Verdict::Apply => {
                    let resp = responses.next().flatten();
                    if let Some((client, seq)) = sess {
                        self.sessions.record(client, seq, e.index, resp.clone());
                    }
                    Ok(resp)
                }
                Verdict::Duplicate(resp) => {
                    if let Some((client, _)) = sess {
                        self.sessions.touch(client, e.index);
                    }
                    Ok(resp)
                }
                Verdict::Stale => Err(Error::Invalid(
                    "session command older than the client's latest one".into(),
                )),
            };
            self.applied = e.index;
            self.applied_term = e.term;
            if let Some(d) = done {
                // Published first: a proposer woken by `d` sees its entry applied.
                self.shared.applied.store(e.index, Ordering::Release);
                in_callback(|| d(result));
            }
        }
        self.sessions.expire(self.applied);
        Ok(())
    }

    fn snapshot(&mut self) -> Result<(), String> {
        let mut buf = Vec::new();
        self.sessions
            .write_to(&mut buf)
            .map_err(|e| format!("snapshot failed: {e}"))?;
        let sm = &mut self.sm;
        in_callback(|| sm.snapshot(&mut buf)).map_err(|e| format!("snapshot failed: {e}"))?;
        let meta = SnapshotMeta {
            index: self.applied,
            term: self.applied_term,
            conf: self.conf.clone(),
            conf_index: self.conf_index,
            size: 0,
            checksum: 0,
        };
        // Writing and fsyncing the snapshot happens on the snapshot thread while apply
        // continues; if the previous one is still being written, this round is skipped.
        match self.snapshots.try_send((meta, buf)) {
            Ok(()) => {
                self.last_snapshot = self.applied;
                Ok(())
            }
            Err(crossbeam_channel::TrySendError::Full(_)) => Ok(()),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                Err("snapshot thread stopped".into())
            }
        }
    }
}

/// Restores a runtime snapshot: the session table, then the user's state machine.
pub(crate) fn restore_into(
    sm: &mut dyn StateMachine,
    input: &mut dyn std::io::Read,
) -> Result<SessionTable, String> {
    let sessions = SessionTable::read_from(input)?;
    in_callback(|| sm.restore(input)).map_err(|e| format!("restore failed: {e}"))?;
    Ok(sessions)
}
