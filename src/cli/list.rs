//! `kube-persist list`: stored objects, as `kubectl get` lists them.

use std::io::Write;
use std::process::ExitCode;

use kube_persist::inspect::{key, query, resource, view};
use serde_json::Value;

use super::table::Table;
use super::target::{self, ResourceArg, SecretsArg, StoreDir};
use super::{age, columns, exit, output};

/// Output format of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// Aligned columns, with more of them.
    Wide,
    /// `type/name` per line.
    Name,
    /// A JSON List object.
    Json,
    /// A YAML List object.
    Yaml,
}

/// Arguments of `kube-persist list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    #[command(flatten)]
    resource: ResourceArg,
    /// Only objects in this namespace. Ignored for cluster-scoped resources
    /// (nodes, namespaces...), as kubectl does.
    #[arg(
        long,
        short = 'n',
        value_name = "NS",
        conflicts_with = "all_namespaces",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    namespace: Option<String>,
    /// Objects in all namespaces (the default when -n is not given).
    #[arg(long, short = 'A')]
    all_namespaces: bool,
    /// Label selector: `app=web`, `tier!=db`, `env in (a,b)`, `env notin (c)`,
    /// `key`, `!key`, comma-separated (all must match).
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    selector: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Format,
    #[command(flatten)]
    secrets: SecretsArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now = age::now()?;
    let mut q = query::Query::default();
    if let Some(selector) = &args.selector {
        q = q.with_labels(selector)?;
    }
    // Checked even where -n is ignored (cluster-scoped resources): a
    // malformed namespace is a typing mistake either way.
    if let Some(ns) = &args.namespace {
        key::check_namespace(ns)?;
    }
    let store = args.store.open()?;
    let collection = target::collection(&store, &args.resource)?;
    let id = collection.id().clone();
    // Cluster-scoped objects have no namespace to match: -n does not apply.
    let namespace = args.namespace.filter(|_| id.namespaced);
    q.namespace = namespace.clone();
    let listing = query::list(&collection, &q)?;
    for bad in &listing.corrupt {
        exit::skipped(bad);
    }
    let objects: Vec<Value> = listing
        .objects
        .into_iter()
        .map(|o| view::present(&id, args.secrets.show_secrets, o))
        .collect();
    let mut out = output::stdout();
    match args.output {
        Format::Json => output::json(&mut out, &output::list_object(objects))?,
        Format::Yaml => output::yaml(&mut out, &output::list_object(objects))?,
        Format::Name => {
            let type_name = resource::type_name(&id);
            for o in &objects {
                writeln!(out, "{type_name}/{}", field(o, "name"))?;
            }
        }
        Format::Table | Format::Wide => {
            if objects.is_empty() {
                // Like kubectl: say so on stderr, keep stdout empty for
                // scripts. Not when records were left out: it may be untrue.
                match &namespace {
                    _ if !listing.corrupt.is_empty() => {}
                    Some(ns) => eprintln!("No {} found in namespace {ns}.", id.resource),
                    None => eprintln!("No {} found.", id.resource),
                }
            } else {
                let wide = args.output == Format::Wide;
                let show_ns = id.namespaced && namespace.is_none();
                let mut headers = Vec::new();
                if show_ns {
                    headers.push("NAMESPACE");
                }
                headers.push("NAME");
                headers.extend(columns::headers(&id.kind, wide));
                let mut table = Table::new(headers);
                for o in &objects {
                    let mut row = Vec::new();
                    if show_ns {
                        row.push(field(o, "namespace").to_string());
                    }
                    row.push(field(o, "name").to_string());
                    row.extend(columns::cells(&id.kind, wide, o, now));
                    table.row(row);
                }
                table.write(&mut out)?;
            }
        }
    }
    out.flush()?;
    Ok(exit::salvaged(listing.corrupt.len()))
}

fn field<'a>(object: &'a Value, name: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(name))
        .and_then(Value::as_str)
        .unwrap_or("")
}
