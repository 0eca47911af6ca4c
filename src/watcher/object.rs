//! What the watcher needs to know about an object as JSON: its key, its
//! resourceVersion, and the transform applied before it reaches the store.

use std::sync::Arc;

use serde_json::Value;

use crate::store::ObjectKey;

/// A hook run on every object before it is stored (and before it is diffed).
///
/// It must keep `metadata.name`, `metadata.namespace` and
/// `metadata.resourceVersion`: the relist diff compares resourceVersions.
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

/// The key of an object, `None` when it has no usable name (the store
/// would reject it; see [`ObjectKey::of`]).
pub fn key_of(obj: &Value) -> Option<ObjectKey> {
    ObjectKey::of(obj).ok()
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
            Some(ObjectKey {
                namespace: Some("ns".into()),
                name: "a".into()
            })
        );
        let node = json!({"metadata": {"name": "n1"}});
        assert_eq!(
            key_of(&node),
            Some(ObjectKey {
                namespace: None,
                name: "n1".into()
            })
        );
        assert_eq!(key_of(&json!({"metadata": {}})), None);
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
