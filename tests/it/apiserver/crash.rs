//! SIGKILL of `kube-persist sync` against the real server while pods are
//! created, changed and deleted, 20 rounds: after each kill, clean runs
//! bring the store to exactly the server's pods and resourceVersions, and
//! no event a durable consumer acknowledged is lost (I1, I8).
//!
//! `KP_APISERVER_CRASH_SEED` replays the kill times of a failing run.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::apiserver::*;
use rand::{Rng as _, SeedableRng};
use tokio::io::AsyncBufReadExt;

const ROUNDS: usize = 20;
/// Clean runs allowed to bring the store level with the server after a
/// kill: a resumed watch counts as caught up after 200 ms without events
/// (until a bookmark proves it), and a stall of the loaded machine looks
/// like that; each run resumes where the last stopped.
const CLEAN_RUNS: usize = 5;

/// Reads a child's stdout: seqs of the events its consumer printed.
fn printed_seqs(child: &mut tokio::process::Child) -> tokio::task::JoinHandle<Vec<u64>> {
    let stdout = child.stdout.take().unwrap();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut seqs = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("event seq=") {
                seqs.push(rest.split(' ').next().unwrap().parse().unwrap());
            }
        }
        seqs
    })
}

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
    let seed: u64 = std::env::var("KP_APISERVER_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("KP_APISERVER_CRASH_SEED must be a number"))
        .unwrap_or_else(rand::random);
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
        let out = printed_seqs(&mut child);
        let ms = rng.random_range(200..2500);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(
            !status.success(),
            "round {round}: the child was killed, not finished (KP_APISERVER_CRASH_SEED={seed})"
        );
        delivered.extend(out.await.unwrap());
        stop.send(()).unwrap();
        writer.await.unwrap();

        let want = server_pods(&client, &ns).await;
        let mut runs = 0;
        loop {
            runs += 1;
            let mut child = sync_command(server, &store, &ns)
                .args(["--consumer", "crash-test", "--until-synced"])
                .spawn()
                .unwrap();
            let out = printed_seqs(&mut child);
            let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
                .await
                .unwrap_or_else(|_| {
                    panic!("round {round}: a clean sync ran over 120 s (KP_APISERVER_CRASH_SEED={seed})")
                })
                .unwrap();
            assert!(
                status.success(),
                "round {round}: a clean sync failed: {status} (KP_APISERVER_CRASH_SEED={seed})"
            );
            delivered.extend(out.await.unwrap());
            let (stored, _, _) = store_state(&store);
            if stored == want {
                println!("round {round}: killed after {ms} ms, level with the server after {runs} clean run(s)");
                break;
            }
            assert!(
                runs < CLEAN_RUNS,
                "round {round}: the store still differs from the server after {runs} clean runs \
                 (KP_APISERVER_CRASH_SEED={seed}):\nmissing or stale: {:?}\nextra: {:?}",
                want.iter()
                    .filter(|(k, v)| stored.get(*k) != Some(*v))
                    .collect::<Vec<_>>(),
                stored
                    .keys()
                    .filter(|k| !want.contains_key(*k))
                    .collect::<Vec<_>>()
            );
        }
    }

    // Every acknowledged event was printed before it was acknowledged.
    let store = kube_persist::store::Store::open_read_only(&store).unwrap();
    let ids = store.collections().unwrap();
    let collection = store.collection(&ids[0]).unwrap();
    let acked = collection.cursor("crash-test").unwrap().unwrap_or(0);
    assert!(
        acked > 0,
        "the consumer made progress (KP_APISERVER_CRASH_SEED={seed})"
    );
    let missing: Vec<u64> = (1..=acked).filter(|s| !delivered.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never printed: {:?} (KP_APISERVER_CRASH_SEED={seed})",
        &missing[..missing.len().min(10)]
    );
}
