//! A `kube_runtime::Controller` driven from the persistent informer: it
//! reconciles Pods on an "edge node", is stopped (a reboot), and resumes from
//! its store without relisting.
//!
//! Runs against the built-in simulator so it needs no cluster:
//! `cargo run --release --example edge_pods`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{Action, Controller};
use kube_persist::informer::{controller, Informer};
use kube_persist::sim::{SimConfig, Simulator};

/// What the reconciler shares: how many reconciles ran.
struct Ctx {
    reconciled: AtomicUsize,
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    // A real edge controller would check the pod's containers against the
    // node's local state here; the store answers reads with no API call.
    let _phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    ctx.reconciled.fetch_add(1, Ordering::Relaxed);
    Ok(Action::await_change())
}

fn error_policy(_pod: Arc<Pod>, err: &kube::Error, _ctx: Arc<Ctx>) -> Action {
    eprintln!("reconcile failed: {err}");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller for `dur`, then stops the informer (the "reboot").
async fn run_for(sim: &Simulator, store: &std::path::Path, dur: Duration) -> anyhow::Result<()> {
    let informer = Informer::for_resource::<Pod>(sim.client())
        .store_path(store)
        .start()
        .await?;
    println!(
        "  opened store: {} pods readable at once, state {:?}",
        informer.len(),
        informer.state()
    );
    let (reader, trigger) = controller::reflector::<Pod>(&informer)?;
    let ctx = Arc::new(Ctx {
        reconciled: AtomicUsize::new(0),
    });
    let run = Controller::for_stream(trigger, reader)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let _ = tokio::time::timeout(dur, run).await;
    informer.wait_until_synced().await?;
    let m = informer.metrics();
    println!(
        "  reconciled {} times; LIST requests {}, events applied {}, rv {:?}",
        ctx.reconciled.load(Ordering::Relaxed),
        m.list_requests,
        m.events_applied,
        informer.last_rv()
    );
    informer.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sim = Simulator::start(SimConfig {
        pods: 500,
        namespaces: 5,
        ..SimConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("edge-store");

    println!("first boot (empty store: one list)");
    run_for(&sim, &store, Duration::from_secs(2)).await?;

    sim.mutate(50);
    println!("reboot after 50 writes on the server (resume: no LIST)");
    run_for(&sim, &store, Duration::from_secs(2)).await?;

    sim.shutdown().await;
    Ok(())
}
