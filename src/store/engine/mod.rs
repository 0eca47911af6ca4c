//! The engine seam: the few operations the store needs from an ordered,
//! transactional key-value store, and the engines that provide them.
//!
//! Records, journal, indexes, cursors and migrations sit above this module
//! and name no engine. An engine holds named *spaces* (sled trees, redb
//! tables), each an ordered map of byte keys to byte values, and offers:
//! a point get, an ordered range scan, an atomic write of a batch of puts
//! and deletes to one space, a sync that makes every write so far durable,
//! and its size on disk. Opening, read-only access and compaction depend on
//! how an engine keeps its files, so they are per engine ([`EngineKind`]).
//!
//! Engine errors never leave this module as the engine's own types: they
//! become the store's [`Error`] (`Engine`, `Damaged`, `InUse`, `Io`).

use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use super::error::{Error, Result};

mod redb;
mod sled;

/// The number of the last durable commit a sled database in `db_dir`
/// recorded beside its files.
#[cfg(test)]
pub(crate) use self::sled::recorded as sled_commit_recorded;

thread_local! {
    static CATCHING_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is inside a call that catches the engine's
/// panics (see [`catching`]).
pub(crate) fn catching_panic() -> bool {
    CATCHING_PANIC.get()
}

/// Runs `f`, an engine call on the store at `store`, turning a panic into
/// damage to the engine's data file: both engines panic on some damaged
/// data (sled on a truncated log, redb on a page whose lengths point past
/// its end) instead of returning an error.
pub(crate) fn catching<T>(
    kind: EngineKind,
    store: &Path,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let was = CATCHING_PANIC.replace(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING_PANIC.set(was);
    result.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(Error::damaged(
            store,
            kind.data_file(),
            format!("the storage engine could not read it ({what})"),
        ))
    })
}

/// An engine whose every call is made through [`catching`], and whose
/// scans end at their first error: an engine that cannot iterate past a
/// damaged page may report the same error forever, and a scan that went on
/// would loop on it.
struct Guarded<E> {
    inner: E,
    store: Arc<Path>,
}

impl<E: Engine> Guarded<E> {
    fn call<T>(&self, f: impl FnOnce(&E) -> Result<T>) -> Result<T> {
        catching(self.inner.kind(), &self.store, || f(&self.inner))
    }
}

impl<E: Engine> Engine for Guarded<E> {
    fn kind(&self) -> EngineKind {
        self.inner.kind()
    }

    fn get(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.call(|e| e.get(space, key))
    }

    fn scan(&self, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Scan> {
        let mut inner = Some(self.call(|e| e.scan(space, range))?);
        let (kind, store) = (self.kind(), self.store.clone());
        Ok(Box::new(std::iter::from_fn(move || {
            let scan = inner.as_mut()?;
            match catching(kind, &store, || scan.next().transpose()) {
                Ok(Some(entry)) => Some(Ok(entry)),
                Ok(None) => {
                    inner = None;
                    None
                }
                Err(e) => {
                    inner = None;
                    Some(Err(e))
                }
            }
        })))
    }

    fn last(&self, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Option<Entry>> {
        self.call(|e| e.last(space, range))
    }

    fn write(&self, space: &str, batch: WriteBatch, durable: bool) -> Result<()> {
        self.call(|e| e.write(space, batch, durable))
    }

    fn sync(&self) -> Result<()> {
        self.call(|e| e.sync())
    }

    fn spaces(&self) -> Result<Vec<String>> {
        self.call(|e| e.spaces())
    }

    fn drop_space(&self, space: &str) -> Result<()> {
        self.call(|e| e.drop_space(space))
    }
}

fn guarded(inner: impl Engine + 'static, store: &Path) -> Db {
    Arc::new(Guarded {
        inner,
        store: Arc::from(store),
    })
}

/// The storage engine a store is kept in, chosen when the store is created
/// and recorded in its marker file; every later open uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// sled 0.34: a log-structured engine. Readers work on a private copy
    /// (sled cannot open a database without writing to it), and compaction
    /// rewrites the database into fresh files.
    Sled,
    /// redb: a copy-on-write B-tree in one file with checksummed pages.
    /// Several processes may read a store in place at once; compaction
    /// happens inside the file.
    Redb,
}

impl EngineKind {
    /// Every engine, in the order benchmarks and tests run them.
    pub const ALL: [EngineKind; 2] = [EngineKind::Sled, EngineKind::Redb];

    /// The engine a new store gets when none is asked for: redb, whose
    /// stores are read in place (no copy), reopen at once after a big
    /// sync, and shrink with `compact` (see README.md for the measurements
    /// behind the choice).
    pub const DEFAULT: EngineKind = EngineKind::Redb;

