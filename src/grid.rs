//! The velocity grid: a cell-centred mesh over [vx_min, vx_max]×[vy_min, vy_max], Nx×Ny in two
//! dimensions or Nx×Ny×Nz over a further [vz_min, vz_max] in three.
//!
//! Velocities are in units of the thermal speed v_th unless `units` says otherwise. Arrays on the
//! grid are `[ix, iy]` (2D) or `[ix, iy, iz]` (3D) in C order, the last velocity component
//! fastest, the same as the reference code's `.npy` files. Code that is generic over the
//! dimension uses the axis accessors ([`VelocityGrid::dim`], [`VelocityGrid::extent`],
//! [`VelocityGrid::stride`], [`VelocityGrid::dv`], [`VelocityGrid::centre`]); the named 2D ones
//! (`nx`, `ny`, `v_range`, `vx`, `vy`, ...) are the first two axes of either.
//!
//! Coefficient fields on a grid are [`crate::operator::Fields`] of shape
//! [`VelocityGrid::fields_shape`] `= [n_fields, nx, ny·nz]` (nz = 1 in 2D): the field index, then
//! the cells in C order with the trailing axes flattened, so a 2D grid's fields are exactly
//! `[n_fields, nx, ny]` and a 3D one's are a free reshape of `[n_fields, nx, ny, nz]`.
//!
//! Serialised (serde), a grid is `{nx, ny, v_range, units}` in 2D — as it always was — and
//! `{nx, ny, nz, v_range, units}` with a 6-value `v_range` in 3D.

use serde::{Deserialize, Serialize};

/// The v_z axis of a three-dimensional grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZAxis {
    pub nz: usize,
    /// `[vz_min, vz_max]`.
    pub range: [f64; 2],
}

/// A cell-centred velocity grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GridRepr", into = "GridRepr")]
pub struct VelocityGrid {
    pub nx: usize,
    pub ny: usize,
    /// `[vx_min, vx_max, vy_min, vy_max]`.
    pub v_range: [f64; 4],
    /// Unit label of the velocities, e.g. `"v_th"`.
    pub units: String,
    /// The v_z axis of a 3D grid; `None` for a 2D grid.
    pub z: Option<ZAxis>,
}

/// The serialised form: `nz` only in 3D, `v_range` with 4 or 6 values.
#[derive(Serialize, Deserialize)]
struct GridRepr {
    nx: usize,
    ny: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nz: Option<usize>,
    v_range: Vec<f64>,
    units: String,
}

impl From<VelocityGrid> for GridRepr {
    fn from(g: VelocityGrid) -> Self {
        Self { nx: g.nx, ny: g.ny, nz: g.z.map(|z| z.nz), v_range: g.v_ranges(), units: g.units }
    }
}

impl TryFrom<GridRepr> for VelocityGrid {
    type Error = GridError;
    fn try_from(r: GridRepr) -> Result<Self, GridError> {
        let mut shape = vec![r.nx, r.ny];
        shape.extend(r.nz);
        VelocityGrid::from_parts(&shape, &r.v_range, r.units)
    }
}

/// Why a grid description is unusable.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    #[error("grid needs at least {min}×{min} cells, got {nx}×{ny}")]
    TooSmall { nx: usize, ny: usize, min: usize },
    #[error("v_range {0:?} must be finite with vx_min < vx_max and vy_min < vy_max")]
    BadRange([f64; 4]),
    #[error("grid needs at least {min}×{min}×{min} cells, got {nx}×{ny}×{nz}")]
    TooSmall3 { nx: usize, ny: usize, nz: usize, min: usize },
    #[error("v_range {0:?} must be finite with vx_min < vx_max, vy_min < vy_max and vz_min < vz_max")]
    BadRange3([f64; 6]),
    #[error("a grid of {dims} dimensions needs a v_range of {want} values, got {got}")]
    RangeLength { dims: usize, want: usize, got: usize },
    #[error("velocity grids have 2 or 3 dimensions, got {0}")]
    Dimensions(usize),
}

