//! The PIC run configuration: serde structs (unknown keys rejected) and validation that names the
//! offending key before any work starts.

use super::PicError;
use crate::grid::VelocityGrid;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One PIC run, as read from `configs/pic.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PicConfig {
    /// The periodic spatial box.
    pub grid: SpaceGrid,
    /// The thermal electron background.
    #[serde(default)]
    pub plasma: Plasma,
    /// Particle shape for deposit and field interpolation.
    #[serde(default)]
    pub shape: Shape,
    /// Time stepping and dump cadence.
    pub time: Time,
    /// The test-particle species whose velocity histograms are the run's data.
    #[serde(default)]
    pub test_particles: TestParticles,
    /// The (v_x, v_y) histogram grid of the dumps.
    #[serde(default)]
    pub histogram: Histogram,
    /// Seed of the ChaCha random stream (positions, velocities).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How much drift of the total energy a run may show.
    #[serde(default)]
    pub energy_check: EnergyCheck,
}

/// Limits on the relative drift |E(t) − E(0)|/E(0) of the total (kinetic + field) energy, the
/// sign of an unstable run (too large a `dt`, too heavy test particles).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyCheck {
    /// Above this drift the run logs a warning (it still writes its file).
    #[serde(default = "default_warn_drift")]
    pub warn_drift: f64,
    /// Above this drift the run fails at once: no run file is written. Off by default.
    #[serde(default)]
    pub max_drift: Option<f64>,
}

impl Default for EnergyCheck {
    fn default() -> Self {
        Self { warn_drift: default_warn_drift(), max_drift: None }
    }
}

fn default_warn_drift() -> f64 {
    0.05
}

/// Periodic box of `nx × ny` square cells of side `dx` (in Debye lengths).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceGrid {
    pub nx: usize,
    pub ny: usize,
    /// Cell size Δx/λ_D.
    pub dx: f64,
}

/// The electron background.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plasma {
    /// Electron macro-particles per cell (signed so that a negative value gets a clear error).
    #[serde(default = "default_ppc")]
    pub ppc: i64,
    /// Positions on a regular √ppc×√ppc lattice in every cell instead of uniformly random.
    #[serde(default)]
    pub quiet_start: bool,
    /// Start the electrons at rest (lengths stay in units of the reference λ_D). For the
    /// cold-plasma oscillation check.
    #[serde(default)]
    pub cold: bool,
    /// v_th/c, recorded in `/params` for later relativistic or electromagnetic work.
    #[serde(default = "default_vth_over_c")]
    pub v_th_over_c: f64,
    /// Optional initial sinusoidal displacement of the electrons (a Langmuir wave seed).
    #[serde(default)]
    pub perturbation: Option<Perturbation>,
}

/// Displacement `ξ = amplitude · k̂ sin(k·x)` of the electrons with `k = 2π(mode_x/L_x, mode_y/L_y)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Perturbation {
    pub mode: [i64; 2],
    /// Displacement amplitude in λ_D.
    pub amplitude: f64,
}

/// B-spline order and optional Gaussian smoothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// 1 linear, 2 quadratic, 3 cubic, 4 quartic.
    #[serde(default = "default_order")]
    pub order: i64,
    /// Width a (λ_D) of the extra Gaussian form factor exp(−k²a²/2); 0 disables it.
    #[serde(default)]
    pub gaussian_width: f64,
}

/// Leapfrog step, run length and dump cadence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Time {
    /// Time step in 1/ω_p.
    pub dt: f64,
    /// Number of steps.
    pub steps: usize,
    /// Histogram (and track) dump every this many steps; the first dump is at t = 0.
    pub dump_every: usize,
}

/// How test particles take part in the dynamics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestMode {
    /// Feel the field and deposit charge `weight` × an electron's (same charge/mass ratio).
    SelfConsistent,
    /// Feel the field, deposit nothing.
    Tracer,
}

