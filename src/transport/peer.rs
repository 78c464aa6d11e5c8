//! Outgoing side: one writer thread per peer owning its queue and its outgoing connection.

use super::deadline::Deadline;
use super::frame;
use super::handshake::{self, HandshakeError};
use super::queue::{PushOutcome, SendQueue};
use super::tls::{self, Conn};
use super::{Inner, SendClass};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::io::{self, BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WRITE_BUFFER: usize = 64 << 10;

/// A peer's queue, address and connection state, shared by `send` and the writer thread.
pub(crate) struct PeerLink {
    id: u64,
    state: Mutex<LinkState>,
    cond: Condvar,
}

struct LinkState {
    queue: SendQueue,
    addr: SocketAddr,
    /// Set when the address changes: the writer drops its connection and re-dials.
    redial: bool,
    /// Set when the peer connected to us: a writer backing off dials again at once (the peer
    /// is evidently up, e.g. it restarted), instead of sleeping out its backoff.
    retry_now: bool,
    closed: bool,
    /// A clone of the current outgoing socket, so `close` can interrupt blocking I/O.
    stream: Option<TcpStream>,
}

impl PeerLink {
    pub(crate) fn new(id: u64, addr: SocketAddr, max_queue_bytes: usize) -> Self {
        PeerLink {
            id,
            state: Mutex::new(LinkState {
                queue: SendQueue::new(max_queue_bytes),
                addr,
                redial: false,
                retry_now: false,
                closed: false,
                stream: None,
            }),
            cond: Condvar::new(),
        }
    }

    pub(crate) fn push(&self, bytes: Vec<u8>, class: SendClass) -> PushOutcome {
        let mut st = self.state.lock();
        if st.closed {
            return PushOutcome::default();
        }
        let out = st.queue.push(bytes, class);
        drop(st);
        if out.accepted {
            self.cond.notify_one();
        }
        out
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        self.state.lock().queue.bytes()
    }

    pub(crate) fn set_addr(&self, addr: SocketAddr) {
        let mut st = self.state.lock();
        if st.addr != addr {
            st.addr = addr;
            st.redial = true;
            if let Some(s) = &st.stream {
                let _ = s.shutdown(Shutdown::Both);
            }
            self.cond.notify_all();
        }
    }

    /// The peer opened a connection to us: if the writer is waiting out a reconnect backoff,
    /// it dials at once (a restarted follower is reached without waiting seconds).
    pub(crate) fn peer_connected(&self) {
        let mut st = self.state.lock();
        if st.stream.is_none() {
            st.retry_now = true;
            self.cond.notify_all();
        }
    }

    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        st.queue.clear();
        if let Some(s) = &st.stream {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.cond.notify_all();
    }

    fn stopped(&self, inner: &Inner, st: &LinkState) -> bool {
        st.closed || inner.is_shutdown()
    }
}

/// Small xorshift64* generator for backoff jitter.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Backoff for the `attempt`-th consecutive failure: `min * 2^attempt` capped at `max`, then
/// jittered uniformly into `[d/2, d]`.
fn backoff(min: Duration, max: Duration, attempt: u32, rng: &mut Rng) -> Duration {
    let base = min.saturating_mul(1u32 << attempt.min(20)).min(max);
    let nanos = base.as_nanos() as u64;
    let half = nanos / 2;
    Duration::from_nanos(half + rng.next() % (nanos - half + 1))
}

pub(crate) fn run_writer(inner: Arc<Inner>, link: Arc<PeerLink>) {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ inner.node_id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ link.id.rotate_left(32);
    let mut rng = Rng::new(seed);
    let mut failures = 0u32;
    let mut ever_connected = false;
    loop {
        let addr = {
            let mut st = link.state.lock();
            if link.stopped(&inner, &st) {
                return;
            }
            st.redial = false;
            st.retry_now = false;
            st.addr
        };
        match connect(&inner, &link, addr) {
            Ok(Some(stream)) => {
                inner.count(|c| &c.connects, 1);
                if ever_connected {
                    inner.count(|c| &c.reconnects, 1);
                }
                ever_connected = true;
                failures = 0;
                tracing::debug!(node = inner.node_id, peer = link.id, %addr, "connected");
                if let Err(e) = write_loop(&inner, &link, stream) {
                    tracing::debug!(node = inner.node_id, peer = link.id, "connection lost: {e}");
                }
                link.state.lock().stream = None;
            }
            Ok(None) => return,
            Err(e) => {
                inner.count(|c| &c.connect_failures, 1);
                match &e {
                    HandshakeError::Io(e) => {
                        tracing::debug!(node = inner.node_id, peer = link.id, %addr, "dial failed: {e}")
                    }
                    HandshakeError::Tls(_) => {
                        inner.count(|c| &c.tls_failures, 1);
                        tracing::warn!(node = inner.node_id, peer = link.id, %addr, "TLS handshake failed: {e}")
                    }
                    HandshakeError::AuthFailed(_) => {
                        inner.count(|c| &c.auth_failures, 1);
                        tracing::warn!(node = inner.node_id, peer = link.id, %addr, "handshake failed: {e}")
                    }
                    _ => {
                        tracing::warn!(node = inner.node_id, peer = link.id, %addr, "handshake failed: {e}")
                    }
                }
                link.state.lock().stream = None;
            }
        }
        // Back off before the next attempt (also after losing an established connection, so a
        // peer that accepts and immediately hangs up is not hammered).
        let delay = backoff(inner.backoff_min, inner.backoff_max, failures, &mut rng);
        failures = failures.saturating_add(1);
        let deadline = Instant::now() + delay;
        let mut st = link.state.lock();
        while !link.stopped(&inner, &st) && !st.redial && !st.retry_now {
            if link.cond.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
    }
}

/// Dials and handshakes. `Ok(None)` if the link was closed meanwhile.
fn connect(
    inner: &Inner,
    link: &PeerLink,
    addr: SocketAddr,
) -> Result<Option<Conn>, HandshakeError> {
    let stream = TcpStream::connect_timeout(&addr, inner.connect_timeout)?;
    stream.set_nodelay(true)?;
    {
        let mut st = link.state.lock();
        if link.stopped(inner, &st) {
            return Ok(None);
        }
        st.stream = Some(stream.try_clone()?);
    }
    let secret = inner.secret.as_deref().map(|v| v.as_slice());
    let tls_conn = {
        let mut timed = Deadline::new(&stream, inner.handshake_timeout);
        match &inner.tls {
            None => {
                handshake::dial(&mut timed, inner.cluster_id, inner.node_id, link.id, secret)?;
                None
            }
            Some(ctx) => {
                let mut conn = ctx.connect(link.id, &mut timed)?;
                let mut io = rustls::Stream::new(&mut conn, &mut timed);
                handshake::dial(&mut io, inner.cluster_id, inner.node_id, link.id, secret)
                    .map_err(tls::through_tls)?;
                Some(conn)
            }
        }
    };
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(Some(inner.write_timeout))?;
    Ok(Some(match tls_conn {
        None => Conn::Plain(stream),
        Some(c) => Conn::Client(Box::new(rustls::StreamOwned::new(c, stream))),
    }))
}

/// True if the acceptor closed its end. The acceptor never sends after the handshake, so any
/// readable state (EOF, error or unexpected data) means the connection is unusable.
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv into a valid 1-byte buffer on an open socket; MSG_PEEK leaves data queued.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        !matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        )
    } else {
        true
    }
}

