//! The reference code's explicit central-difference Fokker–Planck step (`guard` and `one-sided`
//! edges, optional clamp) and its exact discrete adjoint.
//!
//! With Δ1 u_r = u_{r+1} − u_{r−1} (twice the reference's δ1), Δ2 = δ2, and the prepared fields
//! `p = [hÂx/2, hÂy/2, hD̂xx/2, hD̂yy/2, hD̂xy/4]` (grid units, step `h` folded in), the step is
//!
//! `out = f − Δ1x(p_ax f) − Δ1y(p_ay f) + Δ2x(p_xx f) + Δ2y(p_yy f) + Δ1xΔ1y(p_xy f)`,
//!
//! exactly the formula: both orders of the mixed term are the same tensor product
//! Δ1x⊗Δ1y, so `½(δ1xδ1y + δ1yδ1x) = ¼Δ1xΔ1y`. Each 1-D operator is a [`Table1D`]: interior
//! rows run a hard-coded, auto-vectorised fast path, edge rows (guard truncation or one-sided
//! stencils) a generic sparse path. The adjoint is the same machinery with transposed tables:
//! `G_k = S_kᵀ λ`, `λ_in = λ + Σ_k p_k G_k`, `d p_k += f G_k`, one fused pass per row.
//!
//! Step bound for `substeps: auto`: with D̂xx, D̂yy ≥ 0 and `h(D̂xx + D̂yy) ≤ 1` every column of
//! the step matrix has ℓ1 norm ≤ 1 + h(|Âx| + |Ây| + |D̂xy|) (interior, guard), so errors grow
//! at most like `exp(t·max(|Âx|+|Ây|+|D̂xy|))` whatever `h`. `auto` takes, with a factor-2 margin,
//! the smallest n with `h·max_cells(|D̂xx| + |D̂yy| + |D̂xy| + |Âx| + |Ây|) ≤ ½`.

use super::stencil::{grid_unit_scales, substeps_for, Table1D};
use super::{Boundary, Scheme, StepWorkspace, Substeps};
use crate::grid::VelocityGrid;
use crate::operator::{fp, Fields};
use ndarray::{ArrayView3, ArrayViewMut3, Axis, Zip};

/// Prepared field k is `h · FACTOR[k] · (grid-unit coefficient k)`.
const FACTOR: [f64; fp::N_FIELDS] = [0.5, 0.5, 0.5, 0.5, 0.25];
/// The `auto` step bound: `h · max(|D̂xx|+|D̂yy|+|D̂xy|+|Âx|+|Ây|) ≤ AUTO_LIMIT`.
pub const AUTO_LIMIT: f64 = 0.5;

/// The 1-D operators along each axis and their transposes.
#[derive(Clone, Debug)]
pub struct Tables {
    x1: Table1D,
    x2: Table1D,
    y1: Table1D,
    y2: Table1D,
    x1t: Table1D,
    x2t: Table1D,
    y1t: Table1D,
    y2t: Table1D,
}

impl Tables {
    fn new(grid: &VelocityGrid, boundary: Boundary) -> Self {
        let (x1, x2) = (Table1D::first(grid.nx, boundary), Table1D::second(grid.nx, boundary));
        let (y1, y2) = (Table1D::first(grid.ny, boundary), Table1D::second(grid.ny, boundary));
        Self { x1t: x1.transpose(), x2t: x2.transpose(), y1t: y1.transpose(), y2t: y2.transpose(), x1, x2, y1, y2 }
    }
}

/// The `central` scheme.
#[derive(Debug)]
pub struct Central {
    grid: VelocityGrid,
    boundary: Boundary,
    clamp: bool,
    substeps: Substeps,
    scales: [f64; fp::N_FIELDS],
    tables: Tables,
}

impl Central {
    pub fn new(grid: &VelocityGrid, boundary: Boundary, clamp: bool, substeps: Substeps) -> Self {
        let units = grid_unit_scales(grid);
        let scales = std::array::from_fn(|k| units[k] * FACTOR[k]);
        Self { grid: grid.clone(), boundary, clamp, substeps, scales, tables: Tables::new(grid, boundary) }
    }

