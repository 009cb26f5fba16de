//! Physics acceptance tests of the built-in PIC code (run with `--release`).

use colop::pic::shape::form_factor;
use colop::pic::{run, PicConfig, Simulation};

fn config(yaml: &str) -> PicConfig {
    PicConfig::from_yaml(yaml, "test").unwrap()
}

/// Cold plasma, one long-wavelength displacement mode: the kinetic energy oscillates at 2ω_p.
#[test]
fn cold_plasma_oscillates_at_plasma_frequency() {
    let cfg = config(
        "grid: {nx: 64, ny: 4, dx: 1.0}
plasma: {ppc: 4, quiet_start: true, cold: true, perturbation: {mode: [1, 0], amplitude: 0.01}}
shape: {order: 2}
time: {dt: 0.05, steps: 1300, dump_every: 1300}
",
    );
    let mut sim = Simulation::new(&cfg).unwrap();
    let energies: Vec<_> = (0..cfg.time.steps).map(|_| sim.step()).collect();
    let mean = energies.iter().map(|e| e.kinetic).sum::<f64>() / energies.len() as f64;
    // Zero crossings of KE − mean, linearly interpolated: KE has period π/ω.
    let mut crossings = Vec::new();
    for w in energies.windows(2) {
        let (a, b) = (w[0].kinetic - mean, w[1].kinetic - mean);
        if a == 0.0 || a.signum() != b.signum() {
            crossings.push(w[0].time + (w[1].time - w[0].time) * a / (a - b));
        }
    }
    assert!(crossings.len() >= 10, "{} crossings", crossings.len());
    let span = crossings.last().unwrap() - crossings[0];
    let omega = std::f64::consts::FRAC_PI_2 * (crossings.len() - 1) as f64 / span;
    println!("cold plasma: ω = {omega:.5} ω_p from {} crossings", crossings.len());
    assert!((omega - 1.0).abs() < 0.01, "ω = {omega}");
    // Total energy of the oscillation is conserved to a fraction of its amplitude.
    let total: Vec<f64> = energies.iter().map(|e| e.total()).collect();
    let swing = total.iter().cloned().fold(f64::MIN, f64::max) - total.iter().cloned().fold(f64::MAX, f64::min);
    assert!(swing < 0.01 * total[0], "energy swing {swing} of {}", total[0]);
}

/// Thermal plasma, Δx = λ_D, 64 ppc, quadratic shape: total energy within 1% over 500/ω_p.
#[test]
fn thermal_plasma_conserves_energy() {
    let cfg = config(
        "grid: {nx: 16, ny: 16, dx: 1.0}
plasma: {ppc: 64}
shape: {order: 2}
time: {dt: 0.1, steps: 5000, dump_every: 5000}
seed: 3
",
    );
    let run = run(&cfg, &mut |_, _| {}).unwrap();
    let total = &run.diagnostics["energy_total"];
    let e0 = total[0];
    let drift = total.iter().map(|e| (e - e0).abs()).fold(0.0, f64::max) / e0;
    let end = (total[total.len() - 1] - e0) / e0;
    println!("thermal plasma: max |ΔE|/E = {drift:.2e}, final ΔE/E = {end:.2e} over 500/ω_p");
    assert!(drift < 0.01, "energy drift {drift}");
}

