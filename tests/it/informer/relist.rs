//! Relists against the simulator: metadata first after a 410 (fetching only
//! what changed), the full relist a server without metadata lists gets,
//! readers that never miss an object while a relist runs (I11), versions
//! that never go back under concurrent writes (I13), and Synced after a
//! resume on the server's word only (I12).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::informer::{assert_converged, full_history, keep_writing, pod, pods};
use futures::StreamExt;
use kube_persist::informer::{EventKind, Informer, State};
use kube_persist::sim::{Fault, MetadataServing, SimConfig, Simulator};
use kube_persist::store::ObjectKey;
use serde_json::Value;

async fn sim_with(pods: usize, f: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig {
        pods,
        namespaces: 5,
        bookmark_interval: Duration::from_millis(200),
        history: full_history(),
        ..SimConfig::default()
    };
    f(&mut config);
    Simulator::start(config).await.expect("simulator starts")
}

fn key(o: &Value) -> ObjectKey {
    ObjectKey {
        namespace: o["metadata"]["namespace"].as_str().map(str::to_string),
        name: o["metadata"]["name"].as_str().unwrap().to_string(),
    }
}

/// Syncs a fresh store from `sim`, then stops.
async fn first_sync(sim: &Simulator, store: &std::path::Path) {
    let informer = pods(sim, store).start().await.unwrap();
    informer.wait_until_synced().await.unwrap();
    assert_converged(sim, &informer).await;
    informer.shutdown().await;
}

/// While the informer is down: creates `n`, changes `n`, deletes `n` (of
/// the objects at `offset`...); returns the keys (created, changed,
/// deleted). History is then compacted, so the restart gets 410.
fn change_while_away(sim: &Simulator, n: usize, offset: usize) -> [BTreeSet<String>; 3] {
    let server = sim.objects("pods");
    let mut created = BTreeSet::new();
    for i in 0..n {
        let obj = sim
            .create("pods", pod("ns-0", &format!("away-{offset}-{i}")))
            .unwrap();
        created.insert(key(&obj).to_string());
    }
    let mut changed = BTreeSet::new();
    for obj in server.iter().skip(offset).step_by(7).take(n) {
        let mut obj = obj.clone();
        obj["metadata"]["labels"]["changed"] = "yes".into();
        changed.insert(key(&sim.replace("pods", obj).unwrap()).to_string());
    }
    let mut deleted = BTreeSet::new();
    for obj in server.iter().skip(offset + 3).step_by(7).take(n) {
        let k = key(obj);
        sim.delete("pods", k.namespace.as_deref(), &k.name).unwrap();
        deleted.insert(k.to_string());
    }
    sim.compact();
    [created, changed, deleted]
}

