//! Integration tests for the TCP transport, all over 127.0.0.1 with ephemeral ports.

use parking_lot::{Condvar, Mutex};
use raft::transport::frame;
use raft::transport::handshake::{self, Hello, Reply, HELLO_LEN, PROOF_LEN, REPLY_LEN};
use raft::transport::{SendClass, TcpTransport, TransportConfig, TransportError};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/largest_alloc.rs"]
mod largest_alloc;
use largest_alloc::assert_small_allocations;

// ---------------------------------------------------------------------------------------------
// Helpers.

const WAIT: Duration = Duration::from_secs(15);
const CLUSTER: u64 = 77;

#[derive(Default)]
struct Inbox {
    msgs: Mutex<Vec<(u64, Vec<u8>)>>,
    cond: Condvar,
}

impl Inbox {
    fn wait_len(&self, n: usize) -> Vec<(u64, Vec<u8>)> {
        let deadline = Instant::now() + WAIT;
        let mut msgs = self.msgs.lock();
        while msgs.len() < n {
            if self.cond.wait_until(&mut msgs, deadline).timed_out() {
                panic!("timed out waiting for {n} messages, have {}", msgs.len());
            }
        }
        msgs.clone()
    }

    fn snapshot(&self) -> Vec<(u64, Vec<u8>)> {
        self.msgs.lock().clone()
    }
}

fn config(id: u64, cluster: u64) -> TransportConfig {
    let mut cfg = TransportConfig::new(id, cluster, "127.0.0.1:0".parse().unwrap());
    cfg.reconnect_backoff_min = Duration::from_millis(5);
    cfg.reconnect_backoff_max = Duration::from_millis(100);
    cfg.handshake_timeout = Duration::from_secs(3);
    // These tests carry arbitrary bytes, not codec messages (see `forged_sender_*`).
    cfg.sender_of = None;
    cfg
}

fn start(cfg: TransportConfig) -> (TcpTransport, Arc<Inbox>) {
    let inbox = Arc::new(Inbox::default());
    let sink = inbox.clone();
    let t = TcpTransport::start(
        cfg,
        Arc::new(move |from, bytes| {
            sink.msgs.lock().push((from, bytes));
            sink.cond.notify_all();
        }),
    )
    .unwrap();
    (t, inbox)
}

