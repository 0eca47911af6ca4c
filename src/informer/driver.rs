//! The informer's task: drives the watcher, applies each output to the
//! store atomically, and publishes the committed changes.

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
use crate::watcher::relist::diff;
use crate::watcher::{self, ListWatch, Output, Stats, Transform, Watcher};

pub(crate) struct Driver<S> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) source: S,
    pub(crate) config: watcher::Config,
    pub(crate) transform: Transform,
    pub(crate) stats: Arc<Stats>,
}

impl<S: ListWatch + Clone> Driver<S> {
    pub(crate) async fn run(self, mut watcher: Watcher<S>, cancel: CancellationToken) {
        let span =
            tracing::info_span!("informer", resource = %self.shared.collection.id().resource);
        async move {
            let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
            while let Some(out) = watcher.next(&cancel).await {
                match self.apply(out).await {
                    Ok(()) => backoff.reset(),
                    Err(err) => {
                        // The batch is not stored, so the watch must not go
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
                        watcher = Watcher::new(self.source.clone(), self.config.clone(), rv, self.transform.clone(), self.stats.clone());
                    }
                }
            }
            tracing::info!("informer stopped");
        }
        .instrument(span)
        .await
    }

    async fn apply(&self, out: Output) -> Result<()> {
        match out {
            Output::Relisted { objects, rv } => {
                let collection = self.shared.collection.clone();
                let changes = blocking(move || apply_relist(&collection, objects, rv)).await?;
                self.publish(changes);
                self.set_state(State::Synced);
            }
            Output::Batch { deltas, rv } => {
                if deltas.is_empty() {
                    Metrics::add(&self.shared.metrics.bookmarks, 1);
                }
                let collection = self.shared.collection.clone();
                let batch = Batch {
                    deltas,
                    rv: Some(rv),
                };
                let changes = blocking(move || Ok(collection.apply(batch)?)).await?;
                self.publish(changes);
            }
            Output::CaughtUp => self.set_state(State::Synced),
        }
        Ok(())
    }

    /// Hands committed changes to subscribers (after commit: I2).
    fn publish(&self, changes: Vec<Change>) {
        let m = &self.shared.metrics;
        Metrics::add(&m.batches, 1);
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

/// Applies a relisted snapshot as one atomic batch holding only the
/// differences with the store (I4).
fn apply_relist(collection: &Collection, objects: Vec<Value>, rv: String) -> Result<Vec<Change>> {
    let versions = collection.versions()?;
    let d = diff(&versions, objects);
    tracing::info!(
        upserts = d.upserts.len(),
        deleted = d.deleted.len(),
        unchanged = d.unchanged,
        %rv,
        "applying relist diff"
    );
    let mut deltas: Vec<Delta> = d.upserts.into_iter().map(Delta::Upsert).collect();
    for key in d.deleted {
        let last = match collection.get(&key) {
            Ok(Some(obj)) => obj,
            // Unreadable (corrupt) or vanished: delete by key all the same,
            // which is how a relist heals the store.
            other => {
                if let Err(err) = other {
                    tracing::warn!(%key, "stored object unreadable ({err}); deleting it by key");
                }
                tombstone(&key, versions.get(&key).map(String::as_str).unwrap_or(&rv))
            }
        };
        deltas.push(Delta::Delete(last));
    }
    // Applied in chunks: one huge sled batch costs more than its parts.
    // Only the last chunk carries the RV, so the stored RV is never ahead of
    // the data (I1); a crash in between leaves the old RV, whose watch gets
    // 410 again (or there was none), and the next relist diffs what landed.
    let mut changes = Vec::with_capacity(deltas.len());
    let mut deltas = deltas.into_iter().peekable();
    loop {
        let chunk: Vec<Delta> = deltas.by_ref().take(RELIST_CHUNK).collect();
        let last = deltas.peek().is_none();
        changes.extend(collection.apply(Batch {
            deltas: chunk,
            rv: last.then(|| rv.clone()),
        })?);
        if last {
            return Ok(changes);
        }
    }
}

/// Deltas per store batch when applying a relist.
const RELIST_CHUNK: usize = 1000;

fn tombstone(key: &ObjectKey, rv: &str) -> Value {
    json!({"metadata": {"name": key.name, "namespace": key.namespace, "resourceVersion": rv}})
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
            let Some(key) = watcher::object::key_of(&obj) else {
                continue;
            };
            let rv = watcher::object::rv_of(&obj).unwrap_or_default().to_string();
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
