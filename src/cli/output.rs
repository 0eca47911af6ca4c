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

// serde_json's errors hide a failed write from `anyhow::Error::chain` (their
// `source()` skips the io::Error itself); turned back into the io::Error, a
// reader that went away (`| head`) is recognised and ends the command quietly.

/// Pretty JSON, four-space indented like kubectl, with a final newline.
pub fn json(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, formatter);
    value.serialize(&mut ser).map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// One compact JSON value on its own line.
pub fn json_line(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// One YAML document (no `---` header), readable with the same meaning by
/// YAML 1.2 readers and by the YAML 1.1 ones kubectl (go-yaml v2) and PyYAML
/// use: a string that 1.1 would resolve to something else (`yes`, `on`, `y`,
/// `~`, `=`, `0x1F`, `1:20`, `2026-01-01`, an RFC 3339 time...) is
/// double-quoted, key or value, the way kubectl prints it. serde_yaml 0.9
/// quotes only for YAML 1.2 and leaves those bare. Long strings stay on one
/// line (kubectl does not fold them either); multi-line ones become `|`
/// blocks.
pub fn yaml(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    let options = serde_saphyr::ser_options! { folded_wrap_chars: usize::MAX };
    let text = serde_saphyr::to_string_with_options(value, options)?;
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
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
