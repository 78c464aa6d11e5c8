//! Incoming side: the accept loop, the connection caps and one reader thread per inbound
//! connection.

use super::deadline::Deadline;
use super::frame::{self, FrameError, ReadError};
use super::handshake::{self, AcceptPolicy, HandshakeError, Reply, HELLO_LEN, REJECT_BUSY};
use super::tls::{self, Conn};
use super::Inner;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const READ_BUFFER: usize = 64 << 10;
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// Accepts connections until shutdown (the listener is non-blocking and polled so shutdown is
/// prompt without self-connecting tricks).
pub(crate) fn run_listener(inner: Arc<Inner>, listener: TcpListener) {
    while !inner.is_shutdown() {
        match listener.accept() {
            Ok((stream, addr)) => admit(&inner, stream, addr),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(node = inner.node_id, "accept failed: {e}");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// Applies the connection caps to a freshly accepted socket, then hands it to a reader thread.
fn admit(inner: &Arc<Inner>, stream: TcpStream, addr: SocketAddr) {
    inner.count(|c| &c.inbound_connections, 1);
    if inner.readers.load(Ordering::SeqCst) >= inner.max_inbound as u64 {
        inner.count(|c| &c.inbound_refused, 1);
        refuse_busy(&stream);
        tracing::warn!(
            node = inner.node_id,
            %addr,
            limit = inner.max_inbound,
            "refused inbound connection: too many connections"
        );
        return;
    }
    let Ok(registered) = stream.try_clone() else {
        return;
    };
    let conn_id = inner.next_conn_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut conns = inner.inbound.lock();
        let pending = conns.values().filter(|(peer, _)| peer.is_none()).count();
        if pending >= inner.max_pending {
            let oldest = conns
                .iter()
                .filter(|(_, (peer, _))| peer.is_none())
                .map(|(&id, _)| id)
                .min();
            if let Some((_, s)) = oldest.and_then(|id| conns.remove(&id)) {
                let _ = s.shutdown(Shutdown::Both);
                inner.count(|c| &c.handshakes_evicted, 1);
                tracing::debug!(node = inner.node_id, "closed the oldest pending handshake");
            }
        }
        conns.insert(conn_id, (None, registered));
    }
    inner.readers.fetch_add(1, Ordering::SeqCst);
    let reader = Registered {
        inner: inner.clone(),
        conn_id,
    };
    let name = format!("raft-conn-{}-{conn_id}", inner.node_id);
    if let Err(e) = inner.spawn(name, move || run_reader(reader, stream, addr)) {
        // The closure (and with it the registration) was dropped: slot and socket released.
        tracing::error!(node = inner.node_id, "cannot start reader thread: {e}");
    }
}

/// Tells a dialer we are at capacity (best effort, never blocks) and closes the socket.
fn refuse_busy(stream: &TcpStream) {
    if stream.set_nonblocking(true).is_ok() {
        // Drain what the dialer already sent so closing does not reset the connection before
        // it reads the reply.
        let mut buf = [0u8; HELLO_LEN];
        let _ = (&mut &*stream).read(&mut buf);
        let _ = (&mut &*stream).write(&Reply::refusal(REJECT_BUSY).encode());
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// A reader's slot: unregisters the connection and releases the slot however the reader exits.
struct Registered {
    inner: Arc<Inner>,
    conn_id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some((_, s)) = self.inner.inbound.lock().remove(&self.conn_id) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.inner.readers.fetch_sub(1, Ordering::SeqCst);
    }
}

fn run_reader(reg: Registered, stream: TcpStream, addr: SocketAddr) {
    if let Err(e) = serve(&reg, stream, addr) {
        tracing::debug!(node = reg.inner.node_id, %addr, "inbound connection ended: {e}");
    }
}

fn serve(reg: &Registered, stream: TcpStream, addr: SocketAddr) -> io::Result<()> {
    let inner = &*reg.inner;
    let conn_id = reg.conn_id;
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    // Checked after registering: either shutdown sees this socket or we see the flag.
    if inner.is_shutdown() {
        return Ok(());
    }

    let is_known = |id: u64| inner.is_known(id);
    let policy = AcceptPolicy {
        cluster_id: inner.cluster_id,
        node_id: inner.node_id,
        secret: inner.secret.as_deref().map(|v| v.as_slice()),
        is_known: &is_known,
        identity: None,
    };
    let handshaken = {
        let mut timed = Deadline::new(&stream, inner.handshake_timeout);
        match &inner.tls {
            None => handshake::accept(&mut timed, &policy).map(|from| (from, None)),
            Some(ctx) => ctx.accept(&mut timed).and_then(|mut conn| {
                let leaf = tls::peer_leaf(&conn);
                let names = |id: u64| tls::names_node(leaf.as_ref(), id);
                let policy = AcceptPolicy {
                    identity: Some(&names),
                    ..policy
                };
                let mut io = rustls::Stream::new(&mut conn, &mut timed);
                let from = handshake::accept(&mut io, &policy).map_err(tls::through_tls)?;
                Ok((from, Some(conn)))
            }),
        }
    };
    let (from, tls_conn) = match handshaken {
        Ok(done) => done,
        Err(e) => {
            refused(inner, addr, &e);
            return Ok(());
        }
    };
    stream.set_read_timeout(None)?;
    {
        let mut conns = inner.inbound.lock();
        match conns.get_mut(&conn_id) {
            Some(entry) => entry.0 = Some(from),
            // Evicted while finishing the handshake: the socket is already closed.
            None => return Ok(()),
        }
    }
    // A peer has one outgoing connection to us; an older one is stale (e.g. it restarted).
    inner.close_inbound_from(from, Some(conn_id));
    let link = inner.peers.read().get(&from).cloned();
    if let Some(link) = link {
        link.peer_connected();
    }
    tracing::debug!(node = inner.node_id, peer = from, %addr, "inbound connection authenticated");

    let conn = match tls_conn {
        None => Conn::Plain(stream),
        Some(c) => Conn::Server(Box::new(rustls::StreamOwned::new(c, stream))),
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER, conn);
    loop {
        let payload = match frame::read_frame(&mut reader, inner.max_frame_bytes) {
            Ok(payload) => payload,
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::Frame(e)) => {
                match e {
                    FrameError::BadLength => inner.count(|c| &c.bad_length, 1),
                    FrameError::Oversized { .. } => inner.count(|c| &c.oversized, 1),
                    FrameError::BadVersion(_) => inner.count(|c| &c.bad_version, 1),
                }
                tracing::warn!(node = inner.node_id, peer = from, %addr, "closing connection: {e}");
                return Ok(());
            }
        };
        if inner.is_shutdown() || !inner.is_known(from) {
            return Ok(());
        }
        if inner.is_blocked(from) {
            inner.count(|c| &c.blocked_dropped, 1);
            continue;
        }
        if let Some(sender_of) = inner.sender_of {
            let claimed = sender_of(&payload);
            if claimed != Some(from) {
                inner.count(|c| &c.sender_mismatch, 1);
                tracing::warn!(
                    node = inner.node_id,
                    peer = from,
                    ?claimed,
                    "dropped a message whose sender is not the authenticated peer"
                );
                continue;
            }
        }
        inner.count(|c| &c.frames_received, 1);
        inner.count(|c| &c.bytes_received, payload.len() as u64);
        (inner.on_message)(from, payload);
    }
}

fn refused(inner: &Inner, addr: SocketAddr, e: &HandshakeError) {
    let stats = &inner.stats;
    let counter = match e {
        HandshakeError::Io(err)
            if matches!(
                err.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            stats.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(node = inner.node_id, %addr, "inbound handshake timed out");
            return;
        }
        HandshakeError::Io(_) => {
            tracing::debug!(node = inner.node_id, %addr, "inbound handshake aborted: {e}");
            return;
        }
        HandshakeError::WrongCluster(_) => &stats.wrong_cluster,
        HandshakeError::UnknownNode(_) | HandshakeError::WrongTarget(_) => &stats.unknown_node,
        HandshakeError::BadVersion(_) => &stats.bad_version,
        HandshakeError::AuthFailed(_) => &stats.auth_failures,
        HandshakeError::Malformed(_) | HandshakeError::Rejected(_) => &stats.bad_handshake,
        HandshakeError::Tls(_) => &stats.tls_failures,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(node = inner.node_id, %addr, "refused inbound connection: {e}");
}
