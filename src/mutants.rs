//! The fast test set of `make mutants`, compiled into the library's unit-test binary: the
//! core scenarios, the membership tests and the simulation (its seed counts set by
//! `RAFT_SIM_SEEDS` / `RAFT_SIM_LONG_SEEDS`). Built only with `--cfg raft_mutants` (the
//! Makefile's `mutants` target sets it), so that a mutant is compiled once, as one test
//! binary, instead of as the library (rlib, cdylib, staticlib), its four binaries and an
//! integration-test binary. `cargo test` runs these files as their own targets.

#[path = "../tests/membership.rs"]
mod membership;
#[path = "../tests/scenarios.rs"]
mod scenarios;
#[path = "../tests/simulation.rs"]
mod simulation;
