//! Compaction: trim every journal, then give the space trimmed records
//! took back to the filesystem, the way the store's engine allows.
//!
//! Both engines rewrite: the rewrite copies every space, in key order, into
//! a new database next to the old one, checks both hold the same bytes,
//! and swaps directories with durable renames when the copy is smaller;
//! [`directory::finish_swap`] completes or undoes a swap a crash
//! interrupted, so the store is whole whatever instant the process dies.
//! The copy needs free space for one more store of the size left after the
//! trim.
//!
//! sled 0.34 reuses the space of removed records but never shrinks its
//! files, so trimming alone leaves a store as large as it ever was. redb
//! compacts in place ([`engine::compact_in_place`], each step a crash-safe
//! commit): the copy always, the original only when the copy is no
//! smaller. In place it only moves pages, and leaves the B-tree pages as
//! full as the writes left them: pods written as they came (index entries
//! and history keys in no order) left 20k pods in 42.4 MB after redb's
//! compaction, and in 30.4 MB after a rewrite in key order and the same
//! compaction.

use std::path::Path;

use super::collection::Collection;
use super::directory::{self, StoreDir, SwapStep};
use super::engine;
use super::error::{Error, Result};
use super::{JournalLimits, Store, StoreOptions};

/// What [`Store::compact`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOptions {
    /// Journal entries to keep per collection, newest first (`None`: the
    /// store's default bound, [`JournalLimits::default`]).
    pub journal_keep: Option<u64>,
    /// Trim entries that a durable consumer has not acknowledged yet. Off by
    /// default: such entries are kept, so that consumer still gets every
    /// event after its cursor (I8).
    pub ignore_cursors: bool,
    /// Also drop entries applied longer ago than this.
    pub journal_max_age: Option<std::time::Duration>,
    /// Rewrite the database into fresh files (the part that returns space).
    pub rewrite: bool,
}

impl Default for CompactOptions {
    fn default() -> CompactOptions {
        CompactOptions {
            journal_keep: None,
            ignore_cursors: false,
            journal_max_age: None,
            rewrite: true,
        }
    }
}

/// What compaction did to one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionCompaction {
    /// The collection.
    pub id: super::CollectionId,
    /// Journal entries removed.
    pub removed: u64,
    /// Journal entries kept.
    pub kept: u64,
    /// The consumer whose unacknowledged entries were kept beyond the
    /// requested bound, and its cursor.
    pub held_for: Option<(String, u64)>,
}

/// What [`Store::compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// One entry per collection.
    pub collections: Vec<CollectionCompaction>,
    /// Bytes the store directory took before.
    pub bytes_before: u64,
    /// Bytes it takes after.
    pub bytes_after: u64,
    /// Entries copied by the rewrite into fresh files (0 when no rewrite
    /// was asked for).
    pub keys_copied: u64,
    /// Whether the files were compacted: the rewritten files replaced the
    /// old ones, which they do only when smaller (a store rewritten before
    /// may not shrink again), or (redb) compaction in place freed pages.
    pub rewritten: bool,
}

impl Store {
    /// Trims every collection's journal and rewrites the store into fresh
    /// files, returning the space removed records held. Takes the store's
    /// lock for the whole operation (fails with [`Error::InUse`] if another
    /// process has it open); older schemas are migrated first.
    ///
    /// Crash-safe: the new database is complete and verified before the old
    /// one is moved aside, and the next open finishes an interrupted swap.
    pub fn compact(path: impl AsRef<Path>, options: CompactOptions) -> Result<CompactReport> {
        Store::compact_with_key(path, options, None)
    }

