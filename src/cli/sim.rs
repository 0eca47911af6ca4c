//! `kube-persist sim`.

use std::process::ExitCode;

/// Arguments of `kube-persist sim`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sim` is not built yet")
}