/// Fewest cells along an axis, so every boundary stencil fits.
const MIN: usize = 4;

impl VelocityGrid {
    /// A validated 2D grid. At least 4×4 cells so every boundary stencil fits.
    pub fn new(nx: usize, ny: usize, v_range: [f64; 4], units: impl Into<String>) -> Result<Self, GridError> {
        if nx < MIN || ny < MIN {
            return Err(GridError::TooSmall { nx, ny, min: MIN });
        }
        let [x0, x1, y0, y1] = v_range;
        if !v_range.iter().all(|v| v.is_finite()) || x0 >= x1 || y0 >= y1 {
            return Err(GridError::BadRange(v_range));
        }
        Ok(Self { nx, ny, v_range, units: units.into(), z: None })
    }

    /// A validated 3D grid over `[vx_min, vx_max, vy_min, vy_max, vz_min, vz_max]`, at least
    /// 4×4×4 cells.
    pub fn new3(nx: usize, ny: usize, nz: usize, v_range: [f64; 6], units: impl Into<String>) -> Result<Self, GridError> {
        if nx < MIN || ny < MIN || nz < MIN {
            return Err(GridError::TooSmall3 { nx, ny, nz, min: MIN });
        }
        let ok = |a: f64, b: f64| a.is_finite() && b.is_finite() && a < b;
        if !(ok(v_range[0], v_range[1]) && ok(v_range[2], v_range[3]) && ok(v_range[4], v_range[5])) {
            return Err(GridError::BadRange3(v_range));
        }
        let [x0, x1, y0, y1, z0, z1] = v_range;
        Ok(Self { nx, ny, v_range: [x0, x1, y0, y1], units: units.into(), z: Some(ZAxis { nz, range: [z0, z1] }) })
    }

    /// A 2D or 3D grid from its cell counts (`[nx, ny]` or `[nx, ny, nz]`) and its `v_range`
    /// (4 or 6 values): what readers of files call.
    pub fn from_parts(shape: &[usize], v_range: &[f64], units: impl Into<String>) -> Result<Self, GridError> {
        let want = 2 * shape.len();
        match shape.len() {
            2 | 3 if v_range.len() != want => {
                Err(GridError::RangeLength { dims: shape.len(), want, got: v_range.len() })
            }
            2 => Self::new(shape[0], shape[1], v_range.try_into().expect("4 values"), units),
            3 => Self::new3(shape[0], shape[1], shape[2], v_range.try_into().expect("6 values"), units),
            d => Err(GridError::Dimensions(d)),
        }
    }

    /// Square grid `n×n` over `[-vmax, vmax]²` in units of v_th.
    pub fn square(n: usize, vmax: f64) -> Result<Self, GridError> {
        Self::new(n, n, [-vmax, vmax, -vmax, vmax], "v_th")
    }

    /// Cubic grid `n×n×n` over `[-vmax, vmax]³` in units of v_th.
    pub fn cube(n: usize, vmax: f64) -> Result<Self, GridError> {
        Self::new3(n, n, n, [-vmax, vmax, -vmax, vmax, -vmax, vmax], "v_th")
    }