    /// [`Store::compact`] of a store that may be encrypted: `key` is its key.
    pub fn compact_with_key(
        path: impl AsRef<Path>,
        options: CompactOptions,
        key: Option<super::EncryptionKey>,
    ) -> Result<CompactReport> {
        let path = path.as_ref();
        compact_with(path, options, key, |_| Ok(())).inspect_err(|_| {
            // A failed rewrite (a full disk, say) must not leave its partial
            // copy taking space, nor a swap half done: opening the directory
            // again finishes or undoes it, as after a crash.
            let left = [directory::COMPACT_DIR, directory::OLD_DIR];
            if !left.iter().any(|d| path.join(d).exists()) {
                return;
            }
            if let Err(e) = StoreDir::open(path, false) {
                tracing::warn!(path = %path.display(), error = %e, "could not tidy up after a failed compaction");
            }
        })
    }
}

/// Points where tests stop a compaction to check what a crash there leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Journals trimmed and committed; nothing rewritten yet.
    Trimmed,
    /// Part of the data copied into `db.compact` (after each batch and tree).
    Copying,
    /// `db.compact` complete and synced; `db` untouched.
    Copied,
    /// A step of the directory swap.
    Swap(SwapStep),
}

pub(crate) fn compact_with(
    path: &Path,
    options: CompactOptions,
    key: Option<super::EncryptionKey>,
    mut at: impl FnMut(Step) -> Result<()>,
) -> Result<CompactReport> {
    let dir = StoreDir::open(path, false)?;
    let mut report = CompactReport {
        collections: Vec::new(),
        // Measured before the engine opens: sled's opening writes to its
        // log, and the report is about what the user had.
        bytes_before: directory::size_of(&dir.path)?,
        bytes_after: 0,
        keys_copied: 0,
        rewritten: false,
    };
    {
        // A clone of the lock: closing this store leaves the directory locked.
        let store_options = StoreOptions {
            encryption_key: key,
            ..StoreOptions::default()
        };
        let store = Store::open_locked(dir.clone(), store_options)?;
        for id in store.collections()? {
            let c = store.collection(&id)?;
            report.collections.push(trim(&c, &options)?);
        }
        store.flush()?;
    }
    at(Step::Trimmed)?;
    if options.rewrite {
        report.keys_copied = rewrite(&dir, &mut at)?;
        let new_path = dir.compact_path();
        if directory::size_of(&new_path)? < directory::size_of(&dir.db_path())? {
            dir.swap_in_compacted(|s| at(Step::Swap(s)))?;
            report.rewritten = true;
        } else {
            std::fs::remove_dir_all(&new_path).map_err(|e| Error::io(&new_path, e))?;
            // A store rewritten before: what redb can still free in place.
            let in_place = engine::compact_in_place(dir.engine(), &dir.db_path(), &dir.path)?;
            report.rewritten = in_place == Some(true);
        }
        dir.secure()?;
    }
    report.bytes_after = directory::size_of(&dir.path)?;
    Ok(report)
}

/// Copies the database of the store at `path` into fresh files and swaps
/// them in, whatever their size: what leaves no overwritten record in the
/// engine's free space. Crash-safe as compaction's rewrite is.
pub(crate) fn copy_to_fresh_files(path: &Path) -> Result<u64> {
    let dir = StoreDir::open(path, false)?;
    let copied = rewrite(&dir, &mut |_| Ok(()))?;
    dir.swap_in_compacted(|_| Ok(()))?;
    dir.secure()?;
    Ok(copied)
}

