//! The simulator against LISTWATCH.md, simulator-only: what a real
//! kube-apiserver cannot be driven into, or what only the simulator
//! promises. The cases a real server can be driven through run on both
//! servers from one code path in `conformance` (01, 02, 04 to 08, 10 to
//! 13, 17, 18, the writes over HTTP and the Secret case); what is here of
//! 01, 06, 11, 18 and the writes is only their simulator-only part.
//! Here:
//!
//! - forced compaction and its 410s (03, 06's compacted half, 09, 09b):
//!   the watch cache does not notice an etcd compaction for ~75 s;
//! - injected faults (15, 16) and the simulator's own endpoints and load;
//! - a switched-off streaming list (14): a feature gate of the server;
//! - what the simulator pins more tightly than a shared real server
//!   allows: exact +1 resourceVersion steps (the writes over HTTP; for
//!   watches `load_writes_each_produce_exactly_one_event`), request counts
//!   (01, the writes), a 100 ms bookmark interval (11), exactly its five
//!   core resources and the custom resource in discovery (18), strategic
//!   merge patch and managedFields of a fixed writer set;
//! - the bad-request answers, not yet compared with the real server's.
//!
//! Raw HTTP (reqwest) so the exact responses are checked, not what a client
//! library makes of them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::sim::*;
use kube_persist::sim::{Fault, GoneMode, SimStats};
use reqwest::Method;
use serde_json::{json, Value};

/// case01's simulator-only part: a cluster-wide list pages across
/// namespaces in key order, one LIST request per page.
#[tokio::test]
async fn case01_paginated_list_across_namespaces_is_one_request_per_page() {
    let sim = sim(|c| {
        c.pods = 2500;
        c.namespaces = 7;
    })
    .await;
    let base = format!("{}/api/v1/pods?limit=100", sim.url());
    let mut url = base.clone();
    let mut pages = 0;
    let mut all = Vec::new();
    loop {
        let page = get_ok(&url).await;
        pages += 1;
        all.extend(keys(&page));
        match page["metadata"]["continue"].as_str() {
            Some(tok) => url = format!("{base}&continue={tok}"),
            None => break,
        }
    }
    assert_eq!(pages, 25);
    let expected: Vec<String> = sim.objects("pods").iter().map(key_of).collect();
    assert_eq!(
        all, expected,
        "each object once, in key order across namespaces"
    );
    assert_eq!(sim.stats().list_requests, 25);
}

#[tokio::test]
async fn case03_expired_continue_token_is_410_expired() {
    let sim = sim(|_| {}).await;
    for i in 0..4 {
        sim.create("pods", pod("a", &format!("p{i}"), &[])).unwrap();
    }
    let first = get_ok(&format!("{}/api/v1/pods?limit=2", sim.url())).await;
    let tok = first["metadata"]["continue"].as_str().unwrap().to_string();
    sim.create("pods", pod("a", "p9", &[])).unwrap();
    sim.compact();
    let (code, status) = get(&format!("{}/api/v1/pods?limit=2&continue={tok}", sim.url())).await;
    assert_eq!(code, 410);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "Expired");
    assert_eq!(status["code"], 410);
    assert!(status["message"].as_str().unwrap().contains("too old"));
    // The inconsistent continuation the real server offers: latest state.
    let inconsistent = status["metadata"]["continue"].as_str().unwrap();
    let rest = get_ok(&format!(
        "{}/api/v1/pods?limit=10&continue={inconsistent}",
        sim.url()
    ))
    .await;
    assert_eq!(keys(&rest), ["a/p2", "a/p3", "a/p9"]);
    assert_eq!(rv_of(&rest), sim.current_rv());
}

