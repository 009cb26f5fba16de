//! `colop synth` in two and three velocity dimensions: 2D runs keep the bits they had before synth
//! became generic over the dimension (FNV-1a hashes recorded from the 2D-only code); 3D runs
//! hold `/f [T, Nx, Ny, Nz]` and their truth `A [3, …]`, `D [6, …]`; initial components take
//! 3-vectors (a wrong length is a one-line error naming the key); the stationary drag keeps a
//! unit Maxwellian stationary in 3D.

use colop::grid::VelocityGrid;
use colop::operator::fp;
use colop::synth::{generate_run, initial_density, read_truth, truth_of, Initial, SynthConfig};
use std::path::Path;

/// FNV-1a over the bit patterns of `values`.
fn hash<'a>(values: impl IntoIterator<Item = &'a f64>) -> u64 {
    values.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        v.to_bits().to_le_bytes().iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
    })
}

/// Hashes of (f, truth fields, truth profiles) of every run of a 2D config.
fn hashes_2d(yaml: &str) -> Vec<[u64; 3]> {
    let cfg: SynthConfig = serde_yaml::from_str(yaml).unwrap();
    cfg.runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let data = generate_run(&cfg, run, i).unwrap();
            let truth = truth_of(&cfg, run).unwrap();
            let p = truth.profiles.unwrap_or_default();
            [hash(data.f.iter()), hash(truth.fields.iter()), hash(p.0.iter().chain(&p.1).chain(&p.2).chain(&p.3))]
        })
        .collect()
}

const RUNS_2D: &str = "runs:
  - { name: a, params: { q: 1.0 }, initial: [ { kind: normal, centre: [-1.5, 0.5], sigma: 0.5 }, { kind: ring, radius: 2.0, width: 0.3, weight: 0.5 } ] }
  - { name: b, initial: [ { kind: maxwellian, v_th: 0.8, drift: [0.5, -0.25] }, { kind: maxwellian } ], params: { q: 2.0 } }
";

