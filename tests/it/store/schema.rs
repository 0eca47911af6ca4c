//! Schema versions (I9): an older store is migrated on open, a newer one is
//! refused and left byte-for-byte untouched, and a store an older build
//! cannot read is one it refuses.

use std::path::Path;

use crate::engine_test;
use crate::support::store::{
    files as snapshot, on, pod, pods_id, realistic_pod, store_one_pod, upserts, Rng,
};
use kube_persist::migrations::{v1, SCHEMA_VERSION};
use kube_persist::store::{
    Batch, Delta, DictionaryPolicy, EngineKind, Error, ObjectKey, Store, StoreOptions,
};
use serde_json::{json, Value};

fn marker(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path.join("kube-persist.json")).unwrap()).unwrap()
}

/// Rewrites the schema version in the marker, keeping the rest of it.
fn set_marker_schema(path: &Path, schema: u32) {
    let mut body = marker(path);
    body["schema_version"] = schema.into();
    std::fs::write(path.join("kube-persist.json"), body.to_string()).unwrap();
}

fn fixture_batches() -> Vec<Batch> {
    vec![
        upserts(
            (0..80)
                .map(|i| realistic_pod(&format!("ns{}", i % 4), &format!("p{i}"), i + 1, i))
                .collect(),
            80,
        ),
        Batch {
            deltas: vec![
                Delta::Delete(realistic_pod("ns0", "p0", 90, 0)),
                Delta::Upsert(pod("ns1", "p1", 91, &[("app", "changed")])),
            ],
            rv: Some("91".into()),
        },
    ]
}

fn fixture_options(engine: EngineKind) -> StoreOptions {
    // A dictionary in the fixture too, so its records use both codecs.
    StoreOptions {
        engine: Some(engine),
        dictionary: DictionaryPolicy {
            min_objects: 50,
            ..DictionaryPolicy::default()
        },
        ..StoreOptions::default()
    }
}

engine_test! {
    fn a_v1_store_is_migrated_on_open_and_keeps_everything(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old");
        v1::build_fixture(&path, &pods_id(), fixture_batches(), fixture_options(engine)).unwrap();
        assert_eq!(marker(&path)["schema_version"], 1);

        let store = Store::open_with(&path, fixture_options(engine)).unwrap();
        assert_eq!(store.schema_version(), SCHEMA_VERSION);
        assert_eq!(marker(&path)["schema_version"], SCHEMA_VERSION);
        let c = store
            .find_collection(&pods_id())
            .unwrap()
            .expect("collection survives");
        let m = c.meta().unwrap();
        assert_eq!(m.schema_version, SCHEMA_VERSION);
        assert_eq!(m.last_rv.as_deref(), Some("91"));
        assert_eq!(m.objects, 79);
        assert_eq!(m.journal_len, 82);
        assert_eq!(m.dictionary_id, Some(1));
        // The counters the migration computed match the records (verify checks them).
        assert!(m.raw_bytes > m.stored_bytes && m.stored_bytes > 0, "{m:?}");
        let report = c.verify().unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.objects, 79);
        assert_eq!(
            c.get(&ObjectKey::namespaced("ns1", "p1")).unwrap().unwrap(),
            pod("ns1", "p1", 91, &[("app", "changed")])
        );
        assert_eq!(c.get(&ObjectKey::namespaced("ns0", "p0")).unwrap(), None);
        assert_eq!(c.by_index("label", "app=changed").unwrap().len(), 1);
        assert_eq!(
            c.history(&ObjectKey::namespaced("ns1", "p1"))
                .unwrap()
                .len(),
            2
        );
        // And it keeps working: writes, counters, journal seqs continue.
        let ch = c
            .apply(upserts(vec![pod("ns9", "new", 100, &[])], 100))
            .unwrap();
        assert_eq!(ch[0].seq, 83);
        assert!(c.verify().unwrap().is_ok());
    }
}

