//! Operator models: map parameters θ (plus run conditioners and time) to coefficient fields on the
//! velocity grid, and map ∂L/∂fields back to ∂L/∂θ.
//!
//! A Fokker–Planck model produces its fields in physical units — in 2D the five A_x, A_y
//! (v_th·ω_p) and D_xx, D_yy, D_xy (v_th²·ω_p), in 3D the nine A_x, A_y, A_z, D_xx, D_yy, D_zz,
//! D_xy, D_xz, D_yz — indexed by [`fp`]. A kernel model produces the 2k² stencil weights
//! of the integro-differential operator. The solver never sees θ: it consumes [`Fields`] only, so
//! every model works with every scheme that accepts its [`Equation`].
//!
//! Time dependence is expressed through *time nodes*: the fields at time t are
//! Σ_s w_s(t)·fields(node s). Time-independent models have one node with weight 1. This lets the
//! trainer accumulate gradients per node, exactly, whatever the rank count.
//!
//! Node-based Fokker–Planck models are compositions ([`fp_model`]): parameters θ → optional
//! softplus on the diffusion coefficients ([`constraint`]) → a linear coefficient map (free
//! [`tensor`], mirror-symmetric [`symmetry`], isotropic [`radial`], gyrotropic [`gyrotropic`])
//! → fields; [`time`] puts any
//! time-independent model on time nodes.

use crate::grid::VelocityGrid;
use ndarray::Array3;

pub mod spec;
pub use spec::ModelSpec;

/// Coefficient fields in physical units: `[n_fields, nx, ny]` on a 2D grid, `[n_fields, nx, ny·nz]`
/// (a free reshape of `[n_fields, nx, ny, nz]`) on a 3D one — see
/// [`VelocityGrid::fields_shape`]. C order, the last velocity component fastest.
pub type Fields = Array3<f64>;

/// Field indices of a Fokker–Planck model.
pub mod fp {
    pub const AX: usize = 0;
    pub const AY: usize = 1;
    pub const DXX: usize = 2;
    pub const DYY: usize = 3;
    pub const DXY: usize = 4;
    pub const N_FIELDS: usize = 5;
    pub const NAMES: [&str; N_FIELDS] = ["A_x", "A_y", "D_xx", "D_yy", "D_xy"];

    /// The same layout in any dimension d: A_i at `i`, D_ii at `d + i`, then the off-diagonal
    /// D_ij (i < j) in the order xy, xz, yz. In 2D that is [`AX`]…[`DXY`]; in 3D it is
    /// `A_x, A_y, A_z, D_xx, D_yy, D_zz, D_xy, D_xz, D_yz` (nine fields).
    pub const fn n_fields(dim: usize) -> usize {
        dim + dim * (dim + 1) / 2
    }
    /// Index of A_i.
    pub const fn a(i: usize) -> usize {
        i
    }
    /// Index of D_ij = D_ji in `dim` dimensions.
    pub const fn d(dim: usize, i: usize, j: usize) -> usize {
        let (i, j) = if i <= j { (i, j) } else { (j, i) };
        if i == j {
            dim + i
        } else {
            // Pairs before (i, j) in the order (0,1), (0,2), …, (1,2), …
            2 * dim + i * (2 * dim - i - 1) / 2 + (j - i - 1)
        }
    }
    /// Field names in `dim` dimensions.
    pub fn names(dim: usize) -> &'static [&'static str] {
        const NAMES_3D: [&str; n_fields(3)] = ["A_x", "A_y", "A_z", "D_xx", "D_yy", "D_zz", "D_xy", "D_xz", "D_yz"];
        if dim == 3 {
            &NAMES_3D
        } else {
            &NAMES
        }
    }
}

/// Which evolution equation a model's fields drive.
#[derive(Clone, Debug, PartialEq)]
pub enum Equation {
    /// ∂f/∂t = −∂_i(A_i f) + ½ ∂_i∂_j(D_ij f); fields as in [`fp`].
    FokkerPlanck,
    /// ∂f/∂t = ∇_v·(K ⋆ f) with a k×k stencil; fields `K_x(l,m)` then `K_y(l,m)`, 2k² in all.
    Kernel { k: usize, divergence: Divergence },
}

/// Difference used for the divergence of the kernel operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Divergence {
    Forward,
    Backward,
    Centred,
}

/// One time node's contribution to the fields at time t.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeWeight {
    pub node: usize,
    pub weight: f64,
}

/// Error building or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model: {0}")]
    Invalid(String),
    /// A `model:` option that is unused by the chosen kind, impossible, or does not fit the data.
    #[error("model.{key}: {msg}")]
    BadOption { key: &'static str, msg: String },
}

