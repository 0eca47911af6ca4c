//! WATCH: a stream of newline-delimited JSON events fed from the resource's
//! watch cache.
//!
//! Each stream keeps a position (the newest version up to which it has sent
//! everything) and reads forward from the history whenever the version
//! counter moves, so a slow client never misses an event and never blocks
//! writers; one that falls out of the history gets an ERROR 410, as from a
//! real server. Bookmarks come from the cacher's dispatch
//! ([`super::bookmarks`]); the stream ends at its deadline on the
//! simulator's clock.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use serde_json::Value;
use tokio::sync::mpsc;

use super::clock::SimTime;
use super::faults::StreamFault;
use super::filter::Filter;
use super::list::wait_for_rv;
use super::object::{write_partial_metadata, Stored};
use super::params::{ListParams, RvParam};
use super::representation::Representation;
use super::resources::{ResourceDef, ResourceId, RESOURCES};
use super::state::{Event, EventType};
use super::status::ApiError;
use super::table::{self, TableRequest};
use super::{Counters, GoneMode, Shared};

/// Chunks of a watch body; an `Err` aborts the connection mid-stream.
pub(crate) type Chunk = Result<Bytes, std::io::Error>;

/// The body of a watch response. An injected cut arrives as an `Err`
/// chunk; before passing it on, the body reports "not ready" once, so the
/// connection flushes what was already written (hyper only flushes when the
/// body is pending) and the client really receives the partial line.
pub(crate) struct WatchBody {
    rx: mpsc::Receiver<Chunk>,
    held: Option<std::io::Error>,
}

impl WatchBody {
    pub fn new(rx: mpsc::Receiver<Chunk>) -> WatchBody {
        WatchBody { rx, held: None }
    }
}

impl futures::Stream for WatchBody {
    type Item = Chunk;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Chunk>> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(e) = this.held.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.held = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    }
}

/// Events read from history per lock acquisition.
const BATCH: usize = 1024;
/// Buffered bytes that force a flush to the connection.
const FLUSH_AT: usize = 64 * 1024;
/// After a wake-up, events are gathered for at most this long before being
/// sent: under a steady write load one wake-up and one chunk per write
/// would cost far more than the events themselves.
const COALESCE: Duration = Duration::from_millis(2);

/// A watch that has been accepted: what it starts from.
pub(crate) struct WatchPlan {
    r: ResourceId,
    filter: Filter,
    /// Synthetic ADDED events sent first.
    initial: Vec<Arc<Stored>>,
    /// Send the initial-events-end bookmark after them.
    initial_end: bool,
    /// Changes after this version follow.
    from: u64,
    /// Bookmarks must be newer than this to be sent: the start version, or
    /// the newest event already in the history when the watch began
    /// (cache_watcher.go `processInterval`, then `process`).
    bookmark_floor: u64,
    bookmarks: bool,
    /// When the server ends the watch, on the simulator's clock.
    deadline: SimTime,
    /// The stream opens with this ERROR instead (GoneMode::ErrorEvent).
    gone: Option<ApiError>,
    /// How objects are written.
    to: Representation,
}

/// How long a watch runs: its `timeoutSeconds`, or when that is absent or
/// zero the apiserver's default, a random time between the minimum request
/// timeout and twice it (staging/src/k8s.io/apiserver/pkg/endpoints/
/// handlers/get.go `ListResource`: `minRequestTimeout * (rand.Float64() +
/// 1.0)`).
fn watch_timeout(shared: &Shared, p: &ListParams) -> Duration {
    match p.timeout_seconds {
        Some(s) if s > 0 => Duration::from_secs(s),
        _ => {
            let f: f64 = shared.rng().random();
            shared.config.min_request_timeout.mul_f64(1.0 + f)
        }
    }
}

/// Decides where a watch starts, or refuses it.
pub(crate) async fn plan(
    shared: &Shared,
    r: ResourceId,
    filter: Filter,
    p: &ListParams,
    to: Representation,
) -> Result<WatchPlan, ApiError> {
    if p.send_initial_events.is_some() && !shared.config.watch_list {
        return Err(ApiError::invalid(
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        ));
    }
    let timeout = watch_timeout(shared, p);
    let mut plan = WatchPlan {
        r,
        filter,
        initial: Vec::new(),
        initial_end: false,
        from: 0,
        bookmark_floor: 0,
        bookmarks: p.bookmarks,
        deadline: shared.clock.now() + timeout,
        gone: None,
        to,
    };
    let initial = match p.send_initial_events {
        Some(send) => {
            if let RvParam::At(n) = p.rv {
                wait_for_rv(shared, n).await?;
            }
            plan.initial_end = send && p.bookmarks;
            send
        }
        None => match p.rv {
            RvParam::Unset | RvParam::Any => true,
            RvParam::At(n) => {
                wait_for_rv(shared, n).await?;
                let st = shared.read();
                let floor = st.floor(r);
                if n < floor {
                    let err = ApiError::too_old(n, floor);
                    match shared.config.gone {
                        GoneMode::Http410 => return Err(err),
                        GoneMode::ErrorEvent => plan.gone = Some(err),
                    }
                }
                plan.from = n;
                plan.bookmark_floor = st.history(r).newest_rv().unwrap_or(n).max(n);
                false
            }
        },
    };
    if initial || p.send_initial_events == Some(false) {
        if p.rv == RvParam::Unset {
            // A consistent read: the cacher asks etcd for progress and
            // waits until it has seen the current version.
            shared.update(|st| st.notify_progress(r));
        }
        let st = shared.read();
        plan.from = st.rv();
        plan.bookmark_floor = plan.from;
        if initial {
            plan.initial = st
                .current(r)
                .filter(|o| plan.filter.matches(o))
                .cloned()
                .collect();
        }
    }
    Ok(plan)
}

