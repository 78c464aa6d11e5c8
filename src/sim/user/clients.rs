//! The user's workload: simulated clients issuing requests one at a time, retrying through
//! client sessions, and the history of what they saw.

use super::model::OpKind;
use crate::core::rng::Rng;

/// How a request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// A write proposed in a client session: a retry is answered from the session table.
    Session,
    /// A write proposed as a plain command: a retry may apply it again.
    Plain,
    /// A linearizable read: read index, wait until applied, then query.
    ReadIndex,
    /// A read served from one replica's local state without read index (stale).
    Local,
}

/// One request of a simulated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub(super) mode: Mode,
    pub(super) data: Vec<u8>,
}

impl Request {
    /// A write, proposed through the client's session (exactly-once under retries).
    pub fn write(command: impl Into<Vec<u8>>) -> Self {
        Request {
            mode: Mode::Session,
            data: command.into(),
        }
    }

    /// A linearizable read: `read_index` at a node, then the replica's
    /// [`query`](super::SimStateMachine::query) once it has applied that index.
    pub fn read(query: impl Into<Vec<u8>>) -> Self {
        Request {
            mode: Mode::ReadIndex,
            data: query.into(),
        }
    }

    /// DELIBERATELY UNSAFE: a write retried as a plain command, without a session. Shows
    /// what the exactly-once check catches.
    pub fn write_without_session(command: impl Into<Vec<u8>>) -> Self {
        Request {
            mode: Mode::Plain,
            data: command.into(),
        }
    }

    /// DELIBERATELY UNSAFE: a read served from whichever replica the client reaches,
    /// without `read_index`. Shows what the linearizability check catches.
    pub fn read_local(query: impl Into<Vec<u8>>) -> Self {
        Request {
            mode: Mode::Local,
            data: query.into(),
        }
    }

    /// Write or read.
    pub fn kind(&self) -> OpKind {
        match self.mode {
            Mode::Session | Mode::Plain => OpKind::Write,
            Mode::ReadIndex | Mode::Local => OpKind::Read,
        }
    }

    /// The command or query bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// What the workload function sees when it picks a client's next request.
pub struct ClientCtx<'a> {
    pub(super) client: u64,
    pub(super) op: u64,
    pub(super) rng: &'a mut Rng,
}

impl ClientCtx<'_> {
    /// The client's id (1-based).
    pub fn client(&self) -> u64 {
        self.client
    }

    /// How many requests this client issued before this one.
    pub fn op(&self) -> u64 {
        self.op
    }

    /// A seeded random number in `0..n` (`n` > 0); use it instead of any other randomness
    /// so the run replays.
    pub fn rand(&mut self, n: u64) -> u64 {
        self.rng.range(0, n.max(1))
    }
}

/// The user's workload: the next request of a client, or `None` when it is done.
pub type Workload = dyn FnMut(&mut ClientCtx<'_>) -> Option<Request>;

/// Where the current attempt of a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    /// Waiting to be (re)sent.
    Idle,
    /// Proposed at `node`, landed at (`index`, `term`).
    Proposed { node: u64, index: u64, term: u64 },
    /// Read index requested at `node` with `ctx`; `index` once granted.
    Reading {
        node: u64,
        ctx: u64,
        index: Option<u64>,
    },
}

/// A request in flight.
pub(super) struct Current {
    pub req: Request,
    /// Its entry in the history.
    pub hist: usize,
    /// Session sequence number (writes).
    pub seq: u64,
    pub attempts: u32,
    pub attempt: Attempt,
    /// Virtual time after which the client gives up (outcome unknown).
    pub give_up_at: u64,
}

/// One simulated client.
pub(super) struct Client {
    pub id: u64,
    /// Last session sequence number used.
    pub seq: u64,
    /// Requests issued.
    pub issued: u64,
    /// The node the client tries next (its idea of the leader).
    pub hint: u64,
    pub current: Option<Current>,
    pub done: bool,
    /// Wake-ups carry this token; a newer one cancels older ones.
    pub token: u64,
}

impl Client {
    pub fn new(id: u64, nodes: u64) -> Self {
        Client {
            id,
            seq: 0,
            issued: 0,
            hint: (id - 1) % nodes + 1,
            current: None,
            done: false,
            token: 0,
        }
    }
}
