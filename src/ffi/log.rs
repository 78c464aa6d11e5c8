//! Forwarding the library's `tracing` events to a process-wide C log callback, through a
//! `tracing-subscriber` layer scoped to the C entry points (never the global default).

use super::{boundary, callback_scope, fail, raft_status};
use parking_lot::RwLock;
use std::ffi::{c_char, c_void, CString};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Log levels, most severe first.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum raft_log_level {
    /// Logging off (only meaningful as `max_level`).
    Off = 0,
    /// Errors.
    Error = 1,
    /// Warnings.
    Warn = 2,
    /// Information.
    Info = 3,
    /// Debugging detail.
    Debug = 4,
    /// Very verbose tracing.
    Trace = 5,
}

/// One log event; every string is NUL-terminated and borrowed for the callback's duration.
#[repr(C)]
#[derive(Debug)]
pub struct raft_log_record {
    /// Severity (`raft_log_level`).
    pub level: raft_log_level,
    /// Module path that logged (e.g. `raft::runtime::node`).
    pub target: *const c_char,
    /// Message followed by ` key=value` fields.
    pub message: *const c_char,
    /// Source file, or NULL.
    pub file: *const c_char,
    /// Source line, or 0.
    pub line: u32,
}

/// Receives log events (any thread that logs, possibly concurrently). Must not call
/// [`raft_set_log_callback`].
pub type raft_log_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, record: *const raft_log_record)>;

#[derive(Clone, Copy)]
struct Sink {
    cb: unsafe extern "C" fn(*mut c_void, *const raft_log_record),
    userdata: usize,
}

static SINK: RwLock<Option<Sink>> = parking_lot::const_rwlock(None);
static MAX_LEVEL: AtomicU32 = AtomicU32::new(0);

fn level_num(l: &Level) -> u32 {
    match *l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn level_enum(n: u32) -> raft_log_level {
    match n {
        1 => raft_log_level::Error,
        2 => raft_log_level::Warn,
        3 => raft_log_level::Info,
        4 => raft_log_level::Debug,
        _ => raft_log_level::Trace,
    }
}

struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

fn cstring(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let mut v = e.into_vec();
        v.retain(|&b| b != 0);
        CString::new(v).unwrap_or_default()
    })
}

/// The layer forwarding every enabled event to the C callback.
struct CLayer;

impl<S: Subscriber> Layer<S> for CLayer {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level can change at run time, so ask `enabled` every time (one atomic load).
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        level_num(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let Some(sink) = *SINK.read() else {
            return;
        };
        let m = event.metadata();
        let mut f = Fields {
            message: String::new(),
            rest: String::new(),
        };
        event.record(&mut f);
        f.message.push_str(&f.rest);
        let target = cstring(m.target().to_string());
        let message = cstring(f.message);
        let file = m.file().map(|s| cstring(s.to_string()));
        let rec = raft_log_record {
            level: level_enum(level_num(m.level())),
            target: target.as_ptr(),
            message: message.as_ptr(),
            file: file.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            line: m.line().unwrap_or(0),
        };
        // SAFETY: the user's callback with a record valid for the call.
        callback_scope(|| unsafe { (sink.cb)(sink.userdata as *mut c_void, &rec) });
    }
}

/// The dispatcher of everything the library logs on behalf of a C caller: a
/// `tracing-subscriber` registry with [`CLayer`]. Entered by every C entry point (and
/// inherited by the threads they start) through [`crate::log_scope::scoped`]; never the
/// process-global default.
pub(crate) fn c_dispatch() -> &'static Dispatch {
    static D: OnceLock<Dispatch> = OnceLock::new();
    D.get_or_init(|| crate::log_scope::dispatch(tracing_subscriber::registry().with(CLayer)))
}

/// Installs (or, with `cb == NULL` or `max_level == RAFT_LOG_LEVEL_OFF`, removes) the
/// process-wide log callback receiving events up to `max_level` (a `raft_log_level`).
/// `userdata` is passed to `cb` and must stay valid until the callback is replaced; it is
/// not finalised by the library. Events reach the callback from every thread working for a
/// node started through this API; the process-global `tracing` subscriber (if a host
/// installed one) is left alone. Thread-safe.
#[no_mangle]
pub extern "C" fn raft_set_log_callback(
    cb: raft_log_callback,
    max_level: u32,
    userdata: *mut c_void,
) -> raft_status {
    boundary(|| {
        if max_level > raft_log_level::Trace as u32 {
            return fail(raft_status::InvalidArgument, "max_level out of range");
        }
        let sink = cb.map(|cb| Sink {
            cb,
            userdata: userdata as usize,
        });
        let level = if sink.is_some() { max_level } else { 0 };
        *SINK.write() = sink;
        MAX_LEVEL.store(level, Ordering::Relaxed);
        tracing::callsite::rebuild_interest_cache();
        raft_status::Ok
    })
}
