//! Restoring the marker of a store that lost it (deleted by hand or by a
//! clean-up script): the database holds everything; the marker only says
//! which engine and schema wrote it, and whether and under which key its
//! records are sealed. Without it nothing opens the store.

use std::path::Path;

use super::directory::{self, Sealing, MARKER_MISSING};
use super::encryption::{EncryptionKey, KeyId};
use super::engine::{self, EngineKind};
use super::key::prefix;
use super::record;
use super::{
    check_key, collection_space, holds_collections, registered, CollectionId, Error, Result, Store,
    StoreOptions,
};

/// What [`Store::repair_marker`] restored.
#[derive(Debug, Clone)]
pub struct MarkerRepair {
    /// The engine, told from the database's files.
    pub engine: EngineKind,
    /// The collections the database registers, each checked to open (when
    /// the store is encrypted, only with its key: see [`Self::checked`]).
    pub collections: Vec<CollectionId>,
    /// Whether and under which key the records are sealed, told from their
    /// envelopes; `complete: false` when some are still plaintext (an
    /// encryption was interrupted; the next open with the key finishes it).
    pub encryption: Option<Sealing>,
    /// Whether the store was opened and each collection's state read. Not
    /// for an encrypted store repaired without its key: its engine opened
    /// and its registry and record envelopes read, nothing more.
    pub checked: bool,
}

/// A directory without a marker whose database registers nothing: nothing
/// shows that kube-persist wrote it.
const NO_COLLECTIONS: &str =
    "is not a kube-persist store: it has no marker and its database registers no collection";

/// What the database of a store without a marker says about itself.
struct Found {
    collections: Vec<CollectionId>,
    encryption: Option<Sealing>,
    /// The schema its data is at.
    schema: u32,
}

/// How the records of `db` are sealed, told from the key id in their
/// envelopes (every sealed record carries it): `None` when none is sealed.
/// Records that do not decode are left to `verify`: they tell nothing.
fn sealing_of_records(db: &dyn engine::Engine, path: &Path) -> Result<Option<Sealing>> {
    let (mut key_id, mut plaintext): (Option<KeyId>, bool) = (None, false);
    for id in registered(db)? {
        let space = collection_space(&id.name());
        for family in [prefix::OBJECT, prefix::JOURNAL] {
            for item in engine::scan_prefix(db, &space, &[family])? {
                let (_, value) = item?;
                let Ok(framed) = record::decode_framed(&value) else {
                    continue;
                };
                match (framed.key_id, key_id) {
                    (None, _) => plaintext = true,
                    (Some(found), Some(first)) if found != first => {
                        return Err(Error::damaged(
                            path,
                            directory::DB_DIR,
                            format!("records are sealed under two keys, {first} and {found}: no marker can say both"),
                        ))
                    }
                    (Some(found), _) => key_id = Some(found),
                }
            }
        }
    }
    Ok(key_id.map(|key_id| Sealing {
        key_id,
        complete: !plaintext,
    }))
}

impl Store {
    /// Restores the marker (`kube-persist.json`) of the store at `path`
    /// when it is missing but `db/` holds a database: the engine is told
    /// from its files (redb: `data.redb`; sled: `db` and `conf`), the
    /// database must open and register at least one collection, and the
    /// store is then opened as usual and each collection's state read. If
    /// that fails, the marker is removed again and the directory left as it
    /// was found. The marker names the schema the data is at, told from the
    /// layout of the collections' state records (see
    /// `migrations::schema_of_data`): an older store is migrated by that
    /// open, a current one is not.
    ///
    /// `None` when the marker is in place: nothing is done. Fails with
    /// [`Error::NotAStore`] when `path` holds no database, or one that
    /// registers no collection; [`Error::Damaged`] when the engine cannot
    /// open it; [`Error::InUse`] when a process has it open.
    ///
    /// The key id of an encrypted store is recovered from its records'
    /// envelopes, so the marker says the store is encrypted (and, if some
    /// records are still plaintext, that its encryption is unfinished).
    /// Such a store is opened only with its key; without it the marker is
    /// written after the engine's check alone (see [`MarkerRepair::checked`]).
    pub fn repair_marker(path: impl AsRef<Path>) -> Result<Option<MarkerRepair>> {
        Store::repair_marker_with_key(path, None)
    }

    /// [`Store::repair_marker`] of a store that may be encrypted: `key`
    /// opens it to check every collection. Another key than the records'
    /// fails with [`Error::WrongKey`] and writes nothing.
    pub fn repair_marker_with_key(
        path: impl AsRef<Path>,
        key: Option<EncryptionKey>,
    ) -> Result<Option<MarkerRepair>> {
        let path = path.as_ref();
        match directory::check_is_store(path) {
            Ok(()) => return Ok(None),
            Err(Error::NotAStore { what, .. }) if what == MARKER_MISSING => {}
            Err(e) => return Err(e),
        }
        let lock = directory::take_lock(path)?;
        // Under the lock: another process may have restored it meanwhile.
        if directory::check_is_store(path).is_ok() {
            return Ok(None);
        }
        let not_a_store = |what| Error::NotAStore {
            path: path.to_path_buf(),
            what,
        };
        let kind = directory::engine_of_files(path).ok_or_else(|| not_a_store(NO_COLLECTIONS))?;
        let db_dir = path.join(directory::DB_DIR);
        let found = (|| -> Result<Option<Found>> {
            let db = engine::open(kind, &db_dir, path)?;
            if !holds_collections(db.as_ref())? {
                return Ok(None);
            }
            Ok(Some(Found {
                collections: registered(db.as_ref())?,
                encryption: sealing_of_records(db.as_ref(), path)?,
                // From the data, not assumed: an encrypted store repaired
                // without its key is never opened here, so a marker naming
                // an older schema than the data's would stay, and every
                // read after would migrate a copy of it for nothing.
                schema: crate::migrations::schema_of_data(db.as_ref())?,
            }))
        })();
        engine::wait_closed(kind, &db_dir);
        let Found {
            collections,
            encryption,
            schema,
        } = found?.ok_or_else(|| not_a_store(NO_COLLECTIONS))?;
        // Before anything is written: a wrong key is the caller's mistake,
        // not a reason to doubt the records.
        if key.is_some() {
            check_key(path, encryption, key.as_ref())?;
        }
        directory::write_marker_sealed(path, schema, kind, encryption)?;
        drop(lock);
        let checked = encryption.is_none() || key.is_some();
        let opened = (|| -> Result<Vec<CollectionId>> {
            if !checked {
                return Ok(collections);
            }
            let options = StoreOptions {
                encryption_key: key,
                ..StoreOptions::default()
            };
            let store = Store::open_existing_with(path, options)?;
            let collections = store.collections()?;
            for id in &collections {
                store.collection(id)?.meta()?;
            }
            Ok(collections)
        })();
        match opened {
            Ok(collections) => Ok(Some(MarkerRepair {
                engine: kind,
                collections,
                encryption,
                checked,
            })),
            Err(err) => {
                // As found: a marker that names a store which does not open
                // would only hide what is wrong.
                let marker = path.join(directory::MARKER_FILE);
                if let Err(e) = std::fs::remove_file(&marker) {
                    tracing::error!(path = %marker.display(), "could not remove the marker just written: {e}");
                }
                Err(err)
            }
        }
    }
}
