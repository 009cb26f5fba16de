//! Explicit solvers for the collision operator's evolution equation and their exact discrete
//! adjoints, on 2D and 3D velocity grids.
//!
//! A [`Scheme`] advances one state by one step given *prepared* coefficients (the physical
//! [`Fields`] converted once per step size into whatever the inner loop wants: grid units, scaled
//! by the step, rates...). Its adjoint is split the same way: `step_vjp` accumulates ∂L/∂prepared
//! over steps and samples, and `prepare_vjp` maps that back to ∂L/∂fields once. Rollouts over many
//! steps, with checkpointed recomputation, live in [`rollout`] and [`checkpoint`].
//!
//! Schemes: [`central`] (the reference code's step, `guard`/`one-sided` edges) and
//! [`conservative`] (jump rates: Σf exact, f ≥ 0 under its step bound); [`stencil`] holds their
//! shared 1-D operator tables; [`bench`](mod@bench) measures throughput. Kernels are compiled twice (plain
//! and AVX2, picked at run time) with identical results, and never allocate.
//!
//! **Dimensions.** States are flat C-order slices of the grid's `n_cells` (v_z fastest in 3D).
//! Coefficient and prepared fields are [`Fields`] of shape
//! [`VelocityGrid::fields_shape`] `= [n, nx, ny·nz]`: field-major, then the cells in C order, so
//! the schemes see them as `[n_fields, n_cells]` and a model may fill them as
//! `[n_fields, nx, ny, nz]` through a free reshape. Fokker–Planck fields follow [`fp`]'s layout
//! for any dimension (2D: A_x, A_y, D_xx, D_yy, D_xy; 3D: A_x, A_y, A_z, D_xx, D_yy, D_zz, D_xy,
//! D_xz, D_yz). Both Fokker–Planck schemes have one code path for every dimension: their kernels
//! run along lines of the last (contiguous) axis and apply the other axes' 1-D operators along
//! their strides; 2D results are bitwise those of the former 2D-only kernels. The kernel
//! (integro-differential) scheme is 2D only.
//!
//! [`fp`]: crate::operator::fp

use crate::grid::VelocityGrid;
use crate::operator::{Equation, Fields};
use ndarray::{ArrayView3, ArrayViewMut3};
use serde::{Deserialize, Serialize};

pub mod bench;
pub mod central;
pub mod checkpoint;
mod clamp;
pub mod coefficients;
pub mod conservative;
pub mod kernel;
pub mod membench;
pub mod rollout;
pub mod stencil;

pub use central::Central;
pub use conservative::Conservative;

/// Scratch buffers owned by one thread, reused across steps (the solver never allocates per step).
#[derive(Default, Debug)]
pub struct StepWorkspace {
    pub bufs: Vec<Vec<f64>>,
}

/// Words of a clamp mask (one bit per value) for `len` state values.
pub fn mask_words(len: usize) -> usize {
    len.div_ceil(64)
}

