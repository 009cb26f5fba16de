//! The classic estimator of drag and diffusion from particle tracks: A = ⟨Δv⟩/τ and
//! D_ij = ⟨Δv_iΔv_j⟩/τ binned by starting velocity, with counts and standard errors.
//!
//! Conventions: D is the second-moment rate, matching the ½ in colop's
//! ∂f/∂t = −∂_i(A_if) + ½∂_i∂_j(D_ijf). Samples are the velocity changes of every tracked particle
//! between dumps n and n + L (τ = L·dt), for start dumps n = 0, s, 2s, ... with stride s = L by
//! default, so one particle's samples do not overlap in time and the standard errors
//! (sample standard deviation/√count, divided by τ) are honest. The estimates carry the usual
//! finite-lag bias: for an Ornstein–Uhlenbeck process A = −γv the estimate is
//! −v(1 − e^(−γτ))/τ = −γv(1 − γτ/2 + ...), so short lags are biased less but noisier.
//!
//! In a plasma the short lags carry a second, larger bias. Every particle quivers in the
//! thermal Langmuir-wave field with a velocity δv that is reversible — it does not accumulate —
//! yet adds about 2⟨δv_iδv_j⟩(1 − cos ω_pτ)/τ to the estimated D_ij(τ): an excess that decays
//! like 1/τ and oscillates with the plasma period. Conditioning on the starting velocity, which
//! contains the quiver, adds an apparent drag of the same origin. Measured on the built-in PIC
//! code (Δx = λ_D, quadratic shapes, nλ_D² = 16 and 64, thermal tracer particles): D(τ)/D_LB is
//! 1.6–2.0 at τ = 1/ω_p, 2.3–3.0 at 2/ω_p, 1.3–1.45 at 10/ω_p, 1.1 at 20/ω_p and 1.02–1.05 at
//! 60/ω_p, converging to the Lenard–Balescu value of [`crate::theory`]. The estimator therefore
//! needs a lag of many plasma periods, i.e. the time scale it assumes must be long against 1/ω_p
//! and short against the collision time — the assumption a learned operator does not make.
//!
//! Tracks are `[n_dumps, n_tracked, d]` for the run's d-dimensional grid. On a 3D grid the
//! estimate has the nine fields A_x, A_y, A_z, D_xx, D_yy, D_zz, D_xy, D_xz, D_yz (order of
//! [`fp`]) per (v_x, v_y, v_z) cell; its radial projection is about the v_z axis (see
//! [`RadialEstimate`]). The 2D electrostatic PIC code keeps every particle's v_z, so its 3D
//! estimates have A_z, D_zz, D_xz and D_yz exactly 0.
//!
//! Empty cells (count 0) hold NaN in the estimates; cells with fewer than `min_count` samples are
//! unpopulated for the rollout model, which fills them with the radial projection at that speed
//! (mapped with [`crate::operator::angular`]) or, where that radial bin is unpopulated too, with 0.
//! Summations run over fixed particle chunks reduced in chunk order, so results do not depend on
//! the thread count.

pub mod output;

use crate::data::RunData;
use crate::grid::VelocityGrid;
use crate::operator::angular::{extrude_planar, to_cartesian, Polar};
use crate::operator::{fp, Fields};
use ndarray::{Array2, Array3, ArrayView3};
use rayon::prelude::*;

/// Why tracks cannot be estimated from.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("{path}: no /tracks in this run file (record tracks in the PIC config or import them)")]
    NoTracks { path: String },
    #[error("{path}: /tracks has {n_dumps} dumps; lag {lag_dumps} dumps needs at least {need}")]
    LagTooLong { path: String, n_dumps: usize, lag_dumps: usize, need: usize },
    #[error("{path}: lag τ = {tau} is not a positive multiple of the dump spacing dt = {dt}")]
    LagNotMultiple { path: String, tau: f64, dt: f64 },
    #[error("{path}: /t is not evenly spaced at dump {index} (dt = {dt}); lags need uniform dumps")]
    NonUniformDumps { path: String, index: usize, dt: f64 },
    #[error("{path}: /tracks has shape {shape:?}, expected [n_dumps = {n_t}, n_tracked, {dim}] for the run's {dim}-D grid")]
    BadShape { path: String, shape: Vec<usize>, n_t: usize, dim: usize },
}

/// Per-bin running sums of `k` quantities and their count.
#[derive(Clone)]
struct Sums {
    k: usize,
    count: Vec<u64>,
    /// `[bin · k + quantity]`.
    sums: Vec<f64>,
}

