//! SIGKILL of a `kube-persist sync` child during heavy writes, 20 times:
//! every restart converges to the server state, and no event a durable
//! consumer acknowledged is lost (I1, I8).

mod informer_support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use informer_support::{sim, versions};
use kube_persist::store::Store;
use rand::Rng;
use tokio::io::AsyncBufReadExt;

const KILLS: usize = 20;

fn sync_cmd(url: &str, store: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-persist"));
    cmd.args([
        "sync",
        "--resource",
        "pods",
        "--consumer",
        "crash-test",
        "--page-size",
        "100",
        "--server",
        url,
    ])
    .arg("--store")
    .arg(store)
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .kill_on_drop(true);
    cmd
}

/// Reads the child's stdout: seqs of printed events, and whether it synced.
fn collect(child: &mut tokio::process::Child) -> tokio::task::JoinHandle<(Vec<u64>, bool)> {
    let stdout = child.stdout.take().unwrap();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let (mut seqs, mut synced) = (Vec::new(), false);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("event seq=") {
                seqs.push(rest.split(' ').next().unwrap().parse().unwrap());
            } else if line.starts_with("synced rv=") {
                synced = true;
            }
        }
        (seqs, synced)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_heavy_writes_converges_and_loses_no_acknowledged_event() {
    let sim = sim(2000, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let writer = {
        let sim = sim.clone();
        tokio::spawn(async move {
            loop {
                sim.mutate(10);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let mut delivered = BTreeSet::new();
    for round in 0..KILLS {
        let mut child = sync_cmd(&sim.url(), &store).spawn().unwrap();
        let out = collect(&mut child);
        let ms = rand::rng().random_range(100..600);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "round {round}: the child was killed");
        let (seqs, _) = out.await.unwrap();
        delivered.extend(seqs);
    }
    writer.abort();
    let _ = writer.await;

    // A last, clean run catches up with the final server state.
    let mut child = sync_cmd(&sim.url(), &store)
        .arg("--until-synced")
        .spawn()
        .unwrap();
    let out = collect(&mut child);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "final sync failed: {status}");
    let (seqs, synced) = out.await.unwrap();
    assert!(synced, "the final run printed its synced line");
    delivered.extend(seqs);

    let store = Store::open_existing(&store).unwrap();
    let ids = store.collections().unwrap();
    assert_eq!(ids.len(), 1);
    let collection = store.collection(&ids[0]).unwrap();
    assert_eq!(
        versions(&collection.list().unwrap()),
        versions(&sim.objects("pods")),
        "store equals the server"
    );
    assert_eq!(
        collection.last_rv().unwrap(),
        Some(sim.current_rv().to_string())
    );

    // Every acknowledged event was printed first; the rest are still in the
    // journal, contiguous, waiting for the consumer's next run.
    let acked = collection.cursor("crash-test").unwrap().unwrap_or(0);
    assert!(acked > 0, "the consumer made progress");
    let missing: Vec<u64> = (1..=acked).filter(|s| !delivered.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {:?}",
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
        "undelivered events are all still journaled"
    );
    sim.shutdown().await;
}
