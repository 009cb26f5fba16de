//! MPI tests: the real binary under `mpirun -n 1/2/3/4` (oversubscribed). Identical models for
//! every rank count (a 3-D model too), resume across rank counts, a failing rank ends the job,
//! every rank busy.

mod common;

use colop::grid::VelocityGrid;
use ndarray::Array3;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn mpirun(n: usize, args: &[&str]) -> Output {
    Command::new("mpirun")
        .args(["-n", &n.to_string(), "--oversubscribe", "--bind-to", "none"])
        .arg(env!("CARGO_BIN_EXE_colop"))
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("mpirun not found: install openmpi-bin (scripts/setup.sh does)")
}

fn colop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_colop")).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SYNTH: &str = "
grid: { n: 13, v_max: 4.0 }
operator: { kind: radial, d_par: \"0.05*(1+v^2/4)^(-1.5)\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: stationary }
snapshots: 14
substeps: 20
runs:
  - { name: a, initial: [ { kind: normal, centre: [-1.0, 0.5], sigma: 0.6 } ], params: { p: 1.0 } }
  - { name: b, initial: [ { kind: ring, radius: 1.5, width: 0.3 } ], params: { p: 2.0 } }
  - { name: c, initial: [ { kind: normal, centre: [1.0, 1.0], sigma: 0.5 } ], params: { p: 3.0 } }
";

fn train_yaml(model: &str) -> String {
    format!(
        "data: {{ train: [data/a.h5, data/b.h5, data/c.h5], valid_fraction: 0.1, i_start: 2 }}
model: {{ kind: {model} }}
train:
  seed: 3
  stages: [ {{unroll: 1, epochs: 4, lr: 1.0e-2}}, {{unroll: 3, epochs: 3}} ]
"
    )
}

fn model_values(run: &Path) -> Vec<f64> {
    let f = hdf5::File::open(run.join("model.h5")).unwrap();
    let mut v: Vec<f64> = f.dataset("theta").unwrap().read_raw().unwrap();
    v.extend(f.dataset("A").unwrap().read_raw::<f64>().unwrap());
    v.extend(f.dataset("D").unwrap().read_raw::<f64>().unwrap());
    v
}

fn setup(d: &Path) {
    common::synth_from(d, SYNTH);
}

#[test]
fn identical_models_for_1_2_3_4_ranks_and_resume_across_rank_counts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    std::fs::write(d.join("t.yaml"), train_yaml("tensor")).unwrap();
    let cfg = d.join("t.yaml");
    let mut reference = None;
    for n in 1..=4 {
        let run = d.join(format!("run{n}"));
        let log = ok(&mpirun(n, &["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--no-plots"]));
        // Every rank holds training windows (3 runs on 4 ranks keep all 4 busy).
        for r in 0..n {
            let line = log.lines().find(|l| l.contains(&format!("[rank {r}]")) && l.contains("this rank holds")).unwrap_or_else(|| panic!("no shard line for rank {r}:\n{log}"));
            assert!(!line.contains("holds 0 training"), "{line}");
        }
        let v = model_values(&run);
        match &reference {
            None => reference = Some(v),
            Some(r) => assert!(r == &v, "{n} ranks differ from 1 rank"),
        }
    }
    // Stop after 3 epochs on 3 ranks, resume on 2: the same model.
    let run = d.join("resumed");
    let out = mpirun(3, &["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--stop-after", "3", "--no-plots"]);
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    ok(&mpirun(2, &["train", "--resume", run.to_str().unwrap(), "--no-plots"]));
    assert!(reference.as_ref().unwrap() == &model_values(&run), "resumed run differs");
}

#[test]
fn every_model_family_gives_the_same_model_on_one_and_two_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    for (i, model) in [
        "par-perp-time, n_t: 3",
        "mlp-conditioned, conditioners: [p], width: 8, depth: 1",
        "mlp, symmetry: mirror, width: 8, depth: 1",
        "kernel, stencil: 3, symmetry: transposed, kernel_smooth_d2: 1.0",
        "tensor-sym, nonnegative_d: true",
    ]
    .iter()
    .enumerate()
    {
        let cfg = d.join(format!("m{i}.yaml"));
        // The first case also exercises the conservative scheme with checkpointed adjoints.
        let solver = if i == 0 { "solver: { scheme: conservative, substeps: auto, checkpoints: 2 }\n" } else { "" };
        std::fs::write(&cfg, format!("{}{solver}", train_yaml(model))).unwrap();
        let mut models = Vec::new();
        for n in [1, 2] {
            let run = d.join(format!("m{i}-{n}"));
            ok(&mpirun(n, &["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--no-plots"]));
            let f = hdf5::File::open(run.join("model.h5")).unwrap();
            models.push(f.dataset("theta").unwrap().read_raw::<f64>().unwrap());
        }
        assert!(models[0] == models[1], "{model}: 1 and 2 ranks differ");
    }
}

