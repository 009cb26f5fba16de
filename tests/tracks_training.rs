//! Learning from particle tracks: transition windows (`data.tracks`) as training samples.
//!
//! Tracks here are an Ornstein–Uhlenbeck process dv = −γv dt + √(2γ) dW sampled exactly
//! (A = −γv, D = 2γI in colop's convention), so the operator to recover is known.

use colop::config::TrainConfig;
use colop::data::{write_run, RunData};
use colop::dist::SingleProcess;
use colop::grid::VelocityGrid;
use colop::train::problem::Batch;
use colop::train::setup::Setup;
use ndarray::Array3;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::BTreeMap;
use std::path::Path;
mod common;

const GAMMA: f64 = 0.05;

/// An OU process on `grid` (2 or 3 axes): `n` tracked particles from a unit Maxwellian, `dumps`
/// snapshots 1/ω_p apart, `/f` the binned tracks, with `params`.
fn ou_tracks(grid: VelocityGrid, n: usize, dumps: usize, seed: u64, params: BTreeMap<String, f64>) -> RunData {
    let dim = grid.dim();
    let plane = grid.ny * grid.nz();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tracks = Array3::zeros((dumps, n, dim));
    let mut f = Array3::zeros((dumps, grid.nx, plane));
    let decay = (-GAMMA).exp();
    let kick = (1.0 - decay * decay).sqrt();
    for p in 0..n {
        let mut v: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
        for k in 0..dumps {
            if k > 0 {
                for x in &mut v {
                    let xi: f64 = StandardNormal.sample(&mut rng);
                    *x = *x * decay + kick * xi;
                }
            }
            for (a, &x) in v.iter().enumerate() {
                tracks[[k, p, a]] = x;
            }
            if let Some(c) = grid.flat_cell(&v) {
                f[[k, c / plane, c % plane]] += 1.0;
            }
        }
    }
    RunData {
        grid,
        n_particles: n as f64,
        t: (0..dumps).map(|k| k as f64).collect(),
        f,
        dt: 1.0,
        params,
        labels: BTreeMap::new(),
        tracks: Some(tracks),
        diagnostics: BTreeMap::new(),
    }
}

/// A 2-D OU run on a 21×21 grid over [−4, 4]² with `/params` `{p: param}`, written to `path`.
fn ou_run(path: &Path, n: usize, dumps: usize, seed: u64, param: f64) {
    let grid = VelocityGrid::square(21, 4.0).unwrap();
    write_run(path, &ou_tracks(grid, n, dumps, seed, BTreeMap::from([("p".to_string(), param)]))).unwrap();
}

/// Training losses of a run directory, epoch by epoch.
fn losses(run: &Path) -> Vec<f64> {
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    metrics.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"].as_f64().unwrap()).collect()
}

fn write_config(dir: &Path, name: &str, text: &str) -> TrainConfig {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    TrainConfig::load(&p).unwrap()
}

fn tracks_config(dir: &Path, model: &str, tracks: &str, solver: &str, stages: &str) -> TrainConfig {
    write_config(
        dir,
        &format!("t{}.yaml", model.len() * 1000 + tracks.len() * 10 + stages.len()),
        &format!(
            "data:\n  i_start: 0\n  tracks:\n    - {tracks}\nmodel: {model}\nsolver: {solver}\ntrain: {{ seed: 3, stages: {stages} }}\n"
        ),
    )
}

/// Loss and ∂L/∂θ of the first stage's full batch at θ.
fn loss_grad(cfg: &TrainConfig, theta: &[f64]) -> (f64, Vec<f64>) {
    let setup = Setup::new(cfg).unwrap();
    let mut problem = setup.stage(cfg, 0, &SingleProcess).unwrap();
    let out = problem.step(theta, Batch::Full, false, &SingleProcess).unwrap();
    (out.loss, problem.d_theta().to_vec())
}