/// Every event a durable consumer holds after `acked`, by kind.
async fn events_by_kind(informer: &Informer, name: &str) -> BTreeMap<String, Vec<String>> {
    let mut consumer = informer.consumer(name).await.unwrap();
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), consumer.next()).await
    {
        let ev = ev.unwrap();
        by_kind
            .entry(format!("{:?}", ev.kind))
            .or_default()
            .push(ev.key.to_string());
    }
    for keys in by_kind.values_mut() {
        keys.sort();
    }
    by_kind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_relist_lists_metadata_and_fetches_only_what_changed() {
    let sim = sim_with(600, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    first_sync(&sim, &store).await;
    {
        let informer = pods(&sim, &store).start().await.unwrap();
        let mut c = informer.consumer("app").await.unwrap();
        let mut last = 0;
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), c.next()).await {
            last = ev.unwrap().seq;
        }
        c.ack(last).await.unwrap();
        informer.shutdown().await;
    }
    let [created, changed, deleted] = change_while_away(&sim, 5, 0);
    sim.reset_stats();

    let informer = pods(&sim, &store).start().await.unwrap();
    informer.wait_until_synced().await.unwrap();
    assert_converged(&sim, &informer).await;
    let stats = sim.stats();
    assert_eq!(
        stats.get_requests,
        (created.len() + changed.len()) as u64,
        "a GET for each new or changed object, none for the rest: {stats:?}"
    );
    let full: u64 = sim
        .objects("pods")
        .iter()
        .map(|o| serde_json::to_vec(o).unwrap().len() as u64)
        .sum();
    // The metadata list carries managedFields, about half of a pod's JSON
    // (as on a real server), so the bound is well under a full relist
    // rather than under half of one.
    assert!(
        stats.bytes_sent < full * 3 / 4,
        "{} bytes pulled, a full relist is {full}",
        stats.bytes_sent
    );
    let m = informer.metrics();
    assert_eq!((m.gone, m.relists), (1, 1), "{m:?}");

    let by_kind = events_by_kind(&informer, "app").await;
    assert_eq!(by_kind["Added"], created.into_iter().collect::<Vec<_>>());
    assert_eq!(by_kind["Modified"], changed.into_iter().collect::<Vec<_>>());
    assert_eq!(
        by_kind["Deleted"],
        deleted.into_iter().collect::<Vec<_>>(),
        "each delete-while-away exactly once (I4)"
    );
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_metadata_lists_gets_a_full_relist_of_only_the_differences() {
    for serving in [MetadataServing::Refused, MetadataServing::Ignored] {
        let sim = sim_with(300, |c| c.metadata = serving).await;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s");
        first_sync(&sim, &store).await;
        let [created, changed, deleted] = change_while_away(&sim, 3, 1);
        sim.reset_stats();
        let informer = pods(&sim, &store).start().await.unwrap();
        informer.wait_until_synced().await.unwrap();
        assert_converged(&sim, &informer).await;
        assert_eq!(sim.stats().get_requests, 0, "{serving:?}: no GETs");
        let m = informer.metrics();
        assert_eq!(m.relists, 1, "{serving:?}: {m:?}");
        let by_kind = events_by_kind(&informer, "new").await;
        let all: usize = by_kind.values().map(Vec::len).sum();
        // A new consumer replays the journal: the first sync's Added events,
        // then exactly the differences.
        assert_eq!(
            all,
            300 + created.len() + changed.len() + deleted.len(),
            "{serving:?}: {by_kind:?}"
        );
        informer.shutdown().await;
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_miss_an_object_while_a_relist_runs() {
    for streaming in [false, true] {
        readers_never_miss_an_object_during(streaming).await;
    }
}

/// A full relist, page by page or as a streaming list, while a reader
/// lists the store again and again.
async fn readers_never_miss_an_object_during(streaming: bool) {
    let sim = sim_with(3000, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    first_sync(&sim, &store).await;
    let before: BTreeSet<String> = sim
        .objects("pods")
        .iter()
        .map(|o| key(o).to_string())
        .collect();
    sim.mutate(1200);
    sim.compact();
    let after: BTreeSet<String> = sim
        .objects("pods")
        .iter()
        .map(|o| key(o).to_string())
        .collect();
    let kept: Arc<BTreeSet<String>> = Arc::new(before.intersection(&after).cloned().collect());

    let informer = Arc::new(
        pods(&sim, &store)
            .streaming_list(streaming)
            .page_size(100)
            .configure(|c| c.metadata_relist = false)
            .start()
            .await
            .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (informer, done, reads, kept) =
            (informer.clone(), done.clone(), reads.clone(), kept.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let seen: BTreeSet<String> = informer
                    .list()
                    .unwrap()
                    .iter()
                    .map(|o| key(o).to_string())
                    .collect();
                let missing: Vec<_> = kept.difference(&seen).take(5).collect();
                assert!(
                    missing.is_empty(),
                    "streaming {streaming}, read {}: objects that exist before and after are missing: {missing:?}",
                    reads.load(Ordering::Relaxed)
                );
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    informer.wait_until_synced().await.unwrap();
    done.store(true, Ordering::Relaxed);
    reader.join().expect("the reader saw every kept object");
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_converged(&sim, &informer).await;
    let m = informer.metrics();
    assert_eq!(m.relists, 1, "streaming {streaming}: {m:?}");
    if streaming {
        assert_eq!(m.list_requests, 0, "a streaming list: {m:?}");
    } else {
        assert!(m.list_requests >= 30, "a paged relist: {m:?}");
    }
    Arc::into_inner(informer).unwrap().shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_never_go_back_when_writes_race_the_fetch_phase() {
    let sim = sim_with(2000, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    first_sync(&sim, &store).await;
    sim.mutate(200);
    sim.compact();
    // Writes keep coming while the relist lists, fetches and watches.
    let load = sim.start_load(400.0);
    let informer = pods(&sim, &store)
        .configure(|c| c.fetch_concurrency = 2)
        .start()
        .await
        .unwrap();
    let mut events = Box::pin(informer.subscribe());
    let mut last: HashMap<String, (u64, EventKind)> = HashMap::new();
    let watch = async {
        while let Some(ev) = events.next().await {
            let ev = ev.unwrap();
            let rv: u64 = ev.rv.parse().unwrap();
            if let Some((prev, prev_kind)) = last.get(&ev.key.to_string()) {
                let recreated = *prev_kind == EventKind::Deleted && ev.kind == EventKind::Added;
                assert!(
                    rv > *prev || recreated,
                    "{} went from {prev} to {rv} ({:?} after {prev_kind:?}) (I13)",
                    ev.key,
                    ev.kind
                );
            }
            last.insert(ev.key.to_string(), (rv, ev.kind));
        }
    };
    let stop = async {
        informer.wait_until_synced().await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        load.stop().await;
    };
    tokio::select! {
        _ = watch => panic!("the event stream ended"),
        _ = stop => {}
    }
    assert_converged(&sim, &informer).await;
    assert!(sim.stats().get_requests > 0, "the fetch phase ran");
    informer.shutdown().await;
    sim.shutdown().await;
}

/// A store synced once from a simulator of 50 pods that bookmarks once a
/// minute, as a real server: the periodic bookmark is too far off to matter,
/// so a resume is synced by the short watch's deadline alone. The
/// simulator's counters start from zero.
async fn synced_store() -> (Simulator, tempfile::TempDir, std::path::PathBuf) {
    let sim = sim_with(50, |c| c.bookmark_interval = Duration::from_secs(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    first_sync(&sim, &store).await;
    sim.reset_stats();
    (sim, dir, store)
}

/// Waits for a resumed informer's Synced, then checks it converged with no
/// LIST (I3).
async fn synced_without_a_list(sim: &Simulator, informer: &Informer) {
    tokio::time::timeout(Duration::from_secs(30), informer.wait_until_synced())
        .await
        .expect("synced at the short watch's deadline")
        .unwrap();
    assert_converged(sim, informer).await;
    let m = informer.metrics();
    assert_eq!(m.list_requests, 0, "no LIST on resume (I3): {m:?}");
    assert_eq!(sim.stats().list_requests, 0, "{:?}", sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_is_synced_by_the_bookmark_before_a_short_watch_ends_not_by_silence() {
    // Bookmarks once a minute, as a real server: the periodic one is too
    // far off, so the proof is the one before the short watch's deadline.
    let sim = sim_with(50, |c| c.bookmark_interval = Duration::from_secs(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    first_sync(&sim, &store).await;
    sim.mutate(5);
    sim.reset_stats();
    // Written to throughout the resume: every short watch hears events, so
    // no deadline is silent and only a bookmark newer than the events the
    // watch replayed can prove Synced.
    let writer = keep_writing(&sim, 1, Duration::from_millis(200));
    // The first watch stalls 8 s: no event, no bookmark. Silence.
    sim.inject(Fault::Stall(Duration::from_secs(8)));
    let informer = pods(&sim, &store).start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        matches!(informer.state(), State::Restored { .. }),
        "not synced on silence (I12): {:?}",
        informer.state()
    );
    tokio::time::timeout(Duration::from_secs(30), informer.wait_until_synced())
        .await
        .expect("synced once the bookmark came")
        .unwrap();
    writer.abort();
    // The informer counts only bookmarks that move it past its last event,
    // and the one proving Synced may carry that event's version: the
    // server's count says one was sent during the resume.
    assert!(
        sim.stats().bookmarks_sent >= 1,
        "Synced on a bookmark the server sent during the resume: {:?}",
        sim.stats()
    );
    assert_converged(&sim, &informer).await;
    let m = informer.metrics();
    assert_eq!(m.list_requests, 0, "no LIST on resume (I3): {m:?}");
    informer.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_with_nothing_newer_is_synced_by_the_silent_deadline_of_a_short_watch() {
    // Nothing written since the store's RV: the server has no newer RV to
    // bookmark, so the short watch reaches its deadline without a word.
    let (sim, _dir, store) = synced_store().await;
    let informer = pods(&sim, &store).start().await.unwrap();
    synced_without_a_list(&sim, &informer).await;
    let stats = sim.stats();
    assert_eq!(
        stats.bookmarks_sent, 0,
        "synced without a bookmark: {stats:?}"
    );
    informer.shutdown().await;
    sim.shutdown().await;
}
