//! The simulated etcd and the watch caches in front of it: one global
//! resourceVersion counter, the current objects of every resource, and per
//! resource a history ring sized as kube-apiserver's watch cache sizes its
//! own (see [`super::history`]), from which watches are served and any
//! snapshot newer than the ring's floor can be rebuilt.
//!
//! A snapshot at version `S` is the current map with, for each key written
//! after `S`, the state before its first later write (the event's `prev`)
//! laid over it. Pages of one list therefore share objects with the live
//! state instead of copying it. kube-apiserver serves such lists from etcd,
//! which keeps 5 to 10 minutes of history; here a snapshot is only as old as
//! the resource's ring allows (at least 75 s on a busy resource), the window
//! of the watch cache's own snapshots (ListFromCacheSnapshot).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::clock::SimTime;
use super::filter::Filter;
use super::history::{History, HistoryConfig};
use super::managed_fields::{record_update, zero_object, FieldManager};
use super::object::Stored;
use super::resources::{ResourceDef, ResourceId, RESOURCES};
use super::status::ApiError;

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One write, as history keeps it.
#[derive(Debug)]
pub(crate) struct Event {
    /// The version this write produced.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// The object after the write (for a delete: its last state carrying
    /// the deletion's version).
    pub object: Arc<Stored>,
    /// The object before the write.
    pub prev: Option<Arc<Stored>>,
    /// When the watch cache recorded it (`RecordTime`), which sizes the ring.
    pub time: SimTime,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Page {
    /// The items, in key order.
    pub items: Vec<Arc<Stored>>,
    /// Key of the last item when more selected items follow.
    pub next_after: Option<String>,
    /// How many selected items follow, when counted.
    pub remaining: Option<u64>,
}

/// What a page asks for.
pub(crate) struct PageQuery<'a> {
    /// Resource.
    pub resource: ResourceId,
    /// Snapshot version.
    pub at: u64,
    /// Continue after this key.
    pub after: Option<&'a str>,
    /// At most this many items.
    pub limit: Option<usize>,
    /// Selection.
    pub filter: &'a Filter,
}

/// What a resource's cacher has seen, which is the version of the
/// bookmarks it sends (`lastProcessedResourceVersion` in cacher.go
/// `dispatchEvents`).
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Version of the cacher's initial list.
    listed: u64,
    /// Version of the resource's newest event.
    last_event: u64,
    /// When that event was recorded.
    last_event_time: SimTime,
    /// Version etcd last reported through a progress notification.
    notified: u64,
}

/// The whole simulated datastore.
pub(crate) struct State {
    rv: u64,
    /// The newest version compacted away on request (0: never).
    compacted: u64,
    objects: Vec<BTreeMap<String, Arc<Stored>>>,
    histories: Vec<History>,
    progress: Vec<Progress>,
    history_config: HistoryConfig,
    /// The simulated time of the write in progress.
    now: SimTime,
    /// The simulated wall clock of the write in progress.
    wall: jiff::Timestamp,
    /// Who makes the write in progress; `None` leaves managedFields as the
    /// object has them (the fixtures carry their own).
    writer: Option<FieldManager>,
    rng: StdRng,
}

impl State {
    /// An empty store whose watch caches size their history by `history`.
    pub fn new(history: HistoryConfig, seed: u64) -> State {
        State {
            rv: 1,
            compacted: 0,
            objects: RESOURCES.iter().map(|_| BTreeMap::new()).collect(),
            histories: RESOURCES.iter().map(|_| History::new(history, 1)).collect(),
            progress: vec![Progress::default(); RESOURCES.len()],
            history_config: history,
            now: SimTime::ZERO,
            wall: jiff::Timestamp::UNIX_EPOCH,
            writer: None,
            rng: StdRng::seed_from_u64(seed ^ 0x005E_ED0F_u64),
        }
    }

    /// Sets the clock for the writes that follow.
    pub fn set_time(&mut self, now: SimTime, wall: jiff::Timestamp) {
        self.now = now;
        self.wall = wall;
    }

