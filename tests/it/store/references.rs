//! Added journal entries that hold no copy of their object but refer to the
//! object's record (schema v3): history and replay read the object through
//! them, and the write that replaces or deletes the record first gives the
//! entry its object, in the same batch.

use crate::engine_test;
use crate::support::store::{on, pods_id, realistic_pod, upserts};
use kube_persist::store::{
    Batch, Collection, Delta, DictionaryPolicy, EncryptionKey, EventKind, JournalEntry,
    JournalLimits, ObjectKey, Store, StoreOptions,
};
use serde_json::{json, Value};

fn key(name: &str) -> ObjectKey {
    ObjectKey::namespaced("a", name)
}

/// `pod` at resourceVersion `rv`, its phase and one label changed.
fn changed(pod: &Value, rv: u64) -> Value {
    let mut next = pod.clone();
    next["metadata"]["resourceVersion"] = json!(rv.to_string());
    next["metadata"]["labels"]["changed"] = json!(rv.to_string());
    next["status"]["phase"] = json!(format!("Phase{rv}"));
    next
}

/// The versions the entries of `history` replay to, in order (`None`
/// after a delete).
fn replayed(history: &[JournalEntry]) -> Vec<Option<Value>> {
    let mut state: Option<Value> = None;
    history
        .iter()
        .map(|e| {
            state = match e.kind {
                EventKind::Added => Some(e.patch.clone()),
                EventKind::Modified => state.take().map(|mut s| {
                    json_patch::merge(&mut s, &e.patch);
                    s
                }),
                _ => None,
            };
            state.clone()
        })
        .collect()
}

fn assert_replays(c: &Collection, name: &str, versions: &[Option<&Value>]) {
    let history = c.history(&key(name)).unwrap();
    let want: Vec<Option<Value>> = versions.iter().map(|v| v.cloned()).collect();
    assert_eq!(replayed(&history), want, "history of {name}");
    let problems = c.verify().unwrap().problems;
    assert!(problems.is_empty(), "{problems:?}");
}

engine_test! {
    /// Plain and with a trained dictionary (the entry copies the record's
    /// compressed payload, which names it), and encrypted (the payload is
    /// opened and sealed again).
    fn an_added_entry_reads_as_its_object_through_every_later_write(engine) {
        let key = EncryptionKey::from_bytes([7; 32]);
        for (dictionary, encryption_key) in [(false, None), (true, None), (false, Some(key))] {
            let options = StoreOptions {
                dictionary: DictionaryPolicy {
                    min_objects: if dictionary { 10 } else { DictionaryPolicy::default().min_objects },
                    ..DictionaryPolicy::default()
                },
                encryption_key,
                ..on(engine)
            };
            added_entries_read_as_their_objects(options, dictionary);
        }
    }
}

