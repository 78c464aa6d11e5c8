//! Bounds of `raft-kv`'s client port, against a real single-node server process: request line
//! length (a huge line without newline does not grow the server's memory), connection count
//! (a clear `ERR BUSY` beyond the cap), empty and non-UTF-8 requests answered with errors.

#[path = "../src/bin/raft_kv/cluster.rs"]
mod cluster;

use cluster::Cluster;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const MAX_LINE: usize = 4096;
const MAX_CLIENTS: usize = 4;

fn server() -> Cluster {
    let bin = Path::new(env!("CARGO_BIN_EXE_raft-kv"));
    let extra = [
        "--max-line-bytes",
        &MAX_LINE.to_string(),
        "--max-clients",
        &MAX_CLIENTS.to_string(),
    ];
    let mut c = Cluster::new(bin, 1, 150, &extra).expect("lay out");
    c.deadline = Instant::now() + Duration::from_secs(60);
    c.spawn_all().expect("spawn");
    c.wait_up(&[1], Duration::from_secs(10)).expect("up");
    c.wait_leader(&[1], 0, Duration::from_secs(10))
        .expect("leader");
    c
}

fn connect(c: &Cluster) -> TcpStream {
    let s = TcpStream::connect(c.nodes[&1].client).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends `request` (raw bytes) and reads one answer line.
fn ask(s: &mut TcpStream, request: &[u8]) -> String {
    s.write_all(request).unwrap();
    read_line(s)
}

fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while s.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

/// A field of `/proc/<pid>/status` (kB for memory, a count for `Threads`).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} missing"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn bad_requests_get_errors_and_the_server_keeps_serving() {
    let mut c = server();
    let mut s = connect(&c);
    assert_eq!(ask(&mut s, b"\n"), "ERR empty request");
    assert_eq!(ask(&mut s, b"   \r\n"), "ERR empty request");
    assert_eq!(ask(&mut s, b"GET \xff\xfe\n"), "ERR request is not UTF-8");
    assert_eq!(ask(&mut s, b"PUT a 1\n"), "OK");
    // A line exactly at the limit is served.
    let at_limit = format!("PUT b {}\n", "x".repeat(MAX_LINE - 6));
    assert_eq!(ask(&mut s, at_limit.as_bytes()), "OK");
    assert_eq!(ask(&mut s, b"GET a\n"), "VALUE 1");
    c.stop_all();
}

/// Up to 512 MiB without a newline: the server answers an error, closes, and its resident
/// memory does not grow with the line.
#[test]
fn huge_line_is_refused_without_growing_memory() {
    let mut c = server();
    let pid = c.pid(1).unwrap();
    let rss_before = proc_status(pid, "VmRSS:");
    let mut s = connect(&c);
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0usize;
    while sent < 512 << 20 && s.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    let rss_after = proc_status(pid, "VmRSS:");
    let answer = read_line(&mut s);
    assert!(
        answer.starts_with("ERR line too long (limit 4096 bytes)"),
        "{answer:?} after {sent} bytes"
    );
    assert!(sent < 512 << 20, "the server read the whole line");
    let grown_kb = rss_after.saturating_sub(rss_before);
    assert!(grown_kb < 16 << 10, "RSS grew by {grown_kb} kB");
    // Still serving.
    assert_eq!(c.request(1, "PUT k v").as_deref(), Ok("OK"));
    c.stop_all();
}

/// Beyond `--max-clients` a connection gets `ERR BUSY` and is closed, without a thread;
/// once a connection closes, a new one is served.
#[test]
fn client_connections_are_capped() {
    let mut c = server();
    let pid = c.pid(1).unwrap();
    // The harness's own requests may still hold slots for a moment: retry until each of the
    // MAX_CLIENTS connections is served.
    let end = Instant::now() + Duration::from_secs(10);
    let mut held: Vec<TcpStream> = Vec::new();
    while held.len() < MAX_CLIENTS {
        let mut s = connect(&c);
        let answer = ask(&mut s, b"STATUS\n");
        if answer.starts_with("STATUS") {
            held.push(s);
        } else {
            assert!(answer.starts_with("ERR BUSY"), "{answer:?}");
            assert!(Instant::now() < end, "slots never freed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let threads = proc_status(pid, "Threads:");
    for _ in 0..50 {
        let mut extra = connect(&c);
        let answer = read_line(&mut extra);
        assert!(
            answer.starts_with("ERR BUSY too many client connections (limit 4)"),
            "{answer:?}"
        );
        assert_eq!(extra.read(&mut [0u8; 16]).unwrap_or(0), 0, "closed");
    }
    assert!(
        proc_status(pid, "Threads:") <= threads,
        "refusals cost no thread"
    );
    drop(held.pop());
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect(&c);
        let answer = ask(&mut s, b"STATUS\n");
        if answer.starts_with("STATUS") {
            break;
        }
        assert!(Instant::now() < end, "no slot freed: {answer:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut reader = BufReader::new(held.pop().unwrap());
    reader.get_mut().write_all(b"GET a\n").unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "NOTFOUND\n");
    c.stop_all();
}