    /// Number of velocity dimensions, 2 or 3.
    pub fn dim(&self) -> usize {
        if self.z.is_some() {
            3
        } else {
            2
        }
    }
    /// Cells along v_z (1 for a 2D grid).
    pub fn nz(&self) -> usize {
        self.z.map_or(1, |z| z.nz)
    }
    /// Cells along axis `a` (0 = v_x, 1 = v_y, 2 = v_z).
    pub fn extent(&self, a: usize) -> usize {
        match a {
            0 => self.nx,
            1 => self.ny,
            _ => self.nz(),
        }
    }
    /// Cell counts of every axis (`[nx, ny]` or `[nx, ny, nz]`).
    pub fn extents(&self) -> Vec<usize> {
        (0..self.dim()).map(|a| self.extent(a)).collect()
    }
    /// Distance in the flat C-order array between cells adjacent along axis `a`.
    pub fn stride(&self, a: usize) -> usize {
        (a + 1..self.dim()).map(|b| self.extent(b)).product()
    }
    /// `[min, max]` of axis `a`.
    pub fn range(&self, a: usize) -> [f64; 2] {
        match (a, self.z) {
            (0, _) => [self.v_range[0], self.v_range[1]],
            (1, _) => [self.v_range[2], self.v_range[3]],
            (_, Some(z)) => z.range,
            (_, None) => panic!("axis {a} of a 2D grid"),
        }
    }
    /// The whole `v_range`: 4 values in 2D, 6 in 3D.
    pub fn v_ranges(&self) -> Vec<f64> {
        (0..self.dim()).flat_map(|a| self.range(a)).collect()
    }
    /// Cell width along axis `a`.
    pub fn dv(&self, a: usize) -> f64 {
        let [lo, hi] = self.range(a);
        (hi - lo) / self.extent(a) as f64
    }
    /// Centre of cell `i` along axis `a`: `min + (i + ½)Δv`.
    pub fn centre(&self, a: usize, i: usize) -> f64 {
        self.range(a)[0] + (i as f64 + 0.5) * self.dv(a)
    }
    /// All cell centres along axis `a`.
    pub fn centres(&self, a: usize) -> Vec<f64> {
        (0..self.extent(a)).map(|i| self.centre(a, i)).collect()
    }
    /// Shape of `n_fields` coefficient fields on this grid: `(n_fields, nx, ny·nz)`.
    pub fn fields_shape(&self, n_fields: usize) -> (usize, usize, usize) {
        (n_fields, self.nx, self.ny * self.nz())
    }

