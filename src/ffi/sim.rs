//! The simulator's C face (`raft_sim_*`): test your C state machine, through the same
//! apply/snapshot/restore callbacks a real node takes, in a seeded simulated cluster with
//! faults, and get a verdict naming what broke and the line that replays it.

use super::buf::{raft_buf, with_reader, with_writer};
use super::config_callbacks::{raft_apply_callback, raft_restore_callback, raft_snapshot_callback};
use super::{boundary, callback_scope, fail, raft_status};
use crate::runtime::{Committed, StateMachine};
use crate::sim::user::{
    Check, ClientCtx, FaultConfig, KvModel, Model, OpKind, Report, Request, SimStateMachine,
    Simulation,
};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::{Read, Write};

/// Which check of a simulation run failed. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum raft_sim_check {
    /// Every check passed.
    None = 0,
    /// Replicas answered differently at one log index or hashed differently at one applied
    /// index: the state machine is not deterministic.
    Determinism = 1,
    /// A state machine restored from a snapshot answered or hashed differently.
    SnapshotRoundTrip = 2,
    /// The clients' history is not linearizable under the model.
    Linearizability = 3,
    /// A client command reached a state machine at two log indexes.
    ExactlyOnce = 4,
    /// A state machine callback failed (non-zero return).
    StateMachine = 5,
    /// The cluster did not converge once every fault was healed.
    Liveness = 6,
}

impl From<Check> for raft_sim_check {
    fn from(c: Check) -> Self {
        match c {
            Check::Determinism => raft_sim_check::Determinism,
            Check::SnapshotRoundTrip => raft_sim_check::SnapshotRoundTrip,
            Check::Linearizability => raft_sim_check::Linearizability,
            Check::ExactlyOnce => raft_sim_check::ExactlyOnce,
            Check::StateMachine => raft_sim_check::StateMachine,
            Check::Liveness => raft_sim_check::Liveness,
        }
    }
}

/// How a simulated client's request travels. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum raft_sim_request_kind {
    /// A write proposed in the client's session (exactly-once under retries).
    Write = 0,
    /// A linearizable read: read index, then the replica's query callback.
    Read = 1,
    /// DELIBERATELY UNSAFE: a write whose retries are new plain commands.
    WriteWithoutSession = 2,
    /// DELIBERATELY UNSAFE: a read from the reached replica's local state, no read index.
    ReadLocal = 3,
}

/// The sequential model the history is checked against. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum raft_sim_model_kind {
    /// No linearizability check.
    None = 0,
    /// The built-in key-value model (`put K V`, `append K S`, `del K`, `get K`), per key.
    Kv = 1,
    /// The `model_step` callback of [`raft_sim_options`] (states are byte strings).
    Custom = 2,
}

/// The state machine of every simulated node: `create` makes an empty instance (one per
/// node and per restart or snapshot check), the other callbacks get that instance as their
/// `userdata`. `apply`, `snapshot` and `restore` are exactly the callbacks a real node
/// takes. All callbacks run on the thread calling [`raft_sim_run`], one at a time.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct raft_sim_machine {
    /// Returns a new, empty instance (NULL fails the run); `userdata` is
    /// [`raft_sim_options::machine_userdata`].
    pub create: Option<unsafe extern "C" fn(userdata: *mut c_void) -> *mut c_void>,
    /// Frees an instance (optional).
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    /// Applies a committed command (required).
    pub apply: raft_apply_callback,
    /// Writes the whole state (required).
    pub snapshot: raft_snapshot_callback,
    /// Replaces the state with a snapshot (required).
    pub restore: raft_restore_callback,
    /// Answers the read-only query `q[0..len]` from local state into `out` with
    /// `raft_buf_set` (required); return 0 on success.
    pub query: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            q: *const u8,
            len: usize,
            out: *mut raft_buf,
        ) -> c_int,
    >,
    /// Optional: writes a hash of the whole state to `out_hash` and returns 0; without it
    /// the snapshot bytes are hashed (they must then be canonical).
    pub state_hash:
        Option<unsafe extern "C" fn(instance: *mut c_void, out_hash: *mut u64) -> c_int>,
}

