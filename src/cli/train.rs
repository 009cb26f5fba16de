//! `colop train`.

use super::Context;

/// Options of `colop train`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("colop train is not available yet")
}
