//! `kube-persist export`: every stored object, for another tool to read.

use std::io::Write;
use std::process::ExitCode;

use kube_persist::inspect::{query, view};

use super::target::{self, resource_forms, SecretsArg, StoreDir};
use super::{exit, output};

/// Output format of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// YAML documents separated by `---`.
    Yaml,
}

/// Arguments of `kube-persist export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    #[arg(
        long,
        short = 'r',
        value_name = "R",
        help = concat!(
            "Export only this resource: ",
            resource_forms!(),
            ". Every collection when omitted."
        )
    )]
    resource: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "jsonl")]
    output: Format,
    #[command(flatten)]
    secrets: SecretsArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = args.store.open()?;
    let collections = target::collections(&store, args.resource.as_deref())?;
    let mut out = output::stdout();
    let mut first = true;
    let mut skipped = 0;
    for collection in collections {
        let id = collection.id().clone();
        query::for_each(
            &collection,
            |object| -> anyhow::Result<()> {
                let object = view::present(&id, args.secrets.show_secrets, object);
                match args.output {
                    Format::Jsonl => output::json_line(&mut out, &object)?,
                    Format::Yaml => {
                        if !first {
                            writeln!(out, "---")?;
                        }
                        output::yaml(&mut out, &object)?;
                    }
                }
                first = false;
                Ok(())
            },
            |bad| {
                skipped += 1;
                exit::skipped(&bad);
                Ok(())
            },
        )?;
    }
    out.flush()?;
    Ok(exit::salvaged(skipped))
}
