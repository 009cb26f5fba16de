//! The reference code's explicit central-difference Fokker–Planck step (`guard` and `one-sided`
//! edges, optional clamp) and its exact discrete adjoint, in two or three velocity dimensions.
//!
//! With Δ1 u_r = u_{r+1} − u_{r−1} (twice the reference's δ1), Δ2 = δ2, and the prepared fields
//! `p_{A_i} = hÂ_i/2`, `p_{D_ii} = hD̂_ii/2`, `p_{D_ij} = hD̂_ij/4` (i < j; grid units, step `h`
//! folded in, field order as in [`fp`]), the step is
//!
//! `out = f − Σ_i Δ1_i(p_{A_i} f) + Σ_i Δ2_i(p_{D_ii} f) + Σ_{i<j} Δ1_iΔ1_j(p_{D_ij} f)`,
//!
//! exactly the formula: both orders of a mixed term are the same tensor product
//! Δ1_i⊗Δ1_j, so `½(δ1_iδ1_j + δ1_jδ1_i) = ¼Δ1_iΔ1_j`. Each 1-D operator is a [`Table1D`]:
//! interior rows run a hard-coded, auto-vectorised fast path, edge rows (guard truncation or
//! one-sided stencils) a generic sparse path.
//!
//! **One code path for every dimension.** The state is a set of *lines* along the last (fastest,
//! contiguous) axis. For each line, the outer axes (v_x in 2D; v_x, v_y in 3D) are applied along
//! their strides, building three line buffers
//! `s = f − Σ_{a outer} Δ1_a(p_{A_a} f) + Σ Δ2_a(p_{D_aa} f) + Σ_{a<b outer} Δ1_aΔ1_b(p_{D_ab} f)`,
//! `r1 = Σ_{a outer} Δ1_a(p_{D_a,last} f) − p_{A_last} f` and `r2 = p_{D_last,last} f`; then
//! `out = s + Δ1_last(r1) + Δ2_last(r2)` along the line. The adjoint is the same machinery with
//! transposed tables: `G_k = S_kᵀ λ` per field, `λ_in = λ + Σ_k p_k G_k`, `d p_k += f G_k`,
//! with the outer-axis parts of the `G_k` built per line first and one fused pass along the line
//! at the end (a loop over the fields that the compiler unrolls for the 5 or 9 fields). In two
//! dimensions this evaluates every sum in exactly the order the original 2D kernels did, so 2D
//! results are bitwise what they were.
//!
//! Step bound for `substeps: auto`: with D̂_ii ≥ 0 and `hΣ_i D̂_ii ≤ 1` every column of the step
//! matrix has ℓ1 norm ≤ 1 + h(Σ_i|Â_i| + Σ_{i<j}|D̂_ij|) (interior, guard), so errors grow at most
//! like `exp(t·max(Σ|Â_i| + Σ|D̂_ij|))` whatever `h`. `auto` takes, with a factor-2 margin, the
//! smallest n with `h·max_cells Σ_k |ĉ_k| ≤ ½` over every grid-unit coefficient ĉ_k.

use super::clamp::{apply_mask, clamp_mask, clamp_nonnegative, clamp_recording};
use super::stencil::{grid_unit_scales, pairs, substeps_for, Table1D};
use super::{Boundary, Scheme, StepWorkspace, Substeps};
use crate::grid::VelocityGrid;
use crate::operator::{fp, Fields};
use ndarray::{ArrayView3, ArrayViewMut3};

/// The `auto` step bound: `h · max Σ_k |ĉ_k| ≤ AUTO_LIMIT`.
pub const AUTO_LIMIT: f64 = 0.5;

/// Prepared field k is `h · factor(k) · (grid-unit coefficient k)`.
fn factor(dim: usize, k: usize) -> f64 {
    if k < 2 * dim {
        0.5
    } else {
        0.25
    }
}

/// The 1-D operators along one axis, their transposes and their common interior runs.
#[derive(Clone, Debug)]
struct AxisOps {
    d1: Table1D,
    d2: Table1D,
    d1t: Table1D,
    d2t: Table1D,
    /// Rows standard in both `d1` and `d2` (`0..0` if none).
    fwd: (usize, usize),
    /// Rows standard in both `d1t` and `d2t`.
    adj: (usize, usize),
}

impl AxisOps {
    fn new(n: usize, boundary: Boundary) -> Self {
        let (d1, d2) = (Table1D::first(n, boundary), Table1D::second(n, boundary));
        let (d1t, d2t) = (d1.transpose(), d2.transpose());
        let (fwd, adj) = (common_interior(&d1, &d2), common_interior(&d1t, &d2t));
        Self { d1, d2, d1t, d2t, fwd, adj }
    }
}

/// Everything the kernels need about the grid: per-axis operators, strides, field indices and
/// where the adjoint finds each field's `G_k`.
#[derive(Clone, Debug)]
pub struct Tables {
    dim: usize,
    extent: [usize; 3],
    stride: [usize; 3],
    axes: Vec<AxisOps>,
    /// Field index of A_i.
    fa: [usize; 3],
    /// Field index of D_ij.
    fd: [[usize; 3]; 3],
    /// Distance between prepared fields (and their gradients), in values.
    pstride: usize,
}

impl Tables {
    fn new(grid: &VelocityGrid, boundary: Boundary) -> Self {
        let dim = grid.dim();
        let extent = std::array::from_fn(|a| if a < dim { grid.extent(a) } else { 1 });
        let stride = std::array::from_fn(|a| if a < dim { grid.stride(a) } else { 1 });
        let axes = (0..dim).map(|a| AxisOps::new(grid.extent(a), boundary)).collect();
        let fa = std::array::from_fn(fp::a);
        let fd = std::array::from_fn(|i| std::array::from_fn(|j| fp::d(dim, i.min(dim - 1), j.min(dim - 1))));
        Self { dim, extent, stride, axes, fa, fd, pstride: prepared_stride(grid.n_cells()) }
    }

