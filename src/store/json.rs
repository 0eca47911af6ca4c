//! Reading objects as the JSON bytes they are stored as, for readers that
//! deserialize into their own types: no `serde_json::Value` is built.

use std::sync::PoisonError;

use super::collection::{Collection, Inner};
use super::error::{Error, Result};
use super::index::{LABEL_INDEX, NAMESPACE_INDEX};
use super::key::{self, prefix};
use super::record;
use super::ObjectKey;

/// One stored object: its key, resourceVersion and JSON, checksum-verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonObject {
    /// Which object.
    pub key: ObjectKey,
    /// Its resourceVersion, from the record's envelope.
    pub rv: String,
    /// The object as the API server serialized it (after the informer's
    /// transform).
    pub json: Vec<u8>,
}

impl Inner {
    fn json_object(&self, raw_key: &[u8], bytes: &[u8]) -> Result<JsonObject> {
        let key_str = key::object_key_from(raw_key);
        let (envelope, json) = self.damage.check(self.open_record(&key_str, bytes))?;
        let key = key_str
            .parse::<ObjectKey>()
            .map_err(|e| self.corrupt_by(&key_str, "unreadable object key", e))?;
        Ok(JsonObject {
            key,
            rv: envelope.rv,
            json,
        })
    }
}

impl Collection {
    /// One object's JSON, checksum-verified; `None` if absent.
    pub fn get_json(&self, key: &ObjectKey) -> Result<Option<JsonObject>> {
        let raw = key::object_key(&key.encode());
        match self.inner.get(&raw)? {
            None => Ok(None),
            Some(bytes) => self.inner.json_object(&raw, &bytes).map(Some),
        }
    }

    /// One object's resourceVersion, checksum-verified, without
    /// decompressing it: what a cache of decoded objects checks its entries
    /// against. `None` if absent.
    pub fn object_rv(&self, key: &ObjectKey) -> Result<Option<String>> {
        let key_str = key.encode();
        match self.inner.get(&key::object_key(&key_str))? {
            None => Ok(None),
            Some(bytes) => record::decode_rv(&bytes)
                .map(Some)
                .map_err(|e| self.inner.undecodable(&key_str, e)),
        }
    }

