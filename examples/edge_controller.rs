//! A kube-persist controller reconciling the pods of one "edge node",
//! killed with SIGKILL and restarted, against the built-in simulator:
//! each start prints how many reconciles it ran.
//!
//! `cargo run --release --example edge_controller`
//!
//! The example re-executes itself as the controller process (`--child`),
//! so that the kill is a real SIGKILL of the process holding the store.
//!
//! 1. First start, killed halfway through reconciling every pod (the store
//!    was empty, so each pod comes as an event of the first list).
//! 2. The restart reconciles the pods whose events start 1 had not
//!    acknowledged (reconciled ones whose acknowledgement had not been
//!    written yet are done again: at least once), and is killed while idle.
//! 3. While it is down, some edge pods change (and pods of other nodes,
//!    which the controller does not watch): the restart reconciles exactly
//!    the changed edge pods.
//! 4. Nothing changes: the restart reconciles nothing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube_persist::controller::{Action, Config, Controller};
use kube_persist::sim::{SimConfig, Simulator};
use kube_persist::Informer;
use serde_json::json;

const EDGE_NODE: &str = "node-007";

#[derive(Debug, thiserror::Error)]
#[error("edge agent unreachable")]
struct Unreachable;

/// The controller's work on one pod: here, a short pause standing for the
/// node-local checks an edge agent would make.
async fn reconcile(pod: Arc<Pod>, _ctx: Arc<()>) -> Result<Action, Unreachable> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    println!(
        "reconciled {}/{}",
        pod.namespace().unwrap_or_default(),
        pod.name_any()
    );
    Ok(Action::await_change())
}

fn error_policy(_pod: Arc<Pod>, _err: &Unreachable, _ctx: Arc<()>) -> Action {
    Action::requeue(Duration::from_secs(5))
}

/// The controller process: watches the edge node's pods into its store and
/// reconciles them until killed.
async fn child(server: &str, store: &Path) -> anyhow::Result<()> {
    let client = kube::Client::try_from(kube::Config::new(server.parse()?))?;
    let informer = Informer::for_resource::<Pod>(client)
        .fields(format!("spec.nodeName={EDGE_NODE}"))
        .store_path(store)
        .start()
        .await?;
    Controller::<Pod>::new(&informer, "edge-controller")?
        .with_config(Config::default().concurrency(4))?
        .run(reconcile, error_policy, Arc::new(()))
        .for_each(|res| async move {
            if let Err(err) = res {
                eprintln!("{err}");
            }
        })
        .await;
    Ok(())
}

/// Starts the controller process, kills it with SIGKILL once it printed
/// `kill_after` reconciles (or was idle for a second), and returns how many
/// it printed.
fn start_and_kill(server: &str, store: &Path, kill_after: Option<usize>) -> anyhow::Result<usize> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(server)
        .arg(store)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut reconciles = 0;
    // The first reconcile can wait for the store to open and the watch to
    // resume; after that, a second without one means the work is done.
    let mut quiet = Duration::from_secs(5);
    while kill_after.is_none_or(|n| reconciles < n) {
        match rx.recv_timeout(quiet) {
            Ok(line) if line.starts_with("reconciled ") => {
                reconciles += 1;
                quiet = Duration::from_secs(1);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    child.kill()?; // SIGKILL: no shutdown, no flush.
    child.wait()?;
    Ok(reconciles)
}

async fn parent() -> anyhow::Result<()> {
    let sim = Simulator::start(SimConfig {
        pods: 4000,
        namespaces: 8,
        bookmark_interval: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("edge-store");
    let server = sim.url();
    let edge: Vec<_> = sim
        .objects("pods")
        .into_iter()
        .filter(|p| p["spec"]["nodeName"] == EDGE_NODE)
        .collect();
    println!(
        "{} pods, {} of them on edge node {EDGE_NODE}",
        sim.objects("pods").len(),
        edge.len()
    );

    let run = |kill_after| {
        let (server, store) = (server.clone(), store.clone());
        tokio::task::spawn_blocking(move || start_and_kill(&server, &store, kill_after))
    };
    let n = run(Some(edge.len() / 2)).await??;
    println!("start 1 (first start), SIGKILL halfway: {n} reconciles");
    let n = run(None).await??;
    println!("start 2 (what start 1 had not acknowledged), SIGKILL when idle: {n} reconciles");

    let edge_versions = |sim: &Simulator| -> std::collections::BTreeMap<String, String> {
        sim.objects("pods")
            .into_iter()
            .filter(|p| p["spec"]["nodeName"] == EDGE_NODE)
            .map(|p| {
                let m = &p["metadata"];
                (
                    format!(
                        "{}/{}",
                        m["namespace"].as_str().unwrap_or(""),
                        m["name"].as_str().unwrap_or("")
                    ),
                    m["resourceVersion"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let before = edge_versions(&sim);
    for pod in edge.iter().take(15) {
        let ns = pod["metadata"]["namespace"].as_str();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        sim.patch(
            "pods",
            ns,
            name,
            &json!({"metadata": {"labels": {"edge-config": "v2"}}}),
        )?;
    }
    sim.mutate(200);
    let after = edge_versions(&sim);
    let changed = after
        .iter()
        .filter(|(k, rv)| before.get(*k) != Some(*rv))
        .count();
    let n = run(None).await??;
    println!("start 3 ({changed} edge pods created or changed while down, among 215 writes): {n} reconciles");
    let n = run(None).await??;
    println!("start 4 (nothing changed): {n} reconciles");
    sim.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child") => match (args.get(2), args.get(3)) {
            (Some(server), Some(store)) => child(server, Path::new(store)).await,
            _ => anyhow::bail!("usage: edge_controller --child SERVER STORE"),
        },
        _ => parent().await,
    }
}
