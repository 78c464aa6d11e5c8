//! The Raft loop: the core plus the bookkeeping around it (pending proposals, reads,
//! storage and apply hand-off). One pass delivers the ticks due, handles queued inputs and
//! processes the ready; the [`super::driver`] decides which thread runs a pass.
//!
//! Nothing in a pass blocks: storage and apply work go out through unbounded channels whose
//! contents the loop accounts in bytes. Over the storage budget, proposals are refused
//! (`Busy`) and incoming appends are dropped (as a lossy network would; the leader resends);
//! over the apply budget, committed entries stay in the log until the apply thread catches
//! up. Heartbeats, votes and check-quorum keep running either way. User completions never
//! run here: they go to the apply thread.

use super::apply::{ApplyJob, Completion};
use super::clock::TickClock;
use super::driver::{Control, Queues};
use super::error::Error;
use super::metrics::DropReason;
use super::node::{Input, ProposeResult, ReadDone, Shared};
use super::readmission::Readmission;
use super::state_machine::MessageSink;
use super::storage_worker::{self, StorageJob};
use crate::core::{Message, MessageBody, RawNode, ReadState, Role};
use crate::storage::LogStore;
use crossbeam_channel::Sender;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Inputs handled per pass before the ready is processed.
const MAX_INPUTS_PER_PASS: usize = 4096;

/// Read contexts carry the loop's incarnation in their high bits, so an answer to a read of
/// an earlier run of this node can never complete a read of this one.
const READ_CTX_COUNTER_BITS: u32 = 40;

struct PendingProposal {
    term: u64,
    done: Completion,
    /// When it was appended (for `raft_commit_seconds`).
    at: Instant,
}

/// A read waiting for its read index (or for a leader to ask).
struct PendingRead {
    done: ReadDone,
    /// Tick after which it fails.
    expires: u64,
}

/// How long a read may wait for a leader to ask, in election timeouts.
const READ_WAIT_FOR_LEADER: u64 = 2;

/// How long a read asked of the core may wait for its answer before the loop gives up on
/// it, in election timeouts (the core fails reads on leader changes and expiry itself; this
/// bound only guarantees that nothing leaks).
const READ_ANSWER_BOUND: u64 = 10;

/// Byte budgets of the work handed to the storage and apply threads.
pub(crate) struct Budgets {
    /// Bytes of entries and snapshot chunks written but not yet durable.
    pub storage_bytes: u64,
    /// Bytes of committed entries handed to the apply thread but not yet applied.
    pub apply_bytes: u64,
}

/// What the loop starts from.
pub(crate) struct LoopStart {
    pub raw: RawNode<Arc<dyn LogStore>>,
    pub queues: Queues,
    pub storage: Sender<StorageJob>,
    pub apply: Sender<ApplyJob>,
    pub sink: Arc<dyn MessageSink>,
    pub shared: Arc<Shared>,
    pub clock: TickClock,
    pub budgets: Budgets,
    /// Distinguishes this run of the node (read contexts).
    pub incarnation: u64,
    /// [`super::NodeConfig::auto_rejoin`].
    pub auto_rejoin: Option<u64>,
}

/// The state the Raft thread (or a caller thread, see [`super::driver`]) works on.
pub(crate) struct RaftLoop {
    pub(crate) raw: RawNode<Arc<dyn LogStore>>,
    pub(crate) queues: Queues,
    storage: Sender<StorageJob>,
    apply: Sender<ApplyJob>,
    sink: Arc<dyn MessageSink>,
    clock: TickClock,
    budgets: Budgets,
    pending: BTreeMap<u64, PendingProposal>,
    /// Reads asked of the core, by context.
    reads: HashMap<u64, PendingRead>,
    /// Reads waiting for a leader to ask (none known, or the last one failed).
    unsent_reads: Vec<PendingRead>,
    next_read: u64,
    incarnation: u64,
    /// Storage jobs and their bytes not yet reported durable.
    outstanding: u64,
    storage_bytes: u64,
    /// Bytes handed to the apply thread in total (the apply thread counts what it applied).
    apply_handed: u64,
    last_role: Role,
    /// Automatic promotions and the rejoin of voters that lost their state.
    readmission: Readmission,
    /// The store is durable when a write returns (memory): write on this thread.
    inline_writes: bool,
    /// Term and vote last written inline.
    written: crate::core::HardState,
    pub(crate) shared: Arc<Shared>,
    /// Why the loop stopped, once it has.
    pub(crate) stop: Option<Error>,
}

