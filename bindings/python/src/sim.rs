//! The simulator's Python face (`raft_manager.sim`): the state machine objects a `Node`
//! takes, run in a seeded simulated cluster with faults, checked by `raft::sim`.

use crate::errors::{describe, type_error, value_error, FailureCause};
use crate::state_machine::PyStateMachine;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use raft::runtime::{Committed, StateMachine};
use raft::sim::{
    Failure, FaultConfig, KvModel, Model, OpKind, Report, Request, SimStateMachine, Simulation,
};
use std::io::{Read, Write};
use std::sync::{Mutex, MutexGuard};

/// One replica's state machine object, with `query` (and optionally `state_hash`).
struct PySimMachine {
    obj: Py<PyAny>,
    inner: PyStateMachine,
    has_hash: bool,
}

impl StateMachine for PySimMachine {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        self.inner.apply(batch)
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        self.inner.snapshot(out)
    }

    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        self.inner.restore(input)
    }
}

impl SimStateMachine for PySimMachine {
    fn query(&mut self, q: &[u8]) -> Vec<u8> {
        Python::attach(|py| {
            let r = self
                .obj
                .bind(py)
                .call_method1("query", (PyBytes::new(py, q),));
            match r {
                Ok(v) => v.extract::<Vec<u8>>().unwrap_or_default(),
                Err(e) => format!("query raised {}", describe(py, &e)).into_bytes(),
            }
        })
    }

    fn state_hash(&mut self) -> Option<u64> {
        if !self.has_hash {
            return None;
        }
        Python::attach(|py| {
            let v = self.obj.bind(py).call_method0("state_hash").ok()?;
            // Any Python int: keep its low 64 bits.
            let mask = 0xffff_ffff_ffff_ffffu64;
            v.call_method1("__and__", (mask,))
                .ok()?
                .extract::<u64>()
                .ok()
        })
    }
}

/// A custom model over byte-string states: `init() -> bytes`,
/// `step(state, is_write, input) -> (state, output)`, optional `partition(is_write, input)`.
struct PyModel {
    obj: Py<PyAny>,
    has_partition: bool,
}

impl Model for PyModel {
    type State = Vec<u8>;

    fn init(&self) -> Vec<u8> {
        Python::attach(|py| {
            self.obj
                .bind(py)
                .call_method0("init")
                .and_then(|v| v.extract::<Vec<u8>>())
                .unwrap_or_default()
        })
    }

    fn step(&self, state: &Vec<u8>, kind: OpKind, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        Python::attach(|py| {
            let args = (
                PyBytes::new(py, state),
                kind == OpKind::Write,
                PyBytes::new(py, input),
            );
            self.obj
                .bind(py)
                .call_method1("step", args)
                .and_then(|v| v.extract::<(Vec<u8>, Vec<u8>)>())
                .unwrap_or_else(|e| {
                    (
                        state.clone(),
                        format!("model step raised {}", describe(py, &e)).into_bytes(),
                    )
                })
        })
    }

    fn partition(&self, kind: OpKind, input: &[u8]) -> Option<Vec<u8>> {
        if !self.has_partition {
            return None;
        }
        Python::attach(|py| {
            let v = self
                .obj
                .bind(py)
                .call_method1(
                    "partition",
                    (kind == OpKind::Write, PyBytes::new(py, input)),
                )
                .ok()?;
            v.extract::<Option<Vec<u8>>>().ok().flatten()
        })
    }
}

fn has_method(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    Ok(obj.getattr_opt(name)?.is_some_and(|m| m.is_callable()))
}

/// Builds the fault knobs from keyword overrides of the defaults.
fn faults(overrides: Option<&Bound<'_, PyDict>>) -> PyResult<FaultConfig> {
    let mut f = FaultConfig::default();
    let Some(d) = overrides else {
        return Ok(f);
    };
    if d.get_item("none")?
        .map(|v| v.is_truthy())
        .transpose()?
        .unwrap_or(false)
    {
        f = FaultConfig::none();
    }
    for (k, v) in d.iter() {
        let k: String = k.extract()?;
        match k.as_str() {
            "none" => {}
            "drop_per_mille" => f.drop_per_mille = v.extract()?,
            "dup_per_mille" => f.dup_per_mille = v.extract()?,
            "delay_ms" => f.delay_ms = v.extract()?,
            "reorder" => f.reorder = v.extract()?,
            "sync_ms" => f.sync_ms = v.extract()?,
            "partitions" => f.partitions = v.extract()?,
            "one_way" => f.one_way = v.extract()?,
            "bridges" => f.bridges = v.extract()?,
            "crashes" => f.crashes = v.extract()?,
            "pauses" => f.pauses = v.extract()?,
            "membership" => f.membership = v.extract()?,
            "transfers" => f.transfers = v.extract()?,
            "interval_ms" => f.interval_ms = v.extract()?,
            "duration_ms" => f.duration_ms = v.extract()?,
            "snapshot_every" => f.snapshot_every = v.extract()?,
            "snapshot_trailing" => f.snapshot_trailing = v.extract()?,
            _ => return Err(value_error(format!("unknown fault knob {k:?}"))),
        }
    }
    Ok(f)
}

