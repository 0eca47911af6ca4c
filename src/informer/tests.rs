//! The informer end to end, from a scripted API server to the store and its
//! subscribers, on tokio's paused clock: what happens over time (a resume's
//! proof of being caught up, a relist after 410, the batch window, resyncs,
//! backoffs) elapses as soon as nothing else can run, so no test waits on
//! real time. The store is real; only the server is scripted.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use super::*;
use crate::watcher::fake::*;

/// Paused time a test waits for an outcome before it fails, rather than
/// hang.
const PATIENCE: Duration = Duration::from_secs(600);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?} of paused time"))
}

/// A client no request ever reaches: the informer's requests go to the
/// fake.
fn unused_client() -> kube::Client {
    kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap()
}

/// Pods in `dir`, paginated lists, backoff from 1 s up to 4 s.
fn pods(dir: &Path) -> InformerBuilder {
    Informer::for_resource::<Pod>(unused_client())
        .store_path(dir.join("s"))
        .streaming_list(false)
        .configure(|c| {
            c.backoff_initial = Duration::from_secs(1);
            c.backoff_max = Duration::from_secs(4);
        })
}

async fn start(builder: InformerBuilder, fake: &Fake) -> Informer {
    builder.start_with_source(fake.clone()).await.unwrap()
}

/// `name@rv` of every stored object, in key order.
fn stored(informer: &Informer) -> Vec<String> {
    informer
        .list()
        .unwrap()
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            format!(
                "{}@{}",
                m["name"].as_str().unwrap(),
                m["resourceVersion"].as_str().unwrap()
            )
        })
        .collect()
}

/// A store synced once from a server holding `objects` at `rv`, closed:
/// what a restart opens.
async fn synced_store(objects: Vec<Value>, rv: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(vec![
        page(objects, rv, None),
        Reply::Watch(Ok(vec![]), false),
    ]);
    let informer = start(pods(dir.path()), &fake).await;
    within("the first sync", informer.wait_until_synced())
        .await
        .unwrap();
    informer.shutdown().await;
    dir
}

async fn synced(informer: &Informer) {
    within("Synced", informer.wait_until_synced())
        .await
        .unwrap();
}

/// The next `n` events of a subscription, each with when it arrived.
async fn next_events(
    events: &mut (impl futures::Stream<Item = Result<Event>> + Unpin),
    n: usize,
) -> Vec<(Instant, Event)> {
    let mut out = Vec::new();
    while out.len() < n {
        let event = within("an event", events.next()).await;
        out.push((Instant::now(), event.expect("subscription open").unwrap()));
    }
    out
}

