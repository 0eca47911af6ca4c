//! `kube-persist compact`: trim journals (this one writes).
//!
//! sled 0.34 frees removed records lazily and never shrinks its files, so the
//! bytes on disk are reported before and after rather than promised smaller.

use std::io::Write;
use std::process::ExitCode;

use kube_persist::inspect::resource;
use kube_persist::store::JournalLimits;

use super::output;
use super::target::{self, StoreDir};

/// Arguments of `kube-persist compact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// Compact only this resource; every collection when omitted.
    #[arg(long, short = 'r', value_name = "R")]
    resource: Option<String>,
    /// Journal entries to keep per collection, newest first (default: the
    /// store's own bound). Durable consumers that acknowledged less than
    /// what is dropped will have to resync.
    #[arg(long, value_name = "N")]
    journal_keep: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let keep = args
        .journal_keep
        .unwrap_or_else(|| JournalLimits::default().max_entries);
    let store = args.store.open()?;
    let before = store.size_on_disk()?;
    let collections = target::collections(&store, args.resource.as_deref())?;
    let mut out = output::stdout();
    for c in &collections {
        let removed = c.compact_journal(keep)?;
        let left = c.meta()?.journal_len;
        writeln!(
            out,
            "{}: removed {removed} journal entries, {left} kept",
            resource::display_name(c.id())
        )?;
    }
    store.flush()?;
    drop(collections);
    let after = store.size_on_disk()?;
    writeln!(out, "bytes on disk: {before} before, {after} after")?;
    out.flush()?;
    if after >= before {
        eprintln!(
            "note: sled does not shrink its files when records are removed: the journal is \
             trimmed, but the space is not returned to the filesystem"
        );
    }
    Ok(ExitCode::SUCCESS)
}
