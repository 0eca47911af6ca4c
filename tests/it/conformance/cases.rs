//! The cases, numbered as in LISTWATCH.md and `sim::conformance`. Each
//! `both!` case is a module holding one `sim` and one `kube_apiserver`
//! test that run the same body.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::conformance::{Server, Target};
use crate::support::sim::{key_of, keys, rv_of};
use http::Method;
use serde_json::{json, Value};

/// Declares a case run on both servers. A known difference is not a
/// reason to skip the real server: the case checks each server's own
/// answer (`Target::server`).
macro_rules! both {
    ($(#[doc = $doc:literal])* $name:ident, |$t:ident| $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            use super::*;

            async fn case($t: &Target) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sim() {
                let t = Target::start(Server::Sim).await.expect("the simulator");
                case(&t).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kube_apiserver() {
                let Some(t) = Target::start(Server::KubeApiServer).await else {
                    return;
                };
                case(&t).await;
            }
        }
    };
}

/// Every page of a paginated list of `path` with `limit`, following
/// continue tokens: the pages as answered.
async fn pages(t: &Target, path: &str, limit: usize) -> Vec<Value> {
    let base = format!("{path}?limit={limit}");
    let mut url = base.clone();
    let mut out = Vec::new();
    loop {
        let page = t.get_ok(&url).await;
        let next = page["metadata"]["continue"].as_str().map(str::to_owned);
        out.push(page);
        match next {
            Some(tok) => url = format!("{base}&continue={tok}"),
            None => return out,
        }
    }
}

/// (type, key) of each event.
fn seen(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), key_of(&e["object"])))
        .collect()
}

fn pair(kind: &str, key: &str) -> (String, String) {
    (kind.to_owned(), key.to_owned())
}

both!(
    /// A paginated list is one snapshot, in key order, each object once,
    /// with `remainingItemCount` counting down.
    case01_paginated_list_is_one_snapshot_in_key_order,
    |t| {
        let ns = t.namespace("c01").await;
        t.create_pods(&ns, 120).await;
        let pages = pages(t, &format!("/api/v1/namespaces/{ns}/pods"), 25).await;
        assert_eq!(pages.len(), 5);
        let mut rvs = BTreeSet::new();
        let mut all = Vec::new();
        for page in &pages {
            assert_eq!(page["kind"], "PodList");
            assert_eq!(page["apiVersion"], "v1");
            for item in page["items"].as_array().unwrap() {
                assert!(item.get("kind").is_none(), "list items carry no kind");
            }
            rvs.insert(rv_of(page));
            all.extend(keys(page));
            match page["metadata"]["remainingItemCount"].as_u64() {
                Some(left) => assert_eq!(left as usize, 120 - all.len()),
                None => assert_eq!(all.len(), 120, "only the last page has no count"),
            }
        }
        assert_eq!(rvs.len(), 1, "one snapshot RV on every page: {rvs:?}");
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(all, sorted, "key order, each object once");
        assert_eq!(all.len(), 120);
        let whole = t.get_ok(&format!("/api/v1/namespaces/{ns}/pods")).await;
        assert_eq!(keys(&whole), all);
    }
);

