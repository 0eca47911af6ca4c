//! redb behind the engine seam.
//!
//! One file, `db/data.redb`; a space is a table of byte keys and values.
//! Every commit is crash-safe and redb checksums its pages. A store is read
//! in place with [`redb::ReadOnlyDatabase`] (several processes at once, no
//! writer), and compacted in place with [`redb::Database::compact`].
//!
//! redb opens read-only only a database that was closed cleanly; one whose
//! writer was killed needs a repair first, which a reader must not do in
//! place: [`RedbEngine::open_read_only`] then finds nothing, and the store
//! reads a repaired private copy instead (see `store::read_only`).

use std::ops::Bound;
use std::path::{Path, PathBuf};

use redb::{
    Database, DatabaseError, Durability, ReadOnlyDatabase, ReadableDatabase, TableDefinition,
    TableError, TableHandle,
};

use super::{Engine, EngineKind, Entry, Scan, WriteBatch};
use crate::store::directory;
use crate::store::error::{out_of_space, Error, Result};

/// The database file in directory `db_dir`.
fn data_file(db_dir: &Path) -> PathBuf {
    db_dir.join(EngineKind::Redb.data_file_name())
}

/// The page cache: redb grows it up to this as pages are read or written.
/// Large enough for a busy collection's hot pages, small enough for an
/// edge box.
const CACHE_BYTES: usize = 64 << 20;

enum Handle {
    Write(Database),
    Read(ReadOnlyDatabase),
}

pub(crate) struct RedbEngine {
    db: Handle,
    store: PathBuf,
}

fn table(space: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(space)
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES);
    b
}

impl RedbEngine {
    /// Opens the database in `db_dir` for reading and writing.
    pub(crate) fn open(db_dir: &Path, store: &Path) -> Result<RedbEngine> {
        let file = existing_file(db_dir, store)?;
        let db = builder().open(file).map_err(|e| open_error(store, e))?;
        Ok(RedbEngine {
            db: Handle::Write(db),
            store: store.to_path_buf(),
        })
    }

    /// Opens the database in `db_dir` for reading only; `None` when it was
    /// not closed cleanly (its writer was killed) and needs a repair first.
    pub(crate) fn open_read_only(db_dir: &Path, store: &Path) -> Result<Option<RedbEngine>> {
        let file = existing_file(db_dir, store)?;
        let db = match builder().open_read_only(file) {
            Ok(db) => db,
            Err(DatabaseError::RepairAborted) => return Ok(None),
            Err(e) => return Err(open_error(store, e)),
        };
        Ok(Some(RedbEngine {
            db: Handle::Read(db),
            store: store.to_path_buf(),
        }))
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        to_error(&self.store, e.into())
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction> {
        match &self.db {
            Handle::Write(db) => db.begin_read(),
            Handle::Read(db) => db.begin_read(),
        }
        .map_err(|e| self.err(e))
    }

    fn writer(&self) -> Result<&Database> {
        match &self.db {
            Handle::Write(db) => Ok(db),
            Handle::Read(_) => Err(Error::ReadOnly {
                path: self.store.clone(),
            }),
        }
    }

    fn commit(
        &self,
        durable: bool,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<()>,
    ) -> Result<()> {
        let mut txn = self.writer()?.begin_write().map_err(|e| self.err(e))?;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability)
            .map_err(|e| Error::engine(EngineKind::Redb, e))?;
        f(&txn)?;
        txn.commit().map_err(|e| self.err(e))
    }
}

/// What redb reports as corruption becomes damage to the store's file; its
/// other errors stay engine errors.
fn to_error(store: &Path, e: redb::Error) -> Error {
    match e {
        redb::Error::Corrupted(_) => damage(store, e),
        // Every table is opened with the types it was created with, so a
        // definition that reads otherwise was damaged on disk.
        redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_) => damage(store, e),
        // A page pointer past the end of the file: the file was cut short
        // or a pointer in it was damaged, not a failure of the disk.
        redb::Error::Io(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            damage(store, e)
        }
        redb::Error::DatabaseAlreadyOpen => Error::InUse {
            path: store.to_path_buf(),
        },
        // Typed, so that a caller can tell a full disk from a broken store.
        redb::Error::Io(io) if out_of_space(&io) => {
            Error::io(store.join(EngineKind::Redb.data_file()), io)
        }
        other => Error::engine(EngineKind::Redb, other),
    }
}

