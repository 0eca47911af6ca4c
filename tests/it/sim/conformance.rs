//! The simulator against LISTWATCH.md: one test per conformance case
//! (`case01_...` to `case18_...`), plus the bad-request answers, the control
//! endpoints and the mutation load. Raw HTTP (reqwest) so the exact
//! responses are checked, not what a client library makes of them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::sim::*;
use kube_persist::sim::{Fault, GoneMode, SimStats};
use serde_json::{json, Value};

#[tokio::test]
async fn case01_paginated_list_is_one_snapshot_in_key_order() {
    let sim = sim(|c| {
        c.pods = 2500;
        c.namespaces = 7;
    })
    .await;
    let base = format!("{}/api/v1/pods?limit=100", sim.url());
    let mut url = base.clone();
    let mut pages = 0;
    let mut rvs = BTreeSet::new();
    let mut all = Vec::new();
    loop {
        let page = get_ok(&url).await;
        pages += 1;
        assert_eq!(page["kind"], "PodList");
        assert_eq!(page["apiVersion"], "v1");
        assert!(page["items"].as_array().unwrap().len() <= 100);
        for item in page["items"].as_array().unwrap() {
            assert!(item.get("kind").is_none(), "list items carry no kind");
        }
        rvs.insert(
            page["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        all.extend(keys(&page));
        match page["metadata"]["continue"].as_str() {
            Some(tok) => {
                let left = page["metadata"]["remainingItemCount"].as_u64().unwrap();
                assert_eq!(left as usize, 2500 - all.len());
                url = format!("{base}&continue={tok}");
            }
            None => {
                assert!(page["metadata"].get("remainingItemCount").is_none());
                break;
            }
        }
    }
    assert_eq!(pages, 25);
    assert_eq!(rvs.len(), 1, "one snapshot RV on every page: {rvs:?}");
    assert_eq!(all.len(), 2500);
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(unique.len(), 2500, "every object exactly once");
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "key order across namespaces");
    let expected: Vec<String> = sim.objects("pods").iter().map(key_of).collect();
    assert_eq!(all, expected);
    assert_eq!(sim.stats().list_requests, 25);
}

#[tokio::test]
async fn case02_writes_between_pages_do_not_show_up() {
    let sim = sim(|_| {}).await;
    for i in 0..6 {
        sim.create("pods", pod("a", &format!("p{i}"), &[])).unwrap();
    }
    let base = format!("{}/api/v1/namespaces/a/pods?limit=2", sim.url());
    let first = get_ok(&base).await;
    assert_eq!(keys(&first), ["a/p0", "a/p1"]);
    let snapshot_rv = first["metadata"]["resourceVersion"].clone();
    // Between the pages: a create that sorts into a later page, an update
    // and a delete of objects in later pages.
    sim.create("pods", pod("a", "p35", &[])).unwrap();
    sim.replace("pods", pod("a", "p4", &[("changed", "yes")]))
        .unwrap();
    sim.delete("pods", Some("a"), "p5").unwrap();
    let mut rest = Vec::new();
    let mut tok = first["metadata"]["continue"].as_str().unwrap().to_string();
    loop {
        let page = get_ok(&format!("{base}&continue={tok}")).await;
        assert_eq!(page["metadata"]["resourceVersion"], snapshot_rv);
        for item in page["items"].as_array().unwrap() {
            assert!(item["metadata"]["labels"].get("changed").is_none());
        }
        rest.extend(keys(&page));
        match page["metadata"]["continue"].as_str() {
            Some(t) => tok = t.to_string(),
            None => break,
        }
    }
    assert_eq!(rest, ["a/p2", "a/p3", "a/p4", "a/p5"]);
    // A fresh list sees the writes.
    let now = get_ok(&format!("{}/api/v1/namespaces/a/pods", sim.url())).await;
    assert_eq!(
        keys(&now),
        ["a/p0", "a/p1", "a/p2", "a/p3", "a/p35", "a/p4"]
    );
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

#[tokio::test]
async fn case04_empty_namespace_lists_empty_items() {
    let sim = sim(|c| c.pods = 5).await;
    let raw = http()
        .get(format!("{}/api/v1/namespaces/nothing-here/pods", sim.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains("\"items\":[]"), "{raw}");
    let v: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["items"], json!([]));
    assert_eq!(rv_of(&v), sim.current_rv());
}

#[tokio::test]
async fn case05_label_and_field_selectors_filter_list_and_watch_alike() {
    let sim = sim(|_| {}).await;
    let objs = [
        ("x", "a-web", "a", "web"),
        ("x", "a-db", "a", "db"),
        ("x", "b-web", "b", "web"),
        ("y", "a-web", "a", "web"),
    ];
    for (ns, name, app, tier) in objs {
        sim.create("pods", pod(ns, name, &[("app", app), ("tier", tier)]))
            .unwrap();
    }
    sim.create("pods", pod("x", "a-none", &[("app", "a")]))
        .unwrap();
    let sel = "labelSelector=app%3Da%2Ctier%21%3Ddb&fieldSelector=metadata.namespace%3Dx";
    let list = get_ok(&format!("{}/api/v1/pods?{sel}", sim.url())).await;
    assert_eq!(keys(&list), ["x/a-none", "x/a-web"]);
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = WatchStream::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={from}&timeoutSeconds=4&{sel}",
        sim.url()
    ))
    .await;
    assert_eq!(w.status, 200);
    sim.create("pods", pod("x", "new-a", &[("app", "a"), ("tier", "web")]))
        .unwrap(); // selected
    sim.create("pods", pod("y", "new-a", &[("app", "a")]))
        .unwrap(); // other ns
    sim.create("pods", pod("x", "new-db", &[("app", "a"), ("tier", "db")]))
        .unwrap(); // tier=db
    sim.replace("pods", pod("x", "a-web", &[("app", "a"), ("tier", "db")]))
        .unwrap(); // leaves the selection
    sim.replace("pods", pod("x", "a-db", &[("app", "a"), ("tier", "web")]))
        .unwrap(); // enters it
    let seen: Vec<(String, String)> = w
        .rest()
        .await
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                key_of(&e["object"]),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("ADDED".to_string(), "x/new-a".to_string()),
            ("DELETED".to_string(), "x/a-web".to_string()),
            ("ADDED".to_string(), "x/a-db".to_string()),
        ]
    );
    // The same selection listed now agrees with what the watch implies.
    let after = get_ok(&format!("{}/api/v1/pods?{sel}", sim.url())).await;
    assert_eq!(keys(&after), ["x/a-db", "x/a-none", "x/new-a"]);
}