engine_test! {
    fn a_v1_store_read_only_is_read_migrated_and_left_as_it_was(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old");
        v1::build_fixture(&path, &pods_id(), fixture_batches(), fixture_options(engine)).unwrap();
        let before = snapshot(&path);
        {
            let store = Store::open_read_only(&path).unwrap();
            let c = store.find_collection(&pods_id()).unwrap().unwrap();
            let m = c.meta().unwrap();
            assert_eq!((m.last_rv.as_deref(), m.objects), (Some("91"), 79));
            assert!(c.verify().unwrap().is_ok());
            assert_eq!(
                c.get(&ObjectKey::namespaced("ns1", "p1")).unwrap().unwrap(),
                pod("ns1", "p1", 91, &[("app", "changed")])
            );
        }
        assert_eq!(
            snapshot(&path),
            before,
            "the store must stay schema 1, untouched"
        );
        assert_eq!(marker(&path)["schema_version"], 1);
    }
}

engine_test! {
    fn the_migration_is_idempotent_if_the_marker_update_was_lost(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old");
        v1::build_fixture(&path, &pods_id(), fixture_batches(), fixture_options(engine)).unwrap();
        let before = {
            let store = Store::open_with(&path, on(engine)).unwrap();
            let c = store.collection(&pods_id()).unwrap();
            (c.list().unwrap(), c.meta().unwrap().raw_bytes)
        };
        // As if the process died after migrating the data but before the marker.
        set_marker_schema(&path, 1);
        let store = Store::open_with(&path, on(engine)).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        assert_eq!((c.list().unwrap(), c.meta().unwrap().raw_bytes), before);
        assert!(c.verify().unwrap().is_ok());
        assert_eq!(marker(&path)["schema_version"], SCHEMA_VERSION);
    }
}

engine_test! {
    fn without_the_migration_step_a_v1_store_does_not_read_as_v2(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old");
        v1::build_fixture(&path, &pods_id(), fixture_batches(), fixture_options(engine)).unwrap();
        // Claim v2 without migrating: the v1 state record is recognised and refused.
        set_marker_schema(&path, SCHEMA_VERSION);
        let store = Store::open_with(&path, on(engine)).unwrap();
        let err = store.collection(&pods_id()).err().unwrap();
        assert!(err.to_string().contains("state layout Some(1)"), "{err}");
    }
}

engine_test! {
    fn a_newer_store_is_refused_and_left_untouched(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new");
        {
            let store = Store::open_with(&path, on(engine)).unwrap();
            store_one_pod(&store);
        }
        set_marker_schema(&path, SCHEMA_VERSION + 1);
        let before = snapshot(&path);
        for result in [
            Store::open_with(&path, on(engine)),
            Store::open_existing(&path),
            Store::open_read_only(&path),
        ] {
            let err = result.err().expect("newer schema must be refused");
            match &err {
                Error::NewerSchema {
                    found, supported, ..
                } => {
                    assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
                }
                other => panic!("expected NewerSchema, got {other}"),
            }
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
                "{msg}"
            );
            assert!(msg.contains("left untouched"), "{msg}");
        }
        assert_eq!(snapshot(&path), before, "nothing in the store may change");
    }
}

