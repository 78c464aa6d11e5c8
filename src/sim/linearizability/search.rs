//! The depth-first search over one key's operations (Wing & Gong / Lowe with memoization).

use super::prepare::KeyHistory;
use super::{LinearizabilityError, BUDGET_EXHAUSTED};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Register value id: 0 is `None`, others index `KeyHistory::values`.
pub(super) type Val = u32;

/// An operation on one register, with its observed outcome folded in.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
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
    pub(super) fn apply(self, v: Val) -> Option<Val> {
        match self {
            Kind::Read(r) => (r == v).then_some(v),
            Kind::Write(w) => Some(w),
            Kind::CasOk(e, n) | Kind::CasMaybe(e, n) => (e == v).then_some(n),
            Kind::CasFail(e) => (e != v).then_some(v),
        }
    }

    /// True if the outcome depends on the register's value.
    pub(super) fn observes(self) -> bool {
        !matches!(self, Kind::Write(_))
    }

    /// True if the operation can change the register's value.
    pub(super) fn mutates(self) -> bool {
        matches!(self, Kind::Write(_) | Kind::CasOk(..) | Kind::CasMaybe(..))
    }

    /// The value the operation needs the register to hold, if any.
    pub(super) fn needs(self) -> Option<Val> {
        match self {
            Kind::Read(v) | Kind::CasOk(v, _) => Some(v),
            _ => None,
        }
    }

    /// The value the operation may write, if any.
    pub(super) fn writes(self) -> Option<Val> {
        match self {
            Kind::Write(v) | Kind::CasOk(_, v) | Kind::CasMaybe(_, v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct KOp {
    /// Index of the event in the history.
    pub(super) event: usize,
    pub(super) kind: Kind,
    pub(super) call: u64,
    /// Completion time; `None` for an optional operation (unknown outcome).
    pub(super) ret: Option<u64>,
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
pub(super) struct Level {
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
pub(super) const FREE: u8 = 0;
/// After an optional write: only an operation observing the register (otherwise dropping
/// the write gives an equivalent order).
pub(super) const AFTER_OPTIONAL: u8 = 1;
/// After a blind write: only another write (nothing else can follow it).
pub(super) const AFTER_BLIND: u8 = 2;

pub(super) const HEAD: usize = 0;

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
pub(super) struct Search<'k, 'a> {
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
    pub(super) fn new(kh: &'k KeyHistory<'a>) -> Self {
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

    pub(super) fn is_set(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    pub(super) fn set(&mut self, i: usize, on: bool) {
        if on {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Marks operation `i` linearized.
    pub(super) fn lift(&mut self, i: usize) {
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
    pub(super) fn unlift(&mut self, i: usize) {
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
    pub(super) fn moves(&self, steps: &mut u64) -> (Vec<(usize, Val)>, Vec<usize>) {
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

impl KeyHistory<'_> {
    /// Searches for a linearization, counting steps in `steps` (shared across keys).
    pub(super) fn search(&self, steps: &mut u64, budget: u64) -> Result<(), LinearizabilityError> {
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
}
