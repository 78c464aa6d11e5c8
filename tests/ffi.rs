//! The C API driven from Rust: handle validation, status mapping, callbacks, userdata
//! finalisation, reentrancy refusal and freeing a node while other threads use it.

use raft::ffi::*;
use std::ffi::{c_int, c_void, CStr};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const OK: raft_status = raft_status::Ok;

unsafe extern "C" fn no_send(_: *mut c_void, _: u64, _: *const u8, _: usize) {}

struct Ud {
    applied: AtomicUsize,
    freed: AtomicUsize,
    node: AtomicUsize,
    reentrant: AtomicUsize,
}

unsafe extern "C" fn apply(
    ud: *mut c_void,
    _i: u64,
    cmd: *const u8,
    len: usize,
    out: *mut raft_buf,
) -> c_int {
    let ud = unsafe { &*(ud as *const Ud) };
    ud.applied.fetch_add(1, Ordering::SeqCst);
    let cmd = unsafe { std::slice::from_raw_parts(cmd, len) };
    if cmd == b"reenter" {
        let n = ud.node.load(Ordering::SeqCst) as *mut raft_node;
        let s = raft_node_shutdown(n);
        ud.reentrant.store(s as usize, Ordering::SeqCst);
    }
    let mut resp = cmd.to_vec();
    resp.reverse();
    unsafe { raft_buf_set(out, resp.as_ptr(), resp.len()) as c_int }
}

unsafe extern "C" fn free_ud(ud: *mut c_void) {
    unsafe { &*(ud as *const Ud) }
        .freed
        .fetch_add(1, Ordering::SeqCst);
}

fn config(ud: &Ud) -> *mut raft_config {
    unsafe {
        let mut b = null_mut();
        assert_eq!(raft_config_builder_new(&mut b), OK);
        assert_eq!(raft_config_builder_set_id(b, 1), OK);
        assert_eq!(raft_config_builder_add_voter(b, 1), OK);
        assert_eq!(raft_config_builder_set_election_timeout_ms(b, 150), OK);
        assert_eq!(
            raft_config_builder_set_userdata(b, ud as *const Ud as *mut c_void, Some(free_ud)),
            OK
        );
        assert_eq!(raft_config_builder_set_send_callback(b, Some(no_send)), OK);
        assert_eq!(raft_config_builder_set_apply_callback(b, Some(apply)), OK);
        let mut c = null_mut();
        assert_eq!(raft_config_builder_build(b, &mut c), OK);
        assert_eq!(raft_config_builder_set_id(b, 2), raft_status::InvalidHandle);
        c
    }
}

fn ud() -> &'static Ud {
    Box::leak(Box::new(Ud {
        applied: AtomicUsize::new(0),
        freed: AtomicUsize::new(0),
        node: AtomicUsize::new(0),
        reentrant: AtomicUsize::new(0),
    }))
}

