//! `kube-persist demo`.

use std::process::ExitCode;

/// Arguments of `kube-persist demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`demo` is not built yet")
}
