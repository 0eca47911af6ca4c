//! The store directory: its marker file, its lock and its permissions.
//!
//! ```text
//! <store>/kube-persist.json   marker: {"format": F, "schema_version": N, "engine": E}
//! <store>/lock                held (flock) while a process has the store open
//! <store>/db/                 the database (sled's files, or redb's data.redb)
//! <store>/db.compact/         a sled compaction's new database, until swapped in
//! <store>/db.old/             the database a compaction replaced, until removed
//! <store>/db.init/            a new database while the engine writes its first files
//! ```
//!
//! The schema version and the engine live in the marker, outside the
//! database, so that a store written by a newer build is refused before the
//! engine opens (and possibly rewrites) anything.
//!
//! The marker's format names the engine's family of builds: `kube-persist`
//! for a sled store, which every build reads, and `kube-persist-redb` for a
//! redb store. Builds from before redb accept any `kube-persist` marker of
//! schema 2 or less as a sled store and ignore fields they do not know, so
//! a redb store marked `kube-persist` would be opened as sled by them: sled
//! files written beside `data.redb` and the marker rewritten without its
//! engine, orphaning the data. Under its own format they refuse it (an
//! unknown format) and leave it untouched. The first writer to open a redb
//! store marked the older way rewrites its marker. Our own lock is taken
//! before the engine's so that a second process gets [`Error::InUse`]
//! rather than the engine's generic error.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fs2::FileExt;

use super::encryption::KeyId;
use super::engine::{self, EngineKind};
use super::error::{Error, Result};

/// Name of the marker file that makes a directory a store.
pub const MARKER_FILE: &str = "kube-persist.json";
/// Name of the lock file.
pub const LOCK_FILE: &str = "lock";
/// Name of the database directory.
pub const DB_DIR: &str = "db";
/// Where a compaction writes the new database before swapping it in.
pub const COMPACT_DIR: &str = "db.compact";
/// Where the replaced database waits for removal during a swap.
pub const OLD_DIR: &str = "db.old";
/// Where a new database is created before it is renamed to [`DB_DIR`].
pub const INIT_DIR: &str = "db.init";

/// The marker's format of a sled store (and of every store before redb).
const FORMAT: &str = "kube-persist";
/// The marker's format of a redb store (see the module's documentation).
const FORMAT_REDB: &str = "kube-persist-redb";

/// Appended to the format of an encrypted store (or one being encrypted),
/// so that builds which cannot read sealed records refuse it unread.
const SEALED_SUFFIX: &str = "+sealed";

/// The marker's format of a store kept in `engine`.
fn format_of(engine: EngineKind) -> &'static str {
    match engine {
        EngineKind::Sled => FORMAT,
        EngineKind::Redb => FORMAT_REDB,
    }
}

/// The marker's format of a store kept in `engine`, encrypted or not.
fn full_format_of(engine: EngineKind, sealed: bool) -> String {
    let suffix = if sealed { SEALED_SUFFIX } else { "" };
    format!("{}{suffix}", format_of(engine))
}

/// What the marker says about at-rest encryption: public knowledge, read
/// without the key ([`crate::store::Store::encryption_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sealing {
    /// The id of the key records are sealed under.
    #[serde(with = "key_id_hex")]
    pub key_id: KeyId,
    /// Whether every record is sealed; false while an encryption rewrites
    /// the store (records of both kinds are then read).
    pub complete: bool,
}

mod key_id_hex {
    use super::KeyId;

    pub fn serialize<S: serde::Serializer>(id: &KeyId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<KeyId, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    format: String,
    schema_version: u32,
    /// Set once the store has registered a collection: a database that then
    /// holds none lost its log (sled reads a truncated log as an empty
    /// database, which would otherwise look like a new store).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    had_collections: bool,
    /// The storage engine; absent in stores written before there was a
    /// choice, which are all sled's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    engine: Option<EngineKind>,
    /// Set once a store is (being) encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption: Option<Sealing>,
}

impl Marker {
    /// The format without the sealed suffix.
    fn base_format(&self) -> &str {
        self.format
            .strip_suffix(SEALED_SUFFIX)
            .unwrap_or(&self.format)
    }

    fn engine(&self) -> EngineKind {
        match self.base_format() {
            FORMAT_REDB => EngineKind::Redb,
            _ => self.engine.unwrap_or(EngineKind::Sled),
        }
    }