#[test]
fn transition_gradients_match_finite_differences_for_every_loss() {
    let dir = tempfile::tempdir().unwrap();
    ou_run(&dir.path().join("ou.h5"), 3000, 12, 1, 1.0);
    for (model, loss) in [("{ kind: par-perp }", "likelihood"), ("{ kind: par-perp }", "mse"), ("{ kind: tensor }", "likelihood"), ("{ kind: tensor-sym }", "mae")] {
        let cfg = tracks_config(
            dir.path(),
            model,
            &format!("{{ runs: [ou.h5], lags: 3, delay: 2, starts: {{ every: 2 }}, min_particles: 20, loss: {loss} }}"),
            "{ scheme: central, clamp_nonnegative: false, substeps: 2 }",
            "[ { unroll: all, epochs: 40, lr: 1.0e-2 } ]",
        );
        // At a θ part-way through training: an operator that spreads the windows, so that the
        // predictions are well away from the likelihood's kink at 0 where particles are.
        let mut theta = colop::train::train(&cfg, &dir.path().join(format!("fd-{}-{loss}", model.len())), None, None, &SingleProcess).unwrap().theta;
        let (l0, g) = loss_grad(&cfg, &theta);
        assert!(l0.is_finite() && l0 > 0.0);
        let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        // The entries with the largest gradients, and a few others.
        let mut order: Vec<usize> = (0..theta.len()).collect();
        order.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
        for &i in order.iter().take(4).chain(order.iter().skip(order.len() / 8).step_by(order.len() / 8 + 1).take(3)) {
            let h = 1e-6 * theta[i].abs().max(1e-2);
            let x = theta[i];
            theta[i] = x + h;
            let lp = loss_grad(&cfg, &theta).0;
            theta[i] = x - h;
            let lm = loss_grad(&cfg, &theta).0;
            theta[i] = x;
            let fd = (lp - lm) / (2.0 * h);
            assert!((fd - g[i]).abs() <= 1e-6 * scale + 1e-6 * g[i].abs(), "{model} {loss} θ[{i}]: adjoint {} vs finite difference {fd} (largest |∂L/∂θ| {scale})", g[i]);
        }
    }
}

#[test]
fn windows_are_counted_thresholded_and_pooled() {
    let dir = tempfile::tempdir().unwrap();
    ou_run(&dir.path().join("ou.h5"), 2000, 12, 2, 1.0);
    let pooled = tracks_config(
        dir.path(),
        "{ kind: par-perp }",
        "{ runs: [ou.h5], lags: 4, delay: 2, starts: { first: 1, every: 3 }, min_particles: 50 }",
        "{ scheme: central }",
        "[ { unroll: 2, epochs: 1 }, { unroll: all, epochs: 1 } ]",
    );
    let setup = Setup::new(&pooled).unwrap();
    let index = &setup.tracks[0].index;
    // Starts 1, 4 (7 would need row 7 + 2 + 4 = 13 > 11).
    assert_eq!(index.spec.starts, vec![1, 4]);
    assert_eq!(index.used + index.skipped + index.off_grid, 2 * 2000);
    assert!(index.windows.iter().all(|w| w.count >= 50) && index.skipped > 0 && index.skipped_bins > 0);
    // Stage K: min(unroll, lags); every window starts after the delay.
    let (train, valid) = setup.windows(&pooled, 0).unwrap();
    assert!(valid.is_empty());
    assert_eq!(train.len(), index.windows.len());
    assert!(train.iter().all(|s| s.intervals == 2 && s.start == 3 && s.channel >= 1));
    assert!(setup.windows(&pooled, 1).unwrap().0.iter().all(|s| s.intervals == 4));
    // One window per (start, bin) without pooling.
    let unpooled = tracks_config(
        dir.path(),
        "{ kind: par-perp }",
        "{ runs: [ou.h5], lags: 4, delay: 2, starts: { first: 1, every: 3 }, min_particles: 20, pool_starts: false }",
        "{ scheme: central }",
        "[ { unroll: 2, epochs: 1 }, { unroll: all, epochs: 1 } ]",
    );
    let per_start = Setup::new(&unpooled).unwrap();
    let w = &per_start.tracks[0].index.windows;
    assert!(w.iter().any(|w| w.group == 0) && w.iter().any(|w| w.group == 1));
    assert!(w.len() > index.windows.len());
}

