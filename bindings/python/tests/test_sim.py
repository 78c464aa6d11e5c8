"""raft_manager.sim: a correct key-value state machine passes 200 seeds under faults; four
deliberately broken ones are each caught with a seed that replays the failure."""

from __future__ import annotations

import json
import os
import re
from typing import Callable

import pytest

from raft_manager.sim import (
    KV_MODEL,
    ClientCtx,
    Simulation,
    SimulationFailure,
    read,
    read_local,
    write,
    write_without_session,
)
from raft_manager.testing import check_seeds

SEEDS = int(os.environ.get("RAFT_SIM_SEEDS", "200"))


class KvStore:
    """The same object a Node takes (apply/snapshot/restore), plus query and state_hash.
    Commands: ``put K V``, ``append K S``, ``del K``; query ``get K``."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.revision = 0

    def apply(self, index: int, command: bytes) -> bytes:
        op, key, *rest = command.decode().split(" ", 2)
        self.revision += 1
        if op == "put":
            self.data[key] = rest[0]
            return b"ok"
        if op == "append":
            self.data[key] = self.data.get(key, "") + rest[0]
            return self.data[key].encode()
        if op == "del":
            self.data.pop(key, None)
            return b"ok"
        return b"error: bad command"

    def snapshot(self) -> bytes:
        return json.dumps([self.revision, self.data], sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        self.revision, self.data = json.loads(data)

    def query(self, q: bytes) -> bytes:
        _, key = q.decode().split(" ", 1)
        return self.data.get(key, "").encode()

    def state_hash(self) -> int:
        return hash((self.revision, tuple(sorted(self.data.items()))))


def workload(ctx: ClientCtx):
    key = f"k{ctx.rng.randrange(3)}"
    tag = f"{ctx.client}.{ctx.op}"
    pick = ctx.rng.randrange(10)
    if pick < 4:
        return write(f"append {key} {tag},".encode())
    if pick < 6:
        return write(f"put {key} {tag}".encode())
    return read(f"get {key}".encode())


def test_correct_kv_passes():
    reports = check_seeds(Simulation(KvStore, workload, model=KV_MODEL), SEEDS)
    assert sum(r.completed for r in reports) > len(reports) * 45


def first_failure(
    sim: Simulation,
    check: str,
    replay_also: tuple[str, ...] = (),
    before_run: Callable[[], None] = lambda: None,
):
    """The first failing seed; it must fail the expected check, and again, identically, when
    replayed (a nondeterministic machine may also diverge first from its snapshot's copy: the
    checks in `replay_also` are accepted). `before_run` resets state the factory keeps."""
    for seed in range(200):
        before_run()
        f = sim.run(seed).failure
        if f is not None:
            print(f)
            assert f.check in (check, *replay_also), f.text
            before_run()
            again = sim.run(seed).failure
            assert again == f, (f, again)
            assert f"RAFT_SIM_SEED={seed}" in f.replay
            return f
    pytest.fail("no seed in 0..200 caught the broken state machine")


class UnorderedKv(KvStore):
    """BROKEN (a): when full, evicts the key that comes first in string-hash order, which
    differs between processes (here every replica object is one "process": it gets the next
    salt, so a replay that creates the replicas in the same order sees the same salts)."""

    created = 0

    def __init__(self) -> None:
        super().__init__()
        UnorderedKv.created += 1
        self.salt = UnorderedKv.created

    def apply(self, index: int, command: bytes) -> bytes:
        out = super().apply(index, command)
        if len(self.data) > 2:
            victim = min(self.data, key=lambda k: hash((k, self.salt)))
            del self.data[victim]
        return out

    def state_hash(self) -> int:
        return hash(tuple(sorted(self.data.items())))


def test_unordered_iteration_is_caught():
    def restart_salts() -> None:
        UnorderedKv.created = 0

    sim = Simulation(UnorderedKv, workload, model=KV_MODEL)
    first_failure(sim, "determinism", ("snapshot round trip",), restart_salts)


class LossySnapshotKv(KvStore):
    """BROKEN (b): the snapshot leaves out the revision."""

    def snapshot(self) -> bytes:
        return json.dumps(self.data, sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        self.data = json.loads(data)


def test_lossy_snapshot_is_caught():
    first_failure(Simulation(LossySnapshotKv, workload, model=KV_MODEL), "snapshot round trip")


def test_retry_without_session_is_caught():
    # BROKEN (c): a non-idempotent append retried as a new plain command.
    def w(ctx: ClientCtx):
        return write_without_session(f"append k{ctx.rng.randrange(3)} {ctx.client}.{ctx.op},".encode())

    first_failure(Simulation(KvStore, w, model=KV_MODEL), "exactly-once")


def test_local_reads_are_caught():
    # BROKEN (d): reads served from the reached replica without read_index.
    def w(ctx: ClientCtx):
        key = f"k{ctx.rng.randrange(2)}"
        if ctx.rng.randrange(2):
            return write(f"append {key} {ctx.client}.{ctx.op},".encode())
        return read_local(f"get {key}".encode())

    first_failure(Simulation(KvStore, w, model=KV_MODEL), "linearizability")


def test_check_seeds_names_the_seed_and_the_replay():
    sim = Simulation(LossySnapshotKv, workload, model=KV_MODEL)
    with pytest.raises(AssertionError) as e:
        check_seeds(sim, 50)
    text = str(e.value)
    assert text.startswith("seed ") and "RAFT_SIM_SEED=" in text
    assert "test_sim.py::test_check_seeds_names_the_seed_and_the_replay" in text


def test_a_failure_shrinks_and_replays_from_its_line(monkeypatch: pytest.MonkeyPatch):
    sim = Simulation(LossySnapshotKv, workload, model=KV_MODEL)
    f = first_failure(sim, "snapshot round trip")
    shrunk = sim.shrink(f.seed, 80)
    print(shrunk)
    assert shrunk.check == "snapshot round trip"
    assert len(shrunk.faults) <= len(f.faults)
    assert "RAFT_SIM_OPS=" in shrunk.replay, shrunk.replay
    for name, value in re.findall(r"(RAFT_SIM_\w+)=('[^']*'|\S+)", shrunk.replay):
        monkeypatch.setenv(name, value.strip("'"))
    with pytest.raises(SimulationFailure) as e:
        Simulation(LossySnapshotKv, workload, model=KV_MODEL).run_seeds(range(200))
    assert e.value.failure == shrunk


def test_custom_model_and_bad_settings():
    class Register:
        """A model of the whole store as one JSON register."""

        def init(self) -> bytes:
            return b"{}"

        def step(self, state: bytes, is_write: bool, input: bytes):
            kv = KvStore()
            kv.data = json.loads(state)
            out = kv.apply(0, input) if is_write else kv.query(input)
            return json.dumps(kv.data, sort_keys=True).encode(), out

    sim = Simulation(KvStore, workload, model=Register(), ops_per_client=10)
    assert sim.run(1).failure is None
    with pytest.raises(ValueError, match="nodes must be 1 to 7"):
        Simulation(KvStore, workload, nodes=8)
    with pytest.raises(ValueError, match="unknown fault knob"):
        Simulation(KvStore, workload, faults={"explode": 1})
    with pytest.raises(SimulationFailure):
        Simulation(LossySnapshotKv, workload).run_seeds(range(50))


def test_simulation_dropped_on_another_thread_is_released_cleanly() -> None:
    """Python may drop a Simulation on any thread (the last reference held by a worker, a
    collection triggered there): that must free it, not report an error and leak it."""
    import gc
    import sys
    import threading

    raised: list[BaseException | None] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: raised.append(u.exc_value)
    try:
        box = [Simulation(KvStore, workload, model=KV_MODEL)]
        box[0].run(0)

        def drop() -> None:
            box.clear()
            gc.collect()

        t = threading.Thread(target=drop)
        t.start()
        t.join()
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert raised == []
