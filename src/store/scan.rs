//! Reading a collection record by record, for readers whose job is to get
//! data out (export, listing a damaged store): one bad record must cost that
//! record, not everything after it.

use serde_json::Value;

use super::collection::Collection;
use super::error::Result;
use super::key::{self, prefix};
use super::ObjectKey;

impl Collection {
    /// Every object, in key order (namespace by namespace, then by name),
    /// one result per record. A record that fails its checksum or cannot be
    /// decoded yields [`Error::Corrupt`](super::Error::Corrupt) naming its key, and the scan goes
    /// on with the next record; [`Collection::list`] stops at the first
    /// instead. An error of the storage engine itself is yielded as it
    /// comes; the caller decides whether to go on.
    ///
    /// Records are decoded lazily, one at a time, so exporting a large
    /// collection holds one object in memory, not all of them.
    pub fn scan(&self) -> impl Iterator<Item = Result<(ObjectKey, Value)>> {
        let records = match self.inner.scan_prefix(&[prefix::OBJECT]) {
            Ok(records) => records,
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        let inner = self.inner.clone();
        records.map(move |item| {
            let (raw_key, bytes) = item?;
            let key = key::object_key_from(&raw_key);
            let object = inner.read_object(&key, &bytes)?;
            let parsed = key
                .parse::<ObjectKey>()
                .map_err(|e| inner.corrupt_by(&key, "unreadable object key", e))?;
            Ok((parsed, object))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Batch, Delta, Error, Store};
    use serde_json::json;

    #[test]
    fn a_corrupt_record_costs_only_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("s")).unwrap();
        let c = crate::store::json::configmaps(&store);
        let cm = |name: &str| json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"}});
        c.apply(Batch {
            deltas: ["a", "b", "c"].map(|n| Delta::Upsert(cm(n))).into(),
            rv: Some("1".into()),
        })
        .unwrap();
        crate::store::damage_record(&c, "ns/b");

        let results: Vec<_> = c.scan().collect();
        assert_eq!(results.len(), 3);
        let names: Vec<_> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|(k, v)| (k.name.clone(), v["metadata"]["name"].clone()))
            .collect();
        assert_eq!(names, [("a".into(), json!("a")), ("c".into(), json!("c"))]);
        match &results[1] {
            Err(Error::Corrupt { key, .. }) => assert_eq!(key, "ns/b"),
            other => panic!("{other:?}"),
        }
        assert!(c.list().is_err(), "list still refuses a partial view");
    }
}
