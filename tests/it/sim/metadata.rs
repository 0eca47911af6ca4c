//! The simulator's metadata-only representations, as kube-apiserver serves
//! them: `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`
//! on lists, `as=PartialObjectMetadata` on objects and watches
//! (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/response.go:
//! `asPartialObjectMetadata`, `asPartialObjectMetadataList`,
//! `watchEmbeddedEncoder`; negotiation in handlers/negotiation), and the
//! 406 for what cannot be served. Raw HTTP for the exact documents, then
//! kube's own metadata calls.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube_persist::sim::MetadataServing;
use serde_json::{json, Value};

use crate::support::sim::*;

const LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const ONE: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

/// A `PartialObjectMetadata` of `full`: its type fields, its metadata whole,
/// nothing else.
fn assert_partial_of(partial: &Value, full: &Value) {
    assert_eq!(partial["kind"], "PartialObjectMetadata", "{partial}");
    assert_eq!(partial["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(partial["metadata"], full["metadata"]);
    let fields: Vec<&String> = partial.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["apiVersion", "kind", "metadata"], "{partial}");
}

#[tokio::test]
async fn a_metadata_list_pages_like_the_full_one_with_metadata_only_items() {
    let sim = sim(|c| {
        c.pods = 30;
        c.namespaces = 3;
    })
    .await;
    let full = sim.objects("pods");
    let base = format!("{}/api/v1/pods?limit=10", sim.url());
    let (mut url, mut items, mut rvs) = (base.clone(), Vec::new(), Vec::new());
    loop {
        let (code, page) = get_as(&url, LIST).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["kind"], "PartialObjectMetadataList");
        assert_eq!(page["apiVersion"], "meta.k8s.io/v1");
        rvs.push(page["metadata"]["resourceVersion"].clone());
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["metadata"]["continue"].as_str() {
            Some(token) => url = format!("{base}&continue={token}"),
            None => break,
        }
    }
    assert_eq!(rvs.len(), 3, "pages of 10");
    assert!(rvs.iter().all(|rv| *rv == rvs[0]), "one snapshot: {rvs:?}");
    assert_eq!(items.len(), full.len());
    for (partial, full) in items.iter().zip(&full) {
        assert_partial_of(partial, full);
    }
    // An empty namespace: `items: []`, not absent.
    let (_, empty) = get_as(&format!("{}/api/v1/namespaces/none/pods", sim.url()), LIST).await;
    assert_eq!(empty["items"], json!([]));
    sim.shutdown().await;
}

