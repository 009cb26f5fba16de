//! The `conservative` scheme: a jump-rate ("master equation") finite-volume step that conserves
//! Σf to round-off for any coefficients and keeps f ≥ 0 under a stated step bound; and its exact
//! discrete adjoint. Two or three velocity dimensions, one code path.
//!
//! Each cell c sends mass to its axial and diagonal neighbours at non-negative rates built from
//! c's own grid-unit coefficients (Itô form, so the jumps' mean is Â and their second moment D̂,
//! matching `−∂(Af) + ½∂∂(Df)`):
//! - for each pair of axes i < j, diagonal jumps (+e_i+e_j), (−e_i−e_j) at `max(D̂_ij,0)/2` each
//!   and (+e_i−e_j), (−e_i+e_j) at `max(−D̂_ij,0)/2` each;
//! - axial "diffusion" `b_i = max((D̂_ii − Σ_{j≠i}|D̂_ij|)/2, 0)` per direction;
//! - drift by Spalding's hybrid differencing: `r_{+i} = max(b_i + Â_i/2, max(Â_i, 0))`,
//!   `r_{−i} = max(b_i − Â_i/2, max(−Â_i, 0))` — central (second order) while the cell Péclet
//!   number |Â_i|/b_i ≤ 2, upwind beyond; the mean jump r_{+i} − r_{−i} is Â_i either way.
//!
//! That is 8 jumps in 2D and 18 in 3D, in the order [`jumps`] lists them (axial ±e_i per axis,
//! then the four diagonals of each pair xy, xz, yz). Jumps that would leave the grid are
//! suppressed (zero flux through the boundary), so `out = f − Σ_k r_k f + Σ_k (inflow)` moves
//! mass between cells only: Σf is conserved to round-off. The prepared fields are the rates
//! times the step `h` (suppressed ones 0).
//!
//! **Step bound**: `h · max_cells Σ_k r_k ≤ 1` (total out-rate of every cell). Then the
//! self-weight `1 − hΣr` and all jump weights are ≥ 0, so f ≥ 0 is kept without clamping.
//! `substeps: auto` picks the smallest n meeting it; a fixed n that violates it logs one warning
//! per scheme instance.
//!
//! The rates are piecewise linear in the coefficients; the adjoint of `prepare` differentiates
//! the active branch of each `max` (ties go to the first argument, `max(a, b) = a` when `a ≥ b`,
//! exactly as the forward evaluates it; |D̂_ij| counts as +D̂_ij at 0).
//!
//! The kernels work on lines along the last (contiguous) axis of zero-padded copies, with the
//! jumps' sums in groups of four, so 2D results are bitwise those of the original 2D kernels.

use super::stencil::{grid_unit_scales, pairs, substeps_for, WarnOnce};
use super::{Scheme, StepWorkspace, Substeps};
use crate::grid::VelocityGrid;
use crate::operator::{fp, Fields};
use ndarray::{ArrayView3, ArrayViewMut3};

/// Number of jump directions (prepared fields) in `dim` dimensions: 8 in 2D, 18 in 3D.
pub const fn n_jumps(dim: usize) -> usize {
    2 * dim + 2 * dim * (dim - 1)
}

/// Most jumps of any dimension.
const MAX_JUMPS: usize = n_jumps(3);
/// Most fields of any dimension.
const MAX_FIELDS: usize = fp::n_fields(3);

/// Jump offsets in prepared-field order: `+e_i, −e_i` per axis, then for each pair `i < j`
/// `(+e_i+e_j), (−e_i−e_j), (+e_i−e_j), (−e_i+e_j)`. In 2D: (1,0), (−1,0), (0,1), (0,−1),
/// (1,1), (−1,−1), (1,−1), (−1,1).
pub fn jumps(dim: usize) -> Vec<[isize; 3]> {
    let unit = |i: usize, s: isize| {
        let mut o = [0isize; 3];
        o[i] = s;
        o
    };
    let mut out: Vec<[isize; 3]> = (0..dim).flat_map(|i| [unit(i, 1), unit(i, -1)]).collect();
    for (i, j) in pairs(dim) {
        for (si, sj) in [(1, 1), (-1, -1), (1, -1), (-1, 1)] {
            let mut o = unit(i, si);
            o[j] = sj;
            out.push(o);
        }
    }
    out
}

