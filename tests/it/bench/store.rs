//! A tiny end-to-end run of `kube-persist bench store` on both engines.
//! Asserts the report's structure and what holds whatever the machine's
//! speed; never a timing.

use std::process::Command;

use serde_json::Value;

const FIELDS: [&str; 8] = [
    "apply_per_s",
    "engine_apply_per_s",
    "single_per_s",
    "single_p99_ms",
    "first_read_ms",
    "disk_fraction",
    "disk_fraction_compacted",
    "get_ms",
];

#[test]
fn smoke_run_reports_one_row_per_engine_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kube-persist"))
        .args([
            "bench",
            "store",
            "--objects",
            "500",
            "--engine",
            "redb,sled",
        ])
        .args(["-o", "json", "--work-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let engines: Vec<_> = rows.iter().map(|r| r["engine"].as_str().unwrap()).collect();
    assert_eq!(engines, ["redb", "sled"]);
    for row in rows {
        assert_eq!(row["objects"], 500, "{row}");
        for field in FIELDS {
            let v = row[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} missing in {row}"));
            assert!(v.is_finite() && v > 0.0, "{field} = {v} in {row}");
        }
    }
}

#[test]
fn fewer_objects_than_one_batch_are_refused_naming_the_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-persist"))
        .args(["bench", "store", "--objects", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--objects"), "{stderr}");
}
