//! `colop campaign`.

use super::Context;

#[derive(clap::Subcommand, Debug)]
pub enum Command {}

pub fn run(cmd: Command, _ctx: &Context) -> anyhow::Result<()> {
    match cmd {}
}
