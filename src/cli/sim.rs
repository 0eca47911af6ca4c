//! `kube-persist sim`: the API-server simulator, standalone.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use kube_persist::sim::history::DEFAULT_LOWER_BOUND;
use kube_persist::sim::{GoneMode, HistoryConfig, SimConfig, Simulator};

use super::signals::Signals;

/// Arguments of `kube-persist sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Loopback address to listen on (port 0: ephemeral).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Pods to pre-populate.
    #[arg(long, default_value_t = 0)]
    pods: usize,
    /// Namespaces to spread the pods over.
    #[arg(long, default_value_t = 3)]
    namespaces: usize,
    /// ConfigMaps to pre-populate.
    #[arg(long, default_value_t = 0)]
    configmaps: usize,
    /// Seed for generated objects and mutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds between bookmarks on watches that ask for them (the
    /// cacher's `defaultBookmarkFrequency`).
    #[arg(long, default_value_t = 60.0)]
    bookmark_interval: f64,
    /// Compact all history every this many seconds.
    #[arg(long)]
    compact_interval: Option<f64>,
    /// Seconds of events each resource's watch cache keeps when the write
    /// rate allows (`eventFreshDuration`): its ring grows while the event it
    /// would evict is younger than this.
    #[arg(long, default_value_t = 75.0)]
    history_window: f64,
    /// Fewest events a watch cache keeps (`defaultLowerBoundCapacity`).
    #[arg(long, default_value_t = DEFAULT_LOWER_BOUND)]
    history_min: usize,
    /// Most events a watch cache keeps (default: 102,400, scaled up as
    /// kube-apiserver does for windows longer than 75 s).
    #[arg(long)]
    history_max: Option<usize>,
    /// Seconds between etcd's progress notifications to idle watch caches
    /// (kubeadm's 5 s); 0 turns them off.
    #[arg(long, default_value_t = 5.0)]
    progress_notify_interval: f64,
    /// resourceVersions spent per second on objects the simulator does not
    /// serve, as a real cluster's Lease renewals spend them.
    #[arg(long, default_value_t = 0.0)]
    background_writes: f64,
    /// Largest page served, whatever `limit` asks.
    #[arg(long, default_value_t = 10_000)]
    page_size_max: usize,
    /// Serve streaming lists (`sendInitialEvents`): on or off.
    #[arg(long, default_value = "on", value_parser = parse_switch, action = clap::ArgAction::Set)]
    watch_list: bool,
    /// Answer watches from a compacted resourceVersion with an HTTP 410
    /// (`http`) or a 200 stream starting with an ERROR event (`event`).
    #[arg(long, default_value = "http", value_parser = parse_gone)]
    gone: GoneMode,
    /// Drive this many realistic pod writes per second.
    #[arg(long, default_value_t = 0.0)]
    load: f64,
}

fn parse_switch(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("expected on or off, got {s:?}")),
    }
}

fn parse_gone(s: &str) -> Result<GoneMode, String> {
    match s {
        "http" => Ok(GoneMode::Http410),
        "event" => Ok(GoneMode::ErrorEvent),
        _ => Err(format!("expected http or event, got {s:?}")),
    }
}

fn seconds(name: &str, secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{name} must be a positive number of seconds, got {secs}"))
}

/// Runs the simulator until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let window = seconds("history-window", args.history_window)?;
    if !(args.background_writes.is_finite() && args.background_writes >= 0.0) {
        anyhow::bail!("--background-writes must be a non-negative number per second");
    }
    let progress_notify_interval = if args.progress_notify_interval == 0.0 {
        None
    } else {
        Some(seconds(
            "progress-notify-interval",
            args.progress_notify_interval,
        )?)
    };
    let config = SimConfig {
        listen: args.listen,
        pods: args.pods,
        namespaces: args.namespaces,
        configmaps: args.configmaps,
        seed: args.seed,
        bookmark_interval: seconds("bookmark-interval", args.bookmark_interval)?,
        compact_interval: args
            .compact_interval
            .map(|s| seconds("compact-interval", s))
            .transpose()?,
        history: {
            let upstream = HistoryConfig::for_window(window);
            HistoryConfig {
                lower_bound: args.history_min,
                upper_bound: args.history_max.unwrap_or(upstream.upper_bound),
                ..upstream
            }
        },
        progress_notify_interval,
        background_writes_per_sec: args.background_writes,
        page_size_max: args.page_size_max,
        watch_list: args.watch_list,
        gone: args.gone,
        ..SimConfig::default()
    };
    if !(args.load.is_finite() && args.load >= 0.0) {
        anyhow::bail!("--load must be a non-negative number of writes per second");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        // Handlers first: a signal that arrives once the URL is out must
        // stop the simulator cleanly, not kill the process.
        let mut signals = Signals::install()?;
        let sim = Simulator::start(config)
            .await
            .context("starting the simulator")?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", sim.url()).context("writing to stdout")?;
        writeln!(out, "try: kubectl --server {} get pods -A", sim.url())
            .context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
        drop(out);
        let load = (args.load > 0.0).then(|| sim.start_load(args.load));
        let sig = signals.recv().await;
        tracing::info!(signal = sig, "shutting down");
        if let Some(load) = load {
            let writes = load.stop().await;
            tracing::info!(writes, "load stopped");
        }
        sim.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
