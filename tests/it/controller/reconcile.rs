//! The controller against the simulator, in process: what it reconciles on
//! a first start and after restarts (I14), durable failures and requeues,
//! related resources, the workqueue's guarantees, graceful shutdown, and
//! the setups it refuses.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::support::controller::{
    changed, pod_controller, server_versions, until, Recorder, Running,
};
use crate::support::informer::{pods, sim};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::reflector::ObjectRef;
use kube_persist::controller::{Config, Controller, RateLimit, SetupError};
use kube_persist::informer::{Informer, ResourceSpec};
use kube_persist::sim::Simulator;
use serde_json::json;

async fn synced(sim: &Simulator, store: &std::path::Path) -> Informer {
    let informer = pods(sim, store).start().await.unwrap();
    informer.wait_until_synced().await.unwrap();
    informer
        .wait_for_rv(&sim.current_rv().to_string())
        .await
        .unwrap();
    informer
}

fn all_keys(sim: &Simulator) -> BTreeSet<String> {
    server_versions(sim).into_keys().collect()
}

/// A simulator of `pods` pods, an informer synced with it in a new store,
/// and the "edge" controller's first start done.
async fn first_synced(pods: usize, namespaces: usize) -> (Simulator, tempfile::TempDir, Informer) {
    let sim = sim(pods, namespaces).await;
    let dir = tempfile::tempdir().unwrap();
    let informer = synced(&sim, &dir.path().join("s")).await;
    reconcile_until(&informer, "first sync", |r| r.count() == pods).await;
    (sim, dir, informer)
}

/// Runs the "edge" controller until `done` holds of what it reconciled,
/// then stops it gracefully.
async fn reconcile_until(
    informer: &Informer,
    what: &str,
    done: impl Fn(&Recorder) -> bool,
) -> Arc<Recorder> {
    named_until(informer, "edge", what, done).await
}

/// Runs the controller `name` until `done` holds, then stops it.
async fn named_until(
    informer: &Informer,
    name: &str,
    what: &str,
    done: impl Fn(&Recorder) -> bool,
) -> Arc<Recorder> {
    let rec = Arc::new(Recorder::default());
    let run = Running::start(pod_controller(informer, name), rec.clone());
    until(what, &rec, done).await;
    run.stop().await;
    rec
}

