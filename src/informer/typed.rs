//! Typed reads: the informer's objects as `K`, deserialized straight from
//! the stored JSON bytes (no `serde_json::Value` in between).
//!
//! [`Informer::typed`] gives a [`TypedReader<K>`], the counterpart of
//! kube-runtime's `reflector::Store<K>`: a cheap, cloneable handle whose
//! reads return `Arc<K>`. The informer itself stays untyped, because its
//! write path never needs `K` and resources known only at run time
//! ([`Informer::dynamic`] gives `TypedReader<DynamicObject>`) use the same
//! informer. A small cache of recently decoded objects, bounded in bytes,
//! answers repeated reads of an unchanged object without decoding it again;
//! every hit is checked against the stored record's resourceVersion first,
//! so the cache never serves a version the store no longer holds.
//!
//! ```no_run
//! # fn demo(informer: &kube_persist::informer::Informer) -> Result<(), kube_persist::informer::ReadError> {
//! use k8s_openapi::api::core::v1::Pod;
//! use kube_persist::ObjectKey;
//!
//! let pods = informer.typed::<Pod>()?;
//! if let Some(pod) = pods.get(&ObjectKey::namespaced("default", "web-0"))? {
//!     println!("{:?}", pod.status.as_ref().and_then(|s| s.phase.as_deref()));
//! }
//! let running = pods.list_namespace("default")?.len();
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::core::{ApiResource, DynamicObject, TypeMeta};
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use serde::de::DeserializeOwned;

use super::{Informer, Reader, Shared};
use crate::store::{self, Collection, JsonObject, ObjectKey};

/// Bytes of decoded objects a reader caches unless told otherwise.
pub const DEFAULT_CACHE_BYTES: usize = 8 << 20;

/// Errors of typed reads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The store failed (I/O, a corrupt record: named by its key).
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A stored object is not a valid `K`.
    #[error("collection {collection}: object {key} does not deserialize as {kind}: {source}")]
    Decode {
        /// The collection read.
        collection: String,
        /// The object.
        key: ObjectKey,
        /// The type it was read as.
        kind: String,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
    /// The informer watches another resource than the type asked for.
    #[error("the informer holds {holds}; it cannot be read as {wanted}")]
    WrongResource {
        /// `group/version kind` the informer watches.
        holds: String,
        /// `group/version kind` asked for.
        wanted: String,
    },
}

/// Result type of typed reads.
pub type ReadResult<T> = std::result::Result<T, ReadError>;

/// Reads an informer's objects as `K`. Clones share one cache.
pub struct TypedReader<K: Resource> {
    reader: Reader,
    dyntype: K::DynamicType,
    /// Completes what the stored JSON may lack (a `DynamicObject`'s type
    /// fields: list items carry no apiVersion/kind).
    fill: fn(&mut K, &K::DynamicType),
    cache: Arc<Mutex<Cache<K>>>,
}

impl<K: Resource> Clone for TypedReader<K>
where
    K::DynamicType: Clone,
{
    fn clone(&self) -> Self {
        TypedReader {
            reader: self.reader.clone(),
            dyntype: self.dyntype.clone(),
            fill: self.fill,
            cache: self.cache.clone(),
        }
    }
}

impl Informer {
    /// A typed reader of this informer's objects: `informer.typed::<Pod>()`.
    /// Fails with [`ReadError::WrongResource`] when the informer watches
    /// another resource.
    pub fn typed<K>(&self) -> ReadResult<TypedReader<K>>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        TypedReader::new(self.shared.clone(), (), |_, _| {})
    }

    /// A reader of this informer's objects as [`DynamicObject`]s of the
    /// resource `api`, for resources known only at run time. Objects whose
    /// stored JSON lacks `apiVersion`/`kind` get them from `api`.
    pub fn dynamic(&self, api: &ApiResource) -> ReadResult<TypedReader<DynamicObject>> {
        TypedReader::new(
            self.shared.clone(),
            api.clone(),
            |obj: &mut DynamicObject, api: &ApiResource| {
                if obj.types.is_none() {
                    obj.types = Some(TypeMeta {
                        api_version: api.api_version.clone(),
                        kind: api.kind.clone(),
                    });
                }
            },
        )
    }
}

