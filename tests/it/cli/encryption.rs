//! `--key-file`, `KUBE_PERSIST_KEY` and `encrypt` from the command line:
//! a missing or wrong key is exit 9 with a message saying what to do,
//! damage under the right key is still exit 5.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::cli::*;
use crate::support::store::disk_leaks;

pub(super) const KEY: &str = "4f1c2b9d8e7a6f5041322314a5b6c7d8e9f00112233445566778899aabbccdde";
const OTHER: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub(super) fn key_file(dir: &Path, name: &str, hex: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{hex}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// The fixture store, encrypted with `encrypt` under [`KEY`].
fn encrypted_store() -> (tempfile::TempDir, String, String) {
    let (tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let key = key_file(tmp.path(), "key", KEY, 0o600);
    let key = key.to_str().unwrap().to_string();
    let out = ok(&["encrypt", &dir, "--key-file", &key]);
    assert!(out.contains("encrypted under key"), "{out}");
    (tmp, dir, key)
}

#[test]
fn an_encrypted_store_reads_with_its_key_from_a_file_or_the_environment() {
    let (_tmp, dir, key) = encrypted_store();
    let with_file = ok(&[
        "get",
        &dir,
        "-r",
        "secrets",
        "default/db",
        "--key-file",
        &key,
    ]);
    assert!(
        with_file.contains("password: <redacted 7 bytes>"),
        "{with_file}"
    );
    let with_env = kp_env(
        &["get", &dir, "-r", "secrets", "default/db"],
        &[("KUBE_PERSIST_KEY", KEY)],
    );
    assert_eq!(
        (with_env.code, with_env.stdout.as_str()),
        (0, with_file.as_str()),
        "{}",
        with_env.stderr
    );
    for args in [
        vec!["list", &dir, "-r", "pods", "--key-file", &key],
        vec!["export", &dir, "--key-file", &key],
        vec!["inspect", &dir, "--key-file", &key],
        vec!["verify", &dir, "--key-file", &key],
        vec![
            "history",
            &dir,
            "-r",
            "secrets",
            "default/db",
            "--key-file",
            &key,
        ],
        vec!["compact", &dir, "--key-file", &key],
    ] {
        ok(&args);
    }
    // Nothing of the Secret is on disk: not its base64, not the value.
    let leaks = disk_leaks(Path::new(&dir), &["aHVudGVyMg", "hunter2", "YWRtaW4"]);
    assert!(leaks.is_empty(), "{leaks:#?}");
}

#[test]
fn without_the_key_or_with_another_every_command_exits_9_saying_what_to_do() {
    let (tmp, dir, _key) = encrypted_store();
    let other = key_file(tmp.path(), "other", OTHER, 0o600);
    let other = other.to_str().unwrap();
    for args in [
        vec!["get", &dir, "-r", "secrets", "default/db"],
        vec!["list", &dir, "-r", "pods"],
        vec!["inspect", &dir],
        vec!["verify", &dir],
        vec!["export", &dir],
        vec!["compact", &dir],
    ] {
        let r = kp(&args);
        assert_eq!(r.code, 9, "{args:?}: {}", r.stderr);
        // Refused before reading, the store's engine closes at once: its
        // private copy is not dropped while sled still has it open.
        assert!(
            !r.stderr.contains("still holds its lock"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("a key is needed")
                && r.stderr.contains("--key-file")
                && r.stderr.contains("KUBE_PERSIST_KEY"),
            "{args:?}: {}",
            r.stderr
        );
        let mut wrong = args.clone();
        wrong.extend(["--key-file", other]);
        let r = kp(&wrong);
        assert_eq!(r.code, 9, "{wrong:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("but the key given is"),
            "{wrong:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn a_key_file_others_can_read_is_refused_naming_it_and_its_mode() {
    let (tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let loose = key_file(tmp.path(), "loose", KEY, 0o644);
    let r = kp(&["encrypt", &dir, "--key-file", loose.to_str().unwrap()]);
    assert_eq!(r.code, 9, "{}", r.stderr);
    assert!(
        r.stderr.contains(loose.to_str().unwrap()) && r.stderr.contains("mode 0644"),
        "{}",
        r.stderr
    );
    let short = key_file(tmp.path(), "short", "abcd", 0o600);
    let r = get_web_0(&dir, short.to_str().unwrap());
    assert_eq!(r.code, 9, "{}", r.stderr);
    assert!(r.stderr.contains("64 hex digits"), "{}", r.stderr);
    let r = kp(&["encrypt", &dir]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    // The store was left plaintext and readable without a key.
    ok(&["get", &dir, "-r", "pods", "default/web-0"]);
}

#[test]
fn a_damaged_encrypted_record_is_exit_5_not_a_key_error() {
    let (_tmp, dir, key) = encrypted_store();
    flip_byte(dir.as_ref(), &pods(), &object_record("default/web-0"));
    let r = get_web_0(&dir, &key);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("default/web-0"), "{}", r.stderr);
    ok(&[
        "get",
        &dir,
        "-r",
        "pods",
        "default/web-1",
        "--key-file",
        &key,
    ]);
}

/// `get` of the fixture's `default/web-0` with `--key-file key`.
fn get_web_0(dir: &str, key: &str) -> Run {
    kp(&["get", dir, "-r", "pods", "default/web-0", "--key-file", key])
}

/// The id `inspect` and `repair` print for [`KEY`].
fn key_id() -> String {
    kube_persist::store::EncryptionKey::from_hex(KEY, "test")
        .unwrap()
        .id()
        .to_string()
}

crate::engine_test! {
    fn repair_restores_the_marker_of_an_encrypted_store_with_its_key_id(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        super::super::repair::store_on(engine, &path);
        let dir = path.to_str().unwrap();
        let key = key_file(tmp.path(), "key", KEY, 0o600);
        let key = key.to_str().unwrap();
        let other = key_file(tmp.path(), "other", OTHER, 0o600);
        let other = other.to_str().unwrap();
        ok(&["encrypt", dir, "--key-file", key]);
        let listed = ok(&["list", dir, "-r", "pods", "-o", "json", "--key-file", key]);
        let marker = path.join("kube-persist.json");
        let original = super::super::repair::json_of(&marker);
        assert_eq!(original["encryption"]["key_id"], key_id().as_str(), "{original}");
        let id = key_id();

        // Without the key: the key id comes from the records' envelopes.
        std::fs::remove_file(&marker).unwrap();
        let r = kp(&["repair", dir]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains(&format!(", encrypted under key {id}; its records were not opened")), "{}", r.stdout);
        let repaired = super::super::repair::json_of(&marker);
        for field in ["format", "engine", "encryption"] {
            assert_eq!(repaired[field], original[field], "{field}: {repaired}");
        }
        let r = kp(&["get", dir, "-r", "pods", "default/web-0"]);
        assert_eq!(r.code, 9, "{}", r.stderr);
        assert!(r.stderr.contains("a key is needed"), "{}", r.stderr);
        let r = kp(&["list", dir, "-r", "pods", "--key-file", other]);
        assert_eq!(r.code, 9, "{}", r.stderr);
        assert!(r.stderr.contains("but the key given is"), "{}", r.stderr);
        let got = ok(&["get", dir, "-r", "pods", "default/web-0", "--key-file", key]);
        assert!(got.contains("name: web-0"), "{got}");
        assert_eq!(ok(&["list", dir, "-r", "pods", "-o", "json", "--key-file", key]), listed);
        let r = kp(&["verify", dir, "--key-file", key]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

        // With a wrong key nothing is written; with the right one every
        // collection is opened.
        std::fs::remove_file(&marker).unwrap();
        let r = kp(&["repair", dir, "--key-file", other]);
        assert_eq!(r.code, 9, "{}", r.stderr);
        assert!(r.stderr.contains(&format!("encrypted under key {id}, but the key given is")), "{}", r.stderr);
        assert!(!marker.exists());
        let r = kp(&["repair", dir, "--key-file", key]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.ends_with(&format!("), encrypted under key {id}\n")), "{}", r.stdout);
        let repaired = super::super::repair::json_of(&marker);
        assert_eq!(repaired["encryption"], original["encryption"], "{repaired}");
        assert_eq!(ok(&["list", dir, "-r", "pods", "-o", "json", "--key-file", key]), listed);
        let r = kp(&["list", dir, "-r", "pods"]);
        assert_eq!(r.code, 9, "{}", r.stderr);
    }
}

#[test]
fn sync_without_the_key_or_with_another_exits_9_before_trying_the_server() {
    let (tmp, dir, _key) = encrypted_store();
    let other = key_file(tmp.path(), "other", OTHER, 0o600);
    let other = other.to_str().unwrap();
    // widgets need discovery: the network would be tried first.
    for resource in ["pods", "widgets"] {
        let sync = [
            "sync",
            "--store",
            &dir,
            "--resource",
            resource,
            "--server",
            "http://127.0.0.1:1",
            "--until-synced",
            "--sync-timeout",
            "60",
        ];
        let r = kp(&sync);
        assert_eq!(r.code, 9, "{resource}: {}", r.stderr);
        assert!(
            r.stderr.contains("a key is needed") && r.stderr.contains("--key-file"),
            "{resource}: {}",
            r.stderr
        );
        let mut wrong = sync.to_vec();
        wrong.extend(["--key-file", other]);
        let r = kp(&wrong);
        assert_eq!(r.code, 9, "{resource}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "is encrypted under key {}, but the key given is",
                key_id()
            )),
            "{resource}: {}",
            r.stderr
        );
    }
}

#[test]
fn inspect_says_whether_a_store_is_encrypted_and_under_which_key_id() {
    let (_tmp, plain) = store_dir();
    fixture(plain.as_ref());
    let text = ok(&["inspect", &plain]);
    assert_has_lines(&text, &["Encryption:     none (records are plaintext)"]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", &plain, "-o", "json"])).unwrap();
    assert_eq!(json["encryption"], serde_json::Value::Null, "{json}");
    assert!(
        json["collections"].as_array().is_some_and(|c| c.len() == 4),
        "{json}"
    );

    let (_tmp, dir, key) = encrypted_store();
    let line = format!("Encryption:     XChaCha20-Poly1305, key id {}", key_id());
    let want =
        serde_json::json!({"algorithm": "XChaCha20-Poly1305", "keyId": key_id(), "complete": true});
    let text = ok(&["inspect", &dir, "--key-file", &key]);
    assert_has_lines(&text, &[&line]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", &dir, "-o", "json", "--key-file", &key])).unwrap();
    assert_eq!(json["encryption"], want, "{json}");
    assert!(
        json["collections"].as_array().is_some_and(|c| c.len() == 4),
        "{json}"
    );
    // Without the key: what the marker says, then exit 9 for the rest.
    let r = kp(&["inspect", &dir]);
    assert_eq!(r.code, 9, "{}", r.stderr);
    assert_eq!(r.stdout, format!("Store:          {dir}\n{line}\n"));
    assert!(r.stderr.contains("a key is needed"), "{}", r.stderr);
    let r = kp(&["inspect", &dir, "-o", "json"]);
    assert_eq!(r.code, 9, "{}", r.stderr);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json, serde_json::json!({"path": dir, "encryption": want}));
}
