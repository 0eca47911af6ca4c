//! State-machine tests against a scripted source. Delays are configured in
//! milliseconds so the suite stays fast; no assertion depends on timing
//! except that a Retry-After floor was waited out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ListParams, WatchParams};
use kube::core::{ObjectList, Status, WatchEvent};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::source::{EventStream, ListWatch};
use super::*;
use crate::store::Delta;

/// What the fake server answers to the next request.
enum Reply {
    List(Result<ObjectList<Value>, kube::Error>),
    /// Events, then either the end of the stream or silence.
    Watch(
        Result<Vec<Result<WatchEvent<Value>, kube::Error>>, kube::Error>,
        bool,
    ),
}

/// A request the watcher made.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    List {
        token: Option<String>,
        limit: Option<u32>,
    },
    Watch {
        rv: String,
        initial: bool,
    },
}

fn watch_call(rv: &str, initial: bool) -> Call {
    Call::Watch {
        rv: rv.into(),
        initial,
    }
}

#[derive(Clone, Default)]
struct Fake {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Fake {
    fn new(replies: Vec<Reply>) -> Self {
        Fake {
            replies: Arc::new(Mutex::new(replies.into())),
            calls: Arc::default(),
        }
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn next_reply(&self) -> Option<Reply> {
        self.replies.lock().unwrap().pop_front()
    }
}

impl ListWatch for Fake {
    async fn list(&self, params: &ListParams) -> Result<ObjectList<Value>, kube::Error> {
        self.calls.lock().unwrap().push(Call::List {
            token: params.continue_token.clone(),
            limit: params.limit,
        });
        match self.next_reply() {
            Some(Reply::List(r)) => r,
            _ => futures::future::pending().await,
        }
    }
    async fn watch(&self, params: &WatchParams, rv: &str) -> Result<EventStream, kube::Error> {
        self.calls.lock().unwrap().push(Call::Watch {
            rv: rv.to_string(),
            initial: params.send_initial_events,
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
            _ => futures::future::pending().await,
        }
    }
}

fn pod(name: &str, rv: u64) -> Value {
    json!({"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv.to_string(), "managedFields": [{}]}})
}

fn page(items: Vec<Value>, rv: &str, token: Option<&str>) -> Reply {
    let list = json!({"apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": rv, "continue": token.unwrap_or("")}, "items": items});
    Reply::List(Ok(serde_json::from_value(list).unwrap()))
}

fn bookmark(rv: u64, initial_end: bool) -> Result<WatchEvent<Value>, kube::Error> {
    let annotations = if initial_end {
        json!({"k8s.io/initial-events-end": "true"})
    } else {
        json!({})
    };
    let ev = json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
        "metadata": {"resourceVersion": rv.to_string(), "annotations": annotations}}});
    Ok(serde_json::from_value(ev).unwrap())
}

fn status(code: u16, reason: &str) -> Box<Status> {
    Status::failure("test", reason).with_code(code).boxed()
}

fn gone() -> kube::Error {
    kube::Error::Api(status(410, "Expired"))
}

fn config() -> Config {
    Config {
        streaming_list: false,
        page_size: 2,
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(4),
        catch_up_quiet: Duration::from_millis(50),
        ..Config::default()
    }
}

fn watcher(fake: &Fake, config: Config, rv: Option<&str>) -> (Watcher<Fake>, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let w = Watcher::new(
        fake.clone(),
        config,
        rv.map(str::to_string),
        strip_managed_fields(),
        stats.clone(),
    );
    (w, stats)
}

/// Collects outputs until `n` were produced.
async fn take(w: &mut Watcher<Fake>, n: usize) -> Vec<Output> {
    let cancel = CancellationToken::new();
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(20), w.next(&cancel)).await;
        out.push(
            next.expect("no output within 20s")
                .expect("watcher stopped"),
        );
    }
    out
}

fn names(deltas: &[Delta]) -> Vec<String> {
    deltas
        .iter()
        .map(|d| match d {
            Delta::Upsert(o) => format!("+{}", o["metadata"]["name"].as_str().unwrap()),
            Delta::Delete(o) => format!("-{}", o["metadata"]["name"].as_str().unwrap()),
        })
        .collect()
}

