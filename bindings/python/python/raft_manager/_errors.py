"""Exceptions raised by raft_manager (defined in Python, raised by the native module)."""

from __future__ import annotations

import builtins

__all__ = [
    "RaftError",
    "NotLeaderError",
    "BusyError",
    "TimeoutError",
    "OutcomeUnknownError",
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
    """Not accepted now, nothing was proposed: the admission limit is reached (too many
    uncommitted bytes or a full queue), or a membership change or leadership transfer is
    in flight. Retry later."""


class TimeoutError(RaftError, builtins.TimeoutError):
    """The call timed out; a proposal may still commit later."""


class OutcomeUnknownError(TimeoutError):
    """Leadership was lost before the proposal committed: it may still commit under the new
    leader, or be lost. Not a node failure; the node keeps running. Like a timeout, retry
    only an idempotent command or one proposed with ``client_id``/``seq`` (applied at most
    once). A subclass of :class:`TimeoutError`, so ``except TimeoutError`` covers both."""


class ShutdownError(RaftError):
    """The node is closed (or closing)."""


class TooLargeError(RaftError, ValueError):
    """The command is larger than the node's ``max_command_bytes`` (default 32 MiB); it was
    refused up front and nothing was proposed."""


class StorageError(RaftError):
    """The data directory could not be opened or written; the node has stopped."""
