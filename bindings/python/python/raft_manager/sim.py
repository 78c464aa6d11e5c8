"""Test your state machine under faults: a seeded, replayable simulated cluster.

The state machine objects are the ones a :class:`raft_manager.Node` takes (``apply``,
``snapshot``, ``restore``), plus ``query(q) -> bytes`` (your read path, run on local state
after ``read_index``) and, optionally, ``state_hash() -> int``. Every node of the simulated
cluster gets its own object from ``factory()`` (a class works). The Raft core and the
runtime's apply logic (client sessions, exactly-once) are the production ones; time, the
network and the disk are simulated. See docs/SIMULATION.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Tuple, Union

from . import _native

__all__ = [
    "Simulation",
    "Report",
    "Failure",
    "SimulationFailure",
    "ClientCtx",
    "Model",
    "write",
    "read",
    "write_without_session",
    "read_local",
    "KV_MODEL",
]

#: The built-in key-value model (``put K V``, ``append K S``, ``del K``, ``get K``), per key.
KV_MODEL = "kv"

Request = Tuple[str, bytes]


def write(command: bytes) -> Request:
    """A write proposed in the client's session: retries are applied once."""
    return ("write", bytes(command))


def read(query: bytes) -> Request:
    """A linearizable read: ``read_index``, then ``query`` on a replica that caught up."""
    return ("read", bytes(query))


def write_without_session(command: bytes) -> Request:
    """DELIBERATELY UNSAFE: a write whose retries are proposed again as new commands."""
    return ("write_without_session", bytes(command))


def read_local(query: bytes) -> Request:
    """DELIBERATELY UNSAFE: ``query`` on whichever replica the client reaches."""
    return ("read_local", bytes(query))


@dataclass
class ClientCtx:
    """What the workload sees: the client (1-based), how many requests it issued, and a
    ``random.Random`` seeded from the run's seed (use no other randomness)."""

    client: int
    op: int
    rng: random.Random


class Model(Protocol):
    """A sequential specification over ``bytes`` states; optionally
    ``partition(is_write, input) -> bytes | None`` to check keys independently."""

    def init(self) -> bytes: ...

    def step(self, state: bytes, is_write: bool, input: bytes) -> Tuple[bytes, bytes]: ...


@dataclass
class Failure:
    """A failed check: which (``determinism``, ``snapshot round trip``, ``linearizability``,
    ``exactly-once``, ``state machine error``, ``liveness``), where, and how to replay."""

    check: str
    seed: int
    at_ms: int
    node: Optional[int]
    index: Optional[int]
    message: str
    replay: str
    faults: list[str]
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class Report:
    """The outcome of one seed."""

    seed: int
    virtual_ms: int
    completed: int
    unknown: int
    delivered: int
    faults: list[str] = field(default_factory=list)
    failure: Optional[Failure] = None


class SimulationFailure(AssertionError):
    """Raised by :meth:`Simulation.run_seeds`; its message names the seed and the replay."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.text)
        self.failure = failure


def _report(d: dict[str, Any]) -> Report:
    f = d.pop("failure")
    return Report(**d, failure=Failure(**f) if f else None)


class Simulation:
    """A simulated cluster running ``factory()`` state machines under the workload.

    ``workload(ctx) -> request | None`` returns the next request of client ``ctx.client``
    (made with :func:`write`, :func:`read`, ...) or ``None`` when that client is done.
    ``model`` is :data:`KV_MODEL`, a :class:`Model`, or ``None`` (no linearizability
    check). ``faults`` overrides fault knobs (``drop_per_mille=0``, ``crashes=False``,
    ``none=True`` for a healthy cluster, ...; see docs/SIMULATION.md).
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        workload: Callable[[ClientCtx], Optional[Request]],
        *,
        nodes: int = 3,
        clients: int = 3,
        ops_per_client: int = 30,
        model: Union[str, Model, None] = None,
        faults: Optional[dict[str, Any]] = None,
        replay_hint: Optional[str] = None,
    ) -> None:
        def call(client: int, op: int, r: int) -> Optional[Request]:
            return workload(ClientCtx(client, op, random.Random(r)))

        self._sim = _native._Simulation(
            factory,
            call,
            nodes=nodes,
            clients=clients,
            ops_per_client=ops_per_client,
            model=model,
            faults=faults,
            replay_hint=replay_hint,
        )

    def run(self, seed: int) -> Report:
        """Runs one seed and checks it."""
        return _report(self._sim.run(seed))

    def run_seeds(self, seeds: range) -> list[Report]:
        """Runs the seeds (only ``RAFT_SIM_SEED`` when set); raises
        :class:`SimulationFailure` at the first failure."""
        import os

        env = os.environ.get("RAFT_SIM_SEED")
        self._sim.apply_replay_env()
        out = []
        for seed in [int(env)] if env else seeds:
            r = self.run(seed)
            if r.failure is not None:
                raise SimulationFailure(r.failure)
            out.append(r)
        return out

    def set_replay_hint(self, hint: str) -> None:
        """The command a failure's replay line runs after ``RAFT_SIM_SEED=<seed>``."""
        self._sim.set_replay_hint(hint)

    def shrink(self, seed: int, max_runs: int = 100) -> Failure:
        """Reduces failing ``seed`` (fewer requests per client, less network noise, fewer
        faults) while it fails the same check; returns the reduced failure, whose
        ``replay`` line sets ``RAFT_SIM_OPS``/``RAFT_SIM_NET``/``RAFT_SIM_SCHEDULE``."""
        return Failure(**self._sim.shrink(seed, max_runs))
