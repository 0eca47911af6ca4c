//! The numbering of sled's durable commits, and the file that remembers
//! the last one sled flushed.
//!
//! sled 0.34 takes a log message that fails its checksum for the end of
//! its log and opens at the state before it: damage to the log looks, to
//! sled, like a crash, and a store opens older, often empty, without an
//! error. Nothing inside sled can tell, so something outside it keeps
//! count:
//!
//! - every durable commit (a durable write, a sync) takes the next number
//!   and stores it in a reserved tree of sled, then flushes sled;
//! - once the flush has returned, the number is written over the commit
//!   file (`db/kp-durable`: a magic, the number, a crc32) in place, when it
//!   is greater than what the file holds;
//! - an open compares the two: sled's number below the file's means sled
//!   lost commits it had acknowledged as durable, which only damage to its
//!   log does (a crash loses only what was not flushed).
//!
//! The file is not synced after each commit: it is written only after
//! sled's flush, so whatever a power cut leaves of it is never ahead of
//! sled and cannot raise a false alarm; what a cut costs is that the check
//! then covers the commits up to the last write the disk kept. The file is
//! created whole (written aside, synced, renamed), so a short file is
//! damage too, never a creation a crash interrupted. A database without
//! the file (one written before it existed) gets one holding sled's number
//! as found: from then on it is checked.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::store::directory;
use crate::store::engine::EngineKind;
use crate::store::error::{Error, Result};

/// The tree holding the number of the last commit. Its name starts with a
/// NUL byte, which no space name has; `spaces` leaves it out, so a copy
/// through the engine seam starts a count of its own.
const TREE: &[u8] = b"\0kube-persist/commits";
/// The counter's key in [`TREE`].
const KEY: &[u8] = b"n";

/// The commit file, in the database directory.
pub(crate) const FILE: &str = "kp-durable";
/// The commit file as damage reports name it, relative to the store.
const FILE_IN_STORE: &str = "db/kp-durable";
/// Where the commit file is written before it is renamed into place.
const FILE_TMP: &str = "kp-durable.tmp";

/// The commit file's first bytes (its format's version is the last one).
const MAGIC: [u8; 8] = *b"kpdurab\x01";
/// The commit file's size: magic, number (u64, little-endian), crc32 of both.
const LEN: usize = 20;

/// Whether `tree` is the commit counter's tree rather than a space.
pub(super) fn is_reserved(tree: &[u8]) -> bool {
    tree == TREE
}

/// The commit numbering of one open database.
pub(super) struct Commits {
    tree: sled::Tree,
    /// The last number given out. Taken and stored under this lock, so the
    /// stored number only grows whatever the order commits flush in.
    last: Mutex<u64>,
    file: Mutex<CommitFile>,
}

/// The open commit file and the number it holds.
struct CommitFile {
    file: File,
    path: PathBuf,
    holds: u64,
}

impl Commits {
    /// Reads sled's number and the commit file of the database in
    /// `db_dir` (of the store at `store`, named in errors), creating the
    /// file when there is none. Fails with [`Error::Damaged`] naming sled's
    /// log when sled is behind the file, and naming the file when it is not
    /// a commit file.
    pub(super) fn open(db: &sled::Db, db_dir: &Path, store: &Path) -> Result<Commits> {
        let err = |e| super::to_error(store, e);
        let tree = db.open_tree(TREE).map_err(err)?;
        let stored = match tree.get(KEY).map_err(err)? {
            None => 0,
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    Error::damaged(
                        store,
                        EngineKind::Sled.data_file(),
                        format!("sled's commit counter is {} bytes long, not 8", v.len()),
                    )
                })?,
        };
        let path = db_dir.join(FILE);
        let holds = match read(&path, store)? {
            Some(holds) => holds,
            None => {
                tracing::debug!(path = %path.display(), commit = stored, "creating the commit file");
                let tmp = db_dir.join(FILE_TMP);
                directory::replace_durably(db_dir, &tmp, &path, &encode(stored))?;
                stored
            }
        };
        if stored < holds {
            return Err(Error::damaged(
                store,
                EngineKind::Sled.data_file(),
                format!(
                    "sled's log ends before the last durable commit (commit {stored} of \
                     {holds}): the log was cut short"
                ),
            ));
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Commits {
            tree,
            last: Mutex::new(stored),
            file: Mutex::new(CommitFile { file, path, holds }),
        })
    }

    /// Takes the next commit number and stores it in sled (not yet
    /// durably: the caller flushes, then calls [`Commits::flushed`]).
    pub(super) fn next(&self, store: &Path) -> Result<u64> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let n = *last + 1;
        self.tree
            .insert(KEY, &n.to_be_bytes()[..])
            .map_err(|e| super::to_error(store, e))?;
        *last = n;
        Ok(n)
    }

    /// Records in the commit file that sled has flushed commit `n`, unless
    /// it already records a later one (flushes of concurrent commits end
    /// in any order).
    pub(super) fn flushed(&self, n: u64) -> Result<()> {
        let mut f = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if n <= f.holds {
            return Ok(());
        }
        f.file
            .write_all_at(&encode(n), 0)
            .map_err(|e| Error::io(&f.path, e))?;
        f.holds = n;
        Ok(())
    }
}

