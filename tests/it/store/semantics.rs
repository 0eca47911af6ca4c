//! apply / get / list / by_index / history / cursor semantics of the store.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use crate::engine_test;
use crate::support::store::{
    copy_dir, files, nodes_id, on, open, pod, pods_id, realistic_pod, store_one_pod, upserts,
};
use kube_persist::store::{
    Batch, Delta, DictionaryPolicy, EngineKind, Error, EventKind, JournalLimits, ObjectKey, Store,
    StoreOptions,
};
use serde_json::{json, Value};

fn names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// `n` realistic pods `a/p0..` applied as one batch at RV `n`.
fn realistic_pods(n: u64) -> Batch {
    upserts(
        (0..n)
            .map(|i| realistic_pod("a", &format!("p{i}"), i, i))
            .collect(),
        n,
    )
}

fn store(engine: EngineKind) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path().join("s"));
    (dir, store)
}

engine_test! {
    fn apply_then_read_back_by_key_namespace_label_and_list(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        assert!(c.is_empty());
        let changes = c
            .apply(upserts(
                vec![
                    pod("a", "p1", 10, &[("app", "web")]),
                    pod("a", "p2", 11, &[("app", "db")]),
                    pod("b", "p1", 12, &[("app", "web")]),
                ],
                12,
            ))
            .unwrap();
        assert_eq!(changes.len(), 3);
        assert!(changes
            .iter()
            .all(|c| c.kind == EventKind::Added && c.old().is_none()));
        assert_eq!(
            changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(changes[2].key, ObjectKey::namespaced("b", "p1"));
        assert_eq!(changes[2].rv, "12");

        assert_eq!(c.len(), 3);
        assert_eq!(c.last_rv().unwrap().as_deref(), Some("12"));
        assert_eq!(
            c.get(&ObjectKey::namespaced("a", "p2")).unwrap().unwrap(),
            pod("a", "p2", 11, &[("app", "db")])
        );
        assert_eq!(c.get(&ObjectKey::namespaced("a", "nope")).unwrap(), None);
        assert_eq!(names(&c.list().unwrap()), ["p1", "p2", "p1"]);
        assert_eq!(names(&c.list_namespace("a").unwrap()), ["p1", "p2"]);
        assert_eq!(names(&c.by_index("namespace", "b").unwrap()), ["p1"]);
        let web = c.by_index("label", "app=web").unwrap();
        assert_eq!(web.len(), 2);
        assert_eq!(web[0]["metadata"]["namespace"], "a");
        assert_eq!(web[1]["metadata"]["namespace"], "b");
        let versions = c.versions().unwrap();
        assert_eq!(
            versions,
            HashMap::from([
                (ObjectKey::namespaced("a", "p1"), "10".to_string()),
                (ObjectKey::namespaced("a", "p2"), "11".to_string()),
                (ObjectKey::namespaced("b", "p1"), "12".to_string()),
            ])
        );
    }
}

engine_test! {
    fn an_empty_or_unknown_namespace_lists_as_empty(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        assert_eq!(c.list_namespace("nowhere").unwrap(), Vec::<Value>::new());
        c.apply(upserts(vec![pod("ab", "x", 1, &[])], 1)).unwrap();
        // "a" is a prefix of "ab" but not the same namespace.
        assert!(c.list_namespace("a").unwrap().is_empty());
        assert!(c.list_namespace("").unwrap().is_empty());
        assert!(c.by_index("label", "app=none").unwrap().is_empty());
    }
}

engine_test! {
    /// I13 at the store: `apply_keeping_newer` skips a delta older than the
    /// version held (resourceVersions compare as integers, so 9 < 10), and
    /// journals nothing for it; a newer one is a Modified of the held version.
    fn a_delta_older_than_the_held_version_is_skipped(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        let key = ObjectKey::namespaced("a", "p");
        c.apply(upserts(vec![pod("a", "p", 10, &[("v", "10")])], 10)).unwrap();

        let stale = c
            .apply_keeping_newer(Batch {
                deltas: vec![
                    Delta::Upsert(pod("a", "p", 9, &[("v", "9")])),
                    Delta::Delete(pod("a", "p", 3, &[("v", "3")])),
                ],
                rv: Some("11".into()),
            })
            .unwrap();
        assert!(stale.is_empty(), "older deltas were applied: {stale:?}");
        assert_eq!(c.get(&key).unwrap().unwrap(), pod("a", "p", 10, &[("v", "10")]));
        assert_eq!(c.history(&key).unwrap().len(), 1);
        assert!(c.by_index("label", "v=9").unwrap().is_empty());
        // The batch's resourceVersion is still recorded: the watch moved on.
        assert_eq!(c.last_rv().unwrap().as_deref(), Some("11"));

        // `apply` does not keep newer: the same stale upsert is written.
        let forced = c.apply(upserts(vec![pod("a", "p", 9, &[("v", "9")])], 11)).unwrap();
        assert_eq!(forced.len(), 1);
        c.apply(upserts(vec![pod("a", "p", 10, &[("v", "10")])], 11)).unwrap();

        let newer = c
            .apply_keeping_newer(upserts(vec![pod("a", "p", 12, &[("v", "12")])], 12))
            .unwrap();
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].kind, EventKind::Modified);
        assert_eq!(newer[0].rv, "12");
        assert_eq!(
            newer[0].old().unwrap().pointer("/metadata/resourceVersion"),
            Some(&json!("10"))
        );
        assert_eq!(c.by_index("label", "v=12").unwrap().len(), 1);
        assert!(c.by_index("label", "v=10").unwrap().is_empty());
    }
}

engine_test! {
    fn label_change_moves_the_index_entry(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        c.apply(upserts(
            vec![pod("a", "p", 1, &[("app", "web"), ("tier", "fe")])],
            1,
        ))
        .unwrap();
        let ch = c
            .apply(upserts(
                vec![pod("a", "p", 2, &[("app", "api"), ("tier", "fe")])],
                2,
            ))
            .unwrap();
        assert_eq!(ch[0].kind, EventKind::Modified);
        assert_eq!(
            ch[0].old().unwrap()["metadata"]["labels"]["app"],
            "web"
        );
        assert!(c.by_index("label", "app=web").unwrap().is_empty());
        assert_eq!(names(&c.by_index("label", "app=api").unwrap()), ["p"]);
        assert_eq!(names(&c.by_index("label", "tier=fe").unwrap()), ["p"]);
        assert!(c.verify().unwrap().is_ok());
    }
}