/// Picks the next request of simulated client `client` (1-based), which issued `op`
/// requests before; `random` is drawn from the seed (use no other randomness). Write the
/// kind ([`raft_sim_request_kind`]) to `out_kind` and the bytes with `raft_buf_set(out_data,
/// ...)`, and return 0; return non-zero when the client is done.
pub type raft_sim_workload_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        client: u64,
        op: u64,
        random: u64,
        out_kind: *mut u32,
        out_data: *mut raft_buf,
    ) -> c_int,
>;

/// A custom sequential model step: from `state[0..state_len]` (empty at first), runs
/// the write (`is_write` 1) or read `input[0..input_len]`; writes the new state to
/// `out_state` and the output a client would see to `out_output` (both with
/// `raft_buf_set`); returns 0.
pub type raft_sim_model_step_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        state: *const u8,
        state_len: usize,
        is_write: c_int,
        input: *const u8,
        input_len: usize,
        out_state: *mut raft_buf,
        out_output: *mut raft_buf,
    ) -> c_int,
>;

/// Settings of a simulation; [`raft_sim_options_default`] fills every field.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct raft_sim_options {
    /// Nodes, 1 to 7 (default 3).
    pub nodes: u64,
    /// Simulated clients (default 3).
    pub clients: u64,
    /// Requests per client (default 30).
    pub ops_per_client: u64,
    /// Messages dropped / duplicated per 1000 (default 20 / 10).
    pub drop_per_mille: u64,
    /// See `drop_per_mille`.
    pub dup_per_mille: u64,
    /// Message delay range in virtual ms (default 1..20).
    pub delay_min_ms: u64,
    /// See `delay_min_ms`.
    pub delay_max_ms: u64,
    /// Disk sync latency range in virtual ms (default 1..10).
    pub sync_min_ms: u64,
    /// See `sync_min_ms`.
    pub sync_max_ms: u64,
    /// Time between scheduled faults, virtual ms (default 200..1500).
    pub fault_interval_min_ms: u64,
    /// See `fault_interval_min_ms`.
    pub fault_interval_max_ms: u64,
    /// How long a partition, crash, pause or demotion lasts (default 100..1500).
    pub fault_duration_min_ms: u64,
    /// See `fault_duration_min_ms`.
    pub fault_duration_max_ms: u64,
    /// Snapshot every this many applied entries, 0 never (default 30).
    pub snapshot_every: u64,
    /// Entries kept behind a snapshot (default 5).
    pub snapshot_trailing: u64,
    /// Fault switches, each 0 or 1 (default all 1).
    pub reorder: u8,
    /// Symmetric partitions.
    pub partitions: u8,
    /// One-way link cuts.
    pub one_way: u8,
    /// Bridge partitions.
    pub bridges: u8,
    /// Crashes losing unsynced writes, then restarts.
    pub crashes: u8,
    /// Process pauses.
    pub pauses: u8,
    /// Voters demoted to learners and promoted back.
    pub membership: u8,
    /// Leadership transfers.
    pub transfers: u8,
    /// The model ([`raft_sim_model_kind`], default `RAFT_SIM_MODEL_KIND_NONE`).
    pub model: u32,
    /// The custom model's step (with `RAFT_SIM_MODEL_KIND_CUSTOM`).
    pub model_step: raft_sim_model_step_callback,
    /// Passed to `model_step`.
    pub model_userdata: *mut c_void,
    /// Passed to `raft_sim_machine::create`.
    pub machine_userdata: *mut c_void,
    /// The command a failure's replay line runs after `RAFT_SIM_SEED=<seed>` (NUL
    /// terminated; NULL: the program's name is unknown, the line says `<your test>`).
    pub replay_hint: *const c_char,
}