fn object_names(objects: &[Value]) -> Vec<&str> {
    objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn resume_with_stored_rv_watches_first_and_never_lists() {
    let fake = Fake::new(vec![Reply::Watch(
        Ok(vec![
            Ok(WatchEvent::Added(pod("a", 11))),
            Ok(WatchEvent::Deleted(pod("b", 12))),
            bookmark(15, false),
        ]),
        false,
    )]);
    let (mut w, stats) = watcher(&fake, config(), Some("10"));
    let out = take(&mut w, 2).await;
    match &out[0] {
        Output::Batch { deltas, rv } => {
            assert_eq!(names(deltas), vec!["+a", "-b"]);
            assert_eq!(
                rv, "15",
                "a bookmark inside the batch window closes the batch at its RV"
            );
            let Delta::Upsert(a) = &deltas[0] else {
                panic!()
            };
            assert!(
                a["metadata"].get("managedFields").is_none(),
                "default transform strips managedFields"
            );
        }
        other => panic!("expected a batch, got {other:?}"),
    }
    assert!(matches!(out[1], Output::CaughtUp));
    assert_eq!(fake.calls(), vec![watch_call("10", false)]);
    assert_eq!(Stats::get(&stats.list_requests), 0);
}

#[tokio::test]
async fn quiet_resumed_watch_counts_as_caught_up() {
    let fake = Fake::new(vec![Reply::Watch(Ok(vec![]), false)]);
    let (mut w, _) = watcher(&fake, config(), Some("10"));
    assert!(matches!(take(&mut w, 1).await[0], Output::CaughtUp));
}

#[tokio::test]
async fn paginated_list_follows_every_token_then_watches_from_the_snapshot() {
    let fake = Fake::new(vec![
        page(vec![pod("a", 1), pod("b", 2)], "20", Some("t1")),
        page(vec![pod("c", 3), pod("d", 4)], "20", Some("t2")),
        page(vec![pod("e", 5)], "20", None),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Modified(pod("a", 21)))]), false),
    ]);
    let (mut w, stats) = watcher(&fake, config(), None);
    let out = take(&mut w, 2).await;
    let Output::Relisted { objects, rv } = &out[0] else {
        panic!("{:?}", out[0])
    };
    assert_eq!(object_names(objects), vec!["a", "b", "c", "d", "e"]);
    assert_eq!(rv, "20");
    assert!(matches!(&out[1], Output::Batch { rv, .. } if rv == "21"));
    assert_eq!(
        fake.calls(),
        vec![
            Call::List {
                token: None,
                limit: Some(2)
            },
            Call::List {
                token: Some("t1".into()),
                limit: Some(2)
            },
            Call::List {
                token: Some("t2".into()),
                limit: Some(2)
            },
            watch_call("20", false),
        ]
    );
    assert_eq!(Stats::get(&stats.list_requests), 3);
    assert_eq!(Stats::get(&stats.relists), 1);
}

#[tokio::test]
async fn expired_continue_token_restarts_the_list_without_mixing_snapshots() {
    let fake = Fake::new(vec![
        page(vec![pod("a", 1), pod("b", 2)], "20", Some("t1")),
        Reply::List(Err(gone())),
        page(vec![pod("a", 30), pod("c", 31)], "32", Some("u1")),
        page(vec![pod("d", 32)], "32", None),
    ]);
    let (mut w, stats) = watcher(&fake, config(), None);
    let Output::Relisted { objects, rv } = take(&mut w, 1).await.remove(0) else {
        panic!()
    };
    assert_eq!(
        object_names(&objects),
        vec!["a", "c", "d"],
        "only the second snapshot"
    );
    assert_eq!(objects[0]["metadata"]["resourceVersion"], "30");
    assert_eq!(rv, "32");
    let calls = fake.calls();
    assert_eq!(
        calls[2],
        Call::List {
            token: None,
            limit: Some(2)
        },
        "restart from scratch"
    );
    assert_eq!(Stats::get(&stats.gone), 1);
}

#[tokio::test]
async fn page_from_another_snapshot_restarts_the_list() {
    let fake = Fake::new(vec![
        page(vec![pod("a", 1)], "20", Some("t1")),
        page(vec![pod("b", 2)], "25", None),
        page(vec![pod("a", 1), pod("b", 2)], "26", None),
    ]);
    let (mut w, _) = watcher(&fake, config(), None);
    let Output::Relisted { objects, rv } = take(&mut w, 1).await.remove(0) else {
        panic!()
    };
    assert_eq!(
        (object_names(&objects), rv.as_str()),
        (vec!["a", "b"], "26")
    );
}

