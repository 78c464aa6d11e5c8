#!/usr/bin/env python3
"""A replicated key-value store on raft-manager.

Run a three-node cluster in one process over TCP on 127.0.0.1 (demo mode):

    python examples/python/kv.py demo

or one node per terminal (each keeps its log in ./kv-data/<id>):

    python examples/python/kv.py serve 1 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
    python examples/python/kv.py serve 2 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
    python examples/python/kv.py serve 3 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003

then type ``set key value``, ``get key`` or ``status`` at any node's prompt.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time

import raft_manager
from raft_manager import Node, NotLeaderError, RaftError


class KVStore:
    """The replicated state machine: commands are JSON ``{"op": "set", "k": .., "v": ..}``."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- raft_manager state machine interface (called on the node's apply thread) ---
    def apply(self, index: int, command: bytes) -> bytes | None:
        cmd = json.loads(command)
        with self._lock:
            if cmd["op"] == "set":
                old = self._data.get(cmd["k"])
                self._data[cmd["k"]] = cmd["v"]
                return None if old is None else old.encode()
            if cmd["op"] == "del":
                old = self._data.pop(cmd["k"], None)
                return None if old is None else old.encode()
        return None

    def snapshot(self) -> bytes:
        with self._lock:
            return json.dumps(self._data).encode()

    def restore(self, data: bytes) -> None:
        with self._lock:
            self._data = json.loads(data) if data else {}

    # --- local reads ---
    def get(self, key: str) -> str | None:
        with self._lock:
            return self._data.get(key)


def set_key(node: Node, key: str, value: str) -> str | None:
    """Writes through this node (it must be the leader)."""
    old = node.propose(json.dumps({"op": "set", "k": key, "v": value}).encode(), timeout=5)
    return None if old is None else old.decode()


def get_key(node: Node, store: KVStore, key: str) -> str | None:
    """A linearizable read: wait for a read index, then read local state."""
    node.read_index(timeout=5)
    return store.get(key)


def parse_peers(spec: str) -> dict[int, str]:
    out = {}
    for part in spec.split(","):
        i, _, addr = part.partition("=")
        out[int(i)] = addr
    return out


def serve(node_id: int, peers: dict[int, str]) -> None:
    store = KVStore()
    with Node(node_id, peers, store, f"kv-data/{node_id}") as node:
        print(f"node {node_id} listening on {node.listen_addr}; commands: set K V | get K | status")
        for line in sys.stdin:
            words = line.split()
            try:
                if words[:1] == ["set"] and len(words) == 3:
                    print("old:", set_key(node, words[1], words[2]))
                elif words[:1] == ["get"] and len(words) == 2:
                    print(get_key(node, store, words[1]))
                elif words[:1] == ["status"]:
                    print(node.status())
                else:
                    print("?")
            except NotLeaderError as e:
                print(f"not the leader; try node {e.leader_id}")
            except RaftError as e:
                print("error:", e)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo() -> None:
    peers = {i: f"127.0.0.1:{free_port()}" for i in (1, 2, 3)}
    stores = {i: KVStore() for i in peers}
    nodes = {
        i: Node(i, peers, stores[i], election_timeout=0.3, heartbeat_interval=0.03)
        for i in peers
    }
    try:
        leader = wait_leader(nodes.values())
        print(f"leader: node {leader.id}")
        for k, v in [("apple", "red"), ("banana", "yellow"), ("apple", "green")]:
            print(f"set {k}={v} (old: {set_key(leader, k, v)})")
        follower = next(n for n in nodes.values() if n is not leader)
        print(f"linearizable read on follower {follower.id}: apple =",
              get_key(follower, stores[follower.id], "apple"))
        print(f"closing leader {leader.id}")
        leader.close()
        new = wait_leader([n for n in nodes.values() if not n.closed])
        print(f"new leader: node {new.id}; apple = {get_key(new, stores[new.id], 'apple')}")
        set_key(new, "cherry", "dark red")
        print("status:", new.status())
    finally:
        for n in nodes.values():
            n.close()


def wait_leader(nodes) -> Node:  # type: ignore[no-untyped-def]
    nodes = list(nodes)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for n in nodes:
            if n.status()["role"] == "leader":
                return n
        time.sleep(0.05)
    raise RuntimeError("no leader elected")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    raft_manager.enable_logging()
    if len(sys.argv) >= 2 and sys.argv[1] == "serve" and len(sys.argv) == 4:
        serve(int(sys.argv[2]), parse_peers(sys.argv[3]))
    elif len(sys.argv) == 1 or sys.argv[1] == "demo":
        demo()
    else:
        print(__doc__)
        sys.exit(2)
