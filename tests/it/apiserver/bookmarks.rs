//! What the real server sends a watch resumed from a resourceVersion
//! before that watch's deadline, and what the informer makes of it.
//!
//! kube-apiserver's watch cache sends each watcher a bookmark about 2 s
//! before its `timeoutSeconds` deadline, but only with a resourceVersion
//! newer than the one the watch started from (cache_watcher.go drops
//! events at or below it). The cache learns newer versions from writes to
//! the resource, from etcd's progress notifications (every 10 min by
//! default), and when a consistent LIST makes it ask etcd. So a resumed
//! watch on a resource nobody writes gets no bookmark at all, however busy
//! the rest of the cluster: the observations below pin that down, and the
//! informer tests say what Synced after a resume must rest on (I12).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::apiserver::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::Api;
use kube_persist::informer::{Informer, ResourceSpec};
use serde_json::Value;

/// timeoutSeconds of the observed watches: the pre-deadline bookmark is
/// due 2 s before it.
const WATCH_SECS: u32 = 5;

/// What one watch carried, in order, until the server closed it.
#[derive(Debug, Default)]
struct Observed {
    /// (type, resourceVersion) of each event.
    events: Vec<(String, String)>,
}

impl Observed {
    fn bookmarks(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter(|(t, _)| t == "BOOKMARK")
            .map(|(_, rv)| rv.parse().unwrap())
            .collect()
    }
}

/// The resourceVersion a consistent list of `ns`'s pods reads.
async fn consistent_rv(client: &kube::Client, ns: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = api
        .list_metadata(&ListParams::default().limit(1))
        .await
        .unwrap();
    list.metadata.resource_version.unwrap()
}

/// Watches `ns`'s pods from `rv` with bookmarks until the server ends the
/// watch at its deadline, running `meanwhile` alongside.
async fn observe(
    client: &kube::Client,
    ns: &str,
    rv: &str,
    meanwhile: impl std::future::Future<Output = ()>,
) -> Observed {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let watch = async {
        let stream = api
            .watch(&WatchParams::default().timeout(WATCH_SECS), rv)
            .await
            .unwrap();
        let mut stream = std::pin::pin!(stream);
        let mut seen = Observed::default();
        while let Some(event) = stream.next().await {
            let (kind, rv) = match event.unwrap() {
                WatchEvent::Added(p) => ("ADDED", p.metadata.resource_version),
                WatchEvent::Modified(p) => ("MODIFIED", p.metadata.resource_version),
                WatchEvent::Deleted(p) => ("DELETED", p.metadata.resource_version),
                WatchEvent::Bookmark(b) => ("BOOKMARK", Some(b.metadata.resource_version)),
                WatchEvent::Error(s) => panic!("ERROR event: {s:?}"),
            };
            seen.events.push((kind.to_owned(), rv.unwrap_or_default()));
        }
        seen
    };
    let deadline = Duration::from_secs(u64::from(WATCH_SECS) + 20);
    let (seen, ()) = tokio::time::timeout(deadline, async { tokio::join!(watch, meanwhile) })
        .await
        .expect("the server ends the watch at its deadline");
    seen
}

