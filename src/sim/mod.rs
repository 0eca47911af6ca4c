//! A Kubernetes API-server simulator speaking the real list/watch protocol
//! over HTTP on loopback (see LISTWATCH.md).
//!
//! It is the ground truth the rest of kube-persist is tested against, so it
//! behaves like a real API server rather than like our watcher expects: one
//! global resourceVersion, one event per write, a bounded history whose
//! compaction makes old versions and continue tokens answer 410, paginated
//! lists from one snapshot, bookmarks, streaming lists, and injectable
//! faults.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_persist::sim::Error> {
//! use kube_persist::sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig { pods: 100, ..SimConfig::default() }).await?;
//! let client = sim.client();
//! sim.mutate(10);
//! # drop(client);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod bookmarks;
mod clock;
mod faults;
mod filter;
pub mod fixtures;
pub mod history;
mod list;
pub mod load;
mod managed_fields;
mod object;
mod openapi;
mod params;
mod protobuf;
mod representation;
pub mod resources;
mod schema;
mod server;
mod state;
mod status;
mod strategic;
mod table;
mod watch;

pub use bookmarks::DEFAULT_FREQUENCY as DEFAULT_BOOKMARK_INTERVAL;
pub use history::HistoryConfig;
pub use load::LoadHandle;
pub use representation::MetadataServing;
pub use status::ApiError;

use bookmarks::Buckets;
use clock::SimClock;
use faults::Faults;
use managed_fields::FieldManager;
use resources::RESOURCES;
use state::State;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Could not bind or serve.
    #[error("simulator i/o error")]
    Io(#[from] std::io::Error),
    /// A request to the simulator's own API failed.
    #[error("simulator: {0}")]
    Api(String),
    /// The simulated API server refused a write, with the Status a client
    /// over HTTP would get.
    #[error(transparent)]
    Rejected(#[from] ApiError),
    /// No kube client could be built for the simulator's address.
    #[error("could not build a client for the simulator at {addr}: {source}")]
    Client {
        /// The simulator's address.
        addr: SocketAddr,
        /// What failed: the URL, or the client.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The configuration cannot be served.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
}

/// Result type of the simulator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a too-old resourceVersion on watch is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GoneMode {
    /// An immediate HTTP 410.
    #[default]
    Http410,
    /// A 200 stream whose first event is an ERROR carrying a 410 Status.
    ErrorEvent,
}

/// Simulator configuration. The defaults are kube-apiserver's.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on (port 0: ephemeral). Must be a loopback address.
    pub listen: SocketAddr,
    /// Pods to pre-populate.
    pub pods: usize,
    /// Namespaces to spread them over.
    pub namespaces: usize,
    /// ConfigMaps to pre-populate.
    pub configmaps: usize,
    /// RNG seed for generated objects and mutations.
    pub seed: u64,
    /// How often a watcher that allows bookmarks gets one
    /// (`defaultBookmarkFrequency`, one minute). Below a second the
    /// cacher's one-second buckets shrink to this period too, for tests
    /// that want bookmarks fast.
    pub bookmark_interval: Duration,
    /// Compact history on this interval, if set.
    pub compact_interval: Option<Duration>,
    /// How each resource's watch cache sizes its history.
    pub history: HistoryConfig,
    /// etcd's progress-notify interval: a resource whose cacher saw no event
    /// for this long learns the current version, which its bookmarks then
    /// carry. kubeadm runs etcd with 5 s; `None`: never.
    pub progress_notify_interval: Option<Duration>,
    /// Versions per second spent on objects the simulator does not serve,
    /// as a real cluster's Lease renewals spend them (a kubeadm cluster of
    /// three nodes renews about 1.3 a second). They move the global
    /// resourceVersion, and through progress notifications the bookmarks',
    /// without any watch event.
    pub background_writes_per_sec: f64,
    /// `--min-request-timeout`: a watch without `timeoutSeconds` ends after
    /// a random time between this and twice this.
    pub min_request_timeout: Duration,
    /// Largest page served, whatever `limit` asks.
    pub page_size_max: usize,
    /// Whether streaming lists (`sendInitialEvents`) are supported.
    pub watch_list: bool,
    /// How a too-old resourceVersion on watch is answered.
    pub gone: GoneMode,
    /// Whether metadata-only representations (`as=PartialObjectMetadata`,
    /// `as=PartialObjectMetadataList`) are served.
    pub metadata: MetadataServing,
}

