//! A scripted API server for the tests inside the crate: each list, watch
//! or get answers with the next scripted reply, and every request is
//! recorded with the (paused) time it was made. The watcher's state-machine
//! tests and the informer's tests drive their code over the same fake.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ListParams, WatchParams};
use kube::core::{ObjectList, Status, WatchEvent};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::source::{EventStream, ListWatch, MetadataList};
use super::{Config, ObjectRef};

/// What the fake server answers to the next list or watch request.
pub(crate) enum Reply {
    List(Result<ObjectList<Value>, kube::Error>),
    Meta(Result<MetadataList, kube::Error>),
    /// Events, then either the end of the stream or silence.
    Watch(
        Result<Vec<Result<WatchEvent<Value>, kube::Error>>, kube::Error>,
        bool,
    ),
    /// Events, then the end of the stream once the request's
    /// `timeoutSeconds` have passed: the server's deadline.
    WatchToDeadline(Vec<Result<WatchEvent<Value>, kube::Error>>),
    /// Events, each after its delay from the one before, then silence: a
    /// watch that a resource's writes reach one by one.
    WatchPaced(Vec<(Duration, Result<WatchEvent<Value>, kube::Error>)>),
}

/// A request the watcher made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    List {
        token: Option<String>,
    },
    Meta {
        token: Option<String>,
    },
    Get {
        name: String,
    },
    Watch {
        rv: String,
        initial: bool,
        timeout: u32,
    },
}

pub(crate) fn list_call(token: Option<&str>) -> Call {
    Call::List {
        token: token.map(str::to_string),
    }
}

pub(crate) fn meta_call(token: Option<&str>) -> Call {
    Call::Meta {
        token: token.map(str::to_string),
    }
}

pub(crate) fn get_call(name: &str) -> Call {
    Call::Get { name: name.into() }
}

/// A plain watch with the default long timeout.
pub(crate) fn watch_call(rv: &str, initial: bool) -> Call {
    Call::Watch {
        rv: rv.into(),
        initial,
        timeout: Config::default().watch_timeout_secs,
    }
}

/// A short watch opened to prove a resume caught up.
pub(crate) fn probe_call(rv: &str) -> Call {
    Call::Watch {
        rv: rv.into(),
        initial: false,
        timeout: Config::default().resume_probe_timeout_secs,
    }
}

/// A GET answer: the object, 404 (`Ok(None)`), or an error.
pub(crate) type GetReply = Result<Option<Value>, kube::Error>;

#[derive(Clone, Default)]
pub(crate) struct Fake {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    /// Answers to GETs by name, each used once; a name without one is 404.
    gets: Arc<Mutex<HashMap<String, VecDeque<GetReply>>>>,
    calls: Arc<Mutex<Vec<(Instant, Call)>>>,
}

impl Fake {
    pub(crate) fn new(replies: Vec<Reply>) -> Self {
        Fake {
            replies: Arc::new(Mutex::new(replies.into())),
            ..Fake::default()
        }
    }
    pub(crate) fn answer_get(&self, name: &str, reply: GetReply) -> &Self {
        self.gets
            .lock()
            .unwrap()
            .entry(name.into())
            .or_default()
            .push_back(reply);
        self
    }
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls_at().into_iter().map(|(_, call)| call).collect()
    }
    /// The requests made, each with the time it was made at.
    pub(crate) fn calls_at(&self) -> Vec<(Instant, Call)> {
        self.calls.lock().unwrap().clone()
    }
    fn next_reply(&self) -> Option<Reply> {
        self.replies.lock().unwrap().pop_front()
    }
    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push((Instant::now(), call));
    }
}