impl<K> TypedReader<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    /// A typed reader of a collection no informer runs: a store opened by a
    /// tool, or read-only ([`crate::Store::open_read_only`]).
    pub fn of_collection(collection: Collection) -> ReadResult<Self> {
        let now = std::time::Instant::now();
        let shared = Shared {
            collection,
            state: tokio::sync::watch::Sender::new(super::State::Empty),
            rv: tokio::sync::watch::Sender::new(None),
            events: tokio::sync::broadcast::Sender::new(1),
            metrics: super::Metrics::new(Arc::default()),
            started: now,
            failures: Default::default(),
        };
        TypedReader::new(Arc::new(shared), (), |_, _| {})
    }
}

/// `group/version kind`, as errors name a resource.
fn gvk(group: &str, version: &str, kind: &str) -> String {
    if group.is_empty() {
        format!("{version} {kind}")
    } else {
        format!("{group}/{version} {kind}")
    }
}

impl<K> TypedReader<K>
where
    K: Resource + DeserializeOwned,
{
    fn new(
        shared: Arc<Shared>,
        dyntype: K::DynamicType,
        fill: fn(&mut K, &K::DynamicType),
    ) -> ReadResult<Self> {
        let id = shared.collection.id();
        let (group, version, kind) = (K::group(&dyntype), K::version(&dyntype), K::kind(&dyntype));
        if id.group != group || id.version != version || id.kind != kind {
            return Err(ReadError::WrongResource {
                holds: gvk(&id.group, &id.version, &id.kind),
                wanted: gvk(&group, &version, &kind),
            });
        }
        Ok(TypedReader {
            reader: Reader::new(shared),
            dyntype,
            fill,
            cache: Arc::new(Mutex::new(Cache::new(DEFAULT_CACHE_BYTES))),
        })
    }

    /// The same reader with a cache of at most `bytes` of decoded objects
    /// (measured by their JSON size), shared by its clones; 0 turns caching
    /// off.
    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache = Arc::new(Mutex::new(Cache::new(bytes)));
        self
    }

    /// The collection read.
    pub fn collection(&self) -> &Reader {
        &self.reader
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.reader.shared()
    }

    /// The resource's dynamic type (`()` for k8s-openapi types).
    pub fn dyntype(&self) -> &K::DynamicType {
        &self.dyntype
    }

    /// Decodes one stored object as `K`.
    pub fn decode(&self, object: &JsonObject) -> ReadResult<K> {
        let mut obj: K =
            serde_json::from_slice(&object.json).map_err(|source| ReadError::Decode {
                collection: self.reader.collection().name().to_string(),
                key: object.key.clone(),
                kind: K::kind(&self.dyntype).into_owned(),
                source,
            })?;
        (self.fill)(&mut obj, &self.dyntype);
        Ok(obj)
    }

    /// One object; `None` if the store does not hold it.
    pub fn get(&self, key: &ObjectKey) -> ReadResult<Option<Arc<K>>> {
        let collection = &self.reader.collection();
        if self.cache_enabled() {
            let Some(rv) = collection.object_rv(key)? else {
                self.lock_cache().remove(key);
                return Ok(None);
            };
            if let Some(hit) = self.lock_cache().get(key, &rv) {
                return Ok(Some(hit));
            }
        }
        let Some(object) = collection.get_json(key)? else {
            return Ok(None);
        };
        let decoded = Arc::new(self.decode(&object)?);
        if self.cache_enabled() {
            self.lock_cache()
                .insert(object.key, object.rv, object.json.len(), decoded.clone());
        }
        Ok(Some(decoded))
    }

    /// The object an [`ObjectRef`] names.
    pub fn get_ref(&self, obj_ref: &ObjectRef<K>) -> ReadResult<Option<Arc<K>>>
    where
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        self.get(&ObjectKey::from(obj_ref))
    }

    /// Every object, in key order. Fails on the first object that cannot be
    /// read as `K`, naming it, rather than return a partial list.
    pub fn list(&self) -> ReadResult<Vec<Arc<K>>> {
        self.decode_all(self.reader.collection().scan_json(None))
    }

    /// The objects of one namespace (empty when it has none, I6).
    pub fn list_namespace(&self, namespace: &str) -> ReadResult<Vec<Arc<K>>> {
        self.decode_all(self.reader.collection().scan_json(Some(namespace)))
    }

    /// The objects an index maps `value` to (built in: `namespace`, `label`
    /// with `key=value`; others registered on the informer's builder).
    pub fn by_index(&self, index: &str, value: &str) -> ReadResult<Vec<Arc<K>>> {
        let keys = self.reader.collection().index_keys(index, value)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match self.get(&key)? {
                Some(obj) => out.push(obj),
                None => {
                    tracing::warn!(collection = %self.reader.collection().name(), index, value, %key, "index entry without object")
                }
            }
        }
        Ok(out)
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.reader.collection().len()
    }

    /// Whether the informer holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn decode_all(
        &self,
        objects: impl Iterator<Item = store::Result<JsonObject>>,
    ) -> ReadResult<Vec<Arc<K>>> {
        objects
            .map(|object| Ok(Arc::new(self.decode(&object?)?)))
            .collect()
    }

    fn cache_enabled(&self) -> bool {
        self.lock_cache().budget > 0
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache<K>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Resource> From<&ObjectRef<K>> for ObjectKey
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn from(r: &ObjectRef<K>) -> ObjectKey {
        ObjectKey {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        }
    }
}

