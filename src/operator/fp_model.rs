//! The composition every node-based Fokker–Planck parameterisation shares:
//! θ → optional non-negativity constraint → linear coefficient map → the five physical fields.
//!
//! A [`CoefficientMap`] is a fixed linear map from *coefficients* q (in grid units, see below) to
//! the fields; symmetries are maps too ([`super::symmetry`]), and the [`Softplus`] constraint
//! sits in front of any map, so each parameterisation is written once and every combination is a
//! composition, not a new type.
//!
//! **Parameter scaling.** Coefficients are in the solver's grid units, as in the reference code
//! (which learns them with Adam, lr 1e-3): A_x = Δv_x·q, A_y = Δv_y·q, D_xx = Δv_x²·q,
//! D_yy = Δv_y²·q, D_xy = Δv_xΔv_y·q (radial maps use Δv = √(Δv_xΔv_y) for every direction).
//! An Adam step of size lr then moves a coefficient by lr grid units whatever the grid's extent.
//!
//! **Initial parameters.** A = 0, D_xy = 0 and D_xx = D_yy (or D_∥ = D_⊥) =
//! [`INITIAL_DIFFUSION`] grid units, independent of the seed: an isotropic diffusion that is
//! stable for the explicit step (h·D̂ ≤ 0.5 for steps up to 5/ω_p) and large enough that the
//! conservative scheme starts in the central branch of its hybrid drift. Started from a tenth of
//! it, a drift learned before the diffusion pushes cells past Péclet number 2 into the upwind
//! branch, whose jump variance |Â| stands in for D and leaves D̂ without a gradient; training then
//! settles on a wrong operator (55% error at |v| < 1 on synthetic data, against 1.4% from this
//! start; the central scheme reaches 2% from either).
//!
//! **Non-negativity.** `nonnegative_d` puts a softplus of corner width [`SOFTPLUS_CORNER`] in
//! front of the diffusion coefficients (see [`super::constraint`]); 3D maps that declare
//! [`CoefficientMap::psd_blocks`] (tensor, tensor-sym, gyrotropic) instead get D = L Lᵀ per
//! block, positive semi-definite for any parameters.

use super::constraint::{Block3, Cholesky, Softplus};
use super::{Fields, ModelError, OperatorModel};
use crate::grid::VelocityGrid;
use ndarray::ArrayD;
use std::ops::Range;

/// Initial diagonal diffusion coefficient, grid units (D̂ = D/Δv², per 1/ω_p).
pub const INITIAL_DIFFUSION: f64 = 0.1;

/// Corner width of the `nonnegative_d` softplus, grid units: coefficients a few times larger
/// are unconstrained (q = θ), smaller ones approach 0 exponentially.
pub const SOFTPLUS_CORNER: f64 = 0.01;

/// A fixed linear map from coefficients to the Fokker–Planck fields (physical units,
/// field-major `[n_fields · n_cells]` in C order; 5 fields in 2D, 9 in 3D).
pub trait CoefficientMap: Send + Sync {
    /// Number of coefficients.
    fn n_coefficients(&self) -> usize;
    /// `out = M q` (overwritten).
    fn apply(&self, q: &[f64], out: &mut [f64]);
    /// `d_q += Mᵀ d_out`.
    fn apply_transpose(&self, d_out: &[f64], d_q: &mut [f64]);
    /// The coefficients whose non-negativity makes D_xx, D_yy non-negative.
    fn diffusion_range(&self) -> Range<usize>;
    /// Initial coefficients (A = 0, diagonal D = [`INITIAL_DIFFUSION`]).
    fn initial_coefficients(&self) -> Vec<f64>;
    /// Extra named arrays computed from the coefficients (e.g. radial profiles).
    fn exports(&self, _q: &[f64]) -> Vec<(String, ArrayD<f64>)> {
        Vec::new()
    }
    /// 3D maps whose diffusion coefficients form symmetric 3×3 blocks that map to the fields
    /// with weights preserving positive semi-definiteness: the blocks (see [`Block3`]), so that
    /// `nonnegative_d` can make D PSD by a [`Cholesky`] product. `None`: a softplus on
    /// [`Self::diffusion_range`] is used (PSD for isotropic maps, whose D_∥, D_⊥ are eigenvalues).
    fn psd_blocks(&self) -> Option<Vec<Block3>> {
        None
    }
}

/// How `nonnegative_d` constrains the coefficients.
#[derive(Clone, Debug)]
enum Constraint {
    Softplus(Softplus),
    Cholesky(Cholesky),
}

impl Constraint {
    fn forward(&self, theta: &[f64]) -> Vec<f64> {
        match self {
            Constraint::Softplus(sp) => sp.forward(theta),
            Constraint::Cholesky(ch) => ch.forward(theta),
        }
    }
    fn vjp(&self, theta: &[f64], d: &mut [f64]) {
        match self {
            Constraint::Softplus(sp) => sp.chain(theta, d),
            Constraint::Cholesky(ch) => ch.vjp(theta, d),
        }
    }
    fn jvp(&self, theta: &[f64], d: &mut [f64]) {
        match self {
            Constraint::Softplus(sp) => sp.chain(theta, d),
            Constraint::Cholesky(ch) => ch.jvp(theta, d),
        }
    }
    fn inverse(&self, q: &[f64]) -> Result<Vec<f64>, usize> {
        match self {
            Constraint::Softplus(sp) => sp.inverse(q),
            Constraint::Cholesky(ch) => ch.inverse(q),
        }
    }
}

