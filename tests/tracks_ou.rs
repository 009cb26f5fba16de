//! The track estimator on synthetic tracks of a known Ornstein–Uhlenbeck process
//! dv = −γv dt + √(2γ) v_th dW (A = −γv, D = 2γv_th² I), sampled exactly.
//!
//! At lag τ the exact conditional moments are ⟨Δv⟩ = −c v₀ and ⟨Δv_iΔv_j⟩ = σ²δ_ij + c² v₀_i v₀_j
//! with c = 1 − e^(−γτ), σ² = v_th²(1 − e^(−2γτ)): the estimator's expectation per bin, averaged over
//! the starting velocities in the bin. We check the estimate against it within 4 standard errors
//! in ≥ 95% of populated bins, and show the finite-lag bias against the instantaneous A, D.

use colop::baseline::{self, TrackEstimate};
use colop::data::RunData;
use colop::grid::VelocityGrid;
use colop::operator::fp;
use ndarray::Array3;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::BTreeMap;

const GAMMA: f64 = 0.05;

fn ou_run(n_tracked: usize, n_dumps: usize, dt: f64, seed: u64) -> RunData {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tracks = Array3::zeros((n_dumps, n_tracked, 2));
    let decay = (-GAMMA * dt).exp();
    let kick = (1.0 - decay * decay).sqrt();
    for p in 0..n_tracked {
        let mut v = [StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng)];
        for n in 0..n_dumps {
            for d in 0..2 {
                if n > 0 {
                    let xi: f64 = StandardNormal.sample(&mut rng);
                    v[d] = v[d] * decay + kick * xi;
                }
                tracks[[n, p, d]] = v[d];
            }
        }
    }
    let grid = VelocityGrid::square(21, 4.0).unwrap();
    RunData {
        f: Array3::zeros((n_dumps, grid.nx, grid.ny)),
        grid,
        t: (0..n_dumps).map(|n| n as f64 * dt).collect(),
        dt,
        n_particles: n_tracked as f64,
        params: BTreeMap::new(),
        tracks: Some(tracks),
        diagnostics: BTreeMap::new(),
        labels: Default::default(),
    }
}

/// Per-cell means of v₀x, v₀y, v₀x², v₀y², v₀xv₀y over the samples the estimator used.
fn start_moments(run: &RunData, est: &TrackEstimate) -> Vec<[f64; 6]> {
    let tracks = run.tracks.as_ref().unwrap();
    let g = &run.grid;
    let mut m = vec![[0.0; 6]; g.n_cells()];
    let (n_dumps, n_tracked) = (tracks.shape()[0], tracks.shape()[1]);
    for p in 0..n_tracked {
        let mut n = 0;
        while n + est.lag_dumps < n_dumps {
            let (x, y) = (tracks[[n, p, 0]], tracks[[n, p, 1]]);
            if let Some((i, j)) = g.cell_of(x, y) {
                let c = &mut m[i * g.ny + j];
                for (k, q) in [1.0, x, y, x * x, y * y, x * y].into_iter().enumerate() {
                    c[k] += q;
                }
            }
            n += est.stride;
        }
    }
    m.into_iter().map(|c| std::array::from_fn(|k| if k == 0 { c[0] } else { c[k] / c[0] })).collect()
}

fn check_within_errors(run: &RunData, est: &TrackEstimate) -> [f64; 5] {
    let tau = est.tau;
    let c = 1.0 - (-GAMMA * tau).exp();
    let sigma2 = 1.0 - (-2.0 * GAMMA * tau).exp();
    let moments = start_moments(run, est);
    let ny = run.grid.ny;
    let mut pass = [0usize; 5];
    let (mut one_sigma, mut populated) = (0usize, 0usize);
    for (cell, m) in moments.iter().enumerate() {
        let (i, j) = (cell / ny, cell % ny);
        assert_eq!(est.counts[[i, j]] as f64, m[0]);
        if est.counts[[i, j]] < 30 {
            continue;
        }
        populated += 1;
        let expected = [
            -c * m[1] / tau,
            -c * m[2] / tau,
            (sigma2 + c * c * m[3]) / tau,
            (sigma2 + c * c * m[4]) / tau,
            c * c * m[5] / tau,
        ];
        for f in 0..fp::N_FIELDS {
            let (e, s) = (est.fields[[f, i, j]], est.errors[[f, i, j]]);
            if (e - expected[f]).abs() < 4.0 * s {
                pass[f] += 1;
            }
            one_sigma += usize::from((e - expected[f]).abs() < s);
        }
    }
    assert!(populated > 150, "only {populated} populated cells");
    // Honest standard errors: about 68% of estimates within one of them (not inflated errors).
    let within = one_sigma as f64 / (5 * populated) as f64;
    assert!((0.55..0.8).contains(&within), "fraction within 1σ = {within}");
    pass.map(|p| p as f64 / populated as f64)
}

