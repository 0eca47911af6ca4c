//! One collection: reads, and `apply`, the single write path.
//!
//! Every `apply` builds ONE engine batch holding the object records, their
//! index entries, the journal entries (plus their history-index entries),
//! any newly trained dictionary and the new state record (last RV), writes
//! it atomically (also across crashes) and makes it durable before
//! returning. Writers are serialized per collection; readers never
//! block on the write lock.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde_json::Value;

use super::apply::{Prior, Reference};
use super::dictionary::{Dictionary, ZstdContext};
use super::engine::{self, Scan, WriteBatch};
use super::error::{Error, Result};
use super::group_commit::Ticket;
use super::heal::DamageSeen;
use super::index::{self, NAMESPACE_INDEX};
use super::key::{self, prefix};
use super::record::{self, Envelope, RecordMeta};
use super::state::{self, State, STATE_LAYOUT};
use super::{CollectionId, CollectionMeta, IndexFn, ObjectKey, Shared};

/// One collection of an open store.
#[derive(Clone)]
pub struct Collection {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub id: CollectionId,
    pub name: String,
    /// The engine space holding the collection.
    pub space: String,
    pub shared: Arc<Shared>,
    /// Serializes writers (apply, add_indexer, acks, journal trims,
    /// sealing, compaction).
    pub write: Mutex<()>,
    /// The state of the last batch written: visible to readers at once,
    /// durable once that batch's flush returned (see `group_commit`).
    pub state: RwLock<State>,
    /// The first journal seq that no trim has removed or is removing:
    /// raised before a trim is written, where `state` changes only after,
    /// so that a reader scanning the journal meanwhile learns of the trim
    /// (see `journal_page`).
    pub trimmed_to: AtomicU64,
    pub indexers: RwLock<BTreeMap<String, IndexFn>>,
    pub dictionaries: RwLock<HashMap<u32, Arc<Dictionary>>>,
    /// Damage met by readers, for the writer to heal.
    pub damage: DamageSeen,
}

thread_local! {
    /// Readers reuse one decompression context per thread.
    static READ_CTX: RefCell<ZstdContext> = RefCell::new(ZstdContext::new(0));
}

impl Inner {
    pub(crate) fn open(
        shared: Arc<Shared>,
        id: CollectionId,
        name: String,
        space: String,
    ) -> Result<Inner> {
        let state = match shared.db().get(&space, &key::state_key())? {
            None => State::default(),
            Some(bytes) => decode_state(&name, &bytes)?,
        };
        Ok(Inner {
            id,
            name,
            space,
            shared,
            write: Mutex::new(()),
            trimmed_to: AtomicU64::new(state.journal_first),
            state: RwLock::new(state),
            indexers: RwLock::new(BTreeMap::new()),
            dictionaries: RwLock::new(HashMap::new()),
            damage: DamageSeen::default(),
        })
    }

    pub(crate) fn corrupt(&self, key: impl Into<String>, reason: impl ToString) -> Error {
        Error::corrupt(&self.name, key, reason.to_string())
    }

    /// A corrupt record, with the error its decoder reported.
    pub(crate) fn corrupt_by(
        &self,
        key: impl Into<String>,
        reason: &str,
        source: impl Into<crate::store::Cause>,
    ) -> Error {
        Error::corrupt_by(&self.name, key, reason, source)
    }

