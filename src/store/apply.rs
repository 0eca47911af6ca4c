//! The write path: `apply` turns a batch of deltas into ONE engine batch
//! (object records, index entries, journal and history entries, any new
//! dictionary, the state record with the last RV), commits it atomically
//! and returns once it is durable (I1), sharing the flush with writes made
//! at the same time (see `group_commit`).
//!
//! A [`Builder`] holds the batch being built; each delta is one small step
//! (`upsert`, `delete`) over the key's prior state, which comes from the
//! store or from an earlier delta of the same batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, PoisonError};

use serde_json::Value;

use super::collection::{Collection, Frame, Inner};
use super::dictionary::{Dictionary, ZstdContext};
use super::engine::{self, WriteBatch};
use super::error::{Error, Result};
use super::event::Earlier;
use super::head::ObjectHead;
use super::index;
use super::journal::{self, merge_diff_json};
use super::key::{self, prefix};
use super::record::{self, RecordMeta};
use super::spread;
use super::state::{self, State};
use super::{Batch, Delta, Event, EventKind, IndexFn, ObjectKey};
use crate::resource_version;

/// What an apply has to know about each object it writes.
struct Validated {
    key: ObjectKey,
    key_str: String,
    rv: String,
}

/// The state of a key before a delta, while a batch is being built.
#[derive(Clone)]
pub(crate) enum Prior {
    Absent,
    /// Read from the store (as JSON alone, not yet parsed: its bytes are
    /// read when a patch is made from them) or written earlier in this
    /// batch (`value` at hand).
    Present {
        /// The object's JSON, as stored.
        json: Arc<[u8]>,
        /// Its record's envelope fields; `meta.rv` is the object's
        /// resourceVersion.
        meta: RecordMeta,
        /// The whole object, when it is at hand.
        value: Option<Arc<Value>>,
        record_len: u64,
        raw_len: u64,
        /// The Added entry whose object is this record, if any.
        reference: Reference,
        /// The record's payload, which that entry takes over.
        frame: Frame,
    },
    /// A record is there but unreadable: it is overwritten or removed, and
    /// its index entries found by scanning.
    Corrupt {
        record_len: u64,
    },
}

impl Prior {
    /// The state as an event's `old`: parsed only if someone reads it.
    fn earlier(&self) -> Earlier {
        match self {
            Prior::Present { json, .. } => Earlier::json(json.clone()),
            Prior::Absent | Prior::Corrupt { .. } => Earlier::default(),
        }
    }

    fn resource_version(&self) -> Option<&str> {
        match self {
            Prior::Present { meta, .. } => Some(&meta.rv),
            Prior::Absent | Prior::Corrupt { .. } => None,
        }
    }

    /// Makes this the same record found unreadable (its bytes are not
    /// JSON): it is overwritten, and its index entries found by scanning.
    fn mark_corrupt(&mut self, collection: &str, key: &str, e: &serde_json::Error) {
        let (record_len, _) = self.sizes();
        let reason = format!("payload is not JSON: {e}");
        tracing::warn!(collection, key, %reason, "overwriting a corrupt record");
        *self = Prior::Corrupt { record_len };
    }

    /// (record bytes, raw JSON bytes) the counters hold for this state.
    fn sizes(&self) -> (u64, u64) {
        match self {
            Prior::Absent => (0, 0),
            Prior::Present {
                record_len,
                raw_len,
                ..
            } => (*record_len, *raw_len),
            // The raw size of an unreadable record is unknown; see `recount`.
            Prior::Corrupt { record_len } => (*record_len, 0),
        }
    }
}

/// Which journal entry, if any, refers to an object's record for its
/// content (see `journal::Body::Stored`): that entry is given the object
/// before the record is replaced or deleted.
#[derive(Clone, Copy)]
pub(crate) enum Reference {
    /// Not looked up: the record was read from the store, and its key's
    /// newest history entry says.
    Unknown,
    /// None does.
    None,
    /// The entry of this seq, written earlier in this batch.
    Pending(u64),
}

/// A change whose values are still shared with the batch's overlay.
struct Pending {
    seq: u64,
    kind: EventKind,
    key: ObjectKey,
    rv: String,
    old: Earlier,
    new: Option<Arc<Value>>,
}

