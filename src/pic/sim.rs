//! The PIC loop: particle loading, fused gather–push–deposit over fixed particle chunks in
//! parallel, the field solve, and the diagnostics (histograms, tracks, energies) of a run.
//!
//! Units: time 1/ω_p, length λ_D, velocity v_th, density n₀, energy n₀ m v_th² λ_D². Electrons
//! have q/m = −1 so `dv/dt = −E`. Positions are stored in cell units. v_z is a constant of the
//! unmagnetised electrostatic motion and is not stored; energies are in-plane.
//!
//! Determinism: particles are split into a number of chunks that depends only on the config (not
//! on the thread count); every chunk deposits into its own padded grid and the grids are summed
//! in chunk order, so a run gives the same bits on any number of threads.

use super::config::{Distribution, PicConfig, TestMode};
use super::field::PoissonSolver;
use super::shape::{weights, PAD};
use super::PicError;
use crate::data::RunData;
use crate::grid::VelocityGrid;
use ndarray::{Array1, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Particles per chunk below which a chunk is not split further.
const MIN_CHUNK: usize = 8192;
/// Most chunk grids.
const MAX_CHUNKS: usize = 64;
/// Memory budget of all chunk grids together, bytes.
const CHUNK_GRID_BYTES: usize = 64 << 20;

/// Dispatch a function generic over the shape order to its monomorphised instance.
macro_rules! by_order {
    ($order:expr, $func:ident :: <_ $(, $extra:tt)*> ($($arg:expr),* $(,)?)) => {
        match $order {
            1 => $func::<1 $(, $extra)*>($($arg),*),
            2 => $func::<2 $(, $extra)*>($($arg),*),
            3 => $func::<3 $(, $extra)*>($($arg),*),
            _ => $func::<4 $(, $extra)*>($($arg),*),
        }
    };
}

/// One species in structure-of-arrays form: positions in cells, velocities in v_th.
#[derive(Clone, Debug, Default)]
pub struct Species {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub vx: Vec<f64>,
    pub vy: Vec<f64>,
    /// Constant v_z of test particles for 3-D histograms (empty otherwise).
    pub vz: Vec<f64>,
    /// Density (and mass) each particle carries, in n₀ per cell: `weight / ppc`.
    pub density_weight: f64,
    /// Whether the species deposits charge.
    pub deposits: bool,
}

impl Species {
    pub fn len(&self) -> usize {
        self.x.len()
    }
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
}

/// Geometry of the padded node arrays (ghost nodes on every side for the stencils).
#[derive(Clone, Copy, Debug)]
struct Padded {
    nx: usize,
    ny: usize,
    nyp: usize,
    len: usize,
}

impl Padded {
    fn new(nx: usize, ny: usize) -> Self {
        let (nxp, nyp) = (nx + 2 * PAD + 1, ny + 2 * PAD + 1);
        Self { nx, ny, nyp, len: nxp * nyp }
    }
    fn nxp(&self) -> usize {
        self.len / self.nyp
    }
    /// The unpadded node of padded index `p` along an axis of `n` nodes.
    fn wrap(p: usize, n: usize) -> usize {
        (p as isize - PAD as isize).rem_euclid(n as isize) as usize
    }
}

/// Field at `(x, y)` (cells) interpolated with the order-`O` B-spline from the padded node field.
#[inline(always)]
fn gather<const O: usize>(x: f64, y: f64, field: &[[f64; 2]], nyp: usize) -> (f64, f64) {
    let (bx, wx) = weights::<O>(x);
    let (by, wy) = weights::<O>(y);
    let (mut ex, mut ey) = (0.0, 0.0);
    for a in 0..=O {
        let row = &field[(bx + (a + PAD) as isize) as usize * nyp + (by + PAD as isize) as usize..][..=O];
        let (mut rx, mut ry) = (0.0, 0.0);
        for b in 0..=O {
            rx += wy[b] * row[b][0];
            ry += wy[b] * row[b][1];
        }
        ex += wx[a] * rx;
        ey += wx[a] * ry;
    }
    (ex, ey)
}

/// Add `w` × the order-`O` B-spline at `(x, y)` to the padded grid.
#[inline(always)]
fn deposit<const O: usize>(x: f64, y: f64, w: f64, grid: &mut [f64], nyp: usize) {
    let (bx, wx) = weights::<O>(x);
    let (by, wy) = weights::<O>(y);
    for a in 0..=O {
        let row = &mut grid[(bx + (a + PAD) as isize) as usize * nyp + (by + PAD as isize) as usize..][..=O];
        let wa = w * wx[a];
        for b in 0..=O {
            row[b] += wa * wy[b];
        }
    }
}

/// Put a position back into `[0, n)`.
#[inline(always)]
fn wrap_position(x: f64, n: f64) -> f64 {
    let x = if x < 0.0 {
        x + n
    } else if x >= n {
        x - n
    } else {
        return x;
    };
    if x >= 0.0 && x < n {
        x
    } else {
        let r = x.rem_euclid(n);
        if r < n {
            r
        } else {
            0.0
        }
    }
}

/// Parameters of one push, shared by every chunk.
#[derive(Clone, Copy)]
struct PushStep {
    dt: f64,
    dt_over_dx: f64,
    nx: f64,
    ny: f64,
    nyp: usize,
    weight: f64,
}

/// Leapfrog one chunk: `v ← v − E(x) dt`, `x ← x + v dt`, deposit at the new x (if `DEPOSIT`).
/// Returns Σ v² of the new (half-step) velocities.
#[allow(clippy::too_many_arguments)]
fn push_chunk<const O: usize, const DEPOSIT: bool>(
    x: &mut [f64],
    y: &mut [f64],
    vx: &mut [f64],
    vy: &mut [f64],
    field: &[[f64; 2]],
    grid: &mut [f64],
    p: PushStep,
) -> f64 {
    let mut v2 = 0.0;
    for i in 0..x.len() {
        let (ex, ey) = gather::<O>(x[i], y[i], field, p.nyp);
        let ux = vx[i] - ex * p.dt;
        let uy = vy[i] - ey * p.dt;
        vx[i] = ux;
        vy[i] = uy;
        v2 += ux * ux + uy * uy;
        let nxi = wrap_position(x[i] + ux * p.dt_over_dx, p.nx);
        let nyi = wrap_position(y[i] + uy * p.dt_over_dx, p.ny);
        x[i] = nxi;
        y[i] = nyi;
        if DEPOSIT {
            deposit::<O>(nxi, nyi, p.weight, grid, p.nyp);
        }
    }
    v2
}

/// Deposit one chunk without moving it.
fn deposit_chunk<const O: usize>(x: &[f64], y: &[f64], w: f64, grid: &mut [f64], nyp: usize) {
    for (&x, &y) in x.iter().zip(y) {
        deposit::<O>(x, y, w, grid, nyp);
    }
}

/// `v ← v − c·E(x)` for one chunk; returns Σ v² afterwards.
fn kick_chunk<const O: usize>(
    x: &[f64],
    y: &[f64],
    vx: &mut [f64],
    vy: &mut [f64],
    c: f64,
    field: &[[f64; 2]],
    nyp: usize,
) -> f64 {
    let mut v2 = 0.0;
    for i in 0..x.len() {
        let (ex, ey) = gather::<O>(x[i], y[i], field, nyp);
        vx[i] -= c * ex;
        vy[i] -= c * ey;
        v2 += vx[i] * vx[i] + vy[i] * vy[i];
    }
    v2
}

/// Histogram of `v − c·E(x)` of one chunk on `grid`, plus Σ(count inside).
#[allow(clippy::too_many_arguments)]
fn histogram_chunk<const O: usize>(
    x: &[f64],
    y: &[f64],
    vx: &[f64],
    vy: &[f64],
    vz: &[f64],
    c: f64,
    field: &[[f64; 2]],
    nyp: usize,
    grid: &VelocityGrid,
) -> Vec<f64> {
    let mut counts = vec![0.0; grid.n_cells()];
    for i in 0..x.len() {
        let (ex, ey) = gather::<O>(x[i], y[i], field, nyp);
        if let Some((a, b)) = grid.cell_of(vx[i] - c * ex, vy[i] - c * ey) {
            match vz.get(i) {
                None => counts[a * grid.ny + b] += 1.0,
                Some(&w) => {
                    if let Some(k) = grid.z_cell_of(w) {
                        counts[(a * grid.ny + b) * grid.nz() + k] += 1.0;
                    }
                }
            }
        }
    }
    counts
}

/// Kinetic and field energy at one time (units n₀ m v_th² λ_D²).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Energy {
    pub time: f64,
    pub kinetic: f64,
    pub field: f64,
}

