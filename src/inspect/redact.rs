//! Secret redaction (invariant I10): a store copied off an edge box must not
//! leak credentials through an innocent `list -o yaml` pasted into a ticket.
//!
//! Every value under a Secret's `data` and `stringData` becomes
//! `<redacted N bytes>` (N the decoded size), and so does the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation, which
//! carries a full copy of the Secret. The same applies to journal patches of
//! a Secret, since they hold changed values.

use serde_json::Value;

use crate::store::CollectionId;

pub use crate::store::journal::LAST_APPLIED;

/// Whether objects of this collection carry secret values.
pub fn is_secret(id: &CollectionId) -> bool {
    id.holds_secrets()
}

/// Redact the secret values of `object` (a whole Secret, or a merge patch
/// of one) in place. Removals in a patch (`null`) stay visible as removals.
pub fn redact(object: &mut Value) {
    for field in ["data", "stringData"] {
        if let Some(Value::Object(values)) = object.get_mut(field) {
            for (_, value) in values.iter_mut() {
                let bytes = match &*value {
                    // A journal entry's marker of a changed value holds none.
                    Value::String(s) if s == crate::store::journal::CHANGED => continue,
                    Value::String(s) if field == "data" => base64_decoded_len(s),
                    Value::String(s) => s.len(),
                    Value::Null => continue,
                    other => other.to_string().len(),
                };
                *value = Value::String(placeholder(bytes));
            }
        }
    }
    if let Some(Value::String(applied)) = object
        .pointer_mut("/metadata/annotations")
        .and_then(|a| a.get_mut(LAST_APPLIED))
    {
        *applied = placeholder(applied.len());
    }
}

/// Redact `object` if `id` is a Secret collection and secrets are not to be
/// shown; leave it untouched otherwise.
pub fn redact_if(id: &CollectionId, show_secrets: bool, object: &mut Value) {
    if is_secret(id) && !show_secrets {
        redact(object);
    }
}

fn placeholder(bytes: usize) -> String {
    format!("<redacted {bytes} bytes>")
}

/// Size of the data a base64 string encodes, without decoding it.
fn base64_decoded_len(s: &str) -> usize {
    let s = s.trim_end();
    let padding = s.bytes().rev().take_while(|&b| b == b'=').count().min(2);
    let len = s.len();
    (len / 4) * 3
        + match len % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        }
        - if len.is_multiple_of(4) { padding } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decoded_lengths() {
        for (encoded, n) in [
            ("", 0),
            ("YQ==", 1),
            ("YWI=", 2),
            ("YWJj", 3),
            ("YWJjZA", 4),
            ("cGFzc3dvcmQ=", 8),
        ] {
            assert_eq!(base64_decoded_len(encoded), n, "{encoded}");
        }
    }

    #[test]
    fn secret_values_and_last_applied_are_hidden() {
        let mut s = json!({
            "kind": "Secret",
            "metadata": {"name": "db", "annotations": {LAST_APPLIED: "{\"data\":{\"password\":\"cGFzc3dvcmQ=\"}}", "team": "a"}},
            "data": {"password": "cGFzc3dvcmQ=", "user": "YWRtaW4="},
            "stringData": {"token": "abc"},
            "type": "Opaque"
        });
        redact(&mut s);
        assert_eq!(
            s["data"],
            json!({"password": "<redacted 8 bytes>", "user": "<redacted 5 bytes>"})
        );
        assert_eq!(s["stringData"], json!({"token": "<redacted 3 bytes>"}));
        assert_eq!(
            s["metadata"]["annotations"][LAST_APPLIED],
            "<redacted 36 bytes>"
        );
        assert_eq!(s["metadata"]["annotations"]["team"], "a");
        assert!(!s.to_string().contains("cGFzc3dvcmQ"));
    }

    #[test]
    fn patch_removals_stay_visible() {
        let mut patch = json!({"data": {"old": null, "new": "YQ=="}});
        redact(&mut patch);
        assert_eq!(
            patch,
            json!({"data": {"old": null, "new": "<redacted 1 bytes>"}})
        );
    }
}
