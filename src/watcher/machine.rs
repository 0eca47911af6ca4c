//! The state machine proper. Each state is a variant of [`State`]; each
//! transition is one small async fn that performs one request (or reads one
//! batch) and returns the next state, queueing the events it produced.
//! Relists live in [`super::listing`] (full) and [`super::metadata`]
//! (metadata first); resuming and watching are here.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{ListParams, WatchParams};
use kube::core::WatchEvent;
use serde_json::Value;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::backoff::Backoff;
use super::event::Event;
use super::failure::{Cause, Chain, Failure, FailureHook};
use super::fence::{Fence, Pass};
use super::listing::{InitialEvents, Paging};
use super::metadata::{Fetching, MetaPaging};
use super::object::{key_of, rv_of, ObjectRef, Transform};
use super::relist::{is_older, Diff, Held};
use super::selection::Selection;
use super::source::{EventStream, ListWatch};
use super::{Config, Error, Stats};
use crate::resource_version;

/// Where the watcher is.
pub(super) enum State {
    /// Watch from a known RV (the stored one, or the last one seen).
    Resume { rv: String },
    /// No usable RV: read what the consumer holds, then relist (metadata
    /// first when `metadata` and the consumer holds objects).
    Relist { metadata: bool },
    /// A metadata-only LIST in progress.
    MetaPaging(MetaPaging),
    /// GETting what the metadata list found new or changed.
    Fetching(Fetching),
    /// A streaming list about to be opened.
    OpenStream(Diff),
    /// A streaming list in progress: reading its initial events.
    InitialEvents(InitialEvents),
    /// A paginated LIST in progress; every page from one snapshot.
    Paging(Paging),
    /// Reading watch events into batches.
    Watching(Watching),
    /// Waiting before retrying `then`.
    Backoff { delay: Duration, then: Box<State> },
    /// Cancelled.
    Stopped,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Resume { .. } => "resume",
            State::Relist { .. } => "relist",
            State::MetaPaging(_) => "metadata-paging",
            State::Fetching(_) => "fetching",
            State::OpenStream(_) => "open-stream",
            State::InitialEvents(_) => "initial-events",
            State::Paging(_) => "paging",
            State::Watching(_) => "watching",
            State::Backoff { .. } => "backoff",
            State::Stopped => "stopped",
        }
    }
}

/// An open watch stream.
pub(super) struct Watching {
    /// RV of the last event (or bookmark) read.
    pub rv: String,
    /// RV the watch started from.
    pub from: String,
    pub stream: EventStream,
    /// A short watch opened to bring the proof of being caught up.
    pub probe: bool,
    /// Whether this watch has delivered anything (event or bookmark).
    pub heard: bool,
    /// When the request was sent, and the `timeoutSeconds` it asked for:
    /// whether a clean end was the server's deadline.
    pub opened: Instant,
    pub timeout: Duration,
}

impl Watching {
    /// Whether the stream, ending now, stayed open up to its deadline. The
    /// server starts its `timeoutSeconds` timer once it has the request,
    /// so an end at the deadline comes no sooner than `timeout` after the
    /// request was sent; `DEADLINE_SLACK` allows for the two clocks.
    fn reached_deadline(&self) -> bool {
        self.opened.elapsed() + DEADLINE_SLACK >= self.timeout
    }
}

/// How much earlier than `timeoutSeconds` after the request a watch's end
/// still counts as its deadline. kube-apiserver queues the pre-deadline
/// bookmark 2 s before the deadline and dispatches bookmarks in 1-second
/// buckets (`cache_watcher.go`, `nextBookmarkTime`; `cacher.go`,
/// `dispatchEvents`), so a watch open until half a second before its
/// deadline has been open past the moment that bookmark is sent.
const DEADLINE_SLACK: Duration = Duration::from_millis(500);

/// The list/watch state machine over a [`ListWatch`] source, for a consumer
/// that holds what [`Held`] says.
pub struct Watcher<S, H = ()> {
    pub(super) source: S,
    pub(super) held: H,
    pub(super) config: Config,
    pub(super) selection: Selection,
    transform: Transform,
    pub(super) stats: Arc<Stats>,
    state: State,
    /// Groups of events read together, oldest first.
    queue: VecDeque<Vec<Event>>,
    pub(super) backoff: Backoff,
    /// Whether the server may support streaming lists (cleared on refusal).
    pub(super) streaming: bool,
    /// Whether the server may serve metadata lists (cleared on refusal).
    pub(super) metadata: bool,
    /// Whether the consumer has been told it is synced (a relist completed
    /// or a resumed watch caught up).
    pub(super) synced: bool,
    /// Whether the first resumed watch was already closed early for going
    /// quiet after its replay (see [`Config::resume_probe_quiet`]).
    probe_cut: bool,
    /// Objects the last metadata relist found deleted after its snapshot.
    pub(super) fence: Fence,
    /// Told of each failure backed off from.
    failure_hook: Option<FailureHook>,
}

