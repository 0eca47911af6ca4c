//! The on-disk store: one database (sled or redb, behind the `engine`
//! seam) holding one or more collections (watched resources), each with its
//! objects, indexes, journal and cursors.
//!
//! Layout, per collection, in ONE engine space (so that `apply` is one
//! atomic write): `s` state (last RV, journal span, counters), `o` objects
//! by `namespace/name`, `i` index entries, `j` journal by big-endian seq,
//! `h` history index (key, seq), `c` cursors, `r` durable consumers'
//! progress records, `d` zstd dictionaries. The store directory holds a
//! marker file with the schema version and the engine, a lock file, and
//! the database (see `directory`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde_json::Value;

mod apply;
mod collection;
mod compact;
mod cursor;
crate::internal! {
    mod dictionary;
}
crate::internal! {
    mod directory;
}
mod encrypt;
pub mod encryption;
pub(crate) mod engine;
mod error;
mod event;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod group_commit;
mod head;
mod heal;
crate::internal! {
    mod index;
}
crate::internal! {
    mod journal;
}
mod json;
mod key;
mod progress;
crate::internal! {
    mod raw;
}
mod read_only;
crate::internal! {
    mod record;
}
mod repair;
mod scan;
mod short_names;
mod spread;
pub(crate) mod state;
mod verify;

pub use collection::Collection;
pub use compact::{CollectionCompaction, CompactOptions, CompactReport};
pub use encryption::{EncryptionKey, KeyError, KeyId};
pub use engine::EngineKind;
pub use error::{Cause, EngineError, Error, Result};
pub(crate) use event::Earlier;
pub use event::{Event, EventKind};
pub use heal::{Damage, Healed, DAMAGED_PREFIX};
pub use journal::JournalLimits;
/// What a Secret's journal entries hold in place of its values.
pub use journal::CHANGED as SECRET_VALUE_CHANGED;
#[cfg(test)]
pub(crate) use json::damage_record;
pub use json::JsonObject;
pub use key::ObjectKey;
pub use progress::Progress;
pub use record::MAX_OBJECT_LEN;
pub use repair::MarkerRepair;
pub use short_names::is_short_name;
pub use verify::{Problem, VerifyReport};

/// The schema version this build writes (and migrates older stores to).
pub use crate::migrations::SCHEMA_VERSION;

pub use directory::Sealing;
use directory::StoreDir;

/// Identity of a watched resource: what a collection in the store holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CollectionId {
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name, e.g. `pods`.
    pub resource: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Whether the resource is namespaced.
    pub namespaced: bool,
    /// Namespace the watch is restricted to, if any.
    pub namespace: Option<String>,
    /// Label selector of the watch, if any.
    pub label_selector: Option<String>,
    /// Field selector of the watch, if any.
    pub field_selector: Option<String>,
}

/// What the store knows about a collection, without reading its objects.
#[derive(Debug, Clone)]
pub struct CollectionMeta {
    /// Schema version of the store.
    pub schema_version: u32,
    /// Last resourceVersion applied (covers exactly the stored objects).
    pub last_rv: Option<String>,
    /// When the last batch was applied.
    pub last_sync: Option<SystemTime>,
    /// Zstd dictionary the newest records use, if any.
    pub dictionary_id: Option<u32>,
    /// Number of objects.
    pub objects: u64,
    /// Dictionaries trained so far (ids 1..=this).
    pub dictionaries: u32,
    /// Bytes of the object records on disk (before sled's own overhead).
    pub stored_bytes: u64,
    /// Bytes of the same objects as uncompressed JSON.
    pub raw_bytes: u64,
    /// Oldest journal seq kept (`journal_last_seq + 1` when empty).
    pub journal_first_seq: u64,
    /// Last journal seq assigned (0: none yet).
    pub journal_last_seq: u64,
    /// Journal entries kept.
    pub journal_len: u64,
    /// Bytes of the journal entries kept.
    pub journal_bytes: u64,
}

/// One change in a batch given to [`Collection::apply`].
#[derive(Debug, Clone)]
pub enum Delta {
    /// Insert or replace an object (Added if new, Modified otherwise).
    Upsert(Value),
    /// Delete an object; carries its last state.
    Delete(Value),
}