    /// Cells along the last axis (the line length).
    fn line_len(&self) -> usize {
        self.extent[self.dim - 1]
    }
    fn n_outer_pairs(&self) -> usize {
        (self.dim - 1) * (self.dim - 2) / 2
    }
    // Adjoint line buffers: Δ1_aᵀλ and Δ2_aᵀλ per outer axis a, then (Δ1_aΔ1_b)ᵀλ per outer pair.
    fn line_t(&self, a: usize) -> usize {
        a
    }
    fn line_g(&self, a: usize) -> usize {
        self.dim - 1 + a
    }
    fn line_g_pair(&self, p: usize) -> usize {
        2 * (self.dim - 1) + p
    }
    /// Line buffers the adjoint needs.
    fn n_adjoint_lines(&self) -> usize {
        2 * (self.dim - 1) + self.n_outer_pairs()
    }
    /// Outer-axis indices of line `m`.
    #[inline(always)]
    fn outer_index(&self, m: usize) -> [usize; 2] {
        match self.dim {
            2 => [m, 0],
            _ => [m / self.extent[1], m % self.extent[1]],
        }
    }
}

/// Distance between the prepared fields of a grid of `n` cells: `n`, unless `8n` bytes lie within
/// 256 bytes of a multiple of 4 KiB (64², 128², 32³, 48³, 64³, …), in which case the fields are
/// padded to `8·stride ≡ 448 (mod 4096)`. Otherwise every field's cell `c` (and every gradient's)
/// shares its low 12 address bits with the others', and the adjoint's loads wait on its stores
/// to other fields (4K aliasing): measured 2.5× slower on 64² (5.8 against 2.3 ns/cell) and on
/// 32³ and 48³ (29 and 35 against 11–16 ns/cell). Nine fields 448 bytes apart fall in distinct
/// 64-byte lines of a 4 KiB page.
pub fn prepared_stride(n: usize) -> usize {
    let r = (8 * n) % 4096;
    if (256..=4096 - 256).contains(&r) {
        return n;
    }
    let (target, now) = (448 / 8, n % 512);
    n + (target + 512 - now) % 512
}

/// The `central` scheme.
#[derive(Debug)]
pub struct Central {
    grid: VelocityGrid,
    boundary: Boundary,
    clamp: bool,
    substeps: Substeps,
    /// Physical → grid units, per field.
    units: Vec<f64>,
    scales: Vec<f64>,
    tables: Tables,
}

impl Central {
    pub fn new(grid: &VelocityGrid, boundary: Boundary, clamp: bool, substeps: Substeps) -> Self {
        let units = grid_unit_scales(grid);
        let scales = units.iter().enumerate().map(|(k, u)| u * factor(grid.dim(), k)).collect();
        Self { grid: grid.clone(), boundary, clamp, substeps, units, scales, tables: Tables::new(grid, boundary) }
    }

    pub fn boundary(&self) -> Boundary {
        self.boundary
    }

    /// `max over cells of Σ_k |ĉ_k|` over the grid-unit coefficients (per unit time).
    pub fn max_rate(&self, coeffs: ArrayView3<f64>) -> f64 {
        let units = &self.units;
        let fold = |m: f64, t: f64| if t > m || t.is_nan() { t } else { m };
        let coeffs = coeffs.as_standard_layout();
        let c = coeffs.as_slice().expect("standard layout");
        // The per-cell sums a block of cells at a time on the stack (once per epoch under
        // `substeps: auto`, so no allocation for fields in standard layout), the same sums in the
        // same order as one sum per cell.
        const BLOCK: usize = 256;
        let n = coeffs.shape()[1] * coeffs.shape()[2];
        let mut max = 0.0;
        for start in (0..n).step_by(BLOCK) {
            let len = BLOCK.min(n - start);
            let mut total = [0.0; BLOCK];
            for (k, &u) in units.iter().enumerate() {
                for (t, &c) in total[..len].iter_mut().zip(&c[k * n + start..][..len]) {
                    *t += (c * u).abs();
                }
            }
            max = total[..len].iter().copied().fold(max, fold);
        }
        max
    }
}

/// Rows standard in both tables (`0..0` if none, so the edge loops then cover every row once).
fn common_interior(a: &Table1D, b: &Table1D) -> (usize, usize) {
    let (lo, hi) = (a.lo.max(b.lo), a.hi.min(b.hi));
    if lo < hi {
        (lo, hi)
    } else {
        (0, 0)
    }
}

#[inline(always)]
fn in_run(run: (usize, usize), r: usize) -> bool {
    (run.0..run.1).contains(&r)
}

/// Sum of `Σ_{(c,w)∈row} w·u[c]`.
#[inline(always)]
fn dot_row(row: &[(usize, f64)], u: &[f64]) -> f64 {
    row.iter().fold(0.0, |acc, &(c, w)| acc + w * u[c])
}

/// The `len` values of field `k` (fields `n` apart in `a`) from cell `at`.
#[inline(always)]
fn seg(a: &[f64], k: usize, n: usize, at: usize, len: usize) -> &[f64] {
    &a[k * n + at..][..len]
}

/// Cell offset of the line whose index along axis `a` is `to` instead of `from`.
#[inline(always)]
fn shift(base: usize, stride: usize, from: usize, to: usize) -> usize {
    base + to * stride - from * stride
}

/// Pre-clamp forward step of a bundle of states into `out`; `p` holds the prepared fields (`n`
/// cells apart, `n` = the grid's cells), `f` and `out` `f.len()/n` states one after the other,
/// `lines` three line-length scratch buffers. Line by line, every state of the bundle runs the
/// line before the next line starts, so the line's prepared fields are read from L1 by all but
/// the first.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_dim<const D: usize>(
    t: &Tables,
    p: &[f64],
    n: usize,
    f: &[f64],
    out: &mut [f64],
    s: &mut [f64],
    r1: &mut [f64],
    r2: &mut [f64],
) {
    debug_assert_eq!(t.dim, D);
    let nl = t.line_len();
    let (s, r1, r2) = (&mut s[..nl], &mut r1[..nl], &mut r2[..nl]);
    for m in 0..n / nl {
        for (fb, ob) in f.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            forward_line::<D>(t, p, fb, ob, s, r1, r2, m);
        }
    }
}

