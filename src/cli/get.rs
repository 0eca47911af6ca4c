//! `kube-persist get`: one stored object, as the API server would show it.

use std::io::Write;
use std::process::ExitCode;

use kube_persist::inspect::{self, key, resource, view};

use super::output;
use super::target::{self, ObjectArg, SecretsArg};

/// Output format of `get`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// Arguments of `kube-persist get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    object: ObjectArg,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "yaml")]
    output: Format,
    #[command(flatten)]
    secrets: SecretsArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = args.object.store.open()?;
    let collection = target::collection(&store, &args.object.resource)?;
    let id = collection.id().clone();
    let key = key::parse(&id, &args.object.key)?;
    let object = collection
        .get(&key)?
        .ok_or_else(|| inspect::Error::NotFound {
            resource: resource::display_name(&id),
            key: args.object.key.clone(),
        })?;
    let object = view::present(&id, args.secrets.show_secrets, object);
    let mut out = output::stdout();
    match args.output {
        Format::Yaml => output::yaml(&mut out, &object)?,
        Format::Json => output::json(&mut out, &object)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
