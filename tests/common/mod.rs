//! Helpers shared by test files: `colop synth` of a config (and a tiny time-dependent synthetic
//! run), a training config over it, and a run file from given snapshots.
#![allow(dead_code)] // each test file uses its own subset

use colop::config::TrainConfig;
use colop::data::{write_run, RunData};
use colop::grid::VelocityGrid;
use ndarray::Array3;
use std::collections::BTreeMap;
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
    synth_from(dir, &yaml);
}

/// `colop synth` of the config `yaml` (written to `dir/synth.yaml`) into `dir/data`.
pub fn synth_from(dir: &Path, yaml: &str) {
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

/// Write snapshots `f` [T, nx, ny·nz] on `grid`, 1/ω_p apart from t = 0, without parameters, as
/// the run file `path` (its particle count that of the first snapshot).
pub fn write_snapshots(grid: &VelocityGrid, f: Array3<f64>, path: &Path) {
    let run = RunData {
        grid: grid.clone(),
        n_particles: f.index_axis(ndarray::Axis(0), 0).sum(),
        t: (0..f.shape()[0]).map(|k| k as f64).collect(),
        f,
        dt: 1.0,
        params: BTreeMap::new(),
        labels: BTreeMap::new(),
        tracks: None,
        diagnostics: BTreeMap::new(),
    };
    write_run(path, &run).unwrap();
}
