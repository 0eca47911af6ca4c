//! SIGKILL of a controller child (`kube-persist bench reconciler
//! kube-persist`) while it reconciles and the server keeps changing, 30
//! times: no acknowledged event is lost, every change is reconciled at
//! least once, and a restart that needed no full resync reconciles only
//! what was owed (I14).
//!
//! The child fails the first attempt of one key in 7 (per process) and
//! requeues one in 13 every second, so durable failures and requeues are
//! on the line too. Every other run debounces changes by 250 ms, so kills
//! also land while changed keys wait, received but not yet reconciled. `KP_CONTROLLER_CRASH_SEED` replays the kill times of a
//! failing run, `KP_CONTROLLER_CRASH_ROUNDS` changes the number of kills.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::informer::{crash_seed, keep_writing, sim};
use kube_persist::bench::reconciler::Reconciled;
use kube_persist::store::{EventKind, JournalEntry, Store};
use rand::{Rng as _, SeedableRng};
use tokio::io::AsyncBufReadExt;

const NAME: &str = "crash";

fn child(url: &str, store: &Path, debounce_ms: u64) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-persist"))
        .args(["bench", "reconciler", "kube-persist", "--server", url])
        .args(["--debounce-ms", &debounce_ms.to_string()])
        .args(["--name", NAME, "--print-reconciles"])
        .args(["--fail-one-in", "7", "--requeue-one-in", "13"])
        .arg("--store")
        .arg(store)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Reads the child's reconcile lines (a line cut by the kill is dropped).
fn collect(child: &mut tokio::process::Child) -> tokio::task::JoinHandle<Vec<Reconciled>> {
    let stdout = child.stdout.take().unwrap();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut out = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(r) = serde_json::from_str::<Reconciled>(&line) {
                out.push(r);
            }
        }
        out
    })
}

/// What the store says the controller owes.
struct Owed {
    cursor: Option<u64>,
    records: BTreeSet<String>,
    marker: bool,
    journal: Vec<JournalEntry>,
}

impl Owed {
    fn read(store: &Path) -> Option<Owed> {
        if !store.exists() {
            return None;
        }
        let store = Store::open_read_only(store).unwrap();
        let ids = store.collections().unwrap();
        let collection = store.collection(ids.first()?).unwrap();
        let names: Vec<String> = collection
            .progress_records(NAME)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        Some(Owed {
            cursor: collection.cursor(NAME).unwrap(),
            marker: names.iter().any(|n| !n.contains('/')),
            records: names.into_iter().filter(|n| n.contains('/')).collect(),
            journal: collection.journal_since(0).unwrap(),
        })
    }

    /// Whether this start had to reconcile everything.
    fn full(&self) -> bool {
        self.cursor.is_none() || self.marker
    }

    fn changed_after(&self, seq: u64) -> BTreeSet<String> {
        self.journal
            .iter()
            .filter(|e| e.seq > seq)
            .map(|e| e.key.to_string())
            .collect()
    }
}

/// The debounce of the run of `round`, in milliseconds.
fn debounce(round: usize) -> u64 {
    if round % 2 == 1 {
        250
    } else {
        0
    }
}

fn rv(s: &str) -> u64 {
    s.parse().unwrap()
}

