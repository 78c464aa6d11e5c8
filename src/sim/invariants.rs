//! Safety invariants checked after every simulator step.

use super::node::SimNode;
use crate::core::{
    apply_conf_change, decode_conf_change, ConfState, Entry, EntryKind, HardState, MemStorage,
    NodeId, RawNode,
};
use std::collections::BTreeMap;
use std::fmt;

/// A broken invariant, with the seed that replays it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Seed of the failing run.
    pub seed: u64,
    /// What went wrong.
    pub what: String,
}

impl Violation {
    /// A violation found in run `seed`.
    pub fn new(seed: u64, what: String) -> Self {
        Violation { seed, what }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} (replay with RAFT_SIM_SEED={})",
            self.seed, self.what, self.seed
        )
    }
}

/// Tracks what the cluster has decided so far.
#[derive(Default)]
pub struct Checker {
    leaders: BTreeMap<u64, NodeId>,
    /// index -> (term, data, state-machine hash after applying it)
    committed: BTreeMap<u64, (u64, Vec<u8>, u64)>,
    /// index -> highest leader term known when the entry was first applied; any leader of a
    /// later term must hold the entry.
    commit_bound: BTreeMap<u64, u64>,
    /// (node, disk generation, term) -> vote cast, to check votes are never changed within
    /// a term by one disk (a wiped node starts a new generation).
    votes: BTreeMap<(NodeId, u64, u64), NodeId>,
    /// node -> disk generation (how many times it was wiped).
    generation: BTreeMap<NodeId, u64>,
    /// The latest committed configuration (in commit order).
    committed_conf: ConfState,
    /// Committed configuration changes seen.
    pub conf_changes: u64,
    /// User command bytes -> the index at which a state machine first applied them
    /// (exactly-once: a session retry must not reach the machine again while its session
    /// lives).
    first_applied: BTreeMap<Vec<u8>, u64>,
    /// node -> last index its state machine applied (this incarnation).
    applied: BTreeMap<NodeId, u64>,
    /// Wiped voters whose votes must not count (node -> its new disk generation): until a
    /// committed configuration no longer lists them as voters (they are re-admitted as
    /// learners, then promoted). Votes their old disk cast before the wipe still count.
    uncounted: BTreeMap<NodeId, u64>,
}

impl Checker {
    /// At most one leader per term; the new leader holds every committed entry.
    pub fn on_leader(
        &mut self,
        seed: u64,
        id: NodeId,
        term: u64,
        raw: &RawNode<MemStorage>,
    ) -> Result<(), Violation> {
        if let Some(&other) = self.leaders.get(&term) {
            if other != id {
                return Err(Violation::new(
                    seed,
                    format!("two leaders in term {term}: {other} and {id}"),
                ));
            }
        }
        self.leaders.insert(term, id);
        if !self.uncounted.is_empty() {
            // The votes cast for `id` in `term` that may count (votes are recorded when
            // they become durable, before they are sent) must make a quorum on their own.
            let conf = raw.status().conf;
            let counted = |v: NodeId| {
                let gen = self.generation.get(&v).copied().unwrap_or(0);
                (0..=gen).any(|g| {
                    self.uncounted.get(&v) != Some(&g)
                        && ((v == id && g == gen) || self.votes.get(&(v, g, term)) == Some(&id))
                })
            };
            if !crate::core::quorum_contains(&conf, counted) {
                return Err(Violation::new(
                    seed,
                    format!(
                        "node {id} was elected in term {term} with the vote of a wiped voter \
                         not re-admitted yet (node -> disk generation: {:?}; votes for it, \
                         by node and generation: {:?})",
                        self.uncounted,
                        self.votes
                            .iter()
                            .filter(|((_, _, t), &c)| *t == term && c == id)
                            .map(|((v, g, _), _)| (v, g))
                            .collect::<Vec<_>>()
                    ),
                ));
            }
        }
        let log = &raw.raft.log;
        let first = log.first_index();
        for (&i, (t, _, _)) in self.committed.range(first..) {
            if log.term(i).ok() != Some(*t) {
                return Err(Violation::new(
                    seed,
                    format!("leader completeness: leader {id} of term {term} lacks committed entry {i} (term {t})"),
                ));
            }
        }
        Ok(())
    }

