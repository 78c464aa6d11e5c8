//! The fast test set of `make mutants` in one binary: the core scenarios, the membership
//! tests and the simulation (its seed counts set by `RAFT_SIM_SEEDS` / `RAFT_SIM_LONG_SEEDS`),
//! compiled together so that each mutant is built and linked once. `cargo test` runs these
//! files as their own targets; this target is built only by `cargo test --test mutants`.

#[path = "membership.rs"]
mod membership;
#[path = "scenarios.rs"]
mod scenarios;
#[path = "simulation.rs"]
mod simulation;
