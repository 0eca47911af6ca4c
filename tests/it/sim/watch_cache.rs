//! The simulator's watch cache against kube-apiserver's: how much history
//! it keeps (and so when a resume gets 410), when bookmarks go out, and
//! when watches end. Each test names the upstream rule it follows, in
//! staging/src/k8s.io/apiserver/pkg/storage/cacher unless said otherwise.
//!
//! Time is the simulator's clock, which the tests advance (with the writes
//! that would have happened meanwhile) instead of waiting.

use std::time::Duration;

use crate::support::sim::*;
use kube_persist::sim::{HistoryConfig, Simulator};
use serde_json::Value;

fn watch_url(sim: &Simulator, rv: u64, extra: &str) -> String {
    format!(
        "{}/api/v1/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true{extra}",
        sim.url()
    )
}

async fn watch_status(sim: &Simulator, rv: u64) -> (u16, Value) {
    let url = format!(
        "{}/api/v1/pods?watch=1&resourceVersion={rv}&timeoutSeconds=1",
        sim.url()
    );
    let mut w = WatchStream::open(&url).await;
    if w.status == 200 {
        let events = w.rest().await;
        return (200, Value::Array(events));
    }
    get(&url).await
}

/// watch_cache_history.go `resizeCacheLocked` and `GetIntervalLocked`: at a
/// steady 10 writes/s the ring doubles from 100 while its oldest event is
/// younger than 75 s, so it settles at 800 events (750 is 75 s of them):
/// an outage of 80 s resumes, one more write makes it 410.
#[tokio::test]
async fn an_outage_gets_410_exactly_when_the_ring_has_turned_over() {
    let sim = sim(|c| c.pods = 200).await;
    // Steady state first: two minutes at 10 writes/s.
    assert_eq!(
        sim.advance_with_writes(Duration::from_secs(120), 10.0),
        1200
    );
    assert_eq!(pods_cache(&sim).capacity, 800);
    let stored = sim.current_rv();
    // The informer is down 80 s while the server takes 10 writes/s.
    assert_eq!(sim.advance_with_writes(Duration::from_secs(80), 10.0), 800);
    let (code, events) = watch_status(&sim, stored).await;
    assert_eq!(code, 200, "{events}");
    assert_eq!(events.as_array().unwrap().len(), 800, "every write since");
    sim.mutate(1);
    let (code, status) = watch_status(&sim, stored).await;
    assert_eq!(code, 410);
    assert_eq!(status["reason"], "Expired");
    assert_eq!(
        status["message"],
        format!("too old resource version: {stored} ({})", stored + 1)
    );
}

/// `capacityUpperBound` and `resizeCacheLocked`: the ring stops growing at
/// its upper bound even while its events are fresh, so a burst larger than
/// the bound is 410 however recent.
#[tokio::test]
async fn the_upper_bound_caps_the_window_of_a_busy_resource() {
    let sim = sim(|c| {
        c.pods = 50;
        c.history = HistoryConfig {
            upper_bound: 400,
            ..HistoryConfig::default()
        };
    })
    .await;
    let stored = sim.current_rv();
    assert_eq!(sim.mutate_counted(400), 400);
    assert_eq!(watch_status(&sim, stored).await.0, 200);
    assert_eq!(pods_cache(&sim).capacity, 400);
    sim.mutate(1);
    assert_eq!(watch_status(&sim, stored).await.0, 410);
}

/// `defaultLowerBoundCapacity` and the shrink arm of `resizeCacheLocked`:
/// a quiet resource keeps its last 100 events however old; a busy one that
/// goes quiet halves its ring once even its newest quarter is older than
/// 75 s.
#[tokio::test]
async fn quiet_resources_keep_100_events_and_rings_shrink_by_halves() {
    let sim = sim(|c| c.pods = 100).await;
    // One write a minute for 100 minutes: the ring never grows.
    let stored = sim.current_rv();
    sim.advance_with_writes(Duration::from_secs(100 * 60), 1.0 / 60.0);
    assert_eq!(pods_cache(&sim).capacity, 100);
    assert_eq!(
        watch_status(&sim, stored).await.0,
        200,
        "100 writes, 100 minutes ago"
    );
    sim.advance_with_writes(Duration::from_secs(60), 1.0 / 60.0);
    assert_eq!(watch_status(&sim, stored).await.0, 410);
    // A burst grows it; then one write every 30 s shrinks it again.
    sim.mutate(1_000);
    assert_eq!(pods_cache(&sim).capacity, 1_600);
    let writes_to_shrink = 1_600 - pods_cache(&sim).events as u64 + 1;
    let secs = writes_to_shrink * 30;
    sim.advance_with_writes(Duration::from_secs(secs), 1.0 / 30.0);
    assert_eq!(pods_cache(&sim).capacity, 800);
}