impl Default for SimConfig {
    /// An empty cluster (namespaces only) on an ephemeral loopback port,
    /// with kube-apiserver's watch cache, bookmark and timeout behaviour
    /// and no background writes.
    fn default() -> SimConfig {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            pods: 0,
            namespaces: 3,
            configmaps: 0,
            seed: 1,
            bookmark_interval: bookmarks::DEFAULT_FREQUENCY,
            compact_interval: None,
            history: HistoryConfig::default(),
            progress_notify_interval: Some(Duration::from_secs(5)),
            background_writes_per_sec: 0.0,
            min_request_timeout: Duration::from_secs(1800),
            page_size_max: 10_000,
            watch_list: true,
            gone: GoneMode::Http410,
            metadata: MetadataServing::Served,
        }
    }
}

impl SimConfig {
    /// Refuses configurations that cannot be served.
    fn validate(&self) -> Result<()> {
        let bad = |msg: &str| Err(Error::Config(msg.to_string()));
        if !self.listen.ip().is_loopback() {
            return Err(Error::Config(format!(
                "listen address {} is not a loopback address",
                self.listen
            )));
        }
        if self.page_size_max == 0 {
            return bad("page_size_max must be at least 1");
        }
        if self.bookmark_interval.is_zero() {
            return bad("bookmark_interval must be positive");
        }
        if self.compact_interval.is_some_and(|d| d.is_zero()) {
            return bad("compact_interval must be positive");
        }
        if self.progress_notify_interval.is_some_and(|d| d.is_zero()) {
            return bad("progress_notify_interval must be positive");
        }
        if self.history.window.is_zero() {
            return bad("the history window must be positive");
        }
        if self.history.lower_bound == 0 || self.history.upper_bound < self.history.lower_bound {
            return bad("history capacity bounds must satisfy 1 <= lower <= upper");
        }
        if !(self.background_writes_per_sec.is_finite() && self.background_writes_per_sec >= 0.0) {
            return bad("background_writes_per_sec must be a non-negative number");
        }
        if self.min_request_timeout.is_zero() {
            return bad("min_request_timeout must be positive");
        }
        Ok(())
    }
}

/// An injectable fault. Over HTTP, `POST /sim/faults` takes the same values
/// as JSON: `{"status":{"code":429,"count":2,"retry_after":1}}`,
/// `{"cut_after":3}`, `"cut_mid_line"`, `{"stall":{"secs":2,"nanos":0}}`,
/// `"malformed_line"`, `"unknown_event_type"`, `"compact"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The next `count` requests get this status code (429 carries Retry-After).
    Status {
        /// HTTP status code.
        code: u16,
        /// How many requests.
        count: usize,
        /// Retry-After seconds, for 429.
        retry_after: Option<u64>,
    },
    /// The next watch stream is cut after this many events.
    CutAfter(usize),
    /// The next watch stream is cut in the middle of a line.
    CutMidLine,
    /// The next watch stream stalls for this long.
    Stall(Duration),
    /// The next watch stream sends a malformed line.
    MalformedLine,
    /// The next watch stream sends an event of an unknown type.
    UnknownEventType,
    /// Compact all history now.
    Compact,
}

/// Counters the simulator keeps.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimStats {
    /// LIST requests served.
    pub list_requests: u64,
    /// WATCH requests served.
    pub watch_requests: u64,
    /// Response bytes sent.
    pub bytes_sent: u64,
    /// Objects stored, all resources.
    pub objects: u64,
    /// Current global resourceVersion.
    pub current_rv: u64,
    /// The newest resourceVersion compacted away on request (`compact`);
    /// each resource's own window is in `watch_cache`.
    pub compacted_rv: u64,
    /// GETs of single objects.
    pub get_requests: u64,
    /// POST/PUT/PATCH/DELETE requests.
    pub write_requests: u64,
    /// ADDED/MODIFIED/DELETED events written to watch streams.
    pub watch_events_sent: u64,
    /// BOOKMARK events written to watch streams.
    pub bookmarks_sent: u64,
    /// Watch streams open now.
    pub active_watches: u64,
    /// Requests answered by an injected fault.
    pub faults_served: u64,
    /// Each resource's watch cache.
    pub watch_cache: Vec<WatchCacheStats>,
    /// Seconds the simulator's clock has run (advances included).
    pub clock_secs: f64,
}

/// One resource's watch cache, as `SimStats` reports it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WatchCacheStats {
    /// The resource's plural.
    pub resource: String,
    /// Events the ring can hold now.
    pub capacity: usize,
    /// Events it holds.
    pub events: usize,
    /// A watch from an older resourceVersion gets 410.
    pub oldest_servable_rv: u64,
}

