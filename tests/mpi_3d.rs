//! Three-dimensional velocity space under MPI: the real binary trains a 3-D model on 1, 2 and 3
//! ranks (oversubscribed, one thread each) and writes bitwise the same model.

use colop::data::{write_run, RunData};
use colop::grid::VelocityGrid;
use ndarray::Array3;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

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

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
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
    let run = RunData {
        grid,
        n_particles: f.index_axis(ndarray::Axis(0), 0).sum(),
        f,
        t: (0..n_t).map(|k| k as f64).collect(),
        dt: 1.0,
        params: BTreeMap::new(),
        labels: BTreeMap::new(),
        tracks: None,
        diagnostics: BTreeMap::new(),
    };
    write_run(path, &run).unwrap();
}

fn model_values(run: &Path) -> Vec<u64> {
    let f = hdf5::File::open(run.join("model.h5")).unwrap();
    let mut v: Vec<f64> = f.dataset("theta").unwrap().read_raw().unwrap();
    v.extend(f.dataset("A").unwrap().read_raw::<f64>().unwrap());
    v.extend(f.dataset("D").unwrap().read_raw::<f64>().unwrap());
    v.iter().map(|x| x.to_bits()).collect()
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
            models.push(model_values(&run));
        }
        assert!(models[0].len() > 9 * 343, "{model}: a 3-D model has 9 fields of 343 cells");
        assert_eq!(models[0], models[1], "{model}: 1 and 2 ranks differ");
        assert_eq!(models[0], models[2], "{model}: 1 and 3 ranks differ");
    }
}
