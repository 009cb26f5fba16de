//! Theory results on disk: `coefficients.csv` and a `par-perp` `model.h5` on a velocity grid.

use super::{Plasma, RadialPoint};
use crate::grid::VelocityGrid;
use crate::operator::angular::{extrude_planar, to_cartesian, Polar};
use crate::model_file::SavedModel;
use crate::operator::spec::ModelKind;
use crate::operator::{fp, Fields, ModelSpec};
use crate::solver::SolverSpec;
use ndarray::Array1;
use std::path::Path;

/// `coefficients.csv`: `v, A_par, D_par, D_perp` (v in v_th; v_th·ω_p; v_th²·ω_p), written atomically.
pub fn write_csv(path: &Path, points: &[RadialPoint]) -> std::io::Result<()> {
    let mut text = String::from("v,A_par,D_par,D_perp\n");
    for p in points {
        text.push_str(&format!("{:.6},{:.12e},{:.12e},{:.12e}\n", p.v, p.a_par, p.d_par, p.d_perp));
    }
    crate::io::write_bytes_atomic(path, text.as_bytes())
}

/// The columns `v, A_par, D_par, D_perp` of a `coefficients.csv` written by [`write_csv`].
pub fn read_csv(path: &Path) -> anyhow::Result<[Vec<f64>; 4]> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut cols: [Vec<f64>; 4] = Default::default();
    for (i, line) in text.lines().enumerate().skip(1) {
        let vals: Vec<f64> = line
            .split(',')
            .map(|c| c.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: line {}: not four numbers", path.display(), i + 1))?;
        anyhow::ensure!(vals.len() == 4, "{}: line {}: expected v,A_par,D_par,D_perp", path.display(), i + 1);
        for (c, v) in cols.iter_mut().zip(vals) {
            c.push(v);
        }
    }
    Ok(cols)
}

/// Piecewise-linear interpolation of `(xs, ys)` (xs ascending) at `x`, constant beyond the ends.
pub fn interpolate(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    match xs.partition_point(|&p| p <= x) {
        0 => ys[0],
        i if i >= xs.len() => ys[xs.len() - 1],
        i => {
            let t = (x - xs[i - 1]) / (xs[i] - xs[i - 1]);
            ys[i - 1] + t * (ys[i] - ys[i - 1])
        }
    }
}

/// Fields on `grid` from radial profiles (linear in the speed) of a 2D plasma: on a 2D grid the
/// isotropic fields `[5, nx, ny]` at |v|; on a 3D grid those of the (v_x, v_y) plane at
/// v_⊥ = √(v_x² + v_y²), the same for every v_z, with A_z = D_zz = D_xz = D_yz = 0 — the
/// plasma of a 2D electrostatic code, whose particles keep their v_z
/// ([`crate::operator::angular::extrude_planar`]).
pub fn isotropic_fields(grid: &VelocityGrid, v: &[f64], a_par: &[f64], d_par: &[f64], d_perp: &[f64]) -> Fields {
    let polar = Polar::new(&grid.plane());
    let at = |ys: &[f64]| polar.speed.iter().map(|&s| interpolate(v, ys, s)).collect::<Vec<_>>();
    let mut out = vec![0.0; fp::N_FIELDS * polar.n_cells()];
    to_cartesian(&polar, &at(a_par), &at(d_par), &at(d_perp), &mut out);
    extrude_planar(grid, &out, None)
}

/// The theory's model on `grid`. 2D: a `par-perp` model, radial nodes the profile's speeds,
/// θ = [A_∥, D_∥, D_⊥] at the nodes, fields the isotropic map of the profile (evaluated for
/// v ∥ x̂). 3D: a `tensor` model whose θ is its fields (physical units, as the track
/// estimator's), those of [`isotropic_fields`] — the 2D plasma's coefficients on the (v_x, v_y)
/// plane, zero z components. Both export the radial profile (`v_radial`, `A_par`, `D_par`,
/// `D_perp`; the speed is v_⊥ in 3D).
pub fn par_perp_model(grid: &VelocityGrid, points: &[RadialPoint], plasma: &Plasma, provenance: &str) -> SavedModel {
    let column = |f: fn(&RadialPoint) -> f64| points.iter().map(f).collect::<Vec<_>>();
    let (v, a, dp, dq) = (column(|p| p.v), column(|p| p.a_par), column(|p| p.d_par), column(|p| p.d_perp));
    let fields = isotropic_fields(grid, &v, &a, &dp, &dq);
    let (spec, theta, direction) = if grid.dim() == 3 {
        let spec = ModelSpec { kind: ModelKind::Tensor, ..ModelSpec::default() };
        (spec, fields.iter().copied().collect(), "coefficients evaluated for v along x and mapped isotropically in the (v_x, v_y) plane at v_perp = |(v_x, v_y)|, the same for every v_z; A_z = D_zz = D_xz = D_yz = 0 (2D electrostatic: no force along z)")
    } else {
        let spec = ModelSpec {
            kind: ModelKind::ParPerp,
            n_radial: Some(v.len()),
            v_radial_max: v.last().copied(),
            ..ModelSpec::default()
        };
        (spec, [a.as_slice(), dp.as_slice(), dq.as_slice()].concat(), "coefficients evaluated for v along x and mapped isotropically")
    };
    let export = |name: &str, xs: &[f64]| (name.to_string(), Array1::from(xs.to_vec()).into_dyn());
    SavedModel {
        spec,
        solver: SolverSpec::default(),
        grid: grid.clone(),
        theta,
        fields,
        cond_ranges: Vec::new(),
        t_span: 0.0,
        exports: vec![export("v_radial", &v), export("A_par", &a), export("D_par", &dp), export("D_perp", &dq)],
        notes: vec![
            ("source".into(), "Lenard-Balescu theory, 2D electrostatic, finite-size particles".into()),
            ("direction".into(), direction.into()),
            ("n_lambda_d2".into(), plasma.n_lambda_d2.to_string()),
            ("shape_order".into(), plasma.shape_order.to_string()),
            ("dx_over_lambda_d".into(), plasma.dx.to_string()),
            ("gaussian_width".into(), plasma.gaussian_width.to_string()),
            ("provenance".into(), provenance.into()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_csv_round_trips_and_rejects_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coefficients.csv");
        let points: Vec<RadialPoint> = (0..3)
            .map(|i| {
                let v = 0.25 * i as f64;
                RadialPoint { v, a_par: -0.01 * v, d_par: 0.02 / (1.0 + v), d_perp: 0.03 + v, f_par: 0.0, half_div_d: 0.0 }
            })
            .collect();
        write_csv(&path, &points).unwrap();
        let [v, a, dp, dq] = read_csv(&path).unwrap();
        assert_eq!(v.len(), 3);
        for (i, p) in points.iter().enumerate() {
            assert_eq!(v[i], p.v);
            for (got, want) in [(a[i], p.a_par), (dp[i], p.d_par), (dq[i], p.d_perp)] {
                assert!((got - want).abs() <= 1e-12 * want.abs(), "row {i}: {got} vs {want}");
            }
        }
        std::fs::write(&path, "v,A_par,D_par,D_perp\n0.5,1,2,3\n1.0,1,x,3\n").unwrap();
        let err = read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("coefficients.csv"), "{err}");
        std::fs::write(&path, "v,A_par,D_par,D_perp\n0.5,1,2\n").unwrap();
        assert!(read_csv(&path).unwrap_err().to_string().contains("expected v,A_par,D_par,D_perp"));
    }
}
