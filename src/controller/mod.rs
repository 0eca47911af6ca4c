//! A controller that reconciles from the disk store and restarts without a
//! reconcile storm (I14).
//!
//! [`Controller`] mirrors kube-runtime's: `run(reconcile, error_policy,
//! ctx)` returns a stream of `(ObjectRef<K>, Action)` results, `Action` is
//! `requeue(after)` or `await_change()`, `owns` and `watches` bring in
//! related resources, `graceful_shutdown_on` drains in-flight reconciles.
//! Underneath it is client-go's controller: a workqueue that dedupes keys
//! and never hands one key to two workers at once, a per-key exponential
//! backoff beside an overall token bucket ([`RateLimit`]), and a
//! configurable number of workers.
//!
//! What differs is where it starts. kube-runtime's controller reconciles
//! every object after each start. This one is driven by durable positions
//! in the store's journal (I8): after a restart it reconciles the objects
//! changed since its last acknowledged event, the ones whose reconcile had
//! failed or was waiting on a requeue (kept durably with their due times),
//! and every object only on its first start, when a feed's position fell
//! out of the journal (a change it cannot attribute), or when asked
//! ([`Controller::reconcile_all_on`]). See the `ledger` module for how
//! acknowledging an event never skips one whose reconcile still fails.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use futures::StreamExt;
//! use k8s_openapi::api::core::v1::{ConfigMap, Pod};
//! use kube_persist::controller::{Action, Controller};
//! use kube_persist::Informer;
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("reconcile failed")]
//! struct Error;
//!
//! async fn reconcile(pod: Arc<Pod>, _ctx: Arc<()>) -> Result<Action, Error> {
//!     Ok(Action::await_change())
//! }
//! fn error_policy(_pod: Arc<Pod>, _err: &Error, _ctx: Arc<()>) -> Action {
//!     Action::requeue(Duration::from_secs(5))
//! }
//!
//! # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let pods = Informer::for_resource::<Pod>(client.clone())
//!     .store_path("/var/lib/edge")
//!     .start()
//!     .await?;
//! let cms = Informer::for_resource::<ConfigMap>(client).share_store(&pods).start().await?;
//! Controller::new(&pods, "edge")?
//!     .owns::<ConfigMap>(&cms)?
//!     .run(reconcile, error_policy, Arc::new(()))
//!     .for_each(|res| async move {
//!         if let Err(err) = res {
//!             eprintln!("{err}");
//!         }
//!     })
//!     .await;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use serde::de::DeserializeOwned;

use crate::informer::{Informer, ReadError, TypedReader};

mod feed;
mod ledger;
mod queue;
mod rate_limit;
mod relation;
mod runner;

pub use rate_limit::RateLimit;
use relation::Relation;

/// What to do with an object after its reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    requeue_after: Option<Duration>,
}

impl Action {
    /// Reconcile the object again after `duration`, even if nothing changes.
    /// The requeue is kept durably: a restart in between does not lose it.
    #[must_use]
    pub const fn requeue(duration: Duration) -> Self {
        Action {
            requeue_after: Some(duration),
        }
    }

    /// Reconcile the object again only when it (or a related object) changes.
    #[must_use]
    pub const fn await_change() -> Self {
        Action {
            requeue_after: None,
        }
    }

    /// When the object is reconciled again regardless of changes.
    pub const fn requeue_after(&self) -> Option<Duration> {
        self.requeue_after
    }
}

