//! The `model:` section of a config: which operator model and every option any kind takes.
//!
//! One flat struct so YAML stays flat (`model: {kind: par-perp, n_radial: 26}`); unknown keys are
//! rejected by serde, and options that the chosen kind does not use are rejected by
//! [`ModelSpec::validate`].

use crate::operator::Divergence;
use serde::{Deserialize, Serialize};

/// Model kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Free A [2,Nx,Ny] and D [3,Nx,Ny].
    Tensor,
    /// Free fields with mirror symmetry (parameters on half the grid; square grids).
    TensorSym,
    /// Isotropic: A_∥(|v|), D_∥(|v|), D_⊥(|v|) on radial nodes.
    ParPerp,
    /// `tensor` on `n_t` time nodes, linear in time.
    TensorTime,
    /// `par-perp` on `n_t` time nodes, linear in time.
    ParPerpTime,
    /// Multilayer perceptrons of the cell-centre velocity.
    Mlp,
    /// `mlp` with run parameters as extra inputs.
    MlpConditioned,
    /// Integro-differential operator ∂f/∂t = ∇·(K ⋆ f).
    Kernel,
}

/// Symmetry imposed on a parameterisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Symmetry {
    #[default]
    None,
    /// A_x odd in v_x, D_xx even, D_xy odd, A_y = A_xᵀ, D_yy = D_xxᵀ (square grids).
    Mirror,
    /// Functions of |v| only (A_∥, D_∥, D_⊥).
    Isotropic,
    /// Kernel only: K_y(v_x, v_y, l, m) = K_x(v_y, v_x, m, l).
    Transposed,
}

/// Activation function of an MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    Relu,
    LeakyRelu,
    #[default]
    Tanh,
    Silu,
}

/// How a kernel model's stencil weights are parameterised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KernelParam {
    #[default]
    Tensor,
    Mlp,
}

fn default_kind() -> ModelKind {
    ModelKind::ParPerp
}
fn default_n_t() -> usize {
    4
}
fn default_width() -> usize {
    64
}
fn default_depth() -> usize {
    2
}
fn default_stencil() -> usize {
    3
}
fn default_divergence() -> Divergence {
    Divergence::Centred
}

/// Model configuration (`model:` in YAML).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Which model.
    #[serde(default = "default_kind")]
    pub kind: ModelKind,
    /// par-perp: number of radial nodes (default ⌈max(Nx, Ny)/2⌉).
    #[serde(default)]
    pub n_radial: Option<usize>,
    /// par-perp: largest node radius in v_th (default: the grid corner).
    #[serde(default)]
    pub v_radial_max: Option<f64>,
    /// Keep D_xx, D_yy (or D_∥, D_⊥) non-negative.
    #[serde(default)]
    pub nonnegative_d: bool,
    /// Time-dependent kinds: number of time nodes spanning the training runs.
    #[serde(default = "default_n_t")]
    pub n_t: usize,
    /// Time-dependent kinds: weight of the first-difference smoothness penalty in time.
    #[serde(default)]
    pub smooth_d1: f64,
    /// Time-dependent kinds: weight of the second-difference smoothness penalty in time.
    #[serde(default)]
    pub smooth_d2: f64,
    /// mlp / kernel: symmetry (`none`, `mirror`, `isotropic`; kernel: `none`, `transposed`).
    #[serde(default)]
    pub symmetry: Symmetry,
    /// mlp: hidden width.
    #[serde(default = "default_width")]
    pub width: usize,
    /// mlp: number of hidden layers.
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// mlp: activation.
    #[serde(default)]
    pub activation: Activation,
    /// mlp-conditioned: names of the `/params` entries fed to the network.
    #[serde(default)]
    pub conditioners: Vec<String>,
    /// kernel: stencil width k (odd).
    #[serde(default = "default_stencil")]
    pub stencil: usize,
    /// kernel: difference used for the divergence.
    #[serde(default = "default_divergence")]
    pub divergence: Divergence,
    /// kernel: parameterisation of the weights (`tensor` or `mlp`).
    #[serde(default)]
    pub kernel_param: KernelParam,
}

impl Default for ModelSpec {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

impl ModelSpec {
    /// Whether the kind has time nodes.
    pub fn kind_is_time_dependent(&self) -> bool {
        matches!(self.kind, ModelKind::TensorTime | ModelKind::ParPerpTime)
    }
    /// The equation the kind's fields drive.
    pub fn equation(&self) -> crate::operator::Equation {
        match self.kind {
            ModelKind::Kernel => crate::operator::Equation::Kernel { k: self.stencil, divergence: self.divergence },
            _ => crate::operator::Equation::FokkerPlanck,
        }
    }
}
