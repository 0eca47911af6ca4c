//! `kube-persist bench outage` and `kube-persist demo` end to end: a
//! restart after a short outage resumes and one after a long outage gets
//! 410 and relists, as kube-apiserver's watch cache rule predicts. The
//! simulator's clock is advanced through each outage, so nothing waits.

use serde_json::Value;

use crate::support::cli::{kp, ok};

// At 10 writes/s the watch cache settles at 800 events (it doubles from 100
// while it holds less than 75 s of them): 50 writes resume, 2000 do not.
const ARGS: [&str; 6] = [
    "--write-rate",
    "10",
    "--objects",
    "300",
    "--outage",
    "5,200",
];

#[test]
fn each_restart_does_what_the_watch_cache_rule_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_str().unwrap();
    let mut args = vec!["bench", "outage", "-o", "json", "--timeout", "300"];
    args.extend(["--work-dir", work]);
    args.extend(ARGS);
    let report: Value = serde_json::from_str(&ok(&args)).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap(),
                r["expected"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("resumed", "resumed"), ("relisted", "relisted")],
        "{report:#}"
    );
    // The relist pulled every pod; the resume its 50 events.
    let bytes = |r: &Value| r["bytes_pulled"].as_u64().unwrap();
    assert!(bytes(&rows[0]) < bytes(&rows[1]), "{report:#}");
}

#[test]
fn the_demo_prints_what_each_restart_did_beside_the_prediction() {
    let r = kp(&[
        "demo",
        "--pods",
        "300",
        "--write-rate",
        "10",
        "--outages",
        "5,200",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let row = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name:?} row in\n{}", r.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    // phase (5 words), predicted, did, ...
    assert_eq!(row("restart after 5 s down")[5..7], ["resumed", "resumed"]);
    assert_eq!(
        row("restart after 200 s down")[5..7],
        ["relisted", "relisted"]
    );
    // The writes create and delete pods: whatever the server holds, the
    // store holds as many.
    let last = r
        .stdout
        .lines()
        .find(|l| l.starts_with("server holds"))
        .unwrap();
    let counts: Vec<&str> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .collect();
    assert_eq!(counts.len(), 2, "{last}");
    assert_eq!(counts[0], counts[1], "{last}");
}
