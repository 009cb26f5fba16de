//! The explicit step of the integro-differential operator ∂f/∂t = ∇_v·(K ⋆ f) and its exact
//! discrete adjoint.
//!
//! Fluxes: `J_d(v) = Σ_{l,m} K_d(l, m; v) f(v + (l, m)Δv)` for d = x, y, with f = 0 outside the grid
//! (field layout in [`crate::operator::kernel`]: K_x(l, m) then K_y(l, m), l-major). Divergence, with
//! J = 0 outside the grid: `forward` (J_{i+1} − J_i)/Δv, `backward` (J_i − J_{i−1})/Δv, `centred`
//! (J_{i+1} − J_{i−1})/(2Δv), along x for J_x and along y for J_y. One step of length h:
//! `f ← f + div_x(Ĵ_x) + div_y(Ĵ_y)` with the prepared weights `K̂_x = K_x·h/Δv_x`,
//! `K̂_y = K_y·h/Δv_y` and unit-spacing differences, then optionally `f ← max(f, 0)`. The adjoint
//! recomputes the clamp's active set from the input state: the gradient passes where the unclamped
//! value is ≥ 0 (as `torch.clamp` does). With J = 0 outside, the fluxes of the edge cells leave the
//! grid, so Σf is not conserved in general (the operator is not in conservative form there).
//!
//! Sub-steps `auto`: the smallest n with h·R ≤ 1, h = dt/n, where
//! `R = c·(max_v Σ_{l,m}|K_x(l,m;v)|/Δv_x + max_v Σ_{l,m}|K_y(l,m;v)|/Δv_y)`, c = 2 for forward and
//! backward differences and 1 for centred: this bounds the max-norm of the step's increment
//! operator by 1 (a CFL-type condition; with it the one-step amplification is at most 2 in max norm).

use super::{Scheme, SolverError, StepWorkspace, Substeps};
use crate::grid::VelocityGrid;
use crate::operator::kernel::stencil_offsets;
use crate::operator::{Divergence, Fields};
use ndarray::{ArrayView3, ArrayViewMut3};

/// Largest sub-step count `auto` picks (guards against absurd coefficients).
pub const MAX_AUTO_SUBSTEPS: usize = 1 << 20;

/// Explicit step of ∂f/∂t = ∇_v·(K ⋆ f).
#[derive(Clone, Debug)]
pub struct KernelScheme {
    grid: VelocityGrid,
    k: usize,
    divergence: Divergence,
    clamp: bool,
    substeps: Substeps,
}

impl KernelScheme {
    /// A scheme for a k×k stencil (k odd, at most the grid size) on `grid`.
    pub fn new(grid: &VelocityGrid, k: usize, divergence: Divergence, clamp: bool, substeps: Substeps) -> Result<Self, SolverError> {
        if k % 2 == 0 || k > grid.nx.min(grid.ny) {
            return Err(SolverError::Invalid(format!(
                "kernel stencil must be odd and at most {} (the grid size), got {k}",
                grid.nx.min(grid.ny)
            )));
        }
        if substeps == Substeps::Fixed(0) {
            return Err(SolverError::Invalid("substeps must be at least 1".into()));
        }
        Ok(Self { grid: grid.clone(), k, divergence, clamp, substeps })
    }

    pub fn stencil(&self) -> usize {
        self.k
    }
    pub fn divergence(&self) -> Divergence {
        self.divergence
    }

    /// The explicit rate bound R of the module docs for physical weights `coeffs`.
    pub fn rate_bound(&self, coeffs: ArrayView3<f64>) -> f64 {
        let k2 = self.k * self.k;
        let c = match self.divergence {
            Divergence::Forward | Divergence::Backward => 2.0,
            Divergence::Centred => 1.0,
        };
        let (nx, ny) = self.grid.shape();
        let axis_max = |axis: usize| -> f64 {
            let mut best = 0.0f64;
            for i in 0..nx {
                for j in 0..ny {
                    let s: f64 = (0..k2).map(|p| coeffs[[axis * k2 + p, i, j]].abs()).sum();
                    best = best.max(s);
                }
            }
            best
        };
        c * (axis_max(0) / self.grid.dvx() + axis_max(1) / self.grid.dvy())
    }

    /// Fluxes `jx`, `jy` of the prepared weights `w` (`[2k²·n]`) applied to `f`.
    fn fluxes(&self, w: &[f64], f: &[f64], jx: &mut [f64], jy: &mut [f64]) {
        let (nx, ny) = self.grid.shape();
        let n = nx * ny;
        let k = self.k;
        for i in 0..nx {
            let row = i * ny..(i + 1) * ny;
            for (axis, j_out) in [(0usize, &mut *jx), (1, &mut *jy)] {
                let jr = &mut j_out[row.clone()];
                jr.fill(0.0);
                for (p, (l, m)) in stencil_offsets(k).enumerate() {
                    let Some(src) = shifted(i, l, nx) else { continue };
                    let (j0, j1) = valid_range(m, ny);
                    let wr = &w[(axis * k * k + p) * n + i * ny..][..ny];
                    let fr = &f[src * ny..(src + 1) * ny];
                    let fs = &fr[(j0 as isize + m) as usize..(j1 as isize + m) as usize];
                    for ((acc, &wv), &fv) in jr[j0..j1].iter_mut().zip(&wr[j0..j1]).zip(fs) {
                        *acc += wv * fv;
                    }
                }
            }
        }
    }

