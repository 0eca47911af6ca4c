//! A 100k-object store: `list -n` of one namespace and `get` read only what
//! they need; `verify` and `export` throughput. Times are printed (run with
//! `--nocapture`), never asserted: they belong in the report, not in CI.

use std::time::Instant;

use crate::support::cli::*;
use kube_persist::store::{Batch, Delta};
use serde_json::json;

const OBJECTS: usize = 100_000;
const NAMESPACES: usize = 100;
const BATCH: usize = 5_000;

/// A Pod of about 1 KiB of JSON, varied enough that compression is honest.
fn big_pod(i: usize) -> serde_json::Value {
    let ns = format!("ns-{:03}", i % NAMESPACES);
    json!({
        "metadata": {
            "name": format!("app-{i:06}"), "namespace": ns,
            "resourceVersion": (i + 1).to_string(), "uid": format!("{:08x}-4d2c-11ee-be56-{:012x}", i * 7919, i),
            "creationTimestamp": "2026-01-01T11:00:00Z",
            "labels": {"app": format!("app-{}", i % 37), "tier": if i.is_multiple_of(3) { "db" } else { "web" },
                "pod-template-hash": format!("{:x}", i * 2654435761usize % 0xffffff)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("app-{}-rs", i % 37),
                "uid": format!("{:032x}", i % 37), "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "nodeName": format!("node-{:02}", i % 50),
            "containers": [{"name": "main", "image": format!("registry.example.com/app-{}:1.{}.{}", i % 37, i % 5, i % 11),
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "env": [{"name": "POD_INDEX", "value": i.to_string()}, {"name": "LOG_LEVEL", "value": "info"}]}],
            "restartPolicy": "Always", "serviceAccountName": "default", "terminationGracePeriodSeconds": 30
        },
        "status": {
            "phase": "Running", "podIP": format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256),
            "hostIP": format!("192.168.0.{}", i % 50), "startTime": "2026-01-01T11:00:05Z",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T11:00:09Z"}],
            "containerStatuses": [{"name": "main", "ready": true, "restartCount": i % 3, "started": true,
                "image": format!("registry.example.com/app-{}:1.{}.{}", i % 37, i % 5, i % 11),
                "containerID": format!("containerd://{:064x}", i), "state": {"running": {"startedAt": "2026-01-01T11:00:08Z"}}}]
        }
    })
}

fn timed(args: &[&str]) -> (std::time::Duration, String) {
    let t = Instant::now();
    let out = ok(args);
    (t.elapsed(), out)
}

#[test]
fn hundred_thousand_objects() {
    let (_tmp, dir) = store_dir();
    let t = Instant::now();
    let raw_bytes = with_store(dir.as_ref(), |store| {
        let c = store.collection(&pods()).unwrap();
        let mut raw = 0;
        for start in (0..OBJECTS).step_by(BATCH) {
            let deltas: Vec<Delta> = (start..start + BATCH)
                .map(|i| {
                    let p = big_pod(i);
                    raw += serde_json::to_vec(&p).unwrap().len();
                    Delta::Upsert(p)
                })
                .collect();
            c.apply(Batch {
                deltas,
                rv: Some((start + BATCH).to_string()),
            })
            .unwrap();
        }
        raw
    });
    eprintln!(
        "scale: built {OBJECTS} pods ({} MiB raw JSON) in {:.1?}",
        raw_bytes >> 20,
        t.elapsed()
    );

    let (took, out) = timed(&["list", &dir, "-n", "ns-042"]);
    assert_eq!(out.lines().count(), 1 + OBJECTS / NAMESPACES);
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with("app-000042   1/1     Running   0"),
        "{out:.300}"
    );
    eprintln!(
        "scale: list -n ns-042 ({} pods): {took:.1?}",
        OBJECTS / NAMESPACES
    );

    let (took, out) = timed(&["list", &dir, "-n", "ns-042", "-l", "tier=db", "-o", "name"]);
    eprintln!(
        "scale: list -n ns-042 -l tier=db ({} pods): {took:.1?}",
        out.lines().count()
    );

    let (took, out) = timed(&["get", &dir, "ns-077/app-099977", "-o", "json"]);
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut want = big_pod(99_977);
    want["apiVersion"] = "v1".into();
    want["kind"] = "Pod".into();
    assert_eq!(got, want);
    eprintln!("scale: get: {took:.1?}");

    let (took, out) = timed(&["verify", &dir]);
    assert!(out.ends_with("is intact\n"), "{out}");
    eprintln!(
        "scale: verify: {took:.1?}, {:.0} objects/s, {:.0} MiB/s of raw JSON",
        OBJECTS as f64 / took.as_secs_f64(),
        raw_bytes as f64 / took.as_secs_f64() / 1048576.0
    );

    let (took, out) = timed(&["export", &dir]);
    assert_eq!(out.lines().count(), OBJECTS);
    eprintln!(
        "scale: export jsonl: {took:.1?}, {:.0} objects/s, {:.0} MiB/s written",
        OBJECTS as f64 / took.as_secs_f64(),
        out.len() as f64 / took.as_secs_f64() / 1048576.0
    );

    let (took, out) = timed(&["inspect", &dir]);
    eprintln!("scale: inspect: {took:.1?}\n{out}");

    let (took, out) = timed(&["compact", &dir, "--journal-keep", "1000"]);
    assert!(
        out.starts_with("pods: removed 99000 journal entries, 1000 kept\n"),
        "{out}"
    );
    eprintln!("scale: compact: {took:.1?}\n{out}");
    let (took, out) = timed(&["get", &dir, "ns-077/app-099977", "-o", "json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        want
    );
    eprintln!("scale: get after compact: {took:.1?}");
}
