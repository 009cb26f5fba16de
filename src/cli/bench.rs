//! `colop bench`.

use super::Context;

/// Options of `colop bench`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("colop bench is not available yet")
}
