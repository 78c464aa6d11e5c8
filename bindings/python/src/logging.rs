//! `tracing` events to Python `logging` without engine threads touching the interpreter.
//!
//! A minimal [`Subscriber`] formats each enabled event and pushes it into a bounded channel
//! (dropping records when full). Python drains the channel from one daemon thread (see
//! `raft_manager.enable_logging`), which waits with the GIL released.

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use pyo3::prelude::*;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

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

struct ChannelSubscriber;

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

impl Subscriber for ChannelSubscriber {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level can change at run time, so ask `enabled` every time (one atomic load).
        Interest::sometimes()
    }
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.is_event() && py_level(meta.level()) as usize >= MIN_LEVEL.load(Ordering::Relaxed)
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
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
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Installs the subscriber (once per process) and sets the lowest forwarded Python level.
/// Returns False if another `tracing` subscriber was already installed globally.
#[pyfunction]
pub(crate) fn _install_logging(level: usize) -> bool {
    MIN_LEVEL.store(level, Ordering::Relaxed);
    let mut fresh = false;
    CHANNEL.get_or_init(|| {
        fresh = true;
        let (tx, rx) = bounded(16_384);
        Channel { tx, rx }
    });
    if fresh {
        return tracing::subscriber::set_global_default(ChannelSubscriber).is_ok();
    }
    true
}

/// Waits up to `timeout` seconds (GIL released) for log records and returns those queued,
/// as `(level, target, message)` tuples.
#[pyfunction]
pub(crate) fn _drain_logs(py: Python<'_>, timeout: f64) -> Vec<(u8, String, String)> {
    let Some(ch) = CHANNEL.get() else {
        return Vec::new();
    };
    let secs = if timeout.is_nan() { 0.0 } else { timeout.clamp(0.0, 60.0) };
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
