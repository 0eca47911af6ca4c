//! `kube-persist inspect`.

use std::process::ExitCode;

/// Arguments of `kube-persist inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`inspect` is not built yet")
}
