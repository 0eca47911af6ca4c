//! Read-only opening: a store is read through a private copy of its
//! database, so reading never changes a byte of it.
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

use super::directory::{self, COMPACT_DIR, DB_DIR, LOCK_FILE, OLD_DIR};
use super::error::{Error, Result};

/// The private copy a read-only store reads; removed when dropped (after
/// sled has let go of it).
#[derive(Debug)]
pub(crate) struct Copy {
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
    /// Where sled opens the copy.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join(DB_DIR)
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        directory::wait_for_sled_close(&self.db_path());
    }
}

/// What a read-only opening found: the copy, and the schema version the
/// store's marker names.
pub(crate) struct Opened {
    pub copy: Copy,
    pub found_schema: u32,
    /// Whether the marker says the store registered collections.
    pub had_collections: bool,
}

/// Copies the database of the store at `path` into a private temporary
/// directory. Fails with [`Error::InUse`] while a writer has the store open
/// (its database may be mid-write), and with [`Error::NewerSchema`] before
/// copying anything a newer build wrote.
pub(crate) fn open(path: &Path) -> Result<Opened> {
    directory::check_store_dir(path)?;
    // Before the lock: the scan of $TMPDIR does not touch the store, and a
    // writer waiting for readers should not wait for it.
    let tmp = std::env::temp_dir();
    remove_abandoned_copies(&tmp);
    let _lock = shared_lock(path)?;
    // Read under the lock: a writer may have migrated the store or
    // registered its first collection meanwhile.
    let (found_schema, had_collections) = directory::check_store_marker(path)?;
    if found_schema > crate::migrations::SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found: found_schema,
            supported: crate::migrations::SCHEMA_VERSION,
        });
    }
    let source = database_dir(path, had_collections)?;
    let dir = tempfile::Builder::new()
        .prefix(COPY_PREFIX)
        .tempdir_in(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(dir.path(), e))?;
    let copy = Copy {
        _owner: owner_lock(dir.path())?,
        dir,
    };
    // With no database yet, sled creates an empty one in the copy.
    if let Some(source) = source {
        copy_tree(&source, &copy.db_path())?;
    }
    Ok(Opened {
        copy,
        found_schema,
        had_collections,
    })
}

/// A shared lock on the store, held while copying: any number of readers,
/// no writer. `None` when the lock file cannot exist (a store on a
/// read-only filesystem, where no writer can run either).
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
/// subdirectories; sled keeps nothing else there.
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
