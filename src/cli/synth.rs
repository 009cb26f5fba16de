//! `colop synth`: write synthetic datasets rolled out from a known operator.

use super::Context;
use crate::synth::{generate, SynthConfig};
use std::path::PathBuf;

/// Options of `colop synth`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Synthesis config (YAML): grid, operator, initial distributions, snapshots, noise.
    pub config: PathBuf,
    /// Directory for the run files (one `<name>.h5` per run).
    #[arg(long, short)]
    pub out: PathBuf,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<()> {
    let cfg = SynthConfig::load(&args.config)?;
    if ctx.comm.rank() != 0 {
        return Ok(());
    }
    for p in generate(&cfg, &args.out)? {
        super::print_out(&p.display().to_string())?;
    }
    Ok(())
}
