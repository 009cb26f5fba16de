//! Identities of the Lenard–Balescu coefficients: Maxwellian stationarity (fluctuation–
//! dissipation), 1/(nλ_D²) scaling, isotropy at rest, large-speed asymptotics, and convergence of
//! the adaptive quadrature against a brute-force fixed grid.

use colop::theory::{self, faddeeva, maxwellian_1d, susceptibility_x, tensor_at, Accuracy, Plasma};
use std::f64::consts::PI;

fn quadratic(n_lambda_d2: f64) -> Plasma {
    Plasma::new(n_lambda_d2, 2, 1.0, 0.0).unwrap()
}

#[test]
fn maxwellian_is_stationary() {
    let acc = Accuracy::default();
    for plasma in [quadratic(16.0), Plasma::new(4.0, 1, 0.5, 0.3).unwrap(), Plasma::new(64.0, 4, 2.0, 0.0).unwrap()] {
        for u in [0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 9.0] {
            let p = theory::radial_point(&plasma, u, acc).unwrap();
            let expected = p.half_div_d - 0.5 * p.d_par * u;
            assert!(
                (p.a_par - expected).abs() <= 1e-3 * p.a_par.abs(),
                "{plasma:?} u = {u}: A_par {} vs ½∂D − Dv/2 {}",
                p.a_par,
                expected
            );
            assert!(p.a_par < 0.0 && p.f_par < 0.0, "drag must oppose motion at u = {u}");
        }
        // Off-axis: both components of F = −D·u/2.
        let u = [1.2, -0.7];
        let t = tensor_at(&plasma, u, acc).unwrap();
        let fx = -0.5 * (t.d_xx * u[0] + t.d_xy * u[1]);
        let fy = -0.5 * (t.d_xy * u[0] + t.d_yy * u[1]);
        assert!((t.f_x - fx).abs() <= 1e-9 * fx.abs() && (t.f_y - fy).abs() <= 1e-9 * fy.abs(), "{t:?}");
    }
}

#[test]
fn scales_as_inverse_n_lambda_d2_and_isotropic_at_rest() {
    let acc = Accuracy::default();
    let (a, b) = (tensor_at(&quadratic(16.0), [2.0, 0.5], acc).unwrap(), tensor_at(&quadratic(64.0), [2.0, 0.5], acc).unwrap());
    for (x, y) in [(a.d_xx, b.d_xx), (a.d_yy, b.d_yy), (a.d_xy, b.d_xy), (a.f_x, b.f_x), (a.f_y, b.f_y)] {
        assert!((16.0 * x - 64.0 * y).abs() <= 1e-12 * (16.0 * x).abs(), "{x} vs {y}");
    }
    let rest = tensor_at(&quadratic(16.0), [0.0, 0.0], acc).unwrap();
    assert!((rest.d_xx - rest.d_yy).abs() <= 1e-12 * rest.d_xx && rest.d_xy.abs() < 1e-15);
    assert!(rest.f_x.abs() < 1e-15 && rest.f_y.abs() < 1e-15);
    // Larger particles (wider Gaussian) collide less.
    let smooth = tensor_at(&Plasma::new(16.0, 2, 1.0, 1.0).unwrap(), [0.0, 0.0], acc).unwrap();
    assert!(smooth.d_xx < 0.8 * rest.d_xx, "{} vs {}", smooth.d_xx, rest.d_xx);
}

#[test]
fn large_speed_asymptotics() {
    // D_∥ → 1/(2u²), F_∥ → −1/(4u), D_⊥ → C_⊥/u (units of 1/(nλ_D²)), with O(1/u) corrections
    // removed by Richardson extrapolation between u = 20 and 40.
    let plasma = quadratic(1.0);
    let acc = Accuracy::default();
    let (t20, t40) = (tensor_at(&plasma, [20.0, 0.0], acc).unwrap(), tensor_at(&plasma, [40.0, 0.0], acc).unwrap());
    let richardson = |a: f64, b: f64| 2.0 * b - a;
    let d_par = richardson(400.0 * t20.d_xx, 1600.0 * t40.d_xx);
    let f_par = richardson(20.0 * t20.f_x, 40.0 * t40.f_x);
    let d_perp = richardson(20.0 * t20.d_yy, 40.0 * t40.d_yy);
    let c_perp = theory::perp_asymptote(&plasma, acc);
    println!("u²D_∥ → {d_par}, uF_∥ → {f_par}, uD_⊥ → {d_perp} (C_⊥ = {c_perp})");
    assert!((d_par - 0.5).abs() < 2e-3 * 0.5);
    assert!((f_par + 0.25).abs() < 2e-3 * 0.25);
    assert!((d_perp - c_perp).abs() < 3e-3 * c_perp);
}

/// Brute force: periodic trapezoid in φ (n_phi points) and composite Simpson in κ on [0, k_max].
fn brute_force(plasma: &Plasma, u: f64, n_phi: usize, dk: f64, k_max: f64) -> [f64; 3] {
    let n_k = 2 * ((k_max / dk / 2.0).ceil() as usize);
    let h = k_max / n_k as f64;
    let mut out = [0.0; 3];
    for i in 0..n_phi {
        let phi = 2.0 * PI * i as f64 / n_phi as f64;
        let (c, s) = (phi.cos(), phi.sin());
        let proj = c * u;
        let (g, x) = (maxwellian_1d(proj), susceptibility_x(proj));
        let (mut hd, mut hf) = (0.0, 0.0);
        for j in 1..=n_k {
            let k = j as f64 * h;
            let w = if j == n_k { 1.0 } else if j % 2 == 1 { 4.0 } else { 2.0 };
            let s2 = plasma.form_factor(k, c, s).powi(2);
            let inv_eps = k * k / (k * k + s2 * x);
            hd += w * g * s2 * s2 * inv_eps.norm_sqr() / (k * k);
            hf += w * s2 * inv_eps.im;
        }
        hd *= h / 3.0;
        hf *= h / 3.0;
        out[0] += c * c * hd;
        out[1] += s * s * hd;
        out[2] += c * hf;
    }
    let dphi = 2.0 * PI / n_phi as f64;
    let nl = plasma.n_lambda_d2;
    [out[0] * dphi / (2.0 * PI * nl), out[1] * dphi / (2.0 * PI * nl), out[2] * dphi / (4.0 * PI * PI * nl)]
}

