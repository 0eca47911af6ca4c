//! Group commit: writes made at the same time share one durable flush.
//!
//! A durable write used to be one engine commit with its own fsync, so N
//! threads writing at once paid N fsyncs one after another. Now a writer
//! *stages* its batch (an atomic, visible, not yet durable engine write,
//! made under its collection's lock) and gets a [`Ticket`]; then, with the
//! lock released, it waits until a flush covers the ticket. The first
//! waiter to find no flush running leads one: it flushes everything staged
//! so far, and every writer whose ticket that covers returns with it.
//! Writers that staged while a flush ran are covered by the next one, led
//! by one of them. A lone writer flushes at once.
//!
//! A flush that fails ends the store's writes: every writer waiting on it,
//! and every write after it, fails with [`Error::FlushFailed`] until the
//! store is opened again. A failed fsync may have dropped the writes it
//! was to make durable from the page cache, and a later fsync that succeeds
//! does not bring them back (PostgreSQL's "fsyncgate"), so a store that
//! went on would report as durable what may not be on disk. Opening the
//! store again reads what is. Both engines already refuse every call after
//! a failed write to their files; this holds whatever the engine does.
//!
//! A writer building a batch (from before it waits for its collection's
//! lock until its batch is staged) when a flush is about to begin is
//! waited for, briefly ([`GATHER`]), so that its batch joins that flush.
//! redb's flush is a durable commit, which holds its one writer while it
//! syncs, so no batch can be staged while it runs: without the wait, every
//! flush carried one batch, and writers on several threads paid one sync
//! each, one after another. A writer whose batch takes longer to build (a
//! relist's) does not hold the flush past the bound. A lone writer, with
//! no other building, still flushes at once.
//!
//! Both engines' flush makes every write made before it durable, and their
//! writes survive a crash as a prefix (see `engine::Engine::write`), so a
//! batch is durable once a flush that began after it was staged has
//! returned.
//!
//! A staged batch is visible before it is durable: a reader of the journal
//! (a durable consumer, `history`) may see it while its flush runs. If the
//! process dies before that flush, the batch is gone, and so is the
//! resourceVersion stored with it (I1): the informer gets the same changes
//! from the server again, as new journal entries, and a consumer's
//! cursor, written after what it acknowledges, is never durable ahead of
//! it. Delivery stays at least once; an event seen just before a crash may
//! be seen again after it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::engine::Engine;
use super::error::{Error, Result};

/// A staged write, to wait on with [`GroupCommit::durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[must_use = "a staged write is not durable until `durable` returns"]
pub(crate) struct Ticket(u64);

/// How long a flush about to begin waits for writers that are building a
/// batch to stage it (see the module docs): a few single-event batches'
/// building time, short against a sync.
pub(crate) const GATHER: Duration = Duration::from_millis(2);

#[derive(Debug, Default)]
struct Counters {
    /// Writes staged so far; the last one's ticket.
    staged: u64,
    /// Writers building a batch, not yet staged (see [`Building`]).
    building: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    /// A flush is running.
    flushing: bool,
    /// Flushes made (for tests and the bench).
    flushes: u64,
    /// Why a flush failed: no write is taken after it.
    failed: Option<Arc<Error>>,
}

