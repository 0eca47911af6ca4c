//! `kube-persist compact`: trim journals and give the space back (this one
//! writes).

use std::io::Write;
use std::process::ExitCode;

use kube_persist::inspect::resource;
use kube_persist::store::{CompactOptions, JournalLimits, Store};

use super::output;
use super::target::StoreDir;

/// Arguments of `kube-persist compact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// Journal entries to keep per collection, newest first
    /// [default: the store's own bound, 100000].
    #[arg(long, value_name = "N")]
    journal_keep: Option<u64>,
    /// Also drop entries applied longer ago than this: `90m`, `12h`, `7d`,
    /// `2w` (or an ISO 8601 duration such as `P7D`).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    journal_max_age: Option<std::time::Duration>,
    /// Also drop entries a durable consumer has not acknowledged (it will
    /// resync from the store). By default they are kept.
    #[arg(long)]
    ignore_cursors: bool,
    /// Only trim the journals; do not compact the database (what returns
    /// space: redb compacts its file in place; sled's database is
    /// rewritten into fresh files, which needs room for a copy of the
    /// trimmed store).
    #[arg(long)]
    no_rewrite: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = CompactOptions {
        journal_keep: Some(
            args.journal_keep
                .unwrap_or_else(|| JournalLimits::default().max_entries),
        ),
        ignore_cursors: args.ignore_cursors,
        journal_max_age: args.journal_max_age,
        rewrite: !args.no_rewrite,
    };
    let key = args.store.key.load()?;
    let report = Store::compact_with_key(&args.store.dir, options, key)?;
    let mut out = output::stdout();
    for c in &report.collections {
        write!(
            out,
            "{}: removed {} journal entries, {} kept",
            resource::display_name(&c.id),
            c.removed,
            c.kept
        )?;
        if let Some((consumer, seq)) = &c.held_for {
            write!(
                out,
                " (held for consumer {consumer:?}, acknowledged up to seq {seq})"
            )?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "bytes on disk: {} before, {} after",
        report.bytes_before, report.bytes_after
    )?;
    out.flush()?;
    if !args.no_rewrite && !report.rewritten {
        eprintln!("note: rewriting the files would not have made them smaller; they were kept");
    }
    Ok(ExitCode::SUCCESS)
}

/// A journal age: a span of weeks at most, days counted as 24 hours.
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let span: jiff::Span = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 12h or 7d: {e}"))?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| format!("{text:?}: {e}"))?;
    std::time::Duration::try_from(d).map_err(|_| format!("{text:?} is negative"))
}
