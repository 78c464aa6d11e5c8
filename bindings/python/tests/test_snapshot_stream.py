"""Streamed snapshots: ``snapshot()`` returning a file-like object, ``restore_stream(reader)``
and their failure paths."""

from __future__ import annotations

import io
import json
import logging
import random
import threading
from pathlib import Path
from typing import Any, BinaryIO, Callable

import pytest
from conftest import FAST, KV, Cluster, wait_for

from raft_manager import Node, RaftError, SnapshotReader

# Several 1 MiB read chunks plus a partial one.
BLOB_SIZE = 3 * 1024 * 1024 + 12345


class BlobKV(KV):
    """KV plus a few MB of state that every command changes. ``snapshot()`` returns a stream
    (``io.BytesIO``, or a real file when ``spool`` is a directory): a JSON header line, then
    the blob."""

    def __init__(self, spool: Path | None = None) -> None:
        super().__init__()
        self.blob = bytearray(random.Random(7).randbytes(BLOB_SIZE))
        self.spool = spool
        self.streams: list[BinaryIO] = []
        self.restores = 0

    def apply(self, index: int, command: bytes) -> bytes | None:
        r = super().apply(index, command)
        with self.lock:
            self.blob[(index * 7919) % BLOB_SIZE] = index & 0xFF
        return r

    def _header(self) -> bytes:
        return json.dumps({"data": self.data, "blob": len(self.blob)}).encode() + b"\n"

    def snapshot(self) -> BinaryIO:  # type: ignore[override]
        with self.lock:
            header, blob = self._header(), bytes(self.blob)
        stream: BinaryIO
        if self.spool is None:
            stream = io.BytesIO(header + blob)
        else:
            path = self.spool / f"snap-{len(self.streams)}"
            with open(path, "wb") as f:
                f.write(header)
                f.write(blob)
            stream = open(path, "rb")
        self.streams.append(stream)
        return stream

    def _load(self, header: bytes, blob: bytes | bytearray) -> None:
        h = json.loads(header)
        assert len(blob) == h["blob"]
        with self.lock:
            self.data = h["data"]
            self.blob = bytearray(blob)
            self.restores += 1

    def restore(self, data: bytes) -> None:
        header, _, blob = data.partition(b"\n")
        self._load(header, blob)

    def state(self) -> tuple[dict[str, str], bytes]:
        with self.lock:
            return dict(self.data), bytes(self.blob)


class StreamingBlobKV(BlobKV):
    """Restores through ``restore_stream``, reading in pieces with readline/readinto/read."""

    def __init__(self, spool: Path | None = None) -> None:
        super().__init__(spool)
        self.readers: list[SnapshotReader] = []
        self.threads: list[str] = []
        # Returns this state machine's node, for the reentrancy check (None: skip it).
        self.node_of: Callable[[], Node | None] = lambda: None
        self.reentry: list[BaseException] = []

    def restore(self, data: bytes) -> None:
        raise AssertionError("restore() called although restore_stream() exists")

    def restore_stream(self, reader: SnapshotReader) -> None:
        self.readers.append(reader)
        self.threads.append(threading.current_thread().name)
        assert reader.readable() and not reader.closed
        header = reader.readline()
        size = json.loads(header)["blob"]
        blob = bytearray(size)
        view = memoryview(blob)
        pos = 0
        # Odd-sized pieces: some are served from the reader's read-ahead, some are not.
        while pos < size:
            n = reader.readinto(view[pos : pos + 777_777])
            assert n > 0, "snapshot ended early"
            pos += n
        assert reader.read(10) == b"" and reader.read() == b""
        node = self.node_of()
        if node is not None:
            try:
                node.read_index(timeout=1)
            except RaftError as e:
                self.reentry.append(e)
        self._load(header, blob)


def _single(sm: Any, data_dir: Path, **kw: Any) -> Node:
    node = Node(1, [], sm, str(data_dir), **{**FAST, "snapshot_entries": 5, **kw})
    wait_for(lambda: node.status()["role"] == "leader", what="single-node leader")
    return node


