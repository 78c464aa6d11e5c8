"""Type stubs for the native extension module ``raft_manager._native``."""

import concurrent.futures
import os
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, final

from typing_extensions import Buffer, disjoint_base

from ._protocols import StateMachine, Transport

__all__ = ["Node", "SnapshotReader", "_Simulation", "_install_logging", "_drain_logs"]

@final
class SnapshotReader:
    """A read-only binary stream over a snapshot, passed to ``restore_stream``. Usable only
    during that call: afterwards reading raises ``ValueError("snapshot reader is closed")``."""

    def read(self, size: int | None = -1) -> bytes: ...
    def readinto(self, buffer: Buffer) -> int: ...
    def readline(self, size: int | None = -1) -> bytes: ...
    def readable(self) -> bool: ...
    def writable(self) -> bool: ...
    def seekable(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> SnapshotReader: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...

@disjoint_base
class Node:
    def __new__(
        cls,
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
    ) -> Node: ...
    @property
    def id(self) -> int: ...
    @property
    def listen_addr(self) -> str | None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def failure(self) -> str | None: ...
    def step(self, message: bytes, sender: int | None = None) -> None: ...
    def propose(
        self,
        command: bytes,
        timeout: float | None = None,
        *,
        client_id: int | None = None,
        seq: int | None = None,
    ) -> bytes | None: ...
    def propose_async(self, command: bytes) -> concurrent.futures.Future[bytes | None]: ...
    def read_index(self, timeout: float | None = None) -> int: ...
    def status(self) -> dict[str, Any]: ...
    def metrics(self) -> dict[str, Any]: ...
    def metrics_text(self) -> str: ...
    def add_learner(
        self, node_id: int, addr: str | None = None, *, timeout: float | None = None
    ) -> None: ...
    def add_voter(
        self,
        node_id: int,
        addr: str | None = None,
        *,
        timeout: float | None = None,
        force: bool = False,
        max_lag: int = 1000,
    ) -> None: ...
    def remove(self, node_id: int, *, timeout: float | None = None) -> None: ...
    def change_membership(
        self,
        voters: Iterable[int],
        learners: Iterable[int] | None = None,
        expected_conf_id: int | None = None,
        *,
        addrs: Mapping[int, str] | None = None,
        timeout: float | None = None,
    ) -> None: ...
    def add_peer(self, node_id: int, addr: str) -> None: ...
    def transfer_leader(self, to: int | None = None) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> Node: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...

@final
class _Simulation:
    def __new__(
        cls,
        factory: Callable[[], Any],
        workload: Callable[[int, int, int], tuple[str, bytes] | None],
        *,
        nodes: int = 3,
        clients: int = 3,
        ops_per_client: int = 30,
        model: Any = None,
        faults: dict[str, Any] | None = None,
        replay_hint: str | None = None,
    ) -> _Simulation: ...
    def run(self, seed: int) -> dict[str, Any]: ...
    def set_schedule(self, schedule: str | None) -> None: ...
    def apply_replay_env(self) -> None: ...
    def set_replay_hint(self, hint: str) -> None: ...
    def shrink(self, seed: int, max_runs: int) -> dict[str, Any]: ...

def _install_logging(level: int) -> bool: ...
def _drain_logs(timeout: float) -> list[tuple[int, str, str]]: ...
