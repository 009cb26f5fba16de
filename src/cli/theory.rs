//! `colop theory`.

use super::Context;

/// Options of `colop theory`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("colop theory is not available yet")
}
