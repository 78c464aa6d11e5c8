//! Who runs the Raft loop, and how work reaches it without anyone blocking.
//!
//! Two queues feed the loop, and no sender ever waits on either:
//!
//! - the **inbox** ([`Inbox::try_send`]) takes inputs from outside (messages, proposals,
//!   reads, membership, status). It is bounded in bytes
//!   ([`NodeConfig::inbox_bytes`](super::NodeConfig::inbox_bytes)): a full inbox refuses the
//!   input at once (`Busy` for callers, a dropped message for transports, which Raft
//!   tolerates). It allocates nothing while idle.
//! - the **control** queue ([`Inbox::control`]) carries the engine's own reports (storage
//!   done, apply caught up, a fatal error, shutdown). It is unbounded but bounded by
//!   construction: at most one report per storage group in flight, one wake-up per apply
//!   pause, one fatal error per thread, one shutdown.
//!
//! By default only the Raft thread runs passes: it sleeps on both queues until the next tick.
//! With [`NodeConfig::caller_runs`](super::NodeConfig::caller_runs) a thread that queues an
//! input runs the pass itself when nobody else is (a `try_lock`, never a wait), except on
//! engine threads (Raft, storage, apply, snapshot threads of any node), which only wake the
//! owner. A pass never blocks (every hand-off out of it is a non-blocking send), so a caller
//! can never wait on itself.

use super::error::Error;
use super::node::{Input, Shared};
use super::raft_loop::RaftLoop;
use crossbeam_channel::{Receiver, Select, Sender};
use parking_lot::Mutex;
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Instant;

thread_local! {
    /// Set on every engine thread (Raft, storage, apply, snapshot): they never run a pass.
    static ON_ENGINE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as an engine thread (see the module documentation).
pub(crate) fn mark_engine_thread() {
    ON_ENGINE_THREAD.with(|c| c.set(true));
}

/// Passes a sending thread runs before it leaves the rest to the Raft thread.
const MAX_CALLER_PASSES: usize = 4;

/// Fixed cost charged per queued input on top of its payload, so that many empty inputs
/// are bounded too.
pub(crate) const INPUT_OVERHEAD: usize = 128;

/// A report from the engine's own threads to the Raft loop.
pub(crate) enum Control {
    /// Readies up to `number` are durable: `jobs` storage jobs of `bytes` bytes, with the
    /// outcome of every snapshot that finished among them.
    Persisted {
        number: u64,
        jobs: u64,
        bytes: u64,
        snaps: Vec<(crate::core::SnapshotMeta, bool)>,
    },
    /// The apply thread caught up after the loop paused handing out entries.
    ApplyWake,
    /// A thread failed; the node stops.
    Fatal(String),
    /// Stop the node.
    Shutdown,
}

/// The Raft loop and the way to reach the thread that owns its timers.
pub(crate) struct Driver {
    /// `None` once the loop has stopped and failed what was left.
    lp: Mutex<Option<RaftLoop>>,
    caller_runs: bool,
    raft_thread: OnceLock<Thread>,
    shared: Arc<Shared>,
    inbox_limit: usize,
    /// The log scope the node was started in (see [`crate::log_scope`]): entered by a
    /// caller thread while it runs a pass, so its events go where the engine threads' go.
    log_scope: Option<tracing::Dispatch>,
}

/// The sending side of the Raft loop's queues.
#[derive(Clone)]
pub(crate) struct Inbox {
    tx: Sender<(Input, usize)>,
    ctl: Sender<Control>,
    driver: Arc<Driver>,
}

/// The receiving side, owned by the loop.
pub(crate) struct Queues {
    pub(crate) inbox: Receiver<(Input, usize)>,
    pub(crate) control: Receiver<Control>,
}

/// The inbox and control queues of a new node.
pub(crate) fn queues() -> (Sender<(Input, usize)>, Sender<Control>, Queues) {
    let (tx, inbox) = crossbeam_channel::unbounded();
    let (ctl, control) = crossbeam_channel::unbounded();
    (tx, ctl, Queues { inbox, control })
}

impl Inbox {
    /// Queues `input` without blocking and gets it processed. A full inbox (or a stopped
    /// loop) gives the input back with the reason, so that its completion can be failed.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_send(&self, input: Input) -> Result<(), (Input, Error)> {
        let bytes = INPUT_OVERHEAD + input.payload_bytes();
        let shared = &self.driver.shared;
        let before = shared.inbox_bytes.fetch_add(bytes, Ordering::AcqRel);
        if before.saturating_add(bytes) > self.driver.inbox_limit {
            shared.inbox_bytes.fetch_sub(bytes, Ordering::AcqRel);
            shared
                .metrics
                .on_drop(super::metrics::DropReason::InboxFull);
            return Err((input, Error::Busy));
        }
        let proposal = matches!(input, Input::Propose(..));
        if let Err(e) = self.tx.send((input, bytes)) {
            shared.inbox_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err((e.into_inner().0, Error::Shutdown));
        }
        self.driver.kick(proposal);
        Ok(())
    }

    /// Queues an engine report; never blocks. False if the loop is gone.
    pub(crate) fn control(&self, c: Control) -> bool {
        let ok = self.ctl.send(c).is_ok();
        if ok {
            self.driver.kick(false);
        }
        ok
    }
}

