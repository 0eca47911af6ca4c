//! The informer's task: drives the watcher, turns each group of its events
//! into store batches applied atomically, and publishes the committed
//! changes.
//!
//! A relist arrives as a frame (`Init` … `InitDone`) holding only how the
//! server differs from the store. Its writes keep the stored
//! resourceVersion where it was; only `InitDone` moves it, in the batch that
//! ends the relist, so a relist cut short leaves the store at its old
//! version and is redone on the next start (I1, I11). Readers meanwhile see
//! every object, old version or new: deletions come last.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::events::{Event, EventKind};
use super::failure::FailureCause;
use super::metrics::Metrics;
use super::{blocking, rv_number, Result, Shared, State};
use crate::store::{Batch, Collection, Delta, Earlier, ObjectKey};
use crate::watcher::backoff::Backoff;
use crate::watcher::failure::{Cause, FailureHook};
use crate::watcher::object::rv_of;
use crate::watcher::{self, BoxError, Held, ListWatch, ObjectRef, Stats, Transform, Watcher};

pub(crate) struct Driver<S> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) source: S,
    pub(crate) config: watcher::Config,
    pub(crate) transform: Transform,
    pub(crate) stats: Arc<Stats>,
}

/// What the store holds, as the watcher's relists see it.
#[derive(Clone)]
pub(crate) struct StoreHeld(pub(crate) Collection);

impl Held for StoreHeld {
    async fn versions(&self) -> std::result::Result<HashMap<ObjectRef, String>, BoxError> {
        let collection = self.0.clone();
        let versions = blocking(move || Ok(collection.versions()?)).await?;
        Ok(versions
            .into_iter()
            .map(|(key, rv)| {
                let ObjectKey { namespace, name } = key;
                (ObjectRef { namespace, name }, rv)
            })
            .collect())
    }
}

impl<S: ListWatch + Clone> Driver<S> {
    /// A watcher resuming from `rv` (relisting when there is none), whose
    /// failures the informer records.
    pub(crate) fn watcher(&self, rv: Option<String>) -> Result<Watcher<S, StoreHeld>> {
        let shared = self.shared.clone();
        let hook: FailureHook = Arc::new(move |cause: Cause, why: &str| {
            shared.failures.record(cause.into(), why);
        });
        Ok(Watcher::new(
            self.source.clone(),
            self.config.clone(),
            rv,
            self.transform.clone(),
            self.stats.clone(),
            StoreHeld(self.shared.collection.clone()),
        )?
        .with_failure_hook(hook))
    }

    pub(crate) async fn run(self, mut watcher: Watcher<S, StoreHeld>, cancel: CancellationToken) {
        let span =
            tracing::info_span!("informer", resource = %self.shared.collection.id().resource);
        async move {
            let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
            let damage = self.shared.collection.damage();
            loop {
                let healing = matches!(*self.shared.state.borrow(), State::Healing { .. });
                let group = tokio::select! {
                    group = watcher.next(&cancel) => match group {
                        Some(group) => group,
                        None => break,
                    },
                    // Not while healing already: that relist rewrites what
                    // the reports are about.
                    seen = damage.notified(), if !healing => {
                        match self.heal(seen) {
                            Some(w) => watcher = w,
                            None => break,
                        }
                        continue;
                    }
                };
                match self.apply(group).await {
                    // Only a write proves the store works again: a group
                    // that wrote nothing (a relist's start) must not reset
                    // the backoff, or a full disk is retried at full speed.
                    Ok(wrote) => {
                        if wrote {
                            backoff.reset();
                            self.shared.failures.wrote();
                        }
                    }
                    Err(err) => {
                        // The group is not stored, so the watch must not go
                        // on past it: restart from what the store holds.
                        Metrics::add(&self.shared.metrics.apply_failures, 1);
                        let cause = FailureCause::of_store(&err);
                        self.shared
                            .failures
                            .record(cause, &format!("could not store a batch: {err}"));
                        let delay = backoff.next_delay(None);
                        let c = self.shared.collection.clone();
                        let rv = match blocking(move || Ok(c.last_rv()?)).await {
                            Ok(Some(rv)) => {
                                tracing::error!(%cause, "could not store a batch ({err}); re-watching from the stored resourceVersion {rv} in {delay:?}");
                                Some(rv)
                            }
                            Ok(None) => {
                                tracing::error!(%cause, "could not store a batch ({err}); no resourceVersion is stored, so relisting in {delay:?}");
                                None
                            }
                            Err(read) => {
                                tracing::error!(%cause, "could not store a batch ({err}), nor read the stored resourceVersion ({read}); relisting in {delay:?}");
                                None
                            }
                        };
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        match self.watcher(rv) {
                            Ok(w) => watcher = w,
                            // The config was valid when the first watcher
                            // was built, and nothing changed it since.
                            Err(err) => {
                                tracing::error!("cannot restart the watcher: {err}");
                                break;
                            }
                        }
                    }
                }
            }
            tracing::info!("informer stopped");
        }
        .instrument(span)
        .await
    }

