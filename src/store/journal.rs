//! The journal: one entry per committed change, seq-numbered, holding the
//! change as a JSON merge patch (RFC 7386) against the previous version.
//!
//! A merge patch cannot set a member to null (null means "remove"), so a
//! member that changes to an explicit null replays as absent; for Kubernetes
//! API objects null and absent mean the same. The full object is always in
//! the objects family anyway: the journal is history, not the source of truth.
//!
//! A Secret's journal entries keep no values (see [`strip_secret_values`]):
//! every value under `data` and `stringData`, and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (a full copy
//! of the applied Secret), is replaced by [`CHANGED`] when it was set or
//! changed, and stays `null` when it was removed. So a rotated credential
//! leaves no old value in the journal; the object record holds only the
//! current one. History and replayed events still say which keys changed.

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::collection::Collection;
use super::engine::WriteBatch;
use super::error::{Error, Result};
use super::key::{self, prefix};
use super::record;
use super::state::State;
use super::{EventKind, CollectionId, JournalEntry, ObjectKey};

/// What a Secret's journal entry holds in place of a value that was set or
/// changed (an Added entry: every value; a Modified one: the changed ones).
pub const CHANGED: &str = "<changed>";

/// The annotation `kubectl apply` leaves, holding the whole applied object.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether the journal of this collection keeps values: every collection's
/// does except core Secrets'.
pub(crate) fn keeps_values(id: &CollectionId) -> bool {
    !id.holds_secrets()
}

