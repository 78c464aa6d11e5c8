"""The interfaces user objects implement: a state machine and (optionally) a transport.

They are :class:`typing.Protocol` classes: any object with the right methods qualifies, no
inheritance needed. Annotate with them so a type checker verifies your classes::

    sm: raft_manager.StateMachine = MyKV()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Union

if TYPE_CHECKING:
    from ._native import SnapshotReader

__all__ = ["SnapshotStream", "StateMachine", "StreamingStateMachine", "Transport"]


class SnapshotStream(Protocol):
    """A binary file-like object ``snapshot()`` may return (an open file, ``io.BytesIO``):
    read in 1 MiB chunks until ``read`` returns ``b""``, then closed if it has ``close()``."""

    def read(self, size: int, /) -> Union[bytes, bytearray, memoryview]: ...


class StateMachine(Protocol):
    """What a state machine provides. All methods run on the node's apply thread, one call
    at a time, in log order.

    ``apply`` gets only commands proposed by users: the leader's no-op entries and
    membership changes also take log indexes but never reach ``apply`` (so the ``index``
    values it sees can have gaps, and ``read_index()`` can return an index that ``apply``
    never sees). Optionally also ``restore_stream(reader)``: see
    :class:`StreamingStateMachine`.
    """

    def apply(self, index: int, command: bytes, /) -> Union[bytes, bytearray, memoryview, None]:
        """Applies a committed command; the result is what ``propose`` returns."""
        ...

    def snapshot(self) -> Union[bytes, bytearray, memoryview, SnapshotStream]:
        """The whole state, as bytes or a binary file-like object."""
        ...

    def restore(self, data: bytes, /) -> None:
        """Replaces the whole state with a snapshot's contents."""
        ...


class StreamingStateMachine(StateMachine, Protocol):
    """A state machine that restores snapshots from a stream instead of one ``bytes``.

    ``restore_stream`` runs on a helper thread while the apply thread feeds the reader and
    waits; blocking node calls made from it raise ``RaftError``.
    """

    def restore_stream(self, reader: SnapshotReader, /) -> None:
        """Replaces the whole state with the snapshot read from ``reader``."""
        ...


class Transport(Protocol):
    """A user transport (``Node(..., transport=t)``): ``send`` is called from a native
    sender thread, never the Raft thread; the receiving side passes the bytes to its
    ``node.step(message)``."""

    def send(self, to: int, message: bytes, /) -> None:
        """Delivers ``message`` to node ``to`` (best effort; Raft retries)."""
        ...
