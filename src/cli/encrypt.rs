//! `kube-persist encrypt`: encrypt a store at rest (this one writes).

use std::io::Write;
use std::process::ExitCode;

use kube_persist::store::Store;

use super::output;
use super::target::StoreDir;

/// Arguments of `kube-persist encrypt`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = args.store.key.require(&args.store.dir)?;
    let id = key.id();
    Store::encrypt(&args.store.dir, key)?;
    let mut out = output::stdout();
    writeln!(
        out,
        "{}: encrypted under key {id}",
        args.store.dir.display()
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
