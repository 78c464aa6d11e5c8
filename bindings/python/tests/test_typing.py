"""The hand-written stubs match the compiled module, and the package type-checks."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

pytest.importorskip("mypy")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # Run outside the source tree so the installed package is what gets inspected.
    with tempfile.TemporaryDirectory() as cwd:
        env = {**os.environ, "MYPY_CACHE_DIR": os.path.join(cwd, ".mypy_cache")}
        return subprocess.run(
            [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=120,
        )


def test_stubtest_native_module() -> None:
    r = _run("mypy.stubtest", "raft_manager._native")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_on_package() -> None:
    r = _run("mypy", "--strict", "-p", "raft_manager")
    assert r.returncode == 0, r.stdout + r.stderr


def _mypy_on(code: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as cwd:
        path = os.path.join(cwd, "user_code.py")
        with open(path, "w") as f:
            f.write(code)
        env = {**os.environ, "MYPY_CACHE_DIR": os.path.join(cwd, ".mypy_cache")}
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", path], cwd=cwd, env=env,
            capture_output=True, text=True, timeout=120,
        )


def test_mypy_rejects_a_wrong_constructor_call() -> None:
    r = _mypy_on(
        "from raft_manager import Node\n"
        'Node("one", 42, object(), election_timeout="fast", no_such_kwarg=1)\n'
    )
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert '"no_such_kwarg"' in out, out
    assert '"election_timeout"' in out, out
    assert 'Argument 1 to "Node" has incompatible type "str"' in out, out
    assert 'Argument 3 to "Node" has incompatible type "object"' in out, out


def test_mypy_accepts_a_typed_state_machine_and_transport() -> None:
    r = _mypy_on(
        "from raft_manager import Node, StateMachine, Transport\n"
        "class Sm:\n"
        "    def apply(self, index: int, command: bytes) -> bytes | None: return None\n"
        "    def snapshot(self) -> bytes: return b''\n"
        "    def restore(self, data: bytes) -> None: pass\n"
        "class Net:\n"
        "    def send(self, to: int, message: bytes) -> None: pass\n"
        "sm: StateMachine = Sm()\n"
        "net: Transport = Net()\n"
        "n = Node(1, [1, 2, 3], sm, None, transport=net, election_timeout=0.3)\n"
        "n.add_voter(4, force=True)\n"
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_help_shows_the_constructor_signature() -> None:
    import inspect

    import raft_manager

    sig = inspect.signature(raft_manager.Node)
    assert list(sig.parameters)[:4] == ["node_id", "peers", "state_machine", "data_dir"]
    assert sig.parameters["election_timeout"].default == 0.5
    # The Python signature and the native one (text_signature) agree on names and defaults.
    native = inspect.signature(raft_manager._native.Node)
    ours = [(p.name, p.kind, p.default) for p in sig.parameters.values()]
    theirs = [(p.name, p.kind, p.default) for p in native.parameters.values()]
    assert ours == theirs
