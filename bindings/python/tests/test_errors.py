"""Failure paths: raising state machines, shutdown with work in flight, bad input."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import threading
import time

import pytest
from conftest import FAST, KV, Cluster, wait_for

import raft_manager
from raft_manager import Node, RaftError, ShutdownError


def single(sm: object, **kw: object) -> Node:
    node = Node(1, [], sm, **{**FAST, **kw})
    wait_for(lambda: node.status()["role"] == "leader", what="single-node leader")
    return node


class Raising(KV):
    def apply(self, index: int, command: bytes) -> bytes | None:
        if command == b"boom":
            raise ValueError("boom at apply")
        return super().apply(index, command)


def test_apply_raises_fails_node_loudly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="raft_manager")
    node = single(Raising())
    try:
        assert node.propose(b"a=1") == b"2" or node.propose(b"a=1")
        with pytest.raises(RaftError) as ei:
            node.propose(b"boom", timeout=5)
        assert not isinstance(ei.value, ShutdownError)
        assert "boom at apply" in str(ei.value)
        assert isinstance(ei.value.__cause__, ValueError)
        assert node.failure is not None and "boom at apply" in node.failure
        # Every later call raises RaftError with the message.
        with pytest.raises(RaftError, match="boom at apply"):
            node.propose(b"b=2")
        with pytest.raises(RaftError, match="boom at apply"):
            node.status()
        fut = node.propose_async(b"c=3")
        with pytest.raises(RaftError, match="boom at apply"):
            fut.result(5)
        # The failure (with its traceback) reached Python logging.
        wait_for(
            lambda: any("boom at apply" in r.getMessage() for r in caplog.records),
            what="error logged",
        )
    finally:
        node.close()


class BadSnapshot(KV):
    def snapshot(self) -> bytes:
        return "not bytes"  # type: ignore[return-value]


def test_snapshot_returning_wrong_type_fails_node() -> None:
    node = single(BadSnapshot(), snapshot_entries=3)
    try:
        with pytest.raises(RaftError):
            for i in range(10):
                node.propose(f"k{i}=v".encode(), timeout=5)
        wait_for(lambda: node.failure is not None, what="failure")
        assert "snapshot() must return bytes" in (node.failure or "")
        with pytest.raises(RaftError, match="must return bytes") as ei:
            node.propose(b"x=1")
        assert isinstance(ei.value.__cause__, TypeError)
    finally:
        node.close()


def test_apply_returning_wrong_type_fails_node() -> None:
    class BadApply(KV):
        def apply(self, index: int, command: bytes) -> bytes | None:
            return 42  # type: ignore[return-value]

    node = single(BadApply())
    try:
        with pytest.raises(RaftError, match="must return bytes or None"):
            node.propose(b"x=1", timeout=5)
    finally:
        node.close()


def _no_quorum_leader(c: Cluster) -> Node:
    leader = c.leader()
    # Isolate only a leader every node follows: one found while another node's election was
    # still running would lose its leadership at once and fail the proposals with
    # OutcomeUnknownError instead of the outcome the test is about.
    wait_for(
        lambda: all(n.status()["leader"] == leader.id for n in c.live)
        and leader.status()["role"] == "leader",
        what="every node follows the leader",
    )
    for n in c.live:
        if n.id != leader.id:
            c.net.down.add(n.id)
    return leader


def test_close_with_proposals_in_flight(cluster_factory) -> None:
    c = cluster_factory("callback")
    leader = _no_quorum_leader(c)
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            leader.propose(b"never=1")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=blocked) for _ in range(5)]
    for t in threads:
        t.start()
    futs = [leader.propose_async(f"f{i}=1".encode()) for i in range(5)]
    time.sleep(0.3)
    assert all(t.is_alive() for t in threads)
    t0 = time.monotonic()
    leader.close()
    for t in threads:
        t.join(5)
    assert time.monotonic() - t0 < 5
    assert len(errors) == 5 and all(isinstance(e, ShutdownError) for e in errors), errors
    for f in futs:
        with pytest.raises(ShutdownError):
            f.result(5)
    with pytest.raises(ShutdownError):
        leader.propose(b"after=1")
    leader.close()  # idempotent
    assert leader.closed


def test_propose_timeout(cluster_factory) -> None:
    c = cluster_factory("callback")
    leader = _no_quorum_leader(c)
    t0 = time.monotonic()
    with pytest.raises(raft_manager.TimeoutError):
        leader.propose(b"slow=1", timeout=0.3)
    assert 0.25 < time.monotonic() - t0 < 2
    with pytest.raises(TimeoutError):  # also a builtins.TimeoutError
        leader.propose(b"slow=2", timeout=0.1)


class Gated(KV):
    """Holds the apply of ``gated=...`` until ``gate`` is set; ``applying`` says it started."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.applying = threading.Event()

    def apply(self, index: int, command: bytes) -> bytes | None:
        if command.startswith(b"gated="):
            self.applying.set()
            self.gate.wait(60)
        return super().apply(index, command)


