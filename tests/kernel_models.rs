//! Tests of the integro-differential kernel operator: the explicit scheme (transpose identities,
//! multi-step finite-difference gradients for every divergence and clamp on/off, reproduction of a
//! Fokker–Planck drift and diffusion step, sub-step bound) and the `kernel` models (tensor and mlp,
//! with and without the transposed symmetry).

use colop::grid::VelocityGrid;
use colop::operator::kernel::{field_index, KernelModel};
use colop::operator::spec::{Activation, KernelParam, ModelKind, Symmetry};
use colop::operator::{self, BuildInfo, Divergence, Equation, Fields, ModelSpec, OperatorModel};
use colop::solver::kernel::KernelScheme;
use colop::solver::{AutoWord, Scheme, Substeps};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIVERGENCES: [Divergence; 3] = [Divergence::Forward, Divergence::Backward, Divergence::Centred];

fn random(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| lo + (hi - lo) * rng.gen::<f64>()).collect()
}

fn random_fields(n_fields: usize, grid: &VelocityGrid, seed: u64, scale: f64) -> Fields {
    Fields::from_shape_vec((n_fields, grid.nx, grid.ny), random(n_fields * grid.n_cells(), seed, -scale, scale)).unwrap()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-300)
}

fn prepared(scheme: &KernelScheme, coeffs: &Fields, h: f64) -> Fields {
    let mut p = Fields::zeros(scheme.prepared_shape());
    scheme.prepare(coeffs.view(), h, p.view_mut());
    p
}

/// States f_0..f_steps of an explicit rollout.
fn rollout(scheme: &KernelScheme, coeffs: &Fields, h: f64, f0: &[f64], steps: usize) -> Vec<Vec<f64>> {
    let p = prepared(scheme, coeffs, h);
    let mut ws = scheme.workspace();
    let mut states = vec![f0.to_vec()];
    for s in 0..steps {
        let mut next = vec![0.0; f0.len()];
        scheme.step(&p, &states[s], &mut next, &mut ws);
        states.push(next);
    }
    states
}

/// Loss ⟨w, f_N⟩ + ½|f_N|² and its gradient with respect to the physical weights and f_0.
fn loss_and_gradient(scheme: &KernelScheme, coeffs: &Fields, h: f64, f0: &[f64], steps: usize, w: &[f64]) -> (f64, Fields, Vec<f64>) {
    let states = rollout(scheme, coeffs, h, f0, steps);
    let last = &states[steps];
    let loss = dot(w, last) + 0.5 * dot(last, last);
    let p = prepared(scheme, coeffs, h);
    let mut d_p = Fields::zeros(p.raw_dim());
    let mut ws = scheme.workspace();
    let mut lam: Vec<f64> = w.iter().zip(last).map(|(w, f)| w + f).collect();
    let mut lam_in = vec![0.0; lam.len()];
    for s in (0..steps).rev() {
        scheme.step_vjp(&p, &states[s], &lam, &mut lam_in, &mut d_p, &mut ws);
        std::mem::swap(&mut lam, &mut lam_in);
    }
    let mut d_coeffs = Fields::zeros(coeffs.raw_dim());
    scheme.prepare_vjp(coeffs.view(), h, d_p.view(), d_coeffs.view_mut());
    (loss, d_coeffs, lam)
}

/// Smallest |unclamped value| met along the rollout, and how many values the clamp cut.
fn clamp_margin(grid: &VelocityGrid, k: usize, div: Divergence, coeffs: &Fields, h: f64, states: &[Vec<f64>]) -> (f64, usize) {
    let free = KernelScheme::new(grid, k, div, false, Substeps::Fixed(1)).unwrap();
    let p = prepared(&free, coeffs, h);
    let mut ws = free.workspace();
    let (mut margin, mut cut) = (f64::INFINITY, 0);
    let mut pre = vec![0.0; grid.n_cells()];
    for f in &states[..states.len() - 1] {
        free.step(&p, f, &mut pre, &mut ws);
        margin = pre.iter().fold(margin, |m, v| m.min(v.abs()));
        cut += pre.iter().filter(|v| **v < 0.0).count();
    }
    (margin, cut)
}