#[test]
fn two_dimensional_synth_is_bitwise_unchanged() {
    let radial = format!(
        "grid: {{ n: 13, v_max: 4.0 }}
operator: {{ kind: radial, d_par: \"0.04*(1+q/8)*(1+v^2/4)^(-1.5)\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: stationary }}
time_factor: \"1 + t/10\"
snapshots: 5
substeps: 10
noise: {{ particles: 20000, seed: 3 }}
{RUNS_2D}"
    );
    let lb = format!("grid: {{ n: 12, v_max: 3.5 }}\noperator: {{ kind: lenard-bernstein, nu: 0.03, v_th: 1.2 }}\nsnapshots: 4\n{RUNS_2D}");
    let got = [hashes_2d(&radial), hashes_2d(&lb)];
    let want = [
        vec![[17974001545587994846, 10135660453821831742, 17827563618850642944], [10081255243750105712, 3825634157691833475, 6077295934974814793]],
        vec![[6261440164752003179, 7975398163264122205, 6550134319768282563], [18029760651763396212, 7975398163264122205, 6550134319768282563]],
    ];
    assert_eq!(got, want);
    // The written /truth datasets: same shapes and bits.
    let dir = tempfile::tempdir().unwrap();
    let cfg: SynthConfig = serde_yaml::from_str(&radial).unwrap();
    colop::synth::generate(&cfg, dir.path()).unwrap();
    let h = hdf5::File::open(dir.path().join("a.h5")).unwrap();
    let t = h.group("truth").unwrap();
    let raw = |n: &str| {
        let d = t.dataset(n).unwrap();
        (d.shape(), hash(&d.read_raw::<f64>().unwrap()))
    };
    assert_eq!(raw("A"), (vec![2, 13, 13], 7002620158835871661));
    assert_eq!(raw("D"), (vec![3, 13, 13], 16621616824316598742));
    assert_eq!(raw("D_perp"), (vec![201], 8021169664871004410));
}

fn colop(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_colop")).args(args).env_remove("RUST_LOG").output().expect("run colop")
}

/// `colop synth` on `yaml` in `dir`; the output, and the config path.
fn synth(dir: &Path, name: &str, yaml: &str) -> std::process::Output {
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(&cfg, yaml).unwrap();
    colop(&["synth", cfg.to_str().unwrap(), "--out", dir.join(name).to_str().unwrap()])
}

const D0: f64 = 0.05;
const RADIAL_3D: &str = "operator: { kind: radial, d_par: \"0.05*(1+v^2/4)^(-1.5)\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: stationary }";

/// The stationary drag of `RADIAL_3D` in closed form, A_∥ = ½[D_∥' + 2(D_∥ − D_⊥)/v] − D_∥v/2.
fn stationary_a_par_3d(v: f64) -> f64 {
    let u = 1.0 + v * v / 4.0;
    -3.0 * D0 * v / 8.0 * u.powf(-2.5) - D0 * v / 4.0 * u.powf(-1.5) - D0 * v / 2.0 * u.powf(-1.5)
}

#[test]
fn a_3d_synthetic_run_holds_its_histograms_and_truth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yaml = format!(
        "grid: {{ n: 9, v_max: 3.0, dim: 3 }}
{RADIAL_3D}
snapshots: 4
substeps: 5
runs:
  - {{ name: blob, initial: [ {{ kind: normal, centre: [1.0, -0.5, 0.3], sigma: 0.6 }}, {{ kind: maxwellian, drift: [0.0, 0.0, -0.5], weight: 0.5 }} ] }}
  - {{ name: shell, initial: [ {{ kind: ring, radius: 1.5, width: 0.3 }} ] }}
"
    );
    let out = synth(d, "clean", &yaml);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let grid = VelocityGrid::cube(9, 3.0).unwrap();
    for run in ["blob", "shell"] {
        let path = d.join("clean").join(format!("{run}.h5"));
        let h = hdf5::File::open(&path).unwrap();
        assert_eq!(h.dataset("f").unwrap().shape(), vec![4, 9, 9, 9]);
        assert_eq!(h.group("truth").unwrap().dataset("A").unwrap().shape(), vec![3, 9, 9, 9]);
        assert_eq!(h.group("truth").unwrap().dataset("D").unwrap().shape(), vec![6, 9, 9, 9]);
        drop(h);
        let data = colop::data::read_run(&path).unwrap();
        assert_eq!(data.grid, grid);
        // The conservative truth solver keeps Σf to round-off.
        let totals: Vec<f64> = data.f.outer_iter().map(|s| s.sum()).collect();
        assert!(totals.iter().all(|t| (t / totals[0] - 1.0).abs() < 1e-12), "{totals:?}");
        assert!((totals[0] - 3e5).abs() < 1e-6, "{totals:?}");
        // The truth reads back as [9, Nx, Ny·Nz] fields in fp order.
        let truth = read_truth(&path).unwrap().unwrap();
        assert_eq!(truth.fields.shape(), &[9, 9, 81]);
        let (v, a, dp, dq) = truth.profiles.clone().unwrap();
        assert!((v[v.len() - 1] - grid.v_corner()).abs() < 1e-12);
        let n = grid.n_cells();
        let flat = truth.fields.as_slice().unwrap();
        for (i, j, k) in [(7, 2, 4), (1, 5, 8), (4, 4, 0), (8, 8, 8)] {
            let c = (i * 9 + j) * 9 + k;
            let x = [grid.centre(0, i), grid.centre(1, j), grid.centre(2, k)];
            let s = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
            let u = 1.0 + s * s / 4.0;
            let (tp, tq, ta) = (D0 * u.powf(-1.5), D0 * u.powf(-0.5), stationary_a_par_3d(s));
            for a_ in 0..3 {
                let got = flat[fp::a(a_) * n + c];
                assert!((got - ta * x[a_] / s).abs() < 1e-8, "A_{a_} at ({i},{j},{k}): {got} vs {}", ta * x[a_] / s);
                for b in a_..3 {
                    let want = (tp - tq) * x[a_] * x[b] / (s * s) + if a_ == b { tq } else { 0.0 };
                    let got = flat[fp::d(3, a_, b) * n + c];
                    assert!((got - want).abs() < 1e-12, "D_{a_}{b} at ({i},{j},{k}): {got} vs {want}");
                }
            }
        }
        // Profiles: the same formulas on their own nodes.
        for m in [10, 100, 200] {
            let u = 1.0 + v[m] * v[m] / 4.0;
            assert!((a[m] - stationary_a_par_3d(v[m])).abs() < 1e-8 && (dp[m] - D0 * u.powf(-1.5)).abs() < 1e-15 && (dq[m] - D0 * u.powf(-0.5)).abs() < 1e-15);
        }
    }
    // Multinomial noise: integer counts summing to the particle number.
    let noisy = synth(d, "noisy", &yaml.replace("substeps: 5", "substeps: 5\nnoise: { particles: 5000, seed: 2 }"));
    assert!(noisy.status.success(), "{}", String::from_utf8_lossy(&noisy.stderr));
    let data = colop::data::read_run(&d.join("noisy").join("shell.h5")).unwrap();
    for s in data.f.outer_iter() {
        assert_eq!(s.sum(), 5000.0);
        assert!(s.iter().all(|c| c.fract() == 0.0 && *c >= 0.0));
    }
    assert_eq!(data.n_particles, 5000.0);
}

/// A spherical shell is a function of |v| only, a 3-vector blob is centred where asked, and a
/// unit Maxwellian has unit mass on a wide enough grid.
#[test]
fn initial_components_take_3_vectors() {
    let grid = VelocityGrid::cube(16, 5.0).unwrap();
    let mean = |f: &ndarray::Array3<f64>| {
        let m = colop::eval::Moments::of(f.as_slice().unwrap(), &grid);
        [m.mean_vx, m.mean_vy, m.mean_vz.unwrap()]
    };
    let blob = initial_density(&[Initial::Normal { centre: vec![1.0, -0.5, 2.0], sigma: 0.5, weight: 1.0 }], &grid).unwrap();
    let m = mean(&blob);
    assert!((m[0] - 1.0).abs() < 1e-3 && (m[1] + 0.5).abs() < 1e-3 && (m[2] - 2.0).abs() < 1e-3, "{m:?}");
    let dv3 = grid.dv(0).powi(3);
    let maxw = initial_density(&[Initial::Maxwellian { v_th: 1.0, drift: vec![], weight: 1.0 }], &grid).unwrap();
    assert!((maxw.sum() * dv3 - 1.0).abs() < 1e-5, "{}", maxw.sum() * dv3);
    let shell = initial_density(&[Initial::Ring { radius: 2.0, width: 0.3, weight: 1.0 }], &grid).unwrap();
    // Cells at the same |v| (permuted and mirrored coordinates) hold the same value.
    let at = |i: usize, j: usize, k: usize| shell[[0, i, j * 16 + k]];
    assert!((at(3, 9, 12) / at(12, 3, 9) - 1.0).abs() < 1e-12);
    assert_eq!(at(3, 9, 12), at(12, 6, 3));
    assert!(at(11, 8, 8) > 10.0 * at(8, 8, 8), "the shell is hollow");
}

#[test]
fn wrong_length_vectors_and_bad_dimensions_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = "grid: { n: 9, v_max: 3.0, dim: 3 }\noperator: { kind: lenard-bernstein, nu: 0.01 }\nsnapshots: 2\n";
    let cases = [
        ("c2", format!("{base}runs: [ {{ name: a, initial: [ {{ kind: normal, centre: [1.0, 0.0], sigma: 0.5 }} ] }} ]\n"), "runs[0].initial[0].centre: needs 3 values on a 3D grid, got 2"),
        ("d4", format!("{base}runs: [ {{ name: a, initial: [ {{ kind: ring, radius: 1, width: 0.2 }}, {{ kind: maxwellian, drift: [1, 0, 0, 0] }} ] }} ]\n"), "runs[0].initial[1].drift: needs 3 values on a 3D grid, got 4"),
        ("c3in2", format!("{}runs: [ {{ name: a, initial: [ {{ kind: normal, centre: [1.0, 0.0, 1.0], sigma: 0.5 }} ] }} ]\n", base.replace(", dim: 3", "")), "runs[0].initial[0].centre: needs 2 values on a 2D grid, got 3"),
        ("dim4", format!("{}runs: [ {{ name: a, initial: [ {{ kind: maxwellian }} ] }} ]\n", base.replace("dim: 3", "dim: 4")), "grid.dim: must be 2 or 3, got 4"),
    ];
    for (name, yaml, needle) in cases {
        let out = synth(d, name, &yaml);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success() && !err.contains("panicked"), "{name}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{name}: {err}");
        assert!(lines[0].contains(needle) && lines[0].contains(&format!("{name}.yaml")), "{name}: {err}");
        assert!(!d.join(name).exists(), "{name}");
    }
}

