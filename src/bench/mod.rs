//! The resume-latency comparison behind `kube-persist bench`.
//!
//! One simulated cluster, several ways of getting a controller's cache ready
//! after a restart, measured side by side in one run (see [`Contender`]).
//! Every contender runs as its own child process — this binary re-executed
//! with the hidden `bench child` subcommand — so that its peak RSS is its own
//! and its start-up cost is counted. The child reports its milestones as one
//! JSON line ([`ChildReport`]); the parent adds what only it can see: the
//! spawn instant, the child's peak RSS from `wait4`, the requests and bytes
//! the simulator served, and the store's size on disk.
//!
//! Layout: [`contender`] names what is compared, [`child`] is what runs
//! inside a child process, [`clientgo`] runs client-go's informer instead,
//! [`process`] spawns and reaps it, [`cluster`] is the server (the simulator
//! or, through [`apiserver`], a real kube-apiserver), [`runner`] drives the
//! plan, [`summary`] reduces repetitions to a median and spread, [`report`]
//! renders table/JSON/CSV and [`plot`] draws the PNG.
//!
//! `bench controller` ([`controller`]) compares reconciles after a restart
//! the same way, its children running [`reconciler`]. `bench store`
//! ([`store`]) compares the storage engines under the store.

pub mod apiserver;
pub mod child;
pub mod clientgo;
pub mod clock;
pub mod cluster;
pub mod contender;
pub mod controller;
pub mod outage;
pub mod plot;
pub mod process;
pub mod reconciler;
pub mod report;
pub mod runner;
pub mod steady;
pub mod store;
pub mod summary;

pub use child::{ChildKind, ChildReport, ChildSpec, SteadyReport};
pub use contender::Contender;
pub use report::{Format, Report};
pub use runner::{Plan, Progress};

use std::path::PathBuf;

/// Errors of the benchmark harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bench option made no sense.
    #[error("invalid bench option {option}: {reason}")]
    InvalidOption {
        /// The option, e.g. `--objects`.
        option: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The child process could not be started.
    #[error("could not start the {contender} child process")]
    Spawn {
        /// Which contender.
        contender: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The child process exited unsuccessfully.
    #[error("the {contender} child process failed ({status}); its last output:\n{stderr_tail}")]
    ChildFailed {
        /// Which contender.
        contender: String,
        /// How it exited.
        status: String,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// The child process did not finish in time and was killed.
    #[error("the {contender} child process did not finish within {seconds} s and was killed; its last output:\n{stderr_tail}")]
    Timeout {
        /// Which contender.
        contender: String,
        /// The time limit.
        seconds: u64,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// The child process printed something that is not a report.
    #[error("the {contender} child process printed {line:?}, not a report: {reason}")]
    BadReport {
        /// Which contender.
        contender: String,
        /// The offending line (empty if none).
        line: String,
        /// Why it could not be read.
        reason: String,
    },
    /// A contender's cache, once ready, lacked an object the server holds.
    #[error("{contender} was ready but could not read {probe}, which the server holds")]
    ProbeMissing {
        /// Which contender.
        contender: String,
        /// The `namespace/name` it could not read.
        probe: String,
    },
    /// A contender's Kubernetes client failed (inside a child).
    #[error("kubernetes client error")]
    Kube(#[from] kube::Error),
    /// A contender's watch failed (inside a child).
    #[error("watch failed")]
    Watch(#[from] kube::runtime::watcher::Error),
    /// The watch stream ended while the child was still measuring.
    #[error("the watch stream ended before the benchmark was done")]
    StreamEnded,
    /// The server URL given to a child is not a URL.
    #[error("invalid server URL {url:?}: {reason}")]
    ServerUrl {
        /// The URL given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The simulator failed.
    #[error(transparent)]
    Sim(#[from] crate::sim::Error),
    /// The real kube-apiserver (tests/apiserver's harness) failed.
    #[error(transparent)]
    ApiServer(#[from] apiserver::Error),
    /// The informer failed (inside a child).
    #[error(transparent)]
    Informer(#[from] crate::informer::Error),
    /// A controller could not be set up (inside a child).
    #[error(transparent)]
    Controller(#[from] crate::controller::SetupError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// An I/O error on a path.
    #[error("i/o error on {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Drawing the plot failed.
    #[error("could not draw the plot {path}: {reason}")]
    Plot {
        /// The PNG being drawn.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Result type of the benchmark harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;