/// One explicit time step and its exact vector–Jacobian products.
pub trait Scheme: Send + Sync {
    /// Name as in the config.
    fn name(&self) -> &'static str;
    /// The grid it runs on.
    fn grid(&self) -> &VelocityGrid;
    /// Number of physical coefficient fields consumed.
    fn n_fields(&self) -> usize;
    /// Number of fields of the prepared form.
    fn n_prepared(&self) -> usize;
    /// Solver steps per snapshot interval `dt` for these coefficients: the configured count, or
    /// one chosen from the scheme's stability/positivity bound.
    fn substeps(&self, coeffs: ArrayView3<f64>, dt: f64) -> usize;
    /// Shape of the prepared form (and of its gradient): [`VelocityGrid::fields_shape`]`(n_prepared)`
    /// unless the scheme lays its fields out otherwise (the central scheme pads them apart on
    /// grids whose state is a multiple of 4 KiB, see [`central::prepared_stride`]).
    fn prepared_shape(&self) -> (usize, usize, usize) {
        self.grid().fields_shape(self.n_prepared())
    }
    /// Physical coefficients → prepared form for steps of length `h` (`out` overwritten, shape
    /// [`prepared_shape`](Self::prepared_shape)).
    fn prepare(&self, coeffs: ArrayView3<f64>, h: f64, out: ArrayViewMut3<f64>);
    /// `d_coeffs += (∂prepare/∂coeffs)ᵀ d_prepared` at the same `coeffs`, `h`.
    fn prepare_vjp(&self, coeffs: ArrayView3<f64>, h: f64, d_prepared: ArrayView3<f64>, d_coeffs: ArrayViewMut3<f64>);
    /// A workspace sized for this scheme.
    fn workspace(&self) -> StepWorkspace;
    /// `out = S(prepared, f)`; `f` and `out` are `n_cells` C-order slices.
    fn step(&self, prepared: &Fields, f: &[f64], out: &mut [f64], ws: &mut StepWorkspace);
    /// Adjoint of one step taken from state `f`: `lam_in = (∂S/∂f)ᵀ lam_out` (overwritten) and
    /// `d_prepared += (∂S/∂prepared)ᵀ lam_out`. Per-step state the adjoint needs (e.g. the clamp's
    /// active set) is recomputed from `f`, never stored.
    fn step_vjp(
        &self,
        prepared: &Fields,
        f: &[f64],
        lam_out: &[f64],
        lam_in: &mut [f64],
        d_prepared: &mut Fields,
        ws: &mut StepWorkspace,
    );
    /// Whether [`step_masked`](Self::step_masked) records the clamp's active set, so that
    /// [`step_vjp_masked`](Self::step_vjp_masked) need not recompute the step to find it.
    fn records_mask(&self) -> bool {
        false
    }
    /// [`step_bundle`](Self::step_bundle) that also records, one bit per state value
    /// ([`mask_words`] words), where the clamp let the pre-clamp value through (`pre ≥ 0`), if
    /// [`records_mask`](Self::records_mask); otherwise `mask` is left alone.
    fn step_masked(&self, prepared: &Fields, f: &[f64], out: &mut [f64], _mask: &mut [u64], ws: &mut StepWorkspace) {
        self.step_bundle(prepared, f, out, ws)
    }
    /// [`step_vjp_bundle`](Self::step_vjp_bundle) given the mask that
    /// [`step_masked`](Self::step_masked) recorded for the same step: bitwise the same result,
    /// without recomputing the step.
    #[allow(clippy::too_many_arguments)]
    fn step_vjp_masked(
        &self,
        prepared: &Fields,
        f: &[f64],
        lam_out: &[f64],
        lam_in: &mut [f64],
        d_prepared: &mut Fields,
        _mask: &[u64],
        ws: &mut StepWorkspace,
    ) {
        self.step_vjp_bundle(prepared, f, lam_out, lam_in, d_prepared, ws)
    }
    /// [`step`](Self::step) of a *bundle*: `f` and `out` hold `f.len() / n_cells` states one
    /// after the other, all stepped with the same `prepared`. Bitwise the same as stepping each
    /// state alone; schemes override it to run the states together while the coefficients are in
    /// cache.
    fn step_bundle(&self, prepared: &Fields, f: &[f64], out: &mut [f64], ws: &mut StepWorkspace) {
        let n = self.grid().n_cells();
        for (fb, ob) in f.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            self.step(prepared, fb, ob, ws);
        }
    }
    /// [`step_vjp`](Self::step_vjp) of a bundle (see [`step_bundle`](Self::step_bundle)):
    /// `d_prepared` receives the states' contributions in bundle order, cell by cell, so the
    /// result is bitwise that of calling `step_vjp` state by state.
    fn step_vjp_bundle(
        &self,
        prepared: &Fields,
        f: &[f64],
        lam_out: &[f64],
        lam_in: &mut [f64],
        d_prepared: &mut Fields,
        ws: &mut StepWorkspace,
    ) {
        let n = self.grid().n_cells();
        for ((fb, lo), li) in f.chunks_exact(n).zip(lam_out.chunks_exact(n)).zip(lam_in.chunks_exact_mut(n)) {
            self.step_vjp(prepared, fb, lo, li, d_prepared, ws);
        }
    }
}

