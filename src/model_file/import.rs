//! Operators learned elsewhere: arrays in the reference code's grid units → a `tensor` model.
//!
//! The reference code stores A [2,Nx,Ny] and D [3,Nx,Ny] (order xx, yy, xy) in grid units:
//! Â_x = A_x/Δv_x, Â_y = A_y/Δv_y, D̂_xx = D_xx/Δv_x², D̂_yy = D_yy/Δv_y², D̂_xy = D_xy/(Δv_xΔv_y),
//! per unit time (1/ω_p); in 3D A [3,Nx,Ny,Nz] and D [6,Nx,Ny,Nz] (order xx, yy, zz, xy, xz, yz),
//! Â_i = A_i/Δv_i and D̂_ij = D_ij/(Δv_iΔv_j). The model keeps physical units and the reference solver settings
//! (central scheme, guard boundary, clamp).

use super::SavedModel;
use crate::operator::spec::{ModelKind, ModelSpec};
use crate::operator::{fp, Fields};
use crate::grid::VelocityGrid;
use crate::solver::SolverSpec;
use anyhow::Context as _;
use ndarray::ArrayD;
use std::path::Path;

/// Grid-unit arrays (`A [d, cells...]`, `D [d(d+1)/2, cells...]`) → physical fields on `grid`.
pub fn grid_units_to_fields(a: &ArrayD<f64>, d: &ArrayD<f64>, grid: &VelocityGrid) -> anyhow::Result<Fields> {
    let dim = grid.dim();
    let n_d = fp::n_fields(dim) - dim;
    let want = |n: usize| -> Vec<usize> { std::iter::once(n).chain(grid.extents()).collect() };
    anyhow::ensure!(a.shape() == want(dim), "A has shape {:?}, expected {:?} for the grid", a.shape(), want(dim));
    anyhow::ensure!(d.shape() == want(n_d), "D has shape {:?}, expected {:?} for the grid", d.shape(), want(n_d));
    anyhow::ensure!(a.iter().chain(d.iter()).all(|v| v.is_finite()), "A or D contains non-finite values");
    let dv: Vec<f64> = (0..dim).map(|i| grid.dv(i)).collect();
    let mut scale = vec![0.0; fp::n_fields(dim)];
    for i in 0..dim {
        scale[fp::a(i)] = dv[i];
        for j in i..dim {
            scale[fp::d(dim, i, j)] = dv[i] * dv[j];
        }
    }
    let flat = |x: &ArrayD<f64>, n: usize| x.as_standard_layout().into_owned().into_shape_with_order(grid.fields_shape(n)).expect("checked shape");
    let (a, d) = (flat(a, dim), flat(d, n_d));
    let mut f = Fields::zeros(grid.fields_shape(fp::n_fields(dim)));
    for (k, s) in scale.iter().enumerate() {
        let src = if k < dim { a.index_axis(ndarray::Axis(0), k) } else { d.index_axis(ndarray::Axis(0), k - dim) };
        f.index_axis_mut(ndarray::Axis(0), k).assign(&(&src * *s));
    }
    Ok(f)
}

/// Read `A.npy`, `D.npy` in grid units, take the grid of the run file `like`, build the model.
pub fn import_operator(a_path: &Path, d_path: &Path, like: &Path) -> anyhow::Result<SavedModel> {
    let a: ArrayD<f64> = ndarray_npy::read_npy(a_path).with_context(|| format!("{}: not an f64 .npy array", a_path.display()))?;
    let d: ArrayD<f64> = ndarray_npy::read_npy(d_path).with_context(|| format!("{}: not an f64 .npy array", d_path.display()))?;
    let grid = crate::data::RunFile::open(like)?.meta.grid;
    let fields = grid_units_to_fields(&a, &d, &grid).with_context(|| format!("{} / {}", a_path.display(), d_path.display()))?;
    Ok(SavedModel {
        spec: ModelSpec { kind: ModelKind::Tensor, ..ModelSpec::default() },
        solver: SolverSpec::default(),
        grid,
        theta: Vec::new(),
        fields,
        cond_ranges: Vec::new(),
        t_span: 0.0,
        exports: Vec::new(),
        notes: vec![
            ("source".into(), "colop import operator".into()),
            ("a".into(), a_path.display().to_string()),
            ("d".into(), d_path.display().to_string()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_each_component() {
        let g = VelocityGrid::new(4, 5, [-1.0, 1.0, -2.0, 3.0], "v_th").unwrap();
        let a = ArrayD::from_elem(vec![2, 4, 5], 1.0);
        let d = ArrayD::from_elem(vec![3, 4, 5], 1.0);
        let f = grid_units_to_fields(&a, &d, &g).unwrap();
        assert_eq!(f[[0, 0, 0]], 0.5);
        assert_eq!(f[[1, 0, 0]], 1.0);
        assert_eq!(f[[2, 1, 1]], 0.25);
        assert_eq!(f[[3, 1, 1]], 1.0);
        assert_eq!(f[[4, 3, 4]], 0.5);
        assert!(grid_units_to_fields(&d, &d, &g).is_err());
    }

    #[test]
    fn scales_each_component_in_3d() {
        let g = VelocityGrid::new3(4, 5, 6, [-1.0, 1.0, -2.0, 3.0, 0.0, 3.0], "v_th").unwrap();
        let (dx, dy, dz) = (0.5, 1.0, 0.5);
        let a = ArrayD::from_elem(vec![3, 4, 5, 6], 1.0);
        let d = ArrayD::from_shape_fn(vec![6, 4, 5, 6], |ix| (ix[0] + 1) as f64);
        let f = grid_units_to_fields(&a, &d, &g).unwrap();
        assert_eq!(f.shape(), &[9, 4, 30]);
        let expect = [dx, dy, dz, dx * dx, 2.0 * dy * dy, 3.0 * dz * dz, 4.0 * dx * dy, 5.0 * dx * dz, 6.0 * dy * dz];
        for (k, e) in expect.iter().enumerate() {
            assert!(f.index_axis(ndarray::Axis(0), k).iter().all(|v| v == e), "field {k}");
        }
        assert!(grid_units_to_fields(&a, &a, &g).is_err());
    }
}