#[test]
fn every_2d_model_kind_learns_from_transition_windows() {
    let dir = tempfile::tempdir().unwrap();
    ou_run(&dir.path().join("a.h5"), 3000, 10, 3, 1.0);
    ou_run(&dir.path().join("b.h5"), 3000, 10, 4, 2.0);
    for (model, pool) in [
        ("{ kind: tensor }", true),
        ("{ kind: tensor-sym }", true),
        ("{ kind: par-perp }", true),
        ("{ kind: tensor-time, n_t: 2 }", false),
        ("{ kind: par-perp-time, n_t: 2 }", false),
        ("{ kind: mlp, width: 8, depth: 1 }", true),
        ("{ kind: mlp-conditioned, width: 8, depth: 1, conditioners: [p] }", true),
        ("{ kind: kernel }", true),
    ] {
        let cfg = tracks_config(
            dir.path(),
            model,
            &format!("{{ runs: [a.h5, b.h5], lags: 3, starts: {{ every: 2 }}, min_particles: 30, pool_starts: {pool} }}"),
            "{ scheme: central }",
            "[ { unroll: all, epochs: 12, lr: 2.0e-3 } ]",
        );
        let out = dir.path().join(format!("run-{}", model.len()));
        let outcome = colop::train::train(&cfg, &out, None, None, &SingleProcess).unwrap_or_else(|e| panic!("{model}: {e:#}"));
        let losses = losses(&out);
        assert!(losses.len() >= 2, "{model}: {losses:?}");
        assert!(outcome.best_loss < losses[0], "{model}: loss {} did not fall below the first epoch's {}", outcome.best_loss, losses[0]);
    }
}

#[test]
fn pooling_a_time_dependent_model_and_runs_without_tracks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    ou_run(&dir.path().join("ou.h5"), 500, 8, 5, 1.0);
    let cfg = tracks_config(dir.path(), "{ kind: par-perp-time, n_t: 2 }", "{ runs: [ou.h5], lags: 2 }", "{ scheme: central }", "[ { unroll: all, epochs: 1 } ]");
    let e = Setup::new(&cfg).err().unwrap().to_string();
    assert!(e.contains("pool_starts") && e.contains("ou.h5"), "{e}");
    // Lags that leave no start.
    let cfg = tracks_config(dir.path(), "{ kind: par-perp }", "{ runs: [ou.h5], lags: 9 }", "{ scheme: central }", "[ { unroll: all, epochs: 1 } ]");
    let e = format!("{:#}", Setup::new(&cfg).err().unwrap());
    assert!(e.contains("data.tracks") && e.contains("lags 9"), "{e}");
    // A run file without /tracks.
    let grid = VelocityGrid::square(8, 4.0).unwrap();
    let mut f = Array3::zeros((4, 8, 8));
    f[[0, 3, 3]] = 1.0;
    f[[1, 3, 3]] = 1.0;
    f[[2, 3, 3]] = 1.0;
    f[[3, 3, 3]] = 1.0;
    let run = RunData {
        grid,
        n_particles: 1.0,
        t: vec![0.0, 1.0, 2.0, 3.0],
        f,
        dt: 1.0,
        params: BTreeMap::new(),
        labels: BTreeMap::new(),
        tracks: None,
        diagnostics: BTreeMap::new(),
    };
    write_run(&dir.path().join("plain.h5"), &run).unwrap();
    let cfg = tracks_config(dir.path(), "{ kind: par-perp }", "{ runs: [plain.h5], lags: 2 }", "{ scheme: central }", "[ { unroll: all, epochs: 1 } ]");
    let e = Setup::new(&cfg).err().unwrap().to_string();
    assert!(e.contains("plain.h5") && e.contains("no /tracks"), "{e}");
}

/// θ of a training of `cfg` on a pool of `threads` threads.
fn trained_theta(cfg: &TrainConfig, out: &Path, threads: usize) -> Vec<u64> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let outcome = pool.install(|| colop::train::train(cfg, out, None, None, &SingleProcess).unwrap());
    outcome.theta.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn transition_and_histogram_sources_train_together_bitwise_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    ou_run(&dir.path().join("ou.h5"), 3000, 14, 6, 1.0);
    let cfg = write_config(
        dir.path(),
        "mixed.yaml",
        "data:
  train: [ou.h5]
  i_start: 0
  histogram_weight: 0.5
  valid_fraction: 0.2
  tracks:
    - { runs: [ou.h5], lags: 4, delay: 1, starts: { every: 2 }, min_particles: 20, weight: 2.0 }
model: { kind: par-perp }
train: { seed: 9, batch_size: 16, stages: [ { unroll: 3, epochs: 4, lr: 1.0e-3 } ] }
",
    );
    let one = trained_theta(&cfg, &dir.path().join("one"), 1);
    let two = trained_theta(&cfg, &dir.path().join("two"), 2);
    assert_eq!(one, two, "1 and 2 threads give different models");
    // Both sources are in the batch: the model differs from either alone.
    let alone = write_config(dir.path(), "alone.yaml", &std::fs::read_to_string(dir.path().join("mixed.yaml")).unwrap().replace("  train: [ou.h5]\n", ""));
    assert_ne!(trained_theta(&alone, &dir.path().join("alone"), 2), one);
}

