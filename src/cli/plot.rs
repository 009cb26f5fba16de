//! `colop plot`: draw the figures of a run directory or a model file.

use super::Context;
use crate::eval::RunEval;
use std::path::{Path, PathBuf};

/// Options of `colop plot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run directory (model.h5 + metrics.jsonl) or a model file.
    pub target: PathBuf,
    /// Output directory (default: `<run dir>/plots`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Conditioner values for conditioned models, e.g. `ppc=32`.
    #[arg(long, value_parser = crate::cli::eval::parse_params)]
    pub params: Option<Vec<(String, f64)>>,
    /// Times (1/ω_p) at which to draw time-dependent models, e.g. `0,50,95`.
    #[arg(long, value_delimiter = ',')]
    pub times: Option<Vec<f64>>,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<()> {
    if ctx.comm.rank() != 0 {
        return Ok(());
    }
    let _ = args;
    anyhow::bail!("colop plot is not available yet")
}

/// Figures of a finished run directory.
pub fn run_dir_figures(dir: &Path) -> anyhow::Result<()> {
    let _ = dir;
    Ok(())
}

/// Figures of an evaluation.
pub fn eval_figures(dir: &Path, runs: &[RunEval]) -> anyhow::Result<()> {
    let _ = (dir, runs);
    Ok(())
}
