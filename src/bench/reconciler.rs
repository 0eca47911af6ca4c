//! What runs inside a `bench controller` child: a controller over the
//! simulator's pods, kube-runtime's from scratch or kube-persist's on its
//! store, whose reconciler counts what it is given.
//!
//! With a set of *needed* keys the child stops once it has reconciled all
//! of them and then seen `quiet` pass (to count any reconcile beyond them),
//! shuts its controller down gracefully and prints one [`ReconcilerReport`]
//! line. Without, it runs until SIGTERM / SIGINT; with `print` set it then
//! prints one [`Reconciled`] line per reconcile, which is what the crash
//! tests read.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt};
use tokio::sync::oneshot;

use super::child::{client_for, emit, peak_rss_bytes};
use super::clock;
use super::{Error, Result};
use crate::controller::{self, Controller};
use crate::informer::Informer;

/// Which controller a child runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ControllerKind {
    /// kube-runtime's `Controller`, in memory, from scratch.
    KubeRuntime,
    /// kube-persist's `Controller` over its store.
    KubePersist,
}

impl std::fmt::Display for ControllerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ControllerKind::KubeRuntime => "kube-runtime",
            ControllerKind::KubePersist => "kube-persist",
        })
    }
}

/// A child's settings, from its command line.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcilerSpec {
    /// Which controller.
    pub kind: ControllerKind,
    /// API server URL.
    pub server: String,
    /// Store directory (kube-persist).
    pub store: Option<PathBuf>,
    /// The kube-persist controller's name.
    pub name: String,
    /// A file of `namespace/name` lines: the keys to reconcile before
    /// stopping. None: run until a signal.
    pub needed: Option<PathBuf>,
    /// How long to go on after the last needed reconcile.
    pub quiet: Duration,
    /// Print a line per reconcile.
    pub print: bool,
    /// Fail the first attempt (per process) of one key in this many.
    pub fail_one_in: u64,
    /// Requeue one key in this many after 1 s.
    pub requeue_one_in: u64,
    /// The controller's debounce (`Config::debounce` in either library).
    pub debounce: Duration,
}

impl ReconcilerSpec {
    /// The arguments that make `kube-persist` run this child.
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "bench".into(),
            "reconciler".into(),
            self.kind.to_string().into(),
            "--server".into(),
            self.server.clone().into(),
            "--name".into(),
            self.name.clone().into(),
            "--quiet-ms".into(),
            self.quiet.as_millis().to_string().into(),
        ];
        if let Some(store) = &self.store {
            args.extend(["--store".into(), store.clone().into_os_string()]);
        }
        if let Some(needed) = &self.needed {
            args.extend(["--needed".into(), needed.clone().into_os_string()]);
        }
        if self.print {
            args.push("--print-reconciles".into());
        }
        if !self.debounce.is_zero() {
            args.extend([
                "--debounce-ms".into(),
                self.debounce.as_millis().to_string().into(),
            ]);
        }
        for (flag, n) in [
            ("--fail-one-in", self.fail_one_in),
            ("--requeue-one-in", self.requeue_one_in),
        ] {
            if n > 0 {
                args.extend([flag.into(), n.to_string().into()]);
            }
        }
        args
    }
}

/// One reconcile, as printed with `print`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reconciled {
    /// `namespace/name`.
    pub key: String,
    /// The resourceVersion the reconciler was given.
    pub rv: String,
    /// Whether it succeeded.
    pub ok: bool,
}

/// What a child with needed keys reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReconcilerReport {
    /// When the child's code started (monotonic ns, see [`clock`]).
    pub main_ns: u64,
    /// Reconciles run.
    pub reconciles: u64,
    /// Keys that had to be reconciled.
    pub needed: u64,
    /// When the last of them was (its start when none were needed).
    pub last_needed_ns: u64,
    /// Peak RSS, bytes.
    pub peak_rss_bytes: u64,
}

/// What the reconciler does with one key.
enum Outcome {
    Done,
    Requeue,
    Fail,
}

#[derive(Debug, thiserror::Error)]
#[error("the bench reconciler fails this key's first attempt")]
struct Injected;

/// Counts reconciles and tells when every needed key was seen.
struct Tracker {
    needed: Option<usize>,
    left: Mutex<HashSet<String>>,
    all_seen: Mutex<Option<oneshot::Sender<()>>>,
    count: AtomicU64,
    last_needed_ns: AtomicU64,
    attempts: Mutex<HashMap<String, u32>>,
    print: Mutex<Option<std::io::Stdout>>,
    fail_one_in: u64,
    requeue_one_in: u64,
}

/// FNV-1a: a stable hash, the same in every process, picks the keys that
/// fail or requeue.
fn stable_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Tracker {
    fn reconcile(&self, pod: &Pod) -> Outcome {
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        self.count.fetch_add(1, Ordering::Relaxed);
        {
            let mut left = self.left.lock().unwrap_or_else(PoisonError::into_inner);
            if left.remove(&key) && left.is_empty() {
                self.last_needed_ns
                    .store(clock::now_ns(), Ordering::Relaxed);
                if let Some(tx) = self
                    .all_seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                {
                    let _ = tx.send(());
                }
            }
        }
        let hash = stable_hash(&key);
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
            let n = attempts.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let outcome =
            if self.fail_one_in > 0 && hash.is_multiple_of(self.fail_one_in) && attempt == 1 {
                Outcome::Fail
            } else if self.requeue_one_in > 0 && hash % self.requeue_one_in == 1 {
                Outcome::Requeue
            } else {
                Outcome::Done
            };
        if let Some(out) = self
            .print
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            let line = Reconciled {
                key,
                rv: pod.resource_version().unwrap_or_default(),
                ok: !matches!(outcome, Outcome::Fail),
            };
            if let Err(err) = emit(out, &line) {
                tracing::warn!("cannot print a reconcile: {err}");
            }
        }
        outcome
    }
}

