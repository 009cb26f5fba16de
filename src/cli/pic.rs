//! `colop pic`.

use super::Context;

/// Options of `colop pic`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("colop pic is not available yet")
}