    fn info(&self) -> MarkerInfo {
        MarkerInfo {
            schema_version: self.schema_version,
            had_collections: self.had_collections,
            engine: self.engine(),
            outdated_format: self.base_format() != format_of(self.engine()),
            encryption: self.encryption,
        }
    }
}

/// A locked store directory. The lock is released when the last clone is
/// dropped (compaction keeps one while the store it opened is closed).
#[derive(Debug, Clone)]
pub(crate) struct StoreDir {
    pub path: PathBuf,
    /// What the marker said when the directory was opened (`None` for a
    /// directory that was just created).
    pub found: Option<MarkerInfo>,
    /// The store's engine: the marker's, or for a new store the one its
    /// creator chose (set before the database is created).
    pub engine: Option<EngineKind>,
    _lock: Arc<File>,
}

impl StoreDir {
    /// Locks the store at `path`, creating the directory if `create` is set.
    /// Writes nothing but the lock file of an existing store.
    pub fn open(path: &Path, create: bool) -> Result<StoreDir> {
        let exists = match check_is_store(path) {
            Ok(()) => true,
            Err(Error::NotAStore { what, .. }) if create && what == DOES_NOT_EXIST => {
                fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
                false
            }
            // Refusing to create inside a non-empty directory keeps a typo in
            // a path from scattering sled files over someone's data.
            Err(Error::NotAStore { what, .. }) if create && what == NO_MARKER => {
                if !holds_only_an_unfinished_creation(path)? {
                    return Err(not_a_store(path, NO_MARKER));
                }
                false
            }
            Err(e) => return Err(e),
        };
        let lock = take_lock(path)?;
        // Read again under the lock: another process may have created or
        // migrated the store meanwhile.
        let found = read_marker_full(path)?.as_ref().map(Marker::info);
        if found.is_some() {
            finish_swap(path)?;
            if exists && !path.join(DB_DIR).exists() {
                // A writer heals this by relisting; it should not go unseen.
                tracing::warn!(path = %path.display(), "the store's database is missing; starting an empty one");
            }
        }
        Ok(StoreDir {
            path: path.to_path_buf(),
            engine: found.map(|m| m.engine),
            found,
            _lock: Arc::new(lock),
        })
    }

    /// Where the engine keeps its files.
    pub fn db_path(&self) -> PathBuf {
        self.path.join(DB_DIR)
    }

    /// The store's engine (set for every store that has a marker).
    pub fn engine(&self) -> EngineKind {
        self.engine.unwrap_or(EngineKind::Sled)
    }

    /// Creates an empty database at [`db_path`](Self::db_path) if there is
    /// none. It is built aside and renamed into place once the engine has
    /// written its first files: sled writes its config in two steps, and a
    /// process killed between them would leave a database that never opens
    /// again; redb's header is written the same way.
    pub fn create_database_if_missing(&self) -> Result<()> {
        let (db, init) = (self.db_path(), self.path.join(INIT_DIR));
        // Left by a process killed while creating; never holds data.
        remove_dir_if_present(&init)?;
        if exists(&db)? {
            return Ok(());
        }
        engine::create(self.engine(), &init, &self.path)?;
        rename_durably(&self.path, &init, &db)
    }

    /// Where a compaction builds the new database.
    pub fn compact_path(&self) -> PathBuf {
        self.path.join(COMPACT_DIR)
    }

    /// Replaces the database with the one compaction built in
    /// [`compact_path`](Self::compact_path), which must be complete and
    /// synced. Each step is a rename made durable before the next, so that
    /// [`finish_swap`] can tell from the directories alone how far it got.
    pub fn swap_in_compacted(
        &self,
        mut after_step: impl FnMut(SwapStep) -> Result<()>,
    ) -> Result<()> {
        let (db, new, old) = (self.db_path(), self.compact_path(), self.path.join(OLD_DIR));
        rename_durably(&self.path, &db, &old)?;
        after_step(SwapStep::OldMovedAside)?;
        rename_durably(&self.path, &new, &db)?;
        after_step(SwapStep::NewInPlace)?;
        remove_dir_if_present(&old)
    }

    /// Records `schema_version` and the engine in the marker, atomically
    /// (write + rename).
    pub fn write_marker(&self, schema_version: u32) -> Result<()> {
        write_marker(&self.path, schema_version, self.engine())
    }