impl Energy {
    pub fn total(&self) -> f64 {
        self.kinetic + self.field
    }
}

/// A PIC simulation in progress. Between steps the state is `x_n`, `v_{n−½}`, `E_n`.
pub struct Simulation {
    cfg: PicConfig,
    order: usize,
    dx: f64,
    dt: f64,
    pad: Padded,
    pub electrons: Species,
    pub test: Species,
    n_chunks: usize,
    chunk_grids: Vec<f64>,
    density_padded: Vec<f64>,
    density: Vec<f64>,
    ex: Vec<f64>,
    ey: Vec<f64>,
    field: Vec<[f64; 2]>,
    fold_x: Vec<usize>,
    fold_y: Vec<usize>,
    poisson: PoissonSolver,
    chunk_sums: Vec<f64>,
    step: usize,
    /// Σ m v²/2 at the last half step.
    kinetic_half: f64,
}

impl Simulation {
    /// Load the particles and solve the initial field. Validates the config.
    pub fn new(cfg: &PicConfig) -> Result<Self, PicError> {
        cfg.validate()?;
        let (nx, ny, dx) = (cfg.grid.nx, cfg.grid.ny, cfg.grid.dx);
        let pad = Padded::new(nx, ny);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);

        let electrons = load_electrons(cfg, &mut rng);
        let test = load_test_particles(cfg, &mut rng);
        if !test.is_empty() {
            let vgrid = cfg.velocity_grid()?;
            let inside = test.vx.iter().zip(&test.vy).filter(|(vx, vy)| vgrid.cell_of(**vx, **vy).is_some()).count();
            if 2 * inside < test.len() {
                return Err(PicError::Config {
                    key: "histogram.v_range".into(),
                    msg: format!(
                        "{:?} holds only {inside} of {} initial test particles",
                        cfg.histogram.v_range,
                        test.len()
                    ),
                });
            }
        }

