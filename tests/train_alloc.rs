//! A steady-state epoch of the gradient step makes no heap allocation per sample (counted by a
//! counting global allocator; this file holds one test, so nothing else allocates meanwhile).

use colop::config::TrainConfig;
use colop::dist::SingleProcess;
use colop::train::problem::Batch;
use colop::train::setup::Setup;
mod common;
use common::{config, synth};

#[global_allocator]
static ALLOC: colop::alloc::Counting<std::alloc::System> = colop::alloc::Counting(std::alloc::System);

/// Allocations per epoch after warm-up, and the number of training windows.
fn allocations_per_epoch(cfg: &TrainConfig) -> (f64, usize) {
    let setup = Setup::new(cfg).unwrap();
    let mut problem = setup.stage(cfg, 0, &SingleProcess).unwrap();
    let mut theta = setup.model.init_params(1);
    let mut adam = colop::train::adam::Adam::new(theta.len());
    let mut epoch = |problem: &mut colop::train::problem::StageProblem, theta: &mut Vec<f64>| {
        let out = problem.step(theta, Batch::Full, false, &SingleProcess).unwrap();
        assert!(out.loss.is_finite());
        adam.update(theta, problem.d_theta(), 1e-4);
    };
    for _ in 0..3 {
        epoch(&mut problem, &mut theta);
    }
    let n = 20;
    let before = colop::alloc::allocations();
    for _ in 0..n {
        epoch(&mut problem, &mut theta);
    }
    ((colop::alloc::allocations() - before) as f64 / n as f64, problem.train.len())
}

#[test]
fn a_steady_state_epoch_allocates_nothing_per_sample() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 60);
    let models = ["{ kind: par-perp }", "{ kind: tensor }", "{ kind: par-perp-time, n_t: 3 }", "{ kind: mlp, symmetry: isotropic, width: 16, depth: 2 }", "{ kind: mlp, width: 8, depth: 1 }"];
    for model in models {
        let few = config(dir.path(), model, "{ unroll: 45, epochs: 1 }", "{ substeps: 1 }");
        let many = config(dir.path(), model, "{ unroll: 2, epochs: 1 }", "{ substeps: 1 }");
        let (a_few, n_few) = allocations_per_epoch(&few);
        let (a_many, n_many) = allocations_per_epoch(&many);
        assert!(n_many > 4 * n_few, "{n_few} vs {n_many} windows");
        // A handful per epoch at most, and not growing with the number of samples.
        assert!(a_few <= 16.0 && a_many <= 16.0, "{model}: {a_few} allocations/epoch for {n_few} windows, {a_many} for {n_many}");
        // One allocation per sample would add ≥ 40 here; the thread pool's own bookkeeping
        // varies by one or two.
        assert!(a_many <= a_few + 3.0, "{model}: allocations grow with samples: {a_few} → {a_many}");
    }
}

