//! `kernel` models: the stencil weights K of the integro-differential operator
//! ∂f/∂t = ∇_v·(K ⋆ f), `(K ⋆ f)_d(v) = Σ_{l,m} K_d(l, m; v) f(v + (l, m)Δv)` (stepped by
//! [`crate::solver::kernel::KernelScheme`]).
//!
//! Fields: 2k² planes `[2k², Nx, Ny]`, K_x first then K_y; within each, offset (l, m) — l along
//! v_x, m along v_y, each from −r to r with r = (k−1)/2 — is plane `(l + r)·k + (m + r)` (l-major),
//! see [`field_index`]. K is a flux per unit f, so it is in v_th·ω_p (like A): with
//! K_x(0, 0; v) = −A_x(v) and centred differences the operator is the drift −∂_x(A_x f).
//!
//! Parameterisations (`kernel_param`):
//! - `tensor`: θ is K in grid units, C order (`[2k², Nx, Ny]`, or `[k², Nx, Ny]` = K_x only with
//!   the transposed symmetry): K_x = Δv_x·θ, K_y = Δv_y·θ, as A = Δv·q in the Fokker–Planck models
//!   ([`super::fp_model`]), so an Adam step of size lr moves a weight by lr cells per unit time
//!   whatever the grid. Initialised to the weak isotropic diffusion ½D∇²f, D/Δv² =
//!   [`INITIAL_DIFFUSION`], that the Fokker–Planck models start from, written in the configured
//!   divergence (see [`KernelModel::initial_tensor`]); zero (the identity evolution) for k = 1;
//! - `mlp`: an MLP ([`super::nn`]) of the normalised cell centre (x̂, ŷ) as in [`super::mlp`] with
//!   2k² (or k²) outputs times [`super::mlp::OUTPUT_SCALE`] v_th·ω_p.
//!
//! Smoothness in velocity (`kernel_smooth_d1`, `kernel_smooth_d2`, either parameterisation): the
//! penalty [`smoothness`] on the free planes in grid units, K/Δv, i.e. first and second differences
//! of each plane across neighbouring cells along v_x and along v_y. A free weight per cell is
//! constrained only by the data that pass through that cell, and with the centred divergence the
//! grid-scale (odd–even) part of K is neither damped nor identified by smooth data; the
//! second-difference penalty removes that part without biasing weights that vary linearly in v
//! (a drift ∝ v), and carries the fitted weights smoothly into cells the data barely reach.
//!
//! `symmetry: transposed` (square grid, same range on both axes) stores K_x only and sets
//! K_y(v_x, v_y, l, m) = K_x(v_y, v_x, m, l), i.e. plane (l, m) of K_y at cell (i, j) is plane (m, l)
//! of K_x at cell (j, i).

use super::mlp::{cell_inputs, require_square_grid, LAST_LAYER_GAIN, OUTPUT_SCALE};
use super::nn::Mlp;
use super::spec::{KernelParam, ModelKind, Symmetry};
use super::fp_model::INITIAL_DIFFUSION;
use super::smoothness::{squared_difference, DIFFERENCES};
use super::{BuildInfo, Divergence, Equation, Fields, ModelError, ModelSpec, OperatorModel};
use crate::grid::VelocityGrid;
use ndarray::{ArrayD, IxDyn};

/// Build a `kernel` model.
pub fn build(spec: &ModelSpec, info: &BuildInfo) -> Result<Box<dyn OperatorModel>, ModelError> {
    Ok(Box::new(KernelModel::new(spec, info)?))
}

/// r = (k − 1)/2, the largest stencil offset.
pub fn stencil_radius(k: usize) -> usize {
    (k - 1) / 2
}

/// Stencil offsets (l, m) in plane order: l-major, each from −r to r.
pub fn stencil_offsets(k: usize) -> impl Iterator<Item = (isize, isize)> {
    let r = stencil_radius(k) as isize;
    (0..k * k).map(move |p| ((p / k) as isize - r, (p % k) as isize - r))
}