        let n_total = electrons.len();
        let by_count = n_total.div_ceil(MIN_CHUNK).clamp(1, MAX_CHUNKS);
        let by_memory = (CHUNK_GRID_BYTES / (pad.len * 8)).max(1);
        let n_chunks = by_count.min(by_memory);
        let fold_x = (0..pad.nxp()).map(|p| Padded::wrap(p, nx)).collect();
        let fold_y = (0..pad.nyp).map(|p| Padded::wrap(p, ny)).collect();
        let order = cfg.order();
        let mut chunk_grids = vec![0.0; n_chunks * pad.len];
        for s in [&electrons, &test] {
            if s.deposits {
                let len = chunk_len(s.len(), n_chunks);
                let nyp = pad.nyp;
                s.x.par_chunks(len)
                    .zip(s.y.par_chunks(len))
                    .zip(chunk_grids.par_chunks_mut(pad.len))
                    .for_each(|((x, y), g)| by_order!(order, deposit_chunk::<_>(x, y, s.density_weight, g, nyp)));
            }
        }
        let mut sim = Self {
            cfg: cfg.clone(),
            order,
            dx,
            dt: cfg.time.dt,
            pad,
            electrons,
            test,
            n_chunks,
            chunk_grids,
            density_padded: vec![0.0; pad.len],
            density: vec![0.0; nx * ny],
            ex: vec![0.0; nx * ny],
            ey: vec![0.0; nx * ny],
            field: vec![[0.0; 2]; pad.len],
            fold_x,
            fold_y,
            poisson: PoissonSolver::new(nx, ny, dx, cfg.shape.gaussian_width),
            chunk_sums: Vec::with_capacity(MAX_CHUNKS),
            step: 0,
            kinetic_half: 0.0,
        };
        sim.solve_field();
        // v_0 → v_{−½} = v_0 + E_0 dt/2.
        sim.kinetic_half = sim.kick(-0.5 * sim.dt);
        Ok(sim)
    }

    /// The config this simulation runs.
    pub fn config(&self) -> &PicConfig {
        &self.cfg
    }
    /// Steps taken.
    pub fn steps_done(&self) -> usize {
        self.step
    }
    /// Current time t_n = n dt.
    pub fn time(&self) -> f64 {
        self.step as f64 * self.dt
    }
    /// `(E_x, E_y)` on the `[nx][ny]` nodes at t_n.
    pub fn field(&self) -> (&[f64], &[f64]) {
        (&self.ex, &self.ey)
    }
    /// Electron density on the nodes at t_n (n₀ units; includes self-consistent test particles).
    pub fn density(&self) -> &[f64] {
        &self.density
    }
    /// Number of particle chunks (fixed by the config).
    pub fn n_chunks(&self) -> usize {
        self.n_chunks
    }
    /// `|Ê_x|² + |Ê_y|²` on the half spectrum `[nx][ny/2+1]`, `Ê(k) = Σ_nodes E e^{−ik·x}`, with
    /// the wavenumbers `(k_x, k_y)` in 1/λ_D.
    pub fn field_power_spectrum(&mut self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let power = self.poisson.power_spectrum(&self.ex, &self.ey);
        let (kx, ky) = self.poisson.wavenumbers();
        (power, kx.to_vec(), ky.to_vec())
    }

    /// Field energy ½ Σ_nodes |E|² Δx² at t_n.
    pub fn field_energy(&self) -> f64 {
        let s: f64 = self.ex.iter().zip(&self.ey).map(|(x, y)| x * x + y * y).sum();
        0.5 * s * self.dx * self.dx
    }

    /// Energy-carrying mass per particle of a species (n₀ m λ_D² units).
    fn mass(&self, s: &Species) -> f64 {
        if s.deposits {
            s.density_weight * self.dx * self.dx
        } else {
            0.0
        }
    }

    /// `v ← v − c·E(x)` for every particle; returns the kinetic energy afterwards.
    fn kick(&mut self, c: f64) -> f64 {
        let (order, nyp, n_chunks) = (self.order, self.pad.nyp, self.n_chunks);
        let field = &self.field;
        let mut kinetic = 0.0;
        let masses = [self.mass(&self.electrons), self.mass(&self.test)];
        for (s, mass) in [&mut self.electrons, &mut self.test].into_iter().zip(masses) {
            let len = chunk_len(s.len(), n_chunks);
            s.x.par_chunks(len)
                .zip(s.y.par_chunks(len))
                .zip(s.vx.par_chunks_mut(len))
                .zip(s.vy.par_chunks_mut(len))
                .map(|(((x, y), vx), vy)| by_order!(order, kick_chunk::<_>(x, y, vx, vy, c, field, nyp)))
                .collect_into_vec(&mut self.chunk_sums);
            kinetic += 0.5 * mass * self.chunk_sums.iter().sum::<f64>();
        }
        kinetic
    }

    /// Sum the chunk grids in chunk order, fold the ghosts, solve, fill the padded field.
    fn solve_field(&mut self) {
        let (len, nyp) = (self.pad.len, self.pad.nyp);
        let grids = &self.chunk_grids;
        self.density_padded.par_chunks_mut(nyp).enumerate().for_each(|(row, out)| {
            out.fill(0.0);
            for g in grids.chunks_exact(len) {
                for (o, v) in out.iter_mut().zip(&g[row * nyp..(row + 1) * nyp]) {
                    *o += v;
                }
            }
        });
        self.chunk_grids.par_chunks_mut(len).for_each(|g| g.fill(0.0));
        let ny = self.pad.ny;
        self.density.fill(0.0);
        for (p, &i) in self.fold_x.iter().enumerate() {
            for (q, &j) in self.fold_y.iter().enumerate() {
                self.density[i * ny + j] += self.density_padded[p * nyp + q];
            }
        }
        self.poisson.solve(&self.density, &mut self.ex, &mut self.ey);
        for (p, &i) in self.fold_x.iter().enumerate() {
            for (q, &j) in self.fold_y.iter().enumerate() {
                self.field[p * nyp + q] = [self.ex[i * ny + j], self.ey[i * ny + j]];
            }
        }
    }

    /// Advance one step: `v_{n+½}`, `x_{n+1}`, `E_{n+1}`. Returns the energy at t_n (kinetic as
    /// the mean of the two half steps around it).
    pub fn step(&mut self) -> Energy {
        let time = self.time();
        let field_energy = self.field_energy();
        let (order, n_chunks) = (self.order, self.n_chunks);
        let base = PushStep {
            dt: self.dt,
            dt_over_dx: self.dt / self.dx,
            nx: self.pad.nx as f64,
            ny: self.pad.ny as f64,
            nyp: self.pad.nyp,
            weight: 0.0,
        };
        let field = &self.field;
        let grid_len = self.pad.len;
        let mut kinetic = 0.0;
        let masses = [self.mass(&self.electrons), self.mass(&self.test)];
        for (s, mass) in [&mut self.electrons, &mut self.test].into_iter().zip(masses) {
            let len = chunk_len(s.len(), n_chunks);
            let p = PushStep { weight: s.density_weight, ..base };
            let deposits = s.deposits;
            s.x.par_chunks_mut(len)
                .zip(s.y.par_chunks_mut(len))
                .zip(s.vx.par_chunks_mut(len))
                .zip(s.vy.par_chunks_mut(len))
                .zip(self.chunk_grids.par_chunks_mut(grid_len))
                .map(|((((x, y), vx), vy), g)| {
                    if deposits {
                        by_order!(order, push_chunk::<_, true>(x, y, vx, vy, field, g, p))
                    } else {
                        by_order!(order, push_chunk::<_, false>(x, y, vx, vy, field, g, p))
                    }
                })
                .collect_into_vec(&mut self.chunk_sums);
            kinetic += 0.5 * mass * self.chunk_sums.iter().sum::<f64>();
        }
        self.solve_field();
        self.step += 1;
        let energy = Energy { time, kinetic: 0.5 * (self.kinetic_half + kinetic), field: field_energy };
        self.kinetic_half = kinetic;
        energy
    }

    /// Histogram of the test particles' time-centred velocities `v_n = v_{n−½} − E_n dt/2`.
    pub fn test_histogram(&self, grid: &VelocityGrid) -> Vec<f64> {
        let (order, nyp, c) = (self.order, self.pad.nyp, 0.5 * self.dt);
        let s = &self.test;
        let field = &self.field;
        let len = chunk_len(s.len(), self.n_chunks);
        let no_vz: Vec<f64> = Vec::new();
        let vz_chunks: Vec<&[f64]> = if grid.dim() == 3 { s.vz.chunks(len).collect() } else { vec![&no_vz[..]; s.x.len().div_ceil(len)] };
        let parts: Vec<Vec<f64>> =
            s.x.par_chunks(len)
                .zip(s.y.par_chunks(len))
                .zip(s.vx.par_chunks(len))
                .zip(s.vy.par_chunks(len))
                .zip(vz_chunks.par_iter())
                .map(|((((x, y), vx), vy), vz)| by_order!(order, histogram_chunk::<_>(x, y, vx, vy, vz, c, field, nyp, grid)))
                .collect();
        let mut counts = vec![0.0; grid.n_cells()];
        for part in parts {
            counts.iter_mut().zip(part).for_each(|(c, p)| *c += p);
        }
        counts
    }

    /// Time-centred velocities `v_n` of the first `n` test particles, `[n][2]` flattened (`[n][3]`
    /// with the constant v_z when the test particles carry one).
    pub fn test_velocities(&self, n: usize) -> Vec<f64> {
        let c = 0.5 * self.dt;
        let s = &self.test;
        let mut out = Vec::with_capacity(3 * n);
        for i in 0..n.min(s.len()) {
            let (ex, ey) = by_order!(self.order, gather::<_>(s.x[i], s.y[i], &self.field, self.pad.nyp));
            out.push(s.vx[i] - c * ex);
            out.push(s.vy[i] - c * ey);
            if let Some(vz) = s.vz.get(i) {
                out.push(*vz);
            }
        }
        out
    }
}

