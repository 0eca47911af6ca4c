//! `kube-persist bench`: the resume-latency comparison, and the hidden
//! `bench child` each contender runs as.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use kube_persist::bench::apiserver;
use kube_persist::bench::clientgo::{self, Encoding};
use kube_persist::bench::cluster::ServerKind;
use kube_persist::bench::controller::{self as bench_controller, ControllerPlan};
use kube_persist::bench::outage::{self, OutagePlan};
use kube_persist::bench::reconciler::{self, ControllerKind, ReconcilerSpec};
use kube_persist::bench::runner::{self, SteadyPlan};
use kube_persist::bench::steady::Load;
use kube_persist::bench::store::{self as bench_store, StorePlan};
use kube_persist::bench::{child, plot, ChildKind, ChildSpec, Format, Plan};
use kube_persist::store::EngineKind;

/// Arguments of `kube-persist bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Compare kube-persist's resume, its 410 relist and a fresh start with
    /// kube-runtime's reflector and client-go's informer, each in its own
    /// process, on one cluster (the simulator or a real kube-apiserver).
    Resume(ResumeArgs),
    /// Compare reconciles after a restart: kube-runtime's controller from
    /// scratch against kube-persist's resuming from its store, each in its
    /// own process, on one simulated cluster.
    Controller(ControllerArgs),
    /// Restart an informer after outages of several lengths while the
    /// server takes a steady write load, and report whether each restart
    /// resumed its watch or got 410 and relisted, beside what
    /// kube-apiserver's watch cache rule predicts and beside kube-runtime's
    /// relist.
    ///
    /// No real minutes are waited: the simulator's clock is advanced by
    /// each outage, with the writes of that time generated at their own
    /// moments of it, so its watch cache (a ring that keeps ~75 s of
    /// events, 100 to 102,400 of them) turns over exactly as
    /// kube-apiserver's would have. Only the restart runs in real time.
    Outage(OutageArgs),
    /// Load realistic pods through the store on each storage engine and,
    /// in the same run, through the bare engine with the same records:
    /// durable objects/s, single-event applies, first read and `get` in a
    /// fresh process, and disk as a share of the raw JSON.
    Store(StoreArgs),
    /// Open a store read-only and read one pod; print the ms that took
    /// (used by `bench store`).
    #[command(hide = true)]
    StoreRead(StoreReadArgs),
    /// Run one contender (used by `bench resume`; prints JSON lines).
    #[command(hide = true)]
    Child(ChildArgs),
    /// Run one controller (used by `bench controller` and the crash tests;
    /// prints JSON lines).
    #[command(hide = true)]
    Reconciler(ReconcilerArgs),
}

#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// Pods to load.
    #[arg(long, default_value_t = 100_000)]
    objects: usize,
    /// Storage engines to compare.
    #[arg(long, value_delimiter = ',', default_value = "sled,redb")]
    engine: Vec<EngineKind>,
    /// Output format: a table, or JSON (`{"rows": [...]}`).
    #[arg(short = 'o', long, value_enum, default_value_t = ControllerFormat::Table)]
    output: ControllerFormat,
    /// Directory for the stores (default: a temporary one, removed
    /// afterwards).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// Options every measuring subcommand shares.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Directory for stores and child logs (default: a temporary one,
    /// removed afterwards).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Time limit for one child process, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// The simulator's bookmark interval, in milliseconds (default: the
    /// cacher's, one minute, with a bookmark 2 s before each watch's
    /// deadline).
    #[arg(long)]
    bookmark_ms: Option<u64>,
    /// Seed of the simulated objects and writes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl RunArgs {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    fn bookmark_interval(&self) -> Duration {
        self.bookmark_ms.map_or(
            kube_persist::sim::DEFAULT_BOOKMARK_INTERVAL,
            Duration::from_millis,
        )
    }

    /// The work directory given, or a temporary one removed when the
    /// returned guard drops.
    fn work_dir(&self) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
        work_dir(self.work_dir.clone())
    }
}

#[derive(Debug, clap::Args)]
struct StoreReadArgs {
    /// Store directory.
    store: PathBuf,
    /// The pod, as NAMESPACE/NAME.
    key: String,
}