    pub fn n_cells(&self) -> usize {
        self.nx * self.ny * self.nz()
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
        match self.z {
            None => vx.hypot(vy),
            Some(z) => vx.hypot(vy).hypot(z.range[0].abs().max(z.range[1].abs())),
        }
    }
    /// Same cells, same range (to a relative 1e-12), same units.
    pub fn compatible(&self, other: &Self) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()));
        self.extents() == other.extents()
            && self.units == other.units
            && self.v_ranges().iter().zip(other.v_ranges().iter()).all(|(a, b)| close(*a, *b))
    }
    /// `nx×ny over [vx_min, vx_max, vy_min, vy_max] units` (or `nx×ny×nz over [6 values]`), for
    /// messages.
    pub fn describe(&self) -> String {
        match self.z {
            None => format!("{}×{} over {:?} {}", self.nx, self.ny, self.v_range, self.units),
            Some(z) => format!("{}×{}×{} over {:?} {}", self.nx, self.ny, z.nz, self.v_ranges(), self.units),
        }
    }
    /// The (v_x, v_y) grid of this grid: itself in 2D, the grid without its v_z axis in 3D.
    pub fn plane(&self) -> Self {
        Self { z: None, ..self.clone() }
    }
    /// The v_z cell of a 3D grid holding `vz`, if any (`None` outside, or on a 2D grid).
    pub fn z_cell_of(&self, vz: f64) -> Option<usize> {
        self.z?;
        self.axis_cell(2, vz)
    }
    /// The cell along axis `a` holding the velocity component `v`, if any (`None` outside the
    /// grid or for a non-finite `v`).
    #[inline]
    pub fn axis_cell(&self, a: usize, v: f64) -> Option<usize> {
        let f = (v - self.range(a)[0]) / self.dv(a);
        if f.is_nan() || f < 0.0 {
            return None;
        }
        let i = f as usize;
        (i < self.extent(a)).then_some(i)
    }
    /// The flat C-order index of the cell holding velocity `v` (one component per axis), if any.
    #[inline]
    pub fn flat_cell(&self, v: &[f64]) -> Option<usize> {
        let mut flat = 0;
        for (a, &x) in v.iter().enumerate().take(self.dim()) {
            flat = flat * self.extent(a) + self.axis_cell(a, x)?;
        }
        Some(flat)
    }
    /// Index of the cell containing `(vx, vy)`, or `None` outside the grid.
    pub fn cell_of(&self, vx: f64, vy: f64) -> Option<(usize, usize)> {
        Some((self.axis_cell(0, vx)?, self.axis_cell(1, vy)?))
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

    #[test]
    fn three_dimensional_axes() {
        let g = VelocityGrid::new3(5, 6, 8, [-1.0, 1.0, -3.0, 3.0, -2.0, 6.0], "v_th").unwrap();
        assert_eq!((g.dim(), g.n_cells(), g.extents()), (3, 240, vec![5, 6, 8]));
        assert_eq!((g.stride(0), g.stride(1), g.stride(2)), (48, 8, 1));
        assert_eq!((g.dv(0), g.dv(1), g.dv(2)), (0.4, 1.0, 1.0));
        assert_eq!(g.centre(2, 0), -1.5);
        assert_eq!(g.fields_shape(9), (9, 5, 48));
        assert_eq!(g.v_ranges(), vec![-1.0, 1.0, -3.0, 3.0, -2.0, 6.0]);
        assert!((g.v_corner() - (1.0f64 + 9.0 + 36.0).sqrt()).abs() < 1e-14);
        let flat = VelocityGrid::new(5, 6, [-1.0, 1.0, -3.0, 3.0], "v_th").unwrap();
        assert_eq!((flat.dim(), flat.nz(), flat.stride(0), flat.stride(1)), (2, 1, 6, 1));
        assert!(!g.compatible(&flat));
        assert!(g.describe().starts_with("5×6×8 over [-1.0, 1.0, -3.0, 3.0, -2.0, 6.0]"));
        assert!(VelocityGrid::new3(5, 6, 3, [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0], "v_th").is_err());
        assert!(VelocityGrid::new3(5, 6, 8, [-1.0, 1.0, -1.0, 1.0, 1.0, 1.0], "v_th").is_err());
        let e = VelocityGrid::from_parts(&[5, 6, 8], &[-1.0, 1.0, -1.0, 1.0], "v_th").unwrap_err().to_string();
        assert!(e.contains("6 values, got 4"), "{e}");
        assert_eq!(VelocityGrid::from_parts(&[5, 6], &[-1.0, 1.0, -3.0, 3.0], "v_th").unwrap(), flat);
    }

    /// 2D grids serialise exactly as before the third dimension existed; 3D ones carry `nz` and
    /// a 6-value `v_range`; both read back.
    #[test]
    fn serialisation() {
        let flat = VelocityGrid::new(5, 6, [-1.0, 1.0, -3.0, 3.0], "v_th").unwrap();
        let json = serde_json::to_string(&flat).unwrap();
        assert_eq!(json, r#"{"nx":5,"ny":6,"v_range":[-1.0,1.0,-3.0,3.0],"units":"v_th"}"#);
        assert_eq!(serde_json::from_str::<VelocityGrid>(&json).unwrap(), flat);
        let g = VelocityGrid::new3(5, 6, 7, [-1.0, 1.0, -3.0, 3.0, -2.0, 2.0], "v_th").unwrap();
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(json, r#"{"nx":5,"ny":6,"nz":7,"v_range":[-1.0,1.0,-3.0,3.0,-2.0,2.0],"units":"v_th"}"#);
        assert_eq!(serde_json::from_str::<VelocityGrid>(&json).unwrap(), g);
        assert!(serde_json::from_str::<VelocityGrid>(r#"{"nx":5,"ny":6,"nz":7,"v_range":[-1,1,-1,1],"units":"v"}"#).is_err());
    }
}