both!(
    /// Writes made between the pages of a list do not show up in it.
    case02_writes_between_pages_do_not_show_up,
    |t| {
        let ns = t.namespace("c02").await;
        for i in 0..6 {
            t.create_pod(&ns, &format!("p{i}"), &[]).await;
        }
        let base = format!("/api/v1/namespaces/{ns}/pods?limit=2");
        let first = t.get_ok(&base).await;
        assert_eq!(keys(&first), [format!("{ns}/p0"), format!("{ns}/p1")]);
        let snapshot_rv = rv_of(&first);
        t.create_pod(&ns, "p35", &[]).await;
        t.label_pod(&ns, "p4", &[("changed", Some("yes"))]).await;
        t.delete_pod(&ns, "p5").await;
        let mut rest = Vec::new();
        let mut tok = first["metadata"]["continue"].as_str().unwrap().to_owned();
        loop {
            let page = t.get_ok(&format!("{base}&continue={tok}")).await;
            assert_eq!(rv_of(&page), snapshot_rv);
            for item in page["items"].as_array().unwrap() {
                assert!(item["metadata"]["labels"].get("changed").is_none());
            }
            rest.extend(keys(&page));
            match page["metadata"]["continue"].as_str() {
                Some(next) => tok = next.to_owned(),
                None => break,
            }
        }
        let names = |ns: &str, n: &[&str]| -> Vec<String> {
            n.iter().map(|n| format!("{ns}/{n}")).collect()
        };
        assert_eq!(rest, names(&ns, &["p2", "p3", "p4", "p5"]));
        let now = t.get_ok(&format!("/api/v1/namespaces/{ns}/pods")).await;
        assert_eq!(keys(&now), names(&ns, &["p0", "p1", "p2", "p3", "p35", "p4"]));
    }
);

both!(
    /// An empty namespace lists `"items":[]` (not null, not absent) at a
    /// version at least as new as every write before it.
    case04_empty_namespace_lists_empty_items,
    |t| {
        let ns = t.namespace("c04").await;
        let other = t.namespace("c04-other").await;
        let written = rv_of(&t.create_pod(&other, "p", &[]).await);
        let raw = t.get_text(&format!("/api/v1/namespaces/{ns}/pods")).await;
        assert!(raw.contains("\"items\":[]"), "{raw}");
        let v: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(v["items"], json!([]));
        assert!(rv_of(&v) >= written, "{v}");
    }
);

both!(
    /// Label and field selectors filter a list and a watch alike; a watch
    /// sees an object leave the selection as DELETED and enter it as ADDED.
    case05_label_and_field_selectors_filter_list_and_watch_alike,
    |t| {
        let x = t.namespace("c05x").await;
        let y = t.namespace("c05y").await;
        for (ns, name, app, tier) in [
            (&x, "a-web", "a", "web"),
            (&x, "a-db", "a", "db"),
            (&x, "b-web", "b", "web"),
            (&y, "a-web", "a", "web"),
        ] {
            t.create_pod(ns, name, &[("app", app), ("tier", tier)]).await;
        }
        t.create_pod(&x, "a-none", &[("app", "a")]).await;
        let sel =
            format!("labelSelector=app%3Da%2Ctier%21%3Ddb&fieldSelector=metadata.namespace%3D{x}");
        let list = t.get_ok(&format!("/api/v1/pods?{sel}")).await;
        assert_eq!(keys(&list), [format!("{x}/a-none"), format!("{x}/a-web")]);
        let from = rv_of(&list);
        let mut w = t
            .watch(&format!(
                "/api/v1/pods?watch=1&resourceVersion={from}&timeoutSeconds=4&{sel}"
            ))
            .await;
        assert_eq!(w.status, 200);
        t.create_pod(&x, "new-a", &[("app", "a"), ("tier", "web")]).await; // selected
        t.create_pod(&y, "new-a", &[("app", "a")]).await; // other namespace
        t.create_pod(&x, "new-db", &[("app", "a"), ("tier", "db")]).await; // tier=db
        t.label_pod(&x, "a-web", &[("tier", Some("db"))]).await; // leaves
        t.label_pod(&x, "a-db", &[("tier", Some("web"))]).await; // enters
        let events = w.rest().await;
        assert_eq!(
            seen(&events),
            [
                pair("ADDED", &format!("{x}/new-a")),
                pair("DELETED", &format!("{x}/a-web")),
                pair("ADDED", &format!("{x}/a-db")),
            ]
        );
        let after = t.get_ok(&format!("/api/v1/pods?{sel}")).await;
        assert_eq!(
            keys(&after),
            [format!("{x}/a-db"), format!("{x}/a-none"), format!("{x}/new-a")]
        );
    }
);

