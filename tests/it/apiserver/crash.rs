//! SIGKILL of `kube-persist sync` against the real server while pods are
//! created, changed and deleted, 20 rounds: after each kill, one clean run
//! brings the store to exactly the server's pods and resourceVersions, and
//! no event a durable consumer acknowledged is lost (I1, I8, I12).
//!
//! `KP_APISERVER_CRASH_SEED` replays the kill times of a failing run.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::apiserver::*;
use crate::support::informer::{assert_no_acknowledged_event_lost, crash_seed, printed_events};
use kube_persist::resource_version::covers;
use rand::{Rng as _, SeedableRng};

const ROUNDS: usize = 20;

/// Creates, changes and deletes pods of `ns` until told to stop.
async fn write_until(
    server: &'static ApiServer,
    client: kube::Client,
    ns: String,
    round: usize,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut i = 0;
    loop {
        let name = format!("crash-{round}-{i}");
        create_pod(&client, &ns, &name).await;
        churn(server, 10, &ns, None).await;
        if i > 0 {
            delete_pod(&client, &ns, &format!("crash-{round}-{}", i - 1)).await;
        }
        i += 1;
        if stop.try_recv().is_ok() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_rounds_each_converge_to_exactly_the_servers_pods() {
    let Some(server) = shared() else { return };
    let seed = crash_seed("KP_APISERVER_CRASH_SEED");
    println!("real-server crash: {ROUNDS} rounds, KP_APISERVER_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let client = server.client().await.unwrap();
    let ns = SharedNs::Crash.name();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut delivered = BTreeSet::new();

    for round in 0..ROUNDS {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn(write_until(
            server,
            client.clone(),
            ns.clone(),
            round,
            stopped,
        ));
        let mut child = sync_command(server, &store, &ns)
            .args(["--consumer", "crash-test", "--page-size", "20"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let out = printed_events(&mut child);
        let ms = rng.random_range(200..2500);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(
            !status.success(),
            "round {round}: the child was killed, not finished (KP_APISERVER_CRASH_SEED={seed})"
        );
        delivered.extend(out.await.unwrap().0);
        stop.send(()).unwrap();
        writer.await.unwrap();

        // Nobody writes in `ns` any more: one run that says it is synced
        // holds exactly the server's pods, at a resourceVersion the server
        // proved (I12): covering every pod's, and no newer than a list made
        // after the run. (Not equal to a list's: the pods watch cache's
        // bookmarks lag etcd revisions of other resources.)
        let want = server_pods(&client, &ns).await;
        let mut child = sync_command(server, &store, &ns)
            .args(["--consumer", "crash-test", "--until-synced"])
            .spawn()
            .unwrap();
        let out = printed_events(&mut child);
        let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "round {round}: a clean sync ran over 120 s (KP_APISERVER_CRASH_SEED={seed})"
                )
            })
            .unwrap();
        assert!(
            status.success(),
            "round {round}: a clean sync failed: {status} (KP_APISERVER_CRASH_SEED={seed})"
        );
        let after = server_rv(&client, &ns).await;
        let (seqs, synced) = out.await.unwrap();
        delivered.extend(seqs);
        let synced = synced.unwrap_or_else(|| {
            panic!("round {round}: the clean run printed no synced line (KP_APISERVER_CRASH_SEED={seed})")
        });
        let (stored, stored_rv, _) = store_state(&store);
        assert_eq!(
            stored, want,
            "round {round}: killed after {ms} ms, the store differs from the server after a clean run \
             (KP_APISERVER_CRASH_SEED={seed})"
        );
        assert_eq!(
            stored_rv.as_deref(),
            Some(synced.as_str()),
            "round {round}: the store holds the version it said it synced at (KP_APISERVER_CRASH_SEED={seed})"
        );
        assert!(
            want.values().all(|rv| covers(&synced, rv)) && covers(&after, &synced),
            "round {round}: synced at {synced}, the server's pods are at {want:?}, a list after the run \
             at {after} (KP_APISERVER_CRASH_SEED={seed})"
        );
    }

    let store = kube_persist::store::Store::open_read_only(&store).unwrap();
    let ids = store.collections().unwrap();
    let collection = store.collection(&ids[0]).unwrap();
    assert_no_acknowledged_event_lost(
        &collection,
        "crash-test",
        &delivered,
        &format!("KP_APISERVER_CRASH_SEED={seed}"),
    );
}
