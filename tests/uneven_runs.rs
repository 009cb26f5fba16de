//! Runs whose snapshots are unevenly spaced: every interval is integrated over its own length, in
//! training (exact gradients) and in evaluation.

use colop::config::TrainConfig;
use colop::data::{read_run, write_run};
use colop::dist::SingleProcess;
use colop::train::problem::Batch;
use colop::train::setup::Setup;
use ndarray::Axis;
use std::path::Path;
use std::process::Command;

/// A static radial operator relaxing a blob, 15 snapshots 1/ω_p apart, as `data/even.h5`; and
/// the same run without snapshots 3, 4, 8 and 11 (gaps of 2 and 3) as `data/uneven.h5`.
fn runs(dir: &Path) {
    let yaml = "grid: { n: 15, v_max: 4.0 }
operator: { kind: radial, d_par: \"0.05*(1+v^2/4)^(-1.5)\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: stationary }
snapshots: 15
dt: 1.0
substeps: 20
runs:
  - { name: even, initial: [ { kind: normal, centre: [-1.0, 0.5], sigma: 0.6 } ] }
";
    std::fs::write(dir.join("synth.yaml"), yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_colop"))
        .args(["synth", dir.join("synth.yaml").to_str().unwrap(), "--out", dir.join("data").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut run = read_run(&dir.join("data/even.h5")).unwrap();
    let keep: Vec<usize> = (0..15).filter(|k| ![3, 4, 8, 11].contains(k)).collect();
    run.f = run.f.select(Axis(0), &keep);
    run.t = keep.iter().map(|&k| run.t[k]).collect();
    run.tracks = None;
    run.diagnostics.clear();
    write_run(&dir.join("data/uneven.h5"), &run).unwrap();
}

fn config(dir: &Path, file: &str, model: &str, stage: &str, loss: &str) -> TrainConfig {
    let p = dir.join(format!("train-{file}.yaml"));
    std::fs::write(
        &p,
        format!("data: {{ train: [data/{file}.h5], i_start: 0 }}\nmodel: {model}\nsolver: {{ scheme: conservative, clamp_nonnegative: false, substeps: auto }}\ntrain: {{ seed: 5, loss: {loss}, stages: [{stage}] }}\n"),
    )
    .unwrap();
    TrainConfig::load(&p).unwrap()
}

/// The gradient of the training loss on the uneven run matches central finite differences, for a
/// static and a time-dependent model, short windows and the whole run.
#[test]
fn gradients_on_an_uneven_run_match_finite_differences() {
    let dir = tempfile::tempdir().unwrap();
    runs(dir.path());
    for model in ["{ kind: par-perp }", "{ kind: tensor }", "{ kind: par-perp-time, n_t: 3 }"] {
        for stage in ["{ unroll: 2, epochs: 1 }", "{ unroll: all, epochs: 1 }"] {
            // MSE: the l1 loss has kinks where prediction and data cross.
            let cfg = config(dir.path(), "uneven", model, stage, "mse");
            let setup = Setup::new(&cfg).unwrap();
            let mut problem = setup.stage(&cfg, 0, &SingleProcess).unwrap();
            // Away from the initial point: there D_xy = 0 in every cell, a kink of the
            // conservative scheme's jump rates (|D_xy|), where only one-sided derivatives exist.
            let theta: Vec<f64> = setup.model.init_params(3).iter().enumerate().map(|(i, t)| t + 0.2 * (t.abs() + 1e-2) * (((i * 31 % 17) as f64) / 17.0 - 0.5)).collect();
            problem.step(&theta, Batch::Full, false, &SingleProcess).unwrap();
            let grad = problem.d_theta().to_vec();
            let u: Vec<f64> = (0..theta.len()).map(|i| ((i * 7919 % 113) as f64 / 113.0 - 0.5) * 0.05).collect();
            let dir_grad: f64 = grad.iter().zip(&u).map(|(g, u)| g * u).sum();
            let mut loss_at = |s: f64| {
                let th: Vec<f64> = theta.iter().zip(&u).map(|(t, u)| t + s * u).collect();
                problem.step(&th, Batch::Full, false, &SingleProcess).unwrap().loss
            };
            let eps = 1e-5;
            let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps);
            let rel = (fd - dir_grad).abs() / dir_grad.abs().max(1e-300);
            assert!(rel < 1e-6, "{model} {stage}: finite difference {fd:e} vs gradient {dir_grad:e} (rel {rel:e})");
        }
    }
}

/// A model trained on the evenly spaced run predicts the last snapshot of the uneven run (the
/// same trajectory with snapshots left out) as well as of the even one; read as if it were evenly
/// spaced (the gaps ignored), the prediction is far worse.
#[test]
fn an_uneven_run_is_rolled_out_over_its_own_intervals() {
    let dir = tempfile::tempdir().unwrap();
    runs(dir.path());
    let cfg = config(dir.path(), "even", "{ kind: par-perp }", "{ unroll: all, epochs: 150, lr: 2.0e-2 }", "mae");
    let outcome = colop::train::train(&cfg, &dir.path().join("run"), None, None, &SingleProcess).unwrap();
    let saved = outcome.saved_model(&cfg);
    let op = colop::eval::Rollable::new(&saved, Vec::new()).unwrap();
    let eval = |file: &str| colop::eval::evaluate_run(&op, &dir.path().join(format!("data/{file}.h5")), 0, 2).unwrap();
    let (even, uneven) = (eval("even"), eval("uneven"));
    assert_eq!(even.steps, 14);
    assert_eq!(uneven.steps, 10);
    // The uneven run's longest interval is 3/ω_p, so `auto` takes at least as many substeps.
    assert!(uneven.substeps >= even.substeps, "{} vs {}", uneven.substeps, even.substeps);
    let rel = (uneven.final_l1 - even.final_l1).abs() / even.final_l1;
    assert!(rel < 0.05, "final l1: uneven {} vs even {} (rel {rel})", uneven.final_l1, even.final_l1);
    // The same snapshots relabelled as evenly spaced: 10/ω_p of rollout instead of 14.
    let mut wrong = read_run(&dir.path().join("data/uneven.h5")).unwrap();
    wrong.t = (0..wrong.t.len()).map(|k| k as f64).collect();
    write_run(&dir.path().join("data/wrong.h5"), &wrong).unwrap();
    let wrong = eval("wrong");
    assert!(wrong.final_l1 > 2.0 * even.final_l1, "ignoring the gaps: final l1 {} vs {}", wrong.final_l1, even.final_l1);
}
