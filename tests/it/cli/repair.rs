//! A store whose marker (`kube-persist.json`) was deleted while its
//! database is intact: every command names the missing marker and the
//! command that restores it, and `repair` restores it on either engine.

use std::path::Path;

use kube_persist::store::{EngineKind, Store, StoreOptions};
use serde_json::Value;

use crate::support::cli::*;

/// A closed store on `engine` at `dir`, holding pods and a config map.
pub(super) fn store_on(engine: EngineKind, dir: &Path) {
    let _guard = fork_guard();
    let options = StoreOptions {
        engine: Some(engine),
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir, options).unwrap();
    let pods_ = vec![
        pod("default", "web-0", 10, "node-a", true),
        pod("default", "web-1", 11, "node-b", false),
    ];
    apply(&store, &pods(), pods_, 11);
    apply(
        &store,
        &configmaps(),
        vec![configmap("default", "settings", 13)],
        13,
    );
}

pub(super) fn json_of(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

crate::engine_test! {
    fn a_lost_marker_is_named_and_repair_restores_it(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        store_on(engine, &path);
        let dir = path.to_str().unwrap();
        let listed = ok(&["list", dir, "-r", "pods", "-o", "json"]);
        let marker = path.join("kube-persist.json");
        let original = json_of(&marker);
        std::fs::remove_file(&marker).unwrap();

        let named = format!(
            "error: {dir} is not a kube-persist store as it is: its marker kube-persist.json \
             is missing, though db/ holds a database; `kube-persist repair {dir}` restores it\n"
        );
        for args in [
            vec!["inspect", dir],
            vec!["list", dir, "-r", "pods"],
            vec!["verify", dir],
        ] {
            let r = kp(&args);
            assert_eq!((r.code, r.stderr.as_str()), (3, named.as_str()), "{args:?}");
        }
        // Nor does sync take the directory over.
        let r = kp(&[
            "sync", "--store", dir, "--resource", "pods",
            "--server", "http://127.0.0.1:1", "--until-synced", "--sync-timeout", "1",
        ]);
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert!(r.stderr.ends_with(&format!("`kube-persist repair {dir}` restores it\n")), "{}", r.stderr);
        assert!(!marker.exists());

        let r = kp(&["repair", dir]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let said = format!("{dir}: rewrote its missing marker: a {engine} store of 2 collections (");
        assert!(r.stdout.starts_with(&said), "{}", r.stdout);
        for name in ["core/v1/pods", "core/v1/configmaps"] {
            assert!(r.stdout.contains(name), "{}", r.stdout);
        }
        // The marker it had, and everything readable as before.
        assert_eq!(json_of(&marker), original);
        assert_eq!(ok(&["list", dir, "-r", "pods", "-o", "json"]), listed);
        let r = kp(&["verify", dir]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

        let r = kp(&["repair", dir]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, format!("{dir}: its marker is in place; nothing to repair\n"));
        assert_eq!(json_of(&marker), original);
    }
}

#[test]
fn repair_takes_nothing_for_a_lost_store_that_is_not_one() {
    let tmp = tempfile::tempdir().unwrap();
    // Someone's files.
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::write(photos.join("cat.jpg"), b"meow").unwrap();
    let dir = photos.to_str().unwrap();
    let r = kp(&["repair", dir]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!("error: {dir} is not a kube-persist store\n")
    );
    assert_eq!(std::fs::read_dir(&photos).unwrap().count(), 1);

    // A store that never registered a collection: nothing shows that
    // kube-persist wrote it.
    let empty = tmp.path().join("empty");
    {
        let _guard = fork_guard();
        drop(Store::open(&empty).unwrap());
    }
    let marker = empty.join("kube-persist.json");
    std::fs::remove_file(&marker).unwrap();
    let dir = empty.to_str().unwrap();
    let r = kp(&["repair", dir]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "error: {dir} is not a kube-persist store: it has no marker and its database \
             registers no collection\n"
        )
    );
    assert!(!marker.exists());

    let nowhere = tmp.path().join("nowhere");
    let r = kp(&["repair", nowhere.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!nowhere.exists());
}

/// Removes the marker of the store at `path`, repairs it with `key_args`,
/// and checks that the marker names the schema the store was at and that
/// neither the repair nor a reader nor a writer after it migrates anything:
/// a store at the current schema has nothing to migrate.
fn repair_keeps_the_schema(path: &Path, repair_key: &[&str], read_key: &[&str]) {
    let dir = path.to_str().unwrap();
    let marker = path.join("kube-persist.json");
    let original = json_of(&marker);
    assert_eq!(
        original["schema_version"],
        kube_persist::store::SCHEMA_VERSION,
        "{original}"
    );
    std::fs::remove_file(&marker).unwrap();
    let run = |args: &[&str], key: &[&str]| {
        let args = [args, key].concat();
        let r = kp_env(&args, &[("RUST_LOG", "info")]);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("migrat"), "{args:?}: {}", r.stderr);
    };
    run(&["repair", dir], repair_key);
    let repaired = json_of(&marker);
    for field in ["schema_version", "format", "engine", "encryption"] {
        assert_eq!(repaired[field], original[field], "{field}: {repaired}");
    }
    run(&["list", dir, "-r", "pods"], read_key);
    run(&["compact", dir], read_key);
    assert_eq!(
        json_of(&marker)["schema_version"],
        kube_persist::store::SCHEMA_VERSION
    );
}

crate::engine_test! {
    fn repair_of_a_plaintext_store_names_its_schema_and_migrates_nothing(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        store_on(engine, &path);
        repair_keeps_the_schema(&path, &[], &[]);
    }
}

crate::engine_test! {
    fn repair_of_an_encrypted_store_names_its_schema_with_or_without_its_key(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        store_on(engine, &path);
        let key = super::super::encryption::key_file(tmp.path(), "key", super::super::encryption::KEY, 0o600);
        let key = ["--key-file", key.to_str().unwrap()];
        ok(&[&["encrypt", path.to_str().unwrap()][..], &key].concat());
        // Without the key nothing opens the sealed records: the schema must
        // come from what repair reads unsealed.
        repair_keeps_the_schema(&path, &[], &key);
        repair_keeps_the_schema(&path, &key, &key);
    }
}
