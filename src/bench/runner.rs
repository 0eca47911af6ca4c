//! Driving one comparison end to end: a cluster per object count (the
//! simulator or a real kube-apiserver), every contender in its own child
//! process, several repetitions, and the server's counters read around each
//! run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::child::{ChildKind, ChildReport, ChildSpec};
use super::clientgo::{self, Encoding};
use super::clock;
use super::cluster::{Cluster, ServerKind};
use super::contender::Contender;
use super::process::Running;
use super::report::{Report, Sample, Setup, SteadyRow};
use super::steady::{Load, Phase, SteadyReport};
use super::{apiserver, Error, Result};
use crate::sim::SimConfig;
use crate::store::ObjectKey;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// This executable, re-run as each contender's child process.
    pub exe: PathBuf,
    /// Pod counts of the simulated cluster, one round each.
    pub objects: Vec<usize>,
    /// Percentages of objects written while a resuming process is down.
    pub changed_pct: Vec<u32>,
    /// Percentages written before the RV is compacted away, one 410
    /// relist each.
    pub gone_changed_pct: Vec<u32>,
    /// Repetitions of every measurement.
    pub reps: usize,
    /// Where stores and child logs go.
    pub work_dir: PathBuf,
    /// Time limit of one child process.
    pub timeout: Duration,
    /// How often the simulator sends bookmarks on watches that ask for them.
    pub bookmark_interval: Duration,
    /// Seed of the simulator's objects and writes.
    pub seed: u64,
    /// The steady-state measurement, if wanted.
    pub steady: Option<SteadyPlan>,
    /// The API server to run against.
    pub server: ServerKind,
    /// Where tests/apiserver's programs are (`apiserver`,
    /// `clientgo-informer`).
    pub harness_dir: PathBuf,
    /// client-go's informer, once per encoding listed (none: not run).
    pub clientgo: Vec<Encoding>,
}

/// The steady-state part of a plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SteadyPlan {
    /// Pods in the cluster while measuring.
    pub objects: usize,
    /// The writes.
    pub load: Load,
}

/// Where a run is, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Measurements finished.
    pub done: usize,
    /// Measurements in the plan.
    pub total: usize,
    /// What is being measured now.
    pub step: String,
}

impl Plan {
    /// Refuses plans that cannot produce a meaningful comparison.
    pub fn validate(&self) -> Result<()> {
        let bad = |option, reason: &str| {
            Err(Error::InvalidOption {
                option,
                reason: reason.to_owned(),
            })
        };
        if self.objects.is_empty() {
            return bad("--objects", "give at least one object count");
        }
        if self.objects.contains(&0) {
            return bad("--objects", "object counts must be at least 1");
        }
        if self.changed_pct.iter().any(|p| *p > 100) {
            return bad("--changed", "percentages must be between 0 and 100");
        }
        if self.gone_changed_pct.iter().any(|p| *p > 100) {
            return bad("--gone-changed", "percentages must be between 0 and 100");
        }
        if self.reps == 0 {
            return bad("--reps", "at least one repetition is needed");
        }
        if let Some(s) = &self.steady {
            if s.objects == 0 {
                return bad("--steady-objects", "must be at least 1");
            }
            if s.load.rate_per_sec == 0 {
                return bad("--rate", "must be at least 1 write per second");
            }
            if s.load.paced_events == 0 && s.load.burst_events == 0 {
                return bad("--steady-events", "give paced or burst events");
            }
        }
        Ok(())
    }

    /// Child processes measured in this plan (not counting the unmeasured).
    pub fn steps(&self) -> usize {
        // Per repetition: reflector, fresh, each resume, each 410 relist,
        // and client-go in each encoding.
        let per_rep =
            2 + self.changed_pct.len() + self.gone_changed_pct.len() + self.clientgo.len();
        self.objects.len() * self.reps * per_rep + if self.steady.is_some() { 2 } else { 0 }
    }

