//! `kube-persist sync`: keep a store in sync with one resource.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use kube_persist::informer::{FailureCause, Informer, LastFailure, ResourceSpec, State};
use kube_persist::inspect::key;
use kube_persist::store::{EngineKind, Store};
use kube_persist::watcher;
use tokio::time::Instant;

use super::exit::Usage;
use super::signals::Signals;

/// How long `--until-synced` waits by default: a relist of tens of
/// thousands of objects fits, a dead server is not waited on for long.
const DEFAULT_SYNC_TIMEOUT_SECS: u64 = 120;

/// Arguments of `kube-persist sync`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Store directory (created if missing).
    #[arg(long)]
    pub store: PathBuf,
    /// Storage engine of a store this creates: redb or sled. An existing
    /// store keeps the engine it was created with; naming another fails.
    #[arg(long)]
    pub engine: Option<EngineKind>,
    #[command(flatten)]
    pub key: super::target::KeyArg,
    /// Resource to sync: plural, singular, kind or short name, optionally
    /// with its group (pods, cm, nodes, wd, widgets.example.com...). Custom
    /// resources are found through discovery, and their short names are
    /// recorded so the offline commands accept them too.
    #[arg(long, short = 'r', value_name = "R")]
    pub resource: String,
    /// Only this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Label selector.
    #[arg(long = "selector", short = 'l')]
    pub selector: Option<String>,
    /// Field selector.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// API server URL (default: KUBECONFIG or in-cluster configuration).
    #[arg(long)]
    pub server: Option<String>,
    /// Exit as soon as the store is synced.
    #[arg(long)]
    pub until_synced: bool,
    /// With --until-synced: give up when not synced after this many seconds
    /// [default: 120]. Exits 7 when the API server could not be reached or
    /// what answered is not one, 8 when the store's disk is full; a store
    /// directory it created and never wrote to is removed then. Without
    /// --until-synced, sync retries for as long as it runs, logging why.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub sync_timeout: Option<u64>,
    /// Items per LIST page.
    #[arg(long, default_value_t = 500)]
    pub page_size: u32,
    /// Most changes written to the store in one batch (watch events, or
    /// objects of a relist).
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Never try a streaming list (sendInitialEvents).
    #[arg(long)]
    pub no_streaming_list: bool,
    /// Also run a durable consumer of this name: print every event after its
    /// last acknowledged one as `event seq=.. kind=.. key=.. rv=..`, acking each.
    #[arg(long)]
    pub consumer: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = rt.block_on(sync(args));
    // Dropping a runtime waits for its blocking threads without end: a store
    // call stuck in the engine must not keep a sync that gave up from exiting.
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

/// How long a sync that gave up waits for the informer to stop (storing
/// what it had read) before it exits all the same: the store is crash-safe.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Checks `--server` before anything uses it: kube-client panics on a URL
/// without a scheme instead of returning an error.
fn server_url(text: &str) -> Result<http::Uri, Usage> {
    let bad = |why: &str| {
        Usage(format!(
            "--server {text:?} is not a valid API server URL: {why} (e.g. https://127.0.0.1:6443)"
        ))
    };
    let uri: http::Uri = text
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(bad(&format!("scheme {other:?} is not http or https"))),
        None => return Err(bad("it has no http:// or https:// scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    // `Uri` takes any digits as a port, and its `port()` is `None` when
    // they overflow a u16, so the authority's own text is what to check.
    if let Some(text) = uri.authority().and_then(|a| port_text(a.as_str())) {
        if !matches!(text.parse::<u16>(), Ok(1..)) {
            return Err(bad(&format!("port {text} is not between 1 and 65535")));
        }
    }
    Ok(uri)
}

/// The port part of an authority (`user@host:port`, `[::1]:port`), if any.
fn port_text(authority: &str) -> Option<&str> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let after_host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, rest)| rest),
        None => host_port,
    };
    after_host
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|p| !p.is_empty())
}

async fn client(server: Option<http::Uri>) -> anyhow::Result<kube::Client> {
    match server {
        Some(uri) => {
            kube::Client::try_from(kube::Config::new(uri)).context("building a client for --server")
        }
        None => kube::Client::try_default()
            .await
            .context("no --server given and no kubeconfig or in-cluster configuration found"),
    }
}