    /// Makes the directory 0700 and every file below it 0600, whatever the umask.
    pub fn secure(&self) -> Result<()> {
        secure_tree(&self.path)
    }
}

/// Opens (creating) the lock file of the store directory `path` and takes
/// it for a writer (see [`lock_exclusive`]).
pub(crate) fn take_lock(path: &Path) -> Result<File> {
    let lock_path = path.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    lock_exclusive(&lock, path)?;
    Ok(lock)
}

/// Takes the store's lock for a writer. Readers hold it shared: while they
/// copy the database, or for as long as they read it in place (see
/// `read_only`). A writer that finds only readers waits up to
/// [`READER_WAIT`] for them, then fails with [`Error::InUse`]; another
/// writer is [`Error::InUse`] at once.
fn lock_exclusive(lock: &File, path: &Path) -> Result<()> {
    let contended =
        |e: &std::io::Error| e.raw_os_error() == fs2::lock_contended_error().raw_os_error();
    let lock_err = |e| Error::io(path.join(LOCK_FILE), e);
    let in_use = || Error::InUse {
        path: path.to_path_buf(),
    };
    let deadline = Instant::now() + READER_WAIT;
    loop {
        match lock.try_lock_exclusive() {
            Ok(()) => return Ok(()),
            Err(e) if !contended(&e) => return Err(lock_err(e)),
            Err(_) => {}
        }
        // A shared lock is granted only when no writer holds the store.
        match FileExt::try_lock_shared(lock) {
            Ok(()) => FileExt::unlock(lock).map_err(lock_err)?,
            Err(e) if contended(&e) => return Err(in_use()),
            Err(e) => return Err(lock_err(e)),
        }
        if Instant::now() >= deadline {
            return Err(in_use());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Longest a writer waits for readers to let go of the store.
const READER_WAIT: Duration = Duration::from_secs(30);

/// The points of [`StoreDir::swap_in_compacted`] a crash can fall between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SwapStep {
    /// `db` was renamed to `db.old`; there is no `db`.
    OldMovedAside,
    /// `db.compact` was renamed to `db`; `db.old` is still there.
    NewInPlace,
}

impl Drop for StoreDir {
    /// Runs after the engine is dropped (an `engine::Handle` binds them,
    /// and a local engine is declared after the `StoreDir` it opened, so it
    /// is dropped first). sled lets go of its own file
    /// lock from background threads a little later; waiting for that here
    /// makes "closed" mean closed, so the next opener (this process or
    /// another) does not find the engine's lock still held.
    fn drop(&mut self) {
        engine::wait_closed(self.engine(), &self.db_path());
    }
}

/// Makes every file and directory below `dir` durable: contents, sizes and
/// entries (an engine's own flush may sync data ranges, not file metadata).
pub(crate) fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if entry.file_type().map_err(|e| Error::io(&path, e))?.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
    }
    sync_dir(dir)
}

/// Completes or undoes a compaction that a crash interrupted; run under the
/// lock before the engine opens. The swap renames `db` to `db.old` only once
/// `db.compact` is complete, so:
/// - `db` present: any `db.compact` is unfinished and any `db.old` is
///   replaced; both are removed.
/// - `db` missing, `db.old` and `db.compact` present: the swap stopped
///   between its renames; `db.compact` is moved in and `db.old` removed.
/// - `db` missing, only `db.old`: moved back.
pub(crate) fn finish_swap(path: &Path) -> Result<()> {
    let (db, new, old) = (
        path.join(DB_DIR),
        path.join(COMPACT_DIR),
        path.join(OLD_DIR),
    );
    if exists(&db)? {
        for leftover in [&new, &old] {
            if exists(leftover)? {
                tracing::info!(path = %leftover.display(), "removing what an interrupted compaction left");
                remove_dir_if_present(leftover)?;
            }
        }
        return Ok(());
    }
    match (exists(&new)?, exists(&old)?) {
        (true, true) => {
            tracing::info!(path = %path.display(), "finishing an interrupted compaction");
            rename_durably(path, &new, &db)?;
            remove_dir_if_present(&old)
        }
        (false, true) => {
            tracing::info!(path = %path.display(), "undoing an interrupted compaction");
            rename_durably(path, &old, &db)
        }
        // Never left by a compaction (it moves `db` aside only after the new
        // database is complete), so whether it is whole cannot be known.
        (true, false) => Err(unfinished_copy_error(path)),
        (false, false) => Ok(()),
    }
}

/// Bytes the files below `p` take.
pub(crate) fn size_of(p: &Path) -> Result<u64> {
    let meta = fs::symlink_metadata(p).map_err(|e| Error::io(p, e))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in fs::read_dir(p).map_err(|e| Error::io(p, e))? {
        let entry = entry.map_err(|e| Error::io(p, e))?;
        match size_of(&entry.path()) {
            Ok(n) => total += n,
            // sled deletes old segments and snapshots as it goes.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

fn exists(p: &Path) -> Result<bool> {
    match fs::symlink_metadata(p) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(p, e)),
    }
}

fn remove_dir_if_present(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// Renames `from` to `to` inside the store directory `dir` and syncs `dir`,
/// so the rename survives a power cut before the next step begins.
fn rename_durably(dir: &Path, from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io(from, e))?;
    sync_dir(dir)
}

/// Makes the entries of directory `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

const DOES_NOT_EXIST: &str = "does not exist";
const NOT_A_DIRECTORY: &str = "is not a directory";
const NO_MARKER: &str = "is not a kube-persist store";
/// What a directory is whose marker is missing while `db/` holds an
/// engine's files: most likely a store whose marker was deleted, which
/// [`crate::store::Store::repair_marker`] restores.
pub const MARKER_MISSING: &str = "is not a kube-persist store as it is: its marker \
     kube-persist.json is missing, though db/ holds a database";

/// The engine whose files the database directory of `path` holds, if any:
/// redb's `data.redb`, or sled's `db` and `conf`.
pub(crate) fn engine_of_files(path: &Path) -> Option<EngineKind> {
    let db = path.join(DB_DIR);
    let is_file = |name: &str| fs::symlink_metadata(db.join(name)).is_ok_and(|m| m.is_file());
    if is_file(EngineKind::Redb.data_file_name()) {
        Some(EngineKind::Redb)
    } else if is_file(EngineKind::Sled.data_file_name()) && is_file("conf") {
        Some(EngineKind::Sled)
    } else {
        None
    }
}

fn not_a_store(path: &Path, what: &'static str) -> Error {
    Error::NotAStore {
        path: path.to_path_buf(),
        what,
    }
}

/// What a store's marker says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MarkerInfo {
    pub schema_version: u32,
    pub had_collections: bool,
    pub engine: EngineKind,
    /// The marker is not in its engine's format (a redb store marked by a
    /// build that named redb only in `engine`); a writer rewrites it.
    pub outdated_format: bool,
    /// Whether and under which key the store is encrypted.
    pub encryption: Option<Sealing>,
}

/// Checks that `path` is a store directory: a directory holding a marker.
/// The marker itself is read only under the store's lock, since a writer
/// may change it until then.
pub(crate) fn check_is_store(path: &Path) -> Result<()> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_a_store(path, NOT_A_DIRECTORY)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_a_store(path, DOES_NOT_EXIST))
        }
        Err(e) => return Err(Error::io(path, e)),
    }
    let marker = path.join(MARKER_FILE);
    match fs::symlink_metadata(&marker) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let what = match engine_of_files(path) {
                Some(_) => MARKER_MISSING,
                None => NO_MARKER,
            };
            Err(not_a_store(path, what))
        }
        Err(e) => Err(Error::io(&marker, e)),
    }
}

