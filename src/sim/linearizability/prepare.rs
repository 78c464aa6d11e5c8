//! Turns one key's events into register operations ready to search, and explains failures.

use super::search::{KOp, Kind, Val};
use super::{Event, LinearizabilityError, Op, Outcome};
use std::collections::HashMap;

/// The operations on one key, ready to search.
pub(super) struct KeyHistory<'a> {
    pub(super) key: &'a str,
    pub(super) events: &'a [Event],
    pub(super) values: Vec<Option<&'a str>>,
    pub(super) ops: Vec<KOp>,
}

impl<'a> KeyHistory<'a> {
    pub(super) fn new(
        key: &'a str,
        events: &'a [Event],
        ids: &[usize],
    ) -> Result<Self, LinearizabilityError> {
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

    pub(super) fn error(&self, explanation: String) -> LinearizabilityError {
        LinearizabilityError {
            key: self.key.to_string(),
            explanation,
        }
    }

    pub(super) fn show(&self, v: Val) -> String {
        format!("{:?}", self.values[v as usize])
    }

    /// Describes why no linearization extends the longest consistent prefix `best`.
    pub(super) fn explain(&self, best: &[usize]) -> String {
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
