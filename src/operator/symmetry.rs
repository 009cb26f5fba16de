//! Mirror symmetry as a coefficient map: fields invariant under v_x → −v_x and the swap
//! v_x ↔ v_y (2D), or under the reflection of each axis (3D), with one coefficient per
//! independent value (the `tensor-sym` model).
//!
//! **3D.** Invariance under each reflection v_k → −v_k alone: A_i is odd in v_i and even in the
//! other components, D_ii is even in all three, D_ij (i ≠ j) is odd in v_i and v_j and even in the
//! third. No axis swap is imposed (in 2D3V PIC data v_z is not equivalent to v_x, v_y), so the
//! grid need not be a cube, only symmetric about zero along every axis. Coefficients live on the
//! folded octant, field by field in the [`super::fp`] order (A_x, A_y, A_z, D_xx, D_yy, D_zz,
//! D_xy, D_xz, D_yz), folded cells in C order within a field; a field odd along an axis with an
//! odd cell count has no coefficient on that axis's centre plane (v = 0, where it is zero).
//!
//! **2D.**
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
use super::fp;
use super::tensor::{grid_unit_scales_nd, SignedGather, D_SLOTS_3D};
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

/// The axes along which 3D field `f` ([`fp`] order) is odd under reflection: A_i in v_i, D_ij
/// (i ≠ j) in v_i and v_j, D_ii in none.
pub fn odd_axes_3d(f: usize) -> [bool; 3] {
    let d = 3;
    let mut o = [false; 3];
    if f < d {
        o[f] = true;
    } else if f >= 2 * d {
        for i in 0..d {
            for j in i + 1..d {
                if fp::d(d, i, j) == f {
                    o[i] = true;
                    o[j] = true;
                }
            }
        }
    }
    o
}

/// Why a 3D grid has no mirror image of every cell along every axis (`None` if it has).
pub fn not_centred_3d(grid: &VelocityGrid) -> Option<String> {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
    ["v_x", "v_y", "v_z"].into_iter().enumerate().find_map(|(a, name)| {
        let [lo, hi] = grid.range(a);
        (!close(-lo, hi)).then(|| format!("needs a grid symmetric about zero along every axis, the {name} range is [{lo}, {hi}]"))
    })
}

/// The 3D reflection-symmetric coefficient map (see the module docs for the layout).
fn mirror_map_3d(grid: &VelocityGrid) -> Result<SignedGather, ModelError> {
    if let Some(why) = not_centred_3d(grid) {
        return Err(ModelError::BadOption { key: "kind", msg: format!("tensor-sym {why}") });
    }
    let d = 3;
    let nf = fp::n_fields(d);
    let ext = grid.extents();
    let m: Vec<usize> = ext.iter().map(|e| e.div_ceil(2)).collect();
    let n_folded = m[0] * m[1] * m[2];
    let odd = odd_axes_3d;
    // Coefficient of (field, folded cell), field-major.
    let mut index = vec![usize::MAX; nf * n_folded];
    let mut next = 0;
    let mut diffusion = 0..0;
    for f in 0..nf {
        if f == fp::d(d, 0, 0) {
            diffusion.start = next;
        }
        let o = odd(f);
        for c in 0..n_folded {
            let a = [c / (m[1] * m[2]), (c / m[2]) % m[1], c % m[2]];
            // An odd field vanishes on the centre plane of an axis with an odd cell count.
            if (0..d).any(|k| o[k] && ext[k] % 2 == 1 && a[k] == 0) {
                continue;
            }
            index[f * n_folded + c] = next;
            next += 1;
        }
        if f == fp::d(d, d - 1, d - 1) {
            diffusion.end = next;
        }
    }
    let scales = grid_unit_scales_nd(grid);
    let cells = grid.n_cells();
    let (s1, s2) = (grid.stride(0), grid.stride(1));
    // D at a cell is H S D̂ S H (H the spacings, S the reflection signs) of its folded cell's D̂;
    // a field's missing coefficient is an axis on its centre plane, decoupled from the others.
    let blocks = (0..n_folded)
        .map(|c| D_SLOTS_3D.map(|(i, j)| Some(index[fp::d(d, i, j) * n_folded + c]).filter(|&k| k != usize::MAX)))
        .collect();
    Ok(SignedGather::new(nf * cells, next, diffusion, |out| {
        let (f, cell) = (out / cells, out % cells);
        let idx = [cell / s1, (cell % s1) / s2, cell % s2];
        let o = odd(f);
        let (mut folded, mut sign) = (0, 1.0);
        for k in 0..d {
            let (a, sk) = fold(idx[k], ext[k]);
            folded = folded * m[k] + a;
            if o[k] {
                sign *= sk;
            }
        }
        (sign != 0.0).then(|| (index[f * n_folded + folded], sign * scales[f]))
    })
    .with_psd_blocks(blocks))
}

/// The mirror-symmetric coefficient map (see the module docs for the layout).
pub fn mirror_map(grid: &VelocityGrid) -> Result<SignedGather, ModelError> {
    if grid.dim() == 3 {
        return mirror_map_3d(grid);
    }
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
        for (nx, ny, nz) in [(4, 5, 6), (5, 5, 5), (7, 4, 5)] {
            let g = VelocityGrid::new3(nx, ny, nz, [-2.0, 2.0, -3.0, 3.0, -1.0, 1.0], "v_th").unwrap();
            let map = mirror_map(&g).unwrap();
            assert!(map.representatives().iter().all(|r| r.is_some()), "{nx}×{ny}×{nz}");
        }
    }
}