engine_test! {
    fn delete_then_re_add(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        c.apply(upserts(vec![pod("a", "p", 1, &[("app", "web")])], 1))
            .unwrap();
        let ch = c
            .apply(Batch {
                deltas: vec![Delta::Delete(pod("a", "p", 2, &[("app", "web")]))],
                rv: Some("2".into()),
            })
            .unwrap();
        assert_eq!(ch[0].kind, EventKind::Deleted);
        assert_eq!(ch[0].rv, "2");
        assert_eq!(ch[0].new, None);
        assert_eq!(
            ch[0].old().unwrap()["metadata"]["resourceVersion"],
            "1"
        );
        assert_eq!(c.get(&ObjectKey::namespaced("a", "p")).unwrap(), None);
        assert!(c.by_index("label", "app=web").unwrap().is_empty());
        assert!(c.is_empty());

        let ch = c
            .apply(upserts(vec![pod("a", "p", 3, &[("app", "new")])], 3))
            .unwrap();
        assert_eq!(ch[0].kind, EventKind::Added);
        assert_eq!(names(&c.by_index("label", "app=new").unwrap()), ["p"]);
        assert!(c.by_index("label", "app=web").unwrap().is_empty());
        assert_eq!(c.len(), 1);

        let kinds: Vec<_> = c
            .history(&ObjectKey::namespaced("a", "p"))
            .unwrap()
            .iter()
            .map(|e| (e.kind, e.rv.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (EventKind::Added, "1".to_string()),
                (EventKind::Deleted, "2".to_string()),
                (EventKind::Added, "3".to_string())
            ]
        );
        assert!(c.verify().unwrap().is_ok());
    }
}

engine_test! {
    fn deleting_an_absent_key_and_re_applying_the_same_object_change_nothing(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        c.apply(upserts(vec![pod("a", "p", 1, &[])], 1)).unwrap();
        let ch = c
            .apply(Batch {
                deltas: vec![
                    Delta::Upsert(pod("a", "p", 1, &[])),
                    Delta::Delete(pod("a", "ghost", 2, &[])),
                ],
                rv: Some("2".into()),
            })
            .unwrap();
        assert!(ch.is_empty());
        assert_eq!(c.journal_since(0).unwrap().len(), 1);
        // The RV still advances, like a bookmark.
        assert_eq!(c.last_rv().unwrap().as_deref(), Some("2"));
    }
}

engine_test! {
    fn a_bookmark_batch_advances_only_the_rv_and_none_keeps_it(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        c.apply(upserts(vec![pod("a", "p", 1, &[])], 1)).unwrap();
        c.apply(Batch {
            deltas: vec![],
            rv: Some("99".into()),
        })
        .unwrap();
        assert_eq!(c.last_rv().unwrap().as_deref(), Some("99"));
        c.apply(Batch::default()).unwrap();
        assert_eq!(c.last_rv().unwrap().as_deref(), Some("99"));
        assert!(c.meta().unwrap().last_sync.is_some());
        // A non-numeric RV is stored as given.
        c.apply(Batch {
            deltas: vec![],
            rv: Some("opaque-rv/abc".into()),
        })
        .unwrap();
        assert_eq!(c.last_rv().unwrap().as_deref(), Some("opaque-rv/abc"));
    }
}

engine_test! {
    fn several_changes_to_one_key_in_one_batch_apply_in_order(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        let ch = c
            .apply(Batch {
                deltas: vec![
                    Delta::Upsert(pod("a", "p", 1, &[("v", "1")])),
                    Delta::Upsert(pod("a", "p", 2, &[("v", "2")])),
                    Delta::Delete(pod("a", "p", 3, &[("v", "2")])),
                    Delta::Upsert(pod("a", "p", 4, &[("v", "4")])),
                ],
                rv: Some("4".into()),
            })
            .unwrap();
        let kinds: Vec<_> = ch.iter().map(|c| c.kind).collect();
        use EventKind::*;
        assert_eq!(kinds, [Added, Modified, Deleted, Added]);
        assert_eq!(
            ch[1].old().unwrap()["metadata"]["resourceVersion"],
            "1"
        );
        assert_eq!(c.len(), 1);
        assert!(c.by_index("label", "v=2").unwrap().is_empty());
        assert_eq!(names(&c.by_index("label", "v=4").unwrap()), ["p"]);
        let report = c.verify().unwrap();
        assert!(report.is_ok(), "{report:?}");
    }
}

engine_test! {
    fn invalid_objects_reject_the_whole_batch_and_name_the_problem(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        c.apply(upserts(vec![pod("a", "keep", 1, &[])], 1)).unwrap();
        let cases = [
            (
                json!({"metadata": {"namespace": "a", "resourceVersion": "1"}}),
                "metadata.name",
            ),
            (
                json!({"metadata": {"name": "x", "namespace": "a"}}),
                "metadata.resourceVersion",
            ),
            (
                json!({"metadata": {"name": "x", "resourceVersion": "1"}}),
                "no metadata.namespace",
            ),
            (
                json!({"metadata": {"name": "x/y", "namespace": "a", "resourceVersion": "1"}}),
                "contains '/'",
            ),
            (json!("not an object"), "no metadata"),
            (
                {
                    // Past the largest object a record holds: refused
                    // rather than written as a record no read accepts.
                    let mut big = pod("a", "big", 2, &[]);
                    big["metadata"]["annotations"] =
                        json!({ "blob": "x".repeat(kube_persist::store::MAX_OBJECT_LEN) });
                    big
                },
                "bytes of JSON, more than the",
            ),
        ];
        for (bad, expect) in cases {
            let err = c
                .apply(Batch {
                    deltas: vec![Delta::Upsert(pod("a", "new", 2, &[])), Delta::Upsert(bad)],
                    rv: Some("2".into()),
                })
                .unwrap_err();
            assert!(matches!(err, Error::InvalidObject(_)), "{err}");
            assert!(
                err.to_string().contains(expect),
                "{err} should mention {expect}"
            );
            assert!(
                err.to_string().contains("core/v1/pods"),
                "{err} should name the collection"
            );
        }
        assert_eq!(names(&c.list().unwrap()), ["keep"]);
        assert_eq!(c.last_rv().unwrap().as_deref(), Some("1"));
        assert_eq!(c.journal_since(0).unwrap().len(), 1);
    }
}

