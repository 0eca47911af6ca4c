//! `kube-persist export`.

use std::process::ExitCode;

/// Arguments of `kube-persist export`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`export` is not built yet")
}
