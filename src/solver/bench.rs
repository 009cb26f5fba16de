//! Throughput benchmark of one scheme: forward and forward+adjoint cell-steps per second over many
//! samples in parallel (rayon), each with its own states and ∂L/∂prepared accumulator.

use super::Scheme;
use crate::operator::Fields;
use rayon::prelude::*;
use std::time::Instant;

/// Cells per task of the parallel gradient reduction.
const CHUNK: usize = 2048;

/// One lane's buffers: a bundle of samples advanced together (their states one after the
/// other, as training runs them), every state of the rollout, adjoint vectors, gradient
/// accumulator.
struct Lane {
    states: Vec<Vec<f64>>,
    lam: Vec<f64>,
    lam_next: Vec<f64>,
    d_prepared: Fields,
    ws: super::StepWorkspace,
    /// Clamp masks per step (schemes that record them), as rollouts keep them.
    masks: Vec<u64>,
}

/// Time `reps` repetitions of `samples` rollouts of `steps` steps with the same `coeffs`
/// (physical units, one snapshot interval of length 1 split into the scheme's substep count) and
/// report the best repetition as JSON: seconds and cell-steps/s for forward alone and for
/// forward + adjoint (store-all, loss ½‖f_final‖², ∂L/∂coeffs summed over samples), plus the
/// best single-thread nanoseconds per cell of one `step` and one `step_vjp` of one state. The
/// samples run in bundles of at most `bundle` (as training's rollouts carry them), at least one
/// bundle per thread.
pub fn throughput(
    scheme: &dyn Scheme,
    coeffs: &Fields,
    samples: usize,
    steps: usize,
    reps: usize,
    bundle: usize,
) -> serde_json::Value {
    let g = scheme.grid().clone();
    let n = g.n_cells();
    let h = 1.0 / scheme.substeps(coeffs.view(), 1.0) as f64;
    let mut prepared = Fields::zeros(scheme.prepared_shape());
    scheme.prepare(coeffs.view(), h, prepared.view_mut());
    // A smooth positive bump, shifted per sample.
    let initial = |s: usize| -> Vec<f64> {
        let shift = 0.3 * (s % 7) as f64 / 7.0;
        (0..n)
            .map(|c| {
                let v2: f64 = (0..g.dim())
                    .map(|a| {
                        let v = g.centre(a, c / g.stride(a) % g.extent(a)) - if a == 0 { shift } else { 0.0 };
                        v * v
                    })
                    .sum();
                (-v2 / 2.0).exp()
            })
            .collect()
    };
    let samples = samples.max(1);
    let n_lanes = rayon::current_num_threads().max(samples.div_ceil(bundle.max(1))).min(samples);
    let per_lane = samples.div_ceil(n_lanes);
    let mut lanes: Vec<Lane> = (0..samples)
        .step_by(per_lane)
        .map(|first| {
            let members = first..(first + per_lane).min(samples);
            let len = members.len() * n;
            let mut states = vec![vec![0.0; len]; steps + 1];
            states[0] = members.flat_map(initial).collect();
            Lane {
                states,
                lam: vec![0.0; len],
                lam_next: vec![0.0; len],
                d_prepared: Fields::zeros(prepared.raw_dim()),
                ws: scheme.workspace(),
                masks: vec![0; if scheme.records_mask() { super::mask_words(len) * steps } else { 0 }],
            }
        })
        .collect();
    let forward = |lane: &mut Lane| {
        for t in 0..steps {
            let (done, rest) = lane.states.split_at_mut(t + 1);
            scheme.step_bundle(&prepared, &done[t], &mut rest[0], &mut lane.ws);
        }
    };
    // Forward as the adjoint rollouts run it: recording the clamp masks the adjoint uses.
    let forward_masked = |lane: &mut Lane| {
        let words = lane.masks.len() / steps.max(1);
        for t in 0..steps {
            let (done, rest) = lane.states.split_at_mut(t + 1);
            let mask = &mut lane.masks[t * words..(t + 1) * words];
            scheme.step_masked(&prepared, &done[t], &mut rest[0], mask, &mut lane.ws);
        }
    };
    let adjoint = |lane: &mut Lane| {
        let words = lane.masks.len() / steps.max(1);
        lane.lam.copy_from_slice(&lane.states[steps]);
        for t in (0..steps).rev() {
            scheme.step_vjp_masked(
                &prepared,
                &lane.states[t],
                &lane.lam,
                &mut lane.lam_next,
                &mut lane.d_prepared,
                &lane.masks[t * words..(t + 1) * words],
                &mut lane.ws,
            );
            std::mem::swap(&mut lane.lam, &mut lane.lam_next);
        }
    };
    let mut best_fwd = f64::INFINITY;
    let mut best_both = f64::INFINITY;
    let mut d_coeffs = Fields::zeros(coeffs.raw_dim());
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        lanes.par_iter_mut().for_each(forward);
        best_fwd = best_fwd.min(t0.elapsed().as_secs_f64());

        let t0 = Instant::now();
        lanes.par_iter_mut().for_each(|lane| {
            lane.d_prepared.fill(0.0);
            forward_masked(lane);
            adjoint(lane);
        });
        // Sum over samples in sample order (deterministic), parallel over chunks of cells.
        let mut d_prep = Fields::zeros(prepared.raw_dim());
        let flat = d_prep.as_slice_mut().expect("contiguous");
        flat.par_chunks_mut(CHUNK).enumerate().for_each(|(c, acc)| {
            for lane in &lanes {
                let src = &lane.d_prepared.as_slice().expect("contiguous")[c * CHUNK..][..acc.len()];
                acc.iter_mut().zip(src).for_each(|(a, s)| *a += s);
            }
        });
        d_coeffs.fill(0.0);
        scheme.prepare_vjp(coeffs.view(), h, d_prep.view(), d_coeffs.view_mut());
        best_both = best_both.min(t0.elapsed().as_secs_f64());
    }
    // Single-thread cost of one step and one adjoint step, best of many short runs: a figure
    // that stays meaningful on a loaded machine.
    let (mut step_s, mut vjp_s) = (f64::INFINITY, f64::INFINITY);
    {
        let lane = &mut lanes[0];
        let f0 = &lane.states[0][..n];
        let out = &mut lane.lam_next[..n];
        for _ in 0..50 * reps.max(1) {
            let t0 = Instant::now();
            scheme.step(&prepared, f0, out, &mut lane.ws);
            step_s = step_s.min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            scheme.step_vjp(&prepared, f0, f0, &mut lane.lam[..n], &mut lane.d_prepared, &mut lane.ws);
            vjp_s = vjp_s.min(t0.elapsed().as_secs_f64());
        }
    }
    let cell_steps = (samples * steps * n) as f64;
    serde_json::json!({
        "scheme": scheme.name(),
        "grid": g.extents(),
        "samples": samples,
        "bundle": per_lane,
        "steps": steps,
        "threads": rayon::current_num_threads(),
        "forward_seconds": best_fwd,
        "forward_cell_steps_per_s": cell_steps / best_fwd,
        "forward_adjoint_seconds": best_both,
        "forward_adjoint_cell_steps_per_s": cell_steps / best_both,
        "step_ns_per_cell_1thread": step_s * 1e9 / n as f64,
        "step_vjp_ns_per_cell_1thread": vjp_s * 1e9 / n as f64,
        "grad_norm": d_coeffs.iter().map(|v| v * v).sum::<f64>().sqrt(),
    })
}
