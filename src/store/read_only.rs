//! Read-only opening: reading never changes a byte of the store.
//!
//! On redb the store is read in place: redb opens a database read-only,
//! from several processes at once, and the reader holds the store's lock
//! shared for as long as it is open, so no writer opens it meanwhile: a
//! writer waits up to 30 s for readers, then fails with `InUse` (see
//! `directory`). A redb store whose writer was killed needs a repair before
//! redb reads it, and a store of an older schema needs migrating: both are
//! read through a private copy instead.
//!
//! sled 0.34 has no read-only mode. Opening a database writes to it (a new
//! snapshot, the log's tail) and, when the log holds a corrupt message,
//! recovery cuts the log there and zeroes what follows: a diagnostic
//! command would destroy the very data it was asked to look at. So the
//! database is copied, under a shared lock that only a writer contends,
//! into a private temporary directory, and sled opens the copy. The copy
//! goes through `std::fs::copy` (an in-kernel copy, a reflink on
//! filesystems that have them). This also lets an older schema be migrated
//! in the copy only, and lets a store on a read-only filesystem be read.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fs2::FileExt;

use super::directory::{self, MarkerInfo, COMPACT_DIR, DB_DIR, LOCK_FILE, OLD_DIR};
use super::engine::{self, EngineKind};
use super::error::{Error, Result};
use crate::migrations::SCHEMA_VERSION;

/// The private copy a read-only store reads; removed when dropped (after
/// the engine has let go of it).
#[derive(Debug)]
pub(crate) struct Copy {
    engine: EngineKind,
    dir: tempfile::TempDir,
    /// Locked while this process lives: a copy whose owner lock can be
    /// taken was left by a reader that was killed, and the next reader
    /// removes it (see [`remove_abandoned_copies`]).
    _owner: File,
}

/// Prefix of the copies' directories under `$TMPDIR`.
const COPY_PREFIX: &str = "kube-persist-read-";
/// The owner lock inside a copy's directory.
const OWNER_FILE: &str = "owner.lock";

impl Copy {
    /// Where the engine opens the copy.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join(DB_DIR)
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        engine::wait_closed(self.engine, &self.db_path());
    }
}

/// Where a read-only store's data is read from.
pub(crate) enum Source {
    /// The store's own database, under the store's lock (shared), which is
    /// held as long as this lives. `None` when the lock file cannot exist
    /// (a store on a read-only filesystem).
    InPlace { _lock: Option<File> },
    /// A private copy, removed when this is dropped.
    Copy { _copy: Copy },
}

/// A store opened for reading.
pub(crate) struct Opened {
    /// The engine, open on the store's database or on a copy of it.
    pub engine: engine::Handle<Source>,
    /// What the marker said, read under the lock.
    pub marker: MarkerInfo,
}

/// Locks the store at `path` shared and opens its database: in place when
/// its engine reads in place, its schema is current, it has a database and
/// that database was closed cleanly; else a copy of it in a private
/// temporary directory. Fails with [`Error::InUse`] while a writer has the
/// store open (its database may be mid-write), with [`Error::NewerSchema`]
/// before reading anything a newer build wrote, and with
/// [`Error::Damaged`] when the database looks emptied.
pub(crate) fn open(path: &Path) -> Result<Opened> {
    directory::check_is_store(path)?;
    let lock = shared_lock(path)?;
    // Read under the lock: a writer may have migrated the store or
    // registered its first collection meanwhile.
    let marker = directory::read_marker(path)?;
    if marker.schema_version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found: marker.schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    let kind = marker.engine;
    let db_dir = database_dir(path, marker.had_collections)?;
    if let Some(db_dir) = &db_dir {
        super::check_not_emptied(kind, db_dir, path, marker.had_collections)?;
        if marker.schema_version == SCHEMA_VERSION {
            if let Some(db) = engine::open_in_place(kind, db_dir, path)? {
                let engine = engine::Handle::new(db, Source::InPlace { _lock: lock });
                return Ok(Opened { engine, marker });
            }
            if kind.reads_in_place() {
                tracing::info!(path = %path.display(), "the store was not closed cleanly; reading a recovered copy, the store itself is unchanged");
            }
        }
    }
    let copy = copy(db_dir.as_deref(), kind)?;
    // The copy is all this reader reads: writers may open the store again.
    drop(lock);
    let db = engine::open(kind, &copy.db_path(), path)?;
    Ok(Opened {
        engine: engine::Handle::new(db, Source::Copy { _copy: copy }),
        marker,
    })
}

