//! The Fokker–Planck schemes: adjoint transposition, finite-difference gradients of rollouts,
//! hand-computed central steps, conservation and positivity of the conservative scheme.

use colop::grid::VelocityGrid;
use colop::operator::Equation;
use colop::operator::Fields;
use colop::solver::{build, AutoWord, Boundary, Scheme, SchemeKind, SolverSpec, Substeps};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn scheme(kind: SchemeKind, boundary: Boundary, clamp: bool, substeps: Substeps) -> Box<dyn Scheme> {
    let grid = VelocityGrid::new(7, 6, [-3.0, 3.5, -2.0, 2.5], "v_th").unwrap();
    scheme_on(&grid, kind, boundary, clamp, substeps)
}

/// Small grids: 4 rows (the minimum) and 7 columns, where the transposed one-sided Δ1 has an
/// interior column and the transposed Δ2 none.
fn small_scheme(kind: SchemeKind, boundary: Boundary, clamp: bool, substeps: Substeps) -> Box<dyn Scheme> {
    let grid = VelocityGrid::new(4, 7, [-1.0, 1.0, -1.0, 1.5], "v_th").unwrap();
    scheme_on(&grid, kind, boundary, clamp, substeps)
}

fn scheme_on(
    grid: &VelocityGrid,
    kind: SchemeKind,
    boundary: Boundary,
    clamp: bool,
    substeps: Substeps,
) -> Box<dyn Scheme> {
    let spec = SolverSpec { scheme: kind, boundary, clamp_nonnegative: clamp, substeps, ..Default::default() };
    build(&spec, &Equation::FokkerPlanck, grid).unwrap()
}

type Maker = fn(SchemeKind, Boundary, bool, Substeps) -> Box<dyn Scheme>;

const CASES: [(SchemeKind, Boundary); 3] = [
    (SchemeKind::Central, Boundary::Guard),
    (SchemeKind::Central, Boundary::OneSided),
    (SchemeKind::Conservative, Boundary::Guard),
];

fn uniform(rng: &mut ChaCha8Rng, shape: (usize, usize, usize), lo: f64, hi: f64) -> Fields {
    Fields::from_shape_simple_fn(shape, || rng.gen_range(lo..hi))
}