/// The test-particle species.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestParticles {
    /// Number of test particles (positions uniformly random).
    #[serde(default)]
    pub n: usize,
    #[serde(default = "default_mode")]
    pub mode: TestMode,
    /// Charge (and mass) of a test particle relative to an electron macro-particle. The
    /// polarisation drag on a test particle is proportional to it: use 1 for physical drag and
    /// keep `n × weight` small against the electron count.
    #[serde(default = "default_weight")]
    pub weight: f64,
    #[serde(default)]
    pub distribution: Distribution,
    /// Record the velocities of the first `tracks` test particles at every dump.
    #[serde(default)]
    pub tracks: usize,
    /// With 3-D histograms: correlation ρ ∈ [−1, 1] of a test particle's (constant) v_z with its
    /// initial v_x, v_z = σ_z(ρ(v_x − c_x)/s_x + √(1 − ρ²)ξ) (c_x, s_x: mean and standard deviation
    /// of v_x). 0 (the default) draws v_z independently. A correlated start makes the (v_x, v_z)
    /// distribution relax in time although v_z never changes, so a learned 3-D operator must
    /// show that nothing acts along v_z.
    #[serde(default)]
    pub vz_correlation: f64,
}

/// Initial test-particle velocity distribution (velocities in v_th).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Gaussian of standard deviation `sigma` per component around `center`.
    Normal { center: [f64; 2], sigma: f64 },
    /// Speeds `radius + width·N(0,1)`, directions uniform.
    Ring { radius: f64, width: f64 },
    /// Isotropic Maxwellian with thermal speed `v_th` (1 = the background's).
    Maxwellian {
        #[serde(default = "default_one")]
        v_th: f64,
    },
}

/// The histogram grid: `bins` cells over `v_range = [vx_min, vx_max, vy_min, vy_max]` (v_th),
/// or with `bins: [nx, ny, nz]` and 6 values (`vz_min, vz_max` added) 3-D histograms of
/// (v_x, v_y, v_z). The code is 2-D electrostatic, so a test particle's v_z never changes: it is
/// drawn once, N(0, σ_z²) with σ_z the distribution's `sigma` (normal), `width` (ring) or `v_th`
/// (maxwellian), from a random stream of its own (the 2-D velocities are as without it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Histogram {
    #[serde(default = "default_bins")]
    pub bins: Vec<usize>,
    #[serde(default = "default_v_range")]
    pub v_range: Vec<f64>,
}

fn default_seed() -> u64 {
    1
}
fn default_ppc() -> i64 {
    64
}
fn default_vth_over_c() -> f64 {
    0.01
}
fn default_order() -> i64 {
    2
}
fn default_mode() -> TestMode {
    TestMode::Tracer
}
fn default_weight() -> f64 {
    1.0
}
fn default_one() -> f64 {
    1.0
}
fn default_bins() -> Vec<usize> {
    vec![51, 51]
}
fn default_v_range() -> Vec<f64> {
    vec![-5.0, 5.0, -5.0, 5.0]
}

impl Default for Plasma {
    fn default() -> Self {
        Self {
            ppc: default_ppc(),
            quiet_start: false,
            cold: false,
            v_th_over_c: default_vth_over_c(),
            perturbation: None,
        }
    }
}
impl Default for Shape {
    fn default() -> Self {
        Self { order: default_order(), gaussian_width: 0.0 }
    }
}
impl Default for TestParticles {
    fn default() -> Self {
        Self { n: 0, mode: default_mode(), weight: default_weight(), distribution: Distribution::default(), tracks: 0, vz_correlation: 0.0 }
    }
}
impl Default for Distribution {
    fn default() -> Self {
        Distribution::Maxwellian { v_th: 1.0 }
    }
}
impl Default for Histogram {
    fn default() -> Self {
        Self { bins: default_bins(), v_range: default_v_range() }
    }
}

/// Highest supported B-spline order.
pub const MAX_ORDER: usize = 4;

fn bad(key: &str, msg: impl Into<String>) -> PicError {
    PicError::Config { key: key.to_string(), msg: msg.into() }
}