/// Live counters behind [`SimStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub list_requests: AtomicU64,
    pub watch_requests: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub get_requests: AtomicU64,
    pub write_requests: AtomicU64,
    pub watch_events_sent: AtomicU64,
    pub bookmarks_sent: AtomicU64,
    pub active_watches: AtomicU64,
    pub faults_served: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn reset(&self) {
        for c in [
            &self.list_requests,
            &self.watch_requests,
            &self.bytes_sent,
            &self.get_requests,
            &self.write_requests,
            &self.watch_events_sent,
            &self.bookmarks_sent,
            &self.faults_served,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Tells watch streams and fresh-list waits that the server is at `rv`.
/// Writers publish after letting go of the lock, so two of them may do it
/// in either order: the later version is never replaced by the earlier
/// one, or a request waiting for it would wait out its 3 s and get a 504
/// "Too large resource version" for a version the server holds. An
/// unchanged version still wakes the streams.
fn publish_version(notify: &tokio::sync::watch::Sender<u64>, rv: u64) {
    notify.send_if_modified(|current| {
        let not_older = rv >= *current;
        if not_older {
            *current = rv;
        }
        not_older
    });
}

/// State shared by the server tasks and the [`Simulator`] handles.
pub(crate) struct Shared {
    pub config: SimConfig,
    state: RwLock<State>,
    /// Carries the current resourceVersion; watch streams wait on it.
    pub notify: tokio::sync::watch::Sender<u64>,
    pub counters: Counters,
    pub faults: Mutex<Faults>,
    /// Drives mutations and watch timeouts.
    pub rng: Mutex<StdRng>,
    /// Next index for pods the mutation load creates.
    pub next_pod: AtomicU64,
    pub shutdown: CancellationToken,
    /// The server's clock.
    pub clock: SimClock,
    /// Per resource, the watchers waiting for bookmarks.
    pub bookmark_buckets: Vec<parking_lot::Mutex<Buckets>>,
}

impl Shared {
    /// Reads the datastore.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read()
    }

    /// Writes to the datastore, then wakes watch streams. The lock is
    /// handed over fairly: under a steady write load, an unfair lock lets
    /// the writer re-take it before woken watch streams run, starving them.
    pub fn write<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        self.write_by(None, f)
    }

    /// [`Shared::write`], recording the writes in managedFields as `who`'s.
    pub fn write_as<T>(&self, who: &FieldManager, f: impl FnOnce(&mut State) -> T) -> T {
        self.write_by(Some(who.clone()), f)
    }

    fn write_by<T>(&self, who: Option<FieldManager>, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.state.write();
        st.set_time(self.clock.now(), self.clock.wall_now());
        st.set_writer(who);
        let out = f(&mut st);
        st.set_writer(None);
        let rv = st.rv();
        RwLockWriteGuard::unlock_fair(st);
        publish_version(&self.notify, rv);
        out
    }

    /// Changes the datastore in a way no watch stream needs to hear of.
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.state.write();
        st.set_time(self.clock.now(), self.clock.wall_now());
        f(&mut st)
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn rng(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> SimStats {
        let (objects, current_rv, compacted_rv, watch_cache) = {
            let st = self.read();
            let caches = RESOURCES
                .iter()
                .enumerate()
                .map(|(r, res)| WatchCacheStats {
                    resource: res.plural.to_string(),
                    capacity: st.history(r).capacity(),
                    events: st.history(r).len(),
                    oldest_servable_rv: st.floor(r),
                })
                .collect();
            (st.total() as u64, st.rv(), st.compacted(), caches)
        };
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SimStats {
            list_requests: get(&c.list_requests),
            watch_requests: get(&c.watch_requests),
            bytes_sent: get(&c.bytes_sent),
            objects,
            current_rv,
            compacted_rv,
            get_requests: get(&c.get_requests),
            write_requests: get(&c.write_requests),
            watch_events_sent: get(&c.watch_events_sent),
            bookmarks_sent: get(&c.bookmarks_sent),
            active_watches: get(&c.active_watches),
            faults_served: get(&c.faults_served),
            watch_cache,
            clock_secs: self.clock.now().as_secs_f64(),
        }
    }

    /// Applies a fault: compaction at once, everything else queued.
    pub fn inject(&self, fault: Fault) {
        if fault == Fault::Compact {
            self.write(|st| {
                let rv = st.rv();
                st.compact_to(rv)
            });
        } else {
            self.faults().push(fault);
        }
    }
}

/// A running simulator. Cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    client: kube::Client,
    server: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// Writes made through the Rust API are recorded like those of a client
/// that sends neither a `fieldManager` nor a User-Agent (kube-rs by
/// default): under an empty manager name.
fn api_writer() -> FieldManager {
    FieldManager::new("")
}

fn resource_id(resource: &str) -> Result<usize> {
    resources::by_plural(resource)
        .ok_or_else(|| Error::Api(format!("unknown resource {resource:?}")))
}

impl Simulator {
    /// Start serving: binds the (loopback) address, pre-populates the
    /// configured objects and spawns the server on the current runtime.
    pub async fn start(config: SimConfig) -> Result<Simulator> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let clock = SimClock::new();
        let mut state = State::new(config.history, config.seed);
        state.set_time(clock.now(), clock.wall_now());
        let next_pod = fixtures::populate(&mut state, &config)?;
        state.start_watch_caches();
        let (notify, _) = tokio::sync::watch::channel(state.rv());
        let width = bookmarks::bucket_width(config.bookmark_interval);
        let bookmark_buckets = RESOURCES
            .iter()
            .map(|_| {
                parking_lot::Mutex::new(Buckets::new(clock.now(), width, config.bookmark_interval))
            })
            .collect();
        let shared = Arc::new(Shared {
            rng: Mutex::new(StdRng::seed_from_u64(config.seed.wrapping_add(7))),
            config,
            state: RwLock::new(state),
            notify,
            counters: Counters::default(),
            faults: Mutex::new(Faults::default()),
            next_pod: AtomicU64::new(next_pod),
            shutdown: CancellationToken::new(),
            clock,
            bookmark_buckets,
        });
        let url: http::Uri = format!("http://{addr}")
            .parse()
            .map_err(|e| Error::Client {
                addr,
                source: Box::new(e),
            })?;
        let client = kube::Client::try_from(kube::Config::new(url)).map_err(|e| Error::Client {
            addr,
            source: Box::new(e),
        })?;
        let server = tokio::spawn(server::serve(shared.clone(), listener));
        if let Some(every) = shared.config.compact_interval {
            tokio::spawn(compact_periodically(shared.clone(), every));
        }
        for r in 0..RESOURCES.len() {
            tokio::spawn(bookmarks::dispatch(shared.clone(), r));
        }
        if let Some(every) = shared.config.progress_notify_interval {
            tokio::spawn(notify_progress_periodically(shared.clone(), every));
        }
        if shared.config.background_writes_per_sec > 0.0 {
            tokio::spawn(background_writes(shared.clone()));
        }
        tracing::info!(%addr, "simulator listening");
        Ok(Simulator {
            shared,
            addr,
            client,
            server: Arc::new(Mutex::new(Some(server))),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client pointing at the simulator.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Counters since start (or the last [`Simulator::reset_stats`]).
    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Zeroes the request and byte counters (not the state-derived ones).
    pub fn reset_stats(&self) {
        self.shared.counters.reset();
    }

    /// The current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.shared.read().rv()
    }

    /// Versions up to this one are compacted (410 for older).
    pub fn compacted_rv(&self) -> u64 {
        self.shared.read().compacted()
    }

    /// Seconds on the simulator's clock since it started, advances included.
    pub fn clock_secs(&self) -> f64 {
        self.shared.clock.now().as_secs_f64()
    }

    /// Moves the simulator's clock forward by `by`, as if that much time had
    /// passed without writes (background writes excepted): watch deadlines,
    /// bookmarks and the age of the history all see it.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Moves the clock forward by `by` while the server takes
    /// `writes_per_sec` realistic pod writes a second, each recorded at its
    /// own moment of the skipped time: the watch caches end up as they
    /// would had the time really passed. Returns the writes made. Runs
    /// synchronously; call it from a blocking context for long spans.
    pub fn advance_with_writes(&self, by: Duration, writes_per_sec: f64) -> u64 {
        load::advance(&self.shared, by, writes_per_sec)
    }

    /// Drop all history up to the current resourceVersion.
    pub fn compact(&self) {
        self.shared.inject(Fault::Compact);
    }

    /// Drop history up to `rv` (clamped to the current version).
    pub fn compact_to(&self, rv: u64) {
        self.shared.write(|st| st.compact_to(rv));
    }

    /// Queue a fault for the next requests / watch stream.
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// `resource` is the plural, e.g. `pods`; returns the stored object.
    /// The namespace comes from the object (`default` if absent).
    pub fn create(&self, resource: &str, object: Value) -> Result<Value> {
        let r = resource_id(resource)?;
        let ev = self
            .shared
            .write_as(&api_writer(), |st| st.create(r, None, object))?;
        Ok(ev.object.full(&RESOURCES[r]))
    }

    /// Replaces an object (found by its own name and namespace). A stale
    /// `metadata.resourceVersion` is a conflict; none means unconditional.
    pub fn replace(&self, resource: &str, object: Value) -> Result<Value> {
        let r = resource_id(resource)?;
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Api("object has no metadata.name".into()))?
            .to_string();
        let res = &RESOURCES[r];
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let key = res.key(ns.as_deref().or(Some("default")), &name);
        let stored = self.shared.write_as(&api_writer(), |st| {
            st.replace(r, None, &name, object)
                .map(|ev| ev.map(|e| e.object.clone()).or_else(|| st.get(r, &key)))
        })?;
        stored
            .map(|s| s.full(res))
            .ok_or_else(|| Error::Api(format!("{resource} {name:?} vanished during replace")))
    }

    /// Applies a JSON merge patch (RFC 7386) to an object.
    pub fn patch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        merge_patch: &Value,
    ) -> Result<Value> {
        let r = resource_id(resource)?;
        let res = &RESOURCES[r];
        let stored = server::patch_in(&self.shared, r, namespace, name, &api_writer(), |v| {
            json_patch::merge(v, merge_patch);
            Ok(())
        })?;
        Ok(stored.full(res))
    }

    /// Deletes an object; returns its last state.
    pub fn delete(&self, resource: &str, namespace: Option<&str>, name: &str) -> Result<Value> {
        let r = resource_id(resource)?;
        let ev = self.shared.write(|st| st.delete(r, namespace, name))?;
        Ok(ev.object.full(&RESOURCES[r]))
    }

    /// One object with `kind`/`apiVersion`, as GET serves it.
    pub fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let r = resources::by_plural(resource)?;
        let res = &RESOURCES[r];
        let st = self.shared.read();
        st.get(r, &res.key(namespace, name)).map(|s| s.full(res))
    }

    /// Current state of one resource, as a LIST would serve it (key order,
    /// items without `kind`/`apiVersion`). Unknown resources have none.
    pub fn objects(&self, resource: &str) -> Vec<Value> {
        let Some(r) = resources::by_plural(resource) else {
            return Vec::new();
        };
        let items: Vec<_> = self.shared.read().current(r).cloned().collect();
        items.iter().map(|s| s.item()).collect()
    }

    /// Apply `n` realistic random writes (updates, creates, deletes) to pods.
    pub fn mutate(&self, n: usize) {
        load::mutate(&self.shared, n);
    }

    /// Like [`Simulator::mutate`]; returns how many writes happened (each is
    /// one resourceVersion and one watch event).
    pub fn mutate_counted(&self, n: usize) -> u64 {
        load::mutate(&self.shared, n)
    }

    /// Starts a background load of `writes_per_sec` pod writes per second
    /// (on the current runtime) until the handle is stopped or dropped.
    pub fn start_load(&self, writes_per_sec: f64) -> LoadHandle {
        LoadHandle::start(self.shared.clone(), writes_per_sec)
    }

    /// Stops serving: open watch streams end, the listener closes.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        let handle = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if let Err(e) = h.await {
                tracing::warn!(error = %e, "simulator server task failed");
            }
        }
    }
}

