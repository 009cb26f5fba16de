//! colop's own figures, composed from the generic building blocks: operator maps, radial
//! profiles, loss curves, rollout frames, errors and moments over time.

use super::{grid_of_lines, heatmaps, lines, Layout, LinePlot, Panel, PlotError, Scale, Series};
use crate::eval::RunEval;
use crate::grid::VelocityGrid;
use crate::operator::{fp, Fields};
use ndarray::{ArrayView2, Axis};
use std::path::Path;

/// Maps of the five Fokker–Planck fields (diverging colour scale), or of every kernel plane.
pub fn operator_maps(path: &Path, title: &str, grid: &VelocityGrid, fields: &Fields) -> Result<(), PlotError> {
    let n = fields.shape()[0];
    let views: Vec<ArrayView2<f64>> = (0..n).map(|k| fields.index_axis(Axis(0), k)).collect();
    let panels: Vec<Panel> = if n == fp::N_FIELDS {
        let units = ["v_th·ω_p", "v_th·ω_p", "v_th²·ω_p", "v_th²·ω_p", "v_th²·ω_p"];
        (0..n).map(|k| Panel::new(fp::NAMES[k], views[k].view(), grid, Scale::Diverging).units(units[k])).collect()
    } else {
        let k = ((n / 2) as f64).sqrt().round() as usize;
        let r = k as i64 / 2;
        (0..n)
            .map(|p| {
                let axis = if p < k * k { "x" } else { "y" };
                let q = p % (k * k);
                let (l, m) = ((q / k) as i64 - r, (q % k) as i64 - r);
                Panel::new(format!("K_{axis}({l},{m})"), views[p].view(), grid, Scale::Diverging).units("v_th·ω_p")
            })
            .collect()
    };
    let cols = if n == fp::N_FIELDS { 3 } else { ((n / 2) as f64).sqrt().round() as usize };
    heatmaps(path, title, &panels, Layout::columns(cols.max(1)))
}

