//! Configuring and starting an informer.

use std::any::TypeId;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::core::ApiResource;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::driver::Driver;
use super::metrics::Metrics;
use super::{blocking, rv_number, Error, Informer, Result, Shared, State};
use crate::store::{CollectionId, EncryptionKey, EngineKind, IndexFn, Store, StoreOptions};
use crate::watcher::{self, ApiSource, ListWatch, Stats, Transform};

/// What to watch: the resource's API identity and whether it is namespaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSpec {
    /// Group, version, kind and plural.
    pub api: ApiResource,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names discovery gave (`wd`), recorded in the store (replacing
    /// what was recorded) so that offline commands accept them. `None` when
    /// the spec did not come from discovery: typed resources, whose short
    /// names the offline tools know already.
    pub short_names: Option<Vec<String>>,
}

impl ResourceSpec {
    /// The spec of a typed resource such as `Pod` or `Node`.
    pub fn of<K>() -> ResourceSpec
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        ResourceSpec {
            api: ApiResource::erase::<K>(&()),
            namespaced: TypeId::of::<K::Scope>()
                == TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
            short_names: None,
        }
    }

    /// The spec of a built-in resource named by its plural, singular, kind
    /// or short name (`pods`, `pod`, `po`, `cm`, `nodes`, `deploy`...), at the
    /// version k8s-openapi models.
    pub fn builtin(name: &str) -> Option<ResourceSpec> {
        crate::builtin::named(name).map(|b| ResourceSpec {
            api: ApiResource {
                group: b.group.to_string(),
                version: b.version.to_string(),
                api_version: b.api_version(),
                kind: b.kind.to_string(),
                plural: b.plural.to_string(),
            },
            namespaced: b.namespaced,
            short_names: None,
        })
    }

    /// A built-in resource of the core group, which every API server serves
    /// at v1, or one found through the server's discovery
    /// documents the way kubectl finds it: by plural, singular, kind or short
    /// name, optionally qualified by group (`widgets.example.com`) or version
    /// and group (`wd.v1.example.com`). A discovered resource carries the
    /// short names the server gave, which the store records for offline use.
    ///
    /// Fails with [`Error::EmptyResource`] before any request for an empty
    /// name, [`Error::UnknownResource`] when discovery names no such
    /// resource, and [`Error::Unreachable`] or [`Error::Discovery`] when the
    /// server could not answer.
    pub async fn resolve(client: &kube::Client, name: &str) -> Result<ResourceSpec> {
        // An empty name is refused by discovery's parser, before any request.
        // A named group (`deploy`) goes through discovery all the same: a
        // server may not serve it, or not at k8s-openapi's version.
        match Self::builtin(name) {
            Some(spec) if spec.api.group.is_empty() => Ok(spec),
            _ => super::discovery::resolve(client, name).await,
        }
    }
}

enum StoreSource {
    Path(PathBuf),
    Open(Store),
}

/// Builds an [`Informer`]: what to watch, where to store it, and how.
pub struct InformerBuilder {
    client: kube::Client,
    resource: ResourceSpec,
    namespace: Option<String>,
    store: Option<StoreSource>,
    engine: Option<EngineKind>,
    encryption_key: Option<EncryptionKey>,
    indexers: Vec<(String, IndexFn)>,
    transform: Transform,
    config: watcher::Config,
    resync: Option<Duration>,
    check_on_open: bool,
    event_buffer: usize,
}

impl InformerBuilder {
    pub(crate) fn new(client: kube::Client, resource: ResourceSpec) -> Self {
        InformerBuilder {
            client,
            resource,
            namespace: None,
            store: None,
            engine: None,
            encryption_key: None,
            indexers: Vec::new(),
            transform: watcher::strip_managed_fields(),
            config: watcher::Config::default(),
            resync: None,
            event_buffer: 16 * 1024,
            check_on_open: false,
        }
    }

