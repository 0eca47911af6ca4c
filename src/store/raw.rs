//! Direct access to the records a store keeps in its engine, below every
//! invariant the store maintains (checksums are neither checked nor
//! written here): for tools that look at a store byte by byte, and for
//! tests that damage one on purpose and check that the damage is found.

use std::path::Path;

use super::directory::StoreDir;
use super::engine::{self, WriteBatch};
use super::error::Result;
use super::{collection_space, key, CollectionId, ObjectKey};

/// One record of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The collection's state (last resourceVersion, journal span, counters).
    State,
    /// An object.
    Object(ObjectKey),
    /// A journal entry, by seq.
    Journal(u64),
    /// A durable consumer's cursor.
    Cursor(String),
    /// A zstd dictionary, by id.
    Dictionary(u32),
}

/// A store opened for raw access: its lock is held, nothing is migrated.
pub struct RawStore {
    engine: engine::Handle<StoreDir>,
}

impl RawStore {
    /// Opens the existing store at `path` for raw reads and writes.
    pub fn open(path: impl AsRef<Path>) -> Result<RawStore> {
        let dir = StoreDir::open(path.as_ref(), false)?;
        let db = engine::open(dir.engine(), &dir.db_path(), &dir.path)?;
        Ok(RawStore {
            engine: engine::Handle::new(db, dir),
        })
    }

    /// Where `record` of collection `id` lives: its space and key.
    fn locate(id: &CollectionId, record: &Record) -> (String, Vec<u8>) {
        let space = collection_space(&id.name());
        let key = match record {
            Record::State => key::state_key(),
            Record::Object(k) => key::object_key(&k.encode()),
            Record::Journal(seq) => key::journal_key(*seq).to_vec(),
            Record::Cursor(c) => key::cursor_key(c),
            Record::Dictionary(d) => key::dictionary_key(*d).to_vec(),
        };
        (space, key)
    }

    /// The bytes of `record`, if it exists.
    pub fn get(&self, id: &CollectionId, record: &Record) -> Result<Option<Vec<u8>>> {
        let (space, key) = Self::locate(id, record);
        self.engine.db().get(&space, &key)
    }

    /// Replaces (or creates) `record` with `bytes`, durably.
    pub fn put(&self, id: &CollectionId, record: &Record, bytes: Vec<u8>) -> Result<()> {
        let (space, key) = Self::locate(id, record);
        let mut batch = WriteBatch::default();
        batch.put(key, bytes);
        self.engine.db().write(&space, batch, true)
    }
}
