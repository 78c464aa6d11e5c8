//! `raft-kv`'s client line protocol: the bounded line reader, the request parser, and the
//! connection cap.
//!
//! A request line longer than the limit is never buffered: reading stops at the limit, the
//! client gets `ERR line too long ...` and the connection is closed. Connections beyond the
//! cap get `ERR BUSY ...` and are closed at once, without a thread.

use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Default longest request line, newline excluded (1 MiB).
pub const DEFAULT_MAX_LINE_BYTES: u64 = 1 << 20;
/// Default cap on concurrent client connections.
pub const DEFAULT_MAX_CLIENTS: u64 = 256;
/// Default time a client connection may stay silent before it is closed (seconds).
pub const DEFAULT_IDLE_SECS: u64 = 300;

/// One read from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A complete line (the newline and a trailing `\r` stripped).
    Line(String),
    /// The line exceeds the limit; the rest of it was not read.
    TooLong,
    /// The line is not UTF-8.
    NotUtf8,
    /// The client closed the connection (a final line without newline is dropped).
    Closed,
}

impl Request {
    /// The error line answering a request that cannot be served, if any.
    pub fn refusal(&self, max_line: usize) -> Option<String> {
        match self {
            Request::TooLong => Some(format!(
                "ERR line too long (limit {max_line} bytes); closing the connection"
            )),
            Request::NotUtf8 => Some("ERR request is not UTF-8".into()),
            Request::Line(_) | Request::Closed => None,
        }
    }
}

/// Reads one request line of at most `max` bytes (newline and a trailing `\r` excluded) into
/// `buf`, never holding more than `max + 2` bytes. `buf` is cleared first.
pub fn read_request<R: BufRead>(r: &mut R, max: usize, buf: &mut Vec<u8>) -> io::Result<Request> {
    buf.clear();
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(Request::Closed);
        }
        // Room for the line, a `\r` and the newline.
        let room = max + 2 - buf.len();
        let take = chunk.len().min(room);
        match chunk[..take].iter().position(|&b| b == b'\n') {
            Some(nl) => {
                buf.extend_from_slice(&chunk[..nl]);
                r.consume(nl + 1);
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                if buf.len() > max {
                    return Ok(Request::TooLong);
                }
                return Ok(match std::str::from_utf8(buf) {
                    Ok(s) => Request::Line(s.to_owned()),
                    Err(_) => Request::NotUtf8,
                });
            }
            None => {
                buf.extend_from_slice(&chunk[..take]);
                r.consume(take);
                // Past the limit, unless the byte just over it is the `\r` of a `\r\n`.
                if buf.len() > max + 1 || (buf.len() == max + 1 && buf.last() != Some(&b'\r')) {
                    return Ok(Request::TooLong);
                }
            }
        }
    }
}

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    /// `PUT key value`
    Put(&'a str, &'a str),
    /// `GET key`
    Get(&'a str),
    /// `DEL key`
    Del(&'a str),
    /// `CAS key old new`
    Cas(&'a str, &'a str, &'a str),
    /// `STATUS`
    Status,
    /// `BLOCK peer` (true) or `UNBLOCK peer` (false), test hooks only.
    Block(u64, bool),
    /// `ADD_LEARNER id host:port`
    AddLearner(u64, SocketAddr),
    /// `PROMOTE id`
    Promote(u64),
    /// `DEMOTE id`
    Demote(u64),
    /// `REMOVE id`
    Remove(u64),
    /// `TRANSFER [id]`
    Transfer(Option<u64>),
    /// `MEMBERS`
    Members,
}

/// Parses a member id (non-zero).
fn node_id(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(id) if id != 0 => Ok(id),
        _ => Err(format!("ERR bad node id {s}")),
    }
}

/// Parses a request line (verbs are case-insensitive, words separated by whitespace); the
/// error is the `ERR ...` line to answer.
pub fn parse_request(line: &str) -> Result<Op<'_>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&verb, args)) = words.split_first() else {
        return Err("ERR empty request".into());
    };
    match (verb.to_ascii_uppercase().as_str(), args) {
        ("PUT", [k, v]) => Ok(Op::Put(k, v)),
        ("GET", [k]) => Ok(Op::Get(k)),
        ("DEL", [k]) => Ok(Op::Del(k)),
        ("CAS", [k, old, new]) => Ok(Op::Cas(k, old, new)),
        ("STATUS", []) => Ok(Op::Status),
        (v @ ("BLOCK" | "UNBLOCK"), [p]) => match p.parse::<u64>() {
            Ok(peer) => Ok(Op::Block(peer, v == "BLOCK")),
            Err(_) => Err(format!("ERR bad peer id {p}")),
        },
        ("ADD_LEARNER", [id, addr]) => {
            let id = node_id(id)?;
            match addr.parse::<SocketAddr>() {
                Ok(a) => Ok(Op::AddLearner(id, a)),
                Err(_) => Err(format!(
                    "ERR bad address {addr} (expected HOST:PORT with an IP address)"
                )),
            }
        }
        ("PROMOTE", [id]) => Ok(Op::Promote(node_id(id)?)),
        ("DEMOTE", [id]) => Ok(Op::Demote(node_id(id)?)),
        ("REMOVE", [id]) => Ok(Op::Remove(node_id(id)?)),
        ("TRANSFER", []) => Ok(Op::Transfer(None)),
        ("TRANSFER", [id]) => Ok(Op::Transfer(Some(node_id(id)?))),
        ("MEMBERS", []) => Ok(Op::Members),
        ("ADD_LEARNER", _) => Err("ERR usage: ADD_LEARNER id raft_host:port".into()),
        ("PROMOTE", _) => Err("ERR usage: PROMOTE id".into()),
        ("DEMOTE", _) => Err("ERR usage: DEMOTE id".into()),
        ("REMOVE", _) => Err("ERR usage: REMOVE id".into()),
        ("TRANSFER", _) => Err("ERR usage: TRANSFER [id]".into()),
        ("MEMBERS", _) => Err("ERR usage: MEMBERS".into()),
        ("PUT", _) => Err("ERR usage: PUT key value".into()),
        ("GET", _) => Err("ERR usage: GET key".into()),
        ("DEL", _) => Err("ERR usage: DEL key".into()),
        ("CAS", _) => Err("ERR usage: CAS key old new".into()),
        _ => Err(format!("ERR unknown command {verb}")),
    }
}

