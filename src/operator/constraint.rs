//! Non-negativity as a smooth reparameterisation: softplus on chosen parameter ranges, its exact
//! derivative for the VJP, and its inverse for setting parameters from values.
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
}