/// `max(a, b)` choosing `a` on ties; the flag says whether `a` was taken.
#[inline(always)]
fn max_a(a: f64, b: f64) -> (f64, bool) {
    if a >= b {
        (a, true)
    } else {
        (b, false)
    }
}

/// `b_i = max((D̂_ii − Σ_{j≠i}|D̂_ij|)/2, 0)` and whether its first branch is active.
#[inline]
fn axial_diffusion(dim: usize, c: &[f64], i: usize) -> (f64, bool) {
    let mut x = c[fp::d(dim, i, i)];
    for j in (0..dim).filter(|&j| j != i) {
        x -= c[fp::d(dim, i, j)].abs();
    }
    max_a(x / 2.0, 0.0)
}

/// The jump rates of one cell from its grid-unit coefficients `c` (`fp::n_fields(dim)` values)
/// into `r` (`n_jumps(dim)` values).
#[inline]
pub fn rates(dim: usize, c: &[f64], r: &mut [f64]) {
    let drift = |b: f64, a: f64| (max_a(b + a / 2.0, max_a(a, 0.0).0).0, max_a(b - a / 2.0, max_a(-a, 0.0).0).0);
    for i in 0..dim {
        let (b, _) = axial_diffusion(dim, c, i);
        let (rp, rm) = drift(b, c[fp::a(i)]);
        r[2 * i] = rp;
        r[2 * i + 1] = rm;
    }
    for (q, (i, j)) in pairs(dim).enumerate() {
        let dij = c[fp::d(dim, i, j)];
        let pd = max_a(dij, 0.0).0 / 2.0;
        let md = max_a(-dij, 0.0).0 / 2.0;
        let k = 2 * dim + 4 * q;
        r[k..k + 4].copy_from_slice(&[pd, pd, md, md]);
    }
}

/// `dc += ∂L/∂c` (grid units) from `g = ∂L/∂rates` at coefficients `c`, through the active
/// branches (`dc` is overwritten).
#[inline]
pub fn rates_vjp(dim: usize, c: &[f64], g: &[f64], dc: &mut [f64]) {
    dc.fill(0.0);
    let sign = |i: usize, j: usize| if c[fp::d(dim, i, j)] >= 0.0 { 1.0 } else { -1.0 };
    for (q, (i, j)) in pairs(dim).enumerate() {
        let (dij, k, kd) = (c[fp::d(dim, i, j)], 2 * dim + 4 * q, fp::d(dim, i, j));
        if max_a(dij, 0.0).1 {
            dc[kd] += (g[k] + g[k + 1]) / 2.0;
        }
        if max_a(-dij, 0.0).1 {
            dc[kd] -= (g[k + 2] + g[k + 3]) / 2.0;
        }
    }
    // One axis: drift a, out-rates gp (+) and gm (−).
    for i in 0..dim {
        let (a, gp, gm, ia) = (c[fp::a(i)], g[2 * i], g[2 * i + 1], fp::a(i));
        let (b, b_active) = axial_diffusion(dim, c, i);
        let mut db = 0.0;
        let (up, up_a) = max_a(a, 0.0);
        if max_a(b + a / 2.0, up).1 {
            db += gp;
            dc[ia] += gp / 2.0;
        } else if up_a {
            dc[ia] += gp;
        }
        let (um, um_a) = max_a(-a, 0.0);
        if max_a(b - a / 2.0, um).1 {
            db += gm;
            dc[ia] -= gm / 2.0;
        } else if um_a {
            dc[ia] -= gm;
        }
        if b_active {
            dc[fp::d(dim, i, i)] += db / 2.0;
            for j in (0..dim).filter(|&j| j != i) {
                dc[fp::d(dim, i, j)] -= sign(i, j) * db / 2.0;
            }
        }
    }
}

/// Grid geometry for the kernels: line length, padded strides and jump offsets.
#[derive(Clone, Debug)]
struct Layout {
    dim: usize,
    extent: [usize; 3],
    /// Strides of the zero-padded array (every axis one cell wider on both sides).
    pstride: [usize; 3],
    /// Cells of the padded array.
    padded: usize,
    /// Jump offsets in the padded array.
    offset: Vec<isize>,
    jumps: Vec<[isize; 3]>,
}

