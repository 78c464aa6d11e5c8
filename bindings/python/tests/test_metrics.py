"""Node.metrics() / metrics_text() (the names every language shares) and the monitoring
fields of status(): voted_for, conf_id, the learner flag and per-peer progress."""

from __future__ import annotations

import re

import pytest
from conftest import KV, Cluster, wait_for

from raft_manager import RaftError

DROP_REASONS = {"not_leader", "busy", "inbox_full", "too_large", "invalid_message"}
HISTOGRAMS = {
    "raft_fsync_seconds",
    "raft_apply_seconds",
    "raft_commit_seconds",
    "raft_append_batch_entries",
}


def test_metrics_count_traffic_drops_and_latencies(cluster_factory) -> None:
    c: Cluster = cluster_factory("callback")
    leader = c.leader()
    for i in range(5):
        c.propose(b"k%d=%d" % (i, i))

    # Leadership can move on a loaded machine: read the metrics of whoever leads now.
    got: list[dict] = []

    def leader_metrics() -> bool:
        n = c.leader()
        mm = n.metrics()
        if mm["raft_role"] == 3 and mm["raft_proposals_total"] >= 5:
            got[:] = [n, mm]
            return True
        return False

    wait_for(leader_metrics, what="metrics of the leader that took the proposals")
    leader, m = got
    followers = [n for n in c.live if n.id != leader.id]
    with pytest.raises(RaftError):
        followers[0].propose(b"refused=1", timeout=1.0)
    assert m["raft_leader_id"] == leader.id
    assert m["raft_voted_for"] == leader.id
    assert m["raft_learner"] == 0
    assert m["raft_proposals_total"] >= 5
    assert m["raft_entries_committed_total"] >= 5
    # Every command proposed on the leader waited for its commit: one sample each.
    assert m["raft_commit_seconds"]["count"] >= 5
    assert m["raft_append_batch_entries"]["count"] >= 1
    for name in HISTOGRAMS:
        h = m[name]
        assert len(h["buckets"]) == len(h["bounds"]) + 1
        assert sum(h["buckets"]) == h["count"]
    assert set(m["raft_dropped_total"]) == DROP_REASONS
    # Bytes per peer: the leader sent to both followers, and heard from them.
    for f in followers:
        assert m["raft_peer_sent_bytes_total"][f.id] > 0
        assert m["raft_peer_received_bytes_total"][f.id] > 0
    assert m["raft_sent_bytes_total"] >= sum(m["raft_peer_sent_bytes_total"].values())

    fm = followers[0].metrics()
    assert fm["raft_dropped_total"]["not_leader"] >= 1
    assert fm["raft_peer_received_bytes_total"][leader.id] > 0
    # A message that does not decode counts as an invalid_message drop.
    before = fm["raft_dropped_total"]["invalid_message"]
    with pytest.raises(ValueError):
        followers[0].step(b"\x00\xffgarbage", sender=leader.id)
    after = followers[0].metrics()["raft_dropped_total"]["invalid_message"]
    assert after == before + 1


def test_metrics_text_uses_the_same_names(cluster_factory) -> None:
    c: Cluster = cluster_factory("callback")
    leader = c.leader()
    c.propose(b"a=1")
    m = leader.metrics()
    text = leader.metrics_text()
    families = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))
    for name in m:
        base = name[: -len("_total")] if name.endswith("_total") else name
        assert base in families, (name, sorted(families))
    assert re.search(rf"^raft_term {m['raft_term']}$", text, flags=re.M)
    assert 'raft_dropped_total{reason="not_leader"}' in text
    f = next(n for n in c.live if n.id != leader.id)
    assert re.search(rf'^raft_peer_sent_bytes_total\{{peer="{f.id}"\}} \d+$', text, flags=re.M)
    assert "raft_commit_seconds_bucket" in text


def test_status_voted_for_learner_flag_and_progress(cluster_factory) -> None:
    c: Cluster = cluster_factory("callback")
    leader = c.leader()
    c.propose(b"x=1")
    for n in c.live:
        st = n.status()
        assert st["learner"] is False
        # Whoever won this term got every vote it needed; the leader voted for itself.
        if n is leader:
            assert st["voted_for"] == leader.id
    sm4 = KV()
    c.start(4, [1, 2, 3], join=True, sm=sm4)
    conf_before = leader.status()["conf_id"]
    leader.add_learner(4, timeout=10)
    wait_for(lambda: sm4.data.get("x") == "1", what="learner catches up")
    st = leader.status()
    assert st["conf_id"] > conf_before
    assert st["peers"][4]["learner"] is True
    assert all(not p["learner"] for i, p in st["peers"].items() if i != 4)
    assert set(st["peers"][4]) == {"matched", "next", "state", "learner"}
    assert st["peers"][4]["matched"] <= st["last_index"]
    wait_for(lambda: c.nodes[4].status()["learner"] is True, what="learner flag on node 4")
    st4 = c.nodes[4].status()
    assert st4["role"] == "follower" and st4["conf_id"] == st["conf_id"]
    assert c.nodes[4].metrics()["raft_learner"] == 1
