//! What the store commands do with a store they cannot or must not read:
//! one line on stderr naming the path and the problem, a documented exit
//! code, nothing on stdout, nothing changed.

use crate::support::cli::*;
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
            format!(
                "error: store {dir} is in use by another process; try again once the \
                 process that holds it (a running `kube-persist sync`, say) has stopped"
            )
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
    let file = plain.join("cat.jpg");
    for (dir, what) in [
        (&plain, "is not a kube-persist store"),
        (&missing, "does not exist"),
        (&file, "is not a directory"),
    ] {
        let dir = dir.to_str().unwrap();
        for cmd in READERS {
            let r = kp(&[cmd, dir]);
            assert_eq!(r.code, 3, "{cmd} {dir}: {}", r.stderr);
            assert_eq!(one_line(&r), format!("error: {dir} {what}"));
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
    assert_has_lines(
        &help,
        &[
            "Exit codes:",
            "  2   the store is in use by another process; nothing was changed",
            "  3   the path does not exist, is not a directory, or is not a kube-persist store",
            "  4   the store has a newer schema than this build supports; it was left untouched",
            "  5   the store is damaged: a corrupt record or unreadable files (the message",
            "  64  invalid command line (option, resource, namespace, key, selector, --server URL,",
            "      KUBE_PERSIST_NOW)",
        ],
    );
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
        "inspect", "get", "list", "history", "verify", "export", "compact", "repair",
    ] {
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains("\nExit codes:\n"), "{cmd} --help:\n{help}");
    }
}

#[test]
fn every_resource_option_documents_the_same_forms() {
    let forms = "plural, singular, short name or kind, optionally followed by .group or \
                 .version.group (pods, po, Pod, deployments.apps, deploy.v1.apps); or a \
                 collection's full name as inspect prints it, restrictions included \
                 ('pods [namespace=default]')";
    for cmd in ["get", "list", "history", "export"] {
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains(forms), "{cmd} --help:\n{help}");
    }
    let help = ok(&["export", "--help"]);
    assert!(
        help.contains("nothing says which collection it came from"),
        "{help}"
    );
}

/// The read-only commands change no byte, mode or file of a store, and two
/// can read it at once.
#[test]
fn reading_a_store_changes_nothing_in_it() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let before = snapshot_with_modes(dir.as_ref());
    for args in [
        vec!["inspect", &dir],
        vec!["list", &dir, "-r", "pods", "-A"],
        vec!["get", &dir, "-r", "pods", "default/web-0", "-o", "yaml"],
        vec!["history", &dir, "-r", "pods", "default/web-0"],
        vec!["verify", &dir],
        vec!["export", &dir],
    ] {
        ok(&args);
        assert_eq!(snapshot_with_modes(dir.as_ref()), before, "{args:?}");
    }
    let readers: Vec<_> = (0..4).map(|_| spawn(&["export", &dir])).collect();
    for r in readers {
        let r = finish(r);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
}

/// Damage below the records (sled's own files) is one line naming the file,
/// exit 5, and the damaged store is left exactly as it was.
#[test]
fn damaged_store_files_exit_5_and_are_left_as_they_were() {
    let (tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let emptied_log = tmp.path().join("emptied-log");
    let no_db = tmp.path().join("no-db");
    for to in [&emptied_log, &no_db] {
        copy_dir(dir.as_ref(), to);
    }
    std::fs::File::create(emptied_log.join("db").join("db")).unwrap();
    std::fs::remove_dir_all(no_db.join("db")).unwrap();
    for (store, file) in [(&emptied_log, "db/db"), (&no_db, "db")] {
        let before = snapshot_with_modes(store);
        let store_str = store.to_str().unwrap();
        for cmd in ["inspect", "list", "verify", "export"] {
            let r = kp(&[cmd, store_str]);
            assert_eq!(r.code, 5, "{cmd}: {}", r.stderr);
            assert!(
                one_line(&r).starts_with(&format!("error: store {store_str} is damaged: {file}: ")),
                "{}",
                r.stderr
            );
        }
        assert_eq!(snapshot_with_modes(store), before);
    }
}

fn snapshot_with_modes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out: Vec<_> = snapshot(dir)
        .into_iter()
        .map(|(p, bytes)| {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            (p, bytes, mode)
        })
        .collect();
    out.push((
        dir.to_path_buf(),
        Vec::new(),
        std::fs::metadata(dir).unwrap().permissions().mode(),
    ));
    out
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

/// A reader killed mid-read leaves its private copy under `$TMPDIR`; the
/// next reader removes such copies, and never one whose reader still runs.
#[test]
fn copies_left_by_killed_readers_are_removed_and_live_ones_kept() {
    let (tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let scratch = tmp.path().join("tmp");
    let abandoned = scratch.join("kube-persist-read-abandoned");
    let live = scratch.join("kube-persist-read-live");
    for copy in [&abandoned, &live] {
        std::fs::create_dir_all(copy.join("db")).unwrap();
        std::fs::write(copy.join("db").join("db"), b"a copy of the store").unwrap();
    }
    std::fs::write(abandoned.join("owner.lock"), b"").unwrap();
    let owner = std::fs::File::create(live.join("owner.lock")).unwrap();
    fs2::FileExt::lock_exclusive(&owner).unwrap();

    let r = kp_env(&["inspect", &dir], &[("TMPDIR", scratch.to_str().unwrap())]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!abandoned.exists(), "the abandoned copy is still there");
    assert!(
        live.join("db").join("db").exists(),
        "a live reader's copy was removed"
    );
    // The reader removed its own copy too.
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [live.file_name().unwrap()]);
}
