//! Secret values never reach stdout unless `--show-secrets` is given, in
//! any output form (I10).

use crate::support::cli::*;
use kube_persist::store::{Batch, Delta};

/// Base64 of the password, of the user, and the password itself.
const SECRET_TEXT: &[&str] = &["aHVudGVyMg", "YWRtaW4", "hunter2"];

fn assert_redacted(what: &str, out: &str) {
    for s in SECRET_TEXT {
        assert!(!out.contains(s), "{what} leaks {s}:\n{out}");
    }
    assert!(out.contains("<redacted 7 bytes>"), "{what}:\n{out}");
}

fn secret_store() -> (tempfile::TempDir, String) {
    let (tmp, dir) = store_dir();
    fixture(dir.as_ref());
    // A second version of the Secret, so its journal holds a patch of data.
    with_store(dir.as_ref(), |store| {
        let mut s = secret("default", "db", 20);
        s["data"]["password"] = "aHVudGVyMw==".into();
        s["stringData"] = serde_json::json!({"extra": "hunter2"});
        store
            .collection(&secrets())
            .unwrap()
            .apply(Batch {
                deltas: vec![Delta::Upsert(s)],
                rv: Some("20".into()),
            })
            .unwrap();
    });
    (tmp, dir)
}

#[test]
fn every_output_form_redacts() {
    let (_tmp, dir) = secret_store();
    let forms: Vec<Vec<&str>> = vec![
        vec!["get", &dir, "-r", "secret", "default/db"],
        vec!["get", &dir, "-r", "secret", "default/db", "-o", "json"],
        vec!["list", &dir, "-r", "secrets", "-o", "json"],
        vec!["list", &dir, "-r", "secrets", "-o", "yaml"],
        vec!["list", &dir, "-r", "secrets", "-o", "wide"],
        vec!["export", &dir],
        vec!["export", &dir, "-o", "yaml"],
        vec!["export", &dir, "-r", "secrets"],
    ];
    for args in &forms {
        let out = ok(args);
        if args.contains(&"wide") {
            // Tables show no values at all.
            for s in SECRET_TEXT {
                assert!(!out.contains(s), "{args:?} leaks {s}");
            }
        } else {
            assert_redacted(&format!("{args:?}"), &out);
        }
    }
    // The journal keeps no values at all: markers, shown as they are.
    let history = ok(&["history", &dir, "-r", "secrets", "default/db", "-o", "json"]);
    for s in SECRET_TEXT {
        assert!(
            !history.contains(s),
            "history -o json leaks {s}:\n{history}"
        );
    }
    assert!(history.contains("\"password\": \"<changed>\""), "{history}");
    let table = ok(&["history", &dir, "-r", "secrets", "default/db"]);
    for s in SECRET_TEXT {
        assert!(!table.contains(s), "history table leaks {s}");
    }
    // Field names stay visible: they are not secret and say what changed.
    assert!(table.contains("data.password"), "{table}");
}

#[test]
fn exact_redacted_secret() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    assert_eq!(
        ok(&["get", &dir, "-r", "secrets", "default/db"]),
        r#"apiVersion: v1
data:
  password: <redacted 7 bytes>
  user: <redacted 5 bytes>
kind: Secret
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: <redacted 36 bytes>
  creationTimestamp: "2025-12-30T12:00:00Z"
  name: db
  namespace: default
  resourceVersion: "14"
type: Opaque
"#
    );
}

#[test]
fn show_secrets_shows_them() {
    let (_tmp, dir) = secret_store();
    let out = ok(&[
        "get",
        &dir,
        "-r",
        "secret",
        "default/db",
        "-o",
        "json",
        "--show-secrets",
    ]);
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["data"]["password"], "aHVudGVyMw==");
    assert_eq!(got["data"]["user"], "YWRtaW4=");
    assert_eq!(got["stringData"]["extra"], "hunter2");
    let export = ok(&["export", &dir, "-r", "secrets", "--show-secrets"]);
    assert!(export.contains("aHVudGVyMw=="), "{export}");
    let history = ok(&[
        "history",
        &dir,
        "-r",
        "secrets",
        "default/db",
        "-o",
        "json",
        "--show-secrets",
    ]);
    // The journal itself keeps no Secret values, only which keys changed.
    for s in SECRET_TEXT.iter().chain(&["aHVudGVyMw"]) {
        assert!(!history.contains(s), "history holds {s}: {history}");
    }
    assert!(history.contains("\"password\": \"<changed>\""), "{history}");
    // Other kinds are never touched by redaction.
    let cm = ok(&["get", &dir, "-r", "cm", "default/settings", "-o", "json"]);
    assert!(cm.contains("\"a\": \"1\""), "{cm}");
}