/// The outcome of [`raft_sim_run`].
#[repr(C)]
pub struct raft_sim_report {
    /// Seed of the (first failing, or last) run.
    pub seed: u64,
    /// Seeds run.
    pub seeds_run: u64,
    /// Virtual ms simulated over all seeds.
    pub virtual_ms: u64,
    /// Client requests completed with a known outcome, over all seeds.
    pub completed: u64,
    /// The failed check ([`raft_sim_check`]), `RAFT_SIM_CHECK_NONE` if all passed.
    pub check: u32,
    /// The failure in words, with the fault schedule and the replay line (empty when all
    /// passed); release with `raft_buf_free`.
    pub failure: raft_buf,
}

/// Fills `out` with the default settings (everything on, no model).
#[no_mangle]
pub unsafe extern "C" fn raft_sim_options_default(out: *mut raft_sim_options) -> raft_status {
    boundary(|| {
        if out.is_null() {
            return fail(raft_status::NullArgument, "out is NULL");
        }
        let f = FaultConfig::default();
        let o = raft_sim_options {
            nodes: 3,
            clients: 3,
            ops_per_client: 30,
            drop_per_mille: f.drop_per_mille,
            dup_per_mille: f.dup_per_mille,
            delay_min_ms: f.delay_ms.0,
            delay_max_ms: f.delay_ms.1,
            sync_min_ms: f.sync_ms.0,
            sync_max_ms: f.sync_ms.1,
            fault_interval_min_ms: f.interval_ms.0,
            fault_interval_max_ms: f.interval_ms.1,
            fault_duration_min_ms: f.duration_ms.0,
            fault_duration_max_ms: f.duration_ms.1,
            snapshot_every: f.snapshot_every,
            snapshot_trailing: f.snapshot_trailing,
            reorder: 1,
            partitions: 1,
            one_way: 1,
            bridges: 1,
            crashes: 1,
            pauses: 1,
            membership: 1,
            transfers: 1,
            model: raft_sim_model_kind::None as u32,
            model_step: None,
            model_userdata: std::ptr::null_mut(),
            machine_userdata: std::ptr::null_mut(),
            replay_hint: std::ptr::null(),
        };
        // SAFETY: non-NULL, the caller provides a writable struct.
        unsafe { out.write(o) };
        raft_status::Ok
    })
}

/// One replica's instance of the C state machine.
struct CSimMachine {
    cb: raft_sim_machine,
    instance: *mut c_void,
}

// SAFETY: instances are only used on the thread running the simulation.
unsafe impl Send for CSimMachine {}

impl Drop for CSimMachine {
    fn drop(&mut self) {
        if let Some(d) = self.cb.destroy {
            // SAFETY: the user's destructor, once per instance.
            callback_scope(|| unsafe { d(self.instance) });
        }
    }
}

impl StateMachine for CSimMachine {
    fn apply(&mut self, batch: &[Committed<'_>]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let apply = self.cb.apply.ok_or("no apply callback")?;
        let mut out = Vec::with_capacity(batch.len());
        for c in batch {
            let mut buf = raft_buf::from_vec(Vec::new());
            // SAFETY: the user's callback; `buf` is a valid empty library buffer.
            let rc = callback_scope(|| unsafe {
                apply(
                    self.instance,
                    c.index,
                    c.data.as_ptr(),
                    c.data.len(),
                    &mut buf,
                )
            });
            // SAFETY: only `raft_buf_set` may have filled it.
            let resp = unsafe { buf.take() };
            if rc != 0 {
                return Err(format!("apply callback returned {rc} at index {}", c.index));
            }
            out.push(resp);
        }
        Ok(out)
    }

    fn snapshot(&mut self, out: &mut dyn Write) -> Result<(), String> {
        let f = self.cb.snapshot.ok_or("no snapshot callback")?;
        let ud = self.instance;
        // SAFETY: the user's callback with a writer valid for its duration.
        let rc = with_writer(out, |w| callback_scope(|| unsafe { f(ud, w) }));
        (rc == 0)
            .then_some(())
            .ok_or(format!("snapshot callback returned {rc}"))
    }

    fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        let f = self.cb.restore.ok_or("no restore callback")?;
        let ud = self.instance;
        // SAFETY: the user's callback with a reader valid for its duration.
        let rc = with_reader(input, |r| callback_scope(|| unsafe { f(ud, r) }));
        (rc == 0)
            .then_some(())
            .ok_or(format!("restore callback returned {rc}"))
    }
}