fn trim(c: &Collection, options: &CompactOptions) -> Result<CollectionCompaction> {
    let requested = options
        .journal_keep
        .unwrap_or_else(|| JournalLimits::default().max_entries);
    let last_seq = c.meta()?.journal_last_seq;
    let mut floor = 0;
    let mut held_for = None;
    if !options.ignore_cursors {
        // The slowest consumer needs every entry after its cursor; one whose
        // cursor is already behind the journal resyncs whatever is kept.
        let first = c.meta()?.journal_first_seq;
        let behind = |seq: u64| seq + 1 < first;
        if let Some((name, cursor)) = c
            .cursors()?
            .into_iter()
            .filter(|(_, seq)| !behind(*seq))
            .min_by_key(|(_, seq)| *seq)
        {
            floor = last_seq.saturating_sub(cursor);
            held_for = Some((name, cursor));
        }
    }
    let limits = JournalLimits {
        max_entries: requested,
        max_bytes: u64::MAX,
        max_age: options.journal_max_age,
    };
    let removed = c.trim_journal_keeping(limits, floor)?;
    let kept = c.meta()?.journal_len;
    // Named only when the consumer's entries are what stopped the trim.
    let held =
        floor > 0 && kept == floor && (kept > requested || options.journal_max_age.is_some());
    if !held {
        held_for = None;
    }
    Ok(CollectionCompaction {
        id: c.id().clone(),
        removed,
        kept,
        held_for,
    })
}

/// Copies every space of the database into a fresh `db.compact` through
/// the engine seam, checks that both hold the same keys and values, and
/// compacts the copy where the engine can (redb: its file grows with the
/// copy's commits). Returns the number of entries copied.
///
/// sled's own `export`/`import` would do the copy but panic on any i/o
/// error; this returns the error and leaves the store as it was.
fn rewrite(dir: &StoreDir, at: &mut impl FnMut(Step) -> Result<()>) -> Result<u64> {
    let kind = dir.engine();
    let new_path = dir.compact_path();
    if new_path.exists() {
        std::fs::remove_dir_all(&new_path).map_err(|e| Error::io(&new_path, e))?;
    }
    let copied = copy_into(dir, &new_path, at);
    // Failed or not: the copy is removed or renamed next, and sled lets go
    // of its files from background threads after the handles are dropped.
    let closed_old = engine::wait_closed(kind, &dir.db_path());
    let closed_new = engine::wait_closed(kind, &new_path);
    let copied = copied?;
    if !(closed_old && closed_new) {
        return Err(Error::InvalidArgument(
            "the storage engine did not close the databases in time; the store was left as it was"
                .into(),
        ));
    }
    engine::compact_in_place(kind, &new_path, &dir.path)?;
    directory::sync_tree(&new_path)?;
    directory::sync_dir(&dir.path)?;
    at(Step::Copied)?;
    Ok(copied)
}

/// Opens the database and a fresh one at `new_path`, copies the first into
/// the second and checks the copy; both are closed (dropped) on return.
fn copy_into(
    dir: &StoreDir,
    new_path: &Path,
    at: &mut impl FnMut(Step) -> Result<()>,
) -> Result<u64> {
    let kind = dir.engine();
    let old = engine::open(kind, &dir.db_path(), &dir.path)?;
    engine::create(kind, new_path, &dir.path)?;
    let new = engine::open(kind, new_path, &dir.path)?;
    let copied = engine::copy_all(old.as_ref(), new.as_ref(), || at(Step::Copying))?;
    if let Some(space) = first_difference(old.as_ref(), new.as_ref())? {
        return Err(Error::corrupt(
            "(store)",
            directory::COMPACT_DIR,
            format!("the copy of space {space:?} differs from the original; the original is kept"),
        ));
    }
    Ok(copied)
}

