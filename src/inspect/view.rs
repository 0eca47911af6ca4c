//! Objects as users see them: complete with `apiVersion` and `kind` (which
//! list responses leave out of their items), Secrets redacted unless asked.

use serde_json::Value;

use super::redact;
use crate::store::CollectionId;

/// `apiVersion` of objects in collection `id`.
pub fn api_version(id: &CollectionId) -> String {
    if id.group.is_empty() {
        id.version.clone()
    } else {
        format!("{}/{}", id.group, id.version)
    }
}

/// Prepare a stored object of collection `id` for display or export.
pub fn present(id: &CollectionId, show_secrets: bool, mut object: Value) -> Value {
    if let Value::Object(map) = &mut object {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(api_version(id)));
        map.entry("kind")
            .or_insert_with(|| Value::String(id.kind.clone()));
    }
    redact::redact_if(id, show_secrets, &mut object);
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_meta_is_filled_in_and_kept() {
        let id = CollectionId {
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            kind: "Deployment".into(),
            namespaced: true,
            namespace: None,
            label_selector: None,
            field_selector: None,
        };
        let o = present(&id, false, json!({"metadata": {"name": "a"}}));
        assert_eq!(
            (o["apiVersion"].as_str(), o["kind"].as_str()),
            (Some("apps/v1"), Some("Deployment"))
        );
        let o = present(
            &id,
            false,
            json!({"apiVersion": "apps/v2", "kind": "Deployment"}),
        );
        assert_eq!(o["apiVersion"], "apps/v2");
    }
}