/// Drains the queue into the connection until it fails or the link is closed/redirected.
/// Frames are batched in a `BufWriter`, flushed whenever the queue runs empty.
fn write_loop(inner: &Inner, link: &PeerLink, stream: Conn) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, stream);
    let mut check_peer = true;
    loop {
        let (class, bytes) = {
            let mut st = link.state.lock();
            loop {
                if link.stopped(inner, &st) || st.redial {
                    return Ok(());
                }
                if let Some(item) = st.queue.pop() {
                    break item;
                }
                if !w.buffer().is_empty() {
                    MutexGuard::unlocked(&mut st, || w.flush())?;
                    continue;
                }
                link.cond.wait(&mut st);
                check_peer = true;
            }
        };
        if check_peer {
            // After idling, make sure the acceptor has not gone away (e.g. restarted) before
            // writing into a dead connection.
            check_peer = false;
            if peer_closed(w.get_ref().tcp()) {
                // Nothing was written on this connection since idling: keep the message for
                // the next connection.
                link.push_front(class, bytes);
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "peer closed the connection",
                ));
            }
        }
        if inner.is_blocked(link.id) {
            inner.count(|c| &c.blocked_dropped, 1);
            continue;
        }
        frame::write_frame(&mut w, &bytes)?;
        inner.count(|c| &c.frames_sent, 1);
        inner.count(|c| &c.bytes_sent, bytes.len() as u64);
    }
}

impl PeerLink {
    fn push_front(&self, class: SendClass, bytes: Vec<u8>) {
        let mut st = self.state.lock();
        if !st.closed {
            st.queue.push_front(bytes, class);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut rng = Rng::new(42);
        let min = Duration::from_millis(10);
        let max = Duration::from_millis(100);
        for attempt in 0..30 {
            let base = min.saturating_mul(1 << attempt.min(20)).min(max);
            let d = backoff(min, max, attempt, &mut rng);
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d:?}");
        }
    }
}
