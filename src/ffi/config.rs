//! `raft_config_builder` and `raft_config`: node settings, validation and build (the
//! callbacks and loaded durable state: `config_callbacks.rs`).

use super::config_callbacks::{Callbacks, Loaded, Userdata};
use super::handle::{self, Object};
use super::{boundary, boundary_void, fail, raft_status};
use std::collections::HashMap;
use std::ffi::{c_char, CStr};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

/// Opaque node-configuration builder (single-threaded). Created by
/// [`raft_config_builder_new`], consumed by [`raft_config_builder_build`] or released by
/// [`raft_config_builder_free`].
pub struct raft_config_builder {
    _private: [u8; 0],
}

/// Opaque, immutable node configuration; may start several nodes and be shared between
/// threads. Released by [`raft_config_free`] (nodes started from it keep what they need).
pub struct raft_config {
    _private: [u8; 0],
}

/// Settings collected by a builder.
#[derive(Clone, Default)]
pub(crate) struct BuilderData {
    pub(crate) id: u64,
    pub(crate) voters: Vec<u64>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) election_timeout_ms: Option<u64>,
    pub(crate) heartbeat_ms: Option<u64>,
    pub(crate) snapshot_entries: Option<u64>,
    pub(crate) max_command_bytes: Option<usize>,
    pub(crate) max_snapshot_bytes: Option<u64>,
    pub(crate) unsafe_no_fsync: bool,
    pub(crate) caller_runs: bool,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) peers: HashMap<u64, SocketAddr>,
    pub(crate) cluster_id: u64,
    /// `None`: the library default (automatic, lag 64); `Some(None)`: operator.
    pub(crate) auto_rejoin: Option<Option<u64>>,
    pub(crate) secret: Option<Vec<u8>>,
    pub(crate) tls: Option<crate::transport::TlsConfig>,
    pub(crate) userdata: Option<Arc<Userdata>>,
    pub(crate) callbacks: Callbacks,
    pub(crate) loaded: Loaded,
}

/// A built, validated configuration.
pub(crate) struct ConfigData {
    pub(crate) data: BuilderData,
    pub(crate) userdata: Arc<Userdata>,
}

/// Creates an empty builder in `*out_builder`. Defaults: in-memory storage, election
/// timeout 500 ms, heartbeat 50 ms, snapshot every 100000 entries, fsync on.
#[no_mangle]
pub unsafe extern "C" fn raft_config_builder_new(
    out_builder: *mut *mut raft_config_builder,
) -> raft_status {
    boundary(|| {
        if out_builder.is_null() {
            return fail(raft_status::NullArgument, "out_builder is NULL");
        }
        match handle::insert(Object::Builder(Box::default())) {
            Ok(h) => {
                // SAFETY: checked non-NULL.
                unsafe { *out_builder = h as *mut raft_config_builder };
                raft_status::Ok
            }
            Err(s) => s,
        }
    })
}

/// Frees a builder that was not built (its userdata finaliser runs if one was set).
/// NULL and already-consumed handles are ignored.
#[no_mangle]
pub extern "C" fn raft_config_builder_free(builder: *mut raft_config_builder) {
    boundary_void(|| {
        let obj = handle::remove_if(builder as usize, |o| matches!(o, Object::Builder(_)));
        drop(obj);
    })
}

/// Runs `f` on the builder's data; the value it returns is dropped outside the table lock.
pub(super) fn edit<T>(
    builder: *mut raft_config_builder,
    f: impl FnOnce(&mut BuilderData) -> Result<T, raft_status>,
) -> raft_status {
    if builder.is_null() {
        return fail(raft_status::NullArgument, "builder is NULL");
    }
    let r = handle::with(builder as usize, |o| match o {
        Object::Builder(b) => Some(f(b)),
        _ => None,
    });
    match r {
        Some(Some(Ok(old))) => {
            drop(old);
            raft_status::Ok
        }
        Some(Some(Err(s))) => s,
        _ => fail(
            raft_status::InvalidHandle,
            "not a live raft_config_builder handle",
        ),
    }
}

unsafe fn utf8<'a>(s: *const c_char, what: &str) -> Result<&'a str, raft_status> {
    if s.is_null() {
        return Err(fail(raft_status::NullArgument, format!("{what} is NULL")));
    }
    // SAFETY: caller passes a NUL-terminated string.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| fail(raft_status::InvalidArgument, format!("{what} is not UTF-8")))
}

