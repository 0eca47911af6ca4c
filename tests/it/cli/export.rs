//! `kube-persist export` and `kube-persist inspect`.

use crate::support::cli::*;
use serde::Deserialize;

#[test]
fn jsonl_has_every_object_once_with_its_type() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let out = ok(&["export", &dir]);
    let objects: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "ConfigMap/settings",
            "Pod/web-0",
            "Pod/web-1",
            "Pod/dns-0",
            "Secret/db",
            "Widget/w1"
        ]
    );
    assert_eq!(objects[5], widget("default", "w1", 15));

    let only_pods = ok(&["export", &dir, "-r", "po"]);
    assert_eq!(only_pods.lines().count(), 3);
    assert_eq!(
        only_pods,
        out.lines()
            .skip(1)
            .take(3)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
}

#[test]
fn yaml_documents_match_jsonl() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let jsonl: Vec<serde_json::Value> = ok(&["export", &dir])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let yaml = ok(&["export", &dir, "-o", "yaml"]);
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs, jsonl);
    assert_eq!(yaml.matches("\n---\n").count(), 5);
}

#[test]
fn inspect_describes_each_collection() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    // The fixture's last sync happened a moment ago, on the real clock.
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(3)).to_string();
    let r = kp_env(&["inspect", &dir], &[("KUBE_PERSIST_NOW", &later)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("Store:          {dir}"));
    assert_eq!(lines[1], "Encryption:     none (records are plaintext)");
    assert_eq!(lines[2], "Collections:    4");
    assert!(lines[3].starts_with("Bytes on disk:  "));
    let pods_at = lines.iter().position(|l| *l == "pods").expect(&out);
    let pods: Vec<&str> = lines[pods_at + 1..pods_at + 13].to_vec();
    assert_eq!(pods[0], "  Resource:        v1 Pod (namespaced)");
    assert_eq!(pods[1], "  Short names:     po");
    assert_eq!(
        pods[2],
        format!("  Schema version:  {}", kube_persist::store::SCHEMA_VERSION)
    );
    assert_eq!(
        pods[3],
        "  State:           resumable (a restart serves these objects and resumes the watch)"
    );
    assert_eq!(pods[4], "  Last RV:         12");
    assert!(
        pods[5].starts_with("  Last sync:       20") && pods[5].ends_with(" (3h ago)"),
        "{}",
        pods[5]
    );
    assert_eq!(pods[6], "  Objects:         3");
    assert!(pods[7].starts_with("  Raw JSON:        "), "{}", pods[7]);
    assert!(pods[8].starts_with("  Stored:          "), "{}", pods[8]);
    assert!(
        pods[9].starts_with("  Compression:     ") && pods[9].ends_with('x'),
        "{}",
        pods[9]
    );
    assert!(
        pods[10].starts_with("  Journal:         3 entries, ") && pods[10].contains("seq 1..3"),
        "{}",
        pods[10]
    );
    assert_eq!(pods[11], "  Dictionary:      none");
    assert!(out.contains(
        "widgets.example.com\n  Resource:        example.com/v1 Widget (namespaced)\n  \
         Short names:     wd\n"
    ));
    assert!(
        out.contains(
            "secrets\n  Resource:        v1 Secret (namespaced)\n  Short names:     none\n"
        ),
        "{out}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", &dir, "-o", "json"])).unwrap();
    let cols = json["collections"].as_array().unwrap();
    assert_eq!(cols.len(), 4);
    let pods = cols.iter().find(|c| c["resource"] == "pods").unwrap();
    assert_eq!(pods["objects"], 3);
    assert_eq!(pods["lastResourceVersion"], "12");
    assert_eq!(pods["journal"]["entries"], 3);
    assert_eq!(pods["journal"]["first"]["seq"], 1);
    assert_eq!(pods["journal"]["last"]["seq"], 3);
    assert_eq!(pods["state"], "resumable");
    assert_eq!(pods["shortNames"], serde_json::json!(["po"]));
    assert_eq!(pods["shortNamesDamaged"], false);
    let widgets = cols.iter().find(|c| c["resource"] == "widgets").unwrap();
    assert_eq!(widgets["shortNames"], serde_json::json!(["wd"]));
    assert!(pods["rawJsonBytes"].as_u64().unwrap() > 0);
    assert!(json["bytesOnDisk"].as_u64().unwrap() > 0);
}