/// A parameterised collision operator.
///
/// `node_fields` must be a deterministic function of its inputs (same bits in, same bits out), and
/// `node_fields_vjp` its exact vector–Jacobian product. Both are called concurrently from several
/// threads, so implementations keep no mutable state.
pub trait OperatorModel: Send + Sync {
    /// Short kind name as in the config (`tensor`, `par-perp`, ...).
    fn kind(&self) -> &str;
    /// The grid the fields live on.
    fn grid(&self) -> &VelocityGrid;
    /// The equation these fields drive.
    fn equation(&self) -> Equation {
        Equation::FokkerPlanck
    }
    /// Number of fields per cell (5 for Fokker–Planck in 2D, 9 in 3D, 2k² for kernels).
    fn n_fields(&self) -> usize {
        match self.equation() {
            Equation::FokkerPlanck => fp::n_fields(self.grid().dim()),
            Equation::Kernel { k, .. } => 2 * k * k,
        }
    }
    /// Length of θ.
    fn n_params(&self) -> usize;
    /// Initial θ (deterministic for a given seed).
    fn init_params(&self, seed: u64) -> Vec<f64>;
    /// Names of the run parameters this model is conditioned on (empty if none).
    fn conditioners(&self) -> &[String] {
        &[]
    }
    /// Number of time nodes (1 for time-independent models).
    fn n_time_nodes(&self) -> usize {
        1
    }
    /// Nodes and weights whose combination gives the fields at time `t` (1/ω_p since the run's
    /// first snapshot). Weights sum to one.
    fn time_weights(&self, _t: f64) -> Vec<NodeWeight> {
        vec![NodeWeight { node: 0, weight: 1.0 }]
    }
    /// Fields of time node `node` for normalised run conditioners `cond` into `out`
    /// (`[n_fields, nx, ny·nz]`, see [`VelocityGrid::fields_shape`]; overwritten).
    fn node_fields(&self, theta: &[f64], cond: &[f64], node: usize, out: &mut Fields);
    /// `d_theta += (∂ node_fields / ∂θ)ᵀ · d_fields`.
    fn node_fields_vjp(&self, theta: &[f64], cond: &[f64], node: usize, d_fields: &Fields, d_theta: &mut [f64]);
    /// Jacobian–vector product `(∂ node_fields / ∂θ) · d_theta`, for models that provide one
    /// (used by transpose tests and diagnostics); `None` otherwise.
    fn node_fields_jvp(&self, _theta: &[f64], _cond: &[f64], _node: usize, _d_theta: &[f64]) -> Option<Fields> {
        None
    }
    /// Regularisation added to the loss (e.g. time smoothness); adds its gradient to `d_theta`.
    fn penalty(&self, _theta: &[f64], _d_theta: &mut [f64]) -> f64 {
        0.0
    }
    /// Extra named datasets for `model.h5` and plots (e.g. radial profiles), from θ.
    fn exports(&self, _theta: &[f64], _cond: &[f64]) -> Vec<(String, ndarray::ArrayD<f64>)> {
        Vec::new()
    }

    /// Fields at time `t`: the weighted sum of node fields.
    fn fields_at(&self, theta: &[f64], cond: &[f64], t: f64) -> Fields {
        let g = self.grid();
        let mut out = Fields::zeros(g.fields_shape(self.n_fields()));
        let mut tmp = out.clone();
        for (i, nw) in self.time_weights(t).into_iter().enumerate() {
            if i == 0 && nw.weight == 1.0 {
                self.node_fields(theta, cond, nw.node, &mut out);
            } else {
                self.node_fields(theta, cond, nw.node, &mut tmp);
                out.scaled_add(nw.weight, &tmp);
            }
        }
        out
    }
}

pub mod angular;
pub mod constraint;
pub mod fp_model;
pub mod gyrotropic;
pub mod kernel;
pub mod mlp;
pub mod nn;
pub mod radial;
pub mod smoothness;
pub mod symmetry;
pub mod tensor;
pub mod time;

/// What a model needs to know besides its spec.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub grid: VelocityGrid,
    /// `(min, max)` of each conditioner over the training runs (for min–max normalisation), in
    /// the order of `spec.conditioners`.
    pub cond_ranges: Vec<(f64, f64)>,
    /// Time span covered by the time nodes, 1/ω_p (longest training run).
    pub t_span: f64,
}

/// Build the model described by `spec` (validated first, see [`ModelSpec::validate`]).
pub fn build(spec: &ModelSpec, info: &BuildInfo) -> Result<Box<dyn OperatorModel>, ModelError> {
    use spec::ModelKind::*;
    spec.validate()?;
    if info.grid.dim() == 3 && spec.kind == Kernel {
        return Err(ModelError::BadOption { key: "kind", msg: "kernel models are two-dimensional, the grid is 3D".into() });
    }
    Ok(match spec.kind {
        Tensor => Box::new(tensor::build(spec, info)?),
        TensorSym => Box::new(symmetry::build(spec, info)?),
        ParPerp => Box::new(radial::build(spec, info)?),
        TensorTime => Box::new(time::TimeNodes::new(spec, info, Box::new(tensor::build(spec, info)?))?),
        ParPerpTime => Box::new(time::TimeNodes::new(spec, info, Box::new(radial::build(spec, info)?))?),
        Mlp | MlpConditioned => mlp::build(spec, info)?,
        Kernel => kernel::build(spec, info)?,
        Gyrotropic => Box::new(gyrotropic::build(spec, info)?),
    })
}