/// A group of deltas applied atomically, together with the resourceVersion
/// they bring the collection to.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The changes.
    pub deltas: Vec<Delta>,
    /// The collection's last resourceVersion once applied (e.g. a bookmark's).
    pub rv: Option<String>,
}

/// One journal entry: how an [`Event`] is kept on disk, as read back by
/// history and replay. It holds a merge patch and the time of the change
/// rather than whole objects, so that history costs little space; replay
/// folds entries back into [`Event`]s.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    /// Sequence number.
    pub seq: u64,
    /// What happened (never [`EventKind::Resync`]).
    pub kind: EventKind,
    /// Which object.
    pub key: ObjectKey,
    /// resourceVersion of the change.
    pub rv: String,
    /// When it was applied.
    pub at: SystemTime,
    /// JSON merge patch against the previous version (full object for Added).
    pub patch: Value,
}

/// An index function: object → index values.
pub type IndexFn = std::sync::Arc<dyn Fn(&Value) -> Vec<String> + Send + Sync>;

/// When a collection trains its zstd dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictionaryPolicy {
    /// Train the first dictionary once the collection holds this many objects.
    pub min_objects: u64,
    /// Train a new one each time the collection has grown by this factor
    /// since the last training (0: never retrain).
    pub retrain_factor: u64,
    /// Largest dictionary (0: never train, plain zstd only).
    pub max_bytes: usize,
    /// Objects sampled for training.
    pub samples: usize,
}

impl Default for DictionaryPolicy {
    fn default() -> DictionaryPolicy {
        DictionaryPolicy {
            min_objects: 1000,
            retrain_factor: 8,
            // Measured on realistic pods: 200 samples and 32 KiB compress as
            // well as 1000 and 64 KiB (≈0.10 of raw JSON vs 0.32 for plain
            // zstd) and train in a quarter of the time (~0.25 s).
            max_bytes: 32 * 1024,
            samples: 200,
        }
    }
}

/// How a store is opened. Only `engine` and `encryption_key` concern the
/// on-disk format: `engine` only for a store being created.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The engine a store created by this open gets (`None`: the default,
    /// [`EngineKind::DEFAULT`]). An existing store keeps the engine it was
    /// created with; asking for another one is an error.
    pub engine: Option<EngineKind>,
    /// How much journal each collection keeps.
    pub journal: JournalLimits,
    /// When dictionaries are trained.
    pub dictionary: DictionaryPolicy,
    /// zstd level for new records.
    pub compression_level: i32,
    /// The at-rest encryption key (see [`encryption`]). An encrypted store
    /// needs it to open ([`Error::KeyNeeded`], [`Error::WrongKey`]); a
    /// plaintext store opened for writing with a key is encrypted under it
    /// on open, every record rewritten (see [`Store::encrypt`]).
    pub encryption_key: Option<EncryptionKey>,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            engine: None,
            journal: JournalLimits::default(),
            dictionary: DictionaryPolicy::default(),
            compression_level: dictionary::DEFAULT_LEVEL,
            encryption_key: None,
        }
    }
}

/// Fails unless `key` opens a store whose marker says `sealing`: an
/// encrypted store needs its key; a plaintext one takes any (a writer then
/// encrypts it).
fn check_key(
    path: &Path,
    sealing: Option<directory::Sealing>,
    key: Option<&EncryptionKey>,
) -> Result<()> {
    match (sealing, key) {
        (Some(s), None) => Err(Error::KeyNeeded {
            path: path.to_path_buf(),
            key_id: s.key_id,
        }),
        (Some(s), Some(k)) if s.key_id != k.id() => Err(Error::WrongKey {
            path: path.to_path_buf(),
            expected: s.key_id,
            given: k.id(),
        }),
        _ => Ok(()),
    }
}

/// What every handle of one open store shares. Collections hold it too, so
/// the lock (or the read-only copy) lives as long as any handle.
pub(crate) struct Shared {
    /// The engine, and how the store was opened (which outlives it).
    pub engine: engine::Handle<Access>,
    /// Durable writes made at the same time share one flush.
    pub group: group_commit::GroupCommit,
    /// Writers' compression contexts, reused between batches.
    pub contexts: dictionary::ContextPool,
    pub options: StoreOptions,
    /// Every record is sealed under `options.encryption_key`: a plaintext
    /// one is damage (or was put there by someone without the key).
    pub sealed: std::sync::atomic::AtomicBool,
    pub schema_version: u32,
    /// The store directory the caller named.
    pub path: PathBuf,
}