const REQUEUE: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(100);

/// Runs the child described by `spec`, writing its report to `out`.
pub async fn run(spec: &ReconcilerSpec, out: &mut dyn Write) -> Result<()> {
    let main_ns = clock::now_ns();
    let needed: Option<HashSet<String>> = match &spec.needed {
        None => None,
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
    };
    let (all_seen_tx, all_seen) = oneshot::channel();
    let tracker = Arc::new(Tracker {
        needed: needed.as_ref().map(HashSet::len),
        left: Mutex::new(needed.clone().unwrap_or_default()),
        all_seen: Mutex::new(Some(all_seen_tx)),
        count: AtomicU64::new(0),
        last_needed_ns: AtomicU64::new(main_ns),
        attempts: Mutex::new(HashMap::new()),
        print: Mutex::new(spec.print.then(std::io::stdout)),
        fail_one_in: spec.fail_one_in,
        requeue_one_in: spec.requeue_one_in,
    });
    if needed.as_ref().is_some_and(HashSet::is_empty) {
        if let Some(tx) = tracker
            .all_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = tx.send(());
        }
    }
    // Fires `quiet` after every needed key was seen; never without needed keys.
    let (stop_tx, stop) = oneshot::channel::<()>();
    if needed.is_some() {
        let quiet = spec.quiet;
        tokio::spawn(async move {
            if all_seen.await.is_ok() {
                tokio::time::sleep(quiet).await;
                let _ = stop_tx.send(());
            }
        });
    }
    let stop = async move {
        let _ = stop.await;
    };
    let client = client_for(&spec.server)?;
    match spec.kind {
        ControllerKind::KubeRuntime => {
            run_kube_runtime(client, spec.debounce, tracker.clone(), stop).await
        }
        ControllerKind::KubePersist => run_persist(spec, client, tracker.clone(), stop).await?,
    }
    if let Some(needed) = tracker.needed {
        emit(
            out,
            &ReconcilerReport {
                main_ns,
                reconciles: tracker.count.load(Ordering::Relaxed),
                needed: needed as u64,
                last_needed_ns: tracker.last_needed_ns.load(Ordering::Relaxed),
                peak_rss_bytes: peak_rss_bytes().unwrap_or(0),
            },
        )?;
    }
    Ok(())
}

/// kube-runtime's controller exactly as a kube-rs operator sets it up.
async fn run_kube_runtime(
    client: kube::Client,
    debounce: Duration,
    tracker: Arc<Tracker>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    use kube::runtime::controller::{Action, Config, Controller};
    use kube::runtime::watcher;
    async fn reconcile(pod: Arc<Pod>, t: Arc<Tracker>) -> std::result::Result<Action, Injected> {
        match t.reconcile(&pod) {
            Outcome::Done => Ok(Action::await_change()),
            Outcome::Requeue => Ok(Action::requeue(REQUEUE)),
            Outcome::Fail => Err(Injected),
        }
    }
    Controller::new(Api::<Pod>::all(client), watcher::Config::default())
        .with_config(Config::default().debounce(debounce))
        .graceful_shutdown_on(stop)
        .shutdown_on_signal()
        .run(reconcile, |_, _, _| Action::requeue(RETRY), tracker)
        .for_each(|r| async move {
            if let Err(err) = r {
                tracing::debug!("{err}");
            }
        })
        .await;
}

/// kube-persist's controller over the store, resuming from it.
async fn run_persist(
    spec: &ReconcilerSpec,
    client: kube::Client,
    tracker: Arc<Tracker>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use crate::controller::Action;
    let store = spec.store.as_ref().ok_or(Error::InvalidOption {
        option: "--store",
        reason: "the kube-persist controller needs a store directory".into(),
    })?;
    async fn reconcile(pod: Arc<Pod>, t: Arc<Tracker>) -> std::result::Result<Action, Injected> {
        match t.reconcile(&pod) {
            Outcome::Done => Ok(Action::await_change()),
            Outcome::Requeue => Ok(Action::requeue(REQUEUE)),
            Outcome::Fail => Err(Injected),
        }
    }
    let informer = Informer::for_resource::<Pod>(client)
        .store_path(store)
        .start()
        .await?;
    Controller::<Pod>::new(&informer, &spec.name)?
        .with_config(controller::Config::default().debounce(spec.debounce))?
        .graceful_shutdown_on(stop)
        .shutdown_on_signal()
        .run(reconcile, |_, _, _| Action::requeue(RETRY), tracker)
        .for_each(|r| async move {
            match r {
                Err(controller::Error::ReconcilerFailed(..)) | Ok(_) => {}
                Err(err) => tracing::warn!("{err}"),
            }
        })
        .await;
    informer.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_name_everything_the_child_needs() {
        let spec = ReconcilerSpec {
            kind: ControllerKind::KubePersist,
            server: "http://127.0.0.1:1".into(),
            store: Some("/tmp/s".into()),
            name: "bench".into(),
            needed: Some("/tmp/n".into()),
            quiet: Duration::from_millis(500),
            print: true,
            fail_one_in: 7,
            requeue_one_in: 0,
            debounce: Duration::from_millis(250),
        };
        let args: Vec<String> = spec
            .to_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args.join(" "),
            "bench reconciler kube-persist --server http://127.0.0.1:1 --name bench --quiet-ms 500 \
             --store /tmp/s --needed /tmp/n --print-reconciles --debounce-ms 250 --fail-one-in 7"
        );
    }

    #[test]
    fn the_stable_hash_is_fnv1a() {
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
