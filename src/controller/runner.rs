//! The controller's loop: feeds in, keys through the workqueue, reads and
//! reconciles out, results and durable progress back.
//!
//! One task owns every piece of state (queue, rate limiter, ledger); the
//! work it starts (a store read on the blocking pool, then the reconcile as
//! its own tokio task) comes back to it as a completion. The loop runs as
//! the caller polls the result stream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, OptionFuture};
use futures::stream::{BoxStream, FuturesUnordered, SelectAll};
use futures::{FutureExt, Stream, StreamExt};
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::feed::{Feed, FeedItem};
use super::ledger::{Commit, Ledger, Record, RESYNC_MARKER};
use super::queue::WorkQueue;
use super::rate_limit::RateLimiter;
use super::relation::MapFn;
use super::{Action, Config, Controller, Error};
use crate::informer::{ReadResult, TypedReader};
use crate::store::{self, Collection, ObjectKey};

/// The reconciler, with its context bound.
pub(crate) type ReconcileFn<K, E> =
    Box<dyn FnMut(Arc<K>) -> BoxFuture<'static, Result<Action, E>> + Send>;
/// The error policy, with its context bound.
pub(crate) type PolicyFn<K, E> = Box<dyn Fn(Arc<K>, &E) -> Action + Send>;

type Item<K, E> = Result<(ObjectRef<K>, Action), Error<E>>;

/// Feed messages buffered between the feed tasks and the loop.
const FEED_BUFFER: usize = 1024;
/// Wait before reading the controller's state again after a failure.
const RETRY_START: Duration = Duration::from_secs(1);

/// Work that came back to the loop.
enum Done<K, E> {
    /// The object was read (phase one of a reconcile).
    Read {
        key: ObjectKey,
        result: Result<ReadResult<Option<Arc<K>>>, JoinError>,
    },
    /// The reconciler returned (or panicked).
    Reconciled {
        key: ObjectKey,
        obj: Arc<K>,
        result: Result<Result<Action, E>, JoinError>,
    },
}

/// A feed's collection, and the name of the controller's cursor there.
struct Position {
    collection: Collection,
    consumer: String,
    /// Maps the feed's objects to keys; `None` for the main collection.
    map: Option<MapFn>,
}

type CommitFuture<E> = BoxFuture<'static, (Commit, Result<(), Error<E>>)>;

pub(crate) struct Runner<K: Resource, E: std::error::Error + 'static> {
    reader: TypedReader<K>,
    config: Config,
    reconcile: ReconcileFn<K, E>,
    policy: PolicyFn<K, E>,
    positions: Vec<Position>,
    /// Not yet started: the feeds' sources.
    pending_feeds: Vec<Feed>,
    queue: WorkQueue<ObjectKey>,
    limiter: RateLimiter<ObjectKey>,
    ledger: Ledger,
    in_flight: FuturesUnordered<BoxFuture<'static, Done<K, E>>>,
    feeds_rx: mpsc::Receiver<(usize, Vec<FeedItem>)>,
    feeds_tx: Option<mpsc::Sender<(usize, Vec<FeedItem>)>>,
    feed_tasks: JoinSet<()>,
    commit: Option<CommitFuture<E>>,
    last_commit: Instant,
    shutdown: BoxFuture<'static, ()>,
    reconcile_all: SelectAll<BoxStream<'static, ()>>,
    outbox: VecDeque<Item<K, E>>,
    started: bool,
    draining: bool,
    finished: bool,
}

