//! The Raft loop: the core plus the bookkeeping around it (pending proposals, reads,
//! storage and apply hand-off). One pass handles queued inputs and processes the ready; the
//! [`super::driver`] decides which thread runs a pass.

use super::apply::{ApplyJob, Completion};
use super::error::Error;
use super::node::{promotion, Input, ReadDone, Shared};
use super::state_machine::MessageSink;
use super::storage_worker::{self, StorageJob};
use crate::core::{Message, NodeId, RawNode, ReadState, Role};
use crate::storage::LogStore;
use crossbeam_channel::{Receiver, Sender};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Inputs handled per pass before the ready is processed.
const MAX_INPUTS_PER_PASS: usize = 4096;

struct PendingProposal {
    term: u64,
    done: Completion,
}

/// The state the Raft thread (or a caller thread, see [`super::driver`]) works on.
pub(crate) struct RaftLoop {
    pub(crate) raw: RawNode<Arc<dyn LogStore>>,
    pub(crate) inbox: Receiver<Input>,
    pub(crate) storage: Sender<StorageJob>,
    pub(crate) apply: Sender<ApplyJob>,
    pub(crate) sink: Arc<dyn MessageSink>,
    pending: BTreeMap<u64, PendingProposal>,
    reads: HashMap<u64, ReadDone>,
    next_read: u64,
    outstanding: u64,
    last_role: Role,
    /// Learners to promote once they are within the given lag of the leader's log.
    auto_promote: HashMap<NodeId, u64>,
    /// The store is durable when a write returns (memory): write on this thread.
    inline_writes: bool,
    /// Term and vote last written inline.
    written: crate::core::HardState,
    pub(crate) shared: Arc<Shared>,
    /// Why the loop stopped, once it has.
    pub(crate) stop: Option<Error>,
}

impl RaftLoop {
    /// A loop over `raw` that hands writes to `storage` and committed entries to `apply`.
    pub(crate) fn new(
        raw: RawNode<Arc<dyn LogStore>>,
        inbox: Receiver<Input>,
        storage: Sender<StorageJob>,
        apply: Sender<ApplyJob>,
        sink: Arc<dyn MessageSink>,
        shared: Arc<Shared>,
    ) -> Self {
        let store = raw.raft.log.storage.clone();
        RaftLoop {
            raw,
            inbox,
            storage,
            apply,
            sink,
            pending: BTreeMap::new(),
            reads: HashMap::new(),
            next_read: 1,
            outstanding: 0,
            last_role: Role::Follower,
            auto_promote: HashMap::new(),
            inline_writes: store.durable_on_write(),
            written: store.initial_state().map(|(hs, _)| hs).unwrap_or_default(),
            shared,
            stop: None,
        }
    }

    /// True while entries of the log are not applied yet: proposals are in flight, so a new
    /// one is better batched by the Raft thread than run alone.
    pub(crate) fn busy(&self) -> bool {
        self.raw.raft.log.last_index() > self.shared.applied.load(Ordering::Acquire)
    }

    /// One pass: handles `first` and whatever else is queued (many proposals become one
    /// append), then processes the ready.
    pub(crate) fn pass(&mut self, first: Option<Input>) {
        let mut batch = Vec::new();
        if let Some(i) = first {
            self.stop = self.handle(i, &mut batch);
        }
        for _ in 0..MAX_INPUTS_PER_PASS {
            if self.stop.is_some() {
                break;
            }
            match self.inbox.try_recv() {
                Ok(i) => self.stop = self.handle(i, &mut batch),
                Err(_) => break,
            }
        }
        self.propose_batch(batch);
        self.process_ready();
    }

    /// Fails everything still waiting (pending proposals, reads, queued inputs) with the
    /// reason the loop stopped.
    pub(crate) fn finish(mut self) {
        let why = self.stop.take().unwrap_or(Error::Shutdown);
        for (_, p) in std::mem::take(&mut self.pending) {
            (p.done)(Err(why.clone()));
        }
        for (_, r) in self.reads.drain() {
            r(Err(why.clone()));
        }
        while let Ok(i) = self.inbox.try_recv() {
            match i {
                Input::Propose(_, d) | Input::ConfChange(_, _, d) => d(Err(why.clone())),
                Input::ReadIndex(d) => d(Err(why.clone())),
                _ => {}
            }
        }
    }

    fn handle(&mut self, input: Input, batch: &mut Vec<(Vec<u8>, Completion)>) -> Option<Error> {
        match input {
            Input::Step(m) => self.raw.step(m),
            Input::Propose(data, done) => batch.push((data, done)),
            Input::ConfChange(cc, expected, done) => {
                self.propose_batch(std::mem::take(batch));
                match self.raw.propose_conf_change(cc, expected) {
                    Ok(idx) => {
                        let term = self.raw.raft.term;
                        self.pending.insert(idx, PendingProposal { term, done });
                    }
                    Err(e) => done(Err(e.into())),
                }
            }
            Input::ReadIndex(done) => {
                let ctx = self.next_read;
                self.next_read += 1;
                match self.raw.read_index(ctx) {
                    Ok(()) => {
                        self.reads.insert(ctx, done);
                    }
                    Err(e) => done(Err(e.into())),
                }
            }
            Input::Transfer(to, reply) => {
                let _ = reply.send(self.raw.transfer_leader(to).map_err(Error::from));
            }
            Input::Status(reply) => {
                self.raw
                    .on_applied(self.shared.applied.load(Ordering::Acquire));
                let _ = reply.send(self.raw.status());
            }
            Input::AutoPromote(id, lag) => {
                self.auto_promote.insert(id, lag);
            }
            Input::Persisted(number, jobs, snaps) => {
                self.outstanding -= jobs;
                for (meta, ok) in snaps {
                    self.raw.snapshot_received(&meta, ok);
                }
                self.raw.on_persisted(number);
            }
            Input::Fatal(why) => return Some(Error::Failed(why)),
            Input::Shutdown => return Some(Error::Shutdown),
        }
        None
    }

