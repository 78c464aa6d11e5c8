#!/usr/bin/env bash
# Builds libraft.so (release) and the C++ W1 benchmark (through include/raft.hpp) into
# target/release/w1-cpp. Works from any directory. CXX overrides the compiler (default g++).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

cargo build --release --lib
ln -sfn libraft.so target/release/libraft.so.0

"${CXX:-g++}" -std=c++17 -O2 -Wall -Wextra -Wpedantic -Werror -pthread \
  -I"$ROOT/include" \
  -o target/release/w1-cpp bench/cpp/w1_cpp.cpp \
  -L"$ROOT/target/release" -lraft -Wl,-rpath,"$ROOT/target/release"

echo "built $ROOT/target/release/w1-cpp"
