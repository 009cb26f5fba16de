//! Operators learned elsewhere: arrays in the reference code's grid units → a `tensor` model.
//!
//! The reference code stores A [2,Nx,Ny] and D [3,Nx,Ny] (order xx, yy, xy) in grid units:
//! Â_x = A_x/Δv_x, Â_y = A_y/Δv_y, D̂_xx = D_xx/Δv_x², D̂_yy = D_yy/Δv_y², D̂_xy = D_xy/(Δv_xΔv_y),
//! per unit time (1/ω_p). The model keeps physical units and the reference solver settings
//! (central scheme, guard boundary, clamp).

use super::SavedModel;
use crate::operator::spec::{ModelKind, ModelSpec};
use crate::operator::{fp, Fields};
use crate::grid::VelocityGrid;
use crate::solver::SolverSpec;
use anyhow::Context as _;
use ndarray::Array3;
use std::path::Path;

/// Grid-unit arrays → physical fields on `grid`.
pub fn grid_units_to_fields(a: &Array3<f64>, d: &Array3<f64>, grid: &VelocityGrid) -> anyhow::Result<Fields> {
    let (nx, ny) = grid.shape();
    anyhow::ensure!(a.shape() == [2, nx, ny], "A has shape {:?}, expected [2, {nx}, {ny}] for the grid", a.shape());
    anyhow::ensure!(d.shape() == [3, nx, ny], "D has shape {:?}, expected [3, {nx}, {ny}] for the grid", d.shape());
    anyhow::ensure!(a.iter().chain(d.iter()).all(|v| v.is_finite()), "A or D contains non-finite values");
    let (dx, dy) = (grid.dvx(), grid.dvy());
    let scale = [dx, dy, dx * dx, dy * dy, dx * dy];
    let mut f = Fields::zeros((fp::N_FIELDS, nx, ny));
    for (k, s) in scale.iter().enumerate() {
        let src = if k < 2 { a.index_axis(ndarray::Axis(0), k) } else { d.index_axis(ndarray::Axis(0), k - 2) };
        f.index_axis_mut(ndarray::Axis(0), k).assign(&(&src * *s));
    }
    Ok(f)
}

/// Read `A.npy`, `D.npy` in grid units, take the grid of the run file `like`, build the model.
pub fn import_operator(a_path: &Path, d_path: &Path, like: &Path) -> anyhow::Result<SavedModel> {
    let a: Array3<f64> = ndarray_npy::read_npy(a_path).with_context(|| format!("{}: not a 3-D f64 .npy array", a_path.display()))?;
    let d: Array3<f64> = ndarray_npy::read_npy(d_path).with_context(|| format!("{}: not a 3-D f64 .npy array", d_path.display()))?;
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
        let a = Array3::from_elem((2, 4, 5), 1.0);
        let d = Array3::from_elem((3, 4, 5), 1.0);
        let f = grid_units_to_fields(&a, &d, &g).unwrap();
        assert_eq!(f[[0, 0, 0]], 0.5);
        assert_eq!(f[[1, 0, 0]], 1.0);
        assert_eq!(f[[2, 1, 1]], 0.25);
        assert_eq!(f[[3, 1, 1]], 1.0);
        assert_eq!(f[[4, 3, 4]], 0.5);
        assert!(grid_units_to_fields(&d, &d, &g).is_err());
    }
}