    /// What the report should say about how this plan measures, beyond the
    /// table's own footer.
    fn notes(&self) -> Vec<String> {
        match self.server {
            ServerKind::Sim if self.clientgo.contains(&Encoding::Protobuf) => vec![
                "client-go informer protobuf: the simulator serves JSON only, so client-go falls back to JSON there".to_owned(),
            ],
            ServerKind::Sim => Vec::new(),
            ServerKind::KubeApiServer => vec![
                "server: kube-apiserver v1.37 (tests/apiserver) on an embedded etcd, watch cache on; LIST/WATCH counted from its audit log; pulled = bytes on the wire (TLS, HTTP framing included) through a counting relay".to_owned(),
                format!(
                    "persist 410 relist: writes while down, then {} s without writes and one pod written over and over until a watch from before answered 410 (the watch cache's window, not a compaction); that pod is one more change",
                    (apiserver::EVENT_FRESH.as_secs() + 2)
                ),
                "client-go and kube-runtime list with their defaults: client-go v0.37 a streaming list (sendInitialEvents), kube-runtime pages of 500".to_owned(),
                "client-go's Go transport asks for gzip, which kube-apiserver applies to answers of 128 KB and more; kube-rs (built without its gzip feature) and so kube-persist do not ask".to_owned(),
            ],
        }
    }
}

/// Creates a run's work directory and the runtime the parent drives its
/// simulator on.
pub(crate) fn parent_runtime(work_dir: &Path) -> Result<tokio::runtime::Runtime> {
    std::fs::create_dir_all(work_dir).map_err(|source| Error::Io {
        path: work_dir.to_owned(),
        source,
    })?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            path: "<tokio runtime>".into(),
            source,
        })
}

/// resourceVersions a second spent on Lease renewals in the simulated
/// cluster: a control plane's two leader elections every 2 s and a few
/// kubelets every 10 s.
pub const BACKGROUND_WRITES_PER_SEC: f64 = 1.5;

/// Namespaces `pods` pods are dealt over, on either server: 250 a
/// namespace, between 1 and 200 of them.
pub fn namespaces_for(pods: usize) -> usize {
    (pods / 250).clamp(1, 200)
}

/// The simulated cluster every bench and the demo run against: `pods` pods
/// over [`namespaces_for`] namespaces, a cluster's Lease renewals moving the
/// resourceVersion (and with it the bookmarks) even when no pod changes,
/// and otherwise kube-apiserver's behaviour as [`SimConfig::default`] has
/// it: its watch cache keeps every write a contender misses while down
/// (made in a burst, well inside 75 s); only a 410 row compacts.
pub fn sim_config(pods: usize, seed: u64, bookmark_interval: Duration) -> SimConfig {
    SimConfig {
        pods,
        namespaces: namespaces_for(pods),
        seed,
        bookmark_interval,
        background_writes_per_sec: BACKGROUND_WRITES_PER_SEC,
        ..SimConfig::default()
    }
}

/// Writes that change `pct` percent of `pods` (at least one if pct > 0).
pub(crate) fn writes_for(pods: usize, pct: u32) -> usize {
    if pct == 0 {
        0
    } else {
        (pods * pct as usize).div_ceil(100)
    }
}

/// Runs `plan`, calling `on_progress` before each measurement.
pub fn run(plan: &Plan, on_progress: &mut dyn FnMut(&Progress)) -> Result<Report> {
    plan.validate()?;
    let runtime = parent_runtime(&plan.work_dir)?;
    let mut bench = Bench {
        plan,
        runtime,
        on_progress,
        done: 0,
        samples: Vec::new(),
    };
    for &pods in &plan.objects {
        bench.objects_round(pods)?;
    }
    let steady = match plan.steady {
        Some(s) => bench.steady_round(s)?,
        None => Vec::new(),
    };
    let mut report = Report::new(Setup::of(plan), bench.samples, steady);
    report.notes.extend(plan.notes());
    Ok(report)
}

