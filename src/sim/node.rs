//! One simulated node: its core, its disk and its state machine.

use super::invariants::{Checker, Violation};
use super::ready::ReadyIo;
use crate::core::{
    ConfState, Config, Entry, MemStorage, Message, RawNode, ReadState, Ready, SnapshotMeta, Storage,
};
use crate::runtime::apply_core::{ApplyCore, ApplyObserver, EntryResult};
use crate::runtime::session::{self, SessionTable};
use crate::runtime::{Committed, StateMachine};
use std::collections::BTreeMap;

/// Entries of disuse after which a simulated client's session expires: short enough that
/// expiry happens in every long seed, so replicas are checked to expire at the same index.
pub const SESSION_EXPIRY: u64 = 200;

/// The replicated state machine: a running hash over applied commands.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// Last applied index.
    pub index: u64,
    /// Term of the last applied entry.
    pub term: u64,
    /// Hash over every applied command.
    pub hash: u64,
    /// Membership as of `index`.
    pub conf: ConfState,
    /// Index of the configuration entry.
    pub conf_index: u64,
    /// Key-value state written by `put`/`cas` commands (for linearizability checks).
    pub kv: BTreeMap<String, String>,
}

/// A key-value command of the simulated clients, encoded as text in a log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvCommand {
    /// `put KEY VALUE`.
    Put(String, String),
    /// `cas KEY EXPECTED NEW` (`EXPECTED` is `-` for "absent").
    Cas(String, Option<String>, String),
}

impl KvCommand {
    /// Encodes the command; `tag` makes every proposal's bytes unique.
    pub fn encode(&self, tag: u64) -> Vec<u8> {
        match self {
            KvCommand::Put(k, v) => format!("put {k} {v} {tag}"),
            KvCommand::Cas(k, e, n) => format!("cas {k} {} {n} {tag}", e.as_deref().unwrap_or("-")),
        }
        .into_bytes()
    }

    fn decode(data: &[u8]) -> Option<KvCommand> {
        let s = std::str::from_utf8(data).ok()?;
        let p: Vec<&str> = s.split(' ').collect();
        match p.as_slice() {
            ["put", k, v, _] => Some(KvCommand::Put(k.to_string(), v.to_string())),
            ["cas", k, e, n, _] => Some(KvCommand::Cas(
                k.to_string(),
                (*e != "-").then(|| e.to_string()),
                n.to_string(),
            )),
            _ => None,
        }
    }
}

fn mix(h: u64, data: &[u8]) -> u64 {
    let mut x = h ^ 0x9E37_79B9_7F4A_7C15;
    for &b in data {
        x = (x ^ b as u64).wrapping_mul(0x1000_0000_01B3);
    }
    x
}

impl StateMachine for Machine {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let mut out = Vec::with_capacity(batch.len());
        for c in batch {
            self.hash = mix(self.hash, c.data);
            out.push(match KvCommand::decode(c.data) {
                Some(KvCommand::Put(k, v)) => {
                    self.kv.insert(k, v);
                    None
                }
                Some(KvCommand::Cas(k, exp, new)) => {
                    let ok = self.kv.get(&k) == exp.as_ref();
                    if ok {
                        self.kv.insert(k, new);
                    }
                    Some(vec![ok as u8])
                }
                None => None,
            });
        }
        Ok(out)
    }

    fn snapshot(&mut self, out: &mut dyn std::io::Write) -> Result<(), String> {
        out.write_all(&self.encode()).map_err(|e| e.to_string())
    }

    fn restore(&mut self, input: &mut dyn std::io::Read) -> Result<(), String> {
        let mut data = Vec::new();
        input.read_to_end(&mut data).map_err(|e| e.to_string())?;
        let meta = SnapshotMeta::default();
        *self = Machine::decode(&data, &meta).ok_or("undecodable machine")?;
        Ok(())
    }
}

impl Machine {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&self.index.to_le_bytes());
        v.extend_from_slice(&self.term.to_le_bytes());
        v.extend_from_slice(&self.hash.to_le_bytes());
        let kv = postcard::to_stdvec(&self.kv).expect("encode kv");
        v.extend_from_slice(&(kv.len() as u64).to_le_bytes());
        v.extend_from_slice(&kv);
        // Filler so snapshots span several chunks.
        v.extend((0..300u32).map(|i| (i as u64 ^ self.hash) as u8));
        v
    }

    fn decode(data: &[u8], meta: &SnapshotMeta) -> Option<Machine> {
        if data.len() < 32 {
            return None;
        }
        let rd = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
        let len = rd(24) as usize;
        let kv = postcard::from_bytes(data.get(32..32 + len)?).ok()?;
        Some(Machine {
            index: rd(0),
            term: rd(8),
            hash: rd(16),
            conf: meta.conf.clone(),
            conf_index: meta.conf_index,
            kv,
        })
    }
}