/// The "edge" controller, started now, owes nothing: it reconciles nothing
/// in half a second.
async fn assert_owes_nothing(informer: &Informer) {
    let rec = Arc::new(Recorder::default());
    let run = Running::start(pod_controller(informer, "edge"), rec.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.stop().await;
    assert_eq!(rec.count(), 0, "no reconcile storm: {:?}", rec.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reconciles_only_what_changed_while_down() {
    let sim = sim(200, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");

    // First start: every object, once.
    let informer = synced(&sim, &store).await;
    let rec = reconcile_until(&informer, "every pod reconciled", |r| {
        r.keys() == all_keys(&sim)
    })
    .await;
    assert_eq!(rec.count(), 200, "each pod once on a first start");
    informer.shutdown().await;

    // A restart with nothing changed: nothing to do.
    let informer = synced(&sim, &store).await;
    assert_owes_nothing(&informer).await;
    informer.shutdown().await;

    // Changes while down: exactly the changed keys (deleted ones are gone).
    let before = server_versions(&sim);
    sim.mutate(30);
    let expected = changed(&before, &server_versions(&sim));
    assert!(!expected.is_empty());
    let informer = synced(&sim, &store).await;
    let rec = Arc::new(Recorder::default());
    let run = Running::start(pod_controller(&informer, "edge"), rec.clone());
    until("the changed pods reconciled", &rec, |r| {
        r.keys().is_superset(&expected)
    })
    .await;
    // Changes made while it runs are reconciled too.
    let before = server_versions(&sim);
    sim.mutate(10);
    let live = changed(&before, &server_versions(&sim));
    until("the live changes reconciled", &rec, |r| {
        r.keys().is_superset(&live)
    })
    .await;
    run.stop().await;
    let expected: BTreeSet<String> = expected.union(&live).cloned().collect();
    assert_eq!(rec.keys(), expected, "nothing unchanged was reconciled");

    // A second controller on the same informer has its own progress: new,
    // it reconciles everything.
    named_until(
        &informer,
        "audit",
        "every pod reconciled by the new controller",
        |r| r.keys() == all_keys(&sim),
    )
    .await;
    informer.shutdown().await;
    sim.shutdown().await;
}

/// Pods written several times while the controller was down come back in
/// one replay. The informer reads the replay as one batch, and the
/// controller takes each committed batch whole before starting any key, so
/// each pod is reconciled once, at its last version, with no debounce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_written_several_times_while_down_are_reconciled_once_without_a_debounce() {
    let (sim, dir, informer) = first_synced(100, 2).await;
    informer.shutdown().await;
    let written: Vec<(String, String)> = sim
        .objects("pods")
        .iter()
        .take(40)
        .map(|p| {
            let meta = &p["metadata"];
            (
                meta["namespace"].as_str().unwrap().to_string(),
                meta["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Round by round, so each pod's writes are spread over the replay.
    for round in 0..3 {
        for (ns, name) in &written {
            let labels = json!({"metadata": {"labels": {"round": round.to_string()}}});
            sim.patch("pods", Some(ns), name, &labels).unwrap();
        }
    }
    let keys: BTreeSet<String> = written.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
    let last = server_versions(&sim);

    // The replay (120 events) is sent at once; a catch-up gap no stall of a
    // loaded machine reaches keeps this test about the mechanism.
    let informer = pods(&sim, &dir.path().join("s"))
        .configure(|c| c.catch_up_gap = Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let rec = Arc::new(Recorder::default());
    let run = Running::start(pod_controller(&informer, "edge"), rec.clone());
    until("the written pods reconciled", &rec, |r| r.keys() == keys).await;
    informer.wait_until_synced().await.unwrap();
    // Room for a second reconcile, were one coming.
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.stop().await;
    assert_eq!(rec.keys(), keys, "only the written pods");
    assert_eq!(rec.count(), keys.len(), "each written pod once");
    for seen in rec.seen.lock().unwrap().iter() {
        assert_eq!(
            Some(&seen.rv),
            last.get(&seen.key),
            "{} at its last version",
            seen.key
        );
    }
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debounced_controller_reconciles_a_burst_of_changes_once() {
    let debounce = Duration::from_secs(2);
    let (sim, _dir, informer) = first_synced(20, 1).await;
    let pod = sim.objects("pods")[0].clone();
    let (ns, name) = (
        pod["metadata"]["namespace"].as_str().unwrap().to_string(),
        pod["metadata"]["name"].as_str().unwrap().to_string(),
    );
    let key = format!("{ns}/{name}");
    let rec = Arc::new(Recorder::default());
    let controller = pod_controller(&informer, "edge")
        .with_config(
            Config::default()
                .commit_interval(Duration::from_millis(20))
                .debounce(debounce),
        )
        .unwrap();
    let run = Running::start(controller, rec.clone());
    // Five changes 100 ms apart: each arrives on its own, and each pushes
    // the reconcile back.
    for i in 0..5 {
        sim.patch(
            "pods",
            Some(&ns),
            &name,
            &json!({"metadata": {"labels": {"burst": i.to_string()}}}),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last_change = SystemTime::now() - Duration::from_millis(100);
    let last_rv = sim.get("pods", Some(&ns), &name).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    until("the burst reconciled", &rec, |r| r.count() >= 1).await;
    // Long enough for a second reconcile, were one coming.
    tokio::time::sleep(debounce + Duration::from_millis(500)).await;
    run.stop().await;
    let times = rec.times_of(&key);
    assert_eq!(
        times.len(),
        1,
        "one reconcile for the burst: {:?}",
        rec.keys()
    );
    assert_eq!(rec.count(), 1, "only the changed pod: {:?}", rec.keys());
    assert!(
        times[0] >= last_change + debounce,
        "reconciled {:?} after the last change, before the debounce of {debounce:?} ran out",
        times[0].duration_since(last_change).unwrap_or_default()
    );
    let seen = rec.seen.lock().unwrap()[0].rv.clone();
    assert_eq!(seen, last_rv, "the reconcile saw the last change");
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_requeued_keys_survive_a_restart() {
    let sim = sim(50, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let keys: Vec<String> = all_keys(&sim).into_iter().collect();
    let (failing, requeued) = (keys[3].clone(), keys[7].clone());

    let informer = synced(&sim, &store).await;
    let rec = Arc::new(Recorder::default());
    rec.fail.lock().unwrap().insert(failing.clone());
    rec.requeue
        .lock()
        .unwrap()
        .insert(requeued.clone(), Duration::from_secs(5));
    let run = Running::start(pod_controller(&informer, "edge"), rec.clone());
    until("every pod tried", &rec, |r| r.keys().len() == 50).await;
    until("the failing pod retried with backoff", &rec, |r| {
        r.times_of(&failing).len() >= 3
    })
    .await;
    let results = run.stop().await;
    let requeued_at = rec.times_of(&requeued)[0];
    assert_eq!(
        rec.times_of(&requeued).len(),
        1,
        "its requeue is not due yet"
    );
    assert!(results.iter().any(|r| matches!(
        r,
        Err(kube_persist::controller::Error::ReconcilerFailed(..))
    )));
    assert!(results.iter().any(|r| matches!(r, Ok((o, a)) if o.name == requeued.split('/').nth(1).unwrap() && a.requeue_after() == Some(Duration::from_secs(5)))));
    informer.shutdown().await;

    // Restart: the failed key at once, the requeued one when due, nothing
    // else.
    let informer = synced(&sim, &store).await;
    let rec = Arc::new(Recorder::default());
    let run = Running::start(pod_controller(&informer, "edge"), rec.clone());
    until("the failed pod retried", &rec, |r| {
        r.keys().contains(&failing)
    })
    .await;
    until("the requeued pod due", &rec, |r| {
        r.keys().contains(&requeued)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.stop().await;
    assert_eq!(
        rec.keys(),
        BTreeSet::from([failing.clone(), requeued.clone()]),
        "only what was owed"
    );
    let again = rec.times_of(&requeued)[0];
    assert!(
        again >= requeued_at + Duration::from_secs(5),
        "the requeue kept its due time across the restart: {:?} after",
        again.duration_since(requeued_at)
    );
    informer.shutdown().await;

    // Both succeeded with await_change: a third start owes nothing.
    let informer = synced(&sim, &store).await;
    assert_owes_nothing(&informer).await;
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_trimmed_past_the_controller_reconciles_everything() {
    let (sim, dir, informer) = first_synced(60, 2).await;
    let store = dir.path().join("s");
    sim.mutate(5);
    informer
        .wait_for_rv(&sim.current_rv().to_string())
        .await
        .unwrap();
    // The changes are journaled, then trimmed away before the controller
    // sees them: it cannot tell which keys they were. Only the driver
    // writes through the API; the test trims beside it.
    informer.collection_for_tests().compact_journal(0).unwrap();
    reconcile_until(&informer, "every pod reconciled again", |r| {
        r.keys() == all_keys(&sim)
    })
    .await;
    informer.shutdown().await;

    // The full resync finished: the next start owes nothing.
    let informer = synced(&sim, &store).await;
    let rec = Arc::new(Recorder::default());
    let run = Running::start(pod_controller(&informer, "edge"), rec.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.stop().await;
    assert_eq!(rec.count(), 0);
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_never_runs_twice_at_once_and_concurrency_is_bounded() {
    let sim = sim(40, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let informer = synced(&sim, &dir.path().join("s")).await;
    let rec = Arc::new(Recorder::default());
    *rec.delay.lock().unwrap() = Duration::from_millis(30);
    let controller = Controller::<Pod>::new(&informer, "edge")
        .unwrap()
        .with_config(Config::default().concurrency(3))
        .unwrap();
    let run = Running::start(controller, rec.clone());
    until("every pod reconciled", &rec, |r| r.keys().len() == 40).await;
    // Hammer one pod while it reconciles: its changes are deduped, and it
    // runs again after, never beside itself.
    let target = sim.objects("pods")[0].clone();
    let (ns, name) = (
        target["metadata"]["namespace"]
            .as_str()
            .unwrap()
            .to_string(),
        target["metadata"]["name"].as_str().unwrap().to_string(),
    );
    let key = format!("{ns}/{name}");
    let before = rec.times_of(&key).len();
    for i in 0..20 {
        sim.patch(
            "pods",
            Some(&ns),
            &name,
            &json!({"metadata": {"labels": {"n": i.to_string()}}}),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last_rv = sim.get("pods", Some(&ns), &name).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    until("the last version reconciled", &rec, |r| {
        r.seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.key == key && s.rv == last_rv)
    })
    .await;
    run.stop().await;
    let runs = rec.times_of(&key).len() - before;
    assert!(
        (1..20).contains(&runs),
        "20 changes deduped into {runs} reconciles"
    );
    assert!(
        rec.max_running.load(Ordering::SeqCst) <= 3,
        "at most 3 at once"
    );
    assert_eq!(
        *rec.overlapped.lock().unwrap(),
        None,
        "never one key on two workers"
    );
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_waits_for_running_reconciles_and_acknowledges_them() {
    let (sim, _dir, informer) = first_synced(30, 1).await;
    // Five pods changed once each: one reconcile covers each change.
    let mut expected = BTreeSet::new();
    for pod in sim.objects("pods").iter().take(5) {
        let (ns, name) = (
            pod["metadata"]["namespace"].as_str().unwrap(),
            pod["metadata"]["name"].as_str().unwrap(),
        );
        sim.patch(
            "pods",
            Some(ns),
            name,
            &json!({"metadata": {"labels": {"v": "2"}}}),
        )
        .unwrap();
        expected.insert(format!("{ns}/{name}"));
    }
    informer
        .wait_for_rv(&sim.current_rv().to_string())
        .await
        .unwrap();

    let rec = Arc::new(Recorder::default());
    *rec.delay.lock().unwrap() = Duration::from_millis(800);
    let run = Running::start(pod_controller(&informer, "edge"), rec.clone());
    // Stop while the reconciles are still sleeping.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rec.count(), 0);
    let stopped_at = SystemTime::now();
    let results = run.stop().await;
    assert_eq!(rec.keys(), expected, "the running reconciles finished");
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        expected.len(),
        "and were yielded"
    );
    assert!(rec.seen.lock().unwrap().iter().all(|s| s.at >= stopped_at));
    let collection = informer.collection();
    assert_eq!(
        collection.cursor("edge").unwrap(),
        Some(collection.meta().unwrap().journal_last_seq),
        "acknowledged before the stream ended"
    );
    assert!(collection.progress_records("edge").unwrap().is_empty());
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_and_watched_objects_reconcile_their_pods() {
    let sim = sim(20, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let pods_informer = Informer::for_resource::<Pod>(sim.client())
        .store_path(dir.path().join("s"))
        .start()
        .await
        .unwrap();
    pods_informer.wait_until_synced().await.unwrap();
    let cms = Informer::builder(sim.client(), ResourceSpec::builtin("cm").unwrap())
        .share_store(&pods_informer)
        .start()
        .await
        .unwrap();
    cms.wait_until_synced().await.unwrap();
    let target = sim.objects("pods")[2].clone();
    let (ns, name) = (
        target["metadata"]["namespace"]
            .as_str()
            .unwrap()
            .to_string(),
        target["metadata"]["name"].as_str().unwrap().to_string(),
    );
    let watched = sim.objects("pods")[5]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let controller = pod_controller(&pods_informer, "edge")
        .owns::<ConfigMap>(&cms)
        .unwrap()
        .watches::<ConfigMap, _>(&cms, |cm: ConfigMap| {
            let ns = cm.metadata.namespace.clone().unwrap_or_default();
            cm.data
                .unwrap_or_default()
                .get("for-pod")
                .map(|p| ObjectRef::<Pod>::new(p).within(&ns))
        })
        .unwrap();
    let rec = Arc::new(Recorder::default());
    let run = Running::start(controller, rec.clone());
    until("first sync", &rec, |r| r.count() == 20).await;
    let before = rec.count();

    // A child owned by the target pod, and a config map naming another.
    sim.create(
        "configmaps",
        json!({"metadata": {"name": "owned", "namespace": ns, "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": "u1"}
        ]}, "data": {"a": "1"}}),
    )
    .unwrap();
    sim.create(
        "configmaps",
        json!({"metadata": {"name": "pointer", "namespace": ns}, "data": {"for-pod": watched}}),
    )
    .unwrap();
    let owner_key = format!("{ns}/{name}");
    let watched_key = format!("{ns}/{watched}");
    until("owner and watched pod reconciled", &rec, |r| {
        r.times_of(&owner_key).len() >= 2 && r.times_of(&watched_key).len() >= 2
    })
    .await;
    // Deleting the child reconciles its owner again.
    let owner_runs = rec.times_of(&owner_key).len();
    sim.delete("configmaps", Some(&ns), "owned").unwrap();
    until("owner reconciled after its child went", &rec, |r| {
        r.times_of(&owner_key).len() > owner_runs
    })
    .await;
    run.stop().await;
    let others: Vec<_> = rec.seen.lock().unwrap()[before..]
        .iter()
        .filter(|s| s.key != owner_key && s.key != watched_key)
        .map(|s| s.key.clone())
        .collect();
    assert!(
        others.is_empty(),
        "only related pods reconciled: {others:?}"
    );

    // While down, a child changes: the restart reconciles its owner only.
    let created = sim
        .create(
            "configmaps",
            json!({"metadata": {"name": "owned-2", "namespace": ns, "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": "u1"}
            ]}}),
        )
        .unwrap();
    cms.wait_for_rv(created["metadata"]["resourceVersion"].as_str().unwrap())
        .await
        .unwrap();
    let controller = pod_controller(&pods_informer, "edge")
        .owns::<ConfigMap>(&cms)
        .unwrap();
    let rec = Arc::new(Recorder::default());
    let run = Running::start(controller, rec.clone());
    until("owner reconciled after restart", &rec, |r| {
        r.keys().contains(&owner_key)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.stop().await;
    assert_eq!(rec.keys(), BTreeSet::from([owner_key]));
    cms.shutdown().await;
    pods_informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setups_that_cannot_work_are_refused_by_name() {
    let sim = sim(3, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let pods_informer = synced(&sim, &dir.path().join("a")).await;
    let other_store = Informer::builder(sim.client(), ResourceSpec::builtin("cm").unwrap())
        .store_path(dir.path().join("b"))
        .start()
        .await
        .unwrap();
    assert!(matches!(
        Controller::<Pod>::new(&pods_informer, ""),
        Err(SetupError::EmptyName)
    ));
    assert!(matches!(
        Controller::<ConfigMap>::new(&pods_informer, "x"),
        Err(SetupError::Read(_))
    ));
    assert!(matches!(
        Controller::<Pod>::new(&pods_informer, "x")
            .unwrap()
            .owns::<ConfigMap>(&other_store),
        Err(SetupError::DifferentStore { .. })
    ));
    assert!(matches!(
        Controller::<Pod>::new(&pods_informer, "x")
            .unwrap()
            .owns::<Pod>(&pods_informer)
            .unwrap()
            .owns::<Pod>(&pods_informer),
        Err(SetupError::DuplicateRelation {
            relation: "owns",
            ..
        })
    ));
    let bad = Config::default().rate_limit(RateLimit {
        burst: 0,
        ..RateLimit::default()
    });
    match Controller::<Pod>::new(&pods_informer, "x")
        .unwrap()
        .with_config(bad)
    {
        Err(
            err @ SetupError::InvalidConfig {
                setting: "rate_limit",
                ..
            },
        ) => {
            assert!(err.to_string().contains("burst"), "{err}")
        }
        other => panic!("expected InvalidConfig, got {:?}", other.err()),
    }
    let too_long = Config::default().debounce(Duration::from_secs(7200));
    match Controller::<Pod>::new(&pods_informer, "x")
        .unwrap()
        .with_config(too_long)
    {
        Err(
            err @ SetupError::InvalidConfig {
                setting: "debounce",
                ..
            },
        ) => {
            assert!(err.to_string().contains("7200s"), "{err}")
        }
        other => panic!("expected InvalidConfig, got {:?}", other.err()),
    }
    other_store.shutdown().await;
    pods_informer.shutdown().await;
    sim.shutdown().await;
}
