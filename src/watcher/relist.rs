//! The relist diff: what changed between the store and a fresh, consistent
//! list of the server, so a relist emits only real differences (I4).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::object::{key_of, rv_of};
use crate::store::ObjectKey;

/// The difference between the store and a listed snapshot.
#[derive(Debug, Default)]
pub struct RelistDiff {
    /// Listed objects that are new or whose resourceVersion differs from
    /// the stored one.
    pub upserts: Vec<Value>,
    /// Stored keys that the snapshot no longer holds: deleted while we were
    /// away. Each appears once.
    pub deleted: Vec<ObjectKey>,
    /// Listed objects identical (by resourceVersion) to the stored ones.
    pub unchanged: usize,
}

/// Compares `stored` (key → resourceVersion, as [`crate::store::Collection::versions`]
/// returns it) with a complete `listed` snapshot.
///
/// Objects are compared by their own resourceVersion, not by content: the
/// server bumps it on every write, so equal versions mean equal objects.
/// A listed object without a name cannot be keyed and is skipped (the
/// caller's transform or the server is at fault; the store would reject it).
pub fn diff(stored: &HashMap<ObjectKey, String>, listed: Vec<Value>) -> RelistDiff {
    let mut out = RelistDiff::default();
    let mut seen = HashSet::with_capacity(listed.len());
    for obj in listed {
        let Some(key) = key_of(&obj) else {
            tracing::warn!("listed object without metadata.name skipped");
            continue;
        };
        let same = stored.get(&key).map(String::as_str) == rv_of(&obj) && rv_of(&obj).is_some();
        seen.insert(key);
        if same {
            out.unchanged += 1;
        } else {
            out.upserts.push(obj);
        }
    }
    let mut deleted: Vec<ObjectKey> = stored
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    deleted.sort();
    out.deleted = deleted;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ns: &str, name: &str, rv: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name, "resourceVersion": rv}})
    }
    fn key(ns: &str, name: &str) -> ObjectKey {
        ObjectKey {
            namespace: Some(ns.into()),
            name: name.into(),
        }
    }

    #[test]
    fn only_real_differences() {
        let stored: HashMap<_, _> = [
            (key("a", "same"), "1".to_string()),
            (key("a", "changed"), "2".to_string()),
            (key("a", "gone"), "3".to_string()),
        ]
        .into();
        let listed = vec![
            obj("a", "same", "1"),
            obj("a", "changed", "9"),
            obj("b", "new", "10"),
        ];
        let d = diff(&stored, listed);
        let names: Vec<_> = d.upserts.iter().map(|o| key_of(o).unwrap().name).collect();
        assert_eq!(names, vec!["changed", "new"]);
        assert_eq!(d.deleted, vec![key("a", "gone")]);
        assert_eq!(d.unchanged, 1);
    }

    #[test]
    fn empty_store_upserts_everything_and_empty_list_deletes_everything() {
        let d = diff(&HashMap::new(), vec![obj("a", "x", "1")]);
        assert_eq!((d.upserts.len(), d.deleted.len()), (1, 0));
        let stored: HashMap<_, _> = [(key("a", "x"), "1".to_string())].into();
        let d = diff(&stored, vec![]);
        assert_eq!((d.upserts.len(), d.deleted), (0, vec![key("a", "x")]));
    }

    #[test]
    fn object_without_rv_is_always_upserted_and_nameless_skipped() {
        let stored: HashMap<_, _> = [(key("a", "x"), "1".to_string())].into();
        let listed = vec![
            json!({"metadata": {"namespace": "a", "name": "x"}}),
            json!({"metadata": {}}),
        ];
        let d = diff(&stored, listed);
        assert_eq!((d.upserts.len(), d.deleted.len(), d.unchanged), (1, 0, 0));
    }

    proptest::proptest! {
        /// Applying the diff to the stored map yields exactly the listed map.
        #[test]
        fn diff_applied_to_store_equals_listing(
            stored in proptest::collection::hash_map(0u8..40, 0u8..4, 0..30),
            listed in proptest::collection::hash_map(0u8..40, 0u8..4, 0..30),
        ) {
            let key_n = |n: u8| key("ns", &format!("o{n}"));
            let stored_v: HashMap<_, _> = stored.iter().map(|(n, v)| (key_n(*n), v.to_string())).collect();
            let listed_v: Vec<Value> = listed.iter().map(|(n, v)| obj("ns", &format!("o{n}"), &v.to_string())).collect();
            let d = diff(&stored_v, listed_v);
            let mut result = stored_v.clone();
            for k in &d.deleted { proptest::prop_assert!(result.remove(k).is_some()); }
            for o in &d.upserts {
                let k = key_of(o).unwrap();
                proptest::prop_assert_ne!(stored_v.get(&k).map(String::as_str), rv_of(o));
                result.insert(k, rv_of(o).unwrap().to_string());
            }
            let expect: HashMap<_, _> = listed.iter().map(|(n, v)| (key_n(*n), v.to_string())).collect();
            proptest::prop_assert_eq!(result, expect);
        }
    }
}