#[test]
fn kernel_step_transposes_for_every_divergence_and_clamp() {
    let grid = VelocityGrid::new(9, 7, [-3.0, 3.0, -2.0, 2.5], "v_th").unwrap();
    let n = grid.n_cells();
    for k in [1, 3, 5] {
        for div in DIVERGENCES {
            for clamp in [false, true] {
                let scheme = KernelScheme::new(&grid, k, div, clamp, Substeps::Fixed(1)).unwrap();
                let free = KernelScheme::new(&grid, k, div, false, Substeps::Fixed(1)).unwrap();
                let p = random_fields(2 * k * k, &grid, 1, 0.8);
                let v = random_fields(2 * k * k, &grid, 2, 1.0);
                let f = random(n, 3, 0.1, 1.0);
                let (u, lam) = (random(n, 4, -1.0, 1.0), random(n, 5, -1.0, 1.0));
                let mut ws = scheme.workspace();
                // Active set of the clamp, from the unclamped step.
                let mut pre = vec![0.0; n];
                free.step(&p, &f, &mut pre, &mut ws);
                let mask: Vec<f64> = pre.iter().map(|&x| if !clamp || x >= 0.0 { 1.0 } else { 0.0 }).collect();
                if clamp {
                    assert!(mask.contains(&0.0), "k={k} {div:?}: clamp must bite");
                }
                let mut out = vec![0.0; n];
                scheme.step(&p, &f, &mut out, &mut ws);
                assert!(out.iter().zip(&pre).zip(&mask).all(|((o, q), m)| *o == q * m));
                let mut lam_in = vec![0.0; n];
                let mut d_p = Fields::zeros(p.raw_dim());
                scheme.step_vjp(&p, &f, &lam, &mut lam_in, &mut d_p, &mut ws);
                // J_f u = mask ⊙ S_p(u) (the unclamped step is linear in f).
                let mut ju = vec![0.0; n];
                free.step(&p, &u, &mut ju, &mut ws);
                let lhs: f64 = ju.iter().zip(&mask).zip(&lam).map(|((a, m), l)| a * m * l).sum();
                let rhs = dot(&u, &lam_in);
                assert!(rel(lhs, rhs) <= 1e-12, "k={k} {div:?} clamp={clamp} f: {lhs} vs {rhs}");
                // J_p v = mask ⊙ (S_v(f) − f) (and linear in the weights).
                let mut jv = vec![0.0; n];
                free.step(&v, &f, &mut jv, &mut ws);
                let lhs: f64 = jv.iter().zip(&f).zip(&mask).zip(&lam).map(|(((a, f), m), l)| (a - f) * m * l).sum();
                let rhs = dot(v.as_slice().unwrap(), d_p.as_slice().unwrap());
                assert!(rel(lhs, rhs) <= 1e-12, "k={k} {div:?} clamp={clamp} weights: {lhs} vs {rhs}");
            }
        }
    }
}

#[test]
fn kernel_prepare_transposes() {
    let grid = VelocityGrid::new(6, 5, [-3.0, 3.0, -1.0, 1.5], "v_th").unwrap();
    let scheme = KernelScheme::new(&grid, 3, Divergence::Centred, true, Substeps::Fixed(1)).unwrap();
    let (c, v) = (random_fields(18, &grid, 1, 1.0), random_fields(18, &grid, 2, 1.0));
    let h = 0.37;
    let p = prepared(&scheme, &c, h);
    let mut d_c = Fields::zeros(c.raw_dim());
    scheme.prepare_vjp(c.view(), h, v.view(), d_c.view_mut());
    let (lhs, rhs) = ((&p * &v).sum(), (&c * &d_c).sum());
    assert!(rel(lhs, rhs) <= 1e-12, "{lhs} vs {rhs}");
    // Scaling by h/Δv per axis.
    assert!(rel(p[[0, 1, 1]], c[[0, 1, 1]] * h / grid.dvx()) <= 1e-15);
    assert!(rel(p[[9, 1, 1]], c[[9, 1, 1]] * h / grid.dvy()) <= 1e-15);
}

