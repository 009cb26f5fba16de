//! `colop plot`: draw the figures of a run directory or a model file.

use super::Context;
use crate::eval::{model_path, RunEval, Rollable};
use crate::operator::saved::{read_model, SavedModel};
use crate::plot::figures;
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// Options of `colop plot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run directory (model.h5 + metrics.jsonl), a model file, or a `scaling_summary.csv` of
    /// `scripts/scaling.sh`.
    pub target: PathBuf,
    /// Output directory (default: `<run dir>/plots`, or beside the model file); for a scaling
    /// CSV, the PNG file (default: the CSV path with `.png`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Conditioner values for conditioned models, e.g. `ppc=32` (default: mid-range).
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
    let out = args.out.clone().unwrap_or_else(|| {
        if args.target.is_dir() {
            args.target.join("plots")
        } else {
            args.target.parent().map(|p| p.join("plots")).unwrap_or_else(|| PathBuf::from("plots"))
        }
    });
    if args.target.extension().is_some_and(|e| e == "csv") {
        let text = std::fs::read_to_string(&args.target).with_context(|| args.target.display().to_string())?;
        let png = args.out.clone().unwrap_or_else(|| args.target.with_extension("png"));
        figures::scaling(&png, &text)?;
        println!("{}", png.display());
        return Ok(());
    }
    let written = draw(&args.target, &out, args.params.unwrap_or_default(), args.times)?;
    for p in written {
        println!("{}", p.display());
    }
    Ok(())
}

/// Profiles exported by radial models: (v, A_par, D_par, D_perp), flattening a leading node axis
/// of time-dependent models to the first node.
pub fn profile_of(m: &SavedModel, label: &str) -> Option<figures::Profile> {
    let get = |n: &str| m.exports.iter().find(|e| e.0 == n).map(|e| e.1.clone());
    let v: Vec<f64> = get("v_radial")?.iter().copied().collect();
    let take = |a: ndarray::ArrayD<f64>| -> Vec<f64> { a.iter().copied().take(v.len()).collect() };
    Some((label.to_string(), v.clone(), take(get("A_par")?), take(get("D_par")?), take(get("D_perp")?)))
}

/// Draw every figure of a model (and its run directory's metrics); returns the files written.
pub fn draw(target: &Path, out: &Path, params: Vec<(String, f64)>, times: Option<Vec<f64>>) -> anyhow::Result<Vec<PathBuf>> {
    let mpath = model_path(target);
    let saved = read_model(&mpath)?;
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    let mut written = Vec::new();
    let op = Rollable::new(&saved, params.clone())?;
    let cond = if saved.cond_ranges.is_empty() {
        Vec::new()
    } else {
        let given: std::collections::BTreeMap<String, f64> = saved.cond_ranges.iter().map(|(n, lo, hi)| (n.clone(), 0.5 * (lo + hi))).collect();
        op.cond_for(&given)?
    };
    let label_params: String = params.iter().map(|(k, v)| format!(" {k}={v}")).collect();
    let times = match times {
        Some(t) => t,
        None if saved.spec.kind.is_time_dependent() => vec![0.0, 0.5 * saved.t_span, saved.t_span],
        None => vec![0.0],
    };
    for t in &times {
        let fields = op.fields(&cond, *t);
        let name = if times.len() > 1 { format!("operator_t{t:.0}.png") } else { "operator.png".into() };
        let p = out.join(name);
        let title = if times.len() > 1 { format!("{} at t = {t:.0}/ω_p{label_params}", saved.spec.kind.name()) } else { format!("{}{label_params}", saved.spec.kind.name()) };
        figures::operator_maps(&p, &title, &saved.grid, &fields)?;
        written.push(p);
    }
    if let Some(prof) = profile_of(&saved, saved.spec.kind.name()) {
        let p = out.join("profiles.png");
        figures::radial_profiles(&p, "radial profiles", &[prof])?;
        written.push(p);
    }
    let metrics = target.join("metrics.jsonl");
    if target.is_dir() && metrics.is_file() {
        let text = std::fs::read_to_string(&metrics).with_context(|| metrics.display().to_string())?;
        let rows: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        if !rows.is_empty() {
            let p = out.join("loss.png");
            figures::loss_curves(&p, &rows)?;
            written.push(p);
        }
    }
    Ok(written)
}

/// Figures of a finished run directory, into `<dir>/plots`.
pub fn run_dir_figures(dir: &Path) -> anyhow::Result<()> {
    let written = draw(dir, &dir.join("plots"), Vec::new(), None)?;
    tracing::info!("{} figures in {}", written.len(), dir.join("plots").display());
    Ok(())
}

/// Figures of an evaluation: rollout frames and moments per run, l1_norm of all runs.
pub fn eval_figures(dir: &Path, grid: &crate::grid::VelocityGrid, runs: &[RunEval]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let stem = |r: &RunEval| Path::new(&r.file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    for r in runs {
        let s = stem(r);
        if !r.frames.is_empty() {
            figures::rollout_frames(&dir.join(format!("rollout_{s}.png")), &format!("rollout of {s}"), grid, r)?;
        }
        figures::moments_vs_time(&dir.join(format!("moments_{s}.png")), &format!("moments of {s}"), r)?;
    }
    let labelled: Vec<(String, &RunEval)> = runs.iter().map(|r| (stem(r), r)).collect();
    figures::l1_norm_vs_time(&dir.join("l1_norm.png"), &labelled)?;
    Ok(())
}