impl<S: ListWatch, H: Held> Watcher<S, H> {
    /// A watcher that resumes from `stored_rv`, or relists when there is
    /// none. Fails when the config is invalid.
    pub fn new(
        source: S,
        config: Config,
        stored_rv: Option<String>,
        transform: Transform,
        stats: Arc<Stats>,
        held: H,
    ) -> Result<Self, Error> {
        config.validate()?;
        let selection = Selection::new(
            config.label_selector.as_deref(),
            config.field_selector.as_deref(),
        )?;
        let state = match stored_rv {
            Some(rv) if !rv.is_empty() => State::Resume { rv },
            _ => State::Relist {
                metadata: config.metadata_relist,
            },
        };
        Ok(Watcher {
            backoff: Backoff::new(config.backoff_initial, config.backoff_max),
            streaming: config.streaming_list,
            metadata: config.metadata_relist,
            source,
            held,
            selection,
            transform,
            stats,
            state,
            config,
            queue: VecDeque::new(),
            synced: false,
            probe_cut: false,
            fence: Fence::default(),
            failure_hook: None,
        })
    }

    /// Tells `hook` of every failure the watcher backs off from, with its
    /// cause: a consumer that gives up waiting can then say why.
    pub fn with_failure_hook(mut self, hook: FailureHook) -> Self {
        self.failure_hook = Some(hook);
        self
    }

    /// The next events the watcher read together: a LIST page's
    /// differences, a run of a streaming list's, a batch of watch events
    /// (at most `batch_max`, within `batch_window`), a bookmark. A consumer
    /// that applies each group at once writes bounded batches. `None` once
    /// `cancel` fired (after handing out what was already read, so a clean
    /// shutdown loses nothing read).
    pub async fn next(&mut self, cancel: &CancellationToken) -> Option<Vec<Event>> {
        loop {
            if let Some(group) = self.queue.pop_front() {
                return Some(group);
            }
            let state = std::mem::replace(&mut self.state, State::Stopped);
            if matches!(state, State::Stopped) {
                return None;
            }
            let span = tracing::debug_span!("watcher", state = state.name());
            let next = async {
                match state {
                    State::Resume { rv } => self.resume(rv, cancel).await,
                    State::Relist { metadata } => self.relist(metadata, cancel).await,
                    State::MetaPaging(m) => self.meta_page(m, cancel).await,
                    State::Fetching(f) => self.fetch(f, cancel).await,
                    State::OpenStream(diff) => self.open_stream(diff, cancel).await,
                    State::InitialEvents(i) => self.initial_events(i, cancel).await,
                    State::Paging(p) => self.page(p, cancel).await,
                    State::Watching(w) => self.watch_batch(w, cancel).await,
                    State::Backoff { delay, then } => Self::wait(delay, *then, cancel).await,
                    State::Stopped => State::Stopped,
                }
            }
            .instrument(span)
            .await;
            tracing::trace!(to = next.name(), "watcher transition");
            self.state = next;
        }
    }

    /// Queues a group of events, if it holds any.
    pub(super) fn emit(&mut self, group: Vec<Event>) {
        if !group.is_empty() {
            self.queue.push_back(group);
        }
    }

    pub(super) fn watch_params(&self, timeout_secs: u32) -> WatchParams {
        WatchParams {
            label_selector: self.config.label_selector.clone(),
            field_selector: self.config.field_selector.clone(),
            timeout: Some(timeout_secs),
            bookmarks: true,
            send_initial_events: false,
        }
    }

    /// One page of a LIST (full or metadata) of the collection.
    pub(super) fn list_params(&self, token: Option<String>) -> ListParams {
        ListParams {
            label_selector: self.config.label_selector.clone(),
            field_selector: self.config.field_selector.clone(),
            limit: Some(self.config.page_size),
            continue_token: token,
            ..ListParams::default()
        }
    }

