//! `kube-persist verify`: read every record and index entry of a store and
//! say, key by key, what is damaged.

use std::io::Write;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use kube_persist::inspect::resource;
use kube_persist::store::{self, VerifyReport};
use serde_json::json;

use super::target::StoreDir;
use super::{exit, output};

/// Output format of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per collection, one per problem.
    Text,
    /// A JSON report.
    Json,
}

/// Arguments of `kube-persist verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: Format,
}

/// What verify found in one collection.
struct Outcome {
    name: String,
    /// `Err`: the collection could not even be opened (its state record).
    report: Result<VerifyReport, String>,
}

impl Outcome {
    fn problems(&self) -> usize {
        match &self.report {
            Ok(r) => r.problems.len(),
            Err(_) => 1,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = args.store.open()?;
    let ids = store.collections()?;
    // The bar counts object records and journal entries; sizes come from
    // each collection's meta, which may itself be damaged — then the bar is
    // just less precise.
    let mut sizes = Vec::with_capacity(ids.len());
    for id in &ids {
        let size = match store.find_collection(id) {
            Ok(Some(c)) => c.meta().map_or(0, |m| m.objects + m.journal_len),
            _ => 0,
        };
        sizes.push(size);
    }
    let bar = ProgressBar::new(sizes.iter().sum());
    bar.set_style(
        ProgressStyle::with_template("{spinner} verifying {msg} [{bar:30}] {pos}/{len} records")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let mut outcomes = Vec::with_capacity(ids.len());
    for (id, size) in ids.iter().zip(sizes) {
        let name = resource::display_name(id);
        bar.set_message(name.clone());
        let start = bar.position();
        let report = match store.find_collection(id) {
            Ok(Some(c)) => match c.verify_with_progress(|| bar.inc(1)) {
                Ok(r) => Ok(r),
                Err(store::Error::Corrupt { key, reason, .. }) => Err(format!("{key}: {reason}")),
                Err(e) => return Err(e.into()),
            },
            Ok(None) => Err("listed by the store but not found".to_string()),
            Err(store::Error::Corrupt { key, reason, .. }) => Err(format!("{key}: {reason}")),
            Err(e) => return Err(e.into()),
        };
        outcomes.push(Outcome { name, report });
        // Whatever the meta promised, the bar ends this collection here.
        bar.set_position(start + size);
    }
    bar.finish_and_clear();

    let problems: usize = outcomes.iter().map(Outcome::problems).sum();
    let mut out = output::stdout();
    match args.output {
        Format::Text => write_text(&mut out, &store, &outcomes, problems)?,
        Format::Json => write_json(&mut out, &store, &outcomes, problems)?,
    }
    out.flush()?;
    // Damage found record by record is the same damage the other commands
    // exit 5 on, whether the engine or a checksum found it.
    Ok(ExitCode::from(if problems == 0 {
        exit::OK
    } else {
        exit::CORRUPT
    }))
}

fn write_text(
    out: &mut impl Write,
    store: &store::Store,
    outcomes: &[Outcome],
    problems: usize,
) -> anyhow::Result<()> {
    for o in outcomes {
        match &o.report {
            Ok(r) => {
                let verdict = match r.problems.len() {
                    0 => "ok".to_string(),
                    1 => "1 problem".to_string(),
                    n => format!("{n} problems"),
                };
                writeln!(
                    out,
                    "{}: {} objects, {} journal entries, {} index entries, {} dictionaries, {} cursors: {verdict}",
                    o.name, r.objects, r.journal_entries, r.index_entries, r.dictionaries, r.cursors
                )?;
                for p in &r.problems {
                    writeln!(out, "  {}: {}", p.key, p.reason)?;
                }
            }
            Err(e) => writeln!(out, "{}: cannot be read: {e}", o.name)?,
        }
    }
    match problems {
        0 => writeln!(out, "store {} is intact", store.path().display())?,
        n => writeln!(
            out,
            "store {} is damaged: {n} problem{}",
            store.path().display(),
            if n == 1 { "" } else { "s" }
        )?,
    }
    Ok(())
}

fn write_json(
    out: &mut impl Write,
    store: &store::Store,
    outcomes: &[Outcome],
    problems: usize,
) -> anyhow::Result<()> {
    let collections: Vec<_> = outcomes
        .iter()
        .map(|o| match &o.report {
            Ok(r) => json!({
                "collection": o.name,
                "objects": r.objects,
                "journalEntries": r.journal_entries,
                "indexEntries": r.index_entries,
                "dictionaries": r.dictionaries,
                "cursors": r.cursors,
                "problems": r.problems.iter()
                    .map(|p| json!({"key": p.key, "reason": p.reason}))
                    .collect::<Vec<_>>(),
            }),
            Err(e) => json!({
                "collection": o.name,
                "problems": [{"key": "collection", "reason": e}],
            }),
        })
        .collect();
    output::json(
        out,
        &json!({
            "path": store.path(),
            "intact": problems == 0,
            "problems": problems,
            "collections": collections,
        }),
    )
}