#[test]
fn quadrature_converges() {
    let plasma = quadratic(16.0);
    let reference: Vec<_> = [0.5, 1.0, 2.0, 3.0].iter().map(|&u| tensor_at(&plasma, [u, 0.0], Accuracy { rel: 1e-12 }).unwrap()).collect();
    // Adaptive: the tolerance needed for 1e-4 and what it costs.
    for rel in [1e-3, 1e-4, 1e-5, 1e-6] {
        let mut worst = 0.0f64;
        let (mut phi, mut kappa) = (0, 0);
        for (r, &u) in reference.iter().zip(&[0.5, 1.0, 2.0, 3.0]) {
            let t = tensor_at(&plasma, [u, 0.0], Accuracy { rel }).unwrap();
            for (a, b) in [(t.d_xx, r.d_xx), (t.d_yy, r.d_yy), (t.f_x, r.f_x)] {
                worst = worst.max((a - b).abs() / b.abs());
            }
            phi = phi.max(t.phi_evals);
            kappa = kappa.max(t.kappa_evals / t.phi_evals.max(1));
        }
        println!("adaptive rel {rel:e}: worst relative error {worst:.2e}, ≤ {phi} angles, ≤ {kappa} κ points per angle");
        if rel <= 1e-4 {
            assert!(worst < 1e-4, "rel {rel}: {worst}");
        }
    }
    // Fixed grids agree with the adaptive result (an independent implementation), and show the
    // resolution needed for 1e-4.
    for (n_phi, dk) in [(16, 0.0125), (32, 0.0125), (64, 0.0125), (128, 0.0125), (256, 0.1), (256, 0.05), (256, 0.025), (256, 0.0125)] {
        let mut worst = 0.0f64;
        for (r, &u) in reference.iter().zip(&[0.5, 1.0, 2.0, 3.0]) {
            let b = brute_force(&plasma, u, n_phi, dk, 40.0);
            for (a, e) in [(b[0], r.d_xx), (b[1], r.d_yy), (b[2], r.f_x)] {
                worst = worst.max((a - e).abs() / e.abs());
            }
        }
        println!("fixed grid N_φ = {n_phi}, Δκ = {dk}: worst relative error {worst:.2e}");
        if n_phi == 256 && dk == 0.0125 {
            assert!(worst < 1e-4, "{worst}");
        }
    }
}

#[test]
fn plasma_dispersion_function_at_known_points() {
    // Z(0) = i√π, and 1 + ζ Re Z(ζ) = 1 − 2ζ Dawson(ζ) = Dawson′(ζ) vanishes at the maximum of
    // Dawson's integral, ζ = 0.9241388730 (onset of the Cherenkov resonance, k̂·u = 1.30693).
    assert!((faddeeva::plasma_z(0.0).im - PI.sqrt()).abs() < 1e-15);
    let x = |z: f64| 1.0 + z * faddeeva::plasma_z(z).re;
    assert!(x(0.924_138_8) > 0.0 && x(0.924_139_0) < 0.0, "{} {}", x(0.924_138_8), x(0.924_139_0));
}

#[test]
fn par_perp_model_maps_the_profile_isotropically() {
    use colop::grid::VelocityGrid;
    use colop::operator::fp;
    let plasma = quadratic(16.0);
    let speeds: Vec<f64> = (0..=40).map(|i| 0.2 * i as f64).collect();
    let points = theory::radial_profile(&plasma, &speeds, Accuracy { rel: 1e-6 }).unwrap();
    let grid = VelocityGrid::square(11, 5.0).unwrap();
    let model = theory::output::par_perp_model(&grid, &points, &plasma, "test");
    assert_eq!(model.fields.shape(), &[5, 11, 11]);
    assert_eq!(model.theta.len(), 3 * speeds.len());
    assert!(model.fields.iter().all(|v| v.is_finite()));
    // Cell (8, 5) sits at v = (1.82, 0): A_y = D_xy = 0, D_xx = D_∥, D_yy = D_⊥ there.
    let (i, j) = (8, 5);
    let v = grid.vx(i);
    let at = |f: fn(&theory::RadialPoint) -> f64| theory::output::interpolate(&speeds, &points.iter().map(f).collect::<Vec<_>>(), v);
    assert!((model.fields[[fp::DXX, i, j]] - at(|p| p.d_par)).abs() < 1e-15);
    assert!((model.fields[[fp::DYY, i, j]] - at(|p| p.d_perp)).abs() < 1e-15);
    assert!((model.fields[[fp::AX, i, j]] - at(|p| p.a_par)).abs() < 1e-15);
    assert!(model.fields[[fp::DXY, i, j]].abs() < 1e-15 && model.fields[[fp::AY, i, j]].abs() < 1e-15);
}