    fn propose_batch(&mut self, batch: Vec<(Vec<u8>, Completion)>) {
        if batch.is_empty() {
            return;
        }
        let (cmds, dones): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let r = self.raw.propose(cmds);
        self.shared.metrics.on_proposals(dones.len(), r.is_ok());
        match r {
            Ok(first) => {
                let term = self.raw.raft.term;
                for (i, done) in dones.into_iter().enumerate() {
                    self.pending
                        .insert(first + i as u64, PendingProposal { term, done });
                }
            }
            Err(e) => {
                let e: Error = e.into();
                for d in dones {
                    d(Err(e.clone()));
                }
            }
        }
    }

    /// Leader only: promotes one caught-up learner registered for automatic promotion.
    fn maybe_auto_promote(&mut self) {
        if self.auto_promote.is_empty() || self.raw.raft.role != Role::Leader {
            return;
        }
        let st = self.raw.status();
        let ready = self.auto_promote.iter().find_map(|(&id, &lag)| {
            let p = st.peers.iter().find(|p| p.id == id)?;
            (st.conf.learners.contains(&id) && p.matched + lag >= st.last_index).then_some(id)
        });
        let Some(id) = ready else { return };
        let cc = promotion(&st.conf, id);
        if self
            .raw
            .propose_conf_change(cc, Some(st.conf_index))
            .is_ok()
        {
            tracing::info!(node = id, "learner caught up: promoting to voter");
            self.auto_promote.remove(&id);
        }
    }

    fn process_ready(&mut self) {
        self.maybe_auto_promote();
        while self.raw.has_ready() {
            let rd = self.raw.ready();
            if let Some(ss) = rd.soft_state {
                if self.last_role == Role::Leader && ss.role != Role::Leader {
                    // Leadership lost: outcomes of pending proposals are unknown.
                    for (_, p) in std::mem::take(&mut self.pending) {
                        (p.done)(Err(Error::Dropped));
                    }
                }
                self.last_role = ss.role;
                self.shared.metrics.on_soft_state(self.raw.raft.id(), ss);
                let _ = self.apply.send(ApplyJob::RoleChange(ss));
            }
            let persist = rd.needs_persist() || !rd.persisted_messages.is_empty();
            for m in rd.messages {
                self.send(m);
            }
            for rs in rd.read_states {
                self.answer_read(rs);
            }
            let job = StorageJob {
                number: rd.number,
                hard_state: rd.hard_state,
                entries: rd.entries,
                chunks: rd.snapshot_chunks,
                messages: rd.persisted_messages,
            };
            if self.inline_writes && self.outstanding == 0 {
                // A memory store is done when the write returns: no storage-thread round
                // trip (and no I/O on this thread).
                if let Err(e) = self.write_inline(job) {
                    self.shared.fail(format!("storage: {e}"));
                    return;
                }
            } else if persist || self.outstanding > 0 {
                self.outstanding += 1;
                if self.storage.send(job).is_err() {
                    self.shared.fail("storage thread stopped".into());
                }
            } else {
                self.raw.on_persisted(rd.number);
            }
            if let Some(meta) = rd.snapshot {
                let _ = self.apply.send(ApplyJob::Restore(meta));
            }
            if !rd.committed_entries.is_empty() {
                self.shared.metrics.on_committed(rd.committed_entries.len());
                let mut items = Vec::with_capacity(rd.committed_entries.len());
                for e in rd.committed_entries {
                    let done = match self.pending.remove(&e.index) {
                        Some(p) if p.term == e.term => Some(p.done),
                        Some(p) => {
                            (p.done)(Err(Error::Dropped));
                            None
                        }
                        None => None,
                    };
                    items.push((e, done));
                }
                if self.apply.send(ApplyJob::Entries(items)).is_err() {
                    self.shared.fail("apply thread stopped".into());
                }
            }
        }
    }

    fn write_inline(&mut self, job: StorageJob) -> Result<(), String> {
        let store = self.raw.raft.log.storage.clone();
        let mut snaps = Vec::new();
        storage_worker::write_job(store.as_ref(), &job, &mut snaps, &mut self.written)?;
        for m in job.messages {
            self.sink.send_message(m);
        }
        for (meta, ok) in snaps {
            self.raw.snapshot_received(&meta, ok);
        }
        self.raw.on_persisted(job.number);
        Ok(())
    }

    fn answer_read(&mut self, rs: ReadState) {
        let Some(done) = self.reads.remove(&rs.ctx) else {
            return;
        };
        match rs.index {
            Some(index) => {
                let _ = self.apply.send(ApplyJob::ReadBarrier(index, done));
            }
            None => done(Err(Error::NotLeader(self.raw.raft.leader))),
        }
    }

    fn send(&self, m: Message) {
        self.shared.metrics.on_send(&m);
        self.sink.send_message(m);
    }
}
