//! `colop train` refuses misuse before any work and loses nothing: impossible stages and bad
//! data leave no run directory, an existing run is never silently overwritten, a resume with a
//! config that changes the training is refused, and a resume says where it continues.

use std::path::Path;
use std::process::{Command, Output};

fn colop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_colop")).args(args).env_remove("RUST_LOG").output().expect("run colop")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "colop failed:\n{}", text(out));
    text(out)
}

/// The error line of a failed run (and no panic).
fn fail(out: &Output) -> String {
    let t = text(out);
    assert!(!out.status.success(), "colop should have failed:\n{t}");
    assert!(!t.contains("panicked"), "panic instead of an error: {t}");
    t.lines().rfind(|l| l.contains("error")).unwrap_or_default().to_string()
}

const SYNTH: &str = "
grid: { n: 11, v_max: 4.0 }
operator: { kind: radial, d_par: \"0.05*(1+v^2/4)^(-1.5)\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: stationary }
snapshots: 12
dt: 1.0
substeps: 20
runs:
  - { name: blob, initial: [ { kind: normal, centre: [-1.0, 0.5], sigma: 0.6 } ] }
  - { name: short, initial: [ { kind: normal, centre: [1.0, 0.0], sigma: 0.6 } ] }
";

fn data(dir: &Path) {
    std::fs::write(dir.join("synth.yaml"), SYNTH).unwrap();
    ok(&colop(&["synth", dir.join("synth.yaml").to_str().unwrap(), "--out", dir.join("data").to_str().unwrap()]));
}

fn config(dir: &Path, name: &str, train: &str, stages: &str) -> String {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "data: {{ train: [{train}], i_start: 2 }}\nmodel: {{ kind: par-perp }}\nsolver: {{ substeps: 1 }}\ntrain: {{ seed: 3, stages: [{stages}] }}\n"
        ),
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

fn is_empty_or_missing(dir: &Path) -> bool {
    !dir.exists() || std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn zero_epochs_are_rejected_when_the_config_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let cfg = config(dir.path(), "zero.yaml", "data/blob.h5", "{unroll: 1, epochs: 3}, {unroll: 2, epochs: 0}");
    let out_dir = dir.path().join("run");
    let line = fail(&colop(&["train", &cfg, "--out", out_dir.to_str().unwrap(), "--no-plots"]));
    assert!(line.contains("train.stages[1].epochs"), "{line}");
    assert!(is_empty_or_missing(&out_dir));
}

#[test]
fn an_impossible_later_stage_or_bad_data_fail_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    // Stage 1 needs 20 intervals; the runs have 9 from i_start.
    let cfg = config(dir.path(), "long.yaml", "data/blob.h5", "{unroll: 1, epochs: 3}, {unroll: 20, epochs: 2}");
    let out_dir = dir.path().join("run");
    let line = fail(&colop(&["train", &cfg, "--out", out_dir.to_str().unwrap(), "--no-plots"]));
    assert!(line.contains("train.stages[1].unroll") && line.contains("blob.h5"), "{line}");
    assert!(is_empty_or_missing(&out_dir), "a failed start left files behind");

    // A NaN in a late snapshot of the second run.
    let bad = dir.path().join("data/bad.h5");
    std::fs::copy(dir.path().join("data/short.h5"), &bad).unwrap();
    {
        let f = hdf5::File::open_rw(&bad).unwrap();
        let ds = f.dataset("f").unwrap();
        let mut v: ndarray::Array3<f64> = ds.read().unwrap();
        v[[10, 3, 3]] = f64::NAN;
        ds.write(&v).unwrap();
    }
    let cfg = config(dir.path(), "nan.yaml", "data/blob.h5, data/bad.h5", "{unroll: 1, epochs: 3}");
    let line = fail(&colop(&["train", &cfg, "--out", out_dir.to_str().unwrap(), "--no-plots"]));
    assert!(line.contains("bad.h5") && line.to_lowercase().contains("finite"), "{line}");
    assert!(is_empty_or_missing(&out_dir), "bad data left files behind");
}

#[test]
fn existing_runs_are_kept_and_resumes_must_not_change_the_training() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let cfg = config(dir.path(), "a.yaml", "data/blob.h5", "{unroll: 1, epochs: 4}, {unroll: 2, epochs: 3}");
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    // Interrupted after 3 epochs: a checkpoint at stage 0 epoch 3.
    let out = colop(&["train", &cfg, "--out", run_s, "--no-plots", "--stop-after", "3"]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    let ckpt = std::fs::read(run.join("checkpoint.h5")).unwrap();

    // Forgetting --resume is refused, naming it, and the checkpoint is untouched.
    let line = fail(&colop(&["train", &cfg, "--out", run_s, "--no-plots"]));
    assert!(line.contains("--resume") && line.contains("checkpoint.h5"), "{line}");
    assert_eq!(std::fs::read(run.join("checkpoint.h5")).unwrap(), ckpt);

    // A config that changes the model, or an existing stage, is refused on resume.
    let other = dir.path().join("b.yaml");
    std::fs::write(&other, std::fs::read_to_string(&cfg).unwrap().replace("par-perp", "tensor")).unwrap();
    let line = fail(&colop(&["train", other.to_str().unwrap(), "--resume", run_s, "--no-plots"]));
    assert!(line.contains("`model`"), "{line}");
    let shorter = config(dir.path(), "c.yaml", "data/blob.h5", "{unroll: 1, epochs: 4}, {unroll: 3, epochs: 3}");
    let line = fail(&colop(&["train", &shorter, "--resume", run_s, "--no-plots"]));
    assert!(line.contains("train.stages[1].unroll"), "{line}");
    assert_eq!(std::fs::read(run.join("checkpoint.h5")).unwrap(), ckpt, "a refused resume touched the checkpoint");

    // Appending a stage and adding epochs is allowed; the resume says where it continues.
    let longer = config(dir.path(), "d.yaml", "data/blob.h5", "{unroll: 1, epochs: 5}, {unroll: 2, epochs: 3}, {unroll: 3, epochs: 2}");
    let log = ok(&colop(&["train", &longer, "--resume", run_s, "--no-plots"]));
    assert!(log.contains("resuming at stage 0 epoch 3"), "{log}");
    assert!(run.join("model.h5").is_file() && !run.join("checkpoint.h5").exists());
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 5 + 3 + 2, "one metrics line per epoch of the whole curriculum");
    let first_resumed: serde_json::Value = serde_json::from_str(metrics.lines().nth(3).unwrap()).unwrap();
    assert_eq!((first_resumed["stage"].as_u64(), first_resumed["epoch"].as_u64()), (Some(0), Some(3)), "epochs count from the same base");

    // A finished run is not overwritten without --restart; with it, the new run replaces it.
    let line = fail(&colop(&["train", &cfg, "--out", run_s, "--no-plots"]));
    assert!(line.contains("model.h5") && line.contains("--restart"), "{line}");
    ok(&colop(&["train", &cfg, "--out", run_s, "--no-plots", "--restart"]));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 4 + 3);
}
