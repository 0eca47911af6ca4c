//! A controller's view of one collection's changes: every journal event
//! after a position, first paged from the journal, then live from the
//! informer's broadcast, and from the journal again whenever the broadcast
//! outran it.
//!
//! This is a durable consumer in the sense of I8 (the position is the
//! consumer's cursor, kept by the controller), but it pages: catching up
//! after a restart holds one page of the journal at a time, not every
//! event since the cursor with both of its objects, so a controller that
//! was down while 10% of 100k objects changed does not load 10k objects to
//! learn their keys.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use crate::informer::events::state_before;
use crate::informer::{blocking, Event, EventKind, Shared};
use crate::store::{self, JournalEntry, ObjectKey};

/// Journal entries read per page while catching up.
const PAGE: usize = 256;

/// What a feed tells the controller.
#[derive(Debug)]
pub(crate) enum FeedItem {
    /// A committed change. `objects` (its states after and before, where
    /// known) only for feeds that map objects to keys.
    Change {
        seq: u64,
        key: ObjectKey,
        objects: Vec<Value>,
    },
    /// The informer's periodic resync re-delivered an object (not
    /// journaled, nothing to acknowledge).
    Resync { key: ObjectKey, objects: Vec<Value> },
    /// The journal no longer holds the events after the feed's position:
    /// what changed in between cannot be attributed. The feed goes on from
    /// `head`, the last seq committed when this was found.
    Gap { head: u64 },
    /// The feed could not read the store; it goes on where it was.
    Failed(store::Error),
}

/// A feed's messages, in chunks handled whole before any key is started,
/// tagged with the feed's index.
pub(crate) type FeedTx = mpsc::Sender<(usize, Vec<FeedItem>)>;

/// Most items in one chunk of live events that carry keys only.
const CHUNK_MAX: usize = 4096;
/// How long a chunk of live events waits for the rest of its batch.
const CHUNK_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Where a feed starts.
pub(crate) struct Feed {
    pub index: usize,
    pub shared: Arc<Shared>,
    /// Whether items carry the objects (relations map them to keys).
    pub with_objects: bool,
}

impl Feed {
    /// Subscribes to the informer's live events and reads the journal's
    /// head, in that order, so no event committed in between is missed.
    pub fn subscribe(&self) -> (broadcast::Receiver<Event>, u64) {
        let rx = self.shared.events.subscribe();
        let head = self
            .shared
            .collection
            .meta()
            .map_or(0, |m| m.journal_last_seq);
        (rx, head)
    }

    /// Sends every event after `after` to `tx` until the informer stops or
    /// the controller stops listening, in chunks: a journal page, or the
    /// live events of what was committed together.
    pub async fn run(self, mut rx: broadcast::Receiver<Event>, after: u64, tx: FeedTx) {
        let mut delivered = after;
        let mut catching_up = true;
        loop {
            let (chunk, closed) = if catching_up {
                match self.read_page(delivered).await {
                    Ok(entries) if entries.is_empty() => {
                        catching_up = false;
                        continue;
                    }
                    Ok(entries) => {
                        let mut chunk = Vec::with_capacity(entries.len());
                        for entry in entries {
                            delivered = entry.seq;
                            chunk.push(self.item_of_entry(entry).await);
                        }
                        (chunk, false)
                    }
                    Err(store::Error::JournalTrimmed { .. }) => {
                        let (_, head) = self.subscribe();
                        tracing::warn!(collection = %self.shared.collection.name(), after = delivered, head, "the journal was trimmed past the controller's position");
                        delivered = head;
                        (vec![FeedItem::Gap { head }], false)
                    }
                    Err(err) => {
                        if tx
                            .send((self.index, vec![FeedItem::Failed(err)]))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                }
            } else {
                self.live_chunk(&mut rx, &mut delivered, &mut catching_up)
                    .await
            };
            if !chunk.is_empty() && tx.send((self.index, chunk)).await.is_err() {
                return;
            }
            if closed {
                return;
            }
        }
    }

    /// The next live events: the first to come, then the rest of what was
    /// committed up to the journal's head when it came. The informer
    /// publishes a batch's events one by one; handed over as they came, a
    /// controller would start a key's reconcile before reading that key's
    /// next change in the same batch (a resumed watch's replay brings many
    /// such), and reconcile it twice. Also says whether the informer stopped.
    async fn live_chunk(
        &self,
        rx: &mut broadcast::Receiver<Event>,
        delivered: &mut u64,
        catching_up: &mut bool,
    ) -> (Vec<FeedItem>, bool) {
        let mut chunk = Vec::new();
        let mut head = None;
        loop {
            let received = if chunk.is_empty() {
                rx.recv().await
            } else {
                // Committed, so on its way: the wait only bounds a stall.
                match tokio::time::timeout(CHUNK_WAIT, rx.recv()).await {
                    Ok(received) => received,
                    Err(_) => return (chunk, false),
                }
            };
            match received {
                Ok(ev) if ev.kind == EventKind::Resync => chunk.push(FeedItem::Resync {
                    objects: self.objects_of(&ev),
                    key: ev.key,
                }),
                Ok(ev) if ev.seq > *delivered => {
                    *delivered = ev.seq;
                    chunk.push(FeedItem::Change {
                        seq: ev.seq,
                        objects: self.objects_of(&ev),
                        key: ev.key,
                    });
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        missed,
                        after = *delivered,
                        "controller feed fell behind; reading the journal"
                    );
                    *catching_up = true;
                    return (chunk, false);
                }
                Err(broadcast::error::RecvError::Closed) => return (chunk, true),
            }
            let head = *head.get_or_insert_with(|| {
                self.shared
                    .collection
                    .meta()
                    .map_or(0, |m| m.journal_last_seq)
            });
            // A relation's items carry objects: its chunks stay page-sized.
            let max = if self.with_objects { PAGE } else { CHUNK_MAX };
            if *delivered >= head || chunk.len() >= max {
                return (chunk, false);
            }
        }
    }

    async fn read_page(&self, after: u64) -> store::Result<Vec<JournalEntry>> {
        let collection = self.shared.collection.clone();
        let read = blocking(move || Ok(collection.journal_page(after, PAGE)?)).await;
        read.map_err(|err| match err {
            crate::informer::Error::Store(e) => e,
            other => store::Error::InvalidArgument(other.to_string()),
        })
    }

    fn objects_of(&self, ev: &Event) -> Vec<Value> {
        if !self.with_objects {
            return Vec::new();
        }
        ev.new.iter().chain(ev.old()).cloned().collect()
    }

    /// A journal entry as an item. An Added entry holds the object; for a
    /// change, the current object stands for it (a later state: if it is
    /// gone, the later Deleted entry speaks for it); a deleted object's
    /// last state is folded from its history.
    async fn item_of_entry(&self, entry: JournalEntry) -> FeedItem {
        let objects = if !self.with_objects {
            Vec::new()
        } else if entry.kind == EventKind::Added {
            vec![entry.patch]
        } else {
            let collection = self.shared.collection.clone();
            let (key, seq, kind) = (entry.key.clone(), entry.seq, entry.kind);
            let read = blocking(move || {
                Ok(match kind {
                    EventKind::Deleted => state_before(&collection.history(&key)?, seq),
                    _ => collection.get(&key)?,
                })
            })
            .await;
            match read {
                Ok(obj) => obj.into_iter().collect(),
                Err(err) => {
                    tracing::warn!(key = %entry.key, seq, "could not read the object of a related change: {err}");
                    Vec::new()
                }
            }
        };
        FeedItem::Change {
            seq: entry.seq,
            key: entry.key,
            objects,
        }
    }
}