    /// Watch one namespace only.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Watch only objects matching this label selector.
    pub fn labels(mut self, selector: impl Into<String>) -> Self {
        self.config.label_selector = Some(selector.into());
        self
    }

    /// Watch only objects matching this field selector.
    pub fn fields(mut self, selector: impl Into<String>) -> Self {
        self.config.field_selector = Some(selector.into());
        self
    }

    /// Open (or create) the store at this directory.
    pub fn store_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(StoreSource::Path(path.into()));
        self
    }

    /// The storage engine a store created by [`Self::store_path`] gets
    /// (default: [`EngineKind::DEFAULT`]). An existing store keeps its own;
    /// naming another one fails with `EngineMismatch`.
    pub fn engine(mut self, engine: EngineKind) -> Self {
        self.engine = Some(engine);
        self
    }

    /// The at-rest encryption key of the store opened by
    /// [`Self::store_path`]: needed for an encrypted store; a plaintext one
    /// is encrypted under it on open (see [`crate::store::encryption`]).
    pub fn encryption_key(mut self, key: EncryptionKey) -> Self {
        self.encryption_key = Some(key);
        self
    }

    /// Keep this informer's objects in the store `other` writes, as one
    /// more collection of it: several informers, one store, one lock, one
    /// database (what a controller's related resources need).
    ///
    /// The store itself never reaches the caller: each collection has one
    /// writer, its informer's driver. There is no way to hand an informer a
    /// store one keeps a handle to:
    ///
    /// ```compile_fail
    /// # async fn f(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use k8s_openapi::api::core::v1::Pod;
    /// use kube_persist::{Informer, Store};
    /// let store = Store::open("/var/lib/edge")?;
    /// let pods = Informer::for_resource::<Pod>(client).store(store.clone()).start().await?;
    /// # Ok(()) }
    /// ```
    pub fn share_store(mut self, other: &Informer) -> Self {
        self.store = Some(StoreSource::Open(other.store.clone()));
        self
    }

    /// Add an index, like client-go's `Indexers`.
    pub fn indexer(mut self, name: impl Into<String>, f: IndexFn) -> Self {
        self.indexers.push((name.into(), f));
        self
    }

    /// Replace the transform run on each object before it is stored (the
    /// default strips `metadata.managedFields`).
    pub fn transform(mut self, f: impl Fn(&mut serde_json::Value) + Send + Sync + 'static) -> Self {
        self.transform = Arc::new(f);
        self
    }

    /// Flush a batch at `max` events or `window` after its first event
    /// (defaults: 500 events, no window). With no window, a batch holds the
    /// events that arrived while the last one was being stored: batches
    /// grow with the write rate, and a lone event is stored at once.
    pub fn batch(mut self, max: usize, window: Duration) -> Self {
        self.config.batch_max = max;
        self.config.batch_window = window;
        self
    }

    /// Items per LIST page (default 500).
    pub fn page_size(mut self, n: u32) -> Self {
        self.config.page_size = n;
        self
    }

    /// Try streaming lists before paginated LIST (default on).
    pub fn streaming_list(mut self, on: bool) -> Self {
        self.config.streaming_list = on;
        self
    }

    /// Re-deliver every stored object to subscribers this often, as
    /// [`super::EventKind::Resync`] events (no API calls). Off by default.
    pub fn resync(mut self, period: Duration) -> Self {
        self.resync = Some(period);
        self
    }

    /// Read and check the whole store before starting ([`Store::check`]:
    /// every engine entry, every record's checksum, indexes and journal), so
    /// that the informer never resumes, nor reports `Synced`, over damage it
    /// could have known of. Off by default: the check costs a full read
    /// (about 2 s for 10,000 pods on 2 cores), which would come before the
    /// first read of a restart. Without it a store the engine cannot open is
    /// still healed, and a damaged record is reported when it is read.
    /// `kube-persist sync` turns it on.
    pub fn check_on_open(mut self, check: bool) -> Self {
        self.check_on_open = check;
        self
    }

    /// Events kept for slow live subscribers before they fall back to the journal.
    pub fn event_buffer(mut self, n: usize) -> Self {
        self.event_buffer = n.max(1);
        self
    }

    /// Tune any other watcher setting (timeouts, backoff).
    pub fn configure(mut self, f: impl FnOnce(&mut watcher::Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Opens the store, checks it when asked ([`Self::check_on_open`]), and
    /// starts watching. The informer is readable as soon as this returns,
    /// before any request to the server.
    ///
    /// A store opened by path that the engine cannot open, or that the
    /// check finds damaged, is healed
    /// ([`Store::open_healing`]): the state is then [`State::Healed`],
    /// naming where the damaged database went, and the first list fills a
    /// fresh one. A shared store ([`Self::share_store`]) that is damaged fails with the store's
    /// [`Damaged`](crate::store::Error::Damaged) error.
    pub async fn start(self) -> Result<Informer> {
        let source = ApiSource::new(
            self.client.clone(),
            &self.resource.api,
            self.namespace.as_deref(),
        );
        self.start_with_source(source).await
    }

    /// [`Self::start`] over any source of lists and watches: the crate's
    /// tests give a scripted one, so that what the informer does over time
    /// (batch windows, resyncs, backoffs, relists) runs on tokio's paused
    /// clock. The builder's client is not used.
    pub(crate) async fn start_with_source<S: ListWatch + Clone>(
        self,
        source: S,
    ) -> Result<Informer> {
        let started = Instant::now();
        self.config.validate()?;
        if self.namespace.is_some() && !self.resource.namespaced {
            return Err(Error::Watcher(watcher::Error::InvalidConfig {
                setting: "namespace",
                reason: format!("{} is cluster-scoped", self.resource.api.plural),
            }));
        }
        let (store, healed) = match self.store {
            Some(StoreSource::Open(store)) if !self.check_on_open => (store, None),
            Some(StoreSource::Open(store)) => {
                blocking(move || match store.check()? {
                    None => Ok((store, None)),
                    Some(damage) => Err(crate::store::Error::damaged(
                        store.path(),
                        crate::store::directory::DB_DIR,
                        format!("{damage}; open it by path to have it healed"),
                    )
                    .into()),
                })
                .await?
            }
            Some(StoreSource::Path(path)) => {
                let options = StoreOptions {
                    engine: self.engine,
                    encryption_key: self.encryption_key.clone(),
                    ..StoreOptions::default()
                };
                let check = self.check_on_open;
                blocking(move || Ok(Store::open_healing(path, options, check)?)).await?
            }
            None => return Err(Error::NoStore),
        };
        let api = &self.resource.api;
        let id = CollectionId {
            group: api.group.clone(),
            version: api.version.clone(),
            resource: api.plural.clone(),
            kind: api.kind.clone(),
            namespaced: self.resource.namespaced,
            namespace: self.namespace.clone(),
            label_selector: self.config.label_selector.clone(),
            field_selector: self.config.field_selector.clone(),
        };
        let (collection, meta) = {
            let store = store.clone();
            let indexers = self.indexers;
            let short_names = self.resource.short_names.clone();
            blocking(move || {
                let collection = store.collection(&id)?;
                if let Some(short_names) = &short_names {
                    store.set_short_names(&id, short_names)?;
                }
                for (name, f) in indexers {
                    collection.add_indexer(&name, f)?;
                }
                let meta = collection.meta()?;
                Ok((collection, meta))
            })
            .await?
        };
        let state = match (&meta.last_rv, healed) {
            (_, Some(healed)) => State::Healed {
                moved_to: healed.moved_to,
                damage: healed.damage,
            },
            (Some(rv), None) => State::Restored {
                rv: rv.clone(),
                saved_at: meta.last_sync,
            },
            (None, None) => State::Empty,
        };
        match &state {
            State::Restored { rv, saved_at } => tracing::info!(
                resource = %api.plural,
                objects = meta.objects,
                rv = %rv,
                saved_at = %saved_at.map(rfc3339).unwrap_or_else(|| "unknown".into()),
                "informer opened its store; resuming from the stored resourceVersion"
            ),
            State::Healed { moved_to, .. } => tracing::warn!(
                resource = %api.plural,
                moved_to = %moved_to.display(),
                "informer healed its damaged store; listing from scratch"
            ),
            _ => tracing::info!(
                resource = %api.plural,
                objects = meta.objects,
                "informer opened an empty collection; listing from scratch"
            ),
        }
        let stats = Arc::new(Stats::default());
        let metrics = Metrics::new(stats.clone());
        Metrics::set(&metrics.objects, meta.objects);
        Metrics::set(
            &metrics.last_rv,
            meta.last_rv.as_deref().and_then(rv_number).unwrap_or(0),
        );
        Metrics::set(&metrics.open_ms, started.elapsed().as_millis() as u64);
        let shared = Arc::new(Shared {
            collection,
            state: watch::Sender::new(state.clone()),
            rv: watch::Sender::new(meta.last_rv.clone()),
            events: broadcast::Sender::new(self.event_buffer),
            metrics,
            started,
            failures: Default::default(),
        });
        let cancel = CancellationToken::new();
        let driver = Driver {
            shared: shared.clone(),
            source,
            config: self.config,
            transform: self.transform,
            stats,
        };
        let watcher = driver.watcher(meta.last_rv)?;
        let task = tokio::spawn(driver.run(watcher, cancel.clone()));
        if let Some(period) = self.resync {
            tokio::spawn(super::driver::resync(
                shared.clone(),
                period,
                cancel.clone(),
            ));
        }
        Ok(Informer {
            reader: super::Reader::new(shared.clone()),
            shared,
            opened: state,
            store,
            cancel,
            task: Some(task),
        })
    }
}

/// A time as RFC 3339 in UTC, to the second: what a person reading a log
/// line can compare with other timestamps. Truncated, not rounded, so a
/// save never reads as later than the log line reporting it.
fn rfc3339(at: std::time::SystemTime) -> String {
    let to_second = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Trunc);
    match jiff::Timestamp::try_from(at) {
        Ok(ts) => ts.round(to_second).unwrap_or(ts).to_string(),
        // Outside jiff's range (year -9999..=9999): only a clock gone wrong
        // stores that; show it raw rather than hide it.
        Err(_) => format!("{at:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_specs_know_their_scope() {
        let pods = ResourceSpec::builtin("po").unwrap();
        assert_eq!((pods.api.plural.as_str(), pods.namespaced), ("pods", true));
        let nodes = ResourceSpec::builtin("nodes").unwrap();
        assert_eq!((nodes.api.kind.as_str(), nodes.namespaced), ("Node", false));
        assert!(ResourceSpec::builtin("widgets").is_none());
        let deploy = ResourceSpec::builtin("Deployment").unwrap();
        assert_eq!(deploy.api.api_version, "apps/v1");
        assert_eq!(deploy.api.plural, "deployments");
    }

    /// A simulator serving 20 pods, and a directory for the store.
    #[cfg(feature = "sim")]
    async fn sim_of_20_pods() -> (crate::sim::Simulator, tempfile::TempDir) {
        use crate::sim::{SimConfig, Simulator};
        let sim = Simulator::start(SimConfig {
            pods: 20,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        (sim, tempfile::tempdir().unwrap())
    }

    /// `check_on_open` off: a store with a damaged record opens as it is
    /// (the damage is an error when that record is read); on: the same
    /// store opens as `Healed`, the damaged database is kept aside, and the
    /// first list refills a fresh one with every object.
    #[cfg(feature = "sim")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_on_open_heals_a_damaged_record_that_an_unchecked_open_keeps() {
        use crate::store::ObjectKey;
        use k8s_openapi::api::core::v1::Pod;
        let (sim, dir) = sim_of_20_pods().await;
        let path = dir.path().join("pods");
        let open = |check: bool| {
            Informer::for_resource::<Pod>(sim.client())
                .store_path(&path)
                .check_on_open(check)
                .start()
        };
        let informer = open(false).await.unwrap();
        informer.wait_until_synced().await.unwrap();
        let victim = ObjectKey::of(&informer.list().unwrap()[7]).unwrap();
        crate::store::damage_record(&informer.shared.collection, &victim.to_string());
        informer.shutdown().await;

        let unchecked = open(false).await.unwrap();
        assert!(
            matches!(unchecked.opened_state(), State::Restored { .. }),
            "{:?}",
            unchecked.opened_state()
        );
        // Not read through the informer: a read would start a heal.
        let report = unchecked.shared.collection.verify().unwrap();
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].key, victim.to_string());
        unchecked.shutdown().await;

        let checked = open(true).await.unwrap();
        let State::Healed { moved_to, damage } = checked.opened_state().clone() else {
            panic!("{:?}", checked.opened_state());
        };
        assert!(damage.contains(&victim.to_string()), "{damage}");
        assert!(
            moved_to.starts_with(&path) && moved_to.exists(),
            "{moved_to:?}"
        );
        checked.wait_until_synced().await.unwrap();
        assert_eq!(checked.len(), 20);
        assert!(checked.get(&victim).unwrap().is_some());
        assert!(checked.shared.collection.verify().unwrap().is_ok());
        checked.shutdown().await;
        sim.shutdown().await;
    }

    /// Damage a running informer's reader meets is healed without a
    /// restart: the informer relists (`Healing`, then `Synced`), and the
    /// relist rewrites the damaged record.
    #[cfg(feature = "sim")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_that_meets_damage_while_running_starts_a_relist_that_heals_it() {
        use crate::store::ObjectKey;
        use k8s_openapi::api::core::v1::Pod;
        let (sim, dir) = sim_of_20_pods().await;
        let informer = Informer::for_resource::<Pod>(sim.client())
            .store_path(dir.path().join("pods"))
            .start()
            .await
            .unwrap();
        informer.wait_until_synced().await.unwrap();
        let mut states = informer.shared.state.subscribe();
        let lists = sim.stats().list_requests;
        let victim = ObjectKey::of(&informer.list().unwrap()[3]).unwrap();
        crate::store::damage_record(&informer.shared.collection, &victim.to_string());

        let err = informer.get(&victim).unwrap_err();
        assert!(err.to_string().contains(&victim.to_string()), "{err}");
        let healing = tokio::time::timeout(
            Duration::from_secs(30),
            states.wait_for(|s| matches!(s, State::Healing { .. })),
        )
        .await
        .expect("the informer starts healing")
        .unwrap()
        .clone();
        assert!(
            matches!(&healing, State::Healing { damage } if damage.contains(&victim.to_string())),
            "{healing:?}"
        );
        tokio::time::timeout(
            Duration::from_secs(30),
            states.wait_for(|s| *s == State::Synced),
        )
        .await
        .expect("the relist completes")
        .unwrap();
        assert!(informer.get(&victim).unwrap().is_some());
        assert_eq!(informer.len(), 20);
        assert!(informer.shared.collection.verify().unwrap().is_ok());
        assert!(sim.stats().list_requests > lists, "healed by a relist");
        assert_eq!(informer.metrics().heals, 1);
        informer.shutdown().await;
        sim.shutdown().await;
    }

    #[test]
    fn saved_at_reads_as_rfc3339() {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(1_767_268_800_900);
        assert_eq!(rfc3339(at), "2026-01-01T12:00:00Z");
    }
}