engine_test! {
    fn a_damaged_marker_is_reported_not_overwritten(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        drop(Store::open_with(&path, on(engine)).unwrap());
        std::fs::write(path.join("kube-persist.json"), "{not json").unwrap();
        let err = Store::open_with(&path, on(engine)).err().unwrap();
        assert!(
            matches!(&err, Error::Corrupt { key, .. } if key == "kube-persist.json"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(path.join("kube-persist.json")).unwrap(),
            b"{not json"
        );
        std::fs::write(
            path.join("kube-persist.json"),
            r#"{"format":"other","schema_version":1}"#,
        )
        .unwrap();
        let err = Store::open_with(&path, on(engine)).err().unwrap();
        assert!(err.to_string().contains("\"other\""), "{err}");
    }
}

engine_test! {
    /// The engine is chosen at creation, recorded in the marker, and kept:
    /// an open that names none uses it, one that names the other is refused
    /// and changes nothing.
    fn a_store_keeps_the_engine_it_was_created_with(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        {
            let store = Store::open_with(&path, on(engine)).unwrap();
            assert_eq!(store.engine(), engine);
            store_one_pod(&store);
        }
        assert_eq!(marker(&path)["engine"], engine.name());
        assert_eq!(Store::open(&path).unwrap().engine(), engine);
        assert_eq!(Store::open_read_only(&path).unwrap().engine(), engine);
        let other = EngineKind::ALL.into_iter().find(|&k| k != engine).unwrap();
        let before = snapshot(&path);
        match Store::open_with(&path, on(other)) {
            Err(Error::EngineMismatch { found, asked, .. }) => {
                assert_eq!((found, asked), (engine, other))
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a {engine} store as {other}"),
        }
        assert_eq!(snapshot(&path), before);
        let c = Store::open(&path).unwrap().collection(&pods_id()).unwrap();
        assert_eq!(c.len(), 1);
    }
}

#[test]
fn a_new_store_without_an_engine_gets_the_default_one() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s");
    assert_eq!(Store::open(&path).unwrap().engine(), EngineKind::DEFAULT);
    assert_eq!(marker(&path)["engine"], EngineKind::DEFAULT.name());
}

/// What builds from before redb accept as a store they may open (as sled):
/// their marker has no engine, ignores fields it does not know, and checks
/// only these two.
fn accepted_by_sled_only_builds(marker: &Value) -> bool {
    marker["format"] == "kube-persist" && marker["schema_version"].as_u64().is_some_and(|v| v <= 2)
}

engine_test! {
    /// A redb store opened by a build that knows only sled would get sled
    /// files written beside its data and its marker rewritten without its
    /// engine; a schema-v3 store of either engine would have its Added
    /// entries that refer to their records read as damage. Such builds
    /// must refuse both.
    fn no_store_is_open_to_builds_from_before_redb(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        store_one_pod(&Store::open_with(&path, on(engine)).unwrap());
        let written = marker(&path);
        assert!(!accepted_by_sled_only_builds(&written), "{written}");
        // Also once the store has been reopened, written to and compacted.
        store_one_pod(&Store::open(&path).unwrap());
        Store::compact(&path, Default::default()).unwrap();
        assert_eq!(marker(&path), written);
    }
}

/// redb stores whose marker was written before redb had its own format
/// (`kube-persist` with `"engine": "redb"`) still open as redb; a reader
/// leaves the marker as it is, the first writer gives it redb's format.
#[test]
fn a_redb_store_marked_the_older_way_opens_and_its_writer_remarks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s");
    store_one_pod(&Store::open_with(&path, on(EngineKind::Redb)).unwrap());
    let mut old = marker(&path);
    old["format"] = "kube-persist".into();
    std::fs::write(path.join("kube-persist.json"), old.to_string()).unwrap();

    let before = snapshot(&path);
    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.engine(), EngineKind::Redb);
    assert_eq!(
        reader.find_collection(&pods_id()).unwrap().unwrap().len(),
        1
    );
    drop(reader);
    assert_eq!(snapshot(&path), before);

    let store = Store::open_existing(&path).unwrap();
    assert_eq!(store.engine(), EngineKind::Redb);
    assert_eq!(store.collection(&pods_id()).unwrap().len(), 1);
    let remarked = marker(&path);
    assert!(!accepted_by_sled_only_builds(&remarked), "{remarked}");
    assert_eq!(remarked["engine"], "redb");
    assert_eq!(remarked["schema_version"], old["schema_version"]);
}

#[test]
fn a_marker_naming_two_engines_is_reported_not_guessed() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s");
    drop(Store::open_with(&path, on(EngineKind::Redb)).unwrap());
    let mut body = marker(&path);
    body["engine"] = "sled".into();
    std::fs::write(path.join("kube-persist.json"), body.to_string()).unwrap();
    for result in [Store::open_existing(&path), Store::open_read_only(&path)] {
        match result {
            Err(Error::Corrupt { key, reason, .. }) => {
                assert_eq!(key, "kube-persist.json");
                assert!(reason.contains("sled"), "{reason}");
            }
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("opened a store whose marker names two engines"),
        }
    }
}