    /// Unclamped step: `out = f + div_x(jx) + div_y(jy)`, fluxes left in `jx`, `jy`.
    fn unclamped(&self, w: &[f64], f: &[f64], out: &mut [f64], jx: &mut [f64], jy: &mut [f64], zeros: &[f64]) {
        self.fluxes(w, f, jx, jy);
        out.copy_from_slice(f);
        let (nx, ny) = self.grid.shape();
        match self.divergence {
            Divergence::Forward => along_both(jx, jy, out, nx, ny, zeros, true, |_, c, n| n - c),
            Divergence::Backward => along_both(jx, jy, out, nx, ny, zeros, true, |p, c, _| c - p),
            Divergence::Centred => along_both(jx, jy, out, nx, ny, zeros, true, |p, _, n| 0.5 * (n - p)),
        }
    }

    /// `nu_x = D_xᵀ μ`, `nu_y = D_yᵀ μ`: the transposes of the unit-spacing divergence.
    fn divergence_transpose(&self, mu: &[f64], nu_x: &mut [f64], nu_y: &mut [f64], zeros: &[f64]) {
        let (nx, ny) = self.grid.shape();
        match self.divergence {
            Divergence::Forward => transpose_both(mu, nu_x, nu_y, nx, ny, zeros, |p, c, _| p - c),
            Divergence::Backward => transpose_both(mu, nu_x, nu_y, nx, ny, zeros, |_, c, n| c - n),
            Divergence::Centred => transpose_both(mu, nu_x, nu_y, nx, ny, zeros, |p, _, n| 0.5 * (p - n)),
        }
    }
}

/// `nu_x = op along x of mu`, `nu_y = op along y of mu` (overwritten).
#[inline(always)]
fn transpose_both(mu: &[f64], nu_x: &mut [f64], nu_y: &mut [f64], nx: usize, ny: usize, zeros: &[f64], op: impl Fn(f64, f64, f64) -> f64 + Copy) {
    along_x(mu, nu_x, nx, ny, zeros, false, op);
    along_y(mu, nu_y, nx, ny, false, op);
}

/// `out += op(x-neighbours of jx) + ...` then `out += op(y-neighbours of jy)`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn along_both(jx: &[f64], jy: &[f64], out: &mut [f64], nx: usize, ny: usize, zeros: &[f64], add: bool, op: impl Fn(f64, f64, f64) -> f64 + Copy) {
    along_x(jx, out, nx, ny, zeros, add, op);
    along_y(jy, out, nx, ny, add, op);
}

/// `out[i, j] (+)= op(u[i−1, j], u[i, j], u[i+1, j])` with u = 0 outside the grid; `zeros` holds at
/// least `ny` zeros.
#[inline(always)]
fn along_x(u: &[f64], out: &mut [f64], nx: usize, ny: usize, zeros: &[f64], add: bool, op: impl Fn(f64, f64, f64) -> f64) {
    let zeros = &zeros[..ny];
    for i in 0..nx {
        let row = |r: usize| &u[r * ny..(r + 1) * ny];
        let prev = if i > 0 { row(i - 1) } else { zeros };
        let next = if i + 1 < nx { row(i + 1) } else { zeros };
        let cur = row(i);
        let o = &mut out[i * ny..(i + 1) * ny];
        for (((o, &p), &c), &n) in o.iter_mut().zip(prev).zip(cur).zip(next) {
            let v = op(p, c, n);
            *o = if add { *o + v } else { v };
        }
    }
}

/// `out[i, j] (+)= op(u[i, j−1], u[i, j], u[i, j+1])` with u = 0 outside the grid.
#[inline(always)]
fn along_y(u: &[f64], out: &mut [f64], nx: usize, ny: usize, add: bool, op: impl Fn(f64, f64, f64) -> f64) {
    let put = |o: &mut f64, v: f64| *o = if add { *o + v } else { v };
    for i in 0..nx {
        let r = &u[i * ny..(i + 1) * ny];
        let o = &mut out[i * ny..(i + 1) * ny];
        put(&mut o[0], op(0.0, r[0], r[1]));
        for (((o, &p), &c), &n) in o[1..ny - 1].iter_mut().zip(&r[..ny - 2]).zip(&r[1..ny - 1]).zip(&r[2..]) {
            put(o, op(p, c, n));
        }
        put(&mut o[ny - 1], op(r[ny - 2], r[ny - 1], 0.0));
    }
}

/// `i + l` if inside `0..n`.
#[inline]
fn shifted(i: usize, l: isize, n: usize) -> Option<usize> {
    let s = i as isize + l;
    (s >= 0 && s < n as isize).then_some(s as usize)
}