impl RaftLoop {
    /// A loop over `start.raw` that hands writes to the storage thread and committed
    /// entries to the apply thread.
    pub(crate) fn new(start: LoopStart) -> Self {
        let store = start.raw.raft.log.storage.clone();
        RaftLoop {
            queues: start.queues,
            storage: start.storage,
            apply: start.apply,
            sink: start.sink,
            clock: start.clock,
            budgets: start.budgets,
            pending: BTreeMap::new(),
            reads: HashMap::new(),
            unsent_reads: Vec::new(),
            next_read: 1,
            incarnation: start.incarnation & ((1 << (64 - READ_CTX_COUNTER_BITS)) - 1),
            outstanding: 0,
            storage_bytes: 0,
            apply_handed: 0,
            last_role: Role::Follower,
            readmission: Readmission::new(start.auto_rejoin),
            inline_writes: store.durable_on_write(),
            written: store.initial_state().map(|(hs, _)| hs).unwrap_or_default(),
            shared: start.shared,
            stop: None,
            raw: start.raw,
        }
    }

    /// True while entries of the log are not applied yet: proposals are in flight, so a new
    /// one is better batched by the Raft thread than run alone.
    pub(crate) fn busy(&self) -> bool {
        self.raw.raft.log.last_index() > self.shared.applied.load(Ordering::Acquire)
    }

    /// True if inputs or reports are queued.
    pub(crate) fn has_queued(&self) -> bool {
        !self.queues.inbox.is_empty() || !self.queues.control.is_empty()
    }

    /// When the next tick is due.
    pub(crate) fn next_tick_at(&self) -> Instant {
        self.clock.next_at()
    }

    fn storage_full(&self) -> bool {
        self.storage_bytes > self.budgets.storage_bytes
    }

    fn apply_outstanding(&self) -> u64 {
        self.apply_handed
            .saturating_sub(self.shared.applied_bytes.load(Ordering::Acquire))
    }

    /// One pass at `now`: the ticks due, engine reports, queued inputs (many proposals
    /// become one append), then the ready.
    pub(crate) fn pass(&mut self, now: Instant) {
        for _ in 0..self.clock.due(now) {
            self.raw.tick();
        }
        while let Ok(c) = self.queues.control.try_recv() {
            self.stop = self.control(c);
            if self.stop.is_some() {
                return;
            }
        }
        let mut batch = Vec::new();
        for _ in 0..MAX_INPUTS_PER_PASS {
            let Ok((input, bytes)) = self.queues.inbox.try_recv() else {
                break;
            };
            self.shared.inbox_bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.handle(input, &mut batch);
        }
        self.propose_batch(batch);
        self.raw
            .on_applied(self.shared.applied.load(Ordering::Acquire));
        self.manage_reads();
        self.readmission.drive(&mut self.raw);
        if let Some(peers) = self.raw.raft.take_incarnation_changes() {
            // Rare (a voter first heard from, or no longer a voter): written here.
            if let Err(e) = self.raw.raft.log.storage.set_peer_incarnations(&peers) {
                tracing::warn!(%e, "could not store the peers' incarnations");
            }
        }
        self.process_ready();
    }

    /// Fails everything still waiting (pending proposals, reads, queued inputs) with the
    /// reason the loop stopped. The failures run on the apply thread, which ends once it has
    /// run them (this drops the last sender of its queue).
    pub(crate) fn finish(mut self) {
        let why = self.stop.take().unwrap_or(Error::Shutdown);
        let mut dones: Vec<(Completion, ProposeResult)> = Vec::new();
        let mut reads: Vec<(ReadDone, Error)> = Vec::new();
        for (_, p) in std::mem::take(&mut self.pending) {
            dones.push((p.done, Err(why.clone())));
        }
        let waiting: Vec<PendingRead> = self
            .reads
            .drain()
            .map(|(_, r)| r)
            .chain(self.unsent_reads.drain(..))
            .collect();
        reads.extend(waiting.into_iter().map(|r| (r.done, why.clone())));
        while let Ok((i, bytes)) = self.queues.inbox.try_recv() {
            self.shared.inbox_bytes.fetch_sub(bytes, Ordering::AcqRel);
            match i {
                Input::Propose(_, d) | Input::ConfChange(_, _, d) => {
                    dones.push((d, Err(why.clone())))
                }
                Input::ReadIndex(d) => reads.push((d, why.clone())),
                _ => {}
            }
        }
        self.hand_over(dones, reads);
    }

    /// Gives completions decided here to the apply thread to run (user code never runs on
    /// the Raft thread); if it is gone, this is the only thread left to run them.
    fn hand_over(&self, dones: Vec<(Completion, ProposeResult)>, reads: Vec<(ReadDone, Error)>) {
        if dones.is_empty() && reads.is_empty() {
            return;
        }
        if let Err(e) = self.apply.send(ApplyJob::Complete { dones, reads }) {
            e.into_inner().run_failures();
        }
    }

