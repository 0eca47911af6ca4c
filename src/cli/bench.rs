//! `kube-persist bench`: the resume-latency comparison, and the hidden
//! `bench child` each contender runs as.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use kube_persist::bench::runner::{self, SteadyPlan};
use kube_persist::bench::steady::Load;
use kube_persist::bench::{child, plot, ChildKind, ChildSpec, Format, Plan};

/// Arguments of `kube-persist bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Compare kube-persist's resume, its 410 relist and a fresh start with
    /// kube-runtime's reflector, each in its own process, on one simulated
    /// cluster.
    Resume(ResumeArgs),
    /// Run one contender (used by `bench resume`; prints JSON lines).
    #[command(hide = true)]
    Child(ChildArgs),
}

#[derive(Debug, clap::Args)]
struct ResumeArgs {
    /// Pod counts of the simulated cluster.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    objects: Vec<usize>,
    /// Percentages of pods written while a resuming process is down.
    #[arg(long, value_delimiter = ',', default_value = "0,1,10")]
    changed: Vec<u32>,
    /// Percentages of pods written before the stored resourceVersion is
    /// compacted away, one 410 relist each.
    #[arg(long, value_delimiter = ',', default_value = "0,1,10")]
    gone_changed: Vec<u32>,
    /// Repetitions of every measurement.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Also draw time-to-ready against object count into this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Directory for stores and child logs (default: a temporary one,
    /// removed afterwards).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Time limit for one contender process, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// The simulator's bookmark interval, in milliseconds.
    #[arg(long, default_value_t = 100)]
    bookmark_ms: u64,
    /// Seed of the simulated objects and writes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip the steady-state measurement.
    #[arg(long)]
    no_steady: bool,
    /// Pods in the cluster during the steady-state measurement.
    #[arg(long, default_value_t = 1000)]
    steady_objects: usize,
    /// Paced writes per second in steady state.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Paced writes in steady state (their latencies give p50/p99).
    #[arg(long, default_value_t = 1000)]
    steady_events: u64,
    /// Writes in the steady-state burst (their rate gives events/s).
    #[arg(long, default_value_t = 2000)]
    burst_events: u64,
}

#[derive(Debug, clap::Args)]
struct ChildArgs {
    /// Which cache to run.
    #[arg(value_enum)]
    kind: ChildKind,
    /// API server URL.
    #[arg(long)]
    server: String,
    /// Store directory (persist).
    #[arg(long)]
    store: Option<PathBuf>,
    /// `namespace/name` of a pod to read once ready.
    #[arg(long)]
    probe: String,
    /// Steady state: paced events to wait for.
    #[arg(long, requires = "steady_burst")]
    steady_paced: Option<u64>,
    /// Steady state: burst events to wait for.
    #[arg(long, requires = "steady_paced")]
    steady_burst: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Resume(a) => resume(a),
        Command::Child(a) => run_child(a),
    }
}

fn resume(a: ResumeArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let work_dir = match a.work_dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().context("creating a temporary work directory")?;
            temp.path().to_owned()
        }
    };
    let plan = Plan {
        exe: std::env::current_exe().context("finding this executable to re-run as contenders")?,
        objects: a.objects,
        changed_pct: a.changed,
        gone_changed_pct: a.gone_changed,
        reps: a.reps,
        work_dir,
        timeout: Duration::from_secs(a.timeout),
        bookmark_interval: Duration::from_millis(a.bookmark_ms),
        seed: a.seed,
        steady: (!a.no_steady).then_some(SteadyPlan {
            objects: a.steady_objects,
            load: Load {
                rate_per_sec: a.rate,
                paced_events: a.steady_events,
                burst_events: a.burst_events,
            },
        }),
    };
    plan.validate()?;
    let bar = ProgressBar::new(plan.steps() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let report = runner::run(&plan, &mut |p| {
        bar.set_position(p.done as u64);
        bar.set_message(p.step.clone());
    });
    bar.finish_and_clear();
    let report = report.context("running the resume benchmark")?;
    // The plot first: a reader of stdout that goes away early (`| head`)
    // ends the command, and must not cost the plot.
    if let Some(path) = &a.plot {
        plot::draw(&report, path)?;
        eprintln!("plot written to {}", path.display());
    }
    std::io::stdout().write_all(report.render(a.output).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn run_child(a: ChildArgs) -> anyhow::Result<ExitCode> {
    let spec = ChildSpec {
        kind: a.kind,
        server: a.server,
        store: a.store,
        probe: a.probe,
        steady: a.steady_paced.zip(a.steady_burst),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut stdout = std::io::stdout().lock();
    runtime
        .block_on(child::run(&spec, &mut stdout))
        .with_context(|| format!("bench child {}", spec.kind))?;
    Ok(ExitCode::SUCCESS)
}
