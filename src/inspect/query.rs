//! Which objects a `list` asks for: a namespace (or all of them) and a label
//! selector, answered from the store's indexes where they help.

use serde_json::Value;

use super::{Error, Result};
use crate::selector::{self, Expression, Selector, SelectorExt};
use std::collections::BTreeSet;

use crate::store::Collection;

/// Name of the store's built-in label index, whose values are `key=value`.
const LABEL_INDEX: &str = "label";

/// A list request.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only objects in this namespace; `None` for all namespaces.
    pub namespace: Option<String>,
    /// Only objects whose labels match.
    pub labels: Option<Selector>,
}

impl Query {
    /// Restrict to objects matching `selector` (Kubernetes syntax: `a=b`,
    /// `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated).
    pub fn with_labels(mut self, selector: &str) -> Result<Query> {
        self.labels = Some(selector::parse_label_selector(selector)?);
        Ok(self)
    }

    fn matches(&self, object: &Value) -> bool {
        let in_namespace = match &self.namespace {
            Some(ns) => {
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    == Some(ns)
            }
            None => true,
        };
        in_namespace
            && self
                .labels
                .as_ref()
                .is_none_or(|s| s.matches(&selector::labels_of(object)))
    }
}

/// Objects of `collection` matching `query`, ordered by namespace then name.
///
/// A namespace reads only that namespace's objects; without one, an
/// equality term of the selector narrows the read to the label index.
pub fn list(collection: &Collection, query: &Query) -> Result<Vec<Value>> {
    let indexed = query
        .labels
        .clone()
        .into_iter()
        .flatten()
        .find_map(|e| match e {
            Expression::Equal(k, v) => Some(format!("{k}={v}")),
            _ => None,
        });
    let mut objects = match (&query.namespace, &indexed) {
        (Some(ns), _) => collection.list_namespace(ns)?,
        (None, Some(label)) => collection.by_index(LABEL_INDEX, label)?,
        (None, None) => collection.list()?,
    };
    objects.retain(|o| query.matches(o));
    objects.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    Ok(objects)
}

/// Call `f` with every object of `collection`, ordered by namespace then
/// name, holding one namespace in memory at a time: an export of a large
/// store streams rather than building every object first. (Namespace by
/// namespace keeps the store's fast prefix scans; a point read per object
/// would be slower.)
pub fn for_each<E: From<Error>>(
    collection: &Collection,
    mut f: impl FnMut(Value) -> Result<(), E>,
) -> Result<(), E> {
    let versions = collection.versions().map_err(Error::from)?;
    if versions.len() != collection.len() {
        // `versions()` leaves out records it cannot read, so that a relist
        // heals them; an export must not silently lose them. The full scan
        // fails naming the bad key.
        for object in collection.list().map_err(Error::from)? {
            f(object)?;
        }
        return Ok(());
    }
    let namespaces: BTreeSet<Option<String>> = versions.into_keys().map(|k| k.namespace).collect();
    for namespace in namespaces {
        let query = Query {
            namespace: namespace.clone(),
            labels: None,
        };
        let mut objects = list(collection, &query)?;
        if namespace.is_none() {
            // Cluster-scoped: `list` read everything; keep what has no namespace.
            objects.retain(|o| o.pointer("/metadata/namespace").is_none());
        }
        for object in objects {
            f(object)?;
        }
    }
    Ok(())
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