fn added_entries_read_as_their_objects(options: StoreOptions, dictionary: bool) {
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let store = Store::open_with(&path, options.clone()).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        let pods: Vec<Value> = (0..20)
            .map(|i| realistic_pod("a", &format!("p{i}"), i + 1, i))
            .collect();
        c.apply(upserts(pods.clone(), 20)).unwrap();
        assert_eq!(c.meta().unwrap().dictionary_id.is_some(), dictionary);
        // No copy of the objects in the journal: 20 entries of a few dozen
        // bytes each, against hundreds of bytes per compressed pod (a copy
        // would make the two about equal).
        let m = c.meta().unwrap();
        assert_eq!(m.journal_len, 20);
        assert!(m.journal_bytes * 4 < m.stored_bytes, "{m:?}");
        let all = c.journal_since(0).unwrap();
        assert_eq!(
            all.iter().map(|e| &e.patch).collect::<Vec<_>>(),
            pods.iter().collect::<Vec<_>>()
        );
        assert_replays(&c, "p0", &[Some(&pods[0])]);

        // Replaced by a later batch, after a reopen (the entry is found
        // through its history entry's mark).
        drop((c, store));
        let store = Store::open_with(&path, options).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        let p0_2 = changed(&pods[0], 21);
        c.apply(upserts(vec![p0_2.clone()], 21)).unwrap();
        assert_replays(&c, "p0", &[Some(&pods[0]), Some(&p0_2)]);
        // Entries that hold their object are left alone by later writes.
        let p0_3 = changed(&p0_2, 22);
        c.apply(upserts(vec![p0_3.clone()], 22)).unwrap();
        assert_replays(&c, "p0", &[Some(&pods[0]), Some(&p0_2), Some(&p0_3)]);

        // Deleted.
        c.apply(Batch {
            deltas: vec![Delta::Delete(pods[1].clone())],
            rv: Some("23".into()),
        })
        .unwrap();
        assert_replays(&c, "p1", &[Some(&pods[1]), None]);

        // Added, replaced and deleted in one batch; added and replaced in
        // another; added again after a delete.
        let q = realistic_pod("a", "q", 24, 99);
        let r = realistic_pod("a", "r", 24, 98);
        let (q2, r2) = (changed(&q, 25), changed(&r, 25));
        c.apply(Batch {
            deltas: vec![
                Delta::Upsert(q.clone()),
                Delta::Upsert(r.clone()),
                Delta::Upsert(q2.clone()),
                Delta::Upsert(r2.clone()),
                Delta::Delete(q2.clone()),
                Delta::Upsert(pods[1].clone()),
            ],
            rv: Some("25".into()),
        })
        .unwrap();
        assert_replays(&c, "q", &[Some(&q), Some(&q2), None]);
        assert_replays(&c, "r", &[Some(&r), Some(&r2)]);
        assert_replays(&c, "p1", &[Some(&pods[1]), None, Some(&pods[1])]);
        let r3 = changed(&r2, 26);
        c.apply(upserts(vec![r3.clone()], 26)).unwrap();
        assert_replays(&c, "r", &[Some(&r), Some(&r2), Some(&r3)]);

        // What every reader reads: the whole journal, replayed in order,
        // gives each object as stored.
        let journal = c.journal_since(0).unwrap();
        let mut objects = std::collections::BTreeMap::new();
        for e in &journal {
            match e.kind {
                EventKind::Added => {
                    objects.insert(e.key.clone(), e.patch.clone());
                }
                EventKind::Modified => {
                    json_patch::merge(objects.get_mut(&e.key).unwrap(), &e.patch)
                }
                _ => {
                    objects.remove(&e.key);
                }
            }
        }
        for (k, object) in &objects {
            assert_eq!(c.get(k).unwrap().as_ref(), Some(object), "{k}");
        }
        assert_eq!(objects.len() as u64, c.meta().unwrap().objects);
    }
}

engine_test! {
    fn a_trimmed_reference_is_not_written_back_and_the_counters_hold(engine) {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            journal: JournalLimits { max_entries: 3, max_bytes: u64::MAX, max_age: None },
            ..on(engine)
        };
        let store = Store::open_with(dir.path().join("s"), options).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        let pods: Vec<Value> = (0..4).map(|i| realistic_pod("a", &format!("p{i}"), i + 1, i)).collect();
        c.apply(upserts(pods.clone(), 4)).unwrap();
        // p0's Added entry is gone: replacing p0 writes no entry back.
        let p0_2 = changed(&pods[0], 5);
        c.apply(upserts(vec![p0_2.clone()], 5)).unwrap();
        assert_replays(&c, "p0", &[None]);
        assert_eq!(c.history(&key("p0")).unwrap().len(), 1);
        // One batch that gives p2's and p3's entries their objects, then
        // trims them: the trim counts them at their new size (`verify`
        // compares the byte counter with the entries).
        let p2_2 = changed(&pods[2], 6);
        let p3_2 = changed(&pods[3], 6);
        let p1_2 = changed(&pods[1], 6);
        c.apply(upserts(vec![p2_2, p3_2, p1_2.clone()], 6)).unwrap();
        let m = c.meta().unwrap();
        assert_eq!((m.journal_first_seq, m.journal_last_seq, m.journal_len), (6, 8, 3));
        assert_replays(&c, "p1", &[None]);
        assert_eq!(c.history(&key("p2")).unwrap().len(), 1);
        let stored: u64 = c.journal_since(5).unwrap().len() as u64;
        assert_eq!(stored, 3);
    }
}
