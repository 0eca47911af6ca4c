//! SIGKILL of a `kube-persist sync` child during heavy writes, 20 times:
//! every restart converges to the server state, and no event a durable
//! consumer acknowledged is lost (I1, I8).
//!
//! `KP_INFORMER_CRASH_SEED` replays the kill times of a failing run (the
//! seed is printed).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::informer::{
    assert_no_acknowledged_event_lost, crash_seed, keep_writing, printed_events, sim, stored,
    sync_cmd, versions,
};
use kube_persist::store::Store;
use rand::{Rng as _, SeedableRng};

const KILLS: usize = 20;
const CONSUMER: &str = "crash-test";

/// One `sync --until-synced` run to its end: the seqs it printed, once it
/// has exited successfully after printing its synced line.
async fn sync_until_synced(url: &str, store: &std::path::Path, seed: u64) -> Vec<u64> {
    let mut child = sync_cmd(url, store, CONSUMER)
        .arg("--until-synced")
        .spawn()
        .unwrap();
    let out = printed_events(&mut child);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap_or_else(|_| panic!("final sync ran over 60 s (KP_INFORMER_CRASH_SEED={seed})"))
        .unwrap();
    assert!(
        status.success(),
        "final sync failed: {status} (KP_INFORMER_CRASH_SEED={seed})"
    );
    let (seqs, synced) = out.await.unwrap();
    assert!(
        synced.is_some(),
        "the final run printed its synced line (KP_INFORMER_CRASH_SEED={seed})"
    );
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_heavy_writes_converges_and_loses_no_acknowledged_event() {
    let seed = crash_seed("KP_INFORMER_CRASH_SEED");
    println!("informer_crash: {KILLS} kills, KP_INFORMER_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sim = sim(2000, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let writer = keep_writing(&sim, 10, Duration::from_millis(5));

    let mut delivered = BTreeSet::new();
    for round in 0..KILLS {
        let mut child = sync_cmd(&sim.url(), &store, CONSUMER).spawn().unwrap();
        let out = printed_events(&mut child);
        let ms = rng.random_range(100..600);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(
            !status.success(),
            "round {round}: the child was killed (KP_INFORMER_CRASH_SEED={seed})"
        );
        let (seqs, _) = out.await.unwrap();
        delivered.extend(seqs);
    }
    writer.abort();
    let _ = writer.await;

    // A last, clean run catches up with the final server state: it is
    // synced only once the server proved it caught up (I12), and nothing
    // is written any more, so it stops at the server's RV.
    let server_rv = sim.current_rv().to_string();
    delivered.extend(sync_until_synced(&sim.url(), &store, seed).await);
    let (stored_rv, _) = stored(&store);
    assert_eq!(
        stored_rv.as_deref(),
        Some(server_rv.as_str()),
        "one clean run reaches the server's RV (KP_INFORMER_CRASH_SEED={seed})"
    );

    let store = Store::open_existing(&store).unwrap();
    let ids = store.collections().unwrap();
    assert_eq!(ids.len(), 1);
    let collection = store.collection(&ids[0]).unwrap();
    assert_eq!(collection.last_rv().unwrap(), Some(server_rv));
    assert_eq!(
        versions(&collection.list().unwrap()),
        versions(&sim.objects("pods")),
        "store equals the server (KP_INFORMER_CRASH_SEED={seed})"
    );

    // Every acknowledged event was printed first; the rest are still in the
    // journal, contiguous, waiting for the consumer's next run.
    let replay = format!("KP_INFORMER_CRASH_SEED={seed}");
    assert_no_acknowledged_event_lost(&collection, CONSUMER, &delivered, &replay);
    sim.shutdown().await;
}
