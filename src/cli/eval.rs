//! `colop eval`: roll a model out against runs; errors, moments, figures.

use super::Context;
use crate::eval::{evaluate_run, model_path, Rollable, RunEval};
use crate::operator::saved::read_model;
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
    /// First snapshot (each run's own numbering round(t/dt)).
    #[arg(long, default_value_t = 5)]
    pub i_start: usize,
    /// Conditioner values for conditioned models, e.g. `ppc=32,dx=0.5` (overrides the runs').
    #[arg(long, value_parser = parse_params)]
    pub params: Option<Vec<(String, f64)>>,
}

/// Parse `key=value,key=value`.
pub fn parse_params(s: &str) -> Result<Vec<(String, f64)>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| format!("`{p}` is not key=value"))?;
            let v: f64 = v.trim().parse().map_err(|_| format!("`{v}` is not a number (in `{p}`)"))?;
            if !v.is_finite() {
                return Err(format!("`{p}`: value must be finite"));
            }
            Ok((k.trim().to_string(), v))
        })
        .collect()
}

/// Evaluate a model file on runs.
pub fn evaluate(model: &std::path::Path, data: &[PathBuf], i_start: usize, params: Vec<(String, f64)>) -> anyhow::Result<Vec<RunEval>> {
    let path = model_path(model);
    let saved = read_model(&path)?;
    let op = Rollable::new(&saved, params).with_context(|| path.display().to_string())?;
    data.iter().map(|d| evaluate_run(&op, d, i_start, 3)).collect()
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<()> {
    if ctx.comm.rank() != 0 {
        return Ok(());
    }
    let runs = evaluate(&args.model, &args.data, args.i_start, args.params.unwrap_or_default())?;
    let json = serde_json::to_string_pretty(&serde_json::json!({ "model": model_path(&args.model).display().to_string(), "runs": runs }))?;
    match &args.out {
        Some(p) => crate::io::write_bytes_atomic(p, json.as_bytes()).with_context(|| p.display().to_string())?,
        None => println!("{json}"),
    }
    for r in &runs {
        eprintln!("{}: mean l1_norm {:.4e}, final l1_norm {:.4e}, {} steps", r.file, r.mean_l1_norm, r.final_l1_norm, r.steps);
    }
    if let Some(dir) = &args.plots {
        let grid = read_model(&model_path(&args.model))?.grid;
        crate::cli::plot::eval_figures(dir, &grid, &runs)?;
        eprintln!("figures: {}", dir.display());
    }
    Ok(())
}