    pub fn boundary(&self) -> Boundary {
        self.boundary
    }

    /// `max over cells of |D̂xx| + |D̂yy| + |D̂xy| + |Âx| + |Ây|` (grid units, per unit time).
    pub fn max_rate(&self, coeffs: ArrayView3<f64>) -> f64 {
        let units = grid_unit_scales(&self.grid);
        let mut total = ndarray::Array2::<f64>::zeros((self.grid.nx, self.grid.ny));
        for (k, field) in coeffs.axis_iter(Axis(0)).enumerate().take(fp::N_FIELDS) {
            Zip::from(&mut total).and(&field).for_each(|t, &c| *t += (c * units[k]).abs());
        }
        total.iter().fold(0.0, |m, &t| if t > m || t.is_nan() { t } else { m })
    }
}

fn row(a: &[f64], r: usize, n: usize) -> &[f64] {
    &a[r * n..][..n]
}

/// Split a `[5, nx, ny]` prepared array into its five C-order field slices.
fn fields(prepared: &Fields) -> [&[f64]; fp::N_FIELDS] {
    let s = prepared.as_slice().expect("prepared fields are contiguous");
    let n = s.len() / fp::N_FIELDS;
    std::array::from_fn(|k| &s[k * n..(k + 1) * n])
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

/// Sum of `Σ_{(c,w)∈row} w·u[c]`.
#[inline(always)]
fn dot_row(row: &[(usize, f64)], u: &[f64]) -> f64 {
    row.iter().fold(0.0, |acc, &(c, w)| acc + w * u[c])
}

/// Pre-clamp forward step into `out`. `sx`, `r1`, `r2` are `ny`-long scratch rows.
#[inline(always)]
fn forward(t: &Tables, p: [&[f64]; 5], f: &[f64], out: &mut [f64], sx: &mut [f64], r1: &mut [f64], r2: &mut [f64]) {
    let (nx, ny) = (t.x1.rows.len(), t.y1.rows.len());
    let [ax, ay, dxx, dyy, dxy] = p;
    let (sx, r1, r2) = (&mut sx[..ny], &mut r1[..ny], &mut r2[..ny]);
    let (jlo, jhi) = common_interior(&t.y1, &t.y2);
    for i in 0..nx {
        let (f0, ay0, dyy0) = (row(f, i, ny), row(ay, i, ny), row(dyy, i, ny));
        // Terms differenced along x (sx), and the rows still to be differenced along y.
        if t.x1.is_standard(i) && t.x2.is_standard(i) {
            let (fm, fp_) = (row(f, i - 1, ny), row(f, i + 1, ny));
            let (axm, axp) = (row(ax, i - 1, ny), row(ax, i + 1, ny));
            let (dxxm, dxx0, dxxp) = (row(dxx, i - 1, ny), row(dxx, i, ny), row(dxx, i + 1, ny));
            let (dxym, dxyp) = (row(dxy, i - 1, ny), row(dxy, i + 1, ny));
            for j in 0..ny {
                sx[j] = f0[j] - (axp[j] * fp_[j] - axm[j] * fm[j])
                    + (dxxp[j] * fp_[j] - 2.0 * (dxx0[j] * f0[j]) + dxxm[j] * fm[j]);
                r1[j] = (dxyp[j] * fp_[j] - dxym[j] * fm[j]) - ay0[j] * f0[j];
                r2[j] = dyy0[j] * f0[j];
            }
        } else {
            for j in 0..ny {
                sx[j] = f0[j];
                r1[j] = -(ay0[j] * f0[j]);
                r2[j] = dyy0[j] * f0[j];
            }
            for &(k, w) in &t.x1.rows[i] {
                let (fk, axk, dxyk) = (row(f, k, ny), row(ax, k, ny), row(dxy, k, ny));
                for j in 0..ny {
                    sx[j] -= w * (axk[j] * fk[j]);
                    r1[j] += w * (dxyk[j] * fk[j]);
                }
            }
            for &(k, w) in &t.x2.rows[i] {
                let (fk, dxxk) = (row(f, k, ny), row(dxx, k, ny));
                for j in 0..ny {
                    sx[j] += w * (dxxk[j] * fk[j]);
                }
            }
        }
        // Differences along y.
        let o = &mut out[i * ny..][..ny];
        if jhi > jlo {
            let (a, b, m) = (jlo, jhi, jhi - jlo);
            let (r1m, r1p) = (&r1[a - 1..][..m], &r1[a + 1..][..m]);
            let (r2m, r2c, r2p) = (&r2[a - 1..][..m], &r2[a..][..m], &r2[a + 1..][..m]);
            let (oc, sxc) = (&mut o[a..b], &sx[a..b]);
            for j in 0..m {
                oc[j] = sxc[j] + (r1p[j] - r1m[j]) + (r2p[j] - 2.0 * r2c[j] + r2m[j]);
            }
        }
        for j in (0..jlo).chain(jhi..ny) {
            o[j] = sx[j] + dot_row(&t.y1.rows[j], r1) + dot_row(&t.y2.rows[j], r2);
        }
    }
}

/// Adjoint of the pre-clamp step: `lam_in = λ + Σ p_k G_k`, `d_k += f G_k` with `G_k = S_kᵀ λ`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn adjoint(
    t: &Tables,
    p: [&[f64]; 5],
    f: &[f64],
    lam: &[f64],
    lam_in: &mut [f64],
    d: [&mut [f64]; 5],
    tx: &mut [f64],
    gxx: &mut [f64],
) {
    let (nx, ny) = (t.x1.rows.len(), t.y1.rows.len());
    let [ax, ay, dxx, dyy, dxy] = p;
    let [dax, day, ddxx, ddyy, ddxy] = d;
    let (tx, gxx) = (&mut tx[..ny], &mut gxx[..ny]);
    let (jlo, jhi) = common_interior(&t.y1t, &t.y2t);
    for i in 0..nx {
        // tx = (Δ1xᵀ λ)_i, gxx = (Δ2xᵀ λ)_i.
        let l0 = row(lam, i, ny);
        if t.x1t.is_standard(i) && t.x2t.is_standard(i) {
            let (lm, lp) = (row(lam, i - 1, ny), row(lam, i + 1, ny));
            for j in 0..ny {
                tx[j] = lm[j] - lp[j];
                gxx[j] = lp[j] - 2.0 * l0[j] + lm[j];
            }
        } else {
            tx.fill(0.0);
            gxx.fill(0.0);
            for &(k, w) in &t.x1t.rows[i] {
                let lk = row(lam, k, ny);
                for j in 0..ny {
                    tx[j] += w * lk[j];
                }
            }
            for &(k, w) in &t.x2t.rows[i] {
                let lk = row(lam, k, ny);
                for j in 0..ny {
                    gxx[j] += w * lk[j];
                }
            }
        }
        let s = i * ny..;
        let (f0, li) = (&f[s.clone()][..ny], &mut lam_in[s.clone()][..ny]);
        let (ax0, ay0, dxx0, dyy0, dxy0) = (
            &ax[s.clone()][..ny],
            &ay[s.clone()][..ny],
            &dxx[s.clone()][..ny],
            &dyy[s.clone()][..ny],
            &dxy[s.clone()][..ny],
        );
        let (dax0, day0, ddxx0, ddyy0, ddxy0) = (
            &mut dax[s.clone()][..ny],
            &mut day[s.clone()][..ny],
            &mut ddxx[s.clone()][..ny],
            &mut ddyy[s.clone()][..ny],
            &mut ddxy[s.clone()][..ny],
        );
        // Interior columns: every slice cut to the same length m so the loop vectorises.
        if jhi > jlo {
            let (a, b, m) = (jlo, jhi, jhi - jlo);
            let (lm, lc, lp) = (&l0[a - 1..][..m], &l0[a..][..m], &l0[a + 1..][..m]);
            let (tm, tc, tp, gc) = (&tx[a - 1..][..m], &tx[a..][..m], &tx[a + 1..][..m], &gxx[a..b]);
            let (fc, lic) = (&f0[a..b], &mut li[a..b]);
            let (axc, ayc, dxxc, dyyc, dxyc) = (&ax0[a..b], &ay0[a..b], &dxx0[a..b], &dyy0[a..b], &dxy0[a..b]);
            let (daxc, dayc, ddxxc, ddyyc, ddxyc) =
                (&mut dax0[a..b], &mut day0[a..b], &mut ddxx0[a..b], &mut ddyy0[a..b], &mut ddxy0[a..b]);
            for j in 0..m {
                let (gax, gxx_) = (-tc[j], gc[j]);
                let gay = lp[j] - lm[j];
                let gyy = lp[j] - 2.0 * lc[j] + lm[j];
                let gxy = tm[j] - tp[j];
                lic[j] = lc[j] + axc[j] * gax + ayc[j] * gay + dxxc[j] * gxx_ + dyyc[j] * gyy + dxyc[j] * gxy;
                daxc[j] += fc[j] * gax;
                dayc[j] += fc[j] * gay;
                ddxxc[j] += fc[j] * gxx_;
                ddyyc[j] += fc[j] * gyy;
                ddxyc[j] += fc[j] * gxy;
            }
        }
        // Edge columns: generic transposed rows.
        for j in (0..jlo).chain(jhi..ny) {
            let (gax, gxx_) = (-tx[j], gxx[j]);
            let gay = -dot_row(&t.y1t.rows[j], l0);
            let gyy = dot_row(&t.y2t.rows[j], l0);
            let gxy = dot_row(&t.y1t.rows[j], tx);
            li[j] = l0[j] + ax0[j] * gax + ay0[j] * gay + dxx0[j] * gxx_ + dyy0[j] * gyy + dxy0[j] * gxy;
            dax0[j] += f0[j] * gax;
            day0[j] += f0[j] * gay;
            ddxx0[j] += f0[j] * gxx_;
            ddyy0[j] += f0[j] * gyy;
            ddxy0[j] += f0[j] * gxy;
        }
    }
}