def test_ctrl_c_interrupts_propose() -> None:
    # The proposal commits but its apply is held, so the caller waits on the completion for as
    # long as the test wants (no step-down or timeout can end the wait first); Ctrl-C arrives
    # once the apply started.
    sm = Gated()
    node = single(sm)

    def interrupt_once_applying() -> None:
        if sm.applying.wait(30):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_applying, daemon=True).start()
    try:
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            node.propose(b"gated=1")
        assert time.monotonic() - t0 < 30
        # The interrupt abandons the wait, not the command: it applies once released.
        sm.gate.set()
        wait_for(lambda: sm.data.get("gated") == "1", what="the interrupted command applied")
    finally:
        sm.gate.set()
        node.close()


def test_step_garbage_raises_value_error() -> None:
    node = Node(1, [1, 2], KV(), transport=_Null(), **FAST)
    try:
        with pytest.raises(ValueError):
            node.step(b"\x00\xffgarbage")
        with pytest.raises(TypeError):
            node.step("text")  # type: ignore[arg-type]
    finally:
        node.close()


class _Null:
    def send(self, to: int, message: bytes) -> None:
        pass


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        Node(1, [], object())
    with pytest.raises(TypeError):
        Node(1, "1,2", KV())
    with pytest.raises(ValueError):
        Node(0, [], KV())
    with pytest.raises(ValueError):
        Node(1, [], KV(), election_timeout=-1)
    with pytest.raises(TypeError):
        Node(1, [1, 2], KV())  # several members need addresses or a transport
    with pytest.raises(TypeError):
        Node(1, [1, 2], KV(), transport=object())
    with pytest.raises(ValueError):
        Node(1, {1: "127.0.0.1:notaport", 2: "127.0.0.1:1"}, KV())
    node = single(KV())
    try:
        with pytest.raises(TypeError):
            node.propose("str is not bytes")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            node.propose(b"x", timeout=-1)
    finally:
        node.close()


def test_storage_error_for_unusable_data_dir(tmp_path) -> None:
    f = tmp_path / "file"
    f.write_text("not a directory")
    with pytest.raises(raft_manager.StorageError):
        Node(1, [], KV(), str(f), **FAST)


def test_context_manager_and_futures() -> None:
    with single(KV()) as node:
        fut = node.propose_async(b"a=1")
        assert isinstance(fut, concurrent.futures.Future)
        assert fut.result(5) is not None

        async def main() -> list[bytes | None]:
            return await asyncio.gather(*(node.propose_aio(f"k{i}=1".encode()) for i in range(10)))

        assert len(set(asyncio.run(main()))) == 10
    assert node.closed
    with pytest.raises(ShutdownError):
        node.status()
    with pytest.raises(ShutdownError):
        node.propose_async(b"x").result(1)


def test_restore_from_own_snapshot(tmp_path) -> None:
    sm = KV()
    node = single(sm, snapshot_entries=4)
    node.close()
    d = str(tmp_path / "d")
    with Node(1, [], sm := KV(), d, **{**FAST, "snapshot_entries": 4}) as node:
        wait_for(lambda: node.status()["role"] == "leader", what="leader")
        for i in range(10):
            node.propose(f"k{i}={i}".encode())
    sm2 = KV()
    with Node(1, [], sm2, d, **{**FAST, "snapshot_entries": 4}) as node:
        wait_for(lambda: sm2.data.get("k9") == "9", what="replay after restart")
        assert sm2.data == sm.data


def test_blocking_calls_inside_apply_are_refused() -> None:
    seen: list[BaseException] = []

    class Reentrant(KV):
        node: Node | None = None

        def apply(self, index: int, command: bytes) -> bytes | None:
            if command == b"reenter" and self.node is not None:
                try:
                    self.node.propose(b"inner=1")
                except RaftError as e:
                    seen.append(e)
                try:
                    self.node.read_index()
                except RaftError as e:
                    seen.append(e)
            return super().apply(index, command)

    sm = Reentrant()
    node = single(sm)
    sm.node = node
    try:
        node.propose(b"reenter", timeout=5)
        assert len(seen) == 2 and all("deadlock" in str(e) for e in seen), seen
        assert node.failure is None
    finally:
        node.close()


def test_add_peer_needs_tcp() -> None:
    node = single(KV())
    try:
        with pytest.raises(ValueError):
            node.add_peer(2, "127.0.0.1:1")
    finally:
        node.close()


def test_read_index_single_node() -> None:
    with single(KV()) as node:
        idx = int(node.propose(b"a=1") or b"0")
        assert node.read_index(timeout=2) >= idx