/// One repetition at one object count.
#[derive(Clone, Copy)]
struct Round<'s> {
    cluster: &'s Cluster,
    pods: usize,
    rep: usize,
    raw_json_bytes: u64,
    metadata_list_bytes: u64,
}

struct Bench<'a> {
    plan: &'a Plan,
    runtime: tokio::runtime::Runtime,
    on_progress: &'a mut dyn FnMut(&Progress),
    done: usize,
    samples: Vec<Sample>,
}

impl Bench<'_> {
    /// Says what is being measured now, which counts as a step.
    fn progress(&mut self, step: String) {
        self.status(step);
        self.done += 1;
    }

    /// Says what is happening between measurements.
    fn status(&mut self, step: String) {
        (self.on_progress)(&Progress {
            done: self.done,
            total: self.plan.steps(),
            step,
        });
    }

    fn start_cluster(&self, pods: usize) -> Result<Cluster> {
        match self.plan.server {
            ServerKind::Sim => Cluster::sim(
                &self.runtime,
                sim_config(pods, self.plan.seed, self.plan.bookmark_interval),
            ),
            ServerKind::KubeApiServer => {
                let program =
                    apiserver::program(&self.plan.harness_dir, apiserver::APISERVER_PROGRAM)?;
                Cluster::kube_apiserver(
                    &self.runtime,
                    &program,
                    pods,
                    namespaces_for(pods),
                    self.plan.seed,
                )
            }
        }
    }

    /// Every contender at one object count, `reps` times. The persist
    /// contenders share one store per repetition, in an order where each
    /// leaves it as the next one needs it: the fresh run syncs it, each
    /// resume starts from the state the previous run synced, and the 410
    /// relists come last because each pushes the store's resourceVersion
    /// out of the server's history.
    fn objects_round(&mut self, pods: usize) -> Result<()> {
        self.status(format!("{pods} pods: starting the {}", self.plan.server));
        let cluster = self.start_cluster(pods)?;
        let objects = cluster.pods(&self.runtime)?;
        let raw_json_bytes = raw_json_bytes(&objects);
        let mut now = keys(&objects);
        drop(objects);
        let metadata_list_bytes = cluster.metadata_list_bytes(&self.runtime)?;
        for rep in 0..self.plan.reps {
            let round = Round {
                cluster: &cluster,
                pods,
                rep,
                raw_json_bytes,
                metadata_list_bytes,
            };
            let store = self.plan.work_dir.join(format!("store-{pods}-{rep}"));
            remove_dir(&store)?;
            let probe = probe_key(&now, None)?;
            self.measure(&round, Contender::Reflector, None, &probe)?;
            for &encoding in &self.plan.clientgo {
                let c = Contender::ClientGo {
                    protobuf: encoding.is_protobuf(),
                };
                self.measure(&round, c, None, &probe)?;
            }
            self.measure(&round, Contender::Fresh, Some(&store), &probe)?;
            for &changed_pct in &self.plan.changed_pct {
                let probe = self.write(&cluster, &mut now, writes_for(pods, changed_pct))?;
                let c = Contender::Resume { changed_pct };
                self.measure(&round, c, Some(&store), &probe)?;
            }
            for &changed_pct in &self.plan.gone_changed_pct {
                let probe = self.write(&cluster, &mut now, writes_for(pods, changed_pct))?;
                let c = Contender::RelistAfterGone { changed_pct };
                self.status(format!(
                    "{pods} pods, rep {}: {c}: expiring the history",
                    rep + 1
                ));
                // The one pod written over and over is one of the probe's
                // namespace: a pod the store holds.
                let namespace = probe.split_once('/').map_or("", |(ns, _)| ns);
                cluster.expire_history(&self.runtime, namespace)?;
                self.measure(&round, c, Some(&store), &probe)?;
            }
            remove_dir(&store)?;
        }
        cluster.shutdown(&self.runtime);
        Ok(())
    }

    /// Writes `n` pods while the persist contender is down. `keys` holds
    /// the server's keys as the store last synced them and is brought up
    /// to date; returns the probe of the run that follows: a key that
    /// exists now and that the store held, since a resuming contender reads
    /// its store before it has caught up.
    fn write(&self, cluster: &Cluster, keys: &mut HashSet<String>, n: usize) -> Result<String> {
        cluster.mutate(n)?;
        let synced = std::mem::replace(keys, self::keys(&cluster.pods(&self.runtime)?));
        probe_key(keys, Some(&synced))
    }

    fn measure(
        &mut self,
        round: &Round<'_>,
        contender: Contender,
        store: Option<&Path>,
        probe: &str,
    ) -> Result<()> {
        let Round {
            cluster,
            pods,
            rep,
            raw_json_bytes,
            metadata_list_bytes,
        } = *round;
        self.progress(format!("{pods} pods, rep {}: {contender}", rep + 1));
        let endpoint = cluster.endpoint();
        let label = contender.to_string();
        let mark = cluster.mark(&self.runtime)?;
        let (report, spawned_ns): (ChildReport, u64) = match contender.child_kind() {
            Some(kind) => {
                let spec = ChildSpec {
                    kind,
                    server: endpoint.server,
                    kubeconfig: endpoint.kubeconfig,
                    store: store.map(Path::to_owned),
                    probe: probe.to_owned(),
                    steady: None,
                };
                self.run_child(&label, &self.plan.exe, &spec.to_args())?
            }
            None => {
                let program =
                    apiserver::program(&self.plan.harness_dir, apiserver::CLIENTGO_PROGRAM)?;
                let encoding = match contender {
                    Contender::ClientGo { protobuf: true } => Encoding::Protobuf,
                    _ => Encoding::Json,
                };
                let args = clientgo::args(&endpoint, probe, encoding, self.plan.timeout.as_secs());
                self.run_child(&label, &program, &args)?
            }
        };
        let served = cluster.served_since(&self.runtime, &mark)?;
        if !report.probe_found {
            return Err(Error::ProbeMissing {
                contender: label,
                probe: probe.to_owned(),
            });
        }
        let disk_bytes = store.map(dir_bytes).transpose()?;
        self.samples.push(Sample {
            objects: pods,
            contender,
            rep,
            first_read_ms: ms(clock::between(spawned_ns, report.first_read_ns)),
            ready_ms: ms(clock::between(spawned_ns, report.ready_ns)),
            list_requests: served.list_requests,
            watch_requests: served.watch_requests,
            bytes_pulled: served.bytes,
            peak_rss_bytes: report.peak_rss_bytes,
            disk_bytes,
            raw_json_bytes,
            metadata_list_bytes,
            objects_loaded: report.objects,
            resumed: report.resumed,
        });
        Ok(())
    }

    fn run_child(
        &self,
        label: &str,
        program: &Path,
        args: &[std::ffi::OsString],
    ) -> Result<(ChildReport, u64)> {
        Running::report_once(label, program, args, &self.plan.work_dir, self.plan.timeout)
    }

    /// Steady state, once per kind of cache: the child syncs, says it is
    /// ready, and the parent writes to the server while it listens.
    fn steady_round(&mut self, plan: SteadyPlan) -> Result<Vec<SteadyRow>> {
        let cluster = self.start_cluster(plan.objects)?;
        let mut rows = Vec::new();
        for kind in [ChildKind::Persist, ChildKind::Reflector] {
            self.progress(format!("steady state, {} pods: {kind}", plan.objects));
            let store = self.plan.work_dir.join("store-steady");
            remove_dir(&store)?;
            let endpoint = cluster.endpoint();
            let pods = cluster.pods(&self.runtime)?;
            let spec = ChildSpec {
                kind,
                server: endpoint.server,
                kubeconfig: endpoint.kubeconfig,
                store: (kind == ChildKind::Persist).then(|| store.clone()),
                probe: probe_key(&keys(&pods), None)?,
                steady: Some((plan.load.paced_events, plan.load.burst_events)),
            };
            let mut child = Running::spawn_in(
                &format!("steady {kind}"),
                &self.plan.exe,
                &spec.to_args(),
                &self.plan.work_dir,
                self.plan.timeout,
            )?;
            let _ready: ChildReport = child.next_report()?;
            write_load(&cluster, &self.runtime, pods, plan.load)?;
            let report: SteadyReport = child.next_report()?;
            child.finish()?;
            remove_dir(&store)?;
            rows.push(SteadyRow {
                kind,
                objects: plan.objects,
                rate_per_sec: plan.load.rate_per_sec,
                report,
            });
        }
        cluster.shutdown(&self.runtime);
        Ok(rows)
    }
}