crate::simd_kernel!(forward_k, forward, (
    t: &Tables, p: [&[f64]; 5], f: &[f64], out: &mut [f64], sx: &mut [f64], r1: &mut [f64], r2: &mut [f64]
));
crate::simd_kernel!(adjoint_k, adjoint, (
    t: &Tables, p: [&[f64]; 5], f: &[f64], lam: &[f64], lam_in: &mut [f64], d: [&mut [f64]; 5],
    tx: &mut [f64], gxx: &mut [f64]
));

/// `f ← max(f, 0)`.
pub(crate) fn clamp_nonnegative(f: &mut [f64]) {
    for v in f.iter_mut() {
        *v = v.max(0.0);
    }
}

/// `lam_masked = lam` where `pre ≥ 0` (the clamp passes), else 0 (as PyTorch's clamp).
pub(crate) fn clamp_mask(pre: &[f64], lam: &[f64], lam_masked: &mut [f64]) {
    for ((m, &l), &p) in lam_masked.iter_mut().zip(lam).zip(pre) {
        *m = if p >= 0.0 { l } else { 0.0 };
    }
}

impl Scheme for Central {
    fn name(&self) -> &'static str {
        "central"
    }
    fn grid(&self) -> &VelocityGrid {
        &self.grid
    }
    fn n_fields(&self) -> usize {
        fp::N_FIELDS
    }
    fn n_prepared(&self) -> usize {
        fp::N_FIELDS
    }
    fn substeps(&self, coeffs: ArrayView3<f64>, dt: f64) -> usize {
        match self.substeps {
            Substeps::Fixed(n) => n.max(1),
            Substeps::Auto(_) => substeps_for(self.max_rate(coeffs), dt, AUTO_LIMIT),
        }
    }
    fn prepare(&self, coeffs: ArrayView3<f64>, h: f64, mut out: ArrayViewMut3<f64>) {
        for (k, (mut o, c)) in out.outer_iter_mut().zip(coeffs.outer_iter()).enumerate() {
            let s = h * self.scales[k];
            Zip::from(&mut o).and(&c).for_each(|o, &c| *o = s * c);
        }
    }
    fn prepare_vjp(
        &self,
        _coeffs: ArrayView3<f64>,
        h: f64,
        d_prepared: ArrayView3<f64>,
        mut d_coeffs: ArrayViewMut3<f64>,
    ) {
        for (k, (mut dc, dp)) in d_coeffs.outer_iter_mut().zip(d_prepared.outer_iter()).enumerate() {
            let s = h * self.scales[k];
            Zip::from(&mut dc).and(&dp).for_each(|dc, &dp| *dc += s * dp);
        }
    }
    fn workspace(&self) -> StepWorkspace {
        let (n, ny) = (self.grid.n_cells(), self.grid.ny);
        StepWorkspace { bufs: vec![vec![0.0; ny], vec![0.0; ny], vec![0.0; ny], vec![0.0; n], vec![0.0; n]] }
    }
    fn step(&self, prepared: &Fields, f: &[f64], out: &mut [f64], ws: &mut StepWorkspace) {
        let [sx, r1, r2, ..] = &mut ws.bufs[..] else { panic!("central: workspace from another scheme") };
        crate::simd_dispatch!(forward_k(&self.tables, fields(prepared), f, out, sx, r1, r2));
        if self.clamp {
            clamp_nonnegative(out);
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
        let [sx, r1, r2, pre, lam_m] = &mut ws.bufs[..] else { panic!("central: workspace from another scheme") };
        let p = fields(prepared);
        let lam: &[f64] = if self.clamp {
            crate::simd_dispatch!(forward_k(&self.tables, p, f, pre, sx, r1, r2));
            clamp_mask(pre, lam_out, lam_m);
            lam_m
        } else {
            lam_out
        };
        let d = d_prepared.as_slice_mut().expect("d_prepared is contiguous");
        let n = d.len() / fp::N_FIELDS;
        let mut it = d.chunks_exact_mut(n);
        let d: [&mut [f64]; 5] = std::array::from_fn(|_| it.next().expect("five fields"));
        crate::simd_dispatch!(adjoint_k(&self.tables, p, f, lam, lam_in, d, sx, r1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The AVX2 and plain builds of both kernels give the same bits.
    #[test]
    fn simd_and_plain_kernels_agree_bitwise() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            for boundary in [Boundary::Guard, Boundary::OneSided] {
                let grid = VelocityGrid::new(9, 13, [-1.0, 1.0, -2.0, 2.0], "v_th").unwrap();
                let t = Tables::new(&grid, boundary);
                let n = grid.n_cells();
                let mut rand_vec = |len: usize| (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>();
                let (p, f, lam) = (rand_vec(5 * n), rand_vec(n), rand_vec(n));
                let pf: [&[f64]; 5] = std::array::from_fn(|k| &p[k * n..(k + 1) * n]);
                let run = |avx: bool| {
                    let (mut out, mut lam_in, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; 5 * n]);
                    let (mut a, mut b, mut c) = (vec![0.0; 13], vec![0.0; 13], vec![0.0; 13]);
                    let mut it = d.chunks_exact_mut(n);
                    let dd: [&mut [f64]; 5] = std::array::from_fn(|_| it.next().unwrap());
                    if avx {
                        // SAFETY: AVX2 checked above.
                        unsafe {
                            forward_k::avx2(&t, pf, &f, &mut out, &mut a, &mut b, &mut c);
                            adjoint_k::avx2(&t, pf, &f, &lam, &mut lam_in, dd, &mut a, &mut b);
                        }
                    } else {
                        forward_k::plain(&t, pf, &f, &mut out, &mut a, &mut b, &mut c);
                        adjoint_k::plain(&t, pf, &f, &lam, &mut lam_in, dd, &mut a, &mut b);
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