impl Counters {
    fn refuse(&self) -> Result<()> {
        match &self.failed {
            Some(source) => Err(Error::FlushFailed {
                source: source.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// The flush shared by every writer of one open store.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    counters: Mutex<Counters>,
    /// Signalled when a flush ends.
    flushed: Condvar,
    /// Signalled when the last writer building a batch stops: only a
    /// gathering flush waits on it, so writers waiting on a flush are not
    /// woken by every batch staged.
    gathered: Condvar,
    /// How long a flush waits for writers building a batch.
    gather: Duration,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit::gathering_for(GATHER)
    }
}

/// A writer building a batch it is about to stage: a flush about to begin
/// waits for it (see the module docs) until it is dropped, which the
/// writer does once its batch is staged, or on failing to build it.
#[must_use = "a flush waits for the writer only while this is held"]
pub(crate) struct Building<'a>(&'a GroupCommit);

impl Drop for Building<'_> {
    fn drop(&mut self) {
        let mut c = self.0.lock();
        c.building = c.building.saturating_sub(1);
        let last = c.building == 0;
        drop(c);
        if last {
            self.0.gathered.notify_all();
        }
    }
}

impl GroupCommit {
    /// A group commit whose flushes wait up to `gather` for writers
    /// building a batch.
    pub(crate) fn gathering_for(gather: Duration) -> Self {
        GroupCommit {
            counters: Mutex::default(),
            flushed: Condvar::new(),
            gathered: Condvar::new(),
            gather,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Says that this writer is building a batch, until the guard is
    /// dropped: taken before the writer waits for its collection's lock.
    pub(crate) fn building(&self) -> Building<'_> {
        self.lock().building += 1;
        Building(self)
    }

    /// Makes `write` (an engine write of `durable = false`) and returns its
    /// ticket. The ticket is taken after the write returned, so a flush
    /// that covers it began after the write was made. After a failed flush
    /// `write` is not made.
    pub(crate) fn stage(&self, write: impl FnOnce() -> Result<()>) -> Result<Ticket> {
        self.lock().refuse()?;
        write()?;
        let mut c = self.lock();
        c.staged += 1;
        Ok(Ticket(c.staged))
    }

    /// Returns once the write of `ticket` is durable: at once if a flush
    /// already covered it, after the running flush and one more otherwise.
    /// A failed flush fails every writer waiting on it, and every one
    /// after it (see the module docs); the writes stay visible, as an
    /// engine whose flush failed leaves them, until the store is closed.
    pub(crate) fn durable(&self, db: &dyn Engine, ticket: Ticket) -> Result<()> {
        let mut c = self.lock();
        loop {
            if c.durable >= ticket.0 {
                return Ok(());
            }
            c.refuse()?;
            if c.flushing {
                c = self.flushed.wait(c).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            c.flushing = true;
            c = self.gather(c);
            let target = c.staged;
            drop(c);
            let flushed = db.sync();
            c = self.lock();
            c.flushing = false;
            c.flushes += 1;
            match flushed {
                Ok(()) => c.durable = c.durable.max(target),
                Err(e) => {
                    tracing::error!(error = %e, "a flush of the store failed; it takes no more writes until it is opened again");
                    c.failed = Some(Arc::new(e));
                }
            }
            self.flushed.notify_all();
        }
    }

    /// Waits, up to `self.gather`, until no writer is building a batch.
    fn gather<'a>(&'a self, mut c: MutexGuard<'a, Counters>) -> MutexGuard<'a, Counters> {
        if c.building == 0 {
            return c;
        }
        let until = Instant::now() + self.gather;
        while c.building > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            c = self
                .gathered
                .wait_timeout(c, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        c
    }

    /// Stages `write` and waits until it is durable.
    #[cfg(test)]
    pub(crate) fn commit(&self, db: &dyn Engine, write: impl FnOnce() -> Result<()>) -> Result<()> {
        let ticket = self.stage(write)?;
        self.durable(db, ticket)
    }

    /// Flushes made so far.
    #[cfg(test)]
    pub(crate) fn flushes(&self) -> u64 {
        self.lock().flushes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::engine::{EngineKind, Entry, Scan, WriteBatch};
    use std::ops::Bound;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// An engine that only counts: writes made, and writes made before the
    /// last flush that returned (what a crash would keep).
    #[derive(Default)]
    struct Counting {
        written: AtomicU64,
        kept: AtomicU64,
        syncs: AtomicU64,
        /// The flush of this number (from 1) fails.
        fail_sync: AtomicU64,
        /// The first flush waits until this many writes are staged.
        hold_first_sync: Mutex<Option<(Arc<GroupCommit>, u64)>>,
    }

    impl Engine for Counting {
        fn kind(&self) -> EngineKind {
            EngineKind::Redb
        }
        fn get(&self, _: &str, _: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn scan(&self, _: &str, _: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Scan> {
            Ok(Box::new(std::iter::empty()))
        }
        fn last(&self, _: &str, _: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Option<Entry>> {
            Ok(None)
        }
        fn write(&self, _: &str, _: WriteBatch, _: bool) -> Result<()> {
            self.written.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn sync(&self) -> Result<()> {
            let covered = self.written.load(Ordering::SeqCst);
            let hold = self.hold_first_sync.lock().unwrap().take();
            if let Some((g, staged)) = hold {
                while g.lock().staged < staged {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let n = self.syncs.fetch_add(1, Ordering::SeqCst) + 1;
            if n == self.fail_sync.load(Ordering::SeqCst) {
                return Err(crate::store::Error::InvalidArgument("flush failed".into()));
            }
            self.kept.fetch_max(covered, Ordering::SeqCst);
            Ok(())
        }
        fn spaces(&self) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn drop_space(&self, _: &str) -> Result<()> {
            Ok(())
        }
    }

    /// Commits one write, and checks that what a crash would keep once the
    /// commit returned includes it.
    fn commit_kept(db: &Counting, g: &GroupCommit) {
        let mine = std::cell::Cell::new(0);
        g.commit(db, || {
            mine.set(db.written.fetch_add(1, Ordering::SeqCst) + 1);
            Ok(())
        })
        .unwrap();
        assert!(db.kept.load(Ordering::SeqCst) >= mine.get());
    }

    #[test]
    fn a_lone_writer_flushes_at_once() {
        let (db, g) = (Counting::default(), GroupCommit::default());
        for n in 1..=3 {
            g.commit(&db, || db.write("s", WriteBatch::default(), false))
                .unwrap();
            assert_eq!(db.kept.load(Ordering::SeqCst), n);
        }
        assert_eq!(g.flushes(), 3);
    }

    #[test]
    fn writers_staged_during_a_flush_share_the_next_one() {
        const WAITING: u64 = 6;
        let db = Arc::new(Counting::default());
        let g = Arc::new(GroupCommit::default());
        *db.hold_first_sync.lock().unwrap() = Some((g.clone(), 1 + WAITING));
        let commit = |db: Arc<Counting>, g: Arc<GroupCommit>| {
            std::thread::spawn(move || commit_kept(&db, &g))
        };
        let first = commit(db.clone(), g.clone());
        while g.lock().staged < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let rest: Vec<_> = (0..WAITING)
            .map(|_| commit(db.clone(), g.clone()))
            .collect();
        for t in rest.into_iter().chain([first]) {
            t.join().unwrap();
        }
        assert_eq!(db.kept.load(Ordering::SeqCst), 1 + WAITING);
        // The first writer's flush, then one for the six that staged meanwhile.
        assert_eq!(g.flushes(), 2);
        assert_eq!(db.syncs.load(Ordering::SeqCst), 2);
    }

    /// Runs `f` on a thread of its own: its result, or `None` if it had
    /// not returned after 30 s (a flush waiting on what never comes).
    fn within_30s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(30)).ok()
    }

    /// A writer building a batch, and a first writer on a thread of its
    /// own whose flush has begun (and waits for the batch, gathering for
    /// up to a minute). The group commit is leaked, for the guard to
    /// borrow it across threads.
    fn a_flush_waiting_for_a_batch() -> (
        Arc<Counting>,
        &'static GroupCommit,
        Building<'static>,
        std::thread::JoinHandle<()>,
    ) {
        let db = Arc::new(Counting::default());
        let g: &'static GroupCommit = Box::leak(Box::new(GroupCommit::gathering_for(
            Duration::from_secs(60),
        )));
        let building = g.building();
        let first = {
            let db = db.clone();
            std::thread::spawn(move || commit_kept(&db, g))
        };
        while !g.lock().flushing {
            assert!(
                !first.is_finished(),
                "the flush did not wait for the batch being built"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        (db, g, building, first)
    }

    #[test]
    fn a_flush_about_to_begin_takes_in_a_batch_being_built() {
        let (db, g, building, first) = a_flush_waiting_for_a_batch();
        let ticket = g
            .stage(|| db.write("s", WriteBatch::default(), false))
            .unwrap();
        drop(building);
        // Well within the gathering bound (a minute): the flush was woken
        // when the writer stopped building, not by its bound running out.
        let done = within_30s({
            let db = db.clone();
            move || {
                g.durable(db.as_ref(), ticket)
                    .map(|()| first.join().is_ok())
            }
        });
        assert!(matches!(done, Some(Ok(true))), "{done:?}");
        assert_eq!(db.kept.load(Ordering::SeqCst), 2);
        assert_eq!(g.flushes(), 1, "one flush for both");
    }

    #[test]
    fn a_writer_that_stops_building_or_is_slow_does_not_hold_the_flush() {
        // Dropped without staging (its batch failed to build).
        let (_, g, building, first) = a_flush_waiting_for_a_batch();
        drop(building);
        let joined = within_30s(move || first.join().is_ok());
        assert_eq!(joined, Some(true), "the flush was not woken");
        assert_eq!(g.flushes(), 1);

        // Still building when the bound runs out.
        let db = Arc::new(Counting::default());
        let g = Arc::new(GroupCommit::gathering_for(Duration::from_millis(20)));
        let building = g.building();
        let done = within_30s({
            let (db, g) = (db.clone(), g.clone());
            move || commit_kept(&db, &g)
        });
        assert!(done.is_some(), "the flush waited past its bound");
        drop(building);

        // A writer's own batch, staged, does not hold its flush.
        let db = Arc::new(Counting::default());
        let g = Arc::new(GroupCommit::gathering_for(Duration::from_secs(60)));
        let done = within_30s(move || {
            let building = g.building();
            let ticket = g.stage(|| db.write("s", WriteBatch::default(), false))?;
            drop(building);
            g.durable(db.as_ref(), ticket)
        });
        assert!(matches!(done, Some(Ok(()))), "{done:?}");
    }

    #[test]
    fn concurrent_writers_return_only_once_durable() {
        let db = Arc::new(Counting::default());
        let g = Arc::new(GroupCommit::default());
        const THREADS: u64 = 8;
        const EACH: u64 = 25;
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (db, g) = (db.clone(), g.clone());
                std::thread::spawn(move || {
                    for _ in 0..EACH {
                        commit_kept(&db, &g);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(db.kept.load(Ordering::SeqCst), THREADS * EACH);
    }

    #[test]
    fn a_failed_flush_fails_its_writers_and_every_write_after_it() {
        let (db, g) = (Counting::default(), GroupCommit::default());
        db.fail_sync.store(1, Ordering::SeqCst);
        let err = g
            .commit(&db, || db.write("s", WriteBatch::default(), false))
            .unwrap_err();
        assert!(matches!(err, Error::FlushFailed { .. }), "{err:?}");
        assert!(err.to_string().contains("flush failed"), "{err}");
        assert_eq!(db.kept.load(Ordering::SeqCst), 0);
        // The engine's next flush would succeed, yet claims nothing: the
        // write is refused before it is made.
        let err = g
            .commit(&db, || db.write("s", WriteBatch::default(), false))
            .unwrap_err();
        assert!(matches!(err, Error::FlushFailed { .. }), "{err:?}");
        assert_eq!(db.written.load(Ordering::SeqCst), 1, "the write was made");
        assert_eq!(db.syncs.load(Ordering::SeqCst), 1, "a flush was tried");
        assert_eq!(db.kept.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn writers_waiting_on_a_failed_flush_all_fail() {
        const WAITING: u64 = 4;
        let db = Arc::new(Counting::default());
        let g = Arc::new(GroupCommit::default());
        // The first writer's flush succeeds once the others staged; the
        // second flush, theirs, fails.
        db.fail_sync.store(2, Ordering::SeqCst);
        *db.hold_first_sync.lock().unwrap() = Some((g.clone(), 1 + WAITING));
        let first = {
            let (db, g) = (db.clone(), g.clone());
            std::thread::spawn(move || commit_kept(&db, &g))
        };
        while g.lock().staged < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let rest: Vec<_> = (0..WAITING)
            .map(|_| {
                let (db, g) = (db.clone(), g.clone());
                std::thread::spawn(move || {
                    let t = g.stage(|| db.write("s", WriteBatch::default(), false))?;
                    g.durable(db.as_ref(), t)
                })
            })
            .collect();
        first.join().unwrap();
        for t in rest {
            let err = t.join().unwrap().unwrap_err();
            assert!(matches!(err, Error::FlushFailed { .. }), "{err:?}");
        }
        assert_eq!(
            db.syncs.load(Ordering::SeqCst),
            2,
            "one shared failed flush"
        );
        assert_eq!(db.kept.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_write_takes_no_ticket() {
        let (db, g) = (Counting::default(), GroupCommit::default());
        let err = g
            .stage(|| Err(crate::store::Error::InvalidArgument("refused".into())))
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        let t = g.stage(|| Ok(())).unwrap();
        assert_eq!(t, Ticket(1));
        g.durable(&db, t).unwrap();
    }

    /// Applies and acknowledgements from several threads at once, on a real
    /// store of each engine: the collection's lock is released while a
    /// batch waits for its flush, so the next batch is built on top of one
    /// not yet durable. Sequence numbers, state and journal stay exact.
    #[test]
    fn concurrent_applies_on_a_real_store_keep_the_journal_exact() {
        use crate::store::{Batch, Delta, EngineKind, Store, StoreOptions};
        use serde_json::json;
        const THREADS: usize = 4;
        const EACH: usize = 30;
        for engine in EngineKind::ALL {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("s");
            let options = || StoreOptions {
                engine: Some(engine),
                ..StoreOptions::default()
            };
            let (mut seqs, mut last_of) = (Vec::new(), Vec::new());
            {
                let store = Store::open_with(&path, options()).unwrap();
                let c = crate::store::json::configmaps(&store);
                let per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
                    let handles: Vec<_> = (0..THREADS)
                        .map(|t| {
                            let c = c.clone();
                            s.spawn(move || {
                                let mut mine = Vec::new();
                                for i in 0..EACH {
                                    let cm = json!({"metadata": {"name": format!("cm-{t}"), "namespace": "ns",
                                        "resourceVersion": format!("{}", t * 1000 + i + 1)},
                                        "data": {"i": i.to_string()}});
                                    let events = c
                                        .apply(Batch {
                                            deltas: vec![Delta::Upsert(cm)],
                                            rv: None,
                                        })
                                        .unwrap();
                                    assert_eq!(events.len(), 1);
                                    mine.push(events[0].seq);
                                    c.ack(&format!("consumer-{t}"), events[0].seq).unwrap();
                                }
                                mine
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).collect()
                });
                for mine in per_thread {
                    assert!(mine.windows(2).all(|w| w[0] < w[1]), "{engine}: {mine:?}");
                    last_of.push(mine[EACH - 1]);
                    seqs.extend(mine);
                }
            }
            seqs.sort_unstable();
            let want: Vec<u64> = (1..=(THREADS * EACH) as u64).collect();
            assert_eq!(seqs, want, "{engine}: every apply took its own seq");
            let store = Store::open_with(&path, options()).unwrap();
            let c = crate::store::json::configmaps(&store);
            let report = c.verify().unwrap();
            assert!(report.is_ok(), "{engine}: {report:?}");
            assert_eq!(c.len(), THREADS, "{engine}");
            for (t, last) in last_of.iter().enumerate() {
                let key = crate::store::ObjectKey::namespaced("ns", format!("cm-{t}"));
                let cm = c.get(&key).unwrap().unwrap();
                assert_eq!(cm["data"]["i"], (EACH - 1).to_string(), "{engine}");
                let cursor = c.cursor(&format!("consumer-{t}")).unwrap();
                assert_eq!(cursor, Some(*last), "{engine}: consumer-{t}");
            }
            let journal = c.journal_since(0).unwrap();
            let journal: Vec<u64> = journal.iter().map(|e| e.seq).collect();
            assert_eq!(
                journal, want,
                "{engine}: the journal holds every apply, in order"
            );
        }
    }
}
