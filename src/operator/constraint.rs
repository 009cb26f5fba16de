//! Non-negativity as a smooth reparameterisation: softplus on chosen parameter ranges, its exact
//! derivative for the VJP, and its inverse for setting parameters from values; and positive
//! semi-definiteness of 3×3 diffusion tensors as a Cholesky-like product ([`Cholesky`]).
//!
//! A constrained coefficient is `q = s·softplus(θ/s) = s·ln(1 + e^(θ/s)) > 0`, with
//! `dq/dθ = σ(θ/s)` (the logistic function): a ReLU whose corner is rounded over a width `s`.
//! Everything outside the ranges passes through unchanged. Because every coefficient map of this
//! crate is linear with non-negative weights from its diffusion coefficients to D_xx, D_yy (or
//! D_∥, D_⊥), positive coefficients give non-negative fields.
//!
//! **Why the scale.** Adam moves each parameter by about its learning rate per step, whatever
//! the gradient. With `s = 1` and coefficients of order 0.01–0.5 grid units, θ lives in the
//! exponential tail of the softplus, so an Adam step is a *relative* change of q of about lr:
//! going from the initial 0.01 to a typical 0.4 takes ~4/lr steps, and a model trained for the
//! usual few thousand epochs at lr 1e-3 ended with D 5–30× too small. With `s` the size of the
//! smallest coefficients that matter ([`crate::operator::fp_model::SOFTPLUS_CORNER`] for
//! the Fokker–Planck models), q = θ above a few `s`, so Adam steps are absolute changes as for
//! an unconstrained model, and only coefficients driven towards zero feel the constraint.

use std::ops::Range;

/// `ln(1 + e^x)`, without overflow for large |x|.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The logistic function `1 / (1 + e^{-x})`, the derivative of [`softplus`].
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The θ with `softplus(θ) = y`, for finite `y > 0`.
pub fn softplus_inverse(y: f64) -> Option<f64> {
    (y.is_finite() && y > 0.0).then(|| y + (-(-y).exp_m1()).ln())
}

/// Softplus applied to some parameter ranges, identity elsewhere.
#[derive(Clone, Debug, PartialEq)]
pub struct Softplus {
    ranges: Vec<Range<usize>>,
    /// Corner width s (> 0) in the units of the coefficients.
    scale: f64,
}

impl Softplus {
    /// Softplus of corner width `scale` (> 0, finite) on `ranges`.
    pub fn new(ranges: impl IntoIterator<Item = Range<usize>>, scale: f64) -> Self {
        assert!(scale.is_finite() && scale > 0.0, "softplus scale must be finite and > 0");
        Self { ranges: ranges.into_iter().collect(), scale }
    }

    /// The constrained ranges.
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.ranges.iter().flat_map(|r| r.clone())
    }

    /// `q = θ` with `s·softplus(θ/s)` applied on the ranges.
    pub fn forward(&self, theta: &[f64]) -> Vec<f64> {
        let mut q = theta.to_vec();
        let s = self.scale;
        for i in self.indices() {
            q[i] = s * softplus(theta[i] / s);
        }
        q
    }

    /// Chain rule through [`Self::forward`] at `theta`: `d[i] *= σ(θ_i/s)` on the ranges. Used
    /// for both the VJP (`d = ∂L/∂q`) and the JVP (`d = δθ`), since the Jacobian is diagonal.
    pub fn chain(&self, theta: &[f64], d: &mut [f64]) {
        for i in self.indices() {
            d[i] *= sigmoid(theta[i] / self.scale);
        }
    }

    /// θ with `forward(θ) = q`; on failure, the index of a constrained entry that is not
    /// finite and positive.
    pub fn inverse(&self, q: &[f64]) -> Result<Vec<f64>, usize> {
        let mut theta = q.to_vec();
        let s = self.scale;
        for i in self.indices() {
            theta[i] = s * softplus_inverse(q[i] / s).ok_or(i)?;
        }
        Ok(theta)
    }
}

/// Indices of one symmetric 3×3 block's coefficients, in the order xx, yy, zz, xy, xz, yz;
/// `None` for a structural zero. Zeros must decouple whole axes: if an off-diagonal (i, j) is
/// missing, axis i or j has no off-diagonal at all.
pub type Block3 = [Option<usize>; 6];