/// How a store was opened.
pub(crate) enum Access {
    /// For writing, holding the store's lock.
    Exclusive(StoreDir),
    /// Read-only: in place under the store's lock (shared), or through a
    /// private copy of the database.
    ReadOnly { _source: read_only::Source },
}

impl From<read_only::Source> for Access {
    fn from(source: read_only::Source) -> Access {
        Access::ReadOnly { _source: source }
    }
}

impl Shared {
    /// The engine.
    pub(crate) fn db(&self) -> &dyn engine::Engine {
        self.engine.db()
    }

    /// Whether every record is sealed (see `sealed`).
    pub(crate) fn all_sealed(&self) -> bool {
        self.sealed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Fails unless the store was opened for writing.
    pub fn writable(&self) -> Result<()> {
        match self.engine.backing() {
            Access::Exclusive(_) => Ok(()),
            Access::ReadOnly { .. } => Err(Error::ReadOnly {
                path: self.path.clone(),
            }),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Engines create files as they go (sled's snapshots); make sure they end private too.
        if let Access::Exclusive(dir) = self.engine.backing() {
            if let Err(e) = dir.secure() {
                tracing::warn!(path = %self.path.display(), error = %e, "could not secure store files");
            }
        }
    }
}

/// An open store.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    collections: Arc<Mutex<HashMap<String, Arc<collection::Inner>>>>,
}

const REGISTRY_PREFIX: &str = "collection/";
/// What the name of every collection's space starts with.
pub(crate) const TREE_PREFIX: &str = "collection:";

/// The engine space holding the collection named `name`.
pub(crate) fn collection_space(name: &str) -> String {
    format!("{TREE_PREFIX}{name}")
}
/// The space of the registry and the short names.
pub(crate) const DEFAULT_SPACE: &str = "default";

impl Store {
    /// Open (creating if missing) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Open (creating if missing) the store at `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Store::open_dir(path.as_ref(), options, true)
    }

    /// Open an existing store; never creates one.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_dir(path.as_ref(), StoreOptions::default(), false)
    }