fn propose(n: *mut raft_node, cmd: &[u8]) -> Result<Vec<u8>, raft_status> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let mut buf = raft_buf {
            data: null_mut(),
            len: 0,
        };
        let s = unsafe { raft_node_propose(n, cmd.as_ptr(), cmd.len(), 2000, &mut buf) };
        if s == OK {
            let v = if buf.data.is_null() {
                Vec::new()
            } else {
                unsafe { std::slice::from_raw_parts(buf.data, buf.len) }.to_vec()
            };
            unsafe { raft_buf_free(&mut buf) };
            assert!(buf.data.is_null());
            return Ok(v);
        }
        if s != raft_status::NotLeader || Instant::now() > end {
            return Err(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_strings_and_version() {
    let s = unsafe { CStr::from_ptr(raft_status_str(raft_status::InvalidHandle as u32)) };
    assert_eq!(s.to_str().unwrap(), "invalid handle");
    let s = unsafe { CStr::from_ptr(raft_status_str(4242)) };
    assert_eq!(s.to_str().unwrap(), "unknown status");
    let v = unsafe { CStr::from_ptr(raft_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn propose_respond_reenter_and_finalise_once() {
    let ud = ud();
    let c = config(ud);
    let mut n = null_mut();
    assert_eq!(unsafe { raft_node_start(c, &mut n) }, OK);
    raft_config_free(c);
    raft_config_free(c); // stale: ignored
    assert_eq!(
        ud.freed.load(Ordering::SeqCst),
        0,
        "the node still holds the userdata"
    );
    ud.node.store(n as usize, Ordering::SeqCst);
    assert_eq!(propose(n, b"abc").unwrap(), b"cba");
    assert_eq!(propose(n, b"reenter").unwrap(), b"retneer");
    assert_eq!(
        ud.reentrant.load(Ordering::SeqCst),
        raft_status::WouldDeadlock as usize
    );
    let mut info = std::mem::MaybeUninit::<raft_node_status_info>::uninit();
    assert_eq!(unsafe { raft_node_status(n, info.as_mut_ptr()) }, OK);
    let info = unsafe { info.assume_init() };
    assert_eq!(
        (info.id, info.role, info.voter_count, info.voters[0]),
        (1, raft_role::Leader, 1, 1)
    );
    assert!(info.applied >= 3);
    assert_eq!(raft_node_free(n), OK);
    assert_eq!(ud.freed.load(Ordering::SeqCst), 1);
    assert_eq!(raft_node_free(n), raft_status::InvalidHandle);
    assert_eq!(raft_node_shutdown(n), raft_status::InvalidHandle);
    assert_eq!(ud.freed.load(Ordering::SeqCst), 1);
}

#[test]
fn forged_and_mistyped_handles() {
    for h in [0x1usize, 0x1234, 0xA, 0x1A, usize::MAX, 0xdead_beef_000a] {
        assert_eq!(
            raft_node_shutdown(h as *const raft_node),
            raft_status::InvalidHandle
        );
        assert_eq!(
            raft_config_builder_set_id(h as *mut raft_config_builder, 1),
            raft_status::InvalidHandle
        );
    }
    assert_eq!(
        raft_node_shutdown(std::ptr::null()),
        raft_status::NullArgument
    );
    let ud = ud();
    let c = config(ud);
    assert_eq!(
        raft_node_shutdown(c as *const raft_node),
        raft_status::InvalidHandle
    );
    assert_eq!(
        raft_node_free(c as *mut raft_node),
        raft_status::InvalidHandle
    );
    raft_config_free(c);
    assert_eq!(
        ud.freed.load(Ordering::SeqCst),
        1,
        "freeing the config finalises its userdata"
    );
    let mut n = null_mut();
    assert_eq!(
        unsafe { raft_node_start(c, &mut n) },
        raft_status::InvalidHandle
    );
    assert!(n.is_null());
}

#[test]
fn free_while_other_threads_call() {
    let ud = ud();
    let c = config(ud);
    let mut n = null_mut();
    assert_eq!(unsafe { raft_node_start(c, &mut n) }, OK);
    raft_config_free(c);
    let h = n as usize;
    let workers: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let n = h as *mut raft_node;
                let cmd = format!("w{i}");
                loop {
                    let s =
                        unsafe { raft_node_propose(n, cmd.as_ptr(), cmd.len(), 200, null_mut()) };
                    match s {
                        raft_status::InvalidHandle | raft_status::ShutDown => return,
                        _ => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(raft_node_free(n), OK);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(ud.freed.load(Ordering::SeqCst), 1);
}

struct StoreUd {
    node: AtomicUsize,
    ok: c_int,
    calls: AtomicUsize,
    applied: AtomicUsize,
}

unsafe extern "C" fn store_apply(
    ud: *mut c_void,
    _i: u64,
    _cmd: *const u8,
    _len: usize,
    _out: *mut raft_buf,
) -> c_int {
    unsafe { &*(ud as *const StoreUd) }
        .applied
        .fetch_add(1, Ordering::SeqCst);
    0
}

/// Completes the write from inside the callback (allowed), with the configured outcome.
unsafe extern "C" fn persist_inline(
    ud: *mut c_void,
    token: u64,
    _hs: *const raft_hard_state,
    _replace_from: u64,
    _entries: *const raft_entry,
    _n: usize,
) {
    let ud = unsafe { &*(ud as *const StoreUd) };
    ud.calls.fetch_add(1, Ordering::SeqCst);
    let end = Instant::now() + Duration::from_secs(5);
    while ud.node.load(Ordering::SeqCst) == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    let n = ud.node.load(Ordering::SeqCst) as *const raft_node;
    assert_eq!(raft_node_persisted(n, token, ud.ok), OK);
    assert_eq!(
        raft_node_persisted(n, token, ud.ok),
        raft_status::InvalidArgument,
        "a token completes once"
    );
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn persist_snapshot_inline(
    ud: *mut c_void,
    token: u64,
    _index: u64,
    _term: u64,
    _meta: *const u8,
    _meta_len: usize,
    _data: *const u8,
    _len: usize,
    _keep_log: bool,
) {
    let ud = unsafe { &*(ud as *const StoreUd) };
    let n = ud.node.load(Ordering::SeqCst) as *const raft_node;
    assert_eq!(raft_node_persisted(n, token, ud.ok), OK);
}

fn store_node(ud: &StoreUd) -> *mut raft_node {
    unsafe {
        let mut b = null_mut();
        assert_eq!(raft_config_builder_new(&mut b), OK);
        assert_eq!(raft_config_builder_set_id(b, 1), OK);
        assert_eq!(raft_config_builder_add_voter(b, 1), OK);
        assert_eq!(raft_config_builder_set_election_timeout_ms(b, 150), OK);
        let p = ud as *const StoreUd as *mut c_void;
        assert_eq!(raft_config_builder_set_userdata(b, p, None), OK);
        assert_eq!(raft_config_builder_set_send_callback(b, Some(no_send)), OK);
        assert_eq!(
            raft_config_builder_set_apply_callback(b, Some(store_apply)),
            OK
        );
        assert_eq!(
            raft_config_builder_set_storage_callbacks(
                b,
                Some(persist_inline),
                Some(persist_snapshot_inline)
            ),
            OK
        );
        let mut c = null_mut();
        assert_eq!(raft_config_builder_build(b, &mut c), OK);
        let mut n = null_mut();
        assert_eq!(raft_node_start(c, &mut n), OK);
        raft_config_free(c);
        ud.node.store(n as usize, Ordering::SeqCst);
        n
    }
}

#[test]
fn storage_callbacks_validation() {
    unsafe {
        let mut b = null_mut();
        assert_eq!(raft_config_builder_new(&mut b), OK);
        assert_eq!(
            raft_config_builder_set_storage_callbacks(b, Some(persist_inline), None),
            raft_status::NullArgument
        );
        assert_eq!(
            raft_config_builder_load_snapshot(b, b"xx".as_ptr(), 2, null_mut(), 0),
            raft_status::InvalidArgument
        );
        assert_eq!(
            raft_config_builder_load_entry(b, 1, 2, 0, null_mut(), 0),
            raft_status::InvalidArgument
        );
        assert_eq!(
            raft_config_builder_load_entry(b, 1, 1, 0, b"a".as_ptr(), 1),
            OK
        );
        assert_eq!(
            raft_config_builder_load_entry(b, 1, 3, 0, null_mut(), 0),
            raft_status::InvalidArgument
        );
        assert_eq!(
            raft_config_builder_load_entry(b, 0, 2, 0, null_mut(), 0),
            raft_status::InvalidArgument
        );
        assert_eq!(raft_config_builder_load_hard_state(b, 1, 1, 5), OK);
        assert_eq!(raft_config_builder_set_id(b, 1), OK);
        assert_eq!(raft_config_builder_add_voter(b, 1), OK);
        assert_eq!(raft_config_builder_set_send_callback(b, Some(no_send)), OK);
        assert_eq!(
            raft_config_builder_set_apply_callback(b, Some(store_apply)),
            OK
        );
        // Loaded state without storage callbacks is refused.
        let mut c = null_mut();
        assert_eq!(
            raft_config_builder_build(b, &mut c),
            raft_status::InvalidArgument
        );
    }
    // A node without storage callbacks has no tokens.
    let ud = ud();
    let c = config(ud);
    let mut n = null_mut();
    unsafe {
        assert_eq!(raft_node_start(c, &mut n), OK);
        assert_eq!(raft_node_persisted(n, 1, 1), raft_status::InvalidArgument);
        assert_eq!(raft_node_free(n), OK);
        raft_config_free(c);
    }
}

#[test]
fn storage_callbacks_complete_inline_and_failure_fails_the_node() {
    let good = Box::leak(Box::new(StoreUd {
        node: AtomicUsize::new(0),
        ok: 1,
        calls: AtomicUsize::new(0),
        applied: AtomicUsize::new(0),
    }));
    let n = store_node(good);
    let end = Instant::now() + Duration::from_secs(10);
    let mut s;
    loop {
        s = unsafe { raft_node_propose(n, b"x".as_ptr(), 1, 2000, null_mut()) };
        if s != raft_status::NotLeader || Instant::now() > end {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s, OK);
    assert!(good.calls.load(Ordering::SeqCst) > 0);
    assert_eq!(good.applied.load(Ordering::SeqCst), 1);
    assert_eq!(raft_node_free(n), OK);

    let bad = Box::leak(Box::new(StoreUd {
        node: AtomicUsize::new(0),
        ok: 0,
        calls: AtomicUsize::new(0),
        applied: AtomicUsize::new(0),
    }));
    let n = store_node(bad);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let mut st = std::mem::MaybeUninit::<raft_node_status_info>::uninit();
        let s = unsafe { raft_node_status(n, st.as_mut_ptr()) };
        if s == raft_status::Failed {
            break;
        }
        assert!(Instant::now() < end, "the node did not fail ({s:?})");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(raft_node_free(n), OK);
}

fn conf_id(n: *const raft_node) -> u64 {
    let mut id = u64::MAX;
    assert_eq!(unsafe { raft_node_conf_id(n, &mut id) }, OK);
    id
}

fn learners(n: *const raft_node) -> Vec<u64> {
    let mut ids = [0u64; 8];
    let mut k = usize::MAX;
    assert_eq!(
        unsafe { raft_node_learners(n, ids.as_mut_ptr(), ids.len(), &mut k) },
        OK
    );
    ids[..k].to_vec()
}

/// `raft_node_change_membership` on a one-voter cluster: argument checks change nothing,
/// learner-only changes, compare-and-set against `raft_node_conf_id`, removed ids.
#[test]
fn change_membership_arguments_and_compare_and_set() {
    let ud = ud();
    let c = config(ud);
    let mut n = null_mut();
    assert_eq!(unsafe { raft_node_start(c, &mut n) }, OK);
    raft_config_free(c);
    propose(n, b"x").unwrap();
    let cm = |v: *const u64, vn: usize, l: *const u64, ln: usize, expected: u64| unsafe {
        raft_node_change_membership(n, v, vn, l, ln, expected, 5000)
    };
    let (one, null) = ([1u64], std::ptr::null::<u64>());

    assert_eq!(conf_id(n), 0, "the initial configuration has id 0");
    assert_eq!(
        unsafe { raft_node_conf_id(n, null_mut()) },
        raft_status::NullArgument
    );
    let mut k = 0usize;
    assert_eq!(
        unsafe { raft_node_learners(n, null_mut(), 1, &mut k) },
        raft_status::NullArgument
    );
    assert_eq!(cm(null, 1, null, 0, 0), raft_status::NullArgument);
    assert_eq!(cm(one.as_ptr(), 1, null, 1, 0), raft_status::NullArgument);
    assert_eq!(cm(null, 0, null, 0, 0), raft_status::InvalidArgument);
    let l2 = [2u64];
    assert_eq!(cm(null, 0, l2.as_ptr(), 1, 0), raft_status::InvalidArgument);
    for (v, l) in [
        (&[1u64, 1][..], &[][..]),
        (&[1], &[2, 2]),
        (&[1], &[1]),
        (&[1, 2], &[2]),
        (&[0], &[]),
        (&[1], &[0]),
    ] {
        assert_eq!(
            cm(v.as_ptr(), v.len(), l.as_ptr(), l.len(), 0),
            raft_status::InvalidArgument,
            "voters {v:?} learners {l:?}"
        );
    }
    let forged = 0x1234 as *const raft_node;
    assert_eq!(
        unsafe { raft_node_change_membership(forged, one.as_ptr(), 1, null, 0, 0, 10) },
        raft_status::InvalidHandle
    );
    assert_eq!(conf_id(n), 0, "refused calls change nothing");
    assert!(learners(n).is_empty());

    // Learner-only change, then a stale id is refused and the current one accepted.
    assert_eq!(cm(one.as_ptr(), 1, l2.as_ptr(), 1, 0), OK);
    let id1 = conf_id(n);
    assert!(id1 > 0);
    assert_eq!(learners(n), [2]);
    assert_eq!(
        unsafe { raft_node_learners(n, null_mut(), 0, &mut k) },
        raft_status::BufferTooSmall
    );
    assert_eq!(k, 1);
    let l23 = [3u64, 2];
    assert_eq!(
        cm(one.as_ptr(), 1, l23.as_ptr(), 2, id1 - 1),
        raft_status::InvalidArgument
    );
    assert_eq!((conf_id(n), learners(n)), (id1, vec![2]));
    assert_eq!(cm(one.as_ptr(), 1, l23.as_ptr(), 2, id1), OK);
    let id2 = conf_id(n);
    assert!(id2 > id1);
    assert_eq!(learners(n), [2, 3]);

    // Learners left out are removed for good.
    assert_eq!(cm(one.as_ptr(), 1, null, 0, id2), OK);
    assert!(learners(n).is_empty());
    assert_eq!(
        cm(one.as_ptr(), 1, l2.as_ptr(), 1, conf_id(n)),
        raft_status::InvalidArgument
    );
    propose(n, b"y").unwrap();
    assert_eq!(raft_node_free(n), OK);
    assert_eq!(
        unsafe { raft_node_conf_id(n, &mut k as *mut usize as *mut u64) },
        raft_status::InvalidHandle
    );
}