/// Particles per chunk for `n` particles over `n_chunks` chunks (at least 1).
fn chunk_len(n: usize, n_chunks: usize) -> usize {
    n.div_ceil(n_chunks).max(1)
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample(StandardNormal)
}

fn load_electrons(cfg: &PicConfig, rng: &mut ChaCha8Rng) -> Species {
    let (nx, ny, dx) = (cfg.grid.nx, cfg.grid.ny, cfg.grid.dx);
    let ppc = cfg.ppc();
    let n = nx * ny * ppc;
    let mut s = Species {
        x: Vec::with_capacity(n),
        y: Vec::with_capacity(n),
        vx: Vec::with_capacity(n),
        vy: Vec::with_capacity(n),
        vz: Vec::new(),
        density_weight: 1.0 / ppc as f64,
        deposits: true,
    };
    if cfg.plasma.quiet_start {
        let m = (ppc as f64).sqrt().round() as usize;
        for i in 0..nx {
            for j in 0..ny {
                for a in 0..m {
                    for b in 0..m {
                        s.x.push(i as f64 + (a as f64 + 0.5) / m as f64);
                        s.y.push(j as f64 + (b as f64 + 0.5) / m as f64);
                    }
                }
            }
        }
    } else {
        for _ in 0..n {
            s.x.push(rng.gen::<f64>() * nx as f64);
            s.y.push(rng.gen::<f64>() * ny as f64);
        }
    }
    for _ in 0..n {
        let (vx, vy) = if cfg.plasma.cold { (0.0, 0.0) } else { (normal(rng), normal(rng)) };
        s.vx.push(vx);
        s.vy.push(vy);
    }
    if let Some(p) = &cfg.plasma.perturbation {
        let lx = nx as f64 * dx;
        let ly = ny as f64 * dx;
        let (kx, ky) = (std::f64::consts::TAU * p.mode[0] as f64 / lx, std::f64::consts::TAU * p.mode[1] as f64 / ly);
        let k = kx.hypot(ky);
        for i in 0..n {
            let phase = kx * s.x[i] * dx + ky * s.y[i] * dx;
            let d = p.amplitude * phase.sin() / dx;
            s.x[i] = wrap_position(s.x[i] + d * kx / k, nx as f64);
            s.y[i] = wrap_position(s.y[i] + d * ky / k, ny as f64);
        }
    }
    s
}

