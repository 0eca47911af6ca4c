//! The comparison's results: raw samples, their medians and spread per
//! contender and object count, ratios against the baseline of the same run,
//! the targets, and the table / JSON / CSV renderings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::child::ChildKind;
use super::cluster::ServerKind;
use super::contender::Contender;
use super::runner::Plan;
use super::steady::SteadyReport;
use super::summary::Summary;

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table (`bench resume`: then its targets and the
    /// steady state).
    Table,
    /// The whole report, samples included, as JSON.
    Json,
    /// One line per contender and object count.
    Csv,
}

/// One measured child process.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Pods in the cluster.
    pub objects: usize,
    /// What ran.
    pub contender: Contender,
    /// Repetition number, from 0.
    pub rep: usize,
    /// Process start → first `get` answered with the object, ms.
    pub first_read_ms: f64,
    /// Process start → ready (Synced / InitDone), ms.
    pub ready_ms: f64,
    /// LIST requests the server served during the run.
    pub list_requests: u64,
    /// WATCH requests the server served during the run.
    pub watch_requests: u64,
    /// Response bytes the server sent during the run.
    pub bytes_pulled: u64,
    /// Peak RSS of the child process, bytes.
    pub peak_rss_bytes: u64,
    /// The store's size on disk after the run, bytes.
    pub disk_bytes: Option<u64>,
    /// The cluster's pods serialized as JSON, bytes.
    pub raw_json_bytes: u64,
    /// What a metadata-only list of the cluster's pods costs, bytes.
    pub metadata_list_bytes: u64,
    /// Objects in the contender's cache once ready.
    pub objects_loaded: u64,
    /// Whether the informer said it resumed (persist only).
    pub resumed: Option<bool>,
}

/// What the run was asked to do.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Setup {
    /// Pod counts.
    pub objects: Vec<usize>,
    /// Percentages changed while down, for the resumes.
    pub changed_pct: Vec<u32>,
    /// Percentages changed before the 410 relists.
    pub gone_changed_pct: Vec<u32>,
    /// Repetitions.
    pub reps: usize,
    /// The simulator's bookmark interval, ms.
    pub bookmark_interval_ms: u64,
    /// CPUs this machine offers.
    pub cpus: usize,
    /// The API server measured against.
    pub server: ServerKind,
}

impl Setup {
    /// The setup of `plan` on this machine.
    pub fn of(plan: &Plan) -> Setup {
        Setup {
            objects: plan.objects.clone(),
            changed_pct: plan.changed_pct.clone(),
            gone_changed_pct: plan.gone_changed_pct.clone(),
            reps: plan.reps,
            bookmark_interval_ms: plan.bookmark_interval.as_millis() as u64,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            server: plan.server,
        }
    }
}

/// One contender at one object count, over its repetitions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// Pods in the cluster.
    pub objects: usize,
    /// What ran.
    pub contender: Contender,
    /// Its display name.
    pub label: String,
    /// Process start → first read, ms.
    pub first_read_ms: Summary,
    /// Process start → ready, ms.
    pub ready_ms: Summary,
    /// LIST requests.
    pub list_requests: Summary,
    /// WATCH requests.
    pub watch_requests: Summary,
    /// Bytes pulled from the API server.
    pub bytes_pulled: Summary,
    /// Peak RSS, bytes.
    pub peak_rss_bytes: Summary,
    /// Store size on disk, bytes.
    pub disk_bytes: Option<Summary>,
    /// The pods as raw JSON, bytes.
    pub raw_json_bytes: u64,
    /// A metadata-only list of the pods, bytes.
    pub metadata_list_bytes: u64,
    /// Objects in the cache once ready.
    pub objects_loaded: Summary,
    /// Ratios against the baseline at the same object count.
    pub vs_baseline: Option<Ratios>,
}

/// This row's medians against the baseline's (kube-runtime's reflector).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ratios {
    /// Baseline time-to-ready ÷ this one: how many times faster.
    pub ready_speedup: Option<f64>,
    /// Baseline time-to-first-read ÷ this one.
    pub first_read_speedup: Option<f64>,
    /// This row's bytes pulled ÷ the baseline's.
    pub bytes_fraction: Option<f64>,
    /// This row's peak RSS ÷ the baseline's.
    pub rss_fraction: Option<f64>,
}