both!(
    /// `resourceVersion=0` is served (from the cache on the real server);
    /// `Exact` serves the old snapshot, `NotOlderThan` the current state.
    /// (A compacted version's 410 is in `sim::conformance` only.)
    case06_rv0_serves_exact_reads_the_past_not_older_than_the_present,
    |t| {
        let ns = t.namespace("c06").await;
        t.create_pods(&ns, 30).await;
        let path = format!("/api/v1/namespaces/{ns}/pods");
        // Any version: the cache serves what it holds without waiting to
        // catch up (watch_cache.go, `waitUntilFreshLocked` returns at once
        // for resourceVersion 0), so the writes just made may not all be
        // there yet (27 of 30 were, once). What it serves is a snapshot:
        // its version, never past the present, covers every item.
        let any = t.get_ok(&format!("{path}?resourceVersion=0")).await;
        let items = any["items"].as_array().unwrap();
        assert!(items.len() <= 30, "{}", items.len());
        let old = t.rv(&ns).await;
        assert!(rv_of(&any) <= old, "{} > {old}", rv_of(&any));
        for item in items {
            assert!(rv_of(item) <= rv_of(&any), "{item}");
        }
        let deleted = t.delete_pod(&ns, "p000").await;
        let exact = t
            .get_ok(&format!(
                "{path}?resourceVersion={old}&resourceVersionMatch=Exact"
            ))
            .await;
        assert_eq!(rv_of(&exact), old);
        assert_eq!(exact["items"].as_array().unwrap().len(), 30, "the old snapshot");
        // `NotOlderThan` waits until the cache holds the given version and
        // serves what it has then (cacher.go, `waitUntilFreshAndBlock`), so
        // a list from `old` may or may not show the delete; one from the
        // delete's own version must.
        let not_older = t
            .get_ok(&format!(
                "{path}?resourceVersion={old}&resourceVersionMatch=NotOlderThan"
            ))
            .await;
        assert!(rv_of(&not_older) >= old, "{}", not_older["metadata"]);
        let gone = rv_of(&deleted);
        let newer = t
            .get_ok(&format!(
                "{path}?resourceVersion={gone}&resourceVersionMatch=NotOlderThan"
            ))
            .await;
        assert!(rv_of(&newer) >= gone, "{}", newer["metadata"]);
        assert_eq!(newer["items"].as_array().unwrap().len(), 29);
    }
);

both!(
    /// A watch from a list's version sees a create, an update and a delete
    /// once each, in order, carrying what the writes returned (the real
    /// server's delete is two events, known difference 3).
    case07_watch_from_list_rv_sees_create_update_delete_once_in_order,
    |t| {
        let ns = t.namespace("c07").await;
        t.create_pods(&ns, 10).await;
        let list = t.get_ok(&format!("/api/v1/namespaces/{ns}/pods")).await;
        let rv = rv_of(&list);
        let mut w = t
            .watch(&format!(
                "/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}&timeoutSeconds=4"
            ))
            .await;
        let created = t.create_pod(&ns, "fresh", &[]).await;
        let updated = t.label_pod(&ns, "fresh", &[("v", Some("2"))]).await;
        let deleted = t.delete_pod(&ns, "fresh").await;
        let events = w.rest().await;
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types[..2], ["ADDED", "MODIFIED"]);
        assert_eq!(types[2..], *t.pod_deletion_events(), "{events:?}");
        assert_eq!(events[0]["object"], created);
        assert_eq!(events[1]["object"], updated);
        let last = &events.last().unwrap()["object"];
        assert_eq!(last["kind"], "Pod", "watch objects carry kind");
        let rvs: Vec<u64> = events.iter().map(|e| rv_of(&e["object"])).collect();
        assert!(rvs[0] > rv, "{rvs:?}");
        assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
        assert_eq!(rvs[..2], [rv_of(&created), rv_of(&updated)]);
        for e in &events[2..] {
            assert_eq!(key_of(&deleted), key_of(&e["object"]));
        }
    }
);