impl Layout {
    fn new(grid: &VelocityGrid) -> Self {
        let dim = grid.dim();
        let extent = std::array::from_fn(|a| if a < dim { grid.extent(a) } else { 1 });
        let mut pstride = [1usize; 3];
        for a in (0..dim.saturating_sub(1)).rev() {
            pstride[a] = pstride[a + 1] * (extent[a + 1] + 2);
        }
        let padded = (0..dim).map(|a| extent[a] + 2).product();
        let jumps = jumps(dim);
        let offset = jumps.iter().map(|o| (0..dim).map(|a| o[a] * pstride[a] as isize).sum()).collect();
        Self { dim, extent, pstride, padded, offset, jumps }
    }
    fn line_len(&self) -> usize {
        self.extent[self.dim - 1]
    }
    #[cfg(test)]
    fn n_lines(&self) -> usize {
        (0..self.dim - 1).map(|a| self.extent[a]).product()
    }
    /// Padded positions of the first cell of every line, in line order (no division per line).
    #[inline(always)]
    fn padded_lines(&self) -> impl Iterator<Item = usize> + '_ {
        let (outer, inner) = if self.dim == 3 { (self.extent[0], self.extent[1]) } else { (self.extent[0], 1) };
        let (s_out, s_in) = if self.dim == 3 { (self.pstride[0], self.pstride[1]) } else { (self.pstride[0], 0) };
        let start = 1 + s_out + if self.dim == 3 { s_in } else { 0 };
        (0..outer).flat_map(move |i| (0..inner).map(move |j| start + i * s_out + j * s_in))
    }
    /// Padded position of the first cell of line `m` (the definition [`Layout::padded_lines`]
    /// follows).
    #[cfg(test)]
    fn padded_line(&self, m: usize) -> usize {
        let mut rest = m;
        let mut at = 1; // the last axis' leading pad
        for a in (0..self.dim - 1).rev() {
            at += (rest % self.extent[a] + 1) * self.pstride[a];
            rest /= self.extent[a];
        }
        at
    }
}

/// The `conservative` scheme.
#[derive(Debug)]
pub struct Conservative {
    grid: VelocityGrid,
    clamp: bool,
    substeps: Substeps,
    units: Vec<f64>,
    layout: Layout,
    warned: WarnOnce,
}

impl Conservative {
    pub fn new(grid: &VelocityGrid, clamp: bool, substeps: Substeps) -> Self {
        Self {
            grid: grid.clone(),
            clamp,
            substeps,
            units: grid_unit_scales(grid),
            layout: Layout::new(grid),
            warned: WarnOnce::default(),
        }
    }

    fn dim(&self) -> usize {
        self.grid.dim()
    }

    /// Which jumps of flat cell `c` stay on the grid.
    #[inline]
    fn allowed(&self, c: usize) -> [bool; MAX_JUMPS] {
        let l = &self.layout;
        let mut idx = [0isize; 3];
        let mut rest = c;
        for a in (0..l.dim).rev() {
            idx[a] = (rest % l.extent[a]) as isize;
            rest /= l.extent[a];
        }
        let mut ok = [false; MAX_JUMPS];
        for (k, o) in l.jumps.iter().enumerate() {
            ok[k] = (0..l.dim).all(|a| (0..l.extent[a] as isize).contains(&(idx[a] + o[a])));
        }
        ok
    }

    /// Grid-unit coefficients of flat cell `c` (fields `n` apart in `coeffs`).
    #[inline]
    fn cell_coeffs(&self, coeffs: &[f64], n: usize, c: usize) -> [f64; MAX_FIELDS] {
        let mut out = [0.0; MAX_FIELDS];
        for (k, u) in self.units.iter().enumerate() {
            out[k] = coeffs[k * n + c] * u;
        }
        out
    }

    /// Largest total out-rate (per unit time) over the cells, allowed jumps only. NaN if any
    /// coefficient is NaN.
    pub fn max_out_rate(&self, coeffs: ArrayView3<f64>) -> f64 {
        let coeffs = coeffs.as_standard_layout();
        let cs = coeffs.as_slice().expect("standard layout");
        let (n, nj, nf) = (self.grid.n_cells(), n_jumps(self.dim()), self.units.len());
        let mut r = [0.0; MAX_JUMPS];
        let mut max = 0.0f64;
        for c in 0..n {
            rates(self.dim(), &self.cell_coeffs(cs, n, c)[..nf], &mut r[..nj]);
            let a = self.allowed(c);
            let total: f64 = (0..nj).filter(|&k| a[k]).map(|k| r[k]).sum();
            if total > max || total.is_nan() {
                max = total;
            }
        }
        max
    }
}

