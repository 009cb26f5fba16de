//! `colop compare`.

use super::Context;

/// Options of `colop compare`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("colop compare is not available yet")
}