/// The first space whose entries differ between `a` and `b`, read back
/// through the engine.
fn first_difference(a: &dyn engine::Engine, b: &dyn engine::Engine) -> Result<Option<String>> {
    let (mut spaces_a, mut spaces_b) = (a.spaces()?, b.spaces()?);
    spaces_a.sort();
    spaces_b.sort();
    if spaces_a != spaces_b {
        return Ok(Some(format!("{spaces_a:?} / {spaces_b:?}")));
    }
    let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    for space in spaces_a {
        let mut left = a.scan(&space, all.clone())?;
        let mut right = b.scan(&space, all.clone())?;
        loop {
            match (left.next().transpose()?, right.next().transpose()?) {
                (None, None) => break,
                (l, r) if l == r => {}
                _ => return Ok(Some(space)),
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, CollectionId, Delta, EngineKind};
    use serde_json::{json, Value};

    fn pods() -> CollectionId {
        CollectionId::of::<k8s_openapi::api::core::v1::Pod>()
    }

    fn pod(name: &str, rv: u64) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "default", "name": name, "resourceVersion": rv.to_string(),
                         "labels": {"app": "web", "round": rv.to_string()}},
            "spec": {"nodeName": format!("node-{}", rv % 3), "containers": [{"name": "c", "image": "nginx"}]},
        })
    }

    /// A store on `engine` with 40 pods written 10 times each (400 journal
    /// entries) and a consumer that acknowledged up to seq 300.
    fn build(dir: &Path, engine: EngineKind) {
        let options = crate::store::StoreOptions {
            engine: Some(engine),
            ..Default::default()
        };
        let store = Store::open_with(dir, options).unwrap();
        let c = store.collection(&pods()).unwrap();
        let mut rv = 0;
        for _round in 0..10 {
            let deltas = (0..40)
                .map(|i| {
                    rv += 1;
                    Delta::Upsert(pod(&format!("p{i}"), rv))
                })
                .collect();
            c.apply(Batch {
                deltas,
                rv: Some(rv.to_string()),
            })
            .unwrap();
        }
        c.ack("auditor", 300).unwrap();
    }

    /// Objects, RV, cursors and journal seqs.
    type Observed = (Vec<Value>, Option<String>, Vec<(String, u64)>, Vec<u64>);

    /// Everything a reader can observe.
    fn observe(dir: &Path) -> Observed {
        let store = Store::open_existing(dir).unwrap();
        let c = store.find_collection(&pods()).unwrap().unwrap();
        let report = c.verify().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let seqs = c
            .journal_since(c.meta().unwrap().journal_first_seq - 1)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        (
            c.list().unwrap(),
            c.meta().unwrap().last_rv,
            c.cursors().unwrap(),
            seqs,
        )
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        [directory::COMPACT_DIR, directory::OLD_DIR]
            .into_iter()
            .filter(|d| dir.join(d).exists())
            .map(String::from)
            .collect()
    }

    const KEEP_50: CompactOptions = CompactOptions {
        journal_keep: Some(50),
        ignore_cursors: false,
        journal_max_age: None,
        rewrite: true,
    };

    #[test]
    fn compaction_keeps_the_data_and_what_consumers_have_not_acknowledged() {
        for engine in EngineKind::ALL {
            compaction_keeps_the_data_on(engine);
        }
    }

    fn compaction_keeps_the_data_on(engine: EngineKind) {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path(), engine);
        let (objects, rv, cursors, _) = observe(tmp.path());
        let report = Store::compact(tmp.path(), KEEP_50).unwrap();
        let c = &report.collections[0];
        // The consumer at 300 needs 301..=400: 100 entries, not 50.
        assert_eq!((c.removed, c.kept), (300, 100), "{engine}");
        assert_eq!(c.held_for, Some(("auditor".to_string(), 300)), "{engine}");
        assert!(report.keys_copied > 0, "{engine}: {report:?}");
        assert!(report.rewritten, "{engine}: {report:?}");
        assert!(
            report.bytes_after < report.bytes_before,
            "{engine}: {report:?}"
        );
        let after = observe(tmp.path());
        assert_eq!((after.0, after.1, after.2), (objects, rv, cursors));
        assert_eq!(after.3, (301..=400).collect::<Vec<_>>());
        assert!(leftovers(tmp.path()).is_empty());

        let ignore = CompactOptions {
            ignore_cursors: true,
            ..KEEP_50
        };
        let report = Store::compact(tmp.path(), ignore).unwrap();
        assert_eq!(report.collections[0].removed, 50);
        assert_eq!(report.collections[0].held_for, None);
        assert_eq!(observe(tmp.path()).3, (351..=400).collect::<Vec<_>>());
    }

    /// The rewrite swaps in a database that counts its commits afresh: a
    /// commit file carried over from the old one would be ahead of it and
    /// make every later open report sled's log as cut short.
    #[test]
    fn a_rewritten_sled_database_reopens_with_its_own_commit_count() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path(), EngineKind::Sled);
        let db = tmp.path().join(directory::DB_DIR);
        let before = engine::sled_commit_recorded(&db).unwrap();
        let observed = observe(tmp.path());
        let report = Store::compact(tmp.path(), KEEP_50).unwrap();
        assert!(report.rewritten && report.keys_copied > 0, "{report:?}");
        let after = engine::sled_commit_recorded(&db).unwrap();
        assert!(
            (1..before).contains(&after),
            "the commit file holds {after}; the old database's held {before}"
        );
        let reopened = observe(tmp.path());
        assert_eq!((reopened.0, reopened.1), (observed.0, observed.1));
        // Written to and compacted again, it still opens.
        let store = Store::open_existing(tmp.path()).unwrap();
        store
            .collection(&pods())
            .unwrap()
            .ack("auditor", 350)
            .unwrap();
        drop(store);
        Store::compact(tmp.path(), KEEP_50).unwrap();
        assert_eq!(observe(tmp.path()).2, vec![("auditor".to_string(), 350)]);
    }

    #[test]
    fn a_consumer_already_behind_the_journal_holds_nothing_back() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path(), EngineKind::Sled);
        let ignore = CompactOptions {
            ignore_cursors: true,
            ..KEEP_50
        };
        Store::compact(tmp.path(), ignore).unwrap();
        // The journal is 351..=400 now; the cursor at 300 is behind it.
        let keep_10 = CompactOptions {
            journal_keep: Some(10),
            ..KEEP_50
        };
        let report = Store::compact(tmp.path(), keep_10).unwrap();
        let c = &report.collections[0];
        assert_eq!((c.removed, c.kept, &c.held_for), (40, 10, &None));
    }

    #[test]
    fn the_rewrite_returns_the_space_of_trimmed_entries() {
        for engine in EngineKind::ALL {
            the_rewrite_returns_space_on(engine);
        }
    }

    fn the_rewrite_returns_space_on(engine: EngineKind) {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path(), engine);
        let trim_only = CompactOptions {
            journal_keep: Some(0),
            ignore_cursors: true,
            journal_max_age: None,
            rewrite: false,
        };
        let trimmed = Store::compact(tmp.path(), trim_only).unwrap();
        assert_eq!(trimmed.collections[0].removed, 400);
        let rewritten = Store::compact(tmp.path(), CompactOptions::default()).unwrap();
        assert!(
            rewritten.rewritten && rewritten.bytes_after < trimmed.bytes_after,
            "{engine}: trimmed in place: {} bytes, rewritten: {rewritten:?}",
            trimmed.bytes_after,
        );
    }

    /// A crash at every point of a compaction leaves a store that opens with
    /// exactly the data it had: the trim either happened or not, and the
    /// swap is finished or undone by the next open.
    #[test]
    fn a_crash_anywhere_in_compaction_loses_nothing() {
        let steps = [
            Step::Trimmed,
            Step::Copying,
            Step::Copied,
            Step::Swap(SwapStep::OldMovedAside),
            Step::Swap(SwapStep::NewInPlace),
        ];
        for (engine, stop) in EngineKind::ALL
            .into_iter()
            .flat_map(|e| steps.map(|s| (e, s)))
        {
            let tmp = tempfile::tempdir().unwrap();
            build(tmp.path(), engine);
            let (objects, rv, cursors, _) = observe(tmp.path());
            let result = compact_with(tmp.path(), KEEP_50, None, |s| {
                if s == stop {
                    Err(Error::InvalidArgument(format!("crash at {s:?}")))
                } else {
                    Ok(())
                }
            });
            assert!(result.is_err(), "{engine}: {stop:?} was never reached");
            let after = observe(tmp.path());
            assert_eq!(
                (&after.0, &after.1, &after.2),
                (&objects, &rv, &cursors),
                "{engine}: {stop:?}"
            );
            assert_eq!(
                after.3,
                (301..=400).collect::<Vec<_>>(),
                "{engine}: {stop:?}"
            );
            assert!(
                leftovers(tmp.path()).is_empty(),
                "{engine}: {stop:?}: {:?}",
                leftovers(tmp.path())
            );
        }
    }

    /// redb's compaction in place moves pages but leaves them as full as
    /// the writes did; a rewrite in key order packs them.
    #[test]
    fn on_redb_the_rewrite_packs_what_compaction_in_place_leaves() {
        let tmp = tempfile::tempdir().unwrap();
        let (in_place, rewritten) = (tmp.path().join("a"), tmp.path().join("b"));
        {
            let options = crate::store::StoreOptions {
                engine: Some(EngineKind::Redb),
                ..Default::default()
            };
            let store = Store::open_with(&in_place, options).unwrap();
            let c = store.collection(&pods()).unwrap();
            // Names and labels in no order, as a relist brings them: their
            // index entries and history keys land all over the B-tree.
            for round in 0..20u64 {
                let deltas = (0..100u64)
                    .map(|i| {
                        let n = (i * 7919 + round * 104_729) % 2000;
                        let mut p = pod(&format!("p{n}"), round * 100 + i + 1);
                        p["metadata"]["labels"] = json!({
                            "app": format!("a{}", n % 13), "tier": format!("t{}", n % 7),
                            "hash": format!("{:x}", n * 2_654_435_761), "n": n.to_string(),
                        });
                        Delta::Upsert(p)
                    })
                    .collect();
                c.apply(Batch {
                    deltas,
                    rv: Some(((round + 1) * 100).to_string()),
                })
                .unwrap();
            }
        }
        copy_dir(&in_place, &rewritten);
        let db = |store: &Path| store.join(directory::DB_DIR);
        assert_eq!(
            engine::compact_in_place(EngineKind::Redb, &db(&in_place), &in_place).unwrap(),
            Some(true)
        );
        let report = Store::compact(&rewritten, CompactOptions::default()).unwrap();
        let (a, b) = (
            directory::size_of(&db(&in_place)).unwrap(),
            directory::size_of(&db(&rewritten)).unwrap(),
        );
        assert!(
            report.rewritten && report.keys_copied > 0 && b < a,
            "in place: {a} bytes, rewritten: {b} bytes: {report:?}"
        );
        assert_eq!(observe(&rewritten).0, observe(&in_place).0);
        // Compacted again, the packed store keeps its data and its size
        // (the copy is no smaller: the original is compacted in place).
        let again = Store::compact(&rewritten, CompactOptions::default()).unwrap();
        assert!(again.bytes_after <= report.bytes_after, "{again:?}");
        assert_eq!(observe(&rewritten).0, observe(&in_place).0);
        assert!(
            leftovers(&rewritten).is_empty(),
            "{:?}",
            leftovers(&rewritten)
        );
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    #[test]
    fn a_missing_db_beside_an_unfinished_copy_is_refused_not_guessed() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path(), EngineKind::Sled);
        std::fs::rename(
            tmp.path().join(directory::DB_DIR),
            tmp.path().join(directory::COMPACT_DIR),
        )
        .unwrap();
        match Store::open_existing(tmp.path()) {
            Err(Error::Damaged { file, reason, .. }) => {
                assert_eq!(file, directory::COMPACT_DIR);
                assert!(reason.contains("by hand"), "{reason}");
            }
            other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
        }
        assert!(tmp.path().join(directory::COMPACT_DIR).exists());
    }
}
