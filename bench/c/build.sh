#!/usr/bin/env bash
# Builds libraft.so (release) and the C-ABI W1 benchmark into target/release/w1-capi.
# Works from any directory. CC overrides the compiler (default gcc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

cargo build --release --lib

if [[ ! -f target/release/libraft.so ]]; then
  echo "build.sh: target/release/libraft.so missing after cargo build" >&2
  exit 1
fi
# The library's soname is libraft.so.0 (build.rs) but cargo only writes libraft.so: add the
# soname link next to it so the rpath below resolves at run time.
ln -sfn libraft.so target/release/libraft.so.0

"${CC:-gcc}" -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Wpedantic -Werror -pthread \
  -I"$ROOT/include" \
  -o target/release/w1-capi bench/c/w1_capi.c \
  -L"$ROOT/target/release" -lraft -Wl,-rpath,"$ROOT/target/release"

echo "built $ROOT/target/release/w1-capi"
