//! Command-line front end. Each subcommand lives in its own module with its
//! own `Args`; this module only dispatches and maps errors to exit codes.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod age;
mod bench;
mod columns;
mod compact;
mod demo;
mod encrypt;
mod exit;
mod export;
mod get;
mod history;
mod inspect;
mod list;
mod output;
mod repair;
mod signals;
mod sim;
mod sync;
mod table;
mod target;
mod verify;

/// A Kubernetes informer cache that lives on disk.
#[derive(Debug, Parser)]
#[command(name = "kube-persist", version, about, long_about = None, after_help = exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the built-in Kubernetes API-server simulator.
    Sim(sim::Args),
    /// Sync a resource from an API server into a store, resuming from its stored resourceVersion.
    #[command(after_help = exit::HELP)]
    Sync(sync::Args),
    /// Show the whole flow on the built-in simulator: sync, restart and resume, relist after 410.
    Demo(demo::Args),
    /// Describe every collection in a store.
    #[command(after_help = exit::HELP)]
    Inspect(inspect::Args),
    /// Print one stored object.
    #[command(after_help = exit::HELP)]
    Get(get::Args),
    /// List stored objects.
    #[command(after_help = exit::HELP)]
    List(list::Args),
    /// Show the journal of changes to one object.
    #[command(after_help = exit::HELP)]
    History(history::Args),
    /// Check every record and index entry of a store.
    #[command(after_help = exit::HELP)]
    Verify(verify::Args),
    /// Export every stored object.
    ///
    /// Collection by collection, in the order inspect lists them, each in key
    /// order (namespace, then name); every object carries its apiVersion and
    /// kind, but nothing says which collection it came from. A store with
    /// overlapping collections of one resource (`pods` and
    /// `pods [namespace=default]`) therefore exports an object they share once
    /// per collection, and the copies cannot be told apart: use -r to export
    /// one collection.
    #[command(after_help = exit::HELP)]
    Export(export::Args),
    /// Restore the lost marker (kube-persist.json) of a store whose database is intact.
    ///
    /// The engine is told from the database's files (redb: db/data.redb; sled:
    /// db/db and db/conf); the database must open and register at least one
    /// collection, and each collection must then open. A store whose marker is
    /// in place is left alone.
    #[command(after_help = exit::HELP)]
    Repair(repair::Args),
    /// Trim the journals and rewrite the store into fresh files, returning the space; reports bytes before and after.
    #[command(after_help = exit::HELP)]
    Compact(compact::Args),
    /// Encrypt a store at rest under a key, rewriting every record and then its files.
    ///
    /// Every object record and journal entry is sealed with XChaCha20-Poly1305
    /// (zstd dictionaries are dropped: they hold plaintext samples), then the
    /// database is copied into fresh files so that no plaintext record remains
    /// in the store directory. Interrupted, it is resumed by running it again
    /// (or by any writer opening the store with the key). From then on every
    /// command needs the key (--key-file or KUBE_PERSIST_KEY). Names,
    /// namespaces, label values, resourceVersions, uids and times stay readable;
    /// see README, "Secrets at rest".
    #[command(after_help = exit::HELP)]
    Encrypt(encrypt::Args),
    /// Measure resume latency against a full relist and kube-runtime.
    Bench(bench::Args),
}

/// `RUST_LOG`'s filter (default `info`). kube's client logs an ERROR line of
/// its own for every request that fails, before the informer logs the same
/// failure with its cause and what it does next; unless `RUST_LOG` names
/// `kube_client`, those lines are left out, so that a server that is down
/// reads as one line per retry.
fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    const QUIET: &str = "kube_client::client::builder=off";
    let with_quiet = |v: &str| {
        if v.contains("kube_client") {
            v.to_string()
        } else {
            format!("{},{QUIET}", v.trim_end_matches(','))
        }
    };
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(with_quiet(v)).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(with_quiet("info")))
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return exit::usage(err),
    };
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with_writer(std::io::stderr)
        // Colour codes only for a person reading, never into a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Command::Encrypt(a) => encrypt::run(a),
        Command::Repair(a) => repair::run(a),
        Command::Bench(a) => bench::run(a),
    };
    match result {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn kubes_own_request_errors_are_off_unless_rust_log_names_kube_client() {
        let quiet = "kube_client::client::builder=off";
        for given in [
            None,
            Some(""),
            Some("warn"),
            Some("warn,"),
            Some("not a filter["),
        ] {
            let f = log_filter(given).to_string();
            assert!(f.contains(quiet), "{given:?}: {f}");
        }
        assert!(log_filter(None).to_string().contains("info"));
        assert!(log_filter(Some("warn")).to_string().contains("warn"));
        let f = log_filter(Some("info,kube_client=debug")).to_string();
        assert!(!f.contains(quiet), "{f}");
    }
}