@pytest.mark.parametrize("stream", ["bytesio", "file"])
@pytest.mark.parametrize("sm_cls", [BlobKV, StreamingBlobKV], ids=["restore", "restore_stream"])
def test_stream_snapshot_survives_restart(tmp_path: Path, stream: str, sm_cls: type[BlobKV]) -> None:
    spool = None
    if stream == "file":
        spool = tmp_path / "spool"
        spool.mkdir()
    sm = sm_cls(spool)
    with _single(sm, tmp_path / "d") as node:
        last = 0
        for i in range(12):
            last = int(node.propose(f"k{i}={i}".encode(), timeout=5) or b"0")
        wait_for(lambda: len(sm.streams) >= 2, what="snapshots taken")
    # Every stream the binding got was closed by it.
    assert sm.streams and all(s.closed for s in sm.streams)
    if stream == "file":
        assert all(isinstance(s, io.BufferedReader) for s in sm.streams)

    sm2 = sm_cls(spool)
    assert sm2.state() != sm.state()
    with Node(1, [], sm2, str(tmp_path / "d"), **{**FAST, "snapshot_entries": 5}) as node:
        # Restored from the latest snapshot at start (then the log tail is replayed).
        assert sm2.restores == 1
        wait_for(lambda: node.status()["applied"] >= last, what="replay after restart")
        assert sm2.state() == sm.state()
    if isinstance(sm2, StreamingBlobKV):
        (reader,) = sm2.readers
        assert reader.closed
        with pytest.raises(ValueError, match="snapshot reader is closed"):
            reader.read(1)
        with pytest.raises(ValueError, match="snapshot reader is closed"):
            reader.readinto(bytearray(4))
        with pytest.raises(ValueError, match="snapshot reader is closed"):
            reader.readline()
        with pytest.raises(ValueError, match="snapshot reader is closed"):
            reader.readable()
        reader.close()  # idempotent


@pytest.mark.parametrize(
    "kind,sm_cls",
    [("callback", BlobKV), ("callback", StreamingBlobKV), ("tcp", StreamingBlobKV)],
    ids=["callback-restore", "callback-restore_stream", "tcp-restore_stream"],
)
def test_learner_catches_up_by_stream_snapshot(
    cluster_factory: Any, kind: str, sm_cls: type[BlobKV]
) -> None:
    # In memory: the leader compacts its log to `snapshot_trailing` entries behind each
    # snapshot, so a new member (empty log) can only catch up by snapshot transfer. (On disk
    # the log is compacted by whole segments, which small tests never fill.)
    c: Cluster = cluster_factory(kind, sm_factory=sm_cls, snapshot_entries=5, snapshot_trailing=2)
    leader = c.leader()
    for i in range(30):
        c.propose(f"a{i}={i}".encode())
    leader_sm = c.sms[leader.id]
    assert isinstance(leader_sm, BlobKV)
    wait_for(lambda: len(leader_sm.streams) >= 3, what="leader snapshots")

    sm = sm_cls()
    if isinstance(sm, StreamingBlobKV):
        # Messages reach node 4 only once it is in c.net.nodes (callback transport), so
        # every restore sees it there.
        sm.node_of = lambda: c.net.nodes.get(4)
    node = c.start(4, [1, 2, 3], join=True, sm=sm)
    assert sm.restores == 0
    addr = None
    if kind == "tcp":
        addr = c.addrs[4]
        for n in c.live:
            if n.id not in (4, leader.id):
                n.add_peer(4, addr)
    leader.add_learner(4, addr, timeout=10)
    wait_for(lambda: sm.restores >= 1, timeout=20, what="snapshot installed on the learner")
    for i in range(5):
        c.propose(f"b{i}={i}".encode())
    wait_for(lambda: sm.data.get("b4") == "4", timeout=20, what="learner replicates")
    wait_for(lambda: sm.state() == leader_sm.state(), timeout=20, what="identical state")
    assert node.failure is None
    c.close()  # joins the apply threads: no snapshot is in progress any more
    for other in c.sms.values():
        assert isinstance(other, BlobKV)
        assert all(s.closed for s in other.streams)
    if isinstance(sm, StreamingBlobKV):
        assert sm.readers and all(r.closed for r in sm.readers)
        # restore_stream runs on a helper thread, where blocking node calls are refused.
        assert all(t != threading.current_thread().name for t in sm.threads)
        if kind == "callback":
            assert sm.reentry and all("deadlock" in str(e) for e in sm.reentry), sm.reentry