fn encode(n: u64) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[..8].copy_from_slice(&MAGIC);
    out[8..16].copy_from_slice(&n.to_le_bytes());
    let crc = crc32fast::hash(&out[..16]);
    out[16..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The number the commit file at `path` holds; `None` when there is no
/// such file.
fn read(path: &Path, store: &Path) -> Result<Option<u64>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let bad = |why: String| {
        Error::damaged(
            store,
            FILE_IN_STORE,
            format!("not a record of sled's last durable commit: {why}"),
        )
    };
    if bytes.len() != LEN {
        return Err(bad(format!("{} bytes long, not {LEN}", bytes.len())));
    }
    let (body, crc) = bytes.split_at(16);
    let (magic, number) = body.split_at(8);
    if magic != MAGIC {
        return Err(bad("it does not start with the commit file's magic".into()));
    }
    let short = |_| bad(format!("{} bytes long, not {LEN}", bytes.len()));
    let crc = <[u8; 4]>::try_from(crc).map_err(short)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc) {
        return Err(bad("it fails its checksum".into()));
    }
    let number = <[u8; 8]>::try_from(number).map_err(short)?;
    Ok(Some(u64::from_le_bytes(number)))
}

/// The number the commit file of the database in `db_dir` holds, if it has
/// one (for tests elsewhere in the store).
#[cfg(test)]
pub(crate) fn recorded(db_dir: &Path) -> Option<u64> {
    read(&db_dir.join(FILE), db_dir).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::engine::sled::{wait_closed, SledEngine};
    use crate::store::engine::{Engine, WriteBatch};

    /// A store directory whose database is `db/`.
    struct Fixture {
        tmp: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let f = Fixture {
                tmp: tempfile::tempdir().unwrap(),
            };
            crate::store::engine::sled::create(&f.db(), f.store()).unwrap();
            f
        }

        fn store(&self) -> &Path {
            self.tmp.path()
        }

        fn db(&self) -> PathBuf {
            self.tmp.path().join("db")
        }

        fn open(&self) -> Result<SledEngine> {
            SledEngine::open(&self.db(), self.store())
        }

        /// Opens the database, makes `writes` durable writes of a key each
        /// (`tag` + index), and closes it.
        fn write(&self, tag: &str, writes: usize) {
            let e = self.open().unwrap();
            for i in 0..writes {
                let mut b = WriteBatch::default();
                b.put(format!("{tag}{i}"), vec![7u8; 100]);
                e.write("objects", b, true).unwrap();
            }
            close(e, &self.db());
        }

        fn stored(&self) -> u64 {
            let e = self.open().unwrap();
            let n = *e.commits.last.lock().unwrap();
            close(e, &self.db());
            n
        }

        fn damaged(&self) -> (String, String) {
            match self.open() {
                Err(Error::Damaged { file, reason, .. }) => (file, reason),
                Err(e) => panic!("expected Damaged, got {e}"),
                Ok(_) => panic!("expected Damaged, the database opened"),
            }
        }
    }

    fn close(e: SledEngine, db: &Path) {
        drop(e);
        assert!(wait_closed(db));
    }

    /// Copies the files of directory `from` into `to` (created), but not the
    /// commit file.
    fn copy_sled_files(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let dst = to.join(entry.file_name());
            if entry.file_name() == FILE {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                copy_sled_files(&entry.path(), &dst);
            } else {
                std::fs::copy(entry.path(), dst).unwrap();
            }
        }
    }

    #[test]
    fn a_new_database_has_a_commit_file_at_zero_and_every_durable_commit_counts() {
        let f = Fixture::new();
        assert_eq!(recorded(&f.db()), Some(0));
        f.write("a", 3);
        assert_eq!(recorded(&f.db()), Some(3));
        assert_eq!(f.stored(), 3);
        let e = f.open().unwrap();
        // A write that is not durable is not a commit; a sync is.
        let mut b = WriteBatch::default();
        b.put("x", "y");
        e.write("objects", b, false).unwrap();
        assert_eq!(recorded(&f.db()), Some(3));
        e.sync().unwrap();
        assert_eq!(recorded(&f.db()), Some(4));
        e.drop_space("objects").unwrap();
        assert_eq!(recorded(&f.db()), Some(5));
        close(e, &f.db());
        assert_eq!(f.stored(), 5);
    }

    #[test]
    fn the_counter_tree_is_no_space() {
        let f = Fixture::new();
        f.write("a", 1);
        let e = f.open().unwrap();
        let mut spaces = e.spaces().unwrap();
        spaces.sort();
        assert_eq!(spaces, vec!["default".to_string(), "objects".to_string()]);
        close(e, &f.db());
    }

    #[test]
    fn concurrent_commits_leave_the_file_at_the_last_number() {
        let f = Fixture::new();
        let e = f.open().unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let e = &e;
                s.spawn(move || {
                    for i in 0..25 {
                        let mut b = WriteBatch::default();
                        b.put(format!("{t}-{i}"), "v");
                        e.write("objects", b, true).unwrap();
                    }
                });
            }
        });
        assert_eq!(recorded(&f.db()), Some(100));
        close(e, &f.db());
        assert_eq!(f.stored(), 100);
    }

    /// What damage to sled's log does, without depending on where a flipped
    /// byte lands: sled's files as they were a few commits ago, beside the
    /// commit file of now.
    #[test]
    fn a_database_rolled_back_behind_its_commit_file_is_damaged_naming_the_log() {
        let f = Fixture::new();
        f.write("a", 2);
        let older = f.store().join("older");
        copy_sled_files(&f.db(), &older);
        f.write("b", 3);
        assert_eq!(recorded(&f.db()), Some(5));
        let sled_files = std::fs::read_dir(f.db())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name() != FILE)
            .map(|e| e.path())
            .collect::<Vec<_>>();
        for p in sled_files {
            if p.is_dir() {
                std::fs::remove_dir_all(p).unwrap();
            } else {
                std::fs::remove_file(p).unwrap();
            }
        }
        copy_sled_files(&older, &f.db());
        let (file, reason) = f.damaged();
        assert_eq!(file, "db/db");
        assert!(
            reason.contains("commit 2 of 5") && reason.contains("cut short"),
            "{reason}"
        );
        // And it stays so: the failed open changed neither side.
        assert_eq!(recorded(&f.db()), Some(5));
        assert_eq!(f.damaged().0, "db/db");
    }

    #[test]
    fn a_database_emptied_under_its_commit_file_is_damaged_naming_the_log() {
        let f = Fixture::new();
        f.write("a", 2);
        let emptied = f.store().join("emptied");
        crate::store::engine::sled::create(&emptied, f.store()).unwrap();
        std::fs::remove_file(emptied.join(FILE)).unwrap();
        std::fs::rename(f.db().join(FILE), emptied.join(FILE)).unwrap();
        std::fs::remove_dir_all(f.db()).unwrap();
        std::fs::rename(&emptied, f.db()).unwrap();
        let (file, reason) = f.damaged();
        assert_eq!(file, "db/db");
        assert!(reason.contains("commit 0 of 2"), "{reason}");
    }

    #[test]
    fn a_commit_file_that_is_not_one_is_damaged_naming_it() {
        let f = Fixture::new();
        f.write("a", 2);
        let path = f.db().join(FILE);
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        flipped[9] ^= 0x40;
        let mut bad_magic = good.clone();
        bad_magic[0] ^= 1;
        for (bytes, why) in [
            (flipped, "checksum"),
            (bad_magic, "magic"),
            (good[..LEN - 1].to_vec(), "19 bytes long"),
            (Vec::new(), "0 bytes long"),
        ] {
            std::fs::write(&path, bytes).unwrap();
            let (file, reason) = f.damaged();
            assert_eq!(file, "db/kp-durable");
            assert!(reason.contains(why), "{why}: {reason}");
        }
        std::fs::write(&path, good).unwrap();
        f.write("b", 1);
        assert_eq!(recorded(&f.db()), Some(3));
    }

    /// A database written before the commit file existed opens unchecked
    /// and gets one holding sled's number as found; checked from then on.
    #[test]
    fn a_database_without_a_commit_file_opens_and_gets_one() {
        let f = Fixture::new();
        f.write("a", 4);
        std::fs::remove_file(f.db().join(FILE)).unwrap();
        f.write("b", 1);
        assert_eq!(recorded(&f.db()), Some(5));
        let e = f.open().unwrap();
        assert!(e.get("objects", b"a3").unwrap().is_some());
        close(e, &f.db());
        assert!(!f.db().join(FILE_TMP).exists());
    }

    /// Only a flush moves the file: a number it records is one sled has.
    #[test]
    fn a_commit_file_behind_sled_opens() {
        let f = Fixture::new();
        f.write("a", 3);
        std::fs::write(f.db().join(FILE), encode(1)).unwrap();
        let e = f.open().unwrap();
        e.sync().unwrap();
        assert_eq!(recorded(&f.db()), Some(4));
        close(e, &f.db());
    }
}
