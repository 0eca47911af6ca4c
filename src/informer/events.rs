//! Events after commit: live subscriptions, durable named consumers, and
//! the journal replay both fall back on.
//!
//! Live events travel over a broadcast channel, sent only after the batch
//! they belong to is durable (I2). A subscriber that falls behind the
//! channel, or a durable consumer starting from its acknowledged seq (I8),
//! reads the store's journal instead, so no committed event is skipped.

use std::collections::{HashMap, VecDeque};

use futures::Stream;
use serde_json::Value;
use tokio::sync::broadcast;

use super::{blocking, Error, Result};
use crate::store::{Collection, Earlier, JournalEntry, ObjectKey};
pub use crate::store::{Event, EventKind};

/// Rebuilds full events from journal entries after `after_seq`.
///
/// The journal holds merge patches; an object's state at an entry is the
/// fold of its history up to there (an Added entry holds the full object).
/// If the journal was trimmed and the consumer acknowledged less than its
/// start, the events in between are gone: [`Error::JournalGap`].
pub(crate) fn replay(collection: &Collection, after_seq: u64) -> Result<Vec<Event>> {
    let first_available = collection.meta()?.journal_first_seq;
    if after_seq > 0 && first_available > after_seq + 1 {
        return Err(Error::JournalGap {
            acked: after_seq,
            first_available,
        });
    }
    let entries = collection.journal_since(after_seq)?;
    let mut states: HashMap<ObjectKey, Option<Value>> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        if !states.contains_key(&entry.key) {
            let before = state_before(&collection.history(&entry.key)?, entry.seq);
            states.insert(entry.key.clone(), before);
        }
        let state = states.entry(entry.key.clone()).or_default();
        let old = state.clone();
        *state = fold(state.take(), &entry);
        out.push(Event {
            seq: entry.seq,
            kind: entry.kind,
            key: entry.key,
            rv: entry.rv,
            old: Earlier::value(old),
            new: state.clone(),
        });
    }
    Ok(out)
}

/// The object's state just before journal seq `seq`.
pub(crate) fn state_before(history: &[JournalEntry], seq: u64) -> Option<Value> {
    history.iter().filter(|e| e.seq < seq).fold(None, fold)
}

fn fold(state: Option<Value>, entry: &JournalEntry) -> Option<Value> {
    match entry.kind {
        EventKind::Added => Some(entry.patch.clone()),
        EventKind::Deleted => None,
        EventKind::Modified => {
            let mut doc = state.unwrap_or_else(|| Value::Object(Default::default()));
            json_patch::merge(&mut doc, &entry.patch);
            Some(doc)
        }
        // Never journaled (the journal refuses it); it would change nothing.
        EventKind::Resync => state,
    }
}

/// Delivers events in seq order from a position, live from the channel,
/// from the journal when behind.
struct Feed {
    rx: broadcast::Receiver<Event>,
    collection: Collection,
    /// Last seq delivered (or acknowledged, at start).
    delivered: u64,
    backlog: VecDeque<Event>,
}

impl Feed {
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(ev) = self.backlog.pop_front() {
                if ev.seq > self.delivered {
                    self.delivered = ev.seq;
                    return Some(Ok(ev));
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(ev) if ev.kind == EventKind::Resync => return Some(Ok(ev)),
                Ok(ev) if ev.seq > self.delivered => {
                    self.delivered = ev.seq;
                    return Some(Ok(ev));
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        missed,
                        after = self.delivered,
                        "subscriber fell behind; reading the journal"
                    );
                    if let Err(err) = self.catch_up().await {
                        return Some(Err(err));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    async fn catch_up(&mut self) -> Result<()> {
        let collection = self.collection.clone();
        let after = self.delivered;
        self.backlog = blocking(move || replay(&collection, after)).await?.into();
        Ok(())
    }
}

fn feed_stream(feed: Feed) -> impl Stream<Item = Result<Event>> + Send + 'static {
    futures::stream::unfold(feed, |mut feed| async move {
        feed.next().await.map(|item| (item, feed))
    })
}

/// A live stream of events committed after it was created.
pub(crate) fn subscription(
    rx: broadcast::Receiver<Event>,
    collection: Collection,
    from_seq: u64,
) -> impl Stream<Item = Result<Event>> + Send + 'static {
    feed_stream(Feed {
        rx,
        collection,
        delivered: from_seq,
        backlog: VecDeque::new(),
    })
}

/// A named consumer whose position survives restarts (I8).
///
/// It yields every event after the last seq it acknowledged, first from the
/// journal, then live. Delivery is at-least-once: events delivered but not
/// acknowledged before a crash come again.
pub struct Consumer {
    name: String,
    collection: Collection,
    stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event>> + Send>>,
}

impl Consumer {
    pub(crate) async fn open(
        name: &str,
        rx: broadcast::Receiver<Event>,
        collection: Collection,
    ) -> Result<Consumer> {
        // Subscribed before reading the journal, so nothing committed in
        // between is missed; the feed drops what it already replayed.
        let c = collection.clone();
        let n = name.to_string();
        let (acked, backlog) = blocking(move || {
            let acked = c.cursor(&n)?.unwrap_or(0);
            Ok((acked, replay(&c, acked)?))
        })
        .await?;
        tracing::info!(
            consumer = name,
            acked,
            pending = backlog.len(),
            "durable consumer resumed"
        );
        let feed = Feed {
            rx,
            collection: collection.clone(),
            delivered: acked,
            backlog: backlog.into(),
        };
        Ok(Consumer {
            name: name.to_string(),
            collection,
            stream: Box::pin(feed_stream(feed)),
        })
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last acknowledged seq (0: none).
    pub fn acked(&self) -> impl std::future::Future<Output = Result<u64>> + Send + 'static {
        let c = self.collection.clone();
        let n = self.name.clone();
        blocking(move || Ok(c.cursor(&n)?.unwrap_or(0)))
    }

    /// Durably records that every event up to `seq` was handled. The
    /// returned future does not borrow the consumer, so it can be awaited
    /// while the stream is in use elsewhere.
    pub fn ack(&self, seq: u64) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let c = self.collection.clone();
        let n = self.name.clone();
        blocking(move || Ok(c.ack(&n, seq)?))
    }
}

impl Stream for Consumer {
    type Item = Result<Event>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::SystemTime;

    fn entry(seq: u64, kind: EventKind, patch: Value) -> JournalEntry {
        JournalEntry {
            seq,
            kind,
            key: ObjectKey {
                namespace: Some("ns".into()),
                name: "a".into(),
            },
            rv: seq.to_string(),
            at: SystemTime::UNIX_EPOCH,
            patch,
        }
    }

    #[test]
    fn history_folds_patches_into_states() {
        let history = vec![
            entry(
                1,
                EventKind::Added,
                json!({"metadata": {"name": "a"}, "spec": {"x": 1, "y": 2}}),
            ),
            entry(2, EventKind::Modified, json!({"spec": {"x": 5, "y": null}})),
            entry(3, EventKind::Deleted, json!(null)),
        ];
        assert_eq!(state_before(&history, 1), None);
        assert_eq!(
            state_before(&history, 2),
            Some(json!({"metadata": {"name": "a"}, "spec": {"x": 1, "y": 2}}))
        );
        assert_eq!(
            state_before(&history, 3),
            Some(json!({"metadata": {"name": "a"}, "spec": {"x": 5}}))
        );
        assert_eq!(state_before(&history, 4), None);
    }
}
