//! sled 0.34 behind the engine seam.
//!
//! sled has no read-only mode (opening writes to its log, and recovery cuts
//! a damaged log short), so readers open a private copy (see
//! `store::read_only`); it never shrinks its files, so compaction rewrites
//! the database into a new directory and swaps it in (see
//! `store::compact`). It panics on some damage (a truncated log) instead of
//! returning an error: the panic is caught here and reported as damage.
//!
//! sled also reads a log message that fails its checksum as the end of its
//! log, as it would a write torn by a crash, and opens at the state before
//! it without an error. So each durable commit is numbered (see
//! [`durable`]): the number goes into sled, and once sled has flushed it,
//! into a file beside sled's; an open that finds sled behind that file has
//! lost commits it acknowledged, and reports the log as damaged.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use fs2::FileExt;

use super::{Engine, EngineKind, Entry, Scan, WriteBatch};
use crate::store::error::{out_of_space, Error, Result};
use crate::store::{directory, DEFAULT_SPACE};

mod durable;

#[cfg(test)]
pub(crate) use durable::recorded;
use durable::Commits;

/// sled's name of its default tree, which holds [`DEFAULT_SPACE`].
const SLED_DEFAULT_TREE: &[u8] = b"__sled__default";

pub(crate) struct SledEngine {
    db: sled::Db,
    trees: Mutex<HashMap<String, sled::Tree>>,
    /// The numbering of durable commits.
    commits: Commits,
    store: PathBuf,
}

impl SledEngine {
    /// Opens the database in `db_dir` of the store at `store`, failing
    /// with [`Error::Damaged`] when sled opens it at a state older than
    /// one it acknowledged as durable.
    pub(crate) fn open(db_dir: &Path, store: &Path) -> Result<SledEngine> {
        remove_unfinished_snapshots(db_dir, store)?;
        let config = sled::Config::new().path(db_dir);
        let (db, commits) = super::catching(EngineKind::Sled, store, || {
            let db = config.open().map_err(|e| to_error(store, e))?;
            let commits = Commits::open(&db, db_dir, store)?;
            Ok((db, commits))
        })?;
        Ok(SledEngine {
            db,
            trees: Mutex::new(HashMap::new()),
            commits,
            store: store.to_path_buf(),
        })
    }

    fn err(&self, e: sled::Error) -> Error {
        to_error(&self.store, e)
    }

    fn tree(&self, space: &str) -> Result<sled::Tree> {
        debug_assert!(!durable::is_reserved(space.as_bytes()));
        if space == DEFAULT_SPACE {
            return Ok((*self.db).clone());
        }
        let mut trees = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = trees.get(space) {
            return Ok(t.clone());
        }
        let t = self.db.open_tree(space).map_err(|e| self.err(e))?;
        trees.insert(space.to_string(), t.clone());
        Ok(t)
    }
}

impl Drop for SledEngine {
    fn drop(&mut self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!(path = %self.store.display(), error = %e, "flush on close failed");
        }
    }
}

/// sled's errors as the store's: corruption is damage to its log, like
/// every other engine's (a caller must not take it for one bad record).
fn to_error(store: &Path, e: sled::Error) -> Error {
    match e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => Error::InUse {
            path: store.to_path_buf(),
        },
        // Typed, so that a caller can tell a full disk from a broken store.
        sled::Error::Io(io) if out_of_space(&io) => {
            Error::io(store.join(EngineKind::Sled.data_file()), io)
        }
        sled::Error::Corruption { at, .. } => {
            let reason = match at {
                Some(at) => format!("the storage engine found corrupt data at {at}"),
                None => "the storage engine found corrupt data".to_string(),
            };
            damaged(store, EngineKind::Sled.data_file(), reason, e)
        }
        // What sled says of files it cannot make sense of (a garbled
        // `conf` reads as a config of an unsupported version; damaged
        // pages trip its internal checks): damage, not a sled problem.
        sled::Error::Unsupported(ref what) => {
            let file = if what.contains("config") || what.contains("conf") {
                "db/conf"
            } else {
                EngineKind::Sled.data_file()
            };
            damaged(store, file, UNREADABLE, e)
        }
        sled::Error::ReportableBug(_) => {
            damaged(store, EngineKind::Sled.data_file(), UNREADABLE, e)
        }
        other => Error::engine(EngineKind::Sled, other),
    }
}

