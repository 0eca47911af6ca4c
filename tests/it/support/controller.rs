//! A controller run in process against the simulator, with a reconciler
//! that records what it did and can be told to fail, requeue or dawdle.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use kube_persist::controller::{Action, Config, Controller, Error};
use kube_persist::informer::Informer;
use kube_persist::sim::Simulator;
use tokio::sync::oneshot;

/// What the test reconciler fails with.
#[derive(Debug, thiserror::Error)]
#[error("told to fail")]
pub struct Failure;

/// One reconcile the recorder saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub key: String,
    pub rv: String,
    pub at: SystemTime,
}

/// The reconciler's context: what it saw, and how to behave per key.
#[derive(Default)]
pub struct Recorder {
    pub seen: Mutex<Vec<Seen>>,
    /// Keys whose reconcile fails.
    pub fail: Mutex<HashSet<String>>,
    /// Keys whose reconcile asks for a requeue after this long.
    pub requeue: Mutex<HashMap<String, Duration>>,
    /// How long each reconcile takes.
    pub delay: Mutex<Duration>,
    running: Mutex<HashSet<String>>,
    pub max_running: AtomicUsize,
    /// Set when one key was reconciled by two workers at once.
    pub overlapped: Mutex<Option<String>>,
}

impl Recorder {
    pub fn keys(&self) -> BTreeSet<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.key.clone())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn times_of(&self, key: &str) -> Vec<SystemTime> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.key == key)
            .map(|s| s.at)
            .collect()
    }
}

pub fn key_of(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

pub async fn reconcile(pod: Arc<Pod>, ctx: Arc<Recorder>) -> Result<Action, Failure> {
    let key = key_of(&pod);
    {
        let mut running = ctx.running.lock().unwrap();
        if !running.insert(key.clone()) {
            *ctx.overlapped.lock().unwrap() = Some(key.clone());
        }
        ctx.max_running.fetch_max(running.len(), Ordering::SeqCst);
    }
    let delay = *ctx.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    ctx.running.lock().unwrap().remove(&key);
    ctx.seen.lock().unwrap().push(Seen {
        key: key.clone(),
        rv: pod.resource_version().unwrap_or_default(),
        at: SystemTime::now(),
    });
    if ctx.fail.lock().unwrap().contains(&key) {
        return Err(Failure);
    }
    Ok(match ctx.requeue.lock().unwrap().get(&key) {
        Some(after) => Action::requeue(*after),
        None => Action::await_change(),
    })
}

pub fn error_policy(_pod: Arc<Pod>, _err: &Failure, _ctx: Arc<Recorder>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

/// What the controller's stream yields.
pub type Results = Vec<Result<(ObjectRef<Pod>, Action), Error<Failure>>>;

/// A running controller: stop it to get its results.
pub struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Results>,
}

impl Running {
    /// Starts `controller` with the recorder's reconciler.
    pub fn start(controller: Controller<Pod>, recorder: Arc<Recorder>) -> Running {
        let (stop, stopped) = oneshot::channel();
        let stream = controller
            .graceful_shutdown_on(async move {
                let _ = stopped.await;
            })
            .run(reconcile, error_policy, recorder);
        let task = tokio::spawn(stream.collect::<Vec<_>>());
        Running { stop, task }
    }

    /// Graceful shutdown; the results the stream yielded.
    pub async fn stop(self) -> Results {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the controller drains and stops")
            .unwrap()
    }
}

/// A pod controller on `informer` with a short commit interval.
pub fn pod_controller(informer: &Informer, name: &str) -> Controller<Pod> {
    Controller::new(informer, name)
        .unwrap()
        .with_config(Config::default().commit_interval(Duration::from_millis(20)))
        .unwrap()
}

/// key → resourceVersion of the simulator's pods.
pub fn server_versions(sim: &Simulator) -> BTreeMap<String, String> {
    crate::support::informer::versions(&sim.objects("pods"))
}

/// Keys created or changed between two snapshots (deleted ones left out:
/// nothing reconciles a deleted object).
pub fn changed(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    after
        .iter()
        .filter(|(k, rv)| before.get(*k) != Some(*rv))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Waits (bounded) until `cond` holds of the recorder.
pub async fn until(what: &str, recorder: &Recorder, cond: impl Fn(&Recorder) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond(recorder) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; saw {} reconciles",
            recorder.count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
