//! `kube-persist list`.

use std::process::ExitCode;

/// Arguments of `kube-persist list`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`list` is not built yet")
}
