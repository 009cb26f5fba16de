//! Non-negativity as a smooth reparameterisation: softplus on chosen parameter ranges, its exact
//! derivative for the VJP, and its inverse for setting parameters from values.
//!
//! A constrained coefficient is `q = softplus(θ) = ln(1 + e^θ) > 0`, with `dq/dθ = σ(θ)` (the
//! logistic function). Everything outside the ranges passes through unchanged. Because every
//! coefficient map of this crate is linear with non-negative weights from its diffusion
//! coefficients to D_xx, D_yy (or D_∥, D_⊥), positive coefficients give non-negative fields.

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
}

impl Softplus {
    pub fn new(ranges: impl IntoIterator<Item = Range<usize>>) -> Self {
        Self { ranges: ranges.into_iter().collect() }
    }

    /// The constrained ranges.
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.ranges.iter().flat_map(|r| r.clone())
    }

    /// `q = θ` with softplus applied on the ranges.
    pub fn forward(&self, theta: &[f64]) -> Vec<f64> {
        let mut q = theta.to_vec();
        for i in self.indices() {
            q[i] = softplus(theta[i]);
        }
        q
    }

    /// Chain rule through [`Self::forward`] at `theta`: `d[i] *= σ(θ_i)` on the ranges. Used for
    /// both the VJP (`d = ∂L/∂q`) and the JVP (`d = δθ`), since the Jacobian is diagonal.
    pub fn chain(&self, theta: &[f64], d: &mut [f64]) {
        for i in self.indices() {
            d[i] *= sigmoid(theta[i]);
        }
    }

    /// θ with `forward(θ) = q`; on failure, the index of a constrained entry that is not
    /// finite and positive.
    pub fn inverse(&self, q: &[f64]) -> Result<Vec<f64>, usize> {
        let mut theta = q.to_vec();
        for i in self.indices() {
            theta[i] = softplus_inverse(q[i]).ok_or(i)?;
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
}