/// case06's simulator-only part: `resourceVersion=0` ignores a limit, and
/// a compacted version is 410 for `Exact` and for the legacy form (a
/// version with a limit and no match means `Exact`).
#[tokio::test]
async fn case06_rv0_ignores_the_limit_and_exact_of_compacted_rv_is_410() {
    let sim = sim(|c| c.pods = 30).await;
    let any = get_ok(&format!(
        "{}/api/v1/pods?resourceVersion=0&limit=5",
        sim.url()
    ))
    .await;
    assert_eq!(any["items"].as_array().unwrap().len(), 30);
    let old = sim.current_rv();
    sim.mutate(1);
    sim.compact();
    for query in [
        format!("resourceVersion={old}&resourceVersionMatch=Exact"),
        format!("resourceVersion={old}&limit=5"),
    ] {
        let (code, status) = get(&format!("{}/api/v1/pods?{query}", sim.url())).await;
        assert_eq!(code, 410, "{query}: {status}");
        assert_eq!(status["reason"], "Expired", "{query}");
    }
}

#[tokio::test]
async fn case09_watch_from_compacted_rv_is_410_in_either_form() {
    for gone in [GoneMode::Http410, GoneMode::ErrorEvent] {
        let sim = sim(|c| {
            c.pods = 3;
            c.gone = gone;
        })
        .await;
        let old = sim.current_rv();
        sim.mutate(2);
        sim.compact();
        let url = format!("{}/api/v1/pods?watch=1&resourceVersion={old}", sim.url());
        let mut w = WatchStream::open(&url).await;
        let status = match gone {
            GoneMode::Http410 => {
                assert_eq!(w.status, 410);
                get(&url).await.1
            }
            GoneMode::ErrorEvent => {
                assert_eq!(w.status, 200);
                let ev = w.next_event().await;
                assert_eq!(ev["type"], "ERROR");
                assert!(w.next_line().await.is_none(), "stream ends after the error");
                ev["object"].clone()
            }
        };
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 410);
        assert_eq!(status["reason"], "Expired");
        assert_eq!(
            status["message"],
            format!("too old resource version: {old} ({})", sim.current_rv())
        );
    }
}

/// watch_cache_history.go `updateCache`: once the ring is full (and, with
/// its oldest event younger than 75 s, at its upper bound), every write
/// evicts the oldest event, and a watch from before it gets 410.
#[tokio::test]
async fn case09b_history_bounded_by_capacity_evicts_too() {
    let sim = sim(|c| {
        c.history = kube_persist::sim::HistoryConfig {
            lower_bound: 5,
            upper_bound: 5,
            ..Default::default()
        };
        c.pods = 3;
    })
    .await;
    let old = sim.current_rv();
    sim.mutate(6);
    let pods = pods_cache(&sim);
    assert_eq!((pods.capacity, pods.events), (5, 5));
    assert_eq!(pods.oldest_servable_rv, old + 1);
    let w = WatchStream::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={old}",
        sim.url()
    ))
    .await;
    assert_eq!(w.status, 410);
    let mut ok = WatchStream::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={}&timeoutSeconds=1",
        sim.url(),
        old + 1
    ))
    .await;
    assert_eq!(ok.rest().await.len(), 5);
}

/// case11's simulator-only part, cacher.go `dispatchEvents` (with the
/// period shortened to 100 ms, so its buckets shrink too): bookmarks keep
/// coming between the changes until the pre-deadline one.
#[tokio::test]
async fn case11_bookmarks_follow_a_short_interval() {
    let sim = sim(|c| {
        c.pods = 5;
        c.bookmark_interval = Duration::from_millis(100);
    })
    .await;
    let from = sim.current_rv();
    let mut w = WatchStream::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={from}&timeoutSeconds=3&allowWatchBookmarks=true",
        sim.url()
    ))
    .await;
    let writer = {
        let sim = sim.clone();
        tokio::spawn(async move {
            for _ in 0..8 {
                sim.mutate(1);
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };
    let events = w.rest().await;
    writer.await.unwrap();
    let bookmarks = events.iter().filter(|e| e["type"] == "BOOKMARK").count();
    // Bookmarks every ~100 ms until the pre-deadline one at 1 s.
    assert!(bookmarks >= 3, "{bookmarks} bookmarks");
    assert_eq!(events.len() - bookmarks, 8);
}

#[tokio::test]
async fn case14_streaming_list_refused_when_switched_off_list_still_works() {
    let sim = sim(|c| {
        c.pods = 4;
        c.watch_list = false;
    })
    .await;
    let (code, status) = get(&format!(
        "{}/api/v1/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        sim.url()
    ))
    .await;
    assert_eq!(code, 422);
    assert_eq!(status["reason"], "Invalid");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("sendInitialEvents"));
    // The fallback a client takes: LIST, then watch from the list's RV.
    let list = get_ok(&format!("{}/api/v1/pods?limit=500", sim.url())).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
    let mut w = WatchStream::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={}&timeoutSeconds=3",
        sim.url(),
        rv_of(&list)
    ))
    .await;
    sim.mutate(1);
    assert_eq!(w.rest().await.len(), 1);
}

