//! The figure sets of colop's commands: every figure of a model or training run directory
//! (`colop plot`, and `colop train` at the end), and of an evaluation (`colop eval --plots`).
//! Radial profiles overlay the known truth of synthetic runs (their `/truth`, see
//! [`crate::synth`]) and are also written as `profiles.json` beside `profiles.png`.

use super::figures::{self, GyroMaps, Profile, TRUTH_LABEL};
use crate::eval::{model_path, Rollable, RunEval};
use crate::model_file::{read_model, SavedModel};
use crate::operator::fp;
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// Profiles exported by radial models: (v, A_par, D_par, D_perp), taking the first node of a
/// leading node axis of time-dependent models.
pub fn profile_of(m: &SavedModel, label: &str) -> Option<Profile> {
    let get = |n: &str| m.exports.iter().find(|e| e.0 == n).map(|e| &e.1);
    let v = first_node(m, get("v_radial")?);
    let take = |a: &ndarray::ArrayD<f64>| -> Vec<f64> { a.iter().copied().take(v.len()).collect() };
    Some((label.to_string(), v.clone(), take(get("A_par")?), take(get("D_par")?), take(get("D_perp")?)))
}

/// The values of an export of the first time node: exports of time-dependent models (with
/// `t_nodes`) are stacked along a leading node axis.
fn first_node(m: &SavedModel, a: &ndarray::ArrayD<f64>) -> Vec<f64> {
    let nodes = m.exports.iter().find(|e| e.0 == "t_nodes").map_or(1, |t| t.1.len().max(1));
    let n = if nodes > 1 && a.ndim() > 1 && a.shape()[0] == nodes { a.len() / nodes } else { a.len() };
    a.iter().copied().take(n).collect()
}

/// Coefficient maps exported by gyrotropic models (`v_par_nodes`, `v_perp_nodes`, `axis` and
/// `A_b`, `A_e`, `D_be`, `D_bb`, `D_ee`, `D_tt` on the nodes), taking the first node of a leading
/// node axis of time-dependent models.
pub fn gyro_of(m: &SavedModel) -> Option<GyroMaps> {
    let get = |n: &str| m.exports.iter().find(|e| e.0 == n).map(|e| &e.1);
    let (v_par, v_perp) = (first_node(m, get("v_par_nodes")?), first_node(m, get("v_perp_nodes")?));
    let axis: Vec<f64> = first_node(m, get("axis")?);
    let mut maps = Vec::new();
    for name in ["A_b", "A_e", "D_be", "D_bb", "D_ee", "D_tt"] {
        let values: Vec<f64> = get(name)?.iter().copied().take(v_par.len() * v_perp.len()).collect();
        maps.push((name.to_string(), ndarray::Array2::from_shape_vec((v_par.len(), v_perp.len()), values).ok()?));
    }
    Some(GyroMaps { v_par, v_perp, axis: axis.try_into().ok()?, maps })
}

/// Most truths drawn in one figure (runs of one campaign often share theirs).
const MAX_TRUTHS: usize = 4;