/// Plane of K_`axis` (0 = x, 1 = y) at offset (l, m), `|l|, |m| ≤ (k−1)/2`.
pub fn field_index(k: usize, axis: usize, l: isize, m: isize) -> usize {
    let r = stencil_radius(k) as isize;
    debug_assert!(axis < 2 && l.abs() <= r && m.abs() <= r);
    axis * k * k + ((l + r) as usize) * k + (m + r) as usize
}

/// Stencil weights K from free values or an MLP.
#[derive(Clone, Debug)]
pub struct KernelModel {
    grid: VelocityGrid,
    k: usize,
    divergence: Divergence,
    transposed: bool,
    /// `Some` for `kernel_param: mlp`.
    net: Option<Mlp>,
    smooth_d1: f64,
    smooth_d2: f64,
}

impl KernelModel {
    pub fn new(spec: &ModelSpec, info: &BuildInfo) -> Result<Self, ModelError> {
        let invalid = |m: String| Err(ModelError::Invalid(m));
        if spec.kind != ModelKind::Kernel {
            return invalid(format!("kind {:?} is not a kernel model", spec.kind));
        }
        let grid = info.grid.clone();
        let k = spec.stencil;
        if k % 2 == 0 || k > grid.nx.min(grid.ny) {
            return invalid(format!("kernel: stencil must be odd and at most {} (the grid size), got {k}", grid.nx.min(grid.ny)));
        }
        if !spec.conditioners.is_empty() {
            return invalid("kernel: conditioners are not supported".into());
        }
        if spec.nonnegative_d {
            return invalid("kernel: nonnegative_d does not apply to kernel weights".into());
        }
        let transposed = match spec.symmetry {
            Symmetry::None => false,
            Symmetry::Transposed => {
                require_square_grid(&grid, false).map_err(|m| ModelError::Invalid(format!("kernel: symmetry transposed {m}")))?;
                true
            }
            other => return invalid(format!("kernel: symmetry must be none or transposed, got {other:?}")),
        };
        let free = if transposed { k * k } else { 2 * k * k };
        let net = match spec.kernel_param {
            KernelParam::Tensor => None,
            KernelParam::Mlp => {
                if spec.width == 0 {
                    return invalid("kernel: width must be at least 1".into());
                }
                Some(Mlp::new(2, spec.width, spec.depth, free, spec.activation))
            }
        };
        Ok(Self { grid, k, divergence: spec.divergence, transposed, net, smooth_d1: spec.kernel_smooth_d1, smooth_d2: spec.kernel_smooth_d2 })
    }

    /// Grid unit of free plane `q` (v_th·ω_p): Δv of its axis (K_x planes first).
    fn plane_unit(&self, q: usize) -> f64 {
        if q < self.k * self.k {
            self.grid.dvx()
        } else {
            self.grid.dvy()
        }
    }

    /// Initial tensor θ: the weak isotropic diffusion ½D∇²f with D = [`INITIAL_DIFFUSION`]·Δv² (as
    /// the Fokker–Planck models start from), written as fluxes in the configured divergence; zero
    /// (the identity evolution) for k = 1, which cannot represent it.
    pub fn initial_tensor(&self) -> Vec<f64> {
        let n = self.grid.n_cells();
        let mut theta = vec![0.0; self.n_free() * n];
        if self.k < 3 {
            return theta;
        }
        let d = INITIAL_DIFFUSION;
        // (offset along the axis, grid-unit weight) of the flux ½D∂f.
        let taps: &[(isize, f64)] = match self.divergence {
            Divergence::Forward => &[(0, 0.5 * d), (-1, -0.5 * d)],
            Divergence::Backward => &[(1, 0.5 * d), (0, -0.5 * d)],
            Divergence::Centred => &[(1, 0.25 * d), (-1, -0.25 * d)],
        };
        let axes = if self.transposed { 1 } else { 2 };
        for axis in 0..axes {
            for &(o, w) in taps {
                let (l, m) = if axis == 0 { (o, 0) } else { (0, o) };
                theta[field_index(self.k, axis, l, m) * n..][..n].fill(w);
            }
        }
        theta
    }