#[tokio::test]
async fn case15_throttling_errors_cuts_and_stalls_are_injectable() {
    let sim = sim(|c| c.pods = 3).await;
    let url = format!("{}/api/v1/pods", sim.url());
    sim.inject(Fault::Status {
        code: 429,
        count: 2,
        retry_after: Some(7),
    });
    for _ in 0..2 {
        let resp = http().get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        let status: Value = resp.json().await.unwrap();
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["details"]["retryAfterSeconds"], 7);
    }
    sim.inject(Fault::Status {
        code: 500,
        count: 1,
        retry_after: None,
    });
    let (code, status) = get(&url).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (500, Some("InternalError"))
    );
    sim.inject(Fault::Status {
        code: 503,
        count: 1,
        retry_after: None,
    });
    assert_eq!(get(&url).await.0, 503);
    assert_eq!(get(&url).await.0, 200, "faults are used up");
    assert_eq!(sim.stats().faults_served, 4);

    // Cut mid-line: half a line, then the connection breaks.
    let from = sim.current_rv();
    let watch_url = format!("{url}?watch=1&resourceVersion={from}&timeoutSeconds=4");
    sim.inject(Fault::CutMidLine);
    let mut w = WatchStream::open(&watch_url).await;
    sim.mutate(1);
    match w.next_line().await {
        Some(Line::Cut(part)) => {
            assert!(!part.is_empty());
            assert!(
                serde_json::from_slice::<Value>(&part).is_err(),
                "half a line"
            );
        }
        other => panic!("expected a cut line, got {other:?}"),
    }
    assert!(w.next_line().await.is_none());

    // Cut after two events.
    sim.inject(Fault::CutAfter(2));
    let mut w = WatchStream::open(&watch_url).await;
    sim.mutate(3);
    w.next_event().await;
    w.next_event().await;
    assert!(matches!(w.next_line().await, Some(Line::Cut(_))));

    // Stall: nothing for a while, then every event, in order.
    sim.inject(Fault::Stall(Duration::from_millis(300)));
    let started = Instant::now();
    let mut w = WatchStream::open(&watch_url).await;
    let first = w.next_event().await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let rest = w.rest().await;
    assert_eq!(rv_of(&first["object"]), from + 1);
    assert_eq!(rest.len(), 3, "all four writes since `from` arrive");
}

#[tokio::test]
async fn case16_malformed_line_and_unknown_event_type_then_normal_events() {
    let sim = sim(|c| c.pods = 3).await;
    let from = sim.current_rv();
    let url = format!(
        "{}/api/v1/pods?watch=1&resourceVersion={from}&timeoutSeconds=3",
        sim.url()
    );
    sim.inject(Fault::MalformedLine);
    let mut w = WatchStream::open(&url).await;
    sim.mutate(2);
    match w.next_line().await {
        Some(Line::Full(l)) => assert!(serde_json::from_slice::<Value>(&l).is_err()),
        other => panic!("expected a malformed line, got {other:?}"),
    }
    assert_eq!(w.rest().await.len(), 2);

    sim.inject(Fault::UnknownEventType);
    let mut w = WatchStream::open(&url).await;
    let odd = w.next_event().await;
    assert_eq!(odd["type"], "SURPRISE");
    assert_eq!(odd["object"]["kind"], "Pod");
    assert_eq!(w.rest().await.len(), 2);
}

