"""Exceptions raised by raft_manager (defined in Python, raised by the native module)."""

from __future__ import annotations

import builtins

__all__ = [
    "RaftError",
    "NotLeaderError",
    "BusyError",
    "TimeoutError",
    "ShutdownError",
    "StorageError",
    "TooLargeError",
]


class RaftError(Exception):
    """Base class of every raft_manager error; also raised when a node has failed."""


class NotLeaderError(RaftError):
    """This node is not the leader. ``leader_id`` is the known leader, or None."""

    leader_id: int | None

    def __init__(self, message: str = "not the leader", leader_id: int | None = None) -> None:
        super().__init__(message)
        self.leader_id = leader_id


class BusyError(RaftError):
    """Admission limit reached (too many uncommitted bytes or a full queue); retry later."""


class TimeoutError(RaftError, builtins.TimeoutError):
    """The call timed out; a proposal may still commit later."""


class ShutdownError(RaftError):
    """The node is closed (or closing)."""


class TooLargeError(RaftError, ValueError):
    """The command is larger than the node's ``max_command_bytes`` (default 32 MiB); it was
    refused up front and nothing was proposed."""


class StorageError(RaftError):
    """The data directory could not be opened or written; the node has stopped."""
