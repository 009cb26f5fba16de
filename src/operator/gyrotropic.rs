//! The `gyrotropic` model (3D grids): coefficients that are functions of (v_∥, v_⊥) about a
//! configured unit axis b̂ — the collision operator of a magnetised plasma.
//!
//! With v_∥ = v·b̂, v_⊥ = |v − v_∥b̂|, ê = (v − v_∥b̂)/v_⊥ and t̂ = b̂ × ê (a right-handed
//! frame at every cell):
//!
//! A = A_b b̂ + A_e ê,
//! D = D_bb b̂b̂ + D_ee êê + D_be (b̂ê + êb̂) + D_tt t̂t̂.
//!
//! **The allowed set.** These are the fields invariant under every rotation about b̂ *and* every
//! reflection in a plane containing b̂ (the symmetry group C∞v of a gyrophase-averaged operator):
//! a reflection through the plane of b̂ and v keeps b̂ and ê and flips t̂, so it forbids the
//! azimuthal drift A_t t̂ and the mixed diffusions b̂t̂ + t̂b̂, êt̂ + t̂ê, which rotations alone
//! would allow. Six functions of (v_∥, v_⊥) remain.
//!
//! **Regular at v_⊥ = 0 by construction.** On the axis ê is undefined; the fields there must not
//! depend on it, so A_e(v_∥, 0) = 0, D_be(v_∥, 0) = 0 and D_tt(v_∥, 0) = D_ee(v_∥, 0) (then
//! D = D_bb b̂b̂ + D_ee(I − b̂b̂) on the axis). These are built into the layout: the v_⊥ = 0 nodes
//! of A_e, D_be and D_tt are not parameters (0, 0 and D_ee's node).
//!
//! **Nodes.** n_par nodes over v_∥ ∈ [−V, V] and n_perp over v_⊥ ∈ [0, V] (V = `v_radial_max`,
//! default the grid corner; defaults n_par = ⌈max N/2⌉, n_perp = ⌈max N/4⌉ + 1), bilinear
//! interpolation to the cell centres (cells beyond V take the edge nodes' values). Node (p, q)
//! is `p·n_perp + q`. Coefficient blocks, in grid units of Δv = (Δv_xΔv_yΔv_z)^(1/3)
//! (A = Δv·q, D = Δv²·q): A_b (all nodes), A_e (q ≥ 1), D_be (q ≥ 1), D_bb (all), D_ee (all),
//! D_tt (q ≥ 1).
//!
//! **`nonnegative_d`** makes every node's D PSD in the (b̂, ê, t̂) frame by a Cholesky-like
//! product ([`super::constraint::Cholesky`]): the parameters at a node's D_bb, D_be, D_ee, D_tt
//! slots are L_00, L_10, L_11, L_22 and [[D_bb, D_be], [D_be, D_ee]] = L Lᵀ, D_tt = L_22²
//! (on the axis D_bb = L_00², D_ee = D_tt = L_11²). Bilinear weights are non-negative, so each
//! cell's D is PSD too.

use super::fp;
use super::constraint::Block3;
use super::fp_model::{CoefficientMap, FpModel, INITIAL_DIFFUSION};
use super::{BuildInfo, ModelError, ModelSpec};
use crate::grid::VelocityGrid;
use ndarray::{ArrayD, IxDyn};
use std::ops::Range;

/// (v_∥, v_⊥) nodes → Cartesian fields.
#[derive(Clone, Debug)]
pub struct GyroMap {
    n_par: usize,
    n_perp: usize,
    v_max: f64,
    b: [f64; 3],
    /// Per cell: ê (an arbitrary unit vector ⊥ b̂ on the axis) and t̂ = b̂ × ê.
    e: Vec<[f64; 3]>,
    t: Vec<[f64; 3]>,
    /// Per cell: lower v_∥ node and upper weight, lower v_⊥ node and upper weight.
    ip: Vec<(usize, f64)>,
    iq: Vec<(usize, f64)>,
    a_scale: f64,
    d_scale: f64,
}

