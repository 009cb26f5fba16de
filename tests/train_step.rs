//! The per-stage gradient step: the reduction blocks depend on the batch only, and evaluation rolls a time-dependent
//! `substeps: auto` model out with exactly the discretisation training used.

use colop::dist::SingleProcess;
use colop::train::problem::reduction_blocks;
mod common;
use common::{config, synth};

#[test]
fn reduction_blocks_depend_on_the_batch_only_and_split_evenly() {
    use colop::data::Sample;
    let samples: Vec<Sample> = (0..90).map(|i| Sample { run: 0, start: i, intervals: 1, channel: 0 }).collect();
    for theta_level in [true, false] {
        let b = reduction_blocks(&samples, theta_level);
        assert_eq!((b[0], *b.last().unwrap()), (0, 90));
        let sizes: Vec<usize> = b.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
        // An even count of blocks, so two workers share them evenly.
        assert!(sizes.len() >= 2 && sizes.len() % 2 == 0, "{sizes:?}");
    }
    // Long windows: one block per sample.
    let long: Vec<Sample> = (0..8).map(|i| Sample { run: 0, start: i, intervals: 95, channel: 0 }).collect();
    assert_eq!(reduction_blocks(&long, true).len(), 9);
}

#[test]
fn evaluation_uses_the_training_discretisation_of_a_time_dependent_model() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 14);
    let cfg = config(
        dir.path(),
        "{ kind: par-perp-time, n_t: 3 }",
        "{ unroll: all, epochs: 4, lr: 1.0e-2 }",
        "{ scheme: conservative, clamp_nonnegative: false, substeps: auto }",
    );
    let run_dir = dir.path().join("run");
    let outcome = colop::train::train(&cfg, &run_dir, None, None, &SingleProcess).unwrap();
    let saved = outcome.saved_model(&cfg);
    let op = colop::eval::Rollable::new(&saved, Vec::new()).unwrap();
    let ev = colop::eval::evaluate_run(&op, &dir.path().join("data/blob.h5"), 2, 2).unwrap();
    // Training's loss of its one whole-run window (MAE over cells and snapshots) is the mean
    // per-cell l1 of the evaluation: the same rollout, step for step.
    let rel = (ev.mean_l1 - outcome.best_loss).abs() / outcome.best_loss;
    assert!(rel < 1e-12, "eval mean l1 {} vs training loss {} (rel {rel:e})", ev.mean_l1, outcome.best_loss);
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert_eq!(Some(ev.substeps as u64), last["substeps"].as_u64());
}