    /// True if some node led `term`.
    pub fn has_leader(&self, term: u64) -> bool {
        self.leaders.contains_key(&term)
    }

    /// A node never votes twice in one term (across crashes too, once the vote is durable).
    pub fn check_hard_state(
        &mut self,
        seed: u64,
        id: NodeId,
        hs: HardState,
    ) -> Result<(), Violation> {
        if hs.vote != 0 {
            let gen = self.generation.get(&id).copied().unwrap_or(0);
            if let Some(&v) = self.votes.get(&(id, gen, hs.term)) {
                if v != hs.vote {
                    return Err(Violation::new(
                        seed,
                        format!(
                            "node {id} voted for {v} and then {} in term {}",
                            hs.vote, hs.term
                        ),
                    ));
                }
            }
            self.votes.insert((id, gen, hs.term), hs.vote);
        }
        Ok(())
    }

    /// Node `id` lost its disk: its new incarnation (a new disk generation) votes afresh,
    /// and those votes do not count until it is re-admitted.
    pub fn on_wiped(&mut self, id: NodeId) {
        let gen = self.generation.entry(id).or_insert(0);
        *gen += 1;
        self.uncounted.insert(id, *gen);
    }

    /// Sets the bootstrap configuration (the first committed one).
    pub fn set_initial_conf(&mut self, conf: ConfState) {
        self.committed_conf = conf;
    }

    /// Quorums of successive committed configurations must intersect.
    fn on_committed_conf(&mut self, seed: u64, e: &Entry) -> Result<(), Violation> {
        let Some(cc) = decode_conf_change(&e.data) else {
            return Ok(());
        };
        let Ok(next) = apply_conf_change(&self.committed_conf, &cc) else {
            return Ok(());
        };
        if !quorums_overlap(&self.committed_conf, &next) {
            return Err(Violation::new(
                seed,
                format!(
                    "configurations {:?} -> {:?} (index {}) have disjoint quorums",
                    self.committed_conf, next, e.index
                ),
            ));
        }
        self.uncounted.retain(|&v, _| next.is_voter(v));
        self.committed_conf = next;
        self.conf_changes += 1;
        Ok(())
    }

    /// State-machine safety: every node applies the same command at each index.
    pub fn on_apply(
        &mut self,
        seed: u64,
        id: NodeId,
        e: &Entry,
        hash: u64,
    ) -> Result<(), Violation> {
        let last = self.applied.get(&id).copied().unwrap_or(0);
        if e.index != last + 1 {
            return Err(Violation::new(
                seed,
                format!(
                    "node {id} applied entry {} right after {last} (applied twice or out of order)",
                    e.index
                ),
            ));
        }
        self.applied.insert(id, e.index);
        match self.committed.get(&e.index) {
            Some((t, d, h)) => {
                if *t != e.term || *d != e.data || *h != hash {
                    return Err(Violation::new(
                        seed,
                        format!(
                            "node {id} applied a different entry at {} (term {} vs {t})",
                            e.index, e.term
                        ),
                    ));
                }
            }
            None => {
                if e.kind == EntryKind::ConfChange {
                    self.on_committed_conf(seed, e)?;
                }
                self.committed
                    .insert(e.index, (e.term, e.data.to_vec(), hash));
                let bound = self.leaders.keys().next_back().copied().unwrap_or(0);
                self.commit_bound.insert(e.index, bound);
            }
        }
        Ok(())
    }

    /// The state machine of `id` was (re)built at `index` (start, restart or snapshot).
    pub fn set_applied(&mut self, id: NodeId, index: u64) {
        self.applied.insert(id, index);
    }

    /// A restored snapshot agrees with what was applied elsewhere at its index.
    pub fn check_restore(
        &mut self,
        seed: u64,
        id: NodeId,
        index: u64,
        term: u64,
        digest: u64,
    ) -> Result<(), Violation> {
        self.applied.insert(id, index);
        if let Some((t, _, h)) = self.committed.get(&index) {
            if *t != term || *h != digest {
                return Err(Violation::new(
                    seed,
                    format!("node {id} restored a divergent snapshot at {index}"),
                ));
            }
        }
        Ok(())
    }

