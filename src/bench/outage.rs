//! `bench outage`: what an informer restart costs after it was down for D
//! seconds while the server took R pod writes a second, beside what
//! kube-apiserver's watch cache rule predicts (resume or 410) and beside
//! kube-runtime's relist.
//!
//! No real minutes are waited. The simulator's clock is moved forward by D
//! with the R·D writes of that time generated at their own moments of it
//! ([`Simulator::advance_with_writes`]), so the watch cache's ring sizes
//! itself exactly as it would have over D real seconds: the resume or 410
//! that follows is the one kube-apiserver would give. Only the restart
//! itself runs in real time, and is what is measured. Before the first
//! sync the cluster runs 150 s of the same load (on the clock, too) so the
//! ring is in its steady state, as on a live cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::child::{ChildKind, ChildReport, ChildSpec};
use super::clock;
use super::process::Running;
use super::runner::{keys, parent_runtime, probe_key, remove_dir, sim_config};
use super::{Error, Result};
use crate::sim::history::{HistoryConfig, DEFAULT_WINDOW};
use crate::sim::Simulator;

/// What to measure.
#[derive(Debug, Clone)]
pub struct OutagePlan {
    /// This executable, re-run as each contender's child process.
    pub exe: PathBuf,
    /// Pods in the cluster.
    pub objects: usize,
    /// Pod writes per second while the informer is down.
    pub write_rate: f64,
    /// Outage lengths.
    pub outages: Vec<Duration>,
    /// Where stores and child logs go.
    pub work_dir: PathBuf,
    /// Time limit of one child process.
    pub timeout: Duration,
    /// The simulator's bookmark period.
    pub bookmark_interval: Duration,
    /// Seed of the objects and writes.
    pub seed: u64,
}

/// Whether a restart resumed its watch or had to relist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The watch from the stored resourceVersion was served.
    Resumed,
    /// It got 410 Gone and the informer relisted.
    Relisted,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Resumed => "resumed",
            Outcome::Relisted => "relisted",
        })
    }
}

/// One outage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutageRow {
    /// How long the informer was down, s.
    pub outage_s: f64,
    /// Pod writes a second meanwhile.
    pub write_rate: f64,
    /// Pod writes made while it was down.
    pub writes: u64,
    /// What the restart did.
    pub outcome: Outcome,
    /// What the upstream rule predicts ([`expected_outcome`]).
    pub expected: Outcome,
    /// Process start → Synced, ms.
    pub ready_ms: f64,
    /// Bytes the server sent during the restart.
    pub bytes_pulled: u64,
    /// The restarted process's peak RSS.
    pub peak_rss_bytes: u64,
    /// kube-runtime's reflector, from scratch on the same server: process
    /// start → InitDone, ms.
    pub kube_runtime_ready_ms: f64,
}

/// The capacity a watch cache's ring settles at under a steady `rate` of
/// writes (watch_cache_history.go `resizeCacheLocked`): a full ring doubles
/// while its oldest event is younger than the window, i.e. while it holds
/// less than `window × rate` events, up to the upper bound.
pub fn steady_capacity(history: &HistoryConfig, rate: f64) -> usize {
    let mut cap = history.lower_bound.max(1);
    while (cap as f64) < history.window.as_secs_f64() * rate && cap < history.upper_bound {
        cap = (cap * 2).min(history.upper_bound);
    }
    cap
}

/// kube-apiserver's answer to a resume after `writes` events of the
/// resource, made at `rate` a second since the stored version: 410 exactly
/// when the ring no longer holds the first of them (`GetIntervalLocked`).
pub fn expected_outcome(history: &HistoryConfig, rate: f64, writes: u64) -> Outcome {
    if writes > steady_capacity(history, rate) as u64 {
        Outcome::Relisted
    } else {
        Outcome::Resumed
    }
}

/// The outage length at which the rule switches from resume to 410.
pub fn predicted_switch(history: &HistoryConfig, rate: f64) -> Duration {
    Duration::from_secs_f64(steady_capacity(history, rate) as f64 / rate)
}

impl OutagePlan {
    /// Refuses plans that measure nothing.
    pub fn validate(&self) -> Result<()> {
        let bad = |option, reason: &str| {
            Err(Error::InvalidOption {
                option,
                reason: reason.to_owned(),
            })
        };
        if self.objects == 0 {
            return bad("--objects", "must be at least 1");
        }
        if !(self.write_rate.is_finite() && self.write_rate > 0.0) {
            return bad(
                "--write-rate",
                "must be a positive number of writes per second",
            );
        }
        if self.outages.is_empty() {
            return bad("--outage", "give at least one outage length");
        }
        Ok(())
    }
}

