//! The checks run while the simulation applies commands: replica determinism (the same
//! response per log index, the same state hash at equal applied index), snapshot round trip
//! (a copy restored from a snapshot answers like the original) and exactly-once (no client
//! command reaches a state machine twice).

use super::replica::{Broken, Factory};
use super::report::Check;
use super::SimStateMachine;
use crate::runtime::apply_core::EntryResult;
use crate::runtime::Committed;
use std::collections::{BTreeMap, HashMap};

/// The state hash the checks compare: the machine's own [`SimStateMachine::state_hash`], or
/// else a hash of its snapshot bytes.
pub(super) fn hash_of(m: &mut dyn SimStateMachine) -> u64 {
    if let Some(h) = m.state_hash() {
        return h;
    }
    let mut bytes = Vec::new();
    match m.snapshot(&mut bytes) {
        Ok(()) => fnv(&bytes),
        Err(_) => 0,
    }
}

/// FNV-1a over `bytes`.
pub(super) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A response shown in a report: text when printable, else hex, cut at 80 characters.
pub fn show(bytes: Option<&[u8]>) -> String {
    let Some(b) = bytes else {
        return "(none)".into();
    };
    let s = match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => b.iter().map(|x| format!("{x:02x}")).collect(),
    };
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(80).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn show_result(r: &EntryResult) -> String {
    match r {
        Ok(b) => show(b.as_deref()),
        Err(e) => format!("refused ({e})"),
    }
}

/// Cluster-wide records the checks compare against.
#[derive(Default)]
pub(super) struct Checks {
    /// Log index -> (first node to apply it, its outcome).
    responses: BTreeMap<u64, (u64, EntryResult)>,
    /// Applied index -> (first node to reach it, state hash there).
    hashes: BTreeMap<u64, (u64, u64)>,
    /// Entry (index, term) a client proposed -> (client, seq).
    proposals: HashMap<(u64, u64), (u64, u64)>,
    /// (client, seq) -> the index at which a state machine first applied it.
    first_applied: HashMap<(u64, u64), u64>,
}

impl Checks {
    /// Client `client`'s command `seq` was proposed and landed at (`index`, `term`).
    pub fn on_proposed(&mut self, index: u64, term: u64, client: u64, seq: u64) {
        self.proposals.insert((index, term), (client, seq));
    }

    /// A state machine on `node` received the entry at (`index`, `term`): a client command
    /// must reach a state machine at one index only (replays of that index after a
    /// restart or on other nodes are fine).
    pub fn on_machine_applied(&mut self, node: u64, index: u64, term: u64) -> Result<(), Broken> {
        let Some(&(client, seq)) = self.proposals.get(&(index, term)) else {
            return Ok(());
        };
        let first = *self.first_applied.entry((client, seq)).or_insert(index);
        if first != index {
            return Err((
                Check::ExactlyOnce,
                Some(index),
                format!(
                    "node {node}: client {client} command {seq} reached the state machine at index {first} and again at index {index} (a retry applied twice: propose it through a client session)"
                ),
            ));
        }
        Ok(())
    }

    /// `node` applied `index` with `result`: every replica must answer alike.
    pub fn on_response(
        &mut self,
        node: u64,
        index: u64,
        result: &EntryResult,
        restored_from: u64,
    ) -> Result<(), Broken> {
        match self.responses.get(&index) {
            None => {
                self.responses.insert(index, (node, result.clone()));
                Ok(())
            }
            Some((_, r)) if same(r, result) => Ok(()),
            Some((other, r)) => {
                let (check, how) = attribution(restored_from, index);
                Err((
                    check,
                    Some(index),
                    format!(
                        "node {node}{how} answered {} at index {index} where node {other} answered {}",
                        show_result(result),
                        show_result(r)
                    ),
                ))
            }
        }
    }

