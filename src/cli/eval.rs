//! `colop eval`.

use super::Context;

/// Options of `colop eval`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("colop eval is not available yet")
}