#[tokio::test]
async fn case06_rv0_serves_and_exact_of_compacted_rv_is_410() {
    let sim = sim(|c| c.pods = 30).await;
    let any = get_ok(&format!(
        "{}/api/v1/pods?resourceVersion=0&limit=5",
        sim.url()
    ))
    .await;
    // Served from the "cache": the limit is ignored, as a real server may.
    assert_eq!(any["items"].as_array().unwrap().len(), 30);
    let old = sim.current_rv();
    let first_key = key_of(&sim.objects("pods")[0]);
    let (ns, name) = first_key.split_once('/').unwrap();
    sim.delete("pods", Some(ns), name).unwrap();
    let exact = get_ok(&format!(
        "{}/api/v1/pods?resourceVersion={old}&resourceVersionMatch=Exact",
        sim.url()
    ))
    .await;
    assert_eq!(rv_of(&exact), old);
    assert_eq!(
        exact["items"].as_array().unwrap().len(),
        30,
        "the old snapshot"
    );
    let newer = get_ok(&format!(
        "{}/api/v1/pods?resourceVersion={old}&resourceVersionMatch=NotOlderThan",
        sim.url()
    ))
    .await;
    assert_eq!(rv_of(&newer), sim.current_rv());
    assert_eq!(newer["items"].as_array().unwrap().len(), 29);
    sim.compact();
    let (code, status) = get(&format!(
        "{}/api/v1/pods?resourceVersion={old}&resourceVersionMatch=Exact",
        sim.url()
    ))
    .await;
    assert_eq!(code, 410);
    assert_eq!(status["reason"], "Expired");
    // Legacy rule: RV with a limit and no match means Exact.
    let (code, _) = get(&format!(
        "{}/api/v1/pods?resourceVersion={old}&limit=5",
        sim.url()
    ))
    .await;
    assert_eq!(code, 410);
}

