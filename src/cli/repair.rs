//! `kube-persist repair`: restore the marker of a store that lost it.

use std::io::Write;
use std::process::ExitCode;

use kube_persist::store::Store;

use super::output;

/// Arguments of `kube-persist repair`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory.
    #[arg(value_name = "DIR")]
    dir: std::path::PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.dir.display();
    let line = match Store::repair_marker(&args.dir)? {
        None => format!("{dir}: its marker is in place; nothing to repair"),
        Some(repair) => {
            let names: Vec<String> = repair.collections.iter().map(|id| id.name()).collect();
            let n = names.len();
            let plural = if n == 1 { "" } else { "s" };
            format!(
                "{dir}: rewrote its missing marker: a {} store of {n} collection{plural} ({})",
                repair.engine,
                names.join(", ")
            )
        }
    };
    let mut out = output::stdout();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