#[tokio::test]
async fn http_410_and_error_event_410_both_relist() {
    for first in [
        Reply::Watch(Err(gone()), false),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Error(status(410, "Gone")))]), false),
    ] {
        let fake = Fake::new(vec![first, page(vec![pod("a", 40)], "41", None)]);
        let (mut w, stats) = watcher(&fake, config(), Some("5"));
        let out = take(&mut w, 1).await;
        assert!(matches!(&out[0], Output::Relisted { rv, .. } if rv == "41"));
        assert_eq!(Stats::get(&stats.gone), 1);
        assert_eq!(
            fake.calls()[1],
            Call::List {
                token: None,
                limit: Some(2)
            }
        );
    }
}

#[tokio::test]
async fn streaming_list_collects_initial_events_then_keeps_watching() {
    let fake = Fake::new(vec![Reply::Watch(
        Ok(vec![
            Ok(WatchEvent::Added(pod("a", 1))),
            Ok(WatchEvent::Added(pod("b", 2))),
            bookmark(9, true),
            Ok(WatchEvent::Deleted(pod("a", 10))),
        ]),
        false,
    )]);
    let (mut w, stats) = watcher(
        &fake,
        Config {
            streaming_list: true,
            ..config()
        },
        None,
    );
    let out = take(&mut w, 2).await;
    let Output::Relisted { objects, rv } = &out[0] else {
        panic!()
    };
    assert_eq!((object_names(objects), rv.as_str()), (vec!["a", "b"], "9"));
    assert!(
        matches!(&out[1], Output::Batch { deltas, rv } if names(deltas) == vec!["-a"] && rv == "10")
    );
    assert_eq!(fake.calls(), vec![watch_call("", true)]);
    assert_eq!(Stats::get(&stats.list_requests), 0);
}

#[tokio::test]
async fn streaming_list_refused_or_ignored_falls_back_to_paging() {
    let refused = Reply::Watch(Err(kube::Error::Api(status(400, "BadRequest"))), false);
    // A server that ignores sendInitialEvents sends ADDED then a plain bookmark.
    let ignored = Reply::Watch(
        Ok(vec![Ok(WatchEvent::Added(pod("a", 1))), bookmark(3, false)]),
        false,
    );
    for first in [refused, ignored] {
        let fake = Fake::new(vec![first, page(vec![pod("a", 1)], "3", None)]);
        let (mut w, _) = watcher(
            &fake,
            Config {
                streaming_list: true,
                ..config()
            },
            None,
        );
        let Output::Relisted { objects, .. } = take(&mut w, 1).await.remove(0) else {
            panic!()
        };
        assert_eq!(object_names(&objects), vec!["a"]);
        assert_eq!(
            fake.calls()[1],
            Call::List {
                token: None,
                limit: Some(2)
            }
        );
    }
}

#[tokio::test]
async fn malformed_line_flushes_what_was_read_and_rewatches_from_last_good_rv() {
    let bad = serde_json::from_str::<WatchEvent<Value>>(r#"{"type":"WHATEVER","object":{}}"#)
        .unwrap_err();
    let fake = Fake::new(vec![
        Reply::Watch(
            Ok(vec![
                Ok(WatchEvent::Added(pod("a", 11))),
                Err(kube::Error::SerdeError(bad)),
            ]),
            false,
        ),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Added(pod("b", 12)))]), false),
    ]);
    let (mut w, stats) = watcher(&fake, config(), Some("10"));
    let out = take(&mut w, 2).await;
    assert!(
        matches!(&out[0], Output::Batch { deltas, rv } if names(deltas) == vec!["+a"] && rv == "11")
    );
    assert!(
        matches!(&out[1], Output::Batch { deltas, rv } if names(deltas) == vec!["+b"] && rv == "12")
    );
    assert_eq!(fake.calls()[1], watch_call("11", false));
    assert_eq!(Stats::get(&stats.malformed), 1);
}

#[tokio::test]
async fn clean_end_and_stall_rewatch_from_last_rv() {
    let fake = Fake::new(vec![
        Reply::Watch(Ok(vec![Ok(WatchEvent::Added(pod("a", 11)))]), true),
        Reply::Watch(Ok(vec![bookmark(12, false)]), false),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Added(pod("c", 13)))]), false),
    ]);
    let cfg = Config {
        stall_timeout: Duration::from_millis(300),
        ..config()
    };
    let (mut w, stats) = watcher(&fake, cfg, Some("10"));
    let out = take(&mut w, 4).await;
    assert!(matches!(&out[0], Output::Batch { rv, .. } if rv == "11"));
    assert!(matches!(&out[1], Output::Batch { deltas, rv } if deltas.is_empty() && rv == "12"));
    assert!(matches!(out[2], Output::CaughtUp));
    assert!(matches!(&out[3], Output::Batch { rv, .. } if rv == "13"));
    let rvs: Vec<_> = fake
        .calls()
        .into_iter()
        .map(|c| {
            if let Call::Watch { rv, .. } = c {
                rv
            } else {
                panic!()
            }
        })
        .collect();
    assert_eq!(
        rvs,
        vec!["10", "11", "12"],
        "clean end, then stall, each re-watched from the last RV"
    );
    assert_eq!(Stats::get(&stats.watch_restarts), 2);
}