/// Starts nodes `ids` (same cluster, optional per-node secret) and connects them all.
fn cluster(ids: &[u64], secrets: &[Option<&[u8]>]) -> Vec<(TcpTransport, Arc<Inbox>)> {
    let nodes: Vec<_> = ids
        .iter()
        .zip(secrets)
        .map(|(&id, secret)| {
            let mut cfg = config(id, CLUSTER);
            cfg.secret = secret.map(|s| s.to_vec());
            start(cfg)
        })
        .collect();
    for (a, _) in &nodes {
        for (b, _) in &nodes {
            if a.node_id() != b.node_id() {
                a.add_peer(b.node_id(), b.local_addr());
            }
        }
    }
    nodes
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A port that nothing listens on right now (bound then released).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn msg(tag: &str, seq: u32) -> Vec<u8> {
    format!("{tag}-{seq}").into_bytes()
}

/// Opens a raw connection to `t` and completes a no-secret handshake as node `from`.
fn raw_connect(t: &TcpTransport, cluster: u64, from: u64) -> (TcpStream, Reply) {
    let mut s = TcpStream::connect(t.local_addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let hello = Hello {
        version: handshake::PROTOCOL_VERSION,
        cluster_id: cluster,
        from,
        to: t.node_id(),
        nonce: [5; 32],
    };
    s.write_all(&hello.encode()).unwrap();
    let mut reply = [0u8; REPLY_LEN];
    s.read_exact(&mut reply).unwrap();
    (s, Reply::parse(&reply).unwrap())
}

/// Reads until EOF or error; true if the peer closed the connection.
fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messaging.

#[test]
fn two_nodes_exchange_both_ways() {
    let nodes = cluster(&[1, 2], &[None, None]);
    let (a, a_in) = &nodes[0];
    let (b, b_in) = &nodes[1];
    for i in 0..200 {
        a.send(2, msg("a", i), SendClass::Normal).unwrap();
        b.send(1, msg("b", i), SendClass::Normal).unwrap();
    }
    let got_b = b_in.wait_len(200);
    let got_a = a_in.wait_len(200);
    for i in 0..200 {
        assert_eq!(got_b[i as usize], (1, msg("a", i)), "in order");
        assert_eq!(got_a[i as usize], (2, msg("b", i)));
    }
    let s = a.stats();
    assert_eq!((s.frames_sent, s.frames_received), (200, 200));
    assert_eq!(
        a.send(9, vec![1], SendClass::Normal),
        Err(TransportError::UnknownPeer(9))
    );
    // Oversized sends are refused up front.
    let mut cfg = config(3, CLUSTER);
    cfg.max_frame_bytes = 10;
    cfg.peers.insert(1, a.local_addr());
    let (c, _) = start(cfg);
    assert!(matches!(
        c.send(1, vec![0; 11], SendClass::Normal),
        Err(TransportError::TooLarge { len: 11, max: 10 })
    ));
    assert_eq!(c.stats().oversized, 1);
    c.shutdown();
    c.shutdown(); // idempotent
    assert_eq!(
        c.send(1, vec![0], SendClass::Normal),
        Err(TransportError::Shutdown)
    );
}

#[test]
fn three_nodes_all_pairs() {
    let nodes = cluster(&[1, 2, 3], &[None, None, None]);
    for (t, _) in &nodes {
        for to in 1..=3 {
            if to != t.node_id() {
                for i in 0..50 {
                    t.send(
                        to,
                        msg(&format!("{}>{to}", t.node_id()), i),
                        SendClass::Normal,
                    )
                    .unwrap();
                }
            }
        }
    }
    for (t, inbox) in &nodes {
        let got = inbox.wait_len(100);
        for from in 1..=3u64 {
            if from == t.node_id() {
                continue;
            }
            let seq: Vec<_> = got
                .iter()
                .filter(|(f, _)| *f == from)
                .map(|(_, m)| m.clone())
                .collect();
            let want: Vec<_> = (0..50)
                .map(|i| msg(&format!("{from}>{}", t.node_id()), i))
                .collect();
            assert_eq!(seq, want);
        }
    }
}

#[test]
fn reconnects_after_peer_restart() {
    let (a, a_in) = start(config(1, CLUSTER));
    let (b, b_in) = start(config(2, CLUSTER));
    let b_addr = b.local_addr();
    a.add_peer(2, b_addr);
    b.add_peer(1, a.local_addr());
    a.send(2, msg("before", 0), SendClass::Normal).unwrap();
    b.send(1, msg("before", 0), SendClass::Normal).unwrap();
    b_in.wait_len(1);
    a_in.wait_len(1);
    drop(b); // shuts down and joins

    let mut cfg = config(2, CLUSTER);
    cfg.listen = b_addr;
    cfg.peers.insert(1, a.local_addr());
    let (b2, b2_in) = start(cfg);
    a.send(2, msg("after", 1), SendClass::Normal).unwrap();
    b2.send(1, msg("after", 1), SendClass::Normal).unwrap();
    assert_eq!(b2_in.wait_len(1)[0], (1, msg("after", 1)));
    assert_eq!(a_in.wait_len(2)[1], (2, msg("after", 1)));
    assert!(a.stats().reconnects >= 1, "{:?}", a.stats());
}

/// A peer that was down while we backed off is dialled as soon as it connects to us (it
/// restarted), not when the backoff runs out: a restarted follower is caught up at once.
/// Before, the queued message waited out the whole backoff (here at least 60 s).
#[test]
fn restarted_peer_is_dialled_when_it_connects_not_after_backoff() {
    let mut cfg = config(1, CLUSTER);
    cfg.reconnect_backoff_min = Duration::from_secs(120);
    cfg.reconnect_backoff_max = Duration::from_secs(120);
    let (a, _a_in) = start(cfg);
    let b_addr = free_addr();
    a.add_peer(2, b_addr);
    wait_until("a failed dial", || a.stats().connect_failures >= 1);
    a.send(2, msg("queued", 0), SendClass::Normal).unwrap();

    let mut cfg = config(2, CLUSTER);
    cfg.listen = b_addr;
    cfg.peers.insert(1, a.local_addr());
    let (_b, b_in) = start(cfg);
    assert_eq!(b_in.wait_len(1)[0], (1, msg("queued", 0)));
}

// ---------------------------------------------------------------------------------------------
// Handshake refusals.

#[test]
fn wrong_cluster_is_refused_and_counted() {
    let (a, _) = start(config(1, CLUSTER));
    let (b, b_in) = start(config(2, CLUSTER + 1));
    a.add_peer(2, b.local_addr());
    b.add_peer(1, a.local_addr());
    a.send(2, msg("x", 0), SendClass::Normal).unwrap();
    wait_until("wrong_cluster", || b.stats().wrong_cluster >= 1);
    let (mut raw, reply) = raw_connect(&b, CLUSTER, 1);
    assert_eq!(reply.status, handshake::REJECT_CLUSTER);
    assert!(closed_by_peer(&mut raw));
    assert!(b_in.snapshot().is_empty());
    assert_eq!(b.stats().frames_received, 0);
    assert!(a.stats().connect_failures >= 1);
}

#[test]
fn unknown_node_is_refused_and_counted() {
    let (b, b_in) = start(config(2, CLUSTER));
    let (stranger, _) = start(config(9, CLUSTER));
    stranger.add_peer(2, b.local_addr());
    stranger.send(2, msg("x", 0), SendClass::Normal).unwrap();
    wait_until("unknown_node", || b.stats().unknown_node >= 1);
    let (mut raw, reply) = raw_connect(&b, CLUSTER, 9);
    assert_eq!(reply.status, handshake::REJECT_UNKNOWN_NODE);
    assert!(closed_by_peer(&mut raw));
    assert!(b_in.snapshot().is_empty());
}

#[test]
fn matching_secrets_work() {
    let nodes = cluster(&[1, 2], &[Some(b"sesame"), Some(b"sesame")]);
    nodes[0].0.send(2, msg("s", 0), SendClass::Normal).unwrap();
    nodes[1].0.send(1, msg("s", 1), SendClass::Normal).unwrap();
    assert_eq!(nodes[1].1.wait_len(1)[0], (1, msg("s", 0)));
    assert_eq!(nodes[0].1.wait_len(1)[0], (2, msg("s", 1)));
    assert_eq!(nodes[0].0.stats().auth_failures, 0);
}

#[test]
fn mismatched_or_missing_secret_gets_nowhere() {
    let nodes = cluster(&[1, 2, 3], &[Some(b"right"), Some(b"wrong"), None]);
    for (t, _) in &nodes {
        for to in 1..=3 {
            if to != t.node_id() {
                t.send(to, msg("x", 0), SendClass::Normal).unwrap();
            }
        }
    }
    for (t, _) in &nodes {
        wait_until("auth failures", || t.stats().auth_failures >= 2);
    }
    std::thread::sleep(Duration::from_millis(100));
    for (t, inbox) in &nodes {
        assert!(
            inbox.snapshot().is_empty(),
            "node {} got a message",
            t.node_id()
        );
        assert_eq!(t.stats().frames_received, 0);
        assert_eq!(t.stats().connects, 0);
    }
}

/// Forwards one connection to `target`, recording what the dialer sent.
fn recording_proxy(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let rec = recorded.clone();
    std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(target).unwrap();
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = io::copy(&mut s2, &mut c2);
            let _ = c2.shutdown(std::net::Shutdown::Both);
        });
        let mut buf = [0u8; 4096];
        while let Ok(n) = client.read(&mut buf) {
            if n == 0 || server.write_all(&buf[..n]).is_err() {
                break;
            }
            rec.lock().extend_from_slice(&buf[..n]);
        }
        let _ = server.shutdown(std::net::Shutdown::Both);
    });
    (addr, recorded)
}

