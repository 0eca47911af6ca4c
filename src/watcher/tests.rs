//! State-machine tests against a scripted source, on tokio's paused clock:
//! timeouts and backoffs elapse as soon as nothing else can run, so no
//! test waits on real time and none depends on how fast the machine is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::core::{Status, WatchEvent};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::fake::*;
use super::*;

/// What the consumer holds, as a test sets it.
#[derive(Clone, Default)]
struct Holding(Arc<Mutex<HashMap<ObjectRef, String>>>);

impl Holding {
    fn of(entries: &[(&str, u64)]) -> Holding {
        let map = entries
            .iter()
            .map(|(name, rv)| (key(name), rv.to_string()))
            .collect();
        Holding(Arc::new(Mutex::new(map)))
    }
}

impl Held for Holding {
    async fn versions(&self) -> Result<HashMap<ObjectRef, String>, BoxError> {
        Ok(self.0.lock().unwrap().clone())
    }
}


fn config() -> Config {
    Config {
        streaming_list: false,
        page_size: 2,
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(4),
        ..Config::default()
    }
}

fn watcher<H: Held>(
    fake: &Fake,
    config: Config,
    rv: Option<&str>,
    held: H,
) -> (Watcher<Fake, H>, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let w = Watcher::new(
        fake.clone(),
        config,
        rv.map(str::to_string),
        strip_managed_fields(),
        stats.clone(),
        held,
    )
    .unwrap();
    (w, stats)
}

/// Collects groups until `n` were produced.
async fn take<H: Held>(w: &mut Watcher<Fake, H>, n: usize) -> Vec<Vec<Event>> {
    let cancel = CancellationToken::new();
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(600), w.next(&cancel)).await;
        out.push(
            next.expect("no output within 600 s of paused time")
                .expect("watcher stopped"),
        );
    }
    out
}

/// Collects groups until one holds an event `done` accepts.
async fn take_until<H: Held>(
    w: &mut Watcher<Fake, H>,
    done: impl Fn(&Event) -> bool,
) -> Vec<Vec<Event>> {
    let cancel = CancellationToken::new();
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(600), w.next(&cancel)).await;
        let group = next
            .expect("no output within 600 s of paused time")
            .expect("watcher stopped");
        let finished = group.iter().any(&done);
        out.push(group);
        if finished {
            return out;
        }
    }
}

/// Whether the watcher produces nothing more within `wait` of paused time.
async fn silent_for<H: Held>(w: &mut Watcher<Fake, H>, wait: Duration) -> Option<Vec<Event>> {
    let cancel = CancellationToken::new();
    tokio::time::timeout(wait, w.next(&cancel))
        .await
        .ok()
        .flatten()
}

/// A compact spelling of events: `init`, `+a@5` (InitApply), `-a@5`
/// (InitDelete), `done@9`, `a@5` (Apply), `~a@5` (Delete), `bm@9`, `caught-up`.
fn spell(e: &Event) -> String {
    let at = |o: &Value| {
        format!(
            "{}@{}",
            o["metadata"]["name"].as_str().unwrap(),
            o["metadata"]["resourceVersion"].as_str().unwrap()
        )
    };
    match e {
        Event::Init => "init".into(),
        Event::InitApply(o) => format!("+{}", at(o)),
        Event::InitDelete { key, rv } => format!("-{}@{rv}", key.name),
        Event::InitDone { rv } => format!("done@{rv}"),
        Event::Apply(o) => at(o),
        Event::Delete(o) => format!("~{}", at(o)),
        Event::Bookmark { rv } => format!("bm@{rv}"),
        Event::CaughtUp => "caught-up".into(),
    }
}

fn spelled(groups: &[Vec<Event>]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|g| g.iter().map(spell).collect())
        .collect()
}

fn flat(groups: &[Vec<Event>]) -> Vec<String> {
    groups.iter().flatten().map(spell).collect()
}

#[tokio::test(start_paused = true)]
async fn resume_with_stored_rv_watches_first_and_never_lists() {
    let fake = Fake::new(vec![Reply::Watch(
        Ok(vec![added("a", 11), deleted("b", 12), bookmark(15, false)]),
        false,
    )]);
    let (mut w, stats) = watcher(&fake, config(), Some("10"), ());
    let out = take(&mut w, 2).await;
    assert_eq!(
        spelled(&out),
        vec![vec!["a@11", "~b@12", "bm@15"], vec!["caught-up"]],
        "a bookmark inside the batch window closes the batch at its RV"
    );
    let Event::Apply(a) = &out[0][0] else {
        panic!()
    };
    assert!(
        a["metadata"].get("managedFields").is_none(),
        "default transform strips managedFields"
    );
    assert_eq!(
        fake.calls(),
        vec![probe_call("10")],
        "one short watch, no LIST"
    );
    assert_eq!(Stats::get(&stats.list_requests), 0);
}