#[test]
fn kernel_rollout_gradients_match_finite_differences() {
    let grid = VelocityGrid::square(10, 3.0).unwrap();
    let n = grid.n_cells();
    let (k, h, steps) = (3, 0.5, 4);
    for div in DIVERGENCES {
        for clamp in [false, true] {
            let label = format!("{div:?} clamp={clamp}");
            let scheme = KernelScheme::new(&grid, k, div, clamp, Substeps::Fixed(1)).unwrap();
            let coeffs = random_fields(2 * k * k, &grid, 11, if clamp { 0.2 } else { 0.05 });
            let f0 = random(n, 12, 0.2, 1.2);
            let w = random(n, 13, -1.0, 1.0);
            if clamp {
                let (margin, cut) = clamp_margin(&grid, k, div, &coeffs, h, &rollout(&scheme, &coeffs, h, &f0, steps));
                assert!(cut > 0 && margin > 1e-4, "{label}: clamp must bite away from its kink ({cut} cut, margin {margin})");
            }
            let (_, d_c, d_f) = loss_and_gradient(&scheme, &coeffs, h, &f0, steps, &w);
            let (uc, uf) = (random_fields(2 * k * k, &grid, 14, 1.0), random(n, 15, -1.0, 1.0));
            let at = |eps: f64| {
                let c = &coeffs + &(&uc * eps);
                let f: Vec<f64> = f0.iter().zip(&uf).map(|(f, u)| f + eps * u).collect();
                loss_and_gradient(&scheme, &c, h, &f, steps, &w).0
            };
            let eps = 1e-6;
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            let exact = (&d_c * &uc).sum() + dot(&d_f, &uf);
            assert!(rel(fd, exact) <= 1e-6, "{label}: fd {fd} vs {exact}");
        }
    }
}

/// Guarded first/second differences of the central Fokker–Planck scheme (u = 0 outside).
fn guarded(u: &[f64], ny: usize, nx: usize, i: isize, j: isize) -> f64 {
    if i < 0 || j < 0 || i >= nx as isize || j >= ny as isize {
        0.0
    } else {
        u[i as usize * ny + j as usize]
    }
}

#[test]
fn kernel_reproduces_fokker_planck_drift() {
    let grid = VelocityGrid::new(12, 10, [-3.0, 3.0, -2.0, 2.0], "v_th").unwrap();
    let (nx, ny, n) = (grid.nx, grid.ny, grid.n_cells());
    let (ax, ay) = (random(n, 1, -0.5, 0.5), random(n, 2, -0.5, 0.5));
    let f = random(n, 3, 0.0, 1.0);
    let h = 0.1;
    let mut k = Fields::zeros((18, nx, ny));
    for c in 0..n {
        let (i, j) = (c / ny, c % ny);
        k[[field_index(3, 0, 0, 0), i, j]] = -ax[c];
        k[[field_index(3, 1, 0, 0), i, j]] = -ay[c];
    }
    let scheme = KernelScheme::new(&grid, 3, Divergence::Centred, false, Substeps::Fixed(1)).unwrap();
    let out = &rollout(&scheme, &k, h, &f, 1)[1];
    let gx: Vec<f64> = (0..n).map(|c| ax[c] / grid.dvx() * f[c]).collect();
    let gy: Vec<f64> = (0..n).map(|c| ay[c] / grid.dvy() * f[c]).collect();
    for c in 0..n {
        let (i, j) = ((c / ny) as isize, (c % ny) as isize);
        let d1x = 0.5 * (guarded(&gx, ny, nx, i + 1, j) - guarded(&gx, ny, nx, i - 1, j));
        let d1y = 0.5 * (guarded(&gy, ny, nx, i, j + 1) - guarded(&gy, ny, nx, i, j - 1));
        let expected = f[c] - h * (d1x + d1y);
        assert!((out[c] - expected).abs() <= 1e-14, "cell {c}: {} vs {expected}", out[c]);
    }
}

