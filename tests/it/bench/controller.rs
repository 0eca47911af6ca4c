//! `kube-persist bench controller` end to end: after a restart on its
//! store, kube-persist's controller reconciles each pod changed while it
//! was down once (I14), however many of its events it missed;
//! kube-runtime's reconciles every pod.

use serde_json::Value;

use crate::support::cli::ok;

/// `--changed 100` of `--objects 40`: the writes made while it is down.
const WRITES: u64 = 40;

#[test]
fn each_key_changed_while_down_is_reconciled_once() {
    let dir = tempfile::tempdir().unwrap();
    // WRITES writes to as many pods in one namespace: the writes pick
    // their pods by a letter, so several land on one pod.
    let out = ok(&[
        "bench",
        "controller",
        "-o",
        "json",
        "--objects",
        "40",
        "--changed",
        "100",
        "--quiet-ms",
        "500",
        "--timeout",
        "300",
        "--work-dir",
        dir.path().to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let field = |r: &Value, f: &str| r[f].as_u64().unwrap_or_else(|| panic!("{f} in {r:#}"));
    let (kp, kr) = (&rows[0], &rows[1]);
    assert_eq!(kp["contender"], "kube-persist");
    assert_eq!(kr["contender"], "kube-runtime");
    let changed = field(kp, "changed_keys");
    assert!(changed > 0, "{report:#}");
    assert_eq!(field(kp, "needed"), changed, "{report:#}");
    // It missed 40 pod events, on far fewer keys: one reconcile per key
    // changed or deleted, not one per event.
    let reconciles = field(kp, "reconciles_after_restart");
    assert!(reconciles >= changed, "{report:#}");
    assert!(reconciles < WRITES, "{report:#}");
    // kube-runtime lists: every pod the server holds is needed.
    assert!(field(kr, "needed") >= changed, "{report:#}");
    assert!(field(kr, "reconciles_after_restart") >= field(kr, "needed"));
}