    /// Sets who makes the writes that follow (`None`: untracked).
    pub fn set_writer(&mut self, writer: Option<FieldManager>) {
        self.writer = writer;
    }

    /// The wall-clock time of the write in progress, as Kubernetes writes
    /// timestamps.
    pub fn timestamp(&self) -> String {
        super::clock::format_timestamp(self.wall)
    }

    /// Starts every resource's watch cache afresh at the current version,
    /// as kube-apiserver's cachers do with their initial list: what was
    /// written before is in the objects, not in any history.
    pub fn start_watch_caches(&mut self) {
        let rv = self.rv;
        for (h, p) in self.histories.iter_mut().zip(&mut self.progress) {
            *h = History::new(self.history_config, rv);
            *p = Progress {
                listed: rv,
                last_event_time: self.now,
                ..Progress::default()
            };
        }
    }

    /// The current global resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The newest version compacted away on request.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// A watch of `r` from a version older than this gets 410.
    pub fn floor(&self, r: ResourceId) -> u64 {
        self.histories[r].floor()
    }

    /// The watch cache of `r`.
    pub fn history(&self, r: ResourceId) -> &History {
        &self.histories[r]
    }

    /// The version a bookmark of `r` carries now: the newest the cacher
    /// has seen, by an event or by a progress notification.
    pub fn bookmark_rv(&self, r: ResourceId) -> u64 {
        let p = &self.progress[r];
        p.listed.max(p.last_event).max(p.notified)
    }

    /// A progress notification reaches `r`'s cacher: it has seen
    /// everything up to the current version. etcd sends one to each watch
    /// that had no event for a whole interval; a consistent read asks for
    /// one.
    pub fn notify_progress(&mut self, r: ResourceId) {
        self.progress[r].notified = self.rv;
    }

    /// The periodic progress notification: every resource without an
    /// event in the last `interval` learns the current version.
    pub fn progress_tick(&mut self, interval: std::time::Duration) {
        let (now, rv) = (self.now, self.rv);
        for p in &mut self.progress {
            if now.saturating_sub(p.last_event_time) >= interval {
                p.notified = rv;
            }
        }
    }

    /// Spends `n` versions on writes to resources the simulator does not
    /// serve (Leases and the like): no event, but the counter moves.
    pub fn skip_versions(&mut self, n: u64) {
        self.rv += n;
    }

    /// Objects of every resource.
    pub fn total(&self) -> usize {
        self.objects.iter().map(BTreeMap::len).sum()
    }

    /// One object by key.
    pub fn get(&self, r: ResourceId, key: &str) -> Option<Arc<Stored>> {
        self.objects[r].get(key).cloned()
    }

    /// Current objects of a resource, in key order.
    pub fn current(&self, r: ResourceId) -> impl Iterator<Item = &Arc<Stored>> {
        self.objects[r].values()
    }

    /// The first object at or after `probe` in key order, wrapping around:
    /// a cheap way to pick a pseudo-random object.
    pub fn sample(&self, r: ResourceId, probe: &str) -> Option<Arc<Stored>> {
        let map = &self.objects[r];
        map.range::<str, _>((Bound::Included(probe), Bound::Unbounded))
            .next()
            .or_else(|| map.iter().next())
            .map(|(_, v)| v.clone())
    }

    /// Drops history up to `target` (clamped to the current version) in
    /// every watch cache, as if each had relisted there.
    pub fn compact_to(&mut self, target: u64) {
        let target = target.min(self.rv);
        for h in &mut self.histories {
            h.compact_to(target);
        }
        self.compacted = self.compacted.max(target);
    }

    /// Up to `max` events of `r` after version `after`, or 410 when some of
    /// them have been evicted.
    pub fn events_after(
        &self,
        r: ResourceId,
        after: u64,
        max: usize,
    ) -> Result<Vec<Arc<Event>>, ApiError> {
        self.histories[r].since(after, max)
    }

