//! What the watcher needs to know about an object as JSON: its key, its
//! resourceVersion, and the transform applied before it is handed on.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// A hook run on every object the watcher hands on (watch events, listed
/// and fetched objects).
///
/// It must keep `metadata.name`, `metadata.namespace` and
/// `metadata.resourceVersion`: relists compare resourceVersions.
pub type Transform = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// The default transform: drop `metadata.managedFields`, which is often the
/// largest part of an object and which no cache reader needs.
pub fn strip_managed_fields() -> Transform {
    Arc::new(|obj: &mut Value| {
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    })
}

/// Which object: its namespace (none when cluster-scoped) and name, as the
/// API server keys it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// A reference from a namespace (empty or absent: cluster-scoped) and a
    /// name; `None` when the name is empty.
    pub fn new(namespace: Option<&str>, name: &str) -> Option<ObjectRef> {
        if name.is_empty() {
            return None;
        }
        Some(ObjectRef {
            namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_string),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.namespace.as_deref().unwrap_or_default(),
            self.name
        )
    }
}

/// The reference of an object, `None` when it has no name.
pub fn key_of(obj: &Value) -> Option<ObjectRef> {
    let meta = obj.get("metadata")?;
    ObjectRef::new(
        meta.get("namespace").and_then(Value::as_str),
        meta.get("name").and_then(Value::as_str)?,
    )
}

/// The object's `metadata.resourceVersion`, if any.
pub fn rv_of(obj: &Value) -> Option<&str> {
    obj.get("metadata")?.get("resourceVersion")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_of_namespaced_and_cluster_scoped() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert_eq!(
            key_of(&pod),
            Some(ObjectRef {
                namespace: Some("ns".into()),
                name: "a".into()
            })
        );
        assert_eq!(key_of(&pod).unwrap().to_string(), "ns/a");
        let node = json!({"metadata": {"name": "n1", "namespace": ""}});
        assert_eq!(
            key_of(&node),
            Some(ObjectRef {
                namespace: None,
                name: "n1".into()
            })
        );
        assert_eq!(key_of(&node).unwrap().to_string(), "/n1");
        assert_eq!(key_of(&json!({"metadata": {}})), None);
        assert_eq!(key_of(&json!({"metadata": {"name": ""}})), None);
    }

    #[test]
    fn default_transform_strips_managed_fields_only() {
        let mut obj = json!({"metadata": {"name": "a", "resourceVersion": "7", "managedFields": [{"manager": "x"}]}, "spec": {}});
        strip_managed_fields()(&mut obj);
        assert_eq!(
            obj,
            json!({"metadata": {"name": "a", "resourceVersion": "7"}, "spec": {}})
        );
        assert_eq!(rv_of(&obj), Some("7"));
    }
}
