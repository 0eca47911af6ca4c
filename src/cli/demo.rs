//! `kube-persist demo`: the whole flow on the built-in simulator, one
//! command, nothing else to start. The simulator behaves like
//! kube-apiserver's watch cache, and its clock is fast-forwarded through
//! each outage (with the writes of that time), so the demo shows what a
//! real server would have done after a one-minute and a ten-minute outage.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube_persist::bench::outage::{
    expected_outcome, predicted_switch, steady_capacity, Outcome, WARM_UP,
};
use kube_persist::bench::runner::sim_config;
use kube_persist::informer::{Informer, ResourceSpec};
use kube_persist::sim::{SimConfig, SimStats, Simulator};

/// Arguments of `kube-persist demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pods in the simulated cluster.
    #[arg(long, default_value_t = 20_000)]
    pub pods: usize,
    /// Pod writes per second on the server while the informer is down.
    #[arg(long, default_value_t = 100.0)]
    pub write_rate: f64,
    /// The outages, in seconds: the informer is restarted after each.
    #[arg(long, value_delimiter = ',', default_value = "60,600")]
    pub outages: Vec<f64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(demo(args))
}

/// One row of the table.
struct Phase {
    name: String,
    /// What kube-apiserver's watch cache rule says a restart gets (`None`:
    /// the first sync, which lists).
    expected: Option<Outcome>,
    /// What the restart did: relisted after a 410, or resumed.
    observed: Outcome,
    first_read: Duration,
    synced: Duration,
    lists: u64,
    watches: u64,
    bytes: u64,
    events: u64,
    objects: usize,
}

async fn demo(args: Args) -> anyhow::Result<ExitCode> {
    if !(args.write_rate.is_finite() && args.write_rate > 0.0) {
        anyhow::bail!("--write-rate must be a positive number of writes per second");
    }
    let outages = args
        .outages
        .iter()
        .map(|s| {
            Duration::try_from_secs_f64(*s)
                .map_err(|_| anyhow::anyhow!("--outages: {s} is not a number of seconds"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let defaults = SimConfig::default();
    let config = sim_config(args.pods, defaults.seed, defaults.bookmark_interval);
    let history = config.history;
    eprintln!("starting a simulated API server with {} pods...", args.pods);
    let sim = Simulator::start(config)
        .await
        .context("starting the simulator")?;
    // The load first, so that the watch cache holds what a busy server's
    // would.
    let warm = sim.clone();
    let rate = args.write_rate;
    tokio::task::spawn_blocking(move || warm.advance_with_writes(WARM_UP, rate))
        .await
        .context("warming up the simulator")?;
    let dir = tempfile::tempdir().context("creating a temporary store directory")?;
    let store = dir.path().join("store");
    eprintln!("store: {}", store.display());
    eprintln!(
        "at {} writes/s kube-apiserver's watch cache holds {} pod events: a restart after more than {:.0} s of downtime gets 410",
        rate,
        steady_capacity(&history, rate),
        predicted_switch(&history, rate).as_secs_f64()
    );

    let mut phases = vec![phase(&sim, &store, "initial sync (empty store)".into(), None).await?];
    for outage in outages {
        let down = sim.clone();
        let writes = tokio::task::spawn_blocking(move || down.advance_with_writes(outage, rate))
            .await
            .context("advancing the simulator's clock")?;
        eprintln!(
            "informer down {:.0} s; the server took {writes} pod writes meanwhile",
            outage.as_secs_f64()
        );
        let expected = expected_outcome(&history, rate, writes);
        let name = format!("restart after {:.0} s down", outage.as_secs_f64());
        phases.push(phase(&sim, &store, name, Some(expected)).await?);
    }

    let server = sim.objects("pods").len();
    sim.shutdown().await;
    let mut out = std::io::stdout().lock();
    print_table(&mut out, &phases)?;
    writeln!(
        out,
        "\nserver holds {server} pods; the store holds {}",
        phases.last().map_or(0, |p| p.objects)
    )?;
    let mispredicted: Vec<&str> = phases
        .iter()
        .filter(|p| p.expected.is_some_and(|e| e != p.observed))
        .map(|p| p.name.as_str())
        .collect();
    if !mispredicted.is_empty() {
        writeln!(
            out,
            "the restart did not do what kube-apiserver's rule predicts: {}",
            mispredicted.join(", ")
        )?;
    }
    Ok(
        if phases.last().map(|p| p.objects) == Some(server) && mispredicted.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// Starts an informer on `store`, waits for Synced, shuts it down.
async fn phase(
    sim: &Simulator,
    store: &std::path::Path,
    name: String,
    expected: Option<Outcome>,
) -> anyhow::Result<Phase> {
    let before = sim.stats();
    let start = Instant::now();
    let informer = Informer::builder(
        sim.client(),
        ResourceSpec::builtin("pods").context("pods spec")?,
    )
    .store_path(store)
    .start()
    .await
    .context("starting the informer")?;
    // The first read a controller makes: one namespace's pods.
    let readable = informer
        .list_namespace("ns-000")
        .context("first read")?
        .len();
    let first_read = start.elapsed();
    tracing::info!(readable, "first read");
    tokio::time::timeout(Duration::from_secs(60), informer.wait_until_synced())
        .await
        .context("not synced within a minute")??;
    let synced = start.elapsed();
    let m = informer.metrics();
    let objects = informer.len();
    informer.shutdown().await;
    let after = sim.stats();
    let delta = |f: fn(&SimStats) -> u64| f(&after).saturating_sub(f(&before));
    Ok(Phase {
        name,
        expected,
        observed: if m.gone > 0 {
            Outcome::Relisted
        } else {
            Outcome::Resumed
        },
        first_read,
        synced,
        lists: delta(|s| s.list_requests),
        watches: delta(|s| s.watch_requests),
        bytes: delta(|s| s.bytes_sent),
        events: m.events_applied,
        objects,
    })
}

fn print_table(out: &mut impl Write, phases: &[Phase]) -> std::io::Result<()> {
    writeln!(
        out,
        "\n{:<30} {:>9} {:>9} {:>11} {:>10} {:>5} {:>6} {:>11} {:>8} {:>8}",
        "phase",
        "predicted",
        "did",
        "first read",
        "synced",
        "LIST",
        "WATCH",
        "bytes",
        "events",
        "objects"
    )?;
    for p in phases {
        writeln!(
            out,
            "{:<30} {:>9} {:>9} {:>9.1}ms {:>8.0}ms {:>5} {:>6} {:>11} {:>8} {:>8}",
            p.name,
            p.expected.map_or("list".to_owned(), |e| e.to_string()),
            match (p.expected, p.observed) {
                (None, _) => "listed".to_owned(),
                (Some(_), o) => o.to_string(),
            },
            p.first_read.as_secs_f64() * 1000.0,
            p.synced.as_secs_f64() * 1000.0,
            p.lists,
            p.watches,
            human_bytes(p.bytes),
            p.events,
            p.objects
        )?;
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
