//! Adam (Kingma & Ba 2015) with bias correction; the same update on every rank.

use serde::{Deserialize, Serialize};

/// Adam state: first and second moments and the step count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub m: Vec<f64>,
    pub v: Vec<f64>,
    pub step: u64,
}

impl Adam {
    pub fn new(n: usize) -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, m: vec![0.0; n], v: vec![0.0; n], step: 0 }
    }

    /// θ ← θ − lr·m̂/(√v̂ + ε), element by element (vectorised: AVX2 where the CPU has it,
    /// with the same bits either way).
    pub fn update(&mut self, theta: &mut [f64], grad: &[f64], lr: f64) {
        assert!(grad.len() == theta.len() && self.m.len() == theta.len() && self.v.len() == theta.len(), "adam: length mismatch");
        self.step += 1;
        let k = self.constants(lr);
        crate::simd_dispatch!(update_k(k, theta, grad, &mut self.m, &mut self.v));
    }

    /// The constants of the update at the current step count.
    fn constants(&self, lr: f64) -> Constants {
        let (b1, b2, t) = (self.beta1, self.beta2, self.step as i32);
        Constants { b1, b2, c1: 1.0 - b1.powi(t), c2: 1.0 - b2.powi(t), lr, eps: self.eps }
    }
}

#[derive(Clone, Copy)]
struct Constants {
    b1: f64,
    b2: f64,
    /// Bias corrections 1 − β₁ᵗ, 1 − β₂ᵗ.
    c1: f64,
    c2: f64,
    lr: f64,
    eps: f64,
}

#[inline(always)]
fn update_slices(k: Constants, theta: &mut [f64], grad: &[f64], m: &mut [f64], v: &mut [f64]) {
    for (((th, &g), m), v) in theta.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = k.b1 * *m + (1.0 - k.b1) * g;
        *v = k.b2 * *v + (1.0 - k.b2) * g * g;
        let mh = *m / k.c1;
        let vh = *v / k.c2;
        *th -= k.lr * mh / (vh.sqrt() + k.eps);
    }
}

crate::simd_kernel!(update_k, update_slices, (k: Constants, theta: &mut [f64], grad: &[f64], m: &mut [f64], v: &mut [f64]));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_by_lr_against_the_gradient() {
        let mut a = Adam::new(2);
        let mut th = vec![1.0, -1.0];
        a.update(&mut th, &[0.5, -2.0], 0.1);
        assert!((th[0] - 0.9).abs() < 1e-7 && (th[1] + 0.9).abs() < 1e-7, "{th:?}");
    }

    #[test]
    fn vector_and_plain_updates_agree_bit_for_bit() {
        let n = 1003;
        let grad: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 / 250.0 - 2.0).collect();
        let (mut a, mut b) = (Adam::new(n), Adam::new(n));
        let (mut ta, mut tb) = (vec![0.5; n], vec![0.5; n]);
        for _ in 0..3 {
            a.update(&mut ta, &grad, 1e-2);
            // Reference: the plain element loop.
            b.step += 1;
            update_k::plain(b.constants(1e-2), &mut tb, &grad, &mut b.m, &mut b.v);
        }
        let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&ta), bits(&tb));
        assert_eq!((bits(&a.m), bits(&a.v)), (bits(&b.m), bits(&b.v)));
    }

    #[test]
    fn minimises_a_quadratic() {
        let mut a = Adam::new(1);
        let mut th = vec![3.0];
        for _ in 0..2000 {
            let g = [2.0 * (th[0] - 1.0)];
            a.update(&mut th, &g, 0.05);
        }
        assert!((th[0] - 1.0).abs() < 1e-3, "{th:?}");
    }
}