/// Entries no reconcile of `key` at or after their version covers, and
/// that no later delete of the key excuses.
fn unreconciled<'a>(
    entries: impl Iterator<Item = &'a JournalEntry>,
    journal: &[JournalEntry],
    seen: &HashMap<String, u64>,
) -> Vec<String> {
    entries
        .filter(|e| e.kind != EventKind::Deleted)
        .filter(|e| seen.get(&e.key.to_string()).is_none_or(|&r| r < rv(&e.rv)))
        .filter(|e| {
            !journal
                .iter()
                .any(|l| l.key == e.key && l.seq > e.seq && l.kind == EventKind::Deleted)
        })
        .map(|e| format!("seq {} {} rv {}", e.seq, e.key, e.rv))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_reconciles_loses_nothing_and_restarts_reconcile_only_what_is_owed() {
    let seed = crash_seed("KP_CONTROLLER_CRASH_SEED");
    let rounds: usize = std::env::var("KP_CONTROLLER_CRASH_ROUNDS")
        .ok()
        .map(|s| {
            s.parse()
                .expect("KP_CONTROLLER_CRASH_ROUNDS must be a number")
        })
        .unwrap_or(30);
    println!("controller_crash: {rounds} kills, KP_CONTROLLER_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sim = sim(1500, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let writer = keep_writing(&sim, 3, Duration::from_millis(20));

    // Highest resourceVersion each key was reconciled at, successfully.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut checked_rounds = 0;
    for round in 0..rounds {
        let before = Owed::read(&store);
        let mut c = child(&sim.url(), &store, debounce(round));
        let out = collect(&mut c);
        // The first run gets time to list and reconcile everything once.
        let ms = if round == 0 {
            5000
        } else {
            rng.random_range(300..1200)
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        c.start_kill().unwrap();
        assert!(!c.wait().await.unwrap().success());
        let lines = out.await.unwrap();
        for r in lines.iter().filter(|r| r.ok) {
            let e = seen.entry(r.key.clone()).or_insert(0);
            *e = (*e).max(rv(&r.rv));
        }
        let after = Owed::read(&store).unwrap();

        // Nothing unchanged: a start that needed no full resync reconciles
        // the keys changed after its cursor and the keys it had records of.
        if let Some(before) = before.filter(|b| !b.full()) {
            checked_rounds += 1;
            let mut owed = after.changed_after(before.cursor.unwrap_or(0));
            owed.extend(before.records.iter().cloned());
            let extra: BTreeSet<&String> = lines
                .iter()
                .map(|r| &r.key)
                .filter(|k| !owed.contains(*k))
                .collect();
            assert!(
                extra.is_empty(),
                "round {round}: reconciled what was not owed: {extra:?} (KP_CONTROLLER_CRASH_SEED={seed})"
            );
        }
        // No acknowledged event lost: every change up to the cursor was
        // reconciled at or after its version, or its key is durably owed.
        if !after.marker {
            let acked = after.cursor.unwrap_or(0);
            let lost: Vec<String> = unreconciled(
                after.journal.iter().filter(|e| e.seq <= acked),
                &after.journal,
                &seen,
            )
            .into_iter()
            .filter(|m| !after.records.iter().any(|k| m.contains(&format!(" {k} "))))
            .collect();
            assert!(
                lost.is_empty(),
                "round {round}: acknowledged but never reconciled: {:?} (KP_CONTROLLER_CRASH_SEED={seed})",
                &lost[..lost.len().min(10)]
            );
        }
    }
    writer.abort();
    let _ = writer.await;
    assert!(
        checked_rounds >= rounds / 2,
        "most restarts resumed ({checked_rounds} of {rounds})"
    );

    // A last run, left to finish: every pod the server holds is reconciled
    // at its current version; then a graceful stop acknowledges everything.
    let server: HashMap<String, u64> = crate::support::controller::server_versions(&sim)
        .into_iter()
        .map(|(k, v)| (k, rv(&v)))
        .collect();
    let mut c = child(&sim.url(), &store, debounce(rounds));
    let stdout = c.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut missing: BTreeSet<String> = server
        .iter()
        .filter(|(k, v)| seen.get(*k).is_none_or(|s| s < *v))
        .map(|(k, _)| k.clone())
        .collect();
    let drain = async {
        while !missing.is_empty() {
            let line = lines.next_line().await.unwrap().expect("the child runs");
            let r: Reconciled = serde_json::from_str(&line).unwrap();
            if r.ok {
                let e = seen.entry(r.key.clone()).or_insert(0);
                *e = (*e).max(rv(&r.rv));
                if server.get(&r.key).is_some_and(|v| *e >= *v) {
                    missing.remove(&r.key);
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), drain)
        .await
        .unwrap_or_else(|_| {
            panic!("the last run reconciled everything (KP_CONTROLLER_CRASH_SEED={seed})")
        });
    let pid = c.id().unwrap() as i32;
    // SAFETY: our own child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(30), c.wait())
        .await
        .expect("graceful shutdown")
        .unwrap();
    assert!(status.success(), "{status}");
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(r) = serde_json::from_str::<Reconciled>(&line) {
            if r.ok {
                let e = seen.entry(r.key).or_insert(0);
                *e = (*e).max(rv(&r.rv));
            }
        }
    }

    let end = Owed::read(&store).unwrap();
    let head = end.journal.last().map_or(0, |e| e.seq);
    assert_eq!(
        end.cursor,
        Some(head),
        "everything acknowledged (KP_CONTROLLER_CRASH_SEED={seed})"
    );
    assert!(!end.marker);
    assert_eq!(
        end.journal.first().map(|e| e.seq),
        Some(1),
        "the journal was never trimmed"
    );
    // Every change, from the first list on, was reconciled at least once.
    let lost = unreconciled(end.journal.iter(), &end.journal, &seen);
    assert!(
        lost.is_empty(),
        "changes never reconciled: {:?} (KP_CONTROLLER_CRASH_SEED={seed})",
        &lost[..lost.len().min(10)]
    );
    sim.shutdown().await;
}