/// Errors in a controller's result stream. None of them stops it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E: std::error::Error + 'static> {
    /// The reconciler failed for the object; it is retried as the error
    /// policy and the rate limit say.
    #[error("reconciler for object {1} failed: {0}")]
    ReconcilerFailed(#[source] E, Box<ObjectRef<DynamicObject>>),
    /// The reconciler panicked; the object is retried after a backoff.
    #[error("reconciler for object {0} panicked")]
    ReconcilerPanicked(Box<ObjectRef<DynamicObject>>),
    /// The object could not be read from the store (a corrupt record, or
    /// JSON that is not a `K`: the error names it); retried after a backoff.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The controller's durable progress could not be read or written; it
    /// is written again at the next commit.
    #[error("controller progress: {0}")]
    Progress(#[from] crate::store::Error),
    /// A task on the blocking pool (a store read or write) panicked.
    #[error("controller task {what} failed: {source}")]
    Task {
        /// What the task was doing.
        what: String,
        /// How it ended: a panic, or cancelled at shutdown.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Errors setting a controller up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// An informer holds another resource than the type asked for.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The controller's name is empty.
    #[error("a controller needs a non-empty name: it names its durable progress in the store")]
    EmptyName,
    /// A related informer keeps its objects in another store.
    #[error("related resource {resource} is in store {found}, not in the controller's store {expected}: every resource of a controller is a collection of one store")]
    DifferentStore {
        /// The related resource.
        resource: String,
        /// Its store.
        found: PathBuf,
        /// The controller's store.
        expected: PathBuf,
    },
    /// The same kind of relation was declared twice on one collection.
    #[error("{relation} was already declared on collection {collection}")]
    DuplicateRelation {
        /// `owns` or `watches`.
        relation: &'static str,
        /// The collection.
        collection: String,
    },
    /// A setting is out of range.
    #[error("invalid controller setting {setting}: {reason}")]
    InvalidConfig {
        /// The setting.
        setting: &'static str,
        /// Why.
        reason: String,
    },
}

/// The longest [`Config::debounce`] a controller takes.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(3600);

/// How a controller runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Reconciles running at once (default 16); 0 for no limit, which is
    /// kube-runtime's default but here holds every queued object decoded at
    /// once during a full resync.
    pub concurrency: u16,
    /// How failed keys are retried.
    pub rate_limit: RateLimit,
    /// How often acknowledged progress is written (one atomic batch and a
    /// flush each time). Progress not yet written is redone after a crash.
    pub commit_interval: Duration,
    /// How long a changed object waits before it is reconciled; each
    /// further change within that time pushes its reconcile back again
    /// (kube-runtime's `Config::debounce`). Zero, the default, reconciles
    /// at once. A few hundred milliseconds turn a burst of writes to one
    /// object (a create followed by status updates, or the replay of what
    /// changed while the controller was down) into one reconcile, at the
    /// price of that much latency on every change. An object that changes
    /// more often than this is not reconciled until its changes pause, so
    /// keep it well below the interval of periodic writers (a node's
    /// heartbeat, say).
    pub debounce: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            concurrency: 16,
            rate_limit: RateLimit::default(),
            commit_interval: Duration::from_millis(100),
            debounce: Duration::ZERO,
        }
    }
}

impl Config {
    /// At most `n` reconciles at once (0: no limit).
    #[must_use]
    pub fn concurrency(mut self, n: u16) -> Self {
        self.concurrency = n;
        self
    }

    /// The retry rate limit.
    #[must_use]
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = limit;
        self
    }

    /// How often progress is written.
    #[must_use]
    pub fn commit_interval(mut self, every: Duration) -> Self {
        self.commit_interval = every;
        self
    }

    /// Waits `wait` after an object's last change before reconciling it
    /// (see [`Config::debounce`]).
    #[must_use]
    pub fn debounce(mut self, wait: Duration) -> Self {
        self.debounce = wait;
        self
    }
}

/// Reconciles objects of `K` from an [`Informer`]'s store.
pub struct Controller<K: Resource> {
    reader: TypedReader<K>,
    store: PathBuf,
    name: String,
    relations: Vec<Relation>,
    config: Config,
    graceful_shutdown: Vec<BoxFuture<'static, ()>>,
    reconcile_all: Vec<BoxStream<'static, ()>>,
}

impl<K> Controller<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Send + Sync + 'static,
{
    /// A controller of the objects `informer` holds. `name` identifies its
    /// durable progress in the store: keep it across restarts, and give
    /// each controller of one informer its own.
    pub fn new(informer: &Informer, name: &str) -> Result<Self, SetupError> {
        Self::for_reader(informer, informer.typed::<K>()?, name)
    }
}

impl Controller<DynamicObject> {
    /// A controller of [`DynamicObject`]s of the resource `api`, for
    /// resources known only at run time.
    pub fn new_dynamic(
        informer: &Informer,
        api: &ApiResource,
        name: &str,
    ) -> Result<Self, SetupError> {
        Self::for_reader(informer, informer.dynamic(api)?, name)
    }
}