engine_test! {
    fn cluster_scoped_collections_key_by_name_and_refuse_namespaced_objects(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&nodes_id()).unwrap();
        let node =
            json!({"metadata": {"name": "n1", "resourceVersion": "5", "labels": {"zone": "z1"}}});
        c.apply(upserts(vec![node.clone()], 5)).unwrap();
        assert_eq!(c.get(&ObjectKey::cluster("n1")).unwrap().unwrap(), node);
        assert_eq!(names(&c.by_index("label", "zone=z1").unwrap()), ["n1"]);
        assert!(c.list_namespace("default").unwrap().is_empty());
        let err = c
            .apply(upserts(vec![pod("a", "p", 6, &[])], 6))
            .unwrap_err();
        assert!(err.to_string().contains("cluster-scoped"), "{err}");
    }
}

engine_test! {
    fn journal_holds_merge_patches_that_replay_to_each_version(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        let v1 = realistic_pod("a", "p", 1, 1);
        let mut v2 = v1.clone();
        v2["metadata"]["resourceVersion"] = json!("2");
        v2["status"]["phase"] = json!("Succeeded");
        v2["metadata"]["labels"]["extra"] = json!("yes");
        let mut v3 = v2.clone();
        v3["metadata"]["resourceVersion"] = json!("3");
        v3["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("tier");
        c.apply(upserts(vec![v1.clone()], 1)).unwrap();
        c.apply(upserts(vec![v2.clone()], 2)).unwrap();
        c.apply(upserts(vec![v3.clone()], 3)).unwrap();
        let h = c.history(&ObjectKey::namespaced("a", "p")).unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].patch, v1, "Added carries the full object");
        assert_eq!(
            h[1].patch,
            json!({"metadata": {"resourceVersion": "2", "labels": {"extra": "yes"}}, "status": {"phase": "Succeeded"}})
        );
        let mut state = h[0].patch.clone();
        for (entry, want) in h[1..].iter().zip([&v2, &v3]) {
            json_patch::merge(&mut state, &entry.patch);
            // The pod's nulls (lastProbeTime) sit inside arrays, which patches replace whole.
            assert_eq!(&state, want);
        }
        assert_eq!(h[2].seq, 3);
        assert!(h[2].at >= h[0].at);
    }
}

engine_test! {
    fn journal_since_returns_entries_after_a_seq_in_order(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        for i in 1..=5 {
            c.apply(upserts(vec![pod("a", &format!("p{i}"), i, &[])], i))
                .unwrap();
        }
        let seqs =
            |v: Vec<kube_persist::store::JournalEntry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(c.journal_since(0).unwrap()), [1, 2, 3, 4, 5]);
        assert_eq!(seqs(c.journal_since(3).unwrap()), [4, 5]);
        assert!(c.journal_since(5).unwrap().is_empty());
        assert!(c.journal_since(50).unwrap().is_empty());
        assert_eq!(seqs(c.journal_page(1, 2).unwrap()), [2, 3]);
    }
}

engine_test! {
    fn journal_is_bounded_by_count_and_bytes_and_says_when_it_was_trimmed(engine) {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            journal: JournalLimits {
                max_entries: 4,
                max_bytes: u64::MAX,
                max_age: None,
            },
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path().join("s"), StoreOptions { engine: Some(engine), ..opts.clone() }).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        for i in 1..=6 {
            c.apply(upserts(vec![pod("a", &format!("p{i}"), i, &[])], i))
                .unwrap();
        }
        // One batch larger than the whole bound trims its own oldest entries too.
        c.apply(upserts(
            (7..=12)
                .map(|i| pod("a", &format!("p{i}"), i, &[]))
                .collect(),
            12,
        ))
        .unwrap();
        let m = c.meta().unwrap();
        assert_eq!(
            (m.journal_first_seq, m.journal_last_seq, m.journal_len),
            (9, 12, 4)
        );
        assert_eq!(c.journal_since(8).unwrap().len(), 4);
        let err = c.journal_since(3).unwrap_err();
        assert!(
            matches!(
                err,
                Error::JournalTrimmed {
                    after: 3,
                    first: 9,
                    ..
                }
            ),
            "{err}"
        );
        // History of a trimmed object is empty, not an error.
        assert!(c
            .history(&ObjectKey::namespaced("a", "p1"))
            .unwrap()
            .is_empty());
        assert!(c.verify().unwrap().is_ok());

        assert_eq!(c.compact_journal(1).unwrap(), 3);
        assert_eq!(c.journal_since(11).unwrap().len(), 1);
        assert_eq!(c.compact_journal(0).unwrap(), 1);
        let m = c.meta().unwrap();
        assert_eq!(
            (
                m.journal_first_seq,
                m.journal_last_seq,
                m.journal_len,
                m.journal_bytes
            ),
            (13, 12, 0, 0)
        );
        assert!(c.journal_since(12).unwrap().is_empty());
        assert!(matches!(
            c.journal_since(11),
            Err(Error::JournalTrimmed { .. })
        ));
        assert!(c.verify().unwrap().is_ok());
        // Seqs keep counting after the journal was emptied, also across a reopen.
        drop((c, store));
        let store = Store::open_with(dir.path().join("s"), StoreOptions { engine: Some(engine), ..opts }).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        let ch = c
            .apply(upserts(vec![pod("a", "again", 20, &[])], 20))
            .unwrap();
        assert_eq!(ch[0].seq, 13);

        let dir2 = tempfile::tempdir().unwrap();
        let bytes_bound = StoreOptions {
            journal: JournalLimits {
                max_entries: u64::MAX,
                max_bytes: 1500,
                max_age: None,
            },
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir2.path().join("s"), StoreOptions { engine: Some(engine), ..bytes_bound }).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        for i in 1..=20 {
            c.apply(upserts(vec![realistic_pod("a", &format!("p{i}"), i, i)], i))
                .unwrap();
            let m = c.meta().unwrap();
            assert!(m.journal_bytes <= 1500, "{m:?}");
        }
        assert!(c.meta().unwrap().journal_len < 20);
        assert!(c.verify().unwrap().is_ok());
    }
}