#[test]
fn kernel_reproduces_fokker_planck_diffusion() {
    let grid = VelocityGrid::new(11, 9, [-3.0, 3.0, -2.0, 2.0], "v_th").unwrap();
    let (nx, ny, n) = (grid.nx, grid.ny, grid.n_cells());
    let (dxx, dyy) = (random(n, 1, 0.1, 0.6), random(n, 2, 0.1, 0.6));
    let h = 0.05;
    // Forward differences need f = 0 on the last row/column, backward on the first.
    for (div, sign) in [(Divergence::Forward, -1isize), (Divergence::Backward, 1)] {
        let edge = if sign < 0 { (nx - 1, ny - 1) } else { (0, 0) };
        let f: Vec<f64> = random(n, 3, 0.0, 1.0)
            .into_iter()
            .enumerate()
            .map(|(c, v)| if c / ny == edge.0 || c % ny == edge.1 { 0.0 } else { v })
            .collect();
        let mut k = Fields::zeros((18, nx, ny));
        for c in 0..n {
            let (i, j) = (c / ny, c % ny);
            // Flux ½∂(D f) in the difference matching the divergence: the centre and the neighbour
            // on the side opposite to the divergence.
            let s = -sign; // forward: centre − left, backward: right − centre
            let (ni, nj) = (i as isize + sign, j as isize + sign);
            k[[field_index(3, 0, 0, 0), i, j]] = s as f64 * dxx[c] / (2.0 * grid.dvx());
            k[[field_index(3, 1, 0, 0), i, j]] = s as f64 * dyy[c] / (2.0 * grid.dvy());
            if (0..nx as isize).contains(&ni) {
                k[[field_index(3, 0, sign, 0), i, j]] = -s as f64 * dxx[ni as usize * ny + j] / (2.0 * grid.dvx());
            }
            if (0..ny as isize).contains(&nj) {
                k[[field_index(3, 1, 0, sign), i, j]] = -s as f64 * dyy[i * ny + nj as usize] / (2.0 * grid.dvy());
            }
        }
        let scheme = KernelScheme::new(&grid, 3, div, false, Substeps::Fixed(1)).unwrap();
        let out = &rollout(&scheme, &k, h, &f, 1)[1];
        let ux: Vec<f64> = (0..n).map(|c| dxx[c] / grid.dvx().powi(2) * f[c]).collect();
        let uy: Vec<f64> = (0..n).map(|c| dyy[c] / grid.dvy().powi(2) * f[c]).collect();
        let mut worst = 0.0f64;
        for c in 0..n {
            let (i, j) = ((c / ny) as isize, (c % ny) as isize);
            let d2 = |u: &[f64], di: isize, dj: isize| guarded(u, ny, nx, i + di, j + dj) - 2.0 * u[c] + guarded(u, ny, nx, i - di, j - dj);
            let expected = f[c] + 0.5 * h * (d2(&ux, 1, 0) + d2(&uy, 0, 1));
            worst = worst.max((out[c] - expected).abs());
        }
        assert!(worst <= 1e-14, "{div:?}: max deviation {worst}");
    }
}

#[test]
fn kernel_substeps_follow_the_stated_bound() {
    let grid = VelocityGrid::new(8, 6, [-2.0, 2.0, -3.0, 3.0], "v_th").unwrap();
    let coeffs = random_fields(18, &grid, 1, 0.4);
    for div in DIVERGENCES {
        let scheme = KernelScheme::new(&grid, 3, div, true, Substeps::Auto(AutoWord::Auto)).unwrap();
        let r = scheme.rate_bound(coeffs.view());
        let c = if div == Divergence::Centred { 1.0 } else { 2.0 };
        let sum_max = |axis: usize| {
            (0..grid.n_cells()).map(|cell| (0..9).map(|p| coeffs[[axis * 9 + p, cell / grid.ny, cell % grid.ny]].abs()).sum::<f64>()).fold(0.0, f64::max)
        };
        assert!(rel(r, c * (sum_max(0) / grid.dvx() + sum_max(1) / grid.dvy())) <= 1e-15);
        let dt = 3.7;
        let steps = scheme.substeps(coeffs.view(), dt);
        assert!(dt / steps as f64 * r <= 1.0 && dt / (steps - 1) as f64 * r > 1.0, "{steps} steps for R = {r}");
        let nan = Fields::from_elem(coeffs.raw_dim(), f64::NAN);
        assert_eq!(scheme.substeps(nan.view(), dt), 1);
    }
    let fixed = KernelScheme::new(&grid, 3, Divergence::Forward, true, Substeps::Fixed(3)).unwrap();
    assert_eq!(fixed.substeps(coeffs.view(), 100.0), 3);
    for (k, sub) in [(2, Substeps::Fixed(1)), (7, Substeps::Fixed(1)), (3, Substeps::Fixed(0))] {
        let msg = KernelScheme::new(&grid, k, Divergence::Forward, true, sub).expect_err("rejected").to_string();
        assert!(msg.starts_with("solver: "), "{msg}");
    }
}

fn kernel_spec(param: KernelParam, symmetry: Symmetry, k: usize) -> ModelSpec {
    let mlp = param == KernelParam::Mlp;
    let default = ModelSpec::default();
    ModelSpec {
        kind: ModelKind::Kernel,
        kernel_param: param,
        symmetry,
        stencil: k,
        // Network options only where the network exists (validate rejects them otherwise).
        width: if mlp { 8 } else { default.width },
        depth: if mlp { 2 } else { default.depth },
        activation: if mlp { Activation::Silu } else { default.activation },
        divergence: Divergence::Backward,
        ..default
    }
}

fn info(grid: &VelocityGrid) -> BuildInfo {
    BuildInfo { grid: grid.clone(), cond_ranges: vec![], t_span: 1.0 }
}

