//! `kube-persist verify`.

use std::process::ExitCode;

/// Arguments of `kube-persist verify`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`verify` is not built yet")
}
