//! The `model:` section of a config: which operator model and every option any kind takes.
//!
//! One flat struct so YAML stays flat (`model: {kind: par-perp, n_radial: 26}`); unknown keys are
//! rejected by serde, and options that the chosen kind does not use are rejected by
//! [`ModelSpec::validate`].

use crate::operator::{Divergence, ModelError};
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
    /// 3D: A and D as functions of (v_∥, v_⊥) about a unit axis (magnetised plasma).
    Gyrotropic,
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
    /// par-perp: largest node radius in v_th (default: the grid corner); gyrotropic: the node
    /// grids span v_∥ ∈ [−v_radial_max, v_radial_max], v_⊥ ∈ [0, v_radial_max].
    #[serde(default)]
    pub v_radial_max: Option<f64>,
    /// gyrotropic: the axis b̂ (any non-zero 3-vector, normalised; default [0, 0, 1]).
    #[serde(default)]
    pub axis: Option<[f64; 3]>,
    /// gyrotropic: number of v_∥ nodes (default ⌈max(Nx, Ny, Nz)/2⌉).
    #[serde(default)]
    pub n_par: Option<usize>,
    /// gyrotropic: number of v_⊥ nodes (default ⌈max(Nx, Ny, Nz)/4⌉ + 1).
    #[serde(default)]
    pub n_perp: Option<usize>,
    /// Keep D_xx, D_yy (or D_∥, D_⊥) non-negative; on 3D grids, D positive semi-definite.
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
    /// kernel: weight of the first-difference smoothness penalty on K across velocity cells.
    #[serde(default)]
    pub kernel_smooth_d1: f64,
    /// kernel: weight of the second-difference smoothness penalty on K across velocity cells.
    #[serde(default)]
    pub kernel_smooth_d2: f64,
}

impl Default for ModelSpec {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

impl ModelSpec {
    /// The equation the kind's fields drive.
    pub fn equation(&self) -> crate::operator::Equation {
        match self.kind {
            ModelKind::Kernel => crate::operator::Equation::Kernel { k: self.stencil, divergence: self.divergence },
            _ => crate::operator::Equation::FokkerPlanck,
        }
    }
}

impl ModelKind {
    /// Every kind, in declaration order.
    pub const ALL: [ModelKind; 9] = [
        ModelKind::Tensor,
        ModelKind::TensorSym,
        ModelKind::ParPerp,
        ModelKind::TensorTime,
        ModelKind::ParPerpTime,
        ModelKind::Mlp,
        ModelKind::MlpConditioned,
        ModelKind::Kernel,
        ModelKind::Gyrotropic,
    ];

    /// The name used in configs (`par-perp`, `tensor-time`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Tensor => "tensor",
            ModelKind::TensorSym => "tensor-sym",
            ModelKind::ParPerp => "par-perp",
            ModelKind::TensorTime => "tensor-time",
            ModelKind::ParPerpTime => "par-perp-time",
            ModelKind::Mlp => "mlp",
            ModelKind::MlpConditioned => "mlp-conditioned",
            ModelKind::Kernel => "kernel",
            ModelKind::Gyrotropic => "gyrotropic",
        }
    }

    /// Kinds whose fields drive the Fokker–Planck equation (everything but `kernel`).
    pub fn is_fokker_planck(self) -> bool {
        self != ModelKind::Kernel
    }
    /// Kinds with coefficients on time nodes.
    pub fn is_time_dependent(self) -> bool {
        matches!(self, ModelKind::TensorTime | ModelKind::ParPerpTime)
    }
    /// Kinds parameterised by radial nodes.
    pub fn is_radial(self) -> bool {
        matches!(self, ModelKind::ParPerp | ModelKind::ParPerpTime)
    }
    /// Kinds built from multilayer perceptrons.
    pub fn is_mlp(self) -> bool {
        matches!(self, ModelKind::Mlp | ModelKind::MlpConditioned)
    }
}

impl ModelSpec {
    /// Reject options the chosen kind does not use (when set to anything but their default) and
    /// impossible values; the error names the offending key (`model.<key>`).
    ///
    /// Grid-dependent checks (square grid for `tensor-sym`, time span for time kinds) happen when
    /// the model is built.
    pub fn validate(&self) -> Result<(), ModelError> {
        let kind = self.kind;
        let default = ModelSpec::default();
        let bad = |key: &'static str, msg: String| Err(ModelError::BadOption { key, msg });
        let unused = |key: &'static str, set: bool, used: &dyn Fn(ModelKind) -> bool| -> Result<(), ModelError> {
            if set && !used(kind) {
                let users: Vec<&str> = ModelKind::ALL.iter().filter(|k| used(**k)).map(|k| k.name()).collect();
                return bad(key, format!("not used by kind {} (only by {})", kind.name(), users.join(", ")));
            }
            Ok(())
        };
        let mlp_net = |k: ModelKind| k.is_mlp() || (k == ModelKind::Kernel && self.kernel_param == KernelParam::Mlp);

