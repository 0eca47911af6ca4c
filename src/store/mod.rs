//! The on-disk store: one sled database holding one or more collections
//! (watched resources), each with its objects, indexes, journal and cursors.
//!
//! Layout, per collection, in ONE sled tree (so that `apply` is one atomic
//! `Tree::apply_batch`): `s` state (last RV, journal span, counters), `o`
//! objects by `namespace/name`, `i` index entries, `j` journal by big-endian
//! seq, `h` history index (key, seq), `c` cursors, `r` durable consumers'
//! progress records, `d` zstd dictionaries.
//! The store directory holds a marker file with the schema version, a lock
//! file, and the sled database (see [`directory`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde_json::Value;

mod apply;
mod collection;
mod compact;
mod cursor;
pub mod dictionary;
pub mod directory;
mod error;
pub mod index;
pub mod journal;
mod json;
mod key;
mod progress;
mod read_only;
pub mod record;
mod scan;
mod short_names;
pub(crate) mod state;
mod verify;

pub use collection::Collection;
pub use compact::{CollectionCompaction, CompactOptions, CompactReport};
pub use error::{Error, Result};
pub use journal::JournalLimits;
pub use json::JsonObject;
pub use key::ObjectKey;
pub use progress::Progress;
pub use short_names::is_short_name;
pub use verify::{Problem, VerifyReport};

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

/// Kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChangeKind {
    /// A new object.
    Added,
    /// A changed object.
    Modified,
    /// A removed object.
    Deleted,
}

/// A committed change, as journaled and as delivered to subscribers.
#[derive(Debug, Clone)]
pub struct Change {
    /// Journal sequence number.
    pub seq: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// Which object.
    pub key: ObjectKey,
    /// The object's resourceVersion after the change.
    pub rv: String,
    /// The previous state, if known.
    pub old: Option<Value>,
    /// The new state (`None` for deletes).
    pub new: Option<Value>,
}

/// One journal entry, as read back by history and replay.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    /// Sequence number.
    pub seq: u64,
    /// What happened.
    pub kind: ChangeKind,
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

/// Tuning of an open store. Nothing here changes the on-disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// How much journal each collection keeps.
    pub journal: JournalLimits,
    /// When dictionaries are trained.
    pub dictionary: DictionaryPolicy,
    /// zstd level for new records.
    pub compression_level: i32,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            journal: JournalLimits::default(),
            dictionary: DictionaryPolicy::default(),
            compression_level: dictionary::DEFAULT_LEVEL,
        }
    }
}

/// What every handle of one open store shares. Collections hold it too, so
/// the lock (or the read-only copy) lives as long as any handle.
pub(crate) struct Shared {
    // Declared before `access`: sled must close before the lock is released
    // or the copy removed.
    pub db: sled::Db,
    pub options: StoreOptions,
    pub schema_version: u32,
    /// The store directory the caller named.
    pub path: PathBuf,
    pub access: Access,
}

/// How a store was opened.
pub(crate) enum Access {
    /// For writing, holding the store's lock.
    Exclusive(StoreDir),
    /// Read-only, through a private copy of the database.
    ReadOnly { _copy: read_only::Copy },
}

