#!/usr/bin/env bash
# Builds the library (cargo build, debug), configures the C examples in build/examples,
# builds them and runs ctest --output-on-failure.
#   examples/run_ctest.sh                 plain run
#   SANITIZE=asan examples/run_ctest.sh   examples built with -fsanitize=address,undefined
#                                         (the Rust library itself is not instrumented)
#   SANITIZE=ubsan examples/run_ctest.sh  examples built with -fsanitize=undefined
#   VALGRIND=1 examples/run_ctest.sh      each test under valgrind --error-exitcode=1
#                                         --leak-check=full (see examples/valgrind.supp)
# Extra arguments go to ctest (e.g. -R kv_inproc).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --lib
# The examples compile against the committed include/raft.h: make sure it is current.
cargo test --quiet --test header

build="$root/build/examples"
args=(-DRAFT_LIB_DIR="$root/target/debug" -DRAFT_INCLUDE_DIR="$root/include")
case "${SANITIZE:-}" in
  "") args+=(-DRAFT_SANITIZE=) ;;
  asan|address)
    build="$build-asan"
    args+=(-DRAFT_SANITIZE=address,undefined)
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    # LeakSanitizer intercepts malloc process-wide, so leaks in the (uninstrumented) Rust
    # library are seen too.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
    ;;
  ubsan|undefined)
    build="$build-ubsan"
    args+=(-DRAFT_SANITIZE=undefined)
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    ;;
  *) echo "unknown SANITIZE=$SANITIZE (supported: asan, ubsan)" >&2; exit 2 ;;
esac
if [[ "${VALGRIND:-0}" == 1 ]]; then
  build="$build-valgrind"
  args+=(-DRAFT_VALGRIND=ON)
else
  args+=(-DRAFT_VALGRIND=OFF)
fi
cmake -S "$root/examples" -B "$build" "${args[@]}" >/dev/null
cmake --build "$build" -j 2
cd "$build"
ctest --output-on-failure "$@"