/// case18's simulator-only part: exactly its six core resources, the
/// custom resource served like them, and kubectl's validation probe.
#[tokio::test]
async fn case18_discovery_of_exactly_the_served_resources() {
    let sim = sim(|_| {}).await;
    let v1 = get_ok(&format!("{}/api/v1", sim.url())).await;
    let names: BTreeSet<&str> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "configmaps",
            "events",
            "namespaces",
            "nodes",
            "pods",
            "secrets"
        ]
        .into()
    );
    let apis = get_ok(&format!("{}/apis", sim.url())).await;
    let group = &apis["groups"][0];
    let gv = group["preferredVersion"]["groupVersion"].as_str().unwrap();
    let custom = get_ok(&format!("{}/apis/{gv}", sim.url())).await;
    assert_eq!(custom["resources"][0]["kind"], "Widget");
    let made = sim
        .create(
            "widgets",
            kube_persist::sim::fixtures::widget("w", "one", 3),
        )
        .unwrap();
    let list = get_ok(&format!("{}/apis/{gv}/namespaces/w/widgets", sim.url())).await;
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(list["apiVersion"], gv);
    assert_eq!(keys(&list), ["w/one"]);
    let one = get_ok(&format!("{}/apis/{gv}/namespaces/w/widgets/one", sim.url())).await;
    assert_eq!(one, made);
    // kubectl's server-side validation probe.
    let openapi = get_ok(&format!("{}/openapi/v3", sim.url())).await;
    assert!(openapi["paths"]["api/v1"]["serverRelativeURL"].is_string());
}

#[tokio::test]
async fn bad_requests_get_the_real_answers_and_the_server_keeps_serving() {
    let sim = sim(|c| c.pods = 3).await;
    let u = sim.url();
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("{u}/api/v1/frobs"), 404, "NotFound"),
        (
            format!("{u}/api/v1/namespaces/a/pods/missing"),
            404,
            "NotFound",
        ),
        (
            format!("{u}/api/v1/pods?labelSelector=app%20in%20(a"),
            400,
            "BadRequest",
        ),
        (
            format!("{u}/api/v1/pods?labelSelector=%3D%3D"),
            400,
            "BadRequest",
        ),
        (
            format!("{u}/api/v1/pods?fieldSelector=spec.bogus%3D1"),
            400,
            "BadRequest",
        ),
        (
            format!("{u}/api/v1/pods?fieldSelector=nooperator"),
            400,
            "BadRequest",
        ),
        (
            format!("{u}/api/v1/pods?resourceVersion=abc"),
            400,
            "BadRequest",
        ),
        (
            format!("{u}/api/v1/pods?watch=1&resourceVersion=x1"),
            400,
            "BadRequest",
        ),
        (format!("{u}/api/v1/pods?limit=ten"), 400, "BadRequest"),
        (
            format!("{u}/api/v1/pods?continue=garbage"),
            400,
            "BadRequest",
        ),
        (
            format!("{u}/api/v1/pods?resourceVersionMatch=Exact"),
            422,
            "Invalid",
        ),
    ];
    for (url, code, reason) in &cases {
        let (got, status) = get(url).await;
        assert_eq!(got, *code, "{url}: {status}");
        assert_eq!(status["kind"], "Status", "{url}");
        assert_eq!(status["reason"], *reason, "{url}");
        assert!(!status["message"].as_str().unwrap().is_empty());
    }
    let name = key_of(&sim.objects("pods")[0]);
    let (ns, name) = name.split_once('/').unwrap();
    let obj_url = format!("{u}/api/v1/namespaces/{ns}/pods/{name}");
    let merge = Some("application/merge-patch+json");
    assert_eq!(
        send(Method::PATCH, &obj_url, merge, "{not json").await.0,
        400
    );
    let apply = Some("application/apply-patch+yaml");
    assert_eq!(send(Method::PATCH, &obj_url, apply, "{}").await.0, 415);
    let huge = format!(
        "{{\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"x\":\"{}\"}}}}",
        "a".repeat(4 * 1024 * 1024)
    );
    let configmaps = format!("{u}/api/v1/namespaces/a/configmaps");
    let json = Some("application/json");
    let (code, status) = send(Method::POST, &configmaps, json, huge).await;
    assert_eq!(code, 413);
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    assert_eq!(send(Method::POST, &configmaps, None, "[1,2").await.0, 400);
    let pods = format!("{u}/api/v1/namespaces/a/pods");
    assert_eq!(send(Method::DELETE, &pods, None, "").await.0, 405);
    // None of that changed anything, and the server still answers.
    assert_eq!(
        get_ok(&format!("{u}/api/v1/pods")).await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        sim.stats().objects,
        sim.objects("pods").len() as u64
            + sim.objects("namespaces").len() as u64
            + sim.objects("nodes").len() as u64
    );
}