/// Replaces the secret values of a Secret (or of a merge patch of one) by
/// [`CHANGED`], keeping removals (`null`) and key names.
pub fn strip_secret_values(patch: &mut Value) {
    let changed = || Value::String(CHANGED.to_string());
    for field in ["data", "stringData"] {
        match patch.get_mut(field) {
            Some(Value::Object(values)) => {
                for value in values.values_mut().filter(|v| !v.is_null()) {
                    *value = changed();
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => *other = changed(),
        }
    }
    if let Some(applied) = patch
        .pointer_mut("/metadata/annotations")
        .and_then(|a| a.get_mut(LAST_APPLIED))
        .filter(|a| !a.is_null())
    {
        *applied = changed();
    }
}

/// The merge patch that turns `old` into `new`.
pub fn merge_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, ov) in o {
                match n.get(k) {
                    None => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    Some(nv) if nv != ov => {
                        patch.insert(k.clone(), merge_diff(ov, nv));
                    }
                    Some(_) => {}
                }
            }
            for (k, nv) in n {
                if !o.contains_key(k) {
                    patch.insert(k.clone(), nv.clone());
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// [`merge_diff`] of two objects as the JSON `serde_json` writes for a
/// `Value` (as the store writes them), to the bytes `serde_json` would
/// write for the patch, without building either object: members whose
/// bytes are equal are equal values and are read past, and only members
/// whose bytes differ are read into.
///
/// Two equal values written differently (`1.0` and `1e0`) read as a
/// change to the new bytes, which is still a patch from `old` to `new`;
/// the store never writes such a pair.
pub fn merge_diff_json(old: &[u8], new: &[u8]) -> serde_json::Result<Vec<u8>> {
    let text = |json| {
        std::str::from_utf8(json)
            .map(str::trim)
            .map_err(serde::de::Error::custom)
    };
    let (old, new) = (text(old)?, text(new)?);
    let mut out = Vec::with_capacity(256);
    if is_object(old) && is_object(new) {
        // Reading the members reads every byte of both: no other check.
        diff_objects(old, new, &mut out)?;
    } else {
        serde_json::from_str::<&RawValue>(old)?;
        out.extend_from_slice(serde_json::from_str::<&RawValue>(new)?.get().as_bytes());
    }
    Ok(out)
}

/// Whether a merge patch (as [`merge_diff_json`] writes it) sets the member
/// at `path`; `true` when the patch cannot be read, which costs a caller
/// only a second look.
pub(crate) fn patch_sets(patch: &[u8], path: &[&str]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    // Not an object: the patch replaces whatever was at this level.
    let Ok(members) = serde_json::from_slice::<Members<'_>>(patch) else {
        return true;
    };
    match members.get(&Name((*first).into())) {
        None => false,
        Some(_) if rest.is_empty() => true,
        Some(value) => patch_sets(value.get().as_bytes(), rest),
    }
}

/// A member name, borrowed from the document unless it holds escapes.
#[derive(serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Name<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

type Members<'a> = std::collections::BTreeMap<Name<'a>, &'a RawValue>;

fn is_object(json: &str) -> bool {
    json.starts_with('{')
}

/// The patch between two JSON objects, `old` and `new` not yet read.
fn diff_objects(old: &str, new: &str, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let o: Members<'_> = serde_json::from_str(old)?;
    let n: Members<'_> = serde_json::from_str(new)?;
    // The patch's members in name order, as a `Map` writes them.
    let mut names: Vec<&Name<'_>> = o.keys().chain(n.keys()).collect();
    names.sort();
    names.dedup();
    out.push(b'{');
    let mut first = true;
    for name in names {
        let (ov, nv) = (o.get(name), n.get(name));
        if let (Some(ov), Some(nv)) = (ov, nv) {
            if ov.get() == nv.get() {
                continue;
            }
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, name.0.as_ref())?;
        out.push(b':');
        match (ov, nv) {
            (Some(ov), Some(nv)) if is_object(ov.get()) && is_object(nv.get()) => {
                diff_objects(ov.get(), nv.get(), out)?
            }
            (_, Some(nv)) => out.extend_from_slice(nv.get().as_bytes()),
            (_, None) => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
    Ok(())
}

/// What a journal record's payload holds (the envelope holds rv and time):
/// a patch, or for an Added entry written since schema v3, `"object":
/// "stored"` in its place. Such an entry holds no copy of the object: the
/// object's own record, at the entry's resourceVersion, is its content.
/// The write that replaces or deletes that record first writes the object
/// into the entry (see `apply`), so an entry never refers to a record that
/// moved on; the history entry of a referring entry says so
/// ([`REFERS_TO_OBJECT`]), which is how that write finds it.
#[derive(serde::Deserialize)]
pub(crate) struct Payload {
    pub kind: EventKind,
    pub key: String,
    /// `None` when absent (a `null` patch is `Some(Value::Null)`).
    #[serde(default, deserialize_with = "present")]
    pub patch: Option<Value>,
    #[serde(default)]
    pub object: Option<String>,
}

/// A member that is there, `null` included (serde reads a `null` into an
/// `Option` as `None` otherwise).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// The `object` member of an entry whose object is in the object record.
const STORED: &str = "stored";

/// The value of a history entry whose journal entry refers to the object
/// record rather than holding the object (other history entries are empty).
pub(crate) const REFERS_TO_OBJECT: &[u8] = b"o";

/// What a journal entry holds.
pub(crate) enum Body {
    /// The change as a merge patch (for Added and Deleted: the object).
    Patch(Value),
    /// Nothing: the object record, at the entry's resourceVersion, is the
    /// object this Added entry added.
    Stored,
}

/// The payload of an Added entry whose object is its record's.
pub(crate) fn encode_reference(key: &str) -> Vec<u8> {
    let (mut out, _) = payload_frame(EventKind::Added, key, 0);
    // Replaces `"patch":`, which the frame ends with.
    out.truncate(out.len() - br#""patch":"#.len());
    out.extend_from_slice(br#""object":""#);
    out.extend_from_slice(STORED.as_bytes());
    out.extend_from_slice(br#""}"#);
    out
}

/// The payload of a journal record, written without re-serializing the
/// patch (for Added it is the object's JSON, already serialized once).
pub(crate) fn encode_payload(kind: EventKind, key: &str, patch_json: &[u8]) -> Vec<u8> {
    let (mut out, suffix) = payload_frame(kind, key, patch_json.len());
    out.extend_from_slice(patch_json);
    out.extend_from_slice(suffix);
    out
}

/// What goes before and after the patch in a journal payload, so that a
/// caller holding the patch already compressed can compress just these.
pub(crate) fn payload_frame(
    kind: EventKind,
    key: &str,
    patch_len: usize,
) -> (Vec<u8>, &'static [u8]) {
    let kind = match kind {
        EventKind::Added => "Added",
        EventKind::Modified => "Modified",
        EventKind::Deleted => "Deleted",
        // `apply` journals only changes; reading this back is refused.
        EventKind::Resync => "Resync",
    };
    // A String always serializes.
    let key = serde_json::to_string(key).unwrap_or_default();
    let mut out = Vec::with_capacity(40 + key.len() + patch_len);
    out.extend_from_slice(br#"{"kind":""#);
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(br#"","key":"#);
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(br#","patch":"#);
    (out, b"}")
}

impl Payload {
    /// The entry's key and what it holds, or why the payload is no entry.
    pub fn read(self) -> Result<(ObjectKey, Body), String> {
        let key = entry_key(self.kind, &self.key)?;
        let stored = refers_to_record(self.kind, &key, self.patch.is_some(), self.object.as_deref())?;
        Ok(match self.patch {
            Some(patch) if !stored => (key, Body::Patch(patch)),
            _ => (key, Body::Stored),
        })
    }
}

/// Whether an entry of `kind` for `key`, holding a patch or not and the
/// `object` member given, refers to its object's record; or why it is no
/// entry. The one rule [`Payload::read`] and [`Collection::entry_head`] share.
fn refers_to_record(
    kind: EventKind,
    key: &ObjectKey,
    has_patch: bool,
    object: Option<&str>,
) -> Result<bool, String> {
    match (has_patch, object) {
        (true, None) => Ok(false),
        (false, Some(STORED)) if kind == EventKind::Added => Ok(true),
        (false, Some(STORED)) => Err(format!(
            "{kind:?} entry for {key} refers to the object record: only Added entries do"
        )),
        (false, Some(other)) => Err(format!("entry for {key} holds object {other:?}")),
        (true, Some(_)) => Err(format!("entry for {key} holds both a patch and an object")),
        (false, None) => Err(format!("entry for {key} holds no patch")),
    }
}

/// A journal payload's kind and key, its patch read through but not kept:
/// what a check needs.
#[derive(serde::Deserialize)]
struct PayloadHead {
    kind: EventKind,
    key: String,
    /// `None` when absent (a `null` patch is a patch).
    #[serde(default, deserialize_with = "present_any")]
    patch: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    object: Option<String>,
}

/// [`present`] for a member read through.
fn present_any<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde::de::IgnoredAny>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// What [`Collection::entry_head`] reads of a journal entry.
pub(crate) struct EntryHead {
    pub key: ObjectKey,
    pub at: std::time::SystemTime,
    pub rv: String,
    /// Whether the entry refers to the object record (see [`Body::Stored`]).
    pub stored: bool,
}

/// The key of a journal entry of `kind` for `key`, or why it is not one.
fn entry_key(kind: EventKind, key: &str) -> Result<ObjectKey, String> {
    if kind == EventKind::Resync {
        return Err(format!(
            "journal entry of kind Resync for {key:?}: the journal holds only changes"
        ));
    }
    key.parse::<ObjectKey>()
        .map_err(|e| format!("journal key {key:?}: {e}"))
}

/// Bounds on what the journal keeps; the oldest entries go first.
///
/// These bounds win over durable consumers' cursors, so that the journal's
/// size stays bounded whoever stops reading: a consumer whose unacknowledged
/// entries were trimmed gets [`Error::JournalTrimmed`](super::Error::JournalTrimmed)
/// and resyncs from the store. [`Store::compact`](super::Store::compact),
/// an operator's action, keeps what consumers need unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalLimits {
    /// Most entries kept.
    pub max_entries: u64,
    /// Most bytes (stored record sizes) kept.
    pub max_bytes: u64,
    /// Oldest entry kept, by the time it was applied (`None`: no age bound).
    pub max_age: Option<std::time::Duration>,
}

impl Default for JournalLimits {
    fn default() -> JournalLimits {
        JournalLimits {
            max_entries: 100_000,
            max_bytes: 64 << 20,
            max_age: None,
        }
    }
}

impl Collection {
    /// Every journal entry of one object that the journal still holds, oldest first.
    pub fn history(&self, key: &ObjectKey) -> Result<Vec<JournalEntry>> {
        let inner = &self.inner;
        let pfx = key::history_prefix(&key.encode());
        let mut out = Vec::new();
        for item in inner.scan_prefix(&pfx)? {
            let (k, _) = item?;
            let Some(seq) = k
                .get(pfx.len()..)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
            else {
                return Err(inner.corrupt(format!("history of {key}"), "malformed history entry"));
            };
            let Some(bytes) = inner.get(&key::journal_key(seq))? else {
                continue;
            };
            match self.decode_entry(seq, &bytes) {
                Ok(entry) => out.push(entry),
                // Trimmed since the history entry was read.
                Err(Error::JournalTrimmed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Every journal entry after `after_seq`, oldest first. Fails with
    /// [`Error::JournalTrimmed`] when some of them were already trimmed, so a
    /// consumer never silently misses events (I8).
    pub fn journal_since(&self, after_seq: u64) -> Result<Vec<JournalEntry>> {
        self.journal_page(after_seq, usize::MAX)
    }

    /// At most `limit` journal entries after `after_seq`, oldest first.
    pub fn journal_page(&self, after_seq: u64, limit: usize) -> Result<Vec<JournalEntry>> {
        let inner = &self.inner;
        let st = inner.state();
        // Entries after `after_seq` were written (it is behind the newest)
        // but the journal now starts past the next one.
        let trimmed_past = |first: u64| -> Result<()> {
            if after_seq.saturating_add(1) < first && after_seq < st.last_seq {
                return Err(Error::JournalTrimmed {
                    collection: inner.name.clone(),
                    after: after_seq,
                    first,
                });
            }
            Ok(())
        };
        trimmed_past(st.journal_first)?;
        let mut out = Vec::new();
        let from = key::journal_key(after_seq.saturating_add(1)).to_vec();
        let journal_end = vec![prefix::JOURNAL + 1];
        let range = (Bound::Included(from), Bound::Excluded(journal_end));
        for item in inner.shared.db().scan(&inner.space, range)?.take(limit) {
            let (k, v) = item?;
            let seq = key::journal_seq(&k)
                .ok_or_else(|| inner.corrupt("journal", "malformed journal key"))?;
            out.push(self.decode_entry(seq, &v)?);
        }
        // A trim written after `st` was read removed entries the scan
        // would have read, with nothing left to show they were there: it
        // started at the first entry left. A trim raises `trimmed_to`
        // before it is written, so one that the scan may have met shows
        // here.
        trimmed_past(inner.trimmed_to.load(Ordering::SeqCst))?;
        Ok(out)
    }

    /// Trims the journal to its newest `keep` entries; returns how many went.
    pub fn compact_journal(&self, keep: u64) -> Result<u64> {
        self.trim_journal_to(JournalLimits {
            max_entries: keep,
            max_bytes: u64::MAX,
            max_age: None,
        })
    }

    /// Trims the journal to within `limits` now; returns how many entries
    /// went. (`apply` keeps it within the store's own limits as it goes.)
    pub fn trim_journal_to(&self, limits: JournalLimits) -> Result<u64> {
        self.trim_journal_keeping(limits, 0)
    }

    /// [`trim_journal_to`](Self::trim_journal_to), but never below `floor`
    /// entries (what a lagging durable consumer still needs).
    pub(crate) fn trim_journal_keeping(&self, limits: JournalLimits, floor: u64) -> Result<u64> {
        let inner = &self.inner;
        inner.shared.writable()?;
        let w = inner.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut st = inner.state();
        let mut sb = WriteBatch::default();
        let removed = self.trim_journal(&mut st, &mut sb, limits, &[], &Default::default(), floor)?;
        if removed > 0 {
            sb.put(key::state_key(), record::seal_value(&st));
            let ticket = inner.stage(sb)?;
            *inner.state.write().unwrap_or_else(PoisonError::into_inner) = st;
            // As `apply` does: the flush runs without the lock, so the
            // collection's writers are not held for it, and one building a
            // batch can join it (see `group_commit`).
            drop(w);
            inner.durable(ticket)?;
        }
        Ok(removed)
    }

    pub(crate) fn decode_entry(&self, seq: u64, bytes: &[u8]) -> Result<JournalEntry> {
        self.decode_entry_read(seq, bytes, false)
    }

    /// [`Self::decode_entry`]; `again` when `bytes` were read again after
    /// the object record they refer to was found moved on.
    fn decode_entry_read(&self, seq: u64, bytes: &[u8], again: bool) -> Result<JournalEntry> {
        let what = format!("journal seq {seq}");
        let (envelope, raw) = self.inner.open_record(&what, bytes)?;
        let payload: Payload = serde_json::from_slice(&raw)
            .map_err(|e| self.inner.corrupt_by(&what, "payload does not parse", e))?;
        let kind = payload.kind;
        let (key, body) = payload.read().map_err(|e| self.inner.corrupt(&what, e))?;
        let patch = match body {
            Body::Patch(patch) => patch,
            Body::Stored => match self.stored_object(&key, &envelope.rv)? {
                Some(object) => object,
                // A write replaced the record since `bytes` were read, and
                // wrote the object into this entry in the same batch.
                None if !again => {
                    return match self.inner.get(&key::journal_key(seq))? {
                        Some(now) => self.decode_entry_read(seq, &now, true),
                        None => Err(Error::JournalTrimmed {
                            collection: self.inner.name.clone(),
                            after: seq.saturating_sub(1),
                            first: self.inner.state().journal_first,
                        }),
                    }
                }
                None => {
                    return Err(self.inner.corrupt(
                        &what,
                        format!(
                            "refers to the record of {key} at resourceVersion {}, which is gone or holds another",
                            envelope.rv
                        ),
                    ))
                }
            },
        };
        Ok(JournalEntry {
            seq,
            kind,
            key,
            rv: envelope.rv,
            at: super::state::time_of(envelope.stored_at_ms),
            patch,
        })
    }

    /// The object `key` as its record holds it, if the record is at `rv`.
    fn stored_object(&self, key: &ObjectKey, rv: &str) -> Result<Option<Value>> {
        let key_str = key.encode();
        let Some(bytes) = self.inner.get(&key::object_key(&key_str))? else {
            return Ok(None);
        };
        let (envelope, json) = self.inner.open_record(&key_str, &bytes)?;
        if envelope.rv != rv {
            return Ok(None);
        }
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| self.inner.corrupt_by(&key_str, "payload is not JSON", e))
    }

    /// The key, time and resourceVersion of a journal entry, and whether
    /// its object is its record's, with what [`Self::decode_entry`] checks
    /// of the entry itself, but without building the patch as a `Value`
    /// or reading the record referred to: every byte is still read, so a
    /// payload that is not JSON is still found. What this cannot read, the
    /// full decode reports. Trimming and checking the journal need no more.
    pub(crate) fn entry_head(&self, seq: u64, bytes: &[u8]) -> Result<EntryHead> {
        let what = format!("journal seq {seq}");
        let (envelope, raw) = self.inner.open_record(&what, bytes)?;
        let head = std::str::from_utf8(&raw)
            .ok()
            .and_then(|text| serde_json::from_str::<PayloadHead>(text).ok());
        let at = super::state::time_of(envelope.stored_at_ms);
        match head {
            Some(head) => entry_key(head.kind, &head.key)
                .and_then(|key| {
                    let stored = refers_to_record(
                        head.kind,
                        &key,
                        head.patch.is_some(),
                        head.object.as_deref(),
                    )?;
                    Ok(EntryHead {
                        key,
                        at,
                        rv: envelope.rv,
                        stored,
                    })
                })
                .map_err(|e| self.inner.corrupt(&what, e)),
            None => self.decode_entry(seq, bytes).map(|e| EntryHead {
                key: e.key,
                at: e.at,
                rv: e.rv,
                stored: false,
            }),
        }
    }

    /// Removes the oldest entries (committed ones, then `pending` ones of the
    /// batch being built) until `st` is within `limits`. Runs inside the
    /// caller's batch, so the trim is atomic with what caused it; `resized`
    /// holds the new sizes of committed entries that batch rewrites (`None`:
    /// removes).
    pub(crate) fn trim_journal(
        &self,
        st: &mut State,
        sb: &mut WriteBatch,
        limits: JournalLimits,
        pending: &[(u64, String, u64)],
        resized: &std::collections::HashMap<u64, Option<u64>>,
        floor: u64,
    ) -> Result<u64> {
        let over =
            |st: &State| st.journal_len > limits.max_entries || st.journal_bytes > limits.max_bytes;
        // Entries applied before this are too old (entries of the batch
        // being built are new by definition).
        let cutoff = limits
            .max_age
            .and_then(|age| std::time::SystemTime::now().checked_sub(age));
        let mut removed = 0;
        let mut drop_entry =
            |st: &mut State, sb: &mut WriteBatch, seq: u64, key: Option<&str>, len: u64| {
                sb.delete(key::journal_key(seq));
                if let Some(key) = key {
                    sb.delete(key::history_entry(key, seq));
                }
                st.journal_len -= 1;
                st.journal_bytes = st.journal_bytes.saturating_sub(len);
                st.journal_first = seq + 1;
                removed += 1;
            };
        if over(st) || (cutoff.is_some() && st.journal_len > 0) {
            for item in self.inner.scan_prefix(&[prefix::JOURNAL])? {
                let (k, v) = item?;
                let seq = key::journal_seq(&k)
                    .ok_or_else(|| self.inner.corrupt("journal", "malformed journal key"))?;
                // An entry this batch rewrote is counted at its new size;
                // one it removed, already.
                let len = match resized.get(&seq) {
                    Some(Some(len)) => *len,
                    Some(None) => continue,
                    None => v.len() as u64,
                };
                let entry = self.entry_head(seq, &v);
                let expired = matches!((&entry, cutoff), (Ok(head), Some(c)) if head.at < c);
                if (!over(st) && !expired) || st.journal_len <= floor {
                    break;
                }
                let key = match entry {
                    Ok(head) => Some(head.key.encode()),
                    Err(Error::Corrupt { reason, .. }) => {
                        // Its history entry stays behind; history() skips it.
                        tracing::warn!(collection = %self.inner.name, seq, %reason, "trimming a corrupt journal entry");
                        None
                    }
                    Err(e) => return Err(e),
                };
                drop_entry(st, sb, seq, key.as_deref(), len);
            }
        }
        for (seq, key, len) in pending {
            if !over(st) || st.journal_len <= floor {
                break;
            }
            drop_entry(st, sb, *seq, Some(key), *len);
        }
        if st.journal_len == 0 {
            st.journal_first = st.last_seq + 1;
        }
        if removed > 0 {
            // Before the trim is written (see `Inner::trimmed_to`). A trim
            // that is then not written leaves it ahead until the next one:
            // a reader at the edge is told of a trim early, and reads again
            // from the store's start, as it does after any trim.
            self.inner
                .trimmed_to
                .fetch_max(st.journal_first, Ordering::SeqCst);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn merge_diff_applies_back_to_the_new_version() {
        let old = json!({"a": 1, "b": {"c": 2, "d": [1, 2]}, "gone": "x"});
        let new = json!({"a": 1, "b": {"c": 3, "d": [1]}, "added": {"x": true}});
        let patch = merge_diff(&old, &new);
        assert_eq!(
            patch,
            json!({"b": {"c": 3, "d": [1]}, "gone": null, "added": {"x": true}})
        );
        let mut rebuilt = old.clone();
        json_patch::merge(&mut rebuilt, &patch);
        assert_eq!(rebuilt, new);
    }

    #[test]
    fn encoded_payloads_parse_back() {
        let patch = json!({"metadata": {"name": "a\"b"}, "x": [1, null]});
        for kind in [EventKind::Added, EventKind::Modified, EventKind::Deleted] {
            let raw = encode_payload(kind, "ns/a\"b", &serde_json::to_vec(&patch).unwrap());
            let back: Payload = serde_json::from_slice(&raw).unwrap();
            assert_eq!(
                (back.kind, back.key.as_str(), back.patch.as_ref()),
                (kind, "ns/a\"b", Some(&patch))
            );
            let (key, body) = back.read().unwrap();
            assert_eq!(key, ObjectKey::namespaced("ns", "a\"b"));
            assert!(matches!(body, Body::Patch(p) if p == patch));
        }
        // A null patch (a delete of an unreadable record) is a patch.
        let raw = encode_payload(EventKind::Deleted, "ns/a", b"null");
        let back: Payload = serde_json::from_slice(&raw).unwrap();
        assert!(matches!(back.read().unwrap().1, Body::Patch(Value::Null)));
        // An Added entry that refers to its object's record.
        let raw = encode_reference("ns/a\"b");
        let back: Payload = serde_json::from_slice(&raw).unwrap();
        let (key, body) = back.read().unwrap();
        assert_eq!(key, ObjectKey::namespaced("ns", "a\"b"));
        assert!(matches!(body, Body::Stored));
    }

    #[test]
    fn a_payload_that_is_no_entry_is_refused_naming_why() {
        let refused = |json: &str| {
            let payload: Payload = serde_json::from_str(json).unwrap();
            payload.read().err().unwrap_or_else(|| panic!("{json} was read as an entry"))
        };
        let err = refused(&String::from_utf8(encode_payload(EventKind::Resync, "ns/a", b"{}")).unwrap());
        assert!(err.contains("Resync") && err.contains("ns/a"), "{err}");
        let err = refused(r#"{"kind":"Modified","key":"ns/a","object":"stored"}"#);
        assert!(err.contains("Modified") && err.contains("only Added"), "{err}");
        let err = refused(r#"{"kind":"Added","key":"ns/a","object":"elsewhere"}"#);
        assert!(err.contains("elsewhere"), "{err}");
        let err = refused(r#"{"kind":"Added","key":"ns/a","patch":{},"object":"stored"}"#);
        assert!(err.contains("both"), "{err}");
        let err = refused(r#"{"kind":"Added","key":"ns/a"}"#);
        assert!(err.contains("no patch"), "{err}");
    }

    #[test]
    fn a_reference_read_before_its_record_was_replaced_is_read_again() {
        let tmp = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(tmp.path().join("s")).unwrap();
        let c = crate::store::json::configmaps(&store);
        let cm = |rv: &str, v: &str| {
            json!({"metadata": {"name": "a", "namespace": "ns", "resourceVersion": rv}, "data": {"k": v}})
        };
        let upsert = |obj: Value, rv: &str| crate::store::Batch {
            deltas: vec![crate::store::Delta::Upsert(obj)],
            rv: Some(rv.into()),
        };
        c.apply(upsert(cm("1", "one"), "1")).unwrap();
        // What a reader scanning the journal read just before the write.
        let read = c.inner.get(&key::journal_key(1)).unwrap().unwrap();
        c.apply(upsert(cm("2", "two"), "2")).unwrap();
        assert_ne!(c.inner.get(&key::journal_key(1)).unwrap().unwrap(), read);
        let entry = c.decode_entry(1, &read).unwrap();
        assert_eq!((entry.kind, entry.rv.as_str()), (EventKind::Added, "1"));
        assert_eq!(entry.patch, cm("1", "one"));
        // Trimmed meanwhile: said so, not reported as damage.
        c.compact_journal(0).unwrap();
        let err = c.decode_entry(1, &read).unwrap_err();
        assert!(matches!(err, Error::JournalTrimmed { .. }), "{err}");
    }

    #[test]
    fn a_trim_written_while_a_page_is_read_is_reported_not_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(tmp.path().join("s")).unwrap();
        let c = crate::store::json::configmaps(&store);
        for i in 1..=10 {
            let cm = json!({"metadata": {"name": format!("cm-{i}"), "namespace": "ns",
                "resourceVersion": i.to_string()}});
            c.apply(crate::store::Batch {
                deltas: vec![crate::store::Delta::Upsert(cm)],
                rv: None,
            })
            .unwrap();
        }
        // A trim of the 4 oldest entries, built and written as an apply
        // writes it, and caught where an apply is between the two: in the
        // engine, not yet in the collection's state, which a reader reads
        // before it scans.
        let limits = JournalLimits {
            max_entries: 6,
            max_bytes: u64::MAX,
            max_age: None,
        };
        let inner = &c.inner;
        let (mut st, mut sb) = (inner.state(), WriteBatch::default());
        let removed = c
            .trim_journal(&mut st, &mut sb, limits, &[], &Default::default(), 0)
            .unwrap();
        assert_eq!((removed, st.journal_first), (4, 5));
        let ticket = inner.stage(sb).unwrap();
        inner.durable(ticket).unwrap();
        assert_eq!(inner.state().journal_first, 1, "the reader's view");

        let err = c.journal_page(0, 100).unwrap_err();
        assert!(
            matches!(err, Error::JournalTrimmed { after: 0, first: 5, .. }),
            "{err}"
        );
        let err = c.journal_page(3, 100).unwrap_err();
        assert!(matches!(err, Error::JournalTrimmed { .. }), "{err}");
        // From the first entry left on, the page is whole.
        let seqs = |after| {
            c.journal_page(after, 100)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(4), (5..=10).collect::<Vec<_>>());
        assert_eq!(seqs(10), Vec::<u64>::new());
    }

    #[test]
    fn secret_values_become_markers_and_removals_stay() {
        let mut patch = json!({
            "data": {"password": "aHVudGVyMw==", "gone": null},
            "stringData": {"extra": "hunter2"},
            "metadata": {"annotations": {LAST_APPLIED: "{\"data\":{}}", "other": "kept"}},
            "type": "Opaque"
        });
        strip_secret_values(&mut patch);
        assert_eq!(
            patch,
            json!({
                "data": {"password": CHANGED, "gone": null},
                "stringData": {"extra": CHANGED},
                "metadata": {"annotations": {LAST_APPLIED: CHANGED, "other": "kept"}},
                "type": "Opaque"
            })
        );
        // A patch that removes all data, and one that touches none.
        let mut all_gone = json!({"data": null});
        strip_secret_values(&mut all_gone);
        assert_eq!(all_gone, json!({"data": null}));
        let mut labels = json!({"metadata": {"labels": {"a": "b"}}});
        strip_secret_values(&mut labels);
        assert_eq!(labels, json!({"metadata": {"labels": {"a": "b"}}}));
    }

    /// Arbitrary JSON values, objects likelier at every level (as in
    /// Kubernetes objects), with few distinct names so that members meet.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            r#"[a-c"\\\u{e9}]{0,3}"#.prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-d\"/]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Two versions of one document: the second a few edits from the first.
    fn versions() -> impl Strategy<Value = (Value, Value)> {
        (json_value(), json_value(), json_value()).prop_map(|(a, b, c)| {
            let old = json!({"metadata": {"name": "x", "labels": a.clone()}, "spec": b, "status": a});
            let new = json!({"metadata": {"name": "x", "labels": c.clone()}, "spec": old["spec"].clone(), "status": c});
            (old, new)
        })
    }

    proptest! {
        #[test]
        fn the_patch_from_json_is_the_patch_from_values(
            (old, new) in prop_oneof![versions(), (json_value(), json_value())]
        ) {
            let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
            let patch = merge_diff_json(&bytes(&old), &bytes(&new)).unwrap();
            prop_assert_eq!(
                String::from_utf8(patch).unwrap(),
                String::from_utf8(bytes(&merge_diff(&old, &new))).unwrap()
            );
        }
    }

    #[test]
    fn the_patch_from_json_reads_only_json() {
        assert!(merge_diff_json(b"{\"a\":1}", b"{\"a\":").is_err());
        assert!(merge_diff_json(b"{\"a\":", b"{}").is_err());
        assert!(merge_diff_json(b"{\"a\":[1}", b"{\"a\":2}").is_err());
        // A member whose bytes differ is read into, and must be JSON there.
        assert!(merge_diff_json(b"{\"a\":{\"b\":1}}", b"{\"a\":{\"b\" 2}}").is_err());
    }

    #[test]
    fn a_patch_says_which_members_it_sets() {
        let labels = ["metadata", "labels"];
        let sets = |patch: Value| patch_sets(&serde_json::to_vec(&patch).unwrap(), &labels);
        assert!(sets(json!({"metadata": {"labels": {"app": "web"}}})));
        assert!(sets(json!({"metadata": {"labels": null}})), "a removal sets it too");
        assert!(!sets(json!({"metadata": {"annotations": {"labels": "x"}}})));
        assert!(!sets(json!({"spec": {"metadata": {"labels": {}}}})));
        assert!(!sets(json!({})));
        // A patch that replaces the whole metadata, or the whole object.
        assert!(sets(json!({"metadata": "replaced"})));
        assert!(sets(json!("replaced")));
        assert!(patch_sets(b"{not json", &labels), "unreadable: look again");
    }

    #[test]
    fn escaped_names_compare_and_write_as_values_do() {
        let old = json!({"a\"b": 1, "\u{e9}": {"x": 1}, "c/d": 2});
        let new = json!({"a\"b": 2, "\u{e9}": {"x": 1, "y": null}, "e": [1]});
        let patch =
            merge_diff_json(&serde_json::to_vec(&old).unwrap(), &serde_json::to_vec(&new).unwrap()).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&patch).unwrap(), merge_diff(&old, &new));
    }

    #[test]
    fn identical_objects_give_an_empty_patch() {
        let v = json!({"metadata": {"name": "a"}});
        assert_eq!(merge_diff(&v, &v), json!({}));
    }
}