/// D positive semi-definite per block: the parameters at a block's indices are a lower
/// triangular L (L_00, L_11, L_22, L_10, L_20, L_21 at the xx, yy, zz, xy, xz, yz indices) and
/// the coefficients are D = L Lᵀ, which is PSD for every L. Missing entries of a block are zero
/// in L and not written in D (structural zeros stay zero because they decouple whole axes).
/// Everything outside the blocks passes through unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct Cholesky {
    blocks: Vec<Block3>,
}

/// (row, column) of L / D for the six slots of a [`Block3`].
const SLOTS: [(usize, usize); 6] = [(0, 0), (1, 1), (2, 2), (1, 0), (2, 0), (2, 1)];

impl Cholesky {
    pub fn new(blocks: Vec<Block3>) -> Self {
        Self { blocks }
    }

    fn lower(b: &Block3, x: &[f64]) -> [[f64; 3]; 3] {
        let mut l = [[0.0; 3]; 3];
        for (s, &(i, j)) in SLOTS.iter().enumerate() {
            if let Some(k) = b[s] {
                l[i][j] = x[k];
            }
        }
        l
    }

    /// `q = θ` with D = L Lᵀ on every block.
    pub fn forward(&self, theta: &[f64]) -> Vec<f64> {
        let mut q = theta.to_vec();
        for b in &self.blocks {
            let l = Self::lower(b, theta);
            for (s, &(i, j)) in SLOTS.iter().enumerate() {
                if let Some(k) = b[s] {
                    q[k] = (0..=j).map(|m| l[i][m] * l[j][m]).sum();
                }
            }
        }
        q
    }

    /// VJP through [`Self::forward`] at `theta`: `d` holds ∂L/∂q on entry and ∂L/∂θ on exit.
    pub fn vjp(&self, theta: &[f64], d: &mut [f64]) {
        for b in &self.blocks {
            let l = Self::lower(b, theta);
            // G symmetric: G_ii = 2 g_ii, G_ij = g_ij; ∂L/∂L_ab = (G L)_ab for a ≥ b.
            let mut g = [[0.0; 3]; 3];
            for (s, &(i, j)) in SLOTS.iter().enumerate() {
                if let Some(k) = b[s] {
                    if i == j {
                        g[i][i] = 2.0 * d[k];
                    } else {
                        g[i][j] = d[k];
                        g[j][i] = d[k];
                    }
                }
            }
            for (s, &(a, c)) in SLOTS.iter().enumerate() {
                if let Some(k) = b[s] {
                    d[k] = (0..3).map(|m| g[a][m] * l[m][c]).sum();
                }
            }
        }
    }

    /// JVP through [`Self::forward`] at `theta`: `d` holds δθ on entry and δq on exit.
    pub fn jvp(&self, theta: &[f64], d: &mut [f64]) {
        for b in &self.blocks {
            let (l, dl) = (Self::lower(b, theta), Self::lower(b, d));
            for (s, &(i, j)) in SLOTS.iter().enumerate() {
                if let Some(k) = b[s] {
                    d[k] = (0..=j).map(|m| dl[i][m] * l[j][m] + l[i][m] * dl[j][m]).sum();
                }
            }
        }
    }

