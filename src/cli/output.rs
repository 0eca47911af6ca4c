//! Writing data to stdout: JSON the way kubectl indents it, YAML documents,
//! JSON lines. Only requested data goes to stdout; everything else is logged
//! to stderr.

use std::io::{self, BufWriter, StdoutLock, Write};

use serde::Serialize;
use serde_json::Value;

/// Buffered stdout; flush it before returning.
pub fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::new(io::stdout().lock())
}

/// Pretty JSON, four-space indented like kubectl, with a final newline.
pub fn json(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, formatter);
    value.serialize(&mut ser)?;
    writeln!(out)?;
    Ok(())
}

/// One compact JSON value on its own line.
pub fn json_line(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// One YAML document (no `---` header).
pub fn yaml(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    out.write_all(serde_yaml::to_string(value)?.as_bytes())?;
    Ok(())
}

/// A list of objects the way `kubectl get -o json` wraps them.
pub fn list_object(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}
