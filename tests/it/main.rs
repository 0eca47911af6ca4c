//! kube-persist's integration tests, in one binary so that the crate and its
//! dependencies are linked once: a module per area, each file one concern.
//!
//! The tests that need a second process of their own (SIGKILL of a writer,
//! the inter-process lock) live in `tests/processes.rs`, which re-executes
//! itself and so runs without libtest's harness.

mod support;

// Without the default `cli` feature (the library alone) only the store's
// own tests build: the rest need the simulator or the binary.
#[cfg(feature = "cli")]
mod bench;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
mod controller;
#[cfg(feature = "sim")]
mod informer;
#[cfg(feature = "sim")]
mod sim;
mod store;
