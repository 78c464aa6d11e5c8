#!/usr/bin/env bash
# Builds the library (debug), then vets and tests the Go binding with the race detector.
#   bindings/go/run_tests.sh [go test args...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
cargo build --lib
# The library's soname is libraft.so.0; cargo only writes libraft.so.
ln -sfn libraft.so target/debug/libraft.so.0
export CGO_ENABLED=1
export CGO_LDFLAGS="-L$root/target/debug -Wl,-rpath,$root/target/debug"
cd "$here"
go vet ./...
go test -race -count=1 "$@" ./...
