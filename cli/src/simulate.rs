//! `peerhours simulate`: the economic rules on one period, without a network.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
pub struct SimulateArgs {
    /// The scenario file (TOML, as in the spec's `cli.md`).
    pub scenario: PathBuf,
    #[command(flatten)]
    pub json: crate::JsonFlag,
}

pub fn run(_args: SimulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("simulate is being built")
}