both!(
    /// A watch from a version inside the window gets exactly the writes
    /// made since, none before.
    case08_watch_inside_window_gets_exactly_the_writes_since,
    |t| {
        let ns = t.namespace("c08").await;
        t.create_pods(&ns, 5).await;
        let from = t.rv(&ns).await;
        let mut written = Vec::new();
        for i in 0..3 {
            let o = t.label_pod(&ns, &format!("p00{i}"), &[("w", Some("1"))]).await;
            written.push(rv_of(&o));
        }
        let mut w = t
            .watch(&format!(
                "/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={from}&timeoutSeconds=1"
            ))
            .await;
        let events = w.rest().await;
        let rvs: Vec<u64> = events.iter().map(|e| rv_of(&e["object"])).collect();
        assert_eq!(rvs, written, "{events:?}");
    }
);

both!(
    /// A DELETED event carries the object's last state, at the deletion's
    /// version, as the DELETE answered it (on the real server the last
    /// state is the one its graceful deletion wrote, known difference 3).
    case10_deleted_carries_last_state_and_deletion_rv,
    |t| {
        let ns = t.namespace("c10").await;
        t.create_pod(&ns, "p", &[("k", "v1")]).await;
        let last = t.label_pod(&ns, "p", &[("k", Some("v2"))]).await;
        let from = rv_of(&last);
        let mut w = t
            .watch(&format!(
                "/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={from}&timeoutSeconds=3"
            ))
            .await;
        let answer = t.delete_pod(&ns, "p").await;
        let events = w.rest().await;
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, *t.pod_deletion_events(), "{events:?}");
        let obj = &events.last().unwrap()["object"];
        assert!(rv_of(obj) > from, "the deletion's version");
        let mut expected = last.clone();
        expected["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"].clone();
        if t.server == Server::KubeApiServer {
            let meta = &obj["metadata"];
            assert!(meta["deletionTimestamp"].is_string(), "{obj}");
            assert_eq!(meta["deletionGracePeriodSeconds"], 0, "{obj}");
            // The graceful deletion bumps the generation too
            // (`rest.BeforeDelete`), so that controllers see it.
            let generation = last["metadata"]["generation"].as_i64().unwrap();
            assert_eq!(meta["generation"], generation + 1, "{obj}");
            for field in ["deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
                expected["metadata"][field] = meta[field].clone();
                assert_eq!(events[0]["object"]["metadata"][field], meta[field]);
            }
        }
        assert_eq!(obj, &expected, "the last state otherwise");
        assert_eq!(obj, &answer, "what the DELETE answered");
    }
);