/// `kind name@rv` of events.
fn spelled(events: &[(Instant, Event)]) -> Vec<String> {
    events
        .iter()
        .map(|(_, e)| format!("{:?} {}@{}", e.kind, e.key.name, e.rv))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_resume_is_synced_by_the_silent_deadline_of_a_short_watch_without_a_list() {
    let dir = synced_store(vec![pod("a", 1), pod("b", 2)], "2").await;
    // Nothing newer on the server: the short watch says nothing up to its
    // deadline; then a long watch brings a new pod.
    let fake = Fake::new(vec![
        Reply::WatchToDeadline(vec![]),
        Reply::Watch(Ok(vec![added("c", 3)]), false),
    ]);
    let started = Instant::now();
    let informer = start(pods(dir.path()), &fake).await;
    assert!(
        matches!(informer.opened_state(), State::Restored { rv, .. } if rv == "2"),
        "{:?}",
        informer.opened_state()
    );
    assert_eq!(stored(&informer), ["a@1", "b@2"], "readable at once");
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert!(
        matches!(informer.state(), State::Restored { .. }),
        "not synced by silence before the deadline (I12): {:?}",
        informer.state()
    );
    synced(&informer).await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "at the deadline"
    );
    within("c stored", informer.wait_for_rv("3")).await.unwrap();
    assert_eq!(stored(&informer), ["a@1", "b@2", "c@3"]);
    assert_eq!(
        fake.calls(),
        [probe_call("2"), watch_call("2", false)],
        "no LIST on resume (I3): a short watch, then a long one"
    );
    let m = informer.metrics();
    assert_eq!((m.list_requests, m.relists), (0, 0), "{m:?}");
    informer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_resume_is_synced_by_a_covering_bookmark_not_by_events_or_quiet() {
    let dir = synced_store(vec![pod("a", 1), pod("b", 2)], "2").await;
    let fake = Fake::new(vec![
        // The replay: an event, then quiet, no bookmark.
        Reply::Watch(Ok(vec![modified("a", 3)]), false),
        // From where it got to: a deletion, and the bookmark that proves
        // the watch caught up.
        Reply::Watch(Ok(vec![deleted("b", 4), bookmark(4, false)]), true),
        Reply::Watch(Ok(vec![]), false),
    ]);
    let informer = start(pods(dir.path()), &fake).await;
    within("a@3 stored", informer.wait_for_rv("3"))
        .await
        .unwrap();
    assert_eq!(stored(&informer), ["a@3", "b@2"]);
    assert!(
        matches!(informer.state(), State::Restored { .. }),
        "events prove nothing: {:?}",
        informer.state()
    );
    synced(&informer).await;
    assert_eq!(stored(&informer), ["a@3"], "the deletion is stored");
    assert_eq!(informer.last_rv().as_deref(), Some("4"));
    assert_eq!(
        fake.calls(),
        [probe_call("2"), probe_call("3"), watch_call("4", false)],
        "no LIST on resume (I3): short watches until the proof, then a long one"
    );
    let m = informer.metrics();
    assert_eq!((m.list_requests, m.relists), (0, 0), "{m:?}");
    informer.shutdown().await;
}

/// A store holding a@1, b@2, c@3 at 3, resumed against a server that
/// answers the resumed watch with 410, then `relist`; returns the store
/// and the deletions subscribers saw once Synced.
async fn relisted_after_410(
    metadata: bool,
    relist: Vec<Reply>,
    gets: &[(&str, Value)],
) -> (tempfile::TempDir, Informer, Fake, Vec<String>) {
    let dir = synced_store(vec![pod("a", 1), pod("b", 2), pod("c", 3)], "3").await;
    let mut replies = vec![Reply::Watch(Err(gone()), false)];
    replies.extend(relist);
    replies.push(Reply::Watch(Ok(vec![]), false));
    let fake = Fake::new(replies);
    for (name, obj) in gets {
        fake.answer_get(name, Ok(Some(obj.clone())));
    }
    let informer = start(
        pods(dir.path()).configure(|c| {
            c.metadata_relist = metadata;
            // Two of three objects changed: fetch them all the same.
            c.fetch_max_share = 1.0;
        }),
        &fake,
    )
    .await;
    let mut events = Box::pin(informer.subscribe());
    synced(&informer).await;
    let mut deleted = Vec::new();
    while let Some(Some(event)) = events.next().now_or_never() {
        let event = event.unwrap();
        if event.kind == EventKind::Deleted {
            deleted.push(event.key.name);
        }
    }
    (dir, informer, fake, deleted)
}

#[tokio::test(start_paused = true)]
async fn a_410_relists_and_the_store_equals_the_server_deletions_included() {
    // The server now holds a@5 (changed), b@2 (unchanged) and d@6 (new);
    // c is gone.
    let (_dir, informer, fake, deleted) = relisted_after_410(
        false,
        vec![page(vec![pod("a", 5), pod("b", 2), pod("d", 6)], "6", None)],
        &[],
    )
    .await;
    assert_eq!(stored(&informer), ["a@5", "b@2", "d@6"]);
    assert_eq!(deleted, ["c"]);
    assert_eq!(informer.last_rv().as_deref(), Some("6"));
    assert_eq!(
        fake.calls(),
        [probe_call("3"), list_call(None), watch_call("6", false)]
    );
    let m = informer.metrics();
    assert_eq!((m.gone, m.relists, m.list_requests), (1, 1, 1), "{m:?}");
    informer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_410_metadata_relist_fetches_what_changed_and_the_store_equals_the_server() {
    let (_dir, informer, fake, deleted) = relisted_after_410(
        true,
        vec![meta_page(&[("a", 5), ("b", 2), ("d", 6)], "6", None)],
        &[("a", pod("a", 5)), ("d", pod("d", 6))],
    )
    .await;
    assert_eq!(stored(&informer), ["a@5", "b@2", "d@6"]);
    assert_eq!(deleted, ["c"]);
    assert_eq!(informer.last_rv().as_deref(), Some("6"));
    let mut calls = fake.calls();
    assert_eq!(calls.remove(0), probe_call("3"));
    assert_eq!(calls.remove(0), meta_call(None));
    assert_eq!(calls.pop(), Some(watch_call("6", false)));
    calls.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        calls,
        [get_call("a"), get_call("d")],
        "only what changed is fetched"
    );
    let m = informer.metrics();
    assert_eq!((m.gone, m.relists, m.metadata_lists), (1, 1, 1), "{m:?}");
    informer.shutdown().await;
}

/// The names in each batch `events` were published in (events of one
/// batch are published together, once it is stored), and when each event
/// was published, after `watched_at`.
fn batches(events: &[(Instant, Event)], watched_at: Instant) -> (Vec<Vec<&str>>, Vec<Duration>) {
    let after: Vec<Duration> = events.iter().map(|(at, _)| *at - watched_at).collect();
    let mut groups: Vec<Vec<&str>> = Vec::new();
    for (i, (_, event)) in events.iter().enumerate() {
        match groups.last_mut() {
            Some(group) if i > 0 && after[i] == after[i - 1] => group.push(&event.key.name),
            _ => groups.push(vec![&event.key.name]),
        }
    }
    (groups, after)
}

/// What a subscriber of an informer built by `builder` sees when the watch
/// after an empty list brings `watch`, paced as given: the first `n`
/// events, when each was published, and the batches written for them. The
/// informer and the fake come back for further checks.
async fn paced_watch(
    builder: InformerBuilder,
    watch: Vec<(Duration, Result<kube::api::WatchEvent<Value>, kube::Error>)>,
    n: usize,
) -> (Informer, Fake, Vec<(Instant, Event)>, u64) {
    let fake = Fake::new(vec![page(vec![], "1", None), Reply::WatchPaced(watch)]);
    let informer = start(builder, &fake).await;
    let mut events = Box::pin(informer.subscribe());
    synced(&informer).await;
    let batches_before = informer.metrics().batches;
    let got = next_events(&mut events, n).await;
    let batches = informer.metrics().batches - batches_before;
    (informer, fake, got, batches)
}

/// With the default batching (no window), a batch is what the watch had
/// ready when it was read: events that arrived together are stored
/// together, and a lone event is stored at once, waiting for no timer.
#[tokio::test(start_paused = true)]
async fn by_default_watch_events_are_stored_as_they_arrive_with_those_ready_together() {
    let dir = tempfile::tempdir().unwrap();
    let ms = Duration::from_millis;
    let watch = vec![
        (ms(0), added("a", 2)),
        (ms(0), added("b", 3)),
        (ms(40), added("c", 4)),
        (ms(40), added("d", 5)),
        (ms(0), modified("d", 6)),
    ];
    let (informer, fake, got, written) = paced_watch(pods(dir.path()), watch, 5).await;
    assert_eq!(
        spelled(&got),
        [
            "Added a@2",
            "Added b@3",
            "Added c@4",
            "Added d@5",
            "Modified d@6"
        ]
    );
    let (groups, after) = batches(&got, fake.calls_at()[1].0);
    assert_eq!(groups, [vec!["a", "b"], vec!["c"], vec!["d", "d"]]);
    // The paused clock moves only to the fake's next event: a batch that
    // waited for a timer would be published later than its last event.
    assert_eq!(after[0], ms(0), "a and b: {after:?}");
    assert_eq!(after[2], ms(40), "c: {after:?}");
    assert_eq!(after[3], ms(80), "d: {after:?}");
    assert_eq!(written, 3);
    assert_eq!(stored(&informer), ["a@2", "b@3", "c@4", "d@6"]);
    informer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn watch_events_are_stored_in_batches_closed_by_the_window_or_the_batch_max() {
    let dir = tempfile::tempdir().unwrap();
    let ms = Duration::from_millis;
    let watch = vec![
        (ms(0), added("a", 2)),
        (ms(10), added("b", 3)),
        // After a and b's window closed.
        (ms(90), added("c", 4)),
        // Four at once: three fill a batch, the fourth waits out a window.
        (ms(200), added("d", 5)),
        (ms(0), added("e", 6)),
        (ms(0), added("f", 7)),
        (ms(0), added("g", 8)),
    ];
    let builder = pods(dir.path()).batch(3, ms(50));
    let (informer, fake, got, written) = paced_watch(builder, watch, 7).await;
    assert_eq!(
        spelled(&got),
        [
            "Added a@2",
            "Added b@3",
            "Added c@4",
            "Added d@5",
            "Added e@6",
            "Added f@7",
            "Added g@8"
        ]
    );
    let (groups, after) = batches(&got, fake.calls_at()[1].0);
    assert_eq!(
        groups,
        [vec!["a", "b"], vec!["c"], vec!["d", "e", "f"], vec!["g"]]
    );
    assert!(
        after[0] >= ms(50) && after[0] < ms(100),
        "a and b wait out the window from a's arrival: {after:?}"
    );
    assert!(
        after[2] >= ms(150),
        "c waits out a window of its own: {after:?}"
    );
    assert!(
        after[3] < after[2] + ms(250),
        "d, e, f are stored as soon as they fill a batch: {after:?}"
    );
    assert!(
        after[6] >= after[3] + ms(50),
        "g waits out its window: {after:?}"
    );
    assert_eq!(written, 4);
    assert_eq!(
        stored(&informer),
        ["a@2", "b@3", "c@4", "d@5", "e@6", "f@7", "g@8"]
    );
    informer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn resync_redelivers_every_stored_object_each_period_without_api_calls() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(vec![
        page(vec![pod("a", 1), pod("b", 2)], "2", None),
        Reply::Watch(Ok(vec![]), false),
    ]);
    let period = Duration::from_secs(30);
    let started = Instant::now();
    let informer = start(pods(dir.path()).resync(period), &fake).await;
    synced(&informer).await;
    let mut events = Box::pin(informer.subscribe());
    let calls = fake.calls();
    assert_eq!(calls, [list_call(None), watch_call("2", false)]);
    for round in 1..=2u32 {
        tokio::time::sleep_until(started + period * round - Duration::from_secs(1)).await;
        assert!(
            events.next().now_or_never().is_none(),
            "nothing before the period ends (round {round})"
        );
        let got = next_events(&mut events, 2).await;
        assert_eq!(spelled(&got), ["Resync a@1", "Resync b@2"]);
        for (at, event) in &got {
            assert!(*at >= started + period * round, "round {round} early");
            let held = informer.get(&event.key).unwrap();
            assert_eq!(event.new, held, "the stored object");
            assert_eq!(event.old(), held.as_ref());
        }
    }
    assert_eq!(fake.calls(), calls, "resync makes no API call");
    informer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failing_requests_are_retried_after_growing_delays_reset_by_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let failed = || api_error(500, "InternalError");
    let fake = Fake::new(vec![
        Reply::List(Err(failed())),
        Reply::List(Err(failed())),
        Reply::List(Err(failed())),
        Reply::List(Err(failed())),
        page(vec![pod("a", 1)], "1", None),
        Reply::Watch(Err(failed()), false),
        Reply::Watch(Err(failed()), false),
        Reply::Watch(Ok(vec![added("b", 2)]), false),
    ]);
    let informer = start(pods(dir.path()), &fake).await;
    synced(&informer).await;
    within("b stored", informer.wait_for_rv("2")).await.unwrap();
    assert_eq!(stored(&informer), ["a@1", "b@2"]);
    let calls = fake.calls_at();
    let kinds: Vec<Call> = calls.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(
        kinds,
        [
            list_call(None),
            list_call(None),
            list_call(None),
            list_call(None),
            list_call(None),
            watch_call("1", false),
            watch_call("1", false),
            watch_call("1", false),
        ]
    );
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let s = Duration::from_secs;
    let within_range = |gap: Duration, lo: Duration, hi: Duration| gap >= lo && gap <= hi;
    // Equal jitter: each delay is half its exponential step plus up to the
    // other half; the step doubles from 1 s and stops at 4 s.
    let expected = [
        (s(1) / 2, s(1)),
        (s(1), s(2)),
        (s(2), s(4)),
        (s(2), s(4)),
        // The list succeeded: the watch is made at once...
        (Duration::ZERO, Duration::ZERO),
        // ...and its failures start again from the first step.
        (s(1) / 2, s(1)),
        (s(1), s(2)),
    ];
    for (i, (gap, (lo, hi))) in gaps.iter().zip(expected).enumerate() {
        assert!(
            within_range(*gap, lo, hi),
            "delay {i} is {gap:?}, not within {lo:?}..={hi:?}: {gaps:?}"
        );
    }
    let m = informer.metrics();
    assert_eq!(m.list_requests, 5, "{m:?}");
    let failure = informer.last_failure().expect("the failures are recorded");
    assert_eq!(failure.cause, FailureCause::Server, "{failure:?}");
    informer.shutdown().await;
}