/// A failed check, as a dict for the Python layer.
fn failure_dict<'py>(py: Python<'py>, f: &Failure) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("check", f.check.to_string())?;
    d.set_item("seed", f.seed)?;
    d.set_item("at_ms", f.at_ms)?;
    d.set_item("node", f.node)?;
    d.set_item("index", f.index)?;
    d.set_item("message", &f.message)?;
    d.set_item("replay", &f.replay)?;
    d.set_item(
        "faults",
        f.schedule
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    )?;
    d.set_item("text", f.to_string())?;
    Ok(d)
}

fn report_dict<'py>(py: Python<'py>, r: &Report) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("seed", r.seed)?;
    d.set_item("virtual_ms", r.virtual_ms)?;
    d.set_item("completed", r.completed)?;
    d.set_item("unknown", r.unknown)?;
    d.set_item("delivered", r.delivered)?;
    d.set_item(
        "faults",
        r.faults.iter().map(ToString::to_string).collect::<Vec<_>>(),
    )?;
    d.set_item(
        "failure",
        r.failure
            .as_ref()
            .map(|f| failure_dict(py, f))
            .transpose()?,
    )?;
    Ok(d)
}

/// The native simulation; `raft_manager.sim.Simulation` wraps it.
#[pyclass(name = "_Simulation", module = "raft_manager._native")]
pub(crate) struct PySimulation {
    sim: Mutex<SendSim>,
}

/// A simulation built by [`PySimulation::new`].
struct SendSim(Simulation);

// SAFETY: every closure and model in a simulation built by `PySimulation::new` captures only
// `Send` data (`Py` handles, plain Rust values) and nothing in `Simulation` is tied to a
// thread, so moving it to another thread (Python may drop the object on any thread) is
// sound; the `Mutex` serialises every use.
unsafe impl Send for SendSim {}