    /// A record that does not decode.
    pub(crate) fn undecodable(&self, key: impl Into<String>, e: record::RecordError) -> Error {
        Error::undecodable(&self.name, key, e)
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
            .get(&key::dictionary_key(id))?
            .ok_or_else(|| self.corrupt(&name, "missing"))?;
        let body = record::unseal(&bytes).map_err(|e| self.undecodable(&name, e))?;
        let dict = Dictionary::new(id, body.to_vec(), self.shared.options.compression_level)
            .map_err(|e| self.corrupt_by(&name, "the dictionary does not load", e))?;
        let dict = Arc::new(dict);
        self.dictionaries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, dict.clone());
        Ok(dict)
    }

    /// Decodes a record (crc, envelope, payload) into its JSON bytes.
    pub(crate) fn open_record(&self, what: &str, bytes: &[u8]) -> Result<(Envelope, Vec<u8>)> {
        self.open_record_framed(what, bytes)
            .map(|(envelope, raw, _)| (envelope, raw))
    }

    /// [`Self::open_record`], with the payload as it was compressed (opened
    /// when sealed) and the dictionary it was compressed with.
    pub(crate) fn open_record_framed(
        &self,
        what: &str,
        bytes: &[u8],
    ) -> Result<(Envelope, Vec<u8>, Frame)> {
        let framed = record::decode_framed(bytes).map_err(|e| self.undecodable(what, e))?;
        let payload = framed
            .compressed(
                self.shared.options.encryption_key.as_ref(),
                !self.shared.all_sealed(),
            )
            .map_err(|e| self.undecodable(what, e))?;
        let envelope = framed.envelope;
        let dict = match envelope.codec {
            record::Codec::Zstd => None,
            // Named as this record's damage: a damaged dictionary is
            // reported once for every record that needs it.
            record::Codec::ZstdDictionary => {
                Some(self.dictionary(envelope.dictionary).map_err(|e| match e {
                    Error::Corrupt { key, reason, .. } => {
                        self.corrupt(what, format!("needs {key}: {reason}"))
                    }
                    other => other,
                })?)
            }
        };
        let raw = READ_CTX
            .with(|ctx| {
                record::open_payload(&mut ctx.borrow_mut(), &envelope, &payload, dict.as_deref())
            })
            .map_err(|e| self.undecodable(what, e))?;
        let frame = Frame {
            compressed: Arc::from(&*payload),
            dictionary: dict,
        };
        Ok((envelope, raw, frame))
    }

    pub(crate) fn decode_object(&self, key: &str, bytes: &[u8]) -> Result<Value> {
        let (_, raw) = self.open_record(key, bytes)?;
        serde_json::from_slice(&raw).map_err(|e| self.corrupt_by(key, "payload is not JSON", e))
    }

    /// [`Self::decode_object`] for a reader: damage is reported to
    /// [`Self::damage`] besides being returned. (The write path meets
    /// damaged records too, but overwrites them: that is the heal.)
    pub(crate) fn read_object(&self, key: &str, bytes: &[u8]) -> Result<Value> {
        self.damage.check(self.decode_object(key, bytes))
    }

    fn get_raw(&self, key: &str) -> Result<Option<Value>> {
        match self.get(&key::object_key(key))? {
            None => Ok(None),
            Some(bytes) => self.read_object(key, &bytes).map(Some),
        }
    }

    fn scan_objects(&self, prefix: &[u8]) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for item in self.scan_prefix(prefix)? {
            let (k, v) = item?;
            out.push(self.read_object(&key::object_key_from(&k), &v)?);
        }
        Ok(out)
    }

    /// Every index entry naming `object_key`, found by scanning: only used
    /// when the object's own record is unreadable.
    pub(crate) fn scan_index_entries_of(&self, object_key: &str) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for item in self.scan_prefix(&[prefix::INDEX])? {
            let (k, _) = item?;
            if key::parse_index_entry(&k).is_some_and(|(_, _, key)| key == object_key) {
                out.push(k.to_vec());
            }
        }
        Ok(out)
    }

    pub(crate) fn prior(&self, key: &str) -> Result<Prior> {
        let Some(bytes) = self.get(&key::object_key(key))? else {
            return Ok(Prior::Absent);
        };
        let record_len = bytes.len() as u64;
        // Read as JSON only where a write needs it (see `apply`): the patch
        // reads every byte, and labels are read only if they changed.
        match self.open_record_framed(key, &bytes) {
            Ok((envelope, json, frame)) => Ok(Prior::Present {
                frame,
                json: json.into(),
                raw_len: envelope.raw_len as u64,
                meta: RecordMeta {
                    rv: envelope.rv,
                    stored_at_ms: envelope.stored_at_ms,
                },
                value: None,
                record_len,
                reference: Reference::Unknown,
            }),
            Err(Error::Corrupt { reason, .. }) => {
                tracing::warn!(collection = %self.name, key, %reason, "overwriting a corrupt record");
                Ok(Prior::Corrupt { record_len })
            }
            Err(e) => Err(e),
        }
    }

    /// One record of the collection's space.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.shared.db().get(&self.space, key)
    }

    /// The records of the collection's space whose keys start with `prefix`.
    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> Result<Scan> {
        engine::scan_prefix(self.shared.db(), &self.space, prefix)
    }

    /// Writes `batch` to the collection's space atomically and durably,
    /// sharing the flush with writes made at the same time.
    pub(crate) fn commit(&self, batch: WriteBatch) -> Result<()> {
        let ticket = self.stage(batch)?;
        self.durable(ticket)
    }

    /// Writes `batch` to the collection's space atomically, visible at once
    /// and durable once [`Self::durable`] returns for its ticket.
    pub(crate) fn stage(&self, batch: WriteBatch) -> Result<Ticket> {
        let db = self.shared.db();
        self.shared
            .group
            .stage(|| db.write(&self.space, batch, false))
    }

    /// Returns once the write of `ticket`, and every one staged before it,
    /// is durable.
    pub(crate) fn durable(&self, ticket: Ticket) -> Result<()> {
        self.shared.group.durable(self.shared.db(), ticket)
    }
}