/// [`forward_dim`] for line `m` of one state.
#[inline(always)]
#[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
fn forward_line<const D: usize>(
    t: &Tables,
    p: &[f64],
    f: &[f64],
    out: &mut [f64],
    s: &mut [f64],
    r1: &mut [f64],
    r2: &mut [f64],
    m: usize,
) {
    // Prepared fields lie `pstride` apart (see [`prepared_stride`]).
    let (n, nl) = (t.pstride, t.line_len());
    debug_assert!(f.len() <= n);
    let last = D - 1;
    let (fal, fdll) = (t.fa[last], t.fd[last][last]);
    let ops_l = &t.axes[last];
    let (jlo, jhi) = ops_l.fwd;
    {
        let base = m * nl;
        let idx = t.outer_index(m);
        let f0 = &f[base..][..nl];
        let (pal0, pdll0) = (seg(p, fal, n, base, nl), seg(p, fdll, n, base, nl));
        // Outer axes along their strides: s, r1, r2 (the first axis initialises them).
        for a in 0..last {
            let (ops, st, ia) = (&t.axes[a], t.stride[a], idx[a]);
            let (ka, kaa, kal) = (t.fa[a], t.fd[a][a], t.fd[a][last]);
            if in_run(ops.fwd, ia) {
                let (bm, bp) = (base - st, base + st);
                let (fm, fp_) = (&f[bm..][..nl], &f[bp..][..nl]);
                let (axm, axp) = (seg(p, ka, n, bm, nl), seg(p, ka, n, bp, nl));
                let (dxxm, dxx0, dxxp) = (seg(p, kaa, n, bm, nl), seg(p, kaa, n, base, nl), seg(p, kaa, n, bp, nl));
                let (dxym, dxyp) = (seg(p, kal, n, bm, nl), seg(p, kal, n, bp, nl));
                if a == 0 {
                    for j in 0..nl {
                        s[j] = f0[j] - (axp[j] * fp_[j] - axm[j] * fm[j])
                            + (dxxp[j] * fp_[j] - 2.0 * (dxx0[j] * f0[j]) + dxxm[j] * fm[j]);
                        r1[j] = (dxyp[j] * fp_[j] - dxym[j] * fm[j]) - pal0[j] * f0[j];
                        r2[j] = pdll0[j] * f0[j];
                    }
                } else {
                    for j in 0..nl {
                        s[j] = s[j] - (axp[j] * fp_[j] - axm[j] * fm[j])
                            + (dxxp[j] * fp_[j] - 2.0 * (dxx0[j] * f0[j]) + dxxm[j] * fm[j]);
                        r1[j] += dxyp[j] * fp_[j] - dxym[j] * fm[j];
                    }
                }
            } else {
                if a == 0 {
                    for j in 0..nl {
                        s[j] = f0[j];
                        r1[j] = -(pal0[j] * f0[j]);
                        r2[j] = pdll0[j] * f0[j];
                    }
                }
                for &(k, w) in &ops.d1.rows[ia] {
                    let b = shift(base, st, ia, k);
                    let (fk, axk, dxyk) = (&f[b..][..nl], seg(p, ka, n, b, nl), seg(p, kal, n, b, nl));
                    for j in 0..nl {
                        s[j] -= w * (axk[j] * fk[j]);
                        r1[j] += w * (dxyk[j] * fk[j]);
                    }
                }
                for &(k, w) in &ops.d2.rows[ia] {
                    let b = shift(base, st, ia, k);
                    let (fk, dxxk) = (&f[b..][..nl], seg(p, kaa, n, b, nl));
                    for j in 0..nl {
                        s[j] += w * (dxxk[j] * fk[j]);
                    }
                }
            }
        }
        // Mixed outer pairs Δ1_aΔ1_b(p_ab f) (three dimensions: the xy term).
        // (An empty pair iterator still costs per line, so 2D skips it at compile time.)
        for (a, b) in pairs(last).take(if D > 2 { usize::MAX } else { 0 }) {
            let (oa, ob, ia, ib) = (&t.axes[a], &t.axes[b], idx[a], idx[b]);
            let (sa, sb, kab) = (t.stride[a], t.stride[b], t.fd[a][b]);
            let term = |c: usize| (&f[c..][..nl], seg(p, kab, n, c, nl));
            if oa.d1.is_standard(ia) && ob.d1.is_standard(ib) {
                let ((fpp, ppp), (fpm, ppm)) = (term(base + sa + sb), term(base + sa - sb));
                let ((fmp, pmp), (fmm, pmm)) = (term(base - sa + sb), term(base - sa - sb));
                for j in 0..nl {
                    s[j] += (ppp[j] * fpp[j] - ppm[j] * fpm[j]) - (pmp[j] * fmp[j] - pmm[j] * fmm[j]);
                }
            } else {
                for &(k, w) in &oa.d1.rows[ia] {
                    for &(k2, w2) in &ob.d1.rows[ib] {
                        let (fk, pk) = term(shift(shift(base, sa, ia, k), sb, ib, k2));
                        let w = w * w2;
                        for j in 0..nl {
                            s[j] += w * (pk[j] * fk[j]);
                        }
                    }
                }
            }
        }
        // Differences along the line.
        let o = &mut out[base..][..nl];
        if jhi > jlo {
            let (a, b, m) = (jlo, jhi, jhi - jlo);
            let (r1m, r1p) = (&r1[a - 1..][..m], &r1[a + 1..][..m]);
            let (r2m, r2c, r2p) = (&r2[a - 1..][..m], &r2[a..][..m], &r2[a + 1..][..m]);
            let (oc, sc) = (&mut o[a..b], &s[a..b]);
            for j in 0..m {
                oc[j] = sc[j] + (r1p[j] - r1m[j]) + (r2p[j] - 2.0 * r2c[j] + r2m[j]);
            }
        }
        for j in (0..jlo).chain(jhi..nl) {
            o[j] = s[j] + dot_row(&ops_l.d1.rows[j], r1) + dot_row(&ops_l.d2.rows[j], r2);
        }
    }
}

/// [`forward_dim`] for the grid's dimension.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward(t: &Tables, p: &[f64], n: usize, f: &[f64], out: &mut [f64], s: &mut [f64], r1: &mut [f64], r2: &mut [f64]) {
    match t.dim {
        2 => forward_dim::<2>(t, p, n, f, out, s, r1, r2),
        _ => forward_dim::<3>(t, p, n, f, out, s, r1, r2),
    }
}