impl Driver {
    /// A driver for `lp`, reached through the returned inbox.
    pub(crate) fn start(
        lp: RaftLoop,
        tx: Sender<(Input, usize)>,
        ctl: Sender<Control>,
        caller_runs: bool,
        inbox_limit: usize,
    ) -> Inbox {
        let driver = Arc::new(Driver {
            shared: lp.shared.clone(),
            lp: Mutex::new(Some(lp)),
            caller_runs,
            raft_thread: OnceLock::new(),
            inbox_limit,
            log_scope: crate::log_scope::current(),
        });
        Inbox { tx, ctl, driver }
    }

    /// The driver behind `inbox`.
    pub(crate) fn of(inbox: &Inbox) -> Arc<Driver> {
        inbox.driver.clone()
    }

    /// Gets a just-queued input processed (see the module documentation).
    fn kick(&self, mut proposal: bool) {
        if !self.caller_runs {
            return; // The Raft thread sleeps on the queues: the send woke it.
        }
        // Pairs with the fence after a holder lets go: either the holder sees our input, or
        // we see the loop free (`try_lock` alone may read the lock before our push is
        // visible).
        fence(Ordering::SeqCst);
        if ON_ENGINE_THREAD.with(|c| c.get()) {
            self.wake_raft_thread();
            return;
        }
        for _ in 0..MAX_CALLER_PASSES {
            let Some(mut guard) = self.lp.try_lock() else {
                return; // The holder looks at the queues again after letting go.
            };
            let Some(lp) = guard.as_mut() else { return };
            if lp.stop.is_some() || (proposal && lp.busy()) {
                drop(guard);
                self.wake_raft_thread();
                return;
            }
            match &self.log_scope {
                Some(d) => crate::log_scope::scoped(d, || guarded_pass(lp, Instant::now())),
                None => guarded_pass(lp, Instant::now()),
            }
            proposal = false; // Ours is in the log now; what follows is replies.
            let (stopped, more) = (lp.stop.is_some(), lp.has_queued());
            drop(guard);
            if stopped {
                self.wake_raft_thread();
                return;
            }
            fence(Ordering::SeqCst); // See above.
            if !more {
                return;
            }
        }
        self.wake_raft_thread();
    }

    fn wake_raft_thread(&self) {
        if let Some(t) = self.raft_thread.get() {
            t.unpark();
        }
    }

    /// The Raft thread: runs passes (each first delivers the ticks due by the monotonic
    /// clock) until the loop stops, then fails whatever is left.
    pub(crate) fn run_raft_thread(self: Arc<Self>) {
        let _ = self.raft_thread.set(std::thread::current());
        mark_engine_thread();
        // Even if this thread unwinds, the loop is finished, which closes the storage and
        // apply queues so their threads end.
        let _finish = FinishOnDrop(&self);
        let Some((inbox, control)) = self
            .lp
            .lock()
            .as_ref()
            .map(|lp| (lp.queues.inbox.clone(), lp.queues.control.clone()))
        else {
            return;
        };
        loop {
            let deadline = {
                let mut guard = self.lp.lock();
                let Some(lp) = guard.as_mut() else { break };
                if lp.stop.is_some() {
                    break;
                }
                guarded_pass(lp, Instant::now());
                if lp.stop.is_some() {
                    break;
                }
                lp.next_tick_at()
            };
            fence(Ordering::SeqCst);
            if !inbox.is_empty() || !control.is_empty() {
                continue;
            }
            if self.caller_runs {
                // Callers run passes themselves and wake this thread when they cannot.
                std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
            } else {
                let mut sel = Select::new();
                sel.recv(&inbox);
                sel.recv(&control);
                let _ = sel.ready_deadline(deadline);
            }
        }
    }

    /// Takes the loop out and fails whatever is left; later inputs get `Shutdown`.
    pub(crate) fn abandon(&self) {
        let lp = self.lp.lock().take();
        if let Some(lp) = lp {
            lp.finish();
        }
    }
}

struct FinishOnDrop<'a>(&'a Driver);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Runs one pass at `now`; a panic fails the node instead of leaving the loop half-updated.
fn guarded_pass(lp: &mut RaftLoop, now: Instant) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.pass(now)));
    if let Err(p) = r {
        let msg = super::node::panic_message(p.as_ref());
        lp.shared.fail(format!("Raft loop panicked: {msg}"));
        lp.stop = Some(Error::Failed(msg));
    }
}
