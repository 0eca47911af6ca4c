//! A tiny end-to-end run of `kube-persist bench resume`: every contender in
//! its own process against the built-in simulator. Asserts the report's
//! structure and the relations that must hold whatever the machine's speed
//! (requests, bytes, objects); never a timing.

use std::process::Command;

use serde_json::Value;

const OBJECTS: u64 = 200;
const PACED: u64 = 30;
const BURST: u64 = 60;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kube-persist"))
}

fn row<'a>(report: &'a Value, kind: &str, changed_pct: Option<u64>) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["contender"]["kind"] == kind
                && changed_pct.is_none_or(|p| r["contender"]["changed_pct"] == p)
        })
        .unwrap_or_else(|| panic!("no {kind} {changed_pct:?} row in {report:#}"))
}

fn median(row: &Value, field: &str) -> f64 {
    row[field]["median"]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} has no median in {row:#}"))
}

#[test]
fn smoke_run_reports_every_contender_with_sane_relations() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("ready.png");
    let out = bench()
        .args(["bench", "resume", "--objects", &OBJECTS.to_string()])
        .args([
            "--changed",
            "0,1",
            "--gone-changed",
            "1",
            "--reps",
            "1",
            "-o",
            "json",
        ])
        .args(["--steady-objects", "50", "--rate", "500"])
        .args(["--steady-events", &PACED.to_string()])
        .args(["--burst-events", &BURST.to_string()])
        // client-go needs tests/apiserver built: its rows are tested with
        // the real-server tests.
        .args(["--clientgo", "none"])
        .args(["--timeout", "120", "--plot"])
        .arg(&plot)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    // One row per contender, one sample each (one rep).
    assert_eq!(report["rows"].as_array().unwrap().len(), 5, "{report:#}");
    assert_eq!(report["samples"].as_array().unwrap().len(), 5);
    let reflector = row(&report, "reflector", None);
    let fresh = row(&report, "fresh", None);
    let resume0 = row(&report, "resume", Some(0));
    let resume1 = row(&report, "resume", Some(1));
    let gone = row(&report, "relist-after-gone", Some(1));
    let raw = reflector["raw_json_bytes"].as_f64().unwrap();
    assert!(raw > 0.0);

    // Every cache holds the cluster once ready. Only 1% is written between
    // runs, so the counts stay within a few objects of the start.
    assert_eq!(median(reflector, "objects_loaded"), OBJECTS as f64);
    assert_eq!(median(fresh, "objects_loaded"), OBJECTS as f64);
    for r in [resume0, resume1, gone] {
        let n = median(r, "objects_loaded");
        assert!((n - OBJECTS as f64).abs() <= 6.0, "{r:#}");
    }

    // A relist pulls every object; kube-runtime lists with LIST.
    assert!(median(reflector, "list_requests") >= 1.0);
    for r in [reflector, fresh] {
        assert!(median(r, "bytes_pulled") >= raw * 0.9, "{r:#}");
    }
    // The 410 relist lists metadata only and fetches what changed: a LIST,
    // and less than a full relist's bytes.
    assert!(median(gone, "list_requests") >= 1.0, "{gone:#}");
    assert!(
        median(gone, "bytes_pulled") < median(reflector, "bytes_pulled"),
        "{gone:#}"
    );

    // A resume with a valid RV makes no LIST (I3), and pulls less than a
    // relist; with nothing changed, far less.
    for r in [resume0, resume1] {
        assert_eq!(median(r, "list_requests"), 0.0, "{r:#}");
        assert!(median(r, "watch_requests") >= 1.0, "{r:#}");
        assert!(median(r, "bytes_pulled") < median(reflector, "bytes_pulled"));
        // The store is read before the watch catches up.
        assert!(median(r, "first_read_ms") <= median(r, "ready_ms"), "{r:#}");
    }
    assert!(median(resume0, "bytes_pulled") < raw * 0.1, "{resume0:#}");
    let resumed: Vec<&Value> = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["contender"]["kind"] == "resume")
        .map(|s| &s["resumed"])
        .collect();
    assert!(
        resumed.iter().all(|r| **r == Value::Bool(true)),
        "{resumed:?}"
    );

    // Ratios are against the reflector: it is its own 1×.
    assert_eq!(reflector["vs_baseline"]["ready_speedup"], 1.0);
    let fraction = resume0["vs_baseline"]["bytes_fraction"].as_f64().unwrap();
    assert!(fraction < 1.0);

    // Only stores take disk; every process has a peak RSS.
    assert!(reflector["disk_bytes"].is_null());
    for r in [fresh, resume0, resume1, gone] {
        assert!(median(r, "disk_bytes") > 0.0, "{r:#}");
    }
    for r in [reflector, fresh, resume0, resume1, gone] {
        assert!(median(r, "peak_rss_bytes") > 0.0, "{r:#}");
    }

    // The resume targets and the 410 relist's are judged at the one object
    // count measured.
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 9, "{targets:#?}");
    assert!(targets.iter().all(|t| !t["met"].is_null()), "{targets:#?}");

    // Steady state: every stamped write reached each cache's handler.
    let steady = report["steady"].as_array().unwrap();
    assert_eq!(steady.len(), 2);
    for s in steady {
        let r = &s["report"];
        assert_eq!(r["paced_events"], PACED, "{s:#}");
        assert_eq!(r["burst_events"], BURST, "{s:#}");
        let (p50, p99, max) = (
            r["p50_us"].as_f64().unwrap(),
            r["p99_us"].as_f64().unwrap(),
            r["max_us"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{s:#}");
        assert!(r["burst_events_per_sec"].as_f64().unwrap() > 0.0);
    }

    let png = std::fs::read(&plot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn bad_options_are_refused_naming_the_option() {
    for (args, named) in [
        (vec!["--objects", "0"], "--objects"),
        (vec!["--changed", "150"], "--changed"),
        (vec!["--reps", "0"], "--reps"),
    ] {
        let out = bench()
            .args(["bench", "resume"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

#[test]
fn a_contender_that_cannot_reach_its_server_fails_with_its_logs() {
    // A loopback port nothing listens on: port 1 (tcpmux) is privileged, so
    // never handed out as an ephemeral port to another test, and unused.
    let out = bench()
        .args(["bench", "child", "reflector", "--probe", "default/x"])
        .args(["--server", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no report line on failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bench child kube-runtime reflector"),
        "{stderr}"
    );
}
