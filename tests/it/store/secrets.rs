//! Secrets at rest: a Secret's journal entries keep no values, so a
//! rotated credential leaves nothing behind in the journal.

use crate::engine_test;
use crate::support::store::{disk_leaks, open};
use kube_persist::store::SECRET_VALUE_CHANGED as CHANGED;
use kube_persist::store::{
    Batch, CollectionId, CompactOptions, Delta, EventKind, ObjectKey, Store,
};
use serde_json::{json, Value};

const OLD_PASSWORD: &str = "old-pw-7f3a9c1e2b";
const NEW_PASSWORD: &str = "new-pw-55d0e81a4c";
const TOKEN: &str = "token-c0ffee-1234";

pub fn secrets_id() -> CollectionId {
    CollectionId {
        group: String::new(),
        version: "v1".into(),
        resource: "secrets".into(),
        kind: "Secret".into(),
        namespaced: true,
        namespace: None,
        label_selector: None,
        field_selector: None,
    }
}

fn b64(s: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A Secret as `kubectl apply` leaves it: the values, and a copy of them in
/// the last-applied annotation.
pub fn secret(rv: u64, password: &str) -> Value {
    let data = json!({"password": b64(password), "user": b64("admin")});
    json!({
        "metadata": {"name": "db", "namespace": "prod", "resourceVersion": rv.to_string(),
            "uid": "uid-db", "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                json!({"data": data}).to_string()}},
        "type": "Opaque",
        "data": data,
    })
}

/// The old values, as they would show up: plain, base64 (as in `data`),
/// and base64 without padding (as inside a longer string).
pub fn old_values() -> Vec<String> {
    let b = b64(OLD_PASSWORD);
    vec![
        OLD_PASSWORD.to_string(),
        b.trim_end_matches('=').to_string(),
        b,
    ]
}

#[test]
fn base64_matches_the_api_servers() {
    assert_eq!(b64("hunter2"), "aHVudGVyMg==");
    assert_eq!(b64("admin"), "YWRtaW4=");
    assert_eq!(b64("abc"), "YWJj");
}

engine_test! {
    fn a_rotated_secret_leaves_no_old_value_in_the_journal_or_on_disk(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        {
            let store = open(engine, &path);
            let c = store.collection(&secrets_id()).unwrap();
            let apply = |deltas, rv: &str| {
                c.apply(Batch { deltas, rv: Some(rv.into()) }).unwrap()
            };
            apply(vec![Delta::Upsert(secret(1, OLD_PASSWORD))], "1");
            // The rotation; a token added; then the Secret deleted and
            // created again, so every kind of entry is there.
            let mut rotated = secret(2, NEW_PASSWORD);
            rotated["stringData"] = json!({"token": TOKEN});
            let changes = apply(vec![Delta::Upsert(rotated.clone())], "2");
            // Subscribers of the live apply see the values (in memory only).
            assert_eq!(changes[0].old().unwrap()["data"]["password"], b64(OLD_PASSWORD));
            let mut gone = rotated.clone();
            gone["metadata"]["resourceVersion"] = "3".into();
            apply(vec![Delta::Delete(gone)], "3");
            apply(vec![Delta::Upsert(secret(4, NEW_PASSWORD))], "4");

            let key = ObjectKey::namespaced("prod", "db");
            let history = c.history(&key).unwrap();
            let kinds: Vec<EventKind> = history.iter().map(|e| e.kind).collect();
            assert_eq!(kinds, [EventKind::Added, EventKind::Modified, EventKind::Deleted, EventKind::Added]);
            // Which keys changed is kept; what they held is not.
            assert_eq!(history[0].patch["data"], json!({"password": CHANGED, "user": CHANGED}));
            assert_eq!(history[1].patch["data"], json!({"password": CHANGED}));
            assert_eq!(history[1].patch["stringData"], json!({"token": CHANGED}));
            assert_eq!(
                history[1].patch["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
                CHANGED
            );
            assert_eq!(history[3].patch["metadata"]["name"], "db");
            for entry in c.journal_since(0).unwrap() {
                let text = entry.patch.to_string();
                for needle in old_values().iter().map(String::as_str).chain([NEW_PASSWORD, TOKEN, b64(NEW_PASSWORD).as_str()]) {
                    assert!(!text.contains(needle), "journal seq {} holds {needle}: {text}", entry.seq);
                }
            }
            // The object record keeps the current value.
            assert_eq!(c.get(&key).unwrap().unwrap()["data"]["password"], b64(NEW_PASSWORD));
        }
        // The overwritten object record (sled's log keeps it until its
        // segment is cleaned; redb's freed pages until reused) goes with
        // compaction's rewrite, which keeps the journal.
        let report = Store::compact(&path, CompactOptions::default()).unwrap();
        assert_eq!(report.collections[0].removed, 0);
        let needles = old_values();
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        let leaks = disk_leaks(&path, &needles);
        assert!(leaks.is_empty(), "{leaks:#?}");
        // The check can fail: the current value is on disk, in plain zstd.
        let b = b64(NEW_PASSWORD);
        assert!(!disk_leaks(&path, &[&b]).is_empty());
    }
}

engine_test! {
    fn other_collections_journal_their_values(engine) {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(engine, tmp.path().join("s"));
        let mut id = secrets_id();
        (id.resource, id.kind) = ("configmaps".into(), "ConfigMap".into());
        let c = store.collection(&id).unwrap();
        for (rv, v) in [(1, "a"), (2, "b")] {
            let cm = json!({"metadata": {"name": "c", "namespace": "n", "resourceVersion": rv.to_string()}, "data": {"k": v}});
            c.apply(Batch { deltas: vec![Delta::Upsert(cm)], rv: Some(rv.to_string()) }).unwrap();
        }
        let history = c.history(&ObjectKey::namespaced("n", "c")).unwrap();
        assert_eq!(history[0].patch["data"], json!({"k": "a"}));
        assert_eq!(history[1].patch["data"], json!({"k": "b"}));
    }
}
