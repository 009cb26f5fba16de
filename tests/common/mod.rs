//! Helpers shared by the training-step test files: a tiny time-dependent synthetic run and a
//! training config over it.

use colop::config::TrainConfig;
use std::path::Path;
use std::process::Command;

pub fn synth(dir: &Path, snapshots: usize) {
    let yaml = format!(
        "grid: {{ n: 15, v_max: 4.0 }}
operator: {{ kind: radial, d_par: \"0.05*(1+v^2/4)^(-1.5)\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: stationary }}
time_factor: \"1 + t/20\"
snapshots: {snapshots}
dt: 1.0
substeps: 20
runs:
  - {{ name: blob, initial: [ {{ kind: normal, centre: [-1.0, 0.5], sigma: 0.6 }} ] }}
"
    );
    std::fs::write(dir.join("synth.yaml"), yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_colop"))
        .args(["synth", dir.join("synth.yaml").to_str().unwrap(), "--out", dir.join("data").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

pub fn config(dir: &Path, model: &str, stage: &str, solver: &str) -> TrainConfig {
    let p = dir.join(format!("train-{}.yaml", model.len() + stage.len()));
    std::fs::write(&p, format!("data: {{ train: [data/blob.h5], i_start: 2 }}\nmodel: {model}\nsolver: {solver}\ntrain: {{ seed: 5, stages: [{stage}] }}\n")).unwrap();
    TrainConfig::load(&p).unwrap()
}
