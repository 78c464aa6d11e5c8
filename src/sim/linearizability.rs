//! A linearizability checker for key-value histories.
//!
//! Clients record what they asked for and what they saw in a [`History`]: each operation is
//! invoked at some virtual time and either completes later with an [`Outcome`] or never
//! completes (a timeout, a crash, a dropped reply). [`check`] decides whether every completed
//! operation can be given a single point in time, between its invocation and its completion,
//! such that the points taken in order form a legal sequential run of a key-value store.
//!
//! Keys are independent registers that start out empty (`None`), so each key is checked on
//! its own (linearizability is compositional). Per key the checker runs a Wing & Gong / Lowe
//! style depth-first search: it repeatedly linearizes a *minimal* operation (one invoked no
//! later than the earliest completion among the operations still left), applies it to the
//! register and backtracks when an observed outcome does not match. States already explored
//! — the set of linearized operations plus the register value — are memoized, which keeps the
//! search polynomial on realistic histories, and the total work is bounded by a step budget
//! so a pathological history yields an error instead of a hang.
//!
//! Operations whose outcome is unknown may have taken effect at any point after their
//! invocation, or not at all: writes are linearized only when something later observes their
//! effect, reads with an unknown result carry no information and are ignored.
//!
//! Timestamps are compared with ties treated as overlapping: an operation completing at the
//! same virtual time another one is invoked does not have to precede it.
//!
//! Besides memoization the search prunes with exact rules: a read (or failed
//! compare-and-swap) that fits the register now is linearized at once without branching; a
//! state where some candidate needs a value nothing left can write is abandoned at once;
//! writes whose value nobody observes are never branched on (they ride along with other
//! writes); and unknown-outcome writes are only tried where they supply a value a candidate
//! needs. Writes are tried in the order of how urgently a pending read needs their value.
//! With these, thousands of operations spread over a few keys check in milliseconds. A
//! single key with dozens of operations overlapping every instant, failed compare-and-swaps
//! among them, may still exhaust the budget (see
//! [`LinearizabilityError::budget_exhausted`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// An operation a client asks the key-value store to perform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Reads the value of `key`.
    Get {
        /// The key read.
        key: String,
    },
    /// Sets `key` to `value`.
    Put {
        /// The key written.
        key: String,
        /// The value written.
        value: String,
    },
    /// Sets `key` to `new` if it currently holds `expected` (`None`: the key is absent).
    Cas {
        /// The key compared and written.
        key: String,
        /// The value the key must hold for the swap to happen.
        expected: Option<String>,
        /// The value written when the comparison succeeds.
        new: String,
    },
}

impl Op {
    /// The key the operation acts on.
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key } | Op::Put { key, .. } | Op::Cas { key, .. } => key,
        }
    }
}

/// What the client saw when its operation completed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A [`Op::Get`] returned this value (`None`: the key was absent).
    Get(Option<String>),
    /// A [`Op::Put`] was acknowledged.
    Put,
    /// A [`Op::Cas`] reported whether the swap happened.
    Cas(bool),
    /// The operation may or may not have taken effect (timeout, crash, dropped).
    Unknown,
}

/// One client operation in a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The client that issued the operation (informational: used in error reports).
    pub client: u64,
    /// The operation.
    pub op: Op,
    /// Virtual time of the invocation.
    pub invoke: u64,
    /// Virtual time of the completion; `None` if the operation never completed (its outcome
    /// is then treated as [`Outcome::Unknown`] whatever `outcome` says).
    pub complete: Option<u64>,
    /// What the client saw.
    pub outcome: Outcome,
}

