//! The isotropic map shared by every radial parameterisation: (A_∥, D_∥, D_⊥) at a cell with
//! direction v̂ → the Cartesian Fokker–Planck fields, and its transpose, in 2 or 3 dimensions.
//!
//! A = A_∥ v̂ and D = D_∥ v̂v̂ + D_⊥(I − v̂v̂). In 2D, with v̂ = (cosθ, sinθ): A_x = A_∥cosθ,
//! A_y = A_∥sinθ, D_xx = D_∥cos²θ + D_⊥sin²θ, D_yy = D_∥sin²θ + D_⊥cos²θ,
//! D_xy = (D_∥ − D_⊥)sinθcosθ. In 3D: A_i = A_∥n_i, D_ii = D_∥n_i² + D_⊥(1 − n_i²),
//! D_ij = (D_∥ − D_⊥)n_in_j. At v = 0 the direction is taken as the diagonal (all n_i = 1/√d);
//! models that need the fields there to be independent of that choice make A_∥(0) = 0 and
//! D_∥(0) = D_⊥(0) (see [`super::radial`]).

use super::{fp, Fields};
use crate::grid::VelocityGrid;

/// Unit direction and |v| of every cell centre, C order. `cos`, `sin` are the first two
/// components of v̂ (cosθ, sinθ in 2D); `cz` its third (empty in 2D).
#[derive(Clone, Debug)]
pub struct Polar {
    pub cos: Vec<f64>,
    pub sin: Vec<f64>,
    pub cz: Vec<f64>,
    pub speed: Vec<f64>,
}

impl Polar {
    pub fn new(grid: &VelocityGrid) -> Self {
        let n = grid.n_cells();
        let (mut cos, mut sin, mut speed) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let mut cz = Vec::new();
        if grid.dim() == 3 {
            let diag = 1.0 / 3f64.sqrt();
            cz.reserve(n);
            for i in 0..grid.nx {
                let vx = grid.centre(0, i);
                for j in 0..grid.ny {
                    let vy = grid.centre(1, j);
                    for k in 0..grid.nz() {
                        let vz = grid.centre(2, k);
                        let v = vx.hypot(vy).hypot(vz);
                        let (a, b, c) = if v > 0.0 { (vx / v, vy / v, vz / v) } else { (diag, diag, diag) };
                        cos.push(a);
                        sin.push(b);
                        cz.push(c);
                        speed.push(v);
                    }
                }
            }
            return Self { cos, sin, cz, speed };
        }
        for i in 0..grid.nx {
            let vx = grid.vx(i);
            for j in 0..grid.ny {
                let vy = grid.vy(j);
                let v = vx.hypot(vy);
                let (c, s) = if v > 0.0 { (vx / v, vy / v) } else { (std::f64::consts::FRAC_1_SQRT_2, std::f64::consts::FRAC_1_SQRT_2) };
                cos.push(c);
                sin.push(s);
                speed.push(v);
            }
        }
        Self { cos, sin, cz, speed }
    }

    /// Number of velocity dimensions.
    pub fn dim(&self) -> usize {
        if self.cz.is_empty() {
            2
        } else {
            3
        }
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.speed.len()
    }

    /// v̂ of cell `c` (third component 0 in 2D).
    pub fn dir(&self, c: usize) -> [f64; 3] {
        [self.cos[c], self.sin[c], self.cz.get(c).copied().unwrap_or(0.0)]
    }

