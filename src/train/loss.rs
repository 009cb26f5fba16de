//! Losses between predicted and observed snapshots, with their gradients (compiled plain and for
//! AVX2, picked at run time, with the same bits).

use crate::config::LossKind;

/// A loss kind with its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    pub kind: LossKind,
    /// Probability floor of [`LossKind::Likelihood`] (unused by the others).
    pub floor: f64,
}

impl From<LossKind> for Loss {
    fn from(kind: LossKind) -> Self {
        Self { kind, floor: crate::config::DEFAULT_LIKELIHOOD_FLOOR }
    }
}

/// The negative log-likelihood of the observed particles' cells under the predicted
/// distribution, as a divergence: with q_c = max(pred_c, 0) + floor, S = Σ_c q_c, p_c = q_c/S
/// (the predicted probability of cell c for a particle on the grid) and O = Σ_c obs_c,
/// `w·Σ_c obs_c·ln((obs_c/O)/p_c)`, which is 0 when the prediction is proportional to the
/// observation and positive otherwise. With `lam`, `lam_c += w·(O/S − obs_c/q_c)` where
/// pred_c ≥ 0 (the derivative of max taken as 1 at 0).
///
/// Normalising by S matters: an unnormalised −Σ obs·ln q rewards predictions with more mass,
/// which a scheme can make (the clamp f ≥ 0 adds mass where a step overshoots), and a fit then
/// trades accuracy for mass in cells where the data have stray particles. Particles that left the
/// grid (O < 1) carry no term, as their cells are not observed.
fn likelihood(pred: &[f64], obs: &[f64], w: f64, floor: f64, lam: Option<&mut [f64]>) -> f64 {
    let q = |p: f64| p.max(0.0) + floor;
    let (mut total_q, mut total_obs) = (0.0, 0.0);
    for (&p, &o) in pred.iter().zip(obs) {
        total_q += q(p);
        total_obs += o;
    }
    if total_obs <= 0.0 {
        return 0.0;
    }
    let mut acc = 0.0;
    for (&p, &o) in pred.iter().zip(obs) {
        if o > 0.0 {
            acc += o * ((o / total_obs).ln() - (q(p) / total_q).ln());
        }
    }
    if let Some(lam) = lam {
        let mean = total_obs / total_q;
        for ((l, &p), &o) in lam.iter_mut().zip(pred).zip(obs) {
            if p >= 0.0 {
                *l += w * (mean - o / q(p));
            }
        }
    }
    acc * w
}

/// Lanes of the loss sums: independent partial sums (combined in a fixed order) let the loop
/// vectorise instead of waiting on one floating-point add per cell.
const LANES: usize = 8;

/// `Σ_c ℓ(pred_c − obs_c)·w` and `lam_c += w·ℓ'(pred_c − obs_c)`.
///
/// MAE uses |d| with derivative sign(d) (0 at d = 0, as autograd does); MSE uses d² with 2d.
/// The sum runs over [`LANES`] interleaved partial sums added in lane order: deterministic, the
/// same bits as [`loss_value`].
pub fn add_loss(loss: Loss, pred: &[f64], obs: &[f64], w: f64, lam: &mut [f64]) -> f64 {
    assert!(pred.len() == obs.len() && lam.len() == pred.len(), "loss: length mismatch");
    crate::simd_dispatch!(add_loss_k(loss, pred, obs, w, lam))
}

#[inline(always)]
fn add_loss_kernel(loss: Loss, pred: &[f64], obs: &[f64], w: f64, lam: &mut [f64]) -> f64 {
    match loss.kind {
        LossKind::Likelihood => likelihood(pred, obs, w, loss.floor, Some(lam)),
        // w·sign(d), 0 at d = 0, as a select (data-dependent branches mispredict badly here):
        // ±w carry w's bits, and the zero is w·0 = +0 as before.
        LossKind::Mae => lanes(pred, obs, lam, |d| (d.abs(), if d != 0.0 { w.copysign(d) } else { 0.0 })) * w,
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

crate::simd_kernel!(add_loss_k, add_loss_kernel, (loss: Loss, pred: &[f64], obs: &[f64], w: f64, lam: &mut [f64]) -> f64);
crate::simd_kernel!(loss_value_k, loss_value_kernel, (loss: Loss, pred: &[f64], obs: &[f64], w: f64) -> f64);

/// The loss alone (the same bits as [`add_loss`]).
pub fn loss_value(loss: Loss, pred: &[f64], obs: &[f64], w: f64) -> f64 {
    assert_eq!(pred.len(), obs.len(), "loss: length mismatch");
    crate::simd_dispatch!(loss_value_k(loss, pred, obs, w))
}

#[inline(always)]
fn loss_value_kernel(loss: Loss, pred: &[f64], obs: &[f64], w: f64) -> f64 {
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
    match loss.kind {
        LossKind::Likelihood => likelihood(pred, obs, w, loss.floor, None),
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
        for kind in [LossKind::Mae, LossKind::Mse, LossKind::Likelihood] {
            let kind = Loss::from(kind);
            let mut lam = [0.0; 3];
            let l = add_loss(kind, &pred, &obs, 0.5, &mut lam);
            assert_eq!(l, loss_value(kind, &pred, &obs, 0.5));
            // MAE's kink sits at cell 2 (pred = obs); the likelihood is smooth there.
            let cells = if kind.kind == LossKind::Likelihood { 0..3 } else { 0..2 };
            for c in cells {
                let h = 1e-6;
                let mut p = pred;
                p[c] += h;
                let fd = (loss_value(kind, &p, &obs, 0.5) - l) / h;
                assert!((fd - lam[c]).abs() < 1e-5, "{kind:?} {c}: {fd} vs {}", lam[c]);
            }
            if kind.kind != LossKind::Likelihood {
                assert_eq!(lam[2], 0.0);
            }
        }
    }

    #[test]
    fn likelihood_is_a_normalised_divergence_with_a_floor() {
        let loss = Loss { kind: LossKind::Likelihood, floor: 1e-10 };
        let obs = [0.25, 0.75, 0.0];
        // Zero (to the floor) for any prediction proportional to the observation: more mass
        // does not make a better likelihood.
        for scale in [1.0, 0.5, 3.0] {
            assert!(loss_value(loss, &[0.25 * scale, 0.75 * scale, 0.0], &obs, 1.0).abs() < 1e-9, "scale {scale}");
        }
        // Particles lost off the grid (Σ obs < 1) do not change that.
        assert!(loss_value(loss, &[0.1, 0.3, 0.0], &[0.2, 0.6, 0.0], 1.0).abs() < 1e-9);
        let off = loss_value(loss, &[0.5, 0.5, 0.0], &obs, 1.0);
        let exact = 0.25 * (0.25f64 / 0.5).ln() + 0.75 * (0.75f64 / 0.5).ln();
        assert!((off - exact).abs() < 1e-9, "{off} vs {exact}");
        // Mass put where nothing was observed costs: it takes probability from the observed cells.
        assert!(loss_value(loss, &[0.25, 0.75, 1.0], &obs, 1.0) > 0.5);
        // A cell predicted empty (or negative) costs about −ln(floor) per unit of observed mass.
        let empty = loss_value(loss, &[-0.1, 1.0, 0.0], &obs, 1.0);
        assert!((empty - (0.25 * (0.25f64.ln() - 1e-10f64.ln()) + 0.75 * 0.75f64.ln())).abs() < 1e-6, "{empty}");
    }
}
