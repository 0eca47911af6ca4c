//! Typed reads: every read method as `K`, `DynamicObject` with an
//! `ApiResource`, and the errors naming what could not be read.

use std::sync::Arc;

use crate::support::informer::{pods, sim, versions};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use kube_persist::informer::ReadError;
use kube_persist::store::ObjectKey;
use serde_json::{json, Value};

fn keys<K: kube::Resource>(objects: &[Arc<K>]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o.meta().namespace.clone().unwrap_or_default(),
                o.meta().name.clone().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_gives_the_stored_objects_as_k() {
    let sim = sim(120, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let informer = pods(&sim, &dir.path().join("s"))
        .indexer(
            "node",
            Arc::new(|o: &Value| {
                o.pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .into_iter()
                    .collect()
            }),
        )
        .start()
        .await
        .unwrap();
    informer.wait_until_synced().await.unwrap();
    let untyped = informer.list().unwrap();
    let reader = informer.typed::<Pod>().unwrap();

    // list: the same objects, in the same order, as the untyped read.
    let all = reader.list().unwrap();
    assert_eq!(all.len(), 120);
    let expected: Vec<Pod> = untyped
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    assert_eq!(
        all.iter().map(|p| (**p).clone()).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(reader.len(), 120);

    // get, twice (the second from the cache), and by ObjectRef.
    let first = &all[7];
    let key = ObjectKey::namespaced(first.namespace().unwrap(), first.name_any());
    let got = reader.get(&key).unwrap().unwrap();
    assert_eq!(*got, **first);
    let again = reader.get(&key).unwrap().unwrap();
    assert!(
        Arc::ptr_eq(&got, &again),
        "an unchanged object comes from the cache"
    );
    let by_ref = reader
        .get_ref(&ObjectRef::new(&first.name_any()).within(&first.namespace().unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(*by_ref, **first);
    assert!(reader
        .get(&ObjectKey::namespaced("ns-000", "nope"))
        .unwrap()
        .is_none());

    // A change is seen at once, not the cached version.
    let mut changed = sim
        .get("pods", first.namespace().as_deref(), &first.name_any())
        .unwrap();
    changed["metadata"]["labels"]["touched"] = json!("yes");
    let stored = sim.replace("pods", changed).unwrap();
    let rv = stored["metadata"]["resourceVersion"].as_str().unwrap();
    informer.wait_for_rv(rv).await.unwrap();
    let fresh = reader.get(&key).unwrap().unwrap();
    assert_eq!(
        fresh.labels().get("touched").map(String::as_str),
        Some("yes")
    );
    assert_eq!(fresh.resource_version().as_deref(), Some(rv));

    // list_namespace, by_index (built-in and registered), empty namespace.
    let ns = first.namespace().unwrap();
    let in_ns = reader.list_namespace(&ns).unwrap();
    let expected_ns: Vec<String> = versions(&informer.list_namespace(&ns).unwrap())
        .into_keys()
        .collect();
    assert_eq!(keys(&in_ns), expected_ns);
    assert!(reader
        .list_namespace("no-such-namespace")
        .unwrap()
        .is_empty());
    let app = first.labels()["app"].clone();
    let labelled = reader.by_index("label", &format!("app={app}")).unwrap();
    let expected_label: Vec<String> =
        versions(&informer.by_index("label", &format!("app={app}")).unwrap())
            .into_keys()
            .collect();
    assert_eq!(keys(&labelled), expected_label);
    assert!(!labelled.is_empty());
    let node = first
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap();
    let on_node = reader.by_index("node", &node).unwrap();
    assert!(on_node
        .iter()
        .all(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(node.as_str())));
    assert_eq!(
        on_node.len(),
        informer.by_index("node", &node).unwrap().len()
    );
    assert!(matches!(
        reader.by_index("nope", "x"),
        Err(ReadError::Store(
            kube_persist::store::Error::UnknownIndex { .. }
        ))
    ));

    // A reader without a cache reads the same.
    let uncached = informer.typed::<Pod>().unwrap().with_cache_bytes(0);
    let a = uncached.get(&key).unwrap().unwrap();
    let b = uncached.get(&key).unwrap().unwrap();
    assert_eq!(a, b);
    assert!(!Arc::ptr_eq(&a, &b), "no cache: decoded each time");

    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_objects_get_their_type_from_the_api_resource() {
    let sim = sim(20, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let informer = pods(&sim, &dir.path().join("s")).start().await.unwrap();
    informer.wait_until_synced().await.unwrap();
    let api = ApiResource::erase::<Pod>(&());
    let reader = informer.dynamic(&api).unwrap();
    let all: Vec<Arc<DynamicObject>> = reader.list().unwrap();
    assert_eq!(all.len(), 20);
    for obj in &all {
        let types = obj.types.as_ref().unwrap();
        assert_eq!(
            (types.api_version.as_str(), types.kind.as_str()),
            ("v1", "Pod")
        );
        assert!(
            obj.data["spec"]["containers"].is_array(),
            "the body is kept"
        );
    }
    let key = ObjectKey::namespaced(all[3].namespace().unwrap(), all[3].name_any());
    assert_eq!(reader.get(&key).unwrap().unwrap().metadata, all[3].metadata);
    let mut other = api.clone();
    other.kind = "Deployment".into();
    other.group = "apps".into();
    match informer.dynamic(&other) {
        Err(ReadError::WrongResource { holds, wanted }) => {
            assert_eq!(holds, "v1 Pod");
            assert_eq!(wanted, "apps/v1 Deployment");
        }
        other => panic!("expected WrongResource, got {:?}", other.map(|_| ())),
    }
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_that_is_not_a_k_is_a_typed_error_naming_its_key() {
    let sim = sim(10, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let bad = sim.objects("pods")[4]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let bad_name = bad.clone();
    // The transform stores one pod with a spec that is no PodSpec.
    let informer = pods(&sim, &dir.path().join("s"))
        .transform(move |o| {
            if o["metadata"]["name"] == bad_name.as_str() {
                o["spec"] = json!("not a pod spec");
            }
        })
        .start()
        .await
        .unwrap();
    informer.wait_until_synced().await.unwrap();
    let reader = informer.typed::<Pod>().unwrap();
    let ns = sim.objects("pods")[4]["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let key = ObjectKey::namespaced(&ns, &bad);
    for err in [reader.get(&key).unwrap_err(), reader.list().unwrap_err()] {
        match &err {
            ReadError::Decode { key: k, kind, .. } => {
                assert_eq!(k, &key);
                assert_eq!(kind, "Pod");
                assert!(err.to_string().contains(&format!("{ns}/{bad}")), "{err}");
            }
            other => panic!("expected Decode, got {other:?}"),
        }
    }
    let other = &sim.objects("pods")[3]["metadata"];
    let good = ObjectKey::namespaced(
        other["namespace"].as_str().unwrap(),
        other["name"].as_str().unwrap(),
    );
    assert!(
        reader.get(&good).unwrap().is_some(),
        "the others still read"
    );
    match informer.typed::<ConfigMap>() {
        Err(ReadError::WrongResource { holds, wanted }) => {
            assert_eq!(
                (holds.as_str(), wanted.as_str()),
                ("v1 Pod", "v1 ConfigMap")
            )
        }
        other => panic!("expected WrongResource, got {:?}", other.map(|_| ())),
    }
    informer.shutdown().await;
    sim.shutdown().await;
}
