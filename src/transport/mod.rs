//! The built-in TCP transport: `std::net` sockets and plain threads, no async runtime.
//!
//! The transport carries opaque message bytes between nodes; it knows nothing about Raft
//! messages. See `docs/TRANSPORT.md` for the threat model, the wire format and the queueing
//! policy.
//!
//! # Connections
//! Each node dials every peer for its *outgoing* traffic and accepts inbound connections for its
//! *incoming* traffic, so a pair of nodes uses two TCP connections, one per direction. This keeps
//! each connection single-writer/single-reader (no simultaneous-open tie-breaking, no shared
//! socket state between threads): a writer thread per peer owns the outgoing connection, and a
//! reader thread per inbound connection delivers frames to the `on_message` callback.
//!
//! Outgoing connections are re-established with jittered exponential backoff between
//! [`TransportConfig::reconnect_backoff_min`] and [`TransportConfig::reconnect_backoff_max`].
//! Messages queued while a peer is unreachable stay queued (subject to the byte cap).

mod deadline;
mod listener;
mod peer;
mod queue;

pub mod frame;
pub mod handshake;
pub mod tls;

pub use tls::TlsConfig;

use parking_lot::{Mutex, RwLock};
use peer::PeerLink;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use zeroize::Zeroizing;

/// Callback receiving `(from, payload)` for every frame from an authenticated known peer.
pub type OnMessage = Arc<dyn Fn(u64, Vec<u8>) + Send + Sync>;

/// Reads the sender id a payload claims (see [`TransportConfig::sender_of`]); `None` if the
/// payload does not say.
pub type SenderOf = fn(&[u8]) -> Option<u64>;

/// Default cap on inbound sockets held at once (handshaking or authenticated).
pub const DEFAULT_MAX_INBOUND_CONNECTIONS: usize = 64;
/// Default cap on inbound handshakes in progress at once.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 16;

/// Transport configuration.
#[derive(Clone)]
pub struct TransportConfig {
    /// This node's id.
    pub node_id: u64,
    /// Cluster id; connections from other clusters are refused.
    pub cluster_id: u64,
    /// Address to listen on (port 0 picks a free port; see [`TcpTransport::local_addr`]).
    pub listen: SocketAddr,
    /// Known peers and where to dial them.
    pub peers: HashMap<u64, SocketAddr>,
    /// Shared cluster secret; enables mutual HMAC-SHA256 challenge-response on every connection.
    pub secret: Option<Vec<u8>>,
    /// TLS 1.3 with mutual certificate authentication on every connection (see [`tls`]);
    /// `None` (the default) is plain TCP. Combines with `secret`.
    pub tls: Option<TlsConfig>,
    /// Largest accepted/sent payload (default 64 MiB).
    pub max_frame_bytes: usize,
    /// Byte cap of each peer's outgoing queue (default 64 MiB).
    pub max_queue_bytes: usize,
    /// First reconnect delay (default 50 ms).
    pub reconnect_backoff_min: Duration,
    /// Largest reconnect delay (default 5 s).
    pub reconnect_backoff_max: Duration,
    /// TCP connect timeout (default 3 s).
    pub connect_timeout: Duration,
    /// Time allowed for a whole handshake, either side (default 5 s). It is an absolute
    /// deadline: a peer dribbling bytes cannot stretch it.
    pub handshake_timeout: Duration,
    /// Inbound sockets held at once, handshaking or authenticated (default
    /// [`DEFAULT_MAX_INBOUND_CONNECTIONS`]). A connection beyond it gets a `REJECT_BUSY` reply
    /// and is closed at once, without a thread (counted in
    /// [`TransportStats::inbound_refused`]).
    pub max_inbound_connections: usize,
    /// Inbound handshakes in progress at once (default [`DEFAULT_MAX_PENDING_HANDSHAKES`]).
    /// A new connection beyond it closes the *oldest* handshake still in progress (counted in
    /// [`TransportStats::handshakes_evicted`]), so slow or silent connections cannot lock out
    /// a peer whose handshake takes one round trip.
    pub max_pending_handshakes: usize,
    /// Reads the sender a received payload claims; a frame whose claimed sender differs from
    /// the peer authenticated by the handshake is dropped (counted in
    /// [`TransportStats::sender_mismatch`]). Default: [`crate::codec::sender`], for payloads
    /// encoded with [`crate::codec`]; `None` treats payloads as opaque and checks nothing.
    pub sender_of: Option<SenderOf>,
    /// A single blocked socket write longer than this drops the connection (default 30 s).
    pub write_timeout: Duration,
}

