//! `data.cache_mb`: a shard larger than the budget is streamed from the run files window by
//! window, and training gives bitwise the same losses, gradients and model as a fully cached
//! shard, while the snapshots resident on the rank stay within the budget.

use colop::config::TrainConfig;
use colop::dist::SingleProcess;
use colop::train::adam::Adam;
use colop::train::problem::Batch;
use colop::train::setup::Setup;
use std::path::Path;
use std::process::{Command, Output};

const SYNTH: &str = "
grid: { n: 13, v_max: 4.0 }
operator: { kind: radial, d_par: \"0.05*(1+v^2/4)^(-1.5)\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: stationary }
time_factor: \"1 + t/20\"
snapshots: 16
substeps: 20
runs:
  - { name: a, initial: [ { kind: normal, centre: [-1.0, 0.5], sigma: 0.6 } ] }
  - { name: b, initial: [ { kind: ring, radius: 1.5, width: 0.3 } ] }
  - { name: c, initial: [ { kind: normal, centre: [1.0, 1.0], sigma: 0.5 } ] }
";

/// The same runs on a 9³ grid.
fn synth_3d() -> String {
    SYNTH
        .replace("n: 13, v_max: 4.0", "n: 9, v_max: 4.0, dim: 3")
        .replace("[-1.0, 0.5]", "[-1.0, 0.5, 0.0]")
        .replace("[1.0, 1.0]", "[1.0, 1.0, -0.5]")
        .replace("snapshots: 16", "snapshots: 10")
}

fn colop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_colop")).args(args).env_remove("RUST_LOG").output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn synth(d: &Path) {
    synth_with(d, SYNTH);
}

fn synth_with(d: &Path, yaml: &str) {
    std::fs::write(d.join("synth.yaml"), yaml).unwrap();
    ok(&colop(&["synth", d.join("synth.yaml").to_str().unwrap(), "--out", d.join("data").to_str().unwrap()]));
}

/// A config over the three runs; `cache` is the `data.cache_mb` entry (or empty).
fn config_text(model: &str, cache: &str, stages: &str) -> String {
    format!(
        "data: {{ train: [data/a.h5, data/b.h5, data/c.h5], valid_fraction: 0.2, i_start: 2{cache} }}
model: {{ kind: {model} }}
solver: {{ substeps: 2 }}
train:
  seed: 7
  stages: [ {stages} ]
"
    )
}

fn config(d: &Path, name: &str, model: &str, cache: &str, stages: &str) -> TrainConfig {
    let p = d.join(format!("{name}.yaml"));
    std::fs::write(&p, config_text(model, cache, stages)).unwrap();
    TrainConfig::load(&p).unwrap()
}

/// Every bit a few steps produce: losses, validation losses and ∂L/∂θ of full and mini-batch
/// steps (θ moved by Adam between them), and the resident snapshot bytes after each step.
struct Trace {
    bits: Vec<u64>,
    resident: Vec<usize>,
    shard: (usize, Option<usize>),
    /// Chunks read by the workers, and read ahead in the background.
    reads: (usize, usize),
}

fn trace(cfg: &TrainConfig) -> Trace {
    let setup = Setup::new(cfg).unwrap();
    let mut problem = setup.stage(cfg, 0, &SingleProcess).unwrap();
    let mut theta = setup.model.init_params(3);
    let mut adam = Adam::new(theta.len());
    let mut bits = Vec::new();
    let mut resident = Vec::new();
    let n = problem.train.len();
    let some: Vec<usize> = (0..n).filter(|i| i % 3 != 1).collect();
    for step in 0..5 {
        let batch = if step % 2 == 0 { Batch::Full } else { Batch::Indices(&some) };
        let out = problem.step(&theta, batch, true, &SingleProcess).unwrap();
        bits.push(out.loss.to_bits());
        bits.push(out.valid_loss.expect("validation windows").to_bits());
        bits.extend(problem.d_theta().iter().map(|v| v.to_bits()));
        adam.update(&mut theta, problem.d_theta(), 1e-2);
        resident.push(problem.data_bytes());
    }
    Trace { bits, resident, shard: problem.shard_bytes(), reads: problem.snapshot_reads() }
}

#[test]
fn streamed_steps_are_bitwise_the_cached_ones_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path());
    streamed_equals_cached(dir.path(), &["par-perp", "par-perp-time, n_t: 3"], 13 * 13 * 8, 14);
    let dir = tempfile::tempdir().unwrap();
    synth_with(dir.path(), &synth_3d());
    streamed_equals_cached(dir.path(), &["par-perp"], 9 * 9 * 9 * 8, 8);
}

