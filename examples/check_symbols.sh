#!/usr/bin/env bash
# The shared library must export exactly the functions raft.h declares (all raft_*), and
# carry the soname libraft.so.0.   examples/check_symbols.sh LIB HEADER
set -euo pipefail
lib="$1"
header="$2"
exported="$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | sort)"
declared="$(grep -oE '^[a-z_ *]*[ *](raft_[a-z0-9_]+)\(' "$header" | grep -oE 'raft_[a-z0-9_]+\($' | tr -d '(' | sort -u)"
if [[ "$exported" != "$declared" ]]; then
  echo "exported functions differ from raft.h declarations:" >&2
  diff <(echo "$declared") <(echo "$exported") >&2 || true
  exit 1
fi
others="$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^raft_' || true)"
if [[ -n "$others" ]]; then
  echo "non-raft_ symbols exported:" >&2
  echo "$others" >&2
  exit 1
fi
if command -v readelf >/dev/null; then
  readelf -d "$lib" | grep -q 'SONAME.*libraft\.so\.0' || { echo "soname is not libraft.so.0" >&2; exit 1; }
fi
echo "symbols: $(echo "$exported" | wc -l) raft_* functions, all declared"