/// Where the stream's bytes go: buffers lines, counts them, and applies the
/// stream fault.
struct Sink<'a> {
    tx: mpsc::Sender<Chunk>,
    shared: &'a Shared,
    res: &'static ResourceDef,
    to: Representation,
    buf: Vec<u8>,
    lines: usize,
    fault: Option<StreamFault>,
    /// Whether the next Table carries the column definitions: only the
    /// stream's first object does (`watchEmbeddedEncoder.doEncode`).
    headers: bool,
}

/// The stream ended: the client left, or a fault cut it.
struct Closed;

impl Sink<'_> {
    async fn flush(&mut self) -> Result<(), Closed> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        Counters::add(&self.shared.counters.bytes_sent, chunk.len() as u64);
        self.tx.send(Ok(chunk)).await.map_err(|_| Closed)
    }

    async fn cut(&mut self) -> Closed {
        let _ = self.flush().await;
        let _ = self
            .tx
            .send(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "injected fault: watch stream cut",
            )))
            .await;
        Closed
    }

    /// Writes one complete line.
    async fn line(&mut self, line: Vec<u8>) -> Result<(), Closed> {
        match self.fault {
            Some(StreamFault::CutMidLine) => {
                self.buf.extend_from_slice(&line[..line.len() / 2]);
                return Err(self.cut().await);
            }
            Some(StreamFault::CutAfter(n)) if self.lines >= n => return Err(self.cut().await),
            _ => {}
        }
        self.buf.extend_from_slice(&line);
        self.lines += 1;
        if self.buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn event(&mut self, kind: &str, obj: &Stored) -> Result<(), Closed> {
        let mut line = Vec::with_capacity(obj.body.len() + 64);
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(kind.as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        match self.to {
            Representation::Table(request) => {
                let object = obj.full(self.res);
                self.write_table(&object, &request, &mut line);
            }
            to => obj.write_as(self.res, to, &mut line),
        }
        line.extend_from_slice(b"}\n");
        Counters::add(&self.shared.counters.watch_events_sent, 1);
        self.line(line).await
    }

    /// An event's object as the Table the watch asked for: only the
    /// stream's first carries the column definitions.
    fn write_table(&mut self, object: &Value, request: &TableRequest, out: &mut Vec<u8>) {
        let now = self.shared.clock.wall_now();
        table::write_object(self.res, object, request, self.headers, now, out);
        self.headers = false;
    }

    async fn bookmark(&mut self, rv: u64, initial_end: bool) -> Result<(), Closed> {
        let mut metadata = serde_json::json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = serde_json::json!({"k8s.io/initial-events-end": "true"});
        }
        // The bookmark object is an empty object of the watched kind, then
        // converted like every other object of the watch.
        let mut object = Vec::new();
        let empty = serde_json::json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": metadata});
        match self.to {
            Representation::Table(request) => self.write_table(&empty, &request, &mut object),
            Representation::Full => object.extend_from_slice(empty.to_string().as_bytes()),
            Representation::PartialObjectMetadata | Representation::PartialObjectMetadataList => {
                write_partial_metadata(metadata.to_string().as_bytes(), &mut object)
            }
        }
        Counters::add(&self.shared.counters.bookmarks_sent, 1);
        let mut line = b"{\"type\":\"BOOKMARK\",\"object\":".to_vec();
        line.extend_from_slice(&object);
        line.extend_from_slice(b"}\n");
        self.line(line).await?;
        self.flush().await
    }

    async fn error(&mut self, err: &ApiError) -> Result<(), Closed> {
        // A Status is sent as is, but it still spends the headers.
        self.headers = false;
        let ev = serde_json::json!({"type": "ERROR", "object": err.to_status()});
        let mut line = ev.to_string().into_bytes();
        line.push(b'\n');
        self.line(line).await?;
        self.flush().await
    }
}

/// How an event looks to a watcher with this filter: a change that moves
/// an object into the selection is ADDED, out of it DELETED.
fn visible(filter: &Filter, ev: &Event) -> Option<EventType> {
    let now = filter.matches(&ev.object);
    match ev.kind {
        EventType::Added | EventType::Deleted => now.then_some(ev.kind),
        EventType::Modified => {
            let before = ev.prev.as_ref().is_some_and(|p| filter.matches(p));
            match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            }
        }
    }
}