/// Writes the paced then the burst phase to the first 1000 of `pods`,
/// stamping each with the clock just before its write.
fn write_load(
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
    pods: Vec<Value>,
    load: Load,
) -> Result<()> {
    let mut pool: Vec<Value> = pods.into_iter().take(1_000).collect();
    if pool.is_empty() {
        return Err(Error::InvalidOption {
            option: "--steady-objects",
            reason: "the server has no pods to write to".into(),
        });
    }
    let mut write = |i: u64, phase: Phase| -> Result<()> {
        let slot = (i as usize) % pool.len();
        pool[slot] = cluster.write_stamped(runtime, &pool[slot], phase)?;
        Ok(())
    };
    let start = Instant::now();
    for i in 0..load.paced_events {
        let due = start + load.interval() * u32::try_from(i).unwrap_or(u32::MAX);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        write(i, Phase::Paced)?;
    }
    for i in 0..load.burst_events {
        write(load.paced_events + i, Phase::Burst)?;
    }
    Ok(())
}

/// A `namespace/name` the contender must be able to read once ready: the
/// lowest of the server's `keys`, stable across runs of one seed. A
/// resuming contender reads its store before it has caught up, so its
/// probe must also be among the keys that existed when the store last
/// synced (`synced_keys`), or its first `get` would rightly miss.
pub(crate) fn probe_key(
    keys: &HashSet<String>,
    synced_keys: Option<&HashSet<String>>,
) -> Result<String> {
    keys.iter()
        .filter(|k| synced_keys.is_none_or(|synced| synced.contains(*k)))
        .min()
        .cloned()
        .ok_or(Error::InvalidOption {
            option: "--objects",
            reason: "the server holds no pods to probe".into(),
        })
}

