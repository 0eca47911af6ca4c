//! Full relists: a streaming list (`sendInitialEvents`) or a paginated LIST,
//! compared object by object with what the consumer holds ([`Diff`]) and
//! handed on as they arrive, a page or `batch_max` objects at a time, so
//! that no more than that is ever held in memory (I11).

use kube::api::WatchParams;
use kube::core::WatchEvent;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::event::Event;
use super::failure::{Cause, Chain, Failure};
use super::machine::{State, Watcher, Watching};
use super::object::{key_of, rv_of};
use super::relist::{Diff, Held, Verdict};
use super::source::{EventStream, ListWatch};
use super::Stats;

/// Annotation of the bookmark that ends a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// A streaming list being read.
pub(super) struct InitialEvents {
    stream: EventStream,
    diff: Diff,
}

/// A paginated LIST in progress.
pub(super) struct Paging {
    diff: Diff,
    /// The snapshot every page must come from, once the first page is in.
    snapshot_rv: Option<String>,
    token: Option<String>,
}

impl<S: ListWatch, H: Held> Watcher<S, H> {
    /// Starts a full relist against `diff`: a streaming list when the server
    /// may support one, else a paginated LIST.
    pub(super) fn full_relist(&mut self, diff: Diff) -> State {
        tracing::info!(held = diff.held(), streaming = self.streaming, "relisting");
        self.emit(vec![Event::Init]);
        if self.streaming {
            State::OpenStream(diff)
        } else {
            Self::first_page(diff)
        }
    }

    fn first_page(diff: Diff) -> State {
        State::Paging(Paging {
            diff,
            snapshot_rv: None,
            token: None,
        })
    }

    /// Hands on a listed object if the consumer does not hold it as is.
    fn listed(&self, diff: &mut Diff, obj: Value, out: &mut Vec<Event>) {
        let Some(key) = key_of(&obj) else {
            tracing::warn!("listed object without metadata.name skipped");
            return;
        };
        if let Verdict::Write { .. } = diff.observe(&key, rv_of(&obj)) {
            out.push(Event::InitApply(self.transformed(obj)));
        }
    }

    /// Ends a full relist whose listing at `rv` is complete: what it did not
    /// show is gone.
    fn listed_all(&mut self, diff: Diff, rv: &str) {
        tracing::info!(
            listed = diff.listed(),
            unchanged = diff.unchanged(),
            streaming = self.streaming,
            %rv,
            "list complete"
        );
        self.relisted(diff.finish(rv), rv);
    }

    /// OpenStream → InitialEvents, or Paging when the server refuses
    /// streaming lists.
    pub(super) async fn open_stream(&mut self, diff: Diff, cancel: &CancellationToken) -> State {
        Stats::bump(&self.stats.watch_requests);
        let params = WatchParams {
            send_initial_events: true,
            ..self.watch_params(self.config.watch_timeout_secs)
        };
        let res = tokio::select! {
            _ = cancel.cancelled() => return State::Stopped,
            res = self.source.watch(&params, "") => res,
        };
        match res {
            Ok(stream) => State::InitialEvents(InitialEvents { stream, diff }),
            Err(err) => match Failure::of(&err) {
                Failure::Rejected => self.streaming_unsupported(&err, diff),
                failure => self.back_off(
                    &failure,
                    Cause::of(&err),
                    &format_args!("streaming list failed: {}", Chain(&err)),
                    self.relist_state(),
                ),
            },
        }
    }

    /// Falls back to paginated LIST for good. Objects already handed on
    /// count as held: the fallback reads what is held afresh.
    fn streaming_unsupported(&mut self, why: &dyn std::fmt::Display, diff: Diff) -> State {
        tracing::info!(
            "server does not support streaming lists ({why}); falling back to paginated LIST"
        );
        self.streaming = false;
        if diff.listed() == 0 {
            Self::first_page(diff)
        } else {
            State::Relist { metadata: false }
        }
    }

