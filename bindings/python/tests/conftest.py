"""Shared helpers: a dict state machine, an in-process transport and cluster utilities."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import pytest

import raft_manager
from raft_manager import Node, RaftError

# Fast timers keep the suite short.
FAST = dict(election_timeout=0.3, heartbeat_interval=0.03, fsync=False)


class KV:
    """Commands are b"key=value"; apply returns b"<index>"."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.applied = 0
        self.lock = threading.Lock()

    def apply(self, index: int, command: bytes) -> bytes | None:
        k, _, v = command.decode().partition("=")
        with self.lock:
            self.data[k] = v
            self.applied = index
        return str(index).encode()

    def snapshot(self) -> bytes:
        with self.lock:
            return json.dumps(self.data).encode()

    def restore(self, data: bytes) -> None:
        with self.lock:
            self.data = json.loads(data) if data else {}


class LocalNet:
    """In-process transport: ``send`` hands bytes straight to the target node's ``step``."""

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}
        self.down: set[int] = set()

    def endpoint(self, me: int) -> "Endpoint":
        return Endpoint(self, me)


class Endpoint:
    def __init__(self, net: LocalNet, me: int) -> None:
        self.net = net
        self.me = me

    def send(self, to: int, message: bytes) -> None:
        if to in self.net.down or self.me in self.net.down:
            return
        node = self.net.nodes.get(to)
        if node is None:
            return
        try:
            node.step(message, sender=self.me)
        except RaftError:
            pass  # closed or busy: Raft retries


def free_ports(n: int) -> list[int]:
    """`n` free loopback ports below Linux's ephemeral range (32768-60999), so no outgoing
    connection can take one before a node binds it."""
    rng = random.Random()
    socks: list[socket.socket] = []
    for _ in range(n * 200):
        if len(socks) == n:
            break
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", rng.randrange(20000, 32000)))
        except OSError:
            s.close()
            continue
        socks.append(s)
    while len(socks) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def leader_of(nodes: Iterable[Node], timeout: float = 10.0) -> Node:
    """Waits until some open node is leader and returns it."""
    found: list[Node] = []

    def check() -> bool:
        for n in nodes:
            if n.closed:
                continue
            try:
                if n.status()["role"] == "leader":
                    found.append(n)
                    return True
            except RaftError:
                pass
        return False

    wait_for(check, timeout, "a leader")
    return found[0]


def propose_retry(nodes: list[Node], command: bytes, timeout: float = 10.0) -> bytes | None:
    """Proposes on the current leader, retrying through elections."""
    deadline = time.monotonic() + timeout
    while True:
        leader = leader_of(nodes, max(0.1, deadline - time.monotonic()))
        try:
            return leader.propose(command, timeout=2.0)
        except RaftError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Cluster:
    """A set of nodes over the callback transport or TCP ("callback_caller_runs": the callback
    transport with `caller_runs=True`)."""

    def __init__(
        self,
        kind: str,
        n: int,
        base: Path | None = None,
        sm_factory: Callable[[], KV] = KV,
        **kw: object,
    ) -> None:
        self.kind = kind
        self.base = base
        self.sm_factory = sm_factory
        self.kw = {**FAST, **kw}
        if kind == "callback_caller_runs":
            self.kw["caller_runs"] = True
        self.net = LocalNet()
        self.sms: dict[int, KV] = {}
        self.nodes: dict[int, Node] = {}
        ids = list(range(1, n + 1))
        self.addrs = {i: f"127.0.0.1:{p}" for i, p in zip(ids, free_ports(n))}
        for i in ids:
            self.start(i, ids)

    def start(self, i: int, ids: list[int], join: bool = False, sm: KV | None = None) -> Node:
        sm = sm or self.sm_factory()
        data_dir = str(self.base / f"n{i}") if self.base is not None else None
        if self.kind == "tcp":
            if i not in self.addrs:
                self.addrs[i] = f"127.0.0.1:{free_ports(1)[0]}"
            peers: object = {j: self.addrs[j] for j in ids} | {i: self.addrs[i]}
            node = Node(i, peers, sm, data_dir, join=join, **self.kw)
        else:
            node = Node(i, ids, sm, data_dir, transport=self.net.endpoint(i), join=join, **self.kw)
        self.net.nodes[i] = node
        self.nodes[i] = node
        self.sms[i] = sm
        return node

    @property
    def live(self) -> list[Node]:
        return [n for n in self.nodes.values() if not n.closed]

    def leader(self, timeout: float = 10.0) -> Node:
        return leader_of(self.live, timeout)

    def propose(self, command: bytes) -> bytes | None:
        return propose_retry(self.live, command)

    def leave_follower_behind(self, before: int, after: int) -> int:
        """Writes `a0..a{before-1}`, stops a follower once it applied them, then writes
        `b0..b{after-1}` without it; returns the stopped follower's id."""
        leader = self.leader()
        for i in range(before):
            self.propose(f"a{i}={i}".encode())
        follower = next(n for n in self.live if n.id != leader.id)
        fid = follower.id
        last = f"a{before - 1}"
        wait_for(lambda: self.sms[fid].data.get(last) == str(before - 1), what="follower applied")
        follower.close()
        for i in range(after):
            self.propose(f"b{i}={i}".encode())
        return fid

    def close(self) -> None:
        for n in self.nodes.values():
            n.close()


@pytest.fixture(params=["callback", "callback_caller_runs", "tcp"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cluster_factory():
    made: list[Cluster] = []

    def make(kind: str, n: int = 3, base: Path | None = None, **kw: object) -> Cluster:
        c = Cluster(kind, n, base, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(autouse=True)
def _logging() -> None:
    raft_manager.enable_logging()
