//! `colop tracks`.

use super::Context;

/// Options of `colop tracks`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::bail!("colop tracks is not available yet")
}