/// A forced compaction is the simulator's stand-in for a cacher that
/// relisted (watch_cache_history.go `ResetLocked`): watches from before it
/// get 410, from it on they are served.
#[tokio::test]
async fn compaction_resets_every_watch_cache() {
    let sim = sim(|c| c.pods = 10).await;
    let old = sim.current_rv();
    sim.mutate(3);
    sim.compact();
    let now = sim.current_rv();
    assert_eq!(watch_status(&sim, old).await.0, 410);
    assert_eq!(watch_status(&sim, now).await.0, 200);
    assert_eq!(pods_cache(&sim).oldest_servable_rv, now);
}

/// Reads lines until a BOOKMARK; the events before it are returned too.
async fn until_bookmark(w: &mut WatchStream) -> (Vec<Value>, Value) {
    let mut before = Vec::new();
    loop {
        let ev = w.next_event().await;
        if ev["type"] == "BOOKMARK" {
            return (before, ev);
        }
        before.push(ev);
    }
}

/// Advances the simulator's clock to `secs` since its start.
fn advance_to(sim: &Simulator, secs: f64) {
    let now = sim.clock_secs();
    if secs > now {
        sim.advance_clock(Duration::from_secs_f64(secs - now));
    }
}

/// Whether anything arrives on the stream within `wait` of real time.
async fn silent_for(w: &mut WatchStream, wait: Duration) -> bool {
    tokio::time::timeout(wait, w.next_line()).await.is_err()
}

/// cacher.go `dispatchEvents` and `watcherBookmarkTimeBuckets`, and
/// cache_watcher.go `nextBookmarkTime`: a watcher gets a bookmark about a
/// minute after it started (its one-second bucket), none right after a
/// plain resume, and the next a minute after that.
#[tokio::test]
async fn bookmarks_come_about_every_minute_and_not_right_after_a_resume() {
    let sim = sim(|c| c.pods = 20).await;
    let from = sim.current_rv();
    let started = sim.clock_secs();
    let mut w = WatchStream::open(&watch_url(&sim, from, "&timeoutSeconds=3600")).await;
    sim.mutate(1);
    let first = w.next_event().await;
    assert_ne!(
        first["type"], "BOOKMARK",
        "no bookmark right after a resume"
    );
    assert!(silent_for(&mut w, Duration::from_millis(1_600)).await);
    sim.advance_clock(Duration::from_secs(30));
    assert!(
        silent_for(&mut w, Duration::from_millis(1_600)).await,
        "none at 30 s"
    );
    advance_to(&sim, started + 60.0);
    let (events, bookmark) = until_bookmark(&mut w).await;
    assert!(events.is_empty(), "{events:?}");
    // Not before its minute; how late depends on the jittered tick and on
    // the real time the simulator's clock also runs with.
    let first_at = sim.clock_secs() - started;
    assert!(first_at >= 59.0, "first bookmark at {first_at} s");
    assert_eq!(rv_of(&bookmark["object"]), rv_of(&first["object"]));
    advance_to(&sim, started + first_at + 60.0);
    let (_, second) = until_bookmark(&mut w).await;
    let at = sim.clock_secs() - started - first_at;
    assert!(at >= 59.0, "second bookmark {at} s after the first");
    assert_eq!(second["object"]["metadata"].as_object().unwrap().len(), 1);
}