#[test]
fn streamed_snapshots_on_two_ranks_give_the_cached_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let mut models = Vec::new();
    for (name, n, cache) in [("cached", 1, ""), ("streamed", 2, ", cache_mb: 0.002")] {
        let cfg = d.join(format!("{name}.yaml"));
        let yaml = train_yaml("par-perp").replace("i_start: 2 }", &format!("i_start: 2{cache} }}")).replace("{unroll: 3, epochs: 3}", "{unroll: 3, epochs: 3}, {unroll: all, epochs: 2}");
        std::fs::write(&cfg, yaml).unwrap();
        let run = d.join(name);
        let log = ok(&mpirun(n, &["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--no-plots"]));
        if !cache.is_empty() {
            for r in 0..n {
                assert!(log.lines().any(|l| l.contains(&format!("[rank {r}]")) && l.contains("snapshots streamed")), "rank {r} did not stream:\n{log}");
            }
        }
        models.push(model_values(&run));
    }
    assert!(models[0] == models[1], "2 streamed ranks differ from 1 cached rank");
}

#[test]
fn a_failing_rank_ends_every_rank_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    // Poison the last snapshot of the last run: only the last rank reads it.
    let p = d.join("data/c.h5");
    {
        let f = hdf5::File::open_rw(&p).unwrap();
        let ds = f.dataset("f").unwrap();
        let mut all: ndarray::Array3<f64> = ds.read().unwrap();
        let last = all.shape()[0] - 1;
        all[[last, 6, 6]] = f64::NAN;
        ds.write(&all).unwrap();
    }
    std::fs::write(d.join("t.yaml"), train_yaml("par-perp")).unwrap();
    let t0 = Instant::now();
    let out = mpirun(4, &["train", d.join("t.yaml").to_str().unwrap(), "--out", d.join("run").to_str().unwrap()]);
    let took = t0.elapsed();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("c.h5") && (err.contains("non-finite") || err.contains("NaN")), "{err}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(!d.join("run/model.h5").exists());
}

#[test]
fn scaling_script_grows_the_problem_with_the_rank_count_and_summarises_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let cfg = d.join("scaling.yaml");
    std::fs::write(
        &cfg,
        "data: { train: [ {{ranks:data/a.h5}} ], i_start: 2 }\nmodel: { kind: tensor }\ntrain: { seed: 1, checkpoint_every: 0, stages: [ {unroll: 1, epochs: 12, lr: 1.0e-3} ] }\n",
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scaling.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["--ranks", "1 2", cfg.to_str().unwrap(), d.join("study").to_str().unwrap()])
        .env("COLOP", env!("CARGO_BIN_EXE_colop"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .unwrap();
    ok(&out);
    // Weak scaling at 2 ranks trains on the run twice, strong scaling on it once.
    let n_train = |run: &str| -> u64 {
        let text = std::fs::read_to_string(d.join("study").join(run).join("metrics.jsonl")).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        line["n_train"].as_u64().unwrap()
    };
    assert_eq!(n_train("weak-2"), 2 * n_train("weak-1"));
    assert_eq!(n_train("strong-2"), n_train("strong-1"));
    let summary = std::fs::read_to_string(d.join("study/scaling_summary.csv")).unwrap();
    let header: Vec<&str> = summary.lines().next().unwrap().split(',').collect();
    for col in ["comm_fraction", "allreduce_s", "allreduce_fraction", "imbalance", "efficiency"] {
        assert!(header.contains(&col), "no column {col}: {header:?}");
    }
    let eff = header.iter().position(|h| *h == "efficiency").unwrap();
    for (mode, ranks) in [("strong", "1"), ("strong", "2"), ("weak", "1"), ("weak", "2")] {
        let row: Vec<&str> = summary.lines().find(|l| l.starts_with(&format!("{mode},{ranks},"))).unwrap_or_else(|| panic!("no {mode}/{ranks} row:\n{summary}")).split(',').collect();
        let e: f64 = row[eff].parse().unwrap();
        assert!(e > 0.0 && e.is_finite(), "{mode}/{ranks}: efficiency {e}");
        if ranks == "1" {
            assert_eq!(e, 1.0);
        }
    }
    assert!(d.join("study/scaling.png").is_file());
}

#[test]
fn ranks_times_threads_layouts_give_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    std::fs::write(d.join("t.yaml"), train_yaml("par-perp")).unwrap();
    let cfg = d.join("t.yaml");
    let cfg = cfg.to_str().unwrap();
    // 1 rank × 2 threads, 2 ranks × 1 thread, 2 ranks × 2 threads.
    let single = d.join("1x2");
    ok(&colop(&["train", cfg, "--out", single.to_str().unwrap(), "--threads", "2", "--no-plots"]));
    let two = d.join("2x1");
    ok(&mpirun(2, &["train", cfg, "--out", two.to_str().unwrap(), "--threads", "1", "--no-plots"]));
    let four = d.join("2x2");
    ok(&mpirun(2, &["train", cfg, "--out", four.to_str().unwrap(), "--threads", "2", "--no-plots"]));
    let reference = model_values(&single);
    assert!(reference == model_values(&two), "2 ranks × 1 thread differ from 1 rank × 2 threads");
    assert!(reference == model_values(&four), "2 ranks × 2 threads differ from 1 rank × 2 threads");
}

