//! colop's own figures, composed from the generic building blocks: operator maps (2D) and
//! central slices (3D), gyrotropic coefficient maps, radial profiles, loss curves, rollout frames
//! (2D maps, or 3D marginals and central slices), errors and moments over time.

use super::planes;
use super::{grid_of_lines, heatmaps, lines, Layout, LinePlot, Panel, PlotError, Scale, Series};
use crate::eval::RunEval;
use crate::grid::VelocityGrid;
use crate::operator::{fp, Fields};
use ndarray::{Array2, ArrayView2, Axis};
use std::path::Path;

/// Unit of Fokker–Planck field `k` in `dim` dimensions: drag or diffusion.
fn fp_units(dim: usize, k: usize) -> &'static str {
    if k < dim {
        "v_th·ω_p"
    } else {
        "v_th²·ω_p"
    }
}

/// Central slices of the Fokker–Planck fields `which` (indices as in [`fp`]) of a 3D grid: one
/// row per field, one column per plane (v_z = 0, v_y = 0, v_x = 0, or the nearest cell plane,
/// named in each panel's title). Blue–white–red colour scales symmetric about zero, shared by the
/// slices of one field so they compare at a glance.
pub fn operator_slices(path: &Path, title: &str, grid: &VelocityGrid, fields: &Fields, which: &[usize]) -> Result<(), PlotError> {
    let dim = grid.dim();
    let (n, nx, rest) = fields.dim();
    if n != fp::n_fields(dim) || nx * rest != grid.n_cells() {
        return Err(PlotError::data(
            path,
            format!("fields of shape {n}×{nx}×{rest} are not the {} Fokker–Planck fields of the grid {}", fp::n_fields(dim), grid.describe()),
        ));
    }
    let planes = planes::planes(grid);
    let plane_grids: Vec<VelocityGrid> = planes.iter().map(|p| p.grid(grid)).collect();
    // (field, plane, slice)
    let mut maps: Vec<(usize, usize, Array2<f64>)> = Vec::new();
    for &k in which {
        let field = fields.index_axis(Axis(0), k);
        let field = field.as_standard_layout();
        let cells = field.as_slice().expect("standard layout");
        maps.extend(planes.iter().enumerate().map(|(i, p)| (k, i, p.central_slice(grid, cells))));
    }
    let shared = |k: usize| Scale::Diverging.range(maps.iter().filter(|m| m.0 == k).flat_map(|m| m.2.iter().copied()));
    let panels: Vec<Panel> = maps
        .iter()
        .map(|(k, i, m)| {
            let p = &planes[*i];
            let (h, v) = p.axis_names();
            let name = format!("{} at {}", fp::names(dim)[*k], p.slice_label(grid));
            let panel = Panel::new(name, m.view(), &plane_grids[*i], Scale::Diverging).axes(h, v).units(fp_units(dim, *k));
            match shared(*k) {
                Some((lo, hi)) => panel.range(lo, hi),
                None => panel,
            }
        })
        .collect();
    heatmaps(path, title, &panels, Layout::columns(planes.len()))
}

/// The coefficients of a gyrotropic model on its (v_∥, v_⊥) nodes: node coordinates (v_th), the
/// axis b, and named maps `[n_par, n_perp]` in physical units (drag `A_*`, diffusion `D_*`).
#[derive(Clone, Debug)]
pub struct GyroMaps {
    pub v_par: Vec<f64>,
    pub v_perp: Vec<f64>,
    pub axis: [f64; 3],
    pub maps: Vec<(String, Array2<f64>)>,
}

/// Maps of a gyrotropic model's coefficients against v_∥ (horizontal) and v_⊥ (vertical), one
/// cell per node centred on it, blue–white–red colour scales symmetric about zero.
pub fn gyrotropic_maps(path: &Path, title: &str, g: &GyroMaps) -> Result<(), PlotError> {
    let (np, nq) = (g.v_par.len(), g.v_perp.len());
    if np < 2 || nq < 2 || g.maps.iter().any(|m| m.1.dim() != (np, nq)) {
        return Err(PlotError::data(path, format!("gyrotropic maps are not all on the {np}×{nq} nodes (v_∥, v_⊥)")));
    }
    // Node-centred cells: the node spacing is uniform.
    let (hp, hq) = ((g.v_par[np - 1] - g.v_par[0]) / (np - 1) as f64, (g.v_perp[nq - 1] - g.v_perp[0]) / (nq - 1) as f64);
    let nodes = VelocityGrid {
        nx: np,
        ny: nq,
        v_range: [g.v_par[0] - 0.5 * hp, g.v_par[np - 1] + 0.5 * hp, g.v_perp[0] - 0.5 * hq, g.v_perp[nq - 1] + 0.5 * hq],
        units: "v_th".into(),
        z: None,
    };
    let describe = |name: &str| match name {
        "A_b" => "A_b: drag along b",
        "A_e" => "A_e: drag along e_⊥",
        "D_bb" => "D_bb: along b",
        "D_ee" => "D_ee: along e_⊥",
        "D_be" => "D_be: b–e_⊥ cross term",
        "D_tt" => "D_tt: along t = b × e_⊥",
        _ => "",
    };
    let panels: Vec<Panel> = g
        .maps
        .iter()
        .map(|(name, m)| {
            let label = match describe(name) {
                "" => name.clone(),
                d => d.to_string(),
            };
            let units = if name.starts_with('A') { "v_th·ω_p" } else { "v_th²·ω_p" };
            Panel::new(label, m.view(), &nodes, Scale::Diverging).axes("v_∥", "v_⊥").units(units)
        })
        .collect();
    heatmaps(path, title, &panels, Layout::columns(3))
}