/// cache_watcher.go `nextBookmarkTime`: 2 s before its deadline a watcher
/// gets a last bookmark, and then the server closes it at the deadline.
#[tokio::test]
async fn a_bookmark_comes_two_seconds_before_the_deadline() {
    let sim = sim(|c| c.pods = 20).await;
    let from = sim.current_rv();
    let started = sim.clock_secs();
    let mut w = WatchStream::open(&watch_url(&sim, from, "&timeoutSeconds=10")).await;
    sim.mutate(1);
    let change = w.next_event().await;
    advance_to(&sim, started + 8.0);
    let (events, bookmark) = until_bookmark(&mut w).await;
    assert!(events.is_empty());
    let at = sim.clock_secs() - started;
    assert!(at >= 7.0, "pre-deadline bookmark at {at} s");
    assert_eq!(rv_of(&bookmark["object"]), rv_of(&change["object"]));
    // The bookmark came before the deadline's end of the stream. A watcher
    // popped at its pre-deadline moment is filed again for it (the moment
    // is not yet past), so one more bookmark of the same version may
    // come; then the stream ends cleanly.
    sim.advance_clock(Duration::from_secs(3));
    let rest = w.rest().await;
    assert!(rest.len() <= 1, "{rest:?}");
    for e in &rest {
        assert_eq!(e["type"], "BOOKMARK", "{rest:?}");
        assert_eq!(rv_of(&e["object"]), rv_of(&change["object"]));
    }
}

/// `nextBookmarkTime` returns nothing once the pre-deadline moment has
/// passed: a watch of 2 s or less gets no bookmark at all.
#[tokio::test]
async fn a_watch_shorter_than_two_seconds_gets_no_bookmark() {
    let sim = sim(|c| {
        c.pods = 20;
        c.bookmark_interval = Duration::from_millis(100);
    })
    .await;
    let from = sim.current_rv();
    let mut w = WatchStream::open(&watch_url(&sim, from, "&timeoutSeconds=2")).await;
    sim.mutate(3);
    let events = w.rest().await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["type"] != "BOOKMARK"), "{events:?}");
}

/// cache_watcher.go `process`: a bookmark must be newer than where the
/// watch started (the start version, or the newest event already in the
/// history). On a resource nobody writes, a resumed watch gets none, until
/// etcd's progress notification (every 5 s of idleness, as kubeadm
/// configures etcd) tells the cacher of versions spent elsewhere.
#[tokio::test]
async fn bookmarks_follow_etcd_progress_on_an_idle_resource() {
    let sim = sim(|c| {
        c.pods = 20;
        c.bookmark_interval = Duration::from_millis(200);
    })
    .await;
    let from = sim.current_rv();
    let mut idle = WatchStream::open(&watch_url(&sim, from, "&timeoutSeconds=60")).await;
    assert!(
        silent_for(&mut idle, Duration::from_millis(1_500)).await,
        "nothing newer than the start: no bookmark"
    );
    // Writes to another resource move the global version; the pods'
    // cacher learns of it at the next progress notification.
    for i in 0..3 {
        sim.create(
            "configmaps",
            serde_json::json!({"metadata": {"name": format!("c{i}"), "namespace": "ns-000"}}),
        )
        .unwrap();
    }
    sim.advance_clock(Duration::from_secs(6));
    let (events, bookmark) = until_bookmark(&mut idle).await;
    assert!(events.is_empty());
    assert_eq!(rv_of(&bookmark["object"]), sim.current_rv());
}

/// A watch without `timeoutSeconds` (or with 0) ends after the apiserver's
/// default: a random time between `--min-request-timeout` (1800 s) and
/// twice that (endpoints/handlers/get.go `ListResource`).
#[tokio::test]
async fn a_watch_without_a_timeout_ends_between_30_and_60_minutes() {
    let sim = sim(|c| c.pods = 20).await;
    for extra in ["", "&timeoutSeconds=0"] {
        let from = sim.current_rv();
        let url = format!(
            "{}/api/v1/pods?watch=1&resourceVersion={from}{extra}",
            sim.url()
        );
        let mut w = WatchStream::open(&url).await;
        sim.advance_clock(Duration::from_secs(1_799));
        sim.mutate(1);
        let ev = w.next_event().await;
        assert!(
            ev["object"]["metadata"]["name"].is_string(),
            "still open: {ev}"
        );
        sim.advance_clock(Duration::from_secs(1_801));
        assert!(w.rest().await.is_empty(), "ended cleanly by 60 minutes");
    }
}