fn vec_uniform(rng: &mut ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Physical coefficients of moderate size: A ~ ±0.4, D_xx, D_yy ∈ [0.05, 0.3], D_xy ~ ±0.1.
fn coeffs(rng: &mut ChaCha8Rng, g: &VelocityGrid) -> Fields {
    let mut c = uniform(rng, (5, g.nx, g.ny), -0.4, 0.4);
    for k in 2..4 {
        c.index_axis_mut(ndarray::Axis(0), k).mapv_inplace(|v| 0.175 + v * 0.3125);
    }
    c.index_axis_mut(ndarray::Axis(0), 4).mapv_inplace(|v| v / 4.0);
    c
}

fn assert_rel(a: f64, b: f64, tol: f64, what: &str) {
    let rel = (a - b).abs() / a.abs().max(b.abs()).max(1e-300);
    assert!(rel <= tol, "{what}: {a:e} vs {b:e}, relative error {rel:e} > {tol:e}");
}

/// ⟨J u, w⟩ = ⟨u, Jᵀ w⟩ for the step wrt f and wrt prepared, every scheme × boundary × clamp.
#[test]
fn step_vjp_is_the_transpose() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (kind, boundary, make) in
        CASES.iter().flat_map(|&(k, b)| [(k, b, scheme as Maker), (k, b, small_scheme as Maker)])
    {
        for clamp in [false, true] {
            let s = make(kind, boundary, clamp, Substeps::Fixed(1));
            let linear = make(kind, boundary, false, Substeps::Fixed(1));
            let g = s.grid().clone();
            let n = g.n_cells();
            let what = format!("{kind:?}/{boundary:?}/clamp={clamp}/{}x{}", g.nx, g.ny);
            let c = coeffs(&mut rng, &g);
            // A large step so that the clamp is active somewhere.
            let mut p = Fields::zeros(s.prepared_shape());
            s.prepare(c.view(), 3.0, p.view_mut());
            let f = vec_uniform(&mut rng, n, 0.0, 1.0);
            let mut ws = s.workspace();
            let mut pre = vec![0.0; n];
            linear.step(&p, &f, &mut pre, &mut linear.workspace());
            let mask: Vec<f64> = pre.iter().map(|&v| if clamp && v < 0.0 { 0.0 } else { 1.0 }).collect();
            if clamp {
                assert!(mask.contains(&0.0), "{what}: clamp never active");
            }
            // wrt f: the pre-clamp step is linear in f.
            let u = vec_uniform(&mut rng, n, -1.0, 1.0);
            let w = vec_uniform(&mut rng, n, -1.0, 1.0);
            let mut ju = vec![0.0; n];
            linear.step(&p, &u, &mut ju, &mut linear.workspace());
            let lhs: f64 = ju.iter().zip(&mask).zip(&w).map(|((a, m), b)| a * m * b).sum();
            let mut lam_in = vec![0.0; n];
            let mut dp = Fields::zeros(p.raw_dim());
            s.step_vjp(&p, &f, &w, &mut lam_in, &mut dp, &mut ws);
            assert_rel(lhs, dot(&u, &lam_in), 1e-12, &format!("{what} wrt f"));
            // wrt prepared: out = f + L(p) f with L linear in p, so J_p v = step(v, f) − f.
            let v = uniform(&mut rng, p.dim(), -1.0, 1.0);
            let mut sv = vec![0.0; n];
            linear.step(&v, &f, &mut sv, &mut linear.workspace());
            let lhs: f64 = (0..n).map(|i| (sv[i] - f[i]) * mask[i] * w[i]).sum();
            assert_rel(lhs, dot(v.as_slice().unwrap(), dp.as_slice().unwrap()), 1e-12, &format!("{what} wrt prepared"));
            // d_prepared accumulates.
            let dp1 = dp.clone();
            s.step_vjp(&p, &f, &w, &mut lam_in, &mut dp, &mut ws);
            assert!(dp.iter().zip(dp1.iter()).all(|(a, b)| *a == 2.0 * b), "{what}: d_prepared must accumulate");
        }
    }
}

/// Forward-mode dual numbers for an independent linearisation of the conservative rates.
#[derive(Clone, Copy, Debug)]
struct Dual(f64, f64);
impl Dual {
    fn max(self, o: Dual) -> Dual {
        if self.0 >= o.0 {
            self
        } else {
            o
        }
    }
    fn abs(self) -> Dual {
        if self.0 >= 0.0 {
            self
        } else {
            Dual(-self.0, -self.1)
        }
    }
    fn add(self, o: Dual) -> Dual {
        Dual(self.0 + o.0, self.1 + o.1)
    }
    fn sub(self, o: Dual) -> Dual {
        Dual(self.0 - o.0, self.1 - o.1)
    }
    fn scale(self, s: f64) -> Dual {
        Dual(self.0 * s, self.1 * s)
    }
}
const ZERO: Dual = Dual(0.0, 0.0);

/// The brief's rates in grid units, written out plainly: `[+x, −x, +y, −y, ++, −−, +−, −+]`.
fn reference_rates(ax: Dual, ay: Dual, dxx: Dual, dyy: Dual, dxy: Dual) -> [Dual; 8] {
    let pd = dxy.max(ZERO).scale(0.5);
    let md = dxy.scale(-1.0).max(ZERO).scale(0.5);
    let bx = dxx.sub(dxy.abs()).scale(0.5).max(ZERO);
    let by = dyy.sub(dxy.abs()).scale(0.5).max(ZERO);
    let rpx = bx.add(ax.scale(0.5)).max(ax.max(ZERO));
    let rmx = bx.sub(ax.scale(0.5)).max(ax.scale(-1.0).max(ZERO));
    let rpy = by.add(ay.scale(0.5)).max(ay.max(ZERO));
    let rmy = by.sub(ay.scale(0.5)).max(ay.scale(-1.0).max(ZERO));
    [rpx, rmx, rpy, rmy, pd, pd, md, md]
}

