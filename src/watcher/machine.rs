//! The state machine proper. Each state is a variant of [`State`]; each
//! transition is one small async fn that performs one request (or reads one
//! batch) and returns the next state, queueing any [`Output`] it produced.

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
use super::failure::Failure;
use super::object::{key_of, rv_of, Transform};
use super::source::{EventStream, ListWatch};
use super::{Config, Output, Stats};
use crate::store::Delta;

/// Annotation of the bookmark that ends a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Where the watcher is.
enum State {
    /// Watch from a known RV (the stored one, or the last one seen).
    Resume { rv: String },
    /// No usable RV: fetch a full snapshot.
    Relist,
    /// A paginated LIST in progress; every page from one snapshot.
    Paging {
        snapshot_rv: Option<String>,
        token: Option<String>,
        items: Vec<Value>,
    },
    /// A streaming list in progress: collecting initial ADDED events.
    InitialEvents {
        stream: EventStream,
        items: Vec<Value>,
    },
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
            State::Relist => "relist",
            State::Paging { .. } => "paging",
            State::InitialEvents { .. } => "initial-events",
            State::Watching(_) => "watching",
            State::Backoff { .. } => "backoff",
            State::Stopped => "stopped",
        }
    }
}

/// An open watch stream.
struct Watching {
    rv: String,
    stream: EventStream,
}

/// The list/watch state machine over a [`ListWatch`] source.
pub struct Watcher<S> {
    source: S,
    config: Config,
    transform: Transform,
    stats: Arc<Stats>,
    state: State,
    queue: VecDeque<Output>,
    backoff: Backoff,
    /// Whether the server may support streaming lists (cleared on refusal).
    streaming: bool,
    /// Whether [`Output::CaughtUp`] (or a relist) has been emitted.
    synced: bool,
}

impl<S: ListWatch> Watcher<S> {
    /// A watcher that resumes from `stored_rv`, or relists when there is none.
    pub fn new(
        source: S,
        config: Config,
        stored_rv: Option<String>,
        transform: Transform,
        stats: Arc<Stats>,
    ) -> Self {
        let state = match stored_rv {
            Some(rv) if !rv.is_empty() => State::Resume { rv },
            _ => State::Relist,
        };
        Watcher {
            backoff: Backoff::new(config.backoff_initial, config.backoff_max),
            streaming: config.streaming_list,
            source,
            config,
            transform,
            stats,
            state,
            queue: VecDeque::new(),
            synced: false,
        }
    }

