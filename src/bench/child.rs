//! What runs inside a contender's child process (`kube-persist bench child`).
//!
//! The child gets its cache ready, answers one `get` of a known object,
//! and prints one JSON line ([`ChildReport`]) with the monotonic instants at
//! which it did so. In steady-state mode it then keeps handling events until
//! every stamped write the parent announced has reached its handler, and
//! prints a second line ([`SteadyReport`]).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use kube::Api;

use serde_json::Value;

use super::clock;
pub use super::steady::SteadyReport;
use super::steady::{Recorder, STAMP_ANNOTATION, STAMP_POINTER};
use super::{Error, Result};
use crate::informer::{Informer, State};
use crate::store::ObjectKey;

/// Which body a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChildKind {
    /// kube-persist's informer over a store directory.
    Persist,
    /// kube-runtime's reflector, in memory.
    Reflector,
}

impl std::fmt::Display for ChildKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChildKind::Persist => "kube-persist informer",
            ChildKind::Reflector => "kube-runtime reflector",
        })
    }
}

impl ChildKind {
    fn arg(self) -> &'static str {
        match self {
            ChildKind::Persist => "persist",
            ChildKind::Reflector => "reflector",
        }
    }
}

/// Everything a child needs to know, passed on its command line.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSpec {
    /// Which body to run.
    pub kind: ChildKind,
    /// API server URL (loopback).
    pub server: String,
    /// A kubeconfig to read instead of connecting to `server` with no
    /// credentials (the real kube-apiserver needs its token and CA).
    pub kubeconfig: Option<PathBuf>,
    /// Store directory (persist only).
    pub store: Option<PathBuf>,
    /// `namespace/name` of a pod that must be readable once ready.
    pub probe: String,
    /// Steady-state mode: stamped paced and burst events to wait for.
    pub steady: Option<(u64, u64)>,
}

impl ChildSpec {
    /// The arguments after the executable that make `kube-persist` run this
    /// child; the `bench child` subcommand parses them back.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "bench".into(),
            "child".into(),
            self.kind.arg().into(),
            "--server".into(),
            self.server.clone().into(),
            "--probe".into(),
            self.probe.clone().into(),
        ];
        if let Some(kubeconfig) = &self.kubeconfig {
            args.push("--kubeconfig".into());
            args.push(kubeconfig.clone().into_os_string());
        }
        if let Some(store) = &self.store {
            args.push("--store".into());
            args.push(store.clone().into_os_string());
        }
        if let Some((paced, burst)) = self.steady {
            args.push("--steady-paced".into());
            args.push(paced.to_string().into());
            args.push("--steady-burst".into());
            args.push(burst.to_string().into());
        }
        args
    }
}

/// The child's milestones, on the shared monotonic clock ([`clock`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChildReport {
    /// When the child's code started running (after exec and runtime start).
    pub main_ns: u64,
    /// When the first `get` of the probe object returned it.
    pub first_read_ns: u64,
    /// When the cache was ready (Synced / InitDone).
    pub ready_ns: u64,
    /// Objects in the cache once ready.
    pub objects: u64,
    /// Whether the probe object was found by that first `get`.
    pub probe_found: bool,
    /// Whether the informer resumed from its store (persist only).
    pub resumed: Option<bool>,
    /// The process's peak RSS so far (VmHWM), bytes; 0 if unknown.
    pub peak_rss_bytes: u64,
}

/// This process's peak resident set size (`VmHWM` in /proc/self/status),
/// bytes. Unlike `ru_maxrss` it starts afresh at `exec`, so it is the
/// contender's own.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Runs the child described by `spec`, writing its report line(s) to `out`.
pub async fn run(spec: &ChildSpec, out: &mut dyn Write) -> Result<()> {
    let main_ns = clock::now_ns();
    match spec.kind {
        ChildKind::Reflector => run_reflector(spec, main_ns, out).await,
        ChildKind::Persist => run_persist(spec, main_ns, out).await,
    }
}