#[test]
fn recovers_ornstein_uhlenbeck_within_errors() {
    let run = ou_run(40_000, 41, 1.0, 7);
    for tau in [1.0, 4.0] {
        let lag = baseline::lag_in_dumps(tau, run.dt, "ou").unwrap();
        let est = baseline::estimate(&run, "ou", lag, None).unwrap();
        let fractions = check_within_errors(&run, &est);
        println!("τ = {tau}: fraction of populated cells within 4σ (A_x, A_y, D_xx, D_yy, D_xy) = {fractions:?}");
        assert!(fractions.iter().all(|&f| f >= 0.95), "{fractions:?}");

        // Radial projection: A_∥ = −c⟨|v₀|⟩/τ, D_⊥ = σ²/τ; compare bins with ≥ 100 samples.
        let c = 1.0 - (-GAMMA * tau).exp();
        let sigma2 = 1.0 - (-2.0 * GAMMA * tau).exp();
        let r = &est.radial;
        let (mut ok, mut total) = (0, 0);
        for b in 0..r.v.len() {
            if r.counts[b] < 100 {
                continue;
            }
            total += 2;
            // The bin's mean speed is within its width of the centre; use the centre and allow
            // for the spread through the bin width.
            let a_expected = -c * r.v[b] / tau;
            let slack = c * r.dv / tau;
            ok += usize::from((r.a_par[b] - a_expected).abs() < 4.0 * r.a_par_err[b] + slack);
            ok += usize::from((r.d_perp[b] - sigma2 / tau).abs() < 4.0 * r.d_perp_err[b]);
        }
        assert!(ok as f64 >= 0.95 * total as f64, "radial: {ok}/{total}");
        // Finite-lag bias relative to the instantaneous D = 2γ: σ²/(2γτ) − 1.
        let near = r.v.iter().position(|&v| v > 1.0).unwrap();
        println!(
            "τ = {tau}: D_⊥(|v|≈1) = {:.5} ± {:.5} (instantaneous 2γ = {:.5}, lag-τ expectation {:.5}); A_∥(|v|≈1)/v = {:.5} (−γ = {:.5})",
            r.d_perp[near],
            r.d_perp_err[near],
            2.0 * GAMMA,
            sigma2 / tau,
            r.a_par[near] / r.v[near],
            -GAMMA
        );
    }
}

#[test]
fn empty_bins_are_marked_and_filled_for_rollouts() {
    let run = ou_run(4_000, 11, 1.0, 3);
    let est = baseline::estimate(&run, "ou", 1, None).unwrap();
    let (fields, filled) = est.model_fields(10);
    let mut n_empty = 0;
    for ((i, j), &count) in est.counts.indexed_iter() {
        if count == 0 {
            n_empty += 1;
            assert!((0..fp::N_FIELDS).all(|f| est.fields[[f, i, j]].is_nan()));
        }
        assert_eq!(filled[[i, j]], count < 10);
    }
    assert!(n_empty > 0, "the corners of ±4 v_th should be empty");
    assert!(fields.iter().all(|v| v.is_finite()), "rollout fields must be finite everywhere");
    // A corner cell far outside every populated radial bin is filled with zero.
    assert_eq!(fields[[fp::DXX, 0, 0]], 0.0);
}

