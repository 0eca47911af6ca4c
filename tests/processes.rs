//! Store tests that need a second process: crash consistency under SIGKILL
//! (I1), durable cursors (I8) and read-only opens of a killed writer's
//! store, and the inter-process lock, each on every storage engine.
//!
//! This binary runs without libtest's harness (see Cargo.toml) because it
//! re-executes itself as the child: with `KP_CHILD` set it plays the writer
//! or the lock holder instead of running the tests.
//!
//! `KP_CRASH_ROUNDS` sets the number of kill rounds per engine (default
//! 50), `KP_CRASH_SEED` replays a failing run (the seed is printed).
//!
//! `encryption_rewrite_killed` SIGKILLs the rewrite that encrypts a
//! plaintext store (`KP_ENCRYPT_ROUNDS` rounds per engine, default 20;
//! `KP_CRASH_SEED` replays it too).
//!
//! `crash_soak` is the same test at 1,000 rounds per engine
//! (`KP_SOAK_ROUNDS` overrides), ignored by default as libtest would:
//! `cargo test --release --test processes -- --ignored crash_soak`.

#[path = "it/support/store.rs"]
mod store_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kube_persist::store::{
    Batch, Delta, DictionaryPolicy, EncryptionKey, EngineKind, Error, JournalLimits, ObjectKey,
    Sealing, Store, StoreOptions,
};
use rand::{Rng as _, SeedableRng};
use serde_json::{json, Value};
use store_support::{copy_dir, disk_leaks, files, pods_id, realistic_pod, Rng};

const CHILD: &str = "KP_CHILD";
const STORE: &str = "KP_STORE";
const ENGINE: &str = "KP_ENGINE";
/// The durable consumer the crash writer acknowledges for.
const CONSUMER: &str = "exporter";

/// Small bounds so that dictionary training and journal trimming both
/// happen while the writer is being killed.
fn options(engine: EngineKind) -> StoreOptions {
    StoreOptions {
        engine: Some(engine),
        journal: JournalLimits {
            max_entries: 400,
            max_bytes: 4 << 20,
            max_age: None,
        },
        dictionary: DictionaryPolicy {
            min_objects: 60,
            retrain_factor: 3,
            samples: 40,
            ..DictionaryPolicy::default()
        },
        ..StoreOptions::default()
    }
}

/// Batch `n`: a deterministic function of `n` alone, so the parent can
/// rebuild the exact state as of any batch. Its RV is `n*100 + 99`.
fn batch(n: u64) -> Batch {
    let mut r = Rng::new(n);
    let ops = 1 + r.below(24);
    let mut deltas = Vec::new();
    for j in 0..ops {
        let idx = r.below(240);
        let (ns, name) = (format!("ns{}", idx % 7), format!("p{idx}"));
        let rv = n * 100 + j;
        let mut obj = realistic_pod(&ns, &name, rv, rv);
        obj["metadata"]["labels"] =
            json!({"app": format!("a{}", r.below(5)), "gen": n.to_string()});
        if r.below(5) == 0 {
            deltas.push(Delta::Delete(obj));
        } else {
            deltas.push(Delta::Upsert(obj));
        }
    }
    Batch {
        deltas,
        rv: Some((n * 100 + 99).to_string()),
    }
}

fn batch_of_rv(rv: &Option<String>) -> u64 {
    rv.as_deref()
        .map_or(0, |rv| rv.parse::<u64>().expect("numeric rv") / 100)
}

fn apply_to_model(model: &mut BTreeMap<String, Value>, n: u64) {
    for d in batch(n).deltas {
        match d {
            Delta::Upsert(o) => {
                model.insert(ObjectKey::of(&o).unwrap().to_string(), o);
            }
            Delta::Delete(o) => {
                model.remove(&ObjectKey::of(&o).unwrap().to_string());
            }
        }
    }
}

