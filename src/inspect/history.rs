//! An object's journal, told as a list of changes with the fields each one
//! touched.

use serde_json::Value;

use crate::store::{EventKind, JournalEntry};

/// Fields whose change is implied by every write and only hides the
/// interesting ones.
const ALWAYS_CHANGING: &[&str] = &["metadata.resourceVersion", "metadata.managedFields"];

/// The dotted paths a JSON merge patch sets or removes. Arrays are replaced
/// whole by a merge patch, so a path stops at them.
pub fn changed_paths(patch: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(patch, &mut String::new(), &mut out);
    out.retain(|p| !ALWAYS_CHANGING.contains(&p.as_str()));
    out
}

fn walk(value: &Value, prefix: &mut String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let len = prefix.len();
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(k);
                walk(v, prefix, out);
                prefix.truncate(len);
            }
        }
        _ if !prefix.is_empty() => out.push(prefix.clone()),
        _ => {}
    }
}

/// What a journal entry changed, in words for a table: `created`, `deleted`,
/// or the changed fields.
pub fn describe(entry: &JournalEntry) -> String {
    match entry.kind {
        EventKind::Added => "created".to_string(),
        EventKind::Deleted => "deleted".to_string(),
        EventKind::Resync => "resync".to_string(),
        EventKind::Modified => {
            let paths = changed_paths(&entry.patch);
            if paths.is_empty() {
                "(no field changes)".to_string()
            } else {
                paths.join(", ")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_of_a_patch() {
        let patch = json!({
            "metadata": {"resourceVersion": "7", "labels": {"app": "web", "old": null}},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running"}
        });
        assert_eq!(
            changed_paths(&patch),
            [
                "metadata.labels.app",
                "metadata.labels.old",
                "spec.containers",
                "status.phase"
            ]
        );
        assert!(changed_paths(&json!({})).is_empty());
        assert!(changed_paths(&json!({"metadata": {"resourceVersion": "8"}})).is_empty());
    }
}