engine_test! {
    fn cursors_are_durable_monotonic_and_bounded_by_the_journal(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        {
            let store = Store::open_with(&path, on(engine)).unwrap();
            let c = store.collection(&pods_id()).unwrap();
            assert_eq!(c.cursor("ctrl").unwrap(), None);
            c.apply(upserts(
                vec![pod("a", "p1", 1, &[]), pod("a", "p2", 2, &[])],
                2,
            ))
            .unwrap();
            c.ack("ctrl", 1).unwrap();
            c.ack("ctrl", 0).unwrap(); // older: ignored
            assert_eq!(c.cursor("ctrl").unwrap(), Some(1));
            let err = c.ack("ctrl", 3).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::AckBeyondJournal {
                        seq: 3,
                        last: 2,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(matches!(c.ack("", 1), Err(Error::InvalidArgument(_))));
            c.ack("other", 2).unwrap();
        }
        let store = Store::open_with(&path, on(engine)).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        assert_eq!(c.cursor("ctrl").unwrap(), Some(1));
        assert_eq!(
            c.cursors().unwrap(),
            [("ctrl".to_string(), 1), ("other".to_string(), 2)]
        );
        // At-least-once: everything after the ack is still there (I8).
        let pending = c.journal_since(c.cursor("ctrl").unwrap().unwrap()).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].key, ObjectKey::namespaced("a", "p2"));
    }
}

engine_test! {
    fn user_indexers_are_built_from_existing_objects_and_kept_in_sync(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let by_node: kube_persist::store::IndexFn = Arc::new(|o: &Value| {
            o.pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .map(|n| vec![n.to_string()])
                .unwrap_or_default()
        });
        let on_node = |name: &str, node: &str, rv: u64| {
            let mut p = pod("a", name, rv, &[]);
            p["spec"]["nodeName"] = json!(node);
            p
        };
        {
            let store = Store::open_with(&path, on(engine)).unwrap();
            let c = store.collection(&pods_id()).unwrap();
            c.apply(upserts(vec![on_node("p1", "n1", 1), on_node("p2", "n2", 2)], 2))
                .unwrap();
            let err = c.by_index("node", "n1").unwrap_err();
            assert!(matches!(err, Error::UnknownIndex { .. }), "{err}");
            assert!(err.to_string().contains("\"node\""), "{err}");
            c.add_indexer("node", by_node.clone()).unwrap();
            assert_eq!(names(&c.by_index("node", "n1").unwrap()), ["p1"]);
            c.apply(upserts(vec![on_node("p1", "n2", 3)], 3)).unwrap();
            assert!(c.by_index("node", "n1").unwrap().is_empty());
            assert_eq!(names(&c.by_index("node", "n2").unwrap()), ["p1", "p2"]);
            assert!(c.verify().unwrap().is_ok());
            assert!(matches!(
                c.add_indexer("label", by_node.clone()),
                Err(Error::InvalidArgument(_))
            ));
        }
        // After a reopen the function must be registered again; writes made
        // while it was not are picked up by the rebuild.
        let store = Store::open_with(&path, on(engine)).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        assert!(matches!(
            c.by_index("node", "n2"),
            Err(Error::UnknownIndex { .. })
        ));
        c.apply(Batch {
            deltas: vec![
                Delta::Delete(on_node("p2", "n2", 4)),
                Delta::Upsert(on_node("p3", "n3", 5)),
            ],
            rv: Some("5".into()),
        })
        .unwrap();
        c.add_indexer("node", by_node).unwrap();
        assert_eq!(names(&c.by_index("node", "n2").unwrap()), ["p1"]);
        assert_eq!(names(&c.by_index("node", "n3").unwrap()), ["p3"]);
        assert!(c.verify().unwrap().is_ok());
    }
}

engine_test! {
    fn a_dictionary_is_trained_once_enough_objects_exist_and_records_name_it(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let opts = StoreOptions {
            dictionary: DictionaryPolicy {
                min_objects: 100,
                retrain_factor: 4,
                ..DictionaryPolicy::default()
            },
            ..StoreOptions::default()
        };
        let all: Vec<Value> = (0..500)
            .map(|i| realistic_pod(&format!("ns{}", i % 5), &format!("p{i}"), i + 1, i))
            .collect();
        {
            let store = Store::open_with(&path, StoreOptions { engine: Some(engine), ..opts.clone() }).unwrap();
            let c = store.collection(&pods_id()).unwrap();
            for (n, chunk) in all[..50].chunks(25).enumerate() {
                c.apply(upserts(chunk.to_vec(), n as u64)).unwrap();
            }
            assert_eq!(c.meta().unwrap().dictionary_id, None);
            let plain_ratio =
                c.meta().unwrap().stored_bytes as f64 / c.meta().unwrap().raw_bytes as f64;
            for chunk in all[50..].chunks(50) {
                c.apply(upserts(chunk.to_vec(), 1000)).unwrap();
            }
            let m = c.meta().unwrap();
            assert_eq!(
                m.dictionary_id,
                Some(2),
                "trained at 100 and again at 400: {m:?}"
            );
            assert_eq!(m.dictionaries, 2);
            let dict_ratio = (m.stored_bytes as f64) / (m.raw_bytes as f64);
            assert!(
                dict_ratio < plain_ratio,
                "dictionary {dict_ratio} vs plain {plain_ratio}"
            );
            assert!(c.verify().unwrap().is_ok());
        }
        // Records of all three codecs (plain, dict 1, dict 2) read back after reopen.
        let store = Store::open_with(&path, StoreOptions { engine: Some(engine), ..opts }).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        let mut got = c.list().unwrap();
        let mut want = all.clone();
        let key = |v: &Value| format!("{}/{}", v["metadata"]["namespace"], v["metadata"]["name"]);
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got, want);
        // The journal's Added entries hold the objects themselves, under each codec.
        let added: Vec<Value> = c
            .journal_since(0)
            .unwrap()
            .into_iter()
            .map(|e| e.patch)
            .collect();
        assert_eq!(added, all);
        let report = c.verify().unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.dictionaries, 2);
    }
}

