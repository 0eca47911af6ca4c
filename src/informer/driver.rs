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
use super::metrics::Metrics;
use super::{blocking, rv_number, Result, Shared, State};
use crate::store::{Batch, Change, Collection, Delta, ObjectKey};
use crate::watcher::backoff::Backoff;
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
    /// A watcher resuming from `rv` (relisting when there is none).
    pub(crate) fn watcher(&self, rv: Option<String>) -> Result<Watcher<S, StoreHeld>> {
        Ok(Watcher::new(
            self.source.clone(),
            self.config.clone(),
            rv,
            self.transform.clone(),
            self.stats.clone(),
            StoreHeld(self.shared.collection.clone()),
        )?)
    }

    pub(crate) async fn run(self, mut watcher: Watcher<S, StoreHeld>, cancel: CancellationToken) {
        let span =
            tracing::info_span!("informer", resource = %self.shared.collection.id().resource);
        async move {
            let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
            while let Some(group) = watcher.next(&cancel).await {
                match self.apply(group).await {
                    Ok(()) => backoff.reset(),
                    Err(err) => {
                        // The group is not stored, so the watch must not go
                        // on past it: restart from what the store holds.
                        Metrics::add(&self.shared.metrics.apply_failures, 1);
                        let delay = backoff.next_delay(None);
                        tracing::error!("could not store a batch ({err}); re-watching from the stored resourceVersion in {delay:?}");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        let c = self.shared.collection.clone();
                        let rv = blocking(move || Ok(c.last_rv()?)).await.ok().flatten();
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

    async fn apply(&self, group: Vec<watcher::Event>) -> Result<()> {
        let collection = self.shared.collection.clone();
        let written = blocking(move || write_group(&collection, group)).await?;
        let m = &self.shared.metrics;
        Metrics::add(&m.bookmarks, written.bookmarks);
        Metrics::add(&m.batches, written.batches);
        self.publish(written.changes);
        if written.synced {
            self.set_state(State::Synced);
        }
        Ok(())
    }

    /// Hands committed changes to subscribers (after commit: I2).
    fn publish(&self, changes: Vec<Change>) {
        let m = &self.shared.metrics;
        Metrics::add(&m.events_applied, changes.len() as u64);
        Metrics::set(&m.objects, self.shared.collection.len() as u64);
        let rv = self.shared.collection.last_rv().ok().flatten();
        Metrics::set(&m.last_rv, rv.as_deref().and_then(rv_number).unwrap_or(0));
        for change in changes {
            // No receivers is fine: nobody subscribed.
            let _ = self.shared.events.send(Event::from(change));
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
    changes: Vec<Change>,
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
                old: Some(obj.clone()),
                new: Some(obj),
            };
            let _ = shared.events.send(event);
        }
    }
}
