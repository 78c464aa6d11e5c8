"""pytest helpers for :mod:`raft_manager.sim`: run N seeds, fail with the seed and the line
that replays it.

    from raft_manager.testing import check_seeds

    def test_my_state_machine():
        check_seeds(Simulation(MyStateMachine, my_workload, model=KV_MODEL), 200)
"""

from __future__ import annotations

import os
import shlex

from .sim import Report, Simulation, SimulationFailure

__all__ = ["check_seeds", "seeds"]


def _current_test() -> str:
    # "path::name (call)" while pytest runs a test.
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    return f"python -m pytest {shlex.quote(node)}" if node else "python -m pytest"


def seeds(n: int) -> list[int]:
    """``range(n)``, or only ``RAFT_SIM_SEED`` when set: for ``pytest.mark.parametrize``,
    so that each seed is its own test id."""
    env = os.environ.get("RAFT_SIM_SEED")
    return [int(env)] if env else list(range(n))


def check_seeds(sim: Simulation, n: int = 200, first: int = 0) -> list[Report]:
    """Runs seeds ``first .. first + n`` (only ``RAFT_SIM_SEED`` when set). The first
    failure fails the test with an ``AssertionError`` naming the check, the seed, the
    faults and a one-line replay command for this test."""
    sim.set_replay_hint(_current_test())
    try:
        return sim.run_seeds(range(first, first + n))
    except SimulationFailure as e:
        raise AssertionError(f"seed {e.failure.seed}: {e.failure.text}") from None