#[test]
fn replayed_handshake_is_refused() {
    let secret: &[u8] = b"shared secret";
    let mut cfg_b = config(2, CLUSTER);
    cfg_b.secret = Some(secret.to_vec());
    let (b, b_in) = start(cfg_b);
    let (proxy, recorded) = recording_proxy(b.local_addr());
    let mut cfg_a = config(1, CLUSTER);
    cfg_a.secret = Some(secret.to_vec());
    cfg_a.peers.insert(2, proxy);
    let (a, _) = start(cfg_a);
    b.add_peer(1, a.local_addr());

    a.send(2, msg("real", 0), SendClass::Normal).unwrap();
    assert_eq!(b_in.wait_len(1)[0], (1, msg("real", 0)));
    let handshake_bytes = recorded.lock()[..HELLO_LEN + PROOF_LEN].to_vec();

    // Replay the dialer's recorded handshake (hello + proof), then a frame.
    let mut s = TcpStream::connect(b.local_addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&handshake_bytes).unwrap();
    let mut reply = [0u8; REPLY_LEN];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], handshake::CHALLENGE);
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], handshake::REJECT_AUTH);
    let mut forged = Vec::new();
    frame::encode_frame(b"forged", &mut forged);
    let _ = s.write_all(&forged);
    assert!(closed_by_peer(&mut s));
    wait_until("auth failure", || b.stats().auth_failures == 1);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(b_in.snapshot(), vec![(1, msg("real", 0))]);
    drop(a);
}