/// The load a cluster runs before the first sync, on the simulator's clock:
/// two of the watch cache's windows, so its ring is in the steady state a
/// live cluster's is.
pub const WARM_UP: Duration = Duration::from_secs(2 * DEFAULT_WINDOW.as_secs());

/// Runs every outage of the plan; `on_step` hears what is being done.
pub fn run(plan: &OutagePlan, on_step: &mut dyn FnMut(&str)) -> Result<Vec<OutageRow>> {
    plan.validate()?;
    let runtime = parent_runtime(&plan.work_dir)?;
    let mut rows = Vec::new();
    for &outage in &plan.outages {
        on_step(&format!("{} s outage", outage.as_secs_f64()));
        rows.push(one_outage(plan, &runtime, outage)?);
    }
    Ok(rows)
}

fn one_outage(
    plan: &OutagePlan,
    rt: &tokio::runtime::Runtime,
    outage: Duration,
) -> Result<OutageRow> {
    let config = sim_config(plan.objects, plan.seed, plan.bookmark_interval);
    let history = config.history;
    let sim = rt.block_on(Simulator::start(config))?;
    let store = plan.work_dir.join("store-outage");
    remove_dir(&store)?;
    sim.advance_with_writes(WARM_UP, plan.write_rate);
    // The first sync, then the informer goes down.
    let spec = |kind, store: Option<&Path>, probe: String| ChildSpec {
        kind,
        server: sim.url(),
        kubeconfig: None,
        store: store.map(Path::to_owned),
        probe,
        steady: None,
    };
    let synced = keys(&sim.objects("pods"));
    let first = spec(ChildKind::Persist, Some(&store), probe_key(&synced, None)?);
    measure(plan, "outage first sync", &first)?;
    let writes = sim.advance_with_writes(outage, plan.write_rate);
    let expected = expected_outcome(&history, plan.write_rate, writes);
    // The probes must exist now (writes delete pods); the restarted one's
    // also in what the store synced, since it reads before catching up.
    let now = keys(&sim.objects("pods"));
    let restart_probe = probe_key(&now, Some(&synced))?;
    let restart = spec(ChildKind::Persist, Some(&store), restart_probe);
    let before = sim.stats();
    let (resumed, report) = measure(plan, "outage restart", &restart)?;
    let after = sim.stats();
    let scratch = spec(ChildKind::Reflector, None, probe_key(&now, None)?);
    let (_, reflector) = measure(plan, "outage kube-runtime", &scratch)?;
    rt.block_on(sim.shutdown());
    remove_dir(&store)?;
    Ok(OutageRow {
        outage_s: outage.as_secs_f64(),
        write_rate: plan.write_rate,
        writes,
        outcome: if resumed == Some(true) {
            Outcome::Resumed
        } else {
            Outcome::Relisted
        },
        expected,
        ready_ms: report.ready_ms,
        bytes_pulled: after.bytes_sent.saturating_sub(before.bytes_sent),
        peak_rss_bytes: report.peak_rss_bytes,
        kube_runtime_ready_ms: reflector.ready_ms,
    })
}

/// A child's milestones, from its spawn.
struct Measured {
    ready_ms: f64,
    peak_rss_bytes: u64,
}

fn measure(plan: &OutagePlan, label: &str, spec: &ChildSpec) -> Result<(Option<bool>, Measured)> {
    let (report, spawned): (ChildReport, u64) = Running::report_once(
        label,
        &plan.exe,
        &spec.to_args(),
        &plan.work_dir,
        plan.timeout,
    )?;
    if !report.probe_found {
        return Err(Error::ProbeMissing {
            contender: label.to_owned(),
            probe: spec.probe.clone(),
        });
    }
    let ready = clock::between(spawned, report.ready_ns);
    Ok((
        report.resumed,
        Measured {
            ready_ms: ready.as_secs_f64() * 1000.0,
            peak_rss_bytes: report.peak_rss_bytes,
        },
    ))
}

