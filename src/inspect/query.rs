//! Which objects a `list` asks for: a namespace (or all of them) and a label
//! selector, answered from the store's indexes where they help.

use serde_json::Value;

use super::Result;
use crate::store::Collection;

/// A list request.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only objects in this namespace; `None` for all namespaces.
    pub namespace: Option<String>,
}

/// Objects of `collection` matching `query`, ordered by namespace then name.
pub fn list(collection: &Collection, query: &Query) -> Result<Vec<Value>> {
    let mut objects = match &query.namespace {
        Some(ns) => collection.list_namespace(ns)?,
        None => collection.list()?,
    };
    objects.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    Ok(objects)
}

fn sort_key(object: &Value) -> (&str, &str) {
    let field = |f: &str| {
        object
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    (field("namespace"), field("name"))
}