/// Time-averaged ⟨|E_k|²⟩ of a thermal plasma vs the Debye-shielded finite-size prediction.
///
/// Derivation (Birdsall & Langdon ch. 12; Langdon, Phys. Fluids 22, 163 (1979)), neglecting
/// aliases: particles interact through the potential S(k)²/k²; in thermal equilibrium the
/// Debye–Hückel structure factor of N such particles is ⟨|n_k|²⟩ = N k²λ_D²/(k²λ_D² + S²).
/// The grid field of particles of charge q = Δx²/ppc (n₀ = 1) is E_k = −ik S n_k q/k², so with
/// Ê = Σ_nodes E e^{−ik·x} = E_k/Δx²:
///   ⟨|Ê_k|²⟩ = (N/ppc²) · S(k)²/(k²λ_D² + S(k)²) = (N_cells/ppc) · S²/(k²λ_D² + S²).
/// Point particles (S = 1) give the textbook T/2 per mode over 1 + k²λ_D²; the test checks the
/// shaped prediction holds and that the point-particle one does not.
#[test]
fn field_fluctuation_spectrum_matches_finite_size_theory() {
    let (n, ppc, order) = (32usize, 16usize, 2usize);
    let cfg = config(&format!(
        "grid: {{nx: {n}, ny: {n}, dx: 1.0}}
plasma: {{ppc: {ppc}}}
shape: {{order: {order}}}
time: {{dt: 0.1, steps: 2400, dump_every: 2400}}
seed: 5
"
    ));
    let mut sim = Simulation::new(&cfg).unwrap();
    let settle = 400; // 40/ω_p: initial excess in the Langmuir modes damps for kλ_D ≥ 0.5
    for _ in 0..settle {
        sim.step();
    }
    let (mut power, kx, ky) = sim.field_power_spectrum();
    power.iter_mut().for_each(|p| *p = 0.0);
    let mut samples = 0;
    for s in settle..cfg.time.steps {
        sim.step();
        if s % 4 == 0 {
            let (p, _, _) = sim.field_power_spectrum();
            power.iter_mut().zip(p).for_each(|(a, b)| *a += b);
            samples += 1;
        }
    }
    let nyh = ky.len();
    // Shells in |k| from 0.5 to π/2 (below half the grid Nyquist, where aliases are negligible).
    let edges = [0.5, 0.7, 0.9, 1.1, 1.3, std::f64::consts::FRAC_PI_2];
    let cells = (n * n) as f64;
    let mut worst: f64 = 0.0;
    let mut point_at_top = 0.0;
    for w in edges.windows(2) {
        let (mut measured, mut shaped, mut point, mut modes) = (0.0, 0.0, 0.0, 0);
        for (i, &kx) in kx.iter().enumerate() {
            for (j, &ky) in ky.iter().enumerate() {
                let k = kx.hypot(ky);
                if k < w[0] || k >= w[1] {
                    continue;
                }
                let s2 = form_factor(order, 1.0, 0.0, kx, ky).powi(2);
                measured += power[i * nyh + j] / samples as f64;
                shaped += cells / ppc as f64 * s2 / (k * k + s2);
                point += cells / ppc as f64 / (k * k + 1.0);
                modes += 1;
            }
        }
        let err = measured / shaped - 1.0;
        let err_point = measured / point - 1.0;
        println!(
            "k ∈ [{:.2}, {:.2}): {modes} modes, measured/shaped = {:.3}, measured/point = {:.3}",
            w[0],
            w[1],
            measured / shaped,
            measured / point
        );
        worst = worst.max(err.abs());
        point_at_top = err_point.abs();
    }
    assert!(worst < 0.15, "worst relative deviation from the finite-size prediction {worst}");
    assert!(point_at_top > 0.15, "point-particle prediction should fail at high k, deviation {point_at_top}");
}

/// A fast self-consistent test-particle beam in a thermal plasma slows down and spreads.
#[test]
fn fast_beam_slows_down_and_spreads() {
    let cfg = config(
        "grid: {nx: 32, ny: 32, dx: 1.0}
plasma: {ppc: 32}
shape: {order: 2}
time: {dt: 0.1, steps: 600, dump_every: 100}
test_particles:
  n: 500
  mode: self_consistent
  weight: 1.0
  distribution: {kind: normal, center: [3.0, 0.0], sigma: 0.3}
  tracks: 500
histogram: {bins: [101, 101], v_range: [-5, 5, -5, 5]}
seed: 7
",
    );
    let run = run(&cfg, &mut |_, _| {}).unwrap();
    let tracks = run.tracks.as_ref().unwrap();
    let moments = |d: usize| {
        let vx = tracks.index_axis(ndarray::Axis(0), d);
        let vx = vx.column(0);
        let n = vx.len() as f64;
        let mean = vx.sum() / n;
        let var = vx.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let vy = tracks.index_axis(ndarray::Axis(0), d);
        let var_y = vy.column(1).iter().map(|v| v * v).sum::<f64>() / n;
        (mean, var, var_y)
    };
    let (m0, v0, w0) = moments(0);
    let (m1, v1, w1) = moments(run.t.len() - 1);
    println!(
        "beam: ⟨v_x⟩ {m0:.4} → {m1:.4}, var v_x {v0:.4} → {v1:.4}, var v_y {w0:.4} → {w1:.4} over t = {}",
        run.t.last().unwrap()
    );
    let stat = (v0 / 500.0f64).sqrt();
    assert!(m0 - m1 > 5.0 * stat, "mean velocity should drop: {m0} → {m1}");
    assert!(v1 > v0 && w1 > w0, "spreads: {v0} → {v1}, {w0} → {w1}");
    // The histograms hold every test particle and agree with the tracks' mean.
    let f_last = run.f.index_axis(ndarray::Axis(0), run.t.len() - 1);
    assert_eq!(f_last.sum(), 500.0);
}