#[tokio::test]
async fn case07_watch_from_list_rv_sees_create_update_delete_once_in_order() {
    let sim = sim(|c| c.pods = 10).await;
    let list = get_ok(&format!("{}/api/v1/pods", sim.url())).await;
    let rv = rv_of(&list);
    let mut w = WatchStream::open(&format!(
        "{}/api/v1/pods?watch=true&resourceVersion={rv}&timeoutSeconds=4",
        sim.url()
    ))
    .await;
    let created = sim.create("pods", pod("a", "fresh", &[])).unwrap();
    let updated = sim
        .replace("pods", pod("a", "fresh", &[("v", "2")]))
        .unwrap();
    let deleted = sim.delete("pods", Some("a"), "fresh").unwrap();
    let events = w.rest().await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
    assert_eq!(events[0]["object"], created);
    assert_eq!(events[1]["object"], updated);
    assert_eq!(events[2]["object"], deleted);
    assert_eq!(
        events[0]["object"]["kind"], "Pod",
        "watch objects carry kind"
    );
    let rvs: Vec<u64> = events.iter().map(|e| rv_of(&e["object"])).collect();
    assert_eq!(rvs, [rv + 1, rv + 2, rv + 3]);
}

#[tokio::test]
async fn case08_watch_inside_window_gets_exactly_the_writes_since() {
    let sim = sim(|c| c.pods = 5).await;
    let from = sim.current_rv();
    sim.mutate(3);
    let mut w = WatchStream::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={from}&timeoutSeconds=1",
        sim.url()
    ))
    .await;
    let events = w.rest().await;
    assert_eq!(events.len(), 3, "{events:?}");
    let rvs: Vec<u64> = events.iter().map(|e| rv_of(&e["object"])).collect();
    assert_eq!(rvs, [from + 1, from + 2, from + 3]);
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
    let pods = sim
        .stats()
        .watch_cache
        .into_iter()
        .find(|c| c.resource == "pods")
        .unwrap();
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

#[tokio::test]
async fn case10_deleted_carries_last_state_and_deletion_rv() {
    let sim = sim(|_| {}).await;
    sim.create("pods", pod("a", "p", &[("k", "v1")])).unwrap();
    let last = sim.replace("pods", pod("a", "p", &[("k", "v2")])).unwrap();
    let from = sim.current_rv();
    let mut w = WatchStream::open(&format!(
        "{}/api/v1/namespaces/a/pods?watch=1&resourceVersion={from}&timeoutSeconds=3",
        sim.url()
    ))
    .await;
    sim.delete("pods", Some("a"), "p").unwrap();
    let events = w.rest().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "DELETED");
    let obj = &events[0]["object"];
    assert_eq!(rv_of(obj), from + 1, "deletion's RV");
    let mut expected = last.clone();
    expected["metadata"]["resourceVersion"] = json!((from + 1).to_string());
    assert_eq!(obj, &expected, "last state otherwise");
}