/// Unpacks the schema-v2 store that the sled-only code wrote (see
/// migrations/fixtures/README.md) into `dir`; returns the store's path and
/// what that code read from it.
fn unpack_v2_sled_fixture(dir: &Path) -> (std::path::PathBuf, Value) {
    let path = unpack_fixture(dir, "v2-sled");
    let expected = std::fs::read(path.join("expected.json")).unwrap();
    std::fs::remove_file(path.join("expected.json")).unwrap();
    (path, serde_json::from_slice(&expected).unwrap())
}

/// Unpacks `migrations/fixtures/NAME.tar.zst` into `dir`; returns `dir/NAME`.
fn unpack_fixture(dir: &Path, name: &str) -> std::path::PathBuf {
    use std::io::Write;
    let packed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("migrations/fixtures/{name}.tar.zst")),
    )
    .unwrap();
    let tar = zstd::decode_all(packed.as_slice()).unwrap();
    let mut untar = std::process::Command::new("tar")
        .arg("-x")
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    untar.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(untar.wait().unwrap().success());
    dir.join(name)
}

/// Every version of every object that `benches/store_profile.rs` wrote
/// into the redb fixture (`60 modify`: 60 pods relisted, then 2,000
/// modifications in batches of 100), in order, computed the way it
/// computed them.
fn v2_redb_fixture_versions() -> std::collections::BTreeMap<ObjectKey, Vec<Value>> {
    let n = 60;
    let key_of = |i: u64| ObjectKey::namespaced(format!("ns{}", i % 50), format!("pod-{i}"));
    let pod_at = |i: u64, rv: u64| {
        let k = key_of(i);
        realistic_pod(k.namespace.as_deref().unwrap(), &k.name, rv, i)
    };
    let mut versions: std::collections::BTreeMap<ObjectKey, Vec<Value>> = (0..n)
        .map(|i| (key_of(i), vec![pod_at(i, i + 1)]))
        .collect();
    let mut rng = Rng::new(7);
    let mut rv = n + 1;
    for _ in 0..20 {
        for j in 0..100 {
            let i = rng.below(n);
            versions
                .get_mut(&key_of(i))
                .unwrap()
                .push(pod_at(i, rv + j));
        }
        rv += 100;
    }
    versions
}

/// Checks that `store` holds the redb fixture's objects, each with a
/// history that replays to every version written, and that it verifies.
fn holds_the_v2_redb_fixture(store: &Store) {
    let versions = v2_redb_fixture_versions();
    let c = store.find_collection(&pods_id()).unwrap().unwrap();
    assert_eq!(c.len(), versions.len());
    for (key, written) in &versions {
        assert_eq!(c.get(key).unwrap().as_ref(), written.last(), "{key}");
        let history = c.history(key).unwrap();
        let mut state: Option<Value> = None;
        let replayed: Vec<Value> = history
            .iter()
            .map(|e| {
                match state.as_mut() {
                    None => state = Some(e.patch.clone()),
                    Some(s) => json_patch::merge(s, &e.patch),
                }
                state.clone().unwrap()
            })
            .collect();
        assert_eq!(&replayed, written, "history of {key}");
    }
    assert_eq!(c.journal_since(0).unwrap().len(), 2060);
    let problems = c.verify().unwrap().problems;
    assert!(problems.is_empty(), "{problems:?}");
}

/// A redb store written by the schema-v2 code (see
/// migrations/fixtures/README.md) reads in full, read-only and after its
/// migration, and takes writes after it.
#[test]
fn a_v2_redb_store_is_migrated_and_keeps_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let path = unpack_fixture(tmp.path(), "v2-redb");
    assert_eq!(marker(&path)["schema_version"], 2);
    assert_eq!(marker(&path)["engine"], "redb");
    let before = snapshot(&path);
    holds_the_v2_redb_fixture(&Store::open_read_only(&path).unwrap());
    let mut after = snapshot(&path);
    after.remove(&path.join("lock"));
    assert_eq!(after, before, "a reader changed the store");

    let store = Store::open_existing(&path).unwrap();
    assert_eq!(marker(&path)["schema_version"], SCHEMA_VERSION);
    assert_eq!(store.engine(), EngineKind::Redb);
    holds_the_v2_redb_fixture(&store);

    // A v2 Added entry (the object in full) replaced; a new v3 one.
    let c = store.collection(&pods_id()).unwrap();
    let key = ObjectKey::namespaced("ns3", "pod-3");
    let mut next = c.get(&key).unwrap().unwrap();
    next["metadata"]["resourceVersion"] = json!("5000");
    next["metadata"]["labels"]["moved"] = json!("yes");
    let added = realistic_pod("ns9", "new", 5001, 9);
    let earlier = c.history(&key).unwrap();
    c.apply(upserts(vec![next.clone(), added.clone()], 5001))
        .unwrap();
    let history = c.history(&key).unwrap();
    assert_eq!(history.len(), earlier.len() + 1);
    assert_eq!(history[0].patch, earlier[0].patch);
    assert_eq!(c.by_index("label", "moved=yes").unwrap(), [next]);
    assert_eq!(
        c.history(&ObjectKey::namespaced("ns9", "new")).unwrap()[0].patch,
        added
    );
    let problems = c.verify().unwrap().problems;
    assert!(problems.is_empty(), "{problems:?}");
}