    /// A reader met damage (a record that fails its checksum, a dictionary
    /// that does not load): relist, which rewrites every record
    /// `Collection::versions` cannot vouch for, and say `Healing` until it
    /// completes. The watch in progress is dropped with whatever it was
    /// reading: the relist covers it. `None` when no watcher can be built.
    fn heal(&self, damage: String) -> Option<Watcher<S, StoreHeld>> {
        tracing::warn!(%damage, "a read met damage in the store; relisting to rewrite it");
        Metrics::add(&self.shared.metrics.heals, 1);
        self.set_state(State::Healing { damage });
        match self.watcher(None) {
            Ok(w) => Some(w),
            Err(err) => {
                // The config was valid when the first watcher was built.
                tracing::error!("cannot restart the watcher: {err}");
                None
            }
        }
    }

    /// Stores a group of watcher events; whether it wrote anything.
    async fn apply(&self, group: Vec<watcher::Event>) -> Result<bool> {
        let collection = self.shared.collection.clone();
        let written = blocking(move || write_group(&collection, group)).await?;
        let m = &self.shared.metrics;
        Metrics::add(&m.bookmarks, written.bookmarks);
        Metrics::add(&m.batches, written.batches);
        let wrote = written.batches > 0;
        self.publish(written.changes);
        if written.synced {
            if matches!(*self.shared.state.borrow(), State::Healing { .. }) {
                // Reports made while the relist ran were about records it
                // has rewritten since; one still damaged is reported again
                // when next read.
                use futures::FutureExt as _;
                let _ = self.shared.collection.damage().notified().now_or_never();
            }
            self.set_state(State::Synced);
        }
        Ok(wrote)
    }

    /// Hands committed changes to subscribers (after commit: I2).
    fn publish(&self, changes: Vec<Event>) {
        let m = &self.shared.metrics;
        Metrics::add(&m.events_applied, changes.len() as u64);
        Metrics::set(&m.objects, self.shared.collection.len() as u64);
        let rv = self.shared.collection.last_rv().ok().flatten();
        Metrics::set(&m.last_rv, rv.as_deref().and_then(rv_number).unwrap_or(0));
        for change in changes {
            // No receivers is fine: nobody subscribed.
            let _ = self.shared.events.send(change);
        }
        self.shared.rv.send_replace(rv);
    }

    fn set_state(&self, state: State) {
        let changed = self.shared.state.send_if_modified(|cur| {
            if *cur == state {
                return false;
            }
            *cur = state.clone();
            true
        });
        if changed && state == State::Synced {
            let ms = self.shared.started.elapsed().as_millis() as u64;
            Metrics::set(&self.shared.metrics.resume_ms, ms);
            let rv = self.shared.rv.borrow().clone().unwrap_or_default();
            tracing::info!(%rv, after_ms = ms, "synced");
        }
    }
}

/// What writing one group of watcher events did.
#[derive(Default)]
struct Written {
    changes: Vec<Event>,
    batches: u64,
    bookmarks: u64,
    /// The server proved the store caught up (a relist ended, or a bookmark
    /// covered the resumed watch).
    synced: bool,
}

/// Deltas per store batch: one huge sled batch costs more than its parts,
/// and a bounded batch keeps a relist's memory bounded.
const MAX_BATCH: usize = 1000;