#[test]
fn deterministic_across_thread_counts() {
    let run = ou_run(10_000, 6, 1.0, 5);
    let at = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| baseline::estimate(&run, "ou", 2, Some(1)).unwrap())
    };
    let (a, b) = (at(1), at(2));
    assert_eq!(a.counts, b.counts);
    let bits = |e: &TrackEstimate| e.fields.iter().chain(e.errors.iter()).chain(e.radial.d_par.iter()).map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
}

#[test]
fn bad_lags_and_missing_tracks_are_errors() {
    let run = ou_run(10, 5, 0.5, 1);
    assert!(baseline::lag_in_dumps(0.75, run.dt, "ou").unwrap_err().to_string().contains("multiple"));
    assert!(baseline::lag_in_dumps(-1.0, run.dt, "ou").is_err());
    assert_eq!(baseline::lag_in_dumps(1.5, run.dt, "ou").unwrap(), 3);
    assert!(baseline::estimate(&run, "ou", 5, None).unwrap_err().to_string().contains("lag 5"));
    let mut no_tracks = run.clone();
    no_tracks.tracks = None;
    assert!(baseline::estimate(&no_tracks, "ou", 1, None).unwrap_err().to_string().contains("no /tracks"));
    let mut uneven = run;
    uneven.t[2] += 0.1;
    assert!(baseline::estimate(&uneven, "ou", 1, None).unwrap_err().to_string().contains("evenly"));
}

