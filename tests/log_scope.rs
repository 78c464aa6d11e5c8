//! A Rust host with its own global `tracing` subscriber and nodes started through the C
//! API in the same process: the host keeps its global subscriber (and receives its own
//! events, from any thread), while the nodes' events reach the C log callback. Both orders
//! are exercised: nodes before the host installs its subscriber, and after.

use parking_lot::Mutex;
use raft::ffi::*;
use std::ffi::{c_int, c_void, CStr};
use std::ptr::null_mut;
use std::time::{Duration, Instant};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

const OK: raft_status = raft_status::Ok;

/// The host's global subscriber: collects the messages of the events it sees.
struct HostLayer(&'static Mutex<Vec<String>>);

struct Msg(String);
impl tracing::field::Visit for Msg {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            self.0 = format!("{v:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for HostLayer {
    fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut m = Msg(String::new());
        e.record(&mut m);
        self.0
            .lock()
            .push(format!("{} {}", e.metadata().target(), m.0));
    }
}

static HOST: Mutex<Vec<String>> = Mutex::new(Vec::new());
static C_LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn log_cb(_: *mut c_void, r: *const raft_log_record) {
    let r = unsafe { &*r };
    let target = unsafe { CStr::from_ptr(r.target) }.to_string_lossy();
    let msg = unsafe { CStr::from_ptr(r.message) }.to_string_lossy();
    C_LOG.lock().push(format!("{target} {msg}"));
}

unsafe extern "C" fn no_send(_: *mut c_void, _: u64, _: *const u8, _: usize) {}

unsafe extern "C" fn apply(
    _: *mut c_void,
    _: u64,
    _: *const u8,
    _: usize,
    _: *mut raft_buf,
) -> c_int {
    0
}

/// Starts a single-voter node through the C API (it elects itself).
fn start_c_node(dir: &std::path::Path) -> *mut raft_node {
    unsafe {
        let mut b = null_mut();
        assert_eq!(raft_config_builder_new(&mut b), OK);
        assert_eq!(raft_config_builder_set_id(b, 1), OK);
        assert_eq!(raft_config_builder_add_voter(b, 1), OK);
        assert_eq!(raft_config_builder_set_election_timeout_ms(b, 100), OK);
        let d = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        assert_eq!(raft_config_builder_set_data_dir(b, d.as_ptr()), OK);
        assert_eq!(raft_config_builder_set_send_callback(b, Some(no_send)), OK);
        assert_eq!(raft_config_builder_set_apply_callback(b, Some(apply)), OK);
        let mut c = null_mut();
        assert_eq!(raft_config_builder_build(b, &mut c), OK);
        let mut n = null_mut();
        assert_eq!(raft_node_start(c, &mut n), OK);
        raft_config_free(c);
        n
    }
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}; C log: {:?}",
            C_LOG.lock()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The node's log line for taking office (a single voter starts as leader at once).
fn is_leader_line(l: &str) -> bool {
    l.contains("became leader") || l.contains("started as leader")
}

fn c_log_has(node_dir_marker: &str) -> bool {
    C_LOG.lock().iter().any(|l| l.contains(node_dir_marker))
}

#[test]
fn host_global_subscriber_and_c_log_callback_coexist() {
    let root = std::env::temp_dir().join(format!("raft-log-scope-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    // A leftover temp file makes opening the store log an INFO line naming it.
    let (d1, d2) = (root.join("n1"), root.join("n2"));
    for d in [&d1, &d2] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("junk.tmp"), b"x").unwrap();
    }
    assert_eq!(
        raft_set_log_callback(Some(log_cb), raft_log_level::Info as u32, null_mut()),
        OK
    );

    // 1. A node through the C path before the host installs its subscriber.
    let n1 = start_c_node(&d1);
    wait_for("node 1's events at the C callback", || {
        c_log_has("n1/junk.tmp") && C_LOG.lock().iter().any(|l| is_leader_line(l))
    });

    // The host can still install its global default: the C path never took it.
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(HostLayer(&HOST)))
        .expect("the global default is still free after a node started through C");

    // 2. A node through the C path after the host installed its subscriber.
    let before = C_LOG.lock().len();
    let n2 = start_c_node(&d2);
    wait_for("node 2's events at the C callback", || {
        c_log_has("n2/junk.tmp") && C_LOG.lock()[before..].iter().any(|l| is_leader_line(l))
    });

    // The host's own events, from its main thread and from a new thread, reach its global
    // subscriber (and not the C callback).
    tracing::info!("host event on main");
    std::thread::spawn(|| tracing::warn!("host event on a thread"))
        .join()
        .unwrap();
    let host = HOST.lock().clone();
    assert!(
        host.iter().any(|l| l.ends_with("host event on main")),
        "{host:?}"
    );
    assert!(
        host.iter().any(|l| l.ends_with("host event on a thread")),
        "{host:?}"
    );
    assert!(!C_LOG.lock().iter().any(|l| l.contains("host event")));
    // The nodes' events went to the C callback only.
    assert!(!host.iter().any(|l| l.contains("junk.tmp")), "{host:?}");

    assert_eq!(raft_node_shutdown(n1), OK);
    assert_eq!(raft_node_shutdown(n2), OK);
    assert_eq!(raft_node_free(n1), OK);
    assert_eq!(raft_node_free(n2), OK);
    assert_eq!(raft_set_log_callback(None, 0, null_mut()), OK);
    let _ = std::fs::remove_dir_all(&root);
}
