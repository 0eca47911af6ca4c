//! Restoring the marker of a store that lost it (deleted by hand or by a
//! clean-up script): the database holds everything; the marker only says
//! which engine and schema wrote it, and without it nothing opens the store.

use std::path::Path;

use super::directory::{self, MARKER_MISSING};
use super::engine::{self, EngineKind};
use super::{holds_collections, CollectionId, Error, Result, Store};

/// What [`Store::repair_marker`] restored.
#[derive(Debug, Clone)]
pub struct MarkerRepair {
    /// The engine, told from the database's files.
    pub engine: EngineKind,
    /// The collections the database registers, each checked to open.
    pub collections: Vec<CollectionId>,
}

/// A directory without a marker whose database registers nothing: nothing
/// shows that kube-persist wrote it.
const NO_COLLECTIONS: &str =
    "is not a kube-persist store: it has no marker and its database registers no collection";

/// The schema the restored marker names first. Which schema wrote the
/// database is not recorded in it, so opening the store then runs every
/// migration step; each recognises data already in its layout and leaves
/// it alone (see `migrations`), so a store of any schema this build knows
/// ends at this build's, and one of a layout it does not know is refused
/// as corrupt rather than rewritten.
const FIRST_SCHEMA: u32 = 1;

impl Store {
    /// Restores the marker (`kube-persist.json`) of the store at `path`
    /// when it is missing but `db/` holds a database: the engine is told
    /// from its files (redb: `data.redb`; sled: `db` and `conf`), the
    /// database must open and register at least one collection, and the
    /// store is then opened as usual (migrations included) and each
    /// collection's state read. If that fails, the marker is removed again
    /// and the directory left as it was found.
    ///
    /// `None` when the marker is in place: nothing is done. Fails with
    /// [`Error::NotAStore`] when `path` holds no database, or one that
    /// registers no collection; [`Error::Damaged`] when the engine cannot
    /// open it; [`Error::InUse`] when a process has it open.
    pub fn repair_marker(path: impl AsRef<Path>) -> Result<Option<MarkerRepair>> {
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
        let holds = {
            let db = engine::open(kind, &db_dir, path)?;
            holds_collections(db.as_ref())?
        };
        engine::wait_closed(kind, &db_dir);
        if !holds {
            return Err(not_a_store(NO_COLLECTIONS));
        }
        directory::write_marker(path, FIRST_SCHEMA, kind)?;
        drop(lock);
        let opened = (|| -> Result<Vec<CollectionId>> {
            let store = Store::open_existing(path)?;
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