#[tokio::test]
async fn throttling_and_server_errors_back_off_honouring_retry_after() {
    let mut throttled = Status::failure("slow down", "TooManyRequests").with_code(429);
    throttled.details = Some(serde_json::from_value(json!({"retryAfterSeconds": 1})).unwrap());
    let fake = Fake::new(vec![
        Reply::Watch(Err(kube::Error::Api(throttled.boxed())), false),
        Reply::Watch(Err(kube::Error::Api(status(500, "InternalError"))), false),
        Reply::Watch(
            Err(kube::Error::ReadEvents(std::io::Error::other(
                "connection reset",
            ))),
            false,
        ),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Added(pod("a", 11)))]), false),
    ]);
    let (mut w, stats) = watcher(&fake, config(), Some("10"));
    let start = tokio::time::Instant::now();
    let out = take(&mut w, 1).await;
    assert!(matches!(&out[0], Output::Batch { rv, .. } if rv == "11"));
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(Stats::get(&stats.backoffs), 3);
    assert_eq!(fake.calls().len(), 4);
}

#[tokio::test]
async fn batches_split_at_batch_max() {
    let events = (1..=5)
        .map(|i| Ok(WatchEvent::Added(pod(&format!("p{i}"), 10 + i))))
        .collect();
    let fake = Fake::new(vec![Reply::Watch(Ok(events), false)]);
    let (mut w, _) = watcher(
        &fake,
        Config {
            batch_max: 2,
            ..config()
        },
        Some("10"),
    );
    let out = take(&mut w, 3).await;
    let sizes: Vec<_> = out
        .iter()
        .map(|o| {
            if let Output::Batch { deltas, .. } = o {
                deltas.len()
            } else {
                0
            }
        })
        .collect();
    assert_eq!(sizes, vec![2, 2, 1]);
}

#[tokio::test]
async fn cancel_hands_out_the_batch_already_read_then_stops() {
    let fake = Fake::new(vec![Reply::Watch(
        Ok(vec![Ok(WatchEvent::Added(pod("a", 11)))]),
        false,
    )]);
    let cfg = Config {
        batch_window: Duration::from_secs(3600),
        ..config()
    };
    let (mut w, _) = watcher(&fake, cfg, Some("10"));
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        canceller.cancel();
    });
    let first = w.next(&cancel).await;
    assert!(matches!(first, Some(Output::Batch { ref rv, .. }) if rv == "11"));
    assert!(w.next(&cancel).await.is_none());
}

#[test]
fn config_validation_names_the_bad_setting() {
    let err = Config {
        page_size: 0,
        ..Config::default()
    }
    .validate()
    .unwrap_err();
    assert!(err.to_string().contains("page_size"), "{err}");
    assert!(Config::default().validate().is_ok());
}

#[test]
fn selectors_the_server_would_refuse_are_invalid_and_named() {
    let with = |labels: Option<&str>, fields: Option<&str>| Config {
        label_selector: labels.map(String::from),
        field_selector: fields.map(String::from),
        ..Config::default()
    };
    for (labels, fields, named) in [
        (Some("a in (b"), None, "a in (b"),
        (Some("app=a=b"), None, "app=a=b"),
        (None, Some("bogus"), "bogus"),
        (None, Some("a=b,c"), "a=b,c"),
    ] {
        let err = with(labels, fields).validate().unwrap_err();
        assert!(matches!(err, Error::Selector(_)), "{err}");
        assert!(err.to_string().contains(&format!("{named:?}")), "{err}");
    }
    // The API server's syntax, as the server accepts it.
    for (labels, fields) in [
        ("app=a,tier!=db", "metadata.name=x"),
        ("app==a,!legacy", "metadata.name==x"),
        (
            "env in (a,b),x notin (y)",
            "metadata.namespace!=kube-system,status.phase=Running",
        ),
        ("app in ()", ""),
        ("", "spec.nodeName="),
    ] {
        let cfg = with(Some(labels), Some(fields));
        assert!(cfg.validate().is_ok(), "{labels:?} {fields:?}");
    }
}
