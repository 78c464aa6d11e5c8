//! Test your own state machine under faults: a seeded, replayable simulated cluster that runs
//! the production core and the runtime's apply logic (client sessions, membership) around
//! **your** [`StateMachine`], drives it with **your** workload, and checks the result.
//!
//! ```
//! use raft::sim::{kv, KvModel, Request, SimStateMachine, Simulation};
//! use raft::runtime::{Committed, StateMachine};
//! use std::collections::BTreeMap;
//!
//! #[derive(Default)]
//! struct Kv(BTreeMap<String, String>);
//!
//! impl StateMachine for Kv {
//!     fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
//!         Ok(batch.iter().map(|c| Some(match kv::KvCommand::parse(c.data) {
//!             Some(kv::KvCommand::Put(k, v)) => { self.0.insert(k.into(), v.into()); b"ok".to_vec() }
//!             Some(kv::KvCommand::Append(k, v)) => {
//!                 let e = self.0.entry(k.into()).or_default();
//!                 e.push_str(v);
//!                 e.clone().into_bytes()
//!             }
//!             Some(kv::KvCommand::Del(k)) => { self.0.remove(k); b"ok".to_vec() }
//!             _ => b"error: bad command".to_vec(),
//!         })).collect())
//!     }
//!     fn snapshot(&mut self, out: &mut dyn std::io::Write) -> Result<(), String> {
//!         out.write_all(&postcard::to_stdvec(&self.0).unwrap()).map_err(|e| e.to_string())
//!     }
//!     fn restore(&mut self, input: &mut dyn std::io::Read) -> Result<(), String> {
//!         let mut b = Vec::new();
//!         input.read_to_end(&mut b).map_err(|e| e.to_string())?;
//!         self.0 = postcard::from_bytes(&b).map_err(|e| e.to_string())?;
//!         Ok(())
//!     }
//! }
//!
//! impl SimStateMachine for Kv {
//!     fn query(&mut self, q: &[u8]) -> Vec<u8> {
//!         match kv::KvCommand::parse(q) {
//!             Some(kv::KvCommand::Get(k)) => self.0.get(k).cloned().unwrap_or_default().into_bytes(),
//!             _ => Vec::new(),
//!         }
//!     }
//! }
//!
//! let mut sim = Simulation::builder(Kv::default)
//!     .workload(|ctx| {
//!         let key = ["a", "b"][ctx.rand(2) as usize];
//!         Some(match ctx.rand(2) {
//!             0 => Request::write(kv::append(key, &format!("{}.{} ", ctx.client(), ctx.op()))),
//!             _ => Request::read(kv::get(key)),
//!         })
//!     })
//!     .model(KvModel)
//!     .build()
//!     .unwrap();
//! sim.run_seeds(0..3).unwrap();
//! ```
//!
//! See docs/SIMULATION.md for the fault model, how to read a failure and how to replay.

mod checks;
mod clients;
mod engine;
mod faults;
pub mod kv;
mod model;
mod replica;
mod report;
mod run;
mod timeline;

pub use checks::show;
pub use clients::{ClientCtx, Request, Workload};
pub use faults::{format_schedule, parse_schedule, Fault, FaultConfig, Scheduled};
pub use kv::KvModel;
pub use model::{check as check_history, describe, Model, NotLinearizable, OpKind, Operation};
pub use report::{Check, Failure, Report, Shrunk};
pub use run::{SimBuilder, Simulation};

use crate::runtime::StateMachine;

/// The most nodes a simulated cluster may have.
pub const MAX_NODES: u64 = 7;

/// A [`StateMachine`] the simulator can test: the same trait a real node takes, plus the
/// read path and an optional state hash.
pub trait SimStateMachine: StateMachine {
    /// Answers a read-only query from local state: what your read path runs after
    /// `read_index` (or, when deliberately broken, without it).
    fn query(&mut self, query: &[u8]) -> Vec<u8>;

    /// A hash of the whole state, compared across replicas at equal applied index. `None`
    /// (the default) hashes the [`snapshot`](StateMachine::snapshot) bytes instead, which
    /// is slower and needs a canonical snapshot encoding.
    fn state_hash(&mut self) -> Option<u64> {
        None
    }
}

/// Timing and size settings of a run (see [`SimBuilder`]).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub nodes: u64,
    pub clients: u64,
    pub ops_per_client: u64,
    pub tick_ms: u64,
    pub election_ticks: u64,
    pub heartbeat_ticks: u64,
    pub attempt_timeout_ms: u64,
    pub op_timeout_ms: u64,
    pub retry_ms: u64,
    pub think_ms: u64,
    pub max_ms: u64,
    pub settle_ms: u64,
}
