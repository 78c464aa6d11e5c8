//! Sequential models and the linearizability check of a recorded client history.
//!
//! A [`Model`] is the user's single-copy specification: from a state, an operation gives a
//! new state and an output. The checker searches for one order of the recorded operations,
//! each placed between its invocation and its completion, in which the model produces every
//! output the clients saw (Wing & Gong / Lowe depth-first search with memoized states, as
//! porcupine does). An operation whose outcome the client never learned may take effect at
//! any point after its invocation, or never. When the model names a partition (a key) for
//! every operation, each partition is checked on its own (linearizability is compositional).

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

/// Whether an operation went through the log or was a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A command proposed through the log.
    Write,
    /// A read answered by a replica's [`query`](super::SimStateMachine::query).
    Read,
}

/// One client operation as recorded by the simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The simulated client that issued it.
    pub client: u64,
    /// Write or read.
    pub kind: OpKind,
    /// The command or query bytes.
    pub input: Vec<u8>,
    /// Virtual time (ms) of the invocation.
    pub invoke: u64,
    /// Virtual time (ms) of the completion; `None` if the client never learned the outcome.
    pub complete: Option<u64>,
    /// What the client saw (`None` for an unknown outcome).
    pub output: Option<Vec<u8>>,
}

/// A sequential specification of the replicated service.
pub trait Model {
    /// The model's state; explored states are memoized, so it must be hashable.
    type State: Clone + Eq + Hash;
    /// The initial state (an empty service).
    fn init(&self) -> Self::State;
    /// Runs one operation: the state after it and the output a client would see.
    fn step(&self, state: &Self::State, kind: OpKind, input: &[u8]) -> (Self::State, Vec<u8>);
    /// The partition (for example the key) an operation touches, when operations on
    /// different partitions never affect each other; `None` checks everything together.
    fn partition(&self, _kind: OpKind, _input: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLinearizable {
    /// The partition whose operations admit no order (empty when not partitioned).
    pub partition: Vec<u8>,
    /// The operations involved and why they do not fit.
    pub explanation: String,
}

/// Search steps [`check`] may spend per partition; beyond it the partition is undecided.
pub const SEARCH_BUDGET: u64 = 2_000_000;

/// The outcome of a check: `Ok(undecided partitions)` or the first failure.
pub fn check<M: Model + ?Sized>(model: &M, ops: &[Operation]) -> Result<u64, NotLinearizable> {
    let mut parts: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if op.kind == OpKind::Read && op.output.is_none() {
            continue; // a read nobody saw tells nothing
        }
        let p = model.partition(op.kind, &op.input).unwrap_or_default();
        parts.entry(p).or_default().push(i);
    }
    let mut undecided = 0;
    for (partition, ids) in parts {
        match search(model, ops, &ids) {
            Ok(true) => {}
            Ok(false) => undecided += 1,
            Err(explanation) => {
                return Err(NotLinearizable {
                    partition,
                    explanation,
                })
            }
        }
    }
    Ok(undecided)
}

const END: usize = usize::MAX;

/// Lowe's search over the operations `ids` of one partition: `Ok(true)` if linearizable,
/// `Ok(false)` if the budget ran out, `Err` with an explanation otherwise.
fn search<M: Model + ?Sized>(model: &M, ops: &[Operation], ids: &[usize]) -> Result<bool, String> {
    let n = ids.len();
    // Call and return entries in time order; at equal times calls come first (touching
    // operations overlap). An unknown outcome returns at the end of time.
    let mut entries: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (k, &i) in ids.iter().enumerate() {
        entries.push((ops[i].invoke, 0, k));
        let ret = if ops[i].output.is_some() {
            ops[i].complete.unwrap_or(u64::MAX)
        } else {
            u64::MAX
        };
        entries.push((ret, 1, k));
    }
    entries.sort();
    let len = entries.len();
    // Doubly linked list over entries; `len` is the head sentinel.
    let mut next: Vec<usize> = (1..=len).map(|i| if i == len { END } else { i }).collect();
    next.push(if len == 0 { END } else { 0 });
    let mut prev: Vec<usize> = (0..len).map(|i| if i == 0 { len } else { i - 1 }).collect();
    prev.push(END);
    let (mut call_at, mut ret_at) = (vec![0; n], vec![0; n]);
    for (pos, &(_, is_ret, k)) in entries.iter().enumerate() {
        if is_ret == 1 {
            ret_at[k] = pos;
        } else {
            call_at[k] = pos;
        }
    }
    let head = len;
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = b;
        if b != END {
            prev[b] = a;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, p: usize| {
        let (a, b) = (prev[p], next[p]);
        next[a] = p;
        if b != END {
            prev[b] = p;
        }
    };
    let mut state = model.init();
    let mut done = vec![0u64; n.div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut best: Vec<usize> = Vec::new();
    let mut steps = 0u64;
    let mut cur = next[head];
    while next[head] != END {
        steps += 1;
        if steps > SEARCH_BUDGET {
            return Ok(false);
        }
        let (_, is_ret, k) = entries[cur];
        if is_ret == 0 {
            let op = &ops[ids[k]];
            let (after, out) = model.step(&state, op.kind, &op.input);
            let fits = op.output.as_ref().is_none_or(|o| *o == out);
            if fits {
                done[k / 64] |= 1 << (k % 64);
                if seen.insert((done.clone(), after.clone())) {
                    stack.push((k, std::mem::replace(&mut state, after)));
                    unlink(&mut next, &mut prev, call_at[k]);
                    unlink(&mut next, &mut prev, ret_at[k]);
                    if stack.len() > best.len() {
                        best = stack.iter().map(|s| s.0).collect();
                    }
                    cur = next[head];
                    continue;
                }
                done[k / 64] &= !(1 << (k % 64));
            }
            cur = next[cur];
        } else {
            // An operation completed before anything left could be placed: back up.
            let Some((k, before)) = stack.pop() else {
                return Err(explain(ops, ids, &best, &entries));
            };
            state = before;
            done[k / 64] &= !(1 << (k % 64));
            relink(&mut next, &mut prev, ret_at[k]);
            relink(&mut next, &mut prev, call_at[k]);
            cur = next[call_at[k]];
        }
    }
    Ok(true)
}

/// Describes the longest legal prefix found and the operation that could not follow it.
fn explain(
    ops: &[Operation],
    ids: &[usize],
    best: &[usize],
    entries: &[(u64, u8, usize)],
) -> String {
    let placed: HashSet<usize> = best.iter().copied().collect();
    let mut out = format!(
        "no order of the {} operations fits the model; the longest legal order places {}:",
        ids.len(),
        best.len()
    );
    for &k in best.iter().rev().take(6).collect::<Vec<_>>().iter().rev() {
        out.push_str(&format!("\n  {}", describe(ids[*k], &ops[ids[*k]])));
    }
    out.push_str("\nthen none of these can come next:");
    let mut shown = 0;
    for &(_, is_ret, k) in entries {
        if is_ret == 0 && !placed.contains(&k) && shown < 6 {
            out.push_str(&format!("\n  {}", describe(ids[k], &ops[ids[k]])));
            shown += 1;
        }
    }
    let deadline = (0..ids.len())
        .filter(|k| !placed.contains(k) && ops[ids[*k]].output.is_some())
        .filter_map(|k| ops[ids[k]].complete.map(|t| (t, k)))
        .min();
    if let Some((t, k)) = deadline {
        out.push_str(&format!(
            "\n(op #{} completed at {t}ms, so one of them had to take effect by then)",
            ids[k]
        ));
    }
    out
}

/// One line describing operation `id`.
pub fn describe(id: usize, op: &Operation) -> String {
    let kind = match op.kind {
        OpKind::Write => "write",
        OpKind::Read => "read",
    };
    let end = op
        .complete
        .map_or("never".to_string(), |t| format!("{t}ms"));
    format!(
        "op #{id} client {} {kind} {} => {} [{}ms..{end}]",
        op.client,
        super::checks::show(Some(&op.input)),
        op.output
            .as_deref()
            .map_or("unknown".to_string(), |o| super::checks::show(Some(o))),
        op.invoke
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register: writes set it (output empty), reads return it.
    struct Register;

    impl Model for Register {
        type State = Vec<u8>;
        fn init(&self) -> Vec<u8> {
            Vec::new()
        }
        fn step(&self, s: &Vec<u8>, kind: OpKind, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
            match kind {
                OpKind::Write => (input.to_vec(), Vec::new()),
                OpKind::Read => (s.clone(), s.clone()),
            }
        }
    }

    fn op(
        kind: OpKind,
        input: &str,
        invoke: u64,
        complete: Option<u64>,
        out: Option<&str>,
    ) -> Operation {
        Operation {
            client: invoke,
            kind,
            input: input.as_bytes().to_vec(),
            invoke,
            complete,
            output: out.map(|o| o.as_bytes().to_vec()),
        }
    }

    #[test]
    fn concurrent_reads_may_see_either_value() {
        let h = vec![
            op(OpKind::Write, "a", 0, Some(10), Some("")),
            op(OpKind::Read, "", 1, Some(2), Some("a")),
            op(OpKind::Read, "", 3, Some(4), Some("")),
        ];
        // The second read sees the old value after the first saw the new one: not linearizable.
        let e = check(&Register, &h).unwrap_err();
        assert!(e.explanation.contains("op #2"), "{}", e.explanation);
        let ok = vec![
            op(OpKind::Write, "a", 0, Some(10), Some("")),
            op(OpKind::Read, "", 1, Some(2), Some("")),
            op(OpKind::Read, "", 3, Some(4), Some("a")),
        ];
        assert_eq!(check(&Register, &ok), Ok(0));
    }

    #[test]
    fn unknown_writes_may_or_may_not_apply() {
        let h = vec![
            op(OpKind::Write, "a", 0, None, None),
            op(OpKind::Read, "", 5, Some(6), Some("")),
            op(OpKind::Read, "", 7, Some(8), Some("a")),
        ];
        assert_eq!(check(&Register, &h), Ok(0));
        let stale = vec![
            op(OpKind::Write, "a", 0, None, None),
            op(OpKind::Read, "", 5, Some(6), Some("a")),
            op(OpKind::Read, "", 7, Some(8), Some("")),
        ];
        assert!(check(&Register, &stale).is_err());
    }

    #[test]
    fn stale_read_after_acknowledged_write_is_caught() {
        let h = vec![
            op(OpKind::Write, "a", 0, Some(1), Some("")),
            op(OpKind::Read, "", 2, Some(3), Some("")),
        ];
        let e = check(&Register, &h).unwrap_err();
        assert!(
            e.explanation.contains("longest legal order"),
            "{}",
            e.explanation
        );
    }
}
