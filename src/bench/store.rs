//! `bench store`: the store's write and read costs on each storage engine,
//! measured side by side in one run.
//!
//! Per engine, realistic pods are loaded through the store in durable
//! batches of [`BATCH`], and then the very records the store wrote for them
//! (compressed objects, as found in its space) are loaded into a bare
//! database of the same engine in the same batches: the ratio says what
//! the store's own work (journal, indexes, state) costs over the engine's.
//! Then single-event applies from several threads, the first read and a
//! whole `get` in fresh processes (this binary re-executed), and the disk
//! the store takes as a share of the raw JSON before and after `compact`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::summary::Summary;
use super::{Error, Result};
use crate::store::engine::{self, WriteBatch};
use crate::store::{
    Batch, CollectionId, CompactOptions, Delta, EngineKind, ObjectKey, Store, StoreOptions,
};

/// Objects per durable batch, as the informer applies a relist.
pub const BATCH: usize = 500;
/// Threads applying single events at once (group commit's case).
const SINGLE_THREADS: usize = 4;
/// Single events each of those threads applies.
const SINGLE_PER_THREAD: usize = 250;
/// Fresh processes per measurement; the median is reported.
const FRESH_RUNS: usize = 3;

/// What `bench store` runs.
#[derive(Debug, Clone)]
pub struct StorePlan {
    /// This executable, re-run for the fresh-process measurements.
    pub exe: PathBuf,
    /// Pods to load.
    pub objects: usize,
    /// The engines to compare, in this order.
    pub engines: Vec<EngineKind>,
    /// Where the stores are made (each engine in its own subdirectory).
    pub work_dir: PathBuf,
}

impl StorePlan {
    /// Refuses a plan that cannot measure anything.
    pub fn validate(&self) -> Result<()> {
        if self.objects < BATCH {
            return Err(Error::InvalidOption {
                option: "--objects",
                reason: format!("{} is fewer than one batch ({BATCH})", self.objects),
            });
        }
        if self.engines.is_empty() {
            return Err(Error::InvalidOption {
                option: "--engine",
                reason: "no engine named".into(),
            });
        }
        Ok(())
    }
}

/// One engine's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRow {
    /// The engine.
    pub engine: EngineKind,
    /// Pods loaded.
    pub objects: usize,
    /// Durable objects/s through the store, in batches of [`BATCH`].
    pub apply_per_s: f64,
    /// Durable objects/s through the bare engine, same records and batches.
    pub engine_apply_per_s: f64,
    /// Single-event applies/s, [`SINGLE_THREADS`] threads at once.
    pub single_per_s: f64,
    /// The 99th percentile of one single-event apply, in ms.
    pub single_p99_ms: f64,
    /// Open read-only and read one object in a fresh process, in ms
    /// (median of [`FRESH_RUNS`]).
    pub first_read_ms: f64,
    /// The store's size on disk after the load, as a share of the raw JSON.
    pub disk_fraction: f64,
    /// The same after `compact`.
    pub disk_fraction_compacted: f64,
    /// `kube-persist get` of one object, whole process, in ms (median of
    /// [`FRESH_RUNS`]).
    pub get_ms: f64,
}

/// Every engine's row.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    /// One row per engine, in the plan's order.
    pub rows: Vec<StoreRow>,
}

impl StoreReport {
    /// `{"rows": [...]}`, one line.
    pub fn json(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// A table, one engine per row.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<6} {:>8} {:>10} {:>11} {:>9} {:>8} {:>10} {:>6} {:>9} {:>8}\n",
            "engine",
            "objects",
            "apply/s",
            "engine/s",
            "single/s",
            "p99 ms",
            "1st read",
            "disk",
            "compacted",
            "get ms"
        );
        for r in &self.rows {
            out.push_str(&format!(
                "{:<6} {:>8} {:>10.0} {:>11.0} {:>9.0} {:>8.2} {:>10.1} {:>5.0}% {:>8.0}% {:>8.1}\n",
                r.engine.name(),
                r.objects,
                r.apply_per_s,
                r.engine_apply_per_s,
                r.single_per_s,
                r.single_p99_ms,
                r.first_read_ms,
                r.disk_fraction * 100.0,
                r.disk_fraction_compacted * 100.0,
                r.get_ms
            ));
        }
        out
    }
}

fn pods_id() -> CollectionId {
    CollectionId::of::<k8s_openapi::api::core::v1::Pod>()
}

