//! Incoming side: the accept loop and one reader thread per inbound connection.

use super::frame::{self, FrameError, ReadError};
use super::handshake::{self, AcceptPolicy, HandshakeError};
use super::Inner;
use std::io::{self, BufReader};
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
            Ok((stream, addr)) => {
                inner.count(|c| &c.inbound_connections, 1);
                let conn_id = inner.next_conn_id.fetch_add(1, Ordering::Relaxed);
                let thread_inner = inner.clone();
                let name = format!("raft-conn-{}-{conn_id}", inner.node_id);
                if let Err(e) = inner.spawn(name, move || {
                    run_reader(&thread_inner, stream, addr, conn_id)
                }) {
                    tracing::error!(node = inner.node_id, "cannot start reader thread: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(node = inner.node_id, "accept failed: {e}");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// Removes the connection from the registry however the reader exits.
struct Registered<'a> {
    inner: &'a Inner,
    conn_id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Some((_, s)) = self.inner.inbound.lock().remove(&self.conn_id) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn run_reader(inner: &Inner, stream: TcpStream, addr: SocketAddr, conn_id: u64) {
    if let Err(e) = serve(inner, stream, addr, conn_id) {
        tracing::debug!(node = inner.node_id, %addr, "inbound connection ended: {e}");
    }
}

fn serve(inner: &Inner, mut stream: TcpStream, addr: SocketAddr, conn_id: u64) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(inner.handshake_timeout))?;
    stream.set_write_timeout(Some(inner.handshake_timeout))?;
    inner
        .inbound
        .lock()
        .insert(conn_id, (None, stream.try_clone()?));
    let _registered = Registered { inner, conn_id };
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
    };
    let from = match handshake::accept(&mut stream, &policy) {
        Ok(from) => from,
        Err(e) => {
            refused(inner, addr, &e);
            return Ok(());
        }
    };
    stream.set_read_timeout(None)?;
    {
        let mut conns = inner.inbound.lock();
        if let Some(entry) = conns.get_mut(&conn_id) {
            entry.0 = Some(from);
        }
    }
    // A peer has one outgoing connection to us; an older one is stale (e.g. it restarted).
    inner.close_inbound_from(from, Some(conn_id));
    tracing::debug!(node = inner.node_id, peer = from, %addr, "inbound connection authenticated");

    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
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
        inner.count(|c| &c.frames_received, 1);
        inner.count(|c| &c.bytes_received, payload.len() as u64);
        (inner.on_message)(from, payload);
    }
}

fn refused(inner: &Inner, addr: SocketAddr, e: &HandshakeError) {
    let stats = &inner.stats;
    let counter = match e {
        HandshakeError::Io(_) => {
            tracing::debug!(node = inner.node_id, %addr, "inbound handshake aborted: {e}");
            return;
        }
        HandshakeError::WrongCluster(_) => &stats.wrong_cluster,
        HandshakeError::UnknownNode(_) | HandshakeError::WrongTarget(_) => &stats.unknown_node,
        HandshakeError::BadVersion(_) => &stats.bad_version,
        HandshakeError::AuthFailed(_) => &stats.auth_failures,
        HandshakeError::Malformed(_) | HandshakeError::Rejected(_) => &stats.bad_handshake,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(node = inner.node_id, %addr, "refused inbound connection: {e}");
}