/// Radial profiles A_∥, D_∥, D_⊥ of several operators (label, v, A_par, D_par, D_perp).
pub type Profile = (String, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// Label prefix of a known (synthetic) truth: such profiles are drawn as black dashed lines over
/// the others.
pub const TRUTH_LABEL: &str = "truth";

pub fn radial_profiles(path: &Path, title: &str, profiles: &[Profile]) -> Result<(), PlotError> {
    let (truths, others): (Vec<&Profile>, Vec<&Profile>) = profiles.iter().partition(|p| p.0.starts_with(TRUTH_LABEL));
    let series = |pick: fn(&Profile) -> &Vec<f64>| -> Vec<Series> {
        let mut s: Vec<Series> = others.iter().enumerate().map(|(i, p)| {
            let s = Series::new(p.0.clone(), p.1.clone(), pick(p).clone());
            if i == 0 { s.markers() } else if i % 2 == 1 { s.dashed() } else { s }
        }).collect();
        let greys = [(0, 0, 0), (110, 110, 110), (170, 170, 170)];
        s.extend(truths.iter().enumerate().map(|(i, p)| Series::new(p.0.clone(), p.1.clone(), pick(p).clone()).dashed().color(greys[i % greys.len()])));
        s
    };
    let (a, dp, dq) = (series(|p| &p.2), series(|p| &p.3), series(|p| &p.4));
    let plots = [
        LinePlot { title: "drag A_∥".into(), x_label: "|v| (v_th)".into(), y_label: "A_∥ (v_th·ω_p)".into(), series: &a, log_y: false },
        LinePlot { title: "diffusion D_∥".into(), x_label: "|v| (v_th)".into(), y_label: "D_∥ (v_th²·ω_p)".into(), series: &dp, log_y: false },
        LinePlot { title: "diffusion D_⊥".into(), x_label: "|v| (v_th)".into(), y_label: "D_⊥ (v_th²·ω_p)".into(), series: &dq, log_y: false },
    ];
    grid_of_lines(path, title, &plots, 3, (520, 420))
}

/// Training and validation loss per epoch, one colour per stage, log scale.
pub fn loss_curves(path: &Path, metrics: &[serde_json::Value]) -> Result<(), PlotError> {
    let mut series = Vec::new();
    let stages: Vec<u64> = {
        let mut s: Vec<u64> = metrics.iter().filter_map(|m| m["stage"].as_u64()).collect();
        s.dedup();
        s
    };
    let mut x0 = 0.0;
    for st in stages {
        let rows: Vec<&serde_json::Value> = metrics.iter().filter(|m| m["stage"].as_u64() == Some(st)).collect();
        let unroll = rows.first().and_then(|m| m["unroll"].as_str()).unwrap_or("?").to_string();
        let x: Vec<f64> = (0..rows.len()).map(|i| x0 + i as f64 + 1.0).collect();
        let train: Vec<f64> = rows.iter().map(|m| m["train_loss"].as_f64().unwrap_or(f64::NAN)).collect();
        let valid: Vec<f64> = rows.iter().map(|m| m["valid_loss"].as_f64().unwrap_or(f64::NAN)).collect();
        series.push(Series::new(format!("train, stage {st} (unroll {unroll})"), x.clone(), train));
        if valid.iter().any(|v| v.is_finite()) {
            series.push(Series::new(format!("valid, stage {st}"), x, valid).dashed());
        }
        x0 += rows.len() as f64;
    }
    lines(path, "loss per epoch", "epoch", "loss", &series, true)
}

/// Observed, predicted and their difference at a few times of one run.
pub fn rollout_frames(path: &Path, title: &str, grid: &VelocityGrid, run: &RunEval) -> Result<(), PlotError> {
    let shape = (grid.nx, grid.ny);
    let mut owned = Vec::new();
    for (t, pred, obs) in &run.frames {
        let p = ndarray::Array2::from_shape_vec(shape, pred.clone()).map_err(|e| PlotError::data(path, e.to_string()))?;
        let o = ndarray::Array2::from_shape_vec(shape, obs.clone()).map_err(|e| PlotError::data(path, e.to_string()))?;
        let d = &p - &o;
        owned.push((*t, o, p, d));
    }
    let mut panels = Vec::new();
    for (t, o, p, d) in &owned {
        let hi = o.iter().chain(p.iter()).copied().fold(0.0, f64::max);
        panels.push(Panel::new(format!("observed, t = {t:.0}/ω_p"), o.view(), grid, Scale::Sequential).range(0.0, hi.max(f64::MIN_POSITIVE)));
        panels.push(Panel::new(format!("predicted, t = {t:.0}/ω_p"), p.view(), grid, Scale::Sequential).range(0.0, hi.max(f64::MIN_POSITIVE)));
        panels.push(Panel::new(format!("predicted − observed, t = {t:.0}/ω_p"), d.view(), grid, Scale::Diverging));
    }
    heatmaps(path, title, &panels, Layout::columns(3))
}

/// l1_norm against time for several runs.
pub fn l1_norm_vs_time(path: &Path, runs: &[(String, &RunEval)]) -> Result<(), PlotError> {
    let series: Vec<Series> = runs.iter().map(|(label, r)| Series::new(label.clone(), r.t.clone(), r.l1_norm.clone())).collect();
    lines(path, "rollout error", "t (1/ω_p)", "Σ|pred − obs| / Σ obs", &series, true)
}

/// Mean velocities and variances, predicted (dashed) against observed.
pub fn moments_vs_time(path: &Path, title: &str, run: &RunEval) -> Result<(), PlotError> {
    let t = &run.t;
    let pick = |f: fn(&crate::eval::Moments) -> f64| -> (Vec<f64>, Vec<f64>) {
        (run.moments_obs.iter().map(f).collect(), run.moments_pred.iter().map(f).collect())
    };
    let (mxo, mxp) = pick(|m| m.mean_vx);
    let (myo, myp) = pick(|m| m.mean_vy);
    let (vxo, vxp) = pick(|m| m.var_vx);
    let (vyo, vyp) = pick(|m| m.var_vy);
    let means = vec![
        Series::new("⟨v_x⟩ observed", t.clone(), mxo),
        Series::new("⟨v_x⟩ predicted", t.clone(), mxp).dashed(),
        Series::new("⟨v_y⟩ observed", t.clone(), myo),
        Series::new("⟨v_y⟩ predicted", t.clone(), myp).dashed(),
    ];
    let vars = vec![
        Series::new("var v_x observed", t.clone(), vxo),
        Series::new("var v_x predicted", t.clone(), vxp).dashed(),
        Series::new("var v_y observed", t.clone(), vyo),
        Series::new("var v_y predicted", t.clone(), vyp).dashed(),
    ];
    let plots = [
        LinePlot { title: "mean velocity".into(), x_label: "t (1/ω_p)".into(), y_label: "v_th".into(), series: &means, log_y: false },
        LinePlot { title: "variance".into(), x_label: "t (1/ω_p)".into(), y_label: "v_th²".into(), series: &vars, log_y: false },
    ];
    grid_of_lines(path, title, &plots, 2, (640, 460))
}

/// Scaling study from `scaling_summary.csv` (columns `mode, ranks, …, comm_fraction, imbalance,
/// efficiency`, optionally `allreduce_fraction`): efficiency, the share of an epoch spent in
/// collectives (and in the collectives alone, without waiting) and imbalance against the rank count.
pub fn scaling(path: &Path, csv: &str) -> Result<(), PlotError> {
    let mut header: Vec<&str> = Vec::new();
    let mut rows: Vec<Vec<&str>> = Vec::new();
    for (i, line) in csv.lines().enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if i == 0 {
            header = cells;
        } else if !line.trim().is_empty() {
            rows.push(cells);
        }
    }
    let col = |name: &str| header.iter().position(|h| *h == name).ok_or_else(|| PlotError::data(path, format!("no column `{name}`")));
    let (mode, ranks, comm, imb, eff) = (col("mode")?, col("ranks")?, col("comm_fraction")?, col("imbalance")?, col("efficiency")?);
    let num = |r: &Vec<&str>, c: usize| r.get(c).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let mut modes: Vec<&str> = rows.iter().map(|r| r[mode]).collect();
    modes.sort_unstable();
    modes.dedup();
    let series = |c: usize| -> Vec<Series> {
        modes
            .iter()
            .map(|m| {
                let pts: Vec<&Vec<&str>> = rows.iter().filter(|r| r[mode] == *m).collect();
                Series::new(*m, pts.iter().map(|r| num(r, ranks)).collect(), pts.iter().map(|r| num(r, c)).collect()).markers()
            })
            .collect()
    };
    let (e, mut cf, ib) = (series(eff), series(comm), series(imb));
    if let Ok(pure) = col("allreduce_fraction") {
        for (mut s, m) in series(pure).into_iter().zip(&modes) {
            s.label = format!("{m}: collectives alone");
            s.stroke = super::lines::Stroke::Dashed;
            cf.push(s);
        }
    }
    let plots = [
        LinePlot { title: "parallel efficiency".into(), x_label: "ranks".into(), y_label: "efficiency".into(), series: &e, log_y: false },
        LinePlot { title: "time in collectives, share of an epoch".into(), x_label: "ranks".into(), y_label: "fraction".into(), series: &cf, log_y: false },
        LinePlot { title: "imbalance".into(), x_label: "ranks".into(), y_label: "max/min compute".into(), series: &ib, log_y: false },
    ];
    grid_of_lines(path, "scaling", &plots, 3, (520, 420))
}

