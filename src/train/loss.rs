//! Losses between predicted and observed snapshots, with their gradients.

use crate::config::LossKind;

/// `Σ_c ℓ(pred_c − obs_c)·w` and `lam_c += w·ℓ'(pred_c − obs_c)`.
///
/// MAE uses |d| with derivative sign(d) (0 at d = 0, as autograd does); MSE uses d² with 2d.
pub fn add_loss(kind: LossKind, pred: &[f64], obs: &[f64], w: f64, lam: &mut [f64]) -> f64 {
    let mut sum = 0.0;
    match kind {
        LossKind::Mae => {
            for ((p, o), l) in pred.iter().zip(obs).zip(lam.iter_mut()) {
                let d = p - o;
                sum += d.abs();
                // Branch-free sign (0 at d = 0): data-dependent branches mispredict badly here.
                *l += w * (f64::from(u8::from(d > 0.0)) - f64::from(u8::from(d < 0.0)));
            }
        }
        LossKind::Mse => {
            for ((p, o), l) in pred.iter().zip(obs).zip(lam.iter_mut()) {
                let d = p - o;
                sum += d * d;
                *l += w * 2.0 * d;
            }
        }
    }
    sum * w
}

/// The loss alone.
pub fn loss_value(kind: LossKind, pred: &[f64], obs: &[f64], w: f64) -> f64 {
    let s: f64 = match kind {
        LossKind::Mae => pred.iter().zip(obs).map(|(p, o)| (p - o).abs()).sum(),
        LossKind::Mse => pred.iter().zip(obs).map(|(p, o)| (p - o) * (p - o)).sum(),
    };
    s * w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_match_finite_differences() {
        let pred = [0.3, -0.2, 0.7];
        let obs = [0.1, 0.1, 0.7];
        for kind in [LossKind::Mae, LossKind::Mse] {
            let mut lam = [0.0; 3];
            let l = add_loss(kind, &pred, &obs, 0.5, &mut lam);
            assert_eq!(l, loss_value(kind, &pred, &obs, 0.5));
            for c in 0..2 {
                let h = 1e-6;
                let mut p = pred;
                p[c] += h;
                let fd = (loss_value(kind, &p, &obs, 0.5) - l) / h;
                assert!((fd - lam[c]).abs() < 1e-5, "{kind:?} {c}: {fd} vs {}", lam[c]);
            }
            assert_eq!(lam[2], 0.0);
        }
    }
}
