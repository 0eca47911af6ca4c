//! `kube-persist history`: the journal of one object.

use std::io::Write;
use std::process::ExitCode;

use kube_persist::inspect::{self, history, key, redact, resource};
use kube_persist::store::EventKind;

use super::table::Table;
use super::target::{self, ObjectArg, SecretsArg};
use super::{age, output};

/// Output format of `history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// A JSON array of changes: seq, time, type (Added, Modified, Deleted),
    /// resourceVersion, patch (the whole object for Added) and, for Modified
    /// entries only, `changed`: the dotted paths set or removed (possibly
    /// none). Added and Deleted entries have no `changed`: their type says it.
    Json,
}

/// Arguments of `kube-persist history`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    object: ObjectArg,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Format,
    #[command(flatten)]
    secrets: SecretsArg,
}

/// One change, as `-o json` prints it.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangeView {
    seq: u64,
    time: String,
    #[serde(rename = "type")]
    kind: EventKind,
    resource_version: String,
    /// Only for Modified entries; Added and Deleted change the whole object.
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<Vec<String>>,
    patch: serde_json::Value,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = args.object.store.open()?;
    let collection = target::collection(&store, &args.object.resource)?;
    let id = collection.id().clone();
    let key = key::parse(&id, &args.object.key)?;
    let entries = collection.history(&key)?;
    if entries.is_empty() && collection.get(&key)?.is_none() {
        return Err(inspect::Error::NotFound {
            resource: resource::display_name(&id),
            key: args.object.key,
        }
        .into());
    }
    let mut out = output::stdout();
    match args.output {
        Format::Json => {
            let changes: Vec<ChangeView> = entries
                .into_iter()
                .map(|e| {
                    let changed = match e.kind {
                        EventKind::Modified => Some(history::changed_paths(&e.patch)),
                        EventKind::Added | EventKind::Deleted | EventKind::Resync => None,
                    };
                    let mut patch = e.patch;
                    redact::redact_if(&id, args.secrets.show_secrets, &mut patch);
                    ChangeView {
                        seq: e.seq,
                        time: age::timestamp(e.at),
                        kind: e.kind,
                        resource_version: e.rv,
                        changed,
                        patch,
                    }
                })
                .collect();
            output::json(&mut out, &changes)?;
        }
        Format::Table => {
            if entries.is_empty() {
                eprintln!(
                    "No journal entries left for {} (compacted).",
                    args.object.key
                );
            } else {
                let mut table = Table::new(["SEQ", "TIME", "TYPE", "RV", "CHANGED"]);
                for e in &entries {
                    table.row(vec![
                        e.seq.to_string(),
                        age::timestamp(e.at),
                        format!("{:?}", e.kind),
                        e.rv.clone(),
                        history::describe(e),
                    ]);
                }
                table.write(&mut out)?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