both!(
    /// Bookmarks come only when asked for, carry only a version, and never
    /// go backwards; the events are the same with or without them.
    case11_bookmarks_only_when_asked_and_never_backwards,
    |t| {
        let ns = t.namespace("c11").await;
        t.create_pods(&ns, 5).await;
        let from = t.rv(&ns).await;
        let url = |bm: bool| {
            format!(
                "/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={from}&timeoutSeconds=3&allowWatchBookmarks={bm}"
            )
        };
        let mut with = t.watch(&url(true)).await;
        let mut without = t.watch(&url(false)).await;
        for i in 0..8 {
            t.label_pod(&ns, &format!("p00{}", i % 5), &[("n", Some(&i.to_string()))])
                .await;
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        let with_events = with.rest().await;
        let without_events = without.rest().await;
        let bookmarks: Vec<&Value> = with_events
            .iter()
            .filter(|e| e["type"] == "BOOKMARK")
            .collect();
        assert!(!bookmarks.is_empty(), "the bookmark 2 s before the deadline");
        for b in &bookmarks {
            assert_eq!(b["object"]["kind"], "Pod");
            assert_eq!(b["object"]["apiVersion"], "v1");
            assert_eq!(b["object"]["metadata"].as_object().unwrap().len(), 1, "{b}");
        }
        let mut last = 0;
        for e in &with_events {
            let rv = rv_of(&e["object"]);
            assert!(rv >= last, "RV went backwards: {rv} after {last}");
            last = rv;
        }
        assert!(without_events.iter().all(|e| e["type"] != "BOOKMARK"));
        let changes = |evs: &[Value]| -> Vec<Value> {
            evs.iter().filter(|e| e["type"] != "BOOKMARK").cloned().collect()
        };
        assert_eq!(changes(&with_events), changes(&without_events));
        assert_eq!(changes(&with_events).len(), 8);
    }
);

both!(
    /// 2 s before `timeoutSeconds` runs out a watcher gets a bookmark at
    /// least as new as its last event, then the stream ends cleanly. The
    /// cacher files a watcher's next bookmark in a one-second bucket
    /// (`watcherBookmarkTimeBuckets`) and pops the bucket at the first
    /// dispatch tick inside that second, so up to a second early; a watcher
    /// popped before (or at) its pre-deadline moment is filed again
    /// (`nextBookmarkTime` is not yet past) and gets one more bookmark at
    /// the next tick. Either server sends one or two.
    case12_bookmark_before_closing_at_timeout,
    |t| {
        let ns = t.namespace("c12").await;
        t.create_pods(&ns, 2).await;
        let from = t.rv(&ns).await;
        let mut w = t
            .watch(&format!(
                "/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={from}&timeoutSeconds=4&allowWatchBookmarks=true"
            ))
            .await;
        let first = t.label_pod(&ns, "p000", &[("n", Some("1"))]).await;
        let written = t.label_pod(&ns, "p001", &[("n", Some("1"))]).await;
        let events = w.rest().await; // ends cleanly: rest() panics on a cut
        let changes: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] != "BOOKMARK")
            .map(|e| &e["object"])
            .collect();
        assert_eq!(changes, [&first, &written], "{events:?}");
        let bookmarks = events.len() - changes.len();
        assert!((1..=2).contains(&bookmarks), "{events:?}");
        let last = events.last().unwrap();
        assert_eq!(last["type"], "BOOKMARK", "{events:?}");
        assert!(rv_of(&last["object"]) >= rv_of(&written), "{last}");
        let rvs: Vec<u64> = events.iter().map(|e| rv_of(&e["object"])).collect();
        assert!(rvs.windows(2).all(|w| w[0] <= w[1]), "never backwards: {rvs:?}");
    }
);