/// What processing a ready produced for the network and clients.
pub struct Outcome {
    /// Messages to send now.
    pub send_now: Vec<Message>,
    /// Read states.
    pub reads: Vec<ReadState>,
}

/// A node of the simulated cluster.
pub struct SimNode {
    cfg: Config,
    /// The running core (None while crashed).
    pub raw: Option<RawNode<MemStorage>>,
    /// The disk side of the Ready contract, shared with the user simulator; also holds the
    /// snapshot policy.
    pub io: ReadyIo,
    machine: Machine,
    /// The runtime's deterministic apply logic (sessions, membership), run unchanged.
    core: ApplyCore,
    /// A sync event is scheduled.
    pub sync_scheduled: bool,
    /// Recently applied commands by index (for acknowledging proposals).
    pub applied_log: BTreeMap<u64, Vec<u8>>,
    /// Outcomes of recently applied compare-and-set commands by index.
    pub cas_results: BTreeMap<u64, bool>,
    last_commit: u64,
}

impl SimNode {
    /// A new node with a fresh disk.
    pub fn new(cfg: Config, bootstrap: ConfState) -> Self {
        let io = ReadyIo::new(bootstrap.clone());
        let raw = RawNode::new(cfg.clone(), io.cache().clone()).expect("valid config");
        SimNode {
            cfg,
            raw: Some(raw),
            io,
            machine: Machine {
                conf: bootstrap.clone(),
                ..Default::default()
            },
            core: ApplyCore::new(0, 0, bootstrap, 0, SessionTable::new()),
            sync_scheduled: false,
            applied_log: BTreeMap::new(),
            cas_results: BTreeMap::new(),
            last_commit: 0,
        }
    }

    /// Crash: drops the core and volatile state; `keep` picks how many unsynced writes survive.
    pub fn crash(&mut self, keep: u64) {
        self.raw = None;
        self.io.crash(keep);
        self.applied_log.clear();
        self.cas_results.clear();
    }

    /// Power loss: like [`SimNode::crash`], but unsynced writes are lost non-prefix
    /// ([`super::disk::Disk::power_loss`]); returns how many were lost.
    pub fn power_loss(&mut self, seed: u64) -> usize {
        self.raw = None;
        let lost = self.io.power_loss(seed);
        self.applied_log.clear();
        self.cas_results.clear();
        lost
    }

    /// Restart from durable state: restore the snapshot, then replay via the core.
    pub fn restart(&mut self, seed: u64) -> Result<(), String> {
        let meta = self.io.cache().snapshot_meta();
        if meta.index > 0 {
            self.restore(&meta).ok_or("bad snapshot")?;
        } else {
            self.core = self.io.initial_apply_core()?;
            self.machine = Machine {
                conf: self.core.conf.clone(),
                ..Default::default()
            };
        }
        self.raw = Some(self.io.start(&self.cfg, seed)?);
        self.last_commit = 0;
        Ok(())
    }

    /// The node's synced storage (for the durability-before-send invariant).
    pub fn durable(&self) -> &MemStorage {
        self.io.durable()
    }

    /// True if writes are waiting for a sync.
    pub fn has_unsynced(&self) -> bool {
        self.io.has_unsynced()
    }

    /// Completes a sync: returns the durable hard state and the messages that waited for
    /// durability.
    pub fn sync(&mut self) -> (crate::core::HardState, Vec<Message>) {
        self.io.sync(self.raw.as_mut())
    }

    /// Handles one ready following the RawNode contract.
    pub fn process(
        &mut self,
        rd: Ready,
        seed: u64,
        inv: &mut Checker,
    ) -> Result<Outcome, Violation> {
        let id = self.cfg.id;
        let rd = self.io.persist(self.raw.as_mut().expect("up"), rd);
        if let Some(meta) = rd.snapshot {
            self.restore(&meta)
                .ok_or_else(|| Violation::new(seed, format!("node {id}: undecodable snapshot")))?;
            let digest = state_digest(self.machine.hash, &self.core.sessions);
            inv.check_restore(seed, id, self.machine.index, self.machine.term, digest)?;
        }
        let raw = self.raw.as_mut().expect("up");
        let commit = raw.raft.log.committed;
        if commit < self.last_commit {
            return Err(Violation::new(
                seed,
                format!(
                    "node {id}: commit went back {} -> {commit}",
                    self.last_commit
                ),
            ));
        }
        self.last_commit = commit;
        let entries = rd.committed;
        if let Some(e) = entries.first() {
            if e.index != self.machine.index + 1 {
                return Err(Violation::new(
                    seed,
                    format!(
                        "node {id}: applied {} after {}",
                        e.index, self.machine.index
                    ),
                ));
            }
        }
        // The hash after each command the machine applied, for the per-index checks.
        let hashes =
            std::cell::RefCell::new(BTreeMap::from([(self.machine.index, self.machine.hash)]));
        let last = (self.machine.index, self.machine.term);
        let machine = &mut self.machine;
        let mut apply_batch = |b: &[Committed<'_>]| {
            let mut h = machine.hash;
            for c in b {
                h = mix(h, c.data);
                hashes.borrow_mut().insert(c.index, h);
            }
            machine.apply(b)
        };
        let mut obs = SimObserver {
            id,
            seed,
            entries: &entries,
            inv,
            hashes: &hashes,
            applied_log: &mut self.applied_log,
            cas_results: &mut self.cas_results,
            last,
            violation: None,
        };
        self.core
            .apply(&mut apply_batch, &entries, &mut obs)
            .map_err(|e| Violation::new(seed, format!("node {id}: {e}")))?;
        if let Some(v) = obs.violation {
            return Err(v);
        }
        (self.machine.index, self.machine.term) = obs.last;
        self.machine.conf = self.core.conf.clone();
        self.machine.conf_index = self.core.conf_index;
        let raw = self.raw.as_mut().expect("up");
        if self.io.applied(raw, self.machine.index) {
            let mut data = Vec::new();
            self.core
                .sessions
                .write_to(&mut data)
                .expect("writing to memory");
            data.extend_from_slice(&self.machine.encode());
            self.io.store_snapshot(&self.core, data);
        }
        Ok(Outcome {
            send_now: rd.messages,
            reads: rd.read_states,
        })
    }