#[test]
fn compact_trims_the_journal() {
    let (_tmp, dir) = store_dir();
    with_store(dir.as_ref(), |store| {
        for rv in 1..=50u64 {
            let mut p = pod("default", "web-0", rv, "node-a", true);
            p["metadata"]["labels"]["round"] = rv.to_string().into();
            apply(store, &pods(), vec![p], rv);
        }
    });
    let size: u64 = snapshot(dir.as_ref())
        .values()
        .map(|b| b.len() as u64)
        .sum();
    let out = ok(&["compact", &dir, "--journal-keep", "5"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pods: removed 45 journal entries, 5 kept");
    // "Before" is the store as the user had it, not as sled's open left it.
    assert!(
        lines[1].starts_with(&format!("bytes on disk: {size} before, "))
            && lines[1].ends_with(" after"),
        "{out}"
    );
    let history = ok(&["history", &dir, "default/web-0", "-o", "json"]);
    let seqs: Vec<u64> = serde_json::from_str::<Vec<serde_json::Value>>(&history)
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [46, 47, 48, 49, 50]);
    // The objects themselves are untouched, and the store still verifies.
    let got: serde_json::Value =
        serde_json::from_str(&ok(&["get", &dir, "default/web-0", "-o", "json"])).unwrap();
    assert_eq!(got["metadata"]["labels"]["round"], "50");
    ok(&["verify", &dir]);
    assert_eq!(
        ok(&["compact", &dir, "--journal-keep", "5"]).lines().next(),
        Some("pods: removed 0 journal entries, 5 kept")
    );
}

#[test]
fn compact_keeps_what_a_durable_consumer_needs_and_trims_by_age() {
    let (_tmp, dir) = store_dir();
    with_store(dir.as_ref(), |store| {
        for rv in 1..=50u64 {
            apply(
                store,
                &pods(),
                vec![pod("default", "web-0", rv, "node-a", rv % 2 == 0)],
                rv,
            );
        }
        store
            .collection(&pods())
            .unwrap()
            .ack("auditor", 40)
            .unwrap();
    });
    // Every entry is older than "0s ago"; the consumer still needs 41..=50.
    let out = ok(&["compact", &dir, "--journal-max-age", "0s"]);
    assert_eq!(
        out.lines().next(),
        Some("pods: removed 40 journal entries, 10 kept (held for consumer \"auditor\", acknowledged up to seq 40)")
    );
    let out = ok(&[
        "compact",
        &dir,
        "--journal-max-age",
        "0s",
        "--ignore-cursors",
    ]);
    assert_eq!(
        out.lines().next(),
        Some("pods: removed 10 journal entries, 0 kept")
    );
    let r = kp(&["compact", &dir, "--journal-max-age", "soon"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("\"soon\" is not a duration"),
        "{}",
        r.stderr
    );
}

/// `compact` killed with SIGKILL at moments spread over its run: every time,
/// the store opens afterwards with exactly the objects it had, verifies, and
/// holds no leftover of the interrupted rewrite.
#[test]
fn compact_killed_at_any_moment_loses_nothing() {
    let (tmp, dir) = store_dir();
    with_store(dir.as_ref(), |store| {
        for round in 0..3u64 {
            let objects = (0..1500)
                .map(|i| {
                    pod(
                        "default",
                        &format!("web-{i}"),
                        round * 2000 + i,
                        "node-a",
                        true,
                    )
                })
                .collect();
            apply(store, &pods(), objects, round * 2000 + 1999);
        }
    });
    let expected = ok(&["export", &dir]);
    let copy = |n: usize| {
        let to = tmp.path().join(format!("round-{n}"));
        copy_dir(dir.as_ref(), &to);
        to.to_str().unwrap().to_string()
    };
    // One whole run, to spread the kills over its length.
    let timing = copy(usize::MAX);
    let started = std::time::Instant::now();
    ok(&["compact", &timing, "--journal-keep", "10"]);
    let whole = started.elapsed();

    const ROUNDS: u32 = 12;
    let (mut interrupted, mut mid_rewrite) = (0, 0);
    for n in 0..ROUNDS {
        let store = copy(n as usize);
        let mut child = spawn(&["compact", &store, "--journal-keep", "10"]);
        std::thread::sleep(whole * n / ROUNDS);
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap();
        // The kernel drops a dead process's locks, sled's included.
        child.wait().unwrap();
        if ["db.compact", "db.old"]
            .iter()
            .any(|d| std::path::Path::new(&store).join(d).exists())
        {
            mid_rewrite += 1;
        }
        // Readers read the right database even before a writer tidies up.
        assert_eq!(ok(&["export", &store]), expected, "round {n}");
        let verified = ok(&["verify", &store]);
        assert!(verified.ends_with("is intact\n"), "round {n}: {verified}");
        // A writer's open finishes or undoes the swap.
        with_store(store.as_ref(), |_| ());
        for leftover in ["db.compact", "db.old"] {
            assert!(
                !std::path::Path::new(&store).join(leftover).exists(),
                "round {n}: {leftover} left"
            );
        }
    }
    eprintln!("{interrupted} of {ROUNDS} kills landed while compact ran, {mid_rewrite} during the rewrite");
    assert!(interrupted > 0, "no kill landed while compact was running");
}