/// A journal entry's patch: JSON to compress, or (for Added) none, the
/// object's record holding the object.
enum Patch<'a> {
    Json(&'a [u8]),
    Stored,
}

/// The batch being built for one `apply`.
struct Builder<'a> {
    inner: &'a Inner,
    st: State,
    sb: WriteBatch,
    ctx: &'a mut ZstdContext,
    dict: Option<Arc<Dictionary>>,
    indexers: BTreeMap<String, IndexFn>,
    now: u64,
    /// The batch's own latest state of each key it touched.
    overlay: HashMap<String, Prior>,
    /// Whether a corrupt record was replaced (the byte counters need a recount).
    healed: bool,
    changes: Vec<Pending>,
    /// (seq, key, bytes) of the journal entries this batch adds.
    journal: Vec<(u64, String, u64)>,
    /// New sizes of the committed journal entries this batch rewrites
    /// (`None`: removes).
    resized: HashMap<u64, Option<u64>>,
    /// Skip a delta older than the object held (see `apply_keeping_newer`).
    keep_newer: bool,
    /// Journal entries keep no values (Secrets: see `journal::strip_secret_values`).
    strip_values: bool,
}

impl Builder<'_> {
    fn prior(&self, key: &str) -> Result<Prior> {
        match self.overlay.get(key) {
            Some(p) => Ok(p.clone()),
            None => self.inner.prior(key),
        }
    }

    /// Whether the delta at `rv` is to be skipped: the key holds a newer
    /// version and the batch keeps it.
    fn holds_newer(&self, prior: &Prior, rv: &str) -> bool {
        self.keep_newer
            && prior
                .resource_version()
                .is_some_and(|held| resource_version::is_older(rv, held))
    }

    /// The index entries a prior state holds. A stored object that turns
    /// out not to be JSON makes `prior` corrupt (see `Prior::Corrupt`).
    fn entries_of(&mut self, prior: &mut Prior, key: &str) -> Result<BTreeSet<Vec<u8>>> {
        let parsed = match &*prior {
            Prior::Absent => return Ok(BTreeSet::new()),
            Prior::Corrupt { .. } => None,
            Prior::Present {
                value: Some(value), ..
            } => return Ok(index::entries(value, key, &self.indexers)),
            Prior::Present { json, .. } => {
                // The label index needs the metadata alone.
                if self.indexers.is_empty() {
                    if let Some(head) = ObjectHead::parse(json) {
                        return Ok(index::label_entries(head.label_pairs(), key).collect());
                    }
                }
                Some(serde_json::from_slice::<Value>(json))
            }
        };
        match parsed {
            Some(Ok(value)) => return Ok(index::entries(&value, key, &self.indexers)),
            Some(Err(e)) => prior.mark_corrupt(&self.inner.name, key, &e),
            None => {}
        }
        self.healed = true;
        Ok(self.inner.scan_index_entries_of(key)?.into_iter().collect())
    }

    /// The patch from `prior` to `new` (both as JSON), or `None` when the
    /// stored bytes cannot be read as JSON: `prior` is then corrupt.
    fn patch_from(&self, prior: &mut Prior, key: &str, new: &[u8]) -> Option<Vec<u8>> {
        let Prior::Present { json, .. } = &*prior else {
            return None;
        };
        match merge_diff_json(json, new) {
            Ok(patch) => Some(patch),
            Err(e) => {
                prior.mark_corrupt(&self.inner.name, key, &e);
                None
            }
        }
    }

    fn encode_error(&self, what: String, e: impl Into<crate::store::Cause>) -> Error {
        Error::encode(format!("{} {what}", self.inner.name), e)
    }

    /// `raw` is `obj` as JSON and `frame` its compression with the batch's
    /// dictionary, both made before (see `Collection::write`).
    fn upsert(
        &mut self,
        v: Validated,
        obj: Value,
        raw: Vec<u8>,
        frame: std::io::Result<Vec<u8>>,
    ) -> Result<()> {
        let mut prior = self.prior(&v.key_str)?;
        if self.holds_newer(&prior, &v.rv) {
            return Ok(());
        }
        // The patch from the stored version, read from both versions' JSON
        // (see `merge_diff_json`): an upsert equal to what is stored changes
        // nothing and journals nothing.
        if matches!(&prior, Prior::Present { json, .. } if json[..] == raw[..]) {
            return Ok(());
        }
        let diff = self.patch_from(&mut prior, &v.key_str, &raw);
        if diff.as_deref() == Some(b"{}") {
            return Ok(());
        }
        // Labels the patch leaves alone are the new version's: the stored
        // one need not be read again for them, nor its entries moved.
        let old_entries = match &diff {
            Some(patch)
                if self.indexers.is_empty()
                    && !journal::patch_sets(patch, &["metadata", "labels"]) =>
            {
                None
            }
            _ => Some(self.entries_of(&mut prior, &v.key_str)?),
        };
        let frame = frame.map_err(|e| self.encode_error(format!("object {}", v.key), e))?;
        let meta = record_meta(&v.rv, self.now);
        let rec = record::seal_compressed_under(
            &frame,
            raw.len(),
            meta.clone(),
            self.dict.as_deref(),
            self.inner.shared.options.encryption_key.as_ref(),
        );
        let kind = match prior {
            Prior::Absent => EventKind::Added,
            Prior::Present { .. } | Prior::Corrupt { .. } => EventKind::Modified,
        };
        // Added: the object's record is the entry's object, except for a
        // Secret's entry, which holds no values. A record found unreadable
        // gives no patch: the entry holds the whole object.
        let diff = match diff {
            Some(patch) => Some(self.journal_patch_json(patch)),
            None if self.strip_values => Some(self.journal_patch(obj.clone())),
            None if kind == EventKind::Added => None,
            None => Some(Ok(raw.clone())),
        }
        .transpose()
        .map_err(|e| self.encode_error(format!("patch of {}", v.key), e))?;
        self.settle_reference(&prior, &v.key_str)?;
        let (old_len, old_raw) = prior.sizes();
        if matches!(prior, Prior::Absent) {
            self.st.objects += 1;
        }
        self.st.stored_bytes = self.st.stored_bytes + rec.len() as u64 - old_len;
        self.st.raw_bytes = self.st.raw_bytes + raw.len() as u64 - old_raw;
        if let Some(old_entries) = &old_entries {
            let new_entries = index::entries(&obj, &v.key_str, &self.indexers);
            self.reindex(old_entries, &new_entries);
        }
        let raw_len = raw.len();
        let new = Arc::new(obj);
        let patch = match &diff {
            Some(json) => Patch::Json(json),
            None => Patch::Stored,
        };
        let next = Prior::Present {
            json: raw.into(),
            meta: meta.clone(),
            value: Some(new.clone()),
            record_len: rec.len() as u64,
            raw_len: raw_len as u64,
            reference: match patch {
                Patch::Stored => Reference::Pending(self.st.last_seq + 1),
                Patch::Json(_) => Reference::None,
            },
            frame: Frame {
                compressed: frame.into(),
                dictionary: self.dict.clone(),
            },
        };
        self.sb.put(key::object_key(&v.key_str), rec);
        let old = prior.earlier();
        self.overlay.insert(v.key_str.clone(), next);
        self.journal(kind, v, patch, meta, old, Some(new))
    }

    /// Writes the object `prior` holds into the Added entry that refers to
    /// its record for it, if one does: called before the record is
    /// replaced or deleted, in the same batch. An unreadable record took
    /// that object with it: the entry goes, so that the journal still
    /// reads (the write that replaces the record journals it whole).
    fn settle_reference(&mut self, prior: &Prior, key_str: &str) -> Result<()> {
        let (held, reference) = match prior {
            Prior::Absent => return Ok(()),
            Prior::Present {
                json,
                meta,
                reference,
                frame,
                ..
            } => (Some((json, meta, frame)), *reference),
            Prior::Corrupt { .. } => (None, Reference::Unknown),
        };
        let seq = match reference {
            Reference::None => return Ok(()),
            Reference::Pending(seq) => seq,
            Reference::Unknown => {
                let newest = engine::last_with_prefix(
                    self.inner.shared.db(),
                    &self.inner.space,
                    &key::history_prefix(key_str),
                )?;
                match newest {
                    Some((k, value)) if value == journal::REFERS_TO_OBJECT => key::history_seq(&k)
                        .ok_or_else(|| {
                            self.inner
                                .corrupt(format!("history of {key_str}"), "malformed history entry")
                        })?,
                    _ => return Ok(()),
                }
            }
        };
        // Only an entry of this batch is among its own.
        let pending = match reference {
            Reference::Pending(_) => self.journal.iter().position(|(s, ..)| *s == seq),
            Reference::Unknown | Reference::None => None,
        };
        let old_len = match pending {
            Some(at) => self.journal[at].2,
            None => match self.resized.get(&seq) {
                Some(Some(len)) => *len,
                Some(None) => return Ok(()),
                None => match self.inner.get(&key::journal_key(seq))? {
                    Some(bytes) => {
                        // A reference names the record at its own version;
                        // one naming another (damage) is left for `verify`.
                        let rv = record::decode_rv(&bytes).ok();
                        if let Some((_, meta, _)) =
                            held.filter(|(_, m, _)| rv.as_deref() != Some(&m.rv))
                        {
                            tracing::warn!(collection = %self.inner.name, key = key_str, seq, rv = %meta.rv, "a journal entry refers to the record at another resourceVersion; left as it is");
                            return Ok(());
                        }
                        bytes.len() as u64
                    }
                    // Trimmed, with its history entry: nothing refers.
                    None => return Ok(()),
                },
            },
        };
        let Some((json, meta, frame)) = held else {
            tracing::warn!(collection = %self.inner.name, key = key_str, seq, "the Added journal entry that referred to an unreadable record is dropped: its object is lost");
            self.sb.delete(key::journal_key(seq));
            self.sb.delete(key::history_entry(key_str, seq));
            self.st.journal_len = self.st.journal_len.saturating_sub(1);
            self.st.journal_bytes = self.st.journal_bytes.saturating_sub(old_len);
            self.resized.insert(seq, None);
            return Ok(());
        };
        // The entry is the object's payload between a compressed head and
        // tail: zstd frames back to back decompress to their contents back
        // to back, so the object is not compressed again.
        let dict = frame.dictionary.as_deref();
        let (head, tail) = journal::payload_frame(EventKind::Added, key_str, 0);
        let rec = self
            .ctx
            .compress(&head, dict)
            .and_then(|mut payload| {
                payload.extend_from_slice(&frame.compressed);
                payload.extend_from_slice(&self.ctx.compress(tail, dict)?);
                Ok(payload)
            })
            .map(|payload| {
                record::seal_compressed_under(
                    &payload,
                    head.len() + json.len() + tail.len(),
                    meta.clone(),
                    dict,
                    self.inner.shared.options.encryption_key.as_ref(),
                )
            })
            .map_err(|e| self.encode_error(format!("journal entry {seq}"), e))?;
        let len = rec.len() as u64;
        self.st.journal_bytes = (self.st.journal_bytes + len).saturating_sub(old_len);
        match pending {
            Some(at) => self.journal[at].2 = len,
            None => {
                self.resized.insert(seq, Some(len));
            }
        }
        self.sb.put(key::journal_key(seq), rec);
        self.sb.put(key::history_entry(key_str, seq), []);
        Ok(())
    }

    /// `last` is the object's last state as JSON, which may differ from the
    /// stored one (deletion RV, finalizers).
    fn delete(&mut self, v: Validated, last: Vec<u8>) -> Result<()> {
        let mut prior = self.prior(&v.key_str)?;
        if matches!(prior, Prior::Absent) || self.holds_newer(&prior, &v.rv) {
            return Ok(());
        }
        let diff = self
            .patch_from(&mut prior, &v.key_str, &last)
            .unwrap_or_else(|| b"null".to_vec());
        let old_entries = self.entries_of(&mut prior, &v.key_str)?;
        let diff = self
            .journal_patch_json(diff)
            .map_err(|e| self.encode_error(format!("patch of {}", v.key), e))?;
        let (old_len, old_raw) = prior.sizes();
        self.st.objects -= 1;
        self.st.stored_bytes -= old_len;
        self.st.raw_bytes -= old_raw;
        self.reindex(&old_entries, &BTreeSet::new());
        self.settle_reference(&prior, &v.key_str)?;
        self.sb.delete(key::object_key(&v.key_str));
        let old = prior.earlier();
        self.overlay.insert(v.key_str.clone(), Prior::Absent);
        let meta = record_meta(&v.rv, self.now);
        self.journal(EventKind::Deleted, v, Patch::Json(&diff), meta, old, None)
    }

    /// A journal entry's patch as JSON, without values for a Secret.
    fn journal_patch(&self, mut patch: Value) -> serde_json::Result<Vec<u8>> {
        if self.strip_values {
            journal::strip_secret_values(&mut patch);
        }
        serde_json::to_vec(&patch)
    }

    /// [`Self::journal_patch`] of a patch already written as JSON: read
    /// back only when values are to be taken out.
    fn journal_patch_json(&self, patch: Vec<u8>) -> serde_json::Result<Vec<u8>> {
        if !self.strip_values {
            return Ok(patch);
        }
        self.journal_patch(serde_json::from_slice(&patch)?)
    }

    fn reindex(&mut self, old: &BTreeSet<Vec<u8>>, new: &BTreeSet<Vec<u8>>) {
        for gone in old.difference(new) {
            self.sb.delete(gone.as_slice());
        }
        for added in new.difference(old) {
            self.sb.put(added.as_slice(), []);
        }
    }

    /// Journals a change (with its history entry) and records it for the
    /// caller. The entry's envelope is `meta`: the new object's, or for a
    /// delete the one that went away.
    fn journal(
        &mut self,
        kind: EventKind,
        v: Validated,
        patch: Patch<'_>,
        meta: RecordMeta,
        old: Earlier,
        new: Option<Arc<Value>>,
    ) -> Result<()> {
        self.st.last_seq += 1;
        let seq = self.st.last_seq;
        let dict = self.dict.as_deref();
        let key = self.inner.shared.options.encryption_key.as_ref();
        let stored = matches!(patch, Patch::Stored);
        let rec = match patch {
            Patch::Json(json) => {
                let payload = journal::encode_payload(kind, &v.key_str, json);
                self.ctx.compress(&payload, dict).map(|compressed| {
                    record::seal_compressed_under(&compressed, payload.len(), meta, dict, key)
                })
            }
            // Its envelope keeps the change's rv and time; the record it
            // refers to has the rest.
            Patch::Stored => {
                let payload = journal::encode_reference(&v.key_str);
                self.ctx.compress(&payload, dict).map(|compressed| {
                    record::seal_compressed_under(&compressed, payload.len(), meta, dict, key)
                })
            }
        }
        .map_err(|e| self.encode_error(format!("journal entry {seq}"), e))?;
        self.st.journal_len += 1;
        self.st.journal_bytes += rec.len() as u64;
        self.journal
            .push((seq, v.key_str.clone(), rec.len() as u64));
        self.sb.put(key::journal_key(seq), rec);
        let history: &[u8] = if stored {
            journal::REFERS_TO_OBJECT
        } else {
            &[]
        };
        self.sb.put(key::history_entry(&v.key_str, seq), history);
        self.changes.push(Pending {
            seq,
            kind,
            key: v.key,
            rv: v.rv,
            old,
            new,
        });
        Ok(())
    }
}