/// How a group's sum `g` enters the outflow line `o`: `o = g` (first group), `o += g`, or
/// `o = f − (o + g)` (last group).
#[inline(always)]
fn outflow_combine<const FIRST: bool, const LAST: bool>(o: f64, g: f64, f: f64) -> f64 {
    if LAST {
        f - (o + g)
    } else if FIRST {
        g
    } else {
        o + g
    }
}

/// One group of four jumps: products `q = r·f` into the padded planes and their sum
/// `(q_a + q_b) + (q_c + q_d)` into `o`.
#[inline(always)]
fn outflow4<const FIRST: bool, const LAST: bool>(r: [&[f64]; 4], q: [&mut [f64]; 4], f: &[f64], o: &mut [f64]) {
    let nl = f.len();
    let o = &mut o[..nl];
    let [r0, r1, r2, r3] = r.map(|x| &x[..nl]);
    let [q0, q1, q2, q3] = q;
    let (q0, q1, q2, q3) = (&mut q0[..nl], &mut q1[..nl], &mut q2[..nl], &mut q3[..nl]);
    for j in 0..nl {
        let fj = f[j];
        q0[j] = r0[j] * fj;
        q1[j] = r1[j] * fj;
        q2[j] = r2[j] * fj;
        q3[j] = r3[j] * fj;
        o[j] = outflow_combine::<FIRST, LAST>(o[j], (q0[j] + q1[j]) + (q2[j] + q3[j]), fj);
    }
}

/// A group of two jumps (the last of 18 in 3D).
#[inline(always)]
fn outflow2<const FIRST: bool, const LAST: bool>(r: [&[f64]; 2], q: [&mut [f64]; 2], f: &[f64], o: &mut [f64]) {
    let nl = f.len();
    let o = &mut o[..nl];
    let [r0, r1] = r.map(|x| &x[..nl]);
    let [q0, q1] = q;
    let (q0, q1) = (&mut q0[..nl], &mut q1[..nl]);
    for j in 0..nl {
        let fj = f[j];
        q0[j] = r0[j] * fj;
        q1[j] = r1[j] * fj;
        o[j] = outflow_combine::<FIRST, LAST>(o[j], q0[j] + q1[j], fj);
    }
}

/// `acc = g` (first group), `acc += g`, or `o += acc + g` (last group), `g` the group's inflows
/// `(s_a + s_b) + (s_c + s_d)` (or `s_a + s_b` for a group of two).
#[inline(always)]
fn inflow<const FOUR: bool, const FIRST: bool, const LAST: bool>(s: [&[f64]; 4], acc: &mut [f64], o: &mut [f64]) {
    let nl = acc.len();
    let o = &mut o[..nl];
    let [s0, s1, s2, s3] = s.map(|x| &x[..nl]);
    for j in 0..nl {
        let g = if FOUR { (s0[j] + s1[j]) + (s2[j] + s3[j]) } else { s0[j] + s1[j] };
        if LAST {
            o[j] += acc[j] + g;
        } else {
            acc[j] = if FIRST { g } else { acc[j] + g };
        }
    }
}