both!(
    /// A streaming list: every object as ADDED in key order, a bookmark
    /// marking the end of the initial events, then changes as they come.
    case13_streaming_list_then_end_bookmark_then_changes,
    |t| {
        let ns = t.namespace("c13").await;
        t.create_pods(&ns, 40).await;
        let before = t.rv(&ns).await;
        let mut w = t
            .watch(&format!(
                "/api/v1/namespaces/{ns}/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=3"
            ))
            .await;
        assert_eq!(w.status, 200);
        let mut added = Vec::new();
        let end = loop {
            let ev = w.next_event().await;
            if ev["type"] == "BOOKMARK" {
                break ev;
            }
            assert_eq!(ev["type"], "ADDED");
            added.push(key_of(&ev["object"]));
        };
        let listed = t.get_ok(&format!("/api/v1/namespaces/{ns}/pods")).await;
        assert_eq!(added, keys(&listed));
        assert_eq!(
            end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        assert!(rv_of(&end["object"]) >= before, "{end}");
        let made = t.create_pod(&ns, "live", &[]).await;
        let live = w.next_change().await;
        assert_eq!(live["type"], "ADDED");
        assert_eq!(live["object"], made);
        assert!(rv_of(&made) > rv_of(&end["object"]));
    }
);

both!(
    /// A namespace's watch sees only that namespace's objects of its
    /// resource.
    case17_namespace_watch_sees_only_its_namespace,
    |t| {
        let mine = t.namespace("c17").await;
        let other = t.namespace("c17-other").await;
        // A namespace whose name starts with the watched one's catches a
        // filter that matches by prefix.
        let longer = format!("{mine}2");
        t.create_namespace(&longer).await;
        let from = t.rv(&mine).await;
        let mut w = t
            .watch(&format!(
                "/api/v1/namespaces/{mine}/pods?watch=1&resourceVersion={from}&timeoutSeconds=3"
            ))
            .await;
        t.create_pod(&other, "a", &[]).await;
        t.create_pod(&longer, "a", &[]).await;
        t.create_pod(&mine, "a", &[]).await;
        t.delete_pod(&other, "a").await;
        t.post(
            &format!("/api/v1/namespaces/{mine}/configmaps"),
            &json!({"metadata": {"name": "c"}}),
        )
        .await;
        let events = w.rest().await;
        assert_eq!(seen(&events), [pair("ADDED", &format!("{mine}/a"))]);
    }
);

both!(
    /// The discovery documents a client reads before it lists: the
    /// version, the core group and its pods resource; an unknown group is
    /// 404 (as a Status from the simulator, known difference 4).
    case18_discovery_documents,
    |t| {
        let version = t.get_ok("/version").await;
        assert_eq!(version["major"], "1");
        let api = t.get_ok("/api").await;
        assert_eq!(api["kind"], "APIVersions");
        assert_eq!(api["versions"], json!(["v1"]));
        let v1 = t.get_ok("/api/v1").await;
        assert_eq!(v1["kind"], "APIResourceList");
        assert_eq!(v1["groupVersion"], "v1");
        let names: BTreeSet<&str> = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for name in ["configmaps", "namespaces", "nodes", "pods", "secrets"] {
            assert!(names.contains(name), "{name} in {names:?}");
        }
        let pods = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["singularName"], "pod");
        assert_eq!(pods["namespaced"], true);
        assert_eq!(pods["kind"], "Pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        for verb in ["list", "watch", "get", "create", "patch", "delete"] {
            assert!(pods["verbs"].as_array().unwrap().contains(&json!(verb)), "{verb}");
        }
        let apis = t.get_ok("/apis").await;
        assert_eq!(apis["kind"], "APIGroupList");
        let (code, body) = t
            .request(Method::GET, "/apis/nope.example/v1", None, Vec::new())
            .await;
        assert_eq!(code, 404, "{body:?}");
        match t.server {
            Server::Sim => {
                let status: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!((status["kind"].as_str(), status["code"].as_u64()), (Some("Status"), Some(404)));
            }
            Server::KubeApiServer => assert_eq!(&body[..], b"404 page not found\n"),
        }
    }
);

