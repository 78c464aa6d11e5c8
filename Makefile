# raft-manager: the two commands that matter are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: fuzz demo test test-rust test-porcupine test-c test-python test-go test-docs lint \
	header sim-long mutants build bench bench-rounds bench-python-deps install wheel

## Run the main job: a local 3-node replicated key-value cluster, leader killed and recovered.
demo:
	$(CARGO) build --release --bin raft-kv --bin raft-kv-demo
	./target/release/raft-kv-demo --bin ./target/release/raft-kv

## Run every test: Rust (unit, integration, simulation), the porcupine cross-check, C and
## C++ via ctest, Python via pytest, Go via go test -race (when go is installed), then every
## command and code block of the documentation (scripts/doctest.py).
test: test-rust test-porcupine test-c test-python test-go test-docs

test-rust:
	$(CARGO) test --release

## Cross-check our linearizability checker with porcupine (etcd's) on histories the
## simulator exported (tests/simulation.rs porcupine_export); skipped without Go.
PORCUPINE_DIR := $(CURDIR)/target/porcupine-histories
test-porcupine:
	@if command -v go >/dev/null 2>&1; then \
	  RAFT_PORCUPINE_DIR=$(PORCUPINE_DIR) $(CARGO) test --release --test simulation porcupine_export -- --nocapture && \
	  cd tools/porcupine-check && go run . $(PORCUPINE_DIR); \
	else echo "go not installed: porcupine cross-check skipped"; fi

test-c:
	bash examples/run_ctest.sh
	SANITIZE=asan bash examples/run_ctest.sh
	VALGRIND=1 bash examples/run_ctest.sh

test-python:
	bash bindings/python/run_tests.sh

## Run the commands and code blocks of README.md, bindings/python/README.md and docs/*.md.
test-docs:
	python3 scripts/doctest.py

## Install the C library (release build): PREFIX/lib/libraft.so{,.0,.VERSION}, libraft.a,
## PREFIX/include/raft.h, PREFIX/lib/pkgconfig/raft.pc, PREFIX/lib/cmake/raft/.
PREFIX ?= /usr/local
install:
	$(CARGO) build --release --lib
	bash scripts/install.sh "$(PREFIX)" target/release

## Build the Python package as one abi3 wheel (CPython >= 3.10, release) into dist/.
wheel:
	@[ -x .venv/bin/python ] || python3 -m venv .venv
	.venv/bin/python -m pip install --quiet --disable-pip-version-check "maturin>=1.5,<2"
	.venv/bin/maturin build --release --quiet --out dist -m bindings/python/Cargo.toml

## Go binding (bindings/go): go vet and go test -race; skipped with a message without go.
test-go:
	@if command -v go >/dev/null; then bash bindings/go/run_tests.sh; \
	else echo "test-go: go not installed, Go binding not tested"; fi

## Seeded fuzzing of every decoder (tests/fuzz.rs), RAFT_FUZZ_ITERS iterations per target;
## RAFT_FUZZ_SEED=N picks another deterministic run, RAFT_FUZZ_ITERS=N sets the count.
RAFT_FUZZ_ITERS ?= 3000000
fuzz:
	RAFT_FUZZ_ITERS=$(RAFT_FUZZ_ITERS) $(CARGO) test --release --test fuzz -- --nocapture

## Formatting and lints, as CI reviewers expect them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## Regenerate include/raft.h after changing src/ffi.
header:
	RAFT_BLESS_HEADER=1 $(CARGO) test --release --test header

## Long simulation soak: 100,000 short seeds and 1,000 long seeds (>= 5,000 client
## operations each); RAFT_SIM_LONG_SEEDS overrides the long count.
RAFT_SIM_LONG_SEEDS ?= 1000
sim-long:
	RAFT_SIM_SEEDS=100000 RAFT_SIM_LONG_SEEDS=$(RAFT_SIM_LONG_SEEDS) $(CARGO) test --release --test simulation -- --nocapture