/// Steady-state figures of one kind of cache.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SteadyRow {
    /// Which cache.
    pub kind: ChildKind,
    /// Pods in the cluster.
    pub objects: usize,
    /// Paced writes per second.
    pub rate_per_sec: u32,
    /// What the child measured.
    pub report: SteadyReport,
}

/// A target from the issue, and where this run stands against it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Target {
    /// What is aimed at.
    pub goal: String,
    /// What this run measured, if it measured it.
    pub measured: Option<String>,
    /// Whether the goal was met.
    pub met: Option<bool>,
}

/// The whole result of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// What was asked.
    pub setup: Setup,
    /// Medians per object count and contender, in that order.
    pub rows: Vec<Row>,
    /// The targets at the largest object count.
    pub targets: Vec<Target>,
    /// Steady-state figures.
    pub steady: Vec<SteadyRow>,
    /// Every measurement.
    pub samples: Vec<Sample>,
    /// How the figures were obtained where the footer does not say, and
    /// what was not measured and why.
    pub notes: Vec<String>,
}

impl Report {
    /// Reduces samples to rows, ratios and targets.
    pub fn new(setup: Setup, samples: Vec<Sample>, steady: Vec<SteadyRow>) -> Report {
        let mut groups: BTreeMap<(usize, Contender), Vec<&Sample>> = BTreeMap::new();
        for s in &samples {
            groups.entry((s.objects, s.contender)).or_default().push(s);
        }
        let mut rows: Vec<Row> = groups
            .into_iter()
            .filter_map(|((objects, contender), group)| row(objects, contender, &group))
            .collect();
        let baselines: BTreeMap<usize, Row> = rows
            .iter()
            .filter(|r| r.contender == Contender::BASELINE)
            .map(|r| (r.objects, r.clone()))
            .collect();
        for r in &mut rows {
            r.vs_baseline = baselines.get(&r.objects).map(|b| ratios(r, b));
        }
        let targets = targets(&rows);
        Report {
            setup,
            rows,
            targets,
            steady,
            samples,
            notes: Vec::new(),
        }
    }

    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => serde_json::to_string_pretty(self)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
            Format::Csv => self.csv(),
        }
    }

    fn table(&self) -> String {
        let header = [
            "objects",
            "contender",
            "first read",
            "ready",
            "× faster",
            "LIST",
            "WATCH",
            "pulled",
            "of base",
            "peak RSS",
            "of base",
            "disk",
            "of raw JSON",
        ];
        let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for r in &self.rows {
            let v = r.vs_baseline;
            lines.push(vec![
                r.objects.to_string(),
                r.label.clone(),
                timing(&r.first_read_ms),
                timing(&r.ready_ms),
                v.and_then(|v| v.ready_speedup).map_or("-".into(), speedup),
                format!("{:.0}", r.list_requests.median),
                format!("{:.0}", r.watch_requests.median),
                bytes(r.bytes_pulled.median),
                v.and_then(|v| v.bytes_fraction).map_or("-".into(), percent),
                bytes(r.peak_rss_bytes.median),
                v.and_then(|v| v.rss_fraction).map_or("-".into(), percent),
                r.disk_bytes.map_or("-".into(), |d| bytes(d.median)),
                r.disk_bytes.map_or("-".into(), |d| {
                    percent(d.median / r.raw_json_bytes.max(1) as f64)
                }),
            ]);
        }
        let mut out = align(&lines);
        let server = match self.setup.server {
            ServerKind::Sim => format!(
                "the simulator, bookmarks every {} ms",
                self.setup.bookmark_interval_ms
            ),
            ServerKind::KubeApiServer => "kube-apiserver".to_owned(),
        };
        let _ = writeln!(
            out,
            "\nmedian of {} rep(s) ± half the range; ratios against kube-runtime's reflector at the same object count; {} CPU(s); {server}",
            self.setup.reps, self.setup.cpus
        );
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        if !self.targets.is_empty() {
            out.push_str("\ntargets:\n");
            for t in &self.targets {
                let mark = match t.met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "not measured",
                };
                let _ = writeln!(
                    out,
                    "  [{mark}] {}: {}",
                    t.goal,
                    t.measured.as_deref().unwrap_or("-")
                );
            }
        }
        if !self.steady.is_empty() {
            let mut lines = vec![[
                "steady state",
                "objects",
                "rate",
                "events",
                "p50",
                "p99",
                "max",
                "burst events/s",
                "peak RSS",
            ]
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()];
            for s in &self.steady {
                lines.push(vec![
                    s.kind.to_string(),
                    s.objects.to_string(),
                    format!("{}/s", s.rate_per_sec),
                    s.report.paced_events.to_string(),
                    micros(s.report.p50_us),
                    micros(s.report.p99_us),
                    micros(s.report.max_us),
                    format!("{:.0}", s.report.burst_events_per_sec),
                    bytes(s.report.peak_rss_bytes as f64),
                ]);
            }
            out.push('\n');
            out.push_str(&align(&lines));
        }
        out
    }

    fn csv(&self) -> String {
        let mut out = String::from(
            "objects,contender,reps,first_read_ms_median,first_read_ms_min,first_read_ms_max,\
ready_ms_median,ready_ms_min,ready_ms_max,ready_speedup,list_requests,watch_requests,\
bytes_pulled,bytes_fraction,peak_rss_bytes,rss_fraction,disk_bytes,raw_json_bytes,objects_loaded\n",
        );
        let opt = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.4}"));
        for r in &self.rows {
            let v = r.vs_baseline;
            let _ = writeln!(
                out,
                "{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{},{:.0},{:.0},{:.0},{},{:.0},{},{},{},{:.0}",
                r.objects,
                csv_field(&r.label),
                r.ready_ms.n,
                r.first_read_ms.median,
                r.first_read_ms.min,
                r.first_read_ms.max,
                r.ready_ms.median,
                r.ready_ms.min,
                r.ready_ms.max,
                opt(v.and_then(|v| v.ready_speedup)),
                r.list_requests.median,
                r.watch_requests.median,
                r.bytes_pulled.median,
                opt(v.and_then(|v| v.bytes_fraction)),
                r.peak_rss_bytes.median,
                opt(v.and_then(|v| v.rss_fraction)),
                r.disk_bytes.map_or(String::new(), |d| format!("{:.0}", d.median)),
                r.raw_json_bytes,
                r.objects_loaded.median,
            );
        }
        out
    }
}