impl ListWatch for Fake {
    async fn list(&self, params: &ListParams) -> Result<ObjectList<Value>, kube::Error> {
        self.record(Call::List {
            token: params.continue_token.clone(),
        });
        match self.next_reply() {
            Some(Reply::List(r)) => r,
            _ => futures::future::pending().await,
        }
    }
    async fn list_metadata(&self, params: &ListParams) -> Result<MetadataList, kube::Error> {
        self.record(Call::Meta {
            token: params.continue_token.clone(),
        });
        match self.next_reply() {
            Some(Reply::Meta(r)) => r,
            _ => futures::future::pending().await,
        }
    }
    async fn get(&self, key: &ObjectRef) -> Result<Option<Value>, kube::Error> {
        self.record(get_call(&key.name));
        let reply = self
            .gets
            .lock()
            .unwrap()
            .get_mut(&key.name)
            .and_then(VecDeque::pop_front);
        reply.unwrap_or(Ok(None))
    }
    async fn watch(&self, params: &WatchParams, rv: &str) -> Result<EventStream, kube::Error> {
        self.record(Call::Watch {
            rv: rv.to_string(),
            initial: params.send_initial_events,
            timeout: params.timeout.unwrap_or(0),
        });
        match self.next_reply() {
            Some(Reply::Watch(r, ends)) => {
                let events = futures::stream::iter(r?);
                Ok(if ends {
                    events.boxed()
                } else {
                    events.chain(futures::stream::pending()).boxed()
                })
            }
            Some(Reply::WatchToDeadline(events)) => {
                let deadline = Duration::from_secs(params.timeout.unwrap_or(0).into());
                let end = futures::stream::once(tokio::time::sleep(deadline))
                    .filter_map(|()| futures::future::ready(None));
                Ok(futures::stream::iter(events).chain(end).boxed())
            }
            Some(Reply::WatchPaced(events)) => {
                // An event with no delay is ready with the one before it.
                let paced = futures::stream::iter(events).then(|(delay, event)| async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    event
                });
                Ok(paced.chain(futures::stream::pending()).boxed())
            }
            _ => futures::future::pending().await,
        }
    }
}

pub(crate) fn key(name: &str) -> ObjectRef {
    ObjectRef::new(Some("ns"), name).unwrap()
}

pub(crate) fn pod(name: &str, rv: u64) -> Value {
    json!({"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv.to_string(), "managedFields": [{}]}})
}

pub(crate) fn labelled(name: &str, rv: u64, app: &str) -> Value {
    json!({"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv.to_string(), "labels": {"app": app}}})
}

pub(crate) fn page(items: Vec<Value>, rv: &str, token: Option<&str>) -> Reply {
    let list = json!({"apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": rv, "continue": token.unwrap_or("")}, "items": items});
    Reply::List(Ok(serde_json::from_value(list).unwrap()))
}

/// A metadata list page holding `(name, rv)` items.
pub(crate) fn meta_page(items: &[(&str, u64)], rv: &str, token: Option<&str>) -> Reply {
    meta_page_of_kind("PartialObjectMetadataList", items, rv, token)
}

pub(crate) fn meta_page_of_kind(kind: &str, items: &[(&str, u64)], rv: &str, token: Option<&str>) -> Reply {
    let items: Vec<Value> = items
        .iter()
        .map(|(n, v)| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"namespace": "ns", "name": n, "resourceVersion": v.to_string(), "uid": format!("uid-{n}")}}))
        .collect();
    let list = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv, "continue": token.unwrap_or("")}, "items": items});
    Reply::Meta(Ok(serde_json::from_value(list).unwrap()))
}

pub(crate) fn bookmark(rv: u64, initial_end: bool) -> Result<WatchEvent<Value>, kube::Error> {
    let annotations = if initial_end {
        json!({"k8s.io/initial-events-end": "true"})
    } else {
        json!({})
    };
    let ev = json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
        "metadata": {"resourceVersion": rv.to_string(), "annotations": annotations}}});
    Ok(serde_json::from_value(ev).unwrap())
}

pub(crate) fn added(name: &str, rv: u64) -> Result<WatchEvent<Value>, kube::Error> {
    Ok(WatchEvent::Added(pod(name, rv)))
}

pub(crate) fn modified(name: &str, rv: u64) -> Result<WatchEvent<Value>, kube::Error> {
    Ok(WatchEvent::Modified(pod(name, rv)))
}

pub(crate) fn deleted(name: &str, rv: u64) -> Result<WatchEvent<Value>, kube::Error> {
    Ok(WatchEvent::Deleted(pod(name, rv)))
}

pub(crate) fn status(code: u16, reason: &str) -> Box<Status> {
    Status::failure("test", reason).with_code(code).boxed()
}

pub(crate) fn api_error(code: u16, reason: &str) -> kube::Error {
    kube::Error::Api(status(code, reason))
}

pub(crate) fn gone() -> kube::Error {
    api_error(410, "Expired")
}