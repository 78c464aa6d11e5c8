//! Testing your own state machine with `raft::sim`: a correct key-value store passes 200
//! seeds under every fault; four deliberately broken variants are each caught, with a seed
//! that replays the failure.
//!
//! Replay a failure with the line it prints, e.g.
//! `RAFT_SIM_SEED=17 cargo test --release --test sim_user correct_kv_passes`.

use raft::runtime::{Committed, StateMachine};
use raft::sim::kv::{self, KvCommand};
use raft::sim::{Check, ClientCtx, Failure, KvModel, Request, SimStateMachine, Simulation};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

// ANCHOR: kv
/// A key-value store speaking the built-in model's format (`raft::sim::kv`).
#[derive(Default)]
struct Kv {
    data: BTreeMap<String, String>,
    /// Writes applied so far (part of the state: it is in snapshots and in the hash).
    revision: u64,
}

impl Kv {
    fn run(&mut self, cmd: &[u8]) -> Vec<u8> {
        self.revision += 1;
        match KvCommand::parse(cmd) {
            Some(KvCommand::Put(k, v)) => {
                self.data.insert(k.into(), v.into());
                b"ok".to_vec()
            }
            Some(KvCommand::Append(k, v)) => {
                let value = self.data.entry(k.into()).or_default();
                value.push_str(v);
                value.clone().into_bytes()
            }
            Some(KvCommand::Del(k)) => {
                self.data.remove(k);
                b"ok".to_vec()
            }
            _ => b"error: bad command".to_vec(),
        }
    }
}

impl StateMachine for Kv {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        Ok(batch.iter().map(|c| Some(self.run(c.data))).collect())
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        let bytes = postcard::to_stdvec(&(self.revision, &self.data)).map_err(|e| e.to_string())?;
        out.write_all(&bytes).map_err(|e| e.to_string())
    }

    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        (self.revision, self.data) = postcard::from_bytes(&bytes).map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl SimStateMachine for Kv {
    fn query(&mut self, query: &[u8]) -> Vec<u8> {
        match KvCommand::parse(query) {
            Some(KvCommand::Get(k)) => self.data.get(k).cloned().unwrap_or_default().into_bytes(),
            _ => b"error: bad query".to_vec(),
        }
    }

    fn state_hash(&mut self) -> Option<u64> {
        Some(hash(self.revision, self.data.iter()))
    }
}

/// FNV-1a over the revision and the entries in the order given.
fn hash<'a>(revision: u64, entries: impl Iterator<Item = (&'a String, &'a String)>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&revision.to_le_bytes());
    for (k, v) in entries {
        eat(k.as_bytes());
        eat(&[0]);
        eat(v.as_bytes());
        eat(&[0]);
    }
    h
}

/// Each client appends unique suffixes, puts and reads a few keys.
fn workload(ctx: &mut ClientCtx<'_>) -> Option<Request> {
    let key = format!("k{}", ctx.rand(3));
    let tag = format!("{}.{}", ctx.client(), ctx.op());
    Some(match ctx.rand(10) {
        0..=3 => Request::write(kv::append(&key, &format!("{tag},"))),
        4 | 5 => Request::write(kv::put(&key, &tag)),
        _ => Request::read(kv::get(&key)),
    })
}

