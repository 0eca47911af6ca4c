//! `kube-persist history`: an object's journal, change by change.

use crate::support::cli::*;
use kube_persist::store::{Batch, Delta};

/// Replace RFC 3339 times (which depend on when the test ran) by `<T>`.
fn mask_times(s: &str) -> String {
    s.split('\n')
        .map(|line| {
            line.split("   ")
                .map(|cell| {
                    let t = cell.trim();
                    if t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T' {
                        cell.replace(t, "<T>                 ")
                    } else {
                        cell.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("   ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn pod_lifecycle(dir: &str) {
    with_store(dir.as_ref(), |store| {
        let c = store.collection(&pods()).unwrap();
        let v1 = pod("default", "web-0", 10, "node-a", false);
        c.apply(Batch {
            deltas: vec![Delta::Upsert(v1)],
            rv: Some("10".into()),
        })
        .unwrap();
        let mut v2 = pod("default", "web-0", 11, "node-a", true);
        v2["metadata"]["labels"]["version"] = "2".into();
        c.apply(Batch {
            deltas: vec![Delta::Upsert(v2.clone())],
            rv: Some("11".into()),
        })
        .unwrap();
        // Another object in between: it must not show up.
        let other = pod("default", "web-1", 12, "node-b", true);
        c.apply(Batch {
            deltas: vec![Delta::Upsert(other)],
            rv: Some("12".into()),
        })
        .unwrap();
        v2["metadata"]["resourceVersion"] = "13".into();
        c.apply(Batch {
            deltas: vec![Delta::Delete(v2)],
            rv: Some("13".into()),
        })
        .unwrap();
    });
}

#[test]
fn table_shows_each_change_and_its_fields() {
    let (_tmp, dir) = store_dir();
    pod_lifecycle(&dir);
    let out = ok(&["history", &dir, "default/web-0"]);
    assert_eq!(
        mask_times(&out),
        "\
SEQ   TIME                   TYPE       RV   CHANGED
1     <T>                    Added      10   created
2     <T>                    Modified   11   metadata.labels.version, status.containerStatuses
4     <T>                    Deleted    13   deleted
"
    );
}

#[test]
fn json_has_patches() {
    let (_tmp, dir) = store_dir();
    pod_lifecycle(&dir);
    let out = ok(&["history", &dir, "-r", "po", "default/web-0", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let changes = v.as_array().unwrap();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0]["type"], "Added");
    // Only Modified entries list changed fields; the type says the rest.
    assert_eq!(changes[0].get("changed"), None);
    assert_eq!(changes[2].get("changed"), None);
    assert_eq!(changes[0]["patch"]["metadata"]["name"], "web-0");
    assert_eq!(changes[1]["type"], "Modified");
    assert_eq!(changes[1]["resourceVersion"], "11");
    assert_eq!(
        changes[1]["changed"],
        serde_json::json!(["metadata.labels.version", "status.containerStatuses"])
    );
    assert_eq!(changes[1]["patch"]["metadata"]["labels"]["version"], "2");
    assert_eq!(changes[2]["type"], "Deleted");
    assert!(changes[2]["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn unknown_object_is_not_found() {
    let (_tmp, dir) = store_dir();
    pod_lifecycle(&dir);
    let r = kp(&["history", &dir, "default/never"]);
    assert_eq!(r.code, 6);
    assert_eq!(
        r.stderr,
        "error: pods \"default/never\" not found in the store\n"
    );
}
