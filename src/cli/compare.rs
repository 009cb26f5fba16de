//! `colop compare`: a learned operator, particle-track estimates and kinetic theory side by side —
//! radial profiles, rollout errors and moments on the same runs, and the data each needed.

use super::Context;
use crate::eval::compare::{theory_agreement, theory_curve, Agreement, COEFFICIENTS};
use crate::eval::model::evaluate;
use crate::eval::{model_path, RunEval};
use crate::model_file::read_model;
use crate::plot::figures;
use crate::plot::sets::profile_of;
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
    /// Speed range (v_th) over which the radial profiles are judged against the theory.
    #[arg(long, num_args = 2, value_names = ["V_MIN", "V_MAX"], default_values_t = [0.5, 3.0])]
    pub v_window: Vec<f64>,
}

/// Bytes of the histograms (`/f`, all snapshots) and tracks of the runs a training run directory used, from
/// its `config.yaml`; `None` for a bare model file.
fn learned_histogram_bytes(learned: &Path) -> anyhow::Result<Option<u64>> {
    let cfg_path = learned.join("config.yaml");
    if !learned.is_dir() || !cfg_path.is_file() {
        return Ok(None);
    }
    let cfg = crate::config::TrainConfig::load(&cfg_path)?;
    let mut bytes = 0u64;
    for path in cfg.train_files().iter().chain(&cfg.valid_files()) {
        let meta = crate::data::RunFile::open(path)?.meta;
        bytes += (meta.t.len() * meta.grid.n_cells() * std::mem::size_of::<f64>()) as u64;
    }
    // Track sources: their `/tracks`.
    for path in cfg.track_files() {
        let n = hdf5::File::open(&path).and_then(|f| f.dataset("tracks")).map(|d| d.size()).with_context(|| format!("{}: /tracks", path.display()))?;
        bytes += (n * std::mem::size_of::<f64>()) as u64;
    }
    Ok(Some(bytes))
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
    let window = [args.v_window[0], args.v_window[1]];
    anyhow::ensure!(window[0] < window[1], "--v-window: V_MIN must be below V_MAX");
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
    let theory = theory_curve(&args.theory, profiles.iter().find(|p| p.0 == "theory"))?;
    let agreements = match &theory {
        Some(t) => theory_agreement(&profiles, t, window),
        None => Vec::new(),
    };
    // The learned model's data: every histogram of its training and validation runs when the
    // learned operator is a run directory, else the histograms of the tracked run.
    let histogram_bytes = match learned_histogram_bytes(&args.learned)? {
        Some(b) => b,
        None => summary["histogram_bytes"].as_u64().unwrap_or(0),
    };
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
    writeln!(md, "\nData the learned model trained on (histograms, tracks): {histogram_bytes} bytes; particle tracks the estimator read: {track_bytes} bytes; theory: none.")?;
    let mut agreement_json = Vec::new();
    if !agreements.is_empty() {
        writeln!(md, "\n## Radial profiles against the theory, {} ≤ |v| ≤ {} v_th\n", window[0], window[1])?;
        writeln!(md, "Relative L2 deviation over each operator's nodes in the window (largest |value/theory − 1| in brackets).\n")?;
        writeln!(md, "| operator | A_par | D_par | D_perp |")?;
        writeln!(md, "|---|---|---|---|")?;
        for (label, row) in &agreements {
            let cell = |a: &Agreement| format!("{:.1}% ({:.0}%)", 100.0 * a.rel_l2, 100.0 * a.max_rel);
            writeln!(md, "| {label} | {} | {} | {} |", cell(&row[0]), cell(&row[1]), cell(&row[2]))?;
            let entry: serde_json::Map<String, serde_json::Value> =
                COEFFICIENTS.iter().zip(row).map(|(k, a)| (k.to_string(), serde_json::to_value(a).expect("plain numbers"))).collect();
            agreement_json.push(serde_json::json!({ "operator": label, "coefficients": entry }));
        }
    }
    let json = serde_json::json!({
        "rows": rows, "histogram_bytes": histogram_bytes, "track_bytes": track_bytes,
        "theory_agreement": { "v_window": window, "operators": agreement_json },
    });
    crate::io::write_bytes_atomic(&args.out.join("compare.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    crate::io::write_bytes_atomic(&args.out.join("compare.md"), md.as_bytes())?;
    super::print_out(md.trim_end())?;
    Ok(())
}