/// prepare/prepare_vjp transposition; for the conservative scheme also the rates themselves
/// against an independent implementation (values and, with duals, the Jacobian).
#[test]
fn prepare_vjp_is_the_transpose() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for (kind, boundary) in CASES {
        let s = scheme(kind, boundary, false, Substeps::Fixed(1));
        let g = s.grid().clone();
        let h = 0.37;
        // Nasty coefficients: both signs of everything.
        let c = uniform(&mut rng, (5, g.nx, g.ny), -1.0, 1.0);
        let u = uniform(&mut rng, c.dim(), -1.0, 1.0);
        let w = uniform(&mut rng, s.prepared_shape(), -1.0, 1.0);
        let mut p = Fields::zeros(w.dim());
        s.prepare(c.view(), h, p.view_mut());
        let ju = match kind {
            SchemeKind::Central => {
                let mut ju = Fields::zeros(w.dim());
                s.prepare(u.view(), h, ju.view_mut());
                ju
            }
            SchemeKind::Conservative => {
                let (dx, dy) = (g.dvx(), g.dvy());
                let scale = [1.0 / dx, 1.0 / dy, 1.0 / (dx * dx), 1.0 / (dy * dy), 1.0 / (dx * dy)];
                let mut ju = Fields::zeros(w.dim());
                let jumps = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)];
                for i in 0..g.nx {
                    for j in 0..g.ny {
                        let d = |k: usize| Dual(c[[k, i, j]] * scale[k], u[[k, i, j]] * scale[k]);
                        let r = reference_rates(d(0), d(1), d(2), d(3), d(4));
                        for (k, (di, dj)) in jumps.iter().enumerate() {
                            let inside = (0..g.nx as i64).contains(&(i as i64 + di))
                                && (0..g.ny as i64).contains(&(j as i64 + dj));
                            let (val, der) = if inside { (h * r[k].0, h * r[k].1) } else { (0.0, 0.0) };
                            assert!((p[[k, i, j]] - val).abs() <= 1e-14 * val.abs().max(1.0), "rate {k} at ({i},{j})");
                            ju[[k, i, j]] = der;
                        }
                    }
                }
                ju
            }
        };
        let mut jtw = Fields::zeros(c.dim());
        s.prepare_vjp(c.view(), h, w.view(), jtw.view_mut());
        let lhs = dot(ju.as_slice().unwrap(), w.as_slice().unwrap());
        assert_rel(lhs, dot(u.as_slice().unwrap(), jtw.as_slice().unwrap()), 1e-12, &format!("{kind:?} prepare"));
    }
}

/// ½‖f_T − target‖² after `steps` steps from `f0`, and (if asked) its gradient wrt the physical
/// coefficients by the store-all adjoint.
fn rollout_loss(
    s: &dyn Scheme,
    c: &Fields,
    h: f64,
    f0: &[f64],
    target: &[f64],
    steps: usize,
    grad: Option<&mut Fields>,
) -> f64 {
    let mut p = Fields::zeros(s.prepared_shape());
    s.prepare(c.view(), h, p.view_mut());
    let mut ws = s.workspace();
    let mut states = vec![f0.to_vec()];
    for t in 0..steps {
        let mut next = vec![0.0; f0.len()];
        s.step(&p, &states[t], &mut next, &mut ws);
        states.push(next);
    }
    let r: Vec<f64> = states[steps].iter().zip(target).map(|(a, b)| a - b).collect();
    if let Some(grad) = grad {
        let mut lam = r.clone();
        let mut lam_in = vec![0.0; f0.len()];
        let mut dp = Fields::zeros(p.raw_dim());
        for t in (0..steps).rev() {
            s.step_vjp(&p, &states[t], &lam, &mut lam_in, &mut dp, &mut ws);
            std::mem::swap(&mut lam, &mut lam_in);
        }
        s.prepare_vjp(c.view(), h, dp.view(), grad.view_mut());
    }
    0.5 * dot(&r, &r)
}

