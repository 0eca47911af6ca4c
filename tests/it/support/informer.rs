//! Helpers shared by the informer integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use kube_persist::informer::{Informer, InformerBuilder, ResourceSpec};
use kube_persist::sim::{HistoryConfig, SimConfig, Simulator};
use kube_persist::store::Store;
use serde_json::Value;

/// A simulator with `pods` pods over `namespaces` namespaces and fast bookmarks.
pub async fn sim(pods: usize, namespaces: usize) -> Simulator {
    Simulator::start(SimConfig {
        pods,
        namespaces,
        bookmark_interval: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// A watch cache history nothing falls out of unless a test compacts.
pub fn full_history() -> HistoryConfig {
    HistoryConfig {
        lower_bound: 10_000_000,
        upper_bound: 10_000_000,
        ..HistoryConfig::default()
    }
}

/// An informer builder on the simulator's pods with test-friendly timings.
pub fn pods(sim: &Simulator, store: &Path) -> InformerBuilder {
    Informer::builder(sim.client(), ResourceSpec::builtin("pods").unwrap())
        .store_path(store)
        .configure(|c| {
            c.backoff_initial = Duration::from_millis(10);
            c.backoff_max = Duration::from_millis(200);
        })
}

/// key → resourceVersion of a set of objects.
pub fn versions(objects: &[Value]) -> BTreeMap<String, String> {
    objects
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            let key = format!(
                "{}/{}",
                m["namespace"].as_str().unwrap_or(""),
                m["name"].as_str().unwrap()
            );
            (key, m["resourceVersion"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Waits (bounded) until the informer has seen the server's current RV,
/// then asserts the store equals the server's pods.
pub async fn assert_converged(sim: &Simulator, informer: &Informer) {
    let rv = sim.current_rv().to_string();
    tokio::time::timeout(Duration::from_secs(30), informer.wait_for_rv(&rv))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "informer never reached rv {rv}; at {:?}",
                informer.last_rv()
            )
        })
        .unwrap();
    assert_eq!(
        versions(&informer.list().unwrap()),
        versions(&sim.objects("pods")),
        "store differs from the server"
    );
}

/// A pod named `name` in `ns`.
pub fn pod(ns: &str, name: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "test"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    })
}

/// The seed of a crash test's random kill times: from `var` to replay a
/// failing run, random otherwise (print it).
pub fn crash_seed(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("{var} must be a number"))
        })
        .unwrap_or_else(rand::random)
}

/// Writes `n` random pod changes every `every` until aborted.
pub fn keep_writing(sim: &Simulator, n: usize, every: Duration) -> tokio::task::JoinHandle<()> {
    let sim = sim.clone();
    tokio::spawn(async move {
        loop {
            sim.mutate(n);
            tokio::time::sleep(every).await;
        }
    })
}

/// What the store at `store` holds, read without changing it: its
/// resourceVersion and key → version.
pub fn stored(store: &Path) -> (Option<String>, BTreeMap<String, String>) {
    let store = Store::open_read_only(store).unwrap();
    let ids = store.collections().unwrap();
    assert_eq!(ids.len(), 1);
    let c = store.collection(&ids[0]).unwrap();
    (c.last_rv().unwrap(), versions(&c.list().unwrap()))
}

/// A `kube-persist sync` child of the simulator's pods at `url` into
/// `store`, for the durable consumer `consumer`; its stdout piped.
#[cfg(feature = "cli")]
pub fn sync_cmd(url: &str, store: &Path, consumer: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-persist"));
    cmd.args(["sync", "--resource", "pods", "--consumer", consumer])
        .args(["--page-size", "100", "--server", url])
        .arg("--store")
        .arg(store)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// Reads a `kube-persist sync` child's stdout: the seqs of the events its
/// consumer printed, and the resourceVersion of its synced line, if it
/// printed one.
pub fn printed_events(
    child: &mut tokio::process::Child,
) -> tokio::task::JoinHandle<(Vec<u64>, Option<String>)> {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let (mut seqs, mut synced) = (Vec::new(), None);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("event seq=") {
                seqs.push(rest.split(' ').next().unwrap().parse().unwrap());
            } else if let Some(rest) = line.strip_prefix("synced rv=") {
                synced = Some(rest.split(' ').next().unwrap().to_owned());
            }
        }
        (seqs, synced)
    })
}

/// I8 after crashes: `consumer` made progress, every event it acknowledged
/// was `delivered` (printed) first, and the events after its cursor are all
/// still in the journal, contiguous, for its next run. `replay` names the
/// seed that replays the run, for the messages.
pub fn assert_no_acknowledged_event_lost(
    collection: &kube_persist::store::Collection,
    consumer: &str,
    delivered: &std::collections::BTreeSet<u64>,
    replay: &str,
) {
    let acked = collection.cursor(consumer).unwrap().unwrap_or(0);
    assert!(acked > 0, "the consumer made progress ({replay})");
    let missing: Vec<u64> = (1..=acked).filter(|s| !delivered.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {:?} ({replay})",
        &missing[..missing.len().min(10)]
    );
    let pending: Vec<u64> = collection
        .journal_since(acked)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    let last = collection.meta().unwrap().journal_last_seq;
    assert_eq!(
        pending,
        ((acked + 1)..=last).collect::<Vec<_>>(),
        "undelivered events are all still journaled ({replay})"
    );
}