    fn control(&mut self, c: Control) -> Option<Error> {
        match c {
            Control::Persisted {
                number,
                jobs,
                bytes,
                snaps,
            } => {
                self.outstanding -= jobs;
                self.storage_bytes = self.storage_bytes.saturating_sub(bytes);
                for (meta, ok) in snaps {
                    self.raw.snapshot_received(&meta, ok);
                }
                self.raw.on_persisted(number);
            }
            Control::ApplyWake => {}
            Control::Fatal(why) => return Some(Error::Failed(why)),
            Control::Shutdown => return Some(Error::Shutdown),
        }
        None
    }

    fn complete(&self, done: Completion, result: ProposeResult) {
        self.hand_over(vec![(done, result)], Vec::new());
    }

    fn fail_read(&self, done: ReadDone, why: Error) {
        self.hand_over(Vec::new(), vec![(done, why)]);
    }

    fn handle(&mut self, input: Input, batch: &mut Vec<(Vec<u8>, Completion)>) {
        match input {
            Input::Step(m) => {
                if self.storage_full() && carries_durable_work(&m) {
                    // The disk is behind: take no more work for it. The sender sees a lost
                    // message and retries; nothing here is decided differently.
                    tracing::debug!(from = m.from, "storage busy: dropping an append");
                    return;
                }
                self.raw.step(m)
            }
            Input::Propose(data, done) => {
                if self.storage_full() || self.apply_outstanding() > self.budgets.apply_bytes {
                    self.shared.metrics.on_drop(DropReason::Busy);
                    self.complete(done, Err(Error::Busy));
                } else {
                    batch.push((data, done));
                }
            }
            Input::ConfChange(cc, expected, done) => {
                self.propose_batch(std::mem::take(batch));
                match self.raw.propose_conf_change(cc, expected) {
                    Ok(idx) => {
                        let term = self.raw.raft.term;
                        let at = Instant::now();
                        self.pending.insert(idx, PendingProposal { term, done, at });
                    }
                    Err(e) => self.complete(done, Err(e.into())),
                }
            }
            Input::ReadIndex(done) => {
                let expires = self.ticks_from_now(READ_WAIT_FOR_LEADER);
                self.unsent_reads.push(PendingRead { done, expires });
            }
            Input::Transfer(to, reply) => {
                let _ = reply.try_send(self.raw.transfer_leader(to).map_err(Error::from));
            }
            Input::Status(reply) => {
                self.raw
                    .on_applied(self.shared.applied.load(Ordering::Acquire));
                let _ = reply.try_send(self.raw.status());
            }
            Input::AutoPromote(id, lag) => {
                self.readmission.promote_when_caught_up(id, lag);
            }
        }
    }

    /// The tick `timeouts` election timeouts from now.
    fn ticks_from_now(&self, timeouts: u64) -> u64 {
        let et = self.raw.raft.cfg.election_ticks;
        self.clock
            .now_ticks()
            .saturating_add(et.saturating_mul(timeouts))
    }