        unused("n_radial", self.n_radial.is_some(), &ModelKind::is_radial)?;
        unused("v_radial_max", self.v_radial_max.is_some(), &|k| k.is_radial() || k == ModelKind::Gyrotropic)?;
        unused("axis", self.axis.is_some(), &|k| k == ModelKind::Gyrotropic)?;
        unused("n_par", self.n_par.is_some(), &|k| k == ModelKind::Gyrotropic)?;
        unused("n_perp", self.n_perp.is_some(), &|k| k == ModelKind::Gyrotropic)?;
        unused("nonnegative_d", self.nonnegative_d, &ModelKind::is_fokker_planck)?;
        unused("n_t", self.n_t != default.n_t, &ModelKind::is_time_dependent)?;
        unused("smooth_d1", self.smooth_d1 != default.smooth_d1, &ModelKind::is_time_dependent)?;
        unused("smooth_d2", self.smooth_d2 != default.smooth_d2, &ModelKind::is_time_dependent)?;
        unused("symmetry", self.symmetry != default.symmetry, &|k| k.is_mlp() || k == ModelKind::Kernel)?;
        unused("width", self.width != default.width, &mlp_net)?;
        unused("depth", self.depth != default.depth, &mlp_net)?;
        unused("activation", self.activation != default.activation, &mlp_net)?;
        unused("conditioners", !self.conditioners.is_empty(), &|k| k == ModelKind::MlpConditioned)?;
        unused("stencil", self.stencil != default.stencil, &|k| k == ModelKind::Kernel)?;
        unused("divergence", self.divergence != default.divergence, &|k| k == ModelKind::Kernel)?;
        unused("kernel_param", self.kernel_param != default.kernel_param, &|k| k == ModelKind::Kernel)?;
        unused("kernel_smooth_d1", self.kernel_smooth_d1 != default.kernel_smooth_d1, &|k| k == ModelKind::Kernel)?;
        unused("kernel_smooth_d2", self.kernel_smooth_d2 != default.kernel_smooth_d2, &|k| k == ModelKind::Kernel)?;

        if let Some(n) = self.n_radial {
            if n < 2 {
                return bad("n_radial", format!("needs at least 2 radial nodes, got {n}"));
            }
        }
        if let Some(v) = self.v_radial_max {
            if !(v.is_finite() && v > 0.0) {
                return bad("v_radial_max", format!("must be finite and > 0, got {v}"));
            }
        }
        for (key, n) in [("n_par", self.n_par), ("n_perp", self.n_perp)] {
            if let Some(n) = n {
                if n < 2 {
                    return bad(key, format!("needs at least 2 nodes, got {n}"));
                }
            }
        }
        if let Some(a) = self.axis {
            let norm = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
            if !(norm.is_finite() && norm > 0.0) {
                return bad("axis", format!("must be a finite non-zero 3-vector, got {a:?}"));
            }
        }
        if self.n_t < 1 {
            return bad("n_t", "needs at least 1 time node, got 0".into());
        }
        let smoothness_weights = [
            ("smooth_d1", self.smooth_d1),
            ("smooth_d2", self.smooth_d2),
            ("kernel_smooth_d1", self.kernel_smooth_d1),
            ("kernel_smooth_d2", self.kernel_smooth_d2),
        ];
        for (key, w) in smoothness_weights {
            if !(w.is_finite() && w >= 0.0) {
                return bad(key, format!("must be finite and >= 0, got {w}"));
            }
        }
        for (key, w, min_nodes) in [("smooth_d1", self.smooth_d1, 2), ("smooth_d2", self.smooth_d2, 3)] {
            if w > 0.0 && self.n_t < min_nodes {
                return bad(key, format!("needs n_t >= {min_nodes} to act on, n_t is {}", self.n_t));
            }
        }
        let symmetry_ok = match kind {
            ModelKind::Mlp | ModelKind::MlpConditioned => self.symmetry != Symmetry::Transposed,
            ModelKind::Kernel => matches!(self.symmetry, Symmetry::None | Symmetry::Transposed),
            _ => true,
        };
        if !symmetry_ok {
            let allowed = if kind == ModelKind::Kernel { "none, transposed" } else { "none, mirror, isotropic" };
            return bad("symmetry", format!("{:?} is not available for kind {} (use {allowed})", self.symmetry, kind.name()));
        }
        if self.width < 1 {
            return bad("width", "must be at least 1".into());
        }
        if self.depth < 1 {
            return bad("depth", "must be at least 1".into());
        }
        if kind == ModelKind::MlpConditioned && self.conditioners.is_empty() {
            return bad("conditioners", "kind mlp-conditioned needs at least one run parameter name".into());
        }
        for (i, name) in self.conditioners.iter().enumerate() {
            if name.trim().is_empty() {
                return bad("conditioners", format!("entry {i} is empty"));
            }
            if self.conditioners[..i].contains(name) {
                return bad("conditioners", format!("{name:?} is listed twice"));
            }
        }
        if self.stencil % 2 == 0 {
            return bad("stencil", format!("must be odd and >= 1, got {}", self.stencil));
        }
        Ok(())
    }
}
