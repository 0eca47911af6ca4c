//! `kube-persist get`.

use std::process::ExitCode;

/// Arguments of `kube-persist get`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`get` is not built yet")
}