fn load_test_particles(cfg: &PicConfig, rng: &mut ChaCha8Rng) -> Species {
    let tp = &cfg.test_particles;
    let n = tp.n;
    let (nx, ny) = (cfg.grid.nx as f64, cfg.grid.ny as f64);
    let deposits = tp.mode == TestMode::SelfConsistent;
    let mut s = Species {
        x: Vec::with_capacity(n),
        y: Vec::with_capacity(n),
        vx: Vec::with_capacity(n),
        vy: Vec::with_capacity(n),
        vz: Vec::new(),
        density_weight: if deposits { tp.weight / cfg.ppc() as f64 } else { 0.0 },
        deposits,
    };
    for _ in 0..n {
        s.x.push(rng.gen::<f64>() * nx);
        s.y.push(rng.gen::<f64>() * ny);
        let (vx, vy) = match tp.distribution {
            Distribution::Normal { center, sigma } => {
                (center[0] + sigma * normal(rng), center[1] + sigma * normal(rng))
            }
            Distribution::Ring { radius, width } => {
                let speed = radius + width * normal(rng);
                let angle = rng.gen::<f64>() * std::f64::consts::TAU;
                (speed * angle.cos(), speed * angle.sin())
            }
            Distribution::Maxwellian { v_th } => (v_th * normal(rng), v_th * normal(rng)),
        };
        s.vx.push(vx);
        s.vy.push(vy);
    }
    if cfg.histogram.bins.len() == 3 {
        // A stream of its own: the 2-D state is the same as without v_z.
        let mut rz = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7a7a_7a7a_7a7a_7a7a);
        // σ_z, and the mean and standard deviation of the initial v_x.
        let (sigma, cx, sx) = match tp.distribution {
            Distribution::Normal { center, sigma } => (sigma, center[0], sigma),
            Distribution::Ring { radius, width } => (width, 0.0, (0.5 * (radius * radius + width * width)).sqrt()),
            Distribution::Maxwellian { v_th } => (v_th, 0.0, v_th),
        };
        let rho = tp.vz_correlation;
        s.vz = if rho == 0.0 || sx == 0.0 {
            (0..n).map(|_| sigma * normal(&mut rz)).collect()
        } else {
            let rest = (1.0 - rho * rho).sqrt();
            s.vx.iter().map(|&vx| sigma * (rho * (vx - cx) / sx + rest * normal(&mut rz))).collect()
        };
    }
    s
}

