//! The C log callback keeps receiving a node's events after something outside any log
//! scope rebuilds `tracing`'s interest cache (a host's `tracing_subscriber::reload`, another
//! library, `enable_logging` in the Python binding). With the binding's dispatcher as the
//! only one in the process, `tracing-core` used to resolve that rebuild through the calling
//! thread's default (none) and switch every event off for good (tokio-rs/tracing#2874).
//!
//! Its own test binary: the bug needs a process whose only dispatcher is the C layer's.

use parking_lot::Mutex;
use raft::ffi::*;
use std::ffi::{c_int, c_void, CStr};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

const OK: raft_status = raft_status::Ok;

static C_LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn log_cb(_: *mut c_void, r: *const raft_log_record) {
    let r = unsafe { &*r };
    let msg = unsafe { CStr::from_ptr(r.message) }.to_string_lossy();
    C_LOG.lock().push(msg.into_owned());
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

/// Starts a single-voter in-memory node through the C API (it elects itself).
fn start_c_node() -> *mut raft_node {
    unsafe {
        let mut b = null_mut();
        assert_eq!(raft_config_builder_new(&mut b), OK);
        assert_eq!(raft_config_builder_set_id(b, 1), OK);
        assert_eq!(raft_config_builder_add_voter(b, 1), OK);
        assert_eq!(raft_config_builder_set_election_timeout_ms(b, 100), OK);
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

fn leader_line_logged() -> bool {
    C_LOG
        .lock()
        .iter()
        .any(|l| l.contains("as leader") || l.contains("became leader"))
}

fn wait_for_leader_line() {
    let end = Instant::now() + Duration::from_secs(10);
    while !leader_line_logged() {
        assert!(
            Instant::now() < end,
            "no leader line at the C callback; C log: {:?}",
            C_LOG.lock()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn interest_rebuilt_outside_any_scope_keeps_the_c_callback_fed() {
    assert_eq!(
        raft_set_log_callback(Some(log_cb), raft_log_level::Info as u32, null_mut()),
        OK
    );
    for round in 0..2 {
        C_LOG.lock().clear();
        // A rebuild from this (host) thread, which has no subscriber of its own.
        tracing::callsite::rebuild_interest_cache();
        let n = start_c_node();
        wait_for_leader_line();
        assert_eq!(raft_node_shutdown(n), OK, "round {round}");
        assert_eq!(raft_node_free(n), OK);
    }
    assert_eq!(raft_set_log_callback(None, 0, null_mut()), OK);
}