    /// For each key of `r` written after `at`: its state at `at`.
    fn overrides(
        &self,
        r: ResourceId,
        at: u64,
    ) -> Result<BTreeMap<String, Option<Arc<Stored>>>, ApiError> {
        let mut out = BTreeMap::new();
        if at >= self.rv {
            return Ok(out);
        }
        for e in self.histories[r].after(at)? {
            out.entry(e.object.key.clone())
                .or_insert_with(|| e.prev.clone());
        }
        Ok(out)
    }

    /// One page of the snapshot at `q.at`.
    pub fn page(&self, q: &PageQuery<'_>) -> Result<Page, ApiError> {
        let res = &RESOURCES[q.resource];
        let overrides = self.overrides(q.resource, q.at)?;
        let (lower, upper) = key_range(res, q.filter.namespace.as_deref(), q.after);
        let current =
            self.objects[q.resource].range::<str, _>((as_str_bound(&lower), as_str_bound(&upper)));
        let over = overrides.range::<str, _>((as_str_bound(&lower), as_str_bound(&upper)));
        let mut selected = Merged::new(current, over).filter(|o| q.filter.matches(o));
        let limit = q.limit.unwrap_or(usize::MAX);
        let items: Vec<Arc<Stored>> = selected.by_ref().take(limit).cloned().collect();
        let (next_after, remaining) = if items.len() < limit {
            (None, None)
        } else if q.filter.has_selectors() {
            let more = selected.next().is_some();
            (more.then(|| items[items.len() - 1].key.clone()), None)
        } else {
            let rest = selected.count() as u64;
            if rest > 0 {
                (Some(items[items.len() - 1].key.clone()), Some(rest))
            } else {
                (None, None)
            }
        };
        Ok(Page {
            items,
            next_after,
            remaining,
        })
    }

    /// Records one write: the event goes to the resource's watch cache.
    fn commit(
        &mut self,
        r: ResourceId,
        kind: EventType,
        object: Arc<Stored>,
        prev: Option<Arc<Stored>>,
    ) -> Arc<Event> {
        let ev = Arc::new(Event {
            rv: self.rv,
            kind,
            object: object.clone(),
            prev,
            time: self.now,
        });
        match kind {
            EventType::Deleted => {
                self.objects[r].remove(&object.key);
            }
            _ => {
                self.objects[r].insert(object.key.clone(), object);
            }
        }
        self.histories[r].push(ev.clone());
        let p = &mut self.progress[r];
        p.last_event = self.rv;
        p.last_event_time = self.now;
        ev
    }