both!(
    /// Writes over HTTP: create, a duplicate's 409, replace, a stale
    /// replace's 409, merge patch, JSON patch and delete, each a new
    /// version.
    writes_over_http_create_replace_patch_delete,
    |t| {
        let ns = t.namespace("writes").await;
        let u = format!("/api/v1/namespaces/{ns}/configmaps");
        let created = t
            .post(
                &u,
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}}),
            )
            .await;
        assert_eq!(created["metadata"]["namespace"], ns.as_str());
        assert!(created["metadata"]["uid"].is_string());
        let json = "application/json";
        // Without its resourceVersion, which a create must not carry.
        let mut again = created.clone();
        again["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        let (code, dup) = t.write(Method::POST, &u, json, &again.to_string()).await;
        assert_eq!(code, 409, "{dup}");
        assert_eq!(dup["reason"], "AlreadyExists");
        let mut stale = created.clone();
        stale["data"]["k"] = json!("2");
        let (code, replaced) = t
            .write(Method::PUT, &format!("{u}/c"), json, &stale.to_string())
            .await;
        assert_eq!(code, 200, "{replaced}");
        assert!(rv_of(&replaced) > rv_of(&created));
        let (code, conflict) = t
            .write(Method::PUT, &format!("{u}/c"), json, &stale.to_string())
            .await;
        assert_eq!(code, 409, "stale resourceVersion: {conflict}");
        assert_eq!(conflict["reason"], "Conflict");
        let (code, patched) = t
            .write(
                Method::PATCH,
                &format!("{u}/c"),
                "application/merge-patch+json",
                r#"{"data":{"k":null,"n":"3"}}"#,
            )
            .await;
        assert_eq!(code, 200, "{patched}");
        assert_eq!(patched["data"], json!({"n": "3"}));
        let (code, jp) = t
            .write(
                Method::PATCH,
                &format!("{u}/c"),
                "application/json-patch+json",
                r#"[{"op":"add","path":"/data/m","value":"4"}]"#,
            )
            .await;
        assert_eq!(code, 200, "{jp}");
        assert_eq!(jp["data"], json!({"m": "4", "n": "3"}));
        let (code, gone) = t.write(Method::DELETE, &format!("{u}/c"), json, "").await;
        assert_eq!(code, 200, "{gone}");
        assert_eq!(t.get(&format!("{u}/c")).await.0, 404);
        let rvs = [&created, &replaced, &patched, &jp];
        assert!(rvs.windows(2).all(|w| rv_of(w[0]) < rv_of(w[1])), "{rvs:?}");
    }
);

both!(
    /// A Secret's `stringData` is write-only: folded into `data` (winning
    /// over a `data` key of the same name) on create, replace and patch,
    /// never stored.
    secret_string_data_is_folded_into_data_on_every_write,
    |t| {
        let ns = t.namespace("secrets").await;
        let base = format!("/api/v1/namespaces/{ns}/secrets");
        let created = t
            .post(
                &base,
                &json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "creds"},
                    "data": {"user": "b2xk", "keep": "a2VlcA=="},
                    "stringData": {"user": "admin", "password": "hunter2"}
                }),
            )
            .await;
        let want = json!({"user": "YWRtaW4=", "password": "aHVudGVyMg==", "keep": "a2VlcA=="});
        assert_eq!(created["data"], want);
        assert_eq!(created.get("stringData"), None);
        let stored = t.get_ok(&format!("{base}/creds")).await;
        assert_eq!(stored["data"], want);
        let mut body = stored.clone();
        body["stringData"] = json!({"token": "t0k"});
        let (code, replaced) = t
            .write(
                Method::PUT,
                &format!("{base}/creds"),
                "application/json",
                &body.to_string(),
            )
            .await;
        assert_eq!(code, 200, "{replaced}");
        assert_eq!(replaced["data"]["token"], "dDBr");
        assert_eq!(replaced.get("stringData"), None);
        let (code, patched) = t
            .write(
                Method::PATCH,
                &format!("{base}/creds"),
                "application/merge-patch+json",
                r#"{"stringData": {"user": "root"}}"#,
            )
            .await;
        assert_eq!(code, 200, "{patched}");
        assert_eq!(patched["data"]["user"], "cm9vdA==");
        assert_eq!(patched.get("stringData"), None);
        assert_eq!(t.get_ok(&format!("{base}/creds")).await, patched);
        // stringData holds strings only.
        let bad = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bad"},
            "stringData": {"n": 5}
        });
        let (code, refused) = t
            .write(Method::POST, &base, "application/json", &bad.to_string())
            .await;
        assert_eq!(code, 400, "{refused}");
        assert_eq!(refused["reason"], "BadRequest", "{refused}");
        assert_eq!(t.get(&format!("{base}/bad")).await.0, 404, "nothing created");
    }
);
