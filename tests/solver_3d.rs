//! The Fokker–Planck schemes on three-dimensional velocity grids: the central step against an
//! independent, plainly written implementation of the reference formula; adjoint transposition
//! and finite-difference gradients of both schemes; conservation and positivity of the
//! conservative scheme; checkpointed rollout gradients against store-all ones.

use colop::grid::VelocityGrid;
use colop::operator::{fp, Equation, Fields};
use colop::solver::checkpoint::Schedule;
use colop::solver::rollout::{gradient, RolloutWorkspace};
use colop::solver::{build, AutoWord, Boundary, Scheme, SchemeKind, SolverSpec, Substeps};
use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A small non-cubic grid with different spacings per axis.
fn grid() -> VelocityGrid {
    VelocityGrid::new3(6, 5, 7, [-3.0, 3.5, -2.0, 2.5, -2.5, 3.0], "v_th").unwrap()
}

fn scheme_on(g: &VelocityGrid, kind: SchemeKind, boundary: Boundary, clamp: bool, substeps: Substeps) -> Box<dyn Scheme> {
    let spec = SolverSpec { scheme: kind, boundary, clamp_nonnegative: clamp, substeps, ..Default::default() };
    build(&spec, &Equation::FokkerPlanck, g).unwrap()
}

const CASES: [(SchemeKind, Boundary); 3] = [
    (SchemeKind::Central, Boundary::Guard),
    (SchemeKind::Central, Boundary::OneSided),
    (SchemeKind::Conservative, Boundary::Guard),
];

