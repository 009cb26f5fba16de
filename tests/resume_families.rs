//! Every model family resumes bit for bit through the real binary: a run stopped twice with
//! `--stop-after` (once inside the first stage, once inside the second) and resumed ends with
//! the model of the uninterrupted run. The signal path itself is covered by tests/preemption.rs.

use std::path::Path;
use std::process::{Command, Output};

const SYNTH: &str = "
grid: { n: 11, v_max: 4.0 }
operator: { kind: radial, d_par: \"0.05*(1+v^2/4)^(-1.5)\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: stationary }
snapshots: 10
substeps: 20
runs:
  - { name: a, initial: [ { kind: normal, centre: [-1.0, 0.5], sigma: 0.6 } ], params: { p: 1.0 } }
  - { name: b, initial: [ { kind: ring, radius: 1.5, width: 0.3 } ], params: { p: 2.0 } }
";

fn colop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_colop")).args(args).env("RAYON_NUM_THREADS", "2").env_remove("RUST_LOG").output().unwrap()
}

fn ok(out: &Output) {
    assert!(out.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Every f64 dataset of model.h5 (θ, fields, exports…), by path.
fn model_datasets(run: &Path) -> Vec<(String, Vec<f64>)> {
    fn walk(g: &hdf5::Group, prefix: &str, out: &mut Vec<(String, Vec<f64>)>) {
        let mut names = g.member_names().unwrap();
        names.sort();
        for name in names {
            let path = format!("{prefix}{name}");
            if let Ok(ds) = g.dataset(&name) {
                if let Ok(v) = ds.read_raw::<f64>() {
                    out.push((path, v));
                }
            } else if let Ok(sub) = g.group(&name) {
                walk(&sub, &format!("{path}/"), out);
            }
        }
    }
    let f = hdf5::File::open(run.join("model.h5")).unwrap();
    let mut out = Vec::new();
    walk(&f, "", &mut out);
    assert!(out.iter().any(|(n, _)| n == "theta"), "no theta in {}", run.display());
    out
}

/// Train `model` uninterrupted, and again stopped after 2 and 4 epochs and resumed; compare.
fn resumes_to_the_uninterrupted_model(name: &str, model: &str) {
    let t0 = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("synth.yaml"), SYNTH).unwrap();
    ok(&colop(&["synth", d.join("synth.yaml").to_str().unwrap(), "--out", d.join("data").to_str().unwrap()]));
    let cfg = d.join("train.yaml");
    // Mini-batches, so that the shuffle must resume too; validation, so that best-model selection does.
    std::fs::write(
        &cfg,
        format!(
            "data: {{ train: [data/a.h5, data/b.h5], valid_fraction: 0.2, i_start: 1 }}
model: {{ kind: {model} }}
train:
  seed: 7
  batch_size: 4
  checkpoint_every: 0
  stages: [ {{unroll: 1, epochs: 3, lr: 1.0e-2}}, {{unroll: 2, epochs: 3, lr: 3.0e-3}} ]
"
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let plain = d.join("plain");
    ok(&colop(&["train", cfg, "--out", plain.to_str().unwrap(), "--no-plots"]));
    let run = d.join("resumed");
    let run_s = run.to_str().unwrap();
    let out = colop(&["train", cfg, "--out", run_s, "--stop-after", "2", "--no-plots"]);
    assert_eq!(out.status.code(), Some(75), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    let out = colop(&["train", "--resume", run_s, "--stop-after", "2", "--no-plots"]);
    assert_eq!(out.status.code(), Some(75), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    ok(&colop(&["train", "--resume", run_s, "--no-plots"]));
    let (a, b) = (model_datasets(&plain), model_datasets(&run));
    assert_eq!(a.len(), b.len(), "{name}");
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(va == vb, "{name}: {na} of the resumed run differs from the uninterrupted run");
    }
    eprintln!("{name}: resumed = uninterrupted ({} datasets) in {:.2} s", a.len(), t0.elapsed().as_secs_f64());
}

#[test]
fn tensor_resumes() {
    resumes_to_the_uninterrupted_model("tensor", "tensor");
}

#[test]
fn tensor_sym_resumes() {
    resumes_to_the_uninterrupted_model("tensor-sym", "tensor-sym");
}

#[test]
fn par_perp_resumes() {
    resumes_to_the_uninterrupted_model("par-perp", "par-perp");
}

#[test]
fn mlp_resumes() {
    resumes_to_the_uninterrupted_model("mlp", "mlp, symmetry: mirror, width: 6, depth: 1");
}

#[test]
fn mlp_conditioned_resumes() {
    resumes_to_the_uninterrupted_model("mlp-conditioned", "mlp-conditioned, conditioners: [p], width: 6, depth: 1");
}

#[test]
fn tensor_time_resumes() {
    resumes_to_the_uninterrupted_model("tensor-time", "tensor-time, n_t: 3");
}

#[test]
fn par_perp_time_resumes() {
    resumes_to_the_uninterrupted_model("par-perp-time", "par-perp-time, n_t: 3");
}

#[test]
fn kernel_resumes() {
    resumes_to_the_uninterrupted_model("kernel", "kernel, stencil: 3, symmetry: transposed, kernel_smooth_d2: 1.0");
}

#[test]
fn nonnegative_d_resumes() {
    resumes_to_the_uninterrupted_model("nonnegative_d", "par-perp, nonnegative_d: true");
}
