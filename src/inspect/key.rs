//! Object keys as users type them: `NAMESPACE/NAME` for namespaced
//! resources, `NAME` (or `/NAME`) for cluster-scoped ones.

use super::{Error, Result};
use crate::store::{CollectionId, ObjectKey};

/// The longest namespace name: a DNS-1123 label.
const MAX_NAMESPACE_LEN: usize = 63;

/// What a namespace name must be, as errors say it.
const NAMESPACE_RULE: &str = "a namespace is at most 63 lowercase letters, digits and '-', \
                              starting and ending with a letter or digit";

/// Check that `ns` can name a namespace: a DNS-1123 label, as the API server
/// requires (lowercase letters, digits and '-', starting and ending with a
/// letter or digit, at most 63 characters). No stored object can be in any
/// other, so a query for one is a typing mistake, not an empty answer.
pub fn check_namespace(ns: &str) -> Result<()> {
    if is_namespace(ns) {
        Ok(())
    } else {
        Err(Error::BadNamespace {
            given: ns.to_string(),
            reason: NAMESPACE_RULE.to_string(),
        })
    }
}

fn is_namespace(ns: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    ns.len() <= MAX_NAMESPACE_LEN
        && ns.chars().all(|c| alnum(c) || c == '-')
        && ns.starts_with(alnum)
        && ns.ends_with(alnum)
}

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
        (true, Some(ns)) if !ns.is_empty() => {
            if !is_namespace(ns) {
                return Err(bad(&format!(
                    "namespace {ns:?} is invalid: {NAMESPACE_RULE}"
                )));
            }
            Ok(ObjectKey {
                namespace: Some(ns.to_string()),
                name: name.to_string(),
            })
        }
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

    #[test]
    fn namespaces_are_dns_1123_labels() {
        let longest = "a".repeat(63);
        for good in [
            "default",
            "ns-000",
            "a",
            "0",
            "kube-system",
            longest.as_str(),
        ] {
            assert!(check_namespace(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(64);
        for bad in [
            "",
            "Bad_NS",
            "a/b",
            "-a",
            "a-",
            "a.b",
            "Default",
            too_long.as_str(),
        ] {
            let err = check_namespace(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid namespace {bad:?}: ")),
                "{err}"
            );
        }
        let err = parse(&id(true), "Bad_NS/web-0").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid object key \"Bad_NS/web-0\": namespace \"Bad_NS\" is invalid: a namespace \
             is at most 63 lowercase letters, digits and '-', starting and ending with a letter \
             or digit"
        );
    }
}
