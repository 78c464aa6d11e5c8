//! The builder, one run from start to verdict, runs over many seeds, and shrinking.

use super::clients::{ClientCtx, Request, Workload};
use super::engine::{Engine, Found};
use super::faults::{draw, format_schedule, parse_schedule, FaultConfig, Scheduled};
use super::model::{self, Model, Operation};
use super::replica::Factory;
use super::report::{Check, Failure, Report, Shrunk};
use super::{Settings, SimStateMachine, MAX_NODES};
use crate::core::rng::Rng;
use std::ops::Range;

type HistoryCheck = dyn Fn(&[Operation]) -> Result<u64, model::NotLinearizable>;

/// Configures a [`Simulation`]; every setting has a default.
pub struct SimBuilder {
    factory: Box<Factory>,
    workload: Option<Box<Workload>>,
    model: Option<Box<HistoryCheck>>,
    settings: Settings,
    faults: FaultConfig,
    replay_hint: String,
}

impl SimBuilder {
    /// Nodes in the cluster, 1 to [`MAX_NODES`] (default 3).
    pub fn nodes(mut self, n: u64) -> Self {
        self.settings.nodes = n;
        self
    }

    /// Simulated clients issuing requests concurrently (default 3).
    pub fn clients(mut self, n: u64) -> Self {
        self.settings.clients = n;
        self
    }

    /// Requests per client (default 30); a client also stops when the workload says so.
    pub fn ops_per_client(mut self, n: u64) -> Self {
        self.settings.ops_per_client = n;
        self
    }

    /// The fault model (default [`FaultConfig::default`]: everything on).
    pub fn faults(mut self, f: FaultConfig) -> Self {
        self.faults = f;
        self
    }

    /// The clients' workload (default: none, the cluster runs idle).
    pub fn workload(
        mut self,
        w: impl FnMut(&mut ClientCtx<'_>) -> Option<Request> + 'static,
    ) -> Self {
        self.workload = Some(Box::new(w));
        self
    }

    /// A sequential model to check the history against for linearizability (default: no
    /// linearizability check).
    pub fn model<M: Model + 'static>(mut self, m: M) -> Self {
        self.model = Some(Box::new(move |ops: &[Operation]| model::check(&m, ops)));
        self
    }

    /// Tick length and election/heartbeat intervals in ticks (default 10 ms, 50, 5: the
    /// runtime's defaults of 500 ms and 50 ms).
    pub fn timing(mut self, tick_ms: u64, election_ticks: u64, heartbeat_ticks: u64) -> Self {
        self.settings.tick_ms = tick_ms;
        self.settings.election_ticks = election_ticks;
        self.settings.heartbeat_ticks = heartbeat_ticks;
        self
    }

    /// Client timeouts in virtual ms: one attempt (then retry at another node, default 300)
    /// and the whole request (then the outcome is unknown, default 5000).
    pub fn client_timeouts(mut self, attempt_ms: u64, request_ms: u64) -> Self {
        self.settings.attempt_timeout_ms = attempt_ms;
        self.settings.op_timeout_ms = request_ms;
        self
    }

    /// The longest run in virtual ms before the clients count as stuck (default 600 000).
    pub fn max_virtual_ms(mut self, ms: u64) -> Self {
        self.settings.max_ms = ms;
        self
    }

    /// The command a failure's replay line runs, after `RAFT_SIM_SEED=<seed>` (default
    /// `cargo test`); name your test so the line runs just it.
    pub fn replay_hint(mut self, cmd: impl Into<String>) -> Self {
        self.replay_hint = cmd.into();
        self
    }