engine_test! {
    fn counters_in_meta_match_what_is_stored(engine) {
        let (_d, store) = store(engine);
        let c = store.collection(&pods_id()).unwrap();
        c.apply(realistic_pods(30)).unwrap();
        c.apply(Batch {
            deltas: (0..10)
                .map(|i| Delta::Delete(realistic_pod("a", &format!("p{i}"), 40 + i, i)))
                .collect(),
            rv: Some("50".into()),
        })
        .unwrap();
        let m = c.meta().unwrap();
        assert_eq!(m.objects, 20);
        let raw: u64 = c
            .list()
            .unwrap()
            .iter()
            .map(|o| serde_json::to_vec(o).unwrap().len() as u64)
            .sum();
        assert_eq!(m.raw_bytes, raw);
        assert!(m.stored_bytes < m.raw_bytes);
        assert_eq!(m.journal_len, 40);
        assert_eq!(m.schema_version, kube_persist::store::SCHEMA_VERSION);
        // verify cross-checks every counter against the records.
        assert!(c.verify().unwrap().is_ok());
    }
}

engine_test! {
    fn collections_are_registered_found_and_dropped(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        {
            let store = Store::open_with(&path, on(engine)).unwrap();
            assert!(store.find_collection(&pods_id()).unwrap().is_none());
            assert!(store.collections().unwrap().is_empty());
            let mut ns_only = pods_id();
            ns_only.namespace = Some("a".into());
            store_one_pod(&store);
            store.collection(&ns_only).unwrap();
            store.collection(&nodes_id()).unwrap();
            let mut bad = nodes_id();
            bad.namespace = Some("x".into());
            assert!(matches!(
                store.collection(&bad),
                Err(Error::InvalidArgument(_))
            ));
        }
        let store = Store::open_existing(&path).unwrap();
        assert_eq!(store.collections().unwrap().len(), 3);
        let c = store.find_collection(&pods_id()).unwrap().unwrap();
        assert_eq!(c.len(), 1);
        assert!(store.drop_collection(&pods_id()).unwrap());
        assert!(store.find_collection(&pods_id()).unwrap().is_none());
        assert_eq!(store.collection(&pods_id()).unwrap().len(), 0);
    }
}

engine_test! {
    fn two_handles_on_one_collection_share_state(engine) {
        let (_d, store) = store(engine);
        let a = store.collection(&pods_id()).unwrap();
        let b = store.clone().collection(&pods_id()).unwrap();
        a.apply(upserts(vec![pod("a", "p", 1, &[])], 1)).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b.last_rv().unwrap().as_deref(), Some("1"));
    }
}

engine_test! {
    fn store_files_are_private_and_open_existing_never_creates(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let err = Store::open_existing(&path).err().unwrap();
        assert!(matches!(err, Error::NotAStore { .. }), "{err}");
        assert!(!path.exists());
        {
            let store = Store::open_with(&path, on(engine)).unwrap();
            let c = store.collection(&pods_id()).unwrap();
            c.apply(realistic_pods(50)).unwrap();
            assert!(store.size_on_disk().unwrap() > 0);
        }
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o700);
        let mut files = 0;
        let mut stack = vec![path.clone()];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap().path();
                if e.is_dir() {
                    assert_eq!(mode(&e), 0o700, "{}", e.display());
                    stack.push(e);
                } else {
                    assert_eq!(mode(&e), 0o600, "{}", e.display());
                    files += 1;
                }
            }
        }
        assert!(files >= 3, "marker, lock and the database's files");
        Store::open_existing(&path).unwrap();

        // A directory with other things in it is not turned into a store.
        let other = dir.path().join("home");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "mine").unwrap();
        assert!(matches!(Store::open_with(&other, on(engine)), Err(Error::NotAStore { .. })));
        assert!(matches!(
            Store::open_existing(&other),
            Err(Error::NotAStore { .. })
        ));
        assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
        // A file is not a store either.
        assert!(matches!(
            Store::open_with(other.join("notes.txt"), on(engine)),
            Err(Error::NotAStore { .. })
        ));
    }
}

engine_test! {
    fn a_creation_killed_before_its_marker_was_renamed_is_taken_over(engine) {
        // What a process killed between writing the marker's temporary file and
        // renaming it leaves: the lock and the temporary file, nothing else.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("lock"), b"").unwrap();
        std::fs::write(path.join("kube-persist.json.tmp"), b"{\"format\": \"kube-").unwrap();
        assert!(matches!(
            Store::open_existing(&path),
            Err(Error::NotAStore { .. })
        ));
        let store = Store::open_with(&path, on(engine)).unwrap();
        store_one_pod(&store);
        drop(store);
        assert!(!path.join("kube-persist.json.tmp").exists());
        let store = Store::open_existing(&path).unwrap();
        assert_eq!(store.collection(&pods_id()).unwrap().len(), 1);

        // With anything else beside them, the directory is someone's data.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("kube-persist.json.tmp"), b"").unwrap();
        std::fs::write(other.join("notes.txt"), b"mine").unwrap();
        assert!(matches!(Store::open_with(&other, on(engine)), Err(Error::NotAStore { .. })));
    }
}

