//! The `conservative` scheme: a jump-rate ("master equation") finite-volume step that conserves
//! Σf to round-off for any coefficients and keeps f ≥ 0 under a stated step bound; and its exact
//! discrete adjoint.
//!
//! Each cell c sends mass to its 8 neighbours at non-negative rates built from c's own grid-unit
//! coefficients (Itô form, so the jumps' mean is Â and their second moment D̂, matching
//! `−∂(Af) + ½∂∂(Df)`):
//! - diagonal jumps (±1,±1) at `max(D̂xy,0)/2` each, (±1,∓1) at `max(−D̂xy,0)/2` each;
//! - axial "diffusion" `b_x = max((D̂xx − |D̂xy|)/2, 0)` per direction (same for y);
//! - drift by Spalding's hybrid differencing: `r_{+x} = max(b_x + Âx/2, max(Âx, 0))`,
//!   `r_{−x} = max(b_x − Âx/2, max(−Âx, 0))` — central (second order) while the cell Péclet number
//!   |Âx|/b_x ≤ 2, upwind beyond; the mean jump r_{+x} − r_{−x} is Âx either way.
//!
//! Jumps that would leave the grid are suppressed (zero flux through the boundary), so
//! `out = f − Σ_k r_k f + Σ_k (inflow)` moves mass between cells only: Σf is conserved to
//! round-off. The prepared fields are the 8 rates times the step `h` (suppressed ones 0).
//!
//! **Step bound**: `h · max_cells Σ_k r_k ≤ 1` (total out-rate of every cell). Then the
//! self-weight `1 − hΣr` and all jump weights are ≥ 0, so f ≥ 0 is kept without clamping.
//! `substeps: auto` picks the smallest n meeting it; a fixed n that violates it logs one warning
//! per scheme instance.
//!
//! The rates are piecewise linear in the coefficients; the adjoint of `prepare` differentiates
//! the active branch of each `max` (ties go to the first argument, `max(a, b) = a` when `a ≥ b`,
//! exactly as the forward evaluates it; |D̂xy| counts as +D̂xy at 0).

use super::stencil::{grid_unit_scales, substeps_for, WarnOnce};
use super::{Scheme, StepWorkspace, Substeps};
use crate::grid::VelocityGrid;
use crate::operator::{fp, Fields};
use ndarray::{ArrayView3, ArrayViewMut3};

/// Number of jump directions (prepared fields).
pub const N_JUMPS: usize = 8;
/// Jump offsets `(di, dj)` in prepared-field order.
pub const JUMPS: [(isize, isize); N_JUMPS] = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)];

/// `max(a, b)` choosing `a` on ties; the flag says whether `a` was taken.
#[inline(always)]
fn max_a(a: f64, b: f64) -> (f64, bool) {
    if a >= b {
        (a, true)
    } else {
        (b, false)
    }
}

/// The 8 jump rates of one cell from its grid-unit coefficients `[Âx, Ây, D̂xx, D̂yy, D̂xy]`.
#[inline]
pub fn rates(c: [f64; fp::N_FIELDS]) -> [f64; N_JUMPS] {
    let [ax, ay, dxx, dyy, dxy] = c;
    let pd = max_a(dxy, 0.0).0 / 2.0;
    let md = max_a(-dxy, 0.0).0 / 2.0;
    let bx = max_a((dxx - dxy.abs()) / 2.0, 0.0).0;
    let by = max_a((dyy - dxy.abs()) / 2.0, 0.0).0;
    let drift = |b: f64, a: f64| (max_a(b + a / 2.0, max_a(a, 0.0).0).0, max_a(b - a / 2.0, max_a(-a, 0.0).0).0);
    let (rpx, rmx) = drift(bx, ax);
    let (rpy, rmy) = drift(by, ay);
    [rpx, rmx, rpy, rmy, pd, pd, md, md]
}