/// The `namespace/name` keys of `objects`.
pub(crate) fn keys(objects: &[Value]) -> HashSet<String> {
    objects
        .iter()
        .filter_map(|o| ObjectKey::of(o).ok())
        .map(|k| k.to_string())
        .collect()
}

/// The bytes of every object as the API server serializes it.
pub(crate) fn raw_json_bytes<'a>(objects: impl IntoIterator<Item = &'a Value>) -> u64 {
    objects
        .into_iter()
        .map(|o| serde_json::to_vec(o).map_or(0, |v| v.len() as u64))
        .sum()
}

/// Space a directory takes on disk: allocated blocks, not apparent sizes,
/// since sparse or preallocated files are what the disk actually holds.
pub fn dir_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut total = 0;
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let meta = entry.metadata().map_err(io)?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.blocks() * 512
        };
    }
    Ok(total)
}

pub(crate) fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan() -> Plan {
        Plan {
            exe: "kube-persist".into(),
            objects: vec![100, 1000],
            changed_pct: vec![0, 1, 10],
            gone_changed_pct: vec![0, 1],
            reps: 3,
            work_dir: "/tmp/x".into(),
            timeout: Duration::from_secs(60),
            bookmark_interval: Duration::from_millis(100),
            seed: 1,
            steady: None,
            server: ServerKind::Sim,
            harness_dir: "/nonexistent".into(),
            clientgo: Vec::new(),
        }
    }

    #[test]
    fn counts_every_measured_child() {
        // 2 counts × 3 reps × (reflector + fresh + 3 resumes + 2 410 relists)
        assert_eq!(plan().steps(), 42);
        let mut p = plan();
        p.clientgo = vec![Encoding::Json, Encoding::Protobuf];
        // ... + client-go in two encodings: 2 × 3 × 9.
        assert_eq!(p.steps(), 54);
        let mut p = plan();
        p.steady = Some(SteadyPlan {
            objects: 10,
            load: Load {
                rate_per_sec: 10,
                paced_events: 1,
                burst_events: 1,
            },
        });
        assert_eq!(p.steps(), 44);
    }

    #[test]
    fn refuses_plans_without_a_comparison() {
        type Breakage = fn(&mut Plan);
        let cases: Vec<(Breakage, &str)> = vec![
            (|p| p.objects.clear(), "--objects"),
            (|p| p.objects.push(0), "--objects"),
            (|p| p.changed_pct.push(101), "--changed"),
            (|p| p.gone_changed_pct = vec![1, 200], "--gone-changed"),
            (|p| p.reps = 0, "--reps"),
        ];
        for (break_it, expected) in cases {
            let mut p = plan();
            break_it(&mut p);
            match p.validate() {
                Err(Error::InvalidOption { option, .. }) => assert_eq!(option, expected),
                other => panic!("expected an error naming {expected}, got {other:?}"),
            }
        }
        assert!(plan().validate().is_ok());
    }

    #[test]
    fn changed_percentages_round_up_to_whole_writes() {
        assert_eq!(writes_for(1000, 0), 0);
        assert_eq!(writes_for(1000, 1), 10);
        assert_eq!(writes_for(50, 1), 1);
        assert_eq!(writes_for(200, 10), 20);
    }

    #[test]
    fn the_simulator_keeps_every_write_made_while_down() {
        let c = sim_config(100_000, 1, crate::sim::DEFAULT_BOOKMARK_INTERVAL);
        assert_eq!(c.history, crate::sim::HistoryConfig::default());
        // The largest burst of writes made while a contender is down fits
        // the watch cache, which grows to hold a burst younger than 75 s.
        assert!(writes_for(100_000, 100) <= c.history.upper_bound);
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.namespaces, 200);
        assert_eq!(c.background_writes_per_sec, BACKGROUND_WRITES_PER_SEC);
    }

    #[test]
    fn probe_is_the_lowest_key_the_store_can_hold() {
        let objs = vec![
            json!({"metadata": {"namespace": "b", "name": "x"}}),
            json!({"metadata": {"namespace": "a", "name": "z"}}),
            json!({"metadata": {}}),
        ];
        let objs = keys(&objs);
        assert_eq!(objs.len(), 2, "an object without a name has no key");
        assert_eq!(probe_key(&objs, None).unwrap(), "a/z");
        // "a/z" was created after the store last synced.
        let synced: HashSet<String> = ["b/x".to_owned(), "c/gone".to_owned()].into();
        assert_eq!(probe_key(&objs, Some(&synced)).unwrap(), "b/x");
        let unrelated: HashSet<String> = ["q/q".to_owned()].into();
        assert!(matches!(
            probe_key(&objs, Some(&unrelated)),
            Err(Error::InvalidOption { .. })
        ));
        assert!(matches!(
            probe_key(&HashSet::new(), None),
            Err(Error::InvalidOption { .. })
        ));
    }

    #[test]
    fn raw_bytes_are_the_serialized_objects() {
        let objs = vec![json!({"a": 1}), json!({"bb": 22})];
        assert_eq!(raw_json_bytes(&objs), 7 + 9);
    }

    #[test]
    fn dir_bytes_counts_nested_files_and_missing_dirs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), vec![1u8; 10_000]).unwrap();
        assert!(dir_bytes(dir.path()).unwrap() >= 10_000);
        assert!(matches!(
            dir_bytes(&dir.path().join("nope")),
            Err(Error::Io { .. })
        ));
    }
}
