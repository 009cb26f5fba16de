//! The velocity grid: cell-centred Nx×Ny mesh over [vx_min, vx_max]×[vy_min, vy_max].
//!
//! Velocities are in units of the thermal speed v_th unless `units` says otherwise. Arrays on the
//! grid are `[ix, iy]` in C order (v_y fastest), the same as the reference code's `.npy` files.

use serde::{Deserialize, Serialize};

/// A cell-centred velocity grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VelocityGrid {
    pub nx: usize,
    pub ny: usize,
    /// `[vx_min, vx_max, vy_min, vy_max]`.
    pub v_range: [f64; 4],
    /// Unit label of the velocities, e.g. `"v_th"`.
    pub units: String,
}

/// Why a grid description is unusable.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    #[error("grid needs at least {min}×{min} cells, got {nx}×{ny}")]
    TooSmall { nx: usize, ny: usize, min: usize },
    #[error("v_range {0:?} must be finite with vx_min < vx_max and vy_min < vy_max")]
    BadRange([f64; 4]),
}

impl VelocityGrid {
    /// A validated grid. At least 4×4 cells so every boundary stencil fits.
    pub fn new(nx: usize, ny: usize, v_range: [f64; 4], units: impl Into<String>) -> Result<Self, GridError> {
        const MIN: usize = 4;
        if nx < MIN || ny < MIN {
            return Err(GridError::TooSmall { nx, ny, min: MIN });
        }
        let [x0, x1, y0, y1] = v_range;
        if !v_range.iter().all(|v| v.is_finite()) || x0 >= x1 || y0 >= y1 {
            return Err(GridError::BadRange(v_range));
        }
        Ok(Self { nx, ny, v_range, units: units.into() })
    }

    /// Square grid `n×n` over `[-vmax, vmax]²` in units of v_th.
    pub fn square(n: usize, vmax: f64) -> Result<Self, GridError> {
        Self::new(n, n, [-vmax, vmax, -vmax, vmax], "v_th")
    }

    pub fn n_cells(&self) -> usize {
        self.nx * self.ny
    }
    pub fn shape(&self) -> (usize, usize) {
        (self.nx, self.ny)
    }
    pub fn dvx(&self) -> f64 {
        (self.v_range[1] - self.v_range[0]) / self.nx as f64
    }
    pub fn dvy(&self) -> f64 {
        (self.v_range[3] - self.v_range[2]) / self.ny as f64
    }
    /// Centre of cell `i` along v_x: `vx_min + (i + ½)Δv_x`.
    pub fn vx(&self, i: usize) -> f64 {
        self.v_range[0] + (i as f64 + 0.5) * self.dvx()
    }
    /// Centre of cell `j` along v_y.
    pub fn vy(&self, j: usize) -> f64 {
        self.v_range[2] + (j as f64 + 0.5) * self.dvy()
    }
    /// All v_x cell centres.
    pub fn vx_centres(&self) -> Vec<f64> {
        (0..self.nx).map(|i| self.vx(i)).collect()
    }
    /// All v_y cell centres.
    pub fn vy_centres(&self) -> Vec<f64> {
        (0..self.ny).map(|j| self.vy(j)).collect()
    }
    /// Largest |v| of the grid (the distance of the farthest grid corner from the origin).
    pub fn v_corner(&self) -> f64 {
        let [x0, x1, y0, y1] = self.v_range;
        let vx = x0.abs().max(x1.abs());
        let vy = y0.abs().max(y1.abs());
        vx.hypot(vy)
    }
    /// Same cells, same range (to a relative 1e-12), same units.
    pub fn compatible(&self, other: &Self) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()));
        self.nx == other.nx
            && self.ny == other.ny
            && self.units == other.units
            && self.v_range.iter().zip(other.v_range.iter()).all(|(a, b)| close(*a, *b))
    }
    /// `nx×ny over [vx_min, vx_max, vy_min, vy_max] units`, for messages.
    pub fn describe(&self) -> String {
        format!("{}×{} over {:?} {}", self.nx, self.ny, self.v_range, self.units)
    }
    /// Index of the cell containing `(vx, vy)`, or `None` outside the grid.
    pub fn cell_of(&self, vx: f64, vy: f64) -> Option<(usize, usize)> {
        let fx = (vx - self.v_range[0]) / self.dvx();
        let fy = (vy - self.v_range[2]) / self.dvy();
        if !(fx >= 0.0 && fy >= 0.0) {
            return None;
        }
        let (i, j) = (fx as usize, fy as usize);
        (i < self.nx && j < self.ny).then_some((i, j))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centres_and_spacing() {
        let g = VelocityGrid::square(50, 5.0).unwrap();
        assert_eq!(g.dvx(), 0.2);
        assert!((g.vx(0) + 4.9).abs() < 1e-15);
        assert!((g.vy(49) - 4.9).abs() < 1e-14);
        assert_eq!(g.cell_of(-4.95, 4.95), Some((0, 49)));
        assert_eq!(g.cell_of(5.01, 0.0), None);
        assert_eq!(g.cell_of(f64::NAN, 0.0), None);
    }

    #[test]
    fn rejects_bad_grids() {
        assert!(VelocityGrid::new(3, 10, [-1.0, 1.0, -1.0, 1.0], "v_th").is_err());
        assert!(VelocityGrid::new(10, 10, [1.0, -1.0, -1.0, 1.0], "v_th").is_err());
        assert!(VelocityGrid::new(10, 10, [-1.0, f64::NAN, -1.0, 1.0], "v_th").is_err());
    }
}
