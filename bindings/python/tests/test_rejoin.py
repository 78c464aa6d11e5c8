"""A voter whose data directory is wiped and that restarts under the same id (a new
incarnation): re-admitted automatically by default (``auto_rejoin=True``), or, with
``auto_rejoin=False``, reported by the leader and left to the operator (docs/STORAGE.md,
"A voter that lost its state")."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from conftest import Cluster, wait_for

OPERATOR = "automatic rejoin is off"


def _wipe_a_follower(c: Cluster, base: Path) -> tuple[int, int]:
    """Writes, wipes a follower's data directory and restarts it; returns (its id, the
    configuration id before)."""
    leader = c.leader()
    for i in range(5):
        c.propose(f"k{i}={i}".encode())
    x = next(n.id for n in c.live if n.id != leader.id)
    wait_for(lambda: c.sms[x].data.get("k4") == "4", what="follower applied")
    conf = leader.status()["conf_id"]
    c.nodes[x].close()
    shutil.rmtree(base / f"n{x}")
    c.start(x, [1, 2, 3])
    return x, conf


def test_auto_rejoin_readmits_a_wiped_voter(
    tmp_path: Path, cluster_factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="raft_manager")
    c = cluster_factory("callback", 3, tmp_path, rejoin_max_lag=8)
    x, conf = _wipe_a_follower(c, tmp_path)
    leader = c.leader()

    def readmitted() -> bool:
        s = leader.status()
        return s["conf_id"] > conf and x in s["voters"] and not s["learners"]

    wait_for(readmitted, 20, "the wiped voter demoted, caught up and promoted")
    wait_for(lambda: c.sms[x].data.get("k4") == "4", what="the wiped voter caught up")
    assert not any(OPERATOR in r.getMessage() for r in caplog.records)


def test_without_auto_rejoin_the_operator_readmits_it(
    tmp_path: Path, cluster_factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="raft_manager")
    c = cluster_factory("callback", 3, tmp_path, auto_rejoin=False)
    x, conf = _wipe_a_follower(c, tmp_path)
    leader = c.leader()
    wait_for(
        lambda: any(
            r.levelno == logging.ERROR and f"voter {x} lost its state" in r.getMessage()
            and OPERATOR in r.getMessage()
            for r in caplog.records
        ),
        20,
        "the leader's error for the operator",
    )
    # The leader changed nothing by itself; writes go on without the wiped voter.
    s = leader.status()
    assert s["conf_id"] == conf and x in s["voters"] and not s["learners"]
    c.propose(b"k5=5")
    # The operator: a learner first, then promoted once caught up.
    others = [i for i in (1, 2, 3) if i != x]
    leader.change_membership(others, [x], expected_conf_id=s["conf_id"], timeout=5)
    leader.add_voter(x, timeout=20, max_lag=8)
    s = leader.status()
    assert x in s["voters"] and not s["learners"]
    wait_for(lambda: c.sms[x].data.get("k5") == "5", what="the re-admitted voter caught up")
