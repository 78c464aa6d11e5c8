//! `tracing` events to Python `logging` without engine threads touching the interpreter.
//!
//! A `tracing-subscriber` [`Layer`], scoped to the nodes this module starts (never the
//! process-global default), formats each enabled event and pushes it into a bounded channel
//! (dropping records when full). Python drains the channel from one daemon thread (see
//! `raft_manager.enable_logging`), which waits with the GIL released.

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use pyo3::prelude::*;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// A formatted record: Python level number, target, message.
type LogRecord = (u8, String, String);

struct Channel {
    tx: Sender<LogRecord>,
    rx: Receiver<LogRecord>,
}

static CHANNEL: OnceLock<Channel> = OnceLock::new();
/// Lowest Python level forwarded (10 = DEBUG, ...); events below it are never formatted.
static MIN_LEVEL: AtomicUsize = AtomicUsize::new(30);
static DROPPED: AtomicU64 = AtomicU64::new(0);

fn py_level(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        _ => 5,
    }
}

/// The layer turning events into records for the channel.
struct ChannelLayer;

struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for ChannelLayer {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level can change at run time, so ask `enabled` every time (one atomic load).
        Interest::sometimes()
    }
    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        meta.is_event() && py_level(meta.level()) as usize >= MIN_LEVEL.load(Ordering::Relaxed)
    }
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let Some(ch) = CHANNEL.get() else { return };
        let mut f = Fields {
            message: String::new(),
            rest: String::new(),
        };
        event.record(&mut f);
        let meta = event.metadata();
        let rec = (
            py_level(meta.level()),
            meta.target().to_string(),
            f.message + &f.rest,
        );
        if ch.tx.try_send(rec).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `f` with the Python log bridge as this thread's `tracing` dispatcher; the threads a
/// node or transport starts inside `f` inherit it. The process-global subscriber (another
/// extension's, or none) is never touched.
pub(crate) fn scoped<R>(f: impl FnOnce() -> R) -> R {
    static D: OnceLock<Dispatch> = OnceLock::new();
    let d = D.get_or_init(|| {
        raft::log_scope::dispatch(tracing_subscriber::registry().with(ChannelLayer))
    });
    raft::log_scope::scoped(d, f)
}

/// Wraps a thread body so it logs through the Python bridge, whichever thread starts it.
pub(crate) fn inherit<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> impl FnOnce() -> R + Send + 'static {
    move || scoped(f)
}

/// Sets the lowest forwarded Python level and creates the record channel (drained by
/// `_drain_logs`). Always True: the bridge is scoped to this module's nodes, so it cannot
/// conflict with another global `tracing` subscriber.
#[pyfunction]
pub(crate) fn _install_logging(level: usize) -> bool {
    MIN_LEVEL.store(level, Ordering::Relaxed);
    CHANNEL.get_or_init(|| {
        let (tx, rx) = bounded(16_384);
        Channel { tx, rx }
    });
    tracing::callsite::rebuild_interest_cache();
    true
}

/// Waits up to `timeout` seconds (GIL released) for log records and returns those queued,
/// as `(level, target, message)` tuples.
#[pyfunction]
pub(crate) fn _drain_logs(py: Python<'_>, timeout: f64) -> Vec<(u8, String, String)> {
    let Some(ch) = CHANNEL.get() else {
        return Vec::new();
    };
    let secs = if timeout.is_nan() {
        0.0
    } else {
        timeout.clamp(0.0, 60.0)
    };
    let wait = Duration::from_secs_f64(secs);
    let mut out = Vec::new();
    let first = py.detach(|| ch.rx.recv_timeout(wait));
    match first {
        Ok(r) => out.push(r),
        Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return out,
    }
    while out.len() < 1000 {
        match ch.rx.try_recv() {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        out.push((
            30,
            "raft_manager".into(),
            format!("{dropped} log records dropped"),
        ));
    }
    out
}
