//! Command-line front end. Each subcommand lives in its own module with its
//! own `Args`; this module only dispatches and maps errors to exit codes.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod bench;
mod compact;
mod demo;
mod export;
mod get;
mod history;
mod inspect;
mod list;
mod signals;
mod sim;
mod sync;
mod verify;

/// A Kubernetes informer cache that lives on disk.
#[derive(Debug, Parser)]
#[command(name = "kube-persist", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the built-in Kubernetes API-server simulator.
    Sim(sim::Args),
    /// Sync a resource from an API server into a store, resuming from its stored resourceVersion.
    Sync(sync::Args),
    /// Show the whole flow on the built-in simulator: sync, restart and resume, relist after 410.
    Demo(demo::Args),
    /// Describe every collection in a store.
    Inspect(inspect::Args),
    /// Print one stored object.
    Get(get::Args),
    /// List stored objects.
    List(list::Args),
    /// Show the journal of changes to one object.
    History(history::Args),
    /// Check every record and index entry of a store.
    Verify(verify::Args),
    /// Export every stored object.
    Export(export::Args),
    /// Trim the journal and reclaim space.
    Compact(compact::Args),
    /// Measure resume latency against a full relist and kube-runtime.
    Bench(bench::Args),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Sim(a) => sim::run(a),
        Command::Sync(a) => sync::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Get(a) => get::run(a),
        Command::List(a) => list::run(a),
        Command::History(a) => history::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Export(a) => export::run(a),
        Command::Compact(a) => compact::run(a),
        Command::Bench(a) => bench::run(a),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