impl PicConfig {
    /// Parse YAML text; `origin` names the source in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, PicError> {
        let cfg: Self = serde_yaml::from_str(text)
            .map_err(|e| PicError::Parse { origin: origin.to_string(), msg: one_line(&e.to_string()) })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Self, PicError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PicError::Parse { origin: path.display().to_string(), msg: e.to_string() })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// YAML text of this config.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a PicConfig always serialises")
    }

    /// B-spline order as an index (valid after [`Self::validate`]).
    pub fn order(&self) -> usize {
        self.shape.order as usize
    }

    /// Electron macro-particles per cell (valid after [`Self::validate`]).
    pub fn ppc(&self) -> usize {
        self.plasma.ppc as usize
    }

    /// n λ_D² = ppc·(λ_D/Δx)²: electron macro-particles per Debye area.
    pub fn n_lambda_d2(&self) -> f64 {
        self.plasma.ppc as f64 / (self.grid.dx * self.grid.dx)
    }

    /// The histogram grid.
    pub fn velocity_grid(&self) -> Result<VelocityGrid, PicError> {
        let h = &self.histogram;
        if !(h.bins.len() == 2 || h.bins.len() == 3) {
            return Err(bad("histogram.bins", format!("has {} values, expected [nx, ny] or [nx, ny, nz]", h.bins.len())));
        }
        if h.v_range.len() != 2 * h.bins.len() {
            return Err(bad(
                "histogram.v_range",
                format!("has {} values, expected {} for bins {:?}", h.v_range.len(), 2 * h.bins.len(), h.bins),
            ));
        }
        VelocityGrid::from_parts(&h.bins, &h.v_range, "v_th").map_err(|e| bad("histogram", e.to_string()))
    }

    /// Estimated cost in particle-steps: (cells × ppc + test particles) × steps.
    pub fn cost(&self) -> f64 {
        let cells = (self.grid.nx * self.grid.ny) as f64;
        (cells * self.plasma.ppc.max(0) as f64 + self.test_particles.n as f64) * self.time.steps as f64
    }

    /// Every check that needs no particles; each error names its key.
    pub fn validate(&self) -> Result<(), PicError> {
        if self.seed > 1 << 53 {
            return Err(bad("seed", format!("must be at most 2^53 so /params records it exactly, got {}", self.seed)));
        }
        let p = &self.plasma;
        if p.ppc <= 0 {
            return Err(bad("plasma.ppc", format!("must be a positive number of particles per cell, got {}", p.ppc)));
        }
        if p.quiet_start {
            let m = (p.ppc as f64).sqrt().round() as i64;
            if m * m != p.ppc {
                return Err(bad("plasma.ppc", format!("quiet_start needs a perfect square, got {}", p.ppc)));
            }
        }
        if !(p.v_th_over_c > 0.0 && p.v_th_over_c < 1.0) {
            return Err(bad("plasma.v_th_over_c", format!("must be in (0, 1), got {}", p.v_th_over_c)));
        }
        if let Some(pert) = &p.perturbation {
            if !pert.amplitude.is_finite() || pert.mode == [0, 0] {
                return Err(bad("plasma.perturbation", "needs a finite amplitude and a non-zero mode"));
            }
        }
        let s = &self.shape;
        if !(1..=MAX_ORDER as i64).contains(&s.order) {
            return Err(bad("shape.order", format!("must be 1 (linear) to {MAX_ORDER} (quartic), got {}", s.order)));
        }
        if !(s.gaussian_width >= 0.0 && s.gaussian_width.is_finite()) {
            return Err(bad("shape.gaussian_width", format!("must be finite and ≥ 0, got {}", s.gaussian_width)));
        }
        let g = &self.grid;
        if !(g.dx > 0.0 && g.dx.is_finite()) {
            return Err(bad("grid.dx", format!("must be a positive cell size in λ_D, got {}", g.dx)));
        }
        let min_cells = (s.order as usize + 1).max(4);
        for (key, n) in [("grid.nx", g.nx), ("grid.ny", g.ny)] {
            if n < min_cells {
                return Err(bad(
                    key,
                    format!("{n} cells is smaller than the {min_cells}-cell minimum for shape order {}", s.order),
                ));
            }
        }
        let t = &self.time;
        if !(t.dt > 0.0 && t.dt < 2.0) {
            return Err(bad("time.dt", format!("must be in (0, 2)/ω_p for a stable leapfrog, got {}", t.dt)));
        }
        if t.steps == 0 {
            return Err(bad("time.steps", "must be at least 1"));
        }
        if t.dump_every == 0 || t.dump_every > t.steps {
            return Err(bad("time.dump_every", format!("must be in 1..={}, got {}", t.steps, t.dump_every)));
        }
        let tp = &self.test_particles;
        if tp.mode == TestMode::SelfConsistent && !(tp.weight > 0.0 && tp.weight.is_finite()) {
            return Err(bad("test_particles.weight", format!("must be positive, got {}", tp.weight)));
        }
        if tp.tracks > tp.n {
            return Err(bad("test_particles.tracks", format!("{} tracks but only {} test particles", tp.tracks, tp.n)));
        }
        if !(-1.0..=1.0).contains(&tp.vz_correlation) {
            return Err(bad("test_particles.vz_correlation", format!("must be in [-1, 1], got {}", tp.vz_correlation)));
        }
        if tp.vz_correlation != 0.0 && self.histogram.bins.len() != 3 {
            return Err(bad("test_particles.vz_correlation", "needs 3-D histograms (histogram.bins: [nx, ny, nz]); 2-D runs have no v_z"));
        }
        let dist_ok = match tp.distribution {
            Distribution::Normal { center, sigma } => {
                center.iter().all(|c| c.is_finite()) && sigma >= 0.0 && sigma.is_finite()
            }
            Distribution::Ring { radius, width } => {
                radius >= 0.0 && radius.is_finite() && width >= 0.0 && width.is_finite()
            }
            Distribution::Maxwellian { v_th } => v_th > 0.0 && v_th.is_finite(),
        };
        if !dist_ok {
            return Err(bad("test_particles.distribution", "parameters must be finite, widths and radii ≥ 0"));
        }
        let ec = &self.energy_check;
        if !(ec.warn_drift > 0.0 && ec.warn_drift.is_finite()) {
            return Err(bad("energy_check.warn_drift", format!("must be a positive relative drift, got {}", ec.warn_drift)));
        }
        if let Some(m) = ec.max_drift {
            if !(m > 0.0 && m.is_finite()) {
                return Err(bad("energy_check.max_drift", format!("must be a positive relative drift, got {m}")));
            }
        }
        let vgrid = self.velocity_grid()?;
        if tp.n > 0 {
            let [x0, x1, y0, y1] = vgrid.v_range;
            let inside = |vx: f64, vy: f64| vx > x0 && vx < x1 && vy > y0 && vy < y1;
            let hit = match tp.distribution {
                Distribution::Normal { center, .. } => inside(center[0], center[1]),
                // Some point of the ring circle must be inside the box.
                Distribution::Ring { radius, .. } => (0..64).any(|i| {
                    let a = i as f64 * std::f64::consts::TAU / 64.0;
                    inside(radius * a.cos(), radius * a.sin())
                }),
                Distribution::Maxwellian { .. } => inside(0.0, 0.0),
            };
            if !hit {
                return Err(bad(
                    "histogram.v_range",
                    format!("{:?} misses the test particles' initial distribution", vgrid.v_range),
                ));
            }
        }
        Ok(())
    }
}

impl PicConfig {
    /// What a run file needs beyond [`Self::validate`] (whose configs may also drive bare
    /// simulations): test particles, whose histograms are the file's data.
    pub fn validate_for_run_file(&self) -> Result<(), PicError> {
        if self.test_particles.n == 0 {
            return Err(bad("test_particles.n", "is 0: a run file holds the test particles' histograms, so give at least 1"));
        }
        Ok(())
    }
}

/// Squash a multi-line message to one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