/// Where the adjoint finds `G_k = S_kᵀλ` of field k along a line of the last axis: from the
/// outer-axis line buffers (`−Δ1_aᵀλ`, `Δ2_aᵀλ`, `(Δ1_aΔ1_b)ᵀλ`) or by differencing λ or `Δ1_aᵀλ`
/// along the line itself.
#[derive(Clone, Copy)]
enum GSrc {
    /// `−(Δ1_aᵀλ)` of outer axis a (A_a).
    T(usize),
    /// `Δ2_aᵀλ` of outer axis a (D_aa).
    G(usize),
    /// `(Δ1_aΔ1_b)ᵀλ` of outer pair q (D_ab, a < b outer).
    Pair(usize),
    /// `−Δ1ᵀλ` along the line (A_last).
    ALast,
    /// `Δ2ᵀλ` along the line (D_last,last).
    DLast,
    /// `Δ1ᵀ(Δ1_aᵀλ)` along the line (D_a,last).
    Mixed(usize),
}

/// The source of field `k`'s `G_k` in `dim` dimensions (field order as in [`fp`]).
#[inline(always)]
const fn g_src(dim: usize, k: usize) -> GSrc {
    let last = dim - 1;
    if k < dim {
        return if k < last { GSrc::T(k) } else { GSrc::ALast };
    }
    if k < 2 * dim {
        let i = k - dim;
        return if i < last { GSrc::G(i) } else { GSrc::DLast };
    }
    // Off-diagonal field: its pair (i, j), i < j, in the order (0,1), (0,2), …, (1,2), …
    let (mut q, mut i) = (k - 2 * dim, 0);
    while q >= dim - 1 - i {
        q -= dim - 1 - i;
        i += 1;
    }
    let j = i + 1 + q;
    if j == last {
        GSrc::Mixed(i)
    } else {
        GSrc::Pair(i * (2 * last - i - 1) / 2 + (j - i - 1))
    }
}

/// Runs `$body!(k)` for k = 0..9 (the most fields of any dimension), each guarded by `k < NF`:
/// constant indices, so the per-field code is specialised and unrolled at compile time.
macro_rules! each_field {
    ($nf:expr, $body:ident) => {
        each_field!(@ $nf, $body, 0, 1, 2, 3, 4, 5, 6, 7, 8)
    };
    (@ $nf:expr, $body:ident, $($k:literal),*) => {
        $(if $k < $nf { $body!($k); })*
    };
}

/// Adjoint of the pre-clamp step of a bundle: per state, `lam_in = λ + Σ_k p_k G_k` (summed in
/// field order), `d_k += f G_k` with `G_k = S_kᵀ λ`; `d` holds the prepared-field gradients (`n`
/// cells apart), `lines` the outer-axis line buffers. `D` is the dimension, `NF` its field count.
/// Line by line, the states of the bundle add into `d` in bundle order, while the line's `p_k`
/// and `d_k` stay in L1.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn adjoint_dim<const D: usize, const NF: usize>(
    t: &Tables,
    p: &[f64],
    n: usize,
    f: &[f64],
    lam: &[f64],
    lam_in: &mut [f64],
    d: &mut [f64],
    lines: &mut [f64],
) {
    debug_assert!(t.dim == D && NF == fp::n_fields(D));
    for m in 0..n / t.line_len() {
        for ((fb, lb), lib) in f.chunks_exact(n).zip(lam.chunks_exact(n)).zip(lam_in.chunks_exact_mut(n)) {
            adjoint_line::<D, NF>(t, p, fb, lb, lib, d, lines, m);
        }
    }
}