/// What the store says of a file sled cannot make sense of; sled's own
/// message follows as the cause.
const UNREADABLE: &str = "the storage engine could not read it";

fn damaged(store: &Path, file: &str, reason: impl Into<String>, e: sled::Error) -> Error {
    Error::damaged_by(store, file, reason, e)
}

impl Engine for SledEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Sled
    }

    fn get(&self, space: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tree(space)?
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Scan> {
        let iter = self.tree(space)?.range::<Vec<u8>, _>(range);
        let store = self.store.clone();
        Ok(Box::new(iter.map(move |item| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| to_error(&store, e))
        })))
    }

    fn last(&self, space: &str, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Option<Entry>> {
        match self.tree(space)?.range::<Vec<u8>, _>(range).next_back() {
            Some(Ok((k, v))) => Ok(Some((k.to_vec(), v.to_vec()))),
            Some(Err(e)) => Err(self.err(e)),
            None => Ok(None),
        }
    }

    fn write(&self, space: &str, batch: WriteBatch, durable: bool) -> Result<()> {
        let mut b = sled::Batch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.tree(space)?.apply_batch(b).map_err(|e| self.err(e))?;
        if durable {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        let n = self.commits.next(&self.store)?;
        self.db.flush().map_err(|e| self.err(e))?;
        self.commits.flushed(n)
    }

    fn spaces(&self) -> Result<Vec<String>> {
        Ok(self
            .db
            .tree_names()
            .into_iter()
            .filter(|n| !durable::is_reserved(n))
            .map(|n| {
                if n == SLED_DEFAULT_TREE {
                    DEFAULT_SPACE.to_string()
                } else {
                    String::from_utf8_lossy(&n).into_owned()
                }
            })
            .collect())
    }

    fn drop_space(&self, space: &str) -> Result<()> {
        self.trees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(space);
        self.db.drop_tree(space).map_err(|e| self.err(e))?;
        self.sync()
    }
}

/// sled writes a snapshot as `snap.<lsn>.generating` and renames it to
/// `snap.<lsn>` once synced, but its open takes the name that sorts last among
/// `snap.*` files, the `.generating` one included (sled 0.34.7,
/// `Config::get_snapshot_files`). A process killed while writing one leaves
/// a short file that every later open reads as "empty/corrupt snapshot" and
/// refuses the database over, although the finished snapshot and the log
/// beside it hold everything. Such a file is never a snapshot: it is removed
/// before sled opens. Only this process can be writing in `db_dir` (the
/// store's lock, or a private copy), so none is being written now.
fn remove_unfinished_snapshots(db_dir: &Path, store: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(db_dir) {
        Ok(entries) => entries,
        // sled creates the directory.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(db_dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| Error::io(db_dir, e))?.path();
        let unfinished = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("snap.") && n.ends_with(".generating"));
        if unfinished {
            tracing::info!(path = %path.display(), store = %store.display(), "removing a snapshot sled left unfinished");
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Creates an empty database in `dir`, with its commit file, and waits
/// until sled has let go of it.
pub(crate) fn create(dir: &Path, store: &Path) -> Result<()> {
    drop(SledEngine::open(dir, store)?);
    if !wait_closed(dir) {
        return Err(Error::InUse {
            path: store.to_path_buf(),
        });
    }
    directory::sync_tree(dir)
}

/// How long closing a store waits for sled's background threads.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Waits until no sled instance of this process holds the database at
/// `db_dir` (sled releases its file lock from background threads); false
/// if it still does after [`RELEASE_WAIT`].
pub(crate) fn wait_closed(db_dir: &Path) -> bool {
    let sled_file = db_dir.join(EngineKind::Sled.data_file_name());
    let Ok(file) = File::open(&sled_file) else {
        return true;
    };
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => {
                let _ = FileExt::unlock(&file);
                return true;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                tracing::warn!(path = %sled_file.display(), error = %e, "sled still holds its lock after close");
                return false;
            }
        }
    }
}
