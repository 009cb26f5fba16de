//! Smoothness penalties: squared finite differences of parameters, and their gradient.
//!
//! The time-node models penalise differences across consecutive nodes ([`super::time`]), the
//! kernel model across neighbouring velocity cells ([`super::kernel`]); both are sums of the
//! term below over their own index patterns.

/// First- and second-difference stencils, `q_{s+1} − q_s` and `q_{s+2} − 2q_{s+1} + q_s`.
pub const DIFFERENCES: [&[f64]; 2] = [&[-1.0, 1.0], &[1.0, -2.0, 1.0]];

/// One penalty term `w·(Σ_o c_o q[at(o)])²` of `stencil` c at the indices `at(0..len)`: adds its
/// gradient to `d_q` and returns its value.
#[inline]
pub fn squared_difference(q: &[f64], d_q: &mut [f64], stencil: &[f64], w: f64, at: impl Fn(usize) -> usize) -> f64 {
    let diff: f64 = stencil.iter().enumerate().map(|(o, c)| c * q[at(o)]).sum();
    for (o, c) in stencil.iter().enumerate() {
        d_q[at(o)] += 2.0 * w * diff * c;
    }
    w * diff * diff
}