fn row(objects: usize, contender: Contender, group: &[&Sample]) -> Option<Row> {
    let of = |f: fn(&Sample) -> f64| Summary::of(group.iter().map(|s| f(s)));
    Some(Row {
        objects,
        contender,
        label: contender.to_string(),
        first_read_ms: of(|s| s.first_read_ms)?,
        ready_ms: of(|s| s.ready_ms)?,
        list_requests: of(|s| s.list_requests as f64)?,
        watch_requests: of(|s| s.watch_requests as f64)?,
        bytes_pulled: of(|s| s.bytes_pulled as f64)?,
        peak_rss_bytes: of(|s| s.peak_rss_bytes as f64)?,
        disk_bytes: Summary::of(group.iter().filter_map(|s| s.disk_bytes.map(|d| d as f64))),
        raw_json_bytes: group.iter().map(|s| s.raw_json_bytes).max().unwrap_or(0),
        metadata_list_bytes: group
            .iter()
            .map(|s| s.metadata_list_bytes)
            .max()
            .unwrap_or(0),
        objects_loaded: of(|s| s.objects_loaded as f64)?,
        vs_baseline: None,
    })
}

/// `num / den`, or `None` when the denominator is zero.
fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

fn ratios(r: &Row, base: &Row) -> Ratios {
    Ratios {
        ready_speedup: ratio(base.ready_ms.median, r.ready_ms.median),
        first_read_speedup: ratio(base.first_read_ms.median, r.first_read_ms.median),
        bytes_fraction: ratio(r.bytes_pulled.median, base.bytes_pulled.median),
        rss_fraction: ratio(r.peak_rss_bytes.median, base.peak_rss_bytes.median),
    }
}

/// How many times faster than kube-runtime's relist a resume must reach
/// Synced: 30× at 100k objects and up, 10× below (the targets are set at
/// 10k and 100k pods, where a relist's cost dominates kube-runtime's time).
fn resume_speedup_goal(objects: usize) -> f64 {
    if objects >= 100_000 {
        30.0
    } else {
        10.0
    }
}

