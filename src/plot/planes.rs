//! Two-dimensional views of a field on a velocity grid of any dimension: central slices and
//! marginals over one axis, each on the [`Plane`]'s own two-dimensional grid.
//!
//! A 2D grid has one plane, (v_x, v_y), whose slice and marginal are the field itself. A 3D grid
//! has three: (v_x, v_y) normal to v_z, (v_x, v_z) normal to v_y and (v_y, v_z) normal to v_x.
//! Fields are flat, in the grid's C order (a row of [`crate::operator::Fields`] or a snapshot).

use crate::grid::VelocityGrid;
use ndarray::Array2;

/// Names of the velocity axes.
pub const AXIS_NAMES: [&str; 3] = ["v_x", "v_y", "v_z"];

/// A coordinate plane: its horizontal and vertical axes and the axis normal to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plane {
    pub axes: [usize; 2],
    pub normal: usize,
}

/// The planes of a 3D grid, in the order the figures show them: v_z = 0, v_y = 0, v_x = 0.
const PLANES_3D: [Plane; 3] =
    [Plane { axes: [0, 1], normal: 2 }, Plane { axes: [0, 2], normal: 1 }, Plane { axes: [1, 2], normal: 0 }];

/// The coordinate planes of `grid`: one in 2D (its normal is the absent v_z), three in 3D.
pub fn planes(grid: &VelocityGrid) -> &'static [Plane] {
    if grid.dim() == 3 {
        &PLANES_3D
    } else {
        &PLANES_3D[..1]
    }
}

impl Plane {
    /// Horizontal and vertical axis names, e.g. `("v_x", "v_z")`.
    pub fn axis_names(&self) -> (&'static str, &'static str) {
        (AXIS_NAMES[self.axes[0]], AXIS_NAMES[self.axes[1]])
    }

    /// The two-dimensional grid of the plane: the cells and ranges of its two axes.
    pub fn grid(&self, grid: &VelocityGrid) -> VelocityGrid {
        let [a, b] = self.axes;
        let ([a0, a1], [b0, b1]) = (grid.range(a), grid.range(b));
        VelocityGrid { nx: grid.extent(a), ny: grid.extent(b), v_range: [a0, a1, b0, b1], units: grid.units.clone(), z: None }
    }

    /// The cell plane along the normal axis through the centre: the cell nearest v = 0 when the
    /// axis' range contains 0, else the one nearest the middle of the range (of two equally near
    /// cells, the upper). `0` on a 2D grid.
    pub fn central_cell(&self, grid: &VelocityGrid) -> usize {
        if self.normal >= grid.dim() {
            return 0;
        }
        let [lo, hi] = grid.range(self.normal);
        let target = if lo < 0.0 && 0.0 < hi { 0.0 } else { 0.5 * (lo + hi) };
        let centres = grid.centres(self.normal);
        let mut best = 0;
        for (k, c) in centres.iter().enumerate() {
            if (c - target).abs() <= (centres[best] - target).abs() {
                best = k;
            }
        }
        best
    }

    /// The velocity of the central cell plane along the normal axis (0 on a 2D grid).
    pub fn central_velocity(&self, grid: &VelocityGrid) -> f64 {
        if self.normal >= grid.dim() {
            0.0
        } else {
            grid.centre(self.normal, self.central_cell(grid))
        }
    }

    /// `field` on the cell plane `cell` of the normal axis, `[n_horizontal, n_vertical]`.
    pub fn slice(&self, grid: &VelocityGrid, field: &[f64], cell: usize) -> Array2<f64> {
        let offset = if self.normal < grid.dim() { cell * grid.stride(self.normal) } else { 0 };
        self.plane_at(grid, field, offset)
    }

    /// The plane of cells `offset + p·stride(horizontal) + q·stride(vertical)`.
    fn plane_at(&self, grid: &VelocityGrid, field: &[f64], offset: usize) -> Array2<f64> {
        assert_eq!(field.len(), grid.n_cells(), "a field of every cell of the grid");
        let [a, b] = self.axes;
        let (sa, sb) = (grid.stride(a), grid.stride(b));
        Array2::from_shape_fn((grid.extent(a), grid.extent(b)), |(p, q)| field[offset + p * sa + q * sb])
    }

