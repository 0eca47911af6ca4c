//! A full consistency check of one collection: every record's crc and
//! payload, every index entry against the objects, the journal and the
//! counters of the state record. Problems are reported by key, not fixed.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::collection::Collection;
use super::error::{Error, Result};
use super::head::ObjectHead;
use super::index;
use super::journal;
use super::key::{self, prefix};
use super::record;
use super::short_names;
use super::ObjectKey;

/// One thing `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong: an object key, `journal seq N`, `index label=…`, `state`...
    pub key: String,
    /// Why.
    pub reason: String,
}

/// What `verify` checked and what it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Object records checked.
    pub objects: u64,
    /// Journal entries checked.
    pub journal_entries: u64,
    /// Index entries checked (built-in label index and registered indexers).
    pub index_entries: u64,
    /// Dictionaries checked.
    pub dictionaries: u64,
    /// Cursors checked.
    pub cursors: u64,
    /// Everything found wrong.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing was found wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            reason: reason.into(),
        });
    }

    fn record(&mut self, err: Error) {
        match err {
            Error::Corrupt { key, reason, .. } => self.problem(key, reason),
            other => self.problem("?", other.to_string()),
        }
    }
}

impl Collection {
    /// Reads and checks everything the collection holds. Storage errors are
    /// returned; damage is reported in the [`VerifyReport`].
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(|| {})
    }

    /// [`Collection::verify`], calling `progress` after each object record
    /// and each journal entry checked (what a progress bar counts).
    pub fn verify_with_progress(&self, mut progress: impl FnMut()) -> Result<VerifyReport> {
        let inner = &self.inner;
        let mut report = VerifyReport::default();
        let st = inner.state();

        let short_names_key = short_names::key(&inner.name);
        if let Some(body) = inner
            .shared
            .db()
            .get(super::DEFAULT_SPACE, short_names_key.as_bytes())?
        {
            if let Err(e) = short_names::decode(&inner.name, &body) {
                report.record(e);
            }
        }

        for item in inner.scan_prefix(&[prefix::DICTIONARY])? {
            let (k, v) = item?;
            report.dictionaries += 1;
            let id = key::dictionary_id(&k).unwrap_or(0);
            if let Err(e) = record::unseal(&v) {
                report.problem(format!("dictionary {id}"), e.to_string());
            }
        }

        let indexers = inner
            .indexers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut expected = BTreeSet::new();
        let (mut stored_bytes, mut raw_bytes) = (0u64, 0u64);
        // Each readable record's resourceVersion, which the journal's
        // entries that refer to their object's record must name.
        let mut record_rvs = HashMap::new();
        for item in inner.scan_prefix(&[prefix::OBJECT])? {
            let (k, v) = item?;
            report.objects += 1;
            progress();
            let key_str = key::object_key_from(&k);
            stored_bytes += v.len() as u64;
            let (envelope, json) = match inner.open_record(&key_str, &v) {
                Ok(opened) => opened,
                Err(e) => {
                    report.record(e);
                    continue;
                }
            };
            raw_bytes += envelope.raw_len as u64;
            record_rvs.insert(key_str.clone(), envelope.rv.clone());
            // User indexers take the whole object; the label index and the
            // checks below need only its metadata.
            let head = match indexers.is_empty() {
                true => ObjectHead::parse(&json),
                false => None,
            };
            let (key, rv, labels) = match head {
                Some(head) => (
                    head.key(),
                    head.resource_version().map(str::to_string),
                    head.label_pairs(),
                ),
                None => match serde_json::from_slice::<Value>(&json) {
                    Ok(value) => {
                        expected.extend(index::user_entries(&value, &key_str, &indexers));
                        let rv = value.pointer("/metadata/resourceVersion");
                        (
                            ObjectKey::of(&value),
                            rv.and_then(Value::as_str).map(str::to_string),
                            index::label_values(&value),
                        )
                    }
                    Err(e) => {
                        report.record(inner.corrupt_by(&key_str, "payload is not JSON", e));
                        continue;
                    }
                },
            };
            match key {
                Ok(k) if k.encode() == key_str => {}
                Ok(k) => report.problem(&key_str, format!("record holds object {k}")),
                Err(e) => report.problem(&key_str, e.to_string()),
            }
            if rv.as_deref() != Some(envelope.rv.as_str()) {
                report.problem(
                    &key_str,
                    format!("envelope rv {:?}, object rv {rv:?}", envelope.rv),
                );
            }
            expected.extend(index::label_entries(labels, &key_str));
        }
        if report.objects != st.objects {
            report.problem(
                "state",
                format!("counts {} objects, found {}", st.objects, report.objects),
            );
        }
        if report.is_ok() && (stored_bytes != st.stored_bytes || raw_bytes != st.raw_bytes) {
            report.problem(
                "state",
                format!(
                    "counts {}/{} stored/raw bytes, found {stored_bytes}/{raw_bytes}",
                    st.stored_bytes, st.raw_bytes
                ),
            );
        }

        let checked: BTreeSet<&str> = indexers
            .keys()
            .map(String::as_str)
            .chain([index::LABEL_INDEX])
            .collect();
        let mut actual = BTreeSet::new();
        for item in inner.scan_prefix(&[prefix::INDEX])? {
            let (k, _) = item?;
            match key::parse_index_entry(&k) {
                Some((name, _, _)) if !checked.contains(name.as_str()) => {}
                Some(_) => {
                    report.index_entries += 1;
                    actual.insert(k.to_vec());
                }
                None => report.problem(
                    "index",
                    format!("malformed index entry {:?}", String::from_utf8_lossy(&k)),
                ),
            }
        }
        let corrupt_keys: BTreeSet<String> =
            report.problems.iter().map(|p| p.key.clone()).collect();
        for (entries, what) in [
            (
                actual.difference(&expected),
                "entry without a matching object",
            ),
            (expected.difference(&actual), "missing entry"),
        ] {
            for e in entries {
                if let Some((name, value, key)) = key::parse_index_entry(e) {
                    // The index entries of an unreadable object cannot be judged.
                    if !corrupt_keys.contains(&key) {
                        report.problem(format!("index {name} {value:?} → {key}"), what);
                    }
                }
            }
        }

        let mut journal_bytes = 0u64;
        let mut seqs = BTreeSet::new();
        let mut stored = BTreeSet::new();
        let mut marks = BTreeSet::new();
        let mut seqs_with_history = BTreeSet::new();
        for item in inner.scan_prefix(&[prefix::JOURNAL])? {
            let (k, v) = item?;
            report.journal_entries += 1;
            progress();
            journal_bytes += v.len() as u64;
            let Some(seq) = key::journal_seq(&k) else {
                report.problem("journal", "malformed journal key");
                continue;
            };
            seqs.insert(seq);
            if seq < st.journal_first || seq > st.last_seq {
                report.problem(
                    format!("journal seq {seq}"),
                    format!(
                        "outside the kept span {}..={}",
                        st.journal_first, st.last_seq
                    ),
                );
            }
            match self.entry_head(seq, &v) {
                Ok(head) if head.stored => {
                    stored.insert(seq);
                    let key_str = head.key.encode();
                    match record_rvs.get(&key_str) {
                        Some(rv) if *rv == head.rv => {}
                        // An unreadable record is reported above.
                        _ if corrupt_keys.contains(&key_str) => {}
                        found => report.problem(
                            format!("journal seq {seq}"),
                            format!(
                                "refers to the record of {key_str} at resourceVersion {}, which {}",
                                head.rv,
                                match found {
                                    Some(rv) => format!("is at {rv}"),
                                    None => "is missing".to_string(),
                                }
                            ),
                        ),
                    }
                }
                Ok(_) => {}
                Err(e) => report.record(e),
            }
        }
        if report.journal_entries != st.journal_len || journal_bytes != st.journal_bytes {
            report.problem(
                "state",
                format!(
                    "counts {} journal entries / {} bytes, found {} / {journal_bytes}",
                    st.journal_len, st.journal_bytes, report.journal_entries
                ),
            );
        }
        for item in inner.scan_prefix(&[prefix::HISTORY])? {
            let (k, v) = item?;
            let seq = key::history_seq(&k);
            if let Some(seq) = seq {
                seqs_with_history.insert(seq);
            }
            let Some(seq) = seq.filter(|s| seqs.contains(s)) else {
                report.problem(
                    "history",
                    format!(
                        "entry {:?} names no journal entry",
                        String::from_utf8_lossy(&k)
                    ),
                );
                continue;
            };
            // The mark is how the write that replaces a record finds the
            // entry to give the object to: an entry without it would lose
            // its content then.
            let marked = match v.as_slice() {
                [] => false,
                m if m == journal::REFERS_TO_OBJECT => true,
                other => {
                    report.problem(
                        format!("history of journal seq {seq}"),
                        format!("unknown value {other:?}"),
                    );
                    continue;
                }
            };
            if marked {
                marks.insert(seq);
            }
            // (A mark on an entry that holds its object is harmless: the
            // write that finds it writes the same object into it.)
            if !marked && stored.contains(&seq) {
                report.problem(
                    format!("history of journal seq {seq}"),
                    "does not mark an entry that refers to its object's record",
                );
            }
        }
        for seq in stored.difference(&marks) {
            if !seqs_with_history.contains(seq) {
                report.problem(
                    format!("journal seq {seq}"),
                    "refers to its object's record, but has no history entry to say so",
                );
            }
        }

        for item in inner.scan_prefix(&[prefix::CURSOR])? {
            let (k, v) = item?;
            report.cursors += 1;
            if let Err(e) = record::unseal_value::<u64>(&v) {
                report.problem(
                    format!("cursor {:?}", String::from_utf8_lossy(&k[1..])),
                    e.to_string(),
                );
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::store::dictionary::ZstdContext;
    use crate::store::engine::WriteBatch;
    use crate::store::json::configmaps;
    use crate::store::record::RecordMeta;
    use crate::store::{Batch, Delta, EventKind, IndexFn, Store};

    fn cm(name: &str, rv: &str, app: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv,
               "labels": {"app": app}, "managedFields": [{"manager": "kubectl"}]},
               "data": {"k": name}})
    }

    fn store_of_two(tmp: &tempfile::TempDir) -> (Store, Collection) {
        let store = Store::open(tmp.path().join("s")).unwrap();
        let c = configmaps(&store);
        c.apply(Batch {
            deltas: vec![
                Delta::Upsert(cm("a", "1", "web")),
                Delta::Upsert(cm("b", "2", "db")),
            ],
            rv: Some("2".into()),
        })
        .unwrap();
        assert_eq!(c.verify().unwrap().problems, []);
        (store, c)
    }

    /// Writes `json` as the record at `raw_key`, sealed as the store seals
    /// (its crc matches): damage only the checks past the crc can see.
    fn overwrite(c: &Collection, raw_key: Vec<u8>, json: &[u8], rv: &str) {
        let meta = RecordMeta {
            rv: rv.into(),
            ..RecordMeta::default()
        };
        let sealed = record::seal_payload(&mut ZstdContext::new(1), json, meta, None).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(raw_key, sealed);
        c.inner.commit(batch).unwrap();
    }

    /// Object `ns/a` cut short: a sound record that holds no JSON.
    fn truncate_a(c: &Collection) {
        overwrite(c, key::object_key("ns/a"), b"{\"metadata\": {\"name\"", "1");
    }

    fn object(c: &Collection, name: &str, json: &Value, rv: &str) {
        let bytes = serde_json::to_vec(json).unwrap();
        overwrite(c, key::object_key(&format!("ns/{name}")), &bytes, rv);
    }

    fn reasons(c: &Collection) -> Vec<(String, String)> {
        let report = c.verify().unwrap();
        report
            .problems
            .into_iter()
            .map(|p| (p.key, p.reason))
            .collect()
    }

    #[test]
    fn a_record_with_a_good_checksum_but_the_wrong_contents_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (_store, c) = store_of_two(&tmp);

        truncate_a(&c);
        let found = reasons(&c);
        assert_eq!(found[0].0, "ns/a", "{found:?}");
        assert!(found[0].1.starts_with("payload is not JSON"), "{found:?}");

        object(&c, "a", &cm("b", "1", "web"), "1");
        assert!(reasons(&c).contains(&("ns/a".into(), "record holds object ns/b".into())));

        object(&c, "a", &cm("a", "5", "web"), "1");
        assert!(reasons(&c).contains(&(
            "ns/a".into(),
            r#"envelope rv "1", object rv Some("5")"#.into()
        )));

        // A label the index does not have, and an entry nothing has now.
        object(&c, "a", &cm("a", "1", "api"), "1");
        let found = reasons(&c);
        assert!(
            found.contains(&(
                "index label \"app=api\" → ns/a".into(),
                "missing entry".into()
            )),
            "{found:?}"
        );
        assert!(
            found.contains(&(
                "index label \"app=web\" → ns/a".into(),
                "entry without a matching object".into()
            )),
            "{found:?}"
        );

        object(&c, "a", &cm("a", "1", "web"), "1");
        let found = reasons(&c);
        // Only the byte counts of the state record can differ now.
        assert!(found.iter().all(|(k, _)| k == "state"), "{found:?}");
    }

    #[test]
    fn user_indexers_are_checked_against_the_whole_object() {
        let tmp = tempfile::tempdir().unwrap();
        let (_store, c) = store_of_two(&tmp);
        let by_data: IndexFn = Arc::new(|o: &Value| {
            o.pointer("/data/k")
                .and_then(Value::as_str)
                .map(|k| vec![k.to_string()])
                .unwrap_or_default()
        });
        c.add_indexer("data", by_data).unwrap();
        assert_eq!(reasons(&c), []);

        let mut changed = cm("a", "1", "web");
        changed["data"]["k"] = json!("other");
        object(&c, "a", &changed, "1");
        let found = reasons(&c);
        assert!(
            found.contains(&("index data \"other\" → ns/a".into(), "missing entry".into())),
            "{found:?}"
        );

        overwrite(&c, key::object_key("ns/a"), b"[1, 2", "1");
        let found = reasons(&c);
        assert!(
            found
                .iter()
                .any(|(k, r)| k == "ns/a" && r.starts_with("payload is not JSON")),
            "{found:?}"
        );
    }

    /// A record whose checksum holds but whose bytes are not JSON is found
    /// by the write that reads it (its patch), and is healed like any
    /// corrupt record: overwritten or removed, with its index entries.
    #[test]
    fn a_stored_object_that_is_not_json_is_healed_by_the_next_write() {
        for delete in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let (_store, c) = store_of_two(&tmp);
            truncate_a(&c);
            let a = ObjectKey::namespaced("ns", "a");
            let changes = if delete {
                c.apply(Batch {
                    deltas: vec![Delta::Delete(cm("a", "3", "web"))],
                    rv: Some("3".into()),
                })
            } else {
                c.apply(Batch {
                    deltas: vec![Delta::Upsert(cm("a", "3", "api"))],
                    rv: Some("3".into()),
                })
            }
            .unwrap();
            assert_eq!(changes.len(), 1, "delete: {delete}");
            assert_eq!(
                changes[0].old(),
                None,
                "the unreadable state is not made up"
            );
            assert!(c
                .by_index("label", "app=web")
                .unwrap()
                .iter()
                .all(|o| o["metadata"]["name"] == "b"));
            match delete {
                true => assert_eq!(c.get(&a).unwrap(), None),
                false => assert_eq!(c.get(&a).unwrap(), Some(cm("a", "3", "api"))),
            }
            assert_eq!(
                reasons(&c),
                [],
                "delete: {delete}: the store is sound again"
            );
            // a's Added entry referred to the record that was lost: it went
            // with it, and the journal reads on.
            let kinds: Vec<_> = c.history(&a).unwrap().iter().map(|e| e.kind).collect();
            let last = if delete {
                EventKind::Deleted
            } else {
                EventKind::Modified
            };
            assert_eq!(kinds, [last], "delete: {delete}");
            assert_eq!(c.journal_since(0).unwrap().len(), 2, "delete: {delete}");
        }
    }

    /// The trim reads each entry's key to drop its history entry too; an
    /// entry it cannot read is trimmed all the same, and the rest survive.
    #[test]
    fn a_corrupt_journal_entry_is_trimmed_like_a_sound_one() {
        type Damage = fn(&Collection, u64);
        let damage: [(&str, Damage); 2] = [
            ("a checksum that fails", |c, seq| {
                let mut batch = WriteBatch::default();
                batch.put(key::journal_key(seq).to_vec(), b"not a record".to_vec());
                c.inner.commit(batch).unwrap();
            }),
            ("a sound record naming no key", |c, seq| {
                let payload = br#"{"kind":"Added","key":"a/b/c","patch":{}}"#;
                overwrite(c, key::journal_key(seq).to_vec(), payload, "1");
            }),
        ];
        for (what, damage) in damage {
            let tmp = tempfile::tempdir().unwrap();
            let (_store, c) = store_of_two(&tmp);
            let meta = c.meta().unwrap();
            let (first, last) = (meta.journal_first_seq, meta.journal_last_seq);
            assert_eq!(last, first + 1, "{what}: a journal of two entries");
            damage(&c, first);
            assert!(
                c.journal_since(0).is_err(),
                "{what}: the damage is there to read"
            );

            assert_eq!(c.compact_journal(1).unwrap(), 1, "{what}");
            let meta = c.meta().unwrap();
            assert_eq!(
                (meta.journal_first_seq, meta.journal_len),
                (last, 1),
                "{what}"
            );
            let kept = c.journal_since(first).unwrap();
            assert_eq!(
                kept.iter()
                    .map(|e| (e.seq, e.key.to_string()))
                    .collect::<Vec<_>>(),
                [(last, "ns/b".to_string())],
                "{what}"
            );
            // The trimmed entry's history entry may stay behind: history
            // reads through it.
            assert_eq!(
                c.history(&ObjectKey::namespaced("ns", "a")).unwrap().len(),
                0
            );
            assert_eq!(
                c.history(&ObjectKey::namespaced("ns", "b")).unwrap().len(),
                1
            );
            assert_eq!(
                c.get(&ObjectKey::namespaced("ns", "a")).unwrap(),
                Some(cm("a", "1", "web")),
                "{what}: the objects are untouched"
            );
        }
    }

    #[test]
    fn a_journal_entry_that_is_not_a_change_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (_store, c) = store_of_two(&tmp);
        let seq = c.meta().unwrap().journal_last_seq;

        let entry = |payload: &str| {
            overwrite(&c, key::journal_key(seq).to_vec(), payload.as_bytes(), "2");
            reasons(&c)
        };
        let found = entry(r#"{"kind":"Resync","key":"ns/b","patch":{"data":{}}}"#);
        assert!(
            found
                .iter()
                .any(|(k, r)| k == &format!("journal seq {seq}") && r.contains("kind Resync")),
            "{found:?}"
        );
        let found = entry(r#"{"kind":"Added","key":"ns/b","patch":{"data":"#);
        assert!(
            found.iter().any(|(k, r)| k == &format!("journal seq {seq}")
                && r.starts_with("payload does not parse")),
            "{found:?}"
        );
        let found = entry(r#"{"kind":"Added","key":"a/b/c","patch":{}}"#);
        assert!(
            found.iter().any(|(k, r)| k == &format!("journal seq {seq}")
                && r.starts_with("journal key \"a/b/c\"")),
            "{found:?}"
        );
        // What a reader refuses, the check names too.
        for (payload, why) in [
            (r#"{"kind":"Added","key":"ns/b"}"#, "holds no patch"),
            (
                r#"{"kind":"Modified","key":"ns/b","object":"stored"}"#,
                "only Added entries do",
            ),
            (
                r#"{"kind":"Added","key":"ns/b","object":"elsewhere"}"#,
                "holds object \"elsewhere\"",
            ),
            (
                r#"{"kind":"Added","key":"ns/b","patch":null,"object":"stored"}"#,
                "both a patch and an object",
            ),
        ] {
            let found = entry(payload);
            assert!(
                found
                    .iter()
                    .any(|(k, r)| k == &format!("journal seq {seq}") && r.contains(why)),
                "{payload}: {found:?}"
            );
            assert!(c.journal_since(0).is_err(), "{payload}");
        }
        let found = entry(r#"{"kind":"Added","key":"ns/b","patch":{"metadata":{"name":"b"}}}"#);
        assert!(
            found.iter().all(|(k, _)| k == "state"),
            "a well-formed entry is not damage: {found:?}"
        );
    }

    #[test]
    fn a_reference_to_a_record_that_moved_on_or_without_its_mark_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (_store, c) = store_of_two(&tmp);
        // Both Added entries refer to their records.
        assert_eq!(
            c.inner
                .get(&key::history_entry("ns/a", 1))
                .unwrap()
                .unwrap(),
            journal::REFERS_TO_OBJECT
        );

        // a's record replaced behind the store's back, its entry not given
        // the object first.
        object(&c, "a", &cm("a", "5", "web"), "5");
        let found = reasons(&c);
        assert!(
            found.contains(&(
                "journal seq 1".to_string(),
                "refers to the record of ns/a at resourceVersion 1, which is at 5".to_string()
            )),
            "{found:?}"
        );
        let err = c.history(&ObjectKey::namespaced("ns", "a")).unwrap_err();
        assert!(err.to_string().contains("journal seq 1"), "{err}");

        // b's mark lost: the next write of b would not give the entry its object.
        let mut batch = WriteBatch::default();
        batch.put(key::history_entry("ns/b", 2), []);
        c.inner.commit(batch).unwrap();
        let found = reasons(&c);
        assert!(
            found.contains(&(
                "history of journal seq 2".to_string(),
                "does not mark an entry that refers to its object's record".to_string()
            )),
            "{found:?}"
        );
        let mut batch = WriteBatch::default();
        batch.delete(key::history_entry("ns/b", 2));
        c.inner.commit(batch).unwrap();
        let found = reasons(&c);
        assert!(
            found.contains(&(
                "journal seq 2".to_string(),
                "refers to its object's record, but has no history entry to say so".to_string()
            )),
            "{found:?}"
        );
    }
}