impl SimStateMachine for CSimMachine {
    fn query(&mut self, q: &[u8]) -> Vec<u8> {
        let Some(f) = self.cb.query else {
            return Vec::new();
        };
        let mut buf = raft_buf::from_vec(Vec::new());
        // SAFETY: the user's callback; `buf` is a valid empty library buffer.
        let _ = callback_scope(|| unsafe { f(self.instance, q.as_ptr(), q.len(), &mut buf) });
        // SAFETY: only `raft_buf_set` may have filled it.
        unsafe { buf.take() }.unwrap_or_default()
    }

    fn state_hash(&mut self) -> Option<u64> {
        let f = self.cb.state_hash?;
        let mut h = 0u64;
        // SAFETY: the user's callback writing one u64.
        let rc = callback_scope(|| unsafe { f(self.instance, &mut h) });
        (rc == 0).then_some(h)
    }
}

/// A model whose step is a C callback over byte-string states.
struct CModel {
    step: unsafe extern "C" fn(
        *mut c_void,
        *const u8,
        usize,
        c_int,
        *const u8,
        usize,
        *mut raft_buf,
        *mut raft_buf,
    ) -> c_int,
    userdata: *mut c_void,
}

impl Model for CModel {
    type State = Vec<u8>;

    fn init(&self) -> Vec<u8> {
        Vec::new()
    }

    fn step(&self, state: &Vec<u8>, kind: OpKind, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut s, mut o) = (
            raft_buf::from_vec(Vec::new()),
            raft_buf::from_vec(Vec::new()),
        );
        let w = c_int::from(kind == OpKind::Write);
        // SAFETY: the user's callback; the buffers are valid empty library buffers.
        callback_scope(|| unsafe {
            (self.step)(
                self.userdata,
                state.as_ptr(),
                state.len(),
                w,
                input.as_ptr(),
                input.len(),
                &mut s,
                &mut o,
            )
        });
        // SAFETY: only `raft_buf_set` may have filled them.
        unsafe { (s.take().unwrap_or_default(), o.take().unwrap_or_default()) }
    }
}

fn faults(o: &raft_sim_options) -> FaultConfig {
    FaultConfig {
        drop_per_mille: o.drop_per_mille,
        dup_per_mille: o.dup_per_mille,
        delay_ms: (o.delay_min_ms, o.delay_max_ms),
        reorder: o.reorder != 0,
        sync_ms: (o.sync_min_ms, o.sync_max_ms),
        partitions: o.partitions != 0,
        one_way: o.one_way != 0,
        bridges: o.bridges != 0,
        crashes: o.crashes != 0,
        pauses: o.pauses != 0,
        membership: o.membership != 0,
        transfers: o.transfers != 0,
        interval_ms: (o.fault_interval_min_ms, o.fault_interval_max_ms),
        duration_ms: (o.fault_duration_min_ms, o.fault_duration_max_ms),
        snapshot_every: o.snapshot_every,
        snapshot_trailing: o.snapshot_trailing,
    }
}

