//! `kube-persist bench resume` with client-go's informer beside
//! kube-runtime's reflector, on the simulator and on the real server
//! (`--server kube-apiserver`). Asserts what must hold whatever the
//! machine's speed (objects, requests, bytes); never a timing.

use std::process::Command;

use crate::support::apiserver::built;
use serde_json::Value;

const OBJECTS: u64 = 60;

fn row<'a>(report: &'a Value, kind: &str, extra: Option<(&str, Value)>) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["contender"]["kind"] == kind
                && extra.as_ref().is_none_or(|(k, v)| r["contender"][*k] == *v)
        })
        .unwrap_or_else(|| panic!("no {kind} {extra:?} row in {report:#}"))
}

fn median(row: &Value, field: &str) -> f64 {
    row[field]["median"]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} has no median in {row:#}"))
}

/// Runs `bench resume` with `args` after the common ones; the JSON report.
fn bench(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kube-persist"))
        .args(["bench", "resume", "--objects", &OBJECTS.to_string()])
        .args(["--reps", "1", "-o", "json", "--timeout", "300"])
        .arg("--work-dir")
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// client-go's rows: every pod, read through the informer's indexer; its
/// requests and bytes as the server saw them.
fn check_clientgo(report: &Value, encodings: &[bool]) {
    for &protobuf in encodings {
        let r = row(
            report,
            "client-go",
            Some(("protobuf", Value::Bool(protobuf))),
        );
        assert_eq!(median(r, "objects_loaded"), OBJECTS as f64, "{r:#}");
        assert!(
            median(r, "list_requests") + median(r, "watch_requests") >= 1.0,
            "{r:#}"
        );
        assert!(median(r, "peak_rss_bytes") > 0.0, "{r:#}");
        assert!(r["disk_bytes"].is_null());
        // Every pod came over the wire. No ratio to kube-runtime's bytes:
        // client-go's Go transport asks for gzip, which kube-apiserver
        // applies to answers of 128 KB and more; kube-rs, built without its
        // gzip feature, does not ask.
        assert!(median(r, "bytes_pulled") > 0.0, "{r:#}");
    }
}

#[test]
fn clientgo_beside_kube_runtime_on_the_simulator() {
    let Some(dir) = built() else { return };
    let report = bench(&[
        "--changed",
        "0",
        "--gone-changed",
        "1",
        "--no-steady",
        "--clientgo",
        "json",
        "--harness-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(report["setup"]["server"], "sim");
    // reflector, client-go, fresh, resume 0%, 410 relist.
    assert_eq!(report["rows"].as_array().unwrap().len(), 5, "{report:#}");
    check_clientgo(&report, &[false]);
}

#[test]
fn the_whole_comparison_runs_on_kube_apiserver() {
    let Some(dir) = built() else { return };
    let report = bench(&[
        "--server",
        "kube-apiserver",
        "--harness-dir",
        dir.to_str().unwrap(),
        "--changed",
        "0,1",
        "--gone-changed",
        "1",
        "--clientgo",
        "json,protobuf",
        "--steady-objects",
        "30",
        "--rate",
        "50",
        "--steady-events",
        "20",
        "--burst-events",
        "20",
    ]);
    assert_eq!(report["setup"]["server"], "kube-apiserver");
    assert_eq!(report["rows"].as_array().unwrap().len(), 7, "{report:#}");
    check_clientgo(&report, &[false, true]);

    let reflector = row(&report, "reflector", None);
    let fresh = row(&report, "fresh", None);
    let resume0 = row(&report, "resume", Some(("changed_pct", 0.into())));
    let resume1 = row(&report, "resume", Some(("changed_pct", 1.into())));
    let gone = row(
        &report,
        "relist-after-gone",
        Some(("changed_pct", 1.into())),
    );
    for r in [reflector, fresh, resume0, resume1, gone] {
        assert_eq!(median(r, "objects_loaded"), OBJECTS as f64, "{r:#}");
    }
    // kube-runtime pages through a LIST; the audit log saw it.
    assert!(median(reflector, "list_requests") >= 1.0, "{reflector:#}");
    // A resume makes no LIST and pulls far less than a relist (I3); the
    // 410 resume watches, is refused, and relists.
    for r in [resume0, resume1] {
        assert_eq!(median(r, "list_requests"), 0.0, "{r:#}");
        assert!(median(r, "watch_requests") >= 1.0, "{r:#}");
    }
    assert!(
        median(resume0, "bytes_pulled") * 4.0 < median(fresh, "bytes_pulled"),
        "{resume0:#}\n{fresh:#}"
    );
    // The refused resume watch, then the relist: a LIST, or a streaming
    // list's watch. The watch after the relist may not be sent yet when
    // the child, ready at Synced, stops.
    assert!(median(gone, "watch_requests") >= 1.0, "{gone:#}");
    assert!(
        median(gone, "watch_requests") + median(gone, "list_requests") >= 2.0,
        "{gone:#}"
    );
    assert!(
        median(gone, "bytes_pulled") > median(resume1, "bytes_pulled"),
        "{gone:#}"
    );
    let resumed: Vec<&Value> = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["contender"]["kind"] != "reflector" && s["contender"]["kind"] != "client-go")
        .map(|s| &s["resumed"])
        .collect();
    // fresh, resume 0%, resume 1%, 410 relist.
    assert_eq!(
        resumed,
        [
            &Value::Bool(false),
            &Value::Bool(true),
            &Value::Bool(true),
            &Value::Bool(false)
        ],
        "{report:#}"
    );
    let notes = report["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("audit log")),
        "{notes:?}"
    );

    // Steady state through real writes: every stamped write arrived.
    let steady = report["steady"].as_array().unwrap();
    assert_eq!(steady.len(), 2);
    for s in steady {
        assert_eq!(s["report"]["paced_events"], 20, "{s:#}");
        assert_eq!(s["report"]["burst_events"], 20, "{s:#}");
    }
}
