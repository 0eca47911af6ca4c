//! The on-disk store: one sled database holding one or more collections
//! (watched resources), each with its objects, indexes, journal and cursors.
//!
//! CONTRACT (signatures other layers build against; bodies are filled in by
//! the store work).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process holds the store open.
    #[error("store {path} is in use by another process")]
    InUse {
        /// The store directory.
        path: PathBuf,
    },
    /// The directory holds no kube-persist store.
    #[error("{path} is not a kube-persist store")]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// The store was written by a newer kube-persist.
    #[error("store {path} has schema version {found}, newer than the {supported} this build supports; it was left untouched")]
    NewerSchema {
        /// The store directory.
        path: PathBuf,
        /// Schema version found on disk.
        found: u32,
        /// Newest schema version this build knows.
        supported: u32,
    },
    /// A record failed its checksum or could not be decoded.
    #[error("corrupt record in collection {collection}, key {key}: {reason}")]
    Corrupt {
        /// Collection name.
        collection: String,
        /// Key of the bad record.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// An object lacks what the store needs (name, resourceVersion...).
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// An error from sled.
    #[error("storage engine error: {0}")]
    Sled(#[from] sled::Error),
    /// An I/O error.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result type of the store layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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

/// Key of an object: `namespace/name`, or `/name` when cluster-scoped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
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

/// An open store.
#[derive(Clone)]
pub struct Store {
    _p: (),
}

/// One collection of an open store.
#[derive(Clone)]
pub struct Collection {
    _p: (),
}

#[allow(unused_variables, missing_docs)]
impl Store {
    /// Open (creating if missing) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        todo!()
    }
    /// Open an existing store; never creates one.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Store> {
        todo!()
    }
    pub fn path(&self) -> &Path {
        todo!()
    }
    pub fn collections(&self) -> Result<Vec<CollectionId>> {
        todo!()
    }
    /// Open or create a collection.
    pub fn collection(&self, id: &CollectionId) -> Result<Collection> {
        todo!()
    }
    pub fn find_collection(&self, id: &CollectionId) -> Result<Option<Collection>> {
        todo!()
    }
    pub fn size_on_disk(&self) -> Result<u64> {
        todo!()
    }
}

#[allow(unused_variables, missing_docs)]
impl Collection {
    pub fn id(&self) -> &CollectionId {
        todo!()
    }
    pub fn meta(&self) -> Result<CollectionMeta> {
        todo!()
    }
    pub fn last_rv(&self) -> Result<Option<String>> {
        todo!()
    }
    pub fn add_indexer(&self, name: &str, f: IndexFn) -> Result<()> {
        todo!()
    }
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Value>> {
        todo!()
    }
    pub fn list(&self) -> Result<Vec<Value>> {
        todo!()
    }
    pub fn list_namespace(&self, namespace: &str) -> Result<Vec<Value>> {
        todo!()
    }
    pub fn by_index(&self, index: &str, value: &str) -> Result<Vec<Value>> {
        todo!()
    }
    pub fn len(&self) -> usize {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        todo!()
    }
    /// key → the object's resourceVersion, without decompressing objects.
    pub fn versions(&self) -> Result<HashMap<ObjectKey, String>> {
        todo!()
    }
    /// Apply a batch atomically (objects, indexes, journal, last RV) and
    /// return once it is durable.
    pub fn apply(&self, batch: Batch) -> Result<Vec<Change>> {
        todo!()
    }
    pub fn history(&self, key: &ObjectKey) -> Result<Vec<JournalEntry>> {
        todo!()
    }
    pub fn journal_since(&self, after_seq: u64) -> Result<Vec<JournalEntry>> {
        todo!()
    }
    pub fn cursor(&self, consumer: &str) -> Result<Option<u64>> {
        todo!()
    }
    pub fn ack(&self, consumer: &str, seq: u64) -> Result<()> {
        todo!()
    }
}