#[tokio::test]
async fn get_and_writes_answer_metadata_only_when_asked() {
    let sim = sim(|c| c.pods = 3).await;
    let full = sim.objects("pods").remove(0);
    let (ns, name) = (
        full["metadata"]["namespace"].as_str().unwrap().to_string(),
        full["metadata"]["name"].as_str().unwrap().to_string(),
    );
    let url = format!("{}/api/v1/namespaces/{ns}/pods/{name}", sim.url());
    let (code, partial) = get_as(&url, ONE).await;
    assert_eq!(code, 200);
    assert_partial_of(&partial, &full);

    // kube's patch_metadata asks for the written object's metadata.
    let api: Api<Pod> = Api::namespaced(sim.client(), &ns);
    let patched = api
        .patch_metadata(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"seen": "yes"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["seen"], "yes");
    assert_eq!(
        sim.get("pods", Some(&ns), &name).unwrap()["metadata"]["labels"]["seen"],
        "yes"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_metadata_watch_converts_every_object_bookmarks_included() {
    let sim = sim(|c| c.pods = 2).await;
    let from = sim.current_rv();
    let created = sim.create("pods", pod("w", "a", &[])).unwrap();
    let mut changed = created.clone();
    changed["metadata"]["labels"] = json!({"x": "y"});
    let changed = sim.replace("pods", changed).unwrap();
    let deleted = sim.delete("pods", Some("w"), "a").unwrap();
    // The watch ends at its timeout, after the bookmark the cacher sends
    // 2 s before it. That bookmark must be newer than every event the watch
    // started with (cache_watcher.go `processInterval`), so the resource is
    // written to, in another namespace, once the watch is open.
    let url = format!(
        "{}/api/v1/namespaces/w/pods?watch=1&resourceVersion={from}&allowWatchBookmarks=true&timeoutSeconds=3",
        sim.url()
    );
    let (events, ()) = tokio::join!(
        async {
            let mut w = WatchStream::open_accepting(&url, ONE).await;
            assert_eq!(w.status, 200);
            w.rest().await
        },
        async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            sim.create("pods", pod("elsewhere", "b", &[])).unwrap();
        }
    );
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]);
    for (event, full) in events.iter().zip([&created, &changed, &deleted]) {
        assert_partial_of(&event["object"], full);
    }
    let bookmark = &events[3]["object"];
    assert_eq!(bookmark["kind"], "PartialObjectMetadata");
    assert_eq!(bookmark["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(rv_of(bookmark), sim.current_rv());

    // A list conversion cannot apply to a watch's objects: the server sends
    // them as they are.
    let mut w = WatchStream::open_accepting(&url, LIST).await;
    assert_eq!(w.status, 200);
    let events = w.rest().await;
    assert_eq!(events[0]["object"]["kind"], "Pod");
    sim.shutdown().await;
}

#[tokio::test]
async fn what_cannot_be_served_is_406_unless_another_clause_can_be() {
    let sim = sim(|c| c.pods = 1).await;
    let full = sim.objects("pods").remove(0);
    let list = format!("{}/api/v1/pods", sim.url());
    let one = format!(
        "{}/api/v1/namespaces/{}/pods/{}",
        sim.url(),
        full["metadata"]["namespace"].as_str().unwrap(),
        full["metadata"]["name"].as_str().unwrap()
    );
    for (url, accept, why) in [
        (&list, ONE, "an object's conversion on a list"),
        (&one, LIST, "a list's conversion on an object"),
        (
            &list,
            "application/json;as=Bogus;g=meta.k8s.io;v=v1",
            "an unknown conversion",
        ),
        (
            &list,
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v7",
            "an unknown version",
        ),
    ] {
        let (code, status) = get_as(url, accept).await;
        assert_eq!(code, 406, "{why}: {status}");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "NotAcceptable", "{why}");
        assert_eq!(status["code"], 406);
    }
    // kubectl's way: a conversion first, then plain JSON.
    let (code, page) = get_as(
        &list,
        "application/json;as=Bogus;g=meta.k8s.io;v=v1,application/json",
    )
    .await;
    assert_eq!((code, page["kind"].as_str()), (200, Some("PodList")));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_server_without_metadata_serving_refuses_or_ignores_the_request() {
    let refusing = sim(|c| {
        c.pods = 2;
        c.metadata = MetadataServing::Refused;
    })
    .await;
    let url = format!("{}/api/v1/pods", refusing.url());
    let (code, status) = get_as(&url, LIST).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (406, Some("NotAcceptable"))
    );
    let (code, page) = get_as(&url, &format!("{LIST},application/json")).await;
    assert_eq!((code, page["kind"].as_str()), (200, Some("PodList")));
    refusing.shutdown().await;

    let ignoring = sim(|c| {
        c.pods = 2;
        c.metadata = MetadataServing::Ignored;
    })
    .await;
    let (code, page) = get_as(&format!("{}/api/v1/pods", ignoring.url()), LIST).await;
    assert_eq!(code, 200);
    assert_eq!(page["kind"], "PodList", "full objects, its own list kind");
    assert!(page["items"][0].get("spec").is_some());
    ignoring.shutdown().await;
}

#[tokio::test]
async fn kube_metadata_calls_work_against_the_simulator() {
    let sim = sim(|c| {
        c.pods = 12;
        c.namespaces = 2;
    })
    .await;
    let api: Api<Pod> = Api::all(sim.client());
    let listed = api
        .list_metadata(&ListParams::default().limit(5))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 5);
    assert!(listed.metadata.continue_.is_some());
    let first = &listed.items[0];
    let ns = first.metadata.namespace.clone().unwrap();
    let name = first.metadata.name.clone().unwrap();
    let one: Api<Pod> = Api::namespaced(sim.client(), &ns);
    let got = one.get_metadata(&name).await.unwrap();
    assert_eq!(got.metadata.uid, first.metadata.uid);

    let rv = listed.metadata.resource_version.clone().unwrap();
    let mut events = api
        .watch_metadata(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .boxed();
    sim.delete("pods", Some(&ns), &name).unwrap();
    let event = tokio::time::timeout(HANG_GUARD, events.next())
        .await
        .expect("an event")
        .expect("a watch event")
        .unwrap();
    match event {
        WatchEvent::Deleted(gone) => assert_eq!(gone.metadata.name, Some(name)),
        other => panic!("expected DELETED, got {other:?}"),
    }
    sim.shutdown().await;
}
