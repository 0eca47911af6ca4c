//! One collection: reads, and `apply`, the single write path.
//!
//! Every `apply` builds ONE sled batch holding the object records, their
//! index entries, the journal entries (plus their history-index entries),
//! any newly trained dictionary and the new state record (last RV), applies
//! it with `Tree::apply_batch` (atomic, also across crashes) and flushes
//! before returning. Writers are serialized per collection; readers never
//! block on the write lock.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde_json::Value;

use super::dictionary::{Dictionary, ZstdContext};
use super::error::{Error, Result};
use super::index::{self, LABEL_INDEX, NAMESPACE_INDEX};
use super::journal::{self, merge_diff};
use super::key::{self, prefix};
use super::record::{self, Envelope, RecordMeta};
use super::state::{self, State, STATE_LAYOUT};
use super::{
    Batch, Change, ChangeKind, CollectionId, CollectionMeta, Delta, IndexFn, ObjectKey, Shared,
};

/// One collection of an open store.
#[derive(Clone)]
pub struct Collection {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub id: CollectionId,
    pub name: String,
    pub tree: sled::Tree,
    pub shared: Arc<Shared>,
    /// Serializes writers (apply, add_indexer, compaction).
    pub write: Mutex<()>,
    /// The committed state; replaced only after a batch is durable.
    pub state: RwLock<State>,
    pub indexers: RwLock<BTreeMap<String, IndexFn>>,
    pub dictionaries: RwLock<HashMap<u32, Arc<Dictionary>>>,
}

thread_local! {
    /// Readers reuse one decompression context per thread.
    static READ_CTX: RefCell<ZstdContext> = RefCell::new(ZstdContext::new(0));
}

/// An object as read back, with what the counters need to know about it.
pub(crate) struct Stored {
    pub value: Value,
    pub envelope: Envelope,
    pub record_len: u64,
}

/// The previous state of a key while a batch is being built.
#[derive(Clone)]
enum Prior {
    Absent,
    Present {
        value: Arc<Value>,
        record_len: u64,
        raw_len: u64,
    },
    /// A record is there but unreadable: it is overwritten or removed, and
    /// its index entries found by scanning.
    Corrupt {
        record_len: u64,
    },
}

impl Inner {
    pub(crate) fn open(
        shared: Arc<Shared>,
        id: CollectionId,
        name: String,
        tree: sled::Tree,
    ) -> Result<Inner> {
        let state = match tree.get(key::state_key())? {
            None => State::default(),
            Some(bytes) => decode_state(&name, &bytes)?,
        };
        Ok(Inner {
            id,
            name,
            tree,
            shared,
            write: Mutex::new(()),
            state: RwLock::new(state),
            indexers: RwLock::new(BTreeMap::new()),
            dictionaries: RwLock::new(HashMap::new()),
        })
    }

    pub(crate) fn corrupt(&self, key: impl Into<String>, reason: impl ToString) -> Error {
        Error::corrupt(&self.name, key, reason.to_string())
    }

