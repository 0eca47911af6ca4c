//! One stored object: its serialized JSON (shared, never re-serialized per
//! request) plus the few fields selectors read, extracted once at write time.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::representation::{Representation, META_API_VERSION};
use super::resources::ResourceDef;

/// An object as stored: immutable, shared by the current state, history and
/// in-flight responses through `Arc`.
#[derive(Debug)]
pub(crate) struct Stored {
    /// List-order key (`namespace/name` or `name`).
    pub key: String,
    /// Namespace, for namespaced resources.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.resourceVersion` as a number.
    pub rv: u64,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// Values of the resource's selectable fields.
    pub fields: Vec<(&'static str, String)>,
    /// The object's JSON without `kind`/`apiVersion`, as list items are
    /// served.
    pub body: Bytes,
    /// The object's `metadata` as JSON, for the metadata-only
    /// representations (serialized once, like the body).
    pub metadata: Bytes,
}

impl Stored {
    /// Builds the stored form of a complete object (metadata already set).
    pub fn new(res: &ResourceDef, mut value: Value) -> Arc<Stored> {
        if let Some(m) = value.as_object_mut() {
            m.remove("kind");
            m.remove("apiVersion");
        }
        let name = str_at(&value, "/metadata/name").unwrap_or_default();
        let namespace = if res.namespaced {
            str_at(&value, "/metadata/namespace")
        } else {
            None
        };
        let rv = str_at(&value, "/metadata/resourceVersion")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let labels = crate::selector::labels_of(&value);
        let fields = res
            .selectable_fields
            .iter()
            .filter_map(|f| res.field_value(&value, f).map(|v| (*f, v)))
            .collect();
        let body = Bytes::from(serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec()));
        let metadata = value
            .get("metadata")
            .and_then(|m| serde_json::to_vec(m).ok())
            .unwrap_or_else(|| b"{}".to_vec());
        Arc::new(Stored {
            key: res.key(namespace.as_deref(), &name),
            namespace,
            name,
            rv,
            labels,
            fields,
            body,
            metadata: Bytes::from(metadata),
        })
    }

    /// The object as list items are served (no `kind`/`apiVersion`).
    pub fn item(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The object with `kind` and `apiVersion`, as GET and watch serve it.
    pub fn full(&self, res: &ResourceDef) -> Value {
        let mut v = self.item();
        if let Some(m) = v.as_object_mut() {
            m.insert("kind".into(), Value::String(res.kind.into()));
            m.insert("apiVersion".into(), Value::String(res.api_version()));
        }
        v
    }

    /// Writes the object with `kind` and `apiVersion` into `out` without
    /// parsing it: the stored body is a JSON object, so the type fields are
    /// spliced in after its opening brace.
    pub fn write_full(&self, res: &ResourceDef, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"apiVersion\":\"");
        out.extend_from_slice(res.api_version().as_bytes());
        out.extend_from_slice(b"\",\"kind\":\"");
        out.extend_from_slice(res.kind.as_bytes());
        out.push(b'"');
        let rest = &self.body[1..];
        if rest != b"}" {
            out.push(b',');
        }
        out.extend_from_slice(rest);
    }

    /// Writes the object as `PartialObjectMetadata` (what
    /// `as=PartialObjectMetadata` asks for): type fields and `metadata` only.
    pub fn write_partial(&self, out: &mut Vec<u8>) {
        write_partial_metadata(&self.metadata, out);
    }

    /// Writes the object in `representation`.
    /// A Table is not written here: its cells are computed from the
    /// parsed object at a moment ([`super::table::write_object`]), so a
    /// Table request gets the full object.
    pub fn write_as(&self, res: &ResourceDef, representation: Representation, out: &mut Vec<u8>) {
        match representation {
            Representation::Full | Representation::Table(_) => self.write_full(res, out),
            Representation::PartialObjectMetadata | Representation::PartialObjectMetadataList => {
                self.write_partial(out)
            }
        }
    }

    /// Value of a field for field selectors.
    pub fn field(&self, path: &str) -> Option<String> {
        match path {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone().unwrap_or_default()),
            _ => self
                .fields
                .iter()
                .find(|(f, _)| *f == path)
                .map(|(_, v)| v.clone()),
        }
    }

    /// A copy carrying another resourceVersion (the form a DELETED event
    /// carries: last state, deletion's version).
    pub fn with_rv(&self, res: &ResourceDef, rv: u64) -> Arc<Stored> {
        let mut v = self.item();
        v["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        Stored::new(res, v)
    }
}

/// Writes a `PartialObjectMetadata` holding `metadata` (serialized JSON).
pub(crate) fn write_partial_metadata(metadata: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"");
    out.extend_from_slice(META_API_VERSION.as_bytes());
    out.extend_from_slice(b"\",\"metadata\":");
    out.extend_from_slice(metadata);
    out.push(b'}');
}

fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::{by_plural, RESOURCES};
    use serde_json::json;

    #[test]
    fn full_form_splices_type_fields() {
        let pods = &RESOURCES[by_plural("pods").unwrap()];
        let s = Stored::new(
            pods,
            json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "a", "namespace": "n", "resourceVersion": "7", "labels": {"app": "x"}}, "spec": {"nodeName": "n1"}}),
        );
        assert_eq!(s.key, "n/a");
        assert_eq!(s.rv, 7);
        assert!(s.item().get("kind").is_none());
        let mut out = Vec::new();
        s.write_full(pods, &mut out);
        let full: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(full, s.full(pods));
        assert_eq!(full["kind"], "Pod");
        assert_eq!(s.field("spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(s.field("metadata.namespace").as_deref(), Some("n"));
        assert_eq!(s.with_rv(pods, 9).rv, 9);
    }

    #[test]
    fn partial_form_is_metadata_only() {
        let pods = &RESOURCES[by_plural("pods").unwrap()];
        let s = Stored::new(
            pods,
            json!({"metadata": {"name": "a", "namespace": "n", "resourceVersion": "7", "uid": "u"}, "spec": {"nodeName": "n1"}}),
        );
        let mut out = Vec::new();
        s.write_as(pods, Representation::PartialObjectMetadata, &mut out);
        let partial: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            partial,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "a", "namespace": "n", "resourceVersion": "7", "uid": "u"}})
        );
        out.clear();
        s.write_as(pods, Representation::Full, &mut out);
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), s.full(pods));
    }
}
