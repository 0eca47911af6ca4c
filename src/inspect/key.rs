//! Object keys as users type them: `NAMESPACE/NAME` for namespaced
//! resources, `NAME` (or `/NAME`) for cluster-scoped ones.

use super::{Error, Result};
use crate::store::{CollectionId, ObjectKey};

/// Parse `given` as a key of an object of collection `id`.
pub fn parse(id: &CollectionId, given: &str) -> Result<ObjectKey> {
    let bad = |reason: &str| Error::BadKey {
        given: given.to_string(),
        reason: reason.to_string(),
    };
    let (namespace, name) = match given.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, given),
    };
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    if name.contains('/') {
        return Err(bad("a key has at most one '/'"));
    }
    match (id.namespaced, namespace) {
        (true, Some(ns)) if !ns.is_empty() => Ok(ObjectKey {
            namespace: Some(ns.to_string()),
            name: name.to_string(),
        }),
        (true, _) => Err(bad(&format!(
            "{} are namespaced; expected NAMESPACE/NAME",
            id.resource
        ))),
        (false, None | Some("")) => Ok(ObjectKey {
            namespace: None,
            name: name.to_string(),
        }),
        (false, Some(_)) => Err(bad(&format!(
            "{} are cluster-scoped; expected NAME",
            id.resource
        ))),
    }
}

/// The key as users type it back: `namespace/name` or `name`.
pub fn display(key: &ObjectKey) -> String {
    match &key.namespace {
        Some(ns) => format!("{ns}/{}", key.name),
        None => key.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(namespaced: bool) -> CollectionId {
        CollectionId {
            group: String::new(),
            version: "v1".into(),
            resource: if namespaced { "pods" } else { "nodes" }.into(),
            kind: if namespaced { "Pod" } else { "Node" }.into(),
            namespaced,
            namespace: None,
            label_selector: None,
            field_selector: None,
        }
    }

    #[test]
    fn namespaced_keys() {
        let k = parse(&id(true), "default/web-0").unwrap();
        assert_eq!(k.namespace.as_deref(), Some("default"));
        assert_eq!(k.name, "web-0");
        assert_eq!(display(&k), "default/web-0");
        for bad in ["web-0", "/web-0", "default/", "a/b/c", ""] {
            let err = parse(&id(true), bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn cluster_scoped_keys() {
        for given in ["node-1", "/node-1"] {
            let k = parse(&id(false), given).unwrap();
            assert_eq!((k.namespace, k.name.as_str()), (None, "node-1"));
        }
        let err = parse(&id(false), "default/node-1").unwrap_err().to_string();
        assert!(err.contains("cluster-scoped"), "{err}");
    }
}