    pub(crate) fn state(&self) -> State {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn dictionary(&self, id: u32) -> Result<Arc<Dictionary>> {
        if let Some(d) = self
            .dictionaries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(d.clone());
        }
        let name = format!("dictionary {id}");
        let bytes = self
            .tree
            .get(key::dictionary_key(id))?
            .ok_or_else(|| self.corrupt(&name, "missing"))?;
        let body = record::unseal(&bytes).map_err(|e| self.corrupt(&name, e))?;
        let dict = Dictionary::new(id, body.to_vec(), self.shared.options.compression_level)
            .map_err(|e| self.corrupt(&name, e))?;
        let dict = Arc::new(dict);
        self.dictionaries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, dict.clone());
        Ok(dict)
    }

    /// Decodes a record (crc, envelope, payload) into its JSON bytes.
    pub(crate) fn open_record(&self, what: &str, bytes: &[u8]) -> Result<(Envelope, Vec<u8>)> {
        let (envelope, payload) = record::decode(bytes).map_err(|e| self.corrupt(what, e))?;
        let dict = match envelope.codec {
            record::Codec::Zstd => None,
            record::Codec::ZstdDictionary => Some(self.dictionary(envelope.dictionary)?),
        };
        let raw = READ_CTX
            .with(|ctx| {
                record::open_payload(&mut ctx.borrow_mut(), &envelope, payload, dict.as_deref())
            })
            .map_err(|e| self.corrupt(what, e))?;
        Ok((envelope, raw))
    }

    pub(crate) fn decode_object(&self, key: &str, bytes: &[u8]) -> Result<Stored> {
        let (envelope, raw) = self.open_record(key, bytes)?;
        let value = serde_json::from_slice(&raw)
            .map_err(|e| self.corrupt(key, format!("payload is not JSON: {e}")))?;
        Ok(Stored {
            value,
            envelope,
            record_len: bytes.len() as u64,
        })
    }

    fn get_raw(&self, key: &str) -> Result<Option<Stored>> {
        match self.tree.get(key::object_key(key))? {
            None => Ok(None),
            Some(bytes) => self.decode_object(key, &bytes).map(Some),
        }
    }

    fn scan_objects(&self, prefix: &[u8]) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix) {
            let (k, v) = item?;
            out.push(self.decode_object(&key::object_key_from(&k), &v)?.value);
        }
        Ok(out)
    }

    /// Every index entry naming `object_key`, found by scanning: only used
    /// when the object's own record is unreadable.
    fn scan_index_entries_of(&self, object_key: &str) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([prefix::INDEX]) {
            let (k, _) = item?;
            if key::parse_index_entry(&k).is_some_and(|(_, _, key)| key == object_key) {
                out.push(k.to_vec());
            }
        }
        Ok(out)
    }

    fn prior(&self, key: &str) -> Result<Prior> {
        let Some(bytes) = self.tree.get(key::object_key(key))? else {
            return Ok(Prior::Absent);
        };
        match self.decode_object(key, &bytes) {
            Ok(stored) => Ok(Prior::Present {
                raw_len: stored.envelope.raw_len as u64,
                record_len: stored.record_len,
                value: Arc::new(stored.value),
            }),
            Err(Error::Corrupt { reason, .. }) => {
                tracing::warn!(collection = %self.name, key, %reason, "overwriting a corrupt record");
                Ok(Prior::Corrupt {
                    record_len: bytes.len() as u64,
                })
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn flush(&self) -> Result<()> {
        self.shared.db.flush()?;
        Ok(())
    }
}

pub(crate) fn decode_state(collection: &str, bytes: &[u8]) -> Result<State> {
    let layout = bytes.first().copied();
    if layout != Some(STATE_LAYOUT) {
        return Err(Error::corrupt(
            collection,
            "state",
            format!("state layout {layout:?}, expected {STATE_LAYOUT} (unmigrated store?)"),
        ));
    }
    record::unseal_value(bytes).map_err(|e| Error::corrupt(collection, "state", e.to_string()))
}

/// What an apply has to know about each object it writes.
struct Validated {
    key: ObjectKey,
    key_str: String,
    rv: String,
}

impl Collection {
    /// The identity this collection was opened with.
    pub fn id(&self) -> &CollectionId {
        &self.inner.id
    }

    /// The collection's name in the store (and in error messages).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What the store knows about the collection, without reading objects.
    pub fn meta(&self) -> Result<CollectionMeta> {
        let s = self.inner.state();
        Ok(CollectionMeta {
            schema_version: self.inner.shared.schema_version,
            last_rv: s.last_rv,
            last_sync: s.last_sync_ms.map(state::time_of),
            dictionary_id: (s.dictionary != 0).then_some(s.dictionary),
            objects: s.objects,
            dictionaries: s.dictionary,
            stored_bytes: s.stored_bytes,
            raw_bytes: s.raw_bytes,
            journal_first_seq: s.journal_first,
            journal_last_seq: s.last_seq,
            journal_len: s.journal_len,
            journal_bytes: s.journal_bytes,
        })
    }

    /// The last resourceVersion applied: it covers exactly the stored objects.
    pub fn last_rv(&self) -> Result<Option<String>> {
        Ok(self.inner.state().last_rv)
    }

    /// Registers a user index and (re)builds it from the stored objects, in
    /// one atomic batch. Index functions are code, not data: register them
    /// again after every open. Until then the index is not served.
    pub fn add_indexer(&self, name: &str, f: IndexFn) -> Result<()> {
        index::check_user_index_name(name).map_err(Error::InvalidArgument)?;
        let inner = &self.inner;
        let _w = inner.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = sled::Batch::default();
        for item in inner.tree.scan_prefix(key::index_name_prefix(name)) {
            batch.remove(item?.0);
        }
        for item in inner.tree.scan_prefix([prefix::OBJECT]) {
            let (k, v) = item?;
            let key_str = key::object_key_from(&k);
            match inner.decode_object(&key_str, &v) {
                Ok(stored) => {
                    for value in f(&stored.value) {
                        batch.insert(key::index_entry(name, &value, &key_str), &[]);
                    }
                }
                // Unreadable objects are not served; their entries come with the heal.
                Err(Error::Corrupt { reason, .. }) => {
                    tracing::warn!(collection = %inner.name, key = key_str, %reason, "not indexing a corrupt record")
                }
                Err(e) => return Err(e),
            }
        }
        inner.tree.apply_batch(batch)?;
        inner.flush()?;
        inner
            .indexers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), f);
        Ok(())
    }

    /// One object, checksum-verified; `None` if absent.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Value>> {
        Ok(self.inner.get_raw(&key.encode())?.map(|s| s.value))
    }

    /// Every object, in key order. Fails on the first corrupt record rather
    /// than serve a partial view as if it were whole.
    pub fn list(&self) -> Result<Vec<Value>> {
        self.inner.scan_objects(&[prefix::OBJECT])
    }

    /// The objects of one namespace, in key order; empty (not an error) when
    /// the namespace has none (I6).
    pub fn list_namespace(&self, namespace: &str) -> Result<Vec<Value>> {
        if namespace.is_empty() || namespace.contains('/') {
            return Ok(Vec::new());
        }
        self.inner.scan_objects(&key::namespace_prefix(namespace))
    }

    /// The objects whose index `index` holds `value`, in key order. Built in:
    /// `namespace` and `label` (`key=value`); others via [`Self::add_indexer`].
    pub fn by_index(&self, index: &str, value: &str) -> Result<Vec<Value>> {
        let inner = &self.inner;
        if index == NAMESPACE_INDEX {
            return self.list_namespace(value);
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
        for item in inner.tree.scan_prefix(&pfx) {
            let (k, _) = item?;
            let object_key = String::from_utf8_lossy(&k[pfx.len()..]).into_owned();
            match inner.get_raw(&object_key)? {
                Some(s) => out.push(s.value),
                // Cannot happen short of disk damage (entries and objects are
                // written in one batch); `verify` reports it.
                None => {
                    tracing::warn!(collection = %inner.name, index, value, key = object_key, "index entry without object")
                }
            }
        }
        Ok(out)
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.inner.state().objects as usize
    }

    /// Whether the collection holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// key → the object's resourceVersion, from the record envelopes (crc
    /// checked, nothing decompressed). A corrupt record is left out, so a
    /// relist diff sees it as missing and re-writes it: that is the heal.
    pub fn versions(&self) -> Result<HashMap<ObjectKey, String>> {
        let inner = &self.inner;
        let mut out = HashMap::with_capacity(self.len());
        for item in inner.tree.scan_prefix([prefix::OBJECT]) {
            let (k, v) = item?;
            let key_str = key::object_key_from(&k);
            let parsed = record::decode(&v)
                .map_err(|e| e.to_string())
                .and_then(|(env, _)| {
                    Ok((
                        key_str.parse::<ObjectKey>().map_err(|e| e.to_string())?,
                        env.rv,
                    ))
                });
            match parsed {
                Ok((key, rv)) => {
                    out.insert(key, rv);
                }
                Err(reason) => {
                    tracing::warn!(collection = %inner.name, key = key_str, %reason, "corrupt record left out of versions()")
                }
            }
        }
        Ok(out)
    }

    fn validate(&self, object: &Value) -> Result<Validated> {
        let id = &self.inner.id;
        let key = ObjectKey::of(object).map_err(|e| match e {
            Error::InvalidObject(m) => Error::InvalidObject(format!("{}: {m}", self.inner.name)),
            other => other,
        })?;
        if id.namespaced && key.namespace.is_none() {
            return Err(Error::InvalidObject(format!(
                "{}: object {:?} has no metadata.namespace, but {} are namespaced",
                self.inner.name, key.name, id.resource
            )));
        }
        if !id.namespaced && key.namespace.is_some() {
            return Err(Error::InvalidObject(format!(
                "{}: object {key} has a metadata.namespace, but {} are cluster-scoped",
                self.inner.name, id.resource
            )));
        }
        let rv = match object.pointer("/metadata/resourceVersion") {
            Some(Value::String(rv)) if !rv.is_empty() => rv.clone(),
            _ => {
                return Err(Error::InvalidObject(format!(
                "{}: object {key} has no metadata.resourceVersion (a non-empty string is required)",
                self.inner.name
            )))
            }
        };
        let key_str = key.encode();
        Ok(Validated { key, key_str, rv })
    }

    /// Applies a batch atomically (objects, indexes, journal, last RV) and
    /// returns once it is durable. An invalid object rejects the whole batch
    /// before anything is written. An upsert identical to the stored object
    /// and a delete of an absent key change nothing and journal nothing, so
    /// replaying a batch after a crash is harmless. `batch.rv = None` keeps
    /// the stored RV.
    pub fn apply(&self, batch: Batch) -> Result<Vec<Change>> {
        let inner = &self.inner;
        let validated = batch
            .deltas
            .iter()
            .map(|d| match d {
                Delta::Upsert(o) | Delta::Delete(o) => self.validate(o),
            })
            .collect::<Result<Vec<_>>>()?;

        let _w = inner.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut st = inner.state();
        let mut sb = sled::Batch::default();
        let now = state::now_ms();
        let mut ctx = ZstdContext::new(inner.shared.options.compression_level);
        let new_dict = self.maybe_train(&mut st, &batch, &mut sb)?;
        let dict = match (&new_dict, st.dictionary) {
            (Some(d), _) => Some(d.clone()),
            (None, 0) => None,
            (None, id) => Some(inner.dictionary(id)?),
        };
        let indexers = inner
            .indexers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();

        let mut overlay: HashMap<String, Prior> = HashMap::new();
        let mut healed = false;
        let mut changes = Vec::new();
        let mut pending_journal = Vec::new();
        for (delta, v) in batch.deltas.into_iter().zip(validated) {
            let prior = match overlay.get(&v.key_str) {
                Some(p) => p.clone(),
                None => inner.prior(&v.key_str)?,
            };
            let (old_value, old_len, old_raw) = match &prior {
                Prior::Absent => (None, 0, 0),
                Prior::Present {
                    value,
                    record_len,
                    raw_len,
                } => (Some(value.as_ref()), *record_len, *raw_len),
                Prior::Corrupt { record_len } => (None, *record_len, 0),
            };
            let old_entries = match &prior {
                Prior::Absent => BTreeSet::new(),
                Prior::Present { value, .. } => index::entries(value, &v.key_str, &indexers),
                Prior::Corrupt { .. } => {
                    healed = true;
                    inner
                        .scan_index_entries_of(&v.key_str)?
                        .into_iter()
                        .collect()
                }
            };
            let (kind, patch, new_prior, new_entries, new_value) = match delta {
                Delta::Upsert(obj) => {
                    if old_value == Some(&obj) {
                        continue;
                    }
                    let raw = serde_json::to_vec(&obj).map_err(|e| Error::Encode {
                        what: format!("{} object {}", inner.name, v.key),
                        reason: e.to_string(),
                    })?;
                    let rec = record::seal_payload(
                        &mut ctx,
                        &raw,
                        record_meta(&obj, &v.rv, now),
                        dict.as_deref(),
                    )
                    .map_err(|e| Error::Encode {
                        what: format!("{} object {}", inner.name, v.key),
                        reason: e.to_string(),
                    })?;
                    let (kind, patch) = match (&prior, old_value) {
                        (Prior::Absent, _) => (ChangeKind::Added, obj.clone()),
                        (_, Some(old)) => (ChangeKind::Modified, merge_diff(old, &obj)),
                        (_, None) => (ChangeKind::Modified, obj.clone()),
                    };
                    if matches!(prior, Prior::Absent) {
                        st.objects += 1;
                    }
                    st.stored_bytes = st.stored_bytes + rec.len() as u64 - old_len;
                    st.raw_bytes = st.raw_bytes + raw.len() as u64 - old_raw;
                    let entries = index::entries(&obj, &v.key_str, &indexers);
                    let next = Prior::Present {
                        value: Arc::new(obj.clone()),
                        record_len: rec.len() as u64,
                        raw_len: raw.len() as u64,
                    };
                    sb.insert(key::object_key(&v.key_str), rec);
                    (kind, patch, next, entries, Some(obj))
                }
                Delta::Delete(obj) => {
                    if matches!(prior, Prior::Absent) {
                        continue;
                    }
                    let patch = old_value.map_or(Value::Null, |old| merge_diff(old, &obj));
                    st.objects -= 1;
                    st.stored_bytes -= old_len;
                    st.raw_bytes -= old_raw;
                    sb.remove(key::object_key(&v.key_str));
                    (
                        ChangeKind::Deleted,
                        patch,
                        Prior::Absent,
                        BTreeSet::new(),
                        None,
                    )
                }
            };
            for gone in old_entries.difference(&new_entries) {
                sb.remove(gone.as_slice());
            }
            for added in new_entries.difference(&old_entries) {
                sb.insert(added.as_slice(), &[]);
            }
            st.last_seq += 1;
            let seq = st.last_seq;
            let payload = journal::Payload {
                kind,
                key: v.key_str.clone(),
                patch,
            };
            let jraw = serde_json::to_vec(&payload).map_err(|e| Error::Encode {
                what: format!("{} journal entry {seq}", inner.name),
                reason: e.to_string(),
            })?;
            let source = new_value.as_ref().or(old_value).unwrap_or(&Value::Null);
            let jrec = record::seal_payload(
                &mut ctx,
                &jraw,
                record_meta(source, &v.rv, now),
                dict.as_deref(),
            )
            .map_err(|e| Error::Encode {
                what: format!("{} journal entry {seq}", inner.name),
                reason: e.to_string(),
            })?;
            st.journal_len += 1;
            st.journal_bytes += jrec.len() as u64;
            pending_journal.push((seq, v.key_str.clone(), jrec.len() as u64));
            sb.insert(&key::journal_key(seq), jrec);
            sb.insert(key::history_entry(&v.key_str, seq), &[]);
            changes.push(Change {
                seq,
                kind,
                key: v.key,
                rv: v.rv,
                old: old_value.cloned(),
                new: new_value,
            });
            overlay.insert(v.key_str, new_prior);
        }
        if healed {
            // An unreadable record's raw size is unknown: count again.
            (st.stored_bytes, st.raw_bytes) = self.recount(&overlay)?;
        }
        if st.journal_len == 0 {
            st.journal_first = st.last_seq + 1;
        }
        self.trim_journal(
            &mut st,
            &mut sb,
            inner.shared.options.journal,
            &pending_journal,
        )?;
        if batch.rv.is_some() {
            st.last_rv = batch.rv;
        }
        st.last_sync_ms = Some(now);
        sb.insert(key::state_key(), record::seal_value(&st));
        inner.tree.apply_batch(sb)?;
        inner.flush()?;
        if let Some(d) = new_dict {
            inner
                .dictionaries
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(d.id(), d);
        }
        *inner.state.write().unwrap_or_else(PoisonError::into_inner) = st;
        Ok(changes)
    }

    /// Record and raw bytes of every object once `overlay` (the batch's
    /// final state of the keys it touched) is applied.
    fn recount(&self, overlay: &HashMap<String, Prior>) -> Result<(u64, u64)> {
        let (mut stored, mut raw) = (0u64, 0u64);
        for item in self.inner.tree.scan_prefix([prefix::OBJECT]) {
            let (k, v) = item?;
            if overlay.contains_key(&key::object_key_from(&k)) {
                continue;
            }
            stored += v.len() as u64;
            // Another corrupt record: its raw size stays unknown until it is healed too.
            if let Ok((envelope, _)) = record::decode(&v) {
                raw += envelope.raw_len as u64;
            }
        }
        for prior in overlay.values() {
            match prior {
                Prior::Absent => {}
                Prior::Present {
                    record_len,
                    raw_len,
                    ..
                } => {
                    stored += record_len;
                    raw += raw_len;
                }
                Prior::Corrupt { record_len } => stored += record_len,
            }
        }
        Ok((stored, raw))
    }

    /// Trains a (new) dictionary when the collection has grown enough, and
    /// puts it in the batch whose records are the first to use it.
    fn maybe_train(
        &self,
        st: &mut State,
        batch: &Batch,
        sb: &mut sled::Batch,
    ) -> Result<Option<Arc<Dictionary>>> {
        let inner = &self.inner;
        let opts = &inner.shared.options.dictionary;
        let upserts: Vec<&Value> = batch
            .deltas
            .iter()
            .filter_map(|d| match d {
                Delta::Upsert(o) => Some(o),
                Delta::Delete(_) => None,
            })
            .collect();
        let expected = st.objects + upserts.len() as u64;
        let due = if st.trained_at == 0 {
            expected >= opts.min_objects
        } else {
            opts.retrain_factor > 0 && expected >= st.trained_at.saturating_mul(opts.retrain_factor)
        };
        if !due || opts.max_bytes == 0 {
            return Ok(None);
        }
        let mut samples: Vec<Vec<u8>> = upserts
            .iter()
            .take(opts.samples)
            .filter_map(|o| serde_json::to_vec(o).ok())
            .collect();
        let room = opts.samples.saturating_sub(samples.len());
        if room > 0 && st.objects > 0 {
            let stride = (st.objects as usize / room).max(1);
            for item in inner
                .tree
                .scan_prefix([prefix::OBJECT])
                .step_by(stride)
                .take(room)
            {
                let (k, v) = item?;
                if let Ok((_, raw)) = inner.open_record(&key::object_key_from(&k), &v) {
                    samples.push(raw);
                }
            }
        }
        st.trained_at = expected.max(1);
        let id = st.dictionary + 1;
        match Dictionary::train(
            id,
            &samples,
            opts.max_bytes,
            inner.shared.options.compression_level,
        ) {
            Ok(dict) => {
                tracing::info!(collection = %inner.name, id, samples = samples.len(), bytes = dict.bytes().len(), "trained a zstd dictionary");
                sb.insert(
                    &key::dictionary_key(id),
                    record::seal(dict.bytes().to_vec()),
                );
                st.dictionary = id;
                Ok(Some(Arc::new(dict)))
            }
            Err(e) => {
                // Too few or too uniform samples: keep the current codec and
                // try again once the collection has grown.
                tracing::warn!(collection = %inner.name, samples = samples.len(), error = %e, "dictionary training failed");
                Ok(None)
            }
        }
    }
}

fn record_meta(object: &Value, rv: &str, now: u64) -> RecordMeta {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    RecordMeta {
        rv: rv.to_string(),
        uid: text("/metadata/uid"),
        created: text("/metadata/creationTimestamp"),
        stored_at_ms: now,
    }
}
