//! `colop plot`.

use super::Context;

/// Options of `colop plot`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("colop plot is not available yet")
}
