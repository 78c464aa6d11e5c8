"""Logging bridge, a raising transport, and interpreter exit with nodes left open."""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from conftest import FAST, KV, wait_for

import raft_manager
from raft_manager import Node, RaftError


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


def _leader_line(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        "as leader" in r.getMessage() or "became leader" in r.getMessage() for r in caplog.records
    )


def test_raising_the_level_after_nodes_ran_forwards_new_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Regression: changing the level rebuilt tracing's interest cache from this thread, which
    # has no subscriber; with the bridge as the only dispatcher, every event was switched off.
    caplog.set_level(logging.INFO, logger="raft_manager")
    raft_manager.enable_logging(logging.WARNING)
    try:
        with Node(1, [], KV(), **FAST) as node:
            wait_for(lambda: node.status()["role"] == "leader", what="leader")
        assert not _leader_line(caplog)  # INFO was below the bridge's level
        raft_manager.enable_logging(logging.INFO)
        with Node(1, [], KV(), **FAST) as node:
            wait_for(lambda: node.status()["role"] == "leader", what="leader")
            wait_for(lambda: _leader_line(caplog), what="leader line at INFO")
    finally:
        raft_manager.enable_logging(logging.WARNING)


class _ThreadDelivery:
    """A transport whose messages a plain Python thread (not one the library started)
    delivers with `step`: with `caller_runs` that thread runs the protocol passes."""

    def __init__(self, nodes: dict[int, Node], me: int, q: queue.Queue[tuple[int, int, bytes]]):
        self.nodes, self.me, self.q = nodes, me, q

    def send(self, to: int, message: bytes) -> None:
        self.q.put((self.me, to, message))


def test_caller_runs_passes_on_host_threads_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="raft_manager")
    raft_manager.enable_logging(logging.INFO)
    q: queue.Queue[tuple[int, int, bytes]] = queue.Queue()
    nodes: dict[int, Node] = {}
    stop = threading.Event()

    def deliver() -> None:
        while not stop.is_set():
            try:
                frm, to, msg = q.get(timeout=0.05)
            except queue.Empty:
                continue
            n = nodes.get(to)
            if n is not None and not n.closed:
                try:
                    n.step(msg, sender=frm)
                except RaftError:
                    pass

    t = threading.Thread(target=deliver, name="host-delivery")
    t.start()
    try:
        for i in (1, 2, 3):
            nodes[i] = Node(
                i, [1, 2, 3], KV(), transport=_ThreadDelivery(nodes, i, q), caller_runs=True,
                **FAST,
            )
        wait_for(lambda: any(n.status()["role"] == "leader" for n in nodes.values()), what="leader")
        wait_for(lambda: _leader_line(caplog), what="leader line")
    finally:
        stop.set()
        t.join()
        for n in nodes.values():
            n.close()
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
