//! `kube-persist inspect`: every collection of a store, its freshness, size
//! and journal.

use std::io::Write;
use std::process::ExitCode;

use jiff::Timestamp;
use kube_persist::inspect::resource;
use kube_persist::inspect::summary::{self, CollectionSummary, State, StoreSummary};
use kube_persist::store::{self, Sealing, Store};
use serde_json::{json, Value};

use super::target::StoreDir;
use super::{age, output};

/// Output format of `inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Indented `Field: value` lines, like `kubectl describe`.
    Text,
    /// A JSON object.
    Json,
}

/// Arguments of `kube-persist inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreDir,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: Format,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now = age::now()?;
    // From the marker, without the key: a key id is a public fingerprint,
    // and an operator without the key must still learn which one it takes.
    let encryption = Store::encryption_of(&args.store.dir)?;
    let store = match args.store.open() {
        Ok(store) => store,
        Err(e) if is_key_error(&e) => {
            let mut out = output::stdout();
            match args.output {
                Format::Json => output::json(
                    &mut out,
                    &json!({"path": args.store.dir, "encryption": encryption_json(encryption)}),
                )?,
                Format::Text => write_store_lines(&mut out, &args.store.dir, encryption)?,
            }
            out.flush()?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let summary = summary::summarize(&store)?;
    let mut out = output::stdout();
    match args.output {
        Format::Json => {
            let mut body = to_json(&summary);
            body["encryption"] = encryption_json(encryption);
            output::json(&mut out, &body)?
        }
        Format::Text => write_text(&mut out, &summary, encryption, now)?,
    }
    out.flush()?;
    if let Some(damage) = &summary.damage {
        eprintln!(
            "error: store {} is damaged: {damage}; `kube-persist sync` moves it aside and relists",
            summary.path.display()
        );
        return Ok(ExitCode::from(super::exit::CORRUPT));
    }
    Ok(ExitCode::SUCCESS)
}

fn state_word(state: State) -> &'static str {
    match state {
        State::NeverSynced => "never synced (a restart lists from scratch)",
        State::Resumable => "resumable (a restart serves these objects and resumes the watch)",
        State::Damaged => "damaged (a restart moves the database aside and lists from scratch)",
    }
}

/// Whether `e` is a store that needs another key than the one given (or one).
fn is_key_error(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<store::Error>(),
        Some(store::Error::KeyNeeded { .. } | store::Error::WrongKey { .. })
    )
}

/// What the marker says of encryption, in words.
fn encryption_words(encryption: Option<Sealing>) -> String {
    match encryption {
        None => "none (records are plaintext)".to_string(),
        Some(s) if s.complete => format!("{CIPHER}, key id {}", s.key_id),
        Some(s) => format!(
            "{CIPHER}, key id {}; unfinished (some records are plaintext until a writer opens the store with the key)",
            s.key_id
        ),
    }
}

fn encryption_json(encryption: Option<Sealing>) -> Value {
    encryption.map_or(
        Value::Null,
        |s| json!({"algorithm": CIPHER, "keyId": s.key_id.to_string(), "complete": s.complete}),
    )
}

/// The AEAD every sealed record is under (see `kube_persist::store::encryption`).
const CIPHER: &str = "XChaCha20-Poly1305";

/// The lines that need neither the key nor the database.
fn write_store_lines(
    out: &mut impl Write,
    path: &std::path::Path,
    encryption: Option<Sealing>,
) -> anyhow::Result<()> {
    writeln!(out, "Store:          {}", path.display())?;
    writeln!(out, "Encryption:     {}", encryption_words(encryption))?;
    Ok(())
}

fn write_text(
    out: &mut impl Write,
    s: &StoreSummary,
    encryption: Option<Sealing>,
    now: Timestamp,
) -> anyhow::Result<()> {
    write_store_lines(out, &s.path, encryption)?;
    writeln!(out, "Collections:    {}", s.collections.len())?;
    writeln!(out, "Bytes on disk:  {}", bytes(s.bytes_on_disk))?;
    writeln!(out, "Raw JSON:       {}", bytes(s.raw_bytes()))?;
    writeln!(out, "Raw / on disk:  {}", ratio(s.disk_ratio()))?;
    for c in &s.collections {
        writeln!(out)?;
        write_collection(out, c, now)?;
    }
    Ok(())
}