/// Streamed and cached steps of `models` at unroll 3 and `all` (windows of `whole` intervals),
/// on runs whose snapshots take `snapshot` bytes.
fn streamed_equals_cached(d: &Path, models: &[&str], snapshot: usize, whole: usize) {
    let workers = rayon::current_num_threads();
    for model in models {
        for (unroll, window) in [("3", 4), ("all", whole + 1)] {
            let stages = format!("{{unroll: {unroll}, epochs: 1}}");
            let cached = config(d, "cached", model, "", &stages);
            let Trace { bits: reference, resident: held, shard: (shard, budget), reads } = trace(&cached);
            assert_eq!((budget, reads), (None, (0, 0)));
            assert!(held.iter().all(|&b| b == shard), "a cached shard holds all of it: {held:?} vs {shard}");
            // A buffer of one snapshot (chunked walks, many reads), and of five (whole windows,
            // chunked bundles, read ahead in the background).
            for rows in [1usize, 5] {
                let budget = 2 * workers * rows * snapshot;
                let mb = (budget as f64 + 0.5) / (1024.0 * 1024.0);
                let cfg = config(d, "streamed", model, &format!(", cache_mb: {mb}"), &stages);
                let Trace { bits, resident, shard: (shard_s, streamed), reads } = trace(&cfg);
                let case = format!("{model}, unroll {unroll}, {rows}-row buffers");
                assert_eq!(shard_s, shard, "{case}");
                assert!(streamed.is_some_and(|b| b < shard), "{case}: not streamed ({streamed:?}, shard {shard})");
                assert!(bits == reference, "{case}: streamed steps differ from cached ones");
                // Resident: the workers' buffers, within the budget (+ one window's worth), and
                // not growing from step to step.
                let most = *resident.iter().max().unwrap();
                assert!(most > 0 && most <= budget.max(2 * workers * snapshot), "{case}: {most} bytes resident, budget {budget}");
                assert!(most <= budget + window * snapshot, "{case}: {most} bytes resident, budget {budget}");
                assert!(most < shard, "{case}: {most} of {shard} bytes resident");
                assert_eq!(resident[1..], resident[..resident.len() - 1], "{case}: resident bytes grow");
                // Windows longer than the buffer are walked in chunks read ahead.
                assert!(reads.0 > 0, "{case}: {reads:?}");
                if unroll == "all" {
                    assert!(reads.1 >= reads.0, "{case}: chunks read (by workers, ahead) {reads:?}");
                }
                eprintln!("{case}: resident {most} of {shard} bytes (budget {budget}), chunks read {reads:?}");
            }
        }
    }
}

fn model_values(run: &Path) -> Vec<u64> {
    let f = hdf5::File::open(run.join("model.h5")).unwrap();
    let mut v: Vec<f64> = f.dataset("theta").unwrap().read_raw().unwrap();
    v.extend(f.dataset("A").unwrap().read_raw::<f64>().unwrap());
    v.extend(f.dataset("D").unwrap().read_raw::<f64>().unwrap());
    v.into_iter().map(f64::to_bits).collect()
}

#[test]
fn training_with_a_tiny_cache_writes_the_same_model_and_says_it_streams() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d);
    let stages = "{unroll: 1, epochs: 3, lr: 1.0e-2}, {unroll: 3, epochs: 3}, {unroll: all, epochs: 2}";
    for model in ["par-perp", "par-perp-time, n_t: 3"] {
        let mut models = Vec::new();
        for (name, cache) in [("cached", ""), ("streamed", ", cache_mb: 0.001")] {
            let cfg = d.join(format!("{name}.yaml"));
            std::fs::write(&cfg, config_text(model, cache, stages)).unwrap();
            let run = d.join(format!("{name}-{}", model.len()));
            let log = ok(&colop(&["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--no-plots"]));
            let said = if cache.is_empty() { "snapshots cached" } else { "snapshots streamed" };
            assert_eq!(log.lines().filter(|l| l.contains(said)).count(), 3, "{model} {name}: one line per stage:\n{log}");
            models.push(model_values(&run));
        }
        assert!(models[0] == models[1], "{model}: streamed model differs from the cached one");
    }
    // A budget that is not a positive number is a one-line error naming the key.
    let cfg = d.join("bad.yaml");
    std::fs::write(&cfg, config_text("par-perp", ", cache_mb: 0", stages)).unwrap();
    let out = colop(&["train", cfg.to_str().unwrap(), "--out", d.join("bad").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("data.cache_mb"), "{err}");
    assert!(!d.join("bad/model.h5").exists());
}

#[test]
fn a_run_file_broken_during_streamed_training_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d);
    let cfg = config(d, "streamed", "par-perp", ", cache_mb: 0.001", "{unroll: all, epochs: 1}");
    let setup = Setup::new(&cfg).unwrap();
    let mut problem = setup.stage(&cfg, 0, &SingleProcess).unwrap();
    let theta = setup.model.init_params(3);
    problem.step(&theta, Batch::Full, true, &SingleProcess).unwrap();
    // Replace run b by a copy whose last snapshot holds a NaN: the next read of it fails,
    // without a panic. (The copy is edited under another name and renamed into place: the
    // read-ahead may still be reading b.h5, and HDF5 refuses to open a file for writing that the
    // process has open for reading.)
    {
        let (path, edited) = (d.join("data/b.h5"), d.join("data/b-edited.h5"));
        std::fs::copy(&path, &edited).unwrap();
        let f = hdf5::File::open_rw(&edited).unwrap();
        let ds = f.dataset("f").unwrap();
        let mut all: ndarray::Array3<f64> = ds.read().unwrap();
        let last = all.shape()[0] - 1;
        all[[last, 6, 6]] = f64::NAN;
        ds.write(&all).unwrap();
        drop(f);
        std::fs::rename(&edited, &path).unwrap();
    }
    let e = problem.step(&theta, Batch::Full, true, &SingleProcess).unwrap_err().to_string();
    assert!(e.contains("b.h5") && !e.contains('\n'), "{e}");
}