/// What the marker of the store at `path` says. Reads, never writes.
pub(crate) fn read_marker(path: &Path) -> Result<MarkerInfo> {
    let marker = read_marker_full(path)?.ok_or_else(|| not_a_store(path, NO_MARKER))?;
    Ok(marker.info())
}

/// A store whose `db/` is gone but a compaction's unfinished copy is there.
pub(crate) fn unfinished_copy_error(path: &Path) -> Error {
    Error::damaged(path, COMPACT_DIR, format!("{DB_DIR}/ is missing and {COMPACT_DIR}/ may be incomplete; move one of them to {DB_DIR}/ by hand"))
}

/// A store whose database directory is gone.
pub(crate) fn missing_database_error(path: &Path) -> Error {
    Error::damaged(
        path,
        DB_DIR,
        "the database directory is missing: the store's data was removed",
    )
}

/// Whether `path` holds nothing but what a creation killed before its marker
/// was in place leaves behind: the lock file and the marker's temporary file.
/// Such a directory is taken over; anything else in it is someone's data.
fn holds_only_an_unfinished_creation(path: &Path) -> Result<bool> {
    let marker_tmp = marker_tmp_name();
    for entry in fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let entry = entry.map_err(|e| Error::io(path, e))?;
        let name = entry.file_name();
        if name != LOCK_FILE && name.to_str() != Some(marker_tmp.as_str()) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn marker_tmp_name() -> String {
    format!("{MARKER_FILE}.tmp")
}

/// Records in the marker whether the store registers collections.
pub(crate) fn set_had_collections(path: &Path, had: bool) -> Result<()> {
    match read_marker_full(path)? {
        Some(m) if m.had_collections == had => Ok(()),
        Some(m) => store_marker(
            path,
            &Marker {
                had_collections: had,
                ..m
            },
        ),
        None => Err(not_a_store(path, NO_MARKER)),
    }
}

fn read_marker_full(path: &Path) -> Result<Option<Marker>> {
    let marker_path = path.join(MARKER_FILE);
    let text = match fs::read(&marker_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&marker_path, e)),
    };
    let marker: Marker = serde_json::from_slice(&text)
        .map_err(|e| Error::corrupt_by("(store)", MARKER_FILE, "marker does not parse", e))?;
    if marker.format.ends_with(SEALED_SUFFIX) != marker.encryption.is_some() {
        return Err(Error::corrupt(
            "(store)",
            MARKER_FILE,
            format!(
                "format {:?} and the encryption field disagree",
                marker.format
            ),
        ));
    }
    match (marker.base_format(), marker.engine) {
        (FORMAT, _) | (FORMAT_REDB, None | Some(EngineKind::Redb)) => {}
        (FORMAT_REDB, Some(other)) => {
            return Err(Error::corrupt(
                "(store)",
                MARKER_FILE,
                format!("format {FORMAT_REDB:?} names engine {other}"),
            ))
        }
        (other, _) => {
            return Err(Error::corrupt(
                "(store)",
                MARKER_FILE,
                format!("format is {other:?}, expected {FORMAT:?} or {FORMAT_REDB:?}"),
            ))
        }
    }
    Ok(Some(marker))
}