/// Central finite differences of a 5-step rollout loss agree with the adjoint gradient
/// (directional derivatives along random directions and single entries).
#[test]
fn rollout_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for (kind, boundary) in CASES {
        for clamp in [false, true] {
            let s = scheme(kind, boundary, clamp, Substeps::Fixed(1));
            let g = s.grid().clone();
            let n = g.n_cells();
            let what = format!("{kind:?}/{boundary:?}/clamp={clamp}");
            let c = coeffs(&mut rng, &g);
            // Rough data so the clamp bites; the conservative scheme needs a step beyond its
            // bound for that.
            let h = match (kind, clamp) {
                (SchemeKind::Conservative, true) => 4.0,
                (_, true) => 1.0,
                _ => 0.05,
            };
            let f0: Vec<f64> = vec_uniform(&mut rng, n, -0.3, 1.0).into_iter().map(|v| v.max(0.0)).collect();
            let target = vec_uniform(&mut rng, n, 0.0, 1.0);
            let mut grad = Fields::zeros(c.raw_dim());
            let l = rollout_loss(&*s, &c, h, &f0, &target, 5, Some(&mut grad));
            if clamp {
                let unclamped = scheme(kind, boundary, false, Substeps::Fixed(1));
                let l0 = rollout_loss(&*unclamped, &c, h, &f0, &target, 5, None);
                assert!((l - l0).abs() > 1e-6 * l0, "{what}: clamp never active");
            }
            let loss = |c: &Fields| rollout_loss(&*s, c, h, &f0, &target, 5, None);
            let mut directions: Vec<Fields> = (0..3).map(|_| uniform(&mut rng, c.dim(), -1.0, 1.0)).collect();
            // Single entries: the largest gradient entry of each field (small entries would
            // measure FD rounding, not the adjoint).
            for k in 0..5 {
                let field = grad.index_axis(ndarray::Axis(0), k);
                let (mut best, mut at) = (0.0, (0, 0));
                for ((i, j), v) in field.indexed_iter() {
                    if v.abs() > best {
                        (best, at) = (v.abs(), (i, j));
                    }
                }
                let mut e = Fields::zeros(c.dim());
                e[[k, at.0, at.1]] = 1.0;
                directions.push(e);
            }
            for u in &directions {
                let eps = 1e-6;
                let fd = (loss(&(&c + &(u * eps))) - loss(&(&c - &(u * eps)))) / (2.0 * eps);
                let ad = dot(u.as_slice().unwrap(), grad.as_slice().unwrap());
                let err = (fd - ad).abs() / ad.abs().max(1e-8);
                assert!(err <= 1e-6, "{what}: FD {fd:e} vs adjoint {ad:e} (rel {err:e})");
            }
        }
    }
}

