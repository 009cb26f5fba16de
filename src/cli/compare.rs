//! `colop compare`: a learned operator, particle-track estimates and kinetic theory side by side —
//! radial profiles, rollout errors and moments on the same runs, and the data each needed.

use super::Context;
use crate::cli::eval::evaluate;
use crate::cli::plot::profile_of;
use crate::eval::{model_path, RunEval};
use crate::operator::saved::read_model;
use crate::plot::figures;
use anyhow::Context as _;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Options of `colop compare`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The learned model (a run directory or model.h5).
    pub learned: PathBuf,
    /// Output directory of `colop tracks` (summary.json, tau_*/model.h5).
    pub tracks: PathBuf,
    /// Output directory of `colop theory` (model.h5).
    pub theory: PathBuf,
    /// Run files to roll every operator out on.
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// Output directory: profiles.png, l1_norm_<run>.png, compare.json, compare.md.
    #[arg(long, short)]
    pub out: PathBuf,
    /// First snapshot of the rollouts (each run's own numbering).
    #[arg(long, default_value_t = 5)]
    pub i_start: usize,
}

/// (label, model file) of every operator compared.
fn operators(args: &Args) -> anyhow::Result<(Vec<(String, PathBuf)>, serde_json::Value)> {
    let mut ops = vec![("learned".to_string(), model_path(&args.learned))];
    let summary_path = args.tracks.join("summary.json");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&summary_path).with_context(|| format!("{}: not a `colop tracks` output", summary_path.display()))?,
    )
    .with_context(|| summary_path.display().to_string())?;
    for lag in summary["lags"].as_array().into_iter().flatten() {
        let dir = lag["dir"].as_str().context("summary.json: lag without `dir`")?;
        ops.push((format!("tracks τ={}", lag["tau"]), args.tracks.join(dir).join("model.h5")));
    }
    ops.push(("theory".to_string(), args.theory.join("model.h5")));
    Ok((ops, summary))
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<()> {
    if ctx.comm.rank() != 0 {
        return Ok(());
    }
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let (ops, summary) = operators(&args)?;
    let mut profiles = Vec::new();
    let mut evals: Vec<(String, Vec<RunEval>)> = Vec::new();
    for (label, path) in &ops {
        let saved = read_model(path)?;
        if let Some(p) = profile_of(&saved, label) {
            profiles.push(p);
        }
        evals.push((label.clone(), evaluate(path, &args.data, args.i_start, Vec::new())?));
    }
    if !profiles.is_empty() {
        figures::radial_profiles(&args.out.join("profiles.png"), "learned vs particle tracks vs theory", &profiles)?;
    }
    for (i, data) in args.data.iter().enumerate() {
        let stem = data.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let curves: Vec<(String, &RunEval)> = evals.iter().map(|(l, e)| (l.clone(), &e[i])).collect();
        figures::l1_norm_vs_time(&args.out.join(format!("l1_norm_{stem}.png")), &curves)?;
        for (l, e) in &evals {
            let safe: String = l.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            figures::moments_vs_time(&args.out.join(format!("moments_{stem}_{safe}.png")), &format!("{stem}: {l}"), &e[i])?;
        }
    }
    let histogram_bytes = summary["histogram_bytes"].as_u64().unwrap_or(0);
    let track_bytes = summary["track_bytes"].as_u64().unwrap_or(0);
    let mut md = String::new();
    writeln!(md, "# Operator comparison\n")?;
    writeln!(md, "Rollouts from snapshot {} to the end of each run.\n", args.i_start)?;
    writeln!(md, "| operator | run | mean l1_norm | final l1_norm | mean variance error | data needed (bytes) |")?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    let mut rows = Vec::new();
    for (label, es) in &evals {
        let bytes = if label == "learned" { histogram_bytes } else if label.starts_with("tracks") { track_bytes } else { 0 };
        for e in es {
            let run = Path::new(&e.file).file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            writeln!(md, "| {label} | {run} | {:.4e} | {:.4e} | {:.3e} | {bytes} |", e.mean_l1_norm, e.final_l1_norm, e.mean_moment_var_error)?;
            rows.push(serde_json::json!({
                "operator": label, "file": e.file, "mean_l1_norm": e.mean_l1_norm, "final_l1_norm": e.final_l1_norm,
                "mean_moment_mean_error": e.mean_moment_mean_error, "mean_moment_var_error": e.mean_moment_var_error,
                "data_bytes": bytes,
            }));
        }
    }
    writeln!(md, "\nHistograms the learned model trained on: {histogram_bytes} bytes; particle tracks the estimator read: {track_bytes} bytes; theory: none.")?;
    let json = serde_json::json!({ "rows": rows, "histogram_bytes": histogram_bytes, "track_bytes": track_bytes });
    crate::io::write_bytes_atomic(&args.out.join("compare.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    crate::io::write_bytes_atomic(&args.out.join("compare.md"), md.as_bytes())?;
    print!("{md}");
    Ok(())
}