/// The `i`th pod of the load, at resourceVersion `i + 1`.
fn pod(i: usize) -> Value {
    let mut p = crate::sim::fixtures::pod(1, &format!("ns-{:03}", i % 50), i, 20);
    p["metadata"]["resourceVersion"] = Value::String((i + 1).to_string());
    p
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the plan, calling `progress` before each step.
pub fn run(plan: &StorePlan, progress: &mut dyn FnMut(&str)) -> Result<StoreReport> {
    plan.validate()?;
    // The pods are generated again where they are needed rather than
    // kept: as `Value`s with their managedFields, 100k of them take about
    // 6 GiB.
    let n = plan.objects;
    progress(&format!("generating {n} pods to measure their JSON"));
    let raw = (0..n)
        .map(|i| super::runner::raw_json_bytes([&pod(i)]))
        .sum::<u64>();
    let probe = ObjectKey::of(&pod(n / 2))?.to_string();
    let mut rows = Vec::new();
    for &engine in &plan.engines {
        rows.push(run_engine(plan, engine, n, raw, &probe, progress)?);
    }
    Ok(StoreReport { rows })
}

fn run_engine(
    plan: &StorePlan,
    engine: EngineKind,
    n: usize,
    raw: u64,
    probe: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<StoreRow> {
    let dir = plan.work_dir.join(engine.name());
    let bare = plan.work_dir.join(format!("{}-bare", engine.name()));
    for d in [&dir, &bare] {
        super::runner::remove_dir(d)?;
    }
    let options = StoreOptions {
        engine: Some(engine),
        ..StoreOptions::default()
    };
    let (apply_per_s, disk, records, (single_per_s, single_p99_ms)) = {
        let store = Store::open_with(&dir, options)?;
        let c = store.collection(&pods_id())?;
        // Each batch is made just before it is applied, off the clock (as
        // the bare engine's records are made before its clock starts):
        // making them is the bench's work, not the store's, and made all
        // at once they took gigabytes at 100k pods.
        progress(&format!("{engine}: loading {n} pods through the store"));
        let mut applying = Duration::ZERO;
        for start in (0..n).step_by(BATCH) {
            let end = (start + BATCH).min(n);
            let batch = Batch {
                deltas: (start..end).map(|i| Delta::Upsert(pod(i))).collect(),
                rv: Some(end.to_string()),
            };
            let t = Instant::now();
            c.apply(batch)?;
            applying += t.elapsed();
        }
        let apply_per_s = n as f64 / applying.as_secs_f64();
        let disk = store.size_on_disk()?;
        let records = object_records(&store)?;
        progress(&format!("{engine}: single-event applies"));
        let single = singles(&c, n)?;
        (apply_per_s, disk, records, single)
    };
    progress(&format!(
        "{engine}: loading the same records into a bare database"
    ));
    let engine_apply_per_s = bare_load(engine, &bare, records)?;
    progress(&format!(
        "{engine}: first reads and gets in fresh processes"
    ));
    let dir_str = dir.to_string_lossy().into_owned();
    let first_read_ms = median(fresh(
        plan,
        &["bench", "store-read", &dir_str, probe],
        true,
    )?);
    let get_ms = median(fresh(plan, &["get", &dir_str, probe], false)?);
    progress(&format!("{engine}: compacting"));
    let compacted = Store::compact(&dir, CompactOptions::default())?;
    Ok(StoreRow {
        engine,
        objects: n,
        apply_per_s,
        engine_apply_per_s,
        single_per_s,
        single_p99_ms,
        first_read_ms,
        disk_fraction: disk as f64 / raw as f64,
        disk_fraction_compacted: compacted.bytes_after as f64 / raw as f64,
        get_ms,
    })
}

/// The object records the store wrote, as they are in its space.
fn object_records(store: &Store) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let space = crate::store::collection_space(&pods_id().name());
    engine::scan_prefix(store.db(), &space, &[crate::store::OBJECT_PREFIX])?
        .map(|item| item.map_err(Error::from))
        .collect()
}

/// Loads `records` into a new bare database of `engine` at `dir` in
/// durable batches of [`BATCH`]; objects/s.
fn bare_load(engine: EngineKind, dir: &Path, records: Vec<(Vec<u8>, Vec<u8>)>) -> Result<f64> {
    let db_dir = dir.join("db");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    engine::create(engine, &db_dir, dir)?;
    let db = engine::open(engine, &db_dir, dir)?;
    let n = records.len();
    let t = Instant::now();
    let mut batch = WriteBatch::default();
    for (k, v) in records {
        batch.put(k, v);
        if batch.len() == BATCH {
            db.write("objects", std::mem::take(&mut batch), true)?;
        }
    }
    if batch.len() > 0 {
        db.write("objects", batch, true)?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Single-event Modified applies from [`SINGLE_THREADS`] threads at once:
/// (applies/s, p99 ms).
fn singles(c: &crate::store::Collection, n: usize) -> Result<(f64, f64)> {
    // Made before the clock starts, like the load's batches.
    let modified: Vec<Vec<Value>> = (0..SINGLE_THREADS)
        .map(|th| {
            (0..SINGLE_PER_THREAD)
                .map(|j| {
                    let mut p = pod((th * 7919 + j * 31) % n);
                    let rv = n * 10 + th * SINGLE_PER_THREAD + j;
                    p["metadata"]["resourceVersion"] = Value::String(rv.to_string());
                    p["status"]["phase"] = Value::String(format!("phase-{j}"));
                    p
                })
                .collect()
        })
        .collect();
    let t = Instant::now();
    let per_thread: Vec<Result<Vec<f64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = modified
            .into_iter()
            .map(|pods| {
                let c = c.clone();
                s.spawn(move || {
                    let mut lat = Vec::with_capacity(SINGLE_PER_THREAD);
                    for p in pods {
                        let t = Instant::now();
                        c.apply(Batch {
                            deltas: vec![Delta::Upsert(p)],
                            rv: None,
                        })?;
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let elapsed = t.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    for l in per_thread {
        lat.extend(l?);
    }
    let per_s = lat.len() as f64 / elapsed;
    lat.sort_by(f64::total_cmp);
    let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
    Ok((per_s, p99))
}

/// Runs this executable with `args` [`FRESH_RUNS`] times: the ms it prints
/// (`reported`), or its whole run as timed from here.
fn fresh(plan: &StorePlan, args: &[&str], reported: bool) -> Result<Vec<f64>> {
    let what = format!("kube-persist {}", args.join(" "));
    let mut out = Vec::new();
    for _ in 0..FRESH_RUNS {
        let t = Instant::now();
        let run = Command::new(&plan.exe)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
            .map_err(|source| Error::Spawn {
                contender: what.clone(),
                source,
            })?;
        let whole = t.elapsed().as_secs_f64() * 1e3;
        if !run.status.success() {
            return Err(Error::ChildFailed {
                contender: what,
                status: run.status.to_string(),
                stderr_tail: String::from_utf8_lossy(&run.stderr).into_owned(),
            });
        }
        if !reported {
            out.push(whole);
            continue;
        }
        let line = String::from_utf8_lossy(&run.stdout).trim().to_string();
        let ms = line.parse::<f64>().map_err(|e| Error::BadReport {
            contender: what.clone(),
            line: line.clone(),
            reason: e.to_string(),
        })?;
        out.push(ms);
    }
    Ok(out)
}

/// The median of `xs`; NaN for none.
fn median(xs: Vec<f64>) -> f64 {
    Summary::of(xs).map_or(f64::NAN, |s| s.median)
}

/// What `bench store-read` does in its fresh process: opens the store at
/// `dir` read-only and reads the pod `key`; the ms that took.
pub fn first_read(dir: &Path, key: &str) -> Result<f64> {
    let t = Instant::now();
    let store = Store::open_read_only(dir)?;
    let key: ObjectKey = key.parse()?;
    let found = match store.find_collection(&pods_id())? {
        Some(c) => c.get(&key)?.is_some(),
        None => false,
    };
    if !found {
        return Err(Error::ProbeMissing {
            contender: format!("a read-only open of {}", dir.display()),
            probe: key.to_string(),
        });
    }
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_below_one_batch_or_without_engines_is_refused() {
        let plan = StorePlan {
            exe: PathBuf::from("kube-persist"),
            objects: BATCH - 1,
            engines: EngineKind::ALL.to_vec(),
            work_dir: PathBuf::from("/nonexistent"),
        };
        assert!(matches!(
            plan.validate(),
            Err(Error::InvalidOption {
                option: "--objects",
                ..
            })
        ));
        let plan = StorePlan {
            objects: BATCH,
            engines: Vec::new(),
            ..plan
        };
        assert!(matches!(
            plan.validate(),
            Err(Error::InvalidOption {
                option: "--engine",
                ..
            })
        ));
    }

    #[test]
    fn median_takes_the_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!(median(Vec::new()).is_nan());
    }
}