#[cfg(unix)]
fn path_from_bytes(b: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(b)))
}

#[cfg(not(unix))]
fn path_from_bytes(b: &[u8]) -> Option<PathBuf> {
    std::str::from_utf8(b).ok().map(PathBuf::from)
}

fn parse_addr(s: &str) -> Result<SocketAddr, raft_status> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            fail(
                raft_status::InvalidArgument,
                format!("bad address {s:?} (want host:port)"),
            )
        })
}

/// Sets this node's id (non-zero; required).
#[no_mangle]
pub extern "C" fn raft_config_builder_set_id(
    builder: *mut raft_config_builder,
    id: u64,
) -> raft_status {
    boundary(|| {
        if id == 0 {
            return fail(raft_status::InvalidArgument, "node id must be non-zero");
        }
        edit(builder, |b| {
            b.id = id;
            Ok(())
        })
    })
}

/// Adds a voter (non-zero id) to the bootstrap membership, used when storage is empty.
/// Include this node's own id. At least one voter is required.
#[no_mangle]
pub extern "C" fn raft_config_builder_add_voter(
    builder: *mut raft_config_builder,
    id: u64,
) -> raft_status {
    boundary(|| {
        if id == 0 {
            return fail(raft_status::InvalidArgument, "voter id must be non-zero");
        }
        edit(builder, |b| {
            if b.voters.contains(&id) {
                return Err(fail(
                    raft_status::InvalidArgument,
                    format!("voter {id} was already added"),
                ));
            }
            b.voters.push(id);
            Ok(())
        })
    })
}

/// Sets the data directory (a NUL-terminated path: any bytes on Unix, UTF-8 elsewhere;
/// created if missing). NULL keeps everything in memory (lost when the node stops), which
/// is the default.
#[no_mangle]
pub unsafe extern "C" fn raft_config_builder_set_data_dir(
    builder: *mut raft_config_builder,
    path: *const c_char,
) -> raft_status {
    boundary(|| {
        let dir = if path.is_null() {
            None
        } else {
            // SAFETY: NUL-terminated per contract.
            let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
            if bytes.is_empty() {
                return fail(raft_status::InvalidArgument, "data_dir is empty");
            }
            match path_from_bytes(bytes) {
                Some(p) => Some(p),
                None => return fail(raft_status::InvalidArgument, "data_dir is not UTF-8"),
            }
        };
        edit(builder, |b| {
            b.data_dir = dir;
            Ok(())
        })
    })
}

/// Sets the base election timeout in milliseconds (default 500; must exceed the heartbeat).
#[no_mangle]
pub extern "C" fn raft_config_builder_set_election_timeout_ms(
    builder: *mut raft_config_builder,
    ms: u32,
) -> raft_status {
    boundary(|| {
        if ms == 0 {
            return fail(
                raft_status::InvalidArgument,
                "election timeout must be positive",
            );
        }
        edit(builder, |b| {
            b.election_timeout_ms = Some(ms.into());
            Ok(())
        })
    })
}

/// Sets the heartbeat interval in milliseconds (default 50).
#[no_mangle]
pub extern "C" fn raft_config_builder_set_heartbeat_ms(
    builder: *mut raft_config_builder,
    ms: u32,
) -> raft_status {
    boundary(|| {
        if ms == 0 {
            return fail(raft_status::InvalidArgument, "heartbeat must be positive");
        }
        edit(builder, |b| {
            b.heartbeat_ms = Some(ms.into());
            Ok(())
        })
    })
}

/// Takes a snapshot every `entries` applied entries (0 = never automatically). Without
/// snapshot/restore callbacks automatic snapshots are disabled.
#[no_mangle]
pub extern "C" fn raft_config_builder_set_snapshot_entries(
    builder: *mut raft_config_builder,
    entries: u64,
) -> raft_status {
    boundary(|| {
        edit(builder, |b| {
            b.snapshot_entries = Some(entries);
            Ok(())
        })
    })
}