    /// POST: creates an object. `path_ns` is the namespace in the URL (or,
    /// from Rust, the object's own).
    pub fn create(
        &mut self,
        r: ResourceId,
        path_ns: Option<&str>,
        mut value: Value,
    ) -> Result<Arc<Event>, ApiError> {
        let res = &RESOURCES[r];
        check_type(res, &value)?;
        secret_defaults(res, &mut value)?;
        let ns = object_namespace(res, path_ns, &value)?;
        let meta = metadata_mut(&mut value)?;
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", self.suffix()),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        res.kind
                    )))
                }
            },
        };
        validate_name(res, &name)?;
        let key = res.key(ns.as_deref(), &name);
        if self.objects[r].contains_key(&key) {
            return Err(ApiError::already_exists(res.plural, &name));
        }
        self.rv += 1;
        meta.insert("name".into(), json!(name));
        match &ns {
            Some(ns) => meta.insert("namespace".into(), json!(ns)),
            None => meta.remove("namespace"),
        };
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        if !meta.get("uid").is_some_and(Value::is_string) {
            let uid = uid(&mut self.rng);
            meta.insert("uid".into(), json!(uid));
        }
        let now = self.timestamp();
        if !meta.get("creationTimestamp").is_some_and(Value::is_string) {
            meta.insert("creationTimestamp".into(), json!(now));
        }
        meta.entry("generation").or_insert(json!(1));
        if let Some(who) = &self.writer {
            record_update(res, &zero_object(res), &mut value, who, &now);
        }
        let stored = Stored::new(res, value);
        Ok(self.commit(r, EventType::Added, stored, None))
    }

    /// POST, as kube-apiserver takes it: the server owns `uid` and
    /// `creationTimestamp` and sets them on every create, whatever the body
    /// says (`rest.BeforeCreate` → `FillObjectMetaSystemFields`). [`Self::create`]
    /// keeps them, for the generated objects that stand for a past.
    pub fn create_now(
        &mut self,
        r: ResourceId,
        path_ns: Option<&str>,
        mut value: Value,
    ) -> Result<Arc<Event>, ApiError> {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("uid");
            meta.remove("creationTimestamp");
        }
        self.create(r, path_ns, value)
    }

    /// PUT: replaces an object. A body carrying a resourceVersion must carry
    /// the current one (optimistic concurrency). A replace that changes
    /// nothing is not a write, as in etcd: no new version, no event (`None`).
    pub fn replace(
        &mut self,
        r: ResourceId,
        path_ns: Option<&str>,
        name: &str,
        value: Value,
    ) -> Result<Option<Arc<Event>>, ApiError> {
        let res = &RESOURCES[r];
        let ns = object_namespace(res, path_ns, &value)?;
        let existing = self.objects[r]
            .get(&res.key(ns.as_deref(), name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(res.plural, name))?;
        let old = existing.item();
        let time = self.timestamp();
        let writer = self.writer.clone();
        match prepare_replace(
            r,
            ns.as_deref(),
            name,
            value,
            &existing,
            &old,
            writer.as_ref(),
            &time,
        )? {
            Some(value) => Ok(Some(self.commit_replace(r, value, existing))),
            None => Ok(None),
        }
    }

    /// Commits a replacement prepared by [`prepare_replace`] against
    /// `base`, which the caller has checked is still the current object.
    pub fn commit_replace(
        &mut self,
        r: ResourceId,
        mut value: Value,
        base: Arc<Stored>,
    ) -> Arc<Event> {
        self.rv += 1;
        value["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let stored = Stored::new(&RESOURCES[r], value);
        self.commit(r, EventType::Modified, stored, Some(base))
    }

    /// DELETE: removes an object; the event carries its last state with the
    /// deletion's version.
    pub fn delete(
        &mut self,
        r: ResourceId,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Arc<Event>, ApiError> {
        let res = &RESOURCES[r];
        let key = res.key(ns, name);
        let existing = self.objects[r]
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res.plural, name))?;
        self.rv += 1;
        let last = existing.with_rv(res, self.rv);
        Ok(self.commit(r, EventType::Deleted, last, Some(existing)))
    }

    /// A random suffix for `generateName`, from the alphabet the real server
    /// uses (no vowels, no confusable digits).
    fn suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }
}

/// Validates a replacement of `existing` (whose parsed item form is `old`),
/// carries over what the server owns (uid, creation time, generation) and
/// records the write in managedFields as `who`'s at `time`; `None` when
/// nothing would change. Needs no lock: the expensive JSON work of a write
/// happens here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare_replace(
    r: ResourceId,
    ns: Option<&str>,
    name: &str,
    mut value: Value,
    existing: &Stored,
    old: &Value,
    who: Option<&FieldManager>,
    time: &str,
) -> Result<Option<Value>, ApiError> {
    let res = &RESOURCES[r];
    check_type(res, &value)?;
    secret_defaults(res, &mut value)?;
    // Stored objects carry no type fields; compare like with like.
    if let Some(m) = value.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    let meta = metadata_mut(&mut value)?;
    match meta.get("name").and_then(Value::as_str) {
        Some(n) if n == name => {}
        None => {
            meta.insert("name".into(), json!(name));
        }
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
    }
    if let Some(rv) = meta.get("resourceVersion").and_then(Value::as_str) {
        if !rv.is_empty() && rv != existing.rv.to_string() {
            return Err(ApiError::conflict(res.plural, name));
        }
    }
    match ns {
        Some(ns) => meta.insert("namespace".into(), json!(ns)),
        None => meta.remove("namespace"),
    };
    for keep in ["uid", "creationTimestamp"] {
        if let Some(v) = old["metadata"].get(keep) {
            meta.insert(keep.into(), v.clone());
        }
    }
    let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
    meta.insert("generation".into(), json!(generation));
    meta.insert("resourceVersion".into(), json!(existing.rv.to_string()));
    if value.get("spec") != old.get("spec") {
        value["metadata"]["generation"] = json!(generation + 1);
    }
    if let Some(who) = who {
        record_update(res, old, &mut value, who, time);
    }
    Ok((value != *old).then_some(value))
}