/// Turns a group of watcher events into store batches, each applied
/// atomically. A batch carries a resourceVersion only when the events
/// before it bring the collection there: never inside a relist.
fn write_group(collection: &Collection, group: Vec<watcher::Event>) -> Result<Written> {
    use watcher::Event as W;
    let mut out = Written::default();
    let mut batch = Batch::default();
    for event in group {
        match event {
            W::Init => {
                commit(collection, &mut batch, &mut out)?;
                tracing::debug!("relist started");
            }
            W::InitApply(obj) => batch.deltas.push(Delta::Upsert(obj)),
            W::InitDelete { key, rv } => {
                if let Some(last) = last_state(collection, key, &rv) {
                    batch.deltas.push(Delta::Delete(last));
                }
            }
            W::InitDone { rv } => {
                batch.rv = Some(rv);
                commit(collection, &mut batch, &mut out)?;
                out.synced = true;
            }
            W::Apply(obj) => {
                batch.rv = rv_of(&obj).map(str::to_string).or(batch.rv.take());
                batch.deltas.push(Delta::Upsert(obj));
            }
            W::Delete(obj) => {
                batch.rv = rv_of(&obj).map(str::to_string).or(batch.rv.take());
                batch.deltas.push(Delta::Delete(obj));
            }
            W::Bookmark { rv } => {
                batch.rv = Some(rv);
                out.bookmarks += 1;
            }
            W::CaughtUp => out.synced = true,
        }
        if batch.deltas.len() >= MAX_BATCH {
            commit(collection, &mut batch, &mut out)?;
        }
    }
    commit(collection, &mut batch, &mut out)?;
    Ok(out)
}

/// Applies the batch built so far, if it says anything. An object the store
/// holds at a newer version than a delta's keeps it (I13): after a relist
/// cut short, the store holds objects newer than its resourceVersion, and
/// the watch resumed from there replays older ones (which still move the
/// position). A relist's own deltas are never older than what is held.
fn commit(collection: &Collection, batch: &mut Batch, out: &mut Written) -> Result<()> {
    let batch = std::mem::take(batch);
    if batch.deltas.is_empty() && batch.rv.is_none() {
        return Ok(());
    }
    out.changes.extend(collection.apply_keeping_newer(batch)?);
    out.batches += 1;
    Ok(())
}

/// The last state of an object a relist found gone: the stored one, whose
/// delete the journal records against it. `None` when it is gone from the
/// store already (a relist redone after a crash deleted it).
fn last_state(collection: &Collection, key: ObjectRef, rv: &str) -> Option<Value> {
    let key = ObjectKey {
        namespace: key.namespace,
        name: key.name,
    };
    match collection.get(&key) {
        Ok(Some(obj)) => Some(obj),
        Ok(None) => None,
        // Unreadable (corrupt): delete it by key all the same, which is how
        // a relist heals the store.
        Err(err) => {
            tracing::warn!(%key, "stored object unreadable ({err}); deleting it by key");
            Some(
                json!({"metadata": {"name": key.name, "namespace": key.namespace, "resourceVersion": rv}}),
            )
        }
    }
}