impl TransportConfig {
    /// A configuration with no peers, no secret and default limits.
    pub fn new(node_id: u64, cluster_id: u64, listen: SocketAddr) -> Self {
        TransportConfig {
            node_id,
            cluster_id,
            listen,
            peers: HashMap::new(),
            secret: None,
            tls: None,
            max_frame_bytes: frame::DEFAULT_MAX_FRAME_BYTES,
            max_queue_bytes: 64 << 20,
            reconnect_backoff_min: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            max_inbound_connections: DEFAULT_MAX_INBOUND_CONNECTIONS,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            sender_of: Some(crate::codec::sender),
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("node_id", &self.node_id)
            .field("cluster_id", &self.cluster_id)
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_inbound_connections", &self.max_inbound_connections)
            .field("max_pending_handshakes", &self.max_pending_handshakes)
            .finish_non_exhaustive()
    }
}

/// How a message may be treated under queue pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendClass {
    /// Droppable: when the queue is over its byte cap the oldest heartbeats go first.
    Heartbeat,
    /// Dropped only if it does not fit even after evicting heartbeats.
    Normal,
    /// Large transfers (snapshot chunks): own FIFO, interleaved so they never starve the others.
    Bulk,
}

/// Why [`TcpTransport::send`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No such peer.
    UnknownPeer(u64),
    /// The peer's queue is full (counted in [`TransportStats::queue_full`] or, for heartbeats,
    /// [`TransportStats::heartbeats_evicted`]).
    QueueFull,
    /// The message exceeds `max_frame_bytes`.
    TooLarge {
        /// Message length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// The transport has been shut down.
    Shutdown,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::UnknownPeer(id) => write!(f, "unknown peer {id}"),
            TransportError::QueueFull => write!(f, "peer queue is full"),
            TransportError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the frame limit of {max}")
            }
            TransportError::Shutdown => write!(f, "transport is shut down"),
        }
    }
}

impl std::error::Error for TransportError {}