/// Writes the marker of the store at `path` (also used by migration fixtures).
pub(crate) fn write_marker(path: &Path, schema_version: u32, engine: EngineKind) -> Result<()> {
    let found = read_marker_full(path).ok().flatten();
    let encryption = found.as_ref().and_then(|m| m.encryption);
    write_marker_sealed(path, schema_version, engine, encryption)
}

/// Writes the marker of the store at `path`, saying `encryption`.
pub(crate) fn write_marker_sealed(
    path: &Path,
    schema_version: u32,
    engine: EngineKind,
    encryption: Option<Sealing>,
) -> Result<()> {
    let found = read_marker_full(path).ok().flatten();
    store_marker(
        path,
        &Marker {
            format: full_format_of(engine, encryption.is_some()),
            schema_version,
            had_collections: found.is_some_and(|m| m.had_collections),
            engine: Some(engine),
            encryption,
        },
    )
}

/// Records in the marker how the store is encrypted.
pub(crate) fn set_encryption(path: &Path, encryption: Sealing) -> Result<()> {
    let m = read_marker_full(path)?.ok_or_else(|| not_a_store(path, NO_MARKER))?;
    store_marker(
        path,
        &Marker {
            format: full_format_of(m.engine(), true),
            encryption: Some(encryption),
            ..m
        },
    )
}

fn store_marker(path: &Path, marker: &Marker) -> Result<()> {
    let tmp = path.join(marker_tmp_name());
    let body = serde_json::to_vec_pretty(marker).map_err(|e| Error::encode(MARKER_FILE, e))?;
    replace_durably(path, &tmp, &path.join(MARKER_FILE), &body)
}

/// Makes `dst`, a file in directory `dir`, hold `body` (mode 0600), whole or
/// not at all whatever instant the power fails: written to `tmp`, synced,
/// renamed over `dst`, and the directory synced.
pub(crate) fn replace_durably(dir: &Path, tmp: &Path, dst: &Path, body: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| Error::io(tmp, e))?;
    f.write_all(body).map_err(|e| Error::io(tmp, e))?;
    f.sync_all().map_err(|e| Error::io(tmp, e))?;
    fs::rename(tmp, dst).map_err(|e| Error::io(dst, e))?;
    // The rename is only durable once the directory entry is.
    sync_dir(dir)
}

fn secure_tree(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = if meta.is_dir() { 0o700 } else { 0o600 };
    if meta.permissions().mode() & 0o777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(path, e))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            match secure_tree(&entry.path()) {
                // sled removes old snapshots concurrently; a vanished file needs no securing.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}
