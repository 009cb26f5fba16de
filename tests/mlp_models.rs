//! Gradient, transpose, symmetry and determinism tests of the dense network (`operator::nn`) and the
//! `mlp` / `mlp-conditioned` operator models.

use colop::grid::VelocityGrid;
use colop::operator::mlp::{normalise_conditioners, MlpModel};
use colop::operator::nn::Mlp;
use colop::operator::spec::{Activation, ModelKind, Symmetry};
use colop::operator::{self, fp, BuildInfo, Fields, ModelSpec, OperatorModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ACTIVATIONS: [Activation; 4] = [Activation::Relu, Activation::LeakyRelu, Activation::Tanh, Activation::Silu];

fn random(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| scale * (2.0 * rng.gen::<f64>() - 1.0)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(x: &[f64], a: f64, u: &[f64]) -> Vec<f64> {
    x.iter().zip(u).map(|(x, u)| x + a * u).collect()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-300)
}

/// Central finite difference of `loss` along `u` at `x`, with step `eps`.
fn directional(loss: &dyn Fn(&[f64]) -> f64, x: &[f64], u: &[f64], eps: f64) -> f64 {
    (loss(&axpy(x, eps, u)) - loss(&axpy(x, -eps, u))) / (2.0 * eps)
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

/// Network parameters with non-zero biases, so every code path is exercised.
fn net_params(net: &Mlp, seed: u64) -> Vec<f64> {
    let p = net.init(seed, 1.0);
    axpy(&p, 0.1, &random(p.len(), seed + 1, 1.0))
}

#[test]
fn nn_gradients_match_finite_differences_and_transpose() {
    for (a, &act, depth) in ACTIVATIONS.iter().enumerate().flat_map(|(a, act)| [0, 1, 3].map(move |d| (a, act, d))) {
        let net = Mlp::new(3, 9, depth, 4, act);
        let act = format!("{act:?} depth {depth}");
        let rows = 600; // more than one task and a partial block
        let x = random(rows * 3, 10 + a as u64, 1.0);
        let p = net_params(&net, 20 + a as u64);
        let w = random(rows * 4, 30 + a as u64, 1.0);
        let loss = |p: &[f64]| {
            let mut y = vec![0.0; rows * 4];
            net.forward(p, &x, &mut y);
            dot(&y, &w)
        };
        let mut g = vec![0.0; net.n_params()];
        net.vjp(&p, &x, &w, &mut g);
        // Directional and per-parameter finite differences.
        let u = random(net.n_params(), 40 + a as u64, 1.0);
        let fd = directional(&loss, &p, &u, 1e-6);
        assert!(rel(fd, dot(&g, &u)) <= 1e-6, "{act}: fd {fd} vs {}", dot(&g, &u));
        for q in (0..net.n_params()).step_by(17) {
            let mut e = vec![0.0; net.n_params()];
            e[q] = 1.0;
            let fd = directional(&loss, &p, &e, 1e-6);
            assert!((fd - g[q]).abs() <= 1e-6 * g[q].abs().max(1e-3), "{act} param {q}: fd {fd} vs {}", g[q]);
        }
        // Transpose identity ⟨J u, w⟩ = ⟨u, Jᵀ w⟩ and tangent pass values.
        let (mut y, mut dy, mut y_ref) = (vec![0.0; rows * 4], vec![0.0; rows * 4], vec![0.0; rows * 4]);
        net.jvp(&p, &u, &x, &mut y, &mut dy);
        net.forward(&p, &x, &mut y_ref);
        assert!(y.iter().zip(&y_ref).all(|(a, b)| (a - b).abs() <= 1e-14 * (1.0 + b.abs())));
        let (lhs, rhs) = (dot(&dy, &w), dot(&u, &g));
        assert!(rel(lhs, rhs) <= 1e-12, "{act}: transpose {lhs} vs {rhs}");
    }
}

#[test]
fn nn_init_is_seeded_and_scaled() {
    let net = Mlp::new(2, 64, 2, 5, Activation::Relu);
    assert_eq!(net.init(7, 0.1), net.init(7, 0.1));
    assert_ne!(net.init(7, 0.1), net.init(8, 0.1));
    let p = net.init(7, 1.0);
    // He: first layer weights have variance 2/fan_in = 1.
    let first = &p[..2 * 64];
    let var = first.iter().map(|w| w * w).sum::<f64>() / first.len() as f64;
    assert!((0.6..1.5).contains(&var), "He variance {var}");
    let tanh = Mlp::new(2, 64, 2, 5, Activation::Tanh).init(7, 1.0);
    let var = tanh[..128].iter().map(|w| w * w).sum::<f64>() / 128.0;
    assert!((0.6 * 2.0 / 66.0..1.5 * 2.0 / 66.0).contains(&var), "Xavier variance {var}");
}

#[test]
fn nn_is_bitwise_identical_for_any_thread_count() {
    let net = Mlp::new(4, 16, 3, 5, Activation::Silu);
    let rows = 1500;
    let x = random(rows * 4, 1, 1.0);
    let p = net_params(&net, 2);
    let w = random(rows * 5, 3, 1.0);
    let run = || {
        let mut y = vec![0.0; rows * 5];
        net.forward(&p, &x, &mut y);
        let mut g = vec![0.0; net.n_params()];
        net.vjp(&p, &x, &w, &mut g);
        (y, g)
    };
    let (one, two) = (in_pool(1, run), in_pool(2, run));
    assert!(one.0.iter().zip(&two.0).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(one.1.iter().zip(&two.1).all(|(a, b)| a.to_bits() == b.to_bits()));
}

fn spec(kind: ModelKind, symmetry: Symmetry, activation: Activation, nonnegative_d: bool) -> ModelSpec {
    ModelSpec { kind, symmetry, activation, nonnegative_d, width: 8, depth: 2, ..ModelSpec::default() }
}

fn info(grid: VelocityGrid, cond_ranges: Vec<(f64, f64)>) -> BuildInfo {
    BuildInfo { grid, cond_ranges, t_span: 1.0 }
}

fn fields(model: &dyn OperatorModel, theta: &[f64], cond: &[f64]) -> Fields {
    let g = model.grid();
    let mut out = Fields::zeros((model.n_fields(), g.nx, g.ny));
    model.node_fields(theta, cond, 0, &mut out);
    out
}

/// Finite-difference check of θ ↦ ⟨fields(θ), w⟩ along a random direction and a few coordinates.
fn check_model_gradient(model: &dyn OperatorModel, theta: &[f64], cond: &[f64], label: &str) {
    let g = model.grid();
    let w = Fields::from_shape_vec((model.n_fields(), g.nx, g.ny), random(model.n_fields() * g.n_cells(), 99, 1.0)).unwrap();
    let loss = |t: &[f64]| (&fields(model, t, cond) * &w).sum();
    let mut grad = vec![0.0; model.n_params()];
    model.node_fields_vjp(theta, cond, 0, &w, &mut grad);
    let u = random(theta.len(), 98, 1.0);
    let fd = directional(&loss, theta, &u, 1e-6);
    assert!(rel(fd, dot(&grad, &u)) <= 1e-6, "{label}: fd {fd} vs {}", dot(&grad, &u));
    for q in (0..theta.len()).step_by(23) {
        let mut e = vec![0.0; theta.len()];
        e[q] = 1.0;
        let fd = directional(&loss, theta, &e, 1e-6);
        assert!((fd - grad[q]).abs() <= 1e-6 * grad[q].abs().max(1e-4), "{label} θ[{q}]: fd {fd} vs {}", grad[q]);
    }
}

fn model_theta(model: &dyn OperatorModel, seed: u64) -> Vec<f64> {
    let t = model.init_params(seed);
    axpy(&t, 0.2, &random(t.len(), seed + 5, 1.0))
}

#[test]
fn mlp_gradients_for_every_symmetry_and_activation() {
    let grid = VelocityGrid::square(8, 4.0).unwrap();
    for symmetry in [Symmetry::None, Symmetry::Mirror, Symmetry::Isotropic] {
        for (a, &act) in ACTIVATIONS.iter().enumerate() {
            for nonneg in [false, true] {
                let model = operator::build(&spec(ModelKind::Mlp, symmetry, act, nonneg), &info(grid.clone(), vec![])).unwrap();
                assert_eq!(model.kind(), "mlp");
                let theta = model_theta(model.as_ref(), 3 + a as u64);
                check_model_gradient(model.as_ref(), &theta, &[], &format!("{symmetry:?} {act:?} nonneg={nonneg}"));
            }
        }
    }
}

#[test]
fn mlp_symmetries_hold_on_outputs() {
    let grid = VelocityGrid::square(9, 3.0).unwrap();
    let n = grid.nx;
    for nonneg in [false, true] {
        let m = operator::build(&spec(ModelKind::Mlp, Symmetry::Mirror, Activation::Silu, nonneg), &info(grid.clone(), vec![])).unwrap();
        let f = fields(m.as_ref(), &model_theta(m.as_ref(), 1), &[]);
        let bits = |a: f64, b: f64| a == b; // exact (0 and −0 compare equal)
        for i in 0..n {
            for j in 0..n {
                let mi = n - 1 - i;
                assert!(bits(f[[fp::AX, i, j]], -f[[fp::AX, mi, j]]), "A_x odd in v_x");
                assert!(bits(f[[fp::DXX, i, j]], f[[fp::DXX, mi, j]]), "D_xx even in v_x");
                assert!(bits(f[[fp::DXY, i, j]], -f[[fp::DXY, mi, j]]), "D_xy odd in v_x");
                assert!(bits(f[[fp::AY, i, j]], f[[fp::AX, j, i]]), "A_y = A_xᵀ");
                assert!(bits(f[[fp::DYY, i, j]], f[[fp::DXX, j, i]]), "D_yy = D_xxᵀ");
                if nonneg {
                    assert!(f[[fp::DXX, i, j]] >= 0.0 && f[[fp::DYY, i, j]] >= 0.0);
                }
            }
        }
        assert!(f.iter().any(|v| v.abs() > 1e-6), "non-trivial fields");
    }
    let m = operator::build(&spec(ModelKind::Mlp, Symmetry::Isotropic, Activation::Tanh, true), &info(grid.clone(), vec![])).unwrap();
    let theta = model_theta(m.as_ref(), 2);
    let f = fields(m.as_ref(), &theta, &[]);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-14 * (1.0 + a.abs());
    for i in 0..n {
        for j in 0..n {
            // Swapping v_x and v_y, and reflecting v_x, keep |v|.
            assert!(close(f[[fp::DXX, i, j]], f[[fp::DYY, j, i]]) && close(f[[fp::AX, i, j]], f[[fp::AY, j, i]]));
            assert!(close(f[[fp::AX, i, j]], -f[[fp::AX, n - 1 - i, j]]) || i == n / 2);
            assert!(close(f[[fp::DXY, i, j]], -f[[fp::DXY, n - 1 - i, j]]) || i == n / 2);
            assert!(f[[fp::DXX, i, j]] >= 0.0);
        }
    }
    let exports = m.exports(&theta, &[]);
    let names: Vec<&str> = exports.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["v_radial", "A_par", "D_par", "D_perp"]);
    assert!(exports.iter().all(|(_, a)| a.len() == colop::operator::mlp::PROFILE_POINTS));
}

#[test]
fn conditioned_mlp_gradients_and_inputs() {
    let grid = VelocityGrid::new(8, 6, [-4.0, 4.0, -3.0, 3.0], "v_th").unwrap();
    let ranges = vec![(64.0, 1024.0), (0.5, 0.5)];
    let mut s = spec(ModelKind::MlpConditioned, Symmetry::None, Activation::Tanh, false);
    s.conditioners = vec!["ppc".into(), "shape".into()];
    let cond = normalise_conditioners(&[1024.0, 0.5], &ranges);
    assert_eq!(cond, [1.0, 0.0]);
    assert_eq!(normalise_conditioners(&[64.0, 7.0], &ranges), [-1.0, 0.0]);
    for symmetry in [Symmetry::None, Symmetry::Isotropic] {
        s.symmetry = symmetry;
        let model = operator::build(&s, &info(grid.clone(), ranges.clone())).unwrap();
        assert_eq!(model.kind(), "mlp-conditioned");
        assert_eq!(model.conditioners(), ["ppc", "shape"]);
        let theta = model_theta(model.as_ref(), 4);
        check_model_gradient(model.as_ref(), &theta, &cond, &format!("conditioned {symmetry:?}"));
        check_model_gradient(model.as_ref(), &theta, &[-0.3, 1.7], &format!("conditioned {symmetry:?} extrapolated"));
        // The conditioner really is an input.
        let (a, b) = (fields(model.as_ref(), &theta, &[-1.0, 0.0]), fields(model.as_ref(), &theta, &[1.0, 0.0]));
        assert!((&a - &b).iter().any(|d| d.abs() > 1e-8));
    }
}

#[test]
fn mlp_bad_specs_are_errors() {
    let square = VelocityGrid::square(8, 4.0).unwrap();
    let offset = VelocityGrid::new(8, 8, [-4.0, 5.0, -4.0, 5.0], "v_th").unwrap();
    let oblong = VelocityGrid::new(8, 6, [-4.0, 4.0, -4.0, 4.0], "v_th").unwrap();
    let cases: Vec<(ModelSpec, BuildInfo)> = vec![
        (spec(ModelKind::Mlp, Symmetry::Mirror, Activation::Tanh, false), info(offset, vec![])),
        (spec(ModelKind::Mlp, Symmetry::Mirror, Activation::Tanh, false), info(oblong, vec![])),
        (spec(ModelKind::Mlp, Symmetry::Transposed, Activation::Tanh, false), info(square.clone(), vec![])),
        (ModelSpec { width: 0, ..spec(ModelKind::Mlp, Symmetry::None, Activation::Tanh, false) }, info(square.clone(), vec![])),
        (ModelSpec { conditioners: vec!["ppc".into()], ..spec(ModelKind::Mlp, Symmetry::None, Activation::Tanh, false) }, info(square.clone(), vec![(1.0, 2.0)])),
        (spec(ModelKind::MlpConditioned, Symmetry::None, Activation::Tanh, false), info(square.clone(), vec![])),
        (ModelSpec { conditioners: vec!["ppc".into()], ..spec(ModelKind::MlpConditioned, Symmetry::None, Activation::Tanh, false) }, info(square.clone(), vec![])),
        (ModelSpec { conditioners: vec!["ppc".into()], ..spec(ModelKind::MlpConditioned, Symmetry::None, Activation::Tanh, false) }, info(square.clone(), vec![(2.0, 1.0)])),
        (ModelSpec { conditioners: vec!["a".into(), "a".into()], ..spec(ModelKind::MlpConditioned, Symmetry::None, Activation::Tanh, false) }, info(square, vec![(1.0, 2.0), (1.0, 2.0)])),
    ];
    for (s, i) in cases {
        let err = MlpModel::new(&s, &i).expect_err("must be rejected");
        let msg = err.to_string();
        assert!(msg.starts_with("model: ") && !msg.contains('\n'), "{msg}");
    }
}

#[test]
fn mlp_model_is_bitwise_identical_for_any_thread_count() {
    let grid = VelocityGrid::square(40, 4.0).unwrap(); // 1600 cells: several parallel tasks
    for symmetry in [Symmetry::None, Symmetry::Mirror, Symmetry::Isotropic] {
        let model = operator::build(&spec(ModelKind::Mlp, symmetry, Activation::Relu, true), &info(grid.clone(), vec![])).unwrap();
        let theta = model_theta(model.as_ref(), 5);
        let w = Fields::from_shape_vec((5, 40, 40), random(5 * 1600, 6, 1.0)).unwrap();
        let run = || {
            let f = fields(model.as_ref(), &theta, &[]);
            let mut g = vec![0.0; theta.len()];
            model.node_fields_vjp(&theta, &[], 0, &w, &mut g);
            (f, g)
        };
        let (one, two) = (in_pool(1, run), in_pool(2, run));
        assert!(one.0.iter().zip(two.0.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "{symmetry:?} fields");
        assert!(one.1.iter().zip(&two.1).all(|(a, b)| a.to_bits() == b.to_bits()), "{symmetry:?} gradient");
    }
}