/// Periodically re-delivers every stored object as a Resync event.
pub(crate) async fn resync(shared: Arc<Shared>, period: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let collection = shared.collection.clone();
        let read =
            blocking(move || Ok((collection.meta()?.journal_last_seq, collection.list()?))).await;
        let (seq, objects) = match read {
            Ok(read) => read,
            Err(err) => {
                tracing::warn!("resync could not read the store: {err}");
                continue;
            }
        };
        tracing::debug!(objects = objects.len(), "resync");
        for obj in objects {
            let Ok(key) = ObjectKey::of(&obj) else {
                continue;
            };
            let rv = rv_of(&obj).unwrap_or_default().to_string();
            let event = Event {
                seq,
                kind: EventKind::Resync,
                key,
                rv,
                old: Earlier::value(Some(obj.clone())),
                new: Some(obj),
            };
            let _ = shared.events.send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CollectionId, EventKind, Store};
    use watcher::Event as W;

    /// A config map `ns/name` at `rv`, with a body about a pod's size.
    fn cm(name: &str, rv: u64) -> Value {
        let data: String = (0..40).map(|i| format!("{name}-{rv}-{i};")).collect();
        json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv.to_string()}, "data": {"k": data}})
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::namespaced("ns", name)
    }

    /// A store whose config maps are `objects`, at stored RV `rv`.
    fn holding(objects: Vec<Value>, rv: &str) -> (tempfile::TempDir, Store, Collection) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("s")).unwrap();
        let c = store
            .collection(&CollectionId::of::<k8s_openapi::api::core::v1::ConfigMap>())
            .unwrap();
        c.apply(Batch {
            deltas: objects.into_iter().map(Delta::Upsert).collect(),
            rv: Some(rv.into()),
        })
        .unwrap();
        (tmp, store, c)
    }

    #[test]
    fn a_watch_event_older_than_the_stored_object_never_moves_it_back() {
        // A relist cut short left a@12 in a store at 10; the watch resumed
        // from 10 replays a@11 and then a deletion at 11 (I13).
        let (_tmp, _store, c) = holding(vec![cm("a", 12)], "10");
        let seq = c.meta().unwrap().journal_last_seq;
        let written = write_group(&c, vec![W::Apply(cm("a", 11))]).unwrap();
        assert!(written.changes.is_empty(), "{:?}", written.changes);
        assert_eq!(c.get(&key("a")).unwrap(), Some(cm("a", 12)));
        assert_eq!(
            c.last_rv().unwrap().as_deref(),
            Some("11"),
            "the position moves"
        );
        let written = write_group(&c, vec![W::Delete(cm("a", 11))]).unwrap();
        assert!(written.changes.is_empty(), "{:?}", written.changes);
        assert_eq!(c.get(&key("a")).unwrap(), Some(cm("a", 12)));
        assert_eq!(
            c.meta().unwrap().journal_last_seq,
            seq,
            "nothing journalled"
        );
        // The next version goes through.
        let written = write_group(&c, vec![W::Apply(cm("a", 13))]).unwrap();
        let kinds: Vec<_> = written.changes.iter().map(|ch| ch.kind).collect();
        assert_eq!(kinds, [EventKind::Modified]);
        assert_eq!(c.get(&key("a")).unwrap(), Some(cm("a", 13)));
        assert_eq!(c.last_rv().unwrap().as_deref(), Some("13"));
    }

    #[test]
    fn a_relist_moves_the_stored_rv_only_at_its_end() {
        let (_tmp, _store, c) = holding(vec![cm("gone", 3)], "10");
        let mut group = vec![W::Init];
        group.extend((0..MAX_BATCH + 5).map(|i| W::InitApply(cm(&format!("o{i}"), 20))));
        let written = write_group(&c, group).unwrap();
        assert_eq!(written.batches, 2, "split at MAX_BATCH");
        assert_eq!(c.len(), MAX_BATCH + 6);
        assert!(!written.synced);
        assert_eq!(
            c.last_rv().unwrap().as_deref(),
            Some("10"),
            "a relist's writes keep the stored RV (I1, I11)"
        );
        let gone = ObjectRef::new(Some("ns"), "gone").unwrap();
        let done = vec![
            W::InitDelete {
                key: gone,
                rv: "3".into(),
            },
            W::InitDone { rv: "20".into() },
        ];
        let written = write_group(&c, done).unwrap();
        assert!(written.synced);
        let kinds: Vec<_> = written.changes.iter().map(|ch| ch.kind).collect();
        assert_eq!(kinds, [EventKind::Deleted]);
        assert_eq!(c.get(&key("gone")).unwrap(), None);
        assert_eq!(c.last_rv().unwrap().as_deref(), Some("20"));
    }

    #[test]
    fn a_relist_deleting_an_absent_key_writes_nothing() {
        // Redone after a crash that had deleted it already.
        let (_tmp, _store, c) = holding(vec![cm("a", 3)], "10");
        let seq = c.meta().unwrap().journal_last_seq;
        let absent = ObjectRef::new(Some("ns"), "b").unwrap();
        let group = vec![W::InitDelete {
            key: absent,
            rv: "2".into(),
        }];
        let written = write_group(&c, group).unwrap();
        assert_eq!((written.batches, written.changes.len()), (0, 0));
        assert_eq!(c.meta().unwrap().journal_last_seq, seq);
        assert_eq!(c.len(), 1);
    }

    /// Watch events over a store holding their objects' previous versions:
    /// the steady-state write path, for an instruction count under
    /// `valgrind --tool=callgrind` (inclusive cost of `write_group`). Beside
    /// it, one stored-object read per event, which is what checking each
    /// event against the stored object outside the apply costs on top.
    #[test]
    #[ignore = "a measurement: run under callgrind"]
    fn write_path_of_watch_events() {
        const N: u64 = 2000;
        let objects = (0..N).map(|i| cm(&format!("o{i}"), i + 1)).collect();
        let (_tmp, _store, c) = holding(objects, &N.to_string());
        let events: Vec<W> = (0..N)
            .map(|i| W::Apply(cm(&format!("o{i}"), N + i + 1)))
            .collect();
        for group in events.chunks(500) {
            write_group(&c, group.to_vec()).unwrap();
        }
        assert_eq!(c.last_rv().unwrap(), Some((2 * N).to_string()));
        assert_eq!(read_each(&c, N), N);
    }

    /// Reads each of the `n` objects back, as a per-event check outside the
    /// apply would.
    #[inline(never)]
    fn read_each(c: &Collection, n: u64) -> u64 {
        (0..n)
            .filter(|i| c.get(&key(&format!("o{i}"))).unwrap().is_some())
            .count() as u64
    }
}
