//! What the store commands do with a store they cannot or must not read:
//! one line on stderr naming the path and the problem, a documented exit
//! code, nothing on stdout, nothing changed.

mod cli_support;

use cli_support::*;
use kube_persist::store::Store;

const READERS: &[&str] = &["inspect", "list", "export", "verify", "compact"];

fn one_line(r: &Run) -> &str {
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r.stderr.trim_end()
}

#[test]
fn store_in_use_exits_2_and_changes_nothing() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    // Held open on purpose while the children run: no fork guard here.
    let store = Store::open(&dir).unwrap();
    store.flush().unwrap();
    let before = snapshot(dir.as_ref());
    for cmd in READERS {
        let r = finish(spawn(&[cmd, &dir]));
        assert_eq!(r.code, 2, "{cmd}: {}", r.stderr);
        assert_eq!(
            one_line(&r),
            format!("error: store {dir} is in use by another process")
        );
    }
    let r = finish(spawn(&["get", &dir, "-r", "pods", "default/web-0"]));
    assert_eq!(r.code, 2);
    assert_eq!(snapshot(dir.as_ref()), before);
}

#[test]
fn not_a_store_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("photos");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("cat.jpg"), b"meow").unwrap();
    let missing = tmp.path().join("missing");
    for dir in [&plain, &missing] {
        let dir = dir.to_str().unwrap();
        for cmd in READERS {
            let r = kp(&[cmd, dir]);
            assert_eq!(r.code, 3, "{cmd} {dir}: {}", r.stderr);
            assert_eq!(
                one_line(&r),
                format!("error: {dir} is not a kube-persist store")
            );
        }
    }
    // Nothing was created, in either.
    assert_eq!(snapshot(&plain).len(), 1);
    assert!(!missing.exists());
}

#[test]
fn newer_schema_exits_4_and_is_left_untouched() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let marker = std::path::Path::new(&dir).join("kube-persist.json");
    std::fs::write(&marker, r#"{"format":"kube-persist","schema_version":99}"#).unwrap();
    let before = snapshot(dir.as_ref());
    for cmd in READERS {
        let r = kp(&[cmd, &dir]);
        assert_eq!(r.code, 4, "{cmd}: {}", r.stderr);
        let msg = one_line(&r);
        assert!(
            msg.starts_with(&format!(
                "error: store {dir} has schema version 99, newer than the "
            )),
            "{msg}"
        );
    }
    assert_eq!(snapshot(dir.as_ref()), before);
}

#[test]
fn damaged_marker_exits_5() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    std::fs::write(
        std::path::Path::new(&dir).join("kube-persist.json"),
        b"{not json",
    )
    .unwrap();
    let r = kp(&["inspect", &dir]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(one_line(&r).contains("kube-persist.json"), "{}", r.stderr);
}

#[test]
fn help_documents_exit_codes_and_bad_usage_exits_64() {
    let help = ok(&["--help"]);
    for line in [
        "Exit codes:",
        "  2   the store is in use by another process; nothing was changed",
        "  3   the directory is not a kube-persist store",
        "  4   the store has a newer schema than this build supports; it was left untouched",
        "  5   a corrupt record was found (the message names its key); export and list",
        "  64  invalid command line (option, resource, namespace, key, selector, KUBE_PERSIST_NOW)",
    ] {
        assert!(
            help.lines().any(|l| l == line),
            "missing {line:?} in:\n{help}"
        );
    }
    let r = kp(&["list"]);
    assert_eq!(r.code, 64);
    assert!(r.stderr.contains("DIR"), "{}", r.stderr);
    let r = kp(&["list", "/nonexistent", "--frobnicate"]);
    assert_eq!(r.code, 64);
    let r = kp(&["list", "/nonexistent", "-n", "a", "-A"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
}

#[test]
fn every_store_command_documents_exit_codes() {
    for cmd in [
        "inspect", "get", "list", "history", "verify", "export", "compact",
    ] {
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains("\nExit codes:\n"), "{cmd} --help:\n{help}");
    }
}

/// `| head` closing the pipe is not an error: like ripgrep, every command
/// stops quietly with exit 0, whatever the output form.
#[test]
fn a_reader_that_went_away_is_a_quiet_exit_0() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    // Well past the 8 KiB stdout buffer, so that writes fail mid-object too,
    // not only at the final flush.
    with_store(dir.as_ref(), |store| {
        let many = (0..200)
            .map(|i| pod("default", &format!("web-{i}"), 100 + i, "node-a", true))
            .collect();
        apply(store, &pods(), many, 400)
    });
    let runs: &[&[&str]] = &[
        &["export", &dir],
        &["export", &dir, "-o", "yaml"],
        &["list", &dir, "-r", "pods"],
        &["list", &dir, "-r", "pods", "-o", "wide"],
        &["list", &dir, "-r", "pods", "-o", "name"],
        &["list", &dir, "-r", "pods", "-o", "json"],
        &["list", &dir, "-r", "pods", "-o", "yaml"],
        &["get", &dir, "-r", "pods", "default/web-0"],
        &["get", &dir, "-r", "pods", "default/web-0", "-o", "json"],
        &["history", &dir, "-r", "pods", "default/web-0"],
        &["history", &dir, "-r", "pods", "default/web-0", "-o", "json"],
        &["inspect", &dir],
        &["inspect", &dir, "-o", "json"],
        &["verify", &dir],
        &["verify", &dir, "-o", "json"],
    ];
    for args in runs {
        let r = kp_reader_gone(args);
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{args:?}");
    }
}
