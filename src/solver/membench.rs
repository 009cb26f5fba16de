//! Time and peak-memory benchmark of adjoint rollouts: store-all against checkpointed schedules,
//! next to the forward-only rollout, over many samples in parallel.
//!
//! Peak resident memory is the whole process's: before each case the kernel's high-water mark is
//! reset (`5` written to `/proc/self/clear_refs`) and `VmHWM` is read from `/proc/self/status`
//! afterwards. Where that is unavailable the figures are `null`.

use crate::operator::Fields;
use crate::solver::checkpoint::{min_forward_steps, Schedule};
use crate::solver::rollout::{forward, gradient, RolloutWorkspace};
use crate::solver::Scheme;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct MemBenchOptions {
    /// Samples (windows) rolled out per gradient.
    pub n_samples: usize,
    /// Rollout lengths in solver steps (one loss snapshot per step).
    pub steps: Vec<usize>,
    /// Slots of the checkpointed schedule.
    pub checkpoints: usize,
    /// Solver step length passed to [`Scheme::prepare`], 1/ω_p.
    pub h: f64,
    /// Timings are the best of this many runs.
    pub repeats: usize,
}

impl Default for MemBenchOptions {
    fn default() -> Self {
        Self { n_samples: 90, steps: vec![10, 95, 100, 1000], checkpoints: 10, h: 1e-3, repeats: 1 }
    }
}

/// Samples whose gradients are summed together before the in-order sum over chunks; fixed, so
/// the result does not depend on the thread count.
const CHUNK: usize = 8;

/// Peak resident set of the process since the last reset, MiB (Linux only).
fn peak_rss_mb() -> Option<f64> {
    status_kib("VmHWM:").map(|kib| kib / 1024.0)
}

/// Current resident set, MiB (Linux only).
fn rss_mb() -> Option<f64> {
    status_kib("VmRSS:").map(|kib| kib / 1024.0)
}

fn status_kib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Reset the peak-RSS high-water mark to the current RSS; false where unsupported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A drifting Maxwellian per sample, normalised to unit mass.
fn initial_states(scheme: &dyn Scheme, n_samples: usize) -> Vec<Vec<f64>> {
    let g = scheme.grid();
    (0..n_samples)
        .map(|s| {
            let u = 0.5 * (s as f64 * 0.7).sin();
            let temp = 1.0 + 0.3 * (s % 5) as f64 / 5.0;
            let mut f: Vec<f64> = (0..g.nx)
                .flat_map(|i| (0..g.ny).map(move |j| (i, j)))
                .map(|(i, j)| (-((g.vx(i) - u).powi(2) + g.vy(j).powi(2)) / (2.0 * temp)).exp())
                .collect();
            let mass: f64 = f.iter().sum();
            f.iter_mut().for_each(|x| *x /= mass);
            f
        })
        .collect()
}

/// Squared distance to the sample's initial state at every snapshot.
fn snapshot_loss(f: &[f64], target: &[f64], lam: &mut [f64]) -> f64 {
    let mut l = 0.0;
    for ((lam, a), b) in lam.iter_mut().zip(f).zip(target) {
        let d = a - b;
        *lam += d;
        l += 0.5 * d * d;
    }
    l
}

struct GradientRun {
    seconds: f64,
    loss: f64,
    forward_steps: u64,
    recomputed_steps: u64,
    peak_live_states: usize,
    peak_rss_mb: Option<f64>,
    d_prepared: Fields,
}

fn run_gradient(
    scheme: &dyn Scheme,
    prepared: &Fields,
    f0s: &[Vec<f64>],
    k: usize,
    schedule: &Schedule,
    repeats: usize,
) -> GradientRun {
    let per_interval = vec![prepared; k];
    let grad_slot = vec![0usize; k];
    let mut best = f64::INFINITY;
    let mut result = None;
    let have_reset = reset_peak_rss();
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        let chunks: Vec<(Fields, f64, u64, u64, usize)> = f0s
            .par_chunks(CHUNK)
            .map_init(
                || RolloutWorkspace::new(scheme),
                |ws, chunk| {
                    let mut d = vec![Fields::zeros(prepared.raw_dim())];
                    let (mut loss, mut fwd, mut rec, mut live) = (0.0, 0, 0, 0);
                    for f0 in chunk {
                        let stats =
                            gradient(scheme, &per_interval, &grad_slot, &mut d, 1, f0, schedule, ws, |_, f, lam| {
                                snapshot_loss(f, f0.as_slice(), lam)
                            });
                        loss += stats.loss;
                        fwd += stats.forward_steps;
                        rec += stats.recomputed_steps;
                        live = live.max(stats.peak_live_states);
                    }
                    (d.pop().expect("one gradient buffer"), loss, fwd, rec, live)
                },
            )
            .collect();
        let mut total = GradientRun {
            seconds: 0.0,
            loss: 0.0,
            forward_steps: 0,
            recomputed_steps: 0,
            peak_live_states: 0,
            peak_rss_mb: None,
            d_prepared: Fields::zeros(prepared.raw_dim()),
        };
        for (d, loss, fwd, rec, live) in &chunks {
            total.d_prepared += d;
            total.loss += loss;
            total.forward_steps += fwd;
            total.recomputed_steps += rec;
            total.peak_live_states = total.peak_live_states.max(*live);
        }
        drop(chunks);
        let seconds = start.elapsed().as_secs_f64();
        if seconds < best {
            best = seconds;
        }
        result = Some(total);
    }
    let mut run = result.expect("at least one repeat");
    run.seconds = best;
    run.peak_rss_mb = if have_reset { peak_rss_mb() } else { None };
    run
}

