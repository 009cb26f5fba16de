//! Fokker–Planck operator models on 3D velocity grids: exact VJPs (finite differences on every θ
//! entry for small models, 60 random entries for large ones, and a transpose test against the
//! JVP), the mirror parities exactly (f64 equality) of `tensor-sym` and mirror MLPs, isotropy and
//! regularity at v = 0 of `par-perp` and isotropic MLPs,
//! rotation invariance about b̂ and regularity on the axis of `gyrotropic`,
//! positive semi-definite D under `nonnegative_d` (by eigenvalues), thread-count bitwise
//! invariance, and one-line config errors for impossible 3D settings.

use colop::grid::VelocityGrid;
use colop::operator::fp;
use colop::operator::{build, BuildInfo, Fields, ModelSpec, OperatorModel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand_vec(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn build_on(yaml: &str, grid: &VelocityGrid) -> Result<Box<dyn OperatorModel>, String> {
    let spec: ModelSpec = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    let info = BuildInfo { grid: grid.clone(), cond_ranges: vec![(0.0, 1.0); spec.conditioners.len()], t_span: 2.0 };
    build(&spec, &info).map_err(|e| e.to_string())
}

fn model(yaml: &str, grid: &VelocityGrid) -> Box<dyn OperatorModel> {
    build_on(yaml, grid).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn cond_of(m: &dyn OperatorModel) -> Vec<f64> {
    rand_vec(5, m.conditioners().len(), -1.0, 1.0)
}

fn fields(m: &dyn OperatorModel, theta: &[f64], node: usize) -> Fields {
    let mut out = Fields::zeros(m.grid().fields_shape(m.n_fields()));
    m.node_fields(theta, &cond_of(m), node, &mut out);
    out
}

/// θ near the initial parameters, with every sign in the diffusion pre-activations.
fn theta_of(m: &dyn OperatorModel) -> Vec<f64> {
    let t = m.init_params(3);
    let r = rand_vec(11, t.len(), -0.2, 0.2);
    t.iter().zip(&r).map(|(a, b)| a + b).collect()
}

fn cube7() -> VelocityGrid {
    VelocityGrid::cube(7, 3.0).unwrap()
}

/// A non-cubic grid, symmetric about zero along every axis, with odd and even cell counts.
fn boxy() -> VelocityGrid {
    VelocityGrid::new3(7, 6, 5, [-3.0, 3.0, -2.5, 2.5, -2.0, 2.0], "v_th").unwrap()
}

/// VJP against central finite differences of θ ↦ ⟨w, fields_node(θ)⟩ on `entries` θ entries
/// (all if `None`), and ⟨J u, w⟩ = ⟨u, Jᵀ w⟩ when the model has a JVP.
fn check_vjp(yaml: &str, grid: &VelocityGrid, entries: Option<usize>) {
    let m = model(yaml, grid);
    assert_eq!(m.n_fields(), 9, "{yaml}");
    let theta = theta_of(m.as_ref());
    let cond = cond_of(m.as_ref());
    let shape = grid.fields_shape(9);
    let n_out = 9 * grid.n_cells();
    for node in 0..m.n_time_nodes() {
        let w = Fields::from_shape_vec(shape, rand_vec(21 + node as u64, n_out, -1.0, 1.0)).unwrap();
        let mut grad = vec![0.0; m.n_params()];
        m.node_fields_vjp(&theta, &cond, node, &w, &mut grad);
        let loss = |t: &[f64]| dot(fields(m.as_ref(), t, node).as_slice().unwrap(), w.as_slice().unwrap());
        let idx: Vec<usize> = match entries {
            None => (0..theta.len()).collect(),
            Some(k) => {
                let mut rng = ChaCha8Rng::seed_from_u64(7);
                (0..k).map(|_| rng.gen_range(0..theta.len())).collect()
            }
        };
        let scale = grad.iter().fold(0.0f64, |a, g| a.max(g.abs()));
        assert!(scale > 0.0, "{yaml}: zero gradient");
        for q in idx {
            let h = 1e-5 * theta[q].abs().max(1e-2);
            let (mut tp, mut tm) = (theta.clone(), theta.clone());
            tp[q] += h;
            tm[q] -= h;
            let fd = (loss(&tp) - loss(&tm)) / (2.0 * h);
            assert!((fd - grad[q]).abs() <= 1e-6 * grad[q].abs().max(1e-3 * scale), "{yaml} node {node} θ[{q}]: fd {fd} vs {}", grad[q]);
        }
        let u = rand_vec(31, theta.len(), -1.0, 1.0);
        if let Some(ju) = m.node_fields_jvp(&theta, &cond, node, &u) {
            let (lhs, rhs) = (dot(ju.as_slice().unwrap(), w.as_slice().unwrap()), dot(&u, &grad));
            assert!((lhs - rhs).abs() <= 1e-12 * lhs.abs().max(rhs.abs()), "{yaml}: transpose {lhs} vs {rhs}");
        }
    }
}

#[test]
fn tensor_vjps() {
    check_vjp("{kind: tensor}", &cube7(), Some(60));
    check_vjp("{kind: tensor-sym}", &boxy(), Some(60));
    check_vjp("{kind: tensor-time, n_t: 2}", &cube7(), Some(60));
    check_vjp("{kind: tensor, nonnegative_d: true}", &boxy(), Some(60));
    check_vjp("{kind: tensor-sym, nonnegative_d: true}", &boxy(), Some(60));
    check_vjp("{kind: tensor-time, n_t: 2, nonnegative_d: true}", &cube7(), Some(60));
}

#[test]
fn par_perp_vjps() {
    for yaml in [
        "{kind: par-perp}",
        "{kind: par-perp, nonnegative_d: true, n_radial: 6}",
        "{kind: par-perp, v_radial_max: 2.0}",
        "{kind: par-perp-time, n_t: 3, nonnegative_d: true}",
    ] {
        check_vjp(yaml, &cube7(), None);
        check_vjp(yaml, &boxy(), None);
    }
}

#[test]
fn mlp_vjps() {
    for yaml in [
        "{kind: mlp, width: 6, depth: 2}",
        "{kind: mlp, width: 5, depth: 2, symmetry: mirror}",
        "{kind: mlp, width: 6, depth: 2, symmetry: isotropic, activation: silu}",
        "{kind: mlp, width: 5, depth: 1, symmetry: isotropic, nonnegative_d: true}",
        "{kind: mlp-conditioned, width: 5, depth: 2, conditioners: [a, b]}",
        "{kind: mlp-conditioned, width: 4, depth: 1, symmetry: isotropic, conditioners: [a]}",
    ] {
        check_vjp(yaml, &boxy(), None);
    }
}

/// Index of cell (i, j, k) in C order.
fn at(g: &VelocityGrid, i: usize, j: usize, k: usize) -> usize {
    (i * g.extent(1) + j) * g.extent(2) + k
}

#[test]
fn tensor_sym_parities_are_exact() {
    mirror_parities_are_exact("{kind: tensor-sym}", true);
    mirror_parities_are_exact("{kind: mlp, width: 6, depth: 2, symmetry: mirror}", false);
}

fn mirror_parities_are_exact(yaml: &str, octant_params: bool) {
    let g = boxy();
    let m = model(yaml, &g);
    let theta = if octant_params { rand_vec(4, m.n_params(), -1.0, 1.0) } else { theta_of(m.as_ref()) };
    let f = fields(m.as_ref(), &theta, 0);
    let f = f.as_slice().unwrap();
    let n = g.n_cells();
    let e = g.extents();
    let mut nonzero = 0;
    for i in 0..e[0] {
        for j in 0..e[1] {
            for k in 0..e[2] {
                let c = at(&g, i, j, k);
                for axis in 0..3 {
                    let mut r = [i, j, k];
                    r[axis] = e[axis] - 1 - r[axis];
                    let rc = at(&g, r[0], r[1], r[2]);
                    for a in 0..3 {
                        let s = if a == axis { -1.0 } else { 1.0 };
                        assert_eq!(f[fp::a(a) * n + rc], s * f[fp::a(a) * n + c]);
                        for b in a..3 {
                            let s = if (a == axis) != (b == axis) { -1.0 } else { 1.0 };
                            let d = fp::d(3, a, b);
                            assert_eq!(f[d * n + rc], s * f[d * n + c], "{yaml}: D_{a}{b} at {i},{j},{k} axis {axis}");
                        }
                    }
                }
                nonzero += usize::from(f[fp::d(3, 0, 1) * n + c] != 0.0 && f[fp::a(2) * n + c] != 0.0);
            }
        }
    }
    assert!(nonzero > 0, "{yaml}");
    if octant_params {
        // Fewer parameters than the free tensor: about one octant of it.
        let free = model("{kind: tensor}", &g).n_params();
        assert!(m.n_params() < free / 4 && m.n_params() > free / 16, "{} vs {free}", m.n_params());
    }
}

#[test]
fn par_perp_is_isotropic_and_regular_at_the_origin() {
    let g = cube7();
    let m = model("{kind: par-perp, n_radial: 5}", &g);
    assert_eq!(m.n_params(), 3 * 5 - 2, "A_∥(0) and D_⊥(0) are not free");
    isotropic_and_regular(m.as_ref(), &rand_vec(8, m.n_params(), -1.0, 1.0));
    let ex = m.exports(&rand_vec(8, m.n_params(), -1.0, 1.0), &[]);
    let get = |name: &str| ex.iter().find(|(k, _)| k == name).unwrap().1.as_slice().unwrap().to_vec();
    let (a_par, d_par, d_perp) = (get("A_par"), get("D_par"), get("D_perp"));
    assert_eq!(a_par[0], 0.0);
    assert_eq!(d_par[0], d_perp[0]);
    let m = model("{kind: mlp, width: 6, depth: 2, symmetry: isotropic}", &g);
    isotropic_and_regular(m.as_ref(), &theta_of(m.as_ref()));
}

fn isotropic_and_regular(m: &dyn OperatorModel, theta: &[f64]) {
    let g = m.grid().clone();
    let f = fields(m, theta, 0);
    let f = f.as_slice().unwrap();
    let n = g.n_cells();
    // The centre cell is v = 0: A = 0 and D = D_∥(0)·I, whatever direction is assigned there.
    let c0 = at(&g, 3, 3, 3);
    for a in 0..3 {
        assert_eq!(f[fp::a(a) * n + c0], 0.0);
        assert_eq!(f[fp::d(3, a, a) * n + c0].to_bits(), f[fp::d(3, 0, 0) * n + c0].to_bits());
    }
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        assert_eq!(f[fp::d(3, a, b) * n + c0], 0.0);
    }
    // A ∥ v̂, v̂ an eigenvector of D, and the fields are invariant under the 90° rotation about z,
    // (v_x, v_y, v_z) → (−v_y, v_x, v_z), which maps the cube's cells to cells.
    for i in 0..7 {
        for j in 0..7 {
            for k in 0..7 {
                let c = at(&g, i, j, k);
                let v = [g.centre(0, i), g.centre(1, j), g.centre(2, k)];
                let a = |x: usize| f[fp::a(x) * n + c];
                let cross = [a(1) * v[2] - a(2) * v[1], a(2) * v[0] - a(0) * v[2], a(0) * v[1] - a(1) * v[0]];
                assert!(cross.iter().all(|x| x.abs() < 1e-14), "A not along v at {i},{j},{k}");
                let r = at(&g, 6 - j, i, k);
                let ar = |x: usize| f[fp::a(x) * n + r];
                let d = |x: usize, y: usize| f[fp::d(3, x, y) * n + c];
                let dr = |x: usize, y: usize| f[fp::d(3, x, y) * n + r];
                let close = |x: f64, y: f64| (x - y).abs() <= 1e-14;
                assert!(a(0) != 0.0 || i == 3, "A vanishes off the origin");
                assert!(close(ar(0), -a(1)) && close(ar(1), a(0)) && close(ar(2), a(2)), "A rotation at {i},{j},{k}");
                assert!(close(dr(0, 0), d(1, 1)) && close(dr(1, 1), d(0, 0)) && close(dr(2, 2), d(2, 2)));
                assert!(close(dr(0, 1), -d(0, 1)) && close(dr(0, 2), -d(1, 2)) && close(dr(1, 2), d(0, 2)));
            }
        }
    }
}

/// Eigenvalues of a symmetric 3×3 matrix (trigonometric closed form), ascending.
fn eigenvalues(m: [[f64; 3]; 3]) -> [f64; 3] {
    let p1 = m[0][1] * m[0][1] + m[0][2] * m[0][2] + m[1][2] * m[1][2];
    let q = (m[0][0] + m[1][1] + m[2][2]) / 3.0;
    let p2 = (0..3).map(|i| (m[i][i] - q).powi(2)).sum::<f64>() + 2.0 * p1;
    let p = (p2 / 6.0).sqrt();
    if p == 0.0 {
        return [q; 3];
    }
    let b = |i: usize, j: usize| (m[i][j] - if i == j { q } else { 0.0 }) / p;
    let det = b(0, 0) * (b(1, 1) * b(2, 2) - b(1, 2) * b(2, 1)) - b(0, 1) * (b(1, 0) * b(2, 2) - b(1, 2) * b(2, 0))
        + b(0, 2) * (b(1, 0) * b(2, 1) - b(1, 1) * b(2, 0));
    let phi = (det / 2.0).clamp(-1.0, 1.0).acos() / 3.0;
    let e1 = q + 2.0 * p * phi.cos();
    let e3 = q + 2.0 * p * (phi + 2.0 * std::f64::consts::PI / 3.0).cos();
    [e3, 3.0 * q - e1 - e3, e1]
}

fn min_eigenvalues(f: &Fields, g: &VelocityGrid) -> (f64, f64) {
    let f = f.as_slice().unwrap();
    let n = g.n_cells();
    let (mut lo, mut scale) = (f64::INFINITY, 0.0f64);
    for c in 0..n {
        let d = |a: usize, b: usize| f[fp::d(3, a, b) * n + c];
        let e = eigenvalues([[d(0, 0), d(0, 1), d(0, 2)], [d(0, 1), d(1, 1), d(1, 2)], [d(0, 2), d(1, 2), d(2, 2)]]);
        lo = lo.min(e[0]);
        scale = scale.max(e[2].abs());
    }
    (lo, scale)
}

#[test]
fn nonnegative_d_makes_d_positive_semi_definite() {
    let g = boxy();
    for yaml in [
        "{kind: par-perp, nonnegative_d: true}",
        "{kind: mlp, width: 6, depth: 1, symmetry: isotropic, nonnegative_d: true}",
        "{kind: tensor, nonnegative_d: true}",
        "{kind: tensor-sym, nonnegative_d: true}",
        "{kind: gyrotropic, nonnegative_d: true, axis: [1, 2, 2]}",
        "{kind: gyrotropic, nonnegative_d: true}",
    ] {
        let m = model(yaml, &g);
        // Large negative pre-activations: without the constraint D would be indefinite.
        let theta = rand_vec(9, m.n_params(), -3.0, 1.0);
        let (lo, scale) = min_eigenvalues(&fields(m.as_ref(), &theta, 0), &g);
        assert!(scale > 0.0 && lo >= -1e-14 * scale, "{yaml}: smallest eigenvalue {lo} (largest {scale})");
        let free = model(&yaml.replace(", nonnegative_d: true", ""), &g);
        let (lo, _) = min_eigenvalues(&fields(free.as_ref(), &theta, 0), &g);
        assert!(lo < 0.0, "{yaml}: the unconstrained model should be indefinite here");
    }
}

#[test]
fn three_dimensional_models_are_bitwise_identical_for_any_thread_count() {
    let g = boxy();
    for yaml in [
        "{kind: tensor-sym, nonnegative_d: true}",
        "{kind: par-perp-time, n_t: 2}",
        "{kind: gyrotropic, nonnegative_d: true}",
        "{kind: mlp, width: 8, depth: 2}",
        "{kind: mlp, width: 8, depth: 2, symmetry: mirror}",
        "{kind: mlp, width: 8, depth: 2, symmetry: isotropic}",
    ] {
        let m = model(yaml, &g);
        let theta = theta_of(m.as_ref());
        let w = Fields::from_shape_vec(g.fields_shape(9), rand_vec(2, 9 * g.n_cells(), -1.0, 1.0)).unwrap();
        let run = || {
            let f = fields(m.as_ref(), &theta, 0);
            let mut grad = vec![0.0; m.n_params()];
            m.node_fields_vjp(&theta, &cond_of(m.as_ref()), 0, &w, &mut grad);
            (f.as_slice().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>(), grad.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        let pool = |n: usize| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        assert_eq!(pool(1).install(run), pool(2).install(run), "{yaml}");
    }
}

#[test]
fn impossible_3d_settings_are_one_line_errors() {
    let off = VelocityGrid::new3(6, 6, 6, [-3.0, 3.0, -3.0, 3.0, -1.0, 4.0], "v_th").unwrap();
    let cases = [
        ("{kind: tensor-sym}", &off, "model.kind", "v_z range"),
        ("{kind: kernel}", &cube7(), "model.kind", "3D"),
        ("{kind: mlp, symmetry: mirror}", &off, "model.symmetry", "v_z range"),
        ("{kind: mlp, symmetry: mirror, nonnegative_d: true}", &cube7(), "model.nonnegative_d", "isotropic"),
        ("{kind: mlp, nonnegative_d: true}", &cube7(), "model.nonnegative_d", "isotropic"),
    ];
    for (yaml, grid, key, what) in cases {
        let e = build_on(yaml, grid).err().unwrap_or_else(|| panic!("{yaml} should fail"));
        assert!(e.starts_with(key) && e.contains(what) && !e.contains('\n'), "{yaml}: {e}");
    }
}

#[test]
fn gyrotropic_vjps() {
    for yaml in [
        "{kind: gyrotropic}",
        "{kind: gyrotropic, axis: [1, 2, 2], n_par: 5, n_perp: 4, v_radial_max: 2.5}",
        "{kind: gyrotropic, nonnegative_d: true, axis: [0, 1, 1]}",
    ] {
        check_vjp(yaml, &cube7(), None);
        check_vjp(yaml, &boxy(), None);
    }
}

#[test]
fn gyrotropic_fields_rotate_with_the_axis_and_are_regular_on_it() {
    let g = cube7();
    let m = model("{kind: gyrotropic, n_par: 5, n_perp: 4}", &g);
    // n_par·n_perp nodes for A_b, D_bb, D_ee; n_par·(n_perp − 1) for A_e, D_be, D_tt.
    assert_eq!(m.n_params(), 3 * 20 + 3 * 15);
    let theta = rand_vec(12, m.n_params(), -1.0, 1.0);
    let f = fields(m.as_ref(), &theta, 0);
    let f = f.as_slice().unwrap();
    let n = g.n_cells();
    let mut moved = 0.0f64;
    for i in 0..7 {
        for j in 0..7 {
            for k in 0..7 {
                let c = at(&g, i, j, k);
                let a = |x: usize| f[fp::a(x) * n + c];
                let d = |x: usize, y: usize| f[fp::d(3, x, y) * n + c];
                // The 90° rotation about b̂ = z, (v_x, v_y, v_z) → (−v_y, v_x, v_z).
                let r = at(&g, 6 - j, i, k);
                let ar = |x: usize| f[fp::a(x) * n + r];
                let dr = |x: usize, y: usize| f[fp::d(3, x, y) * n + r];
                let close = |x: f64, y: f64| (x - y).abs() <= 1e-15 * (1.0 + x.abs().max(y.abs()));
                assert!(close(ar(0), -a(1)) && close(ar(1), a(0)) && close(ar(2), a(2)), "A at {i},{j},{k}");
                assert!(close(dr(0, 0), d(1, 1)) && close(dr(1, 1), d(0, 0)) && close(dr(2, 2), d(2, 2)), "D diagonal at {i},{j},{k}");
                assert!(close(dr(0, 1), -d(0, 1)) && close(dr(0, 2), -d(1, 2)) && close(dr(1, 2), d(0, 2)), "D off-diagonal at {i},{j},{k}");
                moved = moved.max((a(0) - ar(0)).abs());
                // On the axis: A ∥ b̂ and D = D_bb b̂b̂ + D_ee(I − b̂b̂), independent of ê there.
                if i == 3 && j == 3 {
                    assert_eq!((a(0), a(1)), (0.0, 0.0));
                    assert_eq!((d(0, 1), d(0, 2), d(1, 2)), (0.0, 0.0, 0.0));
                    assert_eq!(d(0, 0), d(1, 1));
                    assert!(a(2) != 0.0 && d(2, 2) != d(0, 0));
                }
            }
        }
    }
    assert!(moved > 0.0, "the fields are not trivially rotation invariant");
    let ex = m.exports(&theta, &[]);
    let get = |name: &str| ex.iter().find(|(k, _)| k == name).unwrap().1.clone();
    let (ae, dee, dtt) = (get("A_e"), get("D_ee"), get("D_tt"));
    for p in 0..5 {
        assert_eq!(ae[[p, 0]], 0.0);
        assert_eq!(dee[[p, 0]], dtt[[p, 0]]);
    }
}

#[test]
fn gyrotropic_settings_are_checked() {
    let flat = VelocityGrid::square(8, 3.0).unwrap();
    let cases = [
        ("{kind: gyrotropic}", &flat, "model.kind", "3D"),
        ("{kind: gyrotropic, axis: [0, 0, 0]}", &cube7(), "model.axis", "non-zero"),
        ("{kind: gyrotropic, n_perp: 1}", &cube7(), "model.n_perp", "2 nodes"),
        ("{kind: par-perp, axis: [0, 0, 1]}", &cube7(), "model.axis", "not used"),
    ];
    for (yaml, grid, key, what) in cases {
        let e = build_on(yaml, grid).err().unwrap_or_else(|| panic!("{yaml} should fail"));
        assert!(e.starts_with(key) && e.contains(what) && !e.contains('\n'), "{yaml}: {e}");
    }
}