    /// Number of independent planes: k² with the transposed symmetry, else 2k².
    fn n_free(&self) -> usize {
        if self.transposed {
            self.k * self.k
        } else {
            2 * self.k * self.k
        }
    }

    /// Free planes `[n_free · n]` written into the front of `out` (plane-major).
    fn free_planes(&self, theta: &[f64], out: &mut [f64]) {
        let n = self.grid.n_cells();
        let nf = self.n_free();
        match &self.net {
            None => {
                for (q, (o, t)) in out[..nf * n].chunks_exact_mut(n).zip(theta.chunks_exact(n)).enumerate() {
                    let unit = self.plane_unit(q);
                    o.iter_mut().zip(t).for_each(|(o, t)| *o = unit * t);
                }
            }
            Some(net) => {
                let mut raw = vec![0.0; n * nf];
                net.forward(theta, &cell_inputs(&self.grid, &[]), &mut raw);
                for c in 0..n {
                    for q in 0..nf {
                        out[q * n + c] = OUTPUT_SCALE * raw[c * nf + q];
                    }
                }
            }
        }
    }

    /// `d_theta += (∂ free planes / ∂θ)ᵀ d_free`.
    fn free_planes_vjp(&self, theta: &[f64], d_free: &[f64], d_theta: &mut [f64]) {
        let n = self.grid.n_cells();
        let nf = self.n_free();
        match &self.net {
            None => {
                for (q, (d, g)) in d_theta.chunks_exact_mut(n).zip(d_free.chunks_exact(n)).enumerate() {
                    let unit = self.plane_unit(q);
                    d.iter_mut().zip(g).for_each(|(d, g)| *d += unit * g);
                }
            }
            Some(net) => {
                let mut d_raw = vec![0.0; n * nf];
                for c in 0..n {
                    for q in 0..nf {
                        d_raw[c * nf + q] = OUTPUT_SCALE * d_free[q * n + c];
                    }
                }
                net.vjp(theta, &cell_inputs(&self.grid, &[]), &d_raw, d_theta);
            }
        }
    }

    /// (plane of K_y, cell) ← (plane of K_x, transposed cell) for the transposed symmetry.
    fn for_each_transposed(&self, mut visit: impl FnMut(usize, usize)) {
        let (k, n, ny) = (self.k, self.grid.n_cells(), self.grid.ny);
        let r = stencil_radius(k) as isize;
        for l in -r..=r {
            for m in -r..=r {
                let (y_plane, x_plane) = (field_index(k, 1, l, m), field_index(k, 0, m, l));
                for i in 0..self.grid.nx {
                    for j in 0..ny {
                        visit(y_plane * n + i * ny + j, x_plane * n + j * ny + i);
                    }
                }
            }
        }
    }
}

impl OperatorModel for KernelModel {
    fn kind(&self) -> &str {
        "kernel"
    }
    fn grid(&self) -> &VelocityGrid {
        &self.grid
    }
    fn equation(&self) -> Equation {
        Equation::Kernel { k: self.k, divergence: self.divergence }
    }
    fn n_params(&self) -> usize {
        match &self.net {
            None => self.n_free() * self.grid.n_cells(),
            Some(net) => net.n_params(),
        }
    }
    fn init_params(&self, seed: u64) -> Vec<f64> {
        match &self.net {
            None => self.initial_tensor(),
            Some(net) => net.init(seed, LAST_LAYER_GAIN),
        }
    }

    /// The tensor parameterisation is linear: the JVP is the fields of `d_theta`. `None` for mlp.
    fn node_fields_jvp(&self, _theta: &[f64], cond: &[f64], node: usize, d_theta: &[f64]) -> Option<Fields> {
        self.net.is_none().then(|| {
            let g = &self.grid;
            let mut out = Fields::zeros((self.n_fields(), g.nx, g.ny));
            self.node_fields(d_theta, cond, node, &mut out);
            out
        })
    }

