#!/usr/bin/env bash
# Installs the built C library into PREFIX with the layout raft.pc and raftConfig.cmake
# expect (a stand-in for `cargo cinstall` when only plain cargo is available):
#   examples/install.sh PREFIX [LIB_DIR (default target/debug)]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$1"
libdir="${2:-$root/target/debug}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
mkdir -p "$prefix/lib/pkgconfig" "$prefix/lib/cmake/raft" "$prefix/include"
install -m 0755 "$libdir/libraft.so" "$prefix/lib/libraft.so.$version"
ln -sf "libraft.so.$version" "$prefix/lib/libraft.so.0"
ln -sf "libraft.so.0" "$prefix/lib/libraft.so"
if [[ -f "$libdir/libraft.a" ]]; then install -m 0644 "$libdir/libraft.a" "$prefix/lib/"; fi
install -m 0644 "$root/include/raft.h" "$prefix/include/raft.h"
install -m 0644 "$root/include/raft.hpp" "$prefix/include/raft.hpp"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" "$root/raft.pc.in" \
  > "$prefix/lib/pkgconfig/raft.pc"
install -m 0644 "$root/cmake/raftConfig.cmake" "$prefix/lib/cmake/raft/"
sed -e "s|@VERSION@|$version|g" "$root/cmake/raftConfigVersion.cmake.in" \
  > "$prefix/lib/cmake/raft/raftConfigVersion.cmake"