/// The central step written out plainly on nested vectors (δ1 halved, δ2, both orders of
/// the mixed term, guard = zero outside, one-sided second-order edges).
fn reference_central(g: &VelocityGrid, c: &Fields, f: &[Vec<f64>], dt: f64, boundary: Boundary) -> Vec<Vec<f64>> {
    let (nx, ny) = (g.nx, g.ny);
    let at = |u: &[f64], i: isize| if i < 0 || i >= u.len() as isize { 0.0 } else { u[i as usize] };
    let d1 = |u: &[f64]| -> Vec<f64> {
        let n = u.len();
        (0..n)
            .map(|i| match boundary {
                Boundary::OneSided if i == 0 => (-3.0 * u[0] + 4.0 * u[1] - u[2]) / 2.0,
                Boundary::OneSided if i == n - 1 => (3.0 * u[n - 1] - 4.0 * u[n - 2] + u[n - 3]) / 2.0,
                _ => (at(u, i as isize + 1) - at(u, i as isize - 1)) / 2.0,
            })
            .collect()
    };
    let d2 = |u: &[f64]| -> Vec<f64> {
        let n = u.len();
        (0..n)
            .map(|i| match boundary {
                Boundary::OneSided if i == 0 => 2.0 * u[0] - 5.0 * u[1] + 4.0 * u[2] - u[3],
                Boundary::OneSided if i == n - 1 => 2.0 * u[n - 1] - 5.0 * u[n - 2] + 4.0 * u[n - 3] - u[n - 4],
                _ => at(u, i as isize + 1) - 2.0 * u[i] + at(u, i as isize - 1),
            })
            .collect()
    };
    // Apply a 1-D operator along x (over i for each j) or along y (over j for each i).
    let along_x = |op: &dyn Fn(&[f64]) -> Vec<f64>, u: &Vec<Vec<f64>>| -> Vec<Vec<f64>> {
        let mut out = vec![vec![0.0; ny]; nx];
        for j in 0..ny {
            let col: Vec<f64> = (0..nx).map(|i| u[i][j]).collect();
            for (i, v) in op(&col).into_iter().enumerate() {
                out[i][j] = v;
            }
        }
        out
    };
    let along_y =
        |op: &dyn Fn(&[f64]) -> Vec<f64>, u: &Vec<Vec<f64>>| -> Vec<Vec<f64>> { u.iter().map(|r| op(r)).collect() };
    let (dvx, dvy) = (g.dvx(), g.dvy());
    let prod = |k: usize, s: f64| -> Vec<Vec<f64>> {
        (0..nx).map(|i| (0..ny).map(|j| c[[k, i, j]] * s * f[i][j]).collect()).collect()
    };
    let gx = prod(0, 1.0 / dvx);
    let gy = prod(1, 1.0 / dvy);
    let hxx = prod(2, 1.0 / (dvx * dvx));
    let hyy = prod(3, 1.0 / (dvy * dvy));
    let hxy = prod(4, 1.0 / (dvx * dvy));
    let t1 = along_x(&d1, &gx);
    let t2 = along_y(&d1, &gy);
    let t3 = along_x(&d2, &hxx);
    let t4 = along_y(&d2, &hyy);
    let t5 = along_x(&d1, &along_y(&d1, &hxy));
    let t6 = along_y(&d1, &along_x(&d1, &hxy));
    (0..nx)
        .map(|i| {
            (0..ny)
                .map(|j| f[i][j] + dt * (-(t1[i][j] + t2[i][j]) + 0.5 * (t3[i][j] + t4[i][j] + t5[i][j] + t6[i][j])))
                .collect()
        })
        .collect()
}

/// A small hand-written case of the central scheme in each boundary mode, to 1e-14.
#[test]
fn central_step_matches_the_reference_formula() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let grids = [
        VelocityGrid::new(6, 5, [-1.5, 1.5, -1.0, 1.5], "v_th").unwrap(),
        VelocityGrid::new(4, 4, [-1.0, 1.0, -1.0, 0.5], "v_th").unwrap(),
    ];
    for (g, boundary) in grids.iter().flat_map(|g| [(g, Boundary::Guard), (g, Boundary::OneSided)]) {
        for clamp in [false, true] {
            let s = scheme_on(g, SchemeKind::Central, boundary, clamp, Substeps::Fixed(1));
            let c = uniform(&mut rng, (5, g.nx, g.ny), -1.0, 1.0);
            let f: Vec<Vec<f64>> = (0..g.nx).map(|_| vec_uniform(&mut rng, g.ny, 0.0, 1.0)).collect();
            let dt = 0.2;
            let mut want = reference_central(g, &c, &f, dt, boundary);
            if clamp {
                want.iter_mut().flatten().for_each(|v| *v = v.max(0.0));
            }
            let mut p = Fields::zeros(s.prepared_shape());
            s.prepare(c.view(), dt, p.view_mut());
            let flat: Vec<f64> = f.concat();
            let mut out = vec![0.0; g.n_cells()];
            s.step(&p, &flat, &mut out, &mut s.workspace());
            let want = want.concat();
            if clamp {
                assert!(want.contains(&0.0), "clamp not exercised");
            }
            for (k, (a, b)) in out.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 1e-14 * b.abs().max(1.0), "{boundary:?} cell {k}: {a} vs {b}");
            }
        }
    }
}

