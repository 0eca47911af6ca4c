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

mod faults;
mod filter;
pub mod fixtures;
mod list;
pub mod load;
mod object;
mod openapi;
mod params;
mod representation;
pub mod resources;
mod server;
mod state;
mod status;
mod watch;

pub use load::LoadHandle;
pub use representation::MetadataServing;
pub use status::ApiError;

use faults::Faults;
use resources::RESOURCES;
use state::State;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
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

/// Simulator configuration.
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
    /// Interval between bookmarks on watches that ask for them.
    pub bookmark_interval: Duration,
    /// Compact history on this interval, if set.
    pub compact_interval: Option<Duration>,
    /// Watch events kept before the oldest are compacted.
    pub history: usize,
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
    /// with the real server's one-minute bookmarks.
    fn default() -> SimConfig {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            pods: 0,
            namespaces: 3,
            configmaps: 0,
            seed: 1,
            bookmark_interval: Duration::from_secs(60),
            compact_interval: None,
            history: 10_000,
            page_size_max: 10_000,
            watch_list: true,
            gone: GoneMode::Http410,
            metadata: MetadataServing::Served,
        }
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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Oldest resourceVersion still served.
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
        let mut st = self.state.write();
        let out = f(&mut st);
        let rv = st.rv();
        RwLockWriteGuard::unlock_fair(st);
        self.notify.send_replace(rv);
        out
    }

    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn rng(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> SimStats {
        let (objects, current_rv, compacted_rv) = {
            let st = self.read();
            (st.total() as u64, st.rv(), st.compacted())
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

fn resource_id(resource: &str) -> Result<usize> {
    resources::by_plural(resource)
        .ok_or_else(|| Error::Api(format!("unknown resource {resource:?}")))
}

impl Simulator {
    /// Start serving: binds the (loopback) address, pre-populates the
    /// configured objects and spawns the server on the current runtime.
    pub async fn start(config: SimConfig) -> Result<Simulator> {
        if !config.listen.ip().is_loopback() {
            return Err(Error::Config(format!(
                "listen address {} is not a loopback address",
                config.listen
            )));
        }
        if config.page_size_max == 0 {
            return Err(Error::Config("page_size_max must be at least 1".into()));
        }
        if config.bookmark_interval.is_zero() {
            return Err(Error::Config("bookmark_interval must be positive".into()));
        }
        if config.compact_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::Config("compact_interval must be positive".into()));
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let mut state = State::new(config.history, config.seed);
        let next_pod = fixtures::populate(&mut state, &config)?;
        let (notify, _) = tokio::sync::watch::channel(state.rv());
        let shared = Arc::new(Shared {
            rng: Mutex::new(StdRng::seed_from_u64(config.seed.wrapping_add(7))),
            config,
            state: RwLock::new(state),
            notify,
            counters: Counters::default(),
            faults: Mutex::new(Faults::default()),
            next_pod: AtomicU64::new(next_pod),
            shutdown: CancellationToken::new(),
        });
        let url: http::Uri = format!("http://{addr}")
            .parse()
            .map_err(|e| Error::Config(format!("bad url for {addr}: {e}")))?;
        let client = kube::Client::try_from(kube::Config::new(url))
            .map_err(|e| Error::Config(format!("building a kube client: {e}")))?;
        let server = tokio::spawn(server::serve(shared.clone(), listener));
        if let Some(every) = shared.config.compact_interval {
            tokio::spawn(compact_periodically(shared.clone(), every));
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
        let ev = self.shared.write(|st| st.create(r, None, object))?;
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
        let stored = self.shared.write(|st| {
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
        let stored = server::patch_in(&self.shared, r, namespace, name, |v| {
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
