//! Client sessions for exactly-once commands (Raft thesis §6.3).
//!
//! Every command the runtime proposes starts with a tag byte: `0` for a plain command, `2`
//! for a session command followed by the client id, the sequence number and the session's
//! expiry in log entries (all u64 little-endian). Tag `1` (client id and sequence number
//! only, from earlier versions) is still read, with [`DEFAULT_EXPIRY_ENTRIES`].
//!
//! The session table is a pure function of the log: [`SessionTable::advance`] runs at every
//! applied index (any entry kind), expiring each session whose last use is more than its
//! expiry before that index, and every command is decided and recorded in log order. The
//! expiry travels inside the command, so nodes configured differently still agree: it is
//! replicated state, never a per-node setting.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

const PLAIN: u8 = 0;
const SESSION_V1: u8 = 1;
const SESSION: u8 = 2;
const SNAPSHOT_MAGIC_V1: &[u8; 4] = b"RMS1";
const SNAPSHOT_MAGIC: &[u8; 4] = b"RMS2";
/// Largest session table a snapshot may announce.
const MAX_TABLE_BYTES: u64 = 1 << 30;

/// Expiry of sessions whose commands do not carry one (tag 1).
pub const DEFAULT_EXPIRY_ENTRIES: u64 = 100_000;

/// A client session's identity on one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionId {
    /// Client id.
    pub client: u64,
    /// Sequence number of this command (1, 2, 3, ... per client).
    pub seq: u64,
    /// Log entries of disuse after which the session expires (0 = never).
    pub expiry: u64,
}

