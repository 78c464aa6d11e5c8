//! Client sessions for exactly-once commands (Raft thesis §6.3).
//!
//! Every command the runtime proposes starts with a tag byte: `0` for a plain command,
//! `1` for a session command followed by the client id and sequence number (both u64
//! little-endian). The apply thread keeps a session table — part of the replicated state
//! and of every snapshot — that records each client's latest sequence number and response.
//! A retry of an already applied command returns the recorded response without applying it
//! again. Sessions expire by a log-driven rule: a session unused for `expiry_entries` log
//! entries is dropped when a later entry is applied, so every node expires the same
//! sessions at the same index.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};

const PLAIN: u8 = 0;
const SESSION: u8 = 1;
const SNAPSHOT_MAGIC: &[u8; 4] = b"RMS1";

/// A decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    /// `(client id, sequence number)` for a session command.
    pub session: Option<(u64, u64)>,
    /// The user's command bytes.
    pub data: &'a [u8],
}

/// Encodes a plain command.
pub fn encode_plain(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(PLAIN);
    v.extend_from_slice(data);
    v
}

/// Encodes a session command.
pub fn encode_session(client: u64, seq: u64, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 17);
    v.push(SESSION);
    v.extend_from_slice(&client.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// Decodes a command; `None` if the bytes are not a valid runtime command.
pub fn decode(bytes: &[u8]) -> Option<Command<'_>> {
    match bytes.split_first()? {
        (&PLAIN, data) => Some(Command {
            session: None,
            data,
        }),
        (&SESSION, rest) if rest.len() >= 16 => {
            let client = u64::from_le_bytes(rest[..8].try_into().ok()?);
            let seq = u64::from_le_bytes(rest[8..16].try_into().ok()?);
            Some(Command {
                session: Some((client, seq)),
                data: &rest[16..],
            })
        }
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    response: Option<Vec<u8>>,
    last_index: u64,
}

/// What to do with a session command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// New: apply it.
    Apply,
    /// Already applied: answer with the recorded response.
    Duplicate(Option<Vec<u8>>),
    /// Older than the client's latest command: its response is gone.
    Stale,
}

/// The replicated session table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTable {
    sessions: BTreeMap<u64, Session>,
    expiry_entries: u64,
}

impl SessionTable {
    /// An empty table whose sessions expire after `expiry_entries` unused entries.
    pub fn new(expiry_entries: u64) -> Self {
        SessionTable {
            sessions: BTreeMap::new(),
            expiry_entries,
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True if there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Decides what to do with command `seq` of `client` arriving at log `index`.
    pub fn check(&self, client: u64, seq: u64) -> Verdict {
        match self.sessions.get(&client) {
            Some(s) if seq == s.seq => Verdict::Duplicate(s.response.clone()),
            Some(s) if seq < s.seq => Verdict::Stale,
            _ => Verdict::Apply,
        }
    }

    /// Records the response of command `seq` of `client` applied at `index`.
    pub fn record(&mut self, client: u64, seq: u64, index: u64, response: Option<Vec<u8>>) {
        self.sessions.insert(
            client,
            Session {
                seq,
                response,
                last_index: index,
            },
        );
    }

    /// Marks `client` used at `index` (a duplicate keeps the session alive).
    pub fn touch(&mut self, client: u64, index: u64) {
        if let Some(s) = self.sessions.get_mut(&client) {
            s.last_index = index;
        }
    }

    /// Drops sessions unused for more than `expiry_entries` entries before `index`.
    pub fn expire(&mut self, index: u64) {
        if self.expiry_entries == 0 {
            return;
        }
        let limit = self.expiry_entries;
        self.sessions
            .retain(|_, s| index.saturating_sub(s.last_index) <= limit);
    }

    /// Writes the table at the head of a snapshot.
    pub fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let body = postcard::to_stdvec(self).map_err(std::io::Error::other)?;
        out.write_all(SNAPSHOT_MAGIC)?;
        out.write_all(&(body.len() as u64).to_le_bytes())?;
        out.write_all(&body)
    }

    /// Reads the table from the head of a snapshot, leaving the user's data in `input`.
    pub fn read_from(input: &mut dyn Read) -> Result<SessionTable, String> {
        let mut magic = [0u8; 4];
        input
            .read_exact(&mut magic)
            .map_err(|e| format!("snapshot session header: {e}"))?;
        if &magic != SNAPSHOT_MAGIC {
            return Err("snapshot does not start with a session table".into());
        }
        let mut len = [0u8; 8];
        input
            .read_exact(&mut len)
            .map_err(|e| format!("snapshot session header: {e}"))?;
        let len = u64::from_le_bytes(len);
        if len > 1 << 30 {
            return Err(format!("session table of {len} bytes is implausible"));
        }
        let mut body = vec![0u8; len as usize];
        input
            .read_exact(&mut body)
            .map_err(|e| format!("snapshot session table: {e}"))?;
        postcard::from_bytes(&body).map_err(|e| format!("snapshot session table: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_refused() {
        assert_eq!(decode(&encode_plain(b"x")).unwrap().data, b"x");
        let c = encode_session(7, 9, b"y");
        let d = decode(&c).unwrap();
        assert_eq!((d.session, d.data), (Some((7, 9)), &b"y"[..]));
        assert!(decode(&[]).is_none());
        assert!(decode(&[1, 2, 3]).is_none());
        assert!(decode(&[9]).is_none());
    }

    #[test]
    fn duplicates_stale_and_expiry() {
        let mut t = SessionTable::new(10);
        assert_eq!(t.check(1, 1), Verdict::Apply);
        t.record(1, 1, 5, Some(b"r1".to_vec()));
        assert_eq!(t.check(1, 1), Verdict::Duplicate(Some(b"r1".to_vec())));
        t.record(1, 2, 6, None);
        assert_eq!(t.check(1, 1), Verdict::Stale);
        t.expire(16);
        assert_eq!(t.len(), 1);
        t.expire(17);
        assert!(t.is_empty(), "expired by log position, not by clock");
    }

    #[test]
    fn table_survives_snapshot_encoding() {
        let mut t = SessionTable::new(3);
        t.record(4, 2, 9, Some(vec![1, 2]));
        let mut buf = Vec::new();
        t.write_to(&mut buf).unwrap();
        buf.extend_from_slice(b"user data");
        let mut r = &buf[..];
        assert_eq!(SessionTable::read_from(&mut r).unwrap(), t);
        assert_eq!(r, b"user data");
        assert!(SessionTable::read_from(&mut &b"nope"[..]).is_err());
    }
}
