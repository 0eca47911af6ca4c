//! The informer against the simulator: resume without LIST (I3), relist by
//! diff (I4), events after commit (I2), empty namespaces (I6), durable
//! consumers (I8), wait_for_rv, paging, and the faults of LISTWATCH 15–16.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::informer::{assert_converged, pod, pods, sim};
use futures::StreamExt;
use kube_persist::informer::{EventKind, Informer, ResourceSpec, State};
use kube_persist::sim::Fault;
use kube_persist::store::ObjectKey;

/// Drains a consumer until it has been quiet for a while.
async fn drain(
    consumer: &mut kube_persist::informer::Consumer,
) -> Vec<kube_persist::informer::Event> {
    let mut out = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), consumer.next()).await
    {
        out.push(ev.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_valid_rv_watches_without_listing_and_delivers_only_the_changes() {
    let sim = sim(300, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");

    let informer = pods(&sim, &store)
        .streaming_list(false)
        .page_size(50)
        .start()
        .await
        .unwrap();
    assert_eq!(informer.state(), State::Empty);
    informer.wait_until_synced().await.unwrap();
    assert_converged(&sim, &informer).await;
    assert_eq!(
        informer.opened_state(),
        &State::Empty,
        "a fresh store opened empty, and stays so recorded once synced"
    );
    assert!(
        informer.metrics().list_requests >= 6,
        "300 pods in pages of 50"
    );
    let mut consumer = informer.consumer("app").await.unwrap();
    let initial = drain(&mut consumer).await;
    assert_eq!(
        initial.len(),
        300,
        "a new consumer sees the initial Added events"
    );
    consumer.ack(initial.last().unwrap().seq).await.unwrap();
    drop(consumer);
    informer.shutdown().await;

    let rv_down = sim.current_rv();
    sim.mutate(100);
    let writes = sim.current_rv() - rv_down;
    let lists_before = sim.stats().list_requests;
    // The first watch is turned away for 3 s, so that nothing of the 100
    // writes can be applied before the checks of what was read from disk,
    // however the threads are scheduled.
    sim.inject(Fault::Status {
        code: 429,
        count: 1,
        retry_after: Some(3),
    });

    let informer = pods(&sim, &store)
        .streaming_list(false)
        .start()
        .await
        .unwrap();
    assert!(
        matches!(informer.state(), State::Restored { .. }),
        "readable from disk before any request"
    );
    assert_eq!(informer.len(), 300, "reads work before sync");
    informer.wait_until_synced().await.unwrap();
    assert_converged(&sim, &informer).await;
    match informer.opened_state() {
        State::Restored { rv, saved_at } => {
            let rv: u64 = rv.parse().unwrap();
            assert!(rv <= rv_down, "the stored RV {rv}, not a later one");
            assert!(saved_at.is_some(), "the time of the last stored batch");
        }
        other => panic!("opened restored, recorded as {other:?}"),
    }
    assert_eq!(
        sim.stats().list_requests,
        lists_before,
        "no LIST on resume (I3)"
    );
    assert_eq!(informer.metrics().list_requests, 0);

    let mut consumer = informer.consumer("app").await.unwrap();
    let events = drain(&mut consumer).await;
    assert_eq!(
        events.len() as u64,
        writes,
        "exactly the writes made while down, no Added storm"
    );
    let mut seqs: Vec<_> = events.iter().map(|e| e.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), events.len(), "each once");
    assert!(
        events.iter().all(|e| e.seq > initial.last().unwrap().seq),
        "nothing acknowledged comes again (I8)"
    );
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_compaction_relists_by_diff() {
    let sim = sim(200, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let informer = pods(&sim, &store).start().await.unwrap();
    informer.wait_until_synced().await.unwrap();
    let mut consumer = informer.consumer("c").await.unwrap();
    let initial = drain(&mut consumer).await;
    consumer.ack(initial.last().unwrap().seq).await.unwrap();
    drop(consumer);
    informer.shutdown().await;

    // While down: 3 creates, 2 updates, 2 deletes; then history is compacted.
    for i in 0..3 {
        sim.create("pods", pod("ns-0", &format!("new-{i}")))
            .unwrap();
    }
    let server = sim.objects("pods");
    let (a, b, c, d) = (&server[10], &server[20], &server[30], &server[40]);
    for obj in [a, b] {
        let mut changed = obj.clone();
        changed["metadata"]["labels"]["changed"] = "yes".into();
        sim.replace("pods", changed).unwrap();
    }
    let key = |o: &serde_json::Value| ObjectKey {
        namespace: o["metadata"]["namespace"].as_str().map(str::to_string),
        name: o["metadata"]["name"].as_str().unwrap().to_string(),
    };
    for obj in [c, d] {
        let k = key(obj);
        sim.delete("pods", k.namespace.as_deref(), &k.name).unwrap();
    }
    sim.compact();

    let informer = pods(&sim, &store).start().await.unwrap();
    informer.wait_until_synced().await.unwrap();
    assert_converged(&sim, &informer).await;
    let m = informer.metrics();
    assert!(m.gone >= 1, "the stored RV was compacted: {m:?}");
    assert_eq!(m.relists, 1);

    let mut consumer = informer.consumer("c").await.unwrap();
    let events = drain(&mut consumer).await;
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events {
        by_kind
            .entry(format!("{:?}", e.kind))
            .or_default()
            .push(e.key.to_string());
    }
    let added = &by_kind["Added"];
    assert_eq!(
        added.len(),
        3,
        "no Added for unchanged objects: {by_kind:?}"
    );
    assert!(added.iter().all(|k| k.starts_with("ns-0/new-")));
    assert_eq!(by_kind["Modified"].len(), 2);
    let mut deleted = by_kind["Deleted"].clone();
    deleted.sort();
    let mut want = vec![key(c).to_string(), key(d).to_string()];
    want.sort();
    assert_eq!(deleted, want, "each delete-while-away exactly once");
    assert_eq!(events.len(), 7);
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_page_list_with_writes_during_paging_and_an_expiring_continue_token() {
    let sim = sim(1000, 20).await;
    let dir = tempfile::tempdir().unwrap();
    // A thread watches the server's LIST counter: at page 5 it writes, at
    // page 10 it writes and compacts, expiring the token of the list in
    // progress (1000 pods in pages of 5: 200 pages per attempt).
    let meddler = {
        let sim = sim.clone();
        std::thread::spawn(move || {
            let wait_for = |n| {
                while sim.stats().list_requests < n {
                    std::hint::spin_loop();
                }
            };
            wait_for(5);
            sim.mutate(20);
            wait_for(10);
            sim.mutate(20);
            sim.compact();
            wait_for(30);
            sim.mutate(20);
        })
    };
    let informer = pods(&sim, &dir.path().join("s"))
        .streaming_list(false)
        .page_size(5)
        .start()
        .await
        .unwrap();
    informer.wait_until_synced().await.unwrap();
    meddler.join().unwrap();
    assert_converged(&sim, &informer).await;
    let m = informer.metrics();
    assert!(m.gone >= 1, "the continue token expired: {m:?}");
    assert!(
        m.list_requests >= 200 + 10,
        "restarted from scratch after the expiry: {m:?}"
    );
    assert_eq!(m.relists, 1, "only the complete second list was applied");
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_reads_its_object_empty_namespace_lists_empty_and_wait_for_rv() {
    let sim = sim(50, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let informer = pods(&sim, &dir.path().join("s")).start().await.unwrap();
    informer.wait_until_synced().await.unwrap();

    // I6: a namespace without pods lists as empty, not as an error.
    assert_eq!(
        informer.list_namespace("no-such-namespace").unwrap(),
        Vec::<serde_json::Value>::new()
    );
    assert!(!informer.list_namespace("ns-000").unwrap().is_empty());

    // I2: the handler sees the object in the store when its event arrives.
    let mut events = Box::pin(informer.subscribe());
    let created = sim.create("pods", pod("ns-001", "fresh")).unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.kind, ev.key.to_string()),
        (EventKind::Added, "ns-001/fresh".to_string())
    );
    let stored = informer
        .get(&ev.key)
        .unwrap()
        .expect("committed before delivery");
    assert_eq!(
        stored["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    // wait_for_rv: read-your-writes after a client write.
    let mut changed = created.clone();
    changed["metadata"]["labels"]["v"] = "2".into();
    let replaced = sim.replace("pods", changed).unwrap();
    let rv = replaced["metadata"]["resourceVersion"].as_str().unwrap();
    tokio::time::timeout(Duration::from_secs(10), informer.wait_for_rv(rv))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        informer.get(&ev.key).unwrap().unwrap()["metadata"]["labels"]["v"],
        "2"
    );
    assert!(informer.wait_for_rv("not-a-number").await.is_err());

    let text = informer.metrics_text();
    assert!(text.contains("kube_persist_events_applied_total{resource=\"pods\"}"));
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watch_fault_is_survived_with_the_store_equal_to_the_server() {
    let sim = sim(100, 4).await;
    let dir = tempfile::tempdir().unwrap();
    // Short watches so each injected fault meets the next re-watch soon.
    let informer = pods(&sim, &dir.path().join("s"))
        .configure(|c| {
            c.watch_timeout_secs = 1;
            c.stall_timeout = Duration::from_millis(1500);
        })
        .start()
        .await
        .unwrap();
    informer.wait_until_synced().await.unwrap();
    let faults = [
        Fault::Status {
            code: 429,
            count: 2,
            retry_after: Some(1),
        },
        Fault::Status {
            code: 500,
            count: 2,
            retry_after: None,
        },
        Fault::CutAfter(3),
        Fault::CutMidLine,
        Fault::Stall(Duration::from_secs(3)),
        Fault::MalformedLine,
        Fault::UnknownEventType,
    ];
    for fault in faults {
        sim.inject(fault.clone());
        for _ in 0..5 {
            sim.mutate(4);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_converged(&sim, &informer).await;
        eprintln!("survived {fault:?}: {:?}", informer.metrics());
    }
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_redelivers_every_stored_object_without_api_calls() {
    let sim = sim(20, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let informer = pods(&sim, &dir.path().join("s"))
        .resync(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    informer.wait_until_synced().await.unwrap();
    let mut events = Box::pin(informer.subscribe());
    let before = sim.stats();

    // Collect Resync events until every stored pod has been redelivered once.
    let mut seen = BTreeMap::new();
    while seen.len() < 20 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("a resync arrives")
            .unwrap()
            .unwrap();
        assert_eq!(ev.kind, EventKind::Resync, "no change was made: {ev:?}");
        let stored = informer
            .get(&ev.key)
            .unwrap()
            .expect("resync of a stored object");
        assert_eq!(ev.new.as_ref(), Some(&stored));
        *seen.entry(ev.key.to_string()).or_insert(0u32) += 1;
    }
    assert_eq!(seen.len(), 20);
    let after = sim.stats();
    assert_eq!(
        after.list_requests, before.list_requests,
        "resync makes no LIST"
    );
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_switched_off_on_the_server_falls_back_to_paginated_list() {
    let sim = kube_persist::sim::Simulator::start(kube_persist::sim::SimConfig {
        pods: 120,
        namespaces: 3,
        watch_list: false,
        page_size_max: 50,
        bookmark_interval: Duration::from_millis(200),
        ..kube_persist::sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let informer = pods(&sim, &dir.path().join("s"))
        .streaming_list(true)
        .page_size(50)
        .start()
        .await
        .unwrap();
    informer.wait_until_synced().await.unwrap();
    assert_converged(&sim, &informer).await;
    // 120 pods in pages of at most 50: at least three LIST pages were served.
    assert!(sim.stats().list_requests >= 3, "{:?}", sim.stats());
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_resolves_by_any_kubectl_name_and_its_short_names_are_stored() {
    let sim = sim(0, 1).await;
    let client = sim.client();
    for name in [
        "widgets",
        "widget",
        "Widget",
        "wd",
        "WD",
        "widgets.example.kube-persist.dev",
        "wd.example.kube-persist.dev",
        "wd.v1.example.kube-persist.dev",
    ] {
        let spec = ResourceSpec::resolve(&client, name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (
                spec.api.group.as_str(),
                spec.api.version.as_str(),
                spec.api.plural.as_str(),
                spec.api.kind.as_str()
            ),
            ("example.kube-persist.dev", "v1", "widgets", "Widget"),
            "{name}"
        );
        assert!(spec.namespaced);
        assert_eq!(spec.short_names, Some(vec!["wd".to_string()]));
    }
    for unknown in [
        "gizmos",
        "wd.other.io",
        "wd.v2.example.kube-persist.dev",
        "pods/status",
        // Built in, but of a group the simulator does not serve.
        "deploy",
        "deployments",
    ] {
        let err = ResourceSpec::resolve(&client, unknown).await.unwrap_err();
        assert!(err.to_string().contains(unknown), "{unknown}: {err}");
    }

    sim.create(
        "widgets",
        kube_persist::sim::fixtures::widget("ns-000", "w1", 1),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let discovered = ResourceSpec::resolve(&client, "wd").await.unwrap();
    let with_names = |names: Option<&[&str]>| ResourceSpec {
        short_names: names.map(|n| n.iter().map(|s| s.to_string()).collect()),
        ..discovered.clone()
    };
    // What each start records: discovery's names replace the recorded ones
    // (the CRD may have changed them); a spec not from discovery keeps them.
    for (spec, recorded) in [
        (discovered.clone(), vec!["wd"]),
        (with_names(None), vec!["wd"]),
        (with_names(Some(&["w", "wdg"])), vec!["w", "wdg"]),
        (with_names(Some(&[])), vec![]),
    ] {
        let informer = Informer::builder(client.clone(), spec.clone())
            .store_path(&path)
            .start()
            .await
            .unwrap();
        informer.wait_until_synced().await.unwrap();
        assert_eq!(informer.list().unwrap().len(), 1);
        let id = informer.id().clone();
        informer.shutdown().await;
        let store = kube_persist::store::Store::open(&path).unwrap();
        assert_eq!(store.short_names(&id).unwrap(), recorded, "{spec:?}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_the_server_would_refuse_fails_start_before_the_store_is_opened() {
    use kube_persist::informer::Error;
    use kube_persist::watcher;

    let sim = sim(3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    for (labels, fields, named) in [
        (Some("a in (b"), None, "\"a in (b\""),
        (None, Some("bogus"), "\"bogus\""),
        (
            Some("app=x"),
            Some("metadata.name=a,b"),
            "\"metadata.name=a,b\"",
        ),
    ] {
        let mut builder = pods(&sim, &path);
        if let Some(l) = labels {
            builder = builder.labels(l);
        }
        if let Some(f) = fields {
            builder = builder.fields(f);
        }
        let Err(err) = builder.start().await else {
            panic!("{labels:?} {fields:?} started");
        };
        assert!(
            matches!(err, Error::Watcher(watcher::Error::Selector(_))),
            "{err}"
        );
        assert!(err.to_string().contains(named), "{err}");
    }
    // Refused before the store was opened: no collection registered.
    assert!(!path.exists());

    // The server's syntax passes, and selects.
    let informer = pods(&sim, &path)
        .labels("app!=nothing-has-this")
        .fields("metadata.namespace==ns-000,metadata.name!=x")
        .start()
        .await
        .unwrap();
    informer.wait_until_synced().await.unwrap();
    assert_eq!(informer.len(), 3);
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_tells_an_unknown_resource_from_an_unreachable_server() {
    use kube_persist::informer::Error;

    let sim = sim(0, 1).await;
    let client = sim.client();
    let err = ResourceSpec::resolve(&client, "gizmo").await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownResource { name, failed } if name == "gizmo" && failed.is_empty()),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the server has no resource named \"gizmo\""
    );
    let err = ResourceSpec::resolve(&client, " ").await.unwrap_err();
    assert!(matches!(err, Error::EmptyResource), "{err}");
    sim.shutdown().await;

    // A port nothing listens on: connection refused, at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let err = ResourceSpec::resolve(&client, "gizmo").await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().starts_with("cannot reach the API server"),
        "{err}"
    );
}
