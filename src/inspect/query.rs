//! Which objects a `list` asks for: a namespace (or all of them) and a label
//! selector, answered from the store's indexes where they help.

use serde_json::Value;

use super::{Error, Result};
use crate::selector::{self, Expression, Selector, SelectorExt};
use crate::store::{self, Collection, ObjectKey};

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

    /// Whether the unreadable record `corrupt` names may be one this query
    /// asks for: in its namespace (its labels cannot be read).
    fn may_hold(&self, corrupt: &store::Error) -> bool {
        let (Some(ns), store::Error::Corrupt { key, .. }) = (&self.namespace, corrupt) else {
            return true;
        };
        key.parse::<ObjectKey>()
            .map_or(true, |k| k.namespace.as_deref() == Some(ns.as_str()))
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

/// What a read returned: the objects, and the records it could not read.
#[derive(Debug, Default)]
pub struct Listing {
    /// The readable objects that match.
    pub objects: Vec<Value>,
    /// One [`store::Error::Corrupt`] per unreadable record that may match
    /// (its labels cannot be read, so a label selector cannot rule it out).
    pub corrupt: Vec<store::Error>,
}

/// Objects of `collection` matching `query`, ordered by namespace then name.
///
/// A namespace reads only that namespace's objects; without one, an
/// equality term of the selector narrows the read to the label index. If a
/// record on the way is corrupt, the read is done again record by record
/// ([`Collection::scan`]) so that every readable object is still returned,
/// with each bad record in [`Listing::corrupt`].
pub fn list(collection: &Collection, query: &Query) -> Result<Listing> {
    let indexed = query
        .labels
        .clone()
        .into_iter()
        .flatten()
        .find_map(|e| match e {
            Expression::Equal(k, v) => Some(format!("{k}={v}")),
            _ => None,
        });
    let fast = match (&query.namespace, &indexed) {
        (Some(ns), _) => collection.list_namespace(ns),
        (None, Some(label)) => collection.by_index(LABEL_INDEX, label),
        (None, None) => collection.list(),
    };
    let mut listing = match fast {
        Ok(objects) => Listing {
            objects,
            corrupt: Vec::new(),
        },
        Err(store::Error::Corrupt { .. }) => salvage(collection, query)?,
        Err(e) => return Err(e.into()),
    };
    listing.objects.retain(|o| query.matches(o));
    listing
        .objects
        .sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    Ok(listing)
}

fn salvage(collection: &Collection, query: &Query) -> Result<Listing> {
    let mut listing = Listing::default();
    for item in collection.scan() {
        match item {
            Ok((_, object)) => listing.objects.push(object),
            Err(e @ store::Error::Corrupt { .. }) => {
                if query.may_hold(&e) {
                    listing.corrupt.push(e);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(listing)
}

/// Call `f` with every object of `collection`, in key order (namespace by
/// namespace, then by name), one at a time: an export of a large store
/// streams. A corrupt record does not stop it: `on_corrupt` gets its error
/// and the export goes on with the next record.
pub fn for_each<E: From<Error>>(
    collection: &Collection,
    mut f: impl FnMut(Value) -> Result<(), E>,
    mut on_corrupt: impl FnMut(store::Error) -> Result<(), E>,
) -> Result<(), E> {
    for item in collection.scan() {
        match item {
            Ok((_, object)) => f(object)?,
            Err(e @ store::Error::Corrupt { .. }) => on_corrupt(e)?,
            Err(e) => return Err(Error::from(e).into()),
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