/// A time-independent Fokker–Planck model: a coefficient map with an optional softplus
/// constraint on its diffusion coefficients.
#[derive(Clone, Debug)]
pub struct FpModel<M> {
    kind: &'static str,
    grid: VelocityGrid,
    map: M,
    positive: Option<Constraint>,
}

impl<M: CoefficientMap> FpModel<M> {
    /// `nonnegative_d` puts a softplus in front of the map's diffusion coefficients, or, for maps
    /// with [`CoefficientMap::psd_blocks`], makes each block D = L Lᵀ.
    pub fn new(kind: &'static str, grid: VelocityGrid, map: M, nonnegative_d: bool) -> Self {
        let positive = nonnegative_d.then(|| match map.psd_blocks() {
            Some(blocks) => Constraint::Cholesky(Cholesky::new(blocks)),
            None => Constraint::Softplus(Softplus::new([map.diffusion_range()], SOFTPLUS_CORNER)),
        });
        Self { kind, grid, map, positive }
    }

    /// The coefficient map.
    pub fn map(&self) -> &M {
        &self.map
    }

    /// Coefficients q from parameters θ.
    pub fn coefficients(&self, theta: &[f64]) -> Vec<f64> {
        assert_eq!(theta.len(), self.map.n_coefficients(), "{}: θ has the wrong length", self.kind);
        match &self.positive {
            Some(sp) => sp.forward(theta),
            None => theta.to_vec(),
        }
    }

    /// Parameters θ that give coefficients `q` (inverts the constraint); errors if a constrained
    /// coefficient is not positive.
    pub fn theta_from_coefficients(&self, q: &[f64]) -> Result<Vec<f64>, ModelError> {
        if q.len() != self.map.n_coefficients() {
            return Err(ModelError::Invalid(format!(
                "{}: expected {} coefficients, got {}",
                self.kind,
                self.map.n_coefficients(),
                q.len()
            )));
        }
        match &self.positive {
            Some(sp) => sp.inverse(q).map_err(|i| {
                ModelError::Invalid(format!(
                    "{}: coefficient {i} = {} must be > 0 under nonnegative_d",
                    self.kind, q[i]
                ))
            }),
            None => Ok(q.to_vec()),
        }
    }

    fn check_node(&self, node: usize, out_shape: &[usize]) {
        assert_eq!(node, 0, "{}: time-independent model has only node 0", self.kind);
        let (f, nx, rest) = self.grid.fields_shape(super::fp::n_fields(self.grid.dim()));
        assert_eq!(out_shape, [f, nx, rest], "{}: fields shape", self.kind);
    }
}

fn slice_mut(f: &mut Fields) -> &mut [f64] {
    f.as_slice_mut().expect("fields must be in standard (C) layout")
}

impl<M: CoefficientMap> OperatorModel for FpModel<M> {
    fn kind(&self) -> &str {
        self.kind
    }
    fn grid(&self) -> &VelocityGrid {
        &self.grid
    }
    fn n_params(&self) -> usize {
        self.map.n_coefficients()
    }
    fn init_params(&self, _seed: u64) -> Vec<f64> {
        self.theta_from_coefficients(&self.map.initial_coefficients())
            .expect("initial diffusion coefficients are positive")
    }
    fn node_fields(&self, theta: &[f64], _cond: &[f64], node: usize, out: &mut Fields) {
        self.check_node(node, out.shape());
        let q = self.coefficients(theta);
        self.map.apply(&q, slice_mut(out));
    }
    fn node_fields_vjp(&self, theta: &[f64], _cond: &[f64], node: usize, d_fields: &Fields, d_theta: &mut [f64]) {
        self.check_node(node, d_fields.shape());
        assert_eq!(theta.len(), d_theta.len(), "{}: d_theta has the wrong length", self.kind);
        let d_out = d_fields.as_slice().expect("fields must be in standard (C) layout");
        let Some(sp) = &self.positive else {
            // θ are the coefficients: accumulate straight into d_theta.
            self.map.apply_transpose(d_out, d_theta);
            return;
        };
        let mut d_q = vec![0.0; self.map.n_coefficients()];
        self.map.apply_transpose(d_out, &mut d_q);
        sp.vjp(theta, &mut d_q);
        for (t, g) in d_theta.iter_mut().zip(&d_q) {
            *t += g;
        }
    }
    fn node_fields_jvp(&self, theta: &[f64], _cond: &[f64], node: usize, d_theta: &[f64]) -> Option<Fields> {
        let mut out = Fields::zeros(self.grid.fields_shape(super::fp::n_fields(self.grid.dim())));
        self.check_node(node, out.shape());
        assert_eq!(theta.len(), d_theta.len(), "{}: d_theta has the wrong length", self.kind);
        let mut d_q = d_theta.to_vec();
        if let Some(sp) = &self.positive {
            sp.jvp(theta, &mut d_q);
        }
        self.map.apply(&d_q, slice_mut(&mut out));
        Some(out)
    }
    fn exports(&self, theta: &[f64], _cond: &[f64]) -> Vec<(String, ArrayD<f64>)> {
        self.map.exports(&self.coefficients(theta))
    }
}
