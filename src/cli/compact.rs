//! `kube-persist compact`.

use std::process::ExitCode;

/// Arguments of `kube-persist compact`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`compact` is not built yet")
}