    /// The name used in the marker file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Sled => "sled",
            EngineKind::Redb => "redb",
        }
    }

    /// Whether a read-only open reads the store's own files (redb) rather
    /// than a private copy of them (sled).
    pub fn reads_in_place(self) -> bool {
        match self {
            EngineKind::Sled => false,
            EngineKind::Redb => true,
        }
    }

    /// The file holding the database's data, relative to the store
    /// directory: the file damage reports name (sled's log, redb's only
    /// file).
    pub fn data_file(self) -> &'static str {
        match self {
            EngineKind::Sled => "db/db",
            EngineKind::Redb => "db/data.redb",
        }
    }

    /// The same file, relative to the database directory (`db/`, or a
    /// copy or rewrite of it).
    pub(crate) fn data_file_name(self) -> &'static str {
        let file = self.data_file();
        file.rsplit_once('/').map_or(file, |(_, name)| name)
    }
}

impl Default for EngineKind {
    fn default() -> EngineKind {
        EngineKind::DEFAULT
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EngineKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<EngineKind> {
        EngineKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("unknown storage engine {s:?} (known: sled, redb)"))
            })
    }
}

/// A key and its value, as a scan yields them.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// An ordered scan over a range of one space. It reads a consistent
/// snapshot on redb; on sled it sees writes made while it runs.
pub(crate) type Scan = Box<dyn Iterator<Item = Result<Entry>> + Send>;