## Mutation testing (docs/TESTING.md) of src/core and the runtime's decision code
## (apply_core, session, clock). Test set, per mutant: one binary, the lib unit tests with
## tests/scenarios.rs, tests/membership.rs and tests/simulation.rs compiled in (src/mutants.rs,
## enabled by --cfg raft_mutants), so a mutant builds the crate once, as a test; the
## simulation at 200 short seeds (RAFT_SIM_SEEDS; the issue-12 closing note has the table's
## bugs caught by seed 126) and its 4 default long seeds. `--lib` goes in --cargo-arg
## (arguments after `--` would reach the test binary, not cargo). Built with the `mutants`
## cargo profile (release, incremental, no debug info): ~1,200 mutants at 20-60 s each on
## this shared 2-core machine, so run it a file at a time, e.g.
## MUTANTS_ARGS="--file src/core/quorum.rs". Installs cargo-mutants when absent.
MUTANTS_ARGS ?= --file 'src/core/**/*.rs' --file src/runtime/apply_core.rs \
  --file src/runtime/session.rs --file src/runtime/clock.rs
MUTANTS_SEEDS ?= 200
mutants:
	@command -v cargo-mutants >/dev/null 2>&1 || $(CARGO) install --locked cargo-mutants
	RAFT_SIM_SEEDS=$(MUTANTS_SEEDS) RUSTFLAGS="--cfg raft_mutants" \
	  RAFT_PORCUPINE_DIR=$(CURDIR)/target/mutants-porcupine \
	  $(CARGO) mutants --no-shuffle --profile mutants --jobs 1 --timeout 120 \
	  --build-timeout 900 --cargo-arg=--lib $(MUTANTS_ARGS)

## Benchmarks (docs/BENCHMARKS.md): W1 (Rust API, C ABI, C++, Go), the openraft and raft-rs
## peers, the hardware floor (fdatasync, loopback RTT), W2 (ours and raft-rs's), failover,
## catch-up, memory (loaded and 1,000 idle nodes), W3; then every target of the performance
## issue with its same-run ratio and a met/MISSED verdict (bench/ratios.py).
## Each program prints a table and `BENCH name=... value=... unit=...` lines; the summary of
## every BENCH line is printed at the end and kept in target/bench-results.txt.
bench:
	$(CARGO) build --release -p raft-bench -p openraft-peer -p raftrs-peer
	bash bench/c/build.sh
	bash bench/cpp/build.sh
	@if command -v go >/dev/null; then bash bench/go/build.sh; fi
	@set -o pipefail; out=target/bench-results.txt; : > $$out; \
	for prog in w1 openraft-peer raftrs-peer w1-capi "w1-capi --caller-runs 1" w1-cpp w1-go \
	    "w1-go -mode goroutines" hw-floor w2 "raftrs-peer w2" failover catchup "catchup --tcp" \
	    memory "memory --idle 1000" storage-crc; do \
	  echo "== $$prog"; \
	  if [ ! -x "./target/release/$${prog%% *}" ]; then echo "(not built: no go)"; continue; fi; \
	  ./target/release/$$prog 2>&1 | tee -a $$out || exit 1; \
	done; \
	echo "== w3"; $(MAKE) --no-print-directory bench-python-deps && \
	  .venv/bin/python bench/python/w3.py 2>&1 | tee -a $$out || echo "w3 failed"; \
	echo; echo "== all figures"; grep '^BENCH ' $$out; \
	echo; echo "== ratios and targets"; python3 bench/ratios.py $$out

## ROUNDS (3) interleaved rounds of the performance issue's workloads (bench/rounds.sh):
## every round runs raft-manager and its peers back to back; prints each round's targets and
## the median [min-max] over the rounds (docs/BENCHMARKS.md).
ROUNDS ?= 3
bench-rounds:
	$(CARGO) build --release -p raft-bench -p openraft-peer -p raftrs-peer
	bash bench/c/build.sh
	$(MAKE) --no-print-directory bench-python-deps
	ROUNDS=$(ROUNDS) bash bench/rounds.sh

## The Python binding built in release mode plus PySyncObj, for the W3 benchmark.
bench-python-deps:
	@[ -x .venv/bin/python ] || python3 -m venv .venv
	.venv/bin/pip install --quiet maturin pysyncobj
	cd bindings/python && ../../.venv/bin/maturin develop --release --quiet