/// Runs one watch stream until timeout, client disconnect, fault or
/// shutdown.
pub(crate) async fn run(shared: Arc<Shared>, plan: WatchPlan, tx: mpsc::Sender<Chunk>) {
    Counters::add(&shared.counters.active_watches, 1);
    let fault = shared.faults().take_stream();
    let mut sink = Sink {
        tx,
        shared: &shared,
        res: &RESOURCES[plan.r],
        to: plan.to,
        buf: Vec::new(),
        lines: 0,
        fault,
        headers: true,
    };
    let _ = stream(&shared, &plan, &mut sink).await;
    shared
        .counters
        .active_watches
        .fetch_sub(1, Ordering::Relaxed);
}

/// How far a stream has got.
struct Position {
    /// Everything of the resource up to this version has been sent.
    pos: u64,
    /// The version of the newest event read from the history.
    last_event: u64,
}

/// Sends the stream's events after `at.pos`, up to `through` (everything
/// there is when `None`), and moves past them. Falling out of the history
/// ends the stream with an ERROR 410, as a real server ends such a watch.
async fn send_events(
    shared: &Shared,
    plan: &WatchPlan,
    sink: &mut Sink<'_>,
    at: &mut Position,
    through: Option<u64>,
) -> Result<Flow, Closed> {
    loop {
        let (batch, current) = {
            let st = shared.read();
            (st.events_after(plan.r, at.pos, BATCH), st.rv())
        };
        let events = match batch {
            Ok(events) => events,
            Err(err) => {
                sink.error(&err).await?;
                return Ok(Flow::End);
            }
        };
        let whole = events.len() < BATCH;
        for ev in &events {
            if through.is_some_and(|t| ev.rv > t) {
                return Ok(Flow::Go);
            }
            at.pos = ev.rv;
            at.last_event = ev.rv;
            if let Some(kind) = visible(&plan.filter, ev) {
                sink.event(kind.as_str(), &ev.object).await?;
            }
        }
        if whole {
            // Everything of this resource up to `current` has been sent.
            at.pos = at.pos.max(through.map_or(current, |t| t.min(current)));
            return Ok(Flow::Go);
        }
    }
}

/// Whether a stream goes on.
enum Flow {
    Go,
    End,
}

/// The next bookmark version from the cacher's dispatch; never, for a
/// stream that gets none.
async fn next_bookmark(rx: &mut Option<mpsc::Receiver<u64>>) -> Option<u64> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn stream(shared: &Shared, plan: &WatchPlan, sink: &mut Sink<'_>) -> Result<(), Closed> {
    match sink.fault {
        Some(StreamFault::Stall(d)) => {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = sink.tx.closed() => return Err(Closed),
            }
        }
        Some(StreamFault::MalformedLine) => {
            sink.line(b"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\"\n".to_vec())
                .await?;
        }
        Some(StreamFault::UnknownEventType) => {
            let ev = serde_json::json!({
                "type": "SURPRISE",
                "object": {"kind": sink.res.kind, "apiVersion": sink.res.api_version(), "metadata": {"resourceVersion": plan.from.to_string()}},
            });
            sink.line(format!("{ev}\n").into_bytes()).await?;
        }
        Some(StreamFault::CutAfter(0)) => return Err(sink.cut().await),
        _ => {}
    }
    if let Some(err) = &plan.gone {
        sink.error(err).await?;
        return Ok(());
    }
    for obj in &plan.initial {
        sink.event(EventType::Added.as_str(), obj).await?;
    }
    if plan.initial_end {
        // Sent right after the initial events (cacher.go
        // `setInitialEventsEndBookmarkIfRequested`).
        sink.bookmark(plan.from, true).await?;
    }
    let mut bookmarks = if plan.bookmarks {
        shared.register_for_bookmarks(plan.r, plan.deadline)
    } else {
        None
    };
    let mut rx = shared.notify.subscribe();
    let mut at = Position {
        pos: plan.from,
        last_event: 0,
    };
    loop {
        rx.borrow_and_update();
        if let Flow::End = send_events(shared, plan, sink, &mut at, None).await? {
            return Ok(());
        }
        sink.flush().await?;
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                tokio::time::sleep(COALESCE).await;
            }
            Some(rv) = next_bookmark(&mut bookmarks) => {
                // The cacher dispatches in order: the events up to the
                // bookmark's version first.
                if let Flow::End = send_events(shared, plan, sink, &mut at, Some(rv)).await? {
                    return Ok(());
                }
                // Only a bookmark newer than where the watch started
                // (cache_watcher.go `process`). An event written after the
                // cacher took the bookmark's version may have gone out
                // first; the bookmark then carries that event's version, so
                // versions never go backwards on the stream.
                if rv > plan.bookmark_floor {
                    sink.bookmark(rv.max(at.last_event), false).await?;
                }
            }
            _ = shared.clock.sleep_until(plan.deadline) => return Ok(()),
            _ = sink.tx.closed() => return Err(Closed),
            _ = shared.shutdown.cancelled() => return Ok(()),
        }
    }
}