/// Sets the largest command a proposal may carry, in bytes (default 32 MiB, at most 63 MiB so
/// that one entry always fits in one peer message). A larger command is refused up front with
/// `RAFT_STATUS_TOO_LARGE`. 0 or above the maximum gives `RAFT_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn raft_config_builder_set_max_command_bytes(
    builder: *mut raft_config_builder,
    bytes: u64,
) -> raft_status {
    boundary(|| {
        let limit = crate::runtime::MAX_COMMAND_BYTES_LIMIT;
        match usize::try_from(bytes) {
            Ok(n) if n > 0 && n <= limit => edit(builder, |b| {
                b.max_command_bytes = Some(n);
                Ok(())
            }),
            _ => fail(
                raft_status::InvalidArgument,
                format!("max_command_bytes must be in 1..={limit}"),
            ),
        }
    })
}

/// Sets the largest snapshot this node accepts from a leader, in bytes (default 64 GiB): a
/// snapshot announcing a larger total size is refused before anything is written. 0 gives
/// `RAFT_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn raft_config_builder_set_max_snapshot_bytes(
    builder: *mut raft_config_builder,
    bytes: u64,
) -> raft_status {
    boundary(|| {
        if bytes == 0 {
            return fail(
                raft_status::InvalidArgument,
                "max_snapshot_bytes must be positive",
            );
        }
        edit(builder, |b| {
            b.max_snapshot_bytes = Some(bytes);
            Ok(())
        })
    })
}

/// UNSAFE for production: when `no_fsync` is true the data directory is never fsynced, so a
/// power loss or kernel crash can lose or corrupt acknowledged data. For tests only.
#[no_mangle]
pub extern "C" fn raft_config_builder_set_unsafe_no_fsync(
    builder: *mut raft_config_builder,
    no_fsync: bool,
) -> raft_status {
    boundary(|| {
        edit(builder, |b| {
            b.unsafe_no_fsync = no_fsync;
            Ok(())
        })
    })
}

/// When `caller_runs` is true, a thread that hands the node work (`raft_node_propose`,
/// `raft_node_step`, storage completions) runs the protocol step itself when no other thread
/// is running one, instead of waking the node's Raft thread: lower latency for in-process
/// clusters and light load. The `send` callback (and the completion of a failed proposal)
/// may then run on that thread, inside `raft_node_step` or `raft_node_propose`, so it must
/// not take a lock the caller holds around those calls. The Raft thread still runs the
/// timers, and proposals that arrive while others are in flight are still batched. Off by
/// default.
#[no_mangle]
pub extern "C" fn raft_config_builder_set_caller_runs(
    builder: *mut raft_config_builder,
    caller_runs: bool,
) -> raft_status {
    boundary(|| {
        edit(builder, |b| {
            b.caller_runs = caller_runs;
            Ok(())
        })
    })
}

/// Uses the built-in TCP transport listening on `address` ("host:port"; port 0 picks a
/// free one) instead of the send callback. Peers are added with
/// [`raft_config_builder_add_peer`].
#[no_mangle]
pub unsafe extern "C" fn raft_config_builder_set_listen_address(
    builder: *mut raft_config_builder,
    address: *const c_char,
) -> raft_status {
    boundary(|| {
        // SAFETY: NUL-terminated per contract.
        let addr = match unsafe { utf8(address, "address") }.and_then(parse_addr) {
            Ok(a) => a,
            Err(s) => return s,
        };
        edit(builder, |b| {
            b.listen = Some(addr);
            Ok(())
        })
    })
}

/// Adds (or re-addresses) TCP peer `id` reachable at `address` ("host:port", resolved now).
/// Used only with [`raft_config_builder_set_listen_address`].
#[no_mangle]
pub unsafe extern "C" fn raft_config_builder_add_peer(
    builder: *mut raft_config_builder,
    id: u64,
    address: *const c_char,
) -> raft_status {
    boundary(|| {
        if id == 0 {
            return fail(raft_status::InvalidArgument, "peer id must be non-zero");
        }
        // SAFETY: NUL-terminated per contract.
        let addr = match unsafe { utf8(address, "address") }.and_then(parse_addr) {
            Ok(a) => a,
            Err(s) => return s,
        };
        edit(builder, |b| {
            b.peers.insert(id, addr);
            Ok(())
        })
    })
}