async fn sync(args: Args) -> anyhow::Result<ExitCode> {
    // Mistakes on the command line first: before any request is made and
    // before the store is opened, so a typo neither waits on the network
    // nor leaves a collection registered in the store.
    let server = args.server.as_deref().map(server_url).transpose()?;
    // As `list -n` checks it: a name the server would refuse must not
    // become a collection that can never sync.
    if let Some(ns) = &args.namespace {
        key::check_namespace(ns)?;
    }
    if args.sync_timeout.is_some() && !args.until_synced {
        return Err(Usage(
            "--sync-timeout applies only with --until-synced; without it, sync retries for as long as it runs"
                .into(),
        )
        .into());
    }
    let limit = Duration::from_secs(args.sync_timeout.unwrap_or(DEFAULT_SYNC_TIMEOUT_SECS));
    let deadline = args.until_synced.then(|| Instant::now() + limit);
    if args.resource.trim().is_empty() {
        return Err(Usage(
            "--resource is empty; give a plural, singular, short name or kind (pods, po, Pod...)"
                .into(),
        )
        .into());
    }
    let config = watcher::Config {
        label_selector: args.selector.clone(),
        field_selector: args.field_selector.clone(),
        page_size: args.page_size,
        batch_max: args.batch_size,
        streaming_list: !args.no_streaming_list,
        ..watcher::Config::default()
    };
    config.validate()?;
    // Whether the store needs a key is local knowledge: a missing or wrong
    // key is said at once, not after discovery tried the network.
    let key = args.key.load()?;
    Store::check_key(&args.store, key.as_ref())
        .with_context(|| format!("opening store {}", args.store.display()))?;
    let client = client(server).await?;
    let resolve = ResourceSpec::resolve(&client, &args.resource);
    let spec = match deadline {
        Some(at) => tokio::time::timeout_at(at, resolve)
            .await
            .map_err(|_| GaveUp {
                limit,
                stage: Stage::Discovery,
                failure: None,
            })??,
        None => resolve.await?,
    };
    let mut builder = Informer::builder(client, spec)
        .store_path(&args.store)
        // A command run to bring a store up to date heals known damage
        // first, whatever the full read costs.
        .check_on_open(true)
        .configure(|c| *c = config);
    if let Some(ns) = &args.namespace {
        builder = builder.namespace(ns);
    }
    if let Some(engine) = args.engine {
        builder = builder.engine(engine);
    }
    if let Some(key) = key {
        builder = builder.encryption_key(key);
    }
    // A store this sync creates and never writes to is removed if it gives
    // up, so a mistyped server leaves nothing behind.
    let created = !args.store.exists();
    let informer = builder
        .start()
        .await
        .with_context(|| format!("opening store {}", args.store.display()))?;
    let restored = matches!(informer.opened_state(), State::Restored { .. });
    if let State::Healed { moved_to, damage } = informer.opened_state() {
        // On stderr whatever the log level: the operator must learn where
        // the damaged copy is, and that this sync relists from scratch.
        let _ = writeln!(
            std::io::stderr(),
            "warning: store {} was damaged ({damage}); moved its database to {} and relisting",
            args.store.display(),
            moved_to.display()
        );
    }
    let consumer = match &args.consumer {
        Some(name) => Some(tokio::spawn(consume(
            informer
                .consumer(name)
                .await
                .context("opening the consumer")?,
        ))),
        None => None,
    };
    let mut signals = Signals::install()?;
    let given_up = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        res = informer.wait_until_synced() => res.context("waiting for sync")?,
        sig = signals.recv() => {
            tracing::info!("{sig} before sync; shutting down");
            let unused = created && is_unused(&informer);
            stop_consumer(consumer).await;
            informer.shutdown().await;
            if unused {
                remove_unused(&args.store);
            }
            return Ok(ExitCode::from(super::exit::INTERRUPTED));
        }
        () = given_up => {
            let gave_up = GaveUp {
                limit,
                stage: Stage::Sync { objects: informer.len() },
                failure: informer.last_failure(),
            };
            let unused = created && is_unused(&informer);
            stop_consumer(consumer).await;
            if tokio::time::timeout(SHUTDOWN_GRACE, informer.shutdown()).await.is_err() {
                tracing::warn!("the informer did not stop within {SHUTDOWN_GRACE:?}; exiting all the same");
            } else if unused {
                remove_unused(&args.store);
            }
            return Err(gave_up.into());
        }
    }
    let m = informer.metrics();
    // The status line is for whoever watches; a reader that went away must
    // not stop the sync, so a failed write is ignored.
    let _ = writeln!(
        std::io::stdout(),
        "synced rv={} objects={} resumed={} relists={} list_requests={}",
        informer.last_rv().unwrap_or_default(),
        informer.len(),
        restored && m.relists == 0,
        m.relists,
        m.list_requests
    );
    if !args.until_synced {
        let sig = signals.recv().await;
        tracing::info!("{sig}; flushing and shutting down");
    }
    if consumer.is_some() {
        // Let the consumer print what was committed before shutting down.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_consumer(consumer).await;
    informer.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Whether the informer stored nothing at all: no object and no
/// resourceVersion.
fn is_unused(informer: &Informer) -> bool {
    informer.is_empty() && informer.last_rv().is_none()
}

/// Removes a store this sync created and never wrote to. Its lock was
/// released when the informer stopped; a failure to remove it only leaves
/// an empty store behind.
fn remove_unused(store: &std::path::Path) {
    match std::fs::remove_dir_all(store) {
        Ok(()) => tracing::info!(
            store = %store.display(),
            "removed the store this sync created, which holds nothing"
        ),
        Err(e) => tracing::warn!(
            store = %store.display(),
            error = %e,
            "could not remove the empty store this sync created"
        ),
    }
}

/// `sync --until-synced` gave up: not synced within `--sync-timeout`.
#[derive(Debug)]
pub struct GaveUp {
    /// The timeout that ran out.
    pub limit: Duration,
    /// How far the sync got.
    pub stage: Stage,
    /// The informer's last failure, the cause to name.
    pub failure: Option<LastFailure>,
}

/// How far a sync that gave up got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Resolving the resource through the server's discovery documents.
    Discovery,
    /// Listing and watching, with this many objects stored.
    Sync {
        /// Objects stored when it gave up.
        objects: usize,
    },
}

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.limit.as_secs();
        write!(
            f,
            "not synced within --sync-timeout {secs}s: {}",
            self.why()
        )
    }
}