/// A decoded object and what it was decoded from.
struct Cached<K> {
    rv: String,
    cost: usize,
    object: Arc<K>,
}

/// Recently read objects, bounded by the JSON size they were decoded from.
///
/// Two generations: entries go into `young`; when `young` reaches half the
/// budget it becomes `old` and the previous `old` is dropped; a hit in `old`
/// moves the entry back to `young`. Objects read again within a generation
/// stay, the rest age out: close to LRU at O(1) per read, with at most
/// `budget` bytes held.
struct Cache<K> {
    budget: usize,
    young: HashMap<ObjectKey, Cached<K>>,
    young_cost: usize,
    old: HashMap<ObjectKey, Cached<K>>,
}

impl<K> Cache<K> {
    fn new(budget: usize) -> Self {
        Cache {
            budget,
            young: HashMap::new(),
            young_cost: 0,
            old: HashMap::new(),
        }
    }

    fn get(&mut self, key: &ObjectKey, rv: &str) -> Option<Arc<K>> {
        if let Some(c) = self.young.get(key) {
            if c.rv == rv {
                return Some(c.object.clone());
            }
        }
        let entry = self.old.remove(key)?;
        if entry.rv != rv {
            return None;
        }
        let object = entry.object.clone();
        self.insert(key.clone(), entry.rv, entry.cost, entry.object);
        Some(object)
    }

    fn insert(&mut self, key: ObjectKey, rv: String, cost: usize, object: Arc<K>) {
        // An object bigger than a generation would evict everything else.
        if cost > self.budget / 2 {
            self.remove(&key);
            return;
        }
        if self.young_cost + cost > self.budget / 2 {
            self.old = std::mem::take(&mut self.young);
            self.young_cost = 0;
        }
        self.old.remove(&key);
        if let Some(prev) = self.young.insert(key, Cached { rv, cost, object }) {
            self.young_cost -= prev.cost;
        }
        self.young_cost += cost;
    }

    fn remove(&mut self, key: &ObjectKey) {
        if let Some(prev) = self.young.remove(key) {
            self.young_cost -= prev.cost;
        }
        self.old.remove(key);
    }

    #[cfg(test)]
    fn cost(&self) -> usize {
        self.young_cost + self.old.values().map(|c| c.cost).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> ObjectKey {
        ObjectKey::namespaced("ns", format!("o{i}"))
    }

    #[test]
    fn the_cache_stays_within_its_budget_and_keeps_what_is_read_again() {
        let mut c: Cache<usize> = Cache::new(1000);
        for i in 0..500 {
            c.insert(key(i), "1".into(), 10, Arc::new(i));
            // Object 0 is read all the time; it never ages out.
            assert_eq!(c.get(&key(0), "1").as_deref(), Some(&0));
            assert!(c.cost() <= 1000, "{} bytes held", c.cost());
        }
        assert!(c.get(&key(1), "1").is_none(), "a cold object aged out");
        assert_eq!(c.get(&key(499), "1").as_deref(), Some(&499));
    }

    #[test]
    fn a_changed_version_misses_and_oversized_objects_are_not_kept() {
        let mut c: Cache<usize> = Cache::new(1000);
        c.insert(key(1), "1".into(), 10, Arc::new(1));
        assert!(c.get(&key(1), "2").is_none());
        c.insert(key(1), "2".into(), 10, Arc::new(2));
        assert_eq!(c.get(&key(1), "2").as_deref(), Some(&2));
        c.insert(key(1), "3".into(), 600, Arc::new(3));
        assert!(c.get(&key(1), "2").is_none() && c.get(&key(1), "3").is_none());
        assert_eq!(c.cost(), 0);
    }
}
