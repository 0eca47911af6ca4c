//! SIGKILL of a `kube-persist sync` child in the middle of relists, 50
//! times: full relists (most objects changed, so the listing streams in
//! bounded batches) and metadata-first relists (killed while fetching what
//! changed). After every kill the stored resourceVersion is never ahead of
//! the data (I1, I11). Each killed full relist is followed by a clean run
//! that must converge to exactly the server's objects and versions; each
//! killed metadata relist by the next round's full relist, which starts
//! from what it left.
//!
//! Kills are placed by progress, not by time: after the k-th event the
//! child printed for this relist (k seeded-random), plus a few random
//! milliseconds, so they land inside the relist however fast the machine.
//! `KP_RELIST_CRASH_SEED` replays a failing run (the seed is printed).

use std::path::Path;
use std::time::Duration;

use crate::support::informer::{crash_seed, full_history, stored, sync_cmd, versions};
use kube_persist::sim::{SimConfig, Simulator};
use rand::{Rng as _, SeedableRng};
use tokio::io::AsyncBufReadExt;

const KILLS: usize = 50;
const PODS: usize = 1000;
/// Objects per store batch in the child: a relist spans many.
const BATCH: &str = "50";

/// The child: a relist spans many store batches.
fn relist_sync(url: &str, store: &Path) -> tokio::process::Command {
    let mut cmd = sync_cmd(url, store, "relist-crash");
    cmd.args(["--batch-size", BATCH]);
    cmd
}

/// A clean `sync --until-synced` run; fails the test unless it succeeds.
async fn clean_run(url: &str, store: &Path, seed: u64) {
    let mut child = relist_sync(url, store)
        .arg("--until-synced")
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let drain = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .unwrap_or_else(|_| panic!("clean run over 120 s (KP_RELIST_CRASH_SEED={seed})"))
        .unwrap();
    drain.await.unwrap();
    assert!(
        status.success(),
        "clean run: {status} (KP_RELIST_CRASH_SEED={seed})"
    );
}

/// Runs the child until it has printed `k` events of objects newer than
/// `old_rv` (what this relist writes), or has synced, then SIGKILLs it a
/// few random milliseconds later. Returns whether it had synced.
async fn kill_after(url: &str, store: &Path, old_rv: u64, k: usize, extra_ms: u64) -> bool {
    let mut child = relist_sync(url, store).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut seen = 0;
    let mut synced = false;
    let progress = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("synced ") {
                synced = true;
                return;
            }
            let rv = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("rv="))
                .and_then(|rv| rv.parse::<u64>().ok());
            if rv.is_some_and(|rv| rv > old_rv) {
                seen += 1;
                if seen >= k {
                    return;
                }
            }
        }
    };
    // Bounded: a child that neither progresses nor syncs is killed anyway.
    let _ = tokio::time::timeout(Duration::from_secs(60), progress).await;
    tokio::time::sleep(Duration::from_millis(extra_ms)).await;
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the child ran until SIGKILL: {status}"
    );
    synced
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_relists_never_leaves_the_store_ahead_and_always_converges() {
    let seed = crash_seed("KP_RELIST_CRASH_SEED");
    println!("relist_crash: {KILLS} kills, KP_RELIST_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sim = Simulator::start(SimConfig {
        pods: PODS,
        namespaces: 10,
        bookmark_interval: Duration::from_millis(200),
        history: full_history(),
        seed,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = sim.url();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    clean_run(&url, &store, seed).await;

    let (mut full, mut fetch, mut synced_before_kill) = (0, 0, 0);
    for round in 0..KILLS {
        let (before_rv, before) = stored(&store);
        let before_rv: u64 = before_rv.unwrap().parse().unwrap();
        // Every other round changes most objects (a full relist, page by
        // page); the others a few (metadata list, then GETs).
        let writes = if round % 2 == 0 {
            full += 1;
            PODS * 3 / 4
        } else {
            fetch += 1;
            PODS / 20
        };
        sim.mutate(writes);
        sim.compact();
        let server = versions(&sim.objects("pods"));
        let server_rv = sim.current_rv().to_string();
        let written = server
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .count();

        let k = rng.random_range(1..=written.max(1));
        let extra_ms = rng.random_range(0..30);
        if kill_after(&url, &store, before_rv, k, extra_ms).await {
            synced_before_kill += 1;
        }

        // I1/I11: the store claims the old version (a relist cut short,
        // holding old and new versions), or the new one with exactly the
        // server's objects.
        let (rv, after) = stored(&store);
        let rv = rv.unwrap();
        let ctx = format!("round {round}, k={k} (KP_RELIST_CRASH_SEED={seed})");
        if rv == server_rv {
            assert_eq!(after, server, "the store claims {rv}: {ctx}");
        } else {
            assert_eq!(rv, before_rv.to_string(), "stored RV: {ctx}");
            for (key, v) in &after {
                assert!(
                    before.get(key) == Some(v) || server.get(key) == Some(v),
                    "{key}@{v} is neither what was held nor what the server has: {ctx}"
                );
            }
        }
        if round % 2 == 0 || round == KILLS - 1 {
            clean_run(&url, &store, seed).await;
            let (rv, after) = stored(&store);
            assert_eq!(rv, Some(sim.current_rv().to_string()), "{ctx}");
            assert_eq!(after, versions(&sim.objects("pods")), "converged: {ctx}");
        }
    }
    println!(
        "relist_crash: {full} full and {fetch} metadata-first relists killed, {synced_before_kill} after they had synced"
    );
    sim.shutdown().await;
}
