"""Three-node clusters over the callback transport and over TCP."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conftest import KV, Cluster, wait_for

from raft_manager import NotLeaderError


def _has_all(sm: KV, acked: dict[str, str]) -> bool:
    with sm.lock:
        return all(sm.data.get(k) == v for k, v in acked.items())


def test_replicate_failover_no_acked_write_lost(cluster_factory, kind: str) -> None:
    c: Cluster = cluster_factory(kind)
    leader = c.leader()
    acked: dict[str, str] = {}
    for i in range(20):
        assert c.propose(f"k{i}=v{i}".encode()) is not None
        acked[f"k{i}"] = f"v{i}"
    for sm in c.sms.values():
        wait_for(lambda sm=sm: _has_all(sm, acked), what="replication")

    old = leader.id
    leader.close()
    new = c.leader()
    assert new.id != old
    for i in range(20, 40):
        c.propose(f"k{i}=v{i}".encode())
        acked[f"k{i}"] = f"v{i}"
    for i, sm in c.sms.items():
        if i != old:
            wait_for(lambda sm=sm: _has_all(sm, acked), what="no acknowledged write lost")
    st = new.status()
    assert st["role"] == "leader" and st["leader"] == new.id
    assert st["commit"] >= 40 and set(st["voters"]) == {1, 2, 3}
    assert set(st["peers"]) == {1, 2, 3}


def test_restart_from_data_dir_catches_up(cluster_factory, kind: str, tmp_path: Path) -> None:
    c: Cluster = cluster_factory(kind, base=tmp_path, snapshot_entries=5, snapshot_trailing=2)
    fid = c.leave_follower_behind(12, 30)
    # Restart from its data directory: restores its own snapshot, then catches up (by
    # snapshot transfer, since the leader compacted its log past the follower's end).
    sm = KV()
    node = c.start(fid, [1, 2, 3], sm=sm)
    wait_for(lambda: sm.data.get("b29") == "29", timeout=15, what="restarted node caught up")
    assert sm.data["a0"] == "0"
    # `applied` in status() is published after the apply batch: it can trail the state.
    wait_for(lambda: node.status()["applied"] >= 42, what="applied index published")
    assert list((tmp_path / f"n{fid}").iterdir())


def test_membership_learner_voter_remove(cluster_factory, kind: str) -> None:
    c: Cluster = cluster_factory(kind)
    leader = c.leader()
    c.propose(b"x=1")
    sm4 = KV()
    c.start(4, [1, 2, 3], join=True, sm=sm4)
    addr = c.addrs[4] if kind == "tcp" else None
    if kind == "tcp":
        for n in c.live:
            if n.id not in (4, leader.id):
                n.add_peer(4, c.addrs[4])
    leader.add_learner(4, addr, timeout=10)
    st = leader.status()
    assert st["learners"] == [4] and st["voters"] == [1, 2, 3]
    wait_for(lambda: sm4.data.get("x") == "1", what="learner catches up")

    leader.add_voter(4, timeout=10)
    st = leader.status()
    assert st["voters"] == [1, 2, 3, 4] and st["learners"] == []
    c.propose(b"y=2")
    wait_for(lambda: sm4.data.get("y") == "2", what="new voter replicates")

    # Under another leader node 4 still gets the log (every member knows its address).
    other = next(i for i in (1, 2, 3) if i != leader.id)
    leader.transfer_leader(other)
    wait_for(lambda: c.nodes[other].status()["role"] == "leader", what="transfer")
    leader = c.nodes[other]
    c.propose(b"w=5")
    wait_for(lambda: sm4.data.get("w") == "5", what="replication from the new leader")

    victim = next(i for i in (1, 2, 3) if i != leader.id)
    leader.remove(victim, timeout=10)
    c.nodes[victim].close()
    st = c.leader().status()
    assert victim not in st["voters"] and len(st["voters"]) == 3
    c.propose(b"z=3")
    wait_for(lambda: sm4.data.get("z") == "3", what="cluster works after removal")

    # change_membership with an outdated expected_conf_id is refused.
    leader = c.leader()
    stale = leader.status()["conf_id"] - 1
    try:
        leader.change_membership(set(st["voters"]), (), expected_conf_id=stale, timeout=5)
        raise AssertionError("stale conf id accepted")
    except ValueError:
        pass
    # Refusals computed from the current membership come back as ValueError, naming why.
    with pytest.raises(ValueError, match="already a voter"):
        leader.add_learner(4, timeout=5)
    with pytest.raises(ValueError, match="not a member"):
        leader.remove(99, timeout=5)


def test_transfer_leader(cluster_factory) -> None:
    c: Cluster = cluster_factory("callback")
    leader = c.leader()
    c.propose(b"t=1")
    target = next(n for n in c.live if n.id != leader.id)
    assert leader.transfer_leader(target.id) == target.id
    wait_for(lambda: target.status()["role"] == "leader", what="transfer")
    try:
        leader.propose(b"t=2", timeout=2)
        raise AssertionError("old leader accepted a proposal")
    except NotLeaderError as e:
        assert e.leader_id in (None, target.id)
    assert target.propose(b"t=3", timeout=5) is not None


def test_read_index_on_follower(cluster_factory) -> None:
    c: Cluster = cluster_factory("callback")
    leader = c.leader()
    idx = int(c.propose(b"r=1") or b"0")
    follower = next(n for n in c.live if n.id != leader.id)
    got = follower.read_index(timeout=5)
    assert got >= idx
    # After read_index returns, the follower's state includes the write.
    assert c.sms[follower.id].data["r"] == "1"
    assert leader.read_index(timeout=5) >= idx


def test_concurrent_proposals_from_threads(cluster_factory) -> None:
    c: Cluster = cluster_factory("callback")
    leader = c.leader()
    errors: list[BaseException] = []
    results: list[bytes | None] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        try:
            for i in range(25):
                r = leader.propose(f"t{t}-{i}={i}".encode(), timeout=10)
                with lock:
                    results.append(r)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(results) == 200 and len(set(results)) == 200
    for sm in c.sms.values():
        wait_for(lambda sm=sm: len(sm.data) == 200, what="all applied everywhere")


def test_tcp_with_secret_and_cluster_id(cluster_factory) -> None:
    c: Cluster = cluster_factory("tcp", secret=b"s3cret", cluster_id=7)
    leader = c.leader()
    assert leader.listen_addr == c.addrs[leader.id]
    c.propose(b"s=1")
    for sm in c.sms.values():
        wait_for(lambda sm=sm: sm.data.get("s") == "1", what="authenticated replication")


def test_client_session_retry_applies_once(cluster_factory) -> None:
    c: Cluster = cluster_factory("callback")
    leader = c.leader()
    first = leader.propose(b"s=1", timeout=5, client_id=7, seq=1)
    applied = c.sms[leader.id].applied
    # A retry of the same (client, seq) returns the recorded response, not a new index.
    assert leader.propose(b"s=1", timeout=5, client_id=7, seq=1) == first
    assert c.sms[leader.id].applied == applied
    assert leader.propose(b"s=2", timeout=5, client_id=7, seq=2) != first
    try:
        leader.propose(b"x", timeout=5, client_id=7)
        raise AssertionError("client_id without seq accepted")
    except ValueError:
        pass