/// [`adjoint_dim`] for line `m` of one state.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn adjoint_line<const D: usize, const NF: usize>(
    t: &Tables,
    p: &[f64],
    f: &[f64],
    lam: &[f64],
    lam_in: &mut [f64],
    d: &mut [f64],
    lines: &mut [f64],
    m: usize,
) {
    // Prepared fields and their gradients lie `pstride` apart (see [`prepared_stride`]).
    let (n, nl) = (t.pstride, t.line_len());
    debug_assert!(f.len() <= n);
    let last = D - 1;
    let ops_l = &t.axes[last];
    let (jlo, jhi) = ops_l.adj;
    {
        let base = m * nl;
        let idx = t.outer_index(m);
        let l0 = &lam[base..][..nl];
        // Outer axes: Δ1_aᵀλ and Δ2_aᵀλ along the line.
        for a in 0..last {
            let (ops, st, ia) = (&t.axes[a], t.stride[a], idx[a]);
            let (tl, rest) = lines[t.line_t(a) * nl..].split_at_mut(nl);
            let gl = &mut rest[(t.line_g(a) - t.line_t(a) - 1) * nl..][..nl];
            if in_run(ops.adj, ia) {
                let (lm, lp) = (&lam[base - st..][..nl], &lam[base + st..][..nl]);
                outer_adjoint_interior(tl, gl, lm, l0, lp);
            } else {
                tl.fill(0.0);
                gl.fill(0.0);
                for &(k, w) in &ops.d1t.rows[ia] {
                    axpy(tl, w, &lam[shift(base, st, ia, k)..][..nl]);
                }
                for &(k, w) in &ops.d2t.rows[ia] {
                    axpy(gl, w, &lam[shift(base, st, ia, k)..][..nl]);
                }
            }
        }
        // Mixed outer pairs: (Δ1_aΔ1_b)ᵀλ.
        for (q, (a, b)) in pairs(last).enumerate().take(if D > 2 { usize::MAX } else { 0 }) {
            let (oa, ob, ia, ib) = (&t.axes[a], &t.axes[b], idx[a], idx[b]);
            let (sa, sb) = (t.stride[a], t.stride[b]);
            let gq = &mut lines[t.line_g_pair(q) * nl..][..nl];
            if oa.d1t.is_standard(ia) && ob.d1t.is_standard(ib) {
                let at = |c: usize| &lam[c..][..nl];
                let (lmm, lmp, lpm, lpp) = (at(base - sa - sb), at(base - sa + sb), at(base + sa - sb), at(base + sa + sb));
                pair_adjoint_interior(gq, lmm, lmp, lpm, lpp);
            } else {
                gq.fill(0.0);
                for &(k, w) in &oa.d1t.rows[ia] {
                    for &(k2, w2) in &ob.d1t.rows[ib] {
                        axpy(gq, w * w2, &lam[shift(shift(base, sa, ia, k), sb, ib, k2)..][..nl]);
                    }
                }
            }
        }
        // λ_in and the field gradients, one fused pass along the line.
        let lines: &[f64] = lines;
        let line = |i: usize| &lines[i * nl..][..nl];
        let tl: [&[f64]; 2] = std::array::from_fn(|a| line(t.line_t(a.min(last - 1))));
        let gl: [&[f64]; 2] = std::array::from_fn(|a| line(t.line_g(a.min(last - 1))));
        let gq: [&[f64]; 1] = [if last >= 2 { line(t.line_g_pair(0)) } else { tl[0] }];
        // Lines of the NF fields (constant-guarded, so the unused ones cost nothing).
        macro_rules! pline {
            ($k:literal) => {
                if $k < NF {
                    seg(p, $k, n, base, nl)
                } else {
                    &[][..]
                }
            };
        }
        let pk: [&[f64]; 9] =
            [pline!(0), pline!(1), pline!(2), pline!(3), pline!(4), pline!(5), pline!(6), pline!(7), pline!(8)];
        let (f0, li) = (&f[base..][..nl], &mut lam_in[base..][..nl]);
        let mut chunks = d.chunks_exact_mut(n);
        macro_rules! dline {
            ($k:literal) => {
                if $k < NF {
                    &mut chunks.next().expect("a gradient per field")[base..][..nl]
                } else {
                    &mut [][..]
                }
            };
        }
        let mut dk: [&mut [f64]; 9] =
            [dline!(0), dline!(1), dline!(2), dline!(3), dline!(4), dline!(5), dline!(6), dline!(7), dline!(8)];
        // Interior columns: every slice a local cut to the same length, so the loop vectorises.
        if jhi > jlo {
            let (a, b, mlen) = (jlo, jhi, jhi - jlo);
            let (lm, lc, lp) = (&l0[a - 1..][..mlen], &l0[a..][..mlen], &l0[a + 1..][..mlen]);
            let [t0, t1] = tl.map(|x| &x[a..b]);
            let [tm0, tm1] = tl.map(|x| &x[a - 1..][..mlen]);
            let [tp0, tp1] = tl.map(|x| &x[a + 1..][..mlen]);
            let [g0, g1] = gl.map(|x| &x[a..b]);
            let [q0] = gq.map(|x| &x[a..b]);
            let [p0, p1, p2, p3, p4, p5, p6, p7, p8] = pk;
            macro_rules! cut_p {
                ($k:literal, $x:ident) => {
                    let $x: &[f64] = if $k < NF { &$x[a..b] } else { $x };
                };
            }
            cut_p!(0, p0);
            cut_p!(1, p1);
            cut_p!(2, p2);
            cut_p!(3, p3);
            cut_p!(4, p4);
            cut_p!(5, p5);
            cut_p!(6, p6);
            cut_p!(7, p7);
            cut_p!(8, p8);
            let (fc, lic) = (&f0[a..b], &mut li[a..b]);
            let [d0, d1, d2, d3, d4, d5, d6, d7, d8] = &mut dk;
            macro_rules! cut {
                ($k:literal, $x:ident) => {
                    let $x: &mut [f64] = if $k < NF { &mut $x[a..b] } else { &mut $x[..0] };
                };
            }
            cut!(0, d0);
            cut!(1, d1);
            cut!(2, d2);
            cut!(3, d3);
            cut!(4, d4);
            cut!(5, d5);
            cut!(6, d6);
            cut!(7, d7);
            cut!(8, d8);
            combine_interior::<D, NF>(
                [lm, lc, lp],
                [t0, t1, tm0, tm1, tp0, tp1, g0, g1, q0],
                fc,
                lic,
                [p0, p1, p2, p3, p4, p5, p6, p7, p8],
                d0,
                d1,
                d2,
                d3,
                d4,
                d5,
                d6,
                d7,
                d8,
            );
        }
        // Edge columns: generic transposed rows, after the interior, whose streaming pass
        // has brought the line's coefficients and gradients into cache (the cells are
        // disjoint, so the order does not change any bit).
        for j in (0..jlo).chain(jhi..nl) {
            let mut acc = l0[j];
            macro_rules! field {
                ($k:literal) => {{
                    let g = match g_src(D, $k) {
                        GSrc::T(x) => -tl[x][j],
                        GSrc::G(x) => gl[x][j],
                        GSrc::Pair(x) => gq[x][j],
                        GSrc::ALast => -dot_row(&ops_l.d1t.rows[j], l0),
                        GSrc::DLast => dot_row(&ops_l.d2t.rows[j], l0),
                        GSrc::Mixed(x) => dot_row(&ops_l.d1t.rows[j], tl[x]),
                    };
                    acc += pk[$k][j] * g;
                    dk[$k][j] += f0[j] * g;
                }};
            }
            each_field!(NF, field);
            li[j] = acc;
        }
    }
}

