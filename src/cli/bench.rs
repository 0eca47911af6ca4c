//! `kube-persist bench`.

use std::process::ExitCode;

/// Arguments of `kube-persist bench`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`bench` is not built yet")
}