impl Collection {
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
    pub fn apply(&self, batch: Batch) -> Result<Vec<Event>> {
        self.write(batch, false)
    }

    /// [`Self::apply`], except that a delta older than the object held (by
    /// [`resource_version::is_older`]) is skipped, journalling nothing:
    /// for watch events, which a watch resumed behind objects written past
    /// its resourceVersion (a relist cut short) replays. An apply never
    /// moves an object back (I13).
    pub fn apply_keeping_newer(&self, batch: Batch) -> Result<Vec<Event>> {
        self.write(batch, true)
    }

    fn write(&self, batch: Batch, keep_newer: bool) -> Result<Vec<Event>> {
        let inner = &self.inner;
        inner.shared.writable()?;
        let validated = batch
            .deltas
            .iter()
            .map(|d| match d {
                Delta::Upsert(o) | Delta::Delete(o) => self.validate(o),
            })
            .collect::<Result<Vec<_>>>()?;
        // Each object's JSON is made before the lock, so that writers to
        // the collection make theirs at once (see `spread`).
        let jsons = self.encode(&batch.deltas, &validated)?;

        // Taken before the lock, so that a flush about to begin waits for
        // this batch while it waits for the lock too.
        let building = inner.shared.group.building();
        let w = inner.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ctx = inner.shared.contexts.take();
        let mut st = inner.state();
        let mut sb = WriteBatch::default();
        // Encrypted records use no dictionary (see `encryption`).
        let encrypted = inner.shared.options.encryption_key.is_some();
        let current = if encrypted {
            None
        } else {
            self.current_dictionary(&mut st, &mut sb)?
        };
        let new_dict = self.maybe_train(&mut st, &batch.deltas, &jsons, &mut sb)?;
        let dict = if encrypted {
            None
        } else {
            new_dict.clone().or(current)
        };
        // Every upsert's record, compressed on every core: the few an
        // upsert then finds unchanged are made for nothing, in parallel.
        // A delete writes no record (its frame stays empty).
        let frames = spread::cores().map(
            &batch.deltas.iter().zip(&jsons).collect::<Vec<_>>(),
            || inner.shared.contexts.take(),
            |ctx, (delta, raw)| match delta {
                Delta::Upsert(_) => ctx.compress(raw, dict.as_deref()),
                Delta::Delete(_) => Ok(Vec::new()),
            },
        );
        let mut b = Builder {
            inner,
            st,
            sb,
            ctx: &mut ctx,
            dict,
            indexers: inner
                .indexers
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            now: state::now_ms(),
            overlay: HashMap::new(),
            healed: false,
            changes: Vec::new(),
            journal: Vec::new(),
            resized: HashMap::new(),
            keep_newer,
            strip_values: !journal::keeps_values(&inner.id),
        };
        let encoded = jsons.into_iter().zip(frames);
        for ((delta, v), (raw, frame)) in batch.deltas.into_iter().zip(validated).zip(encoded) {
            match delta {
                Delta::Upsert(obj) => b.upsert(v, obj, raw, frame)?,
                Delta::Delete(_) => b.delete(v, raw)?,
            }
        }
        if b.healed {
            (b.st.stored_bytes, b.st.raw_bytes) = self.recount(&b.overlay)?;
        }
        if b.st.journal_len == 0 {
            b.st.journal_first = b.st.last_seq + 1;
        }
        self.trim_journal(
            &mut b.st,
            &mut b.sb,
            inner.shared.options.journal,
            &b.journal,
            &b.resized,
            0,
        )?;
        if batch.rv.is_some() {
            b.st.last_rv = batch.rv;
        }
        b.st.last_sync_ms = Some(b.now);
        let Builder {
            st,
            mut sb,
            overlay,
            changes,
            ..
        } = b;
        sb.put(key::state_key(), record::seal_value(&st));
        let ticket = inner.stage(sb)?;
        drop(building);
        if let Some(d) = new_dict {
            inner
                .dictionaries
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(d.id(), d);
        }
        *inner.state.write().unwrap_or_else(PoisonError::into_inner) = st;
        // The next batch builds on this one while its flush runs, and
        // shares that flush when it can (see `group_commit`).
        drop(w);
        inner.durable(ticket)?;
        // With the overlay gone, each value usually has one owner left.
        drop(overlay);
        let owned =
            |v: Option<Arc<Value>>| v.map(|a| Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone()));
        Ok(changes
            .into_iter()
            .map(|p| Event {
                seq: p.seq,
                kind: p.kind,
                key: p.key,
                rv: p.rv,
                old: p.old,
                new: owned(p.new),
            })
            .collect())
    }

    /// Each delta's object as JSON, made on every core (see `spread`). An
    /// object too big for a record rejects the batch.
    fn encode(&self, deltas: &[Delta], validated: &[Validated]) -> Result<Vec<Vec<u8>>> {
        let name = &self.inner.name;
        spread::cores()
            .map(
                deltas,
                || (),
                |_, d| match d {
                    Delta::Upsert(o) | Delta::Delete(o) => serde_json::to_vec(o),
                },
            )
            .into_iter()
            .zip(deltas.iter().zip(validated))
            .map(|(json, (d, v))| {
                let json =
                    json.map_err(|e| Error::encode(format!("{name} object {}", v.key), e))?;
                if matches!(d, Delta::Upsert(_)) && json.len() > record::MAX_OBJECT_LEN {
                    return Err(Error::InvalidObject(format!(
                        "{name}: object {} is {} bytes of JSON, more than the {} a record holds",
                        v.key,
                        json.len(),
                        record::MAX_OBJECT_LEN
                    )));
                }
                Ok(json)
            })
            .collect()
    }

    /// Record and raw bytes of every object once `overlay` (the batch's
    /// final state of the keys it touched) is applied.
    fn recount(&self, overlay: &HashMap<String, Prior>) -> Result<(u64, u64)> {
        let (mut stored, mut raw) = (0u64, 0u64);
        for item in self.inner.scan_prefix(&[prefix::OBJECT])? {
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
            let (s, r) = prior.sizes();
            stored += s;
            raw += r;
        }
        Ok((stored, raw))
    }

    /// Trains a (new) dictionary when the collection has grown enough, and
    /// puts it in the batch whose records are the first to use it.
    /// The dictionary new records use: `None` when the state names none,
    /// or one that cannot be loaded. A damaged one is dropped in this batch
    /// and training starts over (with the next id, so no record's
    /// dictionary is ever replaced); the records that need it read as
    /// damage, which starts the relist that rewrites them.
    fn current_dictionary(
        &self,
        st: &mut State,
        sb: &mut WriteBatch,
    ) -> Result<Option<Arc<Dictionary>>> {
        let inner = &self.inner;
        if st.dictionary == 0 {
            return Ok(None);
        }
        match inner.dictionary(st.dictionary) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.is_damage() => {
                let k = key::dictionary_key(st.dictionary);
                // Absent: dropped by an earlier batch, whose training failed.
                if inner.get(&k)?.is_some() {
                    tracing::warn!(collection = %inner.name, error = %e, "dropping a damaged zstd dictionary; writing without one until another is trained");
                    inner.damage.seen(e.to_string());
                    sb.delete(k);
                    st.trained_at = 0;
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Each delta's object as JSON (`jsons`, in the order of `deltas`).
    fn maybe_train(
        &self,
        st: &mut State,
        deltas: &[Delta],
        jsons: &[Vec<u8>],
        sb: &mut WriteBatch,
    ) -> Result<Option<Arc<Dictionary>>> {
        let inner = &self.inner;
        let opts = &inner.shared.options.dictionary;
        let upserts: Vec<&Vec<u8>> = deltas
            .iter()
            .zip(jsons)
            .filter_map(|(d, json)| match d {
                Delta::Upsert(_) => Some(json),
                Delta::Delete(_) => None,
            })
            .collect();
        let expected = st.objects + upserts.len() as u64;
        let due = if st.trained_at == 0 {
            expected >= opts.min_objects
        } else {
            opts.retrain_factor > 0 && expected >= st.trained_at.saturating_mul(opts.retrain_factor)
        };
        // A dictionary holds pieces of its samples, and outlives them: one
        // trained on Secrets would keep values after they were rotated.
        // Nor is one kept beside encrypted records: it would be plaintext.
        let encrypted = inner.shared.options.encryption_key.is_some();
        if !due || opts.max_bytes == 0 || !journal::keeps_values(&inner.id) || encrypted {
            return Ok(None);
        }
        let mut samples: Vec<Vec<u8>> = upserts
            .iter()
            .take(opts.samples)
            .map(|json| json.to_vec())
            .collect();
        let room = opts.samples.saturating_sub(samples.len());
        if room > 0 && st.objects > 0 {
            let stride = (st.objects as usize / room).max(1);
            for item in inner
                .scan_prefix(&[prefix::OBJECT])?
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
                sb.put(key::dictionary_key(id), record::seal(dict.bytes().to_vec()));
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

pub(super) fn record_meta(rv: &str, now: u64) -> RecordMeta {
    RecordMeta {
        rv: rv.to_string(),
        stored_at_ms: now,
    }
}