/// The fused interior pass of the adjoint along one line: `lam_in = λ + Σ_k p_k G_k`,
/// `d_k += f G_k`. The mutable lines are separate arguments, so the compiler knows they do not
/// alias and vectorises without runtime checks; `d_k` for `k ≥ NF` are unused.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn combine_interior<const D: usize, const NF: usize>(
    l: [&[f64]; 3],
    outer: [&[f64]; 9],
    fc: &[f64],
    lic: &mut [f64],
    p: [&[f64]; 9],
    d0: &mut [f64],
    d1: &mut [f64],
    d2: &mut [f64],
    d3: &mut [f64],
    d4: &mut [f64],
    d5: &mut [f64],
    d6: &mut [f64],
    d7: &mut [f64],
    d8: &mut [f64],
) {
    let mlen = lic.len();
    let [lm, lc, lp] = l.map(|x| &x[..mlen]);
    let [t0, t1, tm0, tm1, tp0, tp1, g0, g1, q0] = outer.map(|x| &x[..mlen]);
    let fc = &fc[..mlen];
    let [p0, p1, p2, p3, p4, p5, p6, p7, p8] = p;
    macro_rules! cut_p {
        ($k:literal, $x:ident) => {
            let $x: &[f64] = if $k < NF { &$x[..mlen] } else { $x };
        };
    }
    cut_p!(0, p0);
    cut_p!(1, p1);
    cut_p!(2, p2);
    cut_p!(3, p3);
    cut_p!(4, p4);
    cut_p!(5, p5);
    cut_p!(6, p6);
    cut_p!(7, p7);
    cut_p!(8, p8);
    for j in 0..mlen {
        let mut acc = lc[j];
        macro_rules! field {
            ($k:literal, $d:ident, $p:ident) => {
                if $k < NF {
                    let g = match g_src(D, $k) {
                        GSrc::T(0) => -t0[j],
                        GSrc::T(_) => -t1[j],
                        GSrc::G(0) => g0[j],
                        GSrc::G(_) => g1[j],
                        GSrc::Pair(_) => q0[j],
                        GSrc::ALast => lp[j] - lm[j],
                        GSrc::DLast => lp[j] - 2.0 * lc[j] + lm[j],
                        GSrc::Mixed(0) => tm0[j] - tp0[j],
                        GSrc::Mixed(_) => tm1[j] - tp1[j],
                    };
                    acc += $p[j] * g;
                    $d[j] += fc[j] * g;
                }
            };
        }
        field!(0, d0, p0);
        field!(1, d1, p1);
        field!(2, d2, p2);
        field!(3, d3, p3);
        field!(4, d4, p4);
        field!(5, d5, p5);
        field!(6, d6, p6);
        field!(7, d7, p7);
        field!(8, d8, p8);
        lic[j] = acc;
    }
}

/// `t = λ_{−} − λ_{+}`, `g = λ_{+} − 2λ + λ_{−}` (interior rows of Δ1ᵀ and Δ2ᵀ).
#[inline(always)]
fn outer_adjoint_interior(t: &mut [f64], g: &mut [f64], lm: &[f64], l0: &[f64], lp: &[f64]) {
    let nl = t.len();
    let (g, lm, l0, lp) = (&mut g[..nl], &lm[..nl], &l0[..nl], &lp[..nl]);
    for j in 0..nl {
        t[j] = lm[j] - lp[j];
        g[j] = lp[j] - 2.0 * l0[j] + lm[j];
    }
}

/// `g = (λ_{−−} − λ_{−+}) − (λ_{+−} − λ_{++})` (interior rows of (Δ1_aΔ1_b)ᵀ).
#[inline(always)]
fn pair_adjoint_interior(g: &mut [f64], lmm: &[f64], lmp: &[f64], lpm: &[f64], lpp: &[f64]) {
    let nl = g.len();
    let (lmm, lmp, lpm, lpp) = (&lmm[..nl], &lmp[..nl], &lpm[..nl], &lpp[..nl]);
    for j in 0..nl {
        g[j] = (lmm[j] - lmp[j]) - (lpm[j] - lpp[j]);
    }
}

/// `y += w·x`.
#[inline(always)]
fn axpy(y: &mut [f64], w: f64, x: &[f64]) {
    let x = &x[..y.len()];
    for j in 0..y.len() {
        y[j] += w * x[j];
    }
}

/// [`adjoint_dim`] for the grid's dimension.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn adjoint(t: &Tables, p: &[f64], n: usize, f: &[f64], lam: &[f64], lam_in: &mut [f64], d: &mut [f64], lines: &mut [f64]) {
    match t.dim {
        2 => adjoint_dim::<2, { fp::n_fields(2) }>(t, p, n, f, lam, lam_in, d, lines),
        _ => adjoint_dim::<3, { fp::n_fields(3) }>(t, p, n, f, lam, lam_in, d, lines),
    }
}

crate::simd_kernel!(forward_k, forward, (
    t: &Tables, p: &[f64], n: usize, f: &[f64], out: &mut [f64], s: &mut [f64], r1: &mut [f64], r2: &mut [f64]
));

/// [`forward_k`] over a bundle of `f.len()/n` states, its three line buffers taken from the front
/// of `lines`.
fn forward_lines(t: &Tables, p: &[f64], n: usize, f: &[f64], out: &mut [f64], lines: &mut [f64]) {
    let nl = t.line_len();
    let (s, rest) = lines.split_at_mut(nl);
    let (r1, r2) = rest.split_at_mut(nl);
    crate::simd_dispatch!(forward_k(t, p, n, f, out, s, r1, r2));
}
crate::simd_kernel!(adjoint_k, adjoint, (
    t: &Tables, p: &[f64], n: usize, f: &[f64], lam: &[f64], lam_in: &mut [f64], d: &mut [f64], lines: &mut [f64]
));