/// A body in a media type the server cannot decode is 415 with the Status
/// of k8s.io/apiserver/pkg/endpoints/handlers/negotiation/errors.go
/// (`errUnsupportedMediaType`), listing the types it takes: JSON and
/// protobuf for a built-in type, JSON only for a custom resource (which
/// has no protobuf messages). A protobuf body that does not decode is 400,
/// not 415. No Content-Type means JSON (`NegotiateInputSerializer`).
#[tokio::test]
async fn unreadable_content_types_are_415_with_a_status() {
    let sim = sim(|_| {}).await;
    let url = format!("{}/api/v1/namespaces/ns-000/configmaps", sim.url());
    let truncated = &b"k8s\x00\x0a\x0f\x0a\x02v1"[..];
    for ct in ["application/yaml", "text/plain"] {
        let (code, status) = send(Method::POST, &url, Some(ct), truncated).await;
        assert_eq!(code, 415, "{ct}");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "UnsupportedMediaType");
        assert_eq!(status["code"], 415);
        assert_eq!(
            status["message"],
            "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf"
        );
    }
    let protobuf = Some("application/vnd.kubernetes.protobuf");
    let (code, status) = send(Method::POST, &url, protobuf, truncated).await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("the protobuf envelope (runtime.Unknown) could not be decoded"),
        "{status}"
    );
    let (code, status) = send(Method::PUT, &format!("{url}/x"), protobuf, "k8s").await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    );
    let widgets = format!(
        "{}/apis/{}/v1/namespaces/ns-000/widgets",
        sim.url(),
        kube_persist::sim::resources::CUSTOM_GROUP
    );
    let (code, status) = send(Method::POST, &widgets, protobuf, truncated).await;
    assert_eq!(code, 415);
    assert_eq!(
        status["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json"
    );
    let untyped = r#"{"metadata":{"name":"untyped"}}"#;
    let (code, _) = send(Method::POST, &url, None, untyped).await;
    assert_eq!(code, 201, "no Content-Type is JSON");
    let charset = Some("application/json; charset=utf-8");
    let (code, _) = send(
        Method::POST,
        &url,
        charset,
        r#"{"metadata":{"name":"charset"}}"#,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        sim.objects("configmaps").len(),
        2,
        "nothing written by the refused ones"
    );
}

