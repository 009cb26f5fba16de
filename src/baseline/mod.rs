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
//! Empty cells (count 0) hold NaN in the estimates; cells with fewer than `min_count` samples are
//! unpopulated for the rollout model, which fills them with the isotropic projection at that |v|
//! (mapped with [`crate::operator::angular`]) or, where that radial bin is unpopulated too, with 0.
//! Summations run over fixed particle chunks reduced in chunk order, so results do not depend on
//! the thread count.

pub mod output;

use crate::data::RunData;
use crate::grid::VelocityGrid;
use crate::operator::angular::{to_cartesian, Polar};
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
    #[error("{path}: /tracks has shape {shape:?}, expected [n_dumps = {n_t}, n_tracked, 2]")]
    BadShape { path: String, shape: Vec<usize>, n_t: usize },
}

/// Per-bin running sums of K quantities and their count.
#[derive(Clone)]
struct Sums<const K: usize> {
    count: Vec<u64>,
    sums: Vec<[f64; K]>,
}

impl<const K: usize> Sums<K> {
    fn new(n: usize) -> Self {
        Self { count: vec![0; n], sums: vec![[0.0; K]; n] }
    }
    fn add(&mut self, bin: usize, q: [f64; K]) {
        self.count[bin] += 1;
        for (s, v) in self.sums[bin].iter_mut().zip(q) {
            *s += v;
        }
    }
    fn merge(&mut self, other: &Self) {
        for (a, b) in self.count.iter_mut().zip(&other.count) {
            *a += b;
        }
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }
    /// (mean of quantity `k`, standard error using the sum of its squares at index `k2`), both
    /// divided by `tau`; NaN for empty bins, NaN error below two samples.
    fn rate(&self, bin: usize, k: usize, k2: usize, tau: f64) -> (f64, f64) {
        let n = self.count[bin] as f64;
        if n == 0.0 {
            return (f64::NAN, f64::NAN);
        }
        let mean = self.sums[bin][k] / n;
        let err = if n >= 2.0 {
            let var = ((self.sums[bin][k2] - n * mean * mean) / (n - 1.0)).max(0.0);
            (var / n).sqrt() / tau
        } else {
            f64::NAN
        };
        (mean / tau, err)
    }
}

/// Radial (isotropic) projection of the estimate: bins in |v| of the grid's cell width.
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
    /// Samples per cell of the starting velocity.
    pub counts: Array2<u64>,
    /// `[5, nx, ny]` A_x, A_y, D_xx, D_yy, D_xy (NaN in empty cells).
    pub fields: Array3<f64>,
    /// Standard errors of `fields` (NaN below two samples).
    pub errors: Array3<f64>,
    pub radial: RadialEstimate,
    /// Samples used and samples skipped (non-finite velocities or start outside the grid).
    pub n_samples: u64,
    pub n_skipped: u64,
}

/// Cell sums: Δx, Δy, Δx², Δy², ΔxΔy, Δx⁴, Δy⁴, Δx²Δy².
type CellSums = Sums<8>;
/// Radial sums: Δ∥, Δ∥², Δ⊥², Δ∥⁴, Δ⊥⁴.
type RadialSums = Sums<5>;

/// Particles per chunk of the deterministic reduction.
const CHUNK: usize = 2048;

fn accumulate(
    tracks: ArrayView3<f64>,
    particles: std::ops::Range<usize>,
    lag: usize,
    stride: usize,
    grid: &VelocityGrid,
    radial: &RadialEstimate,
) -> (CellSums, RadialSums, u64) {
    let mut cells = CellSums::new(grid.n_cells());
    let mut rad = RadialSums::new(radial.v.len());
    let mut skipped = 0u64;
    let n_dumps = tracks.shape()[0];
    for p in particles {
        let mut n = 0;
        while n + lag < n_dumps {
            let (vx, vy) = (tracks[[n, p, 0]], tracks[[n, p, 1]]);
            let (dx, dy) = (tracks[[n + lag, p, 0]] - vx, tracks[[n + lag, p, 1]] - vy);
            n += stride;
            if !(vx.is_finite() && vy.is_finite() && dx.is_finite() && dy.is_finite()) {
                skipped += 1;
                continue;
            }
            let Some((i, j)) = grid.cell_of(vx, vy) else {
                skipped += 1;
                continue;
            };
            let (dx2, dy2) = (dx * dx, dy * dy);
            cells.add(i * grid.ny + j, [dx, dy, dx2, dy2, dx * dy, dx2 * dx2, dy2 * dy2, dx2 * dy2]);
            let speed = vx.hypot(vy);
            if let Some(b) = radial.bin_of(speed) {
                let (c, s) = if speed > 0.0 { (vx / speed, vy / speed) } else { (1.0, 0.0) };
                let par = dx * c + dy * s;
                let perp = -dx * s + dy * c;
                rad.add(b, [par, par * par, perp * perp, par.powi(4), perp.powi(4)]);
            }
        }
    }
    (cells, rad, skipped)
}