    /// The transpose at one cell: field cotangents `d_fields` (field-major, all cells) →
    /// (∂L/∂A_∥, ∂L/∂D_∥, ∂L/∂D_⊥) of cell `c`.
    #[inline]
    pub fn project(&self, d_fields: &[f64], c: usize) -> [f64; 3] {
        let n = self.n_cells();
        let g = |k: usize| d_fields[k * n + c];
        if self.cz.is_empty() {
            let (co, si) = (self.cos[c], self.sin[c]);
            let (gax, gay, gxx, gyy, gxy) = (g(0), g(1), g(2), g(3), g(4));
            return [
                gax * co + gay * si,
                gxx * co * co + gyy * si * si + gxy * si * co,
                gxx * si * si + gyy * co * co - gxy * si * co,
            ];
        }
        let u = self.dir(c);
        let (mut ga, mut gp, mut gq) = (0.0, 0.0, 0.0);
        for (i, &ui) in u.iter().enumerate() {
            ga += g(fp::a(i)) * ui;
            let gii = g(fp::d(3, i, i));
            gp += gii * ui * ui;
            gq += gii * (1.0 - ui * ui);
        }
        for (i, j) in [(0, 1), (0, 2), (1, 2)] {
            let t = g(fp::d(3, i, j)) * u[i] * u[j];
            gp += t;
            gq -= t;
        }
        [ga, gp, gq]
    }
}

/// Per-cell (A_∥, D_∥, D_⊥) → the Fokker–Planck fields, written into `out`
/// (`[n_fields · n_cells]`, field-major).
pub fn to_cartesian(p: &Polar, a_par: &[f64], d_par: &[f64], d_perp: &[f64], out: &mut [f64]) {
    let n = p.cos.len();
    if p.dim() == 3 {
        assert_eq!(out.len(), fp::n_fields(3) * n);
        for c in 0..n {
            let u = p.dir(c);
            let diff = d_par[c] - d_perp[c];
            for i in 0..3 {
                out[fp::a(i) * n + c] = a_par[c] * u[i];
                out[fp::d(3, i, i) * n + c] = d_par[c] * u[i] * u[i] + d_perp[c] * (1.0 - u[i] * u[i]);
            }
            for (i, j) in [(0, 1), (0, 2), (1, 2)] {
                out[fp::d(3, i, j) * n + c] = diff * u[i] * u[j];
            }
        }
        return;
    }
    let (ax, rest) = out.split_at_mut(n);
    let (ay, rest) = rest.split_at_mut(n);
    let (dxx, rest) = rest.split_at_mut(n);
    let (dyy, dxy) = rest.split_at_mut(n);
    for c in 0..n {
        let (co, si) = (p.cos[c], p.sin[c]);
        ax[c] = a_par[c] * co;
        ay[c] = a_par[c] * si;
        dxx[c] = d_par[c] * co * co + d_perp[c] * si * si;
        dyy[c] = d_par[c] * si * si + d_perp[c] * co * co;
        dxy[c] = (d_par[c] - d_perp[c]) * si * co;
    }
}

/// The fields of an operator whose coefficients depend on (v_x, v_y) only and which has no drag
/// along v_z — the plasma of a 2D3V electrostatic code, whose particles keep their v_z — on
/// `grid`: the in-plane fields `planar` (`[5 · nx·ny]` field-major on [`VelocityGrid::plane`],
/// A_x, A_y, D_xx, D_yy, D_xy) repeated along v_z, D_zz from `d_zz` (per in-plane cell; 0 if
/// `None`) and A_z = D_xz = D_yz = 0. On a 2D grid, `planar` itself.
pub fn extrude_planar(grid: &VelocityGrid, planar: &[f64], d_zz: Option<&[f64]>) -> Fields {
    let (nx, ny, nz) = (grid.nx, grid.ny, grid.nz());
    let n2 = nx * ny;
    assert_eq!(planar.len(), fp::N_FIELDS * n2, "in-plane fields");
    if grid.dim() == 2 {
        return Fields::from_shape_vec((fp::N_FIELDS, nx, ny), planar.to_vec()).expect("field shape");
    }
    let to_3d = [fp::a(0), fp::a(1), fp::d(3, 0, 0), fp::d(3, 1, 1), fp::d(3, 0, 1)];
    let mut out = Fields::zeros(grid.fields_shape(fp::n_fields(3)));
    for c in 0..n2 {
        let (i, j) = (c / ny, c % ny);
        for k in 0..nz {
            for (f2, &f3) in to_3d.iter().enumerate() {
                out[[f3, i, j * nz + k]] = planar[f2 * n2 + c];
            }
            out[[fp::d(3, 2, 2), i, j * nz + k]] = d_zz.map_or(0.0, |d| d[c]);
        }
    }
    out
}

