"""Issue 16: waiting for a leader, outcome-unknown errors, guarded add_voter, read_index."""

from __future__ import annotations

import time

import pytest
from conftest import FAST, KV, Cluster, wait_for

import raft_manager
from raft_manager import Node, NotLeaderError, OutcomeUnknownError


def test_first_proposal_waits_for_the_first_election() -> None:
    # The README's example: propose right after start (default 0.5 s election timeout).
    with Node(1, {}, KV()) as node:
        assert node.status()["leader"] is None
        assert node.propose(b"a=1", timeout=5) == b"2"  # index 1 is the leader's no-op
    with Node(1, {}, KV()) as node:
        assert node.read_index(timeout=5) >= 1


def test_no_leader_is_reported_after_the_timeout_with_no_fake_id() -> None:
    # Two voters, one running: nobody can be elected.
    with Node(1, [1, 2], KV(), transport=_Nowhere(), **FAST) as node:
        for call in (lambda: node.propose(b"a=1", timeout=0.4),
                     lambda: node.read_index(timeout=0.4)):
            t0 = time.monotonic()
            with pytest.raises(NotLeaderError) as ei:
                call()
            assert time.monotonic() - t0 >= 0.3  # gives up 50 ms early, with an answer
            assert ei.value.leader_id is None
            assert "no leader known" in str(ei.value) and "leader: 0" not in str(ei.value)


class _Nowhere:
    def send(self, to: int, message: bytes) -> None:
        pass


def test_leadership_lost_before_commit_is_outcome_unknown() -> None:
    c = Cluster("callback", 3)
    try:
        leader = c.leader()
        c.net.down.add(leader.id)  # cut off: it cannot commit, and steps down (check-quorum)
        fut = leader.propose_async(b"lost=1")
        with pytest.raises(OutcomeUnknownError) as ei:
            fut.result(10)
        assert isinstance(ei.value, raft_manager.TimeoutError)
        assert isinstance(ei.value, TimeoutError)  # builtins
        assert leader.failure is None  # not a node failure
        assert "leadership lost before commit" in str(ei.value)
    finally:
        c.close()


def test_add_voter_requires_a_caught_up_learner_unless_forced() -> None:
    c = Cluster("callback", 3)
    try:
        leader = c.leader()
        c.propose(b"x=1")
        with pytest.raises(ValueError, match="not a learner"):
            leader.add_voter(9, timeout=5)  # never added, never running
        assert 9 not in leader.status()["voters"]
        sm4 = KV()
        c.start(4, [1, 2, 3], join=True, sm=sm4)
        leader.add_learner(4, timeout=10)
        leader.add_voter(4, timeout=10)  # waits for it to catch up, then promotes
        assert sm4.data.get("x") == "1"
        assert 4 in leader.status()["voters"]
        leader.add_voter(4, timeout=5)  # already a voter: nothing to do
        leader.add_voter(5, timeout=10, force=True)  # explicit: a voter at once
        st = leader.status()
        assert 5 in st["voters"] and st["learners"] == []
    finally:
        c.close()


def test_read_index_counts_entries_that_never_reach_apply() -> None:
    sm = KV()
    with Node(1, {}, sm, **FAST) as node:
        wait_for(lambda: node.status()["role"] == "leader", what="leader")
        node.propose(b"a=1", timeout=5)
        node.add_learner(2, timeout=5)  # a configuration entry: not passed to apply
        i = node.read_index(timeout=5)
        assert sm.applied < i  # the last index apply saw is behind the read index
        assert node.status()["applied"] >= i
