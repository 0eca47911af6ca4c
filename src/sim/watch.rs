//! WATCH: a stream of newline-delimited JSON events fed from the history.
//!
//! Each stream keeps a position (the last global version it has examined)
//! and reads forward from the history whenever the version counter moves, so
//! a slow client never misses an event and never blocks writers; one that
//! falls behind compaction gets an ERROR 410, as from a real server.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::faults::StreamFault;
use super::filter::Filter;
use super::list::wait_for_rv;
use super::object::{write_partial_metadata, Stored};
use super::params::{ListParams, RvParam};
use super::representation::Representation;
use super::resources::{ResourceDef, ResourceId, RESOURCES};
use super::state::{Event, EventType};
use super::status::ApiError;
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
    bookmarks: bool,
    timeout: Duration,
    /// The stream opens with this ERROR instead (GoneMode::ErrorEvent).
    gone: Option<ApiError>,
    /// How objects are written.
    to: Representation,
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
    let timeout = match p.timeout_seconds {
        Some(s) => Duration::from_secs(s),
        // A real server picks between 30 and 60 minutes.
        None => Duration::from_secs(shared.rng().random_range(1800..3600)),
    };
    let mut plan = WatchPlan {
        r,
        filter,
        initial: Vec::new(),
        initial_end: false,
        from: 0,
        bookmarks: p.bookmarks,
        timeout,
        gone: None,
        to,
    };
    let initial = match p.send_initial_events {
        Some(send) => {
            if let RvParam::At(n) = p.rv {
                wait_for_rv(shared, n).await?;
            }
            plan.initial_end = send;
            send
        }
        None => match p.rv {
            RvParam::Unset | RvParam::Any => true,
            RvParam::At(n) => {
                wait_for_rv(shared, n).await?;
                let st = shared.read();
                if n < st.compacted() {
                    let err = ApiError::too_old(n, st.compacted());
                    match shared.config.gone {
                        GoneMode::Http410 => return Err(err),
                        GoneMode::ErrorEvent => plan.gone = Some(err),
                    }
                }
                plan.from = n;
                false
            }
        },
    };
    if initial || p.send_initial_events == Some(false) {
        let st = shared.read();
        plan.from = st.rv();
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
        obj.write_as(self.res, self.to, &mut line);
        line.extend_from_slice(b"}\n");
        Counters::add(&self.shared.counters.watch_events_sent, 1);
        self.line(line).await
    }

    async fn bookmark(&mut self, rv: u64, initial_end: bool) -> Result<(), Closed> {
        let mut metadata = serde_json::json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = serde_json::json!({"k8s.io/initial-events-end": "true"});
        }
        // The bookmark object is an empty object of the watched kind, then
        // converted like every other object of the watch.
        let mut object = Vec::new();
        match self.to {
            Representation::Full => object.extend_from_slice(
                serde_json::json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": metadata})
                    .to_string()
                    .as_bytes(),
            ),
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
    };
    let _ = stream(&shared, &plan, &mut sink).await;
    shared
        .counters
        .active_watches
        .fetch_sub(1, Ordering::Relaxed);
}

async fn stream(shared: &Shared, plan: &WatchPlan, sink: &mut Sink<'_>) -> Result<(), Closed> {
    let deadline = Instant::now() + plan.timeout;
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
        sink.bookmark(plan.from, true).await?;
    }
    let mut rx = shared.notify.subscribe();
    let mut pos = plan.from;
    let every = shared.config.bookmark_interval;
    let mut next_bookmark = Instant::now() + every;
    loop {
        rx.borrow_and_update();
        loop {
            let batch = shared.read().events_after(pos, BATCH);
            let events = match batch {
                Ok(events) => events,
                Err(err) => {
                    // Fell behind compaction: the real server ends such a
                    // watch with an ERROR event.
                    sink.error(&err).await?;
                    return Ok(());
                }
            };
            if events.is_empty() {
                break;
            }
            for ev in events {
                pos = ev.rv;
                if ev.resource != plan.r {
                    continue;
                }
                if let Some(kind) = visible(&plan.filter, &ev) {
                    sink.event(kind.as_str(), &ev.object).await?;
                }
            }
        }
        sink.flush().await?;
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                tokio::time::sleep(COALESCE).await;
            }
            _ = sleep_until(next_bookmark), if plan.bookmarks => {
                sink.bookmark(pos, false).await?;
                next_bookmark = Instant::now() + every;
            }
            _ = sleep_until(deadline) => {
                if plan.bookmarks {
                    sink.bookmark(pos, false).await?;
                }
                return Ok(());
            }
            _ = sink.tx.closed() => return Err(Closed),
            _ = shared.shutdown.cancelled() => return Ok(()),
        }
    }
}