/// Puts and deletes to one space, applied atomically and in order (a later
/// operation on a key wins).
#[derive(Debug, Default, Clone)]
pub(crate) struct WriteBatch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// What the store needs from a storage engine.
pub(crate) trait Engine: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// The value of `key` in `space`; `None` when either is absent.
    fn get(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The entries of `space` with keys in `range`, in key order.
    fn scan(&self, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Scan>;

    /// The entry of `space` with the greatest key in `range`: one seek from
    /// the end, however many entries the range holds.
    fn last(&self, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Option<Entry>>;

    /// Applies `batch` to `space` atomically (creating the space if
    /// needed): after a crash either all of it or none of it is there, and
    /// of several batches, a prefix. Durable once it returns when `durable`
    /// is set, else after the next [`Engine::sync`]; visible to readers at
    /// once either way.
    fn write(&self, space: &str, batch: WriteBatch, durable: bool) -> Result<()>;

    /// Makes every write made so far durable.
    fn sync(&self) -> Result<()>;

    /// The names of the spaces that exist.
    fn spaces(&self) -> Result<Vec<String>>;

    /// Removes a space and everything in it, durably (nothing to do if it
    /// does not exist).
    fn drop_space(&self, space: &str) -> Result<()>;
}

/// An open engine, shared by every handle of one open store.
pub(crate) type Db = Arc<dyn Engine>;

/// An open database bound to what must outlive it: the store's lock, or
/// the private copy a reader reads. The engine closes first, whichever way
/// the handle is dropped (fields drop in declaration order, and these
/// cannot be moved out apart): sled lets go of its files from background
/// threads, and a lock released or a copy removed before that lets a writer
/// in while they are still open, or makes the copy's removal wait for them.
pub(crate) struct Handle<B> {
    db: Db,
    backing: B,
}

impl<B> Handle<B> {
    /// `db`, reading what `backing` holds.
    pub fn new(db: Db, backing: B) -> Handle<B> {
        Handle { db, backing }
    }

    /// The engine. Borrowed, never shared: a clone of the `Arc` could keep
    /// it open past the backing.
    pub fn db(&self) -> &dyn Engine {
        self.db.as_ref()
    }

    /// What the engine reads.
    pub fn backing(&self) -> &B {
        &self.backing
    }

    /// The same engine, its backing converted (a `From` that does not
    /// panic: nothing is dropped on the way).
    pub fn convert<C: From<B>>(self) -> Handle<C> {
        Handle {
            db: self.db,
            backing: self.backing.into(),
        }
    }
}

/// The entries of `space` whose keys start with `prefix`.
pub(crate) fn scan_prefix(db: &dyn Engine, space: &str, prefix: &[u8]) -> Result<Scan> {
    let end = match prefix_end(prefix) {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    db.scan(space, (Bound::Included(prefix.to_vec()), end))
}

/// The entry of `space` with the greatest key starting with `prefix`.
pub(crate) fn last_with_prefix(
    db: &dyn Engine,
    space: &str,
    prefix: &[u8],
) -> Result<Option<Entry>> {
    let end = match prefix_end(prefix) {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    db.last(space, (Bound::Included(prefix.to_vec()), end))
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Opens the database of kind `kind` in directory `db_dir` of the store at
/// `store` (named in errors) for reading and writing; the caller holds the
/// store's lock, or the directory is a private copy.
pub(crate) fn open(kind: EngineKind, db_dir: &Path, store: &Path) -> Result<Db> {
    match kind {
        EngineKind::Sled => Ok(guarded(sled::SledEngine::open(db_dir, store)?, store)),
        EngineKind::Redb => {
            let db = catching(kind, store, || redb::RedbEngine::open(db_dir, store))?;
            Ok(guarded(db, store))
        }
    }
}

/// Opens the database in `db_dir` of the store at `store` for reading
/// only, in place, alongside other readers. `None` when it cannot be read
/// so: the engine reads only copies (sled), or the database needs a
/// recovery that a reader must not make in place (redb after its writer
/// was killed).
pub(crate) fn open_in_place(kind: EngineKind, db_dir: &Path, store: &Path) -> Result<Option<Db>> {
    match kind {
        EngineKind::Sled => Ok(None),
        EngineKind::Redb => {
            let db = catching(kind, store, || {
                redb::RedbEngine::open_read_only(db_dir, store)
            })?;
            Ok(db.map(|db| guarded(db, store)))
        }
    }
}

/// Creates an empty database of kind `kind` in directory `dir`, which must
/// not exist, and closes it; the files are synced.
pub(crate) fn create(kind: EngineKind, dir: &Path, store: &Path) -> Result<()> {
    match kind {
        EngineKind::Sled => sled::create(dir, store),
        EngineKind::Redb => redb::create(dir, store),
    }
}

/// Whether the database in `db_dir` shows signs of holding data that an
/// open would not find: an empty data file where a store that registered
/// collections keeps its data. Checked before opening, since both engines
/// take an empty file for a new, empty database (sled writes nothing to its
/// log until its first flush; redb initializes an empty file).
pub(crate) fn looks_emptied(kind: EngineKind, db_dir: &Path) -> Result<Option<&'static str>> {
    let file = db_dir.join(kind.data_file_name());
    match std::fs::metadata(&file) {
        Ok(m) if m.len() == 0 => Ok(Some("the database file is empty")),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&file, e)),
    }
}

/// Waits until this process no longer holds the database in `db_dir` open
/// (sled lets go of its files from background threads); false if it still
/// does after a while.
pub(crate) fn wait_closed(kind: EngineKind, db_dir: &Path) -> bool {
    match kind {
        EngineKind::Sled => sled::wait_closed(db_dir),
        EngineKind::Redb => true,
    }
}

/// Compacts the database in `db_dir` in place when the engine can (redb):
/// `Some(whether it shrank anything)`; `None` when it cannot (sled: the
/// caller rewrites it into fresh files). The caller holds the store's lock
/// and has no handle open.
pub(crate) fn compact_in_place(
    kind: EngineKind,
    db_dir: &Path,
    store: &Path,
) -> Result<Option<bool>> {
    match kind {
        EngineKind::Sled => Ok(None),
        EngineKind::Redb => catching(kind, store, || redb::compact(db_dir, store)).map(Some),
    }
}

/// Copies every space of `from` into `to` in batches, calling `progress`
/// after each; returns the number of entries copied.
pub(crate) fn copy_all(
    from: &dyn Engine,
    to: &dyn Engine,
    mut progress: impl FnMut() -> Result<()>,
) -> Result<u64> {
    /// Entries per batch: large enough to amortize a commit, small enough
    /// to keep the copy's memory flat.
    const COPY_BATCH: usize = 4096;
    let mut copied = 0u64;
    for space in from.spaces()? {
        let mut batch = WriteBatch::default();
        for item in from.scan(&space, (Bound::Unbounded, Bound::Unbounded))? {
            let (k, v) = item?;
            batch.put(k, v);
            if batch.len() == COPY_BATCH {
                copied += batch.len() as u64;
                to.write(&space, std::mem::take(&mut batch), false)?;
                progress()?;
            }
        }
        copied += batch.len() as u64;
        to.write(&space, batch, false)?;
        progress()?;
    }
    to.sync()?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_skip_trailing_max_bytes() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn data_file_names_are_the_data_files_inside_the_database_directory() {
        assert_eq!(EngineKind::Sled.data_file_name(), "db");
        assert_eq!(EngineKind::Redb.data_file_name(), "data.redb");
    }

    #[test]
    fn engine_names_round_trip_and_unknown_ones_are_named() {
        for k in EngineKind::ALL {
            assert_eq!(k.name().parse::<EngineKind>().unwrap(), k);
        }
        let err = "rocks".parse::<EngineKind>().unwrap_err();
        assert!(err.to_string().contains("\"rocks\""), "{err}");
    }
}