impl<K> Controller<K>
where
    K: Resource + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + std::fmt::Debug + Send + Sync + Unpin + 'static,
{
    fn for_reader(
        informer: &Informer,
        reader: TypedReader<K>,
        name: &str,
    ) -> Result<Self, SetupError> {
        if name.is_empty() {
            return Err(SetupError::EmptyName);
        }
        Ok(Controller {
            reader,
            store: informer.store_path().to_path_buf(),
            name: name.to_string(),
            relations: Vec::new(),
            config: Config::default(),
            graceful_shutdown: Vec::new(),
            reconcile_all: Vec::new(),
        })
    }

    /// Replaces the controller's settings; refuses a rate limit that
    /// would never let a retry through, a zero commit interval, or a
    /// debounce longer than [`MAX_DEBOUNCE`].
    pub fn with_config(mut self, config: Config) -> Result<Self, SetupError> {
        config
            .rate_limit
            .validate()
            .map_err(|reason| SetupError::InvalidConfig {
                setting: "rate_limit",
                reason,
            })?;
        if config.commit_interval.is_zero() {
            return Err(SetupError::InvalidConfig {
                setting: "commit_interval",
                reason: "must be positive".into(),
            });
        }
        if config.debounce > MAX_DEBOUNCE {
            return Err(SetupError::InvalidConfig {
                setting: "debounce",
                reason: format!(
                    "{:?} is longer than {MAX_DEBOUNCE:?}: a debounce gathers a burst of changes, and a longer one holds every change back",
                    config.debounce
                ),
            });
        }
        self.config = config;
        Ok(self)
    }

    /// A typed reader of the controller's objects (kube-runtime's
    /// `Controller::store`).
    pub fn store(&self) -> TypedReader<K> {
        self.reader.clone()
    }

    fn relate(
        mut self,
        informer: &Informer,
        shared: Arc<crate::informer::Shared>,
        relation: &'static str,
        map: relation::MapFn,
    ) -> Result<Self, SetupError> {
        let found = informer.store_path();
        if found != self.store {
            return Err(SetupError::DifferentStore {
                resource: informer.id().resource.clone(),
                found: found.to_path_buf(),
                expected: self.store.clone(),
            });
        }
        let collection = informer.collection().name().to_string();
        if self
            .relations
            .iter()
            .any(|r| r.kind == relation && r.shared.collection.name() == collection)
        {
            return Err(SetupError::DuplicateRelation {
                relation,
                collection,
            });
        }
        self.relations.push(Relation {
            kind: relation,
            shared,
            map,
        });
        Ok(self)
    }

    /// Objects of `Child` (held by `informer`, in the controller's store)
    /// that a `K` owns: a child's change reconciles the owners its
    /// `ownerReferences` name.
    pub fn owns<Child>(self, informer: &Informer) -> Result<Self, SetupError>
    where
        Child: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let shared = informer.typed::<Child>()?.shared().clone();
        let dt = self.reader.dyntype();
        let map = relation::owners(
            K::api_version(dt).into_owned(),
            K::kind(dt).into_owned(),
            self.reader.collection().id().namespaced,
        );
        self.relate(informer, shared, "owns", map)
    }

    /// Objects of `Other` (held by `informer`, in the controller's store)
    /// related to `K` by `mapper`: an object's change reconciles the objects
    /// `mapper` names.
    pub fn watches<Other, I>(
        self,
        informer: &Informer,
        mapper: impl Fn(Other) -> I + Send + Sync + 'static,
    ) -> Result<Self, SetupError>
    where
        Other: Resource<DynamicType = ()> + DeserializeOwned,
        I: IntoIterator<Item = ObjectRef<K>>,
    {
        let shared = informer.typed::<Other>()?.shared().clone();
        let map = relation::mapped::<K, Other, I>(mapper);
        self.relate(informer, shared, "watches", map)
    }

    /// Reconciles every object each time `trigger` yields (a periodic
    /// resync: `IntervalStream`). Not durable: a restart does not finish
    /// it, since nothing changed for the objects it had not reached.
    #[must_use]
    pub fn reconcile_all_on(mut self, trigger: impl Stream<Item = ()> + Send + 'static) -> Self {
        self.reconcile_all.push(trigger.boxed());
        self
    }

    /// Starts a graceful shutdown when `trigger` completes: no reconcile
    /// starts any more, those running finish, progress is written, and the
    /// stream ends.
    #[must_use]
    pub fn graceful_shutdown_on(
        mut self,
        trigger: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        self.graceful_shutdown.push(trigger.boxed());
        self
    }

    /// Shuts down gracefully on SIGINT or SIGTERM.
    #[must_use]
    pub fn shutdown_on_signal(self) -> Self {
        self.graceful_shutdown_on(async {
            let ctrl_c = tokio::signal::ctrl_c().map(|_| ());
            #[cfg(unix)]
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(err) => {
                        tracing::warn!("cannot listen for SIGTERM: {err}");
                        futures::future::pending::<()>().await
                    }
                }
            };
            #[cfg(not(unix))]
            let term = futures::future::pending::<()>();
            futures::future::select(Box::pin(ctrl_c), Box::pin(term)).await;
            tracing::info!("shutdown signal: draining reconciles");
        })
    }

    /// Runs the controller: reconciles with `reconciler`, retries failures
    /// as `error_policy` and the rate limit say, and yields each result.
    /// Nothing runs unless the stream is polled.
    pub fn run<ReconcilerFut, Ctx, E>(
        self,
        mut reconciler: impl FnMut(Arc<K>, Arc<Ctx>) -> ReconcilerFut + Send + 'static,
        error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + 'static,
        context: Arc<Ctx>,
    ) -> impl Stream<Item = Result<(ObjectRef<K>, Action), Error<E>>> + Send
    where
        ReconcilerFut: Future<Output = Result<Action, E>> + Send + 'static,
        E: std::error::Error + Send + 'static,
        Ctx: Send + Sync + 'static,
    {
        let ctx = context.clone();
        let reconcile: runner::ReconcileFn<K, E> =
            Box::new(move |obj| reconciler(obj, ctx.clone()).boxed());
        let policy: runner::PolicyFn<K, E> =
            Box::new(move |obj, err| error_policy(obj, err, context.clone()));
        runner::Runner::stream(self, reconcile, policy)
    }
}