/// cacher.go `dispatchEvents` (with the period shortened to 100 ms, so
/// its buckets shrink too) and cache_watcher.go `nextBookmarkTime`: the
/// last bookmark comes 2 s before the deadline, none after.
#[tokio::test]
async fn case11_bookmarks_only_when_asked_and_never_backwards() {
    let sim = sim(|c| {
        c.pods = 5;
        c.bookmark_interval = Duration::from_millis(100);
    })
    .await;
    let from = sim.current_rv();
    let url = |bm: bool| {
        format!(
            "{}/api/v1/pods?watch=1&resourceVersion={from}&timeoutSeconds=3&allowWatchBookmarks={bm}",
            sim.url()
        )
    };
    let mut with = WatchStream::open(&url(true)).await;
    let mut without = WatchStream::open(&url(false)).await;
    let writer = {
        let sim = sim.clone();
        tokio::spawn(async move {
            for _ in 0..8 {
                sim.mutate(1);
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };
    let with_events = with.rest().await;
    let without_events = without.rest().await;
    writer.await.unwrap();
    let bookmarks: Vec<&Value> = with_events
        .iter()
        .filter(|e| e["type"] == "BOOKMARK")
        .collect();
    // Bookmarks every ~100 ms until the pre-deadline one at 1 s.
    assert!(bookmarks.len() >= 3, "{} bookmarks", bookmarks.len());
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
    let changes = |evs: &[Value]| evs.iter().filter(|e| e["type"] != "BOOKMARK").count();
    assert_eq!(changes(&with_events), changes(&without_events));
    assert_eq!(changes(&with_events), 8);
}

/// cache_watcher.go `nextBookmarkTime` (pre-timeout arm) and `process`:
/// 2 s before `timeoutSeconds` runs out the watcher gets a bookmark of the
/// newest version the cacher has seen, then the stream ends cleanly.
#[tokio::test]
async fn case12_bookmark_before_closing_at_timeout() {
    let sim = sim(|c| c.pods = 2).await;
    let from = sim.current_rv();
    let mut w = WatchStream::open(&format!(
        "{}/api/v1/pods?watch=1&resourceVersion={from}&timeoutSeconds=4&allowWatchBookmarks=true",
        sim.url()
    ))
    .await;
    sim.mutate(2);
    let events = w.rest().await; // ends cleanly: rest() panics on a cut
    assert_eq!(events.len(), 3, "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "BOOKMARK");
    assert_eq!(rv_of(&last["object"]), sim.current_rv());
}

#[tokio::test]
async fn case13_streaming_list_then_end_bookmark_then_changes() {
    let sim = sim(|c| c.pods = 40).await;
    let state_rv = sim.current_rv();
    let mut w = WatchStream::open(&format!(
        "{}/api/v1/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2",
        sim.url()
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
        added.push(ev["object"].clone());
    };
    let expected: Vec<String> = sim.objects("pods").iter().map(key_of).collect();
    assert_eq!(added.iter().map(key_of).collect::<Vec<_>>(), expected);
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(rv_of(&end["object"]), state_rv);
    let made = sim.create("pods", pod("z", "live", &[])).unwrap();
    let live = w.next_change().await;
    assert_eq!(live["type"], "ADDED");
    assert_eq!(live["object"], made);
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

#[tokio::test]
async fn case17_namespace_watch_sees_only_its_namespace() {
    let sim = sim(|_| {}).await;
    let from = sim.current_rv();
    let mut w = WatchStream::open(&format!(
        "{}/api/v1/namespaces/mine/pods?watch=1&resourceVersion={from}&timeoutSeconds=3",
        sim.url()
    ))
    .await;
    sim.create("pods", pod("other", "a", &[])).unwrap();
    sim.create("pods", pod("mine", "a", &[])).unwrap();
    sim.create("pods", pod("mine2", "a", &[])).unwrap();
    sim.delete("pods", Some("other"), "a").unwrap();
    sim.create(
        "configmaps",
        json!({"metadata": {"name": "c", "namespace": "mine"}}),
    )
    .unwrap();
    let events = w.rest().await;
    let seen: Vec<String> = events.iter().map(|e| key_of(&e["object"])).collect();
    assert_eq!(seen, ["mine/a"]);
}

#[tokio::test]
async fn case18_discovery_documents() {
    let sim = sim(|_| {}).await;
    let version = get_ok(&format!("{}/version", sim.url())).await;
    assert_eq!(version["major"], "1");
    let api = get_ok(&format!("{}/api", sim.url())).await;
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
    let v1 = get_ok(&format!("{}/api/v1", sim.url())).await;
    assert_eq!(v1["kind"], "APIResourceList");
    assert_eq!(v1["groupVersion"], "v1");
    let names: BTreeSet<&str> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["configmaps", "namespaces", "nodes", "pods", "secrets"].into()
    );
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
    assert!(pods["verbs"].as_array().unwrap().contains(&json!("watch")));
    let apis = get_ok(&format!("{}/apis", sim.url())).await;
    assert_eq!(apis["kind"], "APIGroupList");
    let group = &apis["groups"][0];
    let gv = group["preferredVersion"]["groupVersion"].as_str().unwrap();
    let custom = get_ok(&format!("{}/apis/{gv}", sim.url())).await;
    assert_eq!(custom["resources"][0]["kind"], "Widget");
    // The custom resource is served like the built-in ones.
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
    let (code, _) = get(&format!("{}/apis/nope.example/v1", sim.url())).await;
    assert_eq!(code, 404);
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
    let resp = http()
        .patch(&obj_url)
        .header("content-type", "application/merge-patch+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = http()
        .patch(&obj_url)
        .header("content-type", "application/apply-patch+yaml")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    let huge = format!(
        "{{\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"x\":\"{}\"}}}}",
        "a".repeat(4 * 1024 * 1024)
    );
    let resp = http()
        .post(format!("{u}/api/v1/namespaces/a/configmaps"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let status: Value = resp.json().await.unwrap();
    assert_eq!(status["reason"], "RequestEntityTooLarge");
    let resp = http()
        .post(format!("{u}/api/v1/namespaces/a/configmaps"))
        .body("[1,2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = http()
        .delete(format!("{u}/api/v1/namespaces/a/pods"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
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
/// (`errUnsupportedMediaType`), not 400: client-go, which sends protobuf
/// for built-in types, retries in JSON on exactly that answer. No
/// Content-Type means JSON (`NegotiateInputSerializer`).
#[tokio::test]
async fn unreadable_content_types_are_415_with_a_status() {
    let sim = sim(|_| {}).await;
    let url = format!("{}/api/v1/namespaces/ns-000/configmaps", sim.url());
    for ct in [
        "application/vnd.kubernetes.protobuf",
        "application/yaml",
        "text/plain",
    ] {
        let resp = http()
            .post(&url)
            .header("content-type", ct)
            .body(&b"k8s\x00\x0a\x0f\x0a\x02v1"[..])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 415, "{ct}");
        let status: Value = resp.json().await.unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "UnsupportedMediaType");
        assert_eq!(status["code"], 415);
        assert_eq!(
            status["message"],
            "the body of the request was in an unknown format - accepted media types include: application/json"
        );
    }
    let put = http()
        .put(format!("{url}/x"))
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body("k8s")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 415);
    let untyped = http()
        .post(&url)
        .body(r#"{"metadata":{"name":"untyped"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(untyped.status().as_u16(), 201, "no Content-Type is JSON");
    let with_charset = http()
        .post(&url)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"metadata":{"name":"charset"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(with_charset.status().as_u16(), 201);
    assert_eq!(
        sim.objects("configmaps").len(),
        2,
        "nothing written by the refused ones"
    );
}

#[tokio::test]
async fn writes_over_http_create_replace_patch_delete() {
    let sim = sim(|_| {}).await;
    let u = format!("{}/api/v1/namespaces/a/configmaps", sim.url());
    let resp = http()
        .post(&u)
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["metadata"]["namespace"], "a");
    assert!(created["metadata"]["uid"].is_string());
    let dup = http().post(&u).json(&created).send().await.unwrap();
    assert_eq!(dup.status().as_u16(), 409);
    let mut stale = created.clone();
    stale["data"]["k"] = json!("2");
    let ok = http()
        .put(format!("{u}/c"))
        .json(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let replaced: Value = ok.json().await.unwrap();
    assert_eq!(rv_of(&replaced), rv_of(&created) + 1);
    let conflict = http()
        .put(format!("{u}/c"))
        .json(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status().as_u16(), 409, "stale resourceVersion");
    let patched: Value = http()
        .patch(format!("{u}/c"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"data":{"k":null,"n":"3"}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["data"], json!({"n": "3"}));
    let jp: Value = http()
        .patch(format!("{u}/c"))
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op":"add","path":"/data/m","value":"4"}]"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jp["data"], json!({"m": "4", "n": "3"}));
    let gone: Value = http()
        .delete(format!("{u}/c"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(gone["data"], jp["data"]);
    assert_eq!(get(&format!("{u}/c")).await.0, 404);
    // create, replace, merge patch, json patch, delete: five versions.
    assert_eq!(rv_of(&gone), rv_of(&created) + 4);
    assert_eq!(sim.stats().write_requests, 7);
}

#[tokio::test]
async fn control_endpoints_over_http() {
    let sim = sim(|c| c.pods = 4).await;
    let stats: SimStats = http()
        .get(format!("{}/sim/stats", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.current_rv, sim.current_rv());
    assert_eq!(stats.objects, sim.stats().objects);
    let resp = http()
        .post(format!("{}/sim/faults", sim.url()))
        .body(r#"{"status":{"code":503,"count":1,"retry_after":null}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(get(&format!("{}/api/v1/pods", sim.url())).await.0, 503);
    let bad = http()
        .post(format!("{}/sim/faults", sim.url()))
        .body(r#"{"explode":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let old = sim.current_rv();
    sim.mutate(2);
    let c: Value = http()
        .post(format!(
            "{}/sim/compact?resourceVersion={}",
            sim.url(),
            old + 1
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["compactedRV"], old + 1);
    assert_eq!(sim.stats().compacted_rv, old + 1);
    let c: Value = http()
        .post(format!("{}/sim/compact", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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

/// A Secret's `stringData` is write-only on a real API server: each value is
/// base64-encoded into `data` (winning over a `data` key of the same name)
/// and `stringData` is never stored, whether written by POST, PUT or PATCH.
#[tokio::test]
async fn secret_string_data_is_folded_into_data_on_every_write() {
    let sim = sim(|_| {}).await;
    let base = format!("{}/api/v1/namespaces/default/secrets", sim.url());
    let send = |req: reqwest::RequestBuilder| async move {
        let resp = req.send().await.expect("request");
        let code = resp.status().as_u16();
        let body: Value = resp.json().await.expect("JSON body");
        assert!((200..300).contains(&code), "{code}: {body}");
        body
    };
    let created = send(http().post(&base).json(&json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"user": "b2xk", "keep": "a2VlcA=="},
        "stringData": {"user": "admin", "password": "hunter2"}
    })))
    .await;
    let want = json!({"user": "YWRtaW4=", "password": "aHVudGVyMg==", "keep": "a2VlcA=="});
    assert_eq!(created["data"], want);
    assert_eq!(created.get("stringData"), None);
    let stored = get_ok(&format!("{base}/creds")).await;
    assert_eq!(stored["data"], want);
    assert_eq!(stored.get("stringData"), None);

    // PUT: the body's stringData lands in data.
    let mut body = stored.clone();
    body["stringData"] = json!({"token": "t0k"});
    let replaced = send(http().put(format!("{base}/creds")).json(&body)).await;
    assert_eq!(replaced["data"]["token"], "dDBr");
    assert_eq!(replaced["data"]["user"], "YWRtaW4=");
    assert_eq!(replaced.get("stringData"), None);

    // PATCH (merge): likewise.
    let patched = send(
        http()
            .patch(format!("{base}/creds"))
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"stringData": {"user": "root"}}"#),
    )
    .await;
    assert_eq!(patched["data"]["user"], "cm9vdA==");
    assert_eq!(patched["data"]["token"], "dDBr");
    assert_eq!(patched.get("stringData"), None);
    assert_eq!(get_ok(&format!("{base}/creds")).await, patched);

    // A stringData value that is not a string is refused, as by the server.
    let resp = http()
        .post(&base)
        .json(&json!({"metadata": {"name": "bad"}, "stringData": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    sim.shutdown().await;
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
    let created: Value = http()
        .post(format!("{url}?fieldManager=tester"))
        .header("content-type", "application/json")
        .body(r#"{"metadata":{"name":"cm","labels":{"app":"a"}},"data":{"k":"1","j":"2"}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let too_long = http()
        .post(format!("{url}?fieldManager={}", "x".repeat(129)))
        .header("content-type", "application/json")
        .body(r#"{"metadata":{"name":"cm2"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status().as_u16(), 422);
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
    let resp = http()
        .patch(&url)
        .header("content-type", "application/strategic-merge-patch+json")
        .body(
            json!({"spec": {"containers": [
                {"name": "b", "image": "b:2"},
                {"name": "a", "ports": [{"containerPort": 8080}]},
            ], "tolerations": [{"key": "t2"}]}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
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
    let widget = kube_persist::sim::fixtures::widget("ns-000", "w", 1);
    sim.create("widgets", widget).unwrap();
    let resp = http()
        .patch(format!(
            "{}/apis/{}/v1/namespaces/ns-000/widgets/w",
            sim.url(),
            kube_persist::sim::resources::CUSTOM_GROUP
        ))
        .header("content-type", "application/strategic-merge-patch+json")
        .body(r#"{"spec":{"size":2}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    let status: Value = resp.json().await.unwrap();
    assert_eq!(
        status["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json"
    );
}