engine_test! {
    fn short_names_are_recorded_beside_a_collection_and_go_with_it(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let wd = vec!["wd".to_string()];
        {
            let store = Store::open_with(&path, on(engine)).unwrap();
            // Only for a collection the store holds.
            for names in [&wd[..], &[]] {
                let err = store.set_short_names(&pods_id(), names).unwrap_err();
                assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
                assert!(err.to_string().contains("no collection"), "{err}");
            }
            store.collection(&pods_id()).unwrap();
            assert_eq!(store.short_names(&pods_id()).unwrap(), Vec::<String>::new());
            for bad in ["", "w.d", "w/d", "w d"] {
                let err = store
                    .set_short_names(&pods_id(), &[bad.to_string()])
                    .unwrap_err();
                assert!(
                    matches!(err, Error::InvalidArgument(_))
                        && err.to_string().contains(&format!("{bad:?}")),
                    "{bad:?}: {err}"
                );
            }
            store.set_short_names(&pods_id(), &wd).unwrap();
            store.collection(&nodes_id()).unwrap();
            assert_eq!(
                store.short_names(&nodes_id()).unwrap(),
                Vec::<String>::new()
            );
        }
        // They survive a compaction and a reopen, and a reader sees them but
        // cannot change them.
        let report = Store::compact(&path, kube_persist::store::CompactOptions::default()).unwrap();
        assert!(report.keys_copied > 0, "{engine}: {report:?}");
        {
            let reader = Store::open_read_only(&path).unwrap();
            assert_eq!(reader.short_names(&pods_id()).unwrap(), wd);
            reader.set_short_names(&pods_id(), &wd).unwrap();
            assert!(matches!(
                reader.set_short_names(&pods_id(), &["p".to_string()]),
                Err(Error::ReadOnly { .. })
            ));
        }
        let store = Store::open_with(&path, on(engine)).unwrap();
        assert_eq!(store.short_names(&pods_id()).unwrap(), wd);
        store.set_short_names(&pods_id(), &[]).unwrap();
        assert_eq!(store.short_names(&pods_id()).unwrap(), Vec::<String>::new());
        // Dropping the collection drops its names: a new one starts with none.
        store.set_short_names(&pods_id(), &wd).unwrap();
        assert!(store.drop_collection(&pods_id()).unwrap());
        store.collection(&pods_id()).unwrap();
        assert_eq!(store.short_names(&pods_id()).unwrap(), Vec::<String>::new());
    }
}

engine_test! {
    fn a_database_whose_creation_was_killed_never_stops_the_next_open(engine) {
        let dir = tempfile::tempdir().unwrap();
        let half = dir.path().join("half");
        match engine {
            EngineKind::Sled => {
                // sled writes its config in two steps; cut after the first,
                // the database never opens again.
                drop(sled::open(&half).unwrap());
                cut(&half.join("conf"), 4);
                let sled_result = std::panic::catch_unwind(|| sled::open(&half).map(drop));
                assert!(
                    !matches!(sled_result, Ok(Ok(()))),
                    "sled opened a half-written config"
                );
            }
            EngineKind::Redb => {
                // A database file cut short while its header was written.
                let whole = dir.path().join("whole");
                drop(open(engine, &whole));
                copy_dir(&whole.join("db"), &half);
                let file = half.join("data.redb");
                let len = std::fs::metadata(&file).unwrap().len();
                cut(&file, len - 100);
            }
        }

        // The store creates its database aside, so such a half-made one is
        // only ever found there, and is discarded.
        let path = dir.path().join("s");
        drop(Store::open_with(&path, on(engine)).unwrap());
        std::fs::remove_dir_all(path.join("db")).unwrap();
        copy_dir(&half, &path.join("db.init"));
        // A reader finds the empty store it is and leaves the remains alone.
        let reader = Store::open_read_only(&path).unwrap();
        assert!(reader.collections().unwrap().is_empty());
        drop(reader);
        assert!(path.join("db.init").exists() && !path.join("db").exists());
        let store = Store::open_with(&path, on(engine)).unwrap();
        assert!(!path.join("db.init").exists());
        store_one_pod(&store);
        drop(store);
        assert_eq!(
            Store::open_with(&path, on(engine))
                .unwrap()
                .collection(&pods_id())
                .unwrap()
                .len(),
            1
        );
    }
}

engine_test! {
    fn a_second_open_in_the_same_process_is_refused_while_the_first_lives(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let first = Store::open_with(&path, on(engine)).unwrap();
        let c = first.collection(&pods_id()).unwrap();
        drop(first);
        // The collection handle keeps the store (and its lock) alive.
        let err = Store::open_with(&path, on(engine)).err().unwrap();
        assert!(matches!(err, Error::InUse { .. }), "{err}");
        assert!(err.to_string().contains("is in use by another process"));
        drop(c);
        Store::open_with(&path, on(engine)).unwrap();
    }
}