@pytest.mark.parametrize("sm_cls", [BlobKV, StreamingBlobKV], ids=["restore", "restore_stream"])
def test_follower_restart_from_data_dir(
    cluster_factory: Any, tmp_path: Path, sm_cls: type[BlobKV]
) -> None:
    c: Cluster = cluster_factory(
        "callback", base=tmp_path, sm_factory=sm_cls, snapshot_entries=5, snapshot_trailing=2
    )
    fid = c.leave_follower_behind(12, 20)
    leader_sm = c.sms[c.leader().id]
    assert isinstance(leader_sm, BlobKV)

    sm = sm_cls()
    node = c.start(fid, [1, 2, 3], sm=sm)
    assert sm.restores >= 1  # its own latest snapshot, restored inside Node()
    wait_for(lambda: sm.data.get("b19") == "19", timeout=20, what="restarted node caught up")
    wait_for(lambda: sm.state() == leader_sm.state(), timeout=20, what="identical state")
    assert node.failure is None


class _Stream(io.RawIOBase):
    """A stream whose read() misbehaves after the first chunk; records close()."""

    def __init__(self, bad: Callable[[], Any]) -> None:
        self.bad = bad
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> Any:
        self.reads += 1
        if self.reads == 1:
            return b"x" * 10
        return self.bad()


def _fails_on_snapshot(sm: KV) -> Node:
    node = Node(1, [], sm, **{**FAST, "snapshot_entries": 3})
    wait_for(lambda: node.status()["role"] == "leader", what="single-node leader")
    with pytest.raises(RaftError):
        for i in range(10):
            node.propose(f"k{i}=v".encode(), timeout=5)
    wait_for(lambda: node.failure is not None, what="failure")
    return node


def test_snapshot_stream_read_returning_str_fails_node(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="raft_manager")
    streams: list[io.StringIO] = []

    class TextSnapshot(KV):
        def snapshot(self) -> Any:
            streams.append(io.StringIO("text, not bytes"))
            return streams[-1]

    node = _fails_on_snapshot(TextSnapshot())
    try:
        assert "snapshot() stream read() must return bytes, not str" in (node.failure or "")
        with pytest.raises(RaftError, match="read\\(\\) must return bytes") as ei:
            node.propose(b"x=1")
        assert isinstance(ei.value.__cause__, TypeError)
        assert streams and all(s.closed for s in streams)
        wait_for(
            lambda: any("must return bytes, not str" in r.getMessage() for r in caplog.records),
            what="error logged",
        )
    finally:
        node.close()


def test_snapshot_stream_read_raising_fails_node() -> None:
    streams: list[_Stream] = []

    def boom() -> bytes:
        raise OSError("disk went away")

    class RaisingSnapshot(KV):
        def snapshot(self) -> Any:
            streams.append(_Stream(boom))
            return streams[-1]

    node = _fails_on_snapshot(RaisingSnapshot())
    try:
        assert "disk went away" in (node.failure or "")
        with pytest.raises(RaftError, match="disk went away") as ei:
            node.propose(b"x=1")
        assert isinstance(ei.value.__cause__, OSError)
        assert streams and all(s.closed and s.reads == 2 for s in streams)
    finally:
        node.close()