/// Radial truth profiles of the runs `files` that have one, labelled `truth (<file name>)`;
/// identical profiles are drawn once. Unreadable truths are skipped with a warning: they only
/// decorate a figure.
pub fn truth_profiles(files: &[PathBuf]) -> Vec<Profile> {
    let mut out: Vec<Profile> = Vec::new();
    for path in files {
        if out.len() == MAX_TRUTHS {
            break;
        }
        match crate::synth::read_truth(path) {
            Ok(Some(truth)) => {
                if let Some((v, a, dp, dq)) = truth.profiles {
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let label = format!("{TRUTH_LABEL} ({name})");
                    if !out.iter().any(|p| p.1 == v && p.2 == a && p.3 == dp && p.4 == dq) {
                        out.push((label, v, a, dp, dq));
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("no truth overlay: {e:#}"),
        }
    }
    out
}

/// The runs a training run directory learned from (training, validation, tracks), from its
/// `config.yaml`; empty for a model file or an unreadable config.
fn training_runs(target: &Path) -> Vec<PathBuf> {
    let cfg_path = target.join("config.yaml");
    if !target.is_dir() || !cfg_path.is_file() {
        return Vec::new();
    }
    match crate::config::TrainConfig::load(&cfg_path) {
        Ok(cfg) => cfg.train_files().into_iter().chain(cfg.valid_files()).chain(cfg.track_files()).collect(),
        Err(e) => {
            tracing::warn!("no truth overlay: {e}");
            Vec::new()
        }
    }
}

/// Draw `profiles.png` (and write `profiles.json`, the same curves as numbers) in `dir`.
pub fn profiles_figure(dir: &Path, title: &str, profiles: &[Profile]) -> anyhow::Result<PathBuf> {
    let png = dir.join("profiles.png");
    figures::radial_profiles(&png, title, profiles)?;
    let curves: Vec<serde_json::Value> = profiles
        .iter()
        .map(|(label, v, a, dp, dq)| serde_json::json!({ "label": label, "v": v, "A_par": a, "D_par": dp, "D_perp": dq }))
        .collect();
    let json = serde_json::to_string_pretty(&serde_json::json!({ "title": title, "curves": curves }))?;
    let path = dir.join("profiles.json");
    crate::io::write_bytes_atomic(&path, json.as_bytes()).with_context(|| path.display().to_string())?;
    Ok(png)
}

/// Draw every figure of a model (and its run directory's metrics) into `out`; returns the files
/// written.
pub fn model_figures(target: &Path, out: &Path, params: Vec<(String, f64)>, times: Option<Vec<f64>>) -> anyhow::Result<Vec<PathBuf>> {
    let mpath = model_path(target);
    let saved = read_model(&mpath)?;
    let op = Rollable::new(&saved, params.clone())?;
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    let mut written = Vec::new();
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
    let kind = saved.spec.kind.name();
    for t in &times {
        let fields = op.fields(&cond, *t);
        let at = if times.len() > 1 { format!(" at t = {t:.0}/ω_p") } else { String::new() };
        let suffix = if times.len() > 1 { format!("_t{t:.0}") } else { String::new() };
        if saved.grid.dim() == 3 {
            // Drag and diffusion apart: 3 + 6 fields, each in three central slices.
            let dim = saved.grid.dim();
            for (group, what, which) in [("A", "drag A", (0..dim).collect::<Vec<_>>()), ("D", "diffusion D", (dim..fp::n_fields(dim)).collect())] {
                let p = out.join(format!("operator_{group}{suffix}.png"));
                let title = format!("{kind}{at}{label_params}: {what}, central slices");
                figures::operator_slices(&p, &title, &saved.grid, &fields, &which)?;
                written.push(p);
            }
        } else {
            let p = out.join(format!("operator{suffix}.png"));
            figures::operator_maps(&p, &format!("{kind}{at}{label_params}"), &saved.grid, &fields)?;
            written.push(p);
        }
    }
    if let Some(g) = gyro_of(&saved) {
        let p = out.join("gyrotropic.png");
        let b = g.axis.map(|x| super::fmt_tick(&x)).join(", ");
        let at = if saved.spec.kind.is_time_dependent() { " at t = 0" } else { "" };
        figures::gyrotropic_maps(&p, &format!("{kind}{at}{label_params}: coefficients on the (v_∥, v_⊥) nodes about b = ({b})"), &g)?;
        written.push(p);
    }
    let mut profiles: Vec<Profile> = profile_of(&saved, saved.spec.kind.name()).into_iter().collect();
    let truths = truth_profiles(&training_runs(target));
    if !profiles.is_empty() {
        let title = if truths.is_empty() { "radial profiles".to_string() } else { "radial profiles: learned vs the synthetic truth of the training data".to_string() };
        profiles.extend(truths);
        written.push(profiles_figure(out, &title, &profiles)?);
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
    let written = model_figures(dir, &dir.join("plots"), Vec::new(), None)?;
    tracing::info!("{} figures in {}", written.len(), dir.join("plots").display());
    Ok(())
}

/// Figures of an evaluation of `model` into `dir`: rollout frames and moments per run, l1_norm of
/// all runs, and the model's radial profiles against the runs' synthetic truths where there are
/// any. Returns the files written.
pub fn eval_figures(dir: &Path, model: &SavedModel, runs: &[RunEval]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let stem = |r: &RunEval| Path::new(&r.file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut written = Vec::new();
    for r in runs {
        let s = stem(r);
        if !r.frames.is_empty() {
            let p = dir.join(format!("rollout_{s}.png"));
            let three = model.grid.dim() == 3;
            let title = if three { format!("rollout of {s}: marginals of f") } else { format!("rollout of {s}") };
            figures::rollout_frames(&p, &title, &model.grid, r, figures::View::Marginals)?;
            written.push(p);
            if three {
                let p = dir.join(format!("rollout_slices_{s}.png"));
                figures::rollout_frames(&p, &format!("rollout of {s}: central slices of f"), &model.grid, r, figures::View::Slices)?;
                written.push(p);
            }
        }
        let p = dir.join(format!("moments_{s}.png"));
        figures::moments_vs_time(&p, &format!("moments of {s}"), r)?;
        written.push(p);
    }
    let labelled: Vec<(String, &RunEval)> = runs.iter().map(|r| (stem(r), r)).collect();
    let p = dir.join("l1_norm.png");
    figures::l1_norm_vs_time(&p, &labelled)?;
    written.push(p);
    let files: Vec<PathBuf> = runs.iter().map(|r| PathBuf::from(&r.file)).collect();
    let mut profiles: Vec<Profile> = profile_of(model, model.spec.kind.name()).into_iter().collect();
    let truths = truth_profiles(&files);
    if !truths.is_empty() {
        let title = if profiles.is_empty() { "synthetic truth of the runs" } else { "radial profiles: model vs the runs' synthetic truth" };
        profiles.extend(truths);
        written.push(profiles_figure(dir, title, &profiles)?);
    }
    Ok(written)
}