/// Pre-clamp forward step. `q` holds the padded products `r_k f` (borders 0), one padded array
/// per jump; `acc` is a line of scratch.
#[inline(always)]
fn forward(l: &Layout, r: &[f64], f: &[f64], out: &mut [f64], q: &mut [f64], acc: &mut [f64]) {
    let (n, nl, nj, plane) = (f.len(), l.line_len(), l.jumps.len(), l.padded);
    let groups = nj.div_ceil(4);
    // Outflows: q_k = r_k f at the padded position, out = f − Σ_k q_k.
    for (m, pb) in l.padded_lines().enumerate() {
        let base = m * nl;
        let (f0, o) = (&f[base..][..nl], &mut out[base..][..nl]);
        let mut planes = q.chunks_exact_mut(plane);
        let mut next = || &mut planes.next().expect("a plane per jump")[pb..][..nl];
        for g in 0..groups {
            let (k, last) = (4 * g, g + 1 == groups);
            if nj - k >= 4 {
                let rk: [&[f64]; 4] = std::array::from_fn(|i| &r[(k + i) * n + base..][..nl]);
                let qk = [next(), next(), next(), next()];
                match (g == 0, last) {
                    (true, false) => outflow4::<true, false>(rk, qk, f0, o),
                    (false, false) => outflow4::<false, false>(rk, qk, f0, o),
                    (_, true) => outflow4::<false, true>(rk, qk, f0, o),
                }
            } else {
                let rk: [&[f64]; 2] = std::array::from_fn(|i| &r[(k + i) * n + base..][..nl]);
                let qk = [next(), next()];
                match (g == 0, last) {
                    (true, false) => outflow2::<true, false>(rk, qk, f0, o),
                    (false, false) => outflow2::<false, false>(rk, qk, f0, o),
                    (_, true) => outflow2::<false, true>(rk, qk, f0, o),
                }
            }
        }
    }
    // Inflows: out[c] += Σ_k q_k[c − o_k] (zero border = nothing enters from outside).
    for (m, pb) in l.padded_lines().enumerate() {
        let base = m * nl;
        let acc = &mut acc[..nl];
        for g in 0..groups {
            let width = (nj - 4 * g).min(4);
            let src: [&[f64]; 4] = std::array::from_fn(|i| {
                let k = 4 * g + i.min(width - 1);
                &q[k * plane + (pb as isize - l.offset[k]) as usize..][..nl]
            });
            let o = &mut out[base..][..nl];
            match (width == 4, g == 0, g + 1 == groups) {
                (true, true, _) => inflow::<true, true, false>(src, acc, o),
                (true, false, false) => inflow::<true, false, false>(src, acc, o),
                (true, false, true) => inflow::<true, false, true>(src, acc, o),
                (false, _, _) => inflow::<false, false, true>(src, acc, o),
            }
        }
    }
}