async fn compact_periodically(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tick.tick() => shared.inject(Fault::Compact),
        }
    }
}

/// etcd's periodic progress notification to the cachers' watches.
async fn notify_progress_periodically(shared: Arc<Shared>, every: Duration) {
    let mut next = shared.clock.now() + every;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = shared.clock.sleep_until(next) => {}
        }
        shared.update(|st| st.progress_tick(every));
        next = shared.clock.now() + every;
    }
}

/// Spends versions on unserved objects at the configured rate, catching up
/// at once on whatever time the clock was advanced by.
async fn background_writes(shared: Arc<Shared>) {
    let rate = shared.config.background_writes_per_sec;
    let start = shared.clock.now();
    let mut done = 0u64;
    loop {
        let next = start + Duration::from_secs_f64((done + 1) as f64 / rate);
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = shared.clock.sleep_until(next) => {}
        }
        let due = ((shared.clock.now() - start).as_secs_f64() * rate) as u64;
        if due > done {
            shared.write(|st| st.skip_versions(due - done));
            done = due;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two writers that publish out of order (17, then 16) leave 17: the
    /// version never goes back (it did, and case 07 of the conformance
    /// suite got 504 "Too large resource version: 17, current: 17").
    #[test]
    fn a_version_published_late_never_moves_the_waits_back() {
        let (notify, mut rx) = tokio::sync::watch::channel(3);
        publish_version(&notify, 17);
        publish_version(&notify, 16);
        assert_eq!(*rx.borrow_and_update(), 17);
        // The same version again still wakes the streams.
        publish_version(&notify, 17);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 17);
    }
}