/// A random version-4 UUID.
pub(crate) fn uid(rng: &mut impl Rng) -> String {
    let b: [u8; 16] = rng.random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]]),
    )
}

/// A Secret as a real API server stores it, on create, update and patch
/// alike: its `type` defaults to `Opaque` (`SetDefaults_Secret`), and its
/// `stringData` is write-only: each value is base64-encoded into `data`
/// (replacing a `data` key of the same name) and `stringData` is dropped.
fn secret_defaults(res: &ResourceDef, value: &mut Value) -> Result<(), ApiError> {
    if !(res.group.is_empty() && res.kind == "Secret") {
        return Ok(());
    }
    let Some(object) = value.as_object_mut() else {
        return Ok(());
    };
    if object
        .get("type")
        .is_none_or(|t| t.is_null() || t.as_str() == Some(""))
    {
        object.insert("type".into(), json!("Opaque"));
    }
    let string_data = match object.remove("stringData") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: stringData must be an object of strings, not {other}"
            )))
        }
    };
    let data = object
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if data.is_null() {
        *data = Value::Object(Default::default());
    }
    let Some(data) = data.as_object_mut() else {
        return Err(ApiError::bad_request(
            "Secret in version \"v1\" cannot be handled as a Secret: data must be an object",
        ));
    };
    for (key, v) in string_data {
        let Value::String(text) = v else {
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: stringData.{key} must be a string, not {v}"
            )));
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        data.insert(key, Value::String(encoded));
    }
    Ok(())
}

fn check_type(res: &ResourceDef, value: &Value) -> Result<(), ApiError> {
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of the request was not a {} object",
            res.kind
        )));
    }
    if let Some(v) = value.get("apiVersion").and_then(Value::as_str) {
        if v != res.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                res.api_version()
            )));
        }
    }
    if let Some(k) = value.get("kind").and_then(Value::as_str) {
        if k != res.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )));
        }
    }
    Ok(())
}

fn metadata_mut(value: &mut Value) -> Result<&mut serde_json::Map<String, Value>, ApiError> {
    let obj = value
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body is not a JSON object"))?;
    obj.entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// The namespace an object goes to: the URL's, which the body must agree
/// with; without a URL namespace the body's, or `default`.
fn object_namespace(
    res: &ResourceDef,
    path_ns: Option<&str>,
    value: &Value,
) -> Result<Option<String>, ApiError> {
    if !res.namespaced {
        return Ok(None);
    }
    let body_ns = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match (path_ns, body_ns) {
        (Some(p), Some(b)) if p != b => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (Some(p), _) => Ok(Some(p.to_string())),
        (None, Some(b)) => Ok(Some(b.to_string())),
        (None, None) => Ok(Some("default".to_string())),
    }
}

/// Names must be DNS subdomains, as for most built-in resources.
fn validate_name(res: &ResourceDef, name: &str) -> Result<(), ApiError> {
    let ok = name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            res.kind
        )))
    }
}

/// Bounds of a page scan: the namespace's key range, narrowed to keys after
/// the continue key.
fn key_range(
    res: &ResourceDef,
    namespace: Option<&str>,
    after: Option<&str>,
) -> (Bound<String>, Bound<String>) {
    let (mut lower, upper) = match (res.namespaced, namespace) {
        // '0' follows '/' in ASCII: every "ns/..." key sorts below "ns0".
        (true, Some(ns)) => (
            Bound::Included(format!("{ns}/")),
            Bound::Excluded(format!("{ns}0")),
        ),
        _ => (Bound::Unbounded, Bound::Unbounded),
    };
    if let Some(a) = after {
        let past_lower = match &lower {
            Bound::Included(l) => a >= l.as_str(),
            _ => true,
        };
        if past_lower {
            lower = Bound::Excluded(a.to_string());
        }
    }
    (lower, upper)
}