impl<K, E> Runner<K, E>
where
    K: Resource + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + std::fmt::Debug + Send + Sync + Unpin + 'static,
    E: std::error::Error + Send + 'static,
{
    pub fn stream(
        controller: Controller<K>,
        reconcile: ReconcileFn<K, E>,
        policy: PolicyFn<K, E>,
    ) -> impl Stream<Item = Item<K, E>> + Send {
        let Controller {
            reader,
            store: _,
            name,
            relations,
            config,
            graceful_shutdown,
            reconcile_all,
        } = controller;
        let mut positions = vec![Position {
            collection: reader.shared().collection.clone(),
            consumer: name.clone(),
            map: None,
        }];
        let mut pending_feeds = vec![Feed {
            index: 0,
            shared: reader.shared().clone(),
            with_objects: false,
        }];
        for (i, relation) in relations.into_iter().enumerate() {
            positions.push(Position {
                collection: relation.shared.collection.clone(),
                consumer: format!("{name}/{}", relation.kind),
                map: Some(relation.map),
            });
            pending_feeds.push(Feed {
                index: i + 1,
                shared: relation.shared,
                with_objects: true,
            });
        }
        let shutdown = if graceful_shutdown.is_empty() {
            futures::future::pending().boxed()
        } else {
            futures::future::select_all(graceful_shutdown)
                .map(|_| ())
                .boxed()
        };
        let (feeds_tx, feeds_rx) = mpsc::channel(FEED_BUFFER);
        let now = Instant::now();
        let runner = Runner {
            limiter: RateLimiter::new(config.rate_limit, now),
            reader,
            config,
            reconcile,
            policy,
            positions,
            pending_feeds,
            queue: WorkQueue::default(),
            ledger: Ledger::default(),
            in_flight: FuturesUnordered::new(),
            feeds_rx,
            feeds_tx: Some(feeds_tx),
            feed_tasks: JoinSet::new(),
            commit: None,
            last_commit: now,
            shutdown,
            reconcile_all: futures::stream::select_all(reconcile_all),
            outbox: VecDeque::new(),
            started: false,
            draining: false,
            finished: false,
        };
        futures::stream::unfold(runner, |mut runner| async move {
            let item = runner.next().await?;
            Some((item, runner))
        })
    }

    async fn next(&mut self) -> Option<Item<K, E>> {
        loop {
            if let Some(item) = self.outbox.pop_front() {
                return Some(item);
            }
            if self.finished {
                return None;
            }
            if !self.started {
                if let Err(err) = self.start().await {
                    tracing::error!("controller could not read its progress: {err}");
                    tokio::time::sleep(RETRY_START).await;
                    return Some(Err(err));
                }
                self.started = true;
            }
            self.start_ready();
            let now = Instant::now();
            let commit_due = self.last_commit + self.config.commit_interval;
            if self.commit.is_none()
                && self.ledger.has_pending()
                && (self.draining || now >= commit_due)
            {
                self.spawn_commit();
            }
            if self.draining
                && self.in_flight.is_empty()
                && self.commit.is_none()
                && !self.ledger.has_pending()
            {
                // Waited for, not only aborted: the feeds hold the store
                // open, and a caller may reopen it once the stream ends.
                self.feed_tasks.shutdown().await;
                tracing::info!("controller stopped");
                self.finished = true;
                continue;
            }
            let next_due = (!self.draining)
                .then(|| self.queue.next_due())
                .flatten()
                .map(tokio::time::sleep_until);
            let commit_at = (self.commit.is_none() && self.ledger.has_pending())
                .then(|| tokio::time::sleep_until(commit_due));
            tokio::select! {
                biased;
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => self.on_done(done),
                Some((commit, result)) = OptionFuture::from(self.commit.as_mut()), if self.commit.is_some() => {
                    self.commit = None;
                    self.on_committed(commit, result);
                }
                _ = &mut self.shutdown, if !self.draining => self.begin_drain("shutdown requested"),
                msg = self.feeds_rx.recv(), if !self.draining => match msg {
                    Some((feed, chunk)) => {
                        for item in chunk {
                            self.on_feed(feed, item).await;
                        }
                        // Take what else has arrived before handing keys out,
                        // so that one reconcile covers a key's changes so far.
                        for _ in 0..FEED_BUFFER {
                            let Ok((feed, chunk)) = self.feeds_rx.try_recv() else {
                                break;
                            };
                            for item in chunk {
                                self.on_feed(feed, item).await;
                            }
                        }
                    }
                    None => self.begin_drain("the informers stopped"),
                },
                Some(()) = self.reconcile_all.next(), if !self.draining && !self.reconcile_all.is_empty() => {
                    self.reconcile_everything().await;
                }
                Some(()) = OptionFuture::from(next_due), if !self.draining => {
                    self.queue.promote_due(Instant::now());
                }
                Some(()) = OptionFuture::from(commit_at) => {}
            }
        }
    }

    /// Reads the controller's progress, starts the feeds from their cursors
    /// and queues what is owed: records at their due time, and every key if
    /// this is a first start or a full resync was under way.
    async fn start(&mut self) -> Result<(), Error<E>> {
        let heads: Vec<_> = self.pending_feeds.iter().map(Feed::subscribe).collect();
        let positions: Vec<(Collection, String)> = self
            .positions
            .iter()
            .map(|p| (p.collection.clone(), p.consumer.clone()))
            .collect();
        let (cursors, records) = run_blocking(move || {
            let mut cursors = Vec::new();
            for (collection, consumer) in &positions {
                cursors.push(collection.cursor(consumer)?);
            }
            let (main, consumer) = &positions[0];
            Ok((cursors, main.progress_records(consumer)?))
        })
        .await?;
        self.ledger = Ledger::new(&cursors);
        let mut full = cursors[0].is_none();
        let tx = self.feeds_tx.take();
        for ((feed, (rx, head)), cursor) in self
            .pending_feeds
            .drain(..)
            .zip(heads)
            .zip(cursors.iter().copied())
        {
            let after = cursor.unwrap_or(head);
            self.ledger.start_feed_at(feed.index, after);
            if let Some(tx) = &tx {
                self.feed_tasks.spawn(feed.run(rx, after, tx.clone()));
            }
        }
        let now = Instant::now();
        let mut restored = 0;
        for (name, value) in records {
            if name == RESYNC_MARKER {
                full = true;
                continue;
            }
            let Ok(key) = name.parse::<ObjectKey>() else {
                tracing::warn!(
                    record = name,
                    "dropping a progress record that names no object"
                );
                continue;
            };
            let record = Record::decode(&value).unwrap_or_else(|err| {
                tracing::warn!(%key, "unreadable progress record ({err}); reconciling the key now");
                Record {
                    due_ms: None,
                    failures: 0,
                }
            });
            self.limiter.set_failures(key.clone(), record.failures);
            self.queue.add_at(key.clone(), now + record.wait(), now);
            self.ledger.restore_record(key, record);
            restored += 1;
        }
        tracing::info!(
            cursor = ?cursors[0],
            restored,
            full_resync = full,
            "controller started"
        );
        if full {
            self.full_resync().await;
        }
        Ok(())
    }

    /// Hands ready keys to workers, up to the concurrency limit.
    fn start_ready(&mut self) {
        let limit = usize::from(self.config.concurrency);
        while !self.draining && (limit == 0 || self.in_flight.len() < limit) {
            let Some(key) = self.queue.next() else {
                break;
            };
            self.ledger.start(&key);
            let reader = self.reader.clone();
            let read_key = key.clone();
            self.in_flight.push(
                async move {
                    let result = tokio::task::spawn_blocking(move || reader.get(&read_key)).await;
                    Done::Read { key, result }
                }
                .boxed(),
            );
        }
    }

    fn on_done(&mut self, done: Done<K, E>) {
        match done {
            Done::Read { key, result } => self.on_read(key, result),
            Done::Reconciled { key, obj, result } => {
                let obj_ref = self.obj_ref(&key);
                match result {
                    Ok(Ok(action)) => {
                        self.limiter.forget(&key);
                        match action.requeue_after() {
                            Some(after) => {
                                let now = Instant::now();
                                self.queue.add_at(key.clone(), now + after, now);
                                self.ledger.put_record(&key, Record::due_in(Some(after), 0));
                            }
                            None => self.ledger.remove_record(&key),
                        }
                        self.outbox.push_back(Ok((obj_ref, action)));
                    }
                    Ok(Err(err)) => {
                        let action = (self.policy)(obj, &err);
                        self.retry_failed(&key, action.requeue_after());
                        self.outbox.push_back(Err(Error::ReconcilerFailed(
                            err,
                            Box::new(obj_ref.erase()),
                        )));
                    }
                    Err(join) => {
                        tracing::error!(%key, "reconciler task failed: {join}");
                        self.retry_failed(&key, Some(Duration::ZERO));
                        self.outbox
                            .push_back(Err(Error::ReconcilerPanicked(Box::new(obj_ref.erase()))));
                    }
                }
                self.ledger.settle(&key);
                self.queue.done(&key, Instant::now());
            }
        }
    }

    fn on_read(&mut self, key: ObjectKey, result: Result<ReadResult<Option<Arc<K>>>, JoinError>) {
        if self.draining {
            // Not started: what it would have covered is owed again.
            self.ledger.unstart(&key);
            self.queue.done(&key, Instant::now());
            return;
        }
        match result {
            Ok(Ok(Some(obj))) => {
                let run = tokio::spawn((self.reconcile)(obj.clone()));
                self.in_flight.push(
                    async move {
                        Done::Reconciled {
                            key,
                            obj,
                            result: run.await,
                        }
                    }
                    .boxed(),
                );
                return;
            }
            Ok(Ok(None)) => {
                // Deleted: nothing to reconcile, nothing owed any more
                // (kube-runtime reconciles no deleted object either).
                tracing::debug!(%key, "object gone; not reconciled");
                self.ledger.remove_record(&key);
                self.limiter.forget(&key);
            }
            Ok(Err(err)) => {
                self.retry_failed(&key, Some(Duration::ZERO));
                self.outbox.push_back(Err(Error::Read(err)));
            }
            Err(join) => {
                self.retry_failed(&key, Some(Duration::ZERO));
                self.outbox.push_back(Err(Error::Task {
                    what: format!("reading {key}"),
                    source: join,
                }));
            }
        }
        self.ledger.settle(&key);
        self.queue.done(&key, Instant::now());
    }

    /// A failed key: retried after the longer of what was asked and its
    /// backoff (or only on its next change or restart if nothing was
    /// asked), and recorded durably either way.
    fn retry_failed(&mut self, key: &ObjectKey, requested: Option<Duration>) {
        let now = Instant::now();
        let backoff = self.limiter.when(key.clone(), now);
        let failures = self.limiter.failures(key);
        let delay = requested.map(|d| d.max(backoff));
        if let Some(delay) = delay {
            self.queue.add_at(key.clone(), now + delay, now);
        }
        self.ledger.put_record(key, Record::due_in(delay, failures));
    }

    async fn on_feed(&mut self, feed: usize, item: FeedItem) {
        match item {
            FeedItem::Change { seq, key, objects } => {
                let keys = self.keys_of(feed, key, &objects);
                self.ledger.delivered(feed, seq, &keys);
                let now = Instant::now();
                let debounce = self.config.debounce;
                for key in keys {
                    if debounce.is_zero() {
                        self.queue.add(key);
                    } else {
                        self.queue.add_debounced(key, now + debounce, now);
                    }
                }
            }
            FeedItem::Resync { key, objects } => {
                for key in self.keys_of(feed, key, &objects) {
                    self.queue.add(key);
                }
            }
            FeedItem::Gap { head } => {
                self.ledger.start_feed_at(feed, head);
                self.full_resync().await;
            }
            FeedItem::Failed(err) => self.outbox.push_back(Err(Error::Progress(err))),
        }
    }

    /// The controller's keys a feed's change is about.
    fn keys_of(
        &self,
        feed: usize,
        key: ObjectKey,
        objects: &[serde_json::Value],
    ) -> Vec<ObjectKey> {
        match &self.positions[feed].map {
            None => vec![key],
            Some(map) => {
                let mut keys: Vec<ObjectKey> = objects.iter().flat_map(|o| map(o)).collect();
                keys.sort();
                keys.dedup();
                keys
            }
        }
    }

    /// Reconciles every key, durably: see [`Ledger::begin_resync`].
    async fn full_resync(&mut self) {
        let keys = all_keys::<E>(self.reader.shared().collection.clone()).await;
        for key in &keys {
            self.queue.add(key.clone());
        }
        self.ledger.begin_resync(keys);
    }

    async fn reconcile_everything(&mut self) {
        for key in all_keys::<E>(self.reader.shared().collection.clone()).await {
            self.queue.add(key);
        }
    }

    fn begin_drain(&mut self, why: &str) {
        tracing::info!(
            in_flight = self.in_flight.len(),
            "{why}: draining reconciles"
        );
        self.draining = true;
        self.feed_tasks.abort_all();
    }

    fn spawn_commit(&mut self) {
        let Some(commit) = self.ledger.take_commit() else {
            return;
        };
        let main = self.positions[0].collection.clone();
        let consumer = self.positions[0].consumer.clone();
        let related: Vec<(Collection, String, u64)> = commit
            .related
            .iter()
            .map(|&(i, seq)| {
                let p = &self.positions[i];
                (p.collection.clone(), p.consumer.clone(), seq)
            })
            .collect();
        let progress = commit.main.clone();
        self.commit = Some(
            async move {
                // The main collection first: records a related cursor
                // relies on are durable before that cursor moves.
                let result = run_blocking(move || {
                    main.commit_progress(&consumer, &progress)?;
                    for (collection, consumer, seq) in related {
                        collection.ack(&consumer, seq)?;
                    }
                    Ok(())
                })
                .await;
                (commit, result)
            }
            .boxed(),
        );
    }

    fn on_committed(&mut self, commit: Commit, result: Result<(), Error<E>>) {
        self.last_commit = Instant::now();
        match result {
            Ok(()) => self.ledger.committed(&commit),
            Err(err) => {
                self.ledger.restore(commit);
                tracing::error!("could not write the controller's progress: {err}");
                self.outbox.push_back(Err(err));
            }
        }
    }

    fn obj_ref(&self, key: &ObjectKey) -> ObjectRef<K> {
        let r = ObjectRef::new_with(&key.name, self.reader.dyntype().clone());
        match &key.namespace {
            Some(ns) => r.within(ns),
            None => r,
        }
    }
}

/// Every key the collection holds. The controller cannot do without them
/// (a full resync must happen), so a failing store is retried.
async fn all_keys<E: std::error::Error + 'static>(collection: Collection) -> Vec<ObjectKey> {
    loop {
        let c = collection.clone();
        match run_blocking::<_, E>(move || c.versions()).await {
            Ok(versions) => return versions.into_keys().collect(),
            Err(err) => {
                tracing::error!("cannot list the store's keys ({err}); retrying");
                tokio::time::sleep(RETRY_START).await;
            }
        }
    }
}

/// Runs a store call on the blocking pool.
async fn run_blocking<T: Send + 'static, E: std::error::Error + 'static>(
    f: impl FnOnce() -> store::Result<T> + Send + 'static,
) -> Result<T, Error<E>> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result?),
        Err(join) => Err(Error::Task {
            what: "on the store".into(),
            source: join,
        }),
    }
}