/// The simulation every test runs, with the state machine `make` builds.
fn simulation<M: SimStateMachine>(
    make: impl FnMut() -> M + 'static,
    workload: impl FnMut(&mut ClientCtx<'_>) -> Option<Request> + 'static,
    test: &str,
) -> Simulation {
    Simulation::builder(make)
        .nodes(3)
        .clients(3)
        .ops_per_client(30)
        .workload(workload)
        .model(KvModel)
        .replay_hint(format!("cargo test --release --test sim_user {test}"))
        .build()
        .expect("valid settings")
}

#[test]
fn correct_kv_passes() {
    let mut sim = simulation(Kv::default, workload, "correct_kv_passes");
    let reports = sim.run_seeds(0..200).unwrap_or_else(|f| panic!("{f}"));
    let ops: u64 = reports.iter().map(|r| r.completed).sum();
    let faults: usize = reports.iter().map(|r| r.faults.len()).sum();
    println!(
        "{} seeds, {ops} operations completed, {faults} faults injected",
        reports.len()
    );
    assert!(
        ops > 100 * reports.len() as u64 / 2,
        "too few operations completed: {ops}"
    );
}
// ANCHOR_END: kv

/// Runs seeds until one fails; returns its failure after checking that its replay fails
/// identically (a nondeterministic machine may diverge first from its snapshot's copy: the
/// checks in `also` are accepted for the first failure). `before_run` resets what the
/// factory keeps between runs.
fn first_failure(
    sim: &mut Simulation,
    expected: Check,
    also: &[Check],
    before_run: &dyn Fn(),
) -> Failure {
    // A replay line's variables (RAFT_SIM_SEED and what a shrink set) select the run.
    sim.apply_replay_env().expect("valid RAFT_SIM_* variables");
    let seeds = match std::env::var("RAFT_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("RAFT_SIM_SEED is a number")],
        Err(_) => (0..200).collect::<Vec<u64>>(),
    };
    for seed in seeds {
        before_run();
        if let Some(f) = sim.run(seed).failure {
            println!("{f}");
            assert!(f.check == expected || also.contains(&f.check), "{f}");
            before_run();
            let again = sim.run(seed).failure.expect("the replay fails too");
            assert_eq!(again, f, "the replay fails identically");
            return f;
        }
    }
    panic!("no seed in 0..200 caught the broken state machine");
}

// ANCHOR: unordered
/// Replicas of [`UnorderedKv`] made in this run: each gets the next salt (reset before
/// every run, so a replay that makes them in the same order sees the same salts).
static CREATED: AtomicU64 = AtomicU64::new(0);

/// A hasher seeded per instance, as `HashMap`'s default `RandomState` is seeded per process
/// (and per map): iteration order differs between replicas.
#[derive(Clone)]
struct Salted(u64);

impl BuildHasher for Salted {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        let mut h = DefaultHasher::new();
        h.write_u64(self.0);
        h
    }
}

/// BROKEN (a): evicts "some" key when full, picking it by iterating a `HashMap`, whose order
/// differs per replica.
struct UnorderedKv {
    data: HashMap<String, String, Salted>,
}

impl UnorderedKv {
    fn new() -> Self {
        let salt = CREATED.fetch_add(1, Ordering::Relaxed);
        UnorderedKv {
            data: HashMap::with_hasher(Salted(salt)),
        }
    }
}

impl StateMachine for UnorderedKv {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let mut out = Vec::new();
        for c in batch {
            let mut kv = Kv {
                data: self.data.drain().collect(),
                revision: 0,
            };
            out.push(Some(kv.run(c.data)));
            self.data.extend(kv.data);
            if self.data.len() > 2 {
                let victim = self.data.keys().next().cloned().expect("non-empty");
                self.data.remove(&victim);
            }
        }
        Ok(out)
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        let sorted: BTreeMap<_, _> = self.data.iter().collect();
        out.write_all(&postcard::to_stdvec(&sorted).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())
    }

    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let mut b = Vec::new();
        input.read_to_end(&mut b).map_err(|e| e.to_string())?;
        let m: BTreeMap<String, String> = postcard::from_bytes(&b).map_err(|e| e.to_string())?;
        self.data.clear();
        self.data.extend(m);
        Ok(())
    }
}
// ANCHOR_END: unordered

impl SimStateMachine for UnorderedKv {
    fn query(&mut self, query: &[u8]) -> Vec<u8> {
        match KvCommand::parse(query) {
            Some(KvCommand::Get(k)) => self.data.get(k).cloned().unwrap_or_default().into_bytes(),
            _ => Vec::new(),
        }
    }

    fn state_hash(&mut self) -> Option<u64> {
        let sorted: BTreeMap<_, _> = self.data.iter().collect();
        Some(hash(0, sorted.into_iter()))
    }
}

#[test]
fn unordered_iteration_is_caught() {
    let mut sim = simulation(UnorderedKv::new, workload, "unordered_iteration_is_caught");
    let restart_salts = || CREATED.store(0, Ordering::Relaxed);
    first_failure(
        &mut sim,
        Check::Determinism,
        &[Check::SnapshotRoundTrip],
        &restart_salts,
    );
}

// ANCHOR: lossy
/// BROKEN (b): the snapshot leaves out `revision`.
#[derive(Default)]
struct LossySnapshotKv(Kv);