    /// `field` on the central cell plane ([`Plane::central_cell`]).
    pub fn central_slice(&self, grid: &VelocityGrid, field: &[f64]) -> Array2<f64> {
        self.slice(grid, field, self.central_cell(grid))
    }

    /// `field` summed over the normal axis, `[n_horizontal, n_vertical]`: for a histogram, the
    /// particles per cell of the plane (the marginal ∫f dv_normal in cell units). The field itself
    /// on a 2D grid.
    pub fn marginal(&self, grid: &VelocityGrid, field: &[f64]) -> Array2<f64> {
        let (n, sn) = if self.normal < grid.dim() { (grid.extent(self.normal), grid.stride(self.normal)) } else { (1, 0) };
        let mut out = self.plane_at(grid, field, 0);
        for k in 1..n {
            out += &self.plane_at(grid, field, k * sn);
        }
        out
    }

    /// `slice v_z = 0.25` (the normal axis and the central cell's velocity) for titles.
    pub fn slice_label(&self, grid: &VelocityGrid) -> String {
        format!("{} = {}", AXIS_NAMES[self.normal], super::fmt_tick(&self.central_velocity(grid)))
    }

    /// `∫f dv_z` (the axis integrated out) for titles.
    pub fn marginal_label(&self) -> String {
        format!("∫f d{}", AXIS_NAMES[self.normal])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_and_marginals_of_a_3d_field() {
        let g = VelocityGrid::new3(5, 4, 6, [-2.0, 2.0, -1.0, 3.0, -3.0, 3.0], "v_th").unwrap();
        let value = |i: usize, j: usize, k: usize| (100 * i + 10 * j + k) as f64;
        let mut field = Vec::new();
        for i in 0..5 {
            for j in 0..4 {
                for k in 0..6 {
                    field.push(value(i, j, k));
                }
            }
        }
        let [xy, xz, yz] = PLANES_3D;
        // Central cells: v_x = 0 is the centre of cell 2; v_y centres -0.5, 0.5 (cells 0, 1) are
        // equally near 0, the upper is taken; likewise v_z's ±0.5 at cells 2, 3.
        assert_eq!((yz.central_cell(&g), xz.central_cell(&g), xy.central_cell(&g)), (2, 1, 3));
        assert_eq!(xy.slice_label(&g), "v_z = 0.5");
        assert_eq!(xz.slice_label(&g), "v_y = 0.5");
        assert_eq!(yz.slice_label(&g), "v_x = 0");
        assert_eq!(xz.marginal_label(), "∫f dv_y");
        let s = xz.central_slice(&g, &field);
        assert_eq!(s.dim(), (5, 6));
        assert_eq!(s[[4, 5]], value(4, 1, 5));
        let s = yz.central_slice(&g, &field);
        assert_eq!(s.dim(), (4, 6));
        assert_eq!(s[[3, 2]], value(2, 3, 2));
        let m = xy.marginal(&g, &field);
        assert_eq!(m.dim(), (5, 4));
        assert_eq!(m[[1, 2]], (0..6).map(|k| value(1, 2, k)).sum::<f64>());
        let m = yz.marginal(&g, &field);
        assert_eq!(m[[3, 5]], (0..5).map(|i| value(i, 3, 5)).sum::<f64>());
        let pg = xz.grid(&g);
        assert_eq!((pg.nx, pg.ny, pg.v_range, pg.dim()), (5, 6, [-2.0, 2.0, -3.0, 3.0], 2));
        assert_eq!(xz.axis_names(), ("v_x", "v_z"));
        // A range without 0: the middle.
        let off = VelocityGrid::new3(4, 4, 5, [-1.0, 1.0, -1.0, 1.0, 1.0, 6.0], "v_th").unwrap();
        assert_eq!(xy.central_cell(&off), 2);
    }

    #[test]
    fn a_2d_grid_is_its_own_plane() {
        let g = VelocityGrid::new(5, 4, [-2.0, 2.0, -1.0, 1.0], "v_th").unwrap();
        let field: Vec<f64> = (0..20).map(|c| c as f64).collect();
        assert_eq!(planes(&g).len(), 1);
        let p = planes(&g)[0];
        let whole = Array2::from_shape_vec((5, 4), field.clone()).unwrap();
        assert_eq!(p.central_slice(&g, &field), whole);
        assert_eq!(p.marginal(&g, &field), whole);
        assert_eq!(p.grid(&g), g);
    }
}
