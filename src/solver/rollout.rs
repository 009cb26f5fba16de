//! Multi-step rollouts (placeholder: store-all).
use super::{Scheme, StepWorkspace};
use crate::operator::Fields;

#[derive(Default)]
pub struct RolloutWorkspace {
    ws: Option<StepWorkspace>,
}
pub struct RolloutStats {
    pub loss: f64,
}
pub fn forward(scheme: &dyn Scheme, prepared: &[&Fields], substeps: usize, f0: &[f64], ws: &mut RolloutWorkspace, mut observe: impl FnMut(usize, &[f64])) {
    let ws = ws.ws.get_or_insert_with(|| scheme.workspace());
    let mut f = f0.to_vec();
    let mut g = f.clone();
    for (k, p) in prepared.iter().enumerate() {
        for _ in 0..substeps {
            scheme.step(p, &f, &mut g, ws);
            std::mem::swap(&mut f, &mut g);
        }
        observe(k + 1, &f);
    }
}
#[allow(clippy::too_many_arguments)]
pub fn gradient(
    scheme: &dyn Scheme,
    prepared: &[&Fields],
    grad_slot: &[usize],
    substeps: usize,
    f0: &[f64],
    _checkpoints: usize,
    loss: &mut dyn FnMut(usize, &[f64], &mut [f64]) -> f64,
    d_prepared: &mut [Fields],
    ws: &mut RolloutWorkspace,
) -> RolloutStats {
    let sw = ws.ws.get_or_insert_with(|| scheme.workspace());
    let mut states = vec![f0.to_vec()];
    for p in prepared {
        for _ in 0..substeps {
            let mut g = vec![0.0; f0.len()];
            scheme.step(p, states.last().unwrap(), &mut g, sw);
            states.push(g);
        }
    }
    let mut lam = vec![0.0; f0.len()];
    let mut lam2 = vec![0.0; f0.len()];
    let mut total = 0.0;
    let n = prepared.len() * substeps;
    for i in (0..n).rev() {
        if (i + 1) % substeps == 0 {
            total += loss((i + 1) / substeps, &states[i + 1], &mut lam);
        }
        let k = i / substeps;
        scheme.step_vjp(prepared[k], &states[i], &lam, &mut lam2, &mut d_prepared[grad_slot[k]], sw);
        std::mem::swap(&mut lam, &mut lam2);
    }
    RolloutStats { loss: total }
}