    /// Restores the state machine and the apply state from the stored snapshot `meta`.
    fn restore(&mut self, meta: &SnapshotMeta) -> Option<()> {
        let data = self.io.snapshot_data();
        let mut r = &data[..];
        let sessions = SessionTable::read_from(&mut r).ok()?;
        self.machine = Machine::decode(r, meta)?;
        self.core = ApplyCore::new(
            meta.index,
            meta.term,
            meta.conf.clone(),
            meta.conf_index,
            sessions,
        );
        Some(())
    }

    /// The state machine's current value of `key`.
    pub fn kv_get(&self, key: &str) -> Option<String> {
        self.machine.kv.get(key).cloned()
    }

    /// Last index applied by the state machine.
    pub fn machine_index(&self) -> u64 {
        self.machine.index
    }

    /// Keeps the acknowledgement log small.
    pub fn trim_applied_log(&mut self) {
        while self.applied_log.len() > 4096 {
            self.applied_log.pop_first();
        }
        while self.cas_results.len() > 4096 {
            self.cas_results.pop_first();
        }
    }

    /// This node's view of the log for global checks: (first index, terms).
    pub fn log_terms(&self) -> Option<(u64, Vec<u64>)> {
        let raw = self.raw.as_ref()?;
        let log = &raw.raft.log;
        let first = log.first_index();
        let last = log.last_index();
        let terms = (first..=last).map(|i| log.term(i).unwrap_or(0)).collect();
        Some((first, terms))
    }
}

/// The replica state compared across nodes at equal applied index: the state machine's hash
/// and the session table.
pub fn state_digest(machine_hash: u64, sessions: &SessionTable) -> u64 {
    mix(machine_hash, &sessions.digest().to_le_bytes())
}

/// Feeds the simulator's checks from the runtime's apply logic, entry by entry.
struct SimObserver<'a> {
    id: u64,
    seed: u64,
    entries: &'a [Entry],
    inv: &'a mut Checker,
    /// The machine's hash after each command it applied (and before the first).
    hashes: &'a std::cell::RefCell<BTreeMap<u64, u64>>,
    applied_log: &'a mut BTreeMap<u64, Vec<u8>>,
    cas_results: &'a mut BTreeMap<u64, bool>,
    /// Index and term of the last entry applied.
    last: (u64, u64),
    violation: Option<Violation>,
}

impl ApplyObserver for SimObserver<'_> {
    fn applied(&mut self, pos: usize, index: u64, result: Option<EntryResult>, s: &SessionTable) {
        if self.violation.is_some() {
            return;
        }
        let e = &self.entries[pos];
        self.last = (index, e.term);
        let hash = {
            let h = self.hashes.borrow();
            let reached = h.contains_key(&index);
            let hash = h.range(..=index).next_back().map_or(0, |(_, &v)| v);
            if let Some(r) = &result {
                let user = session::decode(&e.data).map_or(&[][..], |c| c.data);
                self.applied_log.insert(index, e.data.to_vec());
                if let Ok(Some(b)) = r {
                    self.cas_results.insert(index, b.first() == Some(&1));
                }
                if let Err(v) = self
                    .inv
                    .on_command(self.seed, self.id, index, user, reached)
                {
                    self.violation = Some(v);
                    return;
                }
            }
            hash
        };
        if let Err(v) = self
            .inv
            .on_apply(self.seed, self.id, e, state_digest(hash, s))
        {
            self.violation = Some(v);
        }
    }
}