/// A decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    /// The session, for a session command.
    pub session: Option<SessionId>,
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
pub fn encode_session(s: SessionId, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 25);
    v.push(SESSION);
    v.extend_from_slice(&s.client.to_le_bytes());
    v.extend_from_slice(&s.seq.to_le_bytes());
    v.extend_from_slice(&s.expiry.to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes a command; `None` if the bytes are not a valid runtime command.
pub fn decode(bytes: &[u8]) -> Option<Command<'_>> {
    let (&tag, rest) = bytes.split_first()?;
    let (session, header) = match tag {
        PLAIN => (None, 0),
        SESSION_V1 => {
            let s = SessionId {
                client: u64_at(rest, 0)?,
                seq: u64_at(rest, 8)?,
                expiry: DEFAULT_EXPIRY_ENTRIES,
            };
            (Some(s), 16)
        }
        SESSION => {
            let s = SessionId {
                client: u64_at(rest, 0)?,
                seq: u64_at(rest, 8)?,
                expiry: u64_at(rest, 16)?,
            };
            (Some(s), 24)
        }
        _ => return None,
    };
    Some(Command {
        session,
        data: &rest[header..],
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    response: Option<Vec<u8>>,
    last_index: u64,
    expiry: u64,
}

impl Session {
    /// This session's share of [`SessionTable::digest`].
    fn digest(&self, client: u64) -> u64 {
        // Hashed as postcard writes it, without building the bytes (this runs on every
        // applied session command).
        postcard::serialize_with_flavor(&(client, self), Fnv(FNV_OFFSET)).unwrap_or(FNV_OFFSET)
    }

    /// The last index at which the session is still alive (`None`: never expires).
    fn deadline(&self) -> Option<u64> {
        (self.expiry > 0).then(|| self.last_index.saturating_add(self.expiry))
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over the bytes pushed (a checker's digest, not a security boundary).
struct Fnv(u64);

impl postcard::ser_flavors::Flavor for Fnv {
    type Output = u64;

    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<u64> {
        Ok(self.0)
    }
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionTable {
    sessions: BTreeMap<u64, Session>,
    /// `(deadline, client)` of every expiring session, oldest first.
    deadlines: BTreeSet<(u64, u64)>,
    /// XOR of every session's digest, kept up to date on each change.
    digest: u64,
}

/// The first snapshot format: one expiry for every session.
#[derive(Deserialize)]
struct TableV1 {
    sessions: BTreeMap<u64, SessionV1>,
    expiry_entries: u64,
}

#[derive(Deserialize)]
struct SessionV1 {
    seq: u64,
    response: Option<Vec<u8>>,
    last_index: u64,
}

impl SessionTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn from_sessions(sessions: BTreeMap<u64, Session>) -> Self {
        let deadlines = sessions
            .iter()
            .filter_map(|(&c, s)| Some((s.deadline()?, c)))
            .collect();
        let digest = sessions.iter().fold(0, |d, (&c, s)| d ^ s.digest(c));
        SessionTable {
            sessions,
            deadlines,
            digest,
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

    /// True if [`Self::advance`] to `index` would expire a session.
    pub fn would_expire(&self, index: u64) -> bool {
        self.deadlines.first().is_some_and(|&(d, _)| d < index)
    }

    /// Moves the table to log `index`: expires every session unused for more than its
    /// expiry before `index`. Called for every applied index, of any entry kind.
    pub fn advance(&mut self, index: u64) {
        while let Some(&(d, client)) = self.deadlines.first() {
            if d >= index {
                break;
            }
            self.deadlines.pop_first();
            if let Some(s) = self.sessions.remove(&client) {
                self.digest ^= s.digest(client);
            }
        }
    }

    /// The expiry of `client`'s session, if it has one.
    pub fn expiry_of(&self, client: u64) -> Option<u64> {
        self.sessions.get(&client).map(|s| s.expiry)
    }

    /// Decides what to do with command `seq` of `client`.
    pub fn check(&self, client: u64, seq: u64) -> Verdict {
        match self.sessions.get(&client) {
            Some(s) if seq == s.seq => Verdict::Duplicate(s.response.clone()),
            Some(s) if seq < s.seq => Verdict::Stale,
            _ => Verdict::Apply,
        }
    }

    fn set(&mut self, client: u64, s: Session) {
        if let Some(old) = self.sessions.get(&client) {
            self.digest ^= old.digest(client);
            if let Some(d) = old.deadline() {
                self.deadlines.remove(&(d, client));
            }
        }
        if let Some(d) = s.deadline() {
            self.deadlines.insert((d, client));
        }
        self.digest ^= s.digest(client);
        self.sessions.insert(client, s);
    }

    /// Records the response of command `s` applied at `index`.
    pub fn record(&mut self, s: SessionId, index: u64, response: Option<Vec<u8>>) {
        self.set(
            s.client,
            Session {
                seq: s.seq,
                response,
                last_index: index,
                expiry: s.expiry,
            },
        );
    }

    /// Marks `client` used at `index` (a duplicate keeps the session alive).
    pub fn touch(&mut self, client: u64, index: u64) {
        if let Some(s) = self.sessions.get(&client) {
            let s = Session {
                last_index: index,
                ..s.clone()
            };
            self.set(client, s);
        }
    }

    /// A digest of the whole table, equal on replicas with equal tables (kept up to date
    /// on every change, so checking it after every entry is cheap).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Writes the table at the head of a snapshot.
    pub fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let body = postcard::to_stdvec(&self.sessions).map_err(std::io::Error::other)?;
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
        let v1 = match &magic {
            m if m == SNAPSHOT_MAGIC => false,
            m if m == SNAPSHOT_MAGIC_V1 => true,
            _ => return Err("snapshot does not start with a session table".into()),
        };
        let mut len = [0u8; 8];
        input
            .read_exact(&mut len)
            .map_err(|e| format!("snapshot session header: {e}"))?;
        let len = u64::from_le_bytes(len);
        if len > MAX_TABLE_BYTES {
            return Err(format!("session table of {len} bytes is implausible"));
        }
        let mut body = vec![0u8; len as usize];
        input
            .read_exact(&mut body)
            .map_err(|e| format!("snapshot session table: {e}"))?;
        let bad = |e: postcard::Error| format!("snapshot session table: {e}");
        let sessions = if v1 {
            let t: TableV1 = postcard::from_bytes(&body).map_err(bad)?;
            t.sessions
                .into_iter()
                .map(|(c, s)| {
                    let s = Session {
                        seq: s.seq,
                        response: s.response,
                        last_index: s.last_index,
                        expiry: t.expiry_entries,
                    };
                    (c, s)
                })
                .collect()
        } else {
            postcard::from_bytes(&body).map_err(bad)?
        };
        Ok(Self::from_sessions(sessions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(client: u64, seq: u64, expiry: u64) -> SessionId {
        SessionId {
            client,
            seq,
            expiry,
        }
    }

    /// The digest hashes exactly the bytes postcard writes (the value did not change when
    /// it stopped building them).
    #[test]
    fn session_digest_is_fnv_of_its_postcard_bytes() {
        let s = Session {
            seq: 300,
            response: Some(b"answer".to_vec()),
            last_index: 1 << 40,
            expiry: 7,
        };
        let bytes = postcard::to_stdvec(&(9u64, &s)).unwrap();
        let fnv = bytes.iter().fold(FNV_OFFSET, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        assert_eq!(s.digest(9), fnv);
        assert_ne!(s.digest(9), s.digest(10));
    }

    #[test]
    fn commands_round_trip_and_garbage_is_refused() {
        assert_eq!(decode(&encode_plain(b"x")).unwrap().data, b"x");
        let c = encode_session(sid(7, 9, 5), b"y");
        let d = decode(&c).unwrap();
        assert_eq!((d.session, d.data), (Some(sid(7, 9, 5)), &b"y"[..]));
        let mut v1 = vec![SESSION_V1];
        v1.extend_from_slice(&7u64.to_le_bytes());
        v1.extend_from_slice(&9u64.to_le_bytes());
        v1.push(b'z');
        let d = decode(&v1).unwrap();
        assert_eq!(d.session, Some(sid(7, 9, DEFAULT_EXPIRY_ENTRIES)));
        assert_eq!(d.data, b"z");
        assert!(decode(&[]).is_none());
        assert!(decode(&[1, 2, 3]).is_none());
        assert!(decode(&[2; 20]).is_none());
        assert!(decode(&[9]).is_none());
    }

    #[test]
    fn duplicates_stale_and_expiry_by_log_position() {
        let mut t = SessionTable::new();
        assert_eq!(t.check(1, 1), Verdict::Apply);
        t.record(sid(1, 1, 10), 5, Some(b"r1".to_vec()));
        assert_eq!(t.check(1, 1), Verdict::Duplicate(Some(b"r1".to_vec())));
        t.record(sid(1, 2, 10), 6, None);
        assert_eq!(t.check(1, 1), Verdict::Stale);
        assert!(!t.would_expire(16));
        t.advance(16);
        assert_eq!(t.len(), 1);
        assert!(t.would_expire(17));
        t.advance(17);
        assert!(t.is_empty(), "expired by log position, not by clock");
    }

    #[test]
    fn each_session_keeps_its_own_expiry_and_touch_extends_it() {
        let mut t = SessionTable::new();
        t.record(sid(1, 1, 3), 1, None);
        t.record(sid(2, 1, 0), 1, None);
        t.record(sid(3, 1, 100), 1, None);
        t.touch(1, 4);
        t.advance(7);
        assert_eq!(t.len(), 3, "touched at 4, alive through 7");
        t.advance(8);
        assert_eq!(t.len(), 2);
        t.advance(u64::MAX);
        assert_eq!(t.len(), 1, "expiry 0 never expires");
        assert_eq!(t.check(2, 1), Verdict::Duplicate(None));
    }

    #[test]
    fn table_survives_snapshot_encoding_and_reads_the_first_format() {
        let mut t = SessionTable::new();
        t.record(sid(4, 2, 3), 9, Some(vec![1, 2]));
        let mut buf = Vec::new();
        t.write_to(&mut buf).unwrap();
        buf.extend_from_slice(b"user data");
        let mut r = &buf[..];
        let back = SessionTable::read_from(&mut r).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.digest(), t.digest());
        assert_eq!(r, b"user data");
        assert!(SessionTable::read_from(&mut &b"nope"[..]).is_err());

        #[derive(Serialize)]
        struct V1 {
            sessions: BTreeMap<u64, (u64, Option<Vec<u8>>, u64)>,
            expiry_entries: u64,
        }
        let body = postcard::to_stdvec(&V1 {
            sessions: [(4, (2, Some(vec![1, 2]), 9))].into_iter().collect(),
            expiry_entries: 3,
        })
        .unwrap();
        let mut old = SNAPSHOT_MAGIC_V1.to_vec();
        old.extend_from_slice(&(body.len() as u64).to_le_bytes());
        old.extend_from_slice(&body);
        assert_eq!(SessionTable::read_from(&mut &old[..]).unwrap(), t);
    }
}
