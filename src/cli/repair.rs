//! `kube-persist repair`: restore the marker of a store that lost it.

use std::io::Write;
use std::process::ExitCode;

use kube_persist::store::Store;

use super::output;
use super::target::StoreDir;

/// Arguments of `kube-persist repair`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.store.dir.display();
    let key = args.store.key.load()?;
    let line = match Store::repair_marker_with_key(&args.store.dir, key)? {
        None => format!("{dir}: its marker is in place; nothing to repair"),
        Some(repair) => {
            let names: Vec<String> = repair.collections.iter().map(|id| id.name()).collect();
            let n = names.len();
            let plural = if n == 1 { "" } else { "s" };
            let sealing = match repair.encryption {
                None => String::new(),
                Some(s) if s.complete => format!(", encrypted under key {}", s.key_id),
                Some(s) => format!(
                    ", being encrypted under key {} (the next open with the key finishes it)",
                    s.key_id
                ),
            };
            let unchecked = if repair.checked {
                ""
            } else {
                "; its records were not opened: give its key (--key-file PATH or $KUBE_PERSIST_KEY) to check them"
            };
            format!(
                "{dir}: rewrote its missing marker: a {} store of {n} collection{plural} ({}){sealing}{unchecked}",
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