    /// When a page of a `what` comes from another snapshot than the pages
    /// before it, the state that starts the relist over: its pages must not
    /// be mixed.
    pub(super) fn other_snapshot(
        &mut self,
        what: &str,
        snapshot_rv: Option<&str>,
        page_rv: Option<&str>,
    ) -> Option<State> {
        if snapshot_rv.is_none() || page_rv == snapshot_rv {
            return None;
        }
        let why = format!(
            "{what} page at resourceVersion {page_rv:?} does not match the snapshot {snapshot_rv:?}"
        );
        Some(self.back_off(&Failure::Transient, Cause::Api, &why, self.relist_state()))
    }

    /// Schedules a retry of `then` after the backoff delay, saying why and
    /// telling the failure hook.
    pub(super) fn back_off(
        &mut self,
        failure: &Failure,
        cause: Cause,
        why: &dyn std::fmt::Display,
        then: State,
    ) -> State {
        Stats::bump(&self.stats.backoffs);
        let delay = self.backoff.next_delay(failure.retry_after());
        tracing::warn!(
            ?failure,
            ?cause,
            retry = then.name(),
            delay_ms = delay.as_millis() as u64,
            "{why}; backing off"
        );
        if let Some(hook) = &self.failure_hook {
            hook(cause, &why.to_string());
        }
        State::Backoff {
            delay,
            then: Box::new(then),
        }
    }

    async fn wait(delay: Duration, then: State, cancel: &CancellationToken) -> State {
        tokio::select! {
            _ = cancel.cancelled() => State::Stopped,
            _ = tokio::time::sleep(delay) => then,
        }
    }

    pub(super) fn transformed(&self, mut obj: Value) -> Value {
        (self.transform)(&mut obj);
        obj
    }

    /// Relist → the relist's first request, once what the consumer holds
    /// is known (read afresh each time a relist starts or starts over, so
    /// what an earlier attempt wrote counts as held).
    async fn relist(&mut self, metadata: bool, cancel: &CancellationToken) -> State {
        // Whatever a previous relist fenced belongs to a watch that is over.
        self.fence = Fence::default();
        let held = tokio::select! {
            _ = cancel.cancelled() => return State::Stopped,
            held = self.held.versions() => held,
        };
        let held = match held {
            Ok(held) => held,
            Err(err) => {
                let why = format!("could not read what the cache holds: {err}");
                return self.back_off(
                    &Failure::Transient,
                    Cause::Held,
                    &why,
                    State::Relist { metadata },
                );
            }
        };
        if metadata && self.metadata && !held.is_empty() {
            tracing::info!(
                held = held.len(),
                "relisting metadata first, to fetch only what changed"
            );
            return State::MetaPaging(MetaPaging::new(Diff::new(held)));
        }
        self.full_relist(Diff::new(held))
    }

    /// Resume → Watching (or Relist on 410, Backoff on other failures). Until
    /// synced, the watch is a short probe whose closing bookmark proves
    /// being caught up.
    async fn resume(&mut self, rv: String, cancel: &CancellationToken) -> State {
        Stats::bump(&self.stats.watch_requests);
        let probe = !self.synced;
        let timeout = if probe {
            self.config.resume_probe_timeout_secs
        } else {
            self.config.watch_timeout_secs
        };
        let params = self.watch_params(timeout);
        let opened = Instant::now();
        let res = tokio::select! {
            _ = cancel.cancelled() => return State::Stopped,
            res = self.source.watch(&params, &rv) => res,
        };
        match res {
            Ok(stream) => {
                tracing::debug!(%rv, probe, "watching");
                State::Watching(Watching {
                    from: rv.clone(),
                    rv,
                    stream,
                    probe,
                    heard: false,
                    opened,
                    timeout: Duration::from_secs(timeout.into()),
                })
            }
            Err(err) => match Failure::of(&err) {
                Failure::Gone => {
                    Stats::bump(&self.stats.gone);
                    tracing::info!(%rv, "stored resourceVersion is too old (410); relisting");
                    self.relist_state()
                }
                failure => {
                    let why = format!("watch from {rv} failed: {}", Chain(&err));
                    self.back_off(&failure, Cause::of(&err), &why, State::Resume { rv })
                }
            },
        }
    }

    /// The state a relist starts in.
    pub(super) fn relist_state(&self) -> State {
        State::Relist {
            metadata: self.config.metadata_relist,
        }
    }