impl Shared {
    /// Fails unless the store was opened for writing.
    pub fn writable(&self) -> Result<()> {
        match self.access {
            Access::Exclusive(_) => Ok(()),
            Access::ReadOnly { .. } => Err(Error::ReadOnly {
                path: self.path.clone(),
            }),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!(path = %self.path.display(), error = %e, "flush on close failed");
        }
        // sled creates snapshot files as it goes; make sure they end private too.
        if let Access::Exclusive(dir) = &self.access {
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
pub(crate) const TREE_PREFIX: &str = "collection:";

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
    /// changed, whatever is found there (see [`read_only`] for how). Fails
    /// with [`Error::InUse`] while a writer has it open; an older schema is
    /// migrated in the private copy only. Writes fail with [`Error::ReadOnly`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref();
        let opened = read_only::open(path)?;
        let db = open_sled(&opened.copy.db_path(), path, opened.had_collections)?;
        let supported = crate::migrations::SCHEMA_VERSION;
        if opened.found_schema < supported {
            tracing::info!(path = %path.display(), from = opened.found_schema, to = supported, "reading a migrated copy of an older store; the store itself is unchanged");
            crate::migrations::run(&db, opened.found_schema)?;
        }
        if opened.had_collections && !holds_collections(&db) {
            return Err(Error::Damaged {
                path: path.to_path_buf(),
                file: "db/db".into(),
                reason: LOST_COLLECTIONS.into(),
            });
        }
        Ok(Store::with_shared(Shared {
            db,
            options: StoreOptions::default(),
            schema_version: supported,
            path: path.to_path_buf(),
            access: Access::ReadOnly { _copy: opened.copy },
        }))
    }

    /// Whether this handle can write.
    pub fn is_read_only(&self) -> bool {
        matches!(self.shared.access, Access::ReadOnly { .. })
    }

    fn with_shared(shared: Shared) -> Store {
        Store {
            shared: Arc::new(shared),
            collections: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Opens the store in `dir`, whose lock the caller holds.
    fn open_locked(dir: StoreDir, options: StoreOptions) -> Result<Store> {
        let supported = crate::migrations::SCHEMA_VERSION;
        let path = dir.path.clone();
        let path = path.as_path();
        // Checked before sled opens: a newer store is left exactly as it was.
        if let Some(found) = dir.found_schema.filter(|&f| f > supported) {
            return Err(Error::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported,
            });
        }
        if dir.found_schema.is_none() {
            dir.write_marker(supported)?;
        }
        dir.secure()?;
        let had_collections = directory::had_collections(path)?;
        dir.create_database_if_missing()?;
        let db = open_sled(&dir.db_path(), path, had_collections)?;
        if let Some(found) = dir.found_schema.filter(|&f| f < supported) {
            tracing::info!(path = %path.display(), from = found, to = supported, "migrating store");
            crate::migrations::run(&db, found)?;
            dir.write_marker(supported)?;
        }
        match (had_collections, holds_collections(&db)) {
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
        Ok(Store::with_shared(Shared {
            db,
            options,
            schema_version: supported,
            path: path.to_path_buf(),
            access: Access::Exclusive(dir),
        }))
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
        let mut out = Vec::new();
        for item in self.shared.db.scan_prefix(REGISTRY_PREFIX) {
            let (k, v) = item?;
            let id = serde_json::from_slice(&v).map_err(|e| {
                Error::corrupt(
                    &String::from_utf8_lossy(&k[REGISTRY_PREFIX.len()..]),
                    "registry",
                    format!("collection id does not parse: {e}"),
                )
            })?;
            out.push(id);
        }
        Ok(out)
    }

    /// Open or create a collection.
    pub fn collection(&self, id: &CollectionId) -> Result<Collection> {
        id.validate()?;
        let name = id.name();
        let mut open = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(inner) = open.get(&name) {
            return Ok(Collection {
                inner: inner.clone(),
            });
        }
        let db = &self.shared.db;
        let reg = format!("{REGISTRY_PREFIX}{name}");
        if db.get(&reg)?.is_none() {
            self.shared.writable()?;
            let body = serde_json::to_vec(id).map_err(|e| Error::Encode {
                what: format!("collection id {name}"),
                reason: e.to_string(),
            })?;
            db.insert(reg, body)?;
            db.flush()?;
            directory::set_had_collections(self.path(), true)?;
        }
        let tree = db.open_tree(format!("{TREE_PREFIX}{name}"))?;
        let inner = Arc::new(collection::Inner::open(
            self.shared.clone(),
            id.clone(),
            name.clone(),
            tree,
        )?);
        open.insert(name, inner.clone());
        Ok(Collection { inner })
    }

    /// The collection for `id` if the store has it; never creates one.
    pub fn find_collection(&self, id: &CollectionId) -> Result<Option<Collection>> {
        id.validate()?;
        if self
            .shared
            .db
            .get(format!("{REGISTRY_PREFIX}{}", id.name()))?
            .is_none()
        {
            return Ok(None);
        }
        self.collection(id).map(Some)
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
        let db = &self.shared.db;
        let registry_key = format!("{REGISTRY_PREFIX}{name}");
        let existed = db.contains_key(&registry_key)?;
        // One batch: a crash must not leave short names that a collection
        // created later under the same name would inherit.
        let mut batch = sled::Batch::default();
        batch.remove(registry_key.as_bytes());
        batch.remove(short_names::key(&name).as_bytes());
        db.apply_batch(batch)?;
        db.drop_tree(format!("{TREE_PREFIX}{name}"))?;
        db.flush()?;
        if !holds_collections(db) {
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
        self.shared.db.flush()?;
        Ok(())
    }

    pub(crate) fn db(&self) -> &sled::Db {
        &self.shared.db
    }
}

impl CollectionId {
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

thread_local! {
    static CATCHING_SLED_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is inside a call that catches the storage
/// engine's panics and returns them as [`Error::Damaged`]; a binary's panic
/// hook can stay quiet for those (the error says what happened).
pub fn catching_storage_panic() -> bool {
    CATCHING_SLED_PANIC.get()
}

const LOST_COLLECTIONS: &str = "the database holds no collections although the store registered some: its log was truncated or replaced";

/// Whether the database registers any collection.
fn holds_collections(db: &sled::Db) -> bool {
    db.scan_prefix(REGISTRY_PREFIX).next().is_some()
}

/// Opens the sled database at `db_path` of the store at `store`, naming the
/// store in the errors sled's own would not.
///
/// sled 0.34 panics on some damage (a truncated log) instead of returning an
/// error; the panic is caught here and reported as the corruption it is. (A
/// binary that wants sled's panic message off its stderr filters it in its
/// panic hook: the message is in the returned error.)
fn open_sled(db_path: &Path, store: &Path, had_collections: bool) -> Result<sled::Db> {
    // sled takes an empty log for a new database (it writes nothing until
    // its first flush): a store that registered collections and whose log
    // is now empty lost it.
    let log = db_path.join("db");
    match std::fs::metadata(&log) {
        Ok(m) if m.len() == 0 && had_collections => {
            return Err(Error::Damaged {
                path: store.to_path_buf(),
                file: "db/db".into(),
                reason: "the database file is empty".into(),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&log, e)),
    }
    let config = sled::Config::new().path(db_path);
    CATCHING_SLED_PANIC.set(true);
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    CATCHING_SLED_PANIC.set(false);
    let opened = opened.map_err(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Error::Damaged {
            path: store.to_path_buf(),
            file: "db/db".into(),
            reason: format!("the storage engine could not read it ({what})"),
        }
    })?;
    opened.map_err(|e| match e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => Error::InUse {
            path: store.to_path_buf(),
        },
        sled::Error::Corruption { at, .. } => Error::Damaged {
            path: store.to_path_buf(),
            file: "db/db".into(),
            reason: match at {
                Some(at) => format!("the storage engine found corrupt data at {at}"),
                None => "the storage engine found corrupt data".into(),
            },
        },
        other => Error::from_sled(other),
    })
}

/// Key of a collection's state record (for migrations).
pub(crate) fn state_key() -> Vec<u8> {
    key::state_key()
}

/// Prefix byte of object records (for migrations).
pub(crate) const OBJECT_PREFIX: u8 = key::prefix::OBJECT;
