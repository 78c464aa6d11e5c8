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

mod prepare;
mod search;
#[cfg(test)]
mod tests;

use prepare::KeyHistory;
use std::collections::BTreeMap;
use std::fmt;

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
