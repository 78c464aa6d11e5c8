//! What a run reports: which check broke, where, and how to replay it.

use super::faults::{format_schedule, Scheduled};
use std::fmt;

/// The checks of a simulation run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// Replicas answered differently at one log index, or reached different states at one
    /// applied index: the state machine is not deterministic.
    Determinism,
    /// A state machine restored from a snapshot answered or hashed differently from the
    /// one that applied the log: the snapshot does not carry the whole state.
    SnapshotRoundTrip,
    /// The clients' history has no legal order under the model.
    Linearizability,
    /// A client command reached a state machine at two log indexes.
    ExactlyOnce,
    /// The state machine failed (an `Err` from apply, snapshot or restore).
    StateMachine,
    /// The cluster did not converge once every fault was healed.
    Liveness,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::Determinism => "determinism",
            Check::SnapshotRoundTrip => "snapshot round trip",
            Check::Linearizability => "linearizability",
            Check::ExactlyOnce => "exactly-once",
            Check::StateMachine => "state machine error",
            Check::Liveness => "liveness",
        })
    }
}

/// A failed check: what broke, where, and the command that replays the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check that failed.
    pub check: Check,
    /// Seed of the run.
    pub seed: u64,
    /// Virtual time (ms) at which it was detected.
    pub at_ms: u64,
    /// The node it was detected on, if one.
    pub node: Option<u64>,
    /// The log index involved, if one.
    pub index: Option<u64>,
    /// What broke, in words.
    pub message: String,
    /// The fault schedule of the run up to the failure.
    pub schedule: Vec<Scheduled>,
    /// One shell line that replays this run exactly.
    pub replay: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation failed [{}] seed {} at {}ms",
            self.check, self.seed, self.at_ms
        )?;
        if let Some(n) = self.node {
            write!(f, ", node {n}")?;
        }
        if let Some(i) = self.index {
            write!(f, ", index {i}")?;
        }
        writeln!(f, ":\n{}", self.message)?;
        writeln!(f, "faults: {}", or_none(&format_schedule(&self.schedule)))?;
        write!(f, "replay: {}", self.replay)
    }
}

impl std::error::Error for Failure {}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "(none)"
    } else {
        s
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// Virtual time simulated, in ms.
    pub virtual_ms: u64,
    /// Client operations that completed with a known outcome.
    pub completed: u64,
    /// Client operations whose outcome stayed unknown (the client gave up).
    pub unknown: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// FaultConfig injected (the schedule as far as the run got).
    pub faults: Vec<Scheduled>,
    /// Key partitions the linearizability search could not decide within its budget.
    pub undecided: u64,
    /// The first failed check, if any.
    pub failure: Option<Failure>,
}

impl Report {
    /// `Ok` if every check passed, else the failure.
    pub fn result(&self) -> Result<(), Box<Failure>> {
        match &self.failure {
            None => Ok(()),
            Some(f) => Err(Box::new(f.clone())),
        }
    }
}

/// A failing run reduced by [`Simulation::shrink`](super::Simulation::shrink).
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest fault schedule found that still fails the same check.
    pub schedule: Vec<Scheduled>,
    /// Requests per client of the reduced run.
    pub ops_per_client: u64,
    /// Network noise of the reduced run (`RAFT_SIM_NET`'s form).
    pub net: String,
    /// The failure of the reduced run (its `replay` line replays it).
    pub failure: Failure,
    /// Runs the shrink spent.
    pub runs: u64,
}

impl fmt::Display for Shrunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "shrunk in {} runs to {} faults, {} requests per client, network {}: {}",
            self.runs,
            self.schedule.len(),
            self.ops_per_client,
            self.net,
            or_none(&format_schedule(&self.schedule))
        )?;
        write!(f, "{}", self.failure)
    }
}