/// Transpose of [`to_cartesian`]: accumulate into the per-cell radial gradients.
pub fn to_cartesian_vjp(p: &Polar, d_fields: &[f64], g_a_par: &mut [f64], g_d_par: &mut [f64], g_d_perp: &mut [f64]) {
    for c in 0..p.n_cells() {
        let [ga, gp, gq] = p.project(d_fields, c);
        g_a_par[c] += ga;
        g_d_par[c] += gp;
        g_d_perp[c] += gq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_identity() {
        let g = VelocityGrid::square(7, 3.0).unwrap();
        let p = Polar::new(&g);
        let n = g.n_cells();
        let r = |k: usize| (0..n).map(|c| ((c * 7 + k * 13) % 11) as f64 / 11.0 - 0.4).collect::<Vec<_>>();
        let (a, dp, dq) = (r(1), r(2), r(3));
        let w: Vec<f64> = (0..5 * n).map(|c| ((c * 5) % 17) as f64 / 17.0 - 0.5).collect();
        let mut out = vec![0.0; 5 * n];
        to_cartesian(&p, &a, &dp, &dq, &mut out);
        let lhs: f64 = out.iter().zip(&w).map(|(x, y)| x * y).sum();
        let (mut ga, mut gp, mut gq) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        to_cartesian_vjp(&p, &w, &mut ga, &mut gp, &mut gq);
        let rhs: f64 = (0..n).map(|c| ga[c] * a[c] + gp[c] * dp[c] + gq[c] * dq[c]).sum();
        assert!((lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0), "{lhs} vs {rhs}");
        // The centre cell of an odd grid sits at v = 0 and uses the diagonal direction.
        let c0 = (7 / 2) * 7 + 7 / 2;
        assert_eq!(p.speed[c0], 0.0);
        assert_eq!(p.cos[c0], std::f64::consts::FRAC_1_SQRT_2);
    }

    #[test]
    fn transpose_identity_3d() {
        let g = VelocityGrid::cube(5, 3.0).unwrap();
        let p = Polar::new(&g);
        let n = g.n_cells();
        let r = |k: usize| (0..n).map(|c| ((c * 7 + k * 13) % 11) as f64 / 11.0 - 0.4).collect::<Vec<_>>();
        let (a, dp, dq) = (r(1), r(2), r(3));
        let w: Vec<f64> = (0..9 * n).map(|c| ((c * 5) % 17) as f64 / 17.0 - 0.5).collect();
        let mut out = vec![0.0; 9 * n];
        to_cartesian(&p, &a, &dp, &dq, &mut out);
        let lhs: f64 = out.iter().zip(&w).map(|(x, y)| x * y).sum();
        let (mut ga, mut gp, mut gq) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        to_cartesian_vjp(&p, &w, &mut ga, &mut gp, &mut gq);
        let rhs: f64 = (0..n).map(|c| ga[c] * a[c] + gp[c] * dp[c] + gq[c] * dq[c]).sum();
        assert!((lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0), "{lhs} vs {rhs}");
        // D v̂ = D_∥ v̂ and the trace is D_∥ + 2D_⊥ at every cell.
        for c in 0..n {
            let u = p.dir(c);
            let d = |i, j| out[fp::d(3, i, j) * n + c];
            for i in 0..3 {
                let dv: f64 = (0..3).map(|j| d(i, j) * u[j]).sum();
                assert!((dv - dp[c] * u[i]).abs() < 1e-14, "cell {c}");
            }
            assert!((d(0, 0) + d(1, 1) + d(2, 2) - dp[c] - 2.0 * dq[c]).abs() < 1e-14);
        }
    }
}