/// A record's payload as compressed (not sealed), with the dictionary it
/// needs: what a journal entry that takes over the object copies.
#[derive(Clone)]
pub(crate) struct Frame {
    pub compressed: Arc<[u8]>,
    pub dictionary: Option<Arc<Dictionary>>,
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
    record::unseal_value(bytes).map_err(|e| Error::undecodable(collection, "state", e))
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
    /// again after every open. Until then the index is not served. If the
    /// flush that makes the index durable fails, the error is returned
    /// with the index still served from what was written: the store then
    /// takes no more writes until it is opened again.
    pub fn add_indexer(&self, name: &str, f: IndexFn) -> Result<()> {
        index::check_user_index_name(name).map_err(Error::InvalidArgument)?;
        let inner = &self.inner;
        let w = inner.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = WriteBatch::default();
        for item in inner.scan_prefix(&key::index_name_prefix(name))? {
            batch.delete(item?.0);
        }
        for item in inner.scan_prefix(&[prefix::OBJECT])? {
            let (k, v) = item?;
            let key_str = key::object_key_from(&k);
            match inner.decode_object(&key_str, &v) {
                Ok(stored) => {
                    for value in f(&stored) {
                        batch.put(key::index_entry(name, &value, &key_str), []);
                    }
                }
                // Unreadable objects are not served; their entries come with the heal.
                Err(Error::Corrupt { reason, .. }) => {
                    tracing::warn!(collection = %inner.name, key = key_str, %reason, "not indexing a corrupt record")
                }
                Err(e) => return Err(e),
            }
        }
        let ticket = inner.stage(batch)?;
        // Registered before the lock goes, so that no write in between
        // leaves the index behind; made durable after, so that the
        // collection's writers do not wait on this flush.
        inner
            .indexers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), f);
        drop(w);
        inner.durable(ticket)
    }

    /// One object, checksum-verified; `None` if absent.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Value>> {
        self.inner.get_raw(&key.encode())
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
        let mut out = Vec::new();
        for key in self.index_keys(index, value)? {
            match inner.get_raw(&key.encode())? {
                Some(s) => out.push(s),
                // Cannot happen short of disk damage (entries and objects are
                // written in one batch); `verify` reports it.
                None => {
                    tracing::warn!(collection = %inner.name, index, value, %key, "index entry without object")
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

    /// Damage readers of this collection met, for the informer to heal.
    pub(crate) fn damage(&self) -> &DamageSeen {
        &self.inner.damage
    }

    /// key → the object's resourceVersion, from the record envelopes (crc
    /// checked, nothing decompressed). A corrupt record, or one whose
    /// dictionary cannot be loaded, is left out, so a relist diff sees it
    /// as missing and re-writes it: that is the heal.
    pub fn versions(&self) -> Result<HashMap<ObjectKey, String>> {
        let inner = &self.inner;
        let mut out = HashMap::with_capacity(self.len());
        // Whether each dictionary loads, asked once: a damaged one is not
        // cached, and loading it again for every record would be slow.
        let mut loads: HashMap<u32, bool> = HashMap::new();
        for item in inner.scan_prefix(&[prefix::OBJECT])? {
            let (k, v) = item?;
            let parsed = record::decode_head(&v)
                .map_err(|e| e.to_string())
                .and_then(|(rv, dictionary)| match dictionary {
                    Some(id)
                        if !*loads
                            .entry(id)
                            .or_insert_with(|| inner.dictionary(id).is_ok()) =>
                    {
                        Err(format!("its zstd dictionary {id} cannot be loaded"))
                    }
                    _ => Ok(rv),
                })
                .and_then(|rv| {
                    let key = std::str::from_utf8(&k[1..]).map_err(|e| e.to_string())?;
                    Ok((key.parse::<ObjectKey>().map_err(|e| e.to_string())?, rv))
                });
            match parsed {
                Ok((key, rv)) => {
                    out.insert(key, rv);
                }
                Err(reason) => {
                    let key = key::object_key_from(&k);
                    tracing::warn!(collection = %inner.name, key, %reason, "corrupt record left out of versions()")
                }
            }
        }
        Ok(out)
    }
}