fn model_fields(model: &dyn OperatorModel, theta: &[f64]) -> Fields {
    let g = model.grid();
    let mut out = Fields::zeros((model.n_fields(), g.nx, g.ny));
    model.node_fields(theta, &[], 0, &mut out);
    out
}

fn model_theta(model: &dyn OperatorModel, seed: u64) -> Vec<f64> {
    let t = model.init_params(seed);
    t.iter().zip(random(t.len(), seed + 1, -0.2, 0.2)).map(|(a, b)| a + b).collect()
}

#[test]
fn kernel_models_gradients_and_transposed_symmetry() {
    let grid = VelocityGrid::new(8, 8, [-3.0, 3.0, -3.0, 3.0], "v_th").unwrap();
    for param in [KernelParam::Tensor, KernelParam::Mlp] {
        for symmetry in [Symmetry::None, Symmetry::Transposed] {
            for k in [1, 3, 5] {
                let label = format!("{param:?} {symmetry:?} k={k}");
                let model = operator::build(&kernel_spec(param, symmetry, k), &info(&grid)).unwrap();
                assert_eq!(model.kind(), "kernel");
                assert_eq!(model.equation(), Equation::Kernel { k, divergence: Divergence::Backward });
                assert_eq!(model.n_fields(), 2 * k * k);
                let theta = model_theta(model.as_ref(), 3);
                let f = model_fields(model.as_ref(), &theta);
                let w = random_fields(2 * k * k, &grid, 4, 1.0);
                let mut grad = vec![0.0; theta.len()];
                model.node_fields_vjp(&theta, &[], 0, &w, &mut grad);
                let u = random(theta.len(), 5, -1.0, 1.0);
                let loss = |eps: f64| {
                    let t: Vec<f64> = theta.iter().zip(&u).map(|(t, u)| t + eps * u).collect();
                    (&model_fields(model.as_ref(), &t) * &w).sum()
                };
                let fd = (loss(1e-6) - loss(-1e-6)) / 2e-6;
                assert!(rel(fd, dot(&grad, &u)) <= 1e-6, "{label}: fd {fd} vs {}", dot(&grad, &u));
                if symmetry == Symmetry::Transposed {
                    let r = (k as isize - 1) / 2;
                    for l in -r..=r {
                        for m in -r..=r {
                            for i in 0..8 {
                                for j in 0..8 {
                                    assert_eq!(f[[field_index(k, 1, l, m), i, j]], f[[field_index(k, 0, m, l), j, i]], "{label}");
                                }
                            }
                        }
                    }
                    if k > 1 {
                        assert_ne!(f[[field_index(k, 1, 1, 0), 2, 5]], f[[field_index(k, 0, 1, 0), 2, 5]], "{label}: not trivially equal");
                    }
                }
                let exports = model.exports(&theta, &[]);
                assert_eq!(exports[0].0, "kernel_offsets");
                assert_eq!(exports[0].1.shape(), [k * k, 2]);
            }
        }
    }
}

