//! Seeded fuzz targets, one per decoder that reads untrusted bytes:
//!
//! | target | decoder |
//! |---|---|
//! | `fuzz_frame_decoder` | transport frames (`frame::decode_frame`, `frame::read_frame`) |
//! | `fuzz_handshake_parsing` | handshake messages and both handshake state machines |
//! | `fuzz_message_codec` | the wire codec (`codec::decode`, `codec::sender`) |
//! | `fuzz_snapshot_chunks` | InstallSnapshot chunks: codec, then chunk assembly and install |
//! | `fuzz_client_lines` | `raft-kv`'s client line protocol (line reader and request parser) |
//!
//! Every run is deterministic: `RAFT_FUZZ_SEED` (default 0) is mixed into each target's own
//! seed, and `RAFT_FUZZ_ITERS` overrides each target's iteration count (the defaults keep
//! `cargo test` short). `make fuzz` runs every target with 20x the default iterations. A
//! failure prints the seed to re-run it with.

#[path = "../src/bin/raft_kv/client_port.rs"]
#[allow(dead_code)]
mod client_port;

use raft::codec;
use raft::core::{ConfState, Entry, EntryKind, MemStorage, Message, MessageBody, SnapshotMeta};
use raft::transport::frame::{self, Decoded, ReadError};
use raft::transport::handshake::{self, Hello, Reply, REPLY_LEN};
use std::io::{self, Read, Write};

#[path = "support/largest_alloc.rs"]
mod largest_alloc;
use largest_alloc::assert_small_allocations;

const CLUSTER: u64 = 77;