/// Everything the fixture's generator read back from its store, read the
/// same way.
fn dump(store: &Store) -> Value {
    let key_of = |o: &Value| ObjectKey::of(o).unwrap().to_string();
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    };
    let mut ids = store.collections().unwrap();
    ids.sort_by_key(|id| id.name());
    let mut out = Vec::new();
    for id in ids {
        let c = store.find_collection(&id).unwrap().unwrap();
        let m = c.meta().unwrap();
        let objects = c.list().unwrap();
        let mut versions: Vec<(String, String)> = c
            .versions()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        versions.sort();
        let journal: Vec<Value> = c
            .journal_since(m.journal_first_seq - 1)
            .unwrap()
            .into_iter()
            .map(|e| {
                json!({"seq": e.seq, "kind": format!("{:?}", e.kind), "key": e.key.to_string(),
                       "rv": e.rv, "at_ms": ms(e.at), "patch": e.patch})
            })
            .collect();
        let mut keys: Vec<String> = objects.iter().map(key_of).collect();
        keys.push("ns0/p0".into());
        let history: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| {
                let h = c.history(&k.parse().unwrap()).unwrap();
                (
                    k.clone(),
                    json!(h.iter().map(|e| e.seq).collect::<Vec<_>>()),
                )
            })
            .collect();
        let labels: Vec<Value> = [
            "app=changed",
            "app=web",
            "topology.kubernetes.io/zone=z1",
            "tier=backend",
        ]
        .iter()
        .map(|l| {
            let found = c.by_index("label", l).unwrap();
            json!([l, found.iter().map(key_of).collect::<Vec<_>>()])
        })
        .collect();
        out.push(json!({
            "id": id, "name": id.name(),
            "short_names": store.short_names(&id).unwrap(),
            "meta": {"last_rv": m.last_rv, "last_sync_ms": m.last_sync.map(ms),
                     "objects": m.objects, "dictionaries": m.dictionaries,
                     "dictionary_id": m.dictionary_id, "raw_bytes": m.raw_bytes,
                     "journal_first_seq": m.journal_first_seq,
                     "journal_last_seq": m.journal_last_seq, "journal_len": m.journal_len},
            "objects": objects, "versions": versions, "journal": journal,
            "history": history, "labels": labels, "cursors": c.cursors().unwrap(),
        }));
    }
    json!({"schema_version": store.schema_version(), "collections": out})
}