/// Momentum-conserving scheme: same shape both ways and a spectral gradient give no self-force,
/// so the total momentum stays at its initial value to round-off (any order, with smoothing).
#[test]
fn total_momentum_is_conserved() {
    for order in [1, 4] {
        let cfg = config(&format!(
            "grid: {{nx: 12, ny: 10, dx: 0.7}}
plasma: {{ppc: 9}}
shape: {{order: {order}, gaussian_width: 0.5}}
time: {{dt: 0.2, steps: 200, dump_every: 200}}
test_particles: {{n: 300, mode: self_consistent, weight: 0.5, distribution: {{kind: normal, center: [2, 1], sigma: 0.3}}}}
seed: 2
"
        ));
        let mut sim = Simulation::new(&cfg).unwrap();
        let momentum = |sim: &Simulation| {
            let e = &sim.electrons;
            let t = &sim.test;
            let px: f64 = e.vx.iter().sum::<f64>() * e.density_weight + t.vx.iter().sum::<f64>() * t.density_weight;
            let py: f64 = e.vy.iter().sum::<f64>() * e.density_weight + t.vy.iter().sum::<f64>() * t.density_weight;
            (px, py)
        };
        let p0 = momentum(&sim);
        let mut worst: f64 = 0.0;
        for _ in 0..cfg.time.steps {
            sim.step();
            let p = momentum(&sim);
            worst = worst.max((p.0 - p0.0).abs()).max((p.1 - p0.1).abs());
        }
        let scale = sim.electrons.len() as f64 * sim.electrons.density_weight;
        println!("order {order}: max |ΔP| = {worst:.2e} (thermal scale {scale:.0})");
        assert!(worst < 1e-10 * scale, "order {order}: momentum drift {worst}");
    }
}

/// Same seed, any thread count: same bits.
#[test]
fn deterministic_across_thread_counts() {
    let cfg = config(
        "grid: {nx: 16, ny: 16, dx: 0.5}
plasma: {ppc: 100}
shape: {order: 3, gaussian_width: 0.3}
time: {dt: 0.2, steps: 20, dump_every: 5}
test_particles: {n: 500, mode: self_consistent, distribution: {kind: ring, radius: 2, width: 0.2}, tracks: 3}
seed: 11
",
    );
    let go = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run(&cfg, &mut |_, _| {}).unwrap())
    };
    let (a, b) = (go(1), go(3));
    assert!(Simulation::new(&cfg).unwrap().n_chunks() > 1, "test must exercise several chunks");
    assert_eq!(a.f, b.f);
    assert_eq!(a.tracks, b.tracks);
    let bits = |r: &colop::data::RunData| r.diagnostics["energy_total"].iter().map(|e| e.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.t.len(), 5);
    assert_eq!(a.params["n_lambda_D2"], 400.0);
}

/// Throughput for shapes 1–4 (`cargo test --release -- --ignored pic_benchmark --nocapture`).
#[test]
#[ignore]
fn pic_benchmark() {
    let report = colop::pic::benchmark(128, 64, 30);
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}