/// Boundary treatment of the central scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Boundary {
    /// u = 0 outside the grid, the same stencils everywhere.
    #[default]
    Guard,
    /// Second-order one-sided stencils at the edges.
    OneSided,
}

/// Which Fokker–Planck discretisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeKind {
    /// The reference code's explicit central-difference step.
    #[default]
    Central,
    /// Finite-volume (jump-rate) form: conserves Σf exactly, positive under its step bound.
    Conservative,
}

/// Sub-steps per snapshot interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Substeps {
    Fixed(usize),
    /// `auto`: chosen from the scheme's step bound.
    Auto(AutoWord),
}

/// The literal word `auto` in YAML.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoWord {
    Auto,
}

impl Default for Substeps {
    fn default() -> Self {
        Substeps::Fixed(1)
    }
}

/// How many solver states an adjoint rollout may keep per sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Checkpoints {
    /// At most this many stored states; the rest are recomputed (binomial schedule).
    Count(usize),
    /// `auto` (from `memory_budget_mb`) or `all` (store every state, no recomputation).
    Word(CheckpointWord),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointWord {
    Auto,
    All,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints::Word(CheckpointWord::Auto)
    }
}

fn default_true() -> bool {
    true
}
fn default_budget() -> f64 {
    256.0
}

/// The `solver:` section of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolverSpec {
    /// `central` (reference) or `conservative`.
    #[serde(default)]
    pub scheme: SchemeKind,
    /// `guard` or `one-sided` (central scheme only).
    #[serde(default)]
    pub boundary: Boundary,
    /// f ← max(f, 0) after each step.
    #[serde(default = "default_true")]
    pub clamp_nonnegative: bool,
    /// Solver steps per snapshot interval: a number or `auto`.
    #[serde(default)]
    pub substeps: Substeps,
    /// States kept per sample in adjoint rollouts: a number, `auto` or `all`.
    #[serde(default)]
    pub checkpoints: Checkpoints,
    /// Memory budget for stored states across all samples in flight, MiB (`checkpoints: auto`).
    #[serde(default = "default_budget")]
    pub memory_budget_mb: f64,
}

impl Default for SolverSpec {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

/// Error building a scheme.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    #[error("solver: {0}")]
    Invalid(String),
}

/// Build the scheme for `spec` and the model's `equation` on `grid`.
pub fn build(spec: &SolverSpec, equation: &Equation, grid: &VelocityGrid) -> Result<Box<dyn Scheme>, SolverError> {
    if spec.substeps == Substeps::Fixed(0) {
        return Err(SolverError::Invalid("substeps must be at least 1 (or `auto`)".into()));
    }
    match equation {
        Equation::FokkerPlanck => Ok(match spec.scheme {
            SchemeKind::Central => Box::new(Central::new(grid, spec.boundary, spec.clamp_nonnegative, spec.substeps)),
            SchemeKind::Conservative => {
                if spec.boundary != Boundary::Guard {
                    return Err(SolverError::Invalid(
                        "boundary: one-sided applies to the central scheme only (conservative has zero boundary flux)"
                            .into(),
                    ));
                }
                Box::new(Conservative::new(grid, spec.clamp_nonnegative, spec.substeps))
            }
        }),
        Equation::Kernel { .. } if grid.dim() != 2 => {
            Err(SolverError::Invalid(format!("the kernel equation needs a 2D grid, got {}", grid.describe())))
        }
        Equation::Kernel { k, divergence } => {
            Ok(Box::new(kernel::KernelScheme::new(grid, *k, *divergence, spec.clamp_nonnegative, spec.substeps)?))
        }
    }
}
