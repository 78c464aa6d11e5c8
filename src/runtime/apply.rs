//! The apply thread: runs [`ApplyCore`] (the deterministic part, shared with the simulator)
//! over the state machine in log order, completes proposals with its responses, answers read
//! barriers, runs every user completion (failures included: they never run on the Raft
//! thread) and takes snapshots by policy.

use super::apply_core::{ApplyCore, ApplyObserver, EntryResult};
use super::driver::{mark_engine_thread, Control, Inbox};
use super::error::Error;
use super::node::{in_callback, ProposeResult, ReadDone, Shared};
use super::session::SessionTable;
use super::state_machine::StateMachine;
use crate::core::{ConfState, Entry, SnapshotMeta, SoftState};
use crate::storage::LogStore;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Completes a proposal.
pub(crate) type Completion = Box<dyn FnOnce(ProposeResult) + Send>;

/// Work for the apply thread, in log order.
pub(crate) enum ApplyJob {
    /// Committed entries (with the completions of this node's proposals) and their bytes.
    Entries(Vec<(Entry, Option<Completion>)>, u64),
    Restore(SnapshotMeta),
    ReadBarrier(u64, ReadDone),
    RoleChange(SoftState),
    /// Completions decided elsewhere (failures from the Raft loop), run here because user
    /// code never runs on the Raft thread.
    Complete {
        dones: Vec<(Completion, ProposeResult)>,
        reads: Vec<(ReadDone, Error)>,
    },
}

impl ApplyJob {
    /// Runs the completions of a `Complete` job (or fails every completion of any job).
    pub(crate) fn run_failures(self) {
        match self {
            ApplyJob::Complete { dones, reads } => {
                for (d, r) in dones {
                    in_callback(|| d(r));
                }
                for (r, e) in reads {
                    in_callback(|| r(Err(e)));
                }
            }
            ApplyJob::Entries(items, _) => {
                for d in items.into_iter().filter_map(|(_, d)| d) {
                    in_callback(|| d(Err(Error::Shutdown)));
                }
            }
            ApplyJob::ReadBarrier(_, b) => in_callback(|| b(Err(Error::Shutdown))),
            ApplyJob::Restore(_) | ApplyJob::RoleChange(_) => {}
        }
    }
}

/// When to take snapshots.
pub(crate) struct SnapshotPolicy {
    pub every: u64,
    pub trailing: u64,
}

struct Applier {
    sm: Box<dyn StateMachine>,
    core: ApplyCore,
    store: Arc<dyn LogStore>,
    raft: Inbox,
    shared: Arc<Shared>,
    policy: SnapshotPolicy,
    last_snapshot: u64,
    barriers: Vec<(u64, ReadDone)>,
    applied_bytes: u64,
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
    mark_engine_thread();
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
        core: ApplyCore::new(snap.index, snap.term, conf, snap.conf_index, sessions),
        store,
        raft,
        shared,
        policy,
        last_snapshot: snap.index,
        barriers: Vec::new(),
        applied_bytes: 0,
        snapshots: snap_tx,
    };
    a.shared.applied.store(a.core.applied, Ordering::Release);
    let mut failed = false;
    while let Ok(job) = jobs.recv() {
        if failed {
            job.run_failures();
            continue;
        }
        if let Err(e) = a.handle(job) {
            a.shared.fail(e.clone());
            a.raft.control(Control::Fatal(e));
            // Keep draining: the loop's failures arrive here and must still run.
            failed = true;
        }
        a.publish();
    }
    for (_, b) in a.barriers.drain(..) {
        in_callback(|| b(Err(Error::Shutdown)));
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
    mark_engine_thread();
    while let Ok((meta, buf)) = jobs.recv() {
        match store.create_snapshot(meta, &mut buf.as_slice(), trailing) {
            Ok(m) => shared.metrics.on_snapshot_taken(m.index, m.size),
            Err(crate::core::StorageError::SnapshotOutOfDate) => {}
            Err(_) if shared.stopped.load(Ordering::Acquire) => return,
            Err(e) => {
                let why = format!("storing snapshot failed: {e}");
                shared.fail(why.clone());
                raft.control(Control::Fatal(why));
                return;
            }
        }
    }
}

/// Hands each entry's result to its proposal's completion as the entry is applied, and
/// collects the configurations that took effect (`on_conf_change` runs after the batch: the
/// state machine is borrowed by the apply itself).
struct Completer<'a> {
    dones: Vec<Option<Completion>>,
    shared: &'a Shared,
    confs: Vec<ConfState>,
}

