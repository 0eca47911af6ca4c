//! A relist's memory is bounded, whatever the collection's size (I11): a
//! first sync of 100k pods (about 650 MiB of JSON) and a 410 relist of them
//! each run in a child process whose peak RSS must stay under a bound far
//! below what holding the objects would take. The child is the bench's
//! (`kube-persist bench child persist`), which reports its own `VmHWM`.
//!
//! Ignored by default: generating, listing and storing 100k pods takes
//! minutes on a 2-core machine. Run it with
//! `cargo test --release --test it -- --ignored relist_memory`; the README
//! gives the figures of the last run.

use std::process::Command;
use std::time::Duration;

use crate::support::informer::{full_history, stored, versions};
use kube_persist::bench::ChildReport;
use kube_persist::sim::{SimConfig, Simulator};

const PODS: usize = 100_000;
/// Peak RSS allowed to the first sync: the objects' JSON alone is ~6× this.
const FRESH_BOUND: u64 = 400 << 20;
/// Peak RSS allowed to the 410 relist at 1% changed.
const GONE_BOUND: u64 = 300 << 20;

/// Runs the bench's persist child on `store`; its report.
fn child(sim: &Simulator, store: &std::path::Path, probe: &str) -> ChildReport {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-persist"))
        .args(["bench", "child", "persist", "--server", &sim.url()])
        .args(["--probe", probe, "--store"])
        .arg(store)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(line.lines().next().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "100k pods: minutes on 2 cores; run with --ignored"]
async fn relisting_100k_pods_stays_within_a_memory_bound() {
    let sim = Simulator::start(SimConfig {
        pods: PODS,
        namespaces: 200,
        bookmark_interval: Duration::from_millis(200),
        history: full_history(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let probe = {
        let first = &sim.objects("pods")[0]["metadata"];
        format!(
            "{}/{}",
            first["namespace"].as_str().unwrap(),
            first["name"].as_str().unwrap()
        )
    };

    let fresh = tokio::task::block_in_place(|| child(&sim, &store, &probe));
    println!(
        "first sync of {PODS} pods: peak RSS {} MiB",
        fresh.peak_rss_bytes >> 20
    );
    assert_eq!(fresh.objects, PODS as u64);
    assert!(
        fresh.peak_rss_bytes < FRESH_BOUND,
        "first sync peaked at {} MiB",
        fresh.peak_rss_bytes >> 20
    );

    sim.mutate(PODS / 100);
    sim.compact();
    let gone = tokio::task::block_in_place(|| child(&sim, &store, &probe));
    println!(
        "410 relist at 1%: peak RSS {} MiB",
        gone.peak_rss_bytes >> 20
    );
    assert_eq!(gone.resumed, Some(false), "it relisted");
    assert!(
        gone.peak_rss_bytes < GONE_BOUND,
        "410 relist peaked at {} MiB",
        gone.peak_rss_bytes >> 20
    );
    assert_eq!(
        stored(&store).1,
        versions(&sim.objects("pods")),
        "the store equals the server"
    );
    sim.shutdown().await;
}