/// Estimate A and D at lag `lag_dumps` (start-dump stride `stride`, default the lag) from the
/// tracks of `run`, binned on the run's grid. `path` names the run in errors.
pub fn estimate(run: &RunData, path: &str, lag_dumps: usize, stride: Option<usize>) -> Result<TrackEstimate, BaselineError> {
    let tracks = run.tracks.as_ref().ok_or_else(|| BaselineError::NoTracks { path: path.into() })?;
    let shape = tracks.shape().to_vec();
    if shape[0] != run.t.len() || shape[2] != 2 {
        return Err(BaselineError::BadShape { path: path.into(), shape, n_t: run.t.len() });
    }
    if lag_dumps == 0 || lag_dumps >= shape[0] {
        return Err(BaselineError::LagTooLong { path: path.into(), n_dumps: shape[0], lag_dumps, need: lag_dumps.max(1) + 1 });
    }
    check_uniform(run, path)?;
    let stride = stride.unwrap_or(lag_dumps).max(1);
    let tau = run.t[lag_dumps] - run.t[0];
    let grid = &run.grid;
    let dv = grid.dvx().min(grid.dvy());
    let n_radial = (grid.v_corner() / dv).ceil() as usize;
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
    };
    let n_tracked = shape[1];
    let mut cells = CellSums::new(grid.n_cells());
    let mut rad = RadialSums::new(n_radial);
    let mut skipped = 0;
    let chunks: Vec<_> = (0..n_tracked).step_by(CHUNK).map(|a| a..(a + CHUNK).min(n_tracked)).collect();
    // Bounded batches keep the per-chunk partial sums small in memory; folding in chunk order keeps
    // the result independent of the thread count.
    for batch in chunks.chunks(64) {
        let parts: Vec<_> =
            batch.par_iter().map(|r| accumulate(tracks.view(), r.clone(), lag_dumps, stride, grid, &radial)).collect();
        for (c, r, s) in &parts {
            cells.merge(c);
            rad.merge(r);
            skipped += s;
        }
    }
    let (nx, ny) = grid.shape();
    let mut fields = Array3::from_elem((fp::N_FIELDS, nx, ny), f64::NAN);
    let mut errors = fields.clone();
    let counts = Array2::from_shape_vec((nx, ny), cells.count.clone()).expect("cell count shape");
    // (field, sum index, square-sum index).
    let layout = [(fp::AX, 0, 2), (fp::AY, 1, 3), (fp::DXX, 2, 5), (fp::DYY, 3, 6), (fp::DXY, 4, 7)];
    for i in 0..nx {
        for j in 0..ny {
            for (field, k, k2) in layout {
                let (m, e) = cells.rate(i * ny + j, k, k2, tau);
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
    /// from the radial projection at that |v| when its bin has ≥ `min_count` samples, else 0.
    pub fn model_fields(&self, min_count: u64) -> (Fields, Array2<bool>) {
        let polar = Polar::new(&self.grid);
        let r = &self.radial;
        let pick = |ys: &[f64], speed: f64| {
            r.bin_of(speed).filter(|&b| r.counts[b] >= min_count.max(1)).map_or(0.0, |b| ys[b])
        };
        let column = |ys: &[f64]| polar.speed.iter().map(|&s| pick(ys, s)).collect::<Vec<_>>();
        let mut iso = vec![0.0; fp::N_FIELDS * self.grid.n_cells()];
        to_cartesian(&polar, &column(&r.a_par), &column(&r.d_par), &column(&r.d_perp), &mut iso);
        let (nx, ny) = self.grid.shape();
        let mut fields = self.fields.clone();
        let filled = Array2::from_shape_fn((nx, ny), |(i, j)| self.counts[[i, j]] < min_count.max(1));
        for f in 0..fp::N_FIELDS {
            for i in 0..nx {
                for j in 0..ny {
                    if filled[[i, j]] {
                        fields[[f, i, j]] = iso[(f * nx + i) * ny + j];
                    }
                }
            }
        }
        (fields, filled)
    }
}