/// Copies the database in `source` (none: an empty store) of engine
/// `engine` into a private temporary directory. The caller holds the
/// store's lock, shared.
fn copy(source: Option<&Path>, engine: EngineKind) -> Result<Copy> {
    let tmp = std::env::temp_dir();
    // Only readers that copy leave copies behind, and only they need the
    // space those take.
    remove_abandoned_copies(&tmp);
    let dir = tempfile::Builder::new()
        .prefix(COPY_PREFIX)
        .tempdir_in(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(dir.path(), e))?;
    let copy = Copy {
        engine,
        _owner: owner_lock(dir.path())?,
        dir,
    };
    match source {
        Some(source) => copy_tree(source, &copy.db_path())?,
        None => engine::create(engine, &copy.db_path(), copy.dir.path())?,
    }
    Ok(copy)
}

/// A shared lock on the store, held while copying, or while reading in
/// place for as long as the store is open: any number of readers, no
/// writer. `None` when the lock file cannot exist (a store on a read-only
/// filesystem, where no writer can run either).
fn shared_lock(path: &Path) -> Result<Option<File>> {
    let lock_path = path.join(LOCK_FILE);
    let file = match OpenOptions::new().read(true).open(&lock_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&lock_path)
            {
                Ok(f) => f,
                Err(e) if is_read_only(&e) => return Ok(None),
                Err(e) => return Err(Error::io(&lock_path, e)),
            }
        }
        Err(e) => return Err(Error::io(&lock_path, e)),
    };
    match FileExt::try_lock_shared(&file) {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => {
            Err(Error::InUse {
                path: path.to_path_buf(),
            })
        }
        Err(e) => Err(Error::io(&lock_path, e)),
    }
}

/// Creates the owner lock of a copy, locked. It is locked under another
/// name and then renamed (a lock belongs to the open file, not its name), so
/// that no other reader ever finds `owner.lock` unlocked while we live.
fn owner_lock(dir: &Path) -> Result<File> {
    let (staging, owner) = (dir.join("owner.staging"), dir.join(OWNER_FILE));
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&staging)
        .map_err(|e| Error::io(&staging, e))?;
    FileExt::lock_exclusive(&file).map_err(|e| Error::io(&staging, e))?;
    fs::rename(&staging, &owner).map_err(|e| Error::io(&owner, e))?;
    Ok(file)
}

/// Removes the copies that readers killed before they could remove their
/// own left under `tmp` (their owner lock is free). Best effort: a copy we
/// cannot remove costs space, not correctness.
fn remove_abandoned_copies(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(COPY_PREFIX) {
            continue;
        }
        // No owner lock yet: a reader is still setting up; leave it.
        let Ok(owner) = File::open(entry.path().join(OWNER_FILE)) else {
            continue;
        };
        if FileExt::try_lock_exclusive(&owner).is_ok() {
            tracing::debug!(path = %entry.path().display(), "removing a copy a killed reader left");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn is_read_only(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
    )
}

/// The directory holding the store's current database. A reader must not
/// finish an interrupted compaction, so it picks the database the next
/// writer's open would settle on (see [`directory::finish_swap`]). `None`
/// for a store that never registered a collection and has no database yet
/// (its creator was stopped before creating it): an empty store.
fn database_dir(path: &Path, had_collections: bool) -> Result<Option<PathBuf>> {
    let (db, new, old) = (
        path.join(DB_DIR),
        path.join(COMPACT_DIR),
        path.join(OLD_DIR),
    );
    if db.is_dir() {
        return Ok(Some(db));
    }
    match (new.is_dir(), old.is_dir()) {
        (true, true) => Ok(Some(new)),
        (false, true) => Ok(Some(old)),
        (true, false) => Err(directory::unfinished_copy_error(path)),
        (false, false) if had_collections => Err(directory::missing_database_error(path)),
        (false, false) => Ok(None),
    }
}

/// Copies directory `from` to `to` (created private), files and
/// subdirectories; engines keep nothing else there.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(to)
        .map_err(|e| Error::io(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| Error::io(&src, e))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io(&dst, e))?;
        }
    }
    Ok(())
}
