//! Checking a store for damage, and healing a damaged one by moving its
//! database aside (kept for inspection) so that a fresh one can be relisted
//! into.
//!
//! The check reads everything: every entry of every engine space (what the
//! engine cannot iterate is damage to its files), then every collection as
//! `verify` does (each record's crc and payload, indexes, journal,
//! counters). A store the check passes is one `verify` passes, so a writer
//! that healed what the check found leaves a store `verify` calls clean.

use std::fmt;
use std::ops::Bound;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::directory::{self, COMPACT_DIR, DB_DIR, INIT_DIR, OLD_DIR};
use super::error::{Error, Result};
use super::{Store, StoreOptions};

/// What a check found wrong with a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Each problem, as `collection: key: reason` (or the engine's error).
    pub problems: Vec<String>,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [] => f.write_str("no damage"),
            [one] => f.write_str(one),
            [first, rest @ ..] => write!(f, "{first} (and {} more problems)", rest.len()),
        }
    }
}

/// A store healed on open: its damaged database was moved aside and a
/// fresh, empty one created in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healed {
    /// Where the damaged database now is: `<store>/damaged-<time>/`, holding
    /// the `db/` directory as it was found.
    pub moved_to: PathBuf,
    /// What was found wrong.
    pub damage: String,
}

/// Damage readers met in a collection while it was open: a record that
/// fails its checksum, or one whose dictionary cannot be loaded. A writer
/// heals it by relisting (`Collection::versions` leaves such records out,
/// so the relist rewrites them); the informer's driver waits on
/// [`DamageSeen::notified`] to start that relist.
#[derive(Default)]
pub(crate) struct DamageSeen {
    notify: tokio::sync::Notify,
    last: std::sync::Mutex<Option<String>>,
}

impl DamageSeen {
    /// Records `err` when it is damage; passes the result through.
    pub(crate) fn check<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(err) = &result {
            if err.is_damage() {
                self.seen(err.to_string());
            }
        }
        result
    }

    pub(crate) fn seen(&self, what: String) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(what);
        // Stores a permit when nobody waits yet, so no report is lost.
        self.notify.notify_one();
    }

    /// Waits for the next report, and returns what was seen last.
    pub(crate) async fn notified(&self) -> String {
        self.notify.notified().await;
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_default()
    }
}

/// Prefix of the directories damaged databases are moved to.
pub const DAMAGED_PREFIX: &str = "damaged-";

impl Error {
    /// Whether this error reports damage to the store (a corrupt record,
    /// or files the engine cannot read), which a relist into a fresh
    /// database heals, rather than a failure of the environment (in use,
    /// disk full, permissions).
    pub fn is_damage(&self) -> bool {
        matches!(self, Error::Corrupt { .. } | Error::Damaged { .. })
    }
}

impl Store {
    /// Reads and checks everything the store holds: the engine's spaces
    /// entry by entry, then every collection as
    /// [`Collection::verify`](super::Collection::verify) does. `None` when
    /// nothing is wrong; errors of the environment (I/O, a full disk) are
    /// returned as errors. It costs a full read of the store.
    pub fn check(&self) -> Result<Option<Damage>> {
        match self.find_damage() {
            Ok(problems) if problems.is_empty() => Ok(None),
            Ok(problems) => Ok(Some(Damage { problems })),
            Err(e) if e.is_damage() => Ok(Some(Damage {
                problems: vec![e.to_string()],
            })),
            Err(e) => Err(e),
        }
    }

    fn find_damage(&self) -> Result<Vec<String>> {
        let db = self.db();
        for space in db.spaces()? {
            for item in db.scan(&space, (Bound::Unbounded, Bound::Unbounded))? {
                item?;
            }
        }
        let mut problems = Vec::new();
        for id in self.collections()? {
            let Some(collection) = self.find_collection(&id)? else {
                continue;
            };
            let name = id.name();
            for p in collection.verify()?.problems {
                problems.push(format!("{name}: {}: {}", p.key, p.reason));
            }
        }
        Ok(problems)
    }

    /// Opens (creating if missing) the store at `path` for writing and, with
    /// `full_check`, checks it ([`Store::check`], a full read). A store the
    /// engine cannot open, or in which the check finds damage, is healed:
    /// its database is moved to
    /// `<path>/damaged-<time>/` (kept, never read again) and a fresh, empty
    /// one is created, into which the caller relists. The second value says
    /// where the damaged database went, when it was healed.
    pub fn open_healing(
        path: impl AsRef<Path>,
        options: StoreOptions,
        full_check: bool,
    ) -> Result<(Store, Option<Healed>)> {
        let path = path.as_ref();
        let damage = match Store::open_with(path, options.clone()) {
            Ok(store) if !full_check => return Ok((store, None)),
            Ok(store) => match store.check()? {
                None => return Ok((store, None)),
                Some(damage) => damage.to_string(),
            },
            Err(e) if e.is_damage() => e.to_string(),
            Err(e) => return Err(e),
        };
        let moved_to = move_database_aside(path)?;
        tracing::error!(path = %path.display(), moved_to = %moved_to.display(), %damage, "the store is damaged; its database was moved aside and a fresh one is relisted");
        let store = Store::open_with(path, options)?;
        Ok((store, Some(Healed { moved_to, damage })))
    }
}