/// A store from before there was a choice of engine has no engine in its
/// marker and is sled's: every way of opening it reads it as sled and
/// finds everything the code that wrote it read; asking for redb is
/// refused and changes nothing.
#[test]
fn a_store_from_before_the_engine_choice_opens_as_sled_with_everything_in_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, mut expected) = unpack_v2_sled_fixture(tmp.path());
    assert!(marker(&path).get("engine").is_none());
    assert_eq!(expected["schema_version"], 2);
    // Everything else reads as that code read it, through this build's schema.
    expected["schema_version"] = json!(SCHEMA_VERSION);
    assert_eq!(expected["collections"].as_array().unwrap().len(), 3);

    let before = snapshot(&path);
    {
        let store = Store::open_read_only(&path).unwrap();
        assert_eq!(store.engine(), EngineKind::Sled);
        assert_eq!(dump(&store), expected);
    }
    // A reader takes the store's lock, creating its empty lock file when
    // the store has none (the packed fixture has none); nothing else may
    // change.
    let mut after = snapshot(&path);
    let lock = after
        .remove(&path.join("lock"))
        .expect("the reader's lock file");
    assert!(lock.0.is_empty(), "the lock file holds {:?}", lock.0);
    assert_eq!(after, before, "a reader changed the store");
    let before = snapshot(&path);
    match Store::open_with(&path, on(EngineKind::Redb)) {
        Err(Error::EngineMismatch { found, asked, .. }) => {
            assert_eq!((found, asked), (EngineKind::Sled, EngineKind::Redb))
        }
        Err(e) => panic!("expected EngineMismatch, got {e}"),
        Ok(_) => panic!("opened a sled store as redb"),
    }
    assert_eq!(snapshot(&path), before, "a refused open changed the store");
    let finds_everything = |store: Store| {
        assert_eq!(store.engine(), EngineKind::Sled);
        assert_eq!(dump(&store), expected);
    };
    finds_everything(Store::open_existing(&path).unwrap());
    finds_everything(Store::open(&path).unwrap());
    // Migrated by the writer: the sled-only build, which would read the
    // entries written from now on as damage, refuses it.
    assert_eq!(marker(&path)["schema_version"], SCHEMA_VERSION);
    assert!(!accepted_by_sled_only_builds(&marker(&path)));

    // Written to after the migration: an Added entry the v2 code wrote in
    // full, then replaced; a new object, whose entry refers to its record.
    let store = Store::open(&path).unwrap();
    let c = store.collection(&pods_id()).unwrap();
    let p36 = ObjectKey::namespaced("ns0", "p36");
    let before = c.history(&p36).unwrap();
    assert_eq!(before.len(), 1);
    let mut next = c.get(&p36).unwrap().unwrap();
    next["metadata"]["resourceVersion"] = json!("900");
    next["status"]["phase"] = json!("Failed");
    let added = pod("ns9", "new", 901, &[("app", "web")]);
    c.apply(upserts(vec![next.clone(), added.clone()], 901))
        .unwrap();
    let after = c.history(&p36).unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].patch, before[0].patch);
    assert_eq!(
        after[1].patch,
        json!({"metadata": {"resourceVersion": "900"}, "status": {"phase": "Failed"}})
    );
    let new_key = ObjectKey::namespaced("ns9", "new");
    assert_eq!(c.history(&new_key).unwrap()[0].patch, added);
    let problems = c.verify().unwrap().problems;
    assert!(problems.is_empty(), "{problems:?}");
}

engine_test! {
    fn a_v1_store_that_lost_its_marker_is_repaired_as_v1_and_then_migrated(engine) {
        let dir = tempfile::tempdir().unwrap();
        let key = kube_persist::store::EncryptionKey::from_bytes([7; 32]);
        for encryption_key in [None, Some(key)] {
            let sealed = encryption_key.is_some();
            let path = dir.path().join(if sealed { "sealed" } else { "plain" });
            let options = StoreOptions { encryption_key: encryption_key.clone(), ..fixture_options(engine) };
            v1::build_fixture(&path, &pods_id(), fixture_batches(), options.clone()).unwrap();
            std::fs::remove_file(path.join("kube-persist.json")).unwrap();

            // Without the key an encrypted store is not opened, so its
            // marker keeps the schema told from the data: still v1, left
            // for the next open with the key to migrate.
            let repair = Store::repair_marker(&path).unwrap().unwrap();
            assert_eq!(repair.checked, !sealed);
            let want = if sealed { 1 } else { SCHEMA_VERSION };
            assert_eq!(marker(&path)["schema_version"], want, "sealed: {sealed}");

            let store = Store::open_existing_with(&path, options).unwrap();
            assert_eq!(marker(&path)["schema_version"], SCHEMA_VERSION);
            let c = store.find_collection(&pods_id()).unwrap().unwrap();
            assert_eq!(c.meta().unwrap().objects, 79, "sealed: {sealed}");
        }
    }
}