/// Nasty coefficients for the conservative scheme: negative diffusion, large drifts.
fn nasty(rng: &mut ChaCha8Rng, g: &VelocityGrid) -> Fields {
    let mut c = uniform(rng, (5, g.nx, g.ny), -1.0, 1.0);
    c.index_axis_mut(ndarray::Axis(0), 0).mapv_inplace(|v| 20.0 * v);
    c.index_axis_mut(ndarray::Axis(0), 1).mapv_inplace(|v| 20.0 * v);
    c
}

/// Σf conserved to 1e-13 relative over 1000 steps, f ≥ 0 throughout, without clamp.
#[test]
fn conservative_conserves_mass_and_positivity() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let g = VelocityGrid::square(24, 4.0).unwrap();
    let s = scheme_on(&g, SchemeKind::Conservative, Boundary::Guard, false, Substeps::Auto(AutoWord::Auto));
    let c = nasty(&mut rng, &g);
    let dt = 0.5;
    let n_sub = s.substeps(c.view(), dt);
    assert!(n_sub > 1);
    let h = dt / n_sub as f64;
    let mut p = Fields::zeros(s.prepared_shape());
    s.prepare(c.view(), h, p.view_mut());
    // The bound holds: every cell's total out-weight ≤ 1.
    let worst = (0..g.n_cells())
        .map(|k| (0..8).map(|r| p.as_slice().unwrap()[r * g.n_cells() + k]).sum::<f64>())
        .fold(0.0, f64::max);
    assert!(worst <= 1.0 && worst > 0.5, "h·max out-rate = {worst}");
    let mut f = vec_uniform(&mut rng, g.n_cells(), 0.0, 1.0);
    f[..g.ny].iter_mut().for_each(|v| *v = 0.0); // an empty row
    let mass0: f64 = f.iter().sum();
    let mut next = vec![0.0; f.len()];
    let mut ws = s.workspace();
    for step in 0..1000 {
        s.step(&p, &f, &mut next, &mut ws);
        std::mem::swap(&mut f, &mut next);
        let min = f.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(min >= 0.0, "step {step}: min f = {min:e}");
    }
    let mass: f64 = f.iter().sum();
    assert_rel(mass, mass0, 1e-13, "mass after 1000 steps");
}

/// A shared in-memory log sink for capturing `tracing` output.
#[derive(Clone, Default)]
struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A fixed substep count that breaks the bound warns once per scheme, not per call; `auto`
/// satisfies the bound and does not warn.
#[test]
fn conservative_warns_once_when_bound_violated() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let g = VelocityGrid::square(10, 3.0).unwrap();
    let c = nasty(&mut rng, &g);
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(subscriber, || {
        let auto = scheme_on(&g, SchemeKind::Conservative, Boundary::Guard, false, Substeps::Auto(AutoWord::Auto));
        let n = auto.substeps(c.view(), 1.0);
        assert!(n > 2);
        let fixed = scheme_on(&g, SchemeKind::Conservative, Boundary::Guard, false, Substeps::Fixed(2));
        assert_eq!(fixed.substeps(c.view(), 1.0), 2);
        assert_eq!(fixed.substeps(c.view(), 1.0), 2);
        let ok = scheme_on(&g, SchemeKind::Conservative, Boundary::Guard, false, Substeps::Fixed(n));
        assert_eq!(ok.substeps(c.view(), 1.0), n);
    });
    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert_eq!(log.matches("WARN").count(), 1, "log: {log}");
    assert!(log.contains("substeps"), "log: {log}");
}