/// `∂L/∂c` (grid units) from `g = ∂L/∂rates` at coefficients `c`, through the active branches.
#[inline]
pub fn rates_vjp(c: [f64; fp::N_FIELDS], g: [f64; N_JUMPS]) -> [f64; fp::N_FIELDS] {
    let [ax, ay, dxx, dyy, dxy] = c;
    let mut d = [0.0; fp::N_FIELDS];
    let sign_xy = if dxy >= 0.0 { 1.0 } else { -1.0 };
    if max_a(dxy, 0.0).1 {
        d[fp::DXY] += (g[4] + g[5]) / 2.0;
    }
    if max_a(-dxy, 0.0).1 {
        d[fp::DXY] -= (g[6] + g[7]) / 2.0;
    }
    // One axis: drift a, own diffusion dd, out-rates gp (+) and gm (−).
    let mut axis = |a: f64, dd: f64, gp: f64, gm: f64, ia: usize, id: usize| {
        let (b, b_active) = max_a((dd - dxy.abs()) / 2.0, 0.0);
        let mut db = 0.0;
        let (up, up_a) = max_a(a, 0.0);
        if max_a(b + a / 2.0, up).1 {
            db += gp;
            d[ia] += gp / 2.0;
        } else if up_a {
            d[ia] += gp;
        }
        let (um, um_a) = max_a(-a, 0.0);
        if max_a(b - a / 2.0, um).1 {
            db += gm;
            d[ia] -= gm / 2.0;
        } else if um_a {
            d[ia] -= gm;
        }
        if b_active {
            d[id] += db / 2.0;
            d[fp::DXY] -= sign_xy * db / 2.0;
        }
    };
    axis(ax, dxx, g[0], g[1], fp::AX, fp::DXX);
    axis(ay, dyy, g[2], g[3], fp::AY, fp::DYY);
    d
}

/// The `conservative` scheme.
#[derive(Debug)]
pub struct Conservative {
    grid: VelocityGrid,
    clamp: bool,
    substeps: Substeps,
    units: [f64; fp::N_FIELDS],
    warned: WarnOnce,
}

impl Conservative {
    pub fn new(grid: &VelocityGrid, clamp: bool, substeps: Substeps) -> Self {
        Self { grid: grid.clone(), clamp, substeps, units: grid_unit_scales(grid), warned: WarnOnce::default() }
    }

    /// Which jumps of cell `(i, j)` stay on the grid.
    #[inline]
    fn allowed(&self, i: usize, j: usize) -> [bool; N_JUMPS] {
        let (nx, ny) = (self.grid.nx as isize, self.grid.ny as isize);
        JUMPS.map(|(di, dj)| {
            let (ti, tj) = (i as isize + di, j as isize + dj);
            (0..nx).contains(&ti) && (0..ny).contains(&tj)
        })
    }

    /// Grid-unit coefficients of cell `(i, j)`.
    #[inline]
    fn cell_coeffs(&self, coeffs: &ArrayView3<f64>, i: usize, j: usize) -> [f64; fp::N_FIELDS] {
        std::array::from_fn(|k| coeffs[[k, i, j]] * self.units[k])
    }

    /// Largest total out-rate (per unit time) over the cells, allowed jumps only. NaN if any
    /// coefficient is NaN.
    pub fn max_out_rate(&self, coeffs: ArrayView3<f64>) -> f64 {
        let mut max = 0.0f64;
        for i in 0..self.grid.nx {
            for j in 0..self.grid.ny {
                let r = rates(self.cell_coeffs(&coeffs, i, j));
                let a = self.allowed(i, j);
                let total: f64 = (0..N_JUMPS).filter(|&k| a[k]).map(|k| r[k]).sum();
                if total > max || total.is_nan() {
                    max = total;
                }
            }
        }
        max
    }
}

fn row(a: &[f64], r: usize, n: usize) -> &[f64] {
    &a[r * n..][..n]
}