fn run_forward(scheme: &dyn Scheme, prepared: &Fields, f0s: &[Vec<f64>], k: usize, repeats: usize) -> (f64, f64) {
    let per_interval = vec![prepared; k];
    let mut best = f64::INFINITY;
    let mut loss = 0.0;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        let losses: Vec<f64> = f0s
            .par_iter()
            .map_init(
                || RolloutWorkspace::new(scheme),
                |ws, f0| {
                    let mut l = 0.0;
                    forward(scheme, &per_interval, 1, f0, ws, |_, f| {
                        l += f.iter().zip(f0.iter()).map(|(a, b)| 0.5 * (a - b) * (a - b)).sum::<f64>();
                    });
                    l
                },
            )
            .collect();
        best = best.min(start.elapsed().as_secs_f64());
        loss = losses.iter().sum();
    }
    (best, loss)
}

fn case_json(run: &GradientRun, slots: usize, k: usize, n_samples: usize, forward_s: f64) -> Value {
    json!({
        "slots": slots,
        "gradient_s": run.seconds,
        "ratio_to_forward": run.seconds / forward_s,
        "forward_steps_per_sample": run.forward_steps as f64 / n_samples as f64,
        "recomputed_steps_per_sample": run.recomputed_steps as f64 / n_samples as f64,
        "optimal_forward_steps_per_sample": min_forward_steps(k, slots),
        "peak_live_states_per_sample": run.peak_live_states,
        "peak_rss_mb": run.peak_rss_mb,
    })
}

/// Measure forward, store-all and checkpointed gradients for each rollout length in
/// `options.steps` over `options.n_samples` samples on the rayon pool; coefficients `coeffs`
/// (physical, `[n_fields, nx, ny]`) are prepared once for steps of `options.h`.
///
/// Checkpointed cases run first, store-all last, so memory the allocator keeps after a large case
/// does not hide the peak of a small one. Gradients of both schedules are compared bit for bit.
pub fn memory_benchmark(scheme: &dyn Scheme, coeffs: &Fields, options: &MemBenchOptions) -> Value {
    let g = scheme.grid();
    let mut prepared = Fields::zeros(scheme.prepared_shape());
    scheme.prepare(coeffs.view(), options.h, prepared.view_mut());
    let f0s = initial_states(scheme, options.n_samples);
    let baseline_rss = rss_mb();
    let steps = &options.steps;
    let forward: Vec<(f64, f64)> =
        steps.iter().map(|&k| run_forward(scheme, &prepared, &f0s, k, options.repeats)).collect();
    let slots_ckpt = |k: usize| options.checkpoints.clamp(1, k.max(1));
    let checkpointed: Vec<GradientRun> = steps
        .iter()
        .map(|&k| run_gradient(scheme, &prepared, &f0s, k, &Schedule::binomial(k, slots_ckpt(k)), options.repeats))
        .collect();
    let store_all: Vec<GradientRun> = steps
        .iter()
        .map(|&k| run_gradient(scheme, &prepared, &f0s, k, &Schedule::store_all(k), options.repeats))
        .collect();
    let mut cases = Vec::new();
    for (i, &k) in steps.iter().enumerate() {
        let (forward_s, forward_loss) = forward[i];
        let (c, a) = (&checkpointed[i], &store_all[i]);
        let bitwise_equal = c.loss.to_bits() == a.loss.to_bits()
            && c.d_prepared.iter().zip(a.d_prepared.iter()).all(|(x, y)| x.to_bits() == y.to_bits());
        cases.push(json!({
            "steps": k,
            "forward_s": forward_s,
            "forward_cell_steps_per_s": (k * options.n_samples * g.n_cells()) as f64 / forward_s,
            "loss": a.loss,
            "loss_matches_forward": (a.loss - forward_loss).abs() <= 1e-9 * forward_loss.abs().max(1e-300),
            "store_all": case_json(a, Schedule::store_all(k).slots(), k, options.n_samples, forward_s),
            "checkpointed": case_json(c, slots_ckpt(k), k, options.n_samples, forward_s),
            "gradients_bitwise_equal": bitwise_equal,
        }));
    }
    json!({
        "benchmark": "memory",
        "scheme": scheme.name(),
        "grid": [g.nx, g.ny],
        "samples": options.n_samples,
        "threads": rayon::current_num_threads(),
        "checkpoints": options.checkpoints,
        "state_kib": (g.n_cells() * 8) as f64 / 1024.0,
        "baseline_rss_mb": baseline_rss,
        "cases": cases,
    })
}