/// `a_par: stationary` keeps a unit Maxwellian stationary in 3D: rolled out for 40/ω_p under a
/// strong radial operator, its change shrinks as the grid is refined (the discretisation's
/// error), while under the 2D formula's drag (without the factor d − 1 = 2 on (D_∥ − D_⊥)/v) it
/// stays at the size of the continuum's drift.
#[test]
fn stationary_drag_keeps_a_3d_maxwellian_stationary() {
    let yaml = |n: usize, a_par: &str| {
        format!(
            "grid: {{ n: {n}, v_max: 5.0, dim: 3 }}
operator: {{ kind: radial, d_par: \"0.05*(1+v^2/4)^(-1.5)\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: \"{a_par}\" }}
snapshots: 41
substeps: 4
runs: [ {{ name: m, initial: [ {{ kind: maxwellian }} ] }} ]
"
        )
    };
    // Relative L1 change of the Maxwellian from t = 0 to t = 40.
    let change = |n: usize, a_par: &str| {
        let cfg: SynthConfig = serde_yaml::from_str(&yaml(n, a_par)).unwrap();
        let data = generate_run(&cfg, &cfg.runs[0], 0).unwrap();
        let (f0, f1) = (data.f.index_axis(ndarray::Axis(0), 0), data.f.index_axis(ndarray::Axis(0), 40));
        f0.iter().zip(f1.iter()).map(|(a, b)| (a - b).abs()).sum::<f64>() / f0.sum()
    };
    // The 2D formula in closed form: A_∥ = −3d₀v/8·u^(−5/2) − d₀v/8·u^(−3/2) − d₀v/2·u^(−3/2).
    let two_d_formula = "-3*0.05*v/8*(1+v^2/4)^(-2.5) - 0.05*v/8*(1+v^2/4)^(-1.5) - 0.05*v/2*(1+v^2/4)^(-1.5)";
    let (coarse, fine) = (change(13, "stationary"), change(25, "stationary"));
    let (two_d_coarse, two_d_fine) = (change(13, two_d_formula), change(25, two_d_formula));
    // The 3D closed form through the formula path gives the same as `stationary`.
    let closed = change(13, "-3*0.05*v/8*(1+v^2/4)^(-2.5) - 0.05*v/4*(1+v^2/4)^(-1.5) - 0.05*v/2*(1+v^2/4)^(-1.5)");
    eprintln!(
        "relative L1 change of a unit Maxwellian over 40/ω_p, 13³ → 25³: stationary {coarse:.3e} → {fine:.3e}, 2D formula {two_d_coarse:.3e} → {two_d_fine:.3e}"
    );
    assert!((closed - coarse).abs() < 1e-3 * coarse, "{closed} vs {coarse}");
    assert!(fine < 0.6 * coarse, "stationary: {coarse} → {fine} should converge");
    assert!(fine < 0.3 * two_d_fine, "stationary {fine} vs 2D formula {two_d_fine}");
    assert!(two_d_fine > 0.8 * two_d_coarse, "the 2D formula's drift is not a discretisation error: {two_d_coarse} → {two_d_fine}");
}
