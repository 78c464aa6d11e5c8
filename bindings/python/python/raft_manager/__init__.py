"""Raft consensus for Python, backed by the raft-manager Rust library.

Create a :class:`Node` per cluster member with a state machine object (``apply``,
``snapshot``, ``restore``), then ``propose`` commands on the leader. ``snapshot()`` may
return a binary file-like object, and a state machine with ``restore_stream(reader)`` gets
a :class:`SnapshotReader` instead of one ``bytes`` object. See README.md.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Mapping

from . import _native
from ._native import SnapshotReader
from ._protocols import SnapshotStream, StateMachine, StreamingStateMachine, Transport
from ._errors import (
    BusyError,
    NotLeaderError,
    OutcomeUnknownError,
    RaftError,
    ShutdownError,
    StorageError,
    TimeoutError,
    TooLargeError,
)

__all__ = [
    "Node",
    "StateMachine",
    "StreamingStateMachine",
    "SnapshotStream",
    "Transport",
    "SnapshotReader",
    "RaftError",
    "NotLeaderError",
    "BusyError",
    "TimeoutError",
    "OutcomeUnknownError",
    "ShutdownError",
    "StorageError",
    "TooLargeError",
    "enable_logging",
    "logger",
]

#: The logger that receives the library's log records.
logger = logging.getLogger("raft_manager")

_live: weakref.WeakSet[Node] = weakref.WeakSet()


class Node(_native.Node):
    """A Raft cluster member running on its own native threads.

    ``peers`` is ``{id: "host:port"}`` for the built-in TCP transport (this node's own
    entry, or ``listen``, is its listen address), or with ``transport`` (an object with
    ``send(to, message)``, see :class:`Transport`) a list of ids; deliver received messages
    with :meth:`step`. ``state_machine`` has ``apply`` / ``snapshot`` / ``restore`` (see
    :class:`StateMachine`). ``data_dir=None`` keeps everything in memory. Timeouts are in
    seconds (``election_timeout`` 0.5 s by default: see docs/OPERATIONS.md). ``join=True``
    starts a node being added to an existing cluster (``peers`` lists its voters).
    ``auto_rejoin`` (on by default): when this node leads and a voter comes back with its
    state lost (its data directory wiped, restarted under the same id), it demotes that
    voter to learner, catches it up and promotes it once within ``rejoin_max_lag`` entries;
    with ``auto_rejoin=False`` it logs an error and the operator re-admits the node
    (``change_membership`` with it as a learner, then ``add_voter``). Nodes still open at
    interpreter exit are closed.
    """

    def __init__(
        self,
        node_id: int,
        peers: Mapping[int, str | None] | Iterable[int],
        state_machine: StateMachine,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        transport: Transport | None = None,
        listen: str | None = None,
        election_timeout: float = 0.5,
        heartbeat_interval: float = 0.05,
        snapshot_entries: int = 100000,
        fsync: bool = True,
        cluster_id: int = 0,
        secret: bytes | str | None = None,
        snapshot_trailing: int = 10000,
        join: bool = False,
        caller_runs: bool = False,
        max_command_bytes: int = 33_554_432,
        max_snapshot_bytes: int = 68_719_476_736,
        tls: tuple[str | os.PathLike[str], str | os.PathLike[str], str | os.PathLike[str]]
        | None = None,
        auto_rejoin: bool = True,
        rejoin_max_lag: int = 64,
    ) -> None:
        # The native __new__ built the node from these same arguments (and checked them);
        # only track the node for atexit here.
        _live.add(self)

    async def propose_aio(self, command: bytes) -> bytes | None:
        """Awaitable :meth:`propose_async`."""
        return await asyncio.wrap_future(self.propose_async(command))


@atexit.register
def _close_all() -> None:
    # Close before interpreter finalization, while engine threads can still take the GIL.
    for node in list(_live):
        try:
            node.close()
        except Exception:  # pragma: no cover - best effort at exit
            pass


_drain_thread: threading.Thread | None = None
_drain_lock = threading.Lock()


def _drain() -> None:
    while True:
        for level, target, message in _native._drain_logs(0.5):
            logger.log(level, "%s: %s", target, message)


def enable_logging(level: int | None = None) -> None:
    """Forward the library's log records at ``level`` and above (default: the effective
    level of the ``raft_manager`` logger) to the ``raft_manager`` logger.

    Called at import; call again to change the level. One daemon thread forwards records;
    engine threads never wait for the interpreter to log.
    """
    global _drain_thread
    if level is None:
        level = logger.getEffectiveLevel()
    _native._install_logging(max(int(level), 1))
    with _drain_lock:
        if _drain_thread is None:
            _drain_thread = threading.Thread(
                target=_drain, name="raft_manager-log", daemon=True
            )
            _drain_thread.start()


enable_logging()