/// The issues' targets, read at the largest object count measured. The
/// resume and the 410 relist they speak of are the 1%-changed ones when
/// measured, else the smallest fraction measured.
fn targets(rows: &[Row]) -> Vec<Target> {
    let Some(largest) = rows.iter().map(|r| r.objects).max() else {
        return Vec::new();
    };
    let at = |pred: &dyn Fn(Contender) -> bool| {
        rows.iter()
            .filter(|r| r.objects == largest && pred(r.contender))
            .min_by_key(|r| match r.contender {
                Contender::Resume { changed_pct } | Contender::RelistAfterGone { changed_pct } => {
                    (changed_pct != 1, changed_pct)
                }
                _ => (false, 0),
            })
    };
    let resume = at(&|c| matches!(c, Contender::Resume { .. }));
    let gone = at(&|c| matches!(c, Contender::RelistAfterGone { .. }));
    let fresh = at(&|c| c == Contender::Fresh);
    let base = at(&|c| c == Contender::BASELINE);
    let name = resume.map_or("resume".to_owned(), |r| r.label.clone());
    let gone_name = gone.map_or("410 relist".to_owned(), |r| r.label.clone());
    let check = |goal: String, measured: Option<(String, bool)>| Target {
        goal,
        met: measured.as_ref().map(|m| m.1),
        measured: measured.map(|m| m.0),
    };
    let v = |r: Option<&Row>, f: fn(&Ratios) -> Option<f64>| {
        r.and_then(|r| r.vs_baseline.as_ref()).and_then(f)
    };
    // What a 410 relist may pull: the metadata list, plus 2% of a relist.
    let gone_bytes = gone.zip(base).and_then(|(g, b)| {
        let relist = b.bytes_pulled.median;
        let metadata = g.metadata_list_bytes as f64 / relist;
        let pulled = ratio(g.bytes_pulled.median, relist)?;
        Some((
            format!("{} (metadata list {})", percent(pulled), percent(metadata)),
            pulled <= metadata + 0.02,
        ))
    });
    vec![
        check(
            format!(
                "{name} ready ≥ {goal}× faster than kube-runtime at {largest} objects",
                goal = resume_speedup_goal(largest)
            ),
            v(resume, |x| x.ready_speedup).map(|x| (speedup(x), x >= resume_speedup_goal(largest))),
        ),
        check(
            format!("{name} first read < 50 ms at {largest} objects"),
            resume.map(|r| {
                let ms = r.first_read_ms.median;
                (format!("{ms:.1} ms"), ms < 50.0)
            }),
        ),
        check(
            format!("{name} pulls < 1% of the bytes of a relist"),
            v(resume, |x| x.bytes_fraction).map(|x| (percent(x), x < 0.01)),
        ),
        check(
            format!("{name} peak RSS ≤ 25% of kube-runtime's"),
            v(resume, |x| x.rss_fraction).map(|x| (percent(x), x <= 0.25)),
        ),
        check(
            "store on disk ≤ 30% of raw JSON".to_owned(),
            fresh.and_then(|r| {
                let d = r.disk_bytes?.median / r.raw_json_bytes.max(1) as f64;
                Some((percent(d), d <= 0.30))
            }),
        ),
        check(
            format!("{gone_name} peak RSS ≤ 10% of kube-runtime's at {largest} objects"),
            v(gone, |x| x.rss_fraction).map(|x| (percent(x), x <= 0.10)),
        ),
        check(
            format!("{gone_name} ready ≥ 2× faster than kube-runtime"),
            v(gone, |x| x.ready_speedup).map(|x| (speedup(x), x >= 2.0)),
        ),
        check(
            format!("{gone_name} pulls ≤ a metadata list + 2% of a relist"),
            gone_bytes,
        ),
        check(
            "persist fresh peak RSS ≤ 15% of kube-runtime's".to_owned(),
            v(fresh, |x| x.rss_fraction).map(|x| (percent(x), x <= 0.15)),
        ),
    ]
}

/// A ratio against kube-runtime, with two decimals below 0.1 so that a
/// contender 20× slower does not read `0.0×`.
fn speedup(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.2}×")
    } else {
        format!("{x:.1}×")
    }
}

fn timing(s: &Summary) -> String {
    let spread = s.relative_spread();
    if s.n > 1 && spread > 0.0 {
        format!("{} ±{:.0}%", millis(s.median), spread * 100.0)
    } else {
        millis(s.median)
    }
}