    /// θ with `forward(θ) = q` (the Cholesky factor with positive diagonal); on failure, the
    /// index of a block's diagonal whose pivot is not finite and positive.
    pub fn inverse(&self, q: &[f64]) -> Result<Vec<f64>, usize> {
        let mut theta = q.to_vec();
        for b in &self.blocks {
            let mut l = [[0.0; 3]; 3];
            // Row by row: L_00, L_10, L_11, L_20, L_21, L_22.
            for s in [0, 3, 1, 4, 5, 2] {
                let (i, j) = SLOTS[s];
                let Some(k) = b[s] else { continue };
                let rest: f64 = (0..j).map(|m| l[i][m] * l[j][m]).sum();
                if i == j {
                    let p = q[k] - rest;
                    if !(p.is_finite() && p > 0.0) {
                        return Err(k);
                    }
                    l[i][i] = p.sqrt();
                } else {
                    l[i][j] = (q[k] - rest) / l[j][j];
                }
                theta[k] = l[i][j];
            }
        }
        Ok(theta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_pieces_agree() {
        for x in [-800.0, -30.0, -1.5, -1e-9, 0.0, 0.3, 2.0, 40.0, 800.0] {
            let y = softplus(x);
            assert!(y.is_finite() && y >= 0.0, "{x}");
            let h = 1e-6 * (1.0 + f64::abs(x));
            let fd = (softplus(x + h) - softplus(x - h)) / (2.0 * h);
            assert!((fd - sigmoid(x)).abs() < 1e-8, "{x}: {fd} vs {}", sigmoid(x));
            if y > 0.0 && x > -30.0 {
                let back = softplus_inverse(y).unwrap();
                assert!((back - x).abs() <= 1e-12 * (1.0 + x.abs()), "{x} -> {y} -> {back}");
            }
        }
        assert!(softplus_inverse(0.0).is_none());
        assert!(softplus_inverse(-1.0).is_none());
        assert!(softplus_inverse(f64::NAN).is_none());
    }

    #[test]
    fn scaled_softplus_is_linear_above_its_corner_and_inverts() {
        let sp = Softplus::new(vec![1..2, 2..3], 0.01);
        let theta = [-7.0, 0.4, -0.05];
        let q = sp.forward(&theta);
        assert_eq!(q[0], -7.0, "outside the ranges θ passes through");
        // A few corner widths above zero, q = θ to e^(−40)·s.
        assert!((q[1] - 0.4).abs() < 1e-15, "{}", q[1]);
        // Below zero, positive and tiny.
        assert!(q[2] > 0.0 && q[2] < 0.01 * (-5.0f64).exp() * 1.01, "{}", q[2]);
        let back = sp.inverse(&q).unwrap();
        for (a, b) in back.iter().zip(&theta) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        // Chain rule against finite differences.
        let h = 1e-7;
        for (i, &t) in theta.iter().enumerate() {
            let (mut tp, mut tm) = (theta, theta);
            tp[i] = t + h;
            tm[i] = t - h;
            let fd = (sp.forward(&tp)[i] - sp.forward(&tm)[i]) / (2.0 * h);
            let mut d = [0.0; 3];
            d[i] = 1.0;
            sp.chain(&theta, &mut d);
            assert!((fd - d[i]).abs() < 1e-6, "{i}: {fd} vs {}", d[i]);
        }
        assert_eq!(sp.inverse(&[0.0, 0.0, 0.1]), Err(1));
    }

    #[test]
    fn cholesky_is_exact_and_inverts() {
        // One full block and one with axis 0 decoupled (no xy, xz), plus a free entry.
        let ch = Cholesky::new(vec![[Some(0), Some(1), Some(2), Some(3), Some(4), Some(5)], [Some(6), Some(7), Some(8), None, None, Some(9)]]);
        let theta = [0.7, -0.4, 0.9, 0.3, -0.2, 0.5, 1.1, 0.6, -0.8, 0.25, 3.0];
        let q = ch.forward(&theta);
        assert_eq!(q[10], 3.0);
        assert_eq!(q[0], 0.7 * 0.7);
        let back = ch.forward(&ch.inverse(&q).unwrap());
        for (a, b) in back.iter().zip(&q) {
            assert!((a - b).abs() < 1e-14, "{a} vs {b}");
        }
        // VJP against central differences, and ⟨J u, w⟩ = ⟨u, Jᵀ w⟩.
        let w: Vec<f64> = (0..11).map(|i| (i as f64 * 0.37).sin()).collect();
        let u: Vec<f64> = (0..11).map(|i| (i as f64 * 0.91).cos()).collect();
        let mut g = w.clone();
        ch.vjp(&theta, &mut g);
        let mut ju = u.clone();
        ch.jvp(&theta, &mut ju);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        assert!((dot(&ju, &w) - dot(&u, &g)).abs() < 1e-14);
        let h = 1e-6;
        for i in 0..11 {
            let (mut tp, mut tm) = (theta, theta);
            tp[i] += h;
            tm[i] -= h;
            let fd = (dot(&ch.forward(&tp), &w) - dot(&ch.forward(&tm), &w)) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-8, "{i}: {fd} vs {}", g[i]);
        }
        assert!(ch.inverse(&[1.0, 1.0, 1.0, 2.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]).is_err(), "indefinite block");
    }
}
