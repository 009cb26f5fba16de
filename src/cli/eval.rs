//! `colop eval`: roll a model out against runs; errors, moments, figures.

use super::Context;
use crate::eval::model_path;
use anyhow::Context as _;
use std::path::PathBuf;

/// Options of `colop eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run directory (uses its model.h5) or a model file.
    pub model: PathBuf,
    /// Run files to roll out against.
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// Write the metrics as JSON here (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw figures into this directory.
    #[arg(long)]
    pub plots: Option<PathBuf>,
    /// First snapshot (each run's own numbering round(t/dt)); at least one snapshot must follow.
    #[arg(long, default_value_t = 5)]
    pub i_start: usize,
    /// Conditioner values for conditioned models, e.g. `ppc=32,dx=0.5` (overrides the runs').
    #[arg(long, value_parser = super::parse_param, value_delimiter = ',')]
    pub params: Vec<(String, f64)>,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<()> {
    if ctx.comm.rank() != 0 {
        return Ok(());
    }
    let model = crate::eval::model::load(&args.model)?;
    let runs = crate::eval::model::evaluate_saved(&model, &model_path(&args.model), &args.data, args.i_start, args.params)?;
    let json = serde_json::to_string_pretty(&serde_json::json!({ "model": model_path(&args.model).display().to_string(), "runs": runs }))?;
    match &args.out {
        Some(p) => crate::io::write_bytes_atomic(p, json.as_bytes()).with_context(|| p.display().to_string())?,
        // A reader that stops early (`colop eval … | head`) is not an error: the figures are
        // still drawn.
        None => super::print_out(&json)?,
    }
    for r in &runs {
        eprintln!("{}: mean l1_norm {:.4e}, final l1_norm {:.4e}, {} steps", r.file, r.mean_l1_norm, r.final_l1_norm, r.steps);
    }
    if let Some(dir) = &args.plots {
        crate::plot::sets::eval_figures(dir, &model, &runs)?;
        eprintln!("figures: {}", dir.display());
    }
    Ok(())
}