impl Sums {
    fn new(n: usize, k: usize) -> Self {
        Self { k, count: vec![0; n], sums: vec![0.0; n * k] }
    }
    fn add(&mut self, bin: usize, q: &[f64]) {
        self.count[bin] += 1;
        for (s, v) in self.sums[bin * self.k..(bin + 1) * self.k].iter_mut().zip(q) {
            *s += v;
        }
    }
    fn merge(&mut self, other: &Self) {
        for (a, b) in self.count.iter_mut().zip(&other.count) {
            *a += b;
        }
        for (x, y) in self.sums.iter_mut().zip(&other.sums) {
            *x += y;
        }
    }
    /// (mean of quantity `k`, standard error using the sum of its squares at index `k2`), both
    /// divided by `tau`; NaN for empty bins, NaN error below two samples.
    fn rate(&self, bin: usize, k: usize, k2: usize, tau: f64) -> (f64, f64) {
        let n = self.count[bin] as f64;
        if n == 0.0 {
            return (f64::NAN, f64::NAN);
        }
        let row = &self.sums[bin * self.k..(bin + 1) * self.k];
        let mean = row[k] / n;
        let err = if n >= 2.0 {
            let var = ((row[k2] - n * mean * mean) / (n - 1.0)).max(0.0);
            (var / n).sqrt() / tau
        } else {
            f64::NAN
        };
        (mean / tau, err)
    }
}

/// Radial projection of the estimate: bins in the (v_x, v_y)-plane speed v_⊥ = √(v_x² + v_y²)
/// of the grid's cell width, ∥ along the in-plane direction ê = (v_x, v_y)/v_⊥ and ⊥ along
/// t̂ = ẑ × ê. In 2D that is the isotropic projection in |v|; in 3D it is the projection about the
/// v_z axis (the out-of-plane direction of a 2D3V code, in which the coefficients depend on
/// v_⊥), with the out-of-plane diffusion D_zz(v_⊥) as a fourth profile.
#[derive(Clone, Debug)]
pub struct RadialEstimate {
    /// Bin centres, v_th.
    pub v: Vec<f64>,
    /// Bin width, v_th.
    pub dv: f64,
    pub counts: Vec<u64>,
    pub a_par: Vec<f64>,
    pub a_par_err: Vec<f64>,
    pub d_par: Vec<f64>,
    pub d_par_err: Vec<f64>,
    pub d_perp: Vec<f64>,
    pub d_perp_err: Vec<f64>,
    /// D_zz per bin (3D; empty in 2D).
    pub d_zz: Vec<f64>,
    pub d_zz_err: Vec<f64>,
}

impl RadialEstimate {
    fn bin_of(&self, speed: f64) -> Option<usize> {
        let b = (speed / self.dv) as usize;
        (speed >= 0.0 && b < self.v.len()).then_some(b)
    }
}

/// Drag and diffusion estimated from tracks at one lag.
#[derive(Clone, Debug)]
pub struct TrackEstimate {
    /// Lag in dumps and in 1/ω_p.
    pub lag_dumps: usize,
    pub tau: f64,
    /// Start-dump stride.
    pub stride: usize,
    pub grid: VelocityGrid,
    /// Samples per cell of the starting velocity, `[nx, ny·nz]` (cells as in the fields).
    pub counts: Array2<u64>,
    /// Fields as [`fp`] in the grid's dimension, `[n_fields, nx, ny·nz]`: 2D A_x, A_y, D_xx,
    /// D_yy, D_xy; 3D A_x, A_y, A_z, D_xx, D_yy, D_zz, D_xy, D_xz, D_yz (NaN in empty cells).
    pub fields: Array3<f64>,
    /// Standard errors of `fields` (NaN below two samples).
    pub errors: Array3<f64>,
    pub radial: RadialEstimate,
    /// Samples used and samples skipped (non-finite velocities or start outside the grid).
    pub n_samples: u64,
    pub n_skipped: u64,
}

/// Per-sample cell quantities in `dim` dimensions: the field values Δv_i (A_i) and Δv_iΔv_j
/// (D_ij) in [`fp`] order, then their squares Δv_i² and Δv_i²Δv_j² (same order).
fn cell_quantities(dim: usize, dv: &[f64; 3], out: &mut [f64]) {
    let nf = fp::n_fields(dim);
    for i in 0..dim {
        let sq = dv[i] * dv[i];
        out[fp::a(i)] = dv[i];
        out[nf + fp::a(i)] = sq;
        for j in i..dim {
            let k = fp::d(dim, i, j);
            out[k] = if i == j { sq } else { dv[i] * dv[j] };
            out[nf + k] = sq * (dv[j] * dv[j]);
        }
    }
}

/// Radial sums: Δ∥, Δ∥², Δ⊥², Δ∥⁴, Δ⊥⁴ (and Δz², Δz⁴ in 3D).
const fn radial_width(dim: usize) -> usize {
    if dim == 3 {
        7
    } else {
        5
    }
}

