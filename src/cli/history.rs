//! `kube-persist history`.

use std::process::ExitCode;

/// Arguments of `kube-persist history`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`history` is not built yet")
}