    /// Open an existing store with `options`; never creates one.
    pub fn open_existing_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Store::open_dir(path.as_ref(), options, false)
    }

    fn open_dir(path: &Path, options: StoreOptions, create: bool) -> Result<Store> {
        Store::open_locked(StoreDir::open(path, create)?, options)
    }

    /// Opens an existing store for reading only: nothing in its directory is
    /// changed, whatever is found there (see `read_only` for how: redb
    /// stores are read in place, sled stores through a private copy). Fails
    /// with [`Error::InUse`] while a writer has it open; an older schema is
    /// migrated in a private copy only. Writes fail with [`Error::ReadOnly`].
    ///
    /// A redb store read in place stays locked (shared) for as long as the
    /// returned handle lives: other readers open it meanwhile, but a writer
    /// waits up to 30 s for the readers to close, then fails with
    /// [`Error::InUse`]. Keep read-only handles short-lived beside a writer.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_read_only_with_key(path, None)
    }

    /// [`Store::open_read_only`] of a store that may be encrypted: `key` is
    /// its key ([`Error::KeyNeeded`] without it, [`Error::WrongKey`] with
    /// another).
    pub fn open_read_only_with_key(
        path: impl AsRef<Path>,
        key: Option<EncryptionKey>,
    ) -> Result<Store> {
        let path = path.as_ref();
        let opened = read_only::open(path)?;
        let marker = &opened.marker;
        check_key(path, marker.encryption, key.as_ref())?;
        let supported = crate::migrations::SCHEMA_VERSION;
        if marker.schema_version < supported {
            tracing::info!(path = %path.display(), from = marker.schema_version, to = supported, "reading a migrated copy of an older store; the store itself is unchanged");
            crate::migrations::run(opened.engine.db(), marker.schema_version)?;
        }
        if marker.had_collections && !holds_collections(opened.engine.db())? {
            return Err(Error::damaged(
                path,
                marker.engine.data_file(),
                LOST_COLLECTIONS,
            ));
        }
        let read_only::Opened { engine, marker } = opened;
        Ok(Store::with_shared(Shared {
            engine: engine.convert(),
            group: Default::default(),
            contexts: dictionary::ContextPool::new(StoreOptions::default().compression_level),
            options: StoreOptions {
                encryption_key: key,
                ..StoreOptions::default()
            },
            sealed: AtomicBool::new(marker.encryption.is_some_and(|s| s.complete)),
            schema_version: supported,
            path: path.to_path_buf(),
        }))
    }

    /// Whether and under which key the store at `path` is encrypted, as its
    /// marker says; `None` for a plaintext store. Needs neither the key (a
    /// key id is a public fingerprint) nor the lock: a writer replaces the
    /// marker atomically. Fails as opening would on a directory that is not
    /// a store.
    pub fn encryption_of(path: impl AsRef<Path>) -> Result<Option<Sealing>> {
        let path = path.as_ref();
        directory::check_is_store(path)?;
        Ok(directory::read_marker(path)?.encryption)
    }

    /// Fails as opening the store at `path` with `key` would for the key
    /// alone ([`Error::KeyNeeded`], [`Error::WrongKey`]), without opening
    /// it: a command that would reach the network first checks what it
    /// can know locally. A directory that is not (yet) a store passes.
    pub fn check_key(path: impl AsRef<Path>, key: Option<&EncryptionKey>) -> Result<()> {
        let path = path.as_ref();
        match Store::encryption_of(path) {
            Ok(sealing) => check_key(path, sealing, key),
            Err(Error::NotAStore { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The engine the store is kept in.
    pub fn engine(&self) -> EngineKind {
        self.shared.db().kind()
    }

    /// Whether this handle can write.
    pub fn is_read_only(&self) -> bool {
        matches!(self.shared.engine.backing(), Access::ReadOnly { .. })
    }

    fn with_shared(shared: Shared) -> Store {
        Store {
            shared: Arc::new(shared),
            collections: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Opens the store in `dir`, whose lock the caller holds.
    fn open_locked(dir: StoreDir, options: StoreOptions) -> Result<Store> {
        Store::open_locked_sealing(dir, options, &mut || {})
    }

    /// [`Store::open_locked`], calling `sealed_batch` after each batch an
    /// encryption on open commits.
    fn open_locked_sealing(
        mut dir: StoreDir,
        options: StoreOptions,
        sealed_batch: &mut dyn FnMut(),
    ) -> Result<Store> {
        let supported = crate::migrations::SCHEMA_VERSION;
        let path = dir.path.clone();
        let path = path.as_path();
        let found = dir.found;
        let found_schema = found.map(|m| m.schema_version);
        // Checked before the engine opens: a newer store is left exactly as it was.
        if let Some(found) = found_schema.filter(|&f| f > supported) {
            return Err(Error::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported,
            });
        }
        let sealing = found.and_then(|m| m.encryption);
        check_key(path, sealing, options.encryption_key.as_ref())?;
        match (dir.engine, options.engine) {
            (Some(found), Some(asked)) if found != asked => {
                return Err(Error::EngineMismatch {
                    path: path.to_path_buf(),
                    found,
                    asked,
                })
            }
            (Some(_), _) => {}
            (None, asked) => dir.engine = Some(asked.unwrap_or_default()),
        }
        let kind = dir.engine();
        match found {
            None => dir.write_marker(supported)?,
            // Before the engine writes: from now on builds that predate
            // this engine refuse the store (see `directory`).
            Some(m) if m.outdated_format => dir.write_marker(m.schema_version)?,
            Some(_) => {}
        }
        dir.secure()?;
        let had_collections = found.is_some_and(|m| m.had_collections);
        dir.create_database_if_missing()?;
        check_not_emptied(kind, &dir.db_path(), path, had_collections)?;
        let db = engine::open(kind, &dir.db_path(), path)?;
        if let Some(found) = found_schema.filter(|&f| f < supported) {
            tracing::info!(path = %path.display(), from = found, to = supported, "migrating store");
            crate::migrations::run(db.as_ref(), found)?;
            dir.write_marker(supported)?;
        }
        match (had_collections, holds_collections(db.as_ref())?) {
            (true, false) => {
                // A writer serves a controller: it starts empty and relists,
                // which heals the store, rather than refusing to start.
                tracing::error!(path = %path.display(), "{LOST_COLLECTIONS}; starting empty");
                directory::set_had_collections(path, false)?;
            }
            // Stores written before the marker recorded this.
            (false, true) => directory::set_had_collections(path, true)?,
            _ => {}
        }
        dir.secure()?;
        let complete = sealing.is_some_and(|s| s.complete);
        let store = Store::with_shared(Shared {
            engine: engine::Handle::new(db, Access::Exclusive(dir)),
            group: Default::default(),
            contexts: dictionary::ContextPool::new(options.compression_level),
            options,
            sealed: AtomicBool::new(complete),
            schema_version: supported,
            path: path.to_path_buf(),
        });
        if let (Some(key), false) = (&store.shared.options.encryption_key, complete) {
            store.seal_all(key, sealed_batch)?;
        }
        Ok(store)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The schema version of the open store (always the current one: older
    /// stores are migrated on open).
    pub fn schema_version(&self) -> u32 {
        self.shared.schema_version
    }

    /// Every collection the store holds.
    pub fn collections(&self) -> Result<Vec<CollectionId>> {
        registered(self.db())
    }

    /// Open or create a collection.
    pub fn collection(&self, id: &CollectionId) -> Result<Collection> {
        id.validate()?;
        self.open_registered(id, true)
            .map(|c| c.expect("a collection is created when missing"))
    }

    /// The collection for `id` if the store has it; never creates one.
    pub fn find_collection(&self, id: &CollectionId) -> Result<Option<Collection>> {
        id.validate()?;
        self.open_registered(id, false)
    }

    /// The collection for `id` (valid), registering it first if it is
    /// missing and `create` is set; `None` if it is missing otherwise.
    fn open_registered(&self, id: &CollectionId, create: bool) -> Result<Option<Collection>> {
        let name = id.name();
        let mut open = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(inner) = open.get(&name) {
            return Ok(Some(Collection {
                inner: inner.clone(),
            }));
        }
        let db = self.db();
        let reg = format!("{REGISTRY_PREFIX}{name}");
        if db.get(DEFAULT_SPACE, reg.as_bytes())?.is_none() {
            if !create {
                return Ok(None);
            }
            self.shared.writable()?;
            let body = serde_json::to_vec(id)
                .map_err(|e| Error::encode(format!("collection id {name}"), e))?;
            let mut batch = engine::WriteBatch::default();
            batch.put(reg, body);
            db.write(DEFAULT_SPACE, batch, true)?;
            directory::set_had_collections(self.path(), true)?;
        }
        let inner = Arc::new(collection::Inner::open(
            self.shared.clone(),
            id.clone(),
            name.clone(),
            collection_space(&name),
        )?);
        open.insert(name, inner.clone());
        Ok(Some(Collection { inner }))
    }

    /// Removes a collection and everything it holds (e.g. to rebuild it from
    /// a relist after damage). Open handles to it must not be used after.
    pub fn drop_collection(&self, id: &CollectionId) -> Result<bool> {
        self.shared.writable()?;
        let name = id.name();
        let mut open = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let db = self.db();
        let registry_key = format!("{REGISTRY_PREFIX}{name}");
        let existed = db.get(DEFAULT_SPACE, registry_key.as_bytes())?.is_some();
        // One batch: a crash must not leave short names that a collection
        // created later under the same name would inherit.
        let mut batch = engine::WriteBatch::default();
        batch.delete(registry_key);
        batch.delete(short_names::key(&name));
        db.write(DEFAULT_SPACE, batch, true)?;
        db.drop_space(&collection_space(&name))?;
        if !holds_collections(db)? {
            directory::set_had_collections(self.path(), false)?;
        }
        open.remove(&name);
        Ok(existed)
    }

    /// Bytes the store directory takes on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        directory::size_of(self.path())
    }

    /// Flushes everything to disk (apply and ack already do).
    pub fn flush(&self) -> Result<()> {
        self.shared.db().sync()
    }

    pub(crate) fn db(&self) -> &dyn engine::Engine {
        self.shared.db()
    }
}

impl CollectionId {
    /// Whether objects of this collection carry secret values: core
    /// Secrets, whose journal keeps no values and whose CLI output is
    /// redacted (I10).
    pub fn holds_secrets(&self) -> bool {
        self.group.is_empty() && self.kind == "Secret"
    }

    /// The collection of every object of the typed resource `K`, with no
    /// namespace or selector: `CollectionId::of::<Pod>()`.
    pub fn of<K>() -> CollectionId
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        let api = kube::core::ApiResource::erase::<K>(&());
        CollectionId {
            group: api.group,
            version: api.version,
            resource: api.plural,
            kind: api.kind,
            namespaced: std::any::TypeId::of::<K::Scope>()
                == std::any::TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
            namespace: None,
            label_selector: None,
            field_selector: None,
        }
    }

    /// The collection's name in the store: `group/version/resource`, with
    /// `core` for the core group, plus the namespace and selectors of the
    /// watch when set. Distinct watches get distinct names.
    pub fn name(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        let mut name = format!("{group}/{}/{}", self.version, self.resource);
        if let Some(ns) = &self.namespace {
            name.push_str(&format!(" namespace={ns}"));
        }
        if let Some(l) = &self.label_selector {
            name.push_str(&format!(" labels={l}"));
        }
        if let Some(f) = &self.field_selector {
            name.push_str(&format!(" fields={f}"));
        }
        name
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| {
            Err(Error::InvalidArgument(format!(
                "collection {}: {m}",
                self.name()
            )))
        };
        if self.version.is_empty() || self.resource.is_empty() || self.kind.is_empty() {
            return bad("version, resource and kind must all be set".into());
        }
        if !self.namespaced && self.namespace.is_some() {
            return bad(format!(
                "{} are cluster-scoped but a namespace is set",
                self.resource
            ));
        }
        Ok(())
    }
}

/// Whether the current thread is inside a call that catches the storage
/// engine's panics and returns them as [`Error::Damaged`]; a binary's panic
/// hook can stay quiet for those (the error says what happened).
pub fn catching_storage_panic() -> bool {
    engine::catching_panic()
}

const LOST_COLLECTIONS: &str = "the database holds no collections although the store registered some: its log was truncated or replaced";

/// Whether the database registers any collection.
/// Every collection the registry of `db` holds.
fn registered(db: &dyn engine::Engine) -> Result<Vec<CollectionId>> {
    let mut out = Vec::new();
    for item in engine::scan_prefix(db, DEFAULT_SPACE, REGISTRY_PREFIX.as_bytes())? {
        let (k, v) = item?;
        let id = serde_json::from_slice(&v).map_err(|e| {
            Error::corrupt_by(
                &String::from_utf8_lossy(&k[REGISTRY_PREFIX.len()..]),
                "registry",
                "collection id does not parse",
                e,
            )
        })?;
        out.push(id);
    }
    Ok(out)
}

fn holds_collections(db: &dyn engine::Engine) -> Result<bool> {
    match engine::scan_prefix(db, DEFAULT_SPACE, REGISTRY_PREFIX.as_bytes())?.next() {
        None => Ok(false),
        Some(item) => item.map(|_| true),
    }
}

/// Fails when the database of a store that registered collections looks
/// emptied (see [`engine::looks_emptied`]).
pub(crate) fn check_not_emptied(
    kind: EngineKind,
    db_dir: &Path,
    store: &Path,
    had_collections: bool,
) -> Result<()> {
    if !had_collections {
        return Ok(());
    }
    match engine::looks_emptied(kind, db_dir)? {
        Some(reason) => Err(Error::damaged(store, kind.data_file(), reason)),
        None => Ok(()),
    }
}

/// Key of a collection's state record (for migrations).
pub(crate) fn state_key() -> Vec<u8> {
    key::state_key()
}

/// Prefix byte of object records (for migrations).
pub(crate) const OBJECT_PREFIX: u8 = key::prefix::OBJECT;