/// The rows as a table, with the predicted switch.
pub fn render_table(plan: &OutagePlan, rows: &[OutageRow]) -> String {
    use std::fmt::Write as _;
    let history = HistoryConfig::default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} pods, {} writes/s while down; kube-apiserver's watch cache settles at {} events, so the rule predicts 410 past {:.1} s",
        plan.objects,
        plan.write_rate,
        steady_capacity(&history, plan.write_rate),
        predicted_switch(&history, plan.write_rate).as_secs_f64()
    );
    let _ = writeln!(
        out,
        "{:>9} {:>8} {:>9} {:>9} {:>10} {:>11} {:>10} {:>16}",
        "outage_s",
        "writes",
        "outcome",
        "expected",
        "ready_ms",
        "bytes",
        "peak_rss",
        "kube-runtime_ms"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:>9.1} {:>8} {:>9} {:>9} {:>10.0} {:>11} {:>10} {:>16.0}",
            r.outage_s,
            r.writes,
            r.outcome.to_string(),
            r.expected.to_string(),
            r.ready_ms,
            r.bytes_pulled,
            r.peak_rss_bytes,
            r.kube_runtime_ready_ms
        );
    }
    out
}

/// One line per outage, with a header.
pub fn render_csv(rows: &[OutageRow]) -> String {
    let mut out = String::from(
        "outage_s,write_rate,writes,outcome,expected,ready_ms,bytes_pulled,peak_rss_bytes,kube_runtime_ready_ms\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{:.1},{},{},{:.1}\n",
            r.outage_s,
            r.write_rate,
            r.writes,
            r.outcome,
            r.expected,
            r.ready_ms,
            r.bytes_pulled,
            r.peak_rss_bytes,
            r.kube_runtime_ready_ms
        ));
    }
    out
}

/// `{"rows": [...]}`.
pub fn render_json(rows: &[OutageRow]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({ "rows": rows })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_switches_where_the_ring_turns_over() {
        let h = HistoryConfig::default();
        assert_eq!(steady_capacity(&h, 1.0), 100);
        assert_eq!(steady_capacity(&h, 10.0), 800);
        assert_eq!(steady_capacity(&h, 100.0), 12_800);
        assert_eq!(steady_capacity(&h, 10_000.0), 102_400);
        assert_eq!(predicted_switch(&h, 100.0), Duration::from_secs(128));
        assert_eq!(expected_outcome(&h, 100.0, 12_800), Outcome::Resumed);
        assert_eq!(expected_outcome(&h, 100.0, 12_801), Outcome::Relisted);
        assert_eq!(expected_outcome(&h, 1.0, 100), Outcome::Resumed);
        assert_eq!(expected_outcome(&h, 1.0, 101), Outcome::Relisted);
    }

    #[test]
    fn plans_that_measure_nothing_are_refused() {
        let plan = OutagePlan {
            exe: "x".into(),
            objects: 10,
            write_rate: 10.0,
            outages: vec![Duration::from_secs(1)],
            work_dir: "/tmp".into(),
            timeout: Duration::from_secs(1),
            bookmark_interval: Duration::from_secs(60),
            seed: 1,
        };
        assert!(plan.validate().is_ok());
        for bad in [
            OutagePlan {
                objects: 0,
                ..plan.clone()
            },
            OutagePlan {
                write_rate: 0.0,
                ..plan.clone()
            },
            OutagePlan {
                write_rate: f64::NAN,
                ..plan.clone()
            },
            OutagePlan {
                outages: vec![],
                ..plan.clone()
            },
        ] {
            assert!(matches!(bad.validate(), Err(Error::InvalidOption { .. })));
        }
    }

    #[test]
    fn json_has_the_named_fields() {
        let row = OutageRow {
            outage_s: 30.0,
            write_rate: 10.0,
            writes: 300,
            outcome: Outcome::Resumed,
            expected: Outcome::Resumed,
            ready_ms: 12.0,
            bytes_pulled: 100,
            peak_rss_bytes: 1 << 20,
            kube_runtime_ready_ms: 50.0,
        };
        let v: serde_json::Value = serde_json::from_str(&render_json(&[row])).unwrap();
        let r = &v["rows"][0];
        for k in [
            "outage_s",
            "write_rate",
            "outcome",
            "expected",
            "ready_ms",
            "bytes_pulled",
            "peak_rss_bytes",
            "kube_runtime_ready_ms",
        ] {
            assert!(r.get(k).is_some(), "{k}");
        }
        assert_eq!(r["outcome"], "resumed");
    }
}
