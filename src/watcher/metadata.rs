//! The metadata-first relist: after a 410, when the consumer holds objects,
//! list metadata only (`as=PartialObjectMetadataList`, what
//! `kube::Api::list_metadata` sends), compare (key, resourceVersion) with
//! what is held, then GET just what is new or changed, a bounded number at a
//! time. The watch goes on from the metadata list's snapshot, behind a
//! [`Fence`](super::fence::Fence) for what the GETs found deleted past it.
//!
//! A server that refuses metadata lists (406) or ignores the request (full
//! objects, its own list kind) gets a full relist instead, as does a relist
//! in which more than `fetch_max_share` of the objects changed.

use std::collections::VecDeque;

use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::event::Event;
use super::failure::{Cause, Chain, Failure};
use super::fence::Fence;
use super::machine::{State, Watcher};
use super::object::{rv_of, ObjectRef};
use super::relist::{is_older, Diff, Held, Verdict};
use super::source::{ListWatch, MetadataList, METADATA_LIST_KIND};
use super::Stats;

/// A metadata list in progress.
pub(super) struct MetaPaging {
    diff: Diff,
    /// The snapshot every page must come from, once the first page is in.
    snapshot_rv: Option<String>,
    token: Option<String>,
    /// What to fetch: listed objects new or changed.
    todo: Vec<Todo>,
}

impl MetaPaging {
    pub(super) fn new(diff: Diff) -> MetaPaging {
        MetaPaging {
            diff,
            snapshot_rv: None,
            token: None,
            todo: Vec::new(),
        }
    }
}

/// An object to fetch.
#[derive(Debug)]
struct Todo {
    key: ObjectRef,
    /// The version the consumer holds, if any.
    held: Option<String>,
}

/// The fetch phase.
pub(super) struct Fetching {
    todo: VecDeque<Todo>,
    /// The metadata list's snapshot: the watch starts there.
    snapshot_rv: String,
    fence: Fence,
}

/// What a GET found, one object.
enum Found {
    Object(Value),
    Absent,
    Failed(kube::Error),
}

impl<S: ListWatch, H: Held> Watcher<S, H> {
    /// MetaPaging → MetaPaging (next token), Fetching (list complete), or a
    /// full relist (metadata lists unsupported, or too much changed).
    pub(super) async fn meta_page(
        &mut self,
        mut m: MetaPaging,
        cancel: &CancellationToken,
    ) -> State {
        Stats::bump(&self.stats.list_requests);
        Stats::bump(&self.stats.metadata_lists);
        let params = self.list_params(m.token.clone());
        let res = tokio::select! {
            _ = cancel.cancelled() => return State::Stopped,
            res = self.source.list_metadata(&params) => res,
        };
        let page = match res {
            Ok(page) if page.kind == METADATA_LIST_KIND => page,
            Ok(page) => {
                let why = format!("the server answered a metadata list with a {:?}", page.kind);
                return self.metadata_unsupported(&why);
            }
            Err(err) => return self.meta_page_failed(m, &err),
        };
        let MetadataList {
            metadata, items, ..
        } = page;
        let page_rv = metadata.resource_version.filter(|rv| !rv.is_empty());
        if let Some(over) = self.other_snapshot(
            "metadata list",
            m.snapshot_rv.as_deref(),
            page_rv.as_deref(),
        ) {
            return over;
        }
        for item in items {
            let meta = item.metadata;
            let Some(key) = ObjectRef::new(meta.namespace.as_deref(), &meta.name) else {
                tracing::warn!("listed metadata without a name skipped");
                continue;
            };
            if let Verdict::Write { held } = m.diff.observe(&key, meta.resource_version.as_deref())
            {
                m.todo.push(Todo { key, held });
            }
        }
        match (metadata.continue_.filter(|t| !t.is_empty()), page_rv) {
            (Some(next), rv) => State::MetaPaging(MetaPaging {
                snapshot_rv: rv,
                token: Some(next),
                ..m
            }),
            (None, Some(rv)) => self.metadata_listed(m, rv),
            (None, None) => self.back_off(
                &Failure::Malformed,
                Cause::NotApi,
                &"metadata list carries no resourceVersion",
                self.relist_state(),
            ),
        }
    }

    fn meta_page_failed(&mut self, m: MetaPaging, err: &kube::Error) -> State {
        match Failure::of(err) {
            Failure::Rejected | Failure::Malformed => self.metadata_unsupported(err),
            Failure::Gone => {
                Stats::bump(&self.stats.gone);
                self.back_off(
                    &Failure::Gone,
                    Cause::of(err),
                    &format_args!("metadata list continue token expired: {err}"),
                    self.relist_state(),
                )
            }
            failure => {
                let why = format!("metadata list page failed: {}", Chain(err));
                self.back_off(&failure, Cause::of(err), &why, State::MetaPaging(m))
            }
        }
    }