    /// Checks the settings and builds the simulation.
    pub fn build(self) -> Result<Simulation, String> {
        let s = &self.settings;
        if !(1..=MAX_NODES).contains(&s.nodes) {
            return Err(format!("nodes must be 1 to {MAX_NODES}, got {}", s.nodes));
        }
        if s.clients == 0 || s.clients > 1000 {
            return Err(format!("clients must be 1 to 1000, got {}", s.clients));
        }
        if s.tick_ms == 0 || s.heartbeat_ticks == 0 || s.election_ticks <= s.heartbeat_ticks {
            return Err("timing needs tick_ms > 0 and 0 < heartbeat_ticks < election_ticks".into());
        }
        let f = &self.faults;
        if f.drop_per_mille > 1000 || f.dup_per_mille > 1000 {
            return Err("drop and duplicate rates are per 1000 (at most 1000)".into());
        }
        if f.delay_ms.0 == 0 || f.sync_ms.0 == 0 || f.interval_ms.0 == 0 {
            return Err("delays, sync latencies and fault intervals must be at least 1 ms".into());
        }
        Ok(Simulation {
            base_ops: self.settings.ops_per_client,
            base_net: self.faults.format_net(),
            factory: self.factory,
            workload: self
                .workload
                .unwrap_or_else(|| Box::new(|_: &mut ClientCtx<'_>| None)),
            model: self.model,
            settings: self.settings,
            faults: self.faults,
            replay_hint: self.replay_hint,
            schedule: None,
        })
    }
}

/// A configured simulation; [`Simulation::run`] runs one seed.
pub struct Simulation {
    factory: Box<Factory>,
    workload: Box<Workload>,
    model: Option<Box<HistoryCheck>>,
    settings: Settings,
    faults: FaultConfig,
    replay_hint: String,
    schedule: Option<Vec<Scheduled>>,
    /// Requests per client as built (a replay line names `RAFT_SIM_OPS` only if changed).
    base_ops: u64,
    /// Network noise as built (a replay line names `RAFT_SIM_NET` only if changed).
    base_net: String,
}

impl Simulation {
    /// A builder for a cluster whose every node runs a state machine made by `make`.
    pub fn builder<M: SimStateMachine>(mut make: impl FnMut() -> M + 'static) -> SimBuilder {
        Self::builder_boxed(Box::new(move || {
            Box::new(make()) as Box<dyn SimStateMachine>
        }))
    }

    /// [`Simulation::builder`] for state machines made behind a trait object.
    pub fn builder_boxed(make: Box<Factory>) -> SimBuilder {
        SimBuilder {
            factory: make,
            workload: None,
            model: None,
            settings: Settings {
                nodes: 3,
                clients: 3,
                ops_per_client: 30,
                tick_ms: 10,
                election_ticks: 50,
                heartbeat_ticks: 5,
                attempt_timeout_ms: 300,
                op_timeout_ms: 5000,
                retry_ms: 20,
                think_ms: 20,
                max_ms: 600_000,
                settle_ms: 30_000,
            },
            faults: FaultConfig::default(),
            replay_hint: "cargo test".into(),
        }
    }

    /// Replaces the fault schedule drawn from the seed with `schedule` (`None`: draw it).
    pub fn set_schedule(&mut self, schedule: Option<Vec<Scheduled>>) {
        self.schedule = schedule;
    }

    /// Sets the command a failure's replay line runs after `RAFT_SIM_SEED=<seed>`.
    pub fn set_replay_hint(&mut self, cmd: impl Into<String>) {
        self.replay_hint = cmd.into();
    }

    /// The fault knobs in force.
    pub fn faults_mut(&mut self) -> &mut FaultConfig {
        &mut self.faults
    }

    /// Sets the requests per client (as [`SimBuilder::ops_per_client`]).
    pub fn set_ops_per_client(&mut self, n: u64) {
        self.settings.ops_per_client = n;
    }

    /// Applies what a replay line sets besides the seed: `RAFT_SIM_SCHEDULE` (the fault
    /// schedule), `RAFT_SIM_OPS` (requests per client) and `RAFT_SIM_NET` (network noise,
    /// [`FaultConfig::format_net`]'s form). [`Simulation::run_seeds`] calls it; call it
    /// yourself before [`Simulation::run`] to replay a shrunk failure.
    pub fn apply_replay_env(&mut self) -> Result<(), String> {
        self.apply_replay_vars(|name| std::env::var(name).ok())
    }

    /// [`Simulation::apply_replay_env`] with the variables looked up by `var` instead of in
    /// the environment (e.g. taken from a failure's replay line).
    pub fn apply_replay_vars(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        if let Some(text) = var("RAFT_SIM_SCHEDULE") {
            self.schedule =
                Some(parse_schedule(&text).map_err(|e| format!("RAFT_SIM_SCHEDULE: {e}"))?);
        }
        if let Some(text) = var("RAFT_SIM_OPS") {
            self.settings.ops_per_client = text
                .trim()
                .parse()
                .map_err(|_| format!("RAFT_SIM_OPS={text:?} is not a number"))?;
        }
        if let Some(text) = var("RAFT_SIM_NET") {
            self.faults
                .parse_net(&text)
                .map_err(|e| format!("RAFT_SIM_NET: {e}"))?;
        }
        Ok(())
    }

    fn replay_line(&self, seed: u64) -> String {
        let mut env = format!("RAFT_SIM_SEED={seed}");
        if let Some(s) = &self.schedule {
            env.push_str(&format!(" RAFT_SIM_SCHEDULE='{}'", format_schedule(s)));
        }
        if self.settings.ops_per_client != self.base_ops {
            env.push_str(&format!(" RAFT_SIM_OPS={}", self.settings.ops_per_client));
        }
        let net = self.faults.format_net();
        if net != self.base_net {
            env.push_str(&format!(" RAFT_SIM_NET={net}"));
        }
        format!("{env} {}", self.replay_hint)
    }

    /// Runs one seed and checks it.
    pub fn run(&mut self, seed: u64) -> Report {
        let s = self.settings.clone();
        let schedule = match &self.schedule {
            Some(sch) => sch.clone(),
            None => draw(
                &mut Rng::new(seed ^ 0x6661_756c_7473),
                s.nodes,
                &self.faults,
                s.max_ms,
            ),
        };
        let mut e = Engine::new(
            seed,
            &s,
            &self.faults,
            &schedule,
            self.factory.as_mut(),
            self.workload.as_mut(),
        );
        let verdict = drive(&mut e, &s);
        let history = std::mem::take(&mut e.history);
        let (now, injected, delivered) = (e.now, e.injected, e.delivered);
        drop(e);
        let completed = history.iter().filter(|o| o.output.is_some()).count() as u64;
        let mut report = Report {
            seed,
            virtual_ms: now,
            completed,
            unknown: history.len() as u64 - completed,
            delivered,
            faults: schedule[..injected].to_vec(),
            undecided: 0,
            failure: None,
        };
        let found = match verdict {
            Err(f) => Some(f),
            Ok(()) => match self.model.as_ref().map(|m| m(&history)) {
                Some(Err(nl)) => Some((
                    Check::Linearizability,
                    None,
                    None,
                    format!(
                        "the clients' history is not linearizable (partition {}): {}",
                        super::checks::show(Some(&nl.partition)),
                        nl.explanation
                    ),
                )),
                Some(Ok(undecided)) => {
                    report.undecided = undecided;
                    None
                }
                None => None,
            },
        };
        report.failure = found.map(|(check, node, index, message)| Failure {
            check,
            seed,
            at_ms: now,
            node,
            index,
            message,
            schedule: report.faults.clone(),
            replay: self.replay_line(seed),
        });
        report
    }

    /// Runs `seeds` (or only `RAFT_SIM_SEED` when the environment names one, with what
    /// [`Simulation::apply_replay_env`] reads) and returns the reports, or the first
    /// failure.
    pub fn run_seeds(&mut self, seeds: Range<u64>) -> Result<Vec<Report>, Box<Failure>> {
        let seeds: Vec<u64> = match std::env::var("RAFT_SIM_SEED") {
            Ok(v) => vec![v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("RAFT_SIM_SEED={v:?} is not a number"))],
            Err(_) => seeds.collect(),
        };
        if let Err(e) = self.apply_replay_env() {
            panic!("{e}");
        }
        let mut out = Vec::with_capacity(seeds.len());
        for seed in seeds {
            let r = self.run(seed);
            if let Some(f) = r.failure {
                return Err(Box::new(f));
            }
            out.push(r);
        }
        Ok(out)
    }

    /// Reduces a failing run while it still fails the same check, within `max_runs` runs:
    /// first the workload (requests per client), then the network noise (no drops, no
    /// duplicates, FIFO links, the shortest delay), then the fault schedule (dropping
    /// chunks of faults, then single faults). The result's replay line sets what changed
    /// (`RAFT_SIM_OPS`, `RAFT_SIM_NET`, `RAFT_SIM_SCHEDULE`); the simulation's own
    /// settings are left as they were.
    pub fn shrink(&mut self, failure: &Failure, max_runs: u64) -> Shrunk {
        let saved = (
            self.schedule.clone(),
            self.settings.ops_per_client,
            self.faults.clone(),
        );
        let mut runs = 0;
        let fails = |sim: &mut Simulation, runs: &mut u64| -> bool {
            *runs += 1;
            sim.run(failure.seed)
                .failure
                .is_some_and(|f| f.check == failure.check)
        };
        self.schedule = Some(failure.schedule.clone());
        // The workload: fewer requests per client (a run is the same up to the cut).
        let mut step = self.settings.ops_per_client / 2;
        while step > 0 && runs < max_runs {
            let ops = self.settings.ops_per_client;
            self.settings.ops_per_client = ops - step.min(ops - 1);
            if !fails(self, &mut runs) {
                self.settings.ops_per_client = ops;
                step /= 2;
            }
        }
        // The network noise, one knob at a time.
        let quieter: [fn(&mut FaultConfig); 4] = [
            |f| f.drop_per_mille = 0,
            |f| f.dup_per_mille = 0,
            |f| f.reorder = false,
            |f| f.delay_ms.1 = f.delay_ms.0,
        ];
        for quiet in quieter {
            let before = self.faults.clone();
            quiet(&mut self.faults);
            if runs >= max_runs || self.faults.format_net() == before.format_net() {
                self.faults = before;
                continue;
            }
            if !fails(self, &mut runs) {
                self.faults = before;
            }
        }
        // The fault schedule.
        let mut best = failure.schedule.clone();
        let mut chunk = best.len().div_ceil(2).max(1);
        while runs < max_runs && !best.is_empty() {
            let mut i = 0;
            let mut removed = false;
            while i < best.len() && runs < max_runs {
                let mut trial = best.clone();
                trial.drain(i..(i + chunk).min(best.len()));
                self.schedule = Some(trial.clone());
                if fails(self, &mut runs) {
                    best = trial;
                    removed = true;
                } else {
                    i += chunk;
                }
            }
            if !removed {
                if chunk == 1 {
                    break;
                }
                chunk = chunk.div_ceil(2);
            }
        }
        // The reduced run once more, for its failure and replay line.
        self.schedule = Some(best.clone());
        runs += 1;
        let reduced = self
            .run(failure.seed)
            .failure
            .filter(|f| f.check == failure.check);
        let shrunk = Shrunk {
            ops_per_client: self.settings.ops_per_client,
            net: self.faults.format_net(),
            failure: reduced.unwrap_or_else(|| failure.clone()),
            schedule: best,
            runs,
        };
        (self.schedule, self.settings.ops_per_client, self.faults) = saved;
        shrunk
    }
}

/// Runs the workload, then heals every fault and waits for the replicas to converge.
fn drive(e: &mut Engine<'_>, s: &Settings) -> Result<(), Found> {
    if !e.run_until(s.max_ms, |e| e.clients_done())? {
        return Err((
            Check::Liveness,
            None,
            None,
            format!(
                "the clients did not finish within {}ms:{}",
                s.max_ms,
                e.describe()
            ),
        ));
    }
    e.settling = true;
    e.heal_all()?;
    let deadline = e.now + s.settle_ms;
    while e.now < deadline {
        let step = (e.now + 200).min(deadline);
        if e.run_until(step, |e| e.converged())? {
            break;
        }
        e.restore_voters()?;
    }
    if !e.converged() {
        return Err((
            Check::Liveness,
            None,
            None,
            format!(
                "the replicas did not converge within {}ms of healing every fault:{}",
                s.settle_ms,
                e.describe()
            ),
        ));
    }
    let hashes = e.final_hashes();
    if let Some(w) = hashes.windows(2).find(|w| w[0].1 != w[1].1) {
        return Err((
            Check::Determinism,
            Some(w[1].0),
            None,
            format!(
                "after converging, node {} has state hash {:#018x} and node {} {:#018x}",
                w[0].0, w[0].1, w[1].0, w[1].1
            ),
        ));
    }
    Ok(())
}
