//! Fokker–Planck operator models: exact VJPs (finite differences and transpose identities) for
//! every kind with and without the non-negativity constraint, mirror parities and isotropy of the
//! output fields, radial interpolation, time nodes and their penalty, and spec validation.

use colop::grid::VelocityGrid;
use colop::operator::fp::{AX, AY, DXX, DXY, DYY};
use colop::operator::fp_model::INITIAL_DIFFUSION;
use colop::operator::spec::ModelKind;
use colop::operator::{build, BuildInfo, Fields, ModelSpec, OperatorModel};

const FP_KINDS: [&str; 5] = ["tensor", "tensor-sym", "par-perp", "tensor-time", "par-perp-time"];

/// Deterministic pseudo-random numbers in [−1, 1) (splitmix64).
fn noise(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

fn info(grid: VelocityGrid) -> BuildInfo {
    BuildInfo { grid, cond_ranges: Vec::new(), t_span: 2.0 }
}

fn spec(yaml: &str) -> ModelSpec {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn model(yaml: &str, grid: &VelocityGrid) -> Box<dyn OperatorModel> {
    build(&spec(yaml), &info(grid.clone())).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn fields_of(m: &dyn OperatorModel, theta: &[f64], node: usize) -> Fields {
    let g = m.grid();
    let mut out = Fields::zeros((m.n_fields(), g.nx, g.ny));
    m.node_fields(theta, &[], node, &mut out);
    out
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Initial parameters plus an O(1) perturbation, so every coefficient is exercised.
fn test_theta(m: &dyn OperatorModel, seed: u64) -> Vec<f64> {
    m.init_params(seed).iter().zip(noise(seed, m.n_params())).map(|(t, r)| t + 0.5 * r).collect()
}

fn grids() -> [VelocityGrid; 2] {
    [VelocityGrid::square(6, 3.0).unwrap(), VelocityGrid::square(7, 2.5).unwrap()]
}

#[test]
fn vjp_matches_finite_differences_and_jvp_transpose() {
    let (mut worst_fd, mut worst_transpose) = (0.0f64, 0.0f64);
    for grid in grids() {
        for kind in FP_KINDS {
            for nonneg in [false, true] {
                let yaml = format!("{{kind: {kind}, nonnegative_d: {nonneg}}}");
                let m = model(&yaml, &grid);
                let theta = test_theta(m.as_ref(), 7);
                for node in 0..m.n_time_nodes() {
                    let w = Fields::from_shape_vec((5, grid.nx, grid.ny), noise(100 + node as u64, 5 * grid.n_cells())).unwrap();
                    let loss = |th: &[f64]| dot(fields_of(m.as_ref(), th, node).as_slice().unwrap(), w.as_slice().unwrap());
                    // VJP accumulates into what is already there.
                    let mut grad = vec![1.0; m.n_params()];
                    m.node_fields_vjp(&theta, &[], node, &w, &mut grad);
                    grad.iter_mut().for_each(|g| *g -= 1.0);
                    // Only this node's block is touched.
                    let p = m.n_params() / m.n_time_nodes();
                    for (i, g) in grad.iter().enumerate() {
                        if i / p != node {
                            assert_eq!(*g, 0.0, "{yaml}: node {node} leaks into parameter {i}");
                        }
                    }
                    for dir in 0..3u64 {
                        let u = noise(1000 + dir, m.n_params());
                        let h = 1e-5;
                        let plus: Vec<f64> = theta.iter().zip(&u).map(|(t, d)| t + h * d).collect();
                        let minus: Vec<f64> = theta.iter().zip(&u).map(|(t, d)| t - h * d).collect();
                        let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
                        let exact = dot(&grad, &u);
                        let rel = (fd - exact).abs() / exact.abs().max(1e-300);
                        assert!(rel <= 1e-6, "{yaml} node {node}: fd {fd} vs vjp {exact} (rel {rel:.2e})");
                        worst_fd = worst_fd.max(rel);
                        // Transpose identity ⟨J u, w⟩ = ⟨u, Jᵀ w⟩.
                        let ju = m.node_fields_jvp(&theta, &[], node, &u).expect("models provide a JVP");
                        let lhs = dot(ju.as_slice().unwrap(), w.as_slice().unwrap());
                        let rel = (lhs - exact).abs() / exact.abs();
                        assert!(rel <= 1e-12, "{yaml} node {node}: <Ju,w> {lhs} vs <u,J^T w> {exact} (rel {rel:.2e})");
                        worst_transpose = worst_transpose.max(rel);
                    }
                }
            }
        }
    }
    eprintln!("worst relative error: finite differences {worst_fd:.1e}, transpose {worst_transpose:.1e}");
}

#[test]
fn nonnegative_d_keeps_diagonal_diffusion_non_negative() {
    for grid in grids() {
        for kind in FP_KINDS {
            let m = model(&format!("{{kind: {kind}, nonnegative_d: true}}"), &grid);
            // Large negative parameters would give negative D without the constraint.
            let theta: Vec<f64> = noise(3, m.n_params()).iter().map(|r| 20.0 * r - 10.0).collect();
            for node in 0..m.n_time_nodes() {
                let f = fields_of(m.as_ref(), &theta, node);
                for c in [DXX, DYY] {
                    let min = f.index_axis(ndarray::Axis(0), c).iter().cloned().fold(f64::INFINITY, f64::min);
                    assert!(min >= 0.0, "{kind}: field {c} has min {min}");
                }
            }
            let free = model(&format!("{{kind: {kind}}}"), &grid);
            let f = fields_of(free.as_ref(), &theta, 0);
            assert!(f.index_axis(ndarray::Axis(0), DXX).iter().any(|v| *v < 0.0), "{kind}: test not sensitive");
        }
    }
}

#[test]
fn initial_operator_is_weak_isotropic_diffusion() {
    let grid = VelocityGrid::square(7, 2.5).unwrap();
    let h2 = grid.dvx() * grid.dvx();
    for kind in FP_KINDS {
        for nonneg in [false, true] {
            let m = model(&format!("{{kind: {kind}, nonnegative_d: {nonneg}}}"), &grid);
            assert_eq!(m.init_params(1), m.init_params(2), "{kind}: init does not depend on the seed");
            let f = m.fields_at(&m.init_params(0), &[], 0.3);
            for (c, want) in [(AX, 0.0), (AY, 0.0), (DXX, INITIAL_DIFFUSION * h2), (DYY, INITIAL_DIFFUSION * h2), (DXY, 0.0)] {
                for v in f.index_axis(ndarray::Axis(0), c) {
                    assert!((v - want).abs() <= 1e-15, "{kind} nonneg {nonneg}: field {c} = {v}, want {want}");
                }
            }
        }
    }
}

/// Every mirror parity of the D4-invariant fields, checked bit for bit.
fn assert_mirror_parities(f: &Fields, n: usize, tol: f64, what: &str) {
    let scale = f.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let close = |a: f64, b: f64, rule: &str, i: usize, j: usize| {
        assert!((a - b).abs() <= tol * scale, "{what}: {rule} fails at ({i},{j}): {a} vs {b}");
    };
    let r = |i: usize| n - 1 - i;
    for i in 0..n {
        for j in 0..n {
            let v = |c: usize, a: usize, b: usize| f[[c, a, b]];
            close(v(AX, r(i), j), -v(AX, i, j), "A_x odd in v_x", i, j);
            close(v(AX, i, r(j)), v(AX, i, j), "A_x even in v_y", i, j);
            close(v(AY, i, j), v(AX, j, i), "A_y = A_x^T", i, j);
            close(v(AY, r(i), j), v(AY, i, j), "A_y even in v_x", i, j);
            close(v(AY, i, r(j)), -v(AY, i, j), "A_y odd in v_y", i, j);
            close(v(DXX, r(i), j), v(DXX, i, j), "D_xx even in v_x", i, j);
            close(v(DXX, i, r(j)), v(DXX, i, j), "D_xx even in v_y", i, j);
            close(v(DYY, i, j), v(DXX, j, i), "D_yy = D_xx^T", i, j);
            close(v(DXY, r(i), j), -v(DXY, i, j), "D_xy odd in v_x", i, j);
            close(v(DXY, i, r(j)), -v(DXY, i, j), "D_xy odd in v_y", i, j);
            close(v(DXY, i, j), v(DXY, j, i), "D_xy = D_xy^T", i, j);
        }
    }
}

#[test]
fn tensor_sym_has_mirror_parities_and_minimal_parameters() {
    // m = ⌈N/2⌉, z = N mod 2, k = m − z: A_x k·m, D_xx m², D_xy k(k+1)/2.
    for (n, n_params) in [(6, 9 + 9 + 6), (7, 12 + 16 + 6), (8, 16 + 16 + 10)] {
        let grid = VelocityGrid::square(n, 3.0).unwrap();
        for nonneg in [false, true] {
            let m = model(&format!("{{kind: tensor-sym, nonnegative_d: {nonneg}}}"), &grid);
            assert_eq!(m.n_params(), n_params, "N = {n}");
            let f = fields_of(m.as_ref(), &test_theta(m.as_ref(), 5), 0);
            assert_mirror_parities(&f, n, 0.0, &format!("tensor-sym N={n}"));
            if n % 2 == 1 {
                let c = n / 2;
                for j in 0..n {
                    assert_eq!(f[[AX, c, j]], 0.0);
                    assert_eq!(f[[AY, j, c]], 0.0);
                    assert_eq!(f[[DXY, c, j]], 0.0);
                    assert_eq!(f[[DXY, j, c]], 0.0);
                }
            }
            // Every field value away from forced zeros moves with some parameter.
            let nonzero = f.iter().filter(|v| **v != 0.0).count();
            let forced = if n % 2 == 1 { n + n + (2 * n - 1) } else { 0 };
            assert_eq!(nonzero, 5 * n * n - forced, "N = {n}");
        }
    }
}

#[test]
fn tensor_sym_rejects_grids_without_mirror_images() {
    for grid in [
        VelocityGrid::new(6, 8, [-3.0, 3.0, -3.0, 3.0], "v_th").unwrap(),
        VelocityGrid::new(6, 6, [-3.0, 3.5, -3.0, 3.0], "v_th").unwrap(),
        VelocityGrid::new(6, 6, [-3.0, 3.0, -2.0, 2.0], "v_th").unwrap(),
    ] {
        let err = build(&spec("{kind: tensor-sym}"), &info(grid)).err().expect("must fail").to_string();
        assert!(err.starts_with("model.kind:") && err.contains("square grid"), "{err}");
        assert!(!err.contains('\n'));
    }
}

/// Physical node profiles for par-perp tests: A_∥(0) = 0 and D_∥(0) = D_⊥(0), as regularity at
/// v = 0 demands, so the fields are D4-invariant even at the origin cell.
fn profiles(r: &[f64], quadratic: bool) -> [Vec<f64>; 3] {
    let p = |f: &dyn Fn(f64) -> f64| r.iter().map(|&x| f(x)).collect::<Vec<_>>();
    if quadratic {
        [p(&|x| -0.3 * x * x), p(&|x| 0.5 + 0.2 * x * x), p(&|x| 0.5 + 0.05 * x * x)]
    } else {
        [p(&|x| -0.4 * x), p(&|x| 0.5 + 0.2 * x), p(&|x| 0.5 + 0.1 * x)]
    }
}

fn par_perp_theta(spec_yaml: &str, grid: &VelocityGrid, quadratic: bool) -> (colop::operator::fp_model::FpModel<colop::operator::radial::RadialMap>, Vec<f64>) {
    let m = colop::operator::radial::build(&spec(spec_yaml), &info(grid.clone())).unwrap();
    let [a, dp, dq] = profiles(&m.map().node_radii(), quadratic);
    let q = m.map().coefficients_from_profiles(&a, &dp, &dq);
    let theta = m.theta_from_coefficients(&q).unwrap();
    (m, theta)
}

#[test]
fn par_perp_reproduces_radial_profiles() {
    for grid in grids() {
        for nonneg in [false, true] {
            let yaml = format!("{{kind: par-perp, nonnegative_d: {nonneg}}}");
            // Default nodes: ⌈N/2⌉ over [0, grid corner].
            let (m, theta) = par_perp_theta(&yaml, &grid, false);
            let radii = m.map().node_radii();
            assert_eq!(radii.len(), grid.nx.div_ceil(2));
            assert_eq!(*radii.last().unwrap(), grid.v_corner());
            // A linear profile is reproduced exactly at every cell centre.
            let f = fields_of(&m, &theta, 0);
            let [a, dp, dq] = [|x: f64| -0.4 * x, |x: f64| 0.5 + 0.2 * x, |x: f64| 0.5 + 0.1 * x];
            for i in 0..grid.nx {
                for j in 0..grid.ny {
                    let (vx, vy) = (grid.vx(i), grid.vy(j));
                    let v = vx.hypot(vy);
                    let (c, s) = if v > 0.0 { (vx / v, vy / v) } else { (0.5f64.sqrt(), 0.5f64.sqrt()) };
                    let want = [
                        a(v) * c,
                        a(v) * s,
                        dp(v) * c * c + dq(v) * s * s,
                        dp(v) * s * s + dq(v) * c * c,
                        (dp(v) - dq(v)) * s * c,
                    ];
                    for (k, w) in want.iter().enumerate() {
                        assert!((f[[k, i, j]] - w).abs() <= 1e-13, "{yaml}: field {k} at ({i},{j}): {} vs {w}", f[[k, i, j]]);
                    }
                }
            }
            // A curved profile: node values exact in the exports, cells linear between nodes.
            let (m, theta) = par_perp_theta(&yaml, &grid, true);
            let exports = m.exports(&theta, &[]);
            let get = |name: &str| exports.iter().find(|(n, _)| n == name).unwrap().1.iter().cloned().collect::<Vec<_>>();
            let want = profiles(&radii, true);
            assert_eq!(get("v_radial"), radii);
            for (name, w) in ["A_par", "D_par", "D_perp"].iter().zip(&want) {
                for (x, y) in get(name).iter().zip(w) {
                    assert!((x - y).abs() <= 1e-15 * y.abs().max(1.0), "{name}: {x} vs {y}");
                }
            }
            let f = fields_of(&m, &theta, 0);
            let spacing = radii[1];
            for i in 0..grid.nx {
                for j in 0..grid.ny {
                    let v = grid.vx(i).hypot(grid.vy(j));
                    let k = ((v / spacing) as usize).min(radii.len() - 2);
                    let t = v / spacing - k as f64;
                    let lerp = |p: &[f64]| (1.0 - t) * p[k] + t * p[k + 1];
                    // Rotation invariants: |A| = |A_∥|, trace D = D_∥ + D_⊥.
                    let speed = f[[AX, i, j]].hypot(f[[AY, i, j]]);
                    assert!((speed - lerp(&want[0]).abs()).abs() <= 1e-13, "|A| at ({i},{j})");
                    let trace = f[[DXX, i, j]] + f[[DYY, i, j]];
                    assert!((trace - lerp(&want[1]) - lerp(&want[2])).abs() <= 1e-13, "trace D at ({i},{j})");
                }
            }
        }
    }
}

#[test]
fn par_perp_clamps_beyond_the_last_node() {
    let grid = VelocityGrid::square(8, 3.0).unwrap();
    let (m, theta) = par_perp_theta("{kind: par-perp, n_radial: 5, v_radial_max: 2.0}", &grid, true);
    let f = fields_of(&m, &theta, 0);
    let last = profiles(&[2.0], true);
    for i in 0..8 {
        for j in 0..8 {
            if grid.vx(i).hypot(grid.vy(j)) >= 2.0 {
                let trace = f[[DXX, i, j]] + f[[DYY, i, j]];
                assert!((trace - last[1][0] - last[2][0]).abs() <= 1e-13);
            }
        }
    }
}

#[test]
fn isotropic_fields_rotate_with_the_grid_and_are_mirror_symmetric() {
    for grid in grids() {
        let n = grid.nx;
        let (m, theta) = par_perp_theta("{kind: par-perp}", &grid, true);
        let f = fields_of(&m, &theta, 0);
        assert_mirror_parities(&f, n, 1e-13, "par-perp");
        // 90° rotation: cell (i, j) at v goes to (N−1−j, i) at Rv; A(Rv) = R A(v), D(Rv) = R D Rᵀ.
        let sym = model("{kind: tensor-sym}", &grid);
        let g = fields_of(sym.as_ref(), &test_theta(sym.as_ref(), 9), 0);
        for (what, f) in [("par-perp", &f), ("tensor-sym", &g)] {
            let scale = f.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            for i in 0..n {
                for j in 0..n {
                    let (ri, rj) = (n - 1 - j, i);
                    let pairs = [
                        (f[[AX, ri, rj]], -f[[AY, i, j]]),
                        (f[[AY, ri, rj]], f[[AX, i, j]]),
                        (f[[DXX, ri, rj]], f[[DYY, i, j]]),
                        (f[[DYY, ri, rj]], f[[DXX, i, j]]),
                        (f[[DXY, ri, rj]], -f[[DXY, i, j]]),
                    ];
                    for (k, (a, b)) in pairs.iter().enumerate() {
                        assert!((a - b).abs() <= 1e-13 * scale, "{what} N={n}: rotated field {k} at ({i},{j}): {a} vs {b}");
                    }
                }
            }
        }
    }
}

#[test]
fn mirror_map_spans_isotropic_fields() {
    // Isotropic fields are D4-invariant, so the mirror map must reproduce them from its
    // coefficients: a cross-check of the parity table against the angular map.
    for grid in grids() {
        let (m, theta) = par_perp_theta("{kind: par-perp}", &grid, true);
        let f = fields_of(&m, &theta, 0);
        let mirror = colop::operator::symmetry::mirror_map(&grid).unwrap();
        let q = mirror.restrict(f.as_slice().unwrap());
        let mut back = vec![0.0; f.len()];
        colop::operator::fp_model::CoefficientMap::apply(&mirror, &q, &mut back);
        let scale = f.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for (a, b) in back.iter().zip(f.iter()) {
            assert!((a - b).abs() <= 1e-13 * scale, "{a} vs {b}");
        }
    }
}

#[test]
fn time_nodes_interpolate_linearly_and_clamp() {
    let grid = VelocityGrid::square(6, 3.0).unwrap();
    for kind in ["tensor-time", "par-perp-time"] {
        for nonneg in [false, true] {
            let m = model(&format!("{{kind: {kind}, n_t: 3, nonnegative_d: {nonneg}}}"), &grid);
            assert_eq!(m.kind(), kind);
            assert_eq!(m.n_time_nodes(), 3);
            let theta = test_theta(m.as_ref(), 11);
            let node: Vec<Fields> = (0..3).map(|s| fields_of(m.as_ref(), &theta, s)).collect();
            assert!(node[0] != node[1] && node[1] != node[2]);
            // t_span = 2: nodes at 0, 1, 2.
            let cases: [(f64, [f64; 3]); 7] = [
                (0.0, [1.0, 0.0, 0.0]),
                (0.5, [0.5, 0.5, 0.0]),
                (1.0, [0.0, 1.0, 0.0]),
                (1.75, [0.0, 0.25, 0.75]),
                (2.0, [0.0, 0.0, 1.0]),
                (-3.0, [1.0, 0.0, 0.0]),
                (9.0, [0.0, 0.0, 1.0]),
            ];
            for (t, w) in cases {
                let weights = m.time_weights(t);
                let total: f64 = weights.iter().map(|nw| nw.weight).sum();
                assert!((total - 1.0).abs() <= 1e-15, "t = {t}");
                let want = &node[0] * w[0] + &node[1] * w[1] + &node[2] * w[2];
                let got = m.fields_at(&theta, &[], t);
                let err = (&got - &want).iter().fold(0.0f64, |a, v| a.max(v.abs()));
                assert!(err <= 1e-15, "{kind} t = {t}: error {err}");
                if w.contains(&1.0) {
                    assert_eq!(weights.len(), 1, "t = {t} sits on a node");
                    assert_eq!(got, want, "exact at nodes and when clamped");
                }
            }
            let exports = m.exports(&theta, &[]);
            let shape = |name: &str| exports.iter().find(|(n, _)| n == name).map(|(_, a)| a.shape().to_vec());
            assert_eq!(shape("t_nodes"), Some(vec![3]));
            assert_eq!(shape("node_fields"), Some(vec![3, 5, 6, 6]));
            if kind == "par-perp-time" {
                assert_eq!(shape("A_par"), Some(vec![3, 3]));
                assert_eq!(shape("v_radial"), Some(vec![3, 3]));
            }
        }
    }
    // One node: constant in time.
    let m = model("{kind: tensor-time, n_t: 1}", &grid);
    assert_eq!(m.n_params(), 5 * 36);
    assert_eq!(m.time_weights(5.0).len(), 1);
}

#[test]
fn smoothness_penalty_value_and_gradient_are_exact() {
    let grid = VelocityGrid::square(5, 2.0).unwrap();
    let m = model("{kind: par-perp-time, n_t: 4, smooth_d1: 0.3, smooth_d2: 0.7}", &grid);
    let p = m.n_params() / 4;
    // Hand-computed: blocks constant c_s → Σ (Δc)² and Σ (Δ²c)², each per parameter mean.
    let c = [1.0, 3.0, 2.0, 5.0];
    let theta: Vec<f64> = c.iter().flat_map(|&v| std::iter::repeat_n(v, p)).collect();
    let mut grad = vec![0.0; theta.len()];
    let value = m.penalty(&theta, &mut grad);
    let want = 0.3 * (4.0 + 1.0 + 9.0) + 0.7 * (9.0 + 16.0);
    assert!((value - want).abs() <= 1e-13 * want, "{value} vs {want}");
    // Gradient against central differences (the penalty is quadratic, so they are exact up to
    // rounding) and accumulated into what is there.
    let theta = noise(21, m.n_params());
    let mut grad = vec![0.5; theta.len()];
    m.penalty(&theta, &mut grad);
    grad.iter_mut().for_each(|g| *g -= 0.5);
    for dir in 0..3 {
        let u = noise(50 + dir, theta.len());
        let h = 1e-3;
        let at = |s: f64| {
            let th: Vec<f64> = theta.iter().zip(&u).map(|(t, d)| t + s * d).collect();
            m.penalty(&th, &mut vec![0.0; th.len()])
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        let exact = dot(&grad, &u);
        assert!((fd - exact).abs() <= 1e-9 * exact.abs(), "fd {fd} vs {exact}");
    }
    // No penalty configured → zero and no gradient.
    let m = model("{kind: tensor-time, n_t: 4}", &grid);
    let mut grad = vec![0.0; m.n_params()];
    assert_eq!(m.penalty(&noise(1, m.n_params()), &mut grad), 0.0);
    assert!(grad.iter().all(|g| *g == 0.0));
}

#[test]
fn time_models_need_a_time_span() {
    let grid = VelocityGrid::square(6, 3.0).unwrap();
    let mut bad = info(grid);
    bad.t_span = 0.0;
    let err = build(&spec("{kind: tensor-time}"), &bad).err().expect("must fail").to_string();
    assert!(err.starts_with("model.n_t:"), "{err}");
    bad.t_span = f64::NAN;
    assert!(build(&spec("{kind: par-perp-time}"), &bad).is_err());
    assert!(build(&spec("{kind: par-perp-time, n_t: 1}"), &bad).is_ok());
}

#[test]
fn spec_rejects_unknown_keys_naming_them() {
    let err = serde_yaml::from_str::<ModelSpec>("{kind: par-perp, n_radail: 4}").unwrap_err().to_string();
    assert!(err.contains("n_radail"), "{err}");
    let err = serde_yaml::from_str::<ModelSpec>("{kind: par-prep}").unwrap_err().to_string();
    assert!(err.contains("par-prep"), "{err}");
}

#[test]
fn validate_rejects_unused_and_impossible_options() {
    let rejected = [
        ("{kind: tensor, n_radial: 8}", "n_radial"),
        ("{kind: tensor-sym, v_radial_max: 3.0}", "v_radial_max"),
        ("{kind: par-perp, n_t: 8}", "n_t"),
        ("{kind: tensor, smooth_d1: 0.1}", "smooth_d1"),
        ("{kind: mlp, smooth_d2: 0.1}", "smooth_d2"),
        ("{kind: tensor, symmetry: mirror}", "symmetry"),
        ("{kind: par-perp, width: 32}", "width"),
        ("{kind: tensor-time, depth: 3}", "depth"),
        ("{kind: kernel, activation: relu}", "activation"),
        ("{kind: mlp, conditioners: [ppc]}", "conditioners"),
        ("{kind: mlp, stencil: 5}", "stencil"),
        ("{kind: par-perp, divergence: forward}", "divergence"),
        ("{kind: tensor, kernel_param: mlp}", "kernel_param"),
        ("{kind: kernel, nonnegative_d: true}", "nonnegative_d"),
        ("{kind: par-perp, n_radial: 1}", "n_radial"),
        ("{kind: par-perp, v_radial_max: -1.0}", "v_radial_max"),
        ("{kind: par-perp, v_radial_max: .nan}", "v_radial_max"),
        ("{kind: tensor-time, n_t: 0}", "n_t"),
        ("{kind: tensor-time, smooth_d1: -1.0}", "smooth_d1"),
        ("{kind: tensor-time, n_t: 1, smooth_d1: 1.0}", "smooth_d1"),
        ("{kind: par-perp-time, n_t: 2, smooth_d2: 1.0}", "smooth_d2"),
        ("{kind: mlp, symmetry: transposed}", "symmetry"),
        ("{kind: kernel, symmetry: isotropic}", "symmetry"),
        ("{kind: mlp, width: 0}", "width"),
        ("{kind: mlp, depth: 0}", "depth"),
        ("{kind: mlp-conditioned}", "conditioners"),
        ("{kind: mlp-conditioned, conditioners: [ppc, ppc]}", "conditioners"),
        ("{kind: mlp-conditioned, conditioners: ['']}", "conditioners"),
        ("{kind: kernel, stencil: 4}", "stencil"),
        ("{kind: tensor, kernel_smooth_d1: 1.0}", "kernel_smooth_d1"),
        ("{kind: par-perp-time, kernel_smooth_d2: 1.0}", "kernel_smooth_d2"),
        ("{kind: kernel, kernel_smooth_d2: -1.0}", "kernel_smooth_d2"),
        ("{kind: kernel, kernel_smooth_d1: .inf}", "kernel_smooth_d1"),
    ];
    for (yaml, key) in rejected {
        let err = spec(yaml).validate().err().unwrap_or_else(|| panic!("{yaml} accepted")).to_string();
        assert!(err.starts_with(&format!("model.{key}:")), "{yaml}: {err}");
        assert!(!err.contains('\n'), "{err}");
        // build() validates too.
        assert!(build(&spec(yaml), &info(VelocityGrid::square(6, 3.0).unwrap())).is_err());
    }
    let accepted = [
        "{}",
        "{kind: tensor, nonnegative_d: true}",
        "{kind: par-perp, n_radial: 12, v_radial_max: 4.0}",
        "{kind: par-perp-time, n_radial: 5, n_t: 6, smooth_d1: 0.1, smooth_d2: 0.2}",
        "{kind: mlp, symmetry: isotropic, width: 32, depth: 3, activation: silu, nonnegative_d: true}",
        "{kind: mlp-conditioned, conditioners: [ppc, v_th]}",
        "{kind: kernel, stencil: 5, divergence: forward, symmetry: transposed}",
        "{kind: kernel, kernel_param: mlp, width: 16}",
        "{kind: kernel, kernel_smooth_d1: 0.5, kernel_smooth_d2: 1.0}",
    ];
    for yaml in accepted {
        spec(yaml).validate().unwrap_or_else(|e| panic!("{yaml}: {e}"));
    }
    for kind in ModelKind::ALL {
        let parsed: ModelKind = serde_yaml::from_str(kind.name()).unwrap();
        assert_eq!(parsed, kind);
    }
}

/// Cost of one node_fields + node_fields_vjp on the 51×51 grid of the benchmarks (run with
/// `--ignored --nocapture`; prints, asserts nothing about time).
#[test]
#[ignore]
fn cost_per_call_51x51() {
    let grid = VelocityGrid::square(51, 5.0).unwrap();
    for kind in FP_KINDS {
        for nonneg in [false, true] {
            let m = model(&format!("{{kind: {kind}, nonnegative_d: {nonneg}}}"), &grid);
            let theta = test_theta(m.as_ref(), 1);
            let w = Fields::from_shape_vec((5, 51, 51), noise(2, 5 * 51 * 51)).unwrap();
            let mut grad = vec![0.0; m.n_params()];
            let reps = 200;
            let start = std::time::Instant::now();
            for _ in 0..reps {
                let f = fields_of(m.as_ref(), &theta, 0);
                m.node_fields_vjp(&theta, &[], 0, &w, &mut grad);
                std::hint::black_box(&f);
            }
            let us = start.elapsed().as_secs_f64() / reps as f64 * 1e6;
            eprintln!("{kind:14} nonneg={nonneg:5} params={:6} fields+vjp {us:7.1} µs", m.n_params());
        }
    }
}