/// Sets the cluster id (default 0): the TCP transport refuses connections from other
/// clusters, and a data directory created for another cluster (or node) is refused at start.
#[no_mangle]
pub extern "C" fn raft_config_builder_set_cluster_id(
    builder: *mut raft_config_builder,
    cluster_id: u64,
) -> raft_status {
    boundary(|| {
        edit(builder, |b| {
            b.cluster_id = cluster_id;
            Ok(())
        })
    })
}

/// How a voter that lost its state (a wiped data directory restarted under the same id: a
/// new incarnation) is re-admitted; see [`raft_config_builder_set_auto_rejoin`]. Values are
/// stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum raft_rejoin {
    /// The leader demotes it to learner, catches it up and promotes it again (default).
    Automatic = 0,
    /// The leader logs an error and waits for the operator: change the membership to make
    /// the node a learner, then promote it once caught up.
    Operator = 1,
}

/// Sets how a voter that lost its state is re-admitted (docs/STORAGE.md, "A voter that lost
/// its state"). `mode` is a [`raft_rejoin`] value: `RAFT_REJOIN_AUTOMATIC` (the default,
/// with `max_lag_entries` 64) promotes the demoted node back to voter once its log is within
/// `max_lag_entries` entries of the leader's; `RAFT_REJOIN_OPERATOR` leaves that to the
/// operator (`max_lag_entries` is then ignored). Either way the node's votes and
/// acknowledgements are not counted until it is re-admitted. Another `mode` gives
/// `RAFT_STATUS_INVALID_ARGUMENT`. Only the leader's setting acts: give every node the same.
#[no_mangle]
pub extern "C" fn raft_config_builder_set_auto_rejoin(
    builder: *mut raft_config_builder,
    mode: u32,
    max_lag_entries: u64,
) -> raft_status {
    boundary(|| {
        let rejoin = match mode {
            m if m == raft_rejoin::Automatic as u32 => Some(max_lag_entries),
            m if m == raft_rejoin::Operator as u32 => None,
            m => {
                return fail(
                    raft_status::InvalidArgument,
                    format!("rejoin mode {m} is not a raft_rejoin value (0 or 1)"),
                )
            }
        };
        edit(builder, |b| {
            b.auto_rejoin = Some(rejoin);
            Ok(())
        })
    })
}

/// Sets a shared secret (copied) enabling mutual HMAC-SHA256 authentication of TCP
/// connections. `secret == NULL` (with `len == 0`) removes it.
#[no_mangle]
pub unsafe extern "C" fn raft_config_builder_set_secret(
    builder: *mut raft_config_builder,
    secret: *const u8,
    len: usize,
) -> raft_status {
    boundary(|| {
        let v = if secret.is_null() && len == 0 {
            None
        } else {
            // SAFETY: `secret` holds `len` bytes per contract.
            match unsafe { bytes(secret, len, "secret") } {
                Ok(s) => Some(s.to_vec()),
                Err(st) => return st,
            }
        };
        edit(builder, |b| {
            b.secret = v;
            Ok(())
        })
    })
}

/// Enables TLS 1.3 with mutual authentication on the TCP transport: reads this node's
/// certificate chain, private key and the CA bundle from the three PEM files (NUL-terminated
/// paths) now. The certificate must carry the DNS name `node-<id>.raft` (docs/TRANSPORT.md).
/// All three NULL disables TLS. An unreadable file, invalid PEM or a key that does not match
/// the certificate is `RAFT_STATUS_INVALID_ARGUMENT` (the last error names what is wrong).
#[no_mangle]
pub unsafe extern "C" fn raft_config_builder_set_tls(
    builder: *mut raft_config_builder,
    cert_path: *const c_char,
    key_path: *const c_char,
    ca_path: *const c_char,
) -> raft_status {
    boundary(|| {
        let tls = match (cert_path.is_null(), key_path.is_null(), ca_path.is_null()) {
            (true, true, true) => None,
            (false, false, false) => {
                let path = |p: *const c_char, what| {
                    // SAFETY: NUL-terminated per contract, checked non-NULL above.
                    unsafe { utf8(p, what) }.map(std::path::PathBuf::from)
                };
                let (cert, key, ca) = match (
                    path(cert_path, "cert_path"),
                    path(key_path, "key_path"),
                    path(ca_path, "ca_path"),
                ) {
                    (Ok(c), Ok(k), Ok(a)) => (c, k, a),
                    (Err(s), _, _) | (_, Err(s), _) | (_, _, Err(s)) => return s,
                };
                // Read and checked now, so a bad file is reported here, not at start.
                let checked = crate::transport::TlsConfig::from_files(&cert, &key, &ca)
                    .and_then(|t| crate::transport::tls::TlsContext::new(&t).map(|_| t));
                match checked {
                    Ok(t) => Some(t),
                    Err(e) => return fail(raft_status::InvalidArgument, format!("TLS: {e}")),
                }
            }
            _ => {
                return fail(
                    raft_status::NullArgument,
                    "cert_path, key_path and ca_path are all set or all NULL",
                )
            }
        };
        edit(builder, |b| {
            b.tls = tls;
            Ok(())
        })
    })
}