/// Particles per chunk of the deterministic reduction.
const CHUNK: usize = 2048;
/// Bytes of per-chunk partial sums held at once (at least one chunk's).
const PARTIAL_BYTES: usize = 256 << 20;

fn accumulate(
    tracks: ArrayView3<f64>,
    particles: std::ops::Range<usize>,
    lag: usize,
    stride: usize,
    grid: &VelocityGrid,
    radial: &RadialEstimate,
) -> (Sums, Sums, u64) {
    let dim = grid.dim();
    let nf = fp::n_fields(dim);
    let mut cells = Sums::new(grid.n_cells(), 2 * nf);
    let mut rad = Sums::new(radial.v.len(), radial_width(dim));
    let mut q = [0.0; 2 * 9];
    let mut skipped = 0u64;
    let n_dumps = tracks.shape()[0];
    let nz = grid.nz();
    for p in particles {
        let mut n = 0;
        while n + lag < n_dumps {
            let (mut v, mut d) = ([0.0; 3], [0.0; 3]);
            for a in 0..dim {
                v[a] = tracks[[n, p, a]];
                d[a] = tracks[[n + lag, p, a]] - v[a];
            }
            n += stride;
            if !v[..dim].iter().chain(&d[..dim]).all(|x| x.is_finite()) {
                skipped += 1;
                continue;
            }
            let (vx, vy, dx, dy) = (v[0], v[1], d[0], d[1]);
            let Some((i, j)) = grid.cell_of(vx, vy) else {
                skipped += 1;
                continue;
            };
            let cell = if dim == 3 {
                let Some(k) = grid.z_cell_of(v[2]) else {
                    skipped += 1;
                    continue;
                };
                (i * grid.ny + j) * nz + k
            } else {
                i * grid.ny + j
            };
            cell_quantities(dim, &d, &mut q);
            cells.add(cell, &q[..2 * nf]);
            let speed = vx.hypot(vy);
            if let Some(b) = radial.bin_of(speed) {
                let (c, s) = if speed > 0.0 { (vx / speed, vy / speed) } else { (1.0, 0.0) };
                let par = dx * c + dy * s;
                let perp = -dx * s + dy * c;
                let dz2 = d[2] * d[2];
                let r = [par, par * par, perp * perp, par.powi(4), perp.powi(4), dz2, dz2 * dz2];
                rad.add(b, &r[..radial_width(dim)]);
            }
        }
    }
    (cells, rad, skipped)
}

/// Estimate A and D at lag `lag_dumps` (start-dump stride `stride`, default the lag) from the
/// tracks of `run` (`[n_dumps, n_tracked, d]` for the run's d-dimensional grid), binned on the
/// run's grid. `path` names the run in errors.
pub fn estimate(run: &RunData, path: &str, lag_dumps: usize, stride: Option<usize>) -> Result<TrackEstimate, BaselineError> {
    let tracks = run.tracks.as_ref().ok_or_else(|| BaselineError::NoTracks { path: path.into() })?;
    let shape = tracks.shape().to_vec();
    let grid = &run.grid;
    let dim = grid.dim();
    if shape[0] != run.t.len() || shape[2] != dim {
        return Err(BaselineError::BadShape { path: path.into(), shape, n_t: run.t.len(), dim });
    }
    if lag_dumps == 0 || lag_dumps >= shape[0] {
        return Err(BaselineError::LagTooLong { path: path.into(), n_dumps: shape[0], lag_dumps, need: lag_dumps.max(1) + 1 });
    }
    check_uniform(run, path)?;
    let stride = stride.unwrap_or(lag_dumps).max(1);
    let tau = run.t[lag_dumps] - run.t[0];
    let dv = grid.dvx().min(grid.dvy());
    let n_radial = (grid.plane().v_corner() / dv).ceil() as usize;
    let mut radial = RadialEstimate {
        v: (0..n_radial).map(|b| (b as f64 + 0.5) * dv).collect(),
        dv,
        counts: Vec::new(),
        a_par: Vec::new(),
        a_par_err: Vec::new(),
        d_par: Vec::new(),
        d_par_err: Vec::new(),
        d_perp: Vec::new(),
        d_perp_err: Vec::new(),
        d_zz: Vec::new(),
        d_zz_err: Vec::new(),
    };
    let nf = fp::n_fields(dim);
    let n_tracked = shape[1];
    let mut cells = Sums::new(grid.n_cells(), 2 * nf);
    let mut rad = Sums::new(n_radial, radial_width(dim));
    let mut skipped = 0;
    let chunks: Vec<_> = (0..n_tracked).step_by(CHUNK).map(|a| a..(a + CHUNK).min(n_tracked)).collect();
    // Bounded batches keep the per-chunk partial sums small in memory; folding in chunk order keeps
    // the result independent of the thread count (and of the batch size).
    let partial_bytes = grid.n_cells() * (2 * nf + 1) * 8;
    let batch = (PARTIAL_BYTES / partial_bytes.max(1)).clamp(1, 64);
    for batch in chunks.chunks(batch) {
        let parts: Vec<_> =
            batch.par_iter().map(|r| accumulate(tracks.view(), r.clone(), lag_dumps, stride, grid, &radial)).collect();
        for (c, r, s) in &parts {
            cells.merge(c);
            rad.merge(r);
            skipped += s;
        }
    }
    let (_, nx, nyz) = grid.fields_shape(nf);
    let mut fields = Array3::from_elem((nf, nx, nyz), f64::NAN);
    let mut errors = fields.clone();
    let counts = Array2::from_shape_vec((nx, nyz), cells.count.clone()).expect("cell count shape");
    for i in 0..nx {
        for j in 0..nyz {
            for field in 0..nf {
                let (m, e) = cells.rate(i * nyz + j, field, nf + field, tau);
                fields[[field, i, j]] = m;
                errors[[field, i, j]] = e;
            }
        }
    }
    for b in 0..n_radial {
        let (a, ae) = rad.rate(b, 0, 1, tau);
        let (dp, dpe) = rad.rate(b, 1, 3, tau);
        let (dq, dqe) = rad.rate(b, 2, 4, tau);
        radial.a_par.push(a);
        radial.a_par_err.push(ae);
        radial.d_par.push(dp);
        radial.d_par_err.push(dpe);
        radial.d_perp.push(dq);
        radial.d_perp_err.push(dqe);
        if dim == 3 {
            let (dz, dze) = rad.rate(b, 5, 6, tau);
            radial.d_zz.push(dz);
            radial.d_zz_err.push(dze);
        }
    }
    radial.counts = rad.count;
    let n_samples = counts.iter().sum();
    Ok(TrackEstimate { lag_dumps, tau, stride, grid: grid.clone(), counts, fields, errors, radial, n_samples, n_skipped: skipped })
}