#[test]
fn kernel_tensor_is_in_grid_units_transposes_and_starts_as_diffusion() {
    let grid = VelocityGrid::new(12, 10, [-3.0, 3.0, -2.0, 2.5], "v_th").unwrap();
    let (nx, ny, n) = (grid.nx, grid.ny, grid.n_cells());
    for div in DIVERGENCES {
        let spec = ModelSpec { divergence: div, ..kernel_spec(KernelParam::Tensor, Symmetry::None, 3) };
        let model = operator::build(&spec, &info(&grid)).unwrap();
        // K_x = Δv_x·θ, K_y = Δv_y·θ.
        let theta = random(model.n_params(), 1, -1.0, 1.0);
        let f = model_fields(model.as_ref(), &theta);
        for p in 0..18 {
            let unit = if p < 9 { grid.dvx() } else { grid.dvy() };
            assert!((0..n).all(|c| f.as_slice().unwrap()[p * n + c] == unit * theta[p * n + c]), "{div:?} plane {p}");
        }
        // JVP and VJP are transposes of each other.
        let (u, w) = (random(model.n_params(), 2, -1.0, 1.0), random_fields(18, &grid, 3, 1.0));
        let ju = model.node_fields_jvp(&theta, &[], 0, &u).expect("tensor kernels are linear");
        let mut jtw = vec![0.0; u.len()];
        model.node_fields_vjp(&theta, &[], 0, &w, &mut jtw);
        assert!(rel((&ju * &w).sum(), dot(&u, &jtw)) <= 1e-12, "{div:?}");
        // The initial weights step ½D∇²f with D = INITIAL_DIFFUSION·Δv² per axis (f zero on a two-cell border,
        // so no edge is involved): compact second differences for forward/backward, the
        // two-cell-wide ones of centred differences of centred differences.
        let init = model_fields(model.as_ref(), &model.init_params(7));
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let f0: Vec<f64> = (0..n)
            .map(|c| {
                let (i, j) = (c / ny, c % ny);
                if (2..nx - 2).contains(&i) && (2..ny - 2).contains(&j) { rng.gen::<f64>() } else { 0.0 }
            })
            .collect();
        let h = 0.3;
        let scheme = KernelScheme::new(&grid, 3, div, false, Substeps::Fixed(1)).unwrap();
        let out = &rollout(&scheme, &init, h, &f0, 1)[1];
        let s = if div == Divergence::Centred { 2 } else { 1 };
        let scale = if div == Divergence::Centred { 0.25 } else { 1.0 };
        for c in 0..n {
            let (i, j) = ((c / ny) as isize, (c % ny) as isize);
            let at = |di: isize, dj: isize| guarded(&f0, ny, nx, i + di, j + dj);
            let lap = at(s, 0) + at(-s, 0) + at(0, s) + at(0, -s) - 4.0 * f0[c];
            let expected = f0[c] + 0.5 * colop::operator::fp_model::INITIAL_DIFFUSION * h * scale * lap;
            assert!((out[c] - expected).abs() <= 1e-15, "{div:?} cell {c}: {} vs {expected}", out[c]);
        }
    }
    // k = 1 cannot hold a diffusion: the identity.
    let one = operator::build(&kernel_spec(KernelParam::Tensor, Symmetry::Transposed, 1), &info(&VelocityGrid::square(6, 2.0).unwrap())).unwrap();
    assert!(one.init_params(1).iter().all(|&t| t == 0.0));
}

#[test]
fn kernel_smoothness_penalty_gradients_and_null_space() {
    let grid = VelocityGrid::square(7, 3.0).unwrap();
    let n = grid.n_cells();
    for param in [KernelParam::Tensor, KernelParam::Mlp] {
        for symmetry in [Symmetry::None, Symmetry::Transposed] {
            for (d1, d2) in [(0.7, 0.0), (0.0, 1.3), (0.4, 0.9)] {
                let label = format!("{param:?} {symmetry:?} d1={d1} d2={d2}");
                let spec = ModelSpec { kernel_smooth_d1: d1, kernel_smooth_d2: d2, ..kernel_spec(param, symmetry, 3) };
                let model = operator::build(&spec, &info(&grid)).unwrap();
                let theta = model_theta(model.as_ref(), 21);
                let mut grad = vec![0.0; theta.len()];
                let value = model.penalty(&theta, &mut grad);
                assert!(value > 0.0, "{label}");
                let u = random(theta.len(), 22, -1.0, 1.0);
                let at = |eps: f64| {
                    let t: Vec<f64> = theta.iter().zip(&u).map(|(t, u)| t + eps * u).collect();
                    model.penalty(&t, &mut vec![0.0; t.len()])
                };
                let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
                assert!(rel(fd, dot(&grad, &u)) <= 1e-6, "{label}: fd {fd} vs {}", dot(&grad, &u));
            }
        }
    }
    // Tensor weights affine in (i, j) are free under the second-difference penalty, constant ones
    // under both; the value is (d1·Σ first differences² + d2·Σ second differences²) / (planes·cells).
    let spec = |d1: f64, d2: f64| ModelSpec { kernel_smooth_d1: d1, kernel_smooth_d2: d2, ..kernel_spec(KernelParam::Tensor, Symmetry::Transposed, 3) };
    let affine: Vec<f64> = (0..9 * n).map(|q| 0.3 * (q / n) as f64 + 0.02 * (q % n / 7) as f64 - 0.05 * (q % 7) as f64).collect();
    let constant: Vec<f64> = (0..9 * n).map(|q| (q / n) as f64).collect();
    let m2 = operator::build(&spec(0.0, 2.0), &info(&grid)).unwrap();
    let m1 = operator::build(&spec(2.0, 0.0), &info(&grid)).unwrap();
    let mut g = vec![0.0; 9 * n];
    assert!(m2.penalty(&affine, &mut g).abs() < 1e-28 && g.iter().all(|v| v.abs() < 1e-15));
    assert_eq!(m1.penalty(&constant, &mut g), 0.0);
    let mut spike = vec![0.0; 9 * n];
    spike[3 * n + 3 * 7 + 3] = 1.0; // one interior cell of one plane
    let (v1, v2) = (m1.penalty(&spike, &mut g), m2.penalty(&spike, &mut g));
    assert!(rel(v1, 2.0 * 4.0 / (9 * n) as f64) <= 1e-15, "{v1}");
    assert!(rel(v2, 2.0 * (2.0 * (1.0 + 4.0 + 1.0)) / (9 * n) as f64) <= 1e-15, "{v2}");
}