    /// Falls back to full relists for good.
    fn metadata_unsupported(&mut self, why: &dyn std::fmt::Display) -> State {
        tracing::info!("server does not serve metadata lists ({why}); relisting in full");
        self.metadata = false;
        State::Relist { metadata: false }
    }

    /// The metadata list is complete: fetch what changed, or relist in full
    /// when that is most of it.
    fn metadata_listed(&mut self, m: MetaPaging, rv: String) -> State {
        let MetaPaging { diff, todo, .. } = m;
        let listed = diff.listed();
        tracing::info!(
            listed,
            held = diff.held(),
            unchanged = diff.unchanged(),
            fetch = todo.len(),
            %rv,
            "metadata list complete"
        );
        if todo.len() as f64 > self.config.fetch_max_share * listed as f64 {
            tracing::info!(
                fetch = todo.len(),
                listed,
                max_share = self.config.fetch_max_share,
                "too much changed to fetch one by one; relisting in full"
            );
            return State::Relist { metadata: false };
        }
        self.emit(vec![Event::Init]);
        self.emit_deletions(diff.finish(&rv));
        State::Fetching(Fetching {
            todo: todo.into(),
            snapshot_rv: rv,
            fence: Fence::default(),
        })
    }

    /// Fetching → Fetching (`batch_max` GETs done and handed on), Resume
    /// from the snapshot once all are done, or Relist on a 410.
    pub(super) async fn fetch(&mut self, mut f: Fetching, cancel: &CancellationToken) -> State {
        if f.todo.is_empty() {
            let Fetching {
                snapshot_rv, fence, ..
            } = f;
            tracing::info!(rv = %snapshot_rv, fenced = !fence.is_empty(), "fetch complete");
            self.relisted(Vec::new(), &snapshot_rv);
            self.fence = fence;
            return State::Resume { rv: snapshot_rv };
        }
        let n = f.todo.len().min(self.config.batch_max);
        let chunk: Vec<Todo> = f.todo.drain(..n).collect();
        let found = {
            let source = &self.source;
            let keys: Vec<ObjectRef> = chunk.iter().map(|t| t.key.clone()).collect();
            let gets = futures::stream::iter(keys)
                .map(|key| async move { source.get(&key).await })
                .buffered(self.config.fetch_concurrency)
                .map(|res| match res {
                    Ok(Some(obj)) => Found::Object(obj),
                    Ok(None) => Found::Absent,
                    Err(err) => Found::Failed(err),
                })
                .collect::<Vec<_>>();
            tokio::select! {
                _ = cancel.cancelled() => return State::Stopped,
                found = gets => found,
            }
        };
        let mut out = Vec::new();
        let mut failed = Vec::new();
        for (todo, found) in chunk.into_iter().zip(found) {
            Stats::bump(&self.stats.get_requests);
            match found {
                Found::Object(obj) if self.selection.matches(&obj) => {
                    self.fetched(todo, obj, &mut out)
                }
                // Left the selection since the list: gone, as far as the
                // watch is concerned, which will say so with a DELETED.
                Found::Object(_) | Found::Absent => {
                    f.fence.deleted(todo.key.clone());
                    if let Some(rv) = todo.held {
                        out.push(Event::InitDelete { key: todo.key, rv });
                    }
                }
                Found::Failed(err) => failed.push((todo, err)),
            }
        }
        self.emit(out);
        self.fetch_failures(f, failed)
    }

    /// Hands on a fetched object, unless the consumer holds a newer one.
    fn fetched(&self, todo: Todo, obj: Value, out: &mut Vec<Event>) {
        if let (Some(held), Some(rv)) = (&todo.held, rv_of(&obj)) {
            if is_older(rv, held) {
                tracing::debug!(key = %todo.key, %rv, %held, "fetched an older version than held; kept the held one");
                return;
            }
        }
        out.push(Event::InitApply(self.transformed(obj)));
    }

    /// After a chunk: retry what failed (a 410 starts the relist over).
    fn fetch_failures(&mut self, mut f: Fetching, failed: Vec<(Todo, kube::Error)>) -> State {
        let Some((_, err)) = failed.first() else {
            self.backoff.reset();
            return State::Fetching(f);
        };
        let failure = Failure::of(err);
        let cause = Cause::of(err);
        let why = format!("{} of the GETs failed, first: {err}", failed.len());
        if matches!(err, kube::Error::Api(status) if status.code == 403) {
            // Allowed to list and watch but not to get: never going to work.
            return self.metadata_unsupported(&why);
        }
        if failure == Failure::Gone {
            Stats::bump(&self.stats.gone);
            return self.back_off(&failure, cause, &why, self.relist_state());
        }
        for (todo, _) in failed.into_iter().rev() {
            f.todo.push_front(todo);
        }
        self.back_off(&failure, cause, &why, State::Fetching(f))
    }
}