fn build(
    o: &raft_sim_options,
    m: raft_sim_machine,
    workload: raft_sim_workload_callback,
    workload_userdata: *mut c_void,
) -> Result<Simulation, String> {
    if m.create.is_none()
        || m.apply.is_none()
        || m.snapshot.is_none()
        || m.restore.is_none()
        || m.query.is_none()
    {
        return Err(
            "the machine needs create, apply, snapshot, restore and query callbacks".into(),
        );
    }
    let work = workload.ok_or("the workload callback is required")?;
    let hint = if o.replay_hint.is_null() {
        "<your test>".to_string()
    } else {
        // SAFETY: the caller passes a NUL-terminated string.
        unsafe { CStr::from_ptr(o.replay_hint) }
            .to_string_lossy()
            .into_owned()
    };
    let mud = o.machine_userdata as usize;
    let factory = move || -> Box<dyn SimStateMachine> {
        let create = m.create.expect("checked");
        // SAFETY: the user's constructor.
        let instance = callback_scope(|| unsafe { create(mud as *mut c_void) });
        Box::new(CSimMachine { cb: m, instance })
    };
    let wud = workload_userdata as usize;
    let w = move |ctx: &mut ClientCtx<'_>| -> Option<Request> {
        let (mut kind, mut data) = (u32::MAX, raft_buf::from_vec(Vec::new()));
        let random = ctx.rand(u64::MAX);
        // SAFETY: the user's callback with valid out pointers.
        let rc = callback_scope(|| unsafe {
            work(
                wud as *mut c_void,
                ctx.client(),
                ctx.op(),
                random,
                &mut kind,
                &mut data,
            )
        });
        // SAFETY: only `raft_buf_set` may have filled it.
        let data = unsafe { data.take() }.unwrap_or_default();
        if rc != 0 {
            return None;
        }
        Some(match kind {
            0 => Request::write(data),
            1 => Request::read(data),
            2 => Request::write_without_session(data),
            3 => Request::read_local(data),
            _ => return None,
        })
    };
    let mut b = Simulation::builder_boxed(Box::new(factory))
        .nodes(o.nodes)
        .clients(o.clients)
        .ops_per_client(o.ops_per_client)
        .faults(faults(o))
        .workload(w)
        .replay_hint(hint);
    b = match o.model {
        0 => b,
        1 => b.model(KvModel),
        2 => {
            let step = o
                .model_step
                .ok_or("RAFT_SIM_MODEL_KIND_CUSTOM needs model_step")?;
            b.model(CModel {
                step,
                userdata: o.model_userdata,
            })
        }
        x => return Err(format!("unknown model kind {x}")),
    };
    b.build()
}

/// Runs seeds `first_seed .. first_seed + count` (or only `RAFT_SIM_SEED`, with a replay
/// line's `RAFT_SIM_SCHEDULE`, `RAFT_SIM_OPS` and `RAFT_SIM_NET`, when the environment
/// names one) until one fails, and writes the
/// verdict to `out_report` (release its `failure` with `raft_buf_free`). Returns
/// `RAFT_STATUS_OK` whether or not a check failed (see `out_report->check`);
/// `RAFT_STATUS_INVALID_ARGUMENT` for bad settings or missing callbacks.
#[no_mangle]
pub unsafe extern "C" fn raft_sim_run(
    options: *const raft_sim_options,
    machine: *const raft_sim_machine,
    workload: raft_sim_workload_callback,
    workload_userdata: *mut c_void,
    first_seed: u64,
    count: u64,
    out_report: *mut raft_sim_report,
) -> raft_status {
    boundary(|| {
        if options.is_null() || machine.is_null() || out_report.is_null() {
            return fail(
                raft_status::NullArgument,
                "options, machine and out_report are required",
            );
        }
        // SAFETY: non-NULL, valid per the caller's contract.
        let (o, m) = unsafe { (*options, *machine) };
        let mut sim = match build(&o, m, workload, workload_userdata) {
            Ok(s) => s,
            Err(e) => return fail(raft_status::InvalidArgument, e),
        };
        let end = first_seed.saturating_add(count);
        let (reports, failure) = match sim.run_seeds(first_seed..end) {
            Ok(r) => (r, None),
            Err(f) => (Vec::new(), Some(f)),
        };
        let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
        let rep = match failure {
            None => raft_sim_report {
                seed: reports.last().map_or(first_seed, |r| r.seed),
                seeds_run: reports.len() as u64,
                virtual_ms: sum(|r| r.virtual_ms),
                completed: sum(|r| r.completed),
                check: raft_sim_check::None as u32,
                failure: raft_buf::from_vec(Vec::new()),
            },
            Some(f) => raft_sim_report {
                seed: f.seed,
                seeds_run: f.seed.saturating_sub(first_seed) + 1,
                virtual_ms: f.at_ms,
                completed: 0,
                check: raft_sim_check::from(f.check) as u32,
                failure: raft_buf::from_vec(f.to_string().into_bytes()),
            },
        };
        // SAFETY: non-NULL, writable per the caller's contract.
        unsafe { out_report.write(rep) };
        raft_status::Ok
    })
}
