#!/usr/bin/env bash
# Builds libraft.so (release) and the Go W1 benchmark (bindings/go/cmd/w1-go) into
# target/release/w1-go. Works from any directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

cargo build --release --lib
ln -sfn libraft.so target/release/libraft.so.0

cd bindings/go
CGO_ENABLED=1 CGO_LDFLAGS="-L$ROOT/target/release -Wl,-rpath,$ROOT/target/release" \
  go build -o "$ROOT/target/release/w1-go" ./cmd/w1-go

echo "built $ROOT/target/release/w1-go"
