//! `kube-persist demo`: the whole flow on the built-in simulator, one
//! command, nothing else to start.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube_persist::informer::{Informer, ResourceSpec};
use kube_persist::sim::{SimConfig, SimStats, Simulator};

/// Arguments of `kube-persist demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pods in the simulated cluster.
    #[arg(long, default_value_t = 20_000)]
    pub pods: usize,
    /// Writes made on the server while the informer is down.
    #[arg(long, default_value_t = 2_000)]
    pub writes: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(demo(args))
}

/// One row of the table.
struct Phase {
    name: &'static str,
    first_read: Duration,
    synced: Duration,
    lists: u64,
    watches: u64,
    bytes: u64,
    events: u64,
    objects: usize,
}

async fn demo(args: Args) -> anyhow::Result<ExitCode> {
    let config = SimConfig {
        pods: args.pods,
        namespaces: 50,
        history: args.writes * 4 + 10_000,
        bookmark_interval: Duration::from_secs(1),
        ..SimConfig::default()
    };
    eprintln!("starting a simulated API server with {} pods...", args.pods);
    let sim = Simulator::start(config)
        .await
        .context("starting the simulator")?;
    let dir = tempfile::tempdir().context("creating a temporary store directory")?;
    let store = dir.path().join("store");
    eprintln!("store: {}", store.display());

    let mut phases = vec![phase(&sim, &store, "initial sync (empty store)").await?];

    sim.mutate(args.writes);
    eprintln!("informer down; {} writes made on the server", args.writes);
    phases.push(phase(&sim, &store, "restart: resume from stored RV").await?);

    sim.mutate(args.writes);
    sim.compact();
    eprintln!(
        "informer down; {} more writes, then the server compacted its history",
        args.writes
    );
    phases.push(
        phase(
            &sim,
            &store,
            "restart after compaction: 410, relist by diff",
        )
        .await?,
    );

    let server = sim.objects("pods").len();
    sim.shutdown().await;
    let mut out = std::io::stdout().lock();
    print_table(&mut out, &phases)?;
    writeln!(
        out,
        "\nserver holds {server} pods; the store holds {}",
        phases.last().map_or(0, |p| p.objects)
    )?;
    Ok(if phases.last().map(|p| p.objects) == Some(server) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Starts an informer on `store`, waits for Synced, shuts it down.
async fn phase(
    sim: &Simulator,
    store: &std::path::Path,
    name: &'static str,
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
        "\n{:<48} {:>11} {:>10} {:>5} {:>6} {:>11} {:>8} {:>8}",
        "phase", "first read", "synced", "LIST", "WATCH", "bytes", "events", "objects"
    )?;
    for p in phases {
        writeln!(
            out,
            "{:<48} {:>9.1}ms {:>8.0}ms {:>5} {:>6} {:>11} {:>8} {:>8}",
            p.name,
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