/// Writes one report line and flushes it: the parent is waiting on it.
pub(crate) fn emit<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<()> {
    let line = serde_json::to_string(value).map_err(|e| Error::Io {
        path: "<stdout>".into(),
        source: std::io::Error::other(e),
    })?;
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            path: "<stdout>".into(),
            source,
        })
}

/// A client for the server URL, with kube's defaults otherwise.
pub fn client_for(server: &str) -> Result<kube::Client> {
    let uri: http::Uri = server
        .parse()
        .map_err(|e: http::uri::InvalidUri| Error::ServerUrl {
            url: server.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(kube::Client::try_from(kube::Config::new(uri))?)
}

/// The client a child uses: the kubeconfig when there is one, else the
/// plain server URL.
async fn client_of(spec: &ChildSpec) -> Result<kube::Client> {
    match &spec.kubeconfig {
        Some(path) => Ok(super::apiserver::client_from_kubeconfig(path).await?),
        None => client_for(&spec.server),
    }
}

/// Splits a `namespace/name` probe key.
fn probe_parts(probe: &str) -> (&str, &str) {
    probe.split_once('/').unwrap_or(("", probe))
}

/// Contender 4: kube-runtime's reflector from scratch, exactly as a kube-rs
/// controller sets it up (default watcher config: paginated LIST of 500,
/// then watch with bookmarks). Its store only shows objects once the
/// initial list is done, so the first read is right after `InitDone`.
async fn run_reflector(spec: &ChildSpec, main_ns: u64, out: &mut dyn Write) -> Result<()> {
    let api: Api<Pod> = Api::all(client_of(spec).await?);
    let (reader, writer) = reflector::store::<Pod>();
    let mut events = reflector::reflector(writer, watcher(api, watcher::Config::default())).boxed();
    wait_for_init_done(&mut events).await?;
    let ready_ns = clock::now_ns();
    let (namespace, name) = probe_parts(&spec.probe);
    let found = reader
        .get(&ObjectRef::new(name).within(namespace))
        .is_some();
    let first_read_ns = clock::now_ns();
    emit(
        out,
        &ChildReport {
            main_ns,
            first_read_ns,
            ready_ns,
            objects: reader.len() as u64,
            probe_found: found,
            resumed: None,
            peak_rss_bytes: peak_rss_bytes().unwrap_or(0),
        },
    )?;
    if let Some((paced, burst)) = spec.steady {
        let mut recorder = Recorder::new(paced, burst);
        while !recorder.is_complete() {
            match events.try_next().await? {
                Some(watcher::Event::Apply(pod)) => {
                    let now = clock::now_ns();
                    if let Some(stamp) = pod
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(STAMP_ANNOTATION))
                    {
                        recorder.observe(stamp, now);
                    }
                }
                Some(_) => {}
                None => return Err(Error::StreamEnded),
            }
        }
        emit(out, &recorder.report(peak_rss_bytes().unwrap_or(0)))?;
    }
    Ok(())
}

async fn wait_for_init_done<S>(events: &mut S) -> Result<()>
where
    S: Stream<Item = watcher::Result<watcher::Event<Pod>>> + Unpin,
{
    loop {
        match events.try_next().await? {
            Some(watcher::Event::InitDone) => return Ok(()),
            Some(_) => {}
            None => return Err(Error::StreamEnded),
        }
    }
}

/// Contenders 1–3: kube-persist's informer over a store directory. What the
/// store holds (nothing, a valid resourceVersion, a compacted one) is what
/// makes it a fresh start, a resume or a relist after 410. The store is read
/// as soon as it is open, before the watch has caught up; a fresh store has
/// nothing to answer until its first list is in.
async fn run_persist(spec: &ChildSpec, main_ns: u64, out: &mut dyn Write) -> Result<()> {
    let store = spec.store.as_ref().ok_or(Error::InvalidOption {
        option: "--store",
        reason: "the persist child needs a store directory".into(),
    })?;
    let informer = Informer::for_resource::<Pod>(client_of(spec).await?)
        .store_path(store)
        .start()
        .await?;
    let restored = matches!(informer.opened_state(), State::Restored { .. });
    let (namespace, name) = probe_parts(&spec.probe);
    let key = ObjectKey {
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    };
    let mut found = informer.get(&key)?.is_some();
    let mut first_read_ns = clock::now_ns();
    // Subscribed before the ready line, so no stamped write can slip by.
    let mut events = spec.steady.map(|_| Box::pin(informer.subscribe()));
    match events.as_mut() {
        // The handler takes the initial sync's events as they come, as
        // kube-runtime's reflector does before InitDone: one that began at
        // the ready line would start the paced writes behind the whole
        // initial list. No stamped write is made before that line.
        Some(events) => {
            let synced = informer.wait_until_synced();
            tokio::pin!(synced);
            loop {
                tokio::select! {
                    done = &mut synced => break done?,
                    event = events.try_next() => drop(event?.ok_or(Error::StreamEnded)?),
                }
            }
            while let Some(event) = events.try_next().now_or_never() {
                event?.ok_or(Error::StreamEnded)?;
            }
        }
        None => informer.wait_until_synced().await?,
    }
    let ready_ns = clock::now_ns();
    if !found {
        found = informer.get(&key)?.is_some();
        first_read_ns = clock::now_ns();
    }
    let metrics = informer.metrics();
    emit(
        out,
        &ChildReport {
            main_ns,
            first_read_ns,
            ready_ns,
            objects: informer.len() as u64,
            probe_found: found,
            resumed: Some(restored && metrics.relists == 0),
            peak_rss_bytes: peak_rss_bytes().unwrap_or(0),
        },
    )?;
    if let (Some((paced, burst)), Some(mut events)) = (spec.steady, events) {
        let mut recorder = Recorder::new(paced, burst);
        while !recorder.is_complete() {
            let event = events.try_next().await?.ok_or(Error::StreamEnded)?;
            let now = clock::now_ns();
            let stamp = event
                .new
                .as_ref()
                .and_then(|o| o.pointer(&format!("/metadata/annotations/{}", STAMP_POINTER)))
                .and_then(Value::as_str);
            if let Some(stamp) = stamp {
                recorder.observe(stamp, now);
            }
        }
        emit(out, &recorder.report(peak_rss_bytes().unwrap_or(0)))?;
    }
    informer.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_grows_with_what_the_process_touches() {
        let before = peak_rss_bytes().unwrap();
        assert!(before > 0);
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        let after = peak_rss_bytes().unwrap();
        assert!(after >= before.max(64 << 20), "{before} → {after}");
    }

    #[test]
    fn child_args_name_everything_the_child_needs() {
        let spec = ChildSpec {
            kind: ChildKind::Persist,
            server: "http://127.0.0.1:1".into(),
            kubeconfig: Some("/tmp/kc".into()),
            store: Some("/tmp/s".into()),
            probe: "ns/p".into(),
            steady: Some((3, 4)),
        };
        let args: Vec<String> = spec
            .to_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "bench",
                "child",
                "persist",
                "--server",
                "http://127.0.0.1:1",
                "--probe",
                "ns/p",
                "--kubeconfig",
                "/tmp/kc",
                "--store",
                "/tmp/s",
                "--steady-paced",
                "3",
                "--steady-burst",
                "4"
            ]
        );
    }

    #[test]
    fn a_url_that_is_not_one_is_refused_by_name() {
        match client_for("not a url") {
            Err(Error::ServerUrl { url, .. }) => assert_eq!(url, "not a url"),
            other => panic!("expected ServerUrl, got {:?}", other.map(|_| ())),
        }
    }
}