#[test]
fn kernel_model_through_scheme_gradients() {
    let grid = VelocityGrid::square(9, 3.0).unwrap();
    let n = grid.n_cells();
    for (param, symmetry, div, clamp) in [
        (KernelParam::Mlp, Symmetry::Transposed, Divergence::Centred, false),
        (KernelParam::Mlp, Symmetry::None, Divergence::Forward, true),
        (KernelParam::Tensor, Symmetry::Transposed, Divergence::Backward, true),
    ] {
        let label = format!("{param:?} {symmetry:?} {div:?} clamp={clamp}");
        let model = operator::build(&ModelSpec { divergence: div, ..kernel_spec(param, symmetry, 3) }, &info(&grid)).unwrap();
        let scheme = KernelScheme::new(&grid, 3, div, clamp, Substeps::Fixed(1)).unwrap();
        let mut theta = model_theta(model.as_ref(), 8);
        if param == KernelParam::Mlp {
            theta.iter_mut().for_each(|t| *t *= 6.0); // coefficients large enough for the clamp to bite
        }
        let (h, steps) = (0.5, 3);
        let f0 = random(n, 9, 0.2, 1.2);
        let w = random(n, 10, -1.0, 1.0);
        let coeffs = model_fields(model.as_ref(), &theta);
        if clamp {
            let (margin, cut) = clamp_margin(&grid, 3, div, &coeffs, h, &rollout(&scheme, &coeffs, h, &f0, steps));
            assert!(cut > 0 && margin > 1e-4, "{label}: {cut} cut, margin {margin}");
        }
        let (_, d_c, _) = loss_and_gradient(&scheme, &coeffs, h, &f0, steps, &w);
        let mut grad = vec![0.0; theta.len()];
        model.node_fields_vjp(&theta, &[], 0, &d_c, &mut grad);
        let u = random(theta.len(), 11, -1.0, 1.0);
        let loss = |eps: f64| {
            let t: Vec<f64> = theta.iter().zip(&u).map(|(t, u)| t + eps * u).collect();
            loss_and_gradient(&scheme, &model_fields(model.as_ref(), &t), h, &f0, steps, &w).0
        };
        let fd = (loss(1e-6) - loss(-1e-6)) / 2e-6;
        assert!(rel(fd, dot(&grad, &u)) <= 1e-6, "{label}: fd {fd} vs {}", dot(&grad, &u));
    }
}

#[test]
fn kernel_bad_specs_are_errors() {
    let square = VelocityGrid::square(8, 3.0).unwrap();
    let oblong = VelocityGrid::new(8, 6, [-3.0, 3.0, -3.0, 3.0], "v_th").unwrap();
    let cases = [
        (kernel_spec(KernelParam::Tensor, Symmetry::None, 4), square.clone()),
        (kernel_spec(KernelParam::Tensor, Symmetry::None, 9), square.clone()),
        (kernel_spec(KernelParam::Tensor, Symmetry::Mirror, 3), square.clone()),
        (kernel_spec(KernelParam::Mlp, Symmetry::Transposed, 3), oblong),
        (ModelSpec { conditioners: vec!["ppc".into()], ..kernel_spec(KernelParam::Mlp, Symmetry::None, 3) }, square.clone()),
        (ModelSpec { nonnegative_d: true, ..kernel_spec(KernelParam::Tensor, Symmetry::None, 3) }, square.clone()),
        (ModelSpec { width: 0, ..kernel_spec(KernelParam::Mlp, Symmetry::None, 3) }, square),
    ];
    for (spec, grid) in cases {
        let msg = KernelModel::new(&spec, &info(&grid)).expect_err("rejected").to_string();
        assert!(msg.starts_with("model: ") && !msg.contains('\n'), "{msg}");
    }
}