#[test]
fn estimates_file_round_trips() {
    let run = ou_run(4_000, 11, 1.0, 9);
    let est = baseline::estimate(&run, "ou", 2, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("estimates.h5");
    baseline::output::write_estimates(&path, &est, 10).unwrap();
    let file = hdf5::File::open(&path).unwrap();
    let counts: ndarray::Array2<u64> = file.dataset("counts").unwrap().read().unwrap();
    assert_eq!(counts, est.counts);
    let d: ndarray::Array3<f64> = file.dataset("D").unwrap().read().unwrap();
    assert_eq!(d.shape(), &[3, 21, 21]);
    let nan_cells = d.index_axis(ndarray::Axis(0), 0).iter().filter(|v| v.is_nan()).count();
    assert_eq!(nan_cells, est.counts.iter().filter(|&&c| c == 0).count());
    let tau: f64 = file.attr("tau").unwrap().read_scalar().unwrap();
    assert_eq!(tau, 2.0);
    let radial_counts: Vec<u64> = file.dataset("radial/counts").unwrap().read_raw().unwrap();
    assert_eq!(radial_counts, est.radial.counts);
    // Only the final file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// A 3-D Ornstein–Uhlenbeck process with a slower rate along v_z (γ_z = γ/2) on a 9×9×9 grid:
/// every one of the nine fields is the exact conditional moment within 4 standard errors in ≥ 95%
/// of the populated cells, and tracks of a 2-D grid's run with three components are refused.
#[test]
fn recovers_a_three_dimensional_process_within_errors() {
    let (n_tracked, n_dumps, dt) = (40_000, 21, 1.0);
    let gammas = [GAMMA, GAMMA, 0.5 * GAMMA];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut tracks = Array3::zeros((n_dumps, n_tracked, 3));
    for p in 0..n_tracked {
        for (d, g) in gammas.iter().enumerate() {
            let decay = (-g * dt).exp();
            let kick = (1.0 - decay * decay).sqrt();
            let mut v: f64 = StandardNormal.sample(&mut rng);
            for n in 0..n_dumps {
                if n > 0 {
                    let xi: f64 = StandardNormal.sample(&mut rng);
                    v = v * decay + kick * xi;
                }
                tracks[[n, p, d]] = v;
            }
        }
    }
    let grid = VelocityGrid::cube(9, 3.0).unwrap();
    let run = RunData {
        f: Array3::zeros((n_dumps, 9, 81)),
        grid: grid.clone(),
        t: (0..n_dumps).map(|n| n as f64 * dt).collect(),
        dt,
        n_particles: n_tracked as f64,
        params: BTreeMap::new(),
        tracks: Some(tracks.clone()),
        diagnostics: BTreeMap::new(),
        labels: Default::default(),
    };
    let est = baseline::estimate(&run, "ou3", 2, None).unwrap();
    assert_eq!(est.fields.dim(), (9, 9, 81));
    let tau = est.tau;
    let c: Vec<f64> = gammas.iter().map(|g| 1.0 - (-g * tau).exp()).collect();
    let s2: Vec<f64> = gammas.iter().map(|g| 1.0 - (-2.0 * g * tau).exp()).collect();
    // Per cell: count, ⟨v₀_i⟩, ⟨v₀_iv₀_j⟩ of the samples the estimator used.
    let mut m = vec![[0.0; 10]; grid.n_cells()];
    for p in 0..n_tracked {
        let mut n = 0;
        while n + est.lag_dumps < n_dumps {
            let v = [tracks[[n, p, 0]], tracks[[n, p, 1]], tracks[[n, p, 2]]];
            n += est.stride;
            let (Some((i, j)), Some(k)) = (grid.cell_of(v[0], v[1]), grid.z_cell_of(v[2])) else { continue };
            let q = [1.0, v[0], v[1], v[2], v[0] * v[0], v[1] * v[1], v[2] * v[2], v[0] * v[1], v[0] * v[2], v[1] * v[2]];
            for (s, x) in m[(i * 9 + j) * 9 + k].iter_mut().zip(q) {
                *s += x;
            }
        }
    }
    let (mut pass, mut populated) = ([0usize; 9], 0usize);
    for (cell, s) in m.iter().enumerate() {
        let (i, jk) = (cell / 81, cell % 81);
        assert_eq!(est.counts[[i, jk]] as f64, s[0]);
        if s[0] < 30.0 {
            continue;
        }
        populated += 1;
        let mean = |k: usize| s[k] / s[0];
        let second = |a: usize, b: usize| {
            let k = match (a, b) {
                (0, 0) => 4,
                (1, 1) => 5,
                (2, 2) => 6,
                (0, 1) => 7,
                (0, 2) => 8,
                _ => 9,
            };
            mean(k)
        };
        let mut expected = [0.0; 9];
        for a in 0..3 {
            expected[fp::a(a)] = -c[a] * mean(1 + a) / tau;
            for b in a..3 {
                let noise = if a == b { s2[a] } else { 0.0 };
                expected[fp::d(3, a, b)] = (noise + c[a] * c[b] * second(a, b)) / tau;
            }
        }
        for (f, e) in expected.iter().enumerate() {
            let (got, err) = (est.fields[[f, i, jk]], est.errors[[f, i, jk]]);
            pass[f] += usize::from((got - e).abs() < 4.0 * err);
        }
    }
    assert!(populated > 200, "only {populated} populated cells");
    let fractions = pass.map(|p| p as f64 / populated as f64);
    println!("3-D: fraction within 4σ per field {fractions:?} over {populated} cells");
    assert!(fractions.iter().all(|&f| f >= 0.95), "{fractions:?}");
    // The radial profile about v_z: D_⊥ (in plane, ⊥ v) = σ_x²/τ and D_zz = (σ_z² + c_z²⟨v_z²⟩)/τ
    // with ⟨v_z²⟩ ≈ 1, so their ratio sits at the slower rate's.
    let want = (s2[2] + c[2] * c[2]) / s2[0];
    let r = &est.radial;
    let ratio: Vec<f64> = (0..r.v.len()).filter(|&b| r.counts[b] >= 1000).map(|b| r.d_zz[b] / r.d_perp[b]).collect();
    assert!(ratio.len() >= 3 && ratio.iter().all(|x| (x - want).abs() < 0.05 * want), "{ratio:?} vs {want}");

    // Three-component tracks on a 2-D grid: a one-line error naming the shape.
    let flat = RunData { grid: grid.plane(), f: Array3::zeros((n_dumps, 9, 9)), ..run };
    let e = baseline::estimate(&flat, "flat.h5", 2, None).unwrap_err().to_string();
    assert!(e.contains("flat.h5") && e.contains("n_tracked, 2]") && !e.contains('\n'), "{e}");
}
