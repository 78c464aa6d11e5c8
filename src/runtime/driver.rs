//! Who runs the Raft loop. The Raft thread always runs timers. Inputs (messages, proposals,
//! storage completions) reach the loop through an [`Inbox`]:
//!
//! - by default the Raft thread sleeps on the inbox and a send wakes it;
//! - with [`NodeConfig::caller_runs`](super::NodeConfig::caller_runs), the thread that sends
//!   an input runs the pass itself when nobody else is running one (a `try_lock`, never a
//!   wait), so an in-process message or an idle leader's proposal is handled without waking
//!   another thread. A proposal made while entries are still unapplied (others in flight)
//!   is left to the Raft thread, which batches them. A thread that finds the loop busy leaves
//!   its input queued: whoever holds the loop looks at the queue again after letting go.

use super::error::Error;
use super::node::Input;
use super::raft_loop::RaftLoop;
use crossbeam_channel::{RecvTimeoutError, Sender, TrySendError};
use parking_lot::Mutex;
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

thread_local! {
    /// Set on Raft threads, which never run another node's loop.
    static ON_RAFT_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Checks of the queue before the Raft thread sleeps (half spinning, half yielding).
const SPIN_STEPS: u32 = 12;

/// Passes a sending thread runs before it leaves the rest to the Raft thread.
const MAX_CALLER_PASSES: usize = 4;

/// The Raft loop and the way to reach the thread that owns its timers.
pub(crate) struct Driver {
    /// `None` once the Raft thread has stopped and failed what was left.
    lp: Mutex<Option<RaftLoop>>,
    caller_runs: bool,
    raft_thread: OnceLock<Thread>,
}

/// The sending side of the Raft loop's input queue.
#[derive(Clone)]
pub(crate) struct Inbox {
    tx: Sender<Input>,
    driver: Arc<Driver>,
}

impl Inbox {
    /// Queues `input` without blocking and gets it processed. On failure the input comes
    /// back, so that its completion can be failed.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_send(&self, input: Input) -> Result<(), TrySendError<Input>> {
        let proposal = matches!(input, Input::Propose(..));
        self.tx.try_send(input)?;
        self.driver.kick(&self.tx, proposal);
        Ok(())
    }

    /// Queues `input`, waiting up to `timeout` for room (forever with `None`), and gets it
    /// processed; false if the loop has stopped or there was no room in time.
    pub(crate) fn send(&self, input: Input, timeout: Option<Duration>) -> bool {
        let queued = match timeout {
            Some(t) => self.tx.send_timeout(input, t).is_ok(),
            None => self.tx.send(input).is_ok(),
        };
        if queued {
            self.driver.kick(&self.tx, false);
        }
        queued
    }
}

impl Driver {
    /// A driver for `lp`, reached through the returned inbox.
    pub(crate) fn start(lp: RaftLoop, tx: Sender<Input>, caller_runs: bool) -> Inbox {
        let driver = Arc::new(Driver {
            lp: Mutex::new(Some(lp)),
            caller_runs,
            raft_thread: OnceLock::new(),
        });
        Inbox { tx, driver }
    }

    /// The driver behind `inbox`.
    pub(crate) fn of(inbox: &Inbox) -> Arc<Driver> {
        inbox.driver.clone()
    }

    /// Gets a just-queued input processed (see the module documentation).
    fn kick(&self, tx: &Sender<Input>, mut proposal: bool) {
        if !self.caller_runs {
            return; // The Raft thread sleeps on the queue: the send woke it.
        }
        // Pairs with the fence after a holder lets go: either the holder sees our input, or
        // we see the loop free (`try_lock` alone may read the lock before our push is
        // visible).
        fence(Ordering::SeqCst);
        if ON_RAFT_THREAD.with(|c| c.get()) {
            // A Raft thread keeps to its own node, so under load every node's loop runs on
            // its own thread, in parallel.
            self.wake_raft_thread();
            return;
        }
        for _ in 0..MAX_CALLER_PASSES {
            let Some(mut guard) = self.lp.try_lock() else {
                return; // The holder looks at the queue again after letting go.
            };
            let Some(lp) = guard.as_mut() else { return };
            if lp.stop.is_some() || (proposal && lp.busy()) {
                drop(guard);
                self.wake_raft_thread();
                return;
            }
            guarded_pass(lp, None, false);
            proposal = false; // Ours is in the log now; what follows is replies.
            let stopped = lp.stop.is_some();
            drop(guard);
            if stopped {
                self.wake_raft_thread();
                return;
            }
            fence(Ordering::SeqCst); // See above.
            if tx.is_empty() {
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

    /// The Raft thread: ticks every `tick` and runs passes until the loop stops, then fails
    /// whatever is left.
    pub(crate) fn run_raft_thread(self: Arc<Self>, tick: Duration) {
        let _ = self.raft_thread.set(std::thread::current());
        ON_RAFT_THREAD.with(|c| c.set(true));
        // Even if this thread unwinds, the loop is finished, which closes the storage and
        // apply queues so their threads end.
        let _finish = FinishOnDrop(&self);
        let Some(rx) = self.lp.lock().as_ref().map(|lp| lp.inbox.clone()) else {
            return;
        };
        let mut next_tick = Instant::now() + tick;
        loop {
            let now = Instant::now();
            let due = now >= next_tick;
            if due {
                next_tick += tick;
                if next_tick < now {
                    next_tick = now + tick;
                }
            }
            // Sleep until the next tick unless something is queued.
            let first = if due || !rx.is_empty() {
                None
            } else if self.caller_runs {
                // Spin a little as crossbeam's `recv` does, then sleep until woken.
                for step in 0..SPIN_STEPS {
                    if !rx.is_empty() {
                        break;
                    }
                    if step < SPIN_STEPS / 2 {
                        for _ in 0..1 << step {
                            std::hint::spin_loop();
                        }
                    } else {
                        std::thread::yield_now();
                    }
                }
                if rx.is_empty() {
                    std::thread::park_timeout(next_tick.saturating_duration_since(now));
                }
                None
            } else {
                match rx.recv_deadline(next_tick) {
                    Ok(i) => Some(i),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            let mut guard = self.lp.lock();
            let Some(lp) = guard.as_mut() else { break };
            if lp.stop.is_some() {
                break;
            }
            guarded_pass(lp, first, due);
            if lp.stop.is_some() {
                break;
            }
            drop(guard);
            fence(Ordering::SeqCst);
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

/// Runs one pass (after a tick when `tick`); a panic fails the node instead of leaving the
/// loop half-updated.
fn guarded_pass(lp: &mut RaftLoop, first: Option<Input>, tick: bool) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if tick {
            lp.raw.tick();
        }
        lp.pass(first)
    }));
    if let Err(p) = r {
        let msg = super::node::panic_message(p.as_ref());
        lp.shared.fail(format!("Raft loop panicked: {msg}"));
        lp.stop = Some(Error::Failed(msg));
    }
}