#[test]
fn kernel_is_bitwise_identical_for_any_thread_count() {
    let grid = VelocityGrid::square(30, 3.0).unwrap();
    let model = operator::build(&kernel_spec(KernelParam::Mlp, Symmetry::Transposed, 3), &info(&grid)).unwrap();
    let scheme = KernelScheme::new(&grid, 3, Divergence::Centred, true, Substeps::Fixed(1)).unwrap();
    let theta = model_theta(model.as_ref(), 1);
    let f0 = random(grid.n_cells(), 2, 0.0, 1.0);
    let w = random(grid.n_cells(), 3, -1.0, 1.0);
    let run = || {
        let coeffs = model_fields(model.as_ref(), &theta);
        let (loss, d_c, d_f) = loss_and_gradient(&scheme, &coeffs, 0.5, &f0, 3, &w);
        let mut grad = vec![0.0; theta.len()];
        model.node_fields_vjp(&theta, &[], 0, &d_c, &mut grad);
        let mut bits: Vec<u64> = coeffs.iter().map(|v| v.to_bits()).collect();
        bits.push(loss.to_bits());
        bits.extend(d_f.iter().chain(&grad).map(|v| v.to_bits()));
        bits
    };
    let pool = |n: usize| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    assert_eq!(pool(1).install(run), pool(2).install(run));
}

/// Throughput figures (not a timed test): `cargo test --release --test kernel_models bench --
/// --ignored --nocapture` prints JSON.
#[test]
#[ignore = "benchmark"]
fn bench_kernel_scheme_and_mlp_models() {
    use rayon::prelude::*;
    use std::time::Instant;
    let grid = VelocityGrid::square(51, 5.0).unwrap();
    let n = grid.n_cells();
    let (samples, steps, h) = (90, 10, 0.1);
    let best_of = |reps: usize, f: &dyn Fn()| (0..reps).map(|_| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    }).fold(f64::INFINITY, f64::min);
    let scheme = KernelScheme::new(&grid, 3, Divergence::Centred, true, Substeps::Fixed(1)).unwrap();
    let coeffs = random_fields(18, &grid, 1, 0.02);
    let p = prepared(&scheme, &coeffs, h);
    let f0: Vec<Vec<f64>> = (0..samples).map(|s| random(n, 100 + s as u64, 0.0, 1.0)).collect();
    let forward = || {
        f0.par_iter().for_each(|f| {
            let mut ws = scheme.workspace();
            let (mut a, mut b) = (f.clone(), vec![0.0; n]);
            for _ in 0..steps {
                scheme.step(&p, &a, &mut b, &mut ws);
                std::mem::swap(&mut a, &mut b);
            }
        })
    };
    let adjoint = || {
        f0.par_iter().for_each(|f| {
            let mut ws = scheme.workspace();
            let mut states = vec![f.clone()];
            for s in 0..steps {
                let mut next = vec![0.0; n];
                scheme.step(&p, &states[s], &mut next, &mut ws);
                states.push(next);
            }
            let mut d_p = Fields::zeros(p.raw_dim());
            let (mut lam, mut lam_in) = (vec![1.0; n], vec![0.0; n]);
            for s in (0..steps).rev() {
                scheme.step_vjp(&p, &states[s], &lam, &mut lam_in, &mut d_p, &mut ws);
                std::mem::swap(&mut lam, &mut lam_in);
            }
        })
    };
    let cell_steps = (samples * steps * n) as f64;
    let t_fwd = best_of(5, &forward);
    let t_adj = best_of(5, &adjoint);
    let mlp = operator::build(
        &ModelSpec { kind: ModelKind::Mlp, width: 64, depth: 2, activation: Activation::Tanh, ..ModelSpec::default() },
        &info(&grid),
    )
    .unwrap();
    let theta = mlp.init_params(1);
    let w = random_fields(5, &grid, 2, 1.0);
    let t_fields = best_of(5, &|| drop(model_fields(mlp.as_ref(), &theta)));
    let t_vjp = best_of(5, &|| {
        let mut g = vec![0.0; theta.len()];
        mlp.node_fields_vjp(&theta, &[], 0, &w, &mut g);
    });
    println!(
        "{{\"grid\": \"51x51\", \"threads\": {}, \"kernel_k3_forward_cell_steps_per_s\": {:.3e}, \"kernel_k3_forward_adjoint_cell_steps_per_s\": {:.3e}, \"mlp_w64_d2_fields_ms\": {:.3}, \"mlp_w64_d2_fields_vjp_ms\": {:.3}}}",
        rayon::current_num_threads(),
        cell_steps / t_fwd,
        cell_steps / t_adj,
        1e3 * t_fields,
        1e3 * t_vjp
    );
}