impl std::error::Error for GaveUp {}

impl GaveUp {
    /// The cause that decides the exit code: `None` when nothing failed.
    pub fn cause(&self) -> Option<FailureCause> {
        self.failure.as_ref().map(|f| f.cause)
    }

    fn why(&self) -> String {
        match (&self.failure, self.stage) {
            (Some(f), _) => format!("{}: {}", f.cause, f.message),
            (None, Stage::Discovery) => {
                "the API server did not answer resource discovery".to_string()
            }
            (None, Stage::Sync { objects }) => format!(
                "nothing failed, the sync is still under way ({objects} objects stored); \
                 give a longer --sync-timeout"
            ),
        }
    }
}

/// Stops the consumer task, and waits until it has, before the informer
/// and its store close under it: what it printed but did not acknowledge
/// is printed again by the next run (at least once).
async fn stop_consumer(task: Option<tokio::task::JoinHandle<()>>) {
    if let Some(task) = task {
        task.abort();
        // Cancelled, or finished: either way it no longer runs.
        let _ = task.await;
    }
}

async fn consume(mut consumer: kube_persist::informer::Consumer) {
    use std::io::Write;
    while let Some(item) = consumer.next().await {
        match item {
            Ok(ev) => {
                let printed = {
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "event seq={} kind={:?} key={} rv={}",
                        ev.seq, ev.kind, ev.key, ev.rv
                    )
                    .and_then(|_| out.flush())
                };
                if let Err(err) = printed {
                    tracing::error!("cannot print events: {err}");
                    return;
                }
                // Acknowledge only what was printed: a crash in between
                // prints it again (at-least-once), never loses it.
                if let Err(err) = consumer.ack(ev.seq).await {
                    tracing::error!("cannot acknowledge seq {}: {err}", ev.seq);
                    return;
                }
            }
            Err(err) => tracing::error!("consumer: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_must_be_an_absolute_http_url_with_a_host() {
        for good in [
            "http://127.0.0.1:6443",
            "https://kube.example.com",
            "https://[::1]:8443/prefix",
            "https://[::1]/prefix",
            "https://user:pw@kube.example.com:6443",
        ] {
            assert!(server_url(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("not-a-url", "it has no http:// or https:// scheme"),
            ("127.0.0.1:6443", "it has no http:// or https:// scheme"),
            ("ftp://host", "scheme \"ftp\" is not http or https"),
            ("/just/a/path", "it has no http:// or https:// scheme"),
            ("http://a b", "invalid uri character"),
            (
                "http://127.0.0.1:99999",
                "port 99999 is not between 1 and 65535",
            ),
            ("http://127.0.0.1:0", "port 0 is not between 1 and 65535"),
            (
                "http://[::1]:70000",
                "port 70000 is not between 1 and 65535",
            ),
        ] {
            let Usage(msg) = server_url(bad).unwrap_err();
            assert!(
                msg.starts_with(&format!("--server {bad:?} is not a valid API server URL: ")),
                "{msg}"
            );
            assert!(msg.contains(why), "{bad}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }
}