/// Tracks drawn by `colop synth` from a known isotropic operator (the stationary drag of a
/// thermal plasma's D_∥, D_⊥): learning from their transition windows recovers it. A CI-sized
/// version of `scripts/tracks-learning.sh`'s synthetic case (81 snapshots instead of 101).
#[test]
fn a_synthetic_operator_is_recovered_from_its_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::synth_from(
        d,
        "grid: { n: 51, v_max: 5.0 }
operator: { kind: radial, d_par: \"0.016 * (1 + v^2/4)^(-1.5)\", d_perp: \"0.016 * (1 + v^2/4)^(-0.5)\", a_par: stationary }
snapshots: 81
dt: 1.0
substeps: 50
tracks: { n: 100000, substeps: 10, seed: 8 }
runs:
  - { name: thermal, initial: [ { kind: maxwellian, v_th: 1.0 } ] }
",
    );
    let cfg = write_config(
        d,
        "train.yaml",
        "data:
  tracks:
    - { runs: [data/thermal.h5], lags: 20, delay: 5, starts: { every: 5 }, start_bin: 2, min_particles: 100 }
model: { kind: par-perp, n_radial: 14 }
train: { seed: 1, stages: [ { unroll: all, epochs: 300, lr: 1.0e-2 }, { unroll: all, epochs: 200, lr: 2.0e-3 } ] }
",
    );
    let outcome = colop::train::train(&cfg, &d.join("run"), None, None, &SingleProcess).unwrap();
    let exports = outcome.saved_model(&cfg).exports;
    let get = |name: &str| -> Vec<f64> { exports.iter().find(|(k, _)| k == name).map(|(_, v)| v.iter().copied().collect()).unwrap_or_else(|| panic!("no export {name}")) };
    let truth = colop::synth::read_truth(&d.join("data/thermal.h5")).unwrap().expect("a synthetic run keeps its truth");
    let (tv, ta, tdp, tdq) = truth.profiles.expect("an isotropic truth has radial profiles");
    let v = get("v_radial");
    let interp = |xs: &[f64], ys: &[f64], x: f64| -> f64 {
        let i = xs.partition_point(|&t| t < x).clamp(1, xs.len() - 1);
        ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1])
    };
    let mut errors = Vec::new();
    for (name, truth_values) in [("A_par", &ta), ("D_par", &tdp), ("D_perp", &tdq)] {
        let learned = get(name);
        let (mut num, mut den) = (0.0, 0.0);
        for (i, &s) in v.iter().enumerate().filter(|(_, &s)| (0.3..=3.0).contains(&s)) {
            let t = interp(&tv, truth_values, s);
            num += (learned[i] - t).powi(2);
            den += t * t;
        }
        errors.push((name, (num / den).sqrt()));
    }
    assert!(errors.iter().all(|(_, e)| *e < 0.05), "relative L2 over 0.3–3 v_th: {errors:?}");
}

#[test]
fn three_component_tracks_give_3d_transition_windows() {
    let dir = tempfile::tempdir().unwrap();
    let run = ou_tracks(VelocityGrid::cube(9, 3.0).unwrap(), 4000, 8, 12, BTreeMap::new());
    write_run(&dir.path().join("ou3.h5"), &run).unwrap();
    let cfg = tracks_config(
        dir.path(),
        "{ kind: par-perp }",
        "{ runs: [ou3.h5], lags: 3, delay: 1, starts: { every: 2 }, min_particles: 30 }",
        "{ scheme: central, substeps: auto }",
        "[ { unroll: all, epochs: 15, lr: 1.0e-2 } ]",
    );
    let setup = Setup::new(&cfg).unwrap();
    let index = &setup.tracks[0].index;
    assert!(!index.windows.is_empty() && index.windows.iter().all(|w| w.bin < 9 * 9 * 9));
    let out = dir.path().join("run3");
    let outcome = colop::train::train(&cfg, &out, None, None, &SingleProcess).unwrap();
    let first = losses(&out)[0];
    assert!(outcome.best_loss < first, "3-D windows: loss {} did not fall below {first}", outcome.best_loss);
}
