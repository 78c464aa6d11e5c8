//! The replicated commands of `raft-kv` and the key-value state machine that applies them.
//!
//! Commands travel through the Raft log encoded with postcard. The state machine is a
//! `BTreeMap<String, String>` shared (behind a lock) with the client server, which reads it
//! after a linearizable read barrier, plus the Raft address of every member added at run
//! time (replicated, so every node can reach every member, whoever leads).

use parking_lot::RwLock;
use raft::runtime::{Committed, StateMachine};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;

/// The shared key-value map.
pub type KvMap = Arc<RwLock<BTreeMap<String, String>>>;

/// Raft addresses of members, by id, as replicated through [`Command::Member`].
pub type Members = Arc<RwLock<BTreeMap<u64, String>>>;

/// Called on every node when a member's Raft address is applied (or restored).
pub type OnMember = Box<dyn Fn(u64, &str) + Send>;

/// One replicated write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sets `key` to `value`.
    Put {
        /// Key.
        key: String,
        /// New value.
        value: String,
    },
    /// Removes `key` (a no-op if absent).
    Delete {
        /// Key.
        key: String,
    },
    /// Sets `key` to `new` only if its current value is `old`.
    Cas {
        /// Key.
        key: String,
        /// Expected current value.
        old: String,
        /// Value to store on a match.
        new: String,
    },
    /// Records the Raft address of member `id` on every node (sent before the member is
    /// added, so whichever node leads can replicate to it).
    Member {
        /// Node id.
        id: u64,
        /// Its Raft address, `HOST:PORT`.
        addr: String,
    },
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    map: BTreeMap<String, String>,
    members: BTreeMap<u64, String>,
}

/// Response bytes of a successful write.
pub const RESP_OK: &[u8] = b"OK";
/// Response bytes of a compare-and-swap whose expected value did not match.
pub const RESP_MISMATCH: &[u8] = b"MISMATCH";

impl Command {
    /// Encodes the command for the log.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("encoding a command cannot fail")
    }

    /// Decodes a command from log bytes.
    pub fn decode(bytes: &[u8]) -> Result<Command, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("bad command: {e}"))
    }
}

/// The key-value state machine.
pub struct KvMachine {
    map: KvMap,
    members: Members,
    on_member: OnMember,
}

impl KvMachine {
    /// A state machine writing into `map` and `members`; `on_member` hears of every member
    /// address applied or restored.
    pub fn new(map: KvMap, members: Members, on_member: OnMember) -> Self {
        KvMachine {
            map,
            members,
            on_member,
        }
    }

    fn apply_one(map: &mut BTreeMap<String, String>, cmd: Command) -> &'static [u8] {
        match cmd {
            Command::Put { key, value } => {
                map.insert(key, value);
                RESP_OK
            }
            Command::Delete { key } => {
                map.remove(&key);
                RESP_OK
            }
            Command::Cas { key, old, new } => match map.get_mut(&key) {
                Some(v) if *v == old => {
                    *v = new;
                    RESP_OK
                }
                _ => RESP_MISMATCH,
            },
            // Applied by `apply` itself (it needs the member table).
            Command::Member { .. } => RESP_OK,
        }
    }
}

impl StateMachine for KvMachine {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let mut map = self.map.write();
        let mut out = Vec::with_capacity(batch.len());
        for c in batch {
            if c.data.is_empty() {
                // Nothing to decode (raft-kv never proposes an empty command).
                out.push(None);
                continue;
            }
            // A command this version cannot decode is answered, not fatal: every replica
            // skips it identically, so the replicas stay in agreement.
            let resp = match Command::decode(c.data) {
                Ok(Command::Member { id, addr }) => {
                    (self.on_member)(id, &addr);
                    self.members.write().insert(id, addr);
                    RESP_OK.to_vec()
                }
                Ok(cmd) => Self::apply_one(&mut map, cmd).to_vec(),
                Err(e) => format!("ERR {e}").into_bytes(),
            };
            out.push(Some(resp));
        }
        Ok(out)
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        let snap = Snapshot {
            map: self.map.read().clone(),
            members: self.members.read().clone(),
        };
        let bytes = postcard::to_stdvec(&snap).map_err(|e| e.to_string())?;
        out.write_all(&bytes).map_err(|e| e.to_string())
    }

    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let mut buf = Vec::new();
        input.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        let snap: Snapshot = match postcard::from_bytes(&buf) {
            Ok(s) => s,
            // Snapshots of earlier versions hold the map alone.
            Err(_) => Snapshot {
                map: postcard::from_bytes(&buf).map_err(|e| format!("bad snapshot: {e}"))?,
                members: BTreeMap::new(),
            },
        };
        for (id, addr) in &snap.members {
            (self.on_member)(*id, addr);
        }
        *self.map.write() = snap.map;
        *self.members.write() = snap.members;
        Ok(())
    }
}