#[derive(Debug, clap::Args)]
struct ControllerArgs {
    /// Pods in the simulated cluster.
    #[arg(long, default_value_t = 100_000)]
    objects: usize,
    /// Percentage of pods written while kube-persist's controller is down.
    #[arg(long, default_value_t = 1)]
    changed: u32,
    /// Output format: a table, or JSON (`{"rows": [...]}`).
    #[arg(short = 'o', long, value_enum, default_value_t = ControllerFormat::Table)]
    output: ControllerFormat,
    /// How long each child goes on after its last needed reconcile,
    /// counting any more, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    quiet_ms: u64,
    /// Both controllers' debounce in milliseconds: how long a changed pod
    /// waits, each further change pushing it back, before it is
    /// reconciled (kube-runtime's `Config::debounce`; 0 reconciles at once).
    #[arg(long, default_value_t = 0)]
    debounce_ms: u64,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ControllerFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
struct ReconcilerArgs {
    /// Which controller to run.
    #[arg(value_enum)]
    kind: ControllerKind,
    /// API server URL.
    #[arg(long)]
    server: String,
    /// Store directory (kube-persist).
    #[arg(long)]
    store: Option<PathBuf>,
    /// The kube-persist controller's name.
    #[arg(long, default_value = "bench")]
    name: String,
    /// File of `namespace/name` lines to reconcile before stopping (without
    /// it: run until SIGTERM).
    #[arg(long)]
    needed: Option<PathBuf>,
    /// How long to go on after the last needed reconcile, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    quiet_ms: u64,
    /// Print one JSON line per reconcile.
    #[arg(long)]
    print_reconciles: bool,
    /// Fail the first attempt of one key in this many.
    #[arg(long, default_value_t = 0)]
    fail_one_in: u64,
    /// Requeue one key in this many after 1 s.
    #[arg(long, default_value_t = 0)]
    requeue_one_in: u64,
    /// The controller's debounce in milliseconds.
    #[arg(long, default_value_t = 0)]
    debounce_ms: u64,
}

#[derive(Debug, clap::Args)]
struct ResumeArgs {
    /// Pod counts of the cluster. The default, up to 100,000 pods with 3
    /// repetitions of every contender, runs for tens of minutes on two
    /// cores; `--objects 1000 --reps 1` takes under a minute.
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
    #[command(flatten)]
    run: RunArgs,
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
    /// The API server: the built-in simulator, or a real kube-apiserver
    /// (tests/apiserver's harness, started per object count; its 410 row
    /// waits out the watch cache's 75 s window).
    #[arg(long, value_enum, default_value_t = ServerKind::Sim)]
    server: ServerKind,
    /// Where tests/apiserver/build.sh put `apiserver` and
    /// `clientgo-informer` (default: target/apiserver-bin beside this
    /// executable's profile directory).
    #[arg(long)]
    harness_dir: Option<PathBuf>,
    /// client-go's informer in these encodings (json, protobuf), or `none`.
    /// Default: json when `clientgo-informer` is built, else none.
    #[arg(long, value_delimiter = ',')]
    clientgo: Option<Vec<ClientGoArg>>,
}

/// A `--clientgo` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClientGoArg {
    Json,
    Protobuf,
    None,
}

