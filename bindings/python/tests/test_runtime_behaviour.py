"""Logging bridge, a raising transport, and interpreter exit with nodes left open."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import FAST, KV, wait_for

import raft_manager
from raft_manager import Node


class RaisingTransport:
    def __init__(self) -> None:
        self.calls = 0

    def send(self, to: int, message: bytes) -> None:
        self.calls += 1
        raise RuntimeError("transport is broken")


def test_transport_exception_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="raft_manager")
    t = RaisingTransport()
    node = Node(1, [1, 2, 3], KV(), transport=t, **FAST)
    try:
        wait_for(lambda: t.calls > 0, what="transport used")
        wait_for(
            lambda: any("transport is broken" in r.getMessage() for r in caplog.records),
            what="warning forwarded to logging",
        )
        assert node.failure is None
        assert node.status()["role"] in ("follower", "pre_candidate", "candidate")
    finally:
        node.close()


@pytest.mark.xfail(
    strict=False,
    reason="open: log records from engine threads are not forwarded after the final merges "
    "(session 3 closing note)",
)
def test_enable_logging_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="raft_manager")
    raft_manager.enable_logging(logging.DEBUG)
    try:
        # Snapshots are logged at INFO.
        with Node(1, [], KV(), snapshot_entries=2, **FAST) as node:
            wait_for(lambda: node.status()["role"] == "leader", what="leader")
            for i in range(4):
                node.propose(b"k=%d" % i)
            wait_for(
                lambda: any("snapshot taken" in r.getMessage() for r in caplog.records),
                what="info record",
            )
        assert all(r.name == "raft_manager" for r in caplog.records)
    finally:
        raft_manager.enable_logging(logging.WARNING)


@pytest.mark.parametrize("kind", ["callback", "tcp"])
def test_interpreter_exit_with_open_nodes(kind: str) -> None:
    tests = Path(__file__).parent
    script = textwrap.dedent(
        f"""
        import gc, sys
        sys.path.insert(0, {str(tests)!r})
        from conftest import Cluster
        c = Cluster({kind!r}, 3)
        c.leader()
        c.propose(b"a=1")
        n = c.nodes.pop(3)            # dropped without close(): shut down by the GC
        c.net.nodes.pop(3)
        del n
        gc.collect()
        c.propose(b"b=2")
        fut = c.leader().propose_async(b"c=3")
        print("bye")                  # the other nodes are still open: closed at exit
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    assert "bye" in r.stdout
