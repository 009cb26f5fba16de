//! `colop synth`.

use super::Context;

/// Options of `colop synth`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("colop synth is not available yet")
}