/// Moves the database directories of the store at `path` (the database and
/// whatever an interrupted compaction or creation left) into a new
/// `damaged-<time>/` directory of the store, under the store's lock, and
/// records that the store holds no collections any more.
fn move_database_aside(path: &Path) -> Result<PathBuf> {
    let _lock = directory::take_lock(path)?;
    let at = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let mut aside = path.join(format!("{DAMAGED_PREFIX}{at}"));
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = path.join(format!("{DAMAGED_PREFIX}{at}-{n}"));
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&aside)
        .map_err(|e| Error::io(&aside, e))?;
    for name in [DB_DIR, COMPACT_DIR, OLD_DIR, INIT_DIR] {
        let from = path.join(name);
        if std::fs::symlink_metadata(&from).is_ok() {
            std::fs::rename(&from, aside.join(name)).map_err(|e| Error::io(&from, e))?;
        }
    }
    directory::sync_dir(&aside)?;
    directory::sync_dir(path)?;
    directory::set_had_collections(path, false)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, Delta, EngineKind};
    use serde_json::json;

    fn filled(engine: EngineKind, path: &Path) {
        let store = Store::open_with(
            path,
            StoreOptions {
                engine: Some(engine),
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let c = crate::store::json::configmaps(&store);
        let cm = |name: &str| json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"}});
        c.apply(Batch {
            deltas: ["a", "b", "c"].map(|n| Delta::Upsert(cm(n))).into(),
            rv: Some("1".into()),
        })
        .unwrap();
        crate::store::damage_record(&c, "ns/b");
    }

    /// A dictionary that no longer loads: the records needing it read as
    /// damage (and are reported), `versions` leaves them out so a relist
    /// rewrites them, and a write drops the dictionary and trains another
    /// under a new id rather than failing every batch.
    #[test]
    fn a_damaged_dictionary_is_dropped_and_its_records_left_to_the_relist() {
        for engine in EngineKind::ALL {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("s");
            let options = || StoreOptions {
                engine: Some(engine),
                dictionary: crate::store::DictionaryPolicy {
                    min_objects: 20,
                    ..Default::default()
                },
                ..StoreOptions::default()
            };
            let cm = |i: usize, rv: &str| {
                json!({"metadata": {"name": format!("cm-{i}"), "namespace": "ns", "resourceVersion": rv,
                        "labels": {"app": "web", "tier": format!("t{}", i % 3)}},
                       "data": {"config": format!("listen {i}; workers {}; log /var/log/{i}", i % 5)}})
            };
            let all = |rv: &str| Batch {
                deltas: (0..40).map(|i| Delta::Upsert(cm(i, rv))).collect(),
                rv: Some(rv.into()),
            };
            {
                let store = Store::open_with(&path, options()).unwrap();
                let c = crate::store::json::configmaps(&store);
                c.apply(all("1")).unwrap();
                assert_eq!(c.inner.state().dictionary, 1, "{engine}: trained");
                let k = super::super::key::dictionary_key(1);
                let mut bytes = c.inner.get(&k).unwrap().unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x55;
                let mut batch = super::super::engine::WriteBatch::default();
                batch.put(k, bytes);
                c.inner.commit(batch).unwrap();
            }
            // Reopened: the dictionary is no longer cached.
            let store = Store::open_with(&path, options()).unwrap();
            let c = crate::store::json::configmaps(&store);
            let err = c.list().unwrap_err();
            assert!(err.is_damage(), "{engine}: {err}");
            assert!(err.to_string().contains("dictionary 1"), "{engine}: {err}");
            let reported = futures::FutureExt::now_or_never(c.damage().notified());
            assert!(
                reported.is_some_and(|r| r.contains("dictionary 1")),
                "{engine}"
            );
            assert!(
                c.versions().unwrap().is_empty(),
                "{engine}: every record needs it"
            );

            // What a relist does: rewrite every object it was not told of.
            c.apply(all("2")).unwrap();
            assert_eq!(c.list().unwrap().len(), 40, "{engine}");
            assert_eq!(c.versions().unwrap().len(), 40, "{engine}");
            assert_eq!(c.inner.state().dictionary, 2, "{engine}: trained anew");
            assert!(c
                .inner
                .get(&super::super::key::dictionary_key(1))
                .unwrap()
                .is_none());
            let report = c.verify().unwrap();
            // The journal entries of the first batch needed the lost
            // dictionary too: they are what is lost, and verify says so.
            assert!(
                report.problems.iter().all(|p| p.key.starts_with("journal")),
                "{engine}: {report:?}"
            );
        }
    }

    #[test]
    fn a_damaged_record_is_found_moved_aside_and_the_store_starts_fresh() {
        for engine in EngineKind::ALL {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("s");
            filled(engine, &path);
            let store = Store::open_existing(&path).unwrap();
            let damage = store.check().unwrap().expect("damage found");
            assert_eq!(damage.problems.len(), 1, "{damage}");
            assert!(damage.problems[0].contains("ns/b"), "{damage}");
            drop(store);

            // Without the full read, a damaged record is not looked for:
            // the store opens as it is, its collection still there.
            let (store, healed) =
                Store::open_healing(&path, StoreOptions::default(), false).unwrap();
            assert_eq!(healed, None, "{engine}");
            assert_eq!(store.collections().unwrap().len(), 1, "{engine}");
            drop(store);

            let (store, healed) =
                Store::open_healing(&path, StoreOptions::default(), true).unwrap();
            let healed = healed.expect("healed");
            assert!(healed.damage.contains("ns/b"), "{}", healed.damage);
            assert!(healed.moved_to.starts_with(&path));
            assert!(
                healed.moved_to.join(DB_DIR).is_dir(),
                "{engine}: the damaged copy is kept"
            );
            assert_eq!(store.collections().unwrap(), vec![], "{engine}");
            assert_eq!(store.check().unwrap(), None);
            drop(store);

            // Healthy now: a second open moves nothing.
            let (_store, again) =
                Store::open_healing(&path, StoreOptions::default(), true).unwrap();
            assert_eq!(again, None);
        }
    }
}