impl StateMachine for LossySnapshotKv {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        self.0.apply(batch)
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        let bytes = postcard::to_stdvec(&self.0.data).map_err(|e| e.to_string())?;
        out.write_all(&bytes).map_err(|e| e.to_string())
    }

    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        self.0.data = postcard::from_bytes(&bytes).map_err(|e| e.to_string())?;
        Ok(())
    }
}
// ANCHOR_END: lossy

impl SimStateMachine for LossySnapshotKv {
    fn query(&mut self, query: &[u8]) -> Vec<u8> {
        self.0.query(query)
    }

    fn state_hash(&mut self) -> Option<u64> {
        self.0.state_hash()
    }
}

#[test]
fn lossy_snapshot_is_caught() {
    let mut sim = simulation(
        LossySnapshotKv::default,
        workload,
        "lossy_snapshot_is_caught",
    );
    first_failure(&mut sim, Check::SnapshotRoundTrip, &[], &|| {});
}

#[test]
fn retry_without_session_is_caught() {
    // BROKEN (c): the client retries a non-idempotent append as a plain command.
    let w = |ctx: &mut ClientCtx<'_>| {
        let key = format!("k{}", ctx.rand(3));
        let tag = format!("{}.{},", ctx.client(), ctx.op());
        Some(Request::write_without_session(kv::append(&key, &tag)))
    };
    let mut sim = simulation(Kv::default, w, "retry_without_session_is_caught");
    first_failure(&mut sim, Check::ExactlyOnce, &[], &|| {});
}

#[test]
fn local_reads_are_caught() {
    // BROKEN (d): reads served from the local replica without read_index.
    let w = |ctx: &mut ClientCtx<'_>| {
        let key = format!("k{}", ctx.rand(2));
        Some(match ctx.rand(2) {
            0 => Request::write(kv::append(&key, &format!("{}.{},", ctx.client(), ctx.op()))),
            _ => Request::read_local(kv::get(&key)),
        })
    };
    let mut sim = simulation(Kv::default, w, "local_reads_are_caught");
    first_failure(&mut sim, Check::Linearizability, &[], &|| {});
}

/// The variables a replay line sets before its command: `NAME=value` or `NAME='value'`.
fn replay_vars(line: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    let mut rest = line;
    while let Some((name, tail)) = rest.split_once('=') {
        if !name.starts_with("RAFT_SIM_") {
            break;
        }
        let (value, tail) = match tail.strip_prefix('\'') {
            Some(q) => q.split_once('\'').expect("closing quote"),
            None => tail.split_once(' ').unwrap_or((tail, "")),
        };
        vars.insert(name.to_string(), value.to_string());
        rest = tail.trim_start();
    }
    vars
}

#[test]
fn a_failure_shrinks_to_a_shorter_replayable_run() {
    let mut sim = simulation(
        LossySnapshotKv::default,
        workload,
        "lossy_snapshot_is_caught",
    );
    let f = first_failure(&mut sim, Check::SnapshotRoundTrip, &[], &|| {});
    let shrunk = sim.shrink(&f, 80);
    println!("{shrunk}");
    assert!(shrunk.schedule.len() <= f.schedule.len());
    assert!(
        shrunk.ops_per_client < 30,
        "the workload was not shortened: {shrunk}"
    );
    assert_eq!(shrunk.failure.check, Check::SnapshotRoundTrip);
    // The simulation's own settings are untouched: the seed fails as before.
    assert_eq!(sim.run(f.seed).failure.as_ref(), Some(&f));
    // Replay from the printed line alone, on a fresh simulation.
    let vars = replay_vars(&shrunk.failure.replay);
    assert_eq!(vars["RAFT_SIM_SEED"], f.seed.to_string());
    assert_eq!(vars["RAFT_SIM_OPS"], shrunk.ops_per_client.to_string());
    let mut fresh = simulation(
        LossySnapshotKv::default,
        workload,
        "lossy_snapshot_is_caught",
    );
    fresh
        .apply_replay_vars(|name| vars.get(name).cloned())
        .expect("the replay line parses");
    let again = fresh.run(f.seed).failure.expect("the shrunk run fails");
    assert_eq!(again, shrunk.failure, "the replay is identical");
}

#[test]
fn bad_settings_are_refused() {
    let e = Simulation::builder(Kv::default).nodes(8).build().err();
    assert_eq!(e.as_deref(), Some("nodes must be 1 to 7, got 8"));
    assert!(Simulation::builder(Kv::default).nodes(0).build().is_err());
    assert!(Simulation::builder(Kv::default).clients(0).build().is_err());
}