/// A write to etcd that is not a pod: the cluster moves on, the pods
/// cache does not hear of it.
async fn write_a_configmap(client: &kube::Client, ns: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"generateName": "not-a-pod-"},
        "data": {"a": "b"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_resource_gives_a_resumed_watch_no_bookmark_until_a_consistent_list() {
    let Some(server) = dedicated(Options {
        pods: 10,
        ..Options::default()
    }) else {
        return;
    };
    let client = server.client().await.unwrap();
    let ns = "ns-000";

    // etcd moves on (a ConfigMap), no pod is written: nothing before the
    // deadline, and the stream ends cleanly.
    let rv = consistent_rv(&client, ns).await;
    let seen = observe(&client, ns, &rv, async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        write_a_configmap(&client, ns).await;
    })
    .await;
    println!("quiet, no consistent list: {seen:?}");
    assert!(seen.events.is_empty(), "{seen:?}");

    // The same, with a consistent LIST of pods after the write: the cache
    // asks etcd for its progress, and the bookmark comes.
    let rv = consistent_rv(&client, ns).await;
    let seen = observe(&client, ns, &rv, async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        write_a_configmap(&client, ns).await;
        consistent_rv(&client, ns).await;
    })
    .await;
    println!("quiet, consistent list: {seen:?}");
    let start: u64 = rv.parse().unwrap();
    let bookmarks = seen.bookmarks();
    assert!(
        !bookmarks.is_empty() && bookmarks.iter().all(|b| *b > start),
        "a bookmark past {start} before the deadline: {seen:?}"
    );
    assert_eq!(
        seen.events.len(),
        bookmarks.len(),
        "only bookmarks: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_progress_notifications_bring_a_quiet_resource_its_bookmark() {
    let Some(server) = dedicated(Options {
        pods: 10,
        progress_notify: Some(Duration::from_secs(1)),
        ..Options::default()
    }) else {
        return;
    };
    let client = server.client().await.unwrap();
    let ns = "ns-000";
    let rv = consistent_rv(&client, ns).await;
    let seen = observe(&client, ns, &rv, async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        write_a_configmap(&client, ns).await;
    })
    .await;
    println!("quiet, progress notify 1 s: {seen:?}");
    let start: u64 = rv.parse().unwrap();
    let bookmarks = seen.bookmarks();
    assert!(
        !bookmarks.is_empty() && bookmarks.iter().all(|b| *b > start),
        "a bookmark past {start} before the deadline: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_anywhere_in_the_resource_bring_a_resumed_watch_its_bookmark() {
    let Some(server) = shared() else { return };
    let client = server.client().await.unwrap();
    let (watched, written) = (
        SharedNs::BookmarkWatched.name(),
        SharedNs::BookmarkWritten.name(),
    );
    let rv = consistent_rv(&client, &watched).await;
    // Written to for as long as the watch lasts: the cacher may take its
    // pre-deadline bookmark up to a second early, before a single write
    // would have landed, and sends none that is not newer than the start.
    let until = tokio::time::Instant::now() + Duration::from_secs((WATCH_SECS - 1).into());
    let seen = observe(&client, &watched, &rv, async {
        while tokio::time::Instant::now() < until {
            churn(server, 1, &written, None).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    println!("busy elsewhere in the resource: {seen:?}");
    let start: u64 = rv.parse().unwrap();
    let bookmarks = seen.bookmarks();
    assert!(
        !bookmarks.is_empty() && bookmarks.iter().all(|b| *b > start),
        "a bookmark past {start} before the deadline: {seen:?}"
    );
    assert_eq!(
        seen.events.len(),
        bookmarks.len(),
        "no event of the other namespace: {seen:?}"
    );
}

/// An informer on `ns`'s pods over `store`, with `configure` applied.
async fn informer(
    server: &ApiServer,
    store: &std::path::Path,
    ns: &str,
    configure: impl FnOnce(&mut kube_persist::watcher::Config),
) -> Informer {
    let client = server.client().await.unwrap();
    Informer::builder(client, ResourceSpec::builtin("pods").unwrap())
        .store_path(store)
        .namespace(ns)
        .configure(configure)
        .start()
        .await
        .unwrap()
}

/// Writes a pod in `ns` every 250 ms, for ever.
async fn keep_writing(server: &'static ApiServer, ns: &str) {
    loop {
        churn(server, 1, ns, None).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Syncs `ns` into a fresh store, stops, lets `while_down` run, resumes
/// with `configure` while `while_resuming` runs, and returns what the
/// resumed informer held at Synced.
async fn resume_until_synced(
    server: &ApiServer,
    ns: &str,
    while_down: impl std::future::Future<Output = ()>,
    while_resuming: impl std::future::Future<Output = ()>,
    configure: impl FnOnce(&mut kube_persist::watcher::Config),
) -> Resumed {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let first = informer(server, &store, ns, |_| {}).await;
    tokio::time::timeout(Duration::from_secs(60), first.wait_until_synced())
        .await
        .expect("first sync within 60 s")
        .unwrap();
    let stored = first.last_rv().unwrap();
    first.shutdown().await;
    while_down.await;
    let resumed = informer(server, &store, ns, configure).await;
    let synced = async {
        tokio::time::timeout(Duration::from_secs(60), resumed.wait_until_synced())
            .await
            .expect("Synced within 60 s of a resume")
            .unwrap();
    };
    tokio::select! {
        () = synced => {}
        () = while_resuming => unreachable!("writes in the background go on until Synced"),
    }
    let rv = resumed.last_rv();
    let pods = versions(resumed.list().unwrap().iter());
    resumed.shutdown().await;
    Resumed { rv, stored, pods }
}

/// What a resumed informer held when it reported Synced.
struct Resumed {
    /// Its resourceVersion then.
    rv: Option<String>,
    /// The one its store held before the resume.
    stored: String,
    /// Its pods: name → resourceVersion.
    pods: BTreeMap<String, String>,
}

/// name → resourceVersion of `objects`.
fn versions<'a>(objects: impl Iterator<Item = &'a Value>) -> BTreeMap<String, String> {
    objects
        .map(|o| {
            let m = &o["metadata"];
            (
                m["name"].as_str().unwrap().to_owned(),
                m["resourceVersion"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// I12 after a resume, with the informer's default settings, on a resource
/// written to while it was down (in the informer's namespace and elsewhere)
/// and while it resumes (elsewhere): at Synced the store holds exactly the
/// server's pods, at a resourceVersion past the one it stopped at.
///
/// Which proof the resume rests on is the server's timing: the cacher files
/// the pre-deadline bookmark in one-second slots, so a 3 s watch may get it
/// before any newer write (then it is not sent: cache_watcher.go sends no
/// bookmark not newer than the events it replayed, whatever their
/// namespace) or get none before its deadline; a watch that ends silently
/// at its deadline proves the same. Either way the outcome below must hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_informer_on_a_busy_resource_is_synced_with_exactly_the_servers_pods() {
    let Some(server) = shared() else { return };
    let ns = SharedNs::InformerResume.name();
    let written = SharedNs::BookmarkWritten.name();
    let while_down = async {
        churn(server, 3, &ns, None).await;
        churn(server, 3, &written, None).await;
    };
    let resumed = resume_until_synced(
        server,
        &ns,
        while_down,
        keep_writing(server, &written),
        |_| {},
    )
    .await;
    let client = server.client().await.unwrap();
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let listed = api.list(&ListParams::default()).await.unwrap();
    let on_server = listed
        .items
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap(),
                p.metadata.resource_version.clone().unwrap(),
            )
        })
        .collect::<BTreeMap<_, _>>();
    assert_eq!(
        resumed.pods, on_server,
        "the store at Synced against the server"
    );
    let rv: u64 = resumed
        .rv
        .expect("a stored resourceVersion")
        .parse()
        .unwrap();
    let newest = on_server.values().map(|v| v.parse::<u64>().unwrap()).max();
    assert!(
        rv > resumed.stored.parse().unwrap() && Some(rv) >= newest,
        "Synced at {rv}, past the stored {} and every pod ({newest:?})",
        resumed.stored
    );
}

/// I12 after a resume on a resource nobody wrote to while it was down: the
/// cacher sends a watcher no bookmark that is not newer than its start, so
/// the resumed short watch may end at its deadline with nothing sent; that
/// clean, silent end is the proof (cache_watcher.go: `processInterval` sends
/// everything newer first), and the stored resourceVersion never goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_informer_on_a_quiet_resource_is_synced_and_never_goes_back() {
    let Some(server) = dedicated(Options {
        pods: 10,
        ..Options::default()
    }) else {
        return;
    };
    let client = server.client().await.unwrap();
    let Resumed { rv, stored, .. } = resume_until_synced(
        &server,
        "ns-000",
        write_a_configmap(&client, "ns-000"),
        std::future::pending(),
        |_| {},
    )
    .await;
    let rv: u64 = rv.expect("a stored resourceVersion").parse().unwrap();
    assert!(
        rv >= stored.parse().unwrap(),
        "the stored RV went back from {stored} to {rv}"
    );
}