    fn penalty(&self, theta: &[f64], d_theta: &mut [f64]) -> f64 {
        if self.smooth_d1 == 0.0 && self.smooth_d2 == 0.0 {
            return 0.0;
        }
        let n = self.grid.n_cells();
        let nf = self.n_free();
        // Free planes in grid units (the tensor parameterisation's θ).
        let mut q = vec![0.0; nf * n];
        self.free_planes(theta, &mut q);
        for (p, plane) in q.chunks_exact_mut(n).enumerate() {
            let unit = self.plane_unit(p);
            plane.iter_mut().for_each(|v| *v /= unit);
        }
        let mut d_q = vec![0.0; nf * n];
        let total = smoothness(&self.grid, &q, nf, self.smooth_d1, self.smooth_d2, &mut d_q);
        for (p, plane) in d_q.chunks_exact_mut(n).enumerate() {
            let unit = self.plane_unit(p);
            plane.iter_mut().for_each(|v| *v /= unit);
        }
        self.free_planes_vjp(theta, &d_q, d_theta);
        total
    }

    fn node_fields(&self, theta: &[f64], _cond: &[f64], _node: usize, out: &mut Fields) {
        let out = out.as_slice_mut().expect("fields in standard layout");
        self.free_planes(theta, out);
        if self.transposed {
            // K_y planes lie after the k² K_x planes, so reads never see a write.
            self.for_each_transposed(|y, x| out[y] = out[x]);
        }
    }

    fn node_fields_vjp(&self, theta: &[f64], _cond: &[f64], _node: usize, d_fields: &Fields, d_theta: &mut [f64]) {
        let d_fields = d_fields.as_standard_layout();
        let d_fields = d_fields.as_slice().expect("standard layout");
        let n = self.grid.n_cells();
        let nf = self.n_free();
        let mut d_free = d_fields[..nf * n].to_vec();
        if self.transposed {
            self.for_each_transposed(|y, x| d_free[x] += d_fields[y]);
        }
        self.free_planes_vjp(theta, &d_free, d_theta);
    }

    /// `kernel_offsets` `[k², 2]`: the (l, m) offset of each plane of K_x (and of K_y).
    fn exports(&self, _theta: &[f64], _cond: &[f64]) -> Vec<(String, ArrayD<f64>)> {
        let k = self.k;
        let offsets: Vec<f64> = stencil_offsets(k).flat_map(|(l, m)| [l as f64, m as f64]).collect();
        vec![("kernel_offsets".into(), ArrayD::from_shape_vec(IxDyn(&[k * k, 2]), offsets).expect("offsets shape"))]
    }
}

/// Smoothness penalty over velocity cells on `nf` planes `q` (`[nf · nx · ny]`, grid units):
/// `(d1·Σ (first differences)² + d2·Σ (second differences)²) / (nf·nx·ny)`, differences along x and
/// along y within each plane; adds the gradient to `d_q` and returns the value.
pub fn smoothness(grid: &VelocityGrid, q: &[f64], nf: usize, d1: f64, d2: f64, d_q: &mut [f64]) -> f64 {
    let (nx, ny) = grid.shape();
    let n = nx * ny;
    let scale = 1.0 / (nf * n) as f64;
    let mut total = 0.0;
    for (weight, stencil) in [d1, d2].into_iter().zip(DIFFERENCES) {
        if weight == 0.0 {
            continue;
        }
        let w = weight * scale;
        let len = stencil.len();
        for p in 0..nf {
            let base = p * n;
            // (stride, count along the axis, count across it, stride across it)
            for (stride, along, across, cross_stride) in [(ny, nx, ny, 1), (1, ny, nx, ny)] {
                if along < len {
                    continue;
                }
                for a in 0..across {
                    for s in 0..=along - len {
                        total += squared_difference(q, d_q, stencil, w, |o| base + a * cross_stride + (s + o) * stride);
                    }
                }
            }
        }
    }
    total
}