/// The simulator-only part of the writes over HTTP: each write is the next
/// version, the DELETE answers the last state, and every write is counted.
#[tokio::test]
async fn writes_over_http_are_one_version_each() {
    let sim = sim(|_| {}).await;
    let u = format!("{}/api/v1/namespaces/a/configmaps", sim.url());
    let c = format!("{u}/c");
    let json = Some("application/json");
    let (code, created) = send(
        Method::POST,
        &u,
        json,
        json!({"metadata": {"name": "c"}, "data": {"k": "1"}}).to_string(),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let mut changed = created.clone();
    changed["data"]["k"] = json!("2");
    let (code, replaced) = send(Method::PUT, &c, json, changed.to_string()).await;
    assert_eq!(code, 200, "{replaced}");
    assert_eq!(rv_of(&replaced), rv_of(&created) + 1);
    let merge = Some("application/merge-patch+json");
    let (_, patched) = send(Method::PATCH, &c, merge, r#"{"data":{"n":"3"}}"#).await;
    assert_eq!(rv_of(&patched), rv_of(&created) + 2);
    let (code, gone) = send(Method::DELETE, &c, None, "").await;
    assert_eq!(code, 200, "{gone}");
    assert_eq!(gone["data"], patched["data"]);
    assert_eq!(rv_of(&gone), rv_of(&created) + 3);
    assert_eq!(sim.stats().write_requests, 4);
}

#[tokio::test]
async fn control_endpoints_over_http() {
    let sim = sim(|c| c.pods = 4).await;
    let stats: SimStats =
        serde_json::from_value(get_ok(&format!("{}/sim/stats", sim.url())).await).unwrap();
    assert_eq!(stats.current_rv, sim.current_rv());
    assert_eq!(stats.objects, sim.stats().objects);
    let faults = format!("{}/sim/faults", sim.url());
    let fault = r#"{"status":{"code":503,"count":1,"retry_after":null}}"#;
    assert_eq!(send(Method::POST, &faults, None, fault).await.0, 200);
    assert_eq!(get(&format!("{}/api/v1/pods", sim.url())).await.0, 503);
    let bad = r#"{"explode":true}"#;
    assert_eq!(send(Method::POST, &faults, None, bad).await.0, 400);
    let old = sim.current_rv();
    sim.mutate(2);
    let compact = format!("{}/sim/compact", sim.url());
    let at = format!("{compact}?resourceVersion={}", old + 1);
    let (_, c) = send(Method::POST, &at, None, "").await;
    assert_eq!(c["compactedRV"], old + 1);
    assert_eq!(sim.stats().compacted_rv, old + 1);
    let (_, c) = send(Method::POST, &compact, None, "").await;
    assert_eq!(c["compactedRV"], sim.current_rv());
    let before = sim.stats();
    assert!(before.bytes_sent > 0 && before.list_requests >= 1);
    sim.reset_stats();
    let after = sim.stats();
    assert_eq!((after.bytes_sent, after.list_requests), (0, 0));
    assert_eq!(after.current_rv, before.current_rv);
}

#[tokio::test]
async fn load_writes_each_produce_exactly_one_event() {
    // The default watch cache keeps a burst of writes younger than 75 s.
    let sim = sim(|c| c.pods = 50).await;
    let from = sim.current_rv();
    let mut w = WatchStream::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={from}&timeoutSeconds=8",
        sim.url()
    ))
    .await;
    let load = sim.start_load(500.0);
    eventually("some load", || load.writes() >= 100).await;
    let writes = load.stop().await;
    let to = sim.current_rv();
    assert_eq!(to - from, writes, "one version per write");
    let events = w.rest().await;
    assert_eq!(events.len() as u64, writes, "one event per write");
    let rvs: Vec<u64> = events.iter().map(|e| rv_of(&e["object"])).collect();
    assert_eq!(rvs, (from + 1..=to).collect::<Vec<_>>());
    let kinds: BTreeSet<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains("MODIFIED"), "{kinds:?}");
    // The watch's view, replayed over the start state, is the end state.
    let mut state: std::collections::BTreeMap<String, Value> = Default::default();
    let start = get_ok(&format!(
        "{}/api/v1/pods?resourceVersion={from}&resourceVersionMatch=Exact",
        sim.url()
    ))
    .await;
    assert_eq!(start["items"].as_array().unwrap().len(), 50);
    for o in start["items"].as_array().unwrap() {
        state.insert(key_of(o), o.clone());
    }
    for e in &events {
        let k = key_of(&e["object"]);
        if e["type"] == "DELETED" {
            assert!(state.remove(&k).is_some());
        } else {
            let mut o = e["object"].clone();
            o.as_object_mut().unwrap().remove("kind");
            o.as_object_mut().unwrap().remove("apiVersion");
            state.insert(k, o);
        }
    }
    assert_eq!(state.into_values().collect::<Vec<_>>(), sim.objects("pods"));
}