    /// InitialEvents → InitialEvents (`batch_max` differences handed on),
    /// Watching (after the initial-events-end bookmark), or Paging when the
    /// server turns out not to support streaming lists.
    pub(super) async fn initial_events(
        &mut self,
        mut i: InitialEvents,
        cancel: &CancellationToken,
    ) -> State {
        let mut out = Vec::new();
        loop {
            if out.len() >= self.config.batch_max {
                self.emit(out);
                return State::InitialEvents(i);
            }
            let item = tokio::select! {
                _ = cancel.cancelled() => {
                    // Handed on so the work is kept; the relist is redone.
                    self.emit(out);
                    return State::Stopped;
                }
                item = tokio::time::timeout(self.config.stall_timeout, futures::StreamExt::next(&mut i.stream)) => item,
            };
            let event = match item {
                Err(_) => {
                    self.emit(out);
                    return self.streaming_unsupported(
                        &"no initial-events-end bookmark before the stall timeout",
                        i.diff,
                    );
                }
                Ok(None) => {
                    self.emit(out);
                    // kube ends the stream when the connection is cut.
                    return self.back_off(
                        &Failure::Transient,
                        Cause::Connection,
                        &"streaming list ended before its initial events",
                        self.relist_state(),
                    );
                }
                Ok(Some(Err(err))) => {
                    self.emit(out);
                    return self.initial_events_failed(&err, i.diff);
                }
                Ok(Some(Ok(event))) => event,
            };
            match event {
                WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                    self.listed(&mut i.diff, obj, &mut out)
                }
                WatchEvent::Deleted(obj) => {
                    // Not among the initial events of a real server; taken
                    // at its word all the same.
                    if let Some(key) = key_of(&obj) {
                        let held = i.diff.forget(&key);
                        if let Some(rv) = held.or_else(|| rv_of(&obj).map(str::to_string)) {
                            out.push(Event::InitDelete { key, rv });
                        }
                    }
                }
                WatchEvent::Bookmark(b) => {
                    self.emit(out);
                    let ends = b.metadata.annotations.get(INITIAL_EVENTS_END);
                    if ends.map(String::as_str) != Some("true") {
                        return self.streaming_unsupported(
                            &"a bookmark arrived without the initial-events-end annotation",
                            i.diff,
                        );
                    }
                    let rv = b.metadata.resource_version;
                    self.listed_all(i.diff, &rv);
                    return State::Watching(Watching {
                        from: rv.clone(),
                        rv,
                        stream: i.stream,
                        probe: false,
                        heard: true,
                        opened: tokio::time::Instant::now(),
                        timeout: std::time::Duration::from_secs(
                            self.config.watch_timeout_secs.into(),
                        ),
                    });
                }
                WatchEvent::Error(status) => {
                    self.emit(out);
                    return self.initial_events_failed(&kube::Error::Api(status), i.diff);
                }
            }
        }
    }

    fn initial_events_failed(&mut self, err: &kube::Error, diff: Diff) -> State {
        match Failure::of(err) {
            Failure::Rejected => self.streaming_unsupported(err, diff),
            Failure::Gone => {
                Stats::bump(&self.stats.gone);
                self.back_off(
                    &Failure::Gone,
                    Cause::of(err),
                    &format_args!("streaming list expired: {err}"),
                    self.relist_state(),
                )
            }
            failure => self.back_off(
                &failure,
                Cause::of(err),
                &format_args!("streaming list failed: {}", Chain(err)),
                self.relist_state(),
            ),
        }
    }

    /// Paging → Paging (next token) or Resume (list complete).
    pub(super) async fn page(&mut self, mut p: Paging, cancel: &CancellationToken) -> State {
        Stats::bump(&self.stats.list_requests);
        let params = self.list_params(p.token.clone());
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
                    return self.back_off(
                        &failure,
                        Cause::of(&err),
                        &format_args!("list continue token expired: {err}"),
                        self.relist_state(),
                    );
                }
                let why = format!("list page failed: {}", Chain(&err));
                return self.back_off(&failure, Cause::of(&err), &why, State::Paging(p));
            }
        };
        let page_rv = list
            .metadata
            .resource_version
            .clone()
            .filter(|rv| !rv.is_empty());
        if let Some(over) =
            self.other_snapshot("list", p.snapshot_rv.as_deref(), page_rv.as_deref())
        {
            return over;
        }
        let mut out = Vec::new();
        for obj in list.items {
            self.listed(&mut p.diff, obj, &mut out);
        }
        self.emit(out);
        match (list.metadata.continue_.filter(|t| !t.is_empty()), page_rv) {
            (Some(next), rv) => State::Paging(Paging {
                diff: p.diff,
                snapshot_rv: rv,
                token: Some(next),
            }),
            (None, Some(rv)) => {
                self.listed_all(p.diff, &rv);
                State::Resume { rv }
            }
            (None, None) => self.back_off(
                &Failure::Malformed,
                Cause::NotApi,
                &"list response carries no resourceVersion",
                self.relist_state(),
            ),
        }
    }
}
