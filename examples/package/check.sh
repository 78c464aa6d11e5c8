#!/usr/bin/env bash
# Installs into a scratch prefix, then builds readme_minimal.c against it twice: through
# pkg-config and through find_package(raft). Run by ctest (test "package").
#   examples/package/check.sh LIB_DIR WORK_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
libdir="$1"
work="$2"
rm -rf "$work"
mkdir -p "$work"
prefix="$work/prefix"
"$here/../install.sh" "$prefix" "$libdir"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$here/../c/readme_minimal.c" -o "$work/pc_consumer" \
  $(pkg-config --cflags --libs raft) -Wl,-rpath,"$prefix/lib"
"$work/pc_consumer"

cmake -S "$here" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/build" >/dev/null
"$work/build/consumer"
"$work/build/consumer_cpp"
echo "package: pkg-config and find_package consumers (C, and C++ via raft::raftxx) ok"
