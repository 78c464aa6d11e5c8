"""Hostile and careless callers (issue 13): forged senders, oversized commands, absurd
timeouts, close() where it cannot work. Each gives an ordinary, documented exception
(never a PanicException, which is a BaseException)."""

from __future__ import annotations

import math
import os
import threading

import pytest
from conftest import FAST, KV, wait_for

from raft_manager import Node, RaftError, TooLargeError


def single(**kw: object) -> Node:
    node = Node(1, [], KV(), **{**FAST, **kw})
    wait_for(lambda: node.status()["role"] == "leader", what="single-node leader")
    return node


class _Null:
    def send(self, to: int, message: bytes) -> None:
        pass


# A heartbeat from node 1 to node 2 at term 1 (format 2, postcard fields, incarnations 0).
_HEARTBEAT_1_TO_2 = bytes([2, 1, 2, 1, 2, 0, 0, 0, 0])


def test_step_with_forged_sender_raises_value_error() -> None:
    node = Node(2, [1, 2, 3], KV(), transport=_Null(), **FAST)
    try:
        with pytest.raises(ValueError, match="claims sender 1 but came from 3"):
            node.step(_HEARTBEAT_1_TO_2, sender=3)
        node.step(_HEARTBEAT_1_TO_2, sender=1)
        node.step(_HEARTBEAT_1_TO_2)
    finally:
        node.close()


def test_oversized_command_raises_too_large() -> None:
    node = single(max_command_bytes=16)
    try:
        with pytest.raises(TooLargeError, match="17 bytes") as ei:
            node.propose(b"k=" + b"v" * 15)
        assert isinstance(ei.value, ValueError) and isinstance(ei.value, RaftError)
        with pytest.raises(TooLargeError):
            node.propose(b"k=" + b"v" * 15, client_id=1, seq=1)
        with pytest.raises(TooLargeError):
            node.propose_async(b"k=" + b"v" * 15).result(timeout=10)
        assert node.propose(b"k=" + b"v" * 14) is not None
    finally:
        node.close()
    with pytest.raises(ValueError, match="max_command_bytes"):
        Node(1, [], KV(), max_command_bytes=0, **FAST)


@pytest.mark.parametrize("bad", [1e300, 1e20, 2**64, math.inf])
def test_huge_timeouts_raise_overflow_error(bad: float) -> None:
    node = single()
    try:
        with pytest.raises(OverflowError):
            node.propose(b"a=1", timeout=bad)
        with pytest.raises(OverflowError):
            node.read_index(timeout=bad)
        with pytest.raises(OverflowError):
            Node(2, [], KV(), **{**FAST, "election_timeout": bad})
        with pytest.raises(OverflowError):
            Node(2, [], KV(), **{**FAST, "heartbeat_interval": bad})
        assert node.propose(b"a=2", timeout=10) is not None
    finally:
        node.close()


@pytest.mark.parametrize("bad", [math.nan, -1.0, -1e300])
def test_nan_and_negative_timeouts_raise_value_error(bad: float) -> None:
    node = single()
    try:
        with pytest.raises(ValueError):
            node.propose(b"a=1", timeout=bad)
        with pytest.raises(ValueError):
            node.read_index(timeout=bad)
        with pytest.raises(ValueError):
            Node(2, [], KV(), **{**FAST, "election_timeout": bad})
    finally:
        node.close()


def test_close_inside_transport_send_raises_raft_error() -> None:
    seen: list[BaseException] = []
    done = threading.Event()
    holder: list[Node] = []

    class Closing:
        def send(self, to: int, message: bytes) -> None:
            if done.is_set() or not holder:
                return
            try:
                holder[0].close()
            except BaseException as e:  # noqa: BLE001 - a PanicException is what we test for
                seen.append(e)
            done.set()

    node = Node(1, [1, 2], KV(), transport=Closing(), **FAST)
    holder.append(node)
    try:
        assert done.wait(10), "transport.send was never called"
        assert len(seen) == 1 and isinstance(seen[0], RaftError), seen
        assert not node.closed
    finally:
        node.close()
    assert node.closed


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_close_in_forked_child_raises_raft_error() -> None:
    node = single()
    try:
        pid = os.fork()
        if pid == 0:  # child: only close, then leave without running atexit handlers
            code = 3
            try:
                node.close()
            except RaftError:
                code = 0
            except BaseException:  # noqa: BLE001 - a PanicException is what we test for
                code = 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's node is untouched.
        assert node.propose(b"a=1", timeout=10) is not None
    finally:
        node.close()
