#!/usr/bin/env bash
# Builds the Python bindings into a virtualenv at <repo>/.venv and runs their tests.
# Works from a fresh clone: creates the venv if missing, installs the tools, builds the
# extension with maturin (debug profile) and runs pytest. Extra arguments go to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating virtualenv at $venv"
    "$python" -m venv "$venv"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"

python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
python -m pip install --quiet --disable-pip-version-check "maturin>=1.5,<2" pytest mypy

cd "$here"
# Debug build: fast to compile on small machines; the tests do not need optimizations.
maturin develop --quiet
python -c "import raft_manager._native"

python -m pytest -q "$@" tests