impl Scheme for Central {
    fn name(&self) -> &'static str {
        "central"
    }
    fn grid(&self) -> &VelocityGrid {
        &self.grid
    }
    fn n_fields(&self) -> usize {
        fp::n_fields(self.grid.dim())
    }
    fn n_prepared(&self) -> usize {
        fp::n_fields(self.grid.dim())
    }
    fn substeps(&self, coeffs: ArrayView3<f64>, dt: f64) -> usize {
        match self.substeps {
            Substeps::Fixed(n) => n.max(1),
            Substeps::Auto(_) => substeps_for(self.max_rate(coeffs), dt, AUTO_LIMIT),
        }
    }
    fn prepared_shape(&self) -> (usize, usize, usize) {
        let nf = fp::n_fields(self.grid.dim());
        if self.tables.pstride == self.grid.n_cells() {
            self.grid.fields_shape(nf)
        } else {
            (nf, 1, self.tables.pstride)
        }
    }
    fn prepare(&self, coeffs: ArrayView3<f64>, h: f64, mut out: ArrayViewMut3<f64>) {
        assert_eq!(out.dim(), self.prepared_shape(), "central: prepared buffer of the wrong shape");
        let n = self.grid.n_cells();
        for (k, (mut o, c)) in out.outer_iter_mut().zip(coeffs.outer_iter()).enumerate() {
            let s = h * self.scales[k];
            let o = o.as_slice_mut().expect("prepared fields are contiguous");
            for (o, &c) in o[..n].iter_mut().zip(c.iter()) {
                *o = s * c;
            }
            o[n..].fill(0.0);
        }
    }
    fn prepare_vjp(
        &self,
        _coeffs: ArrayView3<f64>,
        h: f64,
        d_prepared: ArrayView3<f64>,
        mut d_coeffs: ArrayViewMut3<f64>,
    ) {
        let n = self.grid.n_cells();
        for (k, (mut dc, dp)) in d_coeffs.outer_iter_mut().zip(d_prepared.outer_iter()).enumerate() {
            let s = h * self.scales[k];
            let dp = dp.to_slice().expect("prepared gradients are contiguous");
            for (dc, &dp) in dc.iter_mut().zip(&dp[..n]) {
                *dc += s * dp;
            }
        }
    }
    fn workspace(&self) -> StepWorkspace {
        let (n, nl) = (self.grid.n_cells(), self.tables.line_len());
        let lines = self.tables.n_adjoint_lines().max(3) * nl;
        StepWorkspace { bufs: vec![vec![0.0; lines], vec![0.0; n], vec![0.0; n]] }
    }
    fn step_bundle(&self, prepared: &Fields, f: &[f64], out: &mut [f64], ws: &mut StepWorkspace) {
        self.step(prepared, f, out, ws)
    }
    fn step_vjp_bundle(
        &self,
        prepared: &Fields,
        f: &[f64],
        lam_out: &[f64],
        lam_in: &mut [f64],
        d_prepared: &mut Fields,
        ws: &mut StepWorkspace,
    ) {
        self.step_vjp(prepared, f, lam_out, lam_in, d_prepared, ws)
    }
    fn records_mask(&self) -> bool {
        self.clamp
    }
    fn step_masked(&self, prepared: &Fields, f: &[f64], out: &mut [f64], mask: &mut [u64], ws: &mut StepWorkspace) {
        self.forward_step(prepared, f, out, Some(mask), ws)
    }
    fn step_vjp_masked(
        &self,
        prepared: &Fields,
        f: &[f64],
        lam_out: &[f64],
        lam_in: &mut [f64],
        d_prepared: &mut Fields,
        mask: &[u64],
        ws: &mut StepWorkspace,
    ) {
        self.adjoint_step(prepared, f, lam_out, lam_in, d_prepared, Some(mask), ws)
    }
    /// Takes bundles too (see [`Scheme::step_bundle`]).
    fn step(&self, prepared: &Fields, f: &[f64], out: &mut [f64], ws: &mut StepWorkspace) {
        self.forward_step(prepared, f, out, None, ws)
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
        self.adjoint_step(prepared, f, lam_out, lam_in, d_prepared, None, ws)
    }
}

impl Central {
    /// The step of a bundle, clamped if configured, recording the clamp's active set in `mask`
    /// when given.
    fn forward_step(&self, prepared: &Fields, f: &[f64], out: &mut [f64], mask: Option<&mut [u64]>, ws: &mut StepWorkspace) {
        assert_eq!(prepared.dim(), self.prepared_shape(), "central: prepared coefficients of the wrong shape");
        let [lines, ..] = &mut ws.bufs[..] else { panic!("central: workspace from another scheme") };
        let p = prepared.as_slice().expect("prepared fields are contiguous");
        forward_lines(&self.tables, p, self.grid.n_cells(), f, out, lines);
        match (self.clamp, mask) {
            (false, _) => {}
            (true, Some(mask)) => clamp_recording(out, mask),
            (true, None) => clamp_nonnegative(out),
        }
    }

    /// The adjoint of a bundle's step: through the clamp by the recorded `mask`, or by the
    /// active set of the step recomputed from `f` when there is none.
    #[allow(clippy::too_many_arguments)]
    fn adjoint_step(
        &self,
        prepared: &Fields,
        f: &[f64],
        lam_out: &[f64],
        lam_in: &mut [f64],
        d_prepared: &mut Fields,
        mask: Option<&[u64]>,
        ws: &mut StepWorkspace,
    ) {
        assert!(prepared.dim() == self.prepared_shape() && d_prepared.dim() == self.prepared_shape(), "central: prepared buffers of the wrong shape");
        let [lines, pre, lam_m] = &mut ws.bufs[..] else { panic!("central: workspace from another scheme") };
        let p = prepared.as_slice().expect("prepared fields are contiguous");
        let n = self.grid.n_cells();
        let lam: &[f64] = if self.clamp {
            let lam_m = grown(lam_m, f.len());
            match mask {
                Some(mask) => apply_mask(mask, lam_out, lam_m),
                None => {
                    let pre = grown(pre, f.len());
                    forward_lines(&self.tables, p, n, f, pre, lines);
                    clamp_mask(pre, lam_out, lam_m);
                }
            }
            lam_m
        } else {
            lam_out
        };
        let d = d_prepared.as_slice_mut().expect("d_prepared is contiguous");
        crate::simd_dispatch!(adjoint_k(&self.tables, p, n, f, lam, lam_in, d, lines));
    }
}