fn write_collection(
    out: &mut impl Write,
    c: &CollectionSummary,
    now: Timestamp,
) -> anyhow::Result<()> {
    let id = &c.id;
    let api_version = kube_persist::inspect::view::api_version(id);
    let scope = if id.namespaced {
        "namespaced"
    } else {
        "cluster-scoped"
    };
    writeln!(out, "{}", resource::display_name(id))?;
    writeln!(
        out,
        "  Resource:        {api_version} {} ({scope})",
        id.kind
    )?;
    let short_names = if c.short_names.is_empty() {
        "none".to_string()
    } else {
        c.short_names.join(", ")
    };
    if c.short_names_damaged {
        writeln!(
            out,
            "  Short names:     {short_names} (the record of discovered ones is damaged; see verify)"
        )?;
    } else {
        writeln!(out, "  Short names:     {short_names}")?;
    }
    let restrictions = [
        ("namespace", &id.namespace),
        ("labels", &id.label_selector),
        ("fields", &id.field_selector),
    ];
    for (what, value) in restrictions {
        if let Some(v) = value {
            writeln!(out, "  Watch {what}:{:w$}{v}", "", w = 10 - what.len())?;
        }
    }
    writeln!(out, "  Schema version:  {}", c.meta.schema_version)?;
    writeln!(out, "  State:           {}", state_word(c.state))?;
    writeln!(
        out,
        "  Last RV:         {}",
        c.meta.last_rv.as_deref().unwrap_or("-")
    )?;
    match c.meta.last_sync {
        Some(t) => writeln!(
            out,
            "  Last sync:       {} ({} ago)",
            age::timestamp(t),
            age::since_system(now, t)
        )?,
        None => writeln!(out, "  Last sync:       never")?,
    }
    writeln!(out, "  Objects:         {}", c.meta.objects)?;
    writeln!(out, "  Raw JSON:        {}", bytes(c.meta.raw_bytes))?;
    writeln!(out, "  Stored:          {}", bytes(c.meta.stored_bytes))?;
    writeln!(out, "  Compression:     {}", ratio(c.compression_ratio()))?;
    match (&c.journal.first, &c.journal.last) {
        (Some((first_seq, first_at)), Some((last_seq, last_at))) => writeln!(
            out,
            "  Journal:         {} entries, {} bytes, seq {first_seq}..{last_seq}, {} .. {}",
            c.meta.journal_len,
            c.meta.journal_bytes,
            age::timestamp(*first_at),
            age::timestamp(*last_at)
        )?,
        _ => writeln!(
            out,
            "  Journal:         empty (last seq {})",
            c.meta.journal_last_seq
        )?,
    }
    match c.meta.dictionary_id {
        Some(d) => writeln!(
            out,
            "  Dictionary:      id {d} ({} trained)",
            c.meta.dictionaries
        )?,
        None => writeln!(out, "  Dictionary:      none")?,
    }
    Ok(())
}

fn to_json(s: &StoreSummary) -> Value {
    let collections: Vec<Value> = s
        .collections
        .iter()
        .map(|c| {
            let id = &c.id;
            let span = |e: &Option<(u64, std::time::SystemTime)>| {
                e.map(|(seq, at)| json!({"seq": seq, "time": age::timestamp(at)}))
            };
            json!({
                "resource": id.resource,
                "group": id.group,
                "version": id.version,
                "kind": id.kind,
                "namespaced": id.namespaced,
                "shortNames": c.short_names,
                "shortNamesDamaged": c.short_names_damaged,
                "watch": {
                    "namespace": id.namespace,
                    "labelSelector": id.label_selector,
                    "fieldSelector": id.field_selector,
                },
                "schemaVersion": c.meta.schema_version,
                "state": c.state,
                "lastResourceVersion": c.meta.last_rv,
                "lastSync": c.meta.last_sync.map(age::timestamp),
                "objects": c.meta.objects,
                "rawJsonBytes": c.meta.raw_bytes,
                "storedBytes": c.meta.stored_bytes,
                "compressionRatio": c.compression_ratio(),
                "journal": {
                    "entries": c.meta.journal_len,
                    "bytes": c.meta.journal_bytes,
                    "lastSeq": c.meta.journal_last_seq,
                    "first": span(&c.journal.first),
                    "last": span(&c.journal.last),
                },
                "dictionaryId": c.meta.dictionary_id,
                "dictionaries": c.meta.dictionaries,
            })
        })
        .collect();
    json!({
        "path": s.path,
        "bytesOnDisk": s.bytes_on_disk,
        "rawJsonBytes": s.raw_bytes(),
        "rawToDiskRatio": s.disk_ratio(),
        "collections": collections,
    })
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

/// `1.5 MiB (1572864 bytes)`: readable, and exact for scripts that parse.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit} ({n} bytes)")
}
