#!/usr/bin/env bash
# Installs the C library into PREFIX: lib/libraft.so.X.Y.Z (+ libraft.so.0, libraft.so),
# lib/libraft.a, include/raft.h and raft.hpp (C++ wrapper), lib/pkgconfig/raft.pc and
# lib/cmake/raft/ (find_package: raft::raft, raft::raftxx).
# Run through `make install PREFIX=...`, which builds the release library first:
#   scripts/install.sh PREFIX [LIB_DIR (default target/release)]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ $# -lt 1 || -z "$1" ]]; then
  echo "usage: make install PREFIX=/some/prefix   (or: $0 PREFIX [LIB_DIR])" >&2
  exit 2
fi
# raft.pc and the CMake package hold absolute paths.
prefix="$(realpath -m -- "$1")"
libdir="$(realpath -m -- "${2:-$root/target/release}")"
if [[ ! -f "$libdir/libraft.so" ]]; then
  echo "no $libdir/libraft.so: build it first (make install runs cargo build --release --lib)" >&2
  exit 1
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
mkdir -p "$prefix/lib/pkgconfig" "$prefix/lib/cmake/raft" "$prefix/include"
install -m 0755 "$libdir/libraft.so" "$prefix/lib/libraft.so.$version"
ln -sfn "libraft.so.$version" "$prefix/lib/libraft.so.0"
ln -sfn "libraft.so.0" "$prefix/lib/libraft.so"
if [[ -f "$libdir/libraft.a" ]]; then install -m 0644 "$libdir/libraft.a" "$prefix/lib/"; fi
install -m 0644 "$root/include/raft.h" "$prefix/include/raft.h"
install -m 0644 "$root/include/raft.hpp" "$prefix/include/raft.hpp"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" "$root/raft.pc.in" \
  > "$prefix/lib/pkgconfig/raft.pc"
install -m 0644 "$root/cmake/raftConfig.cmake" "$prefix/lib/cmake/raft/"
sed -e "s|@VERSION@|$version|g" "$root/cmake/raftConfigVersion.cmake.in" \
  > "$prefix/lib/cmake/raft/raftConfigVersion.cmake"
echo "installed raft $version into $prefix"