    /// `node`'s state machine has `hash` at applied index `index`.
    pub fn on_hash(
        &mut self,
        node: u64,
        index: u64,
        hash: u64,
        restored_from: u64,
    ) -> Result<(), Broken> {
        match self.hashes.get(&index) {
            None => {
                self.hashes.insert(index, (node, hash));
                Ok(())
            }
            Some(&(_, h)) if h == hash => Ok(()),
            Some(&(other, h)) => {
                let (check, how) = attribution(restored_from, index);
                Err((
                    check,
                    Some(index),
                    format!(
                        "node {node}{how} has state hash {hash:#018x} at applied index {index}, node {other} has {h:#018x}"
                    ),
                ))
            }
        }
    }
}

fn same(a: &EntryResult, b: &EntryResult) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

/// A divergence on a node restored from a snapshot is the snapshot's fault when the node
/// has applied nothing but the snapshot's suffix; otherwise the machine is nondeterministic.
fn attribution(restored_from: u64, index: u64) -> (Check, String) {
    if restored_from > 0 && index >= restored_from {
        (
            Check::SnapshotRoundTrip,
            format!(" (restored from a snapshot at index {restored_from})"),
        )
    } else {
        (Check::Determinism, String::new())
    }
}

/// A copy of a node's state machine restored from the snapshot the node just took; it
/// applies the same commands as the original and must give the same responses and hash.
pub(super) struct SnapshotShadow {
    node: u64,
    index: u64,
    machine: Box<dyn SimStateMachine>,
}

impl SnapshotShadow {
    /// Restores `bytes` (the user's part of a snapshot taken at `index`) into a fresh
    /// machine and compares its state hash with the original's.
    pub fn new(
        node: u64,
        index: u64,
        bytes: &[u8],
        original: &mut dyn SimStateMachine,
        fresh: &mut Factory,
    ) -> Result<Self, Broken> {
        let mut machine = fresh();
        machine.restore(&mut &bytes[..]).map_err(|e| {
            (
                Check::SnapshotRoundTrip,
                Some(index),
                format!("node {node}: restoring its own snapshot of index {index} failed: {e}"),
            )
        })?;
        let (a, b) = (hash_of(original), hash_of(machine.as_mut()));
        if a != b {
            return Err((
                Check::SnapshotRoundTrip,
                Some(index),
                format!(
                    "node {node}: a state machine restored from the snapshot of index {index} has state hash {b:#018x}, the original {a:#018x}"
                ),
            ));
        }
        Ok(SnapshotShadow {
            node,
            index,
            machine,
        })
    }

    /// Applies the batch the original just applied and compares responses and hash.
    pub fn follow(
        &mut self,
        batch: &[Committed<'_>],
        responses: &[Option<Vec<u8>>],
        original: &mut dyn SimStateMachine,
    ) -> Option<Broken> {
        let (node, snap) = (self.node, self.index);
        let mine = match self.machine.apply(batch) {
            Ok(r) => r,
            Err(e) => {
                return Some((
                    Check::SnapshotRoundTrip,
                    batch.first().map(|c| c.index),
                    format!(
                        "node {node}: the copy restored from snapshot {snap} failed to apply: {e}"
                    ),
                ))
            }
        };
        for (i, c) in batch.iter().enumerate() {
            let a = responses.get(i).cloned().flatten();
            let b = mine.get(i).cloned().flatten();
            if a != b {
                return Some((
                    Check::SnapshotRoundTrip,
                    Some(c.index),
                    format!(
                        "node {node}: a copy restored from its snapshot of index {snap} answered {} at index {} where the original answered {} (the snapshot does not carry all the state, or apply is not deterministic)",
                        show(b.as_deref()),
                        c.index,
                        show(a.as_deref())
                    ),
                ));
            }
        }
        let (a, b) = (hash_of(original), hash_of(self.machine.as_mut()));
        if a != b {
            let at = batch.last().map_or(snap, |c| c.index);
            return Some((
                Check::SnapshotRoundTrip,
                Some(at),
                format!(
                    "node {node}: a copy restored from its snapshot of index {snap} has state hash {b:#018x} at index {at}, the original {a:#018x}"
                ),
            ));
        }
        None
    }
}
