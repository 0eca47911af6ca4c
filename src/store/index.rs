//! Secondary indexes: the built-in label index and user index functions.
//!
//! Entries are `i | index | value | key -> ()`, written in the same batch as
//! the object, so an index can never disagree with the objects it covers.
//! The namespace index is built in but costs nothing: object keys start with
//! `namespace/`, so a namespace is a prefix scan of the objects themselves.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::key;
use super::IndexFn;

/// Name of the built-in namespace index (values: namespace names).
pub const NAMESPACE_INDEX: &str = "namespace";
/// Name of the built-in label index (values: `key=value`).
pub const LABEL_INDEX: &str = "label";

/// The `key=value` pairs of an object's labels.
pub fn label_values(object: &Value) -> Vec<String> {
    label_pairs(object.pointer("/metadata/labels"))
}

/// The `key=value` pairs of a `metadata.labels` value, however it was read
/// (see [`ObjectHead`](super::head::ObjectHead)).
pub(crate) fn label_pairs(labels: Option<&Value>) -> Vec<String> {
    labels
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every stored index entry `object` needs under `key`.
pub(crate) fn entries(
    object: &Value,
    object_key: &str,
    indexers: &BTreeMap<String, IndexFn>,
) -> BTreeSet<Vec<u8>> {
    let mut out = user_entries(object, object_key, indexers);
    out.extend(label_entries(label_values(object), object_key));
    out
}

/// The label index entries of `pairs` (from [`label_pairs`]) under `key`.
pub(crate) fn label_entries(
    pairs: Vec<String>,
    object_key: &str,
) -> impl Iterator<Item = Vec<u8>> + '_ {
    pairs
        .into_iter()
        .map(move |pair| key::index_entry(LABEL_INDEX, &pair, object_key))
}

/// The entries of the user indexers alone.
pub(crate) fn user_entries(
    object: &Value,
    object_key: &str,
    indexers: &BTreeMap<String, IndexFn>,
) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for (name, f) in indexers {
        for v in f(object) {
            out.insert(key::index_entry(name, &v, object_key));
        }
    }
    out
}

/// Whether `name` may be used for a user index.
pub(crate) fn check_user_index_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("index name must not be empty".into());
    }
    if name == NAMESPACE_INDEX || name == LABEL_INDEX {
        return Err(format!("index name {name:?} is built in"));
    }
    if name.len() > u16::MAX as usize {
        return Err(format!(
            "index name is {} bytes, at most {} allowed",
            name.len(),
            u16::MAX
        ));
    }
    Ok(())
}
