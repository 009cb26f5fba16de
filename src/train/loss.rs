//! Losses between predicted and observed snapshots, with their gradients.

use crate::config::LossKind;

/// Lanes of the loss sums: independent partial sums (combined in a fixed order) let the loop
/// vectorise instead of waiting on one floating-point add per cell.
const LANES: usize = 8;

/// `Σ_c ℓ(pred_c − obs_c)·w` and `lam_c += w·ℓ'(pred_c − obs_c)`.
///
/// MAE uses |d| with derivative sign(d) (0 at d = 0, as autograd does); MSE uses d² with 2d.
/// The sum runs over [`LANES`] interleaved partial sums added in lane order: deterministic, the
/// same bits as [`loss_value`].
pub fn add_loss(kind: LossKind, pred: &[f64], obs: &[f64], w: f64, lam: &mut [f64]) -> f64 {
    assert!(pred.len() == obs.len() && lam.len() == pred.len(), "loss: length mismatch");
    match kind {
        // Branch-free sign (0 at d = 0): data-dependent branches mispredict badly here.
        LossKind::Mae => lanes(pred, obs, lam, |d| (d.abs(), w * (f64::from(u8::from(d > 0.0)) - f64::from(u8::from(d < 0.0))))) * w,
        LossKind::Mse => lanes(pred, obs, lam, |d| (d * d, w * 2.0 * d)) * w,
    }
}

/// `Σ_c ℓ_c` in [`LANES`] partial sums, with `lam_c += ℓ'_c`, for `term(d) = (ℓ, ℓ')`.
#[inline(always)]
fn lanes(pred: &[f64], obs: &[f64], lam: &mut [f64], term: impl Fn(f64) -> (f64, f64)) -> f64 {
    let mut acc = [0.0f64; LANES];
    let n = pred.len() / LANES * LANES;
    for ((p, o), l) in pred[..n].chunks_exact(LANES).zip(obs[..n].chunks_exact(LANES)).zip(lam[..n].chunks_exact_mut(LANES)) {
        for i in 0..LANES {
            let (v, g) = term(p[i] - o[i]);
            acc[i] += v;
            l[i] += g;
        }
    }
    for (i, c) in (n..pred.len()).enumerate() {
        let (v, g) = term(pred[c] - obs[c]);
        acc[i] += v;
        lam[c] += g;
    }
    acc.iter().sum()
}

/// The loss alone (the same bits as [`add_loss`]).
pub fn loss_value(kind: LossKind, pred: &[f64], obs: &[f64], w: f64) -> f64 {
    let sum = |f: fn(f64) -> f64| {
        let mut acc = [0.0f64; LANES];
        let n = pred.len() / LANES * LANES;
        for (p, o) in pred[..n].chunks_exact(LANES).zip(obs[..n].chunks_exact(LANES)) {
            for i in 0..LANES {
                acc[i] += f(p[i] - o[i]);
            }
        }
        for (i, c) in (n..pred.len()).enumerate() {
            acc[i] += f(pred[c] - obs[c]);
        }
        acc.iter().sum::<f64>()
    };
    match kind {
        LossKind::Mae => sum(f64::abs) * w,
        LossKind::Mse => sum(|d| d * d) * w,
    }
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
