"""Node lifetime: reference cycles are collected, a node dropped inside its own callback
stops its threads, and caller_runs never deadlocks with the GIL."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

from conftest import FAST, KV, LocalNet
from raft_manager import Node


def engine_threads(node_id: int) -> int:
    """Engine threads of node `node_id` alive in this process (by thread name)."""
    n = 0
    for t in os.listdir("/proc/self/task"):
        try:
            comm = Path(f"/proc/self/task/{t}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("raft-") and comm.endswith(f"-{node_id}"):
            n += 1
    return n


def wait_until(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


class SelfKeepingKV(KV):
    """A state machine that keeps a reference to its own node: a reference cycle."""

    node: Node | None = None


def test_a_node_in_a_reference_cycle_is_collected_and_stops(tmp_path: Path) -> None:
    sm = SelfKeepingKV()
    node = Node(61, [61], sm, str(tmp_path / "d"), **FAST)
    sm.node = node
    assert wait_until(lambda: node.status()["role"] == "leader")
    node.propose(b"k=v", timeout=5)
    assert engine_threads(61) >= 3
    del node, sm
    gc.collect()
    assert wait_until(lambda: engine_threads(61) == 0), "threads of a collected node live on"
    # The data directory's lock went with it: the same directory opens again.
    again = Node(61, [61], KV(), str(tmp_path / "d"), **FAST)
    again.close()


def test_caller_runs_with_slow_apply_and_step_from_a_thread_does_not_hang() -> None:
    class SlowKV(KV):
        def apply(self, index: int, command: bytes) -> bytes | None:
            time.sleep(0.05)
            return super().apply(index, command)

    net = LocalNet()
    nodes = {
        i: Node(i, [1, 2, 3], SlowKV(), transport=net.endpoint(i), caller_runs=True, **FAST)
        for i in (1, 2, 3)
    }
    net.nodes.update(nodes)
    done = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            end = time.monotonic() + 10
            while time.monotonic() < end:
                leaders = [n for n in nodes.values() if n.status()["role"] == "leader"]
                if leaders:
                    break
                time.sleep(0.01)
            for i in range(20):
                leaders[0].propose(f"k{i}=v".encode(), timeout=10)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=work, daemon=True)
    t.start()
    assert done.wait(60), "caller_runs with a slow apply hung (watchdog)"
    assert not errors, errors
    for n in nodes.values():
        n.close()
