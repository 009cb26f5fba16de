//! The isotropic map shared by every radial parameterisation: (A_∥, D_∥, D_⊥) at a cell with
//! polar angle θ → (A_x, A_y, D_xx, D_yy, D_xy), and its transpose.
//!
//! A_x = A_∥cosθ, A_y = A_∥sinθ, D_xx = D_∥cos²θ + D_⊥sin²θ, D_yy = D_∥sin²θ + D_⊥cos²θ,
//! D_xy = (D_∥ − D_⊥)sinθcosθ; at v = 0 the direction is taken as cosθ = sinθ = √2/2.

use crate::grid::VelocityGrid;

/// cosθ, sinθ and |v| of every cell centre, C order.
#[derive(Clone, Debug)]
pub struct Polar {
    pub cos: Vec<f64>,
    pub sin: Vec<f64>,
    pub speed: Vec<f64>,
}

impl Polar {
    pub fn new(grid: &VelocityGrid) -> Self {
        let n = grid.n_cells();
        let (mut cos, mut sin, mut speed) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
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
        Self { cos, sin, speed }
    }
}

/// Per-cell (A_∥, D_∥, D_⊥) → the five Fokker–Planck fields, written into `out`
/// (`[5 * n_cells]`, field-major).
pub fn to_cartesian(p: &Polar, a_par: &[f64], d_par: &[f64], d_perp: &[f64], out: &mut [f64]) {
    let n = p.cos.len();
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

/// Transpose of [`to_cartesian`]: accumulate into the per-cell radial gradients.
pub fn to_cartesian_vjp(p: &Polar, d_fields: &[f64], g_a_par: &mut [f64], g_d_par: &mut [f64], g_d_perp: &mut [f64]) {
    let n = p.cos.len();
    let f = |k: usize| &d_fields[k * n..(k + 1) * n];
    let (gax, gay, gxx, gyy, gxy) = (f(0), f(1), f(2), f(3), f(4));
    for c in 0..n {
        let (co, si) = (p.cos[c], p.sin[c]);
        g_a_par[c] += gax[c] * co + gay[c] * si;
        g_d_par[c] += gxx[c] * co * co + gyy[c] * si * si + gxy[c] * si * co;
        g_d_perp[c] += gxx[c] * si * si + gyy[c] * co * co - gxy[c] * si * co;
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
}