    /// Asks the core for the reads that wait for a leader, and fails reads that waited too
    /// long (so a caller that gave up leaks nothing).
    fn manage_reads(&mut self) {
        let now = self.clock.now_ticks();
        let leader = self.raw.raft.leader;
        if !self.unsent_reads.is_empty() && leader != 0 && !self.raw.raft.removed {
            let answer_by = self.ticks_from_now(READ_ANSWER_BOUND);
            for r in std::mem::take(&mut self.unsent_reads) {
                let ctx = (self.incarnation << READ_CTX_COUNTER_BITS)
                    | (self.next_read & ((1 << READ_CTX_COUNTER_BITS) - 1));
                self.next_read += 1;
                match self.raw.read_index(ctx) {
                    Ok(()) => {
                        let expires = answer_by.max(r.expires);
                        self.reads.insert(ctx, PendingRead { expires, ..r });
                    }
                    Err(e) => self.fail_read(r.done, e.into()),
                }
            }
        }
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unsent_reads)
            .into_iter()
            .partition(|r| r.expires <= now);
        self.unsent_reads = kept;
        for r in expired {
            self.fail_read(r.done, Error::NotLeader(leader));
        }
        let stale: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(&c, _)| c)
            .collect();
        for c in stale {
            if let Some(r) = self.reads.remove(&c) {
                self.fail_read(r.done, Error::Timeout);
            }
        }
    }

    fn propose_batch(&mut self, batch: Vec<(Vec<u8>, Completion)>) {
        if batch.is_empty() {
            return;
        }
        let (cmds, dones): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let r = self.raw.propose(cmds);
        self.shared.metrics.on_proposals(dones.len(), &r);
        match r {
            Ok(first) => {
                let term = self.raw.raft.term;
                let at = Instant::now();
                for (i, done) in dones.into_iter().enumerate() {
                    self.pending
                        .insert(first + i as u64, PendingProposal { term, done, at });
                }
            }
            Err(e) => {
                let e: Error = e.into();
                let dones = dones.into_iter().map(|d| (d, Err(e.clone()))).collect();
                self.hand_over(dones, Vec::new());
            }
        }
    }

    fn process_ready(&mut self) {
        loop {
            let paused = self.apply_outstanding() > self.budgets.apply_bytes;
            self.shared.apply_paused.store(paused, Ordering::Release);
            self.raw.set_apply_paused(paused);
            if !self.raw.has_ready() {
                break;
            }
            let rd = self.raw.ready();
            if let Some(ss) = rd.soft_state {
                if self.last_role == Role::Leader && ss.role != Role::Leader {
                    // Leadership lost: outcomes of pending proposals are unknown.
                    let dones = std::mem::take(&mut self.pending)
                        .into_values()
                        .map(|p| (p.done, Err(Error::Dropped)))
                        .collect();
                    self.hand_over(dones, Vec::new());
                }
                self.last_role = ss.role;
                self.shared.metrics.on_soft_state(self.raw.raft.id(), ss);
                let _ = self.apply.send(ApplyJob::RoleChange(ss));
            }
            let persist = rd.needs_persist() || !rd.persisted_messages.is_empty();
            for m in rd.messages {
                self.shared.metrics.on_send(&m);
                self.sink.send_message(m);
            }
            for rs in rd.read_states {
                self.answer_read(rs);
            }
            let bytes = rd.entries.iter().map(|e| e.size()).sum::<u64>()
                + rd.snapshot_chunks
                    .iter()
                    .map(|c| c.data.len() as u64)
                    .sum::<u64>();
            let job = StorageJob {
                number: rd.number,
                bytes,
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
                    self.stop = Some(Error::Failed(format!("storage: {e}")));
                    return;
                }
            } else if persist || self.outstanding > 0 {
                self.outstanding += 1;
                self.storage_bytes += bytes;
                if self.storage.send(job).is_err() {
                    self.shared.fail("storage thread stopped".into());
                    self.stop = Some(Error::Failed("storage thread stopped".into()));
                    return;
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
                let mut bytes = 0;
                let mut dropped = Vec::new();
                let now = Instant::now();
                for e in rd.committed_entries {
                    bytes += e.size();
                    let done = match self.pending.remove(&e.index) {
                        Some(p) if p.term == e.term => {
                            let waited = now.saturating_duration_since(p.at);
                            self.shared.metrics.commit_seconds.observe_duration(waited);
                            Some(p.done)
                        }
                        Some(p) => {
                            dropped.push((p.done, Err(Error::Dropped)));
                            None
                        }
                        None => None,
                    };
                    items.push((e, done));
                }
                self.hand_over(dropped, Vec::new());
                self.apply_handed += bytes;
                if self.apply.send(ApplyJob::Entries(items, bytes)).is_err() {
                    self.shared.fail("apply thread stopped".into());
                    self.stop = Some(Error::Failed("apply thread stopped".into()));
                    return;
                }
            }
        }
    }

    fn write_inline(&mut self, job: StorageJob) -> Result<(), String> {
        let store = self.raw.raft.log.storage.clone();
        let mut snaps = Vec::new();
        storage_worker::write_job(store.as_ref(), &job, &mut snaps, &mut self.written)?;
        for m in job.messages {
            self.shared.metrics.on_send(&m);
            self.sink.send_message(m);
        }
        for (meta, ok) in snaps {
            self.raw.snapshot_received(&meta, ok);
        }
        self.raw.on_persisted(job.number);
        Ok(())
    }

    fn answer_read(&mut self, rs: ReadState) {
        let Some(r) = self.reads.remove(&rs.ctx) else {
            return;
        };
        match rs.index {
            Some(index) => {
                let _ = self.apply.send(ApplyJob::ReadBarrier(index, r.done));
            }
            // The leader asked is gone or refused: ask the next one, until the read expires.
            None => self.unsent_reads.push(r),
        }
    }
}

/// True for a message whose handling writes to storage (entries or snapshot data).
fn carries_durable_work(m: &Message) -> bool {
    match &m.body {
        MessageBody::Append { entries, .. } => !entries.is_empty(),
        MessageBody::Snapshot { .. } => true,
        _ => false,
    }
}