/// Cuts the last `by` bytes off `file`.
fn cut(file: &std::path::Path, by: u64) {
    let len = std::fs::metadata(file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(len - by)
        .unwrap();
}

engine_test! {
    fn a_read_only_store_reads_everything_and_changes_nothing(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        {
            let store = Store::open_with(&path, on(engine)).unwrap();
            let c = store.collection(&pods_id()).unwrap();
            c.apply(realistic_pods(30)).unwrap();
            c.ack("auditor", 10).unwrap();
        }
        let before = files(&path);
        {
            let store = Store::open_read_only(&path).unwrap();
            assert!(store.is_read_only());
            assert_eq!(store.path(), path);
            let c = store.find_collection(&pods_id()).unwrap().unwrap();
            assert_eq!(c.len(), 30);
            assert_eq!(c.last_rv().unwrap().as_deref(), Some("30"));
            assert_eq!(c.cursor("auditor").unwrap(), Some(10));
            assert!(c.verify().unwrap().problems.is_empty());
            // Two readers at once.
            let second = Store::open_read_only(&path).unwrap();
            assert_eq!(second.collections().unwrap().len(), 1);
            let read_only = |r: Result<(), Error>| matches!(r, Err(Error::ReadOnly { .. }));
            let apply = c.apply(upserts(vec![pod("a", "new", 31, &[])], 31));
            assert!(read_only(apply.map(drop)));
            assert!(read_only(c.ack("auditor", 20)));
            assert!(read_only(c.compact_journal(0).map(drop)));
            assert!(read_only(store.collection(&nodes_id()).map(drop)));
            assert!(read_only(store.drop_collection(&pods_id()).map(drop)));
        }
        assert_eq!(files(&path), before, "a read-only open changed the store");
    }
}

engine_test! {
    fn a_writer_waits_out_readers_but_a_reader_is_refused_while_a_writer_has_the_store(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let writer = Store::open_with(&path, on(engine)).unwrap();
        store_one_pod(&writer);
        assert!(matches!(
            Store::open_read_only(&path),
            Err(Error::InUse { .. })
        ));
        drop(writer);
        let reader = Store::open_read_only(&path).unwrap();
        let c = reader.find_collection(&pods_id()).unwrap().unwrap();
        if engine.reads_in_place() {
            // The reader reads the store's own files and holds its lock
            // (shared) while it lives: a writer waits for it to go.
            let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let release = std::thread::spawn({
                let released = released.clone();
                move || {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    assert_eq!(c.len(), 1);
                    released.store(true, std::sync::atomic::Ordering::SeqCst);
                    drop((c, reader));
                }
            });
            let writer = Store::open_existing(&path).unwrap();
            assert!(released.load(std::sync::atomic::Ordering::SeqCst));
            release.join().unwrap();
            writer
                .collection(&pods_id())
                .unwrap()
                .apply(upserts(vec![pod("a", "q", 2, &[])], 2))
                .unwrap();
        } else {
            // The reader holds no lock once its copy is made.
            let writer = Store::open_existing(&path).unwrap();
            writer
                .collection(&pods_id())
                .unwrap()
                .apply(upserts(vec![pod("a", "q", 2, &[])], 2))
                .unwrap();
            // The reader keeps the state it copied.
            assert_eq!(c.len(), 1);
        }

        // A reader mid-copy holds a shared lock; a writer waits for it to go
        // rather than failing.
        let lock = std::fs::File::open(path.join("lock")).unwrap();
        fs2::FileExt::lock_shared(&lock).unwrap();
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let release = std::thread::spawn({
            let released = released.clone();
            move || {
                std::thread::sleep(std::time::Duration::from_millis(300));
                released.store(true, std::sync::atomic::Ordering::SeqCst);
                drop(lock);
            }
        });
        let writer = Store::open_existing(&path).unwrap();
        // It got the lock only once the reader let go (the order, not a speed).
        assert!(released.load(std::sync::atomic::Ordering::SeqCst));
        release.join().unwrap();
        assert_eq!(
            writer.find_collection(&pods_id()).unwrap().unwrap().len(),
            2
        );

        // Another writer is refused: a writer's lock is not a reader's copy.
        assert!(matches!(
            Store::open_existing(&path),
            Err(Error::InUse { .. })
        ));
    }
}

/// A process killed while sled wrote a snapshot leaves `snap.<lsn>.generating`
/// short, which sled 0.34's open takes for the newest snapshot and refuses
/// as corrupt. The store opens anyway, for reading and for writing, with
/// everything it held: the finished snapshot and the log hold it all.
#[test]
fn a_snapshot_sled_left_unfinished_does_not_stop_the_store_opening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    {
        let store = open(EngineKind::Sled, &path);
        store
            .collection(&pods_id())
            .unwrap()
            .apply(realistic_pods(50))
            .unwrap();
    }
    let db = path.join("db");
    let names: Vec<_> = files(&db).into_keys().collect();
    assert!(
        names.iter().any(|f| f.to_string_lossy().contains("snap.")),
        "sled wrote no snapshot to sort after: {names:?}"
    );
    // What a SIGKILL after sled created the file and wrote its first bytes leaves.
    let unfinished = db.join("snap.7FFFFFFFFFFFFFFF.generating");
    std::fs::write(&unfinished, [0x28, 0xb5, 0x2f, 0xfd]).unwrap();

    let read = Store::open_read_only(&path).unwrap();
    assert_eq!(read.collection(&pods_id()).unwrap().len(), 50);
    drop(read);
    // The reader worked on its own copy: the store is as it was.
    assert!(unfinished.exists());

    let store = open(EngineKind::Sled, &path);
    let c = store.collection(&pods_id()).unwrap();
    assert_eq!(c.len(), 50);
    assert_eq!(
        c.get(&ObjectKey::namespaced("a", "p7")).unwrap(),
        Some(realistic_pod("a", "p7", 7, 7))
    );
    assert!(!unfinished.exists());
}

engine_test! {
    fn damaged_store_files_are_reported_not_recreated_or_panicked_on(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        {
            let store = Store::open_with(&path, on(engine)).unwrap();
            store
                .collection(&pods_id())
                .unwrap()
                .apply(realistic_pods(1500))
                .unwrap();
        }
        // The database file truncated to nothing.
        let main = engine.data_file();
        let db_file = path.join(main);
        let emptied_log = dir.path().join("emptied-log");
        copy_dir(&path, &emptied_log);
        std::fs::File::create(emptied_log.join(main)).unwrap();
        let before = files(&emptied_log);
        match read_everything(&emptied_log) {
            Err(Error::Damaged { file, .. }) => assert_eq!(file, main),
            other => panic!("expected Damaged, got {other:?}"),
        }
        assert_eq!(files(&emptied_log), before);

        // The file cut in the middle: sled recovers the writes up to the
        // first segment it cannot find (segments are reused, so that may be
        // an early state), or reports damage, or panics (caught); redb finds
        // pages missing. Whichever, what is read is whole: every object
        // verifies, none is invented.
        let len = std::fs::metadata(&db_file).unwrap().len();
        let halved = dir.path().join("cut");
        copy_dir(&path, &halved);
        cut(&halved.join(main), len - len / 2);
        let before = files(&halved);
        match read_everything(&halved) {
            Ok(objects) => assert!(objects <= 1500),
            Err(Error::Damaged { file, .. }) => assert_eq!(file, main),
            Err(other) => panic!("expected damage or an older state, got {other}"),
        }
        assert_eq!(files(&halved), before);

        // A database replaced by an empty one: the marker knows the store had
        // collections.
        let replaced = dir.path().join("replaced");
        copy_dir(&path, &replaced);
        std::fs::remove_dir_all(replaced.join("db")).unwrap();
        let empty = dir.path().join("empty");
        drop(open(engine, &empty));
        copy_dir(&empty.join("db"), &replaced.join("db"));
        match read_everything(&replaced) {
            Err(Error::Damaged { file, reason, .. }) => {
                assert_eq!(file, main);
                assert!(reason.contains("no collections"), "{reason}");
            }
            other => panic!("expected Damaged, got {other:?}"),
        }
        // A writer starts empty instead (and heals by relisting)...
        assert!(Store::open_existing(&replaced)
            .unwrap()
            .collections()
            .unwrap()
            .is_empty());
        // ...after which the store is an empty store, not a damaged one.
        assert_eq!(read_everything(&replaced).unwrap(), 0);

        // A store whose last collection was dropped on purpose is not damaged.
        let dropped = dir.path().join("dropped");
        copy_dir(&path, &dropped);
        assert!(Store::open_existing(&dropped)
            .unwrap()
            .drop_collection(&pods_id())
            .unwrap());
        assert_eq!(read_everything(&dropped).unwrap(), 0);

        // A sled store that an older build created in place and that was
        // killed before sled wrote anything (a config, an empty log, no
        // snapshot; it never registered a collection) opens as the new store
        // it is.
        if engine == EngineKind::Sled {
            let fresh = dir.path().join("fresh");
            drop(Store::open_with(&fresh, on(engine)).unwrap());
            for entry in std::fs::read_dir(fresh.join("db")).unwrap() {
                let entry = entry.unwrap().path();
                if entry.file_name().unwrap() != "conf" {
                    if entry.is_dir() {
                        std::fs::remove_dir_all(entry).unwrap();
                    } else {
                        std::fs::remove_file(entry).unwrap();
                    }
                }
            }
            std::fs::File::create(fresh.join("db").join("db")).unwrap();
            assert_eq!(read_everything(&fresh).unwrap(), 0);
            Store::open_existing(&fresh).unwrap();
        }

        // The database directory removed: a reader says so instead of finding
        // an empty, "intact" store.
        let emptied = dir.path().join("emptied");
        copy_dir(&path, &emptied);
        std::fs::remove_dir_all(emptied.join("db")).unwrap();
        match Store::open_read_only(&emptied) {
            Err(Error::Damaged { file, .. }) => assert_eq!(file, "db"),
            other => panic!("expected Damaged, got {:?}", other.map(|_| ())),
        }
        assert!(!emptied.join("db").exists());
    }
}

