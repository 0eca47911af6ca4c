//! `kube-persist bench controller`: reconciles after a restart,
//! kube-runtime's controller from scratch against kube-persist's on its
//! store, each in its own process on one simulated cluster.
//!
//! kube-persist's controller first syncs and reconciles every pod once (a
//! first start, not measured), stops; `changed` percent of the pods are
//! written; then both contenders start: kube-persist's resumes from its
//! store, kube-runtime's lists everything as it does after any restart.
//! Each must reconcile what it needs to be correct (kube-runtime: every
//! pod; kube-persist: the pods created or changed while it was down) and
//! reports how many reconciles it ran until `quiet` after the last needed
//! one, when that last one came (from process spawn), and its peak RSS.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::clock;
use super::process::Running;
use super::reconciler::{ControllerKind, ReconcilerReport, ReconcilerSpec};
use super::runner::{parent_runtime, remove_dir, sim_config, writes_for};
use super::{Error, Result};
use crate::sim::Simulator;
use crate::store::ObjectKey;

/// What to measure.
#[derive(Debug, Clone)]
pub struct ControllerPlan {
    /// This executable, re-run as each child.
    pub exe: PathBuf,
    /// Pods in the simulated cluster.
    pub objects: usize,
    /// Percentage of pods written while kube-persist's controller is down.
    pub changed_pct: u32,
    /// Where the store and child logs go.
    pub work_dir: PathBuf,
    /// Time limit of one child.
    pub timeout: Duration,
    /// How long a child goes on after its last needed reconcile, counting
    /// any further reconcile.
    pub quiet: Duration,
    /// The simulator's bookmark interval.
    pub bookmark_interval: Duration,
    /// Seed of the simulated objects and writes.
    pub seed: u64,
    /// Both controllers' debounce.
    pub debounce: Duration,
}

impl ControllerPlan {
    /// Refuses plans without a meaningful comparison.
    pub fn validate(&self) -> Result<()> {
        if self.objects == 0 {
            return Err(Error::InvalidOption {
                option: "--objects",
                reason: "at least one object is needed".into(),
            });
        }
        if self.changed_pct > 100 {
            return Err(Error::InvalidOption {
                option: "--changed",
                reason: "a percentage is between 0 and 100".into(),
            });
        }
        if self.debounce > crate::controller::MAX_DEBOUNCE {
            return Err(Error::InvalidOption {
                option: "--debounce-ms",
                reason: format!("at most {} ms", crate::controller::MAX_DEBOUNCE.as_millis()),
            });
        }
        Ok(())
    }
}

/// One contender's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ControllerRow {
    /// Which controller.
    pub contender: ControllerKind,
    /// Pods in the cluster.
    pub objects: usize,
    /// Percentage of pods written while down.
    pub changed: u32,
    /// Pods created or changed while down (what kube-persist needs).
    pub changed_keys: u64,
    /// Reconciles the contender needed to run to be up to date.
    pub needed: u64,
    /// Reconciles it ran after the restart.
    pub reconciles_after_restart: u64,
    /// Process spawn → its last needed reconcile, ms.
    pub last_needed_reconcile_ms: f64,
    /// Peak RSS, bytes.
    pub peak_rss_bytes: u64,
}

/// The comparison's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ControllerReport {
    /// One row per contender.
    pub rows: Vec<ControllerRow>,
}

impl ControllerReport {
    /// The JSON form: `{"rows": [...]}`.
    pub fn json(&self) -> String {
        // Plain numbers and strings always serialize.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// An aligned table, then kube-persist's figures against kube-runtime's.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<13} {:>8} {:>8} {:>8} {:>11} {:>16} {:>11}",
            "contender", "objects", "changed", "needed", "reconciles", "last needed", "peak RSS"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<13} {:>8} {:>7}% {:>8} {:>11} {:>13.0} ms {:>7.1} MiB",
                r.contender.to_string(),
                r.objects,
                r.changed,
                r.needed,
                r.reconciles_after_restart,
                r.last_needed_reconcile_ms,
                r.peak_rss_bytes as f64 / f64::from(1 << 20),
            );
        }
        let find = |k| self.rows.iter().find(|r| r.contender == k);
        if let (Some(kr), Some(kp)) = (
            find(ControllerKind::KubeRuntime),
            find(ControllerKind::KubePersist),
        ) {
            let _ = writeln!(
                out,
                "\nkube-persist vs kube-runtime: {} vs {} reconciles ({} changed keys), \
                 last needed reconcile {:.1}x sooner, peak RSS {:.1}% of kube-runtime's",
                kp.reconciles_after_restart,
                kr.reconciles_after_restart,
                kp.changed_keys,
                kr.last_needed_reconcile_ms / kp.last_needed_reconcile_ms.max(0.001),
                100.0 * kp.peak_rss_bytes as f64 / kr.peak_rss_bytes.max(1) as f64,
            );
        }
        out
    }
}

/// key → resourceVersion of the simulator's pods.
fn versions(objects: &[Value]) -> BTreeMap<String, String> {
    objects
        .iter()
        .filter_map(|o| {
            let key = ObjectKey::of(o).ok()?;
            let rv = o.pointer("/metadata/resourceVersion")?.as_str()?;
            Some((key.to_string(), rv.to_owned()))
        })
        .collect()
}