/// k8s.io/apiserver/pkg/endpoints/handlers (create.go, update.go, patch.go:
/// `managerOrUserAgent`) and the managed-fields updater of
/// k8s.io/apimachinery/pkg/util/managedfields: every write records its
/// fields under its manager, the `fieldManager` parameter or else the
/// User-Agent up to its first `/`; a later writer takes the fields it
/// changes.
#[tokio::test]
async fn managed_fields_follow_every_writer() {
    let sim = sim(|_| {}).await;
    let url = format!("{}/api/v1/namespaces/ns-000/configmaps", sim.url());
    let json = Some("application/json");
    let (_, created) = send(
        Method::POST,
        &format!("{url}?fieldManager=tester"),
        json,
        r#"{"metadata":{"name":"cm","labels":{"app":"a"}},"data":{"k":"1","j":"2"}}"#,
    )
    .await;
    let mf = &created["metadata"]["managedFields"];
    assert_eq!(mf.as_array().unwrap().len(), 1, "{mf}");
    assert_eq!(mf[0]["manager"], "tester");
    assert_eq!(mf[0]["operation"], "Update");
    assert_eq!(mf[0]["apiVersion"], "v1");
    assert_eq!(mf[0]["fieldsType"], "FieldsV1");
    assert!(mf[0]["time"].is_string());
    assert_eq!(
        mf[0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:j": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );
    let patched: Value = http()
        .patch(format!("{url}/cm"))
        .header("content-type", "application/merge-patch+json")
        .header("user-agent", "my-client/1.2 (linux)")
        .body(r#"{"data":{"k":"changed","j":null}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mf = patched["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf.len(), 2, "{mf:?}");
    let by = |m: &str| mf.iter().find(|e| e["manager"] == m).unwrap()["fieldsV1"].clone();
    assert_eq!(
        by("tester"),
        json!({"f:data": {}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}),
        "k taken by the patch, j removed"
    );
    assert_eq!(by("my-client"), json!({"f:data": {"f:k": {}}}));
    let too_long = format!("{url}?fieldManager={}", "x".repeat(129));
    let (code, _) = send(
        Method::POST,
        &too_long,
        json,
        r#"{"metadata":{"name":"cm2"}}"#,
    )
    .await;
    assert_eq!(code, 422);
    // The generated pods carry a controller-manager create and a kubelet
    // status update, as on a real cluster.
    let sim = crate::support::sim::sim(|c| c.pods = 3).await;
    let pod = &sim.objects("pods")[0];
    let managers: Vec<(&str, Option<&str>)> = pod["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["manager"].as_str().unwrap(), e["subresource"].as_str()))
        .collect();
    assert_eq!(
        managers,
        [
            ("kube-controller-manager", None),
            ("kubelet", Some("status"))
        ]
    );
}

/// k8s.io/apimachinery/pkg/util/strategicpatch (`StrategicMergePatch`) with
/// the patch strategies of k8s.io/api/core/v1/types.go: containers merge
/// by name, their ports by containerPort; a custom resource has no
/// strategies and answers 415 (as for a CRD).
#[tokio::test]
async fn strategic_merge_patch_merges_lists_by_their_keys() {
    let sim = sim(|_| {}).await;
    sim.create(
        "pods",
        json!({"metadata": {"name": "p", "namespace": "ns-000"}, "spec": {"containers": [
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "b", "image": "b:1"},
        ], "tolerations": [{"key": "t1"}]}}),
    )
    .unwrap();
    let url = format!("{}/api/v1/namespaces/ns-000/pods/p", sim.url());
    let strategic = Some("application/strategic-merge-patch+json");
    let patch = json!({"spec": {"containers": [
        {"name": "b", "image": "b:2"},
        {"name": "a", "ports": [{"containerPort": 8080}]},
    ], "tolerations": [{"key": "t2"}]}});
    let (code, _) = send(Method::PATCH, &url, strategic, patch.to_string()).await;
    assert_eq!(code, 200);
    let pod = sim.get("pods", Some("ns-000"), "p").unwrap();
    let containers = pod["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "merged by name, not replaced");
    assert_eq!(containers[0]["image"], "a:1");
    assert_eq!(
        containers[0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080}])
    );
    assert_eq!(containers[1]["image"], "b:2");
    assert_eq!(
        pod["spec"]["tolerations"],
        json!([{"key": "t2"}]),
        "no strategy: replaced"
    );
    sim.create(
        "widgets",
        kube_persist::sim::fixtures::widget("ns-000", "w", 1),
    )
    .unwrap();
    let widget = format!(
        "{}/apis/{}/v1/namespaces/ns-000/widgets/w",
        sim.url(),
        kube_persist::sim::resources::CUSTOM_GROUP
    );
    let (code, status) = send(Method::PATCH, &widget, strategic, r#"{"spec":{"size":2}}"#).await;
    assert_eq!(code, 415);
    assert_eq!(
        status["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json"
    );
}