fn as_str_bound(b: &Bound<String>) -> Bound<&str> {
    match b {
        Bound::Included(s) => Bound::Included(s.as_str()),
        Bound::Excluded(s) => Bound::Excluded(s.as_str()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The current objects with the snapshot's overrides laid over them, in key
/// order.
struct Merged<'a, C, O>
where
    C: Iterator<Item = (&'a String, &'a Arc<Stored>)>,
    O: Iterator<Item = (&'a String, &'a Option<Arc<Stored>>)>,
{
    current: std::iter::Peekable<C>,
    over: std::iter::Peekable<O>,
}

impl<'a, C, O> Merged<'a, C, O>
where
    C: Iterator<Item = (&'a String, &'a Arc<Stored>)>,
    O: Iterator<Item = (&'a String, &'a Option<Arc<Stored>>)>,
{
    fn new(current: C, over: O) -> Self {
        Merged {
            current: current.peekable(),
            over: over.peekable(),
        }
    }
}

impl<'a, C, O> Iterator for Merged<'a, C, O>
where
    C: Iterator<Item = (&'a String, &'a Arc<Stored>)>,
    O: Iterator<Item = (&'a String, &'a Option<Arc<Stored>>)>,
{
    type Item = &'a Arc<Stored>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering;
        loop {
            let order = match (self.current.peek(), self.over.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((ck, _)), Some((ok, _))) => ck.cmp(ok),
            };
            if order == Ordering::Less {
                if let Some((_, obj)) = self.current.next() {
                    return Some(obj);
                }
                continue;
            }
            if order == Ordering::Equal {
                // The snapshot's state replaces the current one.
                self.current.next();
            }
            if let Some((_, Some(obj))) = self.over.next() {
                return Some(obj);
            }
            // Absent at the snapshot: skip.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::by_plural;

    fn pod(ns: &str, name: &str, app: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": app}}, "spec": {}})
    }

    fn names(p: &Page) -> Vec<String> {
        p.items.iter().map(|o| o.key.clone()).collect()
    }

    fn query<'a>(
        r: ResourceId,
        at: u64,
        after: Option<&'a str>,
        limit: Option<usize>,
        f: &'a Filter,
    ) -> PageQuery<'a> {
        PageQuery {
            resource: r,
            at,
            after,
            limit,
            filter: f,
        }
    }

    #[test]
    fn snapshot_survives_later_writes() {
        let r = by_plural("pods").unwrap();
        let mut s = State::new(HistoryConfig::default(), 1);
        for i in 0..5 {
            s.create(r, None, pod("a", &format!("p{i}"), "x")).unwrap();
        }
        let at = s.rv();
        s.delete(r, Some("a"), "p1").unwrap();
        s.create(r, None, pod("a", "p10", "x")).unwrap();
        let mut changed = pod("a", "p3", "y");
        changed["metadata"]["resourceVersion"] = json!(s.get(r, "a/p3").unwrap().rv.to_string());
        s.replace(r, Some("a"), "p3", changed).unwrap().unwrap();
        let f = Filter::default();
        let page = s.page(&query(r, at, None, None, &f)).unwrap();
        assert_eq!(names(&page), ["a/p0", "a/p1", "a/p2", "a/p3", "a/p4"]);
        assert_eq!(page.items[3].labels["app"], "x");
        let now = s.page(&query(r, s.rv(), None, None, &f)).unwrap();
        assert_eq!(names(&now), ["a/p0", "a/p10", "a/p2", "a/p3", "a/p4"]);
        let paged = s.page(&query(r, at, Some("a/p1"), Some(2), &f)).unwrap();
        assert_eq!(names(&paged), ["a/p2", "a/p3"]);
        assert_eq!(paged.next_after.as_deref(), Some("a/p3"));
        assert_eq!(paged.remaining, Some(1));
    }

    #[test]
    fn histories_are_per_resource_and_compaction_gives_410() {
        let cms = by_plural("configmaps").unwrap();
        let pods = by_plural("pods").unwrap();
        let mut s = State::new(
            HistoryConfig {
                window: std::time::Duration::from_secs(75),
                lower_bound: 3,
                upper_bound: 3,
            },
            1,
        );
        s.create(pods, None, pod("a", "p", "x")).unwrap();
        s.start_watch_caches();
        assert_eq!(s.floor(pods), 2, "a fresh cache serves from its list");
        for i in 0..5 {
            s.create(
                cms,
                Some("n"),
                json!({"metadata": {"name": format!("c{i}")}}),
            )
            .unwrap();
        }
        assert_eq!(s.rv(), 7);
        // Five configmap events in a ring of three: the two oldest are gone.
        assert_eq!(s.floor(cms), 4);
        assert_eq!(s.events_after(cms, 4, 10).unwrap().len(), 3);
        assert_eq!(s.events_after(cms, 3, 10).unwrap_err().code, 410);
        // The pods' ring saw none of it: a pod watch from its list version
        // is still served, though the global counter moved on.
        assert!(s.events_after(pods, 2, 10).unwrap().is_empty());
        let f = Filter::default();
        assert_eq!(
            s.page(&query(cms, 3, None, None, &f)).unwrap_err().code,
            410
        );
        assert_eq!(
            s.page(&query(cms, 5, None, None, &f)).unwrap().items.len(),
            3
        );
        s.compact_to(6);
        assert_eq!(s.compacted(), 6);
        assert_eq!(s.events_after(cms, 6, 10).unwrap().len(), 1);
        assert_eq!(s.events_after(pods, 5, 10).unwrap_err().code, 410);
        s.compact_to(100);
        assert_eq!(s.compacted(), 7);
        assert!(s.events_after(cms, 7, 10).unwrap().is_empty());
    }

    #[test]
    fn bookmarks_carry_what_the_cacher_has_seen() {
        let cms = by_plural("configmaps").unwrap();
        let pods = by_plural("pods").unwrap();
        let mut s = State::new(HistoryConfig::default(), 1);
        s.start_watch_caches();
        s.create(cms, Some("n"), json!({"metadata": {"name": "c"}}))
            .unwrap();
        assert_eq!(s.bookmark_rv(cms), 2);
        assert_eq!(s.bookmark_rv(pods), 1, "no pod event, no progress yet");
        s.skip_versions(3);
        s.set_time(
            std::time::Duration::from_secs(5),
            jiff::Timestamp::UNIX_EPOCH,
        );
        s.progress_tick(std::time::Duration::from_secs(5));
        assert_eq!(s.bookmark_rv(pods), 5);
        assert_eq!(s.bookmark_rv(cms), 5, "idle for the whole interval");
        s.create(cms, Some("n"), json!({"metadata": {"name": "d"}}))
            .unwrap();
        s.skip_versions(1);
        s.progress_tick(std::time::Duration::from_secs(5));
        assert_eq!(s.bookmark_rv(cms), 6, "busy: no notification");
        assert_eq!(s.bookmark_rv(pods), 7);
        s.notify_progress(cms);
        assert_eq!(s.bookmark_rv(cms), 7);
    }

    #[test]
    fn a_create_over_the_api_gets_the_servers_uid_and_time() {
        let cms = by_plural("configmaps").unwrap();
        let mut s = State::new(HistoryConfig::default(), 1);
        let wall: jiff::Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        s.set_time(std::time::Duration::from_secs(1), wall);
        let past = json!({"metadata": {"name": "c", "uid": "from-the-client",
            "creationTimestamp": "2020-01-01T00:00:00Z"}});
        let made = s.create_now(cms, Some("n"), past.clone()).unwrap();
        let meta = &made.object.item()["metadata"];
        assert_eq!(meta["creationTimestamp"], "2026-12-01T10:00:00Z");
        let uid = meta["uid"].as_str().unwrap();
        assert!(uid != "from-the-client" && uid.len() == 36, "{uid}");
        // The generated objects keep the past they stand for.
        let mut kept = past;
        kept["metadata"]["name"] = json!("d");
        let made = s.create(cms, Some("n"), kept).unwrap();
        let meta = &made.object.item()["metadata"];
        assert_eq!(meta["creationTimestamp"], "2020-01-01T00:00:00Z");
        assert_eq!(meta["uid"], "from-the-client");
    }

    #[test]
    fn a_secret_without_a_type_is_opaque() {
        let secrets = by_plural("secrets").unwrap();
        let mut s = State::new(HistoryConfig::default(), 1);
        let typed = |s: &mut State, name: &str, ty: Value| {
            let mut secret = json!({"metadata": {"name": name}, "stringData": {"k": "v"}});
            if !ty.is_null() || name == "null" {
                secret["type"] = ty;
            }
            let made = s.create(secrets, Some("n"), secret).unwrap();
            made.object.item()["type"].clone()
        };
        assert_eq!(typed(&mut s, "absent", Value::Null), "Opaque");
        assert_eq!(typed(&mut s, "null", Value::Null), "Opaque");
        assert_eq!(typed(&mut s, "empty", json!("")), "Opaque");
        assert_eq!(
            typed(&mut s, "tls", json!("kubernetes.io/tls")),
            "kubernetes.io/tls"
        );
    }

    #[test]
    fn writes_validate_like_the_api_server() {
        let r = by_plural("pods").unwrap();
        let mut s = State::new(HistoryConfig::default(), 1);
        s.create(r, Some("a"), pod("a", "x", "1")).unwrap();
        assert_eq!(
            s.create(r, Some("a"), pod("a", "x", "1")).unwrap_err().code,
            409
        );
        assert_eq!(
            s.create(r, Some("b"), pod("a", "y", "1")).unwrap_err().code,
            400
        );
        assert_eq!(
            s.create(r, Some("a"), pod("a", "Bad_Name", "1"))
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            s.create(r, Some("a"), json!({"metadata": {}}))
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            s.create(
                r,
                Some("a"),
                json!({"kind": "Node", "metadata": {"name": "q"}})
            )
            .unwrap_err()
            .code,
            400
        );
        let gen = s
            .create(r, Some("a"), json!({"metadata": {"generateName": "w-"}}))
            .unwrap();
        assert!(gen.object.name.starts_with("w-") && gen.object.name.len() == 7);
        let mut stale = pod("a", "x", "2");
        stale["metadata"]["resourceVersion"] = json!("1");
        assert_eq!(s.replace(r, Some("a"), "x", stale).unwrap_err().code, 409);
        assert_eq!(
            s.replace(r, Some("a"), "nope", pod("a", "nope", "1"))
                .unwrap_err()
                .code,
            404
        );
        assert_eq!(
            s.replace(r, Some("a"), "x", pod("a", "z", "1"))
                .unwrap_err()
                .code,
            400
        );
        let rv = s.rv();
        assert!(
            s.replace(r, Some("a"), "x", pod("a", "x", "1"))
                .unwrap()
                .is_none(),
            "no-op"
        );
        let mut typed = pod("a", "x", "1");
        typed["kind"] = json!("Pod");
        typed["apiVersion"] = json!("v1");
        assert!(
            s.replace(r, Some("a"), "x", typed).unwrap().is_none(),
            "no-op with type fields"
        );
        assert_eq!(s.rv(), rv);
        assert_eq!(s.delete(r, Some("a"), "nope").unwrap_err().code, 404);
        let del = s.delete(r, Some("a"), "x").unwrap();
        assert_eq!(del.object.rv, s.rv());
        assert_eq!(del.prev.as_ref().unwrap().rv, 2);
    }

    #[test]
    fn uids_look_like_uuids() {
        let mut rng = StdRng::seed_from_u64(3);
        let u = uid(&mut rng);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