fn damage(store: &Path, e: redb::Error) -> Error {
    Error::damaged_by(
        store,
        EngineKind::Redb.data_file(),
        "the storage engine could not read it",
        e,
    )
}

/// An error opening the database file: another process has it open, or it
/// does not read as a database.
fn open_error(store: &Path, e: DatabaseError) -> Error {
    match e {
        DatabaseError::DatabaseAlreadyOpen => Error::InUse {
            path: store.to_path_buf(),
        },
        other => damage(store, other.into()),
    }
}

/// The database file in `db_dir`, which must exist: redb would create a
/// new, empty database in its place.
fn existing_file(db_dir: &Path, store: &Path) -> Result<PathBuf> {
    let file = data_file(db_dir);
    if !file.exists() {
        return Err(Error::damaged(
            store,
            EngineKind::Redb.data_file(),
            "the database file is missing",
        ));
    }
    Ok(file)
}

impl Engine for RedbEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Redb
    }

    fn get(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let txn = self.begin_read()?;
        let t = match txn.open_table(table(space)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let value = t.get(key).map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn scan(&self, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Scan> {
        let txn = self.begin_read()?;
        let t = match txn.open_table(table(space)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Box::new(std::iter::empty())),
            Err(e) => return Err(self.err(e)),
        };
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (as_ref(&range.0), as_ref(&range.1));
        let iter = t.range::<&[u8]>(bounds).map_err(|e| self.err(e))?;
        let store = self.store.clone();
        Ok(Box::new(iter.map(move |item| {
            item.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                .map_err(|e| to_error(&store, e.into()))
        })))
    }

    fn last(&self, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Option<Entry>> {
        let txn = self.begin_read()?;
        let t = match txn.open_table(table(space)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (as_ref(&range.0), as_ref(&range.1));
        let mut iter = t.range::<&[u8]>(bounds).map_err(|e| self.err(e))?;
        match iter.next_back() {
            Some(Ok((k, v))) => Ok(Some((k.value().to_vec(), v.value().to_vec()))),
            Some(Err(e)) => Err(self.err(e)),
            None => Ok(None),
        }
    }

    fn write(&self, space: &str, batch: WriteBatch, durable: bool) -> Result<()> {
        self.commit(durable, |txn| {
            let mut t = txn.open_table(table(space)).map_err(|e| self.err(e))?;
            for (k, v) in &batch.ops {
                match v {
                    Some(v) => t.insert(k.as_slice(), v.as_slice()).map(drop),
                    None => t.remove(k.as_slice()).map(drop),
                }
                .map_err(|e| self.err(e))?;
            }
            Ok(())
        })
    }

    fn sync(&self) -> Result<()> {
        self.commit(true, |_| Ok(()))
    }

    fn spaces(&self) -> Result<Vec<String>> {
        let txn = self.begin_read()?;
        let tables = txn.list_tables().map_err(|e| self.err(e))?;
        Ok(tables.map(|t| t.name().to_string()).collect())
    }

    fn drop_space(&self, space: &str) -> Result<()> {
        self.commit(true, |txn| {
            txn.delete_table(table(space)).map_err(|e| self.err(e))?;
            Ok(())
        })
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Creates an empty database in directory `dir` (created), closed cleanly
/// and synced. Nothing is there to be damaged yet: a failure is the
/// filesystem's or the engine's.
pub(crate) fn create(dir: &Path, _store: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file = data_file(dir);
    let db = builder().create(&file).map_err(|e| match e {
        DatabaseError::Storage(redb::StorageError::Io(io)) => Error::io(&file, io),
        other => Error::engine(EngineKind::Redb, other),
    })?;
    drop(db);
    directory::sync_tree(dir)
}

/// Compacts the database in `db_dir` in place (the caller holds the store's
/// lock and has no other handle open); true if it shrank anything.
/// Crash-safe: redb commits each step.
pub(crate) fn compact(db_dir: &Path, store: &Path) -> Result<bool> {
    let mut db = builder()
        .open(existing_file(db_dir, store)?)
        .map_err(|e| open_error(store, e))?;
    let mut compacted = false;
    while db.compact().map_err(|e| to_error(store, e.into()))? {
        compacted = true;
    }
    Ok(compacted)
}
