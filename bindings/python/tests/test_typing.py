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