    /// Watching → Watching (one batch emitted), or Resume/Relist/Backoff
    /// when the stream ends or fails, after emitting what was read.
    async fn watch_batch(&mut self, mut w: Watching, cancel: &CancellationToken) -> State {
        let mut batch = Batch::default();
        let cut = w.probe && w.heard && !self.synced && !self.probe_cut;
        let idle = if cut {
            self.config.resume_probe_quiet
        } else {
            self.config.stall_timeout
        };
        // A resumed watch's replay is read as one batch, up to a cap: the
        // batch stays open while events keep coming (see
        // `Config::catch_up_gap`).
        let (gap, max) = match w.probe && !self.synced && !self.config.catch_up_gap.is_zero() {
            true => (Some(self.config.catch_up_gap), self.config.catch_up_batch_max),
            false => (None, self.config.batch_max),
        };
        loop {
            let wait = batch.deadline.unwrap_or_else(|| Instant::now() + idle);
            let item = tokio::select! {
                _ = cancel.cancelled() => {
                    self.flush(&mut w, batch);
                    return State::Stopped;
                }
                item = timeout_at(wait, futures::StreamExt::next(&mut w.stream)) => item,
            };
            let event = match item {
                Err(_) if batch.deadline.is_some() => {
                    self.flush(&mut w, batch);
                    return State::Watching(w);
                }
                Err(_) if cut => return self.cut_probe(w),
                Err(_) => {
                    Stats::bump(&self.stats.watch_restarts);
                    tracing::warn!(rv = %w.rv, stall = ?self.config.stall_timeout, "watch stalled; re-watching");
                    return self.watch_closed(w, false);
                }
                Ok(None) => {
                    self.flush(&mut w, batch);
                    Stats::bump(&self.stats.watch_restarts);
                    tracing::debug!(rv = %w.rv, "watch ended; re-watching");
                    return self.watch_closed(w, true);
                }
                Ok(Some(Err(err))) => {
                    self.flush(&mut w, batch);
                    return self.watch_failed(w.rv, &err);
                }
                Ok(Some(Ok(event))) => event,
            };
            self.backoff.reset();
            w.heard = true;
            match event {
                WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                    self.watched(&mut batch, obj, false)
                }
                WatchEvent::Deleted(obj) => self.watched(&mut batch, obj, true),
                WatchEvent::Bookmark(b) => {
                    self.bookmark(&mut w, batch, b.metadata.resource_version);
                    return State::Watching(w);
                }
                WatchEvent::Error(status) => {
                    self.flush(&mut w, batch);
                    return self.watch_failed(w.rv, &kube::Error::Api(status));
                }
            }
            if let Some(gap) = gap {
                batch.deadline = Some(Instant::now() + gap);
            }
            if batch.events.len() >= max {
                self.flush(&mut w, batch);
                return State::Watching(w);
            }
        }
    }

    /// The first resumed watch went quiet after its replay: rather than wait
    /// out its deadline, which proves nothing once it has brought events,
    /// watch again from where it got to, so the silence or bookmark of that
    /// next watch proves the catch-up one deadline sooner.
    fn cut_probe(&mut self, w: Watching) -> State {
        self.probe_cut = true;
        Stats::bump(&self.stats.watch_restarts);
        tracing::debug!(rv = %w.rv, quiet = ?self.config.resume_probe_quiet, "resumed watch quiet after its replay; re-watching from its last resourceVersion");
        State::Resume { rv: w.rv }
    }

    /// Adds a watch event to the batch, unless it is of an object the last
    /// relist found deleted (see [`Fence`]).
    fn watched(&mut self, batch: &mut Batch, obj: Value, deleted: bool) {
        // An event without an RV cannot move the position; keep the last one.
        if let Some(rv) = rv_of(&obj) {
            batch.rv = Some(rv.to_string());
        }
        // Even a dropped event moves the position, so it flushes like any.
        batch
            .deadline
            .get_or_insert_with(|| Instant::now() + self.config.batch_window);
        if !self.fence.is_empty() {
            if let Some(key) = key_of(&obj) {
                if self.fence.check(&key, deleted) == Pass::Drop {
                    tracing::debug!(%key, rv = rv_of(&obj), "watch event of an object the relist found deleted; dropped");
                    return;
                }
            }
        }
        let obj = self.transformed(obj);
        batch.events.push(if deleted {
            Event::Delete(obj)
        } else {
            Event::Apply(obj)
        });
    }

    /// A bookmark closes the batch at its RV, and proves a resumed watch
    /// caught up when it covers where the watch started.
    fn bookmark(&mut self, w: &mut Watching, mut batch: Batch, rv: String) {
        if is_older(&rv, batch.rv.as_deref().unwrap_or(&w.rv)) {
            tracing::warn!(bookmark = %rv, at = %w.rv, "bookmark older than the events before it; ignored");
            self.flush(w, batch);
            return;
        }
        let proves = resource_version::covers(&rv, &w.from);
        batch.rv = Some(rv.clone());
        self.flush(w, batch);
        if !self.synced && proves {
            tracing::info!(%rv, from = %w.from, "a bookmark covers the resumed watch: caught up");
            self.caught_up();
        }
    }

    fn caught_up(&mut self) {
        self.synced = true;
        self.emit(vec![Event::CaughtUp]);
    }

    /// Queues the batch read so far (if it says anything new). When its RV
    /// is past its last event's (a bookmark, or events the fence dropped),
    /// a bookmark says so.
    fn flush(&mut self, w: &mut Watching, batch: Batch) {
        let Batch { mut events, rv, .. } = batch;
        if let Some(rv) = rv {
            let last = events.last().and_then(Event::watch_rv);
            if rv != w.rv && last != Some(rv.as_str()) {
                events.push(Event::Bookmark { rv: rv.clone() });
            }
            w.rv = rv;
        }
        self.emit(events);
    }

    /// The watch closed cleanly (`clean`) or stalled: watch again from the
    /// last RV.
    ///
    /// A resumed watch that reached its deadline cleanly having delivered
    /// nothing at all, not even a bookmark, proves the resume caught up.
    /// kube-apiserver's cache watcher sends a bookmark before the deadline
    /// only when its resourceVersion is newer than the watch's
    /// (`cache_watcher.go`, `process`: only events with `ResourceVersion >
    /// resourceVersion` go out), and it sends every event after the watch's
    /// resourceVersion first (`processInterval`). So silence up to the
    /// deadline says the server's cache held nothing past the resumed
    /// version when it would have sent that bookmark. A watch that ended
    /// early, stalled, or brought events without a bookmark proves nothing:
    /// another short watch follows from where it got to.
    fn watch_closed(&mut self, w: Watching, clean: bool) -> State {
        if !w.probe || self.synced {
            return State::Resume { rv: w.rv };
        }
        let deadline = clean && w.reached_deadline();
        if deadline && !w.heard {
            tracing::info!(rv = %w.rv, "a resumed watch reached its deadline with nothing newer to send: caught up");
            self.caught_up();
            return State::Resume { rv: w.rv };
        }
        if clean && !deadline && !w.heard {
            // Closed early without a word, again and again, would be a
            // busy loop.
            let why = format!("a short watch from {} closed before its deadline", w.rv);
            return self.back_off(
                &Failure::Transient,
                Cause::Connection,
                &why,
                State::Resume { rv: w.rv },
            );
        }
        State::Resume { rv: w.rv }
    }

    fn watch_failed(&mut self, rv: String, err: &kube::Error) -> State {
        Stats::bump(&self.stats.watch_restarts);
        match Failure::of(err) {
            Failure::Gone => {
                Stats::bump(&self.stats.gone);
                tracing::info!(%rv, "watch answered 410 ({err}); relisting");
                self.relist_state()
            }
            Failure::Malformed => {
                Stats::bump(&self.stats.malformed);
                tracing::warn!(%rv, "undecodable watch line ({err}); re-watching from the last good resourceVersion");
                // Nothing after `rv` was applied, so re-watching loses nothing.
                self.back_off(
                    &Failure::Malformed,
                    Cause::of(err),
                    &format_args!("malformed watch line: {err}"),
                    State::Resume { rv },
                )
            }
            failure => self.back_off(
                &failure,
                Cause::of(err),
                &format_args!("watch failed: {}", Chain(err)),
                State::Resume { rv },
            ),
        }
    }

    /// Ends a relist: the deletions it found, then `InitDone` at the
    /// snapshot's RV. The consumer is synced.
    pub(super) fn relisted(&mut self, deleted: Vec<(ObjectRef, String)>, rv: &str) {
        Stats::bump(&self.stats.relists);
        self.backoff.reset();
        self.synced = true;
        self.emit_deletions(deleted);
        self.emit(vec![Event::InitDone { rv: rv.to_string() }]);
    }

    /// Queues the deletions a relist found, `batch_max` to a group.
    pub(super) fn emit_deletions(&mut self, deleted: Vec<(ObjectRef, String)>) {
        let chunk = self.config.batch_max;
        let mut deleted = deleted.into_iter().peekable();
        while deleted.peek().is_some() {
            let group = deleted
                .by_ref()
                .take(chunk)
                .map(|(key, rv)| Event::InitDelete { key, rv })
                .collect();
            self.emit(group);
        }
    }
}

/// A batch being read from a watch.
#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    /// RV of the last event read (or of the bookmark).
    rv: Option<String>,
    /// When the batch must be flushed, set by its first event.
    deadline: Option<Instant>,
}