/// Header of the CSV of `scripts/pic-theory-study.sh` that [`pic_theory_study`] draws.
pub const PIC_THEORY_HEADER: &str = "dx_over_lambda_d,shape_order,quantity,measured_over_continuum,pic_over_continuum,measured_over_pic";

/// PIC-aware kinetic theory study: per coefficient (A_∥, D_∥, D_⊥), the track-measured and the
/// PIC-aware theory's values over the continuum theory against Δx/λ_D, one pair of curves per
/// shape order (measured: markers; theory: dashed).
pub fn pic_theory_study(path: &Path, csv: &str) -> Result<(), PlotError> {
    let mut rows: Vec<(f64, i64, String, f64, f64)> = Vec::new();
    for (i, line) in csv.lines().enumerate().skip(1) {
        let c: Vec<&str> = line.split(',').map(str::trim).collect();
        if line.trim().is_empty() {
            continue;
        }
        let bad = || PlotError::data(path, format!("line {}: expected {PIC_THEORY_HEADER}", i + 1));
        if c.len() != 6 {
            return Err(bad());
        }
        let num = |s: &str| s.parse::<f64>().map_err(|_| bad());
        rows.push((num(c[0])?, num(c[1])? as i64, c[2].to_string(), num(c[3])?, num(c[4])?));
    }
    let mut orders: Vec<i64> = rows.iter().map(|r| r.1).collect();
    orders.sort_unstable();
    orders.dedup();
    let colours = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167)];
    let series = |q: &str| -> Vec<Series> {
        let mut out = Vec::new();
        for (n, &o) in orders.iter().enumerate() {
            let mut pts: Vec<&(f64, i64, String, f64, f64)> = rows.iter().filter(|r| r.1 == o && r.2 == q).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let name = match o {
                1 => "linear".to_string(),
                2 => "quadratic".to_string(),
                o => format!("order {o}"),
            };
            let x: Vec<f64> = pts.iter().map(|r| r.0).collect();
            let colour = colours[n % colours.len()];
            out.push(Series::new(format!("{name}: measured"), x.clone(), pts.iter().map(|r| r.3).collect()).markers().color(colour));
            out.push(Series::new(format!("{name}: PIC-aware theory"), x, pts.iter().map(|r| r.4).collect()).dashed().color(colour));
        }
        out.push(Series::new("continuum theory", vec![rows.iter().map(|r| r.0).fold(f64::INFINITY, f64::min), rows.iter().map(|r| r.0).fold(0.0, f64::max)], vec![1.0, 1.0]).color((110, 110, 110)));
        out
    };
    let (a, dp, dq) = (series("A_par"), series("D_par"), series("D_perp"));
    let plot = |title: &str, s| LinePlot { title: title.into(), x_label: "Δx/λ_D".into(), y_label: "over the continuum theory".into(), series: s, log_y: false };
    let plots = [plot("drag A_∥", &a), plot("diffusion D_∥", &dp), plot("diffusion D_⊥", &dq)];
    grid_of_lines(path, "PIC plasma: measured and PIC-aware theory over the continuum theory", &plots, 3, (520, 420))
}