/// A recorded set of client operations, built as the operations are invoked and complete.
#[derive(Debug, Clone, Default)]
pub struct History {
    events: Vec<Event>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` invoked `op` at `time`; returns the id to pass to
    /// [`History::complete`]. Until completed the operation counts as never completed.
    pub fn invoke(&mut self, client: u64, op: Op, time: u64) -> usize {
        self.events.push(Event {
            client,
            op,
            invoke: time,
            complete: None,
            outcome: Outcome::Unknown,
        });
        self.events.len() - 1
    }

    /// Records that operation `id` completed at `time` with `outcome` (pass
    /// [`Outcome::Unknown`] when the client gave up without learning the result). An outcome
    /// of the wrong kind for the operation, or a completion before the invocation, makes
    /// [`check`] report the event as malformed.
    ///
    /// # Panics
    /// If `id` was not returned by [`History::invoke`] on this history.
    pub fn complete(&mut self, id: usize, time: u64, outcome: Outcome) {
        let e = &mut self.events[id];
        e.complete = Some(time);
        e.outcome = outcome;
    }

    /// The recorded events, indexed by the ids [`History::invoke`] returned.
    pub fn events(&self) -> &[Event] {
        &self.events
    }
}

/// Why a history is not linearizable (or could not be decided).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearizabilityError {
    /// The key whose operations admit no linearization.
    pub key: String,
    /// A description of the operations involved and of why they do not fit.
    pub explanation: String,
}

impl fmt::Display for LinearizabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {:?}: {}", self.key, self.explanation)
    }
}

impl LinearizabilityError {
    /// True if the search gave up (the history was neither proven nor refuted).
    pub fn budget_exhausted(&self) -> bool {
        self.explanation.starts_with(BUDGET_EXHAUSTED)
    }
}

impl std::error::Error for LinearizabilityError {}

const BUDGET_EXHAUSTED: &str = "search budget exhausted";

/// Search steps [`check`] may spend on a whole history before giving up.
pub const DEFAULT_BUDGET: u64 = 2_000_000;

/// Checks that `history` is linearizable, with the [`DEFAULT_BUDGET`].
pub fn check(history: &History) -> Result<(), LinearizabilityError> {
    check_with_budget(history, DEFAULT_BUDGET)
}

/// Checks that `history` is linearizable, spending at most `budget` search steps over all
/// keys. Running out yields an error whose explanation says "search budget exhausted".
pub fn check_with_budget(history: &History, budget: u64) -> Result<(), LinearizabilityError> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in history.events.iter().enumerate() {
        by_key.entry(e.op.key()).or_default().push(i);
    }
    let mut steps = 0;
    for (key, ids) in by_key {
        let prepared = KeyHistory::new(key, &history.events, &ids)?;
        prepared.search(&mut steps, budget)?;
    }
    Ok(())
}

/// Register value id: 0 is `None`, others index `KeyHistory::values`.
type Val = u32;

/// An operation on one register, with its observed outcome folded in.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A read that returned the value.
    Read(Val),
    /// A write of the value (acknowledged, or unknown when optional).
    Write(Val),
    /// A compare-and-swap that succeeded: (expected, new).
    CasOk(Val, Val),
    /// A compare-and-swap that failed: the register did not hold `expected`.
    CasFail(Val),
    /// A compare-and-swap with unknown outcome: (expected, new).
    CasMaybe(Val, Val),
}

impl Kind {
    /// The register value after the operation, or `None` if it cannot apply to `v` (for
    /// `CasMaybe`: if it would be a no-op, which is the same as never taking effect).
    fn apply(self, v: Val) -> Option<Val> {
        match self {
            Kind::Read(r) => (r == v).then_some(v),
            Kind::Write(w) => Some(w),
            Kind::CasOk(e, n) | Kind::CasMaybe(e, n) => (e == v).then_some(n),
            Kind::CasFail(e) => (e != v).then_some(v),
        }
    }

    /// True if the outcome depends on the register's value.
    fn observes(self) -> bool {
        !matches!(self, Kind::Write(_))
    }

    /// True if the operation can change the register's value.
    fn mutates(self) -> bool {
        matches!(self, Kind::Write(_) | Kind::CasOk(..) | Kind::CasMaybe(..))
    }

    /// The value the operation needs the register to hold, if any.
    fn needs(self) -> Option<Val> {
        match self {
            Kind::Read(v) | Kind::CasOk(v, _) => Some(v),
            _ => None,
        }
    }

    /// The value the operation may write, if any.
    fn writes(self) -> Option<Val> {
        match self {
            Kind::Write(v) | Kind::CasOk(_, v) | Kind::CasMaybe(_, v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct KOp {
    /// Index of the event in the history.
    event: usize,
    kind: Kind,
    call: u64,
    /// Completion time; `None` for an optional operation (unknown outcome).
    ret: Option<u64>,
}

/// A node of the time-ordered list of call and return entries.
#[derive(Debug, Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
}

/// A fast hasher for the memo table, whose keys are already well-mixed Zobrist hashes.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, w: usize) {
        self.write_u64(w as u64);
    }
}

type BuildWordHasher = BuildHasherDefault<WordHasher>;

/// A pseudo-random 64-bit key for `i` (a SplitMix64 step), for Zobrist hashing.
fn zobrist(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A node of the depth-first search: a state and the moves still to try from it.
struct Level {
    /// (operation, register value after it), in the order they are tried.
    moves: Vec<(usize, Val)>,
    /// Blind writes that are candidates here; they go along with any write tried.
    blind: Vec<usize>,
    next: usize,
    val: Val,
    mode: u8,
    /// Operations the move into this state linearized.
    lifted: usize,
}

/// Search modes: what may follow the last operation linearized.
const FREE: u8 = 0;
/// After an optional write: only an operation observing the register (otherwise dropping
/// the write gives an equivalent order).
const AFTER_OPTIONAL: u8 = 1;
/// After a blind write: only another write (nothing else can follow it).
const AFTER_BLIND: u8 = 2;

const HEAD: usize = 0;

/// The mutable state of the search over one key: which operations are linearized (kept out
/// of a time-ordered list of call and return entries, Lowe-style), the register value, and
/// the mode.
///
/// A *blind* write is an acknowledged put whose value nothing observes (no read returns it,
/// no compare-and-swap expects it) and after which no failed compare-and-swap can come. In
/// a linearization it can only be followed by another write, so it can be moved to just
/// before any write without changing what anyone observes: the search never branches on
/// blind writes, it linearizes the candidate ones together with whatever write it tries,
/// on their own only when one must come next (its completion is the earliest), and leaves
/// those still pending at the end (after everything else they are invisible).
struct Search<'k, 'a> {
    kh: &'k KeyHistory<'a>,
    /// List nodes: `HEAD`, then entries in time order, then `tail`.
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
    tail: usize,
    /// List nodes of each required operation's call and return (0 for optional ones).
    call_node: Vec<usize>,
    ret_node: Vec<usize>,
    /// Optional operations (unknown outcome) by invocation time; they are not in the list.
    optional: Vec<usize>,
    /// Optional operations by the value they would write.
    writers: HashMap<Val, Vec<usize>>,
    /// Linearized operations, plus a last word holding the register value and the mode.
    bits: Vec<u64>,
    /// XOR of `zobrist(i)` over the linearized operations `i`.
    zobrist: u64,
    val: Val,
    mode: u8,
    /// Blind writes, by operation.
    blind: Vec<bool>,
    /// Required operations, other than blind writes, not yet linearized.
    left: usize,
    /// Per value, the operations not yet linearized that may write it.
    writers_left: Vec<u32>,
}

impl<'k, 'a> Search<'k, 'a> {
    fn new(kh: &'k KeyHistory<'a>) -> Self {
        let ops = &kh.ops;
        // At equal times calls come first, so operations touching at one instant overlap.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        let mut optional = Vec::new();
        let mut writers: HashMap<Val, Vec<usize>> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            match op.ret {
                Some(r) => {
                    order.push((op.call, false, i));
                    order.push((r, true, i));
                }
                None => {
                    optional.push(i);
                    if let Some(w) = op.kind.writes() {
                        writers.entry(w).or_default().push(i);
                    }
                }
            }
        }
        let mut writers_left = vec![0; kh.values.len()];
        for op in ops {
            if let Some(w) = op.kind.writes() {
                writers_left[w as usize] += 1;
            }
        }
        order.sort_unstable();
        optional.sort_by_key(|&i| ops[i].call);
        let observed: HashSet<Val> = ops
            .iter()
            .filter_map(|o| match o.kind {
                Kind::Read(v) | Kind::CasOk(v, _) | Kind::CasMaybe(v, _) => Some(v),
                _ => None,
            })
            .collect();
        let last_cas_fail = ops
            .iter()
            .filter(|o| matches!(o.kind, Kind::CasFail(_)))
            .filter_map(|o| o.ret)
            .max();
        let blind: Vec<bool> = ops
            .iter()
            .map(|o| {
                o.ret.is_some()
                    && matches!(o.kind, Kind::Write(w) if !observed.contains(&w))
                    && last_cas_fail.is_none_or(|r| r < o.call)
            })
            .collect();
        let left = ops
            .iter()
            .zip(&blind)
            .filter(|(o, b)| o.ret.is_some() && !**b)
            .count();
        let tail = order.len() + 1;
        let mut entries = vec![
            Entry {
                op: 0,
                is_call: false
            };
            tail + 1
        ];
        let mut call_node = vec![0; ops.len()];
        let mut ret_node = vec![0; ops.len()];
        for (pos, &(_, is_ret, op)) in order.iter().enumerate() {
            entries[pos + 1] = Entry {
                op,
                is_call: !is_ret,
            };
            if is_ret {
                ret_node[op] = pos + 1;
            } else {
                call_node[op] = pos + 1;
            }
        }
        Search {
            kh,
            entries,
            next: (1..=tail + 1).collect(),
            prev: (0..=tail).map(|i| i.saturating_sub(1)).collect(),
            tail,
            call_node,
            ret_node,
            left,
            optional,
            writers,
            bits: vec![0; ops.len().div_ceil(64) + 1],
            zobrist: 0,
            writers_left,
            val: 0,
            mode: FREE,
            blind,
        }
    }

    fn is_set(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, on: bool) {
        if on {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Marks operation `i` linearized.
    fn lift(&mut self, i: usize) {
        self.set(i, true);
        self.zobrist ^= zobrist(i);
        if let Some(w) = self.kh.ops[i].kind.writes() {
            self.writers_left[w as usize] -= 1;
        }
        if self.kh.ops[i].ret.is_some() {
            for x in [self.call_node[i], self.ret_node[i]] {
                self.next[self.prev[x]] = self.next[x];
                self.prev[self.next[x]] = self.prev[x];
            }
            if !self.blind[i] {
                self.left -= 1;
            }
        }
    }

    /// Undoes `lift(i)`; lifts must be undone in reverse order.
    fn unlift(&mut self, i: usize) {
        self.set(i, false);
        self.zobrist ^= zobrist(i);
        if let Some(w) = self.kh.ops[i].kind.writes() {
            self.writers_left[w as usize] += 1;
        }
        if self.kh.ops[i].ret.is_some() {
            for x in [self.ret_node[i], self.call_node[i]] {
                self.next[self.prev[x]] = x;
                self.prev[self.next[x]] = x;
            }
            if !self.blind[i] {
                self.left += 1;
            }
        }
    }

    /// The moves worth trying from the current state.
    ///
    /// Candidates are the required operations invoked no later than the earliest completion
    /// among those left. If one of them leaves the register unchanged and fits, it is the
    /// only move: any linearization from here stays valid with it moved first. Optional
    /// writes are only tried when they change the register to a value some candidate needs
    /// (directly or through a chain of optional compare-and-swaps); any other use of them
    /// can be dropped from a linearization without changing what is observed. Blind writes
    /// among the candidates are returned apart, to go along with whichever write is tried.
    fn moves(&self, steps: &mut u64) -> (Vec<(usize, Val)>, Vec<usize>) {
        let ops = &self.kh.ops;
        let (val, mode) = (self.val, self.mode);
        let allowed = |kind: Kind| match mode {
            AFTER_OPTIONAL => kind.observes(),
            AFTER_BLIND => matches!(kind, Kind::Write(_)),
            _ => true,
        };
        let mut moves = Vec::new();
        let mut blind = Vec::new();
        let mut needed = Vec::new();
        // (value, completion) of the candidates needing a value the register does not hold.
        let mut urgent: Vec<(Val, u64)> = Vec::new();
        // A failed compare-and-swap that does not fit needs any different value.
        let mut any_change = false;
        let mut e = self.next[HEAD];
        while e != self.tail && self.entries[e].is_call {
            *steps += 1;
            let i = self.entries[e].op;
            let kind = ops[i].kind;
            if self.blind[i] {
                blind.push(i);
                e = self.next[e];
                continue;
            }
            match kind.apply(val) {
                Some(v) if !kind.mutates() => return (vec![(i, v)], Vec::new()),
                Some(v) if allowed(kind) => moves.push((i, v)),
                _ => {}
            }
            let need = match kind {
                Kind::Read(r) => Some(r),
                Kind::CasOk(x, _) if x != val => Some(x),
                Kind::CasFail(_) => {
                    any_change = true;
                    None
                }
                _ => None,
            };
            if let Some(x) = need {
                // Needs a value nothing left can write: this state is a dead end.
                if self.writers_left[x as usize] == 0 {
                    return (Vec::new(), Vec::new());
                }
                needed.push(x);
                urgent.push((x, ops[i].ret.unwrap_or(u64::MAX)));
            }
            e = self.next[e];
        }
        let horizon = if e == self.tail {
            u64::MAX
        } else {
            let first = self.entries[e].op;
            // A blind write that must come next is tried on its own.
            if self.blind[first] && allowed(ops[first].kind) {
                moves.extend(ops[first].kind.apply(val).map(|v| (first, v)));
            }
            ops[first].ret.unwrap_or(u64::MAX)
        };
        let consider = |o: usize, moves: &mut Vec<(usize, Val)>| {
            let kind = ops[o].kind;
            if self.is_set(o) || !allowed(kind) {
                return;
            }
            if let Some(v) = kind.apply(val).filter(|&v| v != val) {
                moves.push((o, v));
            }
        };
        if any_change {
            for &o in &self.optional {
                if ops[o].call > horizon {
                    break;
                }
                *steps += 1;
                consider(o, &mut moves);
            }
        } else {
            let mut seen_vals = HashSet::new();
            while let Some(w) = needed.pop() {
                if !seen_vals.insert(w) {
                    continue;
                }
                for &o in self.writers.get(&w).into_iter().flatten() {
                    if ops[o].call > horizon {
                        continue;
                    }
                    *steps += 1;
                    if let Kind::CasMaybe(x, _) = ops[o].kind {
                        if x != val {
                            needed.push(x);
                        }
                    }
                    consider(o, &mut moves);
                }
            }
        }
        // Try first the writes producing what the most pressing candidate needs.
        if !urgent.is_empty() {
            moves.sort_by_key(|&(_, v)| {
                urgent
                    .iter()
                    .filter(|&&(x, _)| x == v)
                    .map(|&(_, t)| t)
                    .min()
                    .unwrap_or(u64::MAX)
            });
        }
        (moves, blind)
    }
}

/// The operations on one key, ready to search.
struct KeyHistory<'a> {
    key: &'a str,
    events: &'a [Event],
    values: Vec<Option<&'a str>>,
    ops: Vec<KOp>,
}

impl<'a> KeyHistory<'a> {
    fn new(key: &'a str, events: &'a [Event], ids: &[usize]) -> Result<Self, LinearizabilityError> {
        let mut values: Vec<Option<&str>> = vec![None];
        let mut index: HashMap<&str, Val> = HashMap::new();
        let mut intern = |v: Option<&'a str>| -> Val {
            match v {
                None => 0,
                Some(s) => *index.entry(s).or_insert_with(|| {
                    values.push(Some(s));
                    (values.len() - 1) as Val
                }),
            }
        };
        let mut ops = Vec::with_capacity(ids.len());
        for &id in ids {
            let e = &events[id];
            let malformed = |why: &str| LinearizabilityError {
                key: key.to_string(),
                explanation: format!("malformed event: {why}: {}", describe(id, e)),
            };
            if e.complete.is_some_and(|t| t < e.invoke) {
                return Err(malformed("completes before it is invoked"));
            }
            let outcome = match e.complete {
                Some(_) => &e.outcome,
                None => &Outcome::Unknown,
            };
            let kind = match (&e.op, outcome) {
                (Op::Get { .. }, Outcome::Get(v)) => Kind::Read(intern(v.as_deref())),
                (Op::Get { .. }, Outcome::Unknown) => continue,
                (Op::Put { value, .. }, Outcome::Put | Outcome::Unknown) => {
                    Kind::Write(intern(Some(value)))
                }
                (Op::Cas { expected, new, .. }, Outcome::Cas(ok)) => {
                    let exp = intern(expected.as_deref());
                    if *ok {
                        Kind::CasOk(exp, intern(Some(new)))
                    } else {
                        Kind::CasFail(exp)
                    }
                }
                (Op::Cas { expected, new, .. }, Outcome::Unknown) => {
                    Kind::CasMaybe(intern(expected.as_deref()), intern(Some(new)))
                }
                _ => return Err(malformed("outcome does not match the operation")),
            };
            let ret = match outcome {
                Outcome::Unknown => None,
                _ => e.complete,
            };
            ops.push(KOp {
                event: id,
                kind,
                call: e.invoke,
                ret,
            });
        }
        let kh = KeyHistory {
            key,
            events,
            values,
            ops,
        };
        kh.check_values_written()?;
        Ok(kh)
    }

    /// Rejects early, with a clear explanation, an operation that observed a value no
    /// operation invoked before its completion could have written.
    fn check_values_written(&self) -> Result<(), LinearizabilityError> {
        // Earliest invocation of a writer of each value.
        let mut first_write: HashMap<Val, u64> = HashMap::new();
        for op in &self.ops {
            if let Some(w) = op.kind.writes() {
                let t = first_write.entry(w).or_insert(op.call);
                *t = (*t).min(op.call);
            }
        }
        for op in &self.ops {
            let (Some(v), Some(ret)) = (op.kind.needs(), op.ret) else {
                continue;
            };
            if v != 0 && first_write.get(&v).is_none_or(|&t| t > ret) {
                return Err(self.error(format!(
                    "{} observed {}, which no operation invoked before it completed could have written",
                    describe(op.event, &self.events[op.event]),
                    self.show(v)
                )));
            }
        }
        Ok(())
    }

    fn error(&self, explanation: String) -> LinearizabilityError {
        LinearizabilityError {
            key: self.key.to_string(),
            explanation,
        }
    }

    fn show(&self, v: Val) -> String {
        format!("{:?}", self.values[v as usize])
    }

    /// Searches for a linearization, counting steps in `steps` (shared across keys).
    fn search(&self, steps: &mut u64, budget: u64) -> Result<(), LinearizabilityError> {
        let mut s = Search::new(self);
        // Explored states, by Zobrist hash; the full bitsets resolve collisions.
        let mut cache: HashMap<u64, Vec<Box<[u64]>>, BuildWordHasher> = HashMap::default();
        let mut path: Vec<usize> = Vec::new();
        let mut best: Vec<usize> = Vec::new();
        if s.left == 0 {
            return Ok(());
        }
        let (moves, blind) = s.moves(steps);
        let mut levels = vec![Level {
            moves,
            blind,
            next: 0,
            val: s.val,
            mode: s.mode,
            lifted: 0,
        }];
        while let Some(level) = levels.last_mut() {
            if *steps > budget {
                return Err(self.error(format!(
                    "{BUDGET_EXHAUSTED} after {} steps ({} operations on the key, at most {} placed in order); the history is too concurrent to decide within the budget",
                    *steps,
                    self.ops.len(),
                    best.len()
                )));
            }
            let Some(&(i, v)) = level.moves.get(level.next) else {
                // Every move from this state failed: undo the move that led here.
                let lifted = level.lifted;
                levels.pop();
                for _ in 0..lifted {
                    s.unlift(path.pop().expect("lifted operation"));
                }
                if let Some(parent) = levels.last() {
                    s.val = parent.val;
                    s.mode = parent.mode;
                }
                continue;
            };
            level.next += 1;
            *steps += 1;
            let start = path.len();
            if matches!(self.ops[i].kind, Kind::Write(_)) {
                for &b in &level.blind {
                    if b != i && !s.is_set(b) {
                        s.lift(b);
                        path.push(b);
                    }
                }
            }
            s.lift(i);
            path.push(i);
            let mode = if self.ops[i].ret.is_none() {
                AFTER_OPTIONAL
            } else if s.blind[i] {
                AFTER_BLIND
            } else {
                FREE
            };
            let w = s.bits.len() - 1;
            s.bits[w] = u64::from(v) | (u64::from(mode) << 32);
            let hash = s.zobrist ^ zobrist(usize::MAX - s.bits[w] as usize);
            let bucket = cache.entry(hash).or_default();
            if bucket.iter().any(|b| **b == s.bits[..]) {
                while path.len() > start {
                    s.unlift(path.pop().expect("lifted operation"));
                }
                continue;
            }
            bucket.push(s.bits.clone().into_boxed_slice());
            s.val = v;
            s.mode = mode;
            if path.len() > best.len() {
                best.clone_from(&path);
            }
            if s.left == 0 {
                return Ok(());
            }
            let (moves, blind) = s.moves(steps);
            levels.push(Level {
                moves,
                blind,
                next: 0,
                val: v,
                mode,
                lifted: path.len() - start,
            });
        }
        Err(self.error(self.explain(&best)))
    }

    /// Describes why no linearization extends the longest consistent prefix `best`.
    fn explain(&self, best: &[usize]) -> String {
        // Trailing optional writes were only tentative; leave them out of the story.
        let mut prefix = best;
        while let Some((&last, rest)) = prefix.split_last() {
            if self.ops[last].ret.is_some() {
                break;
            }
            prefix = rest;
        }
        let mut val = 0;
        let mut done = vec![false; self.ops.len()];
        for &i in prefix {
            val = self.ops[i].kind.apply(val).unwrap_or(val);
            done[i] = true;
        }
        let required = self.ops.iter().filter(|o| o.ret.is_some()).count();
        let mut out = format!(
            "no linearization of the {} operations on the key ({} with a known outcome)",
            self.ops.len(),
            required
        );
        const SHOWN: usize = 8;
        if prefix.is_empty() {
            out.push_str("; no operation can even come first");
        } else {
            out.push_str(&format!(
                "; the longest consistent order found places {} of them, ending with:",
                prefix.len()
            ));
            for &i in &prefix[prefix.len().saturating_sub(SHOWN)..] {
                out.push_str(&format!("\n  {}", self.describe_op(i)));
            }
        }
        out.push_str(&format!(
            "\nthe register then holds {}; none of the operations that may come next fits:",
            self.show(val)
        ));
        let deadline = (0..self.ops.len())
            .filter(|&i| !done[i])
            .filter_map(|i| self.ops[i].ret.map(|r| (r, i)))
            .min();
        let mut shown = 0;
        for (i, op) in self.ops.iter().enumerate() {
            if done[i] || deadline.is_some_and(|(r, _)| op.call > r) {
                continue;
            }
            if op.ret.is_none() {
                continue;
            }
            let why = match op.kind {
                Kind::Read(r) if r != val => format!("it read {}", self.show(r)),
                Kind::CasOk(e, _) if e != val => {
                    format!("it succeeded although it expected {}", self.show(e))
                }
                Kind::CasFail(_) if op.kind.apply(val).is_none() => {
                    "it failed although the register held the expected value".to_string()
                }
                _ => "it fits, but nothing consistent can follow it".to_string(),
            };
            if shown == SHOWN {
                out.push_str("\n  ...");
                break;
            }
            shown += 1;
            out.push_str(&format!("\n  {}: {why}", self.describe_op(i)));
        }
        if let Some((r, i)) = deadline.filter(|_| shown > 1) {
            out.push_str(&format!(
                "\n(#{} completed at {r}, so it must take effect before anything invoked later)",
                self.ops[i].event
            ));
        }
        out
    }

    fn describe_op(&self, i: usize) -> String {
        let ev = self.ops[i].event;
        describe(ev, &self.events[ev])
    }
}

/// A one-line description of event `id`.
fn describe(id: usize, e: &Event) -> String {
    let op = match &e.op {
        Op::Get { .. } => "get".to_string(),
        Op::Put { value, .. } => format!("put {value:?}"),
        Op::Cas { expected, new, .. } => format!("cas {expected:?} -> {new:?}"),
    };
    let outcome = match (e.complete, &e.outcome) {
        (None, _) | (_, Outcome::Unknown) => "unknown".to_string(),
        (_, Outcome::Get(v)) => format!("{v:?}"),
        (_, Outcome::Put) => "ok".to_string(),
        (_, Outcome::Cas(ok)) => ok.to_string(),
    };
    let end = e.complete.map_or("never".to_string(), |t| t.to_string());
    format!(
        "#{id} client {} {op} => {outcome} [{}..{end}]",
        e.client, e.invoke
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::Rng;
    use std::time::{Duration, Instant};

    fn get(key: &str) -> Op {
        Op::Get {
            key: key.to_string(),
        }
    }

    fn put(key: &str, value: &str) -> Op {
        Op::Put {
            key: key.to_string(),
            value: value.to_string(),
        }
    }

    fn cas(key: &str, expected: Option<&str>, new: &str) -> Op {
        Op::Cas {
            key: key.to_string(),
            expected: expected.map(str::to_string),
            new: new.to_string(),
        }
    }

    fn read(v: Option<&str>) -> Outcome {
        Outcome::Get(v.map(str::to_string))
    }

    /// Builds a history from (client, op, invoke, complete, outcome) tuples.
    fn history(ops: Vec<(u64, Op, u64, Option<u64>, Outcome)>) -> History {
        let mut h = History::new();
        for (client, op, invoke, complete, outcome) in ops {
            let id = h.invoke(client, op, invoke);
            if let Some(t) = complete {
                h.complete(id, t, outcome);
            }
        }
        h
    }

    #[test]
    fn empty_history_passes() {
        check(&History::new()).unwrap();
    }

    #[test]
    fn sequential_history_passes() {
        let h = history(vec![
            (1, get("a"), 0, Some(1), read(None)),
            (1, put("a", "1"), 2, Some(3), Outcome::Put),
            (2, get("a"), 4, Some(5), read(Some("1"))),
            (2, cas("a", Some("1"), "2"), 6, Some(7), Outcome::Cas(true)),
            (1, cas("a", Some("1"), "3"), 8, Some(9), Outcome::Cas(false)),
            (1, get("a"), 10, Some(11), read(Some("2"))),
            (3, cas("b", None, "x"), 12, Some(13), Outcome::Cas(true)),
            (3, get("b"), 14, Some(15), read(Some("x"))),
            (3, get("a"), 16, Some(17), read(Some("2"))),
        ]);
        check(&h).unwrap();
    }

    #[test]
    fn overlapping_writes_pass_with_either_read_order() {
        for (first, second) in [("1", "2"), ("2", "1")] {
            // Reads concurrent with both writes may see them in either order...
            let h = history(vec![
                (1, put("a", "1"), 0, Some(10), Outcome::Put),
                (2, put("a", "2"), 0, Some(10), Outcome::Put),
                (3, get("a"), 1, Some(4), read(Some(first))),
                (3, get("a"), 5, Some(9), read(Some(second))),
                (3, get("a"), 20, Some(21), read(Some(second))),
            ]);
            check(&h).unwrap();
            // ...and a later read sees whichever was ordered last.
            let h = history(vec![
                (1, put("a", "1"), 0, Some(10), Outcome::Put),
                (2, put("a", "2"), 0, Some(10), Outcome::Put),
                (3, get("a"), 20, Some(21), read(Some(first))),
            ]);
            check(&h).unwrap();
        }
    }

    #[test]
    fn reads_going_back_in_time_fail() {
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, put("a", "2"), 0, Some(10), Outcome::Put),
            (3, get("a"), 11, Some(12), read(Some("1"))),
            (3, get("a"), 13, Some(14), read(Some("2"))),
        ]);
        check(&h).unwrap_err();
    }

    #[test]
    fn stale_read_fails() {
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (1, put("a", "2"), 20, Some(30), Outcome::Put),
            (2, get("a"), 40, Some(50), read(Some("1"))),
        ]);
        let err = check(&h).unwrap_err();
        assert_eq!(err.key, "a");
        assert!(!err.budget_exhausted());
        println!("{err}");
        // The report names the stale read and the write it missed.
        assert!(err.explanation.contains("#2 client 2 get"), "{err}");
        assert!(err.explanation.contains("#1 client 1 put \"2\""), "{err}");
    }

    #[test]
    fn read_of_unwritten_value_fails() {
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, get("a"), 20, Some(30), read(Some("7"))),
        ]);
        let err = check(&h).unwrap_err();
        assert!(err.explanation.contains("\"7\""), "{err}");
        // Written, but only after the read completed.
        let h = history(vec![
            (2, get("a"), 0, Some(10), read(Some("1"))),
            (1, put("a", "1"), 20, Some(30), Outcome::Put),
        ]);
        check(&h).unwrap_err();
        // Absent while a value is there.
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, get("a"), 20, Some(30), read(None)),
        ]);
        check(&h).unwrap_err();
    }

    #[test]
    fn failed_cas_that_should_have_succeeded_fails() {
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (
                2,
                cas("a", Some("1"), "2"),
                20,
                Some(30),
                Outcome::Cas(false),
            ),
        ]);
        let err = check(&h).unwrap_err();
        assert!(err.explanation.contains("failed although"), "{err}");
        let h = history(vec![(
            2,
            cas("a", None, "2"),
            20,
            Some(30),
            Outcome::Cas(false),
        )]);
        check(&h).unwrap_err();
        // Succeeding without the expected value fails too.
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (
                2,
                cas("a", Some("0"), "2"),
                20,
                Some(30),
                Outcome::Cas(true),
            ),
        ]);
        check(&h).unwrap_err();
        // A concurrent write may explain a failure.
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (
                2,
                cas("a", Some("1"), "2"),
                20,
                Some(30),
                Outcome::Cas(false),
            ),
            (3, put("a", "3"), 25, Some(35), Outcome::Put),
        ]);
        check(&h).unwrap();
    }

    #[test]
    fn unknown_writes_may_or_may_not_apply() {
        for seen in ["1", "2"] {
            // Never completed.
            let h = history(vec![
                (1, put("a", "1"), 0, Some(10), Outcome::Put),
                (2, put("a", "2"), 20, None, Outcome::Unknown),
                (3, get("a"), 30, Some(40), read(Some(seen))),
                (3, get("a"), 50, Some(60), read(Some(seen))),
            ]);
            check(&h).unwrap();
            // Completed with a timeout.
            let h = history(vec![
                (1, put("a", "1"), 0, Some(10), Outcome::Put),
                (2, cas("a", Some("1"), "2"), 20, Some(25), Outcome::Unknown),
                (3, get("a"), 30, Some(40), read(Some(seen))),
            ]);
            check(&h).unwrap();
        }
        // It can take effect late, but only once.
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, put("a", "2"), 20, None, Outcome::Unknown),
            (3, get("a"), 30, Some(40), read(Some("1"))),
            (3, get("a"), 50, Some(60), read(Some("2"))),
            (3, get("a"), 70, Some(80), read(Some("2"))),
        ]);
        check(&h).unwrap();
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, put("a", "2"), 20, None, Outcome::Unknown),
            (3, get("a"), 30, Some(40), read(Some("2"))),
            (3, get("a"), 50, Some(60), read(Some("1"))),
        ]);
        check(&h).unwrap_err();
        // It cannot take effect before it was invoked.
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (3, get("a"), 20, Some(30), read(Some("2"))),
            (2, put("a", "2"), 40, None, Outcome::Unknown),
        ]);
        check(&h).unwrap_err();
        // An unknown CAS only applies when its expectation holds.
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, cas("a", Some("0"), "2"), 20, None, Outcome::Unknown),
            (3, get("a"), 30, Some(40), read(Some("2"))),
        ]);
        check(&h).unwrap_err();
        // A read with an unknown result says nothing.
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (3, get("a"), 20, None, Outcome::Unknown),
            (3, get("a"), 30, Some(40), Outcome::Unknown),
        ]);
        check(&h).unwrap();
    }

    #[test]
    fn chained_unknown_writes_can_explain_a_read() {
        let h = history(vec![
            (1, put("a", "1"), 0, None, Outcome::Unknown),
            (2, cas("a", Some("1"), "2"), 5, None, Outcome::Unknown),
            (3, put("a", "3"), 10, Some(20), Outcome::Put),
            (4, get("a"), 30, Some(40), read(Some("2"))),
        ]);
        check(&h).unwrap();
    }

    #[test]
    fn equal_times_count_as_concurrent() {
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (1, put("a", "2"), 10, Some(20), Outcome::Put),
            (2, get("a"), 20, Some(30), read(Some("1"))),
        ]);
        check(&h).unwrap();
    }

    #[test]
    fn keys_are_independent() {
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (2, put("b", "1"), 20, Some(30), Outcome::Put),
            (3, get("a"), 40, Some(50), read(Some("1"))),
            (3, get("b"), 40, Some(50), read(Some("1"))),
            (3, get("c"), 40, Some(50), read(None)),
        ]);
        check(&h).unwrap();
        let h = history(vec![
            (1, put("a", "1"), 0, Some(10), Outcome::Put),
            (3, get("b"), 40, Some(50), read(Some("1"))),
        ]);
        assert_eq!(check(&h).unwrap_err().key, "b");
    }

    #[test]
    fn malformed_events_are_rejected() {
        let h = history(vec![(1, put("a", "1"), 0, Some(10), Outcome::Cas(true))]);
        assert!(check(&h).unwrap_err().explanation.contains("malformed"));
        let h = history(vec![(1, put("a", "1"), 10, Some(5), Outcome::Put)]);
        assert!(check(&h).unwrap_err().explanation.contains("malformed"));
    }

    /// A stale value a read could be made to return.
    struct Stale {
        /// The read's event id.
        read: usize,
        /// The value the register held before the last write that completed before the
        /// read was invoked.
        value: Option<String>,
        /// That value's writer completed before the overwriting write was invoked, so no
        /// reordering of the writes can explain the read.
        certain: bool,
    }

    /// A linearizable history from a random sequential schedule: operation `i` takes effect
    /// at time `10 * i + 5` and its interval is stretched randomly around that point. About
    /// one write in twelve has an unknown outcome and applies or not at random. Also returns
    /// the reads that could be made stale.
    fn random_history(seed: u64, n: usize, keys: u64, spread: u64) -> (History, Vec<Stale>) {
        random_history_mix(seed, n, keys, spread, true)
    }

    /// As [`random_history`]; without compare-and-swaps unless `cas`.
    fn random_history_mix(
        seed: u64,
        n: usize,
        keys: u64,
        spread: u64,
        cas_too: bool,
    ) -> (History, Vec<Stale>) {
        let mut rng = Rng::new(seed);
        let mut h = History::new();
        // Per key: current value, and its writer's completion if acknowledged.
        let mut model: HashMap<String, (Option<String>, Option<u64>)> = HashMap::new();
        // Per key, acknowledged value changes: (completion, value before, Stale::certain).
        let mut writes: HashMap<String, Vec<(u64, Option<String>, bool)>> = HashMap::new();
        let mut stale = Vec::new();
        for i in 0..n as u64 {
            let key = format!("k{}", rng.range(0, keys));
            let point = 10 * i + 5;
            let invoke = point.saturating_sub(rng.range(0, spread));
            let complete = point + rng.range(0, spread);
            let client = rng.range(0, 16);
            let (cur, cur_writer) = model.get(&key).cloned().unwrap_or_default();
            let fresh = format!("v{i}");
            let roll = rng.range(0, if cas_too { 100 } else { 75 });
            let unknown = rng.chance(1, 12);
            let (op, outcome, next) = if roll < 45 {
                let outcome = if rng.chance(1, 30) {
                    Outcome::Unknown
                } else {
                    Outcome::Get(cur.clone())
                };
                (get(&key), outcome, cur.clone())
            } else if roll < 75 {
                (put(&key, &fresh), Outcome::Put, Some(fresh.clone()))
            } else {
                let expected = if rng.chance(1, 2) {
                    cur.clone()
                } else if rng.chance(1, 2) {
                    None
                } else {
                    Some(format!("v{}", rng.range(0, i + 1)))
                };
                let ok = expected == cur;
                let op = cas(&key, expected.as_deref(), &fresh);
                let next = if ok { Some(fresh.clone()) } else { cur.clone() };
                (op, Outcome::Cas(ok), next)
            };
            let is_read = matches!(op, Op::Get { .. });
            let id = h.invoke(client, op, invoke);
            if unknown && !is_read {
                // May or may not have applied; the client never learns which.
                if rng.chance(1, 2) {
                    model.insert(key.clone(), (next, None));
                }
                if rng.chance(1, 2) {
                    h.complete(id, complete, Outcome::Unknown);
                }
                continue;
            }
            h.complete(id, complete, outcome.clone());
            if is_read {
                if outcome == Outcome::Unknown {
                    continue;
                }
                let last = writes
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .rev()
                    .find(|(done, _, _)| *done < invoke);
                if let Some((_, before, certain)) = last {
                    if *before != cur {
                        stale.push(Stale {
                            read: id,
                            value: before.clone(),
                            certain: *certain,
                        });
                    }
                }
            } else if next != cur {
                let certain = cur_writer.is_some_and(|c| c < invoke);
                writes
                    .entry(key.clone())
                    .or_default()
                    .push((complete, cur, certain));
                model.insert(key, (next, Some(complete)));
            }
        }
        (h, stale)
    }

    #[test]
    fn random_linearizable_histories_pass() {
        for seed in 0..200 {
            let spread = 10 + seed % 80;
            let (h, _) = random_history(seed, 200, 1 + seed % 4, spread);
            if let Err(e) = check(&h) {
                panic!("seed {seed}: {e}");
            }
        }
    }

    #[test]
    fn random_stale_reads_are_caught() {
        let (mut tried, mut caught) = ([0; 2], [0; 2]);
        for seed in 0..300 {
            let spread = 10 + seed % 60;
            let (h, stale) = random_history(1000 + seed, 150, 1 + seed % 3, spread);
            // One stale read of each kind per history.
            for certain in [false, true] {
                let choices: Vec<&Stale> = stale.iter().filter(|s| s.certain == certain).collect();
                if choices.is_empty() {
                    continue;
                }
                let pick = choices[(seed as usize * 7919) % choices.len()];
                let mut h = h.clone();
                h.events[pick.read].outcome = Outcome::Get(pick.value.clone());
                tried[usize::from(certain)] += 1;
                if check(&h).is_err() {
                    caught[usize::from(certain)] += 1;
                }
            }
        }
        println!("stale reads caught: {caught:?} of {tried:?} (uncertain, certain)");
        assert!(
            tried.iter().all(|&t| t >= 200),
            "too few stale reads planted: {tried:?}"
        );
        // A read returning the value some write overwrote before the read began: caught
        // unless the overwritten value's own write overlapped that write (and so may have
        // come after it).
        assert!(
            caught[0] * 100 >= tried[0] * 85,
            "caught {} of {} stale reads",
            caught[0],
            tried[0]
        );
        // When the writes were ordered in real time too, nothing can explain the read.
        assert_eq!(caught[1], tried[1], "stale reads that no order explains");
    }

    #[test]
    fn large_history_checks_fast() {
        let (h, _) = random_history(7, 2000, 10, 60);
        assert_eq!(h.events().len(), 2000);
        let start = Instant::now();
        check(&h).unwrap();
        let took = start.elapsed();
        // Also a single hot key, with much more concurrency.
        let (h, _) = random_history(8, 2000, 1, 100);
        let start2 = Instant::now();
        check(&h).unwrap();
        let took2 = start2.elapsed();
        println!("2000 events: 10 keys {took:?}, 1 key {took2:?}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(took2 < Duration::from_secs(1), "took {took2:?}");
    }

    #[test]
    fn highly_concurrent_puts_and_gets_check() {
        // Dozens of operations overlap at every instant on a single key; most writes are
        // never read.
        let (h, _) = random_history_mix(12, 2000, 1, 300, false);
        let start = Instant::now();
        check(&h).unwrap();
        println!(
            "2000 events, one key, ~50 overlapping: {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn budget_exhaustion_is_reported() {
        let (h, _) = random_history(9, 500, 1, 200);
        let err = check_with_budget(&h, 100).unwrap_err();
        assert!(err.explanation.contains("search budget exhausted"), "{err}");
        assert!(err.budget_exhausted());
        // With the default budget it is decided.
        check(&h).unwrap();
    }

    /// Reference semantics by exhaustive search over every order of every subset of the
    /// operations with an unknown outcome (tiny histories only).
    fn brute_force(h: &History) -> bool {
        struct Item<'a> {
            op: &'a Op,
            outcome: Option<&'a Outcome>,
            invoke: u64,
            complete: Option<u64>,
        }
        fn search(items: &[Item], used: &mut Vec<bool>, val: Option<&str>) -> bool {
            let required_left = items
                .iter()
                .zip(used.iter())
                .any(|(it, u)| !u && it.outcome.is_some());
            if !required_left {
                return true;
            }
            for i in 0..items.len() {
                if used[i] {
                    continue;
                }
                // Every unused acknowledged operation must not have completed before `i`
                // was invoked.
                let blocked = items.iter().zip(used.iter()).any(|(it, u)| {
                    !u && it.outcome.is_some() && it.complete.is_some_and(|c| c < items[i].invoke)
                });
                if blocked {
                    continue;
                }
                let next: Option<Option<&str>> = match (items[i].op, items[i].outcome) {
                    (Op::Get { .. }, Some(Outcome::Get(v))) => (v.as_deref() == val).then_some(val),
                    (Op::Put { value, .. }, _) => Some(Some(value)),
                    (Op::Cas { expected, new, .. }, Some(Outcome::Cas(true))) => {
                        (expected.as_deref() == val).then_some(Some(new))
                    }
                    (Op::Cas { expected, .. }, Some(Outcome::Cas(false))) => {
                        (expected.as_deref() != val).then_some(val)
                    }
                    (Op::Cas { expected, new, .. }, None) => Some(if expected.as_deref() == val {
                        Some(new.as_str())
                    } else {
                        val
                    }),
                    _ => unreachable!(),
                };
                if let Some(next) = next {
                    used[i] = true;
                    let ok = search(items, used, next);
                    used[i] = false;
                    if ok {
                        return true;
                    }
                }
            }
            false
        }
        let mut keys: Vec<&str> = h.events().iter().map(|e| e.op.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter().all(|key| {
            let items: Vec<Item> = h
                .events()
                .iter()
                .filter(|e| e.op.key() == key)
                .filter_map(|e| {
                    let known = e.complete.is_some() && e.outcome != Outcome::Unknown;
                    if !known && matches!(e.op, Op::Get { .. }) {
                        return None;
                    }
                    Some(Item {
                        op: &e.op,
                        outcome: known.then_some(&e.outcome),
                        invoke: e.invoke,
                        complete: e.complete,
                    })
                })
                .collect();
            search(&items, &mut vec![false; items.len()], None)
        })
    }

    #[test]
    fn agrees_with_exhaustive_search_on_small_random_histories() {
        const CASES: u64 = 20_000;
        const MAXN: u64 = 10;
        let mut rng = Rng::new(42);
        let values = [None, Some("1"), Some("2"), Some("3")];
        let (mut ok, mut bad) = (0, 0);
        for case in 0..CASES {
            let mut h = History::new();
            let n = rng.range(1, MAXN);
            for c in 0..n {
                let key = if rng.chance(1, 5) { "b" } else { "a" };
                let invoke = rng.range(0, 20);
                let complete = invoke + rng.range(0, 10);
                let pick = |rng: &mut Rng| values[rng.range(0, 4) as usize];
                let some = |rng: &mut Rng| values[rng.range(1, 4) as usize].unwrap_or("1");
                let (op, outcome) = match rng.range(0, 3) {
                    0 => (get(key), read(pick(&mut rng))),
                    1 => (put(key, some(&mut rng)), Outcome::Put),
                    _ => {
                        let expected = pick(&mut rng);
                        let op = cas(key, expected, some(&mut rng));
                        (op, Outcome::Cas(rng.chance(1, 2)))
                    }
                };
                let id = h.invoke(c, op, invoke);
                match rng.range(0, 10) {
                    0 => {}
                    1 => h.complete(id, complete, Outcome::Unknown),
                    _ => h.complete(id, complete, outcome),
                }
            }
            let expected = brute_force(&h);
            let got = check(&h);
            assert_eq!(got.is_ok(), expected, "case {case}: {got:?}\n{h:#?}");
            if expected {
                ok += 1;
            } else {
                bad += 1;
            }
        }
        // Both verdicts were exercised.
        println!("{ok} linearizable, {bad} not");
        assert!(ok > 500 && bad > 500, "{ok} linearizable, {bad} not");
    }
}