    /// The next thing to apply; `None` once `cancel` fired (after handing
    /// out any batch already read, so a clean shutdown loses nothing read).
    pub async fn next(&mut self, cancel: &CancellationToken) -> Option<Output> {
        loop {
            if let Some(out) = self.queue.pop_front() {
                return Some(out);
            }
            let state = std::mem::replace(&mut self.state, State::Stopped);
            if matches!(state, State::Stopped) {
                return None;
            }
            let span = tracing::debug_span!("watcher", state = state.name());
            let next = async {
                match state {
                    State::Resume { rv } => self.resume(rv, cancel).await,
                    State::Relist => self.relist(cancel).await,
                    State::Paging {
                        snapshot_rv,
                        token,
                        items,
                    } => self.page(snapshot_rv, token, items, cancel).await,
                    State::InitialEvents { stream, items } => {
                        self.initial_events(stream, items, cancel).await
                    }
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

    fn watch_params(&self) -> WatchParams {
        WatchParams {
            label_selector: self.config.label_selector.clone(),
            field_selector: self.config.field_selector.clone(),
            timeout: Some(self.config.watch_timeout_secs),
            bookmarks: true,
            send_initial_events: false,
        }
    }

    /// Schedules a retry of `then` after the backoff delay, saying why.
    fn back_off(&mut self, failure: &Failure, why: &dyn std::fmt::Display, then: State) -> State {
        Stats::bump(&self.stats.backoffs);
        let delay = self.backoff.next_delay(failure.retry_after());
        tracing::warn!(
            ?failure,
            retry = then.name(),
            delay_ms = delay.as_millis() as u64,
            "{why}; backing off"
        );
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

    /// Resume → Watching (or Relist on 410, Backoff on other failures).
    async fn resume(&mut self, rv: String, cancel: &CancellationToken) -> State {
        Stats::bump(&self.stats.watch_requests);
        let params = self.watch_params();
        let res = tokio::select! {
            _ = cancel.cancelled() => return State::Stopped,
            res = self.source.watch(&params, &rv) => res,
        };
        match res {
            Ok(stream) => {
                tracing::debug!(%rv, "watching");
                State::Watching(Watching { rv, stream })
            }
            Err(err) => match Failure::of(&err) {
                Failure::Gone => {
                    Stats::bump(&self.stats.gone);
                    tracing::info!(%rv, "stored resourceVersion is too old (410); relisting");
                    State::Relist
                }
                failure => {
                    let why = format!("watch from {rv} failed: {err}");
                    self.back_off(&failure, &why, State::Resume { rv })
                }
            },
        }
    }

    /// Relist → InitialEvents (streaming list) or Paging.
    async fn relist(&mut self, cancel: &CancellationToken) -> State {
        let paging = State::Paging {
            snapshot_rv: None,
            token: None,
            items: Vec::new(),
        };
        if !self.streaming {
            return paging;
        }
        Stats::bump(&self.stats.watch_requests);
        let params = WatchParams {
            send_initial_events: true,
            ..self.watch_params()
        };
        let res = tokio::select! {
            _ = cancel.cancelled() => return State::Stopped,
            res = self.source.watch(&params, "") => res,
        };
        match res {
            Ok(stream) => State::InitialEvents {
                stream,
                items: Vec::new(),
            },
            Err(err) => match Failure::of(&err) {
                Failure::Rejected => self.streaming_unsupported(&err),
                failure => self.back_off(
                    &failure,
                    &format_args!("streaming list failed: {err}"),
                    State::Relist,
                ),
            },
        }
    }

    fn streaming_unsupported(&mut self, why: &dyn std::fmt::Display) -> State {
        tracing::info!(
            "server does not support streaming lists ({why}); falling back to paginated LIST"
        );
        self.streaming = false;
        State::Paging {
            snapshot_rv: None,
            token: None,
            items: Vec::new(),
        }
    }

    /// Paging → Paging (next token) or Resume (list complete, snapshot emitted).
    async fn page(
        &mut self,
        snapshot_rv: Option<String>,
        token: Option<String>,
        mut items: Vec<Value>,
        cancel: &CancellationToken,
    ) -> State {
        Stats::bump(&self.stats.list_requests);
        let params = ListParams {
            label_selector: self.config.label_selector.clone(),
            field_selector: self.config.field_selector.clone(),
            limit: Some(self.config.page_size),
            continue_token: token.clone(),
            ..ListParams::default()
        };
        let res = tokio::select! {
            _ = cancel.cancelled() => return State::Stopped,
            res = self.source.list(&params) => res,
        };
        let list = match res {
            Ok(list) => list,
            Err(err) => {
                let failure = Failure::of(&err);
                if failure == Failure::Gone {
                    // The snapshot behind the token is gone. The Status may
                    // offer an inconsistent continue token; using it would
                    // mix snapshots, so start over.
                    Stats::bump(&self.stats.gone);
                    let fresh = State::Paging {
                        snapshot_rv: None,
                        token: None,
                        items: Vec::new(),
                    };
                    return self.back_off(
                        &failure,
                        &format_args!("list continue token expired: {err}"),
                        fresh,
                    );
                }
                let again = State::Paging {
                    snapshot_rv,
                    token,
                    items,
                };
                return self.back_off(&failure, &format_args!("list page failed: {err}"), again);
            }
        };
        let page_rv = list
            .metadata
            .resource_version
            .clone()
            .filter(|rv| !rv.is_empty());
        if snapshot_rv.is_some() && page_rv != snapshot_rv {
            let fresh = State::Paging {
                snapshot_rv: None,
                token: None,
                items: Vec::new(),
            };
            let why = format!("list page at resourceVersion {page_rv:?} does not match the snapshot {snapshot_rv:?}");
            return self.back_off(&Failure::Transient, &why, fresh);
        }
        items.extend(list.items.into_iter().map(|obj| self.transformed(obj)));
        match list.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(next) => State::Paging {
                snapshot_rv: page_rv,
                token: Some(next),
                items,
            },
            None => match page_rv {
                Some(rv) => {
                    tracing::info!(objects = items.len(), %rv, "list complete");
                    self.relisted(items, rv)
                }
                None => {
                    let fresh = State::Paging {
                        snapshot_rv: None,
                        token: None,
                        items: Vec::new(),
                    };
                    self.back_off(
                        &Failure::Malformed,
                        &"list response carries no resourceVersion",
                        fresh,
                    )
                }
            },
        }
    }

    fn transformed(&self, mut obj: Value) -> Value {
        (self.transform)(&mut obj);
        obj
    }

    /// Emits a complete snapshot and continues by watching from its RV.
    fn relisted(&mut self, objects: Vec<Value>, rv: String) -> State {
        Stats::bump(&self.stats.relists);
        self.backoff.reset();
        self.synced = true;
        self.queue.push_back(Output::Relisted {
            objects,
            rv: rv.clone(),
        });
        State::Resume { rv }
    }

    /// InitialEvents → Watching (after the initial-events-end bookmark), or
    /// Paging when the server turns out not to support streaming lists.
    async fn initial_events(
        &mut self,
        mut stream: EventStream,
        mut items: Vec<Value>,
        cancel: &CancellationToken,
    ) -> State {
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return State::Stopped,
                item = tokio::time::timeout(self.config.stall_timeout, futures::StreamExt::next(&mut stream)) => item,
            };
            let event = match item {
                Err(_) => {
                    return self.streaming_unsupported(
                        &"no initial-events-end bookmark before the stall timeout",
                    )
                }
                Ok(None) => {
                    return self.back_off(
                        &Failure::Transient,
                        &"streaming list ended before its initial events",
                        State::Relist,
                    )
                }
                Ok(Some(Err(err))) => return self.initial_events_failed(&err),
                Ok(Some(Ok(event))) => event,
            };
            match event {
                WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                    items.push(self.transformed(obj))
                }
                WatchEvent::Deleted(obj) => {
                    let key = key_of(&obj);
                    items.retain(|o| key_of(o) != key);
                }
                WatchEvent::Bookmark(b) => {
                    if b.metadata
                        .annotations
                        .get(INITIAL_EVENTS_END)
                        .map(String::as_str)
                        != Some("true")
                    {
                        return self.streaming_unsupported(
                            &"a bookmark arrived without the initial-events-end annotation",
                        );
                    }
                    let rv = b.metadata.resource_version;
                    tracing::info!(objects = items.len(), %rv, "streaming list complete");
                    let _ = self.relisted(items, rv.clone());
                    return State::Watching(Watching { rv, stream });
                }
                WatchEvent::Error(status) => {
                    return self.initial_events_failed(&kube::Error::Api(status));
                }
            }
        }
    }

    fn initial_events_failed(&mut self, err: &kube::Error) -> State {
        match Failure::of(err) {
            Failure::Rejected => self.streaming_unsupported(err),
            Failure::Gone => {
                Stats::bump(&self.stats.gone);
                self.back_off(
                    &Failure::Gone,
                    &format_args!("streaming list expired: {err}"),
                    State::Relist,
                )
            }
            failure => self.back_off(
                &failure,
                &format_args!("streaming list failed: {err}"),
                State::Relist,
            ),
        }
    }

    /// Watching → Watching (one batch emitted), or Resume/Relist/Backoff
    /// when the stream ends or fails, after emitting what was read.
    async fn watch_batch(&mut self, mut w: Watching, cancel: &CancellationToken) -> State {
        let mut batch = Batching {
            deltas: Vec::new(),
            rv: w.rv.clone(),
            deadline: None,
        };
        loop {
            let wait = match batch.deadline {
                Some(deadline) => deadline,
                None if self.synced => Instant::now() + self.config.stall_timeout,
                None => Instant::now() + self.config.catch_up_quiet.min(self.config.stall_timeout),
            };
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
                Err(_) if !self.synced => {
                    self.caught_up();
                    return State::Watching(w);
                }
                Err(_) => {
                    Stats::bump(&self.stats.watch_restarts);
                    tracing::warn!(rv = %w.rv, stall = ?self.config.stall_timeout, "watch stalled; re-watching");
                    return State::Resume { rv: w.rv };
                }
                Ok(None) => {
                    self.flush(&mut w, batch);
                    Stats::bump(&self.stats.watch_restarts);
                    tracing::debug!(rv = %w.rv, "watch ended; re-watching");
                    return State::Resume { rv: w.rv };
                }
                Ok(Some(Err(err))) => {
                    self.flush(&mut w, batch);
                    return self.watch_failed(w.rv, &err);
                }
                Ok(Some(Ok(event))) => event,
            };
            self.backoff.reset();
            match event {
                WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                    batch.push(Delta::Upsert(self.transformed(obj)), &self.config)
                }
                WatchEvent::Deleted(obj) => {
                    batch.push(Delta::Delete(self.transformed(obj)), &self.config)
                }
                WatchEvent::Bookmark(b) => {
                    batch.rv = b.metadata.resource_version;
                    self.flush(&mut w, batch);
                    if !self.synced {
                        self.caught_up();
                    }
                    return State::Watching(w);
                }
                WatchEvent::Error(status) => {
                    self.flush(&mut w, batch);
                    return self.watch_failed(w.rv, &kube::Error::Api(status));
                }
            }
            if batch.deltas.len() >= self.config.batch_max {
                self.flush(&mut w, batch);
                return State::Watching(w);
            }
        }
    }

    fn caught_up(&mut self) {
        self.synced = true;
        self.queue.push_back(Output::CaughtUp);
    }

    /// Queues the batch read so far (if it says anything new).
    fn flush(&mut self, w: &mut Watching, batch: Batching) {
        if batch.deltas.is_empty() && batch.rv == w.rv {
            return;
        }
        w.rv = batch.rv.clone();
        self.queue.push_back(Output::Batch {
            deltas: batch.deltas,
            rv: batch.rv,
        });
    }

    fn watch_failed(&mut self, rv: String, err: &kube::Error) -> State {
        Stats::bump(&self.stats.watch_restarts);
        match Failure::of(err) {
            Failure::Gone => {
                Stats::bump(&self.stats.gone);
                tracing::info!(%rv, "watch answered 410 ({err}); relisting");
                State::Relist
            }
            Failure::Malformed => {
                Stats::bump(&self.stats.malformed);
                tracing::warn!(%rv, "undecodable watch line ({err}); re-watching from the last good resourceVersion");
                // Nothing after `rv` was applied, so re-watching loses nothing.
                self.back_off(
                    &Failure::Malformed,
                    &format_args!("malformed watch line: {err}"),
                    State::Resume { rv },
                )
            }
            failure => self.back_off(
                &failure,
                &format_args!("watch failed: {err}"),
                State::Resume { rv },
            ),
        }
    }
}

/// A batch being read from a watch.
struct Batching {
    deltas: Vec<Delta>,
    /// RV of the last event read (or the watch's RV).
    rv: String,
    /// When the batch must be flushed, set by its first event.
    deadline: Option<Instant>,
}

impl Batching {
    fn push(&mut self, delta: Delta, config: &Config) {
        let obj = match &delta {
            Delta::Upsert(o) | Delta::Delete(o) => o,
        };
        // An event without an RV cannot move the stored RV; keep the last one.
        if let Some(rv) = rv_of(obj) {
            self.rv = rv.to_string();
        }
        self.deltas.push(delta);
        self.deadline
            .get_or_insert_with(|| Instant::now() + config.batch_window);
    }
}