pub(super) unsafe fn bytes<'a>(
    p: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], raft_status> {
    // SAFETY: caller guarantees `len` readable bytes.
    unsafe { super::bytes_arg(p, len, what) }
}

fn validate(b: &BuilderData) -> Result<(), String> {
    if b.id == 0 {
        return Err("node id is not set".into());
    }
    if b.voters.is_empty() {
        return Err("no voters: call raft_config_builder_add_voter".into());
    }
    if b.callbacks.apply.is_none() {
        return Err("the apply callback is required".into());
    }
    if b.listen.is_none() && b.callbacks.send.is_none() {
        return Err("set a send callback or a listen address".into());
    }
    if b.callbacks.persist.is_some() {
        if b.data_dir.is_some() {
            return Err("storage callbacks and a data directory are exclusive".into());
        }
        let l = &b.loaded;
        let last = l.entries.last().map(|e| e.index).unwrap_or(0);
        let snap = l.snapshot.as_ref().map_or(0, |(m, _)| m.index);
        if let Some(hs) = l.hard_state {
            if hs.commit > last.max(snap) {
                return Err(format!(
                    "loaded commit index {} is beyond the loaded log ({})",
                    hs.commit,
                    last.max(snap)
                ));
            }
        }
    } else if !b.loaded.is_empty() {
        return Err("loaded state needs raft_config_builder_set_storage_callbacks".into());
    }
    let hb = b.heartbeat_ms.unwrap_or(50);
    let el = b.election_timeout_ms.unwrap_or(500);
    if el <= hb {
        return Err(format!(
            "election timeout ({el} ms) must exceed the heartbeat ({hb} ms)"
        ));
    }
    Ok(())
}

/// Validates and consumes `builder` (whether or not this succeeds, unless the handle is
/// invalid), writing the configuration to `*out_config`. Fails with
/// `RAFT_STATUS_INVALID_ARGUMENT` (see `raft_last_error_message`) when the id, voters, apply
/// callback or transport (send callback or listen address) is missing or timeouts conflict.
#[no_mangle]
pub unsafe extern "C" fn raft_config_builder_build(
    builder: *mut raft_config_builder,
    out_config: *mut *mut raft_config,
) -> raft_status {
    boundary(|| {
        if builder.is_null() {
            return fail(raft_status::NullArgument, "builder is NULL");
        }
        if out_config.is_null() {
            return fail(raft_status::NullArgument, "out_config is NULL");
        }
        let Some(Object::Builder(b)) =
            handle::remove_if(builder as usize, |o| matches!(o, Object::Builder(_)))
        else {
            return fail(
                raft_status::InvalidHandle,
                "not a live raft_config_builder handle",
            );
        };
        let mut data = *b;
        if let Err(e) = validate(&data) {
            return fail(raft_status::InvalidArgument, e);
        }
        let userdata = data.userdata.take().unwrap_or_else(|| {
            Arc::new(Userdata {
                ptr: std::ptr::null_mut(),
                free: None,
            })
        });
        let cfg = Arc::new(ConfigData { data, userdata });
        match handle::insert(Object::Config(cfg)) {
            Ok(h) => {
                // SAFETY: checked non-NULL.
                unsafe { *out_config = h as *mut raft_config };
                raft_status::Ok
            }
            Err(s) => s,
        }
    })
}

/// Frees a configuration. Nodes started from it are unaffected. NULL is a no-op.
#[no_mangle]
pub extern "C" fn raft_config_free(config: *mut raft_config) {
    boundary_void(|| {
        let obj = handle::remove_if(config as usize, |o| matches!(o, Object::Config(_)));
        drop(obj);
    })
}
