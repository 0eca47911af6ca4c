//! `kube-persist sync`.

use std::process::ExitCode;

/// Arguments of `kube-persist sync`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sync` is not built yet")
}
