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
//! value is ≥ 0 (as `torch.clamp` does).
//!
//! Sub-steps `auto`: the smallest n with h·R ≤ 1, h = dt/n, where
//! `R = c·(max_v Σ_{l,m}|K_x(l,m;v)|/Δv_x + max_v Σ_{l,m}|K_y(l,m;v)|/Δv_y)`, c = 2 for forward and
//! backward differences and 1 for centred: this bounds the max-norm of the step's increment
//! operator by 1 (a CFL-type condition; with it the one-step amplification is at most 2 in max norm).

use super::{Scheme, SolverError, StepWorkspace, Substeps};
use crate::grid::VelocityGrid;
use crate::operator::kernel::stencil_radius;
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
        let (k, r) = (self.k, stencil_radius(self.k) as isize);
        for i in 0..nx {
            let row = i * ny..(i + 1) * ny;
            for (axis, j_out) in [(0usize, &mut *jx), (1, &mut *jy)] {
                let jr = &mut j_out[row.clone()];
                jr.fill(0.0);
                for (p, (l, m)) in offsets(k, r).enumerate() {
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
    fn unclamped(&self, w: &[f64], f: &[f64], out: &mut [f64], jx: &mut [f64], jy: &mut [f64]) {
        let (nx, ny) = self.grid.shape();
        self.fluxes(w, f, jx, jy);
        let at = |u: &[f64], i: isize, j: isize| -> f64 {
            if i < 0 || j < 0 || i >= nx as isize || j >= ny as isize {
                0.0
            } else {
                u[i as usize * ny + j as usize]
            }
        };
        let div = |u: &[f64], i: isize, j: isize, di: isize, dj: isize| -> f64 {
            match self.divergence {
                Divergence::Forward => at(u, i + di, j + dj) - at(u, i, j),
                Divergence::Backward => at(u, i, j) - at(u, i - di, j - dj),
                Divergence::Centred => 0.5 * (at(u, i + di, j + dj) - at(u, i - di, j - dj)),
            }
        };
        for i in 0..nx {
            for j in 0..ny {
                let (ii, jj) = (i as isize, j as isize);
                let c = i * ny + j;
                out[c] = f[c] + div(jx, ii, jj, 1, 0) + div(jy, ii, jj, 0, 1);
            }
        }
    }

    /// `u ← Dᵀμ` along axis (di, dj), the transpose of the unit-spacing divergence.
    fn divergence_transpose(&self, mu: &[f64], out: &mut [f64], di: isize, dj: isize) {
        let (nx, ny) = self.grid.shape();
        let at = |i: isize, j: isize| -> f64 {
            if i < 0 || j < 0 || i >= nx as isize || j >= ny as isize {
                0.0
            } else {
                mu[i as usize * ny + j as usize]
            }
        };
        for i in 0..nx as isize {
            for j in 0..ny as isize {
                out[i as usize * ny + j as usize] = match self.divergence {
                    Divergence::Forward => at(i - di, j - dj) - at(i, j),
                    Divergence::Backward => at(i, j) - at(i + di, j + dj),
                    Divergence::Centred => 0.5 * (at(i - di, j - dj) - at(i + di, j + dj)),
                };
            }
        }
    }
}

/// Stencil offsets (l, m) in field order: l-major, each from −r to r.
fn offsets(k: usize, r: isize) -> impl Iterator<Item = (isize, isize)> {
    (0..k * k).map(move |p| ((p / k) as isize - r, (p % k) as isize - r))
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
        StepWorkspace { bufs: vec![vec![0.0; self.grid.n_cells()]; 3] }
    }

    fn step(&self, prepared: &Fields, f: &[f64], out: &mut [f64], ws: &mut StepWorkspace) {
        let [jx, jy, ..] = ws.bufs.as_mut_slice() else { panic!("kernel workspace needs 3 buffers") };
        self.unclamped(slice(prepared), f, out, jx, jy);
        if self.clamp {
            for v in out.iter_mut() {
                *v = v.max(0.0);
            }
        }
    }

    fn step_vjp(&self, prepared: &Fields, f: &[f64], lam_out: &[f64], lam_in: &mut [f64], d_prepared: &mut Fields, ws: &mut StepWorkspace) {
        let w = slice(prepared);
        let [nu_x, nu_y, mu, ..] = ws.bufs.as_mut_slice() else { panic!("kernel workspace needs 3 buffers") };
        // μ = ∂L/∂(unclamped state).
        if self.clamp {
            self.unclamped(w, f, mu, nu_x, nu_y);
            for (m, &l) in mu.iter_mut().zip(lam_out) {
                *m = if *m >= 0.0 { l } else { 0.0 };
            }
        } else {
            mu.copy_from_slice(lam_out);
        }
        lam_in.copy_from_slice(mu);
        self.divergence_transpose(mu, nu_x, 1, 0);
        self.divergence_transpose(mu, nu_y, 0, 1);
        let (nx, ny) = self.grid.shape();
        let n = nx * ny;
        let (k, r) = (self.k, stencil_radius(self.k) as isize);
        let dw = d_prepared.as_slice_mut().expect("prepared gradient in standard layout");
        for (axis, nu) in [(0usize, &*nu_x), (1, &*nu_y)] {
            for (p, (l, m)) in offsets(k, r).enumerate() {
                let (j0, j1) = valid_range(m, ny);
                let base = (axis * k * k + p) * n;
                for i in 0..nx {
                    let Some(src) = shifted(i, l, nx) else { continue };
                    let nr = &nu[i * ny + j0..i * ny + j1];
                    let fs = &f[src * ny + (j0 as isize + m) as usize..][..j1 - j0];
                    let wr = &w[base + i * ny + j0..base + i * ny + j1];
                    for ((d, &nv), &fv) in dw[base + i * ny + j0..base + i * ny + j1].iter_mut().zip(nr).zip(fs) {
                        *d += nv * fv;
                    }
                    let ls = &mut lam_in[src * ny + (j0 as isize + m) as usize..][..j1 - j0];
                    for ((lv, &wv), &nv) in ls.iter_mut().zip(wr).zip(nr) {
                        *lv += wv * nv;
                    }
                }
            }
        }
    }
}