impl PySimulation {
    fn sim(&self) -> MutexGuard<'_, SendSim> {
        self.sim
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[pymethods]
impl PySimulation {
    #[new]
    #[pyo3(signature = (factory, workload, *, nodes=3, clients=3, ops_per_client=30, model=None, faults=None, replay_hint=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        factory: Py<PyAny>,
        workload: Py<PyAny>,
        nodes: u64,
        clients: u64,
        ops_per_client: u64,
        model: Option<Py<PyAny>>,
        faults: Option<&Bound<'_, PyDict>>,
        replay_hint: Option<String>,
    ) -> PyResult<Self> {
        let fault_config = self::faults(faults)?;
        let make = move || -> Box<dyn SimStateMachine> {
            Python::attach(|py| {
                let made = factory.bind(py).call0().and_then(|obj| {
                    let inner = PyStateMachine::new(&obj, FailureCause::default())?;
                    if !has_method(&obj, "query")? {
                        return Err(type_error(
                            "a simulated state machine needs a query(q) method",
                        ));
                    }
                    Ok(PySimMachine {
                        has_hash: has_method(&obj, "state_hash")?,
                        obj: obj.unbind(),
                        inner,
                    })
                });
                match made {
                    Ok(m) => Box::new(m) as Box<dyn SimStateMachine>,
                    Err(e) => Box::new(Broken(format!("the factory failed: {}", describe(py, &e)))),
                }
            })
        };
        let w = move |ctx: &mut raft::sim::ClientCtx<'_>| -> Option<Request> {
            let random = ctx.rand(u64::MAX);
            Python::attach(|py| {
                let r = workload
                    .bind(py)
                    .call1((ctx.client(), ctx.op(), random))
                    .ok()?;
                if r.is_none() {
                    return None;
                }
                let t = r.cast::<PyTuple>().ok()?;
                let (kind, data): (String, Vec<u8>) = t.extract().ok()?;
                match kind.as_str() {
                    "write" => Some(Request::write(data)),
                    "read" => Some(Request::read(data)),
                    "write_without_session" => Some(Request::write_without_session(data)),
                    "read_local" => Some(Request::read_local(data)),
                    _ => None,
                }
            })
        };
        let mut b = Simulation::builder_boxed(Box::new(make))
            .nodes(nodes)
            .clients(clients)
            .ops_per_client(ops_per_client)
            .faults(fault_config)
            .workload(w)
            .replay_hint(replay_hint.unwrap_or_else(|| "python -m pytest".into()));
        b = Python::attach(|py| -> PyResult<_> {
            Ok(match model {
                None => b,
                Some(m) if m.bind(py).is_instance_of::<pyo3::types::PyString>() => {
                    let name: String = m.extract(py)?;
                    if name != "kv" {
                        return Err(value_error(format!(
                            "unknown built-in model {name:?} (only \"kv\")"
                        )));
                    }
                    b.model(KvModel)
                }
                Some(m) => {
                    for meth in ["init", "step"] {
                        if !has_method(m.bind(py), meth)? {
                            return Err(type_error(format!(
                                "a model needs a callable {meth}() method"
                            )));
                        }
                    }
                    let has_partition = has_method(m.bind(py), "partition")?;
                    b.model(PyModel {
                        obj: m,
                        has_partition,
                    })
                }
            })
        })?;
        let sim = b.build().map_err(value_error)?;
        Ok(PySimulation {
            sim: Mutex::new(SendSim(sim)),
        })
    }

    /// Runs one seed; returns the report as a dict.
    fn run<'py>(&self, py: Python<'py>, seed: u64) -> PyResult<Bound<'py, PyDict>> {
        let mut guard = self.sim();
        let sim = SameThread(&mut guard.0);
        // Detached so that callbacks may run on helper threads (`restore_stream`); every
        // callback attaches again.
        let r = py.detach(move || {
            let sim = sim;
            sim.0.run(seed)
        });
        report_dict(py, &r)
    }

    /// Replaces the drawn fault schedule with one in the printed format (None: draw it).
    fn set_schedule(&self, schedule: Option<String>) -> PyResult<()> {
        let s = schedule
            .map(|t| raft::sim::user::parse_schedule(&t))
            .transpose()
            .map_err(value_error)?;
        self.sim().0.set_schedule(s);
        Ok(())
    }

    /// Applies a replay line's `RAFT_SIM_SCHEDULE`, `RAFT_SIM_OPS` and `RAFT_SIM_NET` from
    /// the environment (ValueError if one is malformed).
    fn apply_replay_env(&self) -> PyResult<()> {
        self.sim().0.apply_replay_env().map_err(value_error)
    }

    /// Sets the command a failure's replay line runs after `RAFT_SIM_SEED=<seed>`.
    fn set_replay_hint(&self, hint: String) {
        self.sim().0.set_replay_hint(hint);
    }

    /// Shrinks the failing run of `seed` (which must fail): fewer requests, less network
    /// noise, fewer faults; returns the failure dict of the reduced run (its `replay` line
    /// sets what changed).
    fn shrink<'py>(
        &self,
        py: Python<'py>,
        seed: u64,
        max_runs: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut guard = self.sim();
        let r = guard.0.run(seed);
        let f = r
            .failure
            .ok_or_else(|| value_error(format!("seed {seed} does not fail")))?;
        let s = guard.0.shrink(&f, max_runs);
        failure_dict(py, &s.failure)
    }
}

/// Hands the simulation to [`Python::detach`]: the closure runs on this same thread.
struct SameThread<'a>(&'a mut Simulation);

// SAFETY: `Python::detach` runs the closure on the calling thread; nothing crosses threads.
unsafe impl Send for SameThread<'_> {}

/// Stands in for a state machine whose factory raised: every call fails with the reason.
struct Broken(String);

impl StateMachine for Broken {
    fn apply(&mut self, _: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        Err(self.0.clone())
    }
    fn snapshot(&mut self, _: &mut dyn Write) -> Result<(), String> {
        Err(self.0.clone())
    }
    fn restore(&mut self, _: &mut dyn Read) -> Result<(), String> {
        Err(self.0.clone())
    }
}

impl SimStateMachine for Broken {
    fn query(&mut self, _: &[u8]) -> Vec<u8> {
        self.0.clone().into_bytes()
    }
}