/// Counts open client connections against a cap.
#[derive(Debug, Clone)]
pub struct ClientSlots {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One admitted connection; frees its slot on drop.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ClientSlots {
    /// At most `max` connections at once.
    pub fn new(max: usize) -> Self {
        ClientSlots {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A slot, or `None` when `max` connections are open.
    pub fn try_admit(&self) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.open.clone()))
    }

    /// The line sent to a connection refused at the cap.
    pub fn busy_line(&self) -> String {
        format!(
            "ERR BUSY too many client connections (limit {}); closing the connection\n",
            self.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn read_all(input: &[u8], max: usize, cap: usize) -> Vec<Request> {
        let mut r = BufReader::with_capacity(cap, Cursor::new(input.to_vec()));
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let req = read_request(&mut r, max, &mut buf).unwrap();
            assert!(buf.len() <= max + 2);
            let stop = matches!(req, Request::Closed | Request::TooLong);
            out.push(req);
            if stop {
                return out;
            }
        }
    }

    #[test]
    fn lines_limits_and_encoding() {
        for cap in [1, 3, 64] {
            assert_eq!(
                read_all(b"GET a\r\n\nPUT k v\n\xff\nabcdefgh", 7, cap),
                vec![
                    Request::Line("GET a".into()),
                    Request::Line("".into()),
                    Request::Line("PUT k v".into()),
                    Request::NotUtf8,
                    Request::TooLong,
                ]
            );
            assert_eq!(
                read_all(b"1234567\n12345678\nGET a\n", 7, cap),
                vec![Request::Line("1234567".into()), Request::TooLong]
            );
            assert_eq!(read_all(b"abc", 7, cap), vec![Request::Closed]);
            // A carriage return does not count against the limit.
            assert_eq!(
                read_all(b"1234567\r\n", 7, cap)[0],
                Request::Line("1234567".into())
            );
        }
    }

    #[test]
    fn requests_parse() {
        assert_eq!(parse_request("put k v"), Ok(Op::Put("k", "v")));
        assert_eq!(parse_request(" CAS a b  c "), Ok(Op::Cas("a", "b", "c")));
        assert_eq!(parse_request("UNBLOCK 3"), Ok(Op::Block(3, false)));
        assert_eq!(parse_request("  ").unwrap_err(), "ERR empty request");
        assert_eq!(parse_request("GET").unwrap_err(), "ERR usage: GET key");
        assert_eq!(parse_request("BLOCK x").unwrap_err(), "ERR bad peer id x");
        assert_eq!(
            parse_request("NOPE").unwrap_err(),
            "ERR unknown command NOPE"
        );
    }

    #[test]
    fn slots_are_capped_and_freed() {
        let slots = ClientSlots::new(2);
        let a = slots.try_admit().unwrap();
        let _b = slots.try_admit().unwrap();
        assert!(slots.try_admit().is_none());
        drop(a);
        assert!(slots.try_admit().is_some());
    }
}