    /// Every object's JSON in key order, or one namespace's (empty when it
    /// has none, or the name cannot be a namespace: I6). Decoded one record
    /// at a time, so a caller that does not keep them holds one.
    pub fn scan_json(
        &self,
        namespace: Option<&str>,
    ) -> Box<dyn Iterator<Item = Result<JsonObject>> + Send> {
        let pfx = match namespace {
            None => vec![prefix::OBJECT],
            Some(ns) if ns.is_empty() || ns.contains('/') => return Box::new(std::iter::empty()),
            Some(ns) => key::namespace_prefix(ns),
        };
        let records = match self.inner.scan_prefix(&pfx) {
            Ok(records) => records,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let inner = self.inner.clone();
        Box::new(records.map(move |item| {
            let (k, v) = item?;
            inner.json_object(&k, &v)
        }))
    }

    /// The keys of the objects whose index `index` holds `value`, in key
    /// order: what [`Collection::by_index`] reads, without the objects.
    pub fn index_keys(&self, index: &str, value: &str) -> Result<Vec<ObjectKey>> {
        let inner = &self.inner;
        let parse = |s: &str| {
            s.parse::<ObjectKey>()
                .map_err(|e| inner.corrupt_by(s, "unreadable object key", e))
        };
        if index == NAMESPACE_INDEX {
            if value.is_empty() || value.contains('/') {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            for item in inner.scan_prefix(&key::namespace_prefix(value))? {
                out.push(parse(&key::object_key_from(&item?.0))?);
            }
            return Ok(out);
        }
        let registered = index == LABEL_INDEX
            || inner
                .indexers
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(index);
        if !registered {
            return Err(Error::UnknownIndex {
                collection: inner.name.clone(),
                index: index.to_string(),
            });
        }
        let pfx = key::index_prefix(index, value);
        let mut out = Vec::new();
        for item in inner.scan_prefix(&pfx)? {
            let (k, _) = item?;
            out.push(parse(&String::from_utf8_lossy(&k[pfx.len()..]))?);
        }
        Ok(out)
    }
}

/// A configmaps collection in `store`, for the store's unit tests.
#[cfg(test)]
pub(crate) fn configmaps(store: &super::Store) -> Collection {
    store
        .collection(&super::CollectionId {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            kind: "ConfigMap".into(),
            namespaced: true,
            namespace: None,
            label_selector: None,
            field_selector: None,
        })
        .unwrap()
}

/// Flips a byte in the middle of the stored record of `key` (`ns/name`),
/// past its checksum, as a damaged disk would: for the store's unit tests.
#[cfg(test)]
pub(crate) fn damage_record(c: &Collection, key: &str) {
    let raw = super::key::object_key(key);
    let mut bytes = c.inner.get(&raw).unwrap().unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let mut batch = super::engine::WriteBatch::default();
    batch.put(raw, bytes);
    c.inner.commit(batch).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, Delta, Store};
    use serde_json::{json, Value};

    fn cm(ns: &str, name: &str, rv: &str, app: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "resourceVersion": rv, "labels": {"app": app}}, "data": {"k": name}})
    }

    #[test]
    fn json_reads_match_value_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("s")).unwrap();
        let c = configmaps(&store);
        c.apply(Batch {
            deltas: vec![
                Delta::Upsert(cm("a", "x", "1", "web")),
                Delta::Upsert(cm("a", "y", "2", "db")),
                Delta::Upsert(cm("b", "x", "3", "web")),
            ],
            rv: Some("3".into()),
        })
        .unwrap();
        let key = ObjectKey::namespaced("a", "y");
        let got = c.get_json(&key).unwrap().unwrap();
        assert_eq!((got.key.clone(), got.rv.as_str()), (key.clone(), "2"));
        let parsed: Value = serde_json::from_slice(&got.json).unwrap();
        assert_eq!(Some(parsed), c.get(&key).unwrap());
        assert_eq!(c.object_rv(&key).unwrap().as_deref(), Some("2"));
        assert!(c
            .get_json(&ObjectKey::namespaced("a", "z"))
            .unwrap()
            .is_none());
        assert!(c
            .object_rv(&ObjectKey::namespaced("a", "z"))
            .unwrap()
            .is_none());

        let keys = |it: Box<dyn Iterator<Item = Result<JsonObject>> + Send>| {
            it.map(|r| r.unwrap().key.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(keys(c.scan_json(None)), ["a/x", "a/y", "b/x"]);
        assert_eq!(keys(c.scan_json(Some("a"))), ["a/x", "a/y"]);
        assert!(keys(c.scan_json(Some("nope"))).is_empty());
        assert!(keys(c.scan_json(Some(""))).is_empty());

        let strs = |v: Vec<ObjectKey>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            strs(c.index_keys("label", "app=web").unwrap()),
            ["a/x", "b/x"]
        );
        assert_eq!(strs(c.index_keys("namespace", "b").unwrap()), ["b/x"]);
        assert!(c.index_keys("namespace", "a/").unwrap().is_empty());
        assert!(matches!(
            c.index_keys("by-owner", "x"),
            Err(Error::UnknownIndex { .. })
        ));
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_its_key() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("s")).unwrap();
        let c = configmaps(&store);
        c.apply(Batch {
            deltas: vec![Delta::Upsert(cm("a", "x", "1", "web"))],
            rv: Some("1".into()),
        })
        .unwrap();
        damage_record(&c, "a/x");
        let key = ObjectKey::namespaced("a", "x");
        for err in [
            c.get_json(&key).unwrap_err(),
            c.object_rv(&key).unwrap_err(),
            c.scan_json(None).next().unwrap().unwrap_err(),
        ] {
            match err {
                Error::Corrupt { key, .. } => assert_eq!(key, "a/x"),
                other => panic!("{other:?}"),
            }
        }
    }
}