/// Indices j with `j + m` inside `0..n`.
#[inline]
fn valid_range(m: isize, n: usize) -> (usize, usize) {
    let lo = (-m).max(0) as usize;
    let hi = (n as isize - m).min(n as isize).max(lo as isize) as usize;
    (lo, hi)
}

fn slice(fields: &Fields) -> &[f64] {
    fields.as_slice().expect("prepared fields in standard layout")
}

impl Scheme for KernelScheme {
    fn name(&self) -> &'static str {
        "kernel"
    }
    fn grid(&self) -> &VelocityGrid {
        &self.grid
    }
    fn n_fields(&self) -> usize {
        2 * self.k * self.k
    }
    fn n_prepared(&self) -> usize {
        2 * self.k * self.k
    }

    fn substeps(&self, coeffs: ArrayView3<f64>, dt: f64) -> usize {
        match self.substeps {
            Substeps::Fixed(n) => n.max(1),
            Substeps::Auto(_) => {
                let n = (dt * self.rate_bound(coeffs)).ceil();
                if n.is_nan() {
                    1
                } else {
                    (n as usize).clamp(1, MAX_AUTO_SUBSTEPS)
                }
            }
        }
    }

    fn prepare(&self, coeffs: ArrayView3<f64>, h: f64, mut out: ArrayViewMut3<f64>) {
        let k2 = self.k * self.k;
        let (sx, sy) = (h / self.grid.dvx(), h / self.grid.dvy());
        for (p, (mut o, c)) in out.outer_iter_mut().zip(coeffs.outer_iter()).enumerate() {
            let s = if p < k2 { sx } else { sy };
            o.zip_mut_with(&c, |o, &c| *o = c * s);
        }
    }

    fn prepare_vjp(&self, _coeffs: ArrayView3<f64>, h: f64, d_prepared: ArrayView3<f64>, mut d_coeffs: ArrayViewMut3<f64>) {
        let k2 = self.k * self.k;
        let (sx, sy) = (h / self.grid.dvx(), h / self.grid.dvy());
        for (p, (mut d, g)) in d_coeffs.outer_iter_mut().zip(d_prepared.outer_iter()).enumerate() {
            let s = if p < k2 { sx } else { sy };
            d.zip_mut_with(&g, |d, &g| *d += g * s);
        }
    }

    fn workspace(&self) -> StepWorkspace {
        // Fluxes / adjoint fluxes, unclamped state / its adjoint, and a row of zeros (never written).
        let n = self.grid.n_cells();
        StepWorkspace { bufs: vec![vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; self.grid.ny]] }
    }

    fn step(&self, prepared: &Fields, f: &[f64], out: &mut [f64], ws: &mut StepWorkspace) {
        let [jx, jy, _, zeros] = ws.bufs.as_mut_slice() else { panic!("kernel workspace needs 4 buffers") };
        self.unclamped(slice(prepared), f, out, jx, jy, zeros);
        if self.clamp {
            super::clamp::clamp_nonnegative(out);
        }
    }

    fn step_vjp(&self, prepared: &Fields, f: &[f64], lam_out: &[f64], lam_in: &mut [f64], d_prepared: &mut Fields, ws: &mut StepWorkspace) {
        let w = slice(prepared);
        let [nu_x, nu_y, mu, zeros] = ws.bufs.as_mut_slice() else { panic!("kernel workspace needs 4 buffers") };
        // μ = ∂L/∂(unclamped state).
        if self.clamp {
            self.unclamped(w, f, mu, nu_x, nu_y, zeros);
            for (m, &l) in mu.iter_mut().zip(lam_out) {
                *m = if *m >= 0.0 { l } else { 0.0 };
            }
        } else {
            mu.copy_from_slice(lam_out);
        }
        lam_in.copy_from_slice(mu);
        self.divergence_transpose(mu, nu_x, nu_y, zeros);
        let (nx, ny) = self.grid.shape();
        let n = nx * ny;
        let k = self.k;
        let dw = d_prepared.as_slice_mut().expect("prepared gradient in standard layout");
        for (axis, nu) in [(0usize, &*nu_x), (1, &*nu_y)] {
            for (p, (l, m)) in stencil_offsets(k).enumerate() {
                let (j0, j1) = valid_range(m, ny);
                let base = (axis * k * k + p) * n;
                for i in 0..nx {
                    let Some(src) = shifted(i, l, nx) else { continue };
                    let nr = &nu[i * ny + j0..i * ny + j1];
                    let fs = &f[src * ny + (j0 as isize + m) as usize..][..j1 - j0];
                    let wr = &w[base + i * ny + j0..base + i * ny + j1];
                    let ds = &mut dw[base + i * ny + j0..base + i * ny + j1];
                    let ls = &mut lam_in[src * ny + (j0 as isize + m) as usize..][..j1 - j0];
                    for ((((d, lv), &nv), &fv), &wv) in ds.iter_mut().zip(ls.iter_mut()).zip(nr).zip(fs).zip(wr) {
                        *d += nv * fv;
                        *lv += wv * nv;
                    }
                }
            }
        }
    }
}