/// Progress of a run: steps done of the total.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// Run a whole PIC simulation and gather its dataset: histograms every `dump_every` steps
/// (first at t = 0), tracks, energy history and `/params`.
pub fn run(cfg: &PicConfig, progress: Progress) -> Result<RunData, PicError> {
    let mut sim = Simulation::new(cfg)?;
    let vgrid = cfg.velocity_grid()?;
    let (steps, every) = (cfg.time.steps, cfg.time.dump_every);
    let n_dumps = steps / every + 1;
    let n_tracks = cfg.test_particles.tracks;
    let mut f = Array3::<f64>::zeros((n_dumps, vgrid.nx, vgrid.ny * vgrid.nz()));
    let mut tracks = (n_tracks > 0).then(|| Array3::<f64>::zeros((n_dumps, n_tracks, vgrid.dim())));
    let mut t = Vec::with_capacity(n_dumps);
    let mut energies = Vec::with_capacity(steps);
    let mut dump = |sim: &Simulation, d: usize, t: &mut Vec<f64>| {
        let counts = sim.test_histogram(&vgrid);
        f.index_axis_mut(ndarray::Axis(0), d).as_slice_mut().expect("standard layout").copy_from_slice(&counts);
        if let Some(tr) = tracks.as_mut() {
            let v = sim.test_velocities(n_tracks);
            tr.index_axis_mut(ndarray::Axis(0), d).as_slice_mut().expect("standard layout").copy_from_slice(&v);
        }
        t.push(sim.time());
    };
    dump(&sim, 0, &mut t);
    for n in 0..steps {
        let e = sim.step();
        if let (Some(max), Some(e0)) = (cfg.energy_check.max_drift, energies.first().map(Energy::total)) {
            let drift = relative_drift(e.total(), e0);
            if drift.abs() > max || !drift.is_finite() {
                return Err(PicError::EnergyDrift { drift, max, time: e.time });
            }
        }
        energies.push(e);
        if (n + 1) % every == 0 {
            dump(&sim, (n + 1) / every, &mut t);
        }
        progress(n + 1, steps);
    }
    let mut diagnostics = BTreeMap::new();
    let series = |g: &dyn Fn(&Energy) -> f64| Array1::from_iter(energies.iter().map(g));
    diagnostics.insert("energy_time".to_string(), series(&|e| e.time));
    diagnostics.insert("energy_kinetic".to_string(), series(&|e| e.kinetic));
    diagnostics.insert("energy_field".to_string(), series(&|e| e.field));
    diagnostics.insert("energy_total".to_string(), series(&|e| e.total()));
    let e0 = energies.first().map_or(0.0, Energy::total);
    diagnostics.insert("energy_drift".to_string(), series(&|e| relative_drift(e.total(), e0)));
    Ok(RunData {
        grid: vgrid,
        f,
        t,
        dt: cfg.time.dt * every as f64,
        n_particles: cfg.test_particles.n as f64,
        params: params(cfg),
        tracks,
        diagnostics,
        labels: Default::default(),
    })
}