/// Maps of the five Fokker–Planck fields of a 2D grid (diverging colour scale), or of every
/// kernel plane; 3D grids have [`operator_slices`].
pub fn operator_maps(path: &Path, title: &str, grid: &VelocityGrid, fields: &Fields) -> Result<(), PlotError> {
    if grid.dim() != 2 {
        return Err(PlotError::data(path, format!("operator maps are of 2D grids, this one is {}", grid.describe())));
    }
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

/// What a rollout figure shows of a 3D distribution: its marginals (f summed over the normal
/// axis of each plane) or its central slices. On a 2D grid both are the distribution itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Marginals,
    Slices,
}

/// Observed, predicted and their difference at a few times of one run: per time one row per plane
/// of the grid (one in 2D; in 3D the marginals ∫f dv_z, ∫f dv_y, ∫f dv_x or the central slices, as
/// `view` says). Observed and predicted share a colour range; the difference is symmetric about 0.
pub fn rollout_frames(path: &Path, title: &str, grid: &VelocityGrid, run: &RunEval, view: View) -> Result<(), PlotError> {
    let planes = planes::planes(grid);
    let plane_grids: Vec<VelocityGrid> = planes.iter().map(|p| p.grid(grid)).collect();
    let three = grid.dim() == 3;
    let mut owned = Vec::new();
    for (t, pred, obs) in &run.frames {
        if pred.len() != grid.n_cells() || obs.len() != grid.n_cells() {
            return Err(PlotError::data(path, format!("a frame of {} cells on the grid {}", pred.len(), grid.describe())));
        }
        for (i, p) in planes.iter().enumerate() {
            let project = |f: &[f64]| match view {
                View::Marginals => p.marginal(grid, f),
                View::Slices => p.central_slice(grid, f),
            };
            let (o, pr) = (project(obs), project(pred));
            let d = &pr - &o;
            let label = match (three, view) {
                (false, _) => String::new(),
                (true, View::Marginals) => format!(" {}", p.marginal_label()),
                (true, View::Slices) => format!(" f at {}", p.slice_label(grid)),
            };
            owned.push((*t, i, label, o, pr, d));
        }
    }
    let mut panels = Vec::new();
    for (t, i, label, o, p, d) in &owned {
        let (g, (h, v)) = (&plane_grids[*i], planes[*i].axis_names());
        let hi = o.iter().chain(p.iter()).copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
        let name = |what: &str| format!("{what}{label}, t = {t:.0}/ω_p");
        panels.push(Panel::new(name("observed"), o.view(), g, Scale::Sequential).axes(h, v).range(0.0, hi));
        panels.push(Panel::new(name("predicted"), p.view(), g, Scale::Sequential).axes(h, v).range(0.0, hi));
        panels.push(Panel::new(name("predicted − observed"), d.view(), g, Scale::Diverging).axes(h, v));
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
    let mut means = vec![
        Series::new("⟨v_x⟩ observed", t.clone(), mxo),
        Series::new("⟨v_x⟩ predicted", t.clone(), mxp).dashed(),
        Series::new("⟨v_y⟩ observed", t.clone(), myo),
        Series::new("⟨v_y⟩ predicted", t.clone(), myp).dashed(),
    ];
    let mut vars = vec![
        Series::new("var v_x observed", t.clone(), vxo),
        Series::new("var v_x predicted", t.clone(), vxp).dashed(),
        Series::new("var v_y observed", t.clone(), vyo),
        Series::new("var v_y predicted", t.clone(), vyp).dashed(),
    ];
    // 3D runs: the v_z moments too.
    if run.moments_obs.iter().chain(&run.moments_pred).all(|m| m.mean_vz.is_some() && m.var_vz.is_some()) && !run.moments_obs.is_empty() {
        let (mzo, mzp) = pick(|m| m.mean_vz.unwrap_or(f64::NAN));
        let (vzo, vzp) = pick(|m| m.var_vz.unwrap_or(f64::NAN));
        means.push(Series::new("⟨v_z⟩ observed", t.clone(), mzo));
        means.push(Series::new("⟨v_z⟩ predicted", t.clone(), mzp).dashed());
        vars.push(Series::new("var v_z observed", t.clone(), vzo));
        vars.push(Series::new("var v_z predicted", t.clone(), vzp).dashed());
    }
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

/// Header of the CSV of `scripts/pic-theory-study.sh` that [`pic_theory_study`] draws (its first
/// six columns; the two optional ones after them are [`PIC_THEORY_LEARNED`]).
pub const PIC_THEORY_HEADER: &str = "dx_over_lambda_d,shape_order,quantity,measured_over_continuum,pic_over_continuum,measured_over_pic";
/// The optional columns of the operator learned from the same tracks.
pub const PIC_THEORY_LEARNED: &str = "learned_over_continuum,learned_over_pic";

/// One row of the study: Δx, order, quantity, measured/continuum, PIC/continuum, learned/continuum.
type StudyRow = (f64, i64, String, f64, f64, Option<f64>);

/// PIC-aware kinetic theory study: per coefficient (A_∥, D_∥, D_⊥), the track-measured and the
/// PIC-aware theory's values over the continuum theory against Δx/λ_D, one pair of curves per
/// shape order (measured: markers; theory: dashed), and the learned operator's where the CSV
/// has it (markers, lighter).
pub fn pic_theory_study(path: &Path, csv: &str) -> Result<(), PlotError> {
    let mut rows: Vec<StudyRow> = Vec::new();
    for (i, line) in csv.lines().enumerate().skip(1) {
        let c: Vec<&str> = line.split(',').map(str::trim).collect();
        if line.trim().is_empty() {
            continue;
        }
        let bad = || PlotError::data(path, format!("line {}: expected {PIC_THEORY_HEADER}[,{PIC_THEORY_LEARNED}]", i + 1));
        if c.len() != 6 && c.len() != 8 {
            return Err(bad());
        }
        let num = |s: &str| s.parse::<f64>().map_err(|_| bad());
        let learned = if c.len() == 8 { Some(num(c[6])?) } else { None };
        rows.push((num(c[0])?, num(c[1])? as i64, c[2].to_string(), num(c[3])?, num(c[4])?, learned));
    }
    let mut orders: Vec<i64> = rows.iter().map(|r| r.1).collect();
    orders.sort_unstable();
    orders.dedup();
    let colours = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167)];
    let lighter = |(r, g, b): (u8, u8, u8)| (r / 2 + 120, g / 2 + 120, b / 2 + 120);
    let series = |q: &str| -> Vec<Series> {
        let mut out = Vec::new();
        for (n, &o) in orders.iter().enumerate() {
            let mut pts: Vec<&StudyRow> = rows.iter().filter(|r| r.1 == o && r.2 == q).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let name = match o {
                1 => "linear".to_string(),
                2 => "quadratic".to_string(),
                o => format!("order {o}"),
            };
            let x: Vec<f64> = pts.iter().map(|r| r.0).collect();
            let colour = colours[n % colours.len()];
            out.push(Series::new(format!("{name}: measured (tracks)"), x.clone(), pts.iter().map(|r| r.3).collect()).markers().color(colour));
            if pts.iter().all(|r| r.5.is_some()) && !pts.is_empty() {
                out.push(Series::new(format!("{name}: learned"), x.clone(), pts.iter().map(|r| r.5.unwrap_or(f64::NAN)).collect()).markers().color(lighter(colour)));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn study_csv(learned: bool) -> String {
        let mut text = PIC_THEORY_HEADER.to_string();
        if learned {
            text += &format!(",{PIC_THEORY_LEARNED}");
        }
        text.push('\n');
        for (dx, order) in [(0.5, 1), (1.0, 1), (0.5, 2), (1.0, 2)] {
            for q in ["A_par", "D_par", "D_perp"] {
                text += &format!("{dx},{order},{q},1.05,1.02,1.03{}\n", if learned { ",1.04,1.02" } else { "" });
            }
        }
        text
    }

    #[test]
    fn the_pic_theory_study_figure_takes_the_learned_columns_when_present() {
        let dir = tempfile::tempdir().unwrap();
        for learned in [false, true] {
            let png = dir.path().join(format!("study-{learned}.png"));
            pic_theory_study(&png, &study_csv(learned)).unwrap();
            assert!(std::fs::metadata(&png).unwrap().len() > 1000);
        }
        // A row with 7 columns is an error naming the line and the expected columns.
        let bad = study_csv(false).replacen("1.03\n", "1.03,9\n", 1);
        let e = pic_theory_study(&dir.path().join("bad.png"), &bad).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains(PIC_THEORY_LEARNED), "{e}");
    }
}