/// Pre-clamp forward step. `q` holds the 8 padded `(nx+2)×(ny+2)` products `r_k f` (borders 0).
#[inline(always)]
fn forward(nx: usize, ny: usize, r: [&[f64]; N_JUMPS], f: &[f64], out: &mut [f64], q: &mut [f64]) {
    let py = ny + 2;
    let plane = (nx + 2) * py;
    // Outflows: q_k = r_k f at the padded position, out = f − Σ_k q_k.
    for i in 0..nx {
        let s = i * ny..;
        let (f0, o) = (&f[s.clone()][..ny], &mut out[s.clone()][..ny]);
        let [r0, r1, r2, r3, r4, r5, r6, r7] = r.map(|rk| &rk[s.clone()][..ny]);
        let mut planes = q.chunks_exact_mut(plane).map(|qk| &mut qk[(i + 1) * py + 1..][..ny]);
        let mut next = || planes.next().expect("8 planes");
        let (q0, q1, q2, q3, q4, q5, q6, q7) = (next(), next(), next(), next(), next(), next(), next(), next());
        // Two half-passes of four jumps: few enough streams for the vectoriser.
        for j in 0..ny {
            let fj = f0[j];
            q0[j] = r0[j] * fj;
            q1[j] = r1[j] * fj;
            q2[j] = r2[j] * fj;
            q3[j] = r3[j] * fj;
            o[j] = (q0[j] + q1[j]) + (q2[j] + q3[j]);
        }
        for j in 0..ny {
            let fj = f0[j];
            q4[j] = r4[j] * fj;
            q5[j] = r5[j] * fj;
            q6[j] = r6[j] * fj;
            q7[j] = r7[j] * fj;
            o[j] = fj - (o[j] + ((q4[j] + q5[j]) + (q6[j] + q7[j])));
        }
    }
    // Inflows: out[c] += Σ_k q_k[c − o_k] (zero border = nothing enters from outside).
    for i in 0..nx {
        let o = &mut out[i * ny..][..ny];
        let src: [&[f64]; N_JUMPS] = std::array::from_fn(|k| {
            let (di, dj) = JUMPS[k];
            &q[k * plane + ((i + 1) as isize - di) as usize * py + (1 - dj) as usize..][..ny]
        });
        let [s0, s1, s2, s3, s4, s5, s6, s7] = src;
        for j in 0..ny {
            o[j] += ((s0[j] + s1[j]) + (s2[j] + s3[j])) + ((s4[j] + s5[j]) + (s6[j] + s7[j]));
        }
    }
}

/// Adjoint of the pre-clamp step: `G_k = λ[c+o_k] − λ[c]`, `λ_in = λ + Σ r_k G_k`,
/// `d_k += f G_k`. `lp` is a padded `(nx+2)×(ny+2)` copy of λ (border 0).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn adjoint(
    nx: usize,
    ny: usize,
    r: [&[f64]; N_JUMPS],
    f: &[f64],
    lam: &[f64],
    lam_in: &mut [f64],
    d: [&mut [f64]; N_JUMPS],
    lp: &mut [f64],
) {
    let py = ny + 2;
    for i in 0..nx {
        lp[(i + 1) * py + 1..][..ny].copy_from_slice(row(lam, i, ny));
    }
    let mut d = d;
    for i in 0..nx {
        let s = i * ny..;
        let (l0, f0, li) = (&lam[s.clone()][..ny], &f[s.clone()][..ny], &mut lam_in[s.clone()][..ny]);
        li.copy_from_slice(l0);
        // Jumps in pairs: fewer passes over λ_in than one per jump, few enough streams to vectorise.
        for k in (0..N_JUMPS).step_by(2) {
            let target = |k: usize| {
                let (di, dj) = JUMPS[k];
                &lp[((i + 1) as isize + di) as usize * py + (1 + dj) as usize..][..ny]
            };
            let (ta, tb) = (target(k), target(k + 1));
            let (ra, rb) = (&r[k][s.clone()][..ny], &r[k + 1][s.clone()][..ny]);
            let (dl, dr) = d.split_at_mut(k + 1);
            let (da, db) = (&mut dl[k][s.clone()][..ny], &mut dr[0][s.clone()][..ny]);
            for j in 0..ny {
                let (ga, gb) = (ta[j] - l0[j], tb[j] - l0[j]);
                li[j] += ra[j] * ga + rb[j] * gb;
                da[j] += f0[j] * ga;
                db[j] += f0[j] * gb;
            }
        }
    }
}

crate::simd_kernel!(forward_k, forward, (
    nx: usize, ny: usize, r: [&[f64]; N_JUMPS], f: &[f64], out: &mut [f64], q: &mut [f64]
));
crate::simd_kernel!(adjoint_k, adjoint, (
    nx: usize, ny: usize, r: [&[f64]; N_JUMPS], f: &[f64], lam: &[f64], lam_in: &mut [f64],
    d: [&mut [f64]; N_JUMPS], lp: &mut [f64]
));

fn split<const N: usize>(s: &[f64]) -> [&[f64]; N] {
    let n = s.len() / N;
    std::array::from_fn(|k| &s[k * n..(k + 1) * n])
}