impl ApplyObserver for Completer<'_> {
    fn applied(&mut self, pos: usize, index: u64, result: Option<EntryResult>, _: &SessionTable) {
        if let Some(d) = self.dones.get_mut(pos).and_then(Option::take) {
            // Published first: a proposer woken by `d` sees its entry applied.
            self.shared.applied.store(index, Ordering::Release);
            let r = result.unwrap_or(Ok(None));
            in_callback(|| d(r));
        }
    }

    fn conf_changed(&mut self, conf: &ConfState) {
        self.confs.push(conf.clone());
    }
}

impl Applier {
    /// Makes apply progress visible to the Raft loop (without waking it unless it paused
    /// handing out entries for us).
    fn publish(&self) {
        self.shared
            .applied
            .store(self.core.applied, Ordering::Release);
        self.shared
            .applied_bytes
            .store(self.applied_bytes, Ordering::Release);
        if self.shared.apply_paused.swap(false, Ordering::AcqRel) {
            self.raft.control(Control::ApplyWake);
        }
    }

    fn handle(&mut self, job: ApplyJob) -> Result<(), String> {
        match job {
            ApplyJob::Entries(items, bytes) => {
                let t = std::time::Instant::now();
                self.apply(items)?;
                self.shared
                    .metrics
                    .apply_seconds
                    .observe_duration(t.elapsed());
                self.applied_bytes += bytes;
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
                let sessions = restore_into(self.sm.as_mut(), &mut r)?;
                self.core = ApplyCore::new(m.index, m.term, m.conf.clone(), m.conf_index, sessions);
                self.shared.metrics.on_snapshot_installed(m.index, m.term);
                self.last_snapshot = m.index;
                self.complete_barriers();
            }
            ApplyJob::ReadBarrier(index, done) => {
                if self.core.applied >= index {
                    in_callback(|| done(Ok(index)));
                } else {
                    self.barriers.push((index, done));
                }
            }
            ApplyJob::RoleChange(ss) => {
                let sm = &mut self.sm;
                in_callback(|| sm.on_role_change(ss.role, ss.term, ss.leader));
            }
            job @ ApplyJob::Complete { .. } => job.run_failures(),
        }
        Ok(())
    }

    fn apply(&mut self, items: Vec<(Entry, Option<Completion>)>) -> Result<(), String> {
        let (entries, dones): (Vec<Entry>, Vec<Option<Completion>>) = items.into_iter().unzip();
        let mut completer = Completer {
            dones,
            shared: &self.shared,
            confs: Vec::new(),
        };
        let sm = &mut self.sm;
        let r = self.core.apply(
            &mut |b| in_callback(|| sm.apply(b)),
            &entries,
            &mut completer,
        );
        if let Err(why) = r {
            // The waiting proposers learn that the node failed, not that it was shut down:
            // record the failure, then complete the unanswered ones with it.
            self.shared.fail(why.clone());
            for d in completer.dones.into_iter().flatten() {
                in_callback(|| d(Err(Error::Failed(why.clone()))));
            }
            return Err(why);
        }
        for conf in completer.confs {
            self.shared
                .metrics
                .on_membership(self.core.conf_index, &conf);
            let sm = &mut self.sm;
            in_callback(|| sm.on_conf_change(&conf));
        }
        self.complete_barriers();
        if self.policy.every > 0 && self.core.applied >= self.last_snapshot + self.policy.every {
            self.snapshot()?;
        }
        Ok(())
    }

    fn complete_barriers(&mut self) {
        let applied = self.core.applied;
        let mut i = 0;
        while i < self.barriers.len() {
            if self.barriers[i].0 <= applied {
                let (idx, b) = self.barriers.swap_remove(i);
                in_callback(|| b(Ok(idx)));
            } else {
                i += 1;
            }
        }
    }

    fn snapshot(&mut self) -> Result<(), String> {
        let mut buf = Vec::new();
        self.core
            .sessions
            .write_to(&mut buf)
            .map_err(|e| format!("snapshot failed: {e}"))?;
        let sm = &mut self.sm;
        in_callback(|| sm.snapshot(&mut buf)).map_err(|e| format!("snapshot failed: {e}"))?;
        let meta = SnapshotMeta {
            index: self.core.applied,
            term: self.core.applied_term,
            conf: self.core.conf.clone(),
            conf_index: self.core.conf_index,
            size: 0,
            checksum: 0,
        };
        // Writing and fsyncing the snapshot happens on the snapshot thread while apply
        // continues; if the previous one is still being written, this round is skipped.
        match self.snapshots.try_send((meta, buf)) {
            Ok(()) => {
                self.last_snapshot = self.core.applied;
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