#[tokio::test(start_paused = true)]
async fn a_resumed_watch_is_never_synced_on_silence() {
    // Events, then nothing: no bookmark for minutes.
    let fake = Fake::new(vec![
        Reply::Watch(Ok(vec![added("a", 11)]), false),
        Reply::Watch(Ok(vec![]), false),
    ]);
    let (mut w, _) = watcher(&fake, config(), Some("10"), ());
    assert_eq!(flat(&take(&mut w, 1).await), vec!["a@11"]);
    let next = silent_for(&mut w, Duration::from_secs(500)).await;
    assert!(next.is_none(), "nothing after silence, got {next:?}");
    // Quiet after its replay, the first watch was re-opened from its last
    // RV; that one's silence was a stall, not a deadline, so the stall
    // timeout re-watched, still as a probe: no proof yet.
    assert_eq!(
        fake.calls(),
        vec![probe_call("10"), probe_call("11"), probe_call("11")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_watch_quiet_after_its_replay_is_reopened_once() {
    let fake = Fake::new(vec![
        // The replay, then nothing (the stream stays open).
        Reply::Watch(Ok(vec![added("a", 11)]), false),
        // Events again, then nothing: not cut a second time.
        Reply::Watch(Ok(vec![added("b", 12)]), false),
        Reply::WatchToDeadline(vec![]),
    ]);
    let cfg = Config {
        stall_timeout: Duration::from_secs(60),
        ..config()
    };
    let quiet = cfg.resume_probe_quiet;
    let (mut w, stats) = watcher(&fake, cfg, Some("10"), ());
    let started = tokio::time::Instant::now();
    assert_eq!(flat(&take(&mut w, 1).await), vec!["a@11"]);
    assert_eq!(flat(&take(&mut w, 1).await), vec!["b@12"]);
    let reopened = started.elapsed();
    assert!(
        reopened >= quiet && reopened < Duration::from_secs(1),
        "the first watch is re-opened once quiet, not at its deadline: {reopened:?}"
    );
    assert_eq!(flat(&take(&mut w, 1).await), vec!["caught-up"]);
    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "the second watch waited for its stall timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(
        fake.calls(),
        vec![probe_call("10"), probe_call("11"), probe_call("12")],
        "each short watch from where the last one got to"
    );
    assert_eq!(Stats::get(&stats.list_requests), 0);
}

#[tokio::test(start_paused = true)]
async fn only_a_bookmark_covering_the_resumed_watch_proves_it_caught_up() {
    let fake = Fake::new(vec![
        // A bookmark behind where the watch resumed is not a proof.
        Reply::Watch(Ok(vec![bookmark(9, false)]), true),
        Reply::Watch(Ok(vec![added("a", 12), bookmark(12, false)]), true),
        Reply::Watch(Ok(vec![added("b", 13)]), false),
    ]);
    let (mut w, _) = watcher(&fake, config(), Some("10"), ());
    let out = take_until(&mut w, |e| *e == Event::CaughtUp).await;
    assert_eq!(flat(&out), vec!["a@12", "caught-up"]);
    assert_eq!(flat(&take(&mut w, 1).await), vec!["b@13"]);
    assert_eq!(
        fake.calls(),
        vec![probe_call("10"), probe_call("10"), watch_call("12", false)],
        "short watches until the proof, then a long one"
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_watch_silent_up_to_its_deadline_proves_it_caught_up() {
    // A quiet resource: kube-apiserver sends the pre-deadline bookmark only
    // when its cache is newer than the watch, so nothing at all comes.
    let fake = Fake::new(vec![
        Reply::WatchToDeadline(vec![]),
        Reply::Watch(Ok(vec![added("a", 11)]), false),
    ]);
    let (mut w, stats) = watcher(&fake, config(), Some("10"), Holding::of(&[("a", 9)]));
    let started = tokio::time::Instant::now();
    assert_eq!(flat(&take(&mut w, 1).await), vec!["caught-up"]);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "not before the deadline"
    );
    assert_eq!(flat(&take(&mut w, 1).await), vec!["a@11"]);
    assert_eq!(
        fake.calls(),
        vec![probe_call("10"), watch_call("10", false)],
        "no LIST: the short watch's silent deadline is the proof, then long watches"
    );
    assert_eq!(Stats::get(&stats.list_requests), 0);
}

#[tokio::test(start_paused = true)]
async fn a_short_watch_that_ends_early_or_brings_events_without_a_bookmark_proves_nothing() {
    let fake = Fake::new(vec![
        // Closed early, without a word: not the deadline.
        Reply::Watch(Ok(vec![]), true),
        // Events up to the deadline but no bookmark (a real server would
        // have sent one): no proof that nothing came after them.
        Reply::WatchToDeadline(vec![added("a", 11)]),
        // Stalled: the stall timeout is no deadline either.
        Reply::Watch(Ok(vec![]), false),
        Reply::WatchToDeadline(vec![]),
    ]);
    let cfg = Config {
        stall_timeout: Duration::from_secs(60),
        // Longer than the deadline, so the watch that brings events is not
        // re-opened for going quiet before it.
        resume_probe_quiet: Duration::from_secs(10),
        ..config()
    };
    let (mut w, stats) = watcher(&fake, cfg, Some("10"), ());
    let out = take_until(&mut w, |e| *e == Event::CaughtUp).await;
    assert_eq!(flat(&out), vec!["a@11", "caught-up"]);
    assert_eq!(
        fake.calls(),
        vec![
            probe_call("10"),
            probe_call("10"),
            probe_call("11"),
            probe_call("11")
        ]
    );
    assert_eq!(Stats::get(&stats.backoffs), 1, "the early end backs off");
    assert_eq!(Stats::get(&stats.list_requests), 0);
}

#[tokio::test(start_paused = true)]
async fn paginated_list_hands_on_each_page_then_watches_from_the_snapshot() {
    let fake = Fake::new(vec![
        page(vec![pod("a", 1), pod("b", 2)], "20", Some("t1")),
        page(vec![pod("c", 3), pod("d", 4)], "20", Some("t2")),
        page(vec![pod("e", 5)], "20", None),
        Reply::Watch(Ok(vec![modified("a", 21)]), false),
    ]);
    let (mut w, stats) = watcher(&fake, config(), None, ());
    let out = take(&mut w, 6).await;
    assert_eq!(
        spelled(&out),
        vec![
            vec!["init"],
            vec!["+a@1", "+b@2"],
            vec!["+c@3", "+d@4"],
            vec!["+e@5"],
            vec!["done@20"],
            vec!["a@21"],
        ],
        "one group per page: nothing holds more than a page"
    );
    assert_eq!(
        fake.calls(),
        vec![
            list_call(None),
            list_call(Some("t1")),
            list_call(Some("t2")),
            watch_call("20", false),
        ],
        "a completed list is proof: long watches follow"
    );
    assert_eq!(Stats::get(&stats.list_requests), 3);
    assert_eq!(Stats::get(&stats.relists), 1);
}

#[tokio::test(start_paused = true)]
async fn a_relist_hands_on_only_what_differs_from_what_is_held() {
    let held = Holding::of(&[("same", 1), ("changed", 2), ("gone", 3), ("newer", 9)]);
    let fake = Fake::new(vec![
        page(vec![pod("changed", 4), pod("new", 5)], "8", Some("t1")),
        page(vec![pod("newer", 6), pod("same", 1)], "8", None),
    ]);
    let cfg = Config {
        metadata_relist: false,
        ..config()
    };
    let (mut w, _) = watcher(&fake, cfg, None, held);
    let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
    assert_eq!(
        spelled(&out),
        vec![
            vec!["init"],
            vec!["+changed@4", "+new@5"],
            vec!["-gone@3"],
            vec!["done@8"]
        ],
        "unchanged skipped, a held version newer than the listing kept (I13), the unseen deleted once, last"
    );
}

#[tokio::test(start_paused = true)]
async fn expired_continue_token_restarts_the_relist_without_mixing_snapshots() {
    let held = Holding::default();
    let fake = Fake::new(vec![
        page(vec![pod("a", 1), pod("b", 2)], "20", Some("t1")),
        Reply::List(Err(gone())),
        page(vec![pod("a", 30), pod("c", 31)], "32", Some("u1")),
        page(vec![pod("d", 32)], "32", None),
    ]);
    let cfg = Config {
        metadata_relist: false,
        ..config()
    };
    let (mut w, stats) = watcher(&fake, cfg, None, held.clone());
    let first = take(&mut w, 2).await;
    assert_eq!(flat(&first), vec!["init", "+a@1", "+b@2"]);
    // The consumer applied the first page before the token expired.
    held.0
        .lock()
        .unwrap()
        .extend([(key("a"), "1".into()), (key("b"), "2".into())]);
    let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
    assert_eq!(
        flat(&out),
        vec!["init", "+a@30", "+c@31", "+d@32", "-b@2", "done@32"],
        "the relist starts over against what is held now; only the second snapshot counts"
    );
    assert_eq!(fake.calls()[2], list_call(None), "restart from scratch");
    assert_eq!(Stats::get(&stats.gone), 1);
}

#[tokio::test(start_paused = true)]
async fn page_from_another_snapshot_restarts_the_list() {
    let fake = Fake::new(vec![
        page(vec![pod("a", 1)], "20", Some("t1")),
        page(vec![pod("b", 2)], "25", None),
        page(vec![pod("a", 1), pod("b", 2)], "26", None),
    ]);
    let (mut w, _) = watcher(&fake, config(), None, ());
    let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
    assert_eq!(
        flat(&out),
        vec!["init", "+a@1", "init", "+a@1", "+b@2", "done@26"]
    );
}

#[tokio::test(start_paused = true)]
async fn http_410_and_error_event_410_both_relist() {
    for first in [
        Reply::Watch(Err(gone()), false),
        Reply::Watch(Ok(vec![Ok(WatchEvent::Error(status(410, "Gone")))]), false),
    ] {
        let fake = Fake::new(vec![first, page(vec![pod("a", 40)], "41", None)]);
        let (mut w, stats) = watcher(&fake, config(), Some("5"), ());
        let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
        assert_eq!(flat(&out), vec!["init", "+a@40", "done@41"]);
        assert_eq!(Stats::get(&stats.gone), 1);
        assert_eq!(fake.calls()[1], list_call(None));
    }
}

#[tokio::test(start_paused = true)]
async fn streaming_list_hands_on_bounded_runs_then_keeps_watching() {
    let held = Holding::of(&[("b", 2), ("x", 1)]);
    let fake = Fake::new(vec![Reply::Watch(
        Ok(vec![
            added("a", 1),
            added("b", 2),
            added("c", 3),
            added("d", 4),
            bookmark(9, true),
            deleted("a", 10),
        ]),
        false,
    )]);
    let cfg = Config {
        streaming_list: true,
        metadata_relist: false,
        batch_max: 2,
        ..config()
    };
    let (mut w, stats) = watcher(&fake, cfg, None, held);
    let out = take(&mut w, 6).await;
    assert_eq!(
        spelled(&out),
        vec![
            vec!["init"],
            vec!["+a@1", "+c@3"],
            vec!["+d@4"],
            vec!["-x@1"],
            vec!["done@9"],
            vec!["~a@10"],
        ],
        "runs of at most batch_max differences; b unchanged"
    );
    assert_eq!(fake.calls(), vec![watch_call("", true)]);
    assert_eq!(Stats::get(&stats.list_requests), 0);
}

#[tokio::test(start_paused = true)]
async fn streaming_list_refused_or_ignored_falls_back_to_paging() {
    let refused = Reply::Watch(Err(api_error(400, "BadRequest")), false);
    // A server that ignores sendInitialEvents sends ADDED then a plain bookmark.
    let ignored = Reply::Watch(Ok(vec![added("a", 1), bookmark(3, false)]), false);
    for first in [refused, ignored] {
        let fake = Fake::new(vec![first, page(vec![pod("a", 1)], "3", None)]);
        let cfg = Config {
            streaming_list: true,
            ..config()
        };
        let (mut w, _) = watcher(&fake, cfg, None, ());
        let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
        assert_eq!(
            out.last().unwrap(),
            &vec![Event::InitDone { rv: "3".into() }]
        );
        assert!(flat(&out).contains(&"+a@1".to_string()));
        assert_eq!(fake.calls()[1], list_call(None));
    }
}

#[tokio::test(start_paused = true)]
async fn malformed_line_flushes_what_was_read_and_rewatches_from_last_good_rv() {
    let bad = serde_json::from_str::<WatchEvent<Value>>(r#"{"type":"WHATEVER","object":{}}"#)
        .unwrap_err();
    let fake = Fake::new(vec![
        Reply::Watch(
            Ok(vec![added("a", 11), Err(kube::Error::SerdeError(bad))]),
            false,
        ),
        Reply::Watch(Ok(vec![added("b", 12)]), false),
    ]);
    let (mut w, stats) = watcher(&fake, config(), Some("10"), ());
    let out = take(&mut w, 2).await;
    assert_eq!(spelled(&out), vec![vec!["a@11"], vec!["b@12"]]);
    assert_eq!(fake.calls()[1], probe_call("11"));
    assert_eq!(Stats::get(&stats.malformed), 1);
}

#[tokio::test(start_paused = true)]
async fn clean_end_and_stall_rewatch_from_last_rv() {
    let fake = Fake::new(vec![
        Reply::Watch(Ok(vec![added("a", 11)]), true),
        Reply::Watch(Ok(vec![bookmark(12, false)]), false),
        Reply::Watch(Ok(vec![added("c", 13)]), false),
    ]);
    let cfg = Config {
        stall_timeout: Duration::from_millis(300),
        ..config()
    };
    let (mut w, stats) = watcher(&fake, cfg, Some("10"), ());
    let out = take(&mut w, 4).await;
    assert_eq!(
        spelled(&out),
        vec![vec!["a@11"], vec!["bm@12"], vec!["caught-up"], vec!["c@13"]]
    );
    let rvs: Vec<_> = fake
        .calls()
        .into_iter()
        .map(|c| match c {
            Call::Watch { rv, .. } => rv,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        rvs,
        vec!["10", "11", "12"],
        "clean end, then stall, each re-watched from the last RV"
    );
    assert_eq!(Stats::get(&stats.watch_restarts), 2);
}

#[tokio::test(start_paused = true)]
async fn throttling_and_server_errors_back_off_honouring_retry_after() {
    let mut throttled = Status::failure("slow down", "TooManyRequests").with_code(429);
    throttled.details = Some(serde_json::from_value(json!({"retryAfterSeconds": 1})).unwrap());
    let fake = Fake::new(vec![
        Reply::Watch(Err(kube::Error::Api(throttled.boxed())), false),
        Reply::Watch(Err(api_error(500, "InternalError")), false),
        Reply::Watch(
            Err(kube::Error::ReadEvents(std::io::Error::other(
                "connection reset",
            ))),
            false,
        ),
        Reply::Watch(Ok(vec![added("a", 11)]), false),
    ]);
    let (mut w, stats) = watcher(&fake, config(), Some("10"), ());
    let start = tokio::time::Instant::now();
    assert_eq!(flat(&take(&mut w, 1).await), vec!["a@11"]);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(Stats::get(&stats.backoffs), 3);
    assert_eq!(fake.calls().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn batches_split_at_batch_max() {
    let events = (1..=5).map(|i| added(&format!("p{i}"), 10 + i)).collect();
    let fake = Fake::new(vec![Reply::Watch(Ok(events), false)]);
    let cfg = Config {
        batch_max: 2,
        // A resume's replay has its own cap (see the test after this).
        catch_up_gap: Duration::ZERO,
        ..config()
    };
    let (mut w, _) = watcher(&fake, cfg, Some("10"), ());
    let out = take(&mut w, 3).await;
    let sizes: Vec<_> = out.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
}

/// A resumed watch's replay arrives in bursts (a socket buffer at a time).
/// Until Synced, a batch stays open while events keep coming within
/// `catch_up_gap`, up to `catch_up_batch_max`; `catch_up_gap` zero batches
/// what is ready, as after Synced.
#[tokio::test(start_paused = true)]
async fn a_resumed_watch_replay_is_one_batch_until_the_stream_pauses() {
    let ms = Duration::from_millis;
    let replay = || {
        let mut watch: Vec<_> = (0..6u64)
            .map(|i| (ms(if i == 0 { 0 } else { 5 }), added(&format!("p{i}"), 11 + i)))
            .collect();
        watch.push((ms(100), added("late", 30)));
        Fake::new(vec![Reply::WatchPaced(watch)])
    };
    for (cfg, want) in [
        (config(), vec![6, 1]),
        (
            Config {
                catch_up_batch_max: 4,
                ..config()
            },
            vec![4, 2, 1],
        ),
        (
            Config {
                catch_up_gap: Duration::ZERO,
                ..config()
            },
            vec![1; 7],
        ),
    ] {
        let fake = replay();
        let (mut w, _) = watcher(&fake, cfg.clone(), Some("10"), ());
        let out = take(&mut w, want.len()).await;
        let sizes: Vec<_> = out.iter().map(Vec::len).collect();
        assert_eq!(sizes, want, "{cfg:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn cancel_hands_out_the_batch_already_read_then_stops() {
    let fake = Fake::new(vec![Reply::Watch(Ok(vec![added("a", 11)]), false)]);
    let cfg = Config {
        batch_window: Duration::from_secs(3600),
        ..config()
    };
    let (mut w, _) = watcher(&fake, cfg, Some("10"), ());
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        canceller.cancel();
    });
    let first = w.next(&cancel).await.unwrap();
    assert_eq!(flat(&[first]), vec!["a@11"]);
    assert!(w.next(&cancel).await.is_none());
}

/// A 410 on resume with objects held: a metadata list of two pages, the
/// GETs of what changed, then a watch from the metadata list's snapshot.
fn metadata_relist(extra: Vec<Reply>) -> Fake {
    let mut replies = vec![
        Reply::Watch(Err(gone()), false),
        meta_page(&[("a", 1), ("b", 5), ("c", 3)], "20", Some("t1")),
        meta_page(&[("d", 4), ("new", 15)], "20", None),
    ];
    replies.extend(extra);
    Fake::new(replies)
}

fn held_abcde() -> Holding {
    Holding::of(&[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)])
}

#[tokio::test(start_paused = true)]
async fn a_metadata_relist_fetches_only_what_changed_then_watches_from_its_snapshot() {
    let fake = metadata_relist(vec![Reply::Watch(Ok(vec![added("f", 21)]), false)]);
    fake.answer_get("b", Ok(Some(pod("b", 5))))
        .answer_get("new", Ok(Some(pod("new", 15))));
    let cfg = Config {
        fetch_max_share: 0.5,
        ..config()
    };
    let (mut w, stats) = watcher(&fake, cfg, Some("10"), held_abcde());
    let out = take_until(&mut w, |e| matches!(e, Event::Apply(_))).await;
    assert_eq!(
        spelled(&out),
        vec![
            vec!["init"],
            vec!["-e@5"],
            vec!["+b@5", "+new@15"],
            vec!["done@20"],
            vec!["f@21"]
        ]
    );
    assert_eq!(
        fake.calls(),
        vec![
            probe_call("10"),
            meta_call(None),
            meta_call(Some("t1")),
            get_call("b"),
            get_call("new"),
            watch_call("20", false),
        ],
        "GETs only for the changed and the new"
    );
    assert_eq!(Stats::get(&stats.metadata_lists), 2);
    assert_eq!(Stats::get(&stats.get_requests), 2);
    assert_eq!(Stats::get(&stats.relists), 1);
    let Event::InitApply(b) = &out[2][0] else {
        panic!()
    };
    assert!(
        b["metadata"].get("managedFields").is_none(),
        "fetched objects go through the transform"
    );
}

#[tokio::test(start_paused = true)]
async fn objects_changed_created_and_deleted_between_the_metadata_list_and_the_gets() {
    // b changed twice after the list (7, 8): the GET reads 8, and the watch
    // from the snapshot replays 7 then 8. "new" was deleted (404) after the
    // list: its creation and deletion replay too. "late" was created after
    // the list: the watch alone brings it.
    let fake = metadata_relist(vec![Reply::Watch(
        Ok(vec![
            modified("b", 21),
            modified("b", 22),
            added("late", 23),
            modified("new", 24),
            deleted("new", 25),
            modified("b", 26),
            added("new", 27),
        ]),
        false,
    )]);
    fake.answer_get("b", Ok(Some(pod("b", 22))));
    let cfg = Config {
        fetch_max_share: 0.5,
        ..config()
    };
    let (mut w, _) = watcher(&fake, cfg, Some("10"), held_abcde());
    let out = take_until(&mut w, |e| spell(e) == "new@27").await;
    assert_eq!(
        flat(&out),
        vec!["init", "-e@5", "+b@22", "done@20", "b@21", "b@22", "late@23", "b@26", "new@27"],
        "the replays of what the GETs found deleted are dropped; the consumer keeps the newer of the others"
    );
}

#[tokio::test(start_paused = true)]
async fn only_dropped_events_still_move_the_watch_position() {
    // "new" was deleted (404) after the metadata list.
    let fake = metadata_relist(vec![Reply::Watch(
        Ok(vec![modified("new", 21), deleted("new", 22)]),
        false,
    )]);
    fake.answer_get("b", Ok(Some(pod("b", 5))));
    let cfg = Config {
        fetch_max_share: 0.5,
        ..config()
    };
    let (mut w, _) = watcher(&fake, cfg, Some("10"), held_abcde());
    let out = take_until(&mut w, |e| matches!(e, Event::Bookmark { .. })).await;
    assert_eq!(flat(&out).last().unwrap(), "bm@22");
}

#[tokio::test(start_paused = true)]
async fn an_object_that_left_the_selection_before_its_get_is_deleted() {
    let fake = Fake::new(vec![
        Reply::Watch(Err(gone()), false),
        meta_page(&[("a", 5), ("b", 2)], "20", None),
        Reply::Watch(
            Ok(vec![Ok(WatchEvent::Deleted(labelled("a", 21, "other")))]),
            false,
        ),
        Reply::Watch(Ok(vec![bookmark(30, false)]), false),
    ]);
    fake.answer_get("a", Ok(Some(labelled("a", 21, "other"))));
    let cfg = Config {
        label_selector: Some("app=web".into()),
        fetch_max_share: 0.5,
        ..config()
    };
    let (mut w, _) = watcher(&fake, cfg, Some("10"), Holding::of(&[("a", 1), ("b", 2)]));
    let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
    assert_eq!(flat(&out), vec!["init", "-a@1", "done@20"]);
}

#[tokio::test(start_paused = true)]
async fn a_server_without_metadata_lists_gets_a_full_relist() {
    let refused = Reply::Meta(Err(api_error(406, "NotAcceptable")));
    let ignored = meta_page_of_kind("PodList", &[("a", 1)], "20", None);
    for first in [refused, ignored] {
        let fake = Fake::new(vec![
            Reply::Watch(Err(gone()), false),
            first,
            page(vec![pod("a", 1), pod("b", 6)], "20", None),
            Reply::Watch(Err(gone()), false),
            page(vec![pod("a", 1)], "30", None),
        ]);
        let (mut w, _) = watcher(&fake, config(), Some("10"), held_abcde());
        let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
        assert_eq!(
            flat(&out),
            vec!["init", "+b@6", "-c@3", "-d@4", "-e@5", "done@20"]
        );
        take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
        let calls = fake.calls();
        assert_eq!(calls[1], meta_call(None));
        assert_eq!(calls[2], list_call(None));
        assert_eq!(calls[4], list_call(None), "not asked again: {calls:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn when_most_objects_changed_a_full_relist_beats_fetching_them() {
    let fake = Fake::new(vec![
        Reply::Watch(Err(gone()), false),
        meta_page(&[("a", 7), ("b", 8), ("c", 3)], "20", None),
        page(vec![pod("a", 7), pod("b", 8), pod("c", 3)], "21", None),
    ]);
    let cfg = Config {
        fetch_max_share: 0.5,
        ..config()
    };
    let (mut w, _) = watcher(
        &fake,
        cfg,
        Some("10"),
        Holding::of(&[("a", 1), ("b", 2), ("c", 3)]),
    );
    let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
    assert_eq!(flat(&out), vec!["init", "+a@7", "+b@8", "done@21"]);
    assert_eq!(
        fake.calls()[2],
        list_call(None),
        "2 of 3 changed: listed in full"
    );
    assert!(!fake.calls().contains(&get_call("a")));
}

#[tokio::test(start_paused = true)]
async fn a_410_during_the_fetch_phase_starts_the_relist_over() {
    let held = held_abcde();
    let fake = metadata_relist(vec![meta_page(&[("a", 1), ("b", 5)], "30", None)]);
    // b fetched; "new" answers 410: the snapshot is gone.
    fake.answer_get("b", Ok(Some(pod("b", 5))))
        .answer_get("new", Err(gone()));
    let cfg = Config {
        fetch_max_share: 0.7,
        batch_max: 1,
        ..config()
    };
    let (mut w, stats) = watcher(&fake, cfg, Some("10"), held.clone());
    let first = take(&mut w, 3).await;
    assert_eq!(flat(&first), vec!["init", "-e@5", "+b@5"]);
    // The consumer applied those before the 410.
    {
        let mut h = held.0.lock().unwrap();
        h.remove(&key("e"));
        h.insert(key("b"), "5".into());
    }
    let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
    assert_eq!(
        flat(&out),
        vec!["init", "-c@3", "-d@4", "done@30"],
        "what the first attempt wrote counts as held"
    );
    assert_eq!(Stats::get(&stats.gone), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_gets_are_retried_alone_and_a_forbidden_get_relists_in_full() {
    let fake = metadata_relist(vec![]);
    fake.answer_get("b", Ok(Some(pod("b", 5))))
        .answer_get("new", Err(api_error(503, "ServiceUnavailable")))
        .answer_get("new", Ok(Some(pod("new", 15))));
    let cfg = Config {
        fetch_max_share: 0.5,
        ..config()
    };
    let (mut w, stats) = watcher(&fake, cfg, Some("10"), held_abcde());
    let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
    assert_eq!(
        flat(&out),
        vec!["init", "-e@5", "+b@5", "+new@15", "done@20"]
    );
    let gets: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Get { .. }))
        .collect();
    assert_eq!(gets, vec![get_call("b"), get_call("new"), get_call("new")]);
    assert_eq!(Stats::get(&stats.backoffs), 1);

    let fake = metadata_relist(vec![page(vec![pod("a", 1), pod("b", 5)], "21", None)]);
    fake.answer_get("b", Err(api_error(403, "Forbidden")));
    let cfg = Config {
        fetch_max_share: 0.5,
        ..config()
    };
    let (mut w, _) = watcher(&fake, cfg, Some("10"), held_abcde());
    let out = take_until(&mut w, |e| matches!(e, Event::InitDone { .. })).await;
    assert_eq!(flat(&out).last().unwrap(), "done@21");
    assert!(fake.calls().contains(&list_call(None)));
}

#[test]
fn config_validation_names_the_bad_setting() {
    for (bad, named) in [
        (
            Config {
                page_size: 0,
                ..Config::default()
            },
            "page_size",
        ),
        (
            Config {
                catch_up_batch_max: 0,
                ..Config::default()
            },
            "catch_up_batch_max",
        ),
        (
            Config {
                resume_probe_timeout_secs: 2,
                ..Config::default()
            },
            "resume_probe_timeout_secs",
        ),
        (
            Config {
                resume_probe_quiet: Duration::ZERO,
                ..Config::default()
            },
            "resume_probe_quiet",
        ),
        (
            Config {
                fetch_concurrency: 0,
                ..Config::default()
            },
            "fetch_concurrency",
        ),
        (
            Config {
                fetch_max_share: 1.5,
                ..Config::default()
            },
            "fetch_max_share",
        ),
    ] {
        let err = bad.validate().unwrap_err();
        assert!(err.to_string().contains(named), "{err}");
    }
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

#[tokio::test(start_paused = true)]
async fn every_failure_backed_off_from_reaches_the_hook_with_its_cause() {
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let html = serde_json::from_str::<u8>("<html>").unwrap_err();
    let fake = Fake::new(vec![
        Reply::Watch(Err(kube::Error::ReadEvents(refused)), false),
        Reply::Watch(Ok(vec![Err(kube::Error::SerdeError(html))]), false),
        Reply::Watch(Err(api_error(503, "ServiceUnavailable")), false),
        Reply::Watch(Ok(vec![bookmark(12, false)]), false),
    ]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook: failure::FailureHook = {
        let seen = seen.clone();
        Arc::new(move |cause: failure::Cause, why: &str| {
            seen.lock().unwrap().push((cause, why.to_string()))
        })
    };
    let (w, stats) = watcher(&fake, config(), Some("10"), ());
    let mut w = w.with_failure_hook(hook);
    take_until(&mut w, |e| matches!(e, Event::CaughtUp)).await;
    let seen = seen.lock().unwrap().clone();
    let causes: Vec<failure::Cause> = seen.iter().map(|(cause, _)| *cause).collect();
    use failure::Cause::{Api, Connection, NotApi};
    assert_eq!(causes, [Connection, NotApi, Api], "{seen:?}");
    assert_eq!(Stats::get(&stats.backoffs), 3);
    // What is reported names the cause beneath kube's words.
    assert_eq!(
        seen[0].1,
        "watch from 10 failed: Error reading events stream: connection refused"
    );
}