fn split_mut<const N: usize>(s: &mut [f64]) -> [&mut [f64]; N] {
    let n = s.len() / N;
    let mut it = s.chunks_exact_mut(n);
    std::array::from_fn(|_| it.next().expect("N chunks"))
}

impl Scheme for Conservative {
    fn name(&self) -> &'static str {
        "conservative"
    }
    fn grid(&self) -> &VelocityGrid {
        &self.grid
    }
    fn n_fields(&self) -> usize {
        fp::N_FIELDS
    }
    fn n_prepared(&self) -> usize {
        N_JUMPS
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
        for i in 0..self.grid.nx {
            for j in 0..self.grid.ny {
                let r = rates(self.cell_coeffs(&coeffs, i, j));
                let a = self.allowed(i, j);
                for k in 0..N_JUMPS {
                    out[[k, i, j]] = if a[k] { h * r[k] } else { 0.0 };
                }
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
        for i in 0..self.grid.nx {
            for j in 0..self.grid.ny {
                let a = self.allowed(i, j);
                let g = std::array::from_fn(|k| if a[k] { h * d_prepared[[k, i, j]] } else { 0.0 });
                let dc = rates_vjp(self.cell_coeffs(&coeffs, i, j), g);
                for k in 0..fp::N_FIELDS {
                    d_coeffs[[k, i, j]] += dc[k] * self.units[k];
                }
            }
        }
    }
    fn workspace(&self) -> StepWorkspace {
        let padded = (self.grid.nx + 2) * (self.grid.ny + 2);
        StepWorkspace { bufs: vec![vec![0.0; N_JUMPS * padded], vec![0.0; padded], vec![0.0; self.grid.n_cells()]] }
    }
    fn step(&self, prepared: &Fields, f: &[f64], out: &mut [f64], ws: &mut StepWorkspace) {
        let [q, ..] = &mut ws.bufs[..] else { panic!("conservative: workspace from another scheme") };
        let r = split::<N_JUMPS>(prepared.as_slice().expect("prepared rates are contiguous"));
        crate::simd_dispatch!(forward_k(self.grid.nx, self.grid.ny, r, f, out, q));
        if self.clamp {
            super::central::clamp_nonnegative(out);
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
        let [q, lp, lam_m] = &mut ws.bufs[..] else { panic!("conservative: workspace from another scheme") };
        let (nx, ny) = (self.grid.nx, self.grid.ny);
        let r = split::<N_JUMPS>(prepared.as_slice().expect("prepared rates are contiguous"));
        let lam: &[f64] = if self.clamp {
            // The pre-clamp state goes to lam_in (overwritten below) to find the active set.
            crate::simd_dispatch!(forward_k(nx, ny, r, f, lam_in, q));
            super::central::clamp_mask(lam_in, lam_out, lam_m);
            lam_m
        } else {
            lam_out
        };
        let d = split_mut::<N_JUMPS>(d_prepared.as_slice_mut().expect("d_prepared is contiguous"));
        crate::simd_dispatch!(adjoint_k(nx, ny, r, f, lam, lam_in, d, lp));
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
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
            let (nx, ny) = (9, 13);
            let n = nx * ny;
            let mut rand_vec = |len: usize| (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>();
            let (r, f, lam) = (rand_vec(N_JUMPS * n), rand_vec(n), rand_vec(n));
            let rs: [&[f64]; N_JUMPS] = std::array::from_fn(|k| &r[k * n..(k + 1) * n]);
            let run = |avx: bool| {
                let (mut out, mut lam_in, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; N_JUMPS * n]);
                let (mut q, mut lp) = (vec![0.0; N_JUMPS * (nx + 2) * (ny + 2)], vec![0.0; (nx + 2) * (ny + 2)]);
                let dd = split_mut::<N_JUMPS>(&mut d);
                if avx {
                    // SAFETY: AVX2 checked above.
                    unsafe {
                        forward_k::avx2(nx, ny, rs, &f, &mut out, &mut q);
                        adjoint_k::avx2(nx, ny, rs, &f, &lam, &mut lam_in, dd, &mut lp);
                    }
                } else {
                    forward_k::plain(nx, ny, rs, &f, &mut out, &mut q);
                    adjoint_k::plain(nx, ny, rs, &f, &lam, &mut lam_in, dd, &mut lp);
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
