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

    /// θ ← θ − lr·m̂/(√v̂ + ε).
    pub fn update(&mut self, theta: &mut [f64], grad: &[f64], lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        for i in 0..theta.len() {
            let g = grad[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            let mh = self.m[i] / c1;
            let vh = self.v[i] / c2;
            theta[i] -= lr * mh / (vh.sqrt() + self.eps);
        }
    }
}

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
