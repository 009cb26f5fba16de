//! The training-epoch benchmark: the real gradient step ([`super::problem::StageProblem::step`]
//! plus Adam) against the bare solver forward + adjoint on the same windows, with the heap
//! allocations per epoch after warm-up.
//!
//! The workload is the reference benchmark's: `windows` windows of one 51×51 synthetic run
//! (a blob relaxing under the recovery tests' radial operator), trained as `colop train` would;
//! in three dimensions the same on 51³.

use super::setup::Setup;
use crate::config::TrainConfig;
use crate::dist::Comm;
use crate::operator::spec::ModelSpec;
use crate::synth::{generate_run, GridSpec, Initial, RunSpec, SynthConfig, TruthSpec};
use std::time::Instant;

/// The reference truth: the radial operator of the recovery tests (d0 = 0.016, stationary drag).
pub fn reference_truth() -> TruthSpec {
    TruthSpec::Radial { a_par: "stationary".into(), d_par: "0.016*(1+v^2/4)^(-1.5)".into(), d_perp: "0.016*(1+v^2/4)^(-0.5)".into() }
}

/// Write the reference run on a 51-cell-per-axis grid of `dim` dimensions with exactly `windows`
/// windows of `unroll` intervals from snapshot 5 into `dir`; returns its path.
pub fn reference_run(dir: &std::path::Path, unroll: usize, windows: usize, dim: usize) -> anyhow::Result<std::path::PathBuf> {
    let cfg = SynthConfig {
        grid: GridSpec { n: 51, v_max: 5.0, dim },
        operator: reference_truth(),
        time_factor: None,
        snapshots: 5 + unroll + windows,
        dt: 1.0,
        substeps: 20,
        n_particles: 3e5,
        noise: None,
        tracks: None,
        runs: Vec::new(),
    };
    let mut centre = vec![0.0; dim];
    centre[0] = -2.0;
    let run = RunSpec { name: "bench".into(), initial: vec![Initial::Normal { centre, sigma: 0.4, weight: 1.0 }], params: Default::default(), tracks: None };
    let data = generate_run(&cfg, &run, 0)?;
    let path = dir.join(format!("bench-{dim}d-{unroll}-{windows}.h5"));
    crate::data::write_run(&path, &data)?;
    Ok(path)
}

/// Best-of-`reps` seconds per epoch (gradient step + Adam), bare solver seconds on the same
/// windows, their ratio and the allocations per epoch, for `model` (a YAML `model:` mapping) on
/// the reference run in `dim` dimensions; `epochs_per_rep` epochs are timed per repetition.
pub fn epoch_benchmark(
    model: &str,
    unroll: usize,
    windows: usize,
    reps: usize,
    epochs_per_rep: usize,
    dim: usize,
    comm: &dyn Comm,
) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let run = reference_run(dir.path(), unroll, windows, dim)?;
    let yaml = format!(
        "data: {{ train: [{}], i_start: 5 }}\nmodel: {model}\ntrain: {{ seed: 1, stages: [{{ unroll: {unroll}, epochs: 1 }}] }}\n",
        run.display()
    );
    let cfg: TrainConfig = crate::config::parse_yaml(&yaml, std::path::Path::new("<bench>"))?;
    let spec: ModelSpec = cfg.model.clone();
    let setup = Setup::new(&cfg)?;
    let mut problem = setup.stage(&cfg, 0, comm)?;
    let mut theta = setup.model.init_params(cfg.train.seed);
    let mut adam = crate::train::adam::Adam::new(theta.len());
    let epoch = |problem: &mut super::problem::StageProblem, theta: &mut Vec<f64>, adam: &mut crate::train::adam::Adam| -> anyhow::Result<f64> {
        let t0 = Instant::now();
        problem.step(theta, super::problem::Batch::Full, false, comm)?;
        adam.update(theta, problem.d_theta(), 1e-4);
        Ok(t0.elapsed().as_secs_f64())
    };
    // Warm-up: buffers sized, schedules built, pages touched.
    for _ in 0..3 {
        epoch(&mut problem, &mut theta, &mut adam)?;
    }
    let n_epochs = epochs_per_rep.max(1) * reps.max(1);
    let allocs0 = crate::alloc::allocations();
    for _ in 0..n_epochs {
        epoch(&mut problem, &mut theta, &mut adam)?;
    }
    let allocs = (crate::alloc::allocations() - allocs0) as f64 / n_epochs as f64;
    // Epochs and bare rollouts alternate, so that both see the same machine (a shared or
    // virtual machine's speed drifts by tens of percent over seconds); each figure is the best
    // of its runs.
    let (mut best, mut bare) = (f64::INFINITY, f64::INFINITY);
    let mut times = Vec::with_capacity(n_epochs);
    let mut stepped = theta.clone();
    for _ in 0..n_epochs {
        // The bare rollouts run at the θ the epoch stepped from, whose coefficients are then
        // current: the next epoch still prepares its own, as in training.
        stepped.copy_from_slice(&theta);
        let s = epoch(&mut problem, &mut theta, &mut adam)?;
        times.push(s);
        best = best.min(s);
        bare = bare.min(problem.solver_only(&stepped)?);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(serde_json::json!({
        "model": spec.kind,
        "model_spec": model,
        "parameters": theta.len(),
        "reduction": if problem.theta_level() { "theta" } else { "fields" },
        "reduction_blocks": problem.n_blocks(),
        "grid": setup.model.grid().extents(),
        "windows": problem.train.len(),
        "unroll": unroll,
        "threads": rayon::current_num_threads(),
        "ranks": comm.size(),
        "epoch_s": best,
        "epoch_s_median": median,
        "solver_forward_adjoint_s": bare,
        "ratio": best / bare,
        "allocations_per_epoch": allocs,
    }))
}