/// Adjoint of the pre-clamp step: `G_k = λ[c+o_k] − λ[c]`, `λ_in = λ + Σ r_k G_k`,
/// `d_k += f G_k`. `lp` is a padded copy of λ (border 0).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn adjoint(l: &Layout, r: &[f64], f: &[f64], lam: &[f64], lam_in: &mut [f64], d: &mut [f64], lp: &mut [f64]) {
    let (n, nl, nj) = (f.len(), l.line_len(), l.jumps.len());
    for (m, pb) in l.padded_lines().enumerate() {
        lp[pb..][..nl].copy_from_slice(&lam[m * nl..][..nl]);
    }
    let lp: &[f64] = lp;
    for (m, pb) in l.padded_lines().enumerate() {
        let base = m * nl;
        let (l0, f0, li) = (&lam[base..][..nl], &f[base..][..nl], &mut lam_in[base..][..nl]);
        li.copy_from_slice(l0);
        // Jumps in pairs: fewer passes over λ_in than one per jump, few enough streams to vectorise.
        let mut dk = d.chunks_exact_mut(n);
        for k in (0..nj).step_by(2) {
            let target = |k: usize| &lp[(pb as isize + l.offset[k]) as usize..][..nl];
            let (ta, tb) = (target(k), target(k + 1));
            let (ra, rb) = (&r[k * n + base..][..nl], &r[(k + 1) * n + base..][..nl]);
            let da = &mut dk.next().expect("a gradient per jump")[base..][..nl];
            let db = &mut dk.next().expect("a gradient per jump")[base..][..nl];
            pair_adjoint(l0, f0, li, ta, tb, ra, rb, da, db);
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pair_adjoint(
    l0: &[f64],
    f0: &[f64],
    li: &mut [f64],
    ta: &[f64],
    tb: &[f64],
    ra: &[f64],
    rb: &[f64],
    da: &mut [f64],
    db: &mut [f64],
) {
    let nl = l0.len();
    let (f0, li, ta, tb, ra, rb, da, db) =
        (&f0[..nl], &mut li[..nl], &ta[..nl], &tb[..nl], &ra[..nl], &rb[..nl], &mut da[..nl], &mut db[..nl]);
    for j in 0..nl {
        let (ga, gb) = (ta[j] - l0[j], tb[j] - l0[j]);
        li[j] += ra[j] * ga + rb[j] * gb;
        da[j] += f0[j] * ga;
        db[j] += f0[j] * gb;
    }
}

crate::simd_kernel!(forward_k, forward, (
    l: &Layout, r: &[f64], f: &[f64], out: &mut [f64], q: &mut [f64], acc: &mut [f64]
));
crate::simd_kernel!(adjoint_k, adjoint, (
    l: &Layout, r: &[f64], f: &[f64], lam: &[f64], lam_in: &mut [f64], d: &mut [f64], lp: &mut [f64]
));

impl Scheme for Conservative {
    fn name(&self) -> &'static str {
        "conservative"
    }
    fn grid(&self) -> &VelocityGrid {
        &self.grid
    }
    fn n_fields(&self) -> usize {
        fp::n_fields(self.dim())
    }
    fn n_prepared(&self) -> usize {
        n_jumps(self.dim())
    }
    fn substeps(&self, coeffs: ArrayView3<f64>, dt: f64) -> usize {
        let rate = self.max_out_rate(coeffs);
        match self.substeps {
            Substeps::Auto(_) => substeps_for(rate, dt, 1.0),
            Substeps::Fixed(n) => {
                let n = n.max(1);
                let hr = dt.abs() / n as f64 * rate;
                if hr > 1.0 && self.warned.first() {
                    tracing::warn!(
                        "conservative scheme: {n} substeps give h·(max out-rate) = {hr:.3} > 1, so f ≥ 0 is \
                         not guaranteed; use at least {} substeps or `substeps: auto`",
                        substeps_for(rate, dt, 1.0)
                    );
                }
                n
            }
        }
    }
    fn prepare(&self, coeffs: ArrayView3<f64>, h: f64, mut out: ArrayViewMut3<f64>) {
        let coeffs = coeffs.as_standard_layout();
        let cs = coeffs.as_slice().expect("standard layout");
        let out = out.as_slice_mut().expect("prepared rates are contiguous");
        let (n, nj, nf) = (self.grid.n_cells(), n_jumps(self.dim()), self.units.len());
        let mut r = [0.0; MAX_JUMPS];
        for c in 0..n {
            rates(self.dim(), &self.cell_coeffs(cs, n, c)[..nf], &mut r[..nj]);
            let a = self.allowed(c);
            for k in 0..nj {
                out[k * n + c] = if a[k] { h * r[k] } else { 0.0 };
            }
        }
    }
    fn prepare_vjp(
        &self,
        coeffs: ArrayView3<f64>,
        h: f64,
        d_prepared: ArrayView3<f64>,
        mut d_coeffs: ArrayViewMut3<f64>,
    ) {
        let coeffs = coeffs.as_standard_layout();
        let cs = coeffs.as_slice().expect("standard layout");
        let d_prepared = d_prepared.as_standard_layout();
        let dp = d_prepared.as_slice().expect("standard layout");
        let dc_out = d_coeffs.as_slice_mut().expect("d_coeffs is contiguous");
        let (n, nj, nf) = (self.grid.n_cells(), n_jumps(self.dim()), self.units.len());
        let (mut g, mut dc) = ([0.0; MAX_JUMPS], [0.0; MAX_FIELDS]);
        for c in 0..n {
            let a = self.allowed(c);
            for k in 0..nj {
                g[k] = if a[k] { h * dp[k * n + c] } else { 0.0 };
            }
            rates_vjp(self.dim(), &self.cell_coeffs(cs, n, c)[..nf], &g[..nj], &mut dc[..nf]);
            for k in 0..nf {
                dc_out[k * n + c] += dc[k] * self.units[k];
            }
        }
    }
    fn workspace(&self) -> StepWorkspace {
        let (padded, nj) = (self.layout.padded, n_jumps(self.dim()));
        StepWorkspace {
            bufs: vec![
                vec![0.0; nj * padded],
                vec![0.0; padded],
                vec![0.0; self.grid.n_cells()],
                vec![0.0; self.layout.line_len()],
            ],
        }
    }
    fn step(&self, prepared: &Fields, f: &[f64], out: &mut [f64], ws: &mut StepWorkspace) {
        let [q, _, _, acc] = &mut ws.bufs[..] else { panic!("conservative: workspace from another scheme") };
        let r = prepared.as_slice().expect("prepared rates are contiguous");
        crate::simd_dispatch!(forward_k(&self.layout, r, f, out, q, acc));
        if self.clamp {
            super::clamp::clamp_nonnegative(out);
        }
    }
    fn step_vjp(
        &self,
        prepared: &Fields,
        f: &[f64],
        lam_out: &[f64],
        lam_in: &mut [f64],
        d_prepared: &mut Fields,
        ws: &mut StepWorkspace,
    ) {
        let [q, lp, lam_m, acc] = &mut ws.bufs[..] else { panic!("conservative: workspace from another scheme") };
        let r = prepared.as_slice().expect("prepared rates are contiguous");
        let lam: &[f64] = if self.clamp {
            // The pre-clamp state goes to lam_in (overwritten below) to find the active set.
            crate::simd_dispatch!(forward_k(&self.layout, r, f, lam_in, q, acc));
            super::clamp::clamp_mask(lam_in, lam_out, lam_m);
            lam_m
        } else {
            lam_out
        };
        let d = d_prepared.as_slice_mut().expect("d_prepared is contiguous");
        crate::simd_dispatch!(adjoint_k(&self.layout, r, f, lam, lam_in, d, lp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The AVX2 and plain builds of both kernels give the same bits, in 2D and 3D.
    #[test]
    fn simd_and_plain_kernels_agree_bitwise() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
            let grids = [
                VelocityGrid::new(9, 13, [-1.0, 1.0, -2.0, 2.0], "v_th").unwrap(),
                VelocityGrid::new3(5, 6, 7, [-1.0, 1.0, -2.0, 2.0, -1.0, 3.0], "v_th").unwrap(),
            ];
            for grid in &grids {
                let l = Layout::new(grid);
                let (n, nj) = (grid.n_cells(), n_jumps(grid.dim()));
                let mut rand_vec = |len: usize| (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>();
                let (r, f, lam) = (rand_vec(nj * n), rand_vec(n), rand_vec(n));
                let run = |avx: bool| {
                    let (mut out, mut lam_in, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; nj * n]);
                    let (mut q, mut lp, mut acc) = (vec![0.0; nj * l.padded], vec![0.0; l.padded], vec![0.0; l.line_len()]);
                    if avx {
                        // SAFETY: AVX2 checked above.
                        unsafe {
                            forward_k::avx2(&l, &r, &f, &mut out, &mut q, &mut acc);
                            adjoint_k::avx2(&l, &r, &f, &lam, &mut lam_in, &mut d, &mut lp);
                        }
                    } else {
                        forward_k::plain(&l, &r, &f, &mut out, &mut q, &mut acc);
                        adjoint_k::plain(&l, &r, &f, &lam, &mut lam_in, &mut d, &mut lp);
                    }
                    [out, lam_in, d]
                };
                let (x, y) = (run(true), run(false));
                for (a, b) in x.iter().zip(&y) {
                    assert!(a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits()));
                }
            }
        }
    }

    #[test]
    fn padded_line_starts() {
        for grid in [
            VelocityGrid::new(9, 13, [-1.0, 1.0, -2.0, 2.0], "v_th").unwrap(),
            VelocityGrid::new3(5, 6, 7, [-1.0, 1.0, -2.0, 2.0, -1.0, 3.0], "v_th").unwrap(),
        ] {
            let l = Layout::new(&grid);
            let walked: Vec<usize> = l.padded_lines().collect();
            assert_eq!(walked, (0..l.n_lines()).map(|m| l.padded_line(m)).collect::<Vec<_>>());
            assert_eq!(walked.len() * l.line_len(), grid.n_cells());
        }
    }

    #[test]
    fn jump_layout() {
        assert_eq!(n_jumps(2), 8);
        assert_eq!(n_jumps(3), 18);
        let j2: Vec<(isize, isize)> = jumps(2).iter().map(|o| (o[0], o[1])).collect();
        assert_eq!(j2, [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)]);
        let j3 = jumps(3);
        assert_eq!(j3.len(), 18);
        // Every jump is distinct and its mean over ± pairs is zero.
        for (a, o) in j3.iter().enumerate() {
            assert!(j3[a + 1..].iter().all(|p| p != o));
        }
        assert_eq!(j3.iter().fold([0isize; 3], |s, o| [s[0] + o[0], s[1] + o[1], s[2] + o[2]]), [0, 0, 0]);
        assert_eq!(fp::d(3, 0, 1), 6);
        assert_eq!(fp::d(3, 2, 0), 7);
        assert_eq!(fp::d(3, 1, 2), 8);
        assert_eq!(fp::d(2, 1, 0), fp::DXY);
    }
}