/// `histogram.bins: [nx, ny, nz]`: 3-D histograms of (v_x, v_y, v_z) whose v_x–v_y marginal is
/// the 2-D run's histogram exactly (v_z has its own random stream), whose v_z marginal never
/// changes (the code has no force along z), and tracks with a constant third component.
#[test]
fn three_dimensional_histograms_carry_a_constant_vz() {
    let base = "grid: {nx: 16, ny: 16, dx: 1.0}
plasma: {ppc: 36}
time: {dt: 0.2, steps: 20, dump_every: 5}
test_particles: {n: 2000, mode: self_consistent, distribution: {kind: normal, center: [1.0, 0.0], sigma: 0.6}, tracks: 4}
seed: 5
";
    let two = run(&config(&format!("{base}histogram: {{bins: [20, 20], v_range: [-6, 6, -6, 6]}}\n")), &mut |_, _| {}).unwrap();
    let three =
        run(&config(&format!("{base}histogram: {{bins: [20, 20, 8], v_range: [-6, 6, -6, 6, -4, 4]}}\n")), &mut |_, _| {}).unwrap();
    assert_eq!(three.grid.dim(), 3);
    assert_eq!(three.f.dim(), (5, 20, 20 * 8));
    let f4 = three.f.clone().into_shape_with_order((5, 20, 20, 8)).unwrap();
    assert_eq!(f4.sum_axis(ndarray::Axis(3)), two.f, "the v_x–v_y marginal is the 2-D run");
    let vz_marginal = |d: usize| f4.index_axis(ndarray::Axis(0), d).sum_axis(ndarray::Axis(0)).sum_axis(ndarray::Axis(0));
    for d in 1..5 {
        assert_eq!(vz_marginal(d), vz_marginal(0), "dump {d}: the v_z marginal changed");
    }
    let z = vz_marginal(0);
    assert!(z.iter().filter(|&&c| c > 0.0).count() >= 4, "v_z spread over the grid: {z:?}");
    let tracks = three.tracks.as_ref().unwrap();
    assert_eq!(tracks.dim(), (5, 4, 3));
    for d in 0..5 {
        for p in 0..4 {
            assert_eq!(tracks[[d, p, 2]], tracks[[0, p, 2]]);
            assert_eq!(tracks[[d, p, 0]], two.tracks.as_ref().unwrap()[[d, p, 0]]);
        }
    }
    // The 3-D run writes and reads back as a 3-D run file.
    let dir = tempfile::tempdir().unwrap();
    colop::data::write_run(&dir.path().join("r.h5"), &three).unwrap();
    assert_eq!(colop::data::read_run(&dir.path().join("r.h5")).unwrap().f, three.f);
    // Mismatched bins and v_range are one-line errors naming the key.
    let msg = PicConfig::from_yaml(&format!("{base}histogram: {{bins: [20, 20, 8], v_range: [-6, 6, -6, 6]}}\n"), "test")
        .and_then(|c| c.velocity_grid().map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("histogram.v_range") && msg.contains("expected 6"), "{msg}");
}

/// `test_particles.vz_correlation: ρ`: v_z starts correlated with v_x by ρ with the marginal
/// N(0, σ²) kept, the (v_x, v_y) state is the uncorrelated run's bit for bit, and v_z stays
/// constant.
#[test]
fn vz_correlation_ties_vz_to_the_initial_vx() {
    let base = "grid: { nx: 16, ny: 16, dx: 1.0 }
plasma: { ppc: 9 }
time: { dt: 0.2, steps: 10, dump_every: 5 }
histogram: { bins: [12, 12, 8], v_range: [-4, 5, -4, 4, -3, 3] }
seed: 9
";
    let tp = |rho: f64| format!("test_particles: {{ n: 20000, mode: tracer, distribution: {{ kind: normal, center: [0.5, 0.0], sigma: 0.7 }}, vz_correlation: {rho}, tracks: 20000 }}\n");
    let plain = run(&config(&format!("{base}{}", tp(0.0))), &mut |_, _| {}).unwrap();
    let tied = run(&config(&format!("{base}{}", tp(0.9))), &mut |_, _| {}).unwrap();
    let (a, b) = (plain.tracks.as_ref().unwrap(), tied.tracks.as_ref().unwrap());
    assert_eq!(a.slice(ndarray::s![.., .., 0..2]), b.slice(ndarray::s![.., .., 0..2]), "in-plane state unchanged");
    for d in 1..3 {
        assert_eq!(b.slice(ndarray::s![d, .., 2]), b.slice(ndarray::s![0, .., 2]), "v_z constant");
    }
    let moments = |vx: ndarray::ArrayView1<f64>, vz: ndarray::ArrayView1<f64>| {
        let n = vx.len() as f64;
        let (mx, mz) = (vx.sum() / n, vz.sum() / n);
        let cov = vx.iter().zip(&vz).map(|(x, z)| (x - mx) * (z - mz)).sum::<f64>() / n;
        let (sx, sz) = (vx.mapv(|x| (x - mx).powi(2)).sum() / n, vz.mapv(|z| (z - mz).powi(2)).sum() / n);
        (cov / (sx * sz).sqrt(), mz, sz.sqrt())
    };
    let (rho, mean, sigma) = moments(b.slice(ndarray::s![0, .., 0]), b.slice(ndarray::s![0, .., 2]));
    assert!((rho - 0.9).abs() < 0.01 && mean.abs() < 0.02 && (sigma - 0.7).abs() < 0.01, "ρ {rho}, mean {mean}, σ {sigma}");
    let (rho0, _, _) = moments(a.slice(ndarray::s![0, .., 0]), a.slice(ndarray::s![0, .., 2]));
    assert!(rho0.abs() < 0.03, "uncorrelated: ρ = {rho0}");
    assert_eq!(tied.params.get("test_vz_correlation"), Some(&0.9));
    assert!(!plain.params.contains_key("test_vz_correlation"));
}