fn check_uniform(run: &RunData, path: &str) -> Result<(), BaselineError> {
    let t = &run.t;
    if t.len() < 2 {
        return Ok(());
    }
    let dt = (t[t.len() - 1] - t[0]) / (t.len() - 1) as f64;
    for (index, w) in t.windows(2).enumerate() {
        let step_error = (w[1] - w[0] - dt).abs();
        if step_error.is_nan() || step_error > 1e-6 * dt {
            return Err(BaselineError::NonUniformDumps { path: path.into(), index, dt });
        }
    }
    Ok(())
}

/// Lag τ (1/ω_p) as a whole number of dumps of spacing `dt` (to a relative 1e-6).
pub fn lag_in_dumps(tau: f64, dt: f64, path: &str) -> Result<usize, BaselineError> {
    let steps = (tau / dt).round();
    if !(tau.is_finite() && dt > 0.0 && steps >= 1.0 && (steps * dt - tau).abs() <= 1e-6 * tau) {
        return Err(BaselineError::LagNotMultiple { path: path.into(), tau, dt });
    }
    Ok(steps as usize)
}

impl TrackEstimate {
    /// Fields for rollouts and the mask of cells that were filled (count < `min_count`): filled
    /// from the radial projection at that v_⊥ when its bin has ≥ `min_count` samples, else 0 —
    /// in 3D with D_zz from its profile and A_z = D_xz = D_yz = 0 (see [`extrude_planar`]).
    pub fn model_fields(&self, min_count: u64) -> (Fields, Array2<bool>) {
        let polar = Polar::new(&self.grid.plane());
        let r = &self.radial;
        let pick = |ys: &[f64], speed: f64| {
            r.bin_of(speed).filter(|&b| r.counts[b] >= min_count.max(1)).map_or(0.0, |b| ys[b])
        };
        let column = |ys: &[f64]| polar.speed.iter().map(|&s| pick(ys, s)).collect::<Vec<_>>();
        let mut iso = vec![0.0; fp::N_FIELDS * polar.n_cells()];
        to_cartesian(&polar, &column(&r.a_par), &column(&r.d_par), &column(&r.d_perp), &mut iso);
        let d_zz = (self.grid.dim() == 3).then(|| column(&r.d_zz));
        let iso = extrude_planar(&self.grid, &iso, d_zz.as_deref());
        let mut fields = self.fields.clone();
        let filled = self.counts.mapv(|c| c < min_count.max(1));
        let (nf, nx, nyz) = fields.dim();
        for f in 0..nf {
            for i in 0..nx {
                for j in 0..nyz {
                    if filled[[i, j]] {
                        fields[[f, i, j]] = iso[[f, i, j]];
                    }
                }
            }
        }
        (fields, filled)
    }
}