def test_snapshot_stream_read_returning_none_fails_node() -> None:
    class NoneSnapshot(KV):
        def snapshot(self) -> Any:
            return _Stream(lambda: None)

    node = _fails_on_snapshot(NoneSnapshot())
    try:
        assert "must return bytes, not NoneType" in (node.failure or "")
    finally:
        node.close()


def test_snapshot_memoryview_and_bytearray(tmp_path: Path) -> None:
    class ViewSnapshot(KV):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def snapshot(self) -> Any:
            self.n += 1
            raw = super().snapshot()
            return memoryview(raw) if self.n % 2 else bytearray(raw)

    sm = ViewSnapshot()
    with _single(sm, tmp_path / "d", snapshot_entries=3) as node:
        for i in range(10):
            node.propose(f"k{i}={i}".encode(), timeout=5)
        wait_for(lambda: sm.n >= 2, what="snapshots taken")
        assert node.failure is None
    sm2 = KV()
    with Node(1, [], sm2, str(tmp_path / "d"), **FAST) as node:
        wait_for(lambda: sm2.data.get("k9") == "9", what="replay after restart")
        assert sm2.data == sm.data


def test_restore_stream_raising_fails_start(tmp_path: Path) -> None:
    sm = KV()
    with _single(sm, tmp_path / "d", snapshot_entries=3) as node:
        for i in range(10):
            node.propose(f"k{i}={i}".encode(), timeout=5)

    class Corrupt(KV):
        def restore_stream(self, reader: SnapshotReader) -> None:
            reader.read(3)
            raise ValueError("snapshot is corrupt")

    with pytest.raises(RaftError, match="snapshot is corrupt") as ei:
        Node(1, [], Corrupt(), str(tmp_path / "d"), **FAST)
    assert isinstance(ei.value.__cause__, ValueError)


def test_restore_stream_may_stop_early_and_read_lines(tmp_path: Path) -> None:
    """A reader closed early (or not read to the end) still finishes the restore; readline
    honours its size limit."""
    sm = KV()
    with _single(sm, tmp_path / "d", snapshot_entries=3) as node:
        for i in range(10):
            node.propose(f"k{i}={i}".encode(), timeout=5)
    seen: list[bytes] = []

    class Peek(KV):
        def restore_stream(self, reader: SnapshotReader) -> None:
            with reader:
                seen.append(reader.readline(1))
                seen.append(reader.readline())
                assert not reader.seekable() and not reader.writable()
            assert reader.closed
            with pytest.raises(ValueError, match="snapshot reader is closed"):
                reader.read()

    sm2 = Peek()
    with Node(1, [], sm2, str(tmp_path / "d"), **FAST) as node:
        wait_for(lambda: node.status()["role"] == "leader", what="leader after restart")
        assert node.failure is None
    # The snapshot's user part is the KV's JSON object (one line, no newline) as of the
    # latest snapshot: a prefix of the final state.
    assert seen[0] == b"{"
    snap = json.loads(seen[0] + seen[1])
    assert snap and all(sm.data[k] == v for k, v in snap.items())


def test_restore_stream_reading_a_prefix_still_verifies_checksum(tmp_path: Path) -> None:
    # Far larger than the reader's read-ahead: Python alone never reaches the end.
    with _single(BlobKV(), tmp_path / "d", snapshot_entries=3) as node:
        for i in range(10):
            node.propose(f"k{i}={i}".encode(), timeout=5)
    snaps = list((tmp_path / "d").glob("*.snap"))
    assert snaps
    for p in snaps:  # corrupt the last byte of the snapshot data
        raw = bytearray(p.read_bytes())
        raw[-1] ^= 0xFF
        p.write_bytes(raw)

    headers: list[bytes] = []

    class Prefix(KV):
        def restore_stream(self, reader: SnapshotReader) -> None:
            headers.append(reader.readline())  # stops early: the blob is never read by Python

    # The data is verified before the state machine sees any of it.
    with pytest.raises(RaftError, match="checksum"):
        Node(1, [], Prefix(), str(tmp_path / "d"), **FAST)
    assert headers == []