/// `auto` substeps of the central scheme satisfy its documented bound, minimally.
#[test]
fn central_auto_substeps() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let g = VelocityGrid::square(12, 3.0).unwrap();
    let s = scheme_on(&g, SchemeKind::Central, Boundary::Guard, true, Substeps::Auto(AutoWord::Auto));
    let c = nasty(&mut rng, &g);
    let (dx, dy) = (g.dvx(), g.dvy());
    let mut rate = 0.0f64;
    for i in 0..g.nx {
        for j in 0..g.ny {
            let r = (c[[0, i, j]] / dx).abs()
                + (c[[1, i, j]] / dy).abs()
                + (c[[2, i, j]] / (dx * dx)).abs()
                + (c[[3, i, j]] / (dy * dy)).abs()
                + (c[[4, i, j]] / (dx * dy)).abs();
            rate = rate.max(r);
        }
    }
    let n = s.substeps(c.view(), 0.7);
    assert!(0.7 / n as f64 * rate <= 0.5 && 0.7 / (n - 1) as f64 * rate > 0.5, "n = {n}");
    let fixed = scheme_on(&g, SchemeKind::Central, Boundary::Guard, true, Substeps::Fixed(3));
    assert_eq!(fixed.substeps(c.view(), 0.7), 3);
}

/// Bad solver configs are errors, not panics.
#[test]
fn build_rejects_bad_specs() {
    let g = VelocityGrid::square(8, 3.0).unwrap();
    let bad = SolverSpec { substeps: Substeps::Fixed(0), ..Default::default() };
    assert!(build(&bad, &Equation::FokkerPlanck, &g).is_err());
    let bad = SolverSpec { scheme: SchemeKind::Conservative, boundary: Boundary::OneSided, ..Default::default() };
    let msg = build(&bad, &Equation::FokkerPlanck, &g).err().unwrap().to_string();
    assert!(msg.contains("one-sided") && !msg.contains('\n'), "{msg}");
}

/// Throughput figures (run with `cargo test --release -- --ignored --nocapture bench`).
#[test]
#[ignore]
fn bench_schemes() {
    let g = VelocityGrid::square(51, 5.0).unwrap();
    // Drag towards the origin, isotropic-ish diffusion with a small cross term.
    let mut c = Fields::zeros((5, g.nx, g.ny));
    for i in 0..g.nx {
        for j in 0..g.ny {
            let (vx, vy) = (g.vx(i), g.vy(j));
            let v2 = vx * vx + vy * vy;
            c[[0, i, j]] = -0.1 * vx;
            c[[1, i, j]] = -0.1 * vy;
            c[[2, i, j]] = 0.1 / (1.0 + v2);
            c[[3, i, j]] = 0.1 / (1.0 + v2);
            c[[4, i, j]] = 0.02 * vx * vy / (1.0 + v2);
        }
    }
    for (kind, boundary) in CASES {
        for clamp in [true, false] {
            let s = scheme_on(&g, kind, boundary, clamp, Substeps::Auto(AutoWord::Auto));
            for steps in [1, 10] {
                let mut r = colop::solver::bench::throughput(&*s, &c, 90, steps, if steps == 1 { 200 } else { 30 }, colop::train::problem::MAX_BUNDLE);
                r["boundary"] = serde_json::json!(format!("{boundary:?}"));
                r["clamp"] = serde_json::json!(clamp);
                println!("{r}");
            }
        }
    }
}
