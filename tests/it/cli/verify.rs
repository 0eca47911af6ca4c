//! `kube-persist verify` on a clean store and on one with a flipped byte;
//! what the reading commands do when they meet the damaged record.

use crate::support::cli::*;

#[test]
fn clean_store_is_intact() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let r = kp(&["verify", &dir]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "\
configmaps: 1 objects, 1 journal entries, 0 index entries, 0 dictionaries, 0 cursors: ok
pods: 3 objects, 3 journal entries, 6 index entries, 0 dictionaries, 0 cursors: ok
secrets: 1 objects, 1 journal entries, 0 index entries, 0 dictionaries, 0 cursors: ok
widgets.example.com: 1 objects, 1 journal entries, 0 index entries, 0 dictionaries, 0 cursors: ok
store {dir} is intact
"
        )
    );
    // Not a terminal: no progress bar, nothing at all on stderr.
    assert_eq!(r.stderr, "");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["verify", &dir, "-o", "json"])).unwrap();
    assert_eq!(json["intact"], true);
    assert_eq!(json["collections"].as_array().unwrap().len(), 4);
}

#[test]
fn flipped_byte_is_found_and_named() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    flip_byte(
        dir.as_ref(),
        &configmaps(),
        &object_record("default/settings"),
    );

    let r = kp(&["verify", &dir]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("configmaps: ") && lines[0].ends_with(": 1 problem"),
        "{}",
        r.stdout
    );
    assert!(lines[1].starts_with("  default/settings: "), "{}", r.stdout);
    assert!(lines[2].ends_with(": ok") && lines[3].ends_with(": ok") && lines[4].ends_with(": ok"));
    assert_eq!(lines[5], format!("store {dir} is damaged: 1 problem"));

    let json: serde_json::Value =
        serde_json::from_str(&kp(&["verify", &dir, "-o", "json"]).stdout).unwrap();
    assert_eq!(json["intact"], false);
    assert_eq!(
        json["collections"][0]["problems"][0]["key"],
        "default/settings"
    );

    // Reading commands never serve the damaged record, and name it on one
    // line. get fails; list and export write what they can read (here: list
    // has nothing else, export the five other objects) and exit 5.
    for (args, lines_out) in [
        (vec!["get", &dir, "-r", "cm", "default/settings"], 0),
        (vec!["list", &dir, "-r", "cm"], 0),
        (vec!["list", &dir, "-r", "cm", "-o", "name"], 0),
        (vec!["export", &dir], 5),
    ] {
        let r = kp(&args);
        assert_eq!(r.code, 5, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout.lines().count(), lines_out, "{args:?}");
        assert!(!r.stdout.contains("settings"), "{args:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(
            !r.stderr.contains('\x1b'),
            "colour codes into a pipe: {}",
            r.stderr
        );
        assert!(
            r.stderr.starts_with(
                "error: corrupt record in collection core/v1/configmaps, key default/settings: "
            ),
            "{}",
            r.stderr
        );
    }
    // The rest of the store still reads.
    ok(&["get", &dir, "-r", "pods", "default/web-0"]);
}

#[test]
fn damaged_journal_entry_is_named() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    // Journal: `j` + big-endian seq; the pods collection's first entry is seq 1.
    let mut key = vec![b'j'];
    key.extend_from_slice(&1u64.to_be_bytes());
    flip_byte(dir.as_ref(), &pods(), &key);
    let r = kp(&["verify", &dir]);
    assert_eq!(r.code, 5, "{}", r.stdout);
    assert!(r.stdout.contains("\n  journal seq 1: "), "{}", r.stdout);
}

/// On a terminal, verify draws a progress bar on stderr (and still only the
/// report on stdout); into a pipe it draws nothing (`clean_store_is_intact`).
#[test]
fn progress_bar_on_a_terminal() {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills in two fresh descriptors, which the Files below own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let child = spawn_with_stderr(&["verify", &dir], slave);
    let r = finish(child);
    assert_eq!(r.code, 0);
    assert!(r.stdout.ends_with(" is intact\n"), "{}", r.stdout);
    // The child has exited and our copy of the slave is closed: reading the
    // master drains what was drawn, then fails with EIO.
    let mut drawn = Vec::new();
    let _ = master.read_to_end(&mut drawn);
    let drawn = String::from_utf8_lossy(&drawn);
    assert!(drawn.contains("verifying"), "nothing drawn: {drawn:?}");
    assert!(drawn.contains("records"), "{drawn:?}");
}

#[test]
fn a_damaged_short_names_record_is_reported_and_costs_only_the_shortcut() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    assert_eq!(
        ok(&["list", &dir, "-r", "wd", "-o", "name"]),
        "widget.example.com/w1\n"
    );
    overwrite_default_tree(
        dir.as_ref(),
        &format!("short-names/{}", widgets().name()),
        b"[\"wd\"",
    );

    let r = kp(&["verify", &dir]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[3].starts_with("widgets.example.com: ") && lines[3].ends_with(": 1 problem"),
        "{}",
        r.stdout
    );
    assert!(
        lines[4].starts_with(&format!(
            "  short-names/{}: short names do not parse",
            widgets().name()
        )),
        "{}",
        r.stdout
    );
    // Every other name still works; the damage is named on stderr.
    let r = kp(&["list", &dir, "-r", "widgets", "-o", "name"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "widget.example.com/w1\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("short names do not parse"),
        "{}",
        r.stderr
    );
    let r = kp(&["list", &dir, "-r", "wd"]);
    assert!(
        r.code != 0 && r.stderr.contains("no resource named \"wd\""),
        "{}",
        r.stderr
    );
    // inspect still describes the store, says the record is damaged, and
    // exits 5: a damaged store is not called resumable.
    let r = kp(&["inspect", &dir]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("short names do not parse"),
        "{}",
        r.stderr
    );
    let out = r.stdout;
    assert!(
        out.contains(
            "  Short names:     none (the record of discovered ones is damaged; see verify)\n"
        ),
        "{out}"
    );
    let r = kp(&["inspect", &dir, "-o", "json"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["collections"][3]["state"], "damaged");
    let listed = &json["collections"].as_array().unwrap()[3];
    assert_eq!(
        (&listed["resource"], &listed["shortNamesDamaged"]),
        (&"widgets".into(), &true.into())
    );

    // The next writer that records them replaces the damaged record.
    with_store(dir.as_ref(), |store| {
        store
            .set_short_names(&widgets(), &["wd".to_string()])
            .unwrap()
    });
    assert_eq!(kp(&["verify", &dir]).code, 0);
    assert_eq!(
        ok(&["list", &dir, "-r", "wd", "-o", "name"]),
        "widget.example.com/w1\n"
    );
}