/// A drifting, spreading Gaussian blob on a 7³ grid: σ² = σ₀² + 2Dt, centre c₀ − a t.
fn blob_run(path: &Path, centre: [f64; 3], n_t: usize) {
    let grid = VelocityGrid::cube(7, 3.0).unwrap();
    let (d, a, s0) = (0.05, 0.1, 0.7);
    let centres: Vec<Vec<f64>> = (0..3).map(|ax| grid.centres(ax)).collect();
    let f = Array3::from_shape_fn((n_t, 7, 49), |(k, i, jk)| {
        let t = k as f64;
        let s2 = s0 * s0 + 2.0 * d * t;
        let v = [centres[0][i], centres[1][jk / 7], centres[2][jk % 7]];
        let r2: f64 = (0..3).map(|ax| (v[ax] - centre[ax] * (1.0 - a * t)).powi(2)).sum();
        1e4 * (-r2 / (2.0 * s2)).exp() / s2.powf(1.5)
    });
    common::write_snapshots(&grid, f, path);
}

fn model_bits(run: &Path) -> Vec<u64> {
    model_values(run).iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_3d_model_is_bitwise_the_same_on_1_2_and_3_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    blob_run(&d.join("data/a.h5"), [0.8, 0.0, -0.4], 8);
    blob_run(&d.join("data/b.h5"), [-0.5, 0.6, 0.3], 8);
    for model in ["tensor", "par-perp"] {
        let cfg = d.join(format!("{model}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "data: {{ train: [data/a.h5, data/b.h5], valid_fraction: 0.2, i_start: 0 }}
model: {{ kind: {model} }}
solver: {{ scheme: conservative, clamp_nonnegative: false, substeps: auto }}
train: {{ seed: 2, stages: [ {{unroll: 1, epochs: 3, lr: 1.0e-2}}, {{unroll: 3, epochs: 2}} ] }}
"
            ),
        )
        .unwrap();
        let mut models = Vec::new();
        for n in 1..=3 {
            let run = d.join(format!("{model}-{n}"));
            ok(&mpirun(n, &["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--no-plots"]));
            models.push(model_bits(&run));
        }
        assert!(models[0].len() > 9 * 343, "{model}: a 3-D model has 9 fields of 343 cells");
        assert_eq!(models[0], models[1], "{model}: 1 and 2 ranks differ");
        assert_eq!(models[0], models[2], "{model}: 1 and 3 ranks differ");
    }
}

/// Transition windows of tracked particles (`data.tracks`), mixed with histogram windows and
/// mini-batches, give the same model on 1, 2 and 3 ranks.
#[test]
fn learning_from_tracks_is_bitwise_the_same_on_1_2_and_3_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::synth_from(
        d,
        "grid: { n: 15, v_max: 4.0 }
operator: { kind: lenard-bernstein, nu: 0.05, v_th: 1.0 }
snapshots: 10
dt: 1.0
substeps: 20
tracks: { n: 3000, substeps: 4, seed: 5 }
runs:
  - { name: a, initial: [ { kind: maxwellian, v_th: 1.0 } ] }
  - { name: b, initial: [ { kind: ring, radius: 1.5, width: 0.3 } ] }
",
    );
    for (model, extra) in [("par-perp", ""), ("tensor", "  train: [data/b.h5]\n  histogram_weight: 0.5\n")] {
        let cfg = d.join(format!("{model}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "data:
  i_start: 0
  valid_fraction: 0.2
{extra}  tracks:
    - {{ runs: [data/a.h5, data/b.h5], lags: 3, delay: 1, starts: {{ every: 2 }}, min_particles: 10, weight: 2.0 }}
model: {{ kind: {model} }}
train: {{ seed: 4, batch_size: 24, stages: [ {{unroll: 2, epochs: 3, lr: 1.0e-2}}, {{unroll: all, epochs: 2}} ] }}
"
            ),
        )
        .unwrap();
        let mut models = Vec::new();
        for n in 1..=3 {
            let run = d.join(format!("{model}-{n}"));
            let log = ok(&mpirun(n, &["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--no-plots"]));
            assert!(log.contains("transition windows"), "{log}");
            models.push(model_bits(&run));
        }
        assert_eq!(models[0], models[1], "{model}: 1 and 2 ranks differ");
        assert_eq!(models[0], models[2], "{model}: 1 and 3 ranks differ");
    }
}
