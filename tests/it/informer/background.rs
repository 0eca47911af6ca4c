//! A resume from a resourceVersion no pod has: a cluster's other writes
//! (Lease renewals) spend versions, the cacher learns of them from etcd's
//! progress notifications, and its bookmarks carry them to the informer,
//! which stores them (I1). A restart from such a version must still resume
//! with no LIST (I3) and be Synced on the server's word (I12).

use std::time::Duration;

use crate::support::informer::{assert_converged, pods};
use kube_persist::sim::{SimConfig, Simulator};

fn newest_pod_rv(sim: &Simulator) -> u64 {
    sim.objects("pods")
        .iter()
        .filter_map(|p| p["metadata"]["resourceVersion"].as_str()?.parse().ok())
        .max()
        .expect("pods")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_a_version_only_bookmarks_carried_makes_no_list() {
    let sim = Simulator::start(SimConfig {
        pods: 40,
        namespaces: 2,
        bookmark_interval: Duration::from_millis(200),
        progress_notify_interval: Some(Duration::from_millis(300)),
        background_writes_per_sec: 50.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let pod_rv = newest_pod_rv(&sim);

    let first = pods(&sim, &store).start().await.unwrap();
    first.wait_until_synced().await.unwrap();
    // No pod changes from here on; only the background versions move.
    let stored = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let rv: u64 = first.last_rv().unwrap_or_default().parse().unwrap_or(0);
            if rv > pod_rv {
                return rv;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a bookmark carries a version past every pod's");
    first.shutdown().await;
    assert_eq!(newest_pod_rv(&sim), pod_rv, "no pod was written");

    sim.reset_stats();
    let resumed = pods(&sim, &store).start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), resumed.wait_until_synced())
        .await
        .expect("Synced after the resume")
        .unwrap();
    let m = resumed.metrics();
    assert_eq!(
        sim.stats().list_requests,
        0,
        "resumed without a LIST: {m:?}"
    );
    assert_eq!((m.relists, m.gone), (0, 0), "{m:?}");
    let rv: u64 = resumed.last_rv().unwrap().parse().unwrap();
    assert!(
        rv >= stored,
        "the stored version went back from {stored} to {rv}"
    );
    assert_converged(&sim, &resumed).await;
    resumed.shutdown().await;
}