/// Lower node and upper-node weight of `x` on `n` nodes starting at `x0` with spacing `h`,
/// clamped to the end nodes.
fn locate(x: f64, x0: f64, h: f64, n: usize) -> (usize, f64) {
    let s = (x - x0) / h;
    if s <= 0.0 {
        (0, 0.0)
    } else if s >= (n - 1) as f64 {
        (n - 2, 1.0)
    } else {
        let k = (s.floor() as usize).min(n - 2);
        (k, s - k as f64)
    }
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// Number of coefficient functions.
const N_FUNCS: usize = 6;
/// Functions in block order, and whether their v_⊥ = 0 nodes are parameters.
const A_B: usize = 0;
const A_E: usize = 1;
const D_BE: usize = 2;
const D_BB: usize = 3;
const D_EE: usize = 4;
const D_TT: usize = 5;
const FREE_ON_AXIS: [bool; N_FUNCS] = [true, false, false, true, true, false];

impl GyroMap {
    /// `n_par, n_perp ≥ 2` nodes up to `v_max > 0` about the unit axis `b`.
    pub fn new(grid: &VelocityGrid, b: [f64; 3], n_par: usize, n_perp: usize, v_max: f64) -> Result<Self, ModelError> {
        if grid.dim() != 3 {
            return Err(ModelError::BadOption { key: "kind", msg: "gyrotropic needs a 3D velocity grid".into() });
        }
        for (key, n) in [("n_par", n_par), ("n_perp", n_perp)] {
            if n < 2 {
                return Err(ModelError::BadOption { key, msg: format!("needs at least 2 nodes, got {n}") });
            }
        }
        if !(v_max.is_finite() && v_max > 0.0) {
            return Err(ModelError::BadOption { key: "v_radial_max", msg: format!("must be finite and > 0, got {v_max}") });
        }
        // A fixed unit vector ⊥ b̂ for cells on the axis.
        let helper = if b[0].abs() < 0.9 { [1.0, 0.0, 0.0] } else { [0.0, 1.0, 0.0] };
        let e_axis = {
            let c = cross(b, helper);
            let n = (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
            [c[0] / n, c[1] / n, c[2] / n]
        };
        let (hp, hq) = (2.0 * v_max / (n_par - 1) as f64, v_max / (n_perp - 1) as f64);
        let n = grid.n_cells();
        let (mut e, mut t, mut ip, mut iq) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..grid.nx {
            for j in 0..grid.ny {
                for k in 0..grid.nz() {
                    let v = [grid.centre(0, i), grid.centre(1, j), grid.centre(2, k)];
                    let vp = v[0] * b[0] + v[1] * b[1] + v[2] * b[2];
                    let w = [v[0] - vp * b[0], v[1] - vp * b[1], v[2] - vp * b[2]];
                    let vq = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt();
                    let ec = if vq > 1e-12 * v_max { [w[0] / vq, w[1] / vq, w[2] / vq] } else { e_axis };
                    let vq = if vq > 1e-12 * v_max { vq } else { 0.0 };
                    e.push(ec);
                    t.push(cross(b, ec));
                    ip.push(locate(vp, -v_max, hp, n_par));
                    iq.push(locate(vq, 0.0, hq, n_perp));
                }
            }
        }
        let dv = (grid.dv(0) * grid.dv(1) * grid.dv(2)).cbrt();
        Ok(Self { n_par, n_perp, v_max, b, e, t, ip, iq, a_scale: dv, d_scale: dv * dv })
    }

    fn n_nodes(&self) -> usize {
        self.n_par * self.n_perp
    }

    /// Offset of each function's block and its length.
    fn block(&self, f: usize) -> Range<usize> {
        let (all, off_axis) = (self.n_nodes(), self.n_par * (self.n_perp - 1));
        let len = |g: usize| if FREE_ON_AXIS[g] { all } else { off_axis };
        let start: usize = (0..f).map(len).sum();
        start..start + len(f)
    }

    /// Full node values (6 blocks of n_par·n_perp) from coefficients.
    fn expand(&self, q: &[f64]) -> Vec<f64> {
        let nn = self.n_nodes();
        let mut full = vec![0.0; N_FUNCS * nn];
        for f in 0..N_FUNCS {
            let src = &q[self.block(f)];
            for p in 0..self.n_par {
                for r in 0..self.n_perp {
                    full[f * nn + p * self.n_perp + r] = if FREE_ON_AXIS[f] {
                        src[p * self.n_perp + r]
                    } else if r > 0 {
                        src[p * (self.n_perp - 1) + r - 1]
                    } else {
                        0.0
                    };
                }
            }
        }
        // D_tt on the axis is D_ee there.
        for p in 0..self.n_par {
            full[D_TT * nn + p * self.n_perp] = full[D_EE * nn + p * self.n_perp];
        }
        full
    }

    /// Transpose of [`Self::expand`], accumulated into `d_q`.
    fn expand_transpose(&self, d_full: &[f64], d_q: &mut [f64]) {
        let nn = self.n_nodes();
        for f in 0..N_FUNCS {
            let b = self.block(f);
            for p in 0..self.n_par {
                for r in 0..self.n_perp {
                    let g = d_full[f * nn + p * self.n_perp + r];
                    if FREE_ON_AXIS[f] {
                        d_q[b.start + p * self.n_perp + r] += g;
                    } else if r > 0 {
                        d_q[b.start + p * (self.n_perp - 1) + r - 1] += g;
                    } else if f == D_TT {
                        d_q[self.block(D_EE).start + p * self.n_perp] += g;
                    }
                }
            }
        }
    }

    /// The four (node, weight) pairs of cell `c`'s bilinear interpolation.
    fn stencil(&self, c: usize) -> [(usize, f64); 4] {
        let ((p, wp), (r, wq)) = (self.ip[c], self.iq[c]);
        let at = |p: usize, r: usize| p * self.n_perp + r;
        [(at(p, r), (1.0 - wp) * (1.0 - wq)), (at(p, r + 1), (1.0 - wp) * wq), (at(p + 1, r), wp * (1.0 - wq)), (at(p + 1, r + 1), wp * wq)]
    }

    /// Node axes and profiles in physical units.
    fn profiles(&self, q: &[f64]) -> Vec<(String, ArrayD<f64>)> {
        let full = self.expand(q);
        let nn = self.n_nodes();
        let vec1 = |v: Vec<f64>| ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).expect("1D");
        let hp = 2.0 * self.v_max / (self.n_par - 1) as f64;
        let hq = self.v_max / (self.n_perp - 1) as f64;
        let mut out = vec![
            ("v_par_nodes".to_string(), vec1((0..self.n_par).map(|p| -self.v_max + p as f64 * hp).collect())),
            ("v_perp_nodes".to_string(), vec1((0..self.n_perp).map(|r| r as f64 * hq).collect())),
            ("axis".to_string(), vec1(self.b.to_vec())),
        ];
        for (f, name) in ["A_b", "A_e", "D_be", "D_bb", "D_ee", "D_tt"].into_iter().enumerate() {
            let s = if f < D_BE { self.a_scale } else { self.d_scale };
            let v: Vec<f64> = full[f * nn..(f + 1) * nn].iter().map(|x| s * x).collect();
            out.push((name.to_string(), ArrayD::from_shape_vec(IxDyn(&[self.n_par, self.n_perp]), v).expect("node grid")));
        }
        out
    }
}

impl CoefficientMap for GyroMap {
    fn n_coefficients(&self) -> usize {
        self.block(N_FUNCS - 1).end
    }
    fn apply(&self, q: &[f64], out: &mut [f64]) {
        let n = self.e.len();
        assert_eq!(out.len(), fp::n_fields(3) * n);
        let full = self.expand(q);
        let nn = self.n_nodes();
        let b = self.b;
        for c in 0..n {
            let mut v = [0.0; N_FUNCS];
            for (node, w) in self.stencil(c) {
                for (f, vf) in v.iter_mut().enumerate() {
                    *vf += w * full[f * nn + node];
                }
            }
            let (e, t) = (self.e[c], self.t[c]);
            let (ab, ae) = (self.a_scale * v[A_B], self.a_scale * v[A_E]);
            let [dbe, dbb, dee, dtt] = [v[D_BE], v[D_BB], v[D_EE], v[D_TT]].map(|x| self.d_scale * x);
            for i in 0..3 {
                out[fp::a(i) * n + c] = ab * b[i] + ae * e[i];
                for j in i..3 {
                    out[fp::d(3, i, j) * n + c] = dbb * b[i] * b[j] + dee * e[i] * e[j] + dbe * (b[i] * e[j] + e[i] * b[j]) + dtt * t[i] * t[j];
                }
            }
        }
    }
    fn apply_transpose(&self, d_out: &[f64], d_q: &mut [f64]) {
        let n = self.e.len();
        assert_eq!(d_out.len(), fp::n_fields(3) * n);
        let nn = self.n_nodes();
        let mut d_full = vec![0.0; N_FUNCS * nn];
        let b = self.b;
        for c in 0..n {
            let (e, t) = (self.e[c], self.t[c]);
            let mut g = [0.0; N_FUNCS];
            for i in 0..3 {
                let ga = d_out[fp::a(i) * n + c];
                g[A_B] += ga * b[i];
                g[A_E] += ga * e[i];
                for j in i..3 {
                    let gd = d_out[fp::d(3, i, j) * n + c];
                    g[D_BB] += gd * b[i] * b[j];
                    g[D_EE] += gd * e[i] * e[j];
                    g[D_BE] += gd * (b[i] * e[j] + e[i] * b[j]);
                    g[D_TT] += gd * t[i] * t[j];
                }
            }
            for (f, gf) in g.iter_mut().enumerate() {
                *gf *= if f < D_BE { self.a_scale } else { self.d_scale };
            }
            for (node, w) in self.stencil(c) {
                for (f, gf) in g.iter().enumerate() {
                    d_full[f * nn + node] += w * gf;
                }
            }
        }
        self.expand_transpose(&d_full, d_q);
    }
    fn diffusion_range(&self) -> Range<usize> {
        self.block(D_BB).start..self.block(D_TT).end
    }
    fn initial_coefficients(&self) -> Vec<f64> {
        let mut q = vec![0.0; self.n_coefficients()];
        q[self.diffusion_range()].fill(INITIAL_DIFFUSION);
        q
    }
    fn exports(&self, q: &[f64]) -> Vec<(String, ArrayD<f64>)> {
        self.profiles(q)
    }
    /// Per node, D in the (b̂, ê, t̂) frame: [[D_bb, D_be, 0], [D_be, D_ee, 0], [0, 0, D_tt]]
    /// (on the axis D_be = 0 and D_tt = D_ee are built in). Each cell's D is a convex combination
    /// of node matrices in its own frame, so PSD nodes give a PSD D.
    fn psd_blocks(&self) -> Option<Vec<Block3>> {
        let at = |f: usize, p: usize, r: usize| {
            let b = self.block(f);
            if FREE_ON_AXIS[f] {
                Some(b.start + p * self.n_perp + r)
            } else if r > 0 {
                Some(b.start + p * (self.n_perp - 1) + r - 1)
            } else {
                None
            }
        };
        let mut blocks = Vec::with_capacity(self.n_nodes());
        for p in 0..self.n_par {
            for r in 0..self.n_perp {
                blocks.push([at(D_BB, p, r), at(D_EE, p, r), at(D_TT, p, r), at(D_BE, p, r), None, None]);
            }
        }
        Some(blocks)
    }
}

/// The unit axis b̂ of a spec (default z).
pub fn axis_of(spec: &ModelSpec) -> Result<[f64; 3], ModelError> {
    let a = spec.axis.unwrap_or([0.0, 0.0, 1.0]);
    let norm = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return Err(ModelError::BadOption { key: "axis", msg: format!("must be a finite non-zero 3-vector, got {a:?}") });
    }
    Ok(if norm == 1.0 { a } else { a.map(|x| x / norm) })
}

/// The `gyrotropic` model.
pub fn build(spec: &ModelSpec, info: &BuildInfo) -> Result<FpModel<GyroMap>, ModelError> {
    let grid = &info.grid;
    let big = grid.extents().into_iter().max().unwrap_or(grid.nx);
    let n_par = spec.n_par.unwrap_or(big.div_ceil(2));
    let n_perp = spec.n_perp.unwrap_or(big.div_ceil(4) + 1);
    let v_max = spec.v_radial_max.unwrap_or(grid.v_corner());
    let map = GyroMap::new(grid, axis_of(spec)?, n_par, n_perp, v_max)?;
    Ok(FpModel::new("gyrotropic", grid.clone(), map, spec.nonnegative_d))
}