/// Iterations for a target (`RAFT_FUZZ_ITERS` overrides the default).
fn iters(default: u64) -> u64 {
    std::env::var("RAFT_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The target's generator, its seed mixed with `RAFT_FUZZ_SEED`.
fn rng(target_seed: u64) -> XorShift {
    let user: u64 = std::env::var("RAFT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    eprintln!("fuzz seed: RAFT_FUZZ_SEED={user} (target seed {target_seed:#x})");
    XorShift((target_seed ^ user.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
}

// ---------------------------------------------------------------------------------------------
// Transport frames and handshake.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Random input biased towards interesting shapes: pure noise, valid frames with mutations,
/// and headers with extreme lengths.
fn fuzz_input(rng: &mut XorShift) -> Vec<u8> {
    match rng.below(4) {
        0 => {
            let len = rng.below(64) as usize;
            rng.bytes(len)
        }
        1 | 2 => {
            let mut buf = Vec::new();
            for _ in 0..rng.below(4) {
                let len = rng.below(40) as usize;
                frame::encode_frame(&rng.bytes(len), &mut buf);
            }
            for _ in 0..rng.below(4) {
                if !buf.is_empty() {
                    let i = rng.below(buf.len() as u64) as usize;
                    buf[i] = rng.next() as u8;
                }
            }
            let cut = rng.below(buf.len() as u64 + 1) as usize;
            buf.truncate(cut);
            buf
        }
        _ => {
            let mut buf = (rng.next() as u32).to_be_bytes().to_vec();
            buf.push(if rng.below(2) == 0 {
                frame::FRAME_VERSION
            } else {
                rng.next() as u8
            });
            let len = rng.below(16) as usize;
            buf.extend(rng.bytes(len));
            buf
        }
    }
}

#[test]
fn fuzz_frame_decoder() {
    const MAX: usize = 1 << 10;
    let mut rng = rng(0x5eed_1234_abcd_0001);
    let (mut frames, mut errors) = (0u64, 0u64);
    let n = iters(150_000);
    for _ in 0..n {
        let input = fuzz_input(&mut rng);
        // Pure decoder: walk all frames in the buffer.
        let mut rest = &input[..];
        loop {
            match frame::decode_frame(rest, MAX) {
                Ok(Decoded::Frame { payload, consumed }) => {
                    assert!(payload.len() <= MAX && consumed == payload.len() + 5);
                    assert!(consumed <= rest.len());
                    rest = &rest[consumed..];
                    frames += 1;
                }
                Ok(Decoded::Incomplete { need }) => {
                    assert!(need > rest.len());
                    break;
                }
                Err(_) => {
                    errors += 1;
                    break;
                }
            }
        }
        // Streaming decoder on the same bytes must agree frame for frame.
        let mut cur = io::Cursor::new(&input[..]);
        let mut rest = &input[..];
        loop {
            let streamed = frame::read_frame(&mut cur, MAX);
            match (frame::decode_frame(rest, MAX), streamed) {
                (Ok(Decoded::Frame { payload, consumed }), Ok(p)) => {
                    assert_eq!(payload, &p[..]);
                    rest = &rest[consumed..];
                }
                (Ok(Decoded::Incomplete { .. }), Err(ReadError::Io(_))) => break,
                // The pure decoder judges the length field as soon as its 4 bytes are present;
                // the stream reader reads the whole 5-byte header first.
                (Err(_), Err(ReadError::Io(_))) if rest.len() < frame::HEADER_LEN => break,
                (Err(a), Err(ReadError::Frame(b))) => {
                    assert_eq!(a, b);
                    break;
                }
                (a, b) => panic!("decoders disagree: {a:?} vs {b:?}"),
            }
        }
    }
    assert!(
        frames > n / 15 && errors > n / 15,
        "frames {frames} errors {errors}"
    );
    assert_small_allocations();
}

/// In-memory duplex stream: reads from a fixed input, collects writes.
struct Duplex {
    input: io::Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn fuzz_handshake_parsing() {
    let mut rng = rng(0xfeed_beef_0000_0042);
    let valid = Hello {
        version: handshake::PROTOCOL_VERSION,
        cluster_id: CLUSTER,
        from: 7,
        to: 2,
        nonce: [1; 32],
    }
    .encode();
    let known = |id: u64| id == 7;
    let mut accepted = 0;
    let n = iters(120_000);
    for i in 0..n {
        let mut input = match rng.below(3) {
            0 => {
                let len = rng.below(140) as usize;
                rng.bytes(len)
            }
            _ => {
                let mut v = valid.to_vec();
                for _ in 0..rng.below(3) {
                    let j = rng.below(v.len() as u64) as usize;
                    v[j] = rng.next() as u8;
                }
                let extra = rng.below(70) as usize;
                v.extend(rng.bytes(extra));
                v
            }
        };
        let _ = Hello::parse(&input);
        let _ = Reply::parse(&input[..input.len().min(REPLY_LEN)]);
        let _ = Reply::parse(&input);
        // Whole state machines over random peer bytes: no panic, bounded output.
        let with_secret = i % 8 == 0; // the secret path draws nonces; keep it cheaper
        let policy = handshake::AcceptPolicy {
            cluster_id: CLUSTER,
            node_id: 2,
            secret: if with_secret { Some(b"k") } else { None },
            is_known: &known,
            identity: None,
        };
        let mut d = Duplex {
            input: io::Cursor::new(input.clone()),
            output: Vec::new(),
        };
        if handshake::accept(&mut d, &policy).is_ok() {
            accepted += 1;
        }
        assert!(d.output.len() <= 2 * REPLY_LEN);
        if i % 16 == 0 {
            input.truncate(2 * REPLY_LEN);
            let mut d = Duplex {
                input: io::Cursor::new(input),
                output: Vec::new(),
            };
            let secret: Option<&[u8]> = if with_secret { Some(b"k") } else { None };
            let _ = handshake::dial(&mut d, CLUSTER, 2, 7, secret);
        }
    }
    assert!(
        accepted > n / 120,
        "the valid path was exercised ({accepted})"
    );
    assert_small_allocations();
}

// ---------------------------------------------------------------------------------------------
// Message codec and snapshot chunks.

/// One valid message of every body kind.
fn sample_messages(rng: &mut XorShift) -> Vec<Message> {
    let mut m = |body| Message {
        from_incarnation: 0,
        to_incarnation: 0,
        from: rng.below(300),
        to: rng.below(300),
        term: rng.next(),
        body,
    };
    let entry = |i: u64, kind| Entry {
        term: 3,
        index: i,
        kind,
        data: vec![i as u8; i as usize].into(),
    };
    vec![
        m(MessageBody::Append {
            prev_index: 4,
            prev_term: 2,
            entries: vec![
                entry(5, EntryKind::Normal),
                entry(6, EntryKind::ConfChange),
                entry(7, EntryKind::Noop),
            ],
            commit: 4,
        }),
        m(MessageBody::AppendResponse {
            index: 9,
            reject: true,
            hint_index: 3,
            hint_term: 1,
        }),
        m(MessageBody::Heartbeat {
            commit: 8,
            read_ctx: 2,
        }),
        m(MessageBody::HeartbeatResponse { read_ctx: 2 }),
        m(MessageBody::Vote {
            pre_vote: true,
            last_index: 10,
            last_term: 4,
            transfer: false,
        }),
        m(MessageBody::VoteResponse {
            pre_vote: false,
            reject: true,
        }),
        m(MessageBody::SnapshotResponse {
            index: 10,
            next_offset: 4096,
            done: false,
            reject: false,
        }),
        m(MessageBody::TimeoutNow),
        m(MessageBody::ReadIndex { ctx: 5 }),
        m(MessageBody::ReadIndexResponse {
            ctx: 5,
            index: 9,
            ok: true,
        }),
    ]
}

/// Flips, overwrites, inserts, deletes or truncates a few bytes.
fn mutate(rng: &mut XorShift, mut v: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.below(4) {
        let len = v.len() as u64;
        match rng.below(5) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len) as usize;
                // Varint-ish extremes: 0xff continues a varint forever, 0x80 overlong.
                v[i] = [0xff, 0x80, 0x00, 0x01, rng.next() as u8][rng.below(5) as usize];
            }
            2 => {
                let i = rng.below(len + 1) as usize;
                v.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                v.remove(rng.below(len) as usize);
            }
            _ => v.truncate(rng.below(len + 1) as usize),
        }
    }
    v
}

#[test]
fn fuzz_message_codec() {
    const MAX: usize = 1 << 16;
    let mut rng = rng(0xc0de_c0de_0000_0003);
    let (mut ok, mut err) = (0u64, 0u64);
    let n = iters(150_000);
    for i in 0..n {
        let input = if i % 5 == 0 {
            let len = rng.below(80) as usize;
            let mut v = rng.bytes(len);
            if let Some(first) = v.first_mut() {
                *first = codec::FORMAT_VERSION;
            }
            v
        } else {
            let msgs = sample_messages(&mut rng);
            let m = &msgs[rng.below(msgs.len() as u64) as usize];
            mutate(&mut rng, codec::encode(m))
        };
        match codec::decode(&input, MAX) {
            Ok(msg) => {
                ok += 1;
                // Whatever decodes re-encodes to something that decodes to the same message,
                // and the sender peek agrees with the full decode.
                assert_eq!(codec::decode(&codec::encode(&msg), MAX).unwrap(), msg);
                assert_eq!(codec::sender(&input), Some(msg.from), "{input:?}");
            }
            Err(_) => err += 1,
        }
    }
    assert!(ok > n / 10 && err > n / 10, "ok {ok} err {err}");
    assert_small_allocations();
}

/// A snapshot of `size` bytes split into encoded chunk messages.
fn snapshot_chunks(rng: &mut XorShift, size: usize, chunk: usize) -> (SnapshotMeta, Vec<Vec<u8>>) {
    let data = rng.bytes(size);
    let meta = SnapshotMeta {
        index: 10,
        term: 2,
        conf: ConfState {
            voters: vec![1, 2, 3],
            ..ConfState::default()
        },
        conf_index: 1,
        size: size as u64,
        checksum: raft::crc32c::crc32c(&data),
    };
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let end = (offset + chunk).min(size);
        out.push(codec::encode(&Message {
            from_incarnation: 0,
            to_incarnation: 0,
            from: 1,
            to: 2,
            term: 2,
            body: MessageBody::Snapshot {
                meta: meta.clone(),
                offset: offset as u64,
                data: data[offset..end].to_vec(),
                done: end == size,
            },
        }));
        if end == size {
            return (meta, out);
        }
        offset = end;
    }
}

#[test]
fn fuzz_snapshot_chunks() {
    let mut rng = rng(0x5a95_0000_0000_0005);
    let (mut installed, mut refused) = (0u64, 0u64);
    let n = iters(20_000);
    for i in 0..n {
        let size = rng.below(600) as usize;
        let chunk = 1 + rng.below(200) as usize;
        let (meta, chunks) = snapshot_chunks(&mut rng, size, chunk);
        let store = MemStorage::new_with_conf(meta.conf.clone());
        let mutated = i % 4 != 0;
        let mut done_meta = None;
        for c in chunks {
            let c = if mutated && rng.below(3) == 0 {
                mutate(&mut rng, c)
            } else {
                c
            };
            let Ok(Message {
                from_incarnation: 0,
                to_incarnation: 0,
                body:
                    MessageBody::Snapshot {
                        meta,
                        offset,
                        data,
                        done,
                    },
                ..
            }) = codec::decode(&c, codec::DEFAULT_MAX_MESSAGE_BYTES)
            else {
                continue;
            };
            if !store.write_snapshot_chunk(&meta, offset, &data) {
                continue;
            }
            if done {
                done_meta = Some(meta);
            }
        }
        if let Some(m) = done_meta {
            match store.finish_incoming_snapshot(&m) {
                Ok(()) => installed += 1,
                Err(_) => refused += 1,
            }
        }
        if !mutated {
            assert!(
                done_meta_ok(&store, &meta),
                "an unmutated snapshot installs"
            );
        }
    }
    assert!(
        installed > n / 4 && refused > 0,
        "installed {installed} refused {refused}"
    );
    assert_small_allocations();
}

fn done_meta_ok(store: &MemStorage, meta: &SnapshotMeta) -> bool {
    use raft::core::Storage;
    let m = store.snapshot_meta();
    m.index == meta.index && m.size == meta.size
}

// ---------------------------------------------------------------------------------------------
// raft-kv client line protocol.

#[test]
fn fuzz_client_lines() {
    const MAX: usize = 64;
    let mut rng = rng(0x11e5_0000_0000_0007);
    let words: [&[u8]; 12] = [
        b"PUT",
        b"GET",
        b"DEL",
        b"CAS",
        b"STATUS",
        b"BLOCK",
        b"UNBLOCK",
        b"put",
        b" ",
        b"\r",
        b"\n",
        b"18446744073709551616",
    ];
    let (mut lines, mut too_long) = (0u64, 0u64);
    let n = iters(60_000);
    for _ in 0..n {
        let mut input = Vec::new();
        for _ in 0..rng.below(12) {
            match rng.below(4) {
                0 => {
                    let len = rng.below(20) as usize;
                    input.extend(rng.bytes(len))
                }
                1 => input.extend(std::iter::repeat_n(b'x', rng.below(50) as usize)),
                _ => input.extend_from_slice(words[rng.below(words.len() as u64) as usize]),
            }
        }
        let cap = 1 + rng.below(80) as usize;
        let mut r = io::BufReader::with_capacity(cap, io::Cursor::new(&input));
        let mut buf = Vec::new();
        loop {
            let req = client_port::read_request(&mut r, MAX, &mut buf).unwrap();
            assert!(buf.len() <= MAX + 2);
            match req {
                client_port::Request::Line(line) => {
                    lines += 1;
                    assert!(line.len() <= MAX && !line.contains('\n'));
                    match client_port::parse_request(&line) {
                        Ok(op) => assert!(!format!("{op:?}").is_empty()),
                        Err(e) => assert!(e.starts_with("ERR ") && !e.contains('\n'), "{e}"),
                    }
                }
                client_port::Request::TooLong => {
                    too_long += 1;
                    break;
                }
                client_port::Request::NotUtf8 => {}
                client_port::Request::Closed => break,
            }
        }
    }
    assert!(
        lines > n / 10 && too_long > n / 20,
        "lines {lines} too long {too_long}"
    );
    assert_small_allocations();
}