fn vec_uniform(rng: &mut ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

fn uniform(rng: &mut ChaCha8Rng, shape: (usize, usize, usize), lo: f64, hi: f64) -> Fields {
    Fields::from_shape_simple_fn(shape, || rng.gen_range(lo..hi))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn assert_rel(a: f64, b: f64, tol: f64, what: &str) {
    let rel = (a - b).abs() / a.abs().max(b.abs()).max(1e-300);
    assert!(rel <= tol, "{what}: {a:e} vs {b:e}, relative error {rel:e} > {tol:e}");
}

/// Physical coefficients of moderate size: A ~ ±0.4, D_ii ∈ [0.05, 0.3], D_ij ~ ±0.05.
fn coeffs(rng: &mut ChaCha8Rng, g: &VelocityGrid) -> Fields {
    let mut c = uniform(rng, g.fields_shape(9), -0.4, 0.4);
    for k in 3..6 {
        c.index_axis_mut(ndarray::Axis(0), k).mapv_inplace(|v| 0.175 + v * 0.3125);
    }
    for k in 6..9 {
        c.index_axis_mut(ndarray::Axis(0), k).mapv_inplace(|v| v / 8.0);
    }
    c
}

// ---- The reference step, written out plainly -------------------------------------------------

/// The reference's first difference δ1 along `axis` (half the two-cell difference): guard (zero
/// outside) or second-order one-sided at the faces.
fn delta1(u: &Array3<f64>, axis: usize, boundary: Boundary) -> Array3<f64> {
    let n = u.shape()[axis];
    let mut out = Array3::zeros(u.raw_dim());
    for ((i, j, l), o) in out.indexed_iter_mut() {
        let at = |r: isize| -> f64 {
            let mut idx = [i as isize, j as isize, l as isize];
            idx[axis] = r;
            if r < 0 || r >= n as isize {
                0.0
            } else {
                u[[idx[0] as usize, idx[1] as usize, idx[2] as usize]]
            }
        };
        let r = [i, j, l][axis] as isize;
        *o = match boundary {
            Boundary::OneSided if r == 0 => (-3.0 * at(0) + 4.0 * at(1) - at(2)) / 2.0,
            Boundary::OneSided if r == n as isize - 1 => (3.0 * at(r) - 4.0 * at(r - 1) + at(r - 2)) / 2.0,
            _ => (at(r + 1) - at(r - 1)) / 2.0,
        };
    }
    out
}

/// The standard second difference δ2 along `axis`; one-sided faces `2f₀ − 5f₁ + 4f₂ − f₃`.
fn delta2(u: &Array3<f64>, axis: usize, boundary: Boundary) -> Array3<f64> {
    let n = u.shape()[axis];
    let mut out = Array3::zeros(u.raw_dim());
    for ((i, j, l), o) in out.indexed_iter_mut() {
        let at = |r: isize| -> f64 {
            let mut idx = [i as isize, j as isize, l as isize];
            idx[axis] = r;
            if r < 0 || r >= n as isize {
                0.0
            } else {
                u[[idx[0] as usize, idx[1] as usize, idx[2] as usize]]
            }
        };
        let r = [i, j, l][axis] as isize;
        let e = n as isize - 1;
        *o = match boundary {
            Boundary::OneSided if r == 0 => 2.0 * at(0) - 5.0 * at(1) + 4.0 * at(2) - at(3),
            Boundary::OneSided if r == e => 2.0 * at(e) - 5.0 * at(e - 1) + 4.0 * at(e - 2) - at(e - 3),
            _ => at(r + 1) - 2.0 * at(r) + at(r - 1),
        };
    }
    out
}

/// `f + h·(−Σ_i δ1_i(A_i f) + ½[Σ_i δ2_i(D_ii f) + Σ_{i<j} (δ1_iδ1_j + δ1_jδ1_i)(D_ij f)])` in
/// grid units (A_i/Δv_i, D_ij/(Δv_iΔv_j)), optionally clamped at 0.
fn reference_step(g: &VelocityGrid, c: &Fields, f: &Array3<f64>, h: f64, boundary: Boundary, clamp: bool) -> Array3<f64> {
    let shape = (g.nx, g.ny, g.nz());
    let field = |k: usize, scale: f64| -> Array3<f64> {
        Array3::from_shape_vec(shape, c.index_axis(ndarray::Axis(0), k).iter().map(|v| v * scale).collect()).unwrap()
    };
    let dv = [g.dv(0), g.dv(1), g.dv(2)];
    let a_names = [fp::a(0), fp::a(1), fp::a(2)];
    let mut rhs = Array3::<f64>::zeros(shape);
    for i in 0..3 {
        let af = field(a_names[i], 1.0 / dv[i]) * f;
        rhs = rhs - delta1(&af, i, boundary);
    }
    let mut diff = Array3::<f64>::zeros(shape);
    for (i, dvi) in dv.iter().enumerate() {
        let df = field(fp::d(3, i, i), 1.0 / (dvi * dvi)) * f;
        diff = diff + delta2(&df, i, boundary);
    }
    for i in 0..3 {
        for j in i + 1..3 {
            let df = field(fp::d(3, i, j), 1.0 / (dv[i] * dv[j])) * f;
            let ij = delta1(&delta1(&df, j, boundary), i, boundary);
            let ji = delta1(&delta1(&df, i, boundary), j, boundary);
            diff = diff + ij + ji;
        }
    }
    let mut out = f + &((rhs + diff * 0.5) * h);
    if clamp {
        out.mapv_inplace(|v| v.max(0.0));
    }
    out
}

/// The central 3D step equals the plainly written reference to 1e-12 relative (of the largest
/// |f|), guard and one-sided edges, clamp on and off, over several steps.
#[test]
fn central_3d_step_matches_the_reference_formula() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let g = grid();
    let n = g.n_cells();
    for boundary in [Boundary::Guard, Boundary::OneSided] {
        for clamp in [false, true] {
            let s = scheme_on(&g, SchemeKind::Central, boundary, clamp, Substeps::Fixed(1));
            let c = coeffs(&mut rng, &g);
            // A large step, so the clamp bites.
            let h = if clamp { 1.5 } else { 0.2 };
            let mut p = Fields::zeros(s.prepared_shape());
            s.prepare(c.view(), h, p.view_mut());
            let mut f = vec_uniform(&mut rng, n, 0.0, 1.0);
            let mut want = Array3::from_shape_vec((g.nx, g.ny, g.nz()), f.clone()).unwrap();
            let mut ws = s.workspace();
            let mut clamped = false;
            for step in 0..3 {
                let mut out = vec![0.0; n];
                s.step(&p, &f, &mut out, &mut ws);
                let unclamped = reference_step(&g, &c, &want, h, boundary, false);
                clamped |= unclamped.iter().any(|&v| v < 0.0);
                want = reference_step(&g, &c, &want, h, boundary, clamp);
                let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let err = out.iter().zip(want.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                assert!(err <= 1e-12 * scale, "{boundary:?} clamp={clamp} step {step}: max error {err:e} (scale {scale:e})");
                f = out;
            }
            if clamp {
                assert!(clamped, "{boundary:?}: clamp never active");
            }
        }
    }
}

/// ⟨J u, w⟩ = ⟨u, Jᵀ w⟩ for the step wrt f and wrt prepared, and for `prepare`, every scheme ×
/// boundary × clamp, to 1e-12.
#[test]
fn adjoints_3d_are_transposes() {
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    let g = grid();
    let n = g.n_cells();
    for (kind, boundary) in CASES {
        for clamp in [false, true] {
            let s = scheme_on(&g, kind, boundary, clamp, Substeps::Fixed(1));
            let linear = scheme_on(&g, kind, boundary, false, Substeps::Fixed(1));
            let what = format!("{kind:?}/{boundary:?}/clamp={clamp}");
            let c = coeffs(&mut rng, &g);
            let mut p = Fields::zeros(s.prepared_shape());
            s.prepare(c.view(), 3.0, p.view_mut());
            let f = vec_uniform(&mut rng, n, 0.0, 1.0);
            let mut pre = vec![0.0; n];
            linear.step(&p, &f, &mut pre, &mut linear.workspace());
            let mask: Vec<f64> = pre.iter().map(|&v| if clamp && v < 0.0 { 0.0 } else { 1.0 }).collect();
            if clamp {
                assert!(mask.contains(&0.0), "{what}: clamp never active");
            }
            let (u, w) = (vec_uniform(&mut rng, n, -1.0, 1.0), vec_uniform(&mut rng, n, -1.0, 1.0));
            let mut ju = vec![0.0; n];
            linear.step(&p, &u, &mut ju, &mut linear.workspace());
            let lhs: f64 = ju.iter().zip(&mask).zip(&w).map(|((a, m), b)| a * m * b).sum();
            let (mut lam_in, mut dp) = (vec![0.0; n], Fields::zeros(p.raw_dim()));
            s.step_vjp(&p, &f, &w, &mut lam_in, &mut dp, &mut s.workspace());
            assert_rel(lhs, dot(&u, &lam_in), 1e-12, &format!("{what} wrt f"));
            // out = f + L(p) f with L linear in p, so J_p v = step(v, f) − f.
            let v = uniform(&mut rng, p.dim(), -1.0, 1.0);
            let mut sv = vec![0.0; n];
            linear.step(&v, &f, &mut sv, &mut linear.workspace());
            let lhs: f64 = (0..n).map(|i| (sv[i] - f[i]) * mask[i] * w[i]).sum();
            assert_rel(lhs, dot(v.as_slice().unwrap(), dp.as_slice().unwrap()), 1e-12, &format!("{what} wrt prepared"));
        }
        // prepare: linear (central); for the conservative scheme its linearisation by dual
        // numbers through an independent implementation of the rates.
        let s = scheme_on(&g, kind, boundary, false, Substeps::Fixed(1));
        let h = 0.37;
        let c = uniform(&mut rng, g.fields_shape(9), -1.0, 1.0);
        let u = uniform(&mut rng, c.dim(), -1.0, 1.0);
        let w = uniform(&mut rng, s.prepared_shape(), -1.0, 1.0);
        let mut p = Fields::zeros(w.dim());
        s.prepare(c.view(), h, p.view_mut());
        let mut ju = Fields::zeros(w.dim());
        match kind {
            SchemeKind::Central => s.prepare(u.view(), h, ju.view_mut()),
            SchemeKind::Conservative => {
                let scale = colop::solver::stencil::grid_unit_scales(&g);
                let jumps = colop::solver::conservative::jumps(3);
                let (cs, us) = (c.as_slice().unwrap(), u.as_slice().unwrap());
                let (ps, js) = (p.as_slice().unwrap(), ju.as_slice_mut().unwrap());
                let ext = [g.nx as isize, g.ny as isize, g.nz() as isize];
                for cell in 0..n {
                    let idx = [(cell / (g.ny * g.nz())) as isize, (cell / g.nz() % g.ny) as isize, (cell % g.nz()) as isize];
                    let d: Vec<Dual> = (0..9).map(|k| Dual(cs[k * n + cell] * scale[k], us[k * n + cell] * scale[k])).collect();
                    let r = reference_rates_3d(&d);
                    for (k, o) in jumps.iter().enumerate() {
                        let inside = (0..3).all(|a| (0..ext[a]).contains(&(idx[a] + o[a])));
                        let (val, der) = if inside { (h * r[k].0, h * r[k].1) } else { (0.0, 0.0) };
                        assert!((ps[k * n + cell] - val).abs() <= 1e-14 * val.abs().max(1.0), "rate {k} at cell {cell}");
                        js[k * n + cell] = der;
                    }
                }
            }
        }
        let mut jtw = Fields::zeros(c.dim());
        s.prepare_vjp(c.view(), h, w.view(), jtw.view_mut());
        let lhs = dot(ju.as_slice().unwrap(), w.as_slice().unwrap());
        assert_rel(lhs, dot(u.as_slice().unwrap(), jtw.as_slice().unwrap()), 1e-12, &format!("{kind:?} prepare"));
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

/// The 3D jump rates written out plainly from grid-unit `[Ax, Ay, Az, Dxx, Dyy, Dzz, Dxy, Dxz,
/// Dyz]`: `±x, ±y, ±z`, then `++, −−, +−, −+` of xy, xz, yz.
fn reference_rates_3d(c: &[Dual]) -> Vec<Dual> {
    let (a, dd, off) = (&c[0..3], &c[3..6], &c[6..9]);
    // Off-diagonal touching axis i: xy (0), xz (1), yz (2).
    let touching = [[0, 1], [0, 2], [1, 2]];
    let mut r = Vec::new();
    for i in 0..3 {
        let b = dd[i].sub(off[touching[i][0]].abs()).sub(off[touching[i][1]].abs()).scale(0.5).max(ZERO);
        r.push(b.add(a[i].scale(0.5)).max(a[i].max(ZERO)));
        r.push(b.sub(a[i].scale(0.5)).max(a[i].scale(-1.0).max(ZERO)));
    }
    for d in off {
        let pd = d.max(ZERO).scale(0.5);
        let md = d.scale(-1.0).max(ZERO).scale(0.5);
        r.extend([pd, pd, md, md]);
    }
    r
}

/// The conservative 3D rates reproduce the drift and diffusion: Σ_k r_k o_k = Â and
/// Σ_k r_k o_k o_kᵀ = D̂ wherever every axial rate is in its central branch.
#[test]
fn conservative_3d_rates_have_the_right_moments() {
    let mut rng = ChaCha8Rng::seed_from_u64(33);
    let jumps = colop::solver::conservative::jumps(3);
    let mut r = vec![0.0; jumps.len()];
    for _ in 0..200 {
        let mut c = vec_uniform(&mut rng, 9, -0.2, 0.2);
        c[3..6].iter_mut().for_each(|v| *v += 1.0);
        colop::solver::conservative::rates(3, &c, &mut r);
        assert!(r.iter().all(|&v| v >= 0.0));
        for a in 0..3 {
            let mean: f64 = r.iter().zip(&jumps).map(|(r, o)| r * o[a] as f64).sum();
            assert!((mean - c[fp::a(a)]).abs() < 1e-14, "drift {a}");
            for b in 0..3 {
                let m2: f64 = r.iter().zip(&jumps).map(|(r, o)| r * (o[a] * o[b]) as f64).sum();
                assert!((m2 - c[fp::d(3, a, b)]).abs() < 1e-14, "diffusion {a}{b}");
            }
        }
    }
}

/// ½‖f_T − target‖² after `steps` steps and its gradient wrt the physical coefficients through
/// a checkpointed rollout with `slots` checkpoints (store-all if `None`).
fn rollout(s: &dyn Scheme, c: &Fields, h: f64, f0: &[f64], target: &[f64], steps: usize, slots: Option<usize>) -> (f64, Fields, Vec<f64>) {
    let mut p = Fields::zeros(s.prepared_shape());
    s.prepare(c.view(), h, p.view_mut());
    let mut dp = vec![Fields::zeros(p.raw_dim())];
    let schedule = match slots {
        Some(k) => Schedule::binomial(steps, k),
        None => Schedule::store_all(steps),
    };
    let mut ws = RolloutWorkspace::new(s);
    let stats = gradient(s, &vec![&p; steps], &vec![0; steps], &mut dp, 1, f0, &schedule, &mut ws, |k, f, lam| {
        if k < steps {
            return 0.0;
        }
        let mut l = 0.0;
        for ((lam, f), t) in lam.iter_mut().zip(f).zip(target) {
            *lam += f - t;
            l += 0.5 * (f - t) * (f - t);
        }
        l
    });
    if let Some(k) = slots {
        assert!(stats.peak_live_states <= k);
        assert!(k >= steps - 1 || stats.recomputed_steps > 0, "a checkpointed rollout recomputes");
    }
    let mut grad = Fields::zeros(c.raw_dim());
    s.prepare_vjp(c.view(), h, dp[0].view(), grad.view_mut());
    (stats.loss, grad, ws.d_initial().to_vec())
}

/// Rollout gradients by central finite differences (≤ 1e-6 relative) for both schemes, clamp on
/// and off; checkpointed gradients bitwise equal to store-all ones.
#[test]
fn rollout_3d_gradients_match_finite_differences_and_checkpointing() {
    let mut rng = ChaCha8Rng::seed_from_u64(34);
    let g = grid();
    let n = g.n_cells();
    let steps = 4;
    for (kind, boundary) in CASES {
        for clamp in [false, true] {
            let s = scheme_on(&g, kind, boundary, clamp, Substeps::Fixed(1));
            let what = format!("{kind:?}/{boundary:?}/clamp={clamp}");
            let c = coeffs(&mut rng, &g);
            let h = match (kind, clamp) {
                (SchemeKind::Conservative, true) => 2.0,
                (_, true) => 0.8,
                _ => 0.05,
            };
            // Strictly positive, so no state sits exactly on the clamp's kink (a cell and all its
            // neighbours at 0).
            let f0 = vec_uniform(&mut rng, n, 0.05, 1.0);
            let target = vec_uniform(&mut rng, n, 0.0, 1.0);
            let (l, grad, d_f0) = rollout(&*s, &c, h, &f0, &target, steps, None);
            for slots in [1, 2, 3] {
                let (lc, gc, dc) = rollout(&*s, &c, h, &f0, &target, steps, Some(slots));
                assert_eq!(l.to_bits(), lc.to_bits(), "{what}: loss with {slots} checkpoints");
                assert!(grad.iter().zip(gc.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}: gradient with {slots} checkpoints");
                assert!(d_f0.iter().zip(&dc).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}: ∂L/∂f0 with {slots} checkpoints");
            }
            if clamp {
                let unclamped = scheme_on(&g, kind, boundary, false, Substeps::Fixed(1));
                let (l0, _, _) = rollout(&*unclamped, &c, h, &f0, &target, steps, None);
                assert!((l - l0).abs() > 1e-6 * l0, "{what}: clamp never active");
            }
            let loss = |c: &Fields| rollout(&*s, c, h, &f0, &target, steps, Some(2)).0;
            let mut directions: Vec<Fields> = (0..2).map(|_| uniform(&mut rng, c.dim(), -1.0, 1.0)).collect();
            // The largest gradient entry of each field.
            for k in 0..9 {
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
            // Central differences with step 1e-6, or 1e-7 where the larger step straddles a kink
            // of the clamp or of the rates' branches (the loss is only piecewise smooth).
            let fd = |l: &dyn Fn(f64) -> f64| -> [f64; 2] { [1e-6, 1e-7].map(|eps| (l(eps) - l(-eps)) / (2.0 * eps)) };
            for (di, u) in directions.iter().enumerate() {
                let fds = fd(&|eps| loss(&(&c + &(u * eps))));
                let ad = dot(u.as_slice().unwrap(), grad.as_slice().unwrap());
                let err = fds.map(|fd| (fd - ad).abs() / ad.abs().max(1e-8));
                assert!(err[0].min(err[1]) <= 1e-6, "{what}: direction {di}: FD {fds:?} vs adjoint {ad:e} (rel {err:?})");
            }
            // ∂L/∂f0 along a random direction.
            let du = vec_uniform(&mut rng, n, -1.0, 1.0);
            let lf = |eps: f64| {
                let f: Vec<f64> = f0.iter().zip(&du).map(|(a, b)| a + eps * b).collect();
                rollout(&*s, &c, h, &f, &target, steps, Some(2)).0
            };
            let (fds, ad) = (fd(&lf), dot(&du, &d_f0));
            let err = fds.map(|fd| (fd - ad).abs() / ad.abs().max(1e-8));
            assert!(err[0].min(err[1]) <= 1e-6, "{what}: ∂L/∂f0 FD {fds:?} vs {ad:e}");
        }
    }
}

/// Σf conserved to 1e-13 relative over 300 steps, f ≥ 0 throughout without clamp, under the
/// `auto` step bound with strong drift and cross diffusion of both signs.
#[test]
fn conservative_3d_conserves_mass_and_positivity() {
    let mut rng = ChaCha8Rng::seed_from_u64(35);
    let g = VelocityGrid::cube(10, 4.0).unwrap();
    let s = scheme_on(&g, SchemeKind::Conservative, Boundary::Guard, false, Substeps::Auto(AutoWord::Auto));
    let mut c = uniform(&mut rng, g.fields_shape(9), -1.0, 1.0);
    for k in 0..3 {
        c.index_axis_mut(ndarray::Axis(0), k).mapv_inplace(|v| 20.0 * v);
    }
    let dt = 0.5;
    let n_sub = s.substeps(c.view(), dt);
    assert!(n_sub > 1);
    let h = dt / n_sub as f64;
    let mut p = Fields::zeros(s.prepared_shape());
    s.prepare(c.view(), h, p.view_mut());
    let n = g.n_cells();
    let nj = s.n_prepared();
    assert_eq!(nj, 18);
    let worst = (0..n).map(|k| (0..nj).map(|r| p.as_slice().unwrap()[r * n + k]).sum::<f64>()).fold(0.0, f64::max);
    assert!(worst <= 1.0 && worst > 0.5, "h·max out-rate = {worst}");
    let mut f = vec_uniform(&mut rng, n, 0.0, 1.0);
    f[..g.ny * g.nz()].iter_mut().for_each(|v| *v = 0.0); // an empty plane
    let mass0: f64 = f.iter().sum();
    let mut next = vec![0.0; n];
    let mut ws = s.workspace();
    for step in 0..300 {
        s.step(&p, &f, &mut next, &mut ws);
        std::mem::swap(&mut f, &mut next);
        let min = f.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(min >= 0.0, "step {step}: min f = {min:e}");
    }
    assert_rel(f.iter().sum(), mass0, 1e-13, "mass after 300 steps");
    // Mass moved: the empty plane filled.
    assert!(f[..g.ny * g.nz()].iter().sum::<f64>() > 1e-3);
}
