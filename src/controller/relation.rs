//! Related resources: how a change of another collection's object maps to
//! the keys of the controller's objects.

use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::informer::Shared;
use crate::store::ObjectKey;

/// An object of a related collection → the keys it relates to.
pub(crate) type MapFn = Arc<dyn Fn(&Value) -> Vec<ObjectKey> + Send + Sync>;

/// One related collection.
pub(crate) struct Relation {
    /// `owns` or `watches`: with the controller's name, the name of its
    /// durable position in the related collection.
    pub kind: &'static str,
    pub shared: Arc<Shared>,
    pub map: MapFn,
}

/// The owners an object's `ownerReferences` name, of the given
/// `apiVersion` and `kind`; in the object's namespace when the owners are
/// namespaced.
pub(crate) fn owners(api_version: String, kind: String, namespaced: bool) -> MapFn {
    Arc::new(move |obj: &Value| {
        let namespace = namespaced
            .then(|| obj.pointer("/metadata/namespace").and_then(Value::as_str))
            .flatten();
        let Some(refs) = obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
        else {
            return Vec::new();
        };
        refs.iter()
            .filter(|r| r["kind"] == kind.as_str() && r["apiVersion"] == api_version.as_str())
            .filter_map(|r| r["name"].as_str())
            .map(|name| ObjectKey {
                namespace: namespace.map(str::to_string),
                name: name.to_string(),
            })
            .collect()
    })
}

/// The keys `mapper` names for an object decoded as `Other`; an object
/// that does not decode relates to nothing (and is logged).
pub(crate) fn mapped<K, Other, I>(mapper: impl Fn(Other) -> I + Send + Sync + 'static) -> MapFn
where
    K: Resource,
    K::DynamicType: Eq + std::hash::Hash + Clone,
    Other: DeserializeOwned,
    I: IntoIterator<Item = ObjectRef<K>>,
{
    Arc::new(move |obj: &Value| match Other::deserialize(obj) {
        Ok(other) => mapper(other)
            .into_iter()
            .map(|r| ObjectKey::from(&r))
            .collect(),
        Err(err) => {
            tracing::warn!("a related object does not decode: {err}");
            Vec::new()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    fn child(ns: &str, refs: Value) -> Value {
        json!({"metadata": {"name": "c", "namespace": ns, "ownerReferences": refs}})
    }

    #[test]
    fn owner_references_of_the_kind_map_to_keys_in_the_childs_namespace() {
        let map = owners("v1".into(), "Pod".into(), true);
        let c = child(
            "ns",
            json!([
                {"apiVersion": "v1", "kind": "Pod", "name": "p1", "uid": "1"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "2"},
                {"apiVersion": "v1", "kind": "Pod", "name": "p2", "uid": "3"},
            ]),
        );
        assert_eq!(
            map(&c),
            [
                ObjectKey::namespaced("ns", "p1"),
                ObjectKey::namespaced("ns", "p2")
            ]
        );
        assert!(map(&json!({"metadata": {"name": "orphan"}})).is_empty());
        let nodes = owners("v1".into(), "Node".into(), false);
        assert_eq!(
            nodes(&child(
                "ns",
                json!([{"apiVersion": "v1", "kind": "Node", "name": "n1"}])
            )),
            [ObjectKey::cluster("n1")]
        );
    }

    #[test]
    fn a_mapper_sees_the_decoded_object_and_bad_objects_map_to_nothing() {
        let map = mapped::<k8s_openapi::api::core::v1::Pod, ConfigMap, _>(|cm: ConfigMap| {
            cm.data
                .unwrap_or_default()
                .get("pod")
                .map(|p| ObjectRef::new(p).within("ns"))
        });
        let cm = json!({"metadata": {"name": "c", "namespace": "ns"}, "data": {"pod": "web"}});
        assert_eq!(map(&cm), [ObjectKey::namespaced("ns", "web")]);
        assert!(map(&json!({"metadata": {"name": 5}})).is_empty());
    }
}