// ---------------------------------------------------------------------------------------------
// Connection caps, the absolute handshake deadline and the authenticated sender.

/// Live inbound reader threads of node `id` (thread names are `raft-conn-<id>-<conn>`).
fn reader_threads(id: u64) -> usize {
    let prefix = format!("raft-conn-{id}-");
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with(&prefix))
        .count()
}

/// Many connections dribbling a hello one byte at a time: the listener's reader threads stay
/// within `max_inbound_connections` and a real peer still connects and delivers.
#[test]
fn slow_handshake_attack_keeps_threads_bounded_and_peers_connect() {
    const ATTACKERS: usize = 60;
    let mut cfg = config(41, CLUSTER);
    cfg.max_inbound_connections = 12;
    cfg.max_pending_handshakes = 4;
    cfg.handshake_timeout = Duration::from_secs(2);
    let (a, a_in) = start(cfg);
    let addr = a.local_addr();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let max_threads = Arc::new(AtomicUsize::new(0));
    let attacker = {
        let (stop, max_threads) = (stop.clone(), max_threads.clone());
        std::thread::spawn(move || {
            let hello = Hello {
                version: handshake::PROTOCOL_VERSION,
                cluster_id: CLUSTER,
                from: 42,
                to: 41,
                nonce: [1; 32],
            }
            .encode();
            let mut conns: Vec<(Option<TcpStream>, usize)> =
                (0..ATTACKERS).map(|_| (None, 0)).collect();
            let mut opened = 0usize;
            while !stop.load(Ordering::SeqCst) {
                for (conn, sent) in conns.iter_mut() {
                    if conn.is_none() {
                        *conn = TcpStream::connect(addr).ok();
                        *sent = 0;
                        opened += 1;
                    }
                    let alive = conn.as_mut().is_some_and(|s| {
                        *sent < HELLO_LEN - 1 && s.write_all(&hello[*sent..*sent + 1]).is_ok()
                    });
                    if alive {
                        *sent += 1;
                    } else {
                        *conn = None;
                    }
                }
                max_threads.fetch_max(reader_threads(41), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
            }
            opened
        })
    };
    // The attacker has reconnected its evicted connections at least once: the attack is on.
    wait_until("the attack to be sustained", || {
        a.stats().inbound_connections >= 2 * ATTACKERS as u64
    });
    // A legitimate peer joins during the attack and both directions work.
    let mut cfg_b = config(42, CLUSTER);
    cfg_b.peers.insert(41, addr);
    let (b, b_in) = start(cfg_b);
    a.add_peer(42, b.local_addr());
    b.send(41, msg("legit", 0), SendClass::Normal).unwrap();
    assert_eq!(a_in.wait_len(1)[0], (42, msg("legit", 0)));
    a.send(42, msg("back", 0), SendClass::Normal).unwrap();
    assert_eq!(b_in.wait_len(1)[0], (41, msg("back", 0)));
    stop.store(true, Ordering::SeqCst);
    let opened = attacker.join().unwrap();
    let peak = max_threads.load(Ordering::SeqCst);
    assert!(
        opened > ATTACKERS,
        "the attacker kept reconnecting ({opened})"
    );
    assert!(
        peak <= 12,
        "{peak} reader threads for {opened} attacking connections"
    );
    assert_eq!(a.stats().frames_received, 1);
}

/// A hello dribbled one byte every 100 ms is cut off at the absolute handshake deadline (1 s),
/// not kept alive by each byte restarting a per-read timeout.
#[test]
fn handshake_deadline_is_absolute() {
    let mut cfg = config(2, CLUSTER);
    cfg.peers.insert(7, free_addr());
    cfg.handshake_timeout = Duration::from_secs(1);
    let (t, _) = start(cfg);
    let hello = Hello {
        version: handshake::PROTOCOL_VERSION,
        cluster_id: CLUSTER,
        from: 7,
        to: 2,
        nonce: [1; 32],
    }
    .encode();
    let mut s = TcpStream::connect(t.local_addr()).unwrap();
    s.set_nonblocking(true).unwrap();
    let started = Instant::now();
    let mut closed_after = None;
    for byte in &hello[..HELLO_LEN - 1] {
        let mut buf = [0u8; 64];
        let closed = match s.read(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        if closed || s.write_all(std::slice::from_ref(byte)).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let closed_after = closed_after.expect("the slow handshake was never cut off");
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
    assert_eq!(t.stats().handshake_timeouts, 1);
}

/// At `max_inbound_connections` a new connection gets `REJECT_BUSY` and is closed, without a
/// thread; once a slot frees, connections are served again.
#[test]
fn busy_listener_refuses_clearly() {
    let mut cfg = config(2, CLUSTER);
    cfg.peers.insert(7, free_addr());
    cfg.max_inbound_connections = 2;
    let (t, _) = start(cfg);
    let silent: Vec<_> = (0..2)
        .map(|_| TcpStream::connect(t.local_addr()).unwrap())
        .collect();
    wait_until("two readers", || {
        reader_threads(2) >= 2 || t.stats().inbound_connections >= 2
    });
    let mut third = TcpStream::connect(t.local_addr()).unwrap();
    wait_until("the refusal", || t.stats().inbound_refused == 1);
    third.set_read_timeout(Some(WAIT)).unwrap();
    let mut reply = [0u8; REPLY_LEN];
    third.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], handshake::REJECT_BUSY);
    assert!(closed_by_peer(&mut third));
    drop(silent);
    wait_until("slots freed", || {
        let (_, reply) = raw_connect(&t, CLUSTER, 7);
        reply.status == handshake::ACCEPT
    });
}

/// A frame whose codec `from` is not the authenticated peer is dropped and counted; the real
/// sender's frames still arrive.
#[test]
fn forged_sender_is_dropped_and_counted() {
    use raft::core::{Message, MessageBody};
    let encode = |from: u64| {
        raft::codec::encode(&Message {
            from_incarnation: 0,
            to_incarnation: 0,
            from,
            to: 51,
            term: 1,
            body: MessageBody::HeartbeatResponse { read_ctx: 0 },
        })
    };
    let mut cfg_a = config(51, CLUSTER);
    cfg_a.sender_of = Some(raft::codec::sender);
    let (a, a_in) = start(cfg_a);
    let (b, _) = start(config(52, CLUSTER));
    a.add_peer(52, b.local_addr());
    a.add_peer(53, free_addr());
    b.add_peer(51, a.local_addr());
    for forged in [encode(53), encode(51), b"not a message".to_vec()] {
        b.send(51, forged, SendClass::Normal).unwrap();
    }
    b.send(51, encode(52), SendClass::Normal).unwrap();
    // Frames from one connection arrive in order: when the genuine one is in, the rest are done.
    assert_eq!(a_in.wait_len(1), vec![(52, encode(52))]);
    assert_eq!(a.stats().sender_mismatch, 3);
    assert_eq!(a.stats().frames_received, 1);
}

// ---------------------------------------------------------------------------------------------
// Frame-level violations over a real socket.

/// A transport that knows a fake peer 7 (whose address is dead), for raw-socket tests.
fn target() -> (TcpTransport, Arc<Inbox>) {
    let mut cfg = config(2, CLUSTER);
    cfg.peers.insert(7, free_addr());
    start(cfg)
}

#[test]
fn oversized_length_header_closes_without_allocating() {
    let (b, b_in) = target();
    let (mut s, reply) = raw_connect(&b, CLUSTER, 7);
    assert_eq!(reply.status, handshake::ACCEPT);
    let mut good = Vec::new();
    frame::encode_frame(b"fine", &mut good);
    s.write_all(&good).unwrap();
    // Claims 4 GiB (u32::MAX), far above the 64 MiB default limit.
    s.write_all(&[0xff, 0xff, 0xff, 0xff, frame::FRAME_VERSION])
        .unwrap();
    let _ = s.write_all(&[0u8; 1024]);
    assert!(closed_by_peer(&mut s));
    wait_until("oversized", || b.stats().oversized == 1);
    assert_eq!(b_in.wait_len(1), vec![(7, b"fine".to_vec())]);
    assert_small_allocations();
}

#[test]
fn bad_version_and_bad_length_close_the_connection() {
    let (b, b_in) = target();
    let (mut s, _) = raw_connect(&b, CLUSTER, 7);
    let mut good = Vec::new();
    frame::encode_frame(b"ok", &mut good);
    s.write_all(&good).unwrap();
    s.write_all(&[0, 0, 0, 3, 9, b'h', b'i']).unwrap(); // version 9
    s.write_all(&good).unwrap(); // never read
    assert!(closed_by_peer(&mut s));
    wait_until("bad_version", || b.stats().bad_version == 1);

    let (mut s, _) = raw_connect(&b, CLUSTER, 7);
    s.write_all(&[0, 0, 0, 0, 1]).unwrap(); // length 0
    assert!(closed_by_peer(&mut s));
    wait_until("bad_length", || b.stats().bad_length == 1);
    assert_eq!(b_in.snapshot(), vec![(7, b"ok".to_vec())]);
}

// ---------------------------------------------------------------------------------------------
// Partitions and queueing.

#[test]
fn set_blocked_drops_traffic_and_unblocking_restores_it() {
    let nodes = cluster(&[1, 2], &[None, None]);
    let (a, a_in) = &nodes[0];
    let (b, b_in) = &nodes[1];
    // Warm up both directions.
    a.send(2, msg("warm", 0), SendClass::Normal).unwrap();
    b.send(1, msg("warm", 0), SendClass::Normal).unwrap();
    b_in.wait_len(1);
    a_in.wait_len(1);

    a.set_blocked(2, true);
    a.send(2, msg("blocked", 1), SendClass::Normal).unwrap();
    b.send(1, msg("blocked", 1), SendClass::Normal).unwrap();
    // One dropped at send, one dropped on receipt.
    wait_until("blocked drops", || a.stats().blocked_dropped == 2);
    a.set_blocked(2, false);
    a.send(2, msg("open", 2), SendClass::Normal).unwrap();
    b.send(1, msg("open", 2), SendClass::Normal).unwrap();
    assert_eq!(
        b_in.wait_len(2),
        vec![(1, msg("warm", 0)), (1, msg("open", 2))]
    );
    assert_eq!(
        a_in.wait_len(2),
        vec![(2, msg("warm", 0)), (2, msg("open", 2))]
    );
}

#[test]
fn heartbeats_are_dropped_first_under_pressure() {
    let b_addr = free_addr();
    let mut cfg = config(1, CLUSTER);
    cfg.max_queue_bytes = 10_000;
    cfg.peers.insert(2, b_addr); // nothing listening yet: everything queues
    let (a, _) = start(cfg);
    let hb = |i: u32| {
        let mut m = msg("hb", i);
        m.resize(100, b'.');
        m
    };
    for i in 0..5 {
        let mut m = msg("normal", i);
        m.resize(1000, b'.');
        a.send(2, m, SendClass::Normal).unwrap();
    }
    for i in 0..100 {
        let _ = a.send(2, hb(i), SendClass::Heartbeat);
    }
    let s = a.stats();
    assert_eq!(s.heartbeats_evicted, 50);
    assert_eq!(s.queue_full, 0);
    assert_eq!(a.queued_bytes(2), Some(10_000));
    // A normal message that cannot fit even without heartbeats is refused and evicts nothing.
    assert_eq!(
        a.send(2, vec![b'n'; 6_000], SendClass::Normal),
        Err(TransportError::QueueFull)
    );
    assert_eq!(a.stats().queue_full, 1);
    assert_eq!(a.stats().heartbeats_evicted, 50);
    // One that fits by evicting heartbeats evicts only as many as needed (oldest first).
    a.send(2, vec![b'n'; 1_000], SendClass::Normal).unwrap();
    assert_eq!(a.stats().heartbeats_evicted, 60);

    // Refill with heartbeats, then bring the peer up: normal messages arrive in full, and the
    // surviving heartbeats are the newest ones.
    for i in 100..200 {
        let _ = a.send(2, hb(i), SendClass::Heartbeat);
    }
    let mut cfg = config(2, CLUSTER);
    cfg.listen = b_addr;
    cfg.peers.insert(1, a.local_addr());
    let (_b, b_in) = start(cfg);
    let got = b_in.wait_len(46);
    let normals = got.iter().filter(|(_, m)| m.starts_with(b"normal")).count();
    assert_eq!(got.len(), 46);
    assert!(got.iter().any(|(_, m)| m[..] == [b'n'; 1_000][..]));
    let hbs: Vec<Vec<u8>> = got
        .iter()
        .filter(|(_, m)| m.starts_with(b"hb"))
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(normals, 5);
    assert_eq!(hbs, (160..200).map(hb).collect::<Vec<_>>());
}

#[test]
fn membership_changes() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TcpTransport>();

    let (a, a_in) = start(config(1, CLUSTER));
    let (b, b_in) = start(config(2, CLUSTER));
    // B knows A, A does not know B yet: B's connection is refused.
    b.add_peer(1, a.local_addr());
    b.send(1, msg("early", 0), SendClass::Normal).unwrap();
    wait_until("unknown_node", || a.stats().unknown_node >= 1);
    assert!(a_in.snapshot().is_empty());
    // Adding B lets B's retry through; the queued message is delivered.
    a.add_peer(2, b.local_addr());
    assert_eq!(a_in.wait_len(1)[0], (2, msg("early", 0)));
    a.send(2, msg("hi", 1), SendClass::Normal).unwrap();
    b_in.wait_len(1);
    assert_eq!(a.peers(), vec![2]);

    // B moves to a new address: re-adding with the new address redirects A's writer.
    drop(b);
    let mut cfg = config(2, CLUSTER);
    cfg.peers.insert(1, a.local_addr());
    let (b2, b2_in) = start(cfg);
    a.add_peer(2, b2.local_addr());
    a.send(2, msg("moved", 2), SendClass::Normal).unwrap();
    assert_eq!(b2_in.wait_len(1)[0], (1, msg("moved", 2)));

    // Removing B: sends fail, B's connection is closed and its retries are refused.
    a.remove_peer(2);
    assert_eq!(
        a.send(2, vec![1], SendClass::Normal),
        Err(TransportError::UnknownPeer(2))
    );
    let refused_before = a.stats().unknown_node;
    b2.send(1, msg("late", 3), SendClass::Normal).unwrap();
    wait_until("refused after removal", || {
        a.stats().unknown_node > refused_before
    });
    assert_eq!(a_in.snapshot().len(), 1);
}