#[derive(Debug, clap::Args)]
struct OutageArgs {
    /// Pods in the simulated cluster.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Pod writes per second while the informer is down (and for 150 s
    /// before, so the watch cache is in its steady state).
    #[arg(long, default_value_t = 100.0)]
    write_rate: f64,
    /// Outage lengths in seconds.
    #[arg(long, value_delimiter = ',', default_value = "30,120,600")]
    outage: Vec<f64>,
    /// Output format: a table, `json` for `{"rows": [...]}`, or `csv`.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Args)]
struct ChildArgs {
    /// Which cache to run.
    #[arg(value_enum)]
    kind: ChildKind,
    /// API server URL.
    #[arg(long)]
    server: String,
    /// Kubeconfig to connect with instead of the bare URL.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
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
        Command::Outage(a) => outage(a),
        Command::Child(a) => run_child(a),
        Command::Controller(a) => controller(a),
        Command::Reconciler(a) => run_reconciler(a),
        Command::Store(a) => store(a),
        Command::StoreRead(a) => {
            let ms = bench_store::first_read(&a.store, &a.key)?;
            println!("{ms:.3}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn store(a: StoreArgs) -> anyhow::Result<ExitCode> {
    let (work_dir, _temp) = work_dir(a.work_dir)?;
    let plan = StorePlan {
        exe: std::env::current_exe()
            .context("finding this executable to re-run for fresh reads")?,
        objects: a.objects,
        engines: a.engine,
        work_dir,
    };
    plan.validate()?;
    let report = bench_store::run(&plan, &mut |step| eprintln!("{step}..."))
        .context("running the store benchmark")?;
    let text = match a.output {
        ControllerFormat::Table => report.table(),
        ControllerFormat::Json => report.json(),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn controller(a: ControllerArgs) -> anyhow::Result<ExitCode> {
    let (work_dir, _temp) = a.run.work_dir()?;
    let plan = ControllerPlan {
        exe: std::env::current_exe().context("finding this executable to re-run as contenders")?,
        objects: a.objects,
        changed_pct: a.changed,
        work_dir,
        timeout: a.run.timeout(),
        quiet: Duration::from_millis(a.quiet_ms),
        bookmark_interval: a.run.bookmark_interval(),
        seed: a.run.seed,
        debounce: Duration::from_millis(a.debounce_ms),
    };
    plan.validate()?;
    let report = bench_controller::run(&plan, &mut |step| eprintln!("{step}..."))
        .context("running the controller benchmark")?;
    let text = match a.output {
        ControllerFormat::Table => report.table(),
        ControllerFormat::Json => report.json(),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn run_reconciler(a: ReconcilerArgs) -> anyhow::Result<ExitCode> {
    let spec = ReconcilerSpec {
        kind: a.kind,
        server: a.server,
        store: a.store,
        name: a.name,
        needed: a.needed,
        quiet: Duration::from_millis(a.quiet_ms),
        print: a.print_reconciles,
        fail_one_in: a.fail_one_in,
        requeue_one_in: a.requeue_one_in,
        debounce: Duration::from_millis(a.debounce_ms),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    // Not locked: the reconciler prints from the runtime's threads too.
    let mut stdout = std::io::stdout();
    runtime
        .block_on(reconciler::run(&spec, &mut stdout))
        .with_context(|| format!("bench reconciler {}", spec.kind))?;
    Ok(ExitCode::SUCCESS)
}

fn resume(a: ResumeArgs) -> anyhow::Result<ExitCode> {
    let (work_dir, _temp) = a.run.work_dir()?;
    let exe = std::env::current_exe().context("finding this executable to re-run as contenders")?;
    let harness_dir = clientgo::harness_dir(a.harness_dir.as_deref(), &exe);
    let mut notes = Vec::new();
    let clientgo = match &a.clientgo {
        Some(list) if list.contains(&ClientGoArg::None) => Vec::new(),
        Some(list) => list
            .iter()
            .map(|e| match e {
                ClientGoArg::Protobuf => Encoding::Protobuf,
                _ => Encoding::Json,
            })
            .collect(),
        None => match apiserver::program(&harness_dir, apiserver::CLIENTGO_PROGRAM) {
            Ok(_) => vec![Encoding::Json],
            Err(why) => {
                notes.push(format!("client-go not measured: {why}"));
                Vec::new()
            }
        },
    };
    if !clientgo.is_empty() {
        // Named explicitly: its absence is an error before anything runs.
        apiserver::program(&harness_dir, apiserver::CLIENTGO_PROGRAM)?;
    }
    let plan = Plan {
        exe,
        objects: a.objects,
        changed_pct: a.changed,
        gone_changed_pct: a.gone_changed,
        reps: a.reps,
        work_dir,
        timeout: a.run.timeout(),
        bookmark_interval: a.run.bookmark_interval(),
        seed: a.run.seed,
        steady: (!a.no_steady).then_some(SteadyPlan {
            objects: a.steady_objects,
            load: Load {
                rate_per_sec: a.rate,
                paced_events: a.steady_events,
                burst_events: a.burst_events,
            },
        }),
        server: a.server,
        harness_dir,
        clientgo,
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
    let mut report = report.context("running the resume benchmark")?;
    report.notes.extend(notes);
    // The plot first: a reader of stdout that goes away early (`| head`)
    // ends the command, and must not cost the plot.
    if let Some(path) = &a.plot {
        plot::draw(&report, path)?;
        eprintln!("plot written to {}", path.display());
    }
    std::io::stdout().write_all(report.render(a.output).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The work directory given, or a temporary one removed when the returned
/// guard drops.
fn work_dir(given: Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    Ok(match given {
        Some(dir) => (dir, None),
        None => {
            let temp = tempfile::tempdir().context("creating a temporary work directory")?;
            (temp.path().to_owned(), Some(temp))
        }
    })
}

fn outage(a: OutageArgs) -> anyhow::Result<ExitCode> {
    let (work_dir, _temp) = a.run.work_dir()?;
    let outages = a
        .outage
        .iter()
        .map(|s| {
            Duration::try_from_secs_f64(*s)
                .map_err(|_| anyhow::anyhow!("--outage {s} is not a number of seconds"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let plan = OutagePlan {
        exe: std::env::current_exe().context("finding this executable to re-run as contenders")?,
        objects: a.objects,
        write_rate: a.write_rate,
        outages,
        work_dir,
        timeout: a.run.timeout(),
        bookmark_interval: a.run.bookmark_interval(),
        seed: a.run.seed,
    };
    plan.validate()?;
    let rows = outage::run(&plan, &mut |step| eprintln!("{step}..."))
        .context("running the outage benchmark")?;
    let text = match a.output {
        Format::Json => outage::render_json(&rows),
        Format::Csv => outage::render_csv(&rows),
        Format::Table => outage::render_table(&plan, &rows),
    };
    writeln!(std::io::stdout(), "{text}")?;
    Ok(ExitCode::SUCCESS)
}

fn run_child(a: ChildArgs) -> anyhow::Result<ExitCode> {
    let spec = ChildSpec {
        kind: a.kind,
        server: a.server,
        kubeconfig: a.kubeconfig,
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