/// The first `len` values of `buf`, grown to the largest bundle seen (once, never per step).
fn grown(buf: &mut Vec<f64>, len: usize) -> &mut [f64] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn prepared_fields_never_lie_a_multiple_of_4_kib_apart() {
        for n in (1..20_000).chain([51 * 51, 64 * 64, 128 * 128, 32 * 32 * 32, 48 * 48 * 48, 51 * 51 * 51, 64 * 64 * 64]) {
            let stride = prepared_stride(n);
            let r = (8 * stride) % 4096;
            assert!(stride >= n && stride < n + 512, "{n}: stride {stride}");
            assert!((256..=4096 - 256).contains(&r), "{n}: fields {r} bytes off a multiple of 4 KiB");
            // Nine fields fall in distinct 64-byte lines of a page.
            let lines: std::collections::BTreeSet<usize> = (0..9).map(|k| (k * 8 * stride) % 4096 / 64).collect();
            assert!(stride == n || lines.len() == 9, "{n}: {lines:?}");
        }
        // Grids that need no padding keep the plain field layout.
        assert_eq!(prepared_stride(51 * 51), 51 * 51);
        assert_eq!(prepared_stride(51 * 51 * 51), 51 * 51 * 51);
        let g = VelocityGrid::new(64, 64, [-1.0, 1.0, -1.0, 1.0], "v_th").unwrap();
        let s = Central::new(&g, Boundary::Guard, false, Substeps::Fixed(1));
        assert_eq!(s.prepared_shape(), (5, 1, prepared_stride(4096)));
        assert_ne!(prepared_stride(4096), 4096);
    }

    /// A bundle's step and adjoint are bitwise those of its states one by one, and the adjoint
    /// given the recorded clamp mask is bitwise the one that recomputes the step; in 2D and 3D,
    /// with states whose clamp is active in many cells.
    #[test]
    fn bundles_and_recorded_masks_are_bitwise_exact() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let grids = [
            VelocityGrid::new(9, 13, [-1.0, 1.0, -2.0, 2.0], "v_th").unwrap(),
            VelocityGrid::new3(6, 5, 11, [-1.0, 1.0, -2.0, 2.0, -1.0, 3.0], "v_th").unwrap(),
        ];
        for grid in &grids {
            for boundary in [Boundary::Guard, Boundary::OneSided] {
                let s = Central::new(grid, boundary, true, Substeps::Fixed(1));
                let (n, nf) = (grid.n_cells(), fp::n_fields(grid.dim()));
                let mut prepared = Fields::zeros(grid.fields_shape(nf));
                prepared.iter_mut().for_each(|v| *v = rng.gen_range(-0.3..0.3));
                let nb = 3;
                // Some values exactly 0 (clamp boundary), some negative after a step.
                let f: Vec<f64> = (0..nb * n).map(|i| if i % 7 == 0 { 0.0 } else { rng.gen_range(-0.1..1.0) }).collect();
                let lam: Vec<f64> = (0..nb * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
                let mut ws = s.workspace();
                // One by one, recomputing the clamp.
                let (mut out1, mut li1, mut d1) = (vec![0.0; nb * n], vec![0.0; nb * n], Fields::zeros(prepared.raw_dim()));
                for b in 0..nb {
                    let r = b * n..(b + 1) * n;
                    s.step(&prepared, &f[r.clone()], &mut out1[r.clone()], &mut ws);
                    s.step_vjp(&prepared, &f[r.clone()], &lam[r.clone()], &mut li1[r], &mut d1, &mut ws);
                }
                // As a bundle, with the recorded mask.
                let (mut out2, mut li2, mut d2) = (vec![0.0; nb * n], vec![0.0; nb * n], Fields::zeros(prepared.raw_dim()));
                let mut mask = vec![0u64; crate::solver::mask_words(nb * n)];
                assert!(s.records_mask());
                s.step_masked(&prepared, &f, &mut out2, &mut mask, &mut ws);
                s.step_vjp_masked(&prepared, &f, &lam, &mut li2, &mut d2, &mask, &mut ws);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out1), bits(&out2), "{boundary:?} {}D step", grid.dim());
                assert_eq!(bits(&li1), bits(&li2), "{boundary:?} {}D λ", grid.dim());
                assert_eq!(bits(d1.as_slice().unwrap()), bits(d2.as_slice().unwrap()), "{boundary:?} {}D ∂p", grid.dim());
                let clamped = mask.iter().map(|w| w.count_zeros()).sum::<u32>() as usize - (64 * mask.len() - nb * n);
                assert!(clamped > nb * n / 20, "only {clamped} clamped values: the test would not exercise the mask");
                // And the recomputing bundled adjoint agrees too.
                let (mut li3, mut d3) = (vec![0.0; nb * n], Fields::zeros(prepared.raw_dim()));
                s.step_vjp_bundle(&prepared, &f, &lam, &mut li3, &mut d3, &mut ws);
                assert_eq!(bits(&li1), bits(&li3));
                assert_eq!(bits(d1.as_slice().unwrap()), bits(d3.as_slice().unwrap()));
            }
        }
    }

    /// The AVX2 and plain builds of both kernels give the same bits, in 2D and 3D.
    #[test]
    fn simd_and_plain_kernels_agree_bitwise() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            let grids = [
                VelocityGrid::new(9, 13, [-1.0, 1.0, -2.0, 2.0], "v_th").unwrap(),
                VelocityGrid::new3(6, 5, 11, [-1.0, 1.0, -2.0, 2.0, -1.0, 3.0], "v_th").unwrap(),
            ];
            for (grid, boundary) in grids.iter().flat_map(|g| [(g, Boundary::Guard), (g, Boundary::OneSided)]) {
                let t = Tables::new(grid, boundary);
                let (n, nf) = (grid.n_cells(), fp::n_fields(grid.dim()));
                let mut rand_vec = |len: usize| (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>();
                let (p, f, lam) = (rand_vec(nf * n), rand_vec(n), rand_vec(n));
                let run = |avx: bool| {
                    let (mut out, mut lam_in, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; nf * n]);
                    let mut lines = vec![0.0; t.n_adjoint_lines().max(3) * t.line_len()];
                    if avx {
                        // SAFETY: AVX2 checked above.
                        unsafe {
                            let (s, rest) = lines.split_at_mut(t.line_len());
                            let (r1, r2) = rest.split_at_mut(t.line_len());
                            forward_k::avx2(&t, &p, n, &f, &mut out, s, r1, r2);
                            adjoint_k::avx2(&t, &p, n, &f, &lam, &mut lam_in, &mut d, &mut lines);
                        }
                    } else {
                        let (s, rest) = lines.split_at_mut(t.line_len());
                        let (r1, r2) = rest.split_at_mut(t.line_len());
                        forward_k::plain(&t, &p, n, &f, &mut out, s, r1, r2);
                        adjoint_k::plain(&t, &p, n, &f, &lam, &mut lam_in, &mut d, &mut lines);
                    }
                    (out, lam_in, d)
                };
                let (x, y) = (run(true), run(false));
                assert!(x.0.iter().zip(&y.0).all(|(a, b)| a.to_bits() == b.to_bits()));
                assert!(x.1.iter().zip(&y.1).all(|(a, b)| a.to_bits() == b.to_bits()));
                assert!(x.2.iter().zip(&y.2).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }
}