/// (E − E₀)/|E₀| (0 for a run without energy).
fn relative_drift(e: f64, e0: f64) -> f64 {
    if e0 == 0.0 {
        0.0
    } else {
        (e - e0) / e0.abs()
    }
}

/// The `/params` of a run: every number that conditions its physics.
pub fn params(cfg: &PicConfig) -> BTreeMap<String, f64> {
    let tp = &cfg.test_particles;
    let mut p = BTreeMap::new();
    let mut put = |k: &str, v: f64| {
        p.insert(k.to_string(), v);
    };
    put("ppc", cfg.plasma.ppc as f64);
    put("v_th", 1.0);
    put("v_th_over_c", cfg.plasma.v_th_over_c);
    put("shape", cfg.shape.order as f64);
    put("dx_over_lambda_D", cfg.grid.dx);
    put("n_lambda_D2", cfg.n_lambda_d2());
    put("gaussian_width", cfg.shape.gaussian_width);
    put("nx_cells", cfg.grid.nx as f64);
    put("ny_cells", cfg.grid.ny as f64);
    put("dt_step", cfg.time.dt);
    put("steps", cfg.time.steps as f64);
    put("dump_every", cfg.time.dump_every as f64);
    put("quiet_start", cfg.plasma.quiet_start as u8 as f64);
    put("cold", cfg.plasma.cold as u8 as f64);
    put("n_test", tp.n as f64);
    put("test_self_consistent", (tp.mode == TestMode::SelfConsistent) as u8 as f64);
    put("test_weight", if tp.mode == TestMode::SelfConsistent { tp.weight } else { 0.0 });
    put("n_tracks", tp.tracks as f64);
    if tp.vz_correlation != 0.0 {
        put("test_vz_correlation", tp.vz_correlation);
    }
    put("seed", cfg.seed as f64);
    match tp.distribution {
        Distribution::Normal { center, sigma } => {
            put("test_dist_normal", 1.0);
            put("test_center_x", center[0]);
            put("test_center_y", center[1]);
            put("test_sigma", sigma);
        }
        Distribution::Ring { radius, width } => {
            put("test_dist_ring", 1.0);
            put("test_radius", radius);
            put("test_width", width);
        }
        Distribution::Maxwellian { v_th } => {
            put("test_dist_maxwellian", 1.0);
            put("test_v_th", v_th);
        }
    }
    p
}
