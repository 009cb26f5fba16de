//! Mirror symmetry as a coefficient map: fields invariant under v_x → −v_x and the swap
//! v_x ↔ v_y, with one coefficient per independent value (the `tensor-sym` model).
//!
//! The spec asks for A_x odd in v_x, D_xx even, D_xy odd, A_y = A_xᵀ, D_yy = D_xxᵀ. Read as an
//! invariance of the operator, "A_y = A_xᵀ, D_yy = D_xxᵀ" is invariance under the swap S, and "A_x
//! odd in v_x" under the reflection R_x. Then it is also invariant under R_y = S R_x S, so the
//! full group is the square's D4 and the parities are:
//!
//! | field | in v_x | in v_y | swap |
//! |-------|--------|--------|------|
//! | A_x   | odd    | even   | A_y(v_x, v_y) = A_x(v_y, v_x) |
//! | A_y   | even   | odd    | (from A_x) |
//! | D_xx  | even   | even   | D_yy(v_x, v_y) = D_xx(v_y, v_x) |
//! | D_yy  | even   | even   | (from D_xx) |
//! | D_xy  | odd    | odd    | D_xy(v_x, v_y) = D_xy(v_y, v_x) |
//!
//! So the coefficients live on one quadrant (|v_x|, |v_y| folded): A_x and D_xx on the m×m
//! quadrant (m = ⌈N/2⌉) and D_xy on its upper triangle. With odd N the centre row/column sits at
//! v = 0, where odd parity forces zero: A_x has no coefficient on the centre column (v_x = 0),
//! A_y none on the centre row, D_xy none on either. The grid must be square and symmetric about
//! zero (`[−a, a, −a, a]`), or the mirror images of cells would not be cells.
//!
//! Coefficient layout (grid units, Δv the common spacing): A_x block `(a − z)·m + b` for folded
//! indices a ≥ z, b (z = 1 for odd N, else 0); then D_xx block `a·m + b`; then D_xy upper
//! triangle over folded indices ≥ z. An MLP that wants this symmetry can evaluate itself at
//! [`SignedGather::representatives`] cells and reuse the same map.

use super::fp::{AX, AY, DXX, DXY, DYY, N_FIELDS};
use super::fp_model::FpModel;
use super::tensor::SignedGather;
use super::{BuildInfo, ModelError, ModelSpec};
use crate::grid::VelocityGrid;

/// Folded index and sign of cell `i` on an axis of `n` cells symmetric about zero: the distance
/// (in cells) of its mirror-image class from the centre, and the sign of its velocity (0 at v = 0).
pub fn fold(i: usize, n: usize) -> (usize, f64) {
    let h = n / 2;
    if n % 2 == 1 {
        match i.cmp(&h) {
            std::cmp::Ordering::Less => (h - i, -1.0),
            std::cmp::Ordering::Equal => (0, 0.0),
            std::cmp::Ordering::Greater => (i - h, 1.0),
        }
    } else if i >= h {
        (i - h, 1.0)
    } else {
        (h - 1 - i, -1.0)
    }
}

/// Whether `grid` is square and symmetric about zero in both directions (to 1e-12 relative).
pub fn is_mirror_symmetric(grid: &VelocityGrid) -> bool {
    let [x0, x1, y0, y1] = grid.v_range;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
    grid.nx == grid.ny && close(-x0, x1) && close(-y0, y1) && close(x1, y1)
}

/// The mirror-symmetric coefficient map (see the module docs for the layout).
pub fn mirror_map(grid: &VelocityGrid) -> Result<SignedGather, ModelError> {
    if !is_mirror_symmetric(grid) {
        return Err(ModelError::BadOption {
            key: "kind",
            msg: format!(
                "mirror symmetry needs a square grid symmetric about zero, got {}×{} cells over {:?}",
                grid.nx, grid.ny, grid.v_range
            ),
        });
    }
    let n = grid.nx;
    let cells = grid.n_cells();
    let m = n.div_ceil(2);
    let z = n % 2;
    let k = m - z;
    let n_ax = k * m;
    let n_dxx = m * m;
    let n_dxy = k * (k + 1) / 2;
    let ax = |a: usize, b: usize| (a - z) * m + b;
    let dxx = |a: usize, b: usize| n_ax + a * m + b;
    let dxy = |a: usize, b: usize| {
        let (lo, hi) = if a <= b { (a - z, b - z) } else { (b - z, a - z) };
        n_ax + n_dxx + lo * k - lo * lo.saturating_sub(1) / 2 + (hi - lo)
    };
    let h = grid.dvx();
    let (h1, h2) = (h, h * h);
    let map = SignedGather::new(N_FIELDS * cells, n_ax + n_dxx + n_dxy, n_ax..n_ax + n_dxx, |out| {
        let (field, cell) = (out / cells, out % cells);
        let ((a, sa), (b, sb)) = (fold(cell / n, n), fold(cell % n, n));
        match field {
            AX => (sa != 0.0).then(|| (ax(a, b), sa * h1)),
            AY => (sb != 0.0).then(|| (ax(b, a), sb * h1)),
            DXX => Some((dxx(a, b), h2)),
            DYY => Some((dxx(b, a), h2)),
            DXY => (sa * sb != 0.0).then(|| (dxy(a, b), sa * sb * h2)),
            _ => unreachable!("five Fokker–Planck fields"),
        }
    });
    Ok(map)
}

/// The `tensor-sym` model.
pub fn build(spec: &ModelSpec, info: &BuildInfo) -> Result<FpModel<SignedGather>, ModelError> {
    Ok(FpModel::new("tensor-sym", info.grid.clone(), mirror_map(&info.grid)?, spec.nonnegative_d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_pairs_mirror_cells() {
        for n in [4, 5, 6, 7] {
            for i in 0..n {
                let (a, s) = fold(i, n);
                let (a2, s2) = fold(n - 1 - i, n);
                assert_eq!(a, a2);
                assert_eq!(s, -s2);
                assert!(a < n.div_ceil(2));
            }
        }
    }

    #[test]
    fn every_coefficient_is_used() {
        for n in [4, 5, 8, 9] {
            let g = VelocityGrid::square(n, 3.0).unwrap();
            let map = mirror_map(&g).unwrap();
            assert!(map.representatives().iter().all(|r| r.is_some()), "n = {n}");
        }
    }
}