fn millis(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1_000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn micros(us: f64) -> String {
    if us >= 1_000.0 {
        millis(us / 1_000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn bytes(b: f64) -> String {
    const KIB: f64 = 1024.0;
    if b >= KIB * KIB * KIB {
        format!("{:.2} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{b:.0} B")
    }
}

fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p != 0.0 && p.abs() < 0.1 {
        format!("{p:.3}%")
    } else {
        format!("{p:.1}%")
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Left-aligns text columns and right-aligns the rest, two spaces apart.
fn align(lines: &[Vec<String>]) -> String {
    let cols = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if c == 1 || c == 0 && !s.starts_with(|ch: char| ch.is_ascii_digit()) {
                    format!("{s:<w$}", w = widths[c])
                } else {
                    format!("{s:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(objects: usize, contender: Contender, rep: usize, ready_ms: f64) -> Sample {
        let is_base = contender == Contender::Reflector;
        Sample {
            objects,
            contender,
            rep,
            first_read_ms: if is_base { ready_ms } else { 5.0 },
            ready_ms,
            list_requests: if is_base { 2 } else { 0 },
            watch_requests: 1,
            bytes_pulled: if is_base { 1_000_000 } else { 5_000 },
            peak_rss_bytes: if is_base { 400 << 20 } else { 40 << 20 },
            disk_bytes: contender.has_store().then_some(100_000),
            raw_json_bytes: 1_000_000,
            metadata_list_bytes: 100_000,
            objects_loaded: objects as u64,
            resumed: contender.has_store().then_some(true),
        }
    }

    fn setup() -> Setup {
        Setup {
            objects: vec![1000],
            changed_pct: vec![1],
            gone_changed_pct: vec![1],
            reps: 3,
            bookmark_interval_ms: 100,
            cpus: 2,
            server: ServerKind::Sim,
        }
    }

    fn report() -> Report {
        let mut samples = Vec::new();
        for rep in 0..3 {
            samples.push(sample(
                1000,
                Contender::Reflector,
                rep,
                1000.0 + rep as f64 * 100.0,
            ));
            samples.push(sample(
                1000,
                Contender::Resume { changed_pct: 1 },
                rep,
                10.0 + rep as f64,
            ));
            samples.push(gone_sample(rep, 110_000));
        }
        Report::new(setup(), samples, Vec::new())
    }

    /// A 410 relist at 1000 objects that pulled `bytes` (the metadata list
    /// is 100,000 of a 1,000,000-byte relist) and was ready in ~300 ms.
    fn gone_sample(rep: usize, bytes: u64) -> Sample {
        let c = Contender::RelistAfterGone { changed_pct: 1 };
        Sample {
            bytes_pulled: bytes,
            list_requests: 3,
            resumed: Some(false),
            ..sample(1000, c, rep, 300.0 + rep as f64)
        }
    }

    #[test]
    fn rows_hold_medians_and_ratios_against_the_baseline() {
        let r = report();
        assert_eq!(r.rows.len(), 3);
        let resume = r
            .rows
            .iter()
            .find(|r| r.contender == Contender::Resume { changed_pct: 1 })
            .unwrap();
        assert_eq!(resume.ready_ms.median, 11.0);
        assert_eq!(resume.ready_ms.n, 3);
        let v = resume.vs_baseline.unwrap();
        assert_eq!(v.ready_speedup, Some(1100.0 / 11.0));
        assert_eq!(v.bytes_fraction, Some(0.005));
        assert_eq!(v.rss_fraction, Some(0.1));
        let base = r
            .rows
            .iter()
            .find(|r| r.contender == Contender::Reflector)
            .unwrap();
        assert_eq!(base.vs_baseline.unwrap().ready_speedup, Some(1.0));
    }

    #[test]
    fn no_baseline_means_no_ratios() {
        let samples = vec![sample(10, Contender::Fresh, 0, 5.0)];
        let r = Report::new(setup(), samples, Vec::new());
        assert_eq!(r.rows[0].vs_baseline, None);
        assert!(r
            .targets
            .iter()
            .all(|t| t.goal.contains("disk") || t.met.is_none()));
    }

    #[test]
    fn a_zero_baseline_gives_no_ratio_rather_than_infinity() {
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(1.0, 4.0), Some(0.25));
    }

    #[test]
    fn targets_are_judged_at_the_largest_count() {
        let r = report();
        let met: Vec<Option<bool>> = r.targets.iter().map(|t| t.met).collect();
        // Resume: 100× faster, 5 ms first read, 0.5% of the bytes, 10%
        // RSS. No fresh row: disk and fresh RSS not measured. 410 relist:
        // 10% RSS, 3.7× faster, 11% of the bytes against a 10% metadata
        // list.
        assert_eq!(
            met,
            vec![
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                None,
                Some(true),
                Some(true),
                Some(true),
                None
            ]
        );
        assert!(r.targets[0].goal.contains("persist resume 1%"));
        assert!(
            r.targets[7].goal.contains("410 relist 1%"),
            "{:?}",
            r.targets[7]
        );
        assert_eq!(
            r.targets[7].measured.as_deref(),
            Some("11.0% (metadata list 10.0%)")
        );
    }

    #[test]
    fn a_ratio_far_below_one_keeps_two_decimals() {
        assert_eq!(speedup(135.0 / 3011.0), "0.04×");
        assert_eq!(speedup(0.25), "0.2×");
        assert_eq!(speedup(34.84), "34.8×");
    }

    #[test]
    fn the_resume_goal_is_30x_from_100k_objects_and_10x_below() {
        let goal = |objects: usize, speedup: f64| {
            let samples = (0..3)
                .flat_map(|rep| {
                    [
                        sample(objects, Contender::Reflector, rep, 1000.0),
                        sample(
                            objects,
                            Contender::Resume { changed_pct: 1 },
                            rep,
                            1000.0 / speedup,
                        ),
                    ]
                })
                .collect();
            let r = Report::new(setup(), samples, Vec::new());
            let t = r.targets[0].clone();
            (t.goal, t.met)
        };
        let (text, met) = goal(100_000, 31.0);
        assert!(text.contains("ready ≥ 30× faster"), "{text}");
        assert_eq!(met, Some(true));
        assert_eq!(goal(100_000, 29.0).1, Some(false));
        let (text, met) = goal(10_000, 11.0);
        assert!(text.contains("ready ≥ 10× faster"), "{text}");
        assert_eq!(met, Some(true));
        assert_eq!(goal(10_000, 9.0).1, Some(false));
    }

    #[test]
    fn a_410_relist_that_fetches_more_than_what_changed_misses_its_target() {
        let mut samples: Vec<Sample> = (0..3)
            .map(|rep| sample(1000, Contender::Reflector, rep, 1000.0))
            .collect();
        // 15%: the metadata list and 5% of the objects, for 1% changed.
        samples.extend((0..3).map(|rep| gone_sample(rep, 150_000)));
        let r = Report::new(setup(), samples, Vec::new());
        let t = r
            .targets
            .iter()
            .find(|t| t.goal.contains("metadata list"))
            .unwrap();
        assert_eq!(t.met, Some(false), "{t:?}");
    }

    #[test]
    fn table_has_a_line_per_row_and_the_targets() {
        let t = report().render(Format::Table);
        assert!(t.lines().next().unwrap().starts_with("objects"));
        assert!(t.contains("kube-runtime reflector"));
        assert!(t.contains("persist resume 1%"));
        assert!(t.contains("100.0×"), "{t}");
        assert!(t.contains("[met]"));
        assert!(t.contains("[not measured] store on disk"));
        assert!(t.contains("the simulator, bookmarks every 100 ms"), "{t}");
        let mut r = report();
        r.setup.server = ServerKind::KubeApiServer;
        r.notes.push("how it was measured".into());
        let t = r.render(Format::Table);
        assert!(t.contains("; kube-apiserver\n"), "{t}");
        assert!(t.contains("\nnote: how it was measured\n"), "{t}");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_row_with_equal_field_counts() {
        let csv = report().render(Format::Csv);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        let fields = lines[0].split(',').count();
        assert!(
            lines.iter().all(|l| l.split(',').count() == fields),
            "{csv}"
        );
    }

    #[test]
    fn json_carries_rows_targets_and_samples() {
        let v: serde_json::Value = serde_json::from_str(&report().render(Format::Json)).unwrap();
        assert_eq!(v["rows"].as_array().unwrap().len(), 3);
        assert_eq!(v["samples"].as_array().unwrap().len(), 9);
        assert_eq!(v["targets"].as_array().unwrap().len(), 9);
        assert_eq!(v["rows"][0]["contender"]["kind"], "resume");
    }

    #[test]
    fn units_scale() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
        assert_eq!(millis(12.34), "12.3 ms");
        assert_eq!(millis(1234.0), "1234 ms");
        assert_eq!(millis(12_345.0), "12.3 s");
        assert_eq!(micros(250.0), "250 µs");
        assert_eq!(percent(0.0004), "0.040%");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