fn write_keys<'a>(path: &Path, keys: impl Iterator<Item = &'a String>) -> Result<()> {
    let body: String = keys.map(|k| format!("{k}\n")).collect();
    std::fs::write(path, body).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// Runs the comparison.
pub fn run(plan: &ControllerPlan, on_step: &mut dyn FnMut(&str)) -> Result<ControllerReport> {
    plan.validate()?;
    let runtime = parent_runtime(&plan.work_dir)?;
    let writes = writes_for(plan.objects, plan.changed_pct);
    let sim = runtime.block_on(Simulator::start(sim_config(
        plan.objects,
        plan.seed,
        plan.bookmark_interval,
    )))?;
    let store = plan.work_dir.join("controller-store");
    remove_dir(&store)?;
    let spec = |kind, needed: &Path| ReconcilerSpec {
        kind,
        server: sim.url(),
        store: (kind == ControllerKind::KubePersist).then(|| store.clone()),
        name: "bench".into(),
        needed: Some(needed.to_owned()),
        quiet: plan.quiet,
        print: false,
        fail_one_in: 0,
        requeue_one_in: 0,
        debounce: plan.debounce,
    };

    on_step("kube-persist first start (every pod)");
    let before = versions(&sim.objects("pods"));
    let all_path = plan.work_dir.join("needed-all");
    write_keys(&all_path, before.keys())?;
    measure(
        plan,
        "first start",
        &spec(ControllerKind::KubePersist, &all_path),
    )?;

    sim.mutate(writes);
    let after = versions(&sim.objects("pods"));
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, rv)| before.get(*k) != Some(*rv))
        .map(|(k, _)| k)
        .collect();
    let changed_path = plan.work_dir.join("needed-changed");
    write_keys(&changed_path, changed.iter().copied())?;
    let all_path = plan.work_dir.join("needed-all-after");
    write_keys(&all_path, after.keys())?;

    let mut rows = Vec::new();
    for (kind, needed) in [
        (ControllerKind::KubePersist, &changed_path),
        (ControllerKind::KubeRuntime, &all_path),
    ] {
        on_step(&format!("{kind} after the restart"));
        let (report, spawned_ns) = measure(plan, &kind.to_string(), &spec(kind, needed))?;
        rows.push(ControllerRow {
            contender: kind,
            objects: plan.objects,
            changed: plan.changed_pct,
            changed_keys: changed.len() as u64,
            needed: report.needed,
            reconciles_after_restart: report.reconciles,
            last_needed_reconcile_ms: clock::between(spawned_ns, report.last_needed_ns)
                .as_secs_f64()
                * 1_000.0,
            peak_rss_bytes: report.peak_rss_bytes,
        });
    }
    runtime.block_on(sim.shutdown());
    remove_dir(&store)?;
    Ok(ControllerReport { rows })
}

fn measure(
    plan: &ControllerPlan,
    label: &str,
    spec: &ReconcilerSpec,
) -> Result<(ReconcilerReport, u64)> {
    let label = format!("controller {label}");
    Running::report_once(
        &label,
        &plan.exe,
        &spec.to_args(),
        &plan.work_dir,
        plan.timeout,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(contender: ControllerKind, reconciles: u64, ms: f64, rss: u64) -> ControllerRow {
        ControllerRow {
            contender,
            objects: 1000,
            changed: 1,
            changed_keys: 10,
            needed: reconciles,
            reconciles_after_restart: reconciles,
            last_needed_reconcile_ms: ms,
            peak_rss_bytes: rss,
        }
    }

    #[test]
    fn json_has_one_row_per_contender_with_the_issues_fields() {
        let report = ControllerReport {
            rows: vec![
                row(ControllerKind::KubePersist, 10, 50.0, 10 << 20),
                row(ControllerKind::KubeRuntime, 1000, 2000.0, 100 << 20),
            ],
        };
        let v: Value = serde_json::from_str(&report.json()).unwrap();
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        for field in [
            "contender",
            "objects",
            "changed",
            "reconciles_after_restart",
            "last_needed_reconcile_ms",
            "peak_rss_bytes",
        ] {
            assert!(rows.iter().all(|r| !r[field].is_null()), "{field}");
        }
        assert_eq!(rows[0]["contender"], "kube-persist");
        assert_eq!(rows[1]["contender"], "kube-runtime");
        let table = report.table();
        assert!(table.contains("40.0x sooner"), "{table}");
        assert!(table.contains("peak RSS 10.0%"), "{table}");
    }

    #[test]
    fn plans_without_a_comparison_are_refused() {
        let plan = ControllerPlan {
            exe: "x".into(),
            objects: 0,
            changed_pct: 1,
            work_dir: "/tmp/x".into(),
            timeout: Duration::from_secs(1),
            quiet: Duration::from_secs(1),
            bookmark_interval: Duration::from_millis(100),
            seed: 1,
            debounce: Duration::ZERO,
        };
        assert!(matches!(
            plan.validate(),
            Err(Error::InvalidOption {
                option: "--objects",
                ..
            })
        ));
        let plan = ControllerPlan {
            objects: 5,
            changed_pct: 101,
            ..plan
        };
        assert!(matches!(
            plan.validate(),
            Err(Error::InvalidOption {
                option: "--changed",
                ..
            })
        ));
        let plan = ControllerPlan {
            changed_pct: 1,
            debounce: Duration::from_secs(3601),
            ..plan
        };
        assert!(matches!(
            plan.validate(),
            Err(Error::InvalidOption {
                option: "--debounce-ms",
                ..
            })
        ));
    }
}