macro_rules! stats {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Counters since start (a snapshot; see [`TcpTransport::stats`]).
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct TransportStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        #[derive(Default)]
        struct Counters {
            $($name: AtomicU64,)*
        }

        impl Counters {
            fn snapshot(&self) -> TransportStats {
                TransportStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

stats! {
    /// Frames written to sockets.
    frames_sent,
    /// Frames delivered to `on_message`.
    frames_received,
    /// Payload bytes written.
    bytes_sent,
    /// Payload bytes delivered.
    bytes_received,
    /// Inbound connections refused: other cluster id.
    wrong_cluster,
    /// Inbound connections refused: sender not a known peer, or addressed to another node.
    unknown_node,
    /// Connections closed: frame length field of 0.
    bad_length,
    /// Connections closed: unknown frame version or handshake protocol version.
    bad_version,
    /// Handshakes failed authentication (either side: bad MAC, or only one side has a secret).
    auth_failures,
    /// Inbound handshakes that were structurally invalid (bad magic, wrong size).
    bad_handshake,
    /// Frames refused for exceeding `max_frame_bytes` (inbound: connection closed; outbound:
    /// `send` error).
    oversized,
    /// Normal/Bulk messages refused because the peer queue was full.
    queue_full,
    /// Heartbeats evicted from a queue over its byte cap (oldest first).
    heartbeats_evicted,
    /// Messages dropped because the peer is blocked ([`TcpTransport::set_blocked`]).
    blocked_dropped,
    /// Outgoing connections established (handshake completed).
    connects,
    /// Outgoing connections re-established after a previous one to the same peer.
    reconnects,
    /// Failed outgoing connection attempts (connect or handshake).
    connect_failures,
    /// Inbound TCP connections accepted (before the handshake).
    inbound_connections,
    /// Inbound connections refused at once: `max_inbound_connections` were open.
    inbound_refused,
    /// Inbound handshakes closed to make room under `max_pending_handshakes` (oldest first).
    handshakes_evicted,
    /// Inbound handshakes that missed the `handshake_timeout` deadline.
    handshake_timeouts,
    /// Frames dropped because the sender they claim is not the authenticated peer.
    sender_mismatch,
    /// TLS handshakes that failed (either side): certificate not from the CA, certificate not
    /// naming the node, protocol error.
    tls_failures,
}

/// State shared by the transport handle and its threads.
struct Inner {
    node_id: u64,
    cluster_id: u64,
    /// Wiped from memory when the transport is dropped.
    secret: Option<Zeroizing<Vec<u8>>>,
    tls: Option<tls::TlsContext>,
    max_frame_bytes: usize,
    max_queue_bytes: usize,
    backoff_min: Duration,
    backoff_max: Duration,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    write_timeout: Duration,
    max_inbound: usize,
    max_pending: usize,
    sender_of: Option<SenderOf>,
    on_message: OnMessage,
    peers: RwLock<HashMap<u64, Arc<PeerLink>>>,
    blocked: RwLock<HashSet<u64>>,
    stats: Counters,
    shutdown: AtomicBool,
    /// Open inbound connections: connection id → (authenticated peer, socket). An entry with
    /// no peer is a handshake in progress; ids grow, so the smallest is the oldest.
    inbound: Mutex<HashMap<u64, (Option<u64>, TcpStream)>>,
    /// Reader threads alive (bounded by `max_inbound`, counted until the thread exits).
    readers: AtomicU64,
    next_conn_id: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    fn count(&self, counter: impl Fn(&Counters) -> &AtomicU64, n: u64) {
        counter(&self.stats).fetch_add(n, Ordering::Relaxed);
    }

    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn is_blocked(&self, peer: u64) -> bool {
        let blocked = self.blocked.read();
        !blocked.is_empty() && blocked.contains(&peer)
    }

    fn is_known(&self, peer: u64) -> bool {
        self.peers.read().contains_key(&peer)
    }

    fn spawn(&self, name: String, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(crate::log_scope::inherit(f))?;
        let mut threads = self.threads.lock();
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
        Ok(())
    }

    /// Closes inbound connections from `peer` other than `keep`.
    fn close_inbound_from(&self, peer: u64, keep: Option<u64>) {
        for (id, (p, s)) in self.inbound.lock().iter() {
            if *p == Some(peer) && Some(*id) != keep {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// The TCP transport. `Send + Sync`; shut down explicitly or by dropping it.
pub struct TcpTransport {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
}

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTransport")
            .field("node_id", &self.inner.node_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// Binds and starts the listener and the per-peer writer threads. `on_message(from, bytes)`
    /// is called from transport threads for every frame received from an authenticated, known
    /// peer of the same cluster (frames from one peer arrive in order).
    ///
    /// Fails if the address cannot be bound or the TLS material is invalid
    /// (`InvalidInput`, naming what is wrong).
    pub fn start(cfg: TransportConfig, on_message: OnMessage) -> io::Result<TcpTransport> {
        let tls = cfg.tls.as_ref().map(tls::TlsContext::new).transpose()?;
        let listener = TcpListener::bind(cfg.listen)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let min = cfg.reconnect_backoff_min.max(Duration::from_millis(1));
        let inner = Arc::new(Inner {
            node_id: cfg.node_id,
            cluster_id: cfg.cluster_id,
            secret: cfg.secret.clone().map(Zeroizing::new),
            tls,
            max_frame_bytes: cfg.max_frame_bytes.min(frame::MAX_ENCODABLE_PAYLOAD),
            max_queue_bytes: cfg.max_queue_bytes,
            backoff_min: min,
            backoff_max: cfg.reconnect_backoff_max.max(min),
            connect_timeout: cfg.connect_timeout,
            handshake_timeout: cfg.handshake_timeout,
            write_timeout: cfg.write_timeout,
            max_inbound: cfg.max_inbound_connections.max(1),
            max_pending: cfg.max_pending_handshakes.max(1),
            sender_of: cfg.sender_of,
            on_message,
            peers: RwLock::new(HashMap::new()),
            blocked: RwLock::new(HashSet::new()),
            stats: Counters::default(),
            shutdown: AtomicBool::new(false),
            inbound: Mutex::new(HashMap::new()),
            readers: AtomicU64::new(0),
            next_conn_id: AtomicU64::new(1),
            threads: Mutex::new(Vec::new()),
        });
        let transport = TcpTransport { inner, local_addr };
        let inner = transport.inner.clone();
        transport
            .inner
            .spawn(format!("raft-listen-{}", cfg.node_id), move || {
                listener::run_listener(inner, listener)
            })?;
        for (&id, &addr) in &cfg.peers {
            transport.add_peer(id, addr);
        }
        Ok(transport)
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// Queues `bytes` for `to`; never blocks. See [`SendClass`] for what happens under pressure.
    /// Messages to a blocked peer are silently dropped (`Ok`, counted).
    pub fn send(&self, to: u64, bytes: Vec<u8>, class: SendClass) -> Result<(), TransportError> {
        let inner = &self.inner;
        if inner.is_shutdown() {
            return Err(TransportError::Shutdown);
        }
        if bytes.len() > inner.max_frame_bytes {
            inner.count(|c| &c.oversized, 1);
            return Err(TransportError::TooLarge {
                len: bytes.len(),
                max: inner.max_frame_bytes,
            });
        }
        let link = inner
            .peers
            .read()
            .get(&to)
            .cloned()
            .ok_or(TransportError::UnknownPeer(to))?;
        if inner.is_blocked(to) {
            inner.count(|c| &c.blocked_dropped, 1);
            return Ok(());
        }
        let outcome = link.push(bytes, class);
        if outcome.evicted_heartbeats > 0 {
            inner.count(|c| &c.heartbeats_evicted, outcome.evicted_heartbeats);
        }
        if outcome.accepted {
            Ok(())
        } else {
            if class != SendClass::Heartbeat {
                inner.count(|c| &c.queue_full, 1);
            }
            Err(TransportError::QueueFull)
        }
    }

    /// Adds a peer, or changes its address (the outgoing connection is then re-dialed).
    /// Adding this node's own id is ignored.
    pub fn add_peer(&self, id: u64, addr: SocketAddr) {
        let inner = &self.inner;
        if id == inner.node_id || inner.is_shutdown() {
            return;
        }
        let mut peers = inner.peers.write();
        if let Some(link) = peers.get(&id) {
            link.set_addr(addr);
            return;
        }
        let link = Arc::new(PeerLink::new(id, addr, inner.max_queue_bytes));
        peers.insert(id, link.clone());
        drop(peers);
        let thread_inner = inner.clone();
        let spawned = inner.spawn(format!("raft-peer-{}-{id}", inner.node_id), move || {
            peer::run_writer(thread_inner, link)
        });
        if let Err(e) = spawned {
            tracing::error!(peer = id, "cannot start writer thread: {e}");
            inner.peers.write().remove(&id);
        }
    }

    /// Removes a peer: its queue is dropped, its connections are closed and connections from it
    /// are refused from now on.
    pub fn remove_peer(&self, id: u64) {
        let link = self.inner.peers.write().remove(&id);
        if let Some(link) = link {
            link.close();
        }
        self.inner.close_inbound_from(id, None);
    }

    /// Current peer ids.
    pub fn peers(&self) -> Vec<u64> {
        self.inner.peers.read().keys().copied().collect()
    }

    /// Payload bytes currently queued for `peer`, or `None` for an unknown peer.
    pub fn queued_bytes(&self, peer: u64) -> Option<usize> {
        self.inner.peers.read().get(&peer).map(|l| l.queued_bytes())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TransportStats {
        self.inner.stats.snapshot()
    }

    /// Test hook: while blocked, all traffic to and from `peer` is dropped (connections stay
    /// up; counted in [`TransportStats::blocked_dropped`]).
    pub fn set_blocked(&self, peer: u64, blocked: bool) {
        let mut set = self.inner.blocked.write();
        if blocked {
            set.insert(peer);
        } else {
            set.remove(&peer);
        }
    }

    /// Stops all threads and closes all connections; returns when every thread has exited.
    /// Idempotent; also done on drop. Queued messages are discarded.
    pub fn shutdown(&self) {
        let inner = &self.inner;
        inner.shutdown.store(true, Ordering::SeqCst);
        for link in inner.peers.read().values() {
            link.close();
        }
        for (_, s) in inner.inbound.lock().values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Threads may still be spawned until the listener has exited, so loop until empty.
        loop {
            let threads = std::mem::take(&mut *inner.threads.lock());
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}