/// The child writer: applies batch after batch, printing `ACK n` once
/// batch `n` is durable. A second thread acknowledges each batch's last
/// change for [`CONSUMER`] while the next batch is applied, so the two
/// writes share flushes (group commit), and prints `CURSOR seq` once its
/// acknowledgement is durable; until it is killed.
fn crash_writer(path: &Path, engine: EngineKind) -> Result<(), Error> {
    let store = Store::open_with(path, options(engine))?;
    let c = store.collection(&pods_id())?;
    let mut n = batch_of_rv(&c.last_rv()?) + 1;
    println!("READY {n}");
    let (to_acker, acks) = mpsc::channel::<u64>();
    let acker = {
        let c = c.clone();
        std::thread::spawn(move || -> Result<(), Error> {
            for seq in acks {
                c.ack(CONSUMER, seq)?;
                // One line per call: stdout is line-buffered and locked per line.
                println!("CURSOR {seq}");
            }
            Ok(())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let changes = c.apply(batch(n))?;
        println!("ACK {n}");
        if let Some(last) = changes.last() {
            if to_acker.send(last.seq).is_err() {
                break;
            }
        }
        n += 1;
    }
    drop(to_acker);
    acker.join().expect("the acknowledging thread panicked")
}

/// What a reader finds in the store a killed writer left, checked against
/// what the writer acknowledged: the stored batch (`None` if the writer
/// never registered its collection). The store's files must not change.
fn read_after_kill(path: &Path, acked: u64, cursor_acked: u64, at: &str) -> Option<u64> {
    let before = path.exists().then(|| files(path));
    let found = match Store::open_read_only(path) {
        Ok(reader) => reader.find_collection(&pods_id()).unwrap().map(|c| {
            let report = c.verify().unwrap();
            assert!(report.is_ok(), "{at}: read-only: {report:?}");
            let cursor = c.cursor(CONSUMER).unwrap().unwrap_or(0);
            assert!(
                cursor >= cursor_acked,
                "{at}: read-only: cursor {cursor}, acknowledged {cursor_acked}"
            );
            batch_of_rv(&c.last_rv().unwrap())
        }),
        // Killed before the store existed.
        Err(Error::NotAStore { .. }) if acked == 0 => None,
        Err(e) => panic!("{at}: read-only open failed: {e}"),
    };
    if found.is_none() {
        assert_eq!(acked, 0, "{at}: read-only: the collection is gone");
    }
    assert_eq!(
        path.exists().then(|| files(path)),
        before,
        "{at}: a read-only open changed the store"
    );
    found
}

/// The child lock holder: keeps the store open until stdin closes.
fn lock_holder(path: &Path) -> Result<(), Error> {
    let _store = Store::open_existing(path)?;
    println!("LOCKED");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    Ok(())
}

fn spawn(role: &str, path: &Path, engine: EngineKind) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD, role)
        .env(STORE, path)
        .env(ENGINE, engine.name())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Lines of a child's stdout, as they arrive.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A count from the environment variable `var`, else `default`.
fn rounds_from(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .map(|r| {
            r.parse()
                .unwrap_or_else(|_| panic!("{var} must be a number"))
        })
        .unwrap_or(default)
}

fn crash_consistency() {
    let rounds = rounds_from("KP_CRASH_ROUNDS", 50);
    for engine in EngineKind::ALL {
        crash_consistency_on(engine, rounds);
    }
}

/// [`crash_consistency`] for long: 1,000 kills per engine.
fn crash_soak() {
    let rounds = rounds_from("KP_SOAK_ROUNDS", 1000);
    for engine in EngineKind::ALL {
        let started = Instant::now();
        crash_consistency_on(engine, rounds);
        let took = started.elapsed();
        println!(
            "crash_soak on {engine}: {rounds} rounds in {:.0} s ({:.0} ms per round)",
            took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 / rounds.max(1) as f64
        );
    }
}

fn crash_consistency_on(engine: EngineKind, rounds: usize) {
    let seed: u64 = std::env::var("KP_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("KP_CRASH_SEED must be a number"))
        .unwrap_or_else(rand::random);
    println!("crash_consistency on {engine}: {rounds} rounds, KP_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");

    let mut model = BTreeMap::new();
    let mut model_n = 0u64;
    let mut acked = 0u64;
    let mut cursor_acked = 0u64;
    let (mut killed_mid_apply, mut killed_before_ready) = (0, 0);
    for round in 0..rounds {
        let mut child = spawn("crash-writer", &path, engine);
        let lines = lines_of(&mut child);
        let mut ready = false;
        if rng.random_bool(0.2) {
            // Kill while the child may still be opening (or migrating) the store.
            std::thread::sleep(Duration::from_micros(rng.random_range(0..60_000)));
        } else {
            // Kill somewhere in its stream of writes: mid-batch, mid-flush, between batches.
            ready = lines
                .recv_timeout(Duration::from_secs(30))
                .is_ok_and(|l| l.starts_with("READY"));
            assert!(ready, "{engine} round {round}: the writer did not start");
            std::thread::sleep(Duration::from_micros(rng.random_range(0..100_000)));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        for line in lines.iter() {
            if let Some(n) = line.strip_prefix("ACK ") {
                acked = acked.max(n.parse().unwrap());
            } else if let Some(seq) = line.strip_prefix("CURSOR ") {
                cursor_acked = cursor_acked.max(seq.parse().unwrap());
            } else if line.starts_with("READY") {
                ready = true;
            }
        }
        if !ready {
            killed_before_ready += 1;
        }

        let at = format!("{engine} round {round} (KP_CRASH_SEED={seed})");
        let read = read_after_kill(&path, acked, cursor_acked, &at);
        let store = Store::open_with(&path, options(engine)).unwrap_or_else(|e| {
            panic!("{engine} round {round}: reopen failed: {e} (KP_CRASH_SEED={seed})")
        });
        let c = store.collection(&pods_id()).unwrap();
        let stored = batch_of_rv(&c.last_rv().unwrap());
        assert_eq!(
            read.unwrap_or(0),
            stored,
            "{at}: the reader and the writer disagree"
        );
        let cursor = c.cursor(CONSUMER).unwrap().unwrap_or(0);
        assert!(
            cursor >= cursor_acked,
            "{at}: cursor {cursor}, acknowledged {cursor_acked}"
        );
        assert!(
            stored == acked || stored == acked + 1,
            "{engine} round {round}: stored RV is batch {stored}, last acknowledged {acked} (KP_CRASH_SEED={seed})"
        );
        if stored == acked + 1 {
            killed_mid_apply += 1;
        }
        acked = stored;
        while model_n < stored {
            model_n += 1;
            apply_to_model(&mut model, model_n);
        }
        let report = c.verify().unwrap();
        assert!(
            report.is_ok(),
            "{engine} round {round}: {report:?} (KP_CRASH_SEED={seed})"
        );
        let got = c.list().unwrap();
        let want: Vec<&Value> = model.values().collect();
        assert_eq!(
            got.len(),
            want.len(),
            "{engine} round {round}: object count (KP_CRASH_SEED={seed})"
        );
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g, w, "{engine} round {round}: objects differ from the state as of batch {stored} (KP_CRASH_SEED={seed})");
        }
        assert_eq!(c.len(), model.len());
        let versions = c.versions().unwrap();
        for (k, v) in &model {
            assert_eq!(
                versions.get(&k.parse().unwrap()),
                v["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_string)
                    .as_ref()
            );
        }
    }
    assert!(acked > 0, "the writer never committed a batch");
    assert!(cursor_acked > 0, "the writer never acknowledged a change");
    println!(
        "crash_consistency on {engine}: {rounds} rounds ok, {acked} batches, {killed_mid_apply} kills between commit and ack, {killed_before_ready} kills before the store was open"
    );
}

/// The key the encryption rewrite seals under.
fn rewrite_key() -> EncryptionKey {
    EncryptionKey::from_bytes([0x5a; 32])
}

/// In every pod's annotations: no plaintext of it may stay on disk once
/// the store is encrypted.
const CANARY: &str = "plaintext-canary";

/// A plaintext store of a few hundred realistic pods at `path`, with a
/// trained dictionary and a journal of additions, changes and deletions;
/// returns its objects by key.
fn plaintext_store(path: &Path, engine: EngineKind) -> BTreeMap<String, Value> {
    let store = Store::open_with(path, options(engine)).unwrap();
    let c = store.collection(&pods_id()).unwrap();
    let mut model = BTreeMap::new();
    let mut rv = 0;
    let pod = |i: u64, rv: u64| {
        let mut p = realistic_pod(&format!("ns{}", i % 5), &format!("p{i}"), rv, i + rv);
        p["metadata"]["annotations"] = json!({"note": format!("{CANARY}-{i}-{rv}")});
        p
    };
    for b in 0..6 {
        let deltas = (0..60)
            .map(|j| {
                rv += 1;
                Delta::Upsert(pod(b * 60 + j, rv))
            })
            .collect();
        c.apply(Batch {
            deltas,
            rv: Some(rv.to_string()),
        })
        .unwrap();
    }
    let mut deltas = Vec::new();
    for i in (0..360).step_by(7) {
        rv += 1;
        deltas.push(if i % 3 == 0 {
            Delta::Delete(pod(i, rv))
        } else {
            Delta::Upsert(pod(i, rv))
        });
    }
    c.apply(Batch {
        deltas,
        rv: Some(rv.to_string()),
    })
    .unwrap();
    for o in c.list().unwrap() {
        model.insert(ObjectKey::of(&o).unwrap().to_string(), o);
    }
    model
}

/// What must survive the rewrite unchanged: objects, journal, last RV.
#[derive(Debug, PartialEq)]
struct Content {
    objects: Vec<Value>,
    journal: Vec<(u64, String, String, String, std::time::SystemTime, Value)>,
    last_rv: Option<String>,
}

/// The content of the pods collection of `store`, after checking that its
/// records and counters agree ([`Store::check`], `verify`): no record both
/// missing and counted.
fn checked_content(store: &Store, at: &str) -> Content {
    assert_eq!(
        store.check().unwrap().map(|d| d.to_string()),
        None,
        "{at}: check"
    );
    let c = store
        .find_collection(&pods_id())
        .unwrap()
        .expect("the pods collection");
    let report = c.verify().unwrap();
    assert!(report.is_ok(), "{at}: verify: {report:?}");
    let objects = c.list().unwrap();
    let meta = c.meta().unwrap();
    assert_eq!(
        meta.objects as usize,
        objects.len(),
        "{at}: counted objects"
    );
    assert_eq!(c.len(), objects.len(), "{at}: len");
    let journal = c
        .journal_since(meta.journal_first_seq.saturating_sub(1))
        .unwrap();
    assert_eq!(
        meta.journal_len as usize,
        journal.len(),
        "{at}: counted journal entries"
    );
    Content {
        objects,
        journal: journal
            .into_iter()
            .map(|e| {
                (
                    e.seq,
                    format!("{:?}", e.kind),
                    e.key.to_string(),
                    e.rv,
                    e.at,
                    e.patch,
                )
            })
            .collect(),
        last_rv: c.last_rv().unwrap(),
    }
}

/// The child rewriter: encrypts the store, printing `SEALED` after each
/// committed batch and `DONE` once the rewrite returned.
fn encrypt_rewriter(path: &Path) -> Result<(), Error> {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "START");
    let _ = out.flush();
    Store::encrypt_with_progress(path, rewrite_key(), || {
        let _ = writeln!(out, "SEALED");
        let _ = out.flush();
    })?;
    let _ = writeln!(out, "DONE");
    let _ = out.flush();
    Ok(())
}

fn encryption_rewrite_killed() {
    let rounds = rounds_from("KP_ENCRYPT_ROUNDS", 20);
    let seed: u64 = std::env::var("KP_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("KP_CRASH_SEED must be a number"))
        .unwrap_or_else(rand::random);
    for engine in EngineKind::ALL {
        encryption_rewrite_killed_on(engine, rounds, seed);
    }
}

/// Where a kill fell, told from the marker the killed rewrite left.
#[derive(Debug, Default)]
struct Landed {
    /// No record sealed yet: the marker says plaintext.
    before: usize,
    /// Sealing under way: the marker says encrypted, unfinished.
    during: usize,
    /// Past the commit point (the marker says every record is sealed):
    /// flushing, or copying the database into fresh files.
    after_commit: usize,
    /// After the rewrite returned.
    after_done: usize,
}

fn encryption_rewrite_killed_on(engine: EngineKind, rounds: usize, seed: u64) {
    println!("encryption_rewrite_killed on {engine}: {rounds} rounds, KP_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template");
    let model = plaintext_store(&template, engine);
    assert!(model.len() > 200, "{} pods", model.len());
    let want = checked_content(&Store::open_read_only(&template).unwrap(), "the template");
    assert_eq!(want.objects, model.values().cloned().collect::<Vec<_>>());
    let key = rewrite_key();
    let sealed = Sealing {
        key_id: key.id(),
        complete: true,
    };

    // One uninterrupted rewrite: how many batches it commits, how long it takes.
    let path = dir.path().join("calibrate");
    copy_dir(&template, &path);
    let started = Instant::now();
    let mut child = spawn("encrypt-rewriter", &path, engine);
    let lines = lines_of(&mut child);
    // When each line came: what follows the last batch (marking the store
    // sealed, flushing, copying to fresh files) is a window of its own.
    let timed: Vec<(String, Instant)> = lines.iter().map(|l| (l, Instant::now())).collect();
    assert!(
        child.wait().unwrap().success(),
        "{engine}: the rewrite failed"
    );
    let took = started.elapsed();
    let batches = timed.iter().filter(|(l, _)| l == "SEALED").count();
    let last_sealed = timed
        .iter()
        .rev()
        .find(|(l, _)| l == "SEALED")
        .map(|(_, t)| *t);
    let done = timed.iter().find(|(l, _)| l == "DONE").map(|(_, t)| *t);
    let tail = match (last_sealed, done) {
        (Some(s), Some(d)) => d.saturating_duration_since(s),
        _ => panic!("{engine}: the rewrite printed no SEALED or no DONE: {timed:?}"),
    };
    assert!(
        batches >= 3,
        "{engine}: {batches} batches: too few to kill between"
    );

    let mut landed = Landed::default();
    for round in 0..rounds {
        let at = format!("{engine} round {round} (KP_CRASH_SEED={seed})");
        let path = dir.path().join(format!("r{round}"));
        copy_dir(&template, &path);
        let mut child = spawn("encrypt-rewriter", &path, engine);
        let lines = lines_of(&mut child);
        let mut seen = Vec::new();
        if round % 4 == 0 {
            // Anywhere: while it starts, opens, seals, copies, or after.
            let micros = took.as_micros() as u64 * 5 / 4;
            std::thread::sleep(Duration::from_micros(rng.random_range(0..=micros)));
        } else {
            // Between (or inside) batches: after the k-th has committed;
            // one round in four after the last, somewhere in what follows
            // it (the commit point, the flush, the copy to fresh files).
            let k = if round % 4 == 1 {
                batches
            } else {
                rng.random_range(1..=batches)
            };
            while seen.iter().filter(|l| *l == "SEALED").count() < k {
                let line = lines.recv_timeout(Duration::from_secs(60));
                seen.push(line.unwrap_or_else(|_| panic!("{at}: the rewrite stopped early")));
            }
            let micros = if round % 4 == 1 {
                tail.as_micros() as u64
            } else {
                3_000
            };
            std::thread::sleep(Duration::from_micros(rng.random_range(0..=micros)));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        seen.extend(lines.iter());

        let sealing = Store::encryption_of(&path).unwrap();
        match sealing {
            None => landed.before += 1,
            Some(s) => {
                assert_eq!(s.key_id, key.id(), "{at}");
                if !s.complete {
                    landed.during += 1;
                } else if seen.iter().any(|l| l == "DONE") {
                    landed.after_done += 1;
                } else {
                    landed.after_commit += 1;
                }
            }
        }
        // Opens, without the key while nothing is sealed, only with it after.
        let reader = match sealing {
            None => Store::open_read_only(&path),
            Some(_) => {
                let err = Store::open_read_only(&path).err();
                assert!(
                    matches!(err, Some(Error::KeyNeeded { .. })),
                    "{at}: {err:?}"
                );
                Store::open_read_only_with_key(&path, Some(key.clone()))
            }
        }
        .unwrap_or_else(|e| panic!("{at}: open after the kill: {e}"));
        assert!(
            checked_content(&reader, &at) == want,
            "{at}: content differs from the store's before the rewrite"
        );
        drop(reader);

        // The rewrite, run again, finishes: every record sealed.
        Store::encrypt(&path, key.clone()).unwrap_or_else(|e| panic!("{at}: rewrite again: {e}"));
        assert_eq!(Store::encryption_of(&path).unwrap(), Some(sealed), "{at}");
        let options = StoreOptions {
            encryption_key: Some(key.clone()),
            ..options(engine)
        };
        // Opened with the key of a store marked complete, a plaintext
        // record is damage: `check` reads every record.
        let store = Store::open_existing_with(&path, options).unwrap();
        assert!(
            checked_content(&store, &at) == want,
            "{at}: content after the second rewrite"
        );
        drop(store);
        let leaks = disk_leaks(&path, &[CANARY]);
        assert!(leaks.is_empty(), "{at}: plaintext left: {leaks:#?}");
        std::fs::remove_dir_all(&path).unwrap();
    }
    assert!(
        landed.during > 0,
        "{engine}: no kill fell while records were being sealed: {landed:?}"
    );
    println!(
        "encryption_rewrite_killed on {engine}: {rounds} rounds ok, {batches} batches per rewrite, \
         rewrite {:.0} ms ({:.0} ms after its last batch); kills before sealing began: {}, while sealing (before the commit point): {}, \
         after the commit point (flushing or copying to fresh files): {}, after the rewrite returned: {}",
        took.as_secs_f64() * 1000.0,
        tail.as_secs_f64() * 1000.0,
        landed.before,
        landed.during,
        landed.after_commit,
        landed.after_done
    );
}

fn lock_held_by_another_process() {
    for engine in EngineKind::ALL {
        lock_held_on(engine);
    }
}

fn lock_held_on(engine: EngineKind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    Store::open_with(&path, options(engine)).unwrap();
    let mut child = spawn("lock-holder", &path, engine);
    let lines = lines_of(&mut child);
    let line = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("child opened the store");
    assert_eq!(line, "LOCKED");

    for result in [
        Store::open(&path),
        Store::open_existing(&path),
        Store::open_read_only(&path),
    ] {
        let err = result.err().expect("second open must fail");
        assert!(matches!(err, Error::InUse { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("store {} is in use by another process", path.display())
        );
    }

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    Store::open(&path).expect("the lock is released when the holder exits");
}

fn main() {
    if let Ok(role) = std::env::var(CHILD) {
        let path = std::env::var(STORE).expect("KP_STORE");
        let engine: EngineKind = std::env::var(ENGINE)
            .expect("KP_ENGINE")
            .parse()
            .expect("KP_ENGINE names an engine");
        let result = match role.as_str() {
            "crash-writer" => crash_writer(Path::new(&path), engine),
            "lock-holder" => lock_holder(Path::new(&path)),
            "encrypt-rewriter" => encrypt_rewriter(Path::new(&path)),
            other => panic!("unknown child role {other}"),
        };
        if let Err(e) = result {
            eprintln!("child {role}: {e}");
            std::process::exit(1);
        }
        return;
    }
    // (name, test, ignored unless asked for)
    let tests: [(&str, fn(), bool); 4] = [
        ("crash_consistency", crash_consistency, false),
        (
            "encryption_rewrite_killed",
            encryption_rewrite_killed,
            false,
        ),
        (
            "lock_held_by_another_process",
            lock_held_by_another_process,
            false,
        ),
        ("crash_soak", crash_soak, true),
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _, _) in tests {
            println!("{name}: test");
        }
        return;
    }
    // The few libtest arguments that select tests: filters, --skip,
    // --ignored and --include-ignored.
    let only_ignored = args.iter().any(|a| a == "--ignored");
    let include_ignored = args.iter().any(|a| a == "--include-ignored");
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--skip" {
            skips.extend(it.next());
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    for (name, test, ignored) in tests {
        let selected = filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
        let skipped = skips.iter().any(|s| name.contains(s.as_str()));
        let runs = only_ignored || include_ignored || !ignored;
        if !selected || skipped || (only_ignored && !ignored) {
            continue;
        }
        if !runs {
            println!("test {name} ... ignored");
            continue;
        }
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
    }
}