    /// Exactly-once: command bytes `data` applied at `index` (`reached`: the state machine
    /// ran it, not a recorded answer) never reach a state machine at another index while
    /// the session that proposed them lives (simulated commands are unique and only
    /// deliberate client retries repeat them).
    pub fn on_command(
        &mut self,
        seed: u64,
        id: NodeId,
        index: u64,
        data: &[u8],
        reached: bool,
    ) -> Result<(), Violation> {
        if !reached {
            return Ok(());
        }
        let first = *self.first_applied.entry(data.to_vec()).or_insert(index);
        if first != index && index <= first + super::node::SESSION_EXPIRY {
            return Err(Violation::new(
                seed,
                format!(
                    "node {id} applied the command of index {first} again at {index}: {}",
                    String::from_utf8_lossy(data)
                ),
            ));
        }
        Ok(())
    }

    /// Entries sent by a leader of a term after an entry committed never contradict it.
    pub fn check_sent_entries(
        &self,
        seed: u64,
        term: u64,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        for e in entries {
            if let Some((t, d, _)) = self.committed.get(&e.index) {
                let bound = self.commit_bound.get(&e.index).copied().unwrap_or(u64::MAX);
                if term > bound && (*t != e.term || *d != e.data) {
                    return Err(Violation::new(
                        seed,
                        format!(
                            "leader sent an entry conflicting with committed {}",
                            e.index
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The committed command at `index`, if known.
    pub fn committed_data(&self, index: u64) -> Option<&Vec<u8>> {
        self.committed.get(&index).map(|(_, d, _)| d)
    }

    /// Log matching: where two logs hold the same term at an index, they agree before it;
    /// and every node's committed prefix matches the committed record.
    pub fn check_logs(
        &self,
        seed: u64,
        nodes: &BTreeMap<NodeId, SimNode>,
    ) -> Result<(), Violation> {
        let logs: Vec<(NodeId, u64, Vec<u64>, u64)> = nodes
            .iter()
            .filter_map(|(&id, n)| {
                let (first, terms) = n.log_terms()?;
                let commit = n.raw.as_ref()?.raft.log.committed;
                Some((id, first, terms, commit))
            })
            .collect();
        for (id, first, terms, commit) in &logs {
            for (k, t) in terms.iter().enumerate() {
                let i = first + k as u64;
                if i > *commit {
                    break;
                }
                if let Some((ct, _, _)) = self.committed.get(&i) {
                    if ct != t {
                        return Err(Violation::new(
                            seed,
                            format!("node {id} committed term {t} at {i}, cluster has {ct}"),
                        ));
                    }
                }
            }
        }
        for (a, la) in logs.iter().enumerate() {
            for lb in logs.iter().skip(a + 1) {
                let lo = la.1.max(lb.1);
                let hi = (la.1 + la.2.len() as u64).min(lb.1 + lb.2.len() as u64);
                let mut agreed = false;
                for i in (lo..hi).rev() {
                    let ta = la.2[(i - la.1) as usize];
                    let tb = lb.2[(i - lb.1) as usize];
                    if agreed && ta != tb {
                        return Err(Violation::new(
                            seed,
                            format!("log matching broken between {} and {} at {i}", la.0, lb.0),
                        ));
                    }
                    if ta == tb {
                        agreed = true;
                    }
                }
            }
        }
        Ok(())
    }
}

/// True if every quorum of `a` intersects every quorum of `b` (brute force over members).
pub fn quorums_overlap(a: &ConfState, b: &ConfState) -> bool {
    let mut members: Vec<NodeId> = a.all_members();
    members.extend(b.all_members());
    members.sort_unstable();
    members.dedup();
    let n = members.len().min(16);
    let is_q = |c: &ConfState, mask: u32| {
        super::oracle::majority(c, |id| {
            members
                .iter()
                .position(|&m| m == id)
                .is_some_and(|p| mask & (1 << p) != 0)
        })
    };
    let qa: Vec<u32> = (0..1u32 << n).filter(|&m| is_q(a, m)).collect();
    let qb: Vec<u32> = (0..1u32 << n).filter(|&m| is_q(b, m)).collect();
    qa.iter().all(|x| qb.iter().all(|y| x & y != 0))
}