/// Opens `path` read-only and reads every record; the objects it found.
fn read_everything(path: &std::path::Path) -> Result<u64, Error> {
    let store = Store::open_read_only(path)?;
    let mut objects = 0;
    for id in store.collections()? {
        let report = store.collection(&id)?.verify()?;
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        objects += report.objects;
    }
    Ok(objects)
}

engine_test! {
    fn journal_entries_older_than_the_age_bound_are_trimmed_on_apply_and_by_trim_journal_to(engine) {
        let dir = tempfile::tempdir().unwrap();
        let age = std::time::Duration::from_millis(250);
        let options = StoreOptions {
            journal: JournalLimits {
                max_age: Some(age),
                ..JournalLimits::default()
            },
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path().join("s"), StoreOptions { engine: Some(engine), ..options }).unwrap();
        let c = store.collection(&pods_id()).unwrap();
        c.apply(upserts(
            vec![pod("a", "p1", 1, &[]), pod("a", "p2", 2, &[])],
            2,
        ))
        .unwrap();
        // Only lower bounds on time: these two are at least `age` old below.
        std::thread::sleep(age + std::time::Duration::from_millis(50));
        c.apply(upserts(vec![pod("a", "p3", 3, &[])], 3)).unwrap();
        let seqs: Vec<u64> = c.journal_since(0).map_or_else(
            |e| match e {
                Error::JournalTrimmed { first, .. } => c
                    .journal_since(first - 1)
                    .unwrap()
                    .iter()
                    .map(|e| e.seq)
                    .collect(),
                other => panic!("{other}"),
            },
            |entries| entries.iter().map(|e| e.seq).collect(),
        );
        assert_eq!(seqs, [3]);
        assert_eq!(c.meta().unwrap().journal_first_seq, 3);
        // Nothing is trimmed by age alone until it is old enough...
        let limits = JournalLimits {
            max_age: Some(std::time::Duration::from_secs(3600)),
            ..JournalLimits::default()
        };
        assert_eq!(c.trim_journal_to(limits).unwrap(), 0);
        // ...and then it is, without an apply.
        std::thread::sleep(age + std::time::Duration::from_millis(50));
        let limits = JournalLimits {
            max_age: Some(age),
            ..JournalLimits::default()
        };
        assert_eq!(c.trim_journal_to(limits).unwrap(), 1);
        assert_eq!(c.meta().unwrap().journal_len, 0);
        assert_eq!(c.len(), 3, "objects are never trimmed");
    }
}

/// Every error in `err`'s `source()` chain, outermost first.
fn chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source()).collect()
}

engine_test! {
    fn damage_the_engine_reports_keeps_the_engine_error_as_its_cause(engine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        open(engine, &path)
            .collection(&pods_id())
            .unwrap()
            .apply(realistic_pods(10))
            .unwrap();
        // The database file overwritten with garbage: the engine cannot
        // read it, and says why.
        let file = path.join(engine.data_file());
        let len = std::fs::metadata(&file).unwrap().len() as usize;
        std::fs::write(&file, vec![0xA5; len]).unwrap();
        let err = match read_everything(&path) {
            Err(err @ Error::Damaged { .. }) => err,
            other => panic!("expected Damaged, got {other:?}"),
        };
        let causes = chain(&err);
        // Sled may panic on such a file (caught, with no error value to
        // keep); whatever the engine returned as an error is the cause.
        if let Error::Damaged { source: Some(engine_err), .. } = &err {
            assert!(
                causes[1].downcast_ref::<kube_persist::store::EngineError>().is_some(),
                "{causes:?}"
            );
            let text = engine_err.to_string();
            assert!(!text.is_empty());
            // The message names the engine's finding too, for a reader
            // that shows only the message.
            assert!(err.to_string().ends_with(&text), "{err}");
        } else {
            assert_eq!(engine, EngineKind::Sled, "redb returns its error: {err:?}");
            assert_eq!(causes.len(), 1, "{causes:?}");
        }
    }
}

#[test]
fn an_io_failure_keeps_the_io_error_as_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    // A store asked for under a regular file: the directory cannot be made.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let err = Store::open(blocker.join("s"))
        .err()
        .expect("no store under a file");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let causes = chain(&err);
    let io = causes[1]
        .downcast_ref::<std::io::Error>()
        .expect("the i/o error is the cause");
    assert_eq!(io.kind(), std::io::ErrorKind::NotADirectory, "{io}");
}
