//! `mlp` and `mlp-conditioned` models: the Fokker–Planck coefficients A and D as a multilayer
//! perceptron ([`super::nn`]) of the cell-centre velocity, optionally with run parameters as extra
//! inputs.
//!
//! Inputs per cell: `x̂ = (2i + 1 − N_x)/N_x`, `ŷ = (2j + 1 − N_y)/N_y` (the cell centre mapped
//! linearly onto [−1, 1]), or for `symmetry: isotropic` the single input `r̂ = 2|v|/|v|_corner − 1`;
//! for `mlp-conditioned` followed by the run parameters in the order of `ModelSpec::conditioners`,
//! each min–max normalised over the training runs: `ĉ = 2(c − c_min)/(c_max − c_min) − 1` (0 when
//! c_min = c_max), see [`normalise_conditioners`]. The `cond` slice handed to
//! [`OperatorModel::node_fields`] holds these *normalised* values ĉ; values outside the training range
//! are allowed (the network extrapolates).
//!
//! Outputs, all multiplied by [`OUTPUT_SCALE`] (v_th·ω_p for A, v_th²·ω_p for D) so the network
//! works with O(1) numbers while the initial coefficients stay small (the last layer is initialised
//! with gain [`LAST_LAYER_GAIN`]):
//! - `symmetry: none`: five outputs A_x, A_y, D_xx, D_yy, D_xy (3D: the inputs x̂, ŷ, ẑ and nine
//!   outputs in the [`fp`] order);
//! - `symmetry: mirror` (square grid symmetric about 0): three outputs a, d, c symmetrised over the
//!   reflection v_x → −v_x, which maps cell i to N−1−i:
//!   A_x = ½(a(v) − a(−v_x, v_y)), D_xx = ½(d(v) + d(−v_x, v_y)), D_xy = ½(c(v) − c(−v_x, v_y)),
//!   and by transposition A_y(v_x, v_y) = A_x(v_y, v_x), D_yy(v_x, v_y) = D_xx(v_y, v_x). The
//!   properties hold bit for bit, as for `tensor-sym`;
//! - `symmetry: isotropic`: three outputs A_∥, D_∥, D_⊥ of |v|, through [`super::angular`]. The
//!   network runs once per distinct speed of the grid, not once per cell (see `SpeedGroups`). On
//!   3D grids a cell at v = 0 takes A_∥ = 0 and D_⊥ = D_∥ (as `par-perp` does in 3D), so its
//!   fields do not depend on the direction assigned there.
//!
//! On 3D grids: `symmetry: none` (inputs x̂, ŷ, ẑ; nine outputs), `mirror` (nine outputs, each
//! field averaged over the eight reflections of its cell with the parities of `tensor-sym` in 3D —
//! A_i odd in v_i, D_ij odd in v_i and v_j — computed once per class of mirror images so the
//! parities hold bit for bit; any grid symmetric about zero along every axis) and `isotropic`;
//! `nonnegative_d` needs `isotropic` (there D_∥, D_⊥ ≥ 0 are the eigenvalues of D, so D is
//! positive semi-definite; softplus on a free tensor's diagonal would not be).
//!
//! With `nonnegative_d` the diagonal diffusion (D_xx and D_yy, or D_∥ and D_⊥) is
//! `OUTPUT_SCALE · softplus(raw)` instead of `OUTPUT_SCALE · raw`.

use crate::alloc::Pool;
use super::angular::{self, Polar};
use super::nn::{centred_coordinate, softplus, Mlp};
use super::spec::{ModelKind, Symmetry};
use super::{fp, BuildInfo, Fields, ModelError, ModelSpec, OperatorModel};
use crate::grid::VelocityGrid;
use ndarray::{ArrayD, IxDyn};

/// Scale of the network outputs in physical units (v_th·ω_p for A, v_th²·ω_p for D).
pub const OUTPUT_SCALE: f64 = 1e-2;
/// Gain of the last layer's initial weights (small initial coefficients).
pub const LAST_LAYER_GAIN: f64 = 0.1;
/// Points of the exported radial profiles of isotropic models.
pub const PROFILE_POINTS: usize = 101;

/// Build an `mlp` or `mlp-conditioned` model.
pub fn build(spec: &ModelSpec, info: &BuildInfo) -> Result<Box<dyn OperatorModel>, ModelError> {
    Ok(Box::new(MlpModel::new(spec, info)?))
}

/// Min–max normalise run parameters `values` with the training `ranges` (same order) onto [−1, 1]:
/// `2(c − min)/(max − min) − 1`, or 0 when `min = max`. This is what `cond` must hold.
pub fn normalise_conditioners(values: &[f64], ranges: &[(f64, f64)]) -> Vec<f64> {
    values
        .iter()
        .zip(ranges)
        .map(|(&c, &(lo, hi))| if hi > lo { 2.0 * (c - lo) / (hi - lo) - 1.0 } else { 0.0 })
        .collect()
}

/// A, D from an MLP of the velocity (and run parameters).
#[derive(Clone, Debug)]
pub struct MlpModel {
    kind: &'static str,
    grid: VelocityGrid,
    symmetry: Symmetry,
    nonnegative_d: bool,
    conditioners: Vec<String>,
    net: Mlp,
    polar: Polar,
    /// `symmetry: isotropic`: the cells grouped by speed; the network runs once per group.
    speeds: Option<SpeedGroups>,
    /// Network inputs and outputs of [`OperatorModel::node_fields`] and its VJP, kept between
    /// calls (a training epoch then allocates nothing here).
    buffers: Pool<Buffers>,
}

/// The network inputs for the conditioners `cond`, and raw outputs and their gradient.
#[derive(Default)]
struct Buffers {
    cond: Option<Vec<f64>>,
    x: Vec<f64>,
    raw: Vec<f64>,
    d_raw: Vec<f64>,
}

/// Cells of equal speed, for isotropic networks: the network is evaluated once per distinct |v|
/// (351 rows instead of 2601 cells on a centred 51×51 grid), and the transpose sums each group's
/// cell gradients in ascending cell order (fixed, so thread-count independent).
///
/// Speeds within a relative 1e-12 of each other are one group (on a centred grid, ±v_x give
/// speeds that differ in the last bit); the group's input is the speed of its lowest-speed cell.
/// Distinct speeds of a grid differ by far more (≳ 1e-4 relative on a 51×51 grid).
#[derive(Clone, Debug)]
struct SpeedGroups {
    /// Group of every cell, C order.
    group_of_cell: Vec<u32>,
    /// Representative speed of every group, ascending.
    speeds: Vec<f64>,
}

impl SpeedGroups {
    fn new(speed: &[f64]) -> Self {
        let mut order: Vec<usize> = (0..speed.len()).collect();
        order.sort_by(|&a, &b| speed[a].total_cmp(&speed[b]).then(a.cmp(&b)));
        let mut group_of_cell = vec![0u32; speed.len()];
        let mut speeds: Vec<f64> = Vec::new();
        for &c in &order {
            let v = speed[c];
            match speeds.last() {
                Some(&rep) if v - rep <= 1e-12 * rep.abs().max(f64::MIN_POSITIVE) => {}
                _ => speeds.push(v),
            }
            group_of_cell[c] = (speeds.len() - 1) as u32;
        }
        Self { group_of_cell, speeds }
    }
}

impl MlpModel {
    pub fn new(spec: &ModelSpec, info: &BuildInfo) -> Result<Self, ModelError> {
        let invalid = |m: String| Err(ModelError::Invalid(m));
        let grid = info.grid.clone();
        let conditioned = match spec.kind {
            ModelKind::Mlp => false,
            ModelKind::MlpConditioned => true,
            other => return invalid(format!("kind {other:?} is not an mlp model")),
        };
        let kind = if conditioned { "mlp-conditioned" } else { "mlp" };
        if spec.width == 0 {
            return invalid(format!("{kind}: width must be at least 1"));
        }
        if conditioned {
            if spec.conditioners.is_empty() {
                return invalid("mlp-conditioned: `conditioners` must name at least one run parameter".into());
            }
            if info.cond_ranges.len() != spec.conditioners.len() {
                return invalid(format!(
                    "mlp-conditioned: {} conditioner ranges for {} conditioners",
                    info.cond_ranges.len(),
                    spec.conditioners.len()
                ));
            }
            for (name, &(lo, hi)) in spec.conditioners.iter().zip(&info.cond_ranges) {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return invalid(format!("mlp-conditioned: conditioner `{name}` has bad range [{lo}, {hi}]"));
                }
            }
            for (i, name) in spec.conditioners.iter().enumerate() {
                if spec.conditioners[..i].contains(name) {
                    return invalid(format!("mlp-conditioned: conditioner `{name}` listed twice"));
                }
            }
        } else if !spec.conditioners.is_empty() {
            return invalid("mlp: `conditioners` needs kind mlp-conditioned".into());
        }
        let dim = grid.dim();
        if dim == 3 && spec.symmetry == Symmetry::Mirror {
            if let Some(why) = super::symmetry::not_centred_3d(&grid) {
                return Err(ModelError::BadOption { key: "symmetry", msg: format!("{kind}: mirror {why}") });
            }
        }
        if dim == 3 && spec.nonnegative_d && spec.symmetry != Symmetry::Isotropic {
            return Err(ModelError::BadOption {
                key: "nonnegative_d",
                msg: format!("{kind}: on 3D grids needs symmetry isotropic (D_∥, D_⊥ ≥ 0 makes D positive semi-definite); a free or mirror 3D MLP has no PSD parameterisation yet"),
            });
        }
        let (n_velocity, n_out) = match spec.symmetry {
            Symmetry::None | Symmetry::Mirror if dim == 3 => (3, fp::n_fields(3)),
            Symmetry::None => (dim, fp::n_fields(dim)),
            Symmetry::Mirror => {
                require_square_grid(&grid, true).map_err(|m| ModelError::Invalid(format!("{kind}: symmetry mirror {m}")))?;
                (2, 3)
            }
            Symmetry::Isotropic => (1, 3),
            Symmetry::Transposed => return invalid(format!("{kind}: symmetry transposed is for kernel models only")),
        };
        let n_in = n_velocity + spec.conditioners.len();
        let net = Mlp::new(n_in, spec.width, spec.depth, n_out, spec.activation);
        let polar = Polar::new(&grid);
        let speeds = (spec.symmetry == Symmetry::Isotropic).then(|| SpeedGroups::new(&polar.speed));
        Ok(Self {
            kind,
            grid,
            symmetry: spec.symmetry,
            nonnegative_d: spec.nonnegative_d,
            conditioners: spec.conditioners.clone(),
            net,
            polar,
            speeds,
            buffers: Pool::default(),
        })
    }

    /// The network.
    pub fn net(&self) -> &Mlp {
        &self.net
    }

    /// Network inputs `[n_rows, n_in]` for normalised conditioners `cond`: one row per cell, or
    /// per speed group for `symmetry: isotropic`.
    fn inputs(&self, cond: &[f64]) -> Vec<f64> {
        let cond: &[f64] = if self.conditioners.is_empty() { &[] } else { cond };
        assert_eq!(cond.len(), self.conditioners.len(), "{}: conditioner count", self.kind);
        match &self.speeds {
            Some(groups) => {
                let mut x = Vec::with_capacity(groups.speeds.len() * self.net.n_in());
                for &v in &groups.speeds {
                    x.push(radial_coordinate(v, &self.grid));
                    x.extend_from_slice(cond);
                }
                x
            }
            None => cell_inputs(&self.grid, cond),
        }
    }

    /// `work(buffers)` with the network inputs for `cond` in place (kept from an earlier call
    /// with the same conditioners when the pool has one) and outputs of the right length.
    fn with_buffers<R>(&self, cond: &[f64], work: impl FnOnce(&mut Buffers) -> R) -> R {
        self.buffers.with(
            |b| b.cond.as_deref() == Some(cond),
            |b| {
                if b.cond.as_deref() != Some(cond) {
                    b.x = self.inputs(cond);
                    b.cond = Some(cond.to_vec());
                }
                let n = self.n_rows() * self.net.n_out();
                b.raw.resize(n, 0.0);
                b.d_raw.resize(n, 0.0);
                work(b)
            },
        )
    }

    /// Rows the network is evaluated on.
    fn n_rows(&self) -> usize {
        self.speeds.as_ref().map_or(self.grid.n_cells(), |g| g.speeds.len())
    }

    fn diffusion(&self, raw: f64) -> (f64, f64) {
        if self.nonnegative_d {
            let (v, d) = softplus(raw);
            (OUTPUT_SCALE * v, OUTPUT_SCALE * d)
        } else {
            (OUTPUT_SCALE * raw, OUTPUT_SCALE)
        }
    }

    /// Raw network outputs → fields (field-major slice `[5 · n_cells]`).
    fn outputs_to_fields(&self, raw: &[f64], out: &mut [f64]) {
        let (nx, ny) = self.grid.shape();
        let n = self.grid.n_cells();
        let s = OUTPUT_SCALE;
        match self.symmetry {
            Symmetry::Mirror if self.grid.dim() == 3 => {
                let nf = fp::n_fields(3);
                for c in 0..n {
                    let (images, signs) = self.mirror_images_3d(c);
                    for f in 0..nf {
                        out[f * n + c] = match signs[f] {
                            0.0 => 0.0,
                            sign => {
                                // The class value, summed over the canonical cell's images in a
                                // fixed order, so every cell of the class copies the same bits.
                                let odd = super::symmetry::odd_axes_3d(f);
                                let mut v = 0.0;
                                for (r, &img) in images.iter().enumerate() {
                                    v += reflection_sign(&odd, r) * raw[img * nf + f];
                                }
                                sign * s * (0.125 * v)
                            }
                        };
                    }
                }
            }
            Symmetry::None if self.grid.dim() == 3 => {
                let (nf, d) = (fp::n_fields(3), 3);
                for c in 0..n {
                    let r = &raw[c * nf..(c + 1) * nf];
                    for (f, &v) in r.iter().enumerate() {
                        out[f * n + c] = if (d..2 * d).contains(&f) { self.diffusion(v).0 } else { s * v };
                    }
                }
            }
            Symmetry::None => {
                for c in 0..n {
                    let r = &raw[c * 5..c * 5 + 5];
                    out[fp::AX * n + c] = s * r[0];
                    out[fp::AY * n + c] = s * r[1];
                    out[fp::DXX * n + c] = self.diffusion(r[2]).0;
                    out[fp::DYY * n + c] = self.diffusion(r[3]).0;
                    out[fp::DXY * n + c] = s * r[4];
                }
            }
            Symmetry::Mirror => {
                for i in 0..nx {
                    for j in 0..ny {
                        let (c, m) = (3 * (i * ny + j), 3 * ((nx - 1 - i) * ny + j));
                        let ax = s * (0.5 * (raw[c] - raw[m]));
                        let dxx = self.diffusion(0.5 * (raw[c + 1] + raw[m + 1])).0;
                        out[fp::AX * n + i * ny + j] = ax;
                        out[fp::DXX * n + i * ny + j] = dxx;
                        out[fp::DXY * n + i * ny + j] = s * (0.5 * (raw[c + 2] - raw[m + 2]));
                        out[fp::AY * n + j * ny + i] = ax;
                        out[fp::DYY * n + j * ny + i] = dxx;
                    }
                }
            }
            Symmetry::Isotropic | Symmetry::Transposed => {
                let mut radial = vec![0.0; 3 * n];
                let (a_par, rest) = radial.split_at_mut(n);
                let (d_par, d_perp) = rest.split_at_mut(n);
                let groups = self.speeds.as_ref().expect("isotropic models group cells by speed");
                let regular = self.grid.dim() == 3;
                for (c, &g) in groups.group_of_cell.iter().enumerate() {
                    let r = &raw[3 * g as usize..3 * g as usize + 3];
                    if regular && self.polar.speed[c] == 0.0 {
                        // 3D: A_∥(0) = 0 and D_⊥(0) = D_∥(0), so v = 0 needs no direction.
                        a_par[c] = 0.0;
                        d_par[c] = self.diffusion(r[1]).0;
                        d_perp[c] = d_par[c];
                        continue;
                    }
                    a_par[c] = s * r[0];
                    d_par[c] = self.diffusion(r[1]).0;
                    d_perp[c] = self.diffusion(r[2]).0;
                }
                angular::to_cartesian(&self.polar, a_par, d_par, d_perp, out);
            }
        }
    }

    /// Transpose of [`MlpModel::outputs_to_fields`] at `raw`: ∂L/∂fields → ∂L/∂raw (overwritten).
    fn fields_to_outputs_vjp(&self, raw: &[f64], d_fields: &[f64], d_raw: &mut [f64]) {
        let (nx, ny) = self.grid.shape();
        let n = self.grid.n_cells();
        let s = OUTPUT_SCALE;
        d_raw.fill(0.0);
        match self.symmetry {
            Symmetry::Mirror if self.grid.dim() == 3 => {
                let nf = fp::n_fields(3);
                for c in 0..n {
                    let (images, signs) = self.mirror_images_3d(c);
                    for f in 0..nf {
                        if signs[f] == 0.0 {
                            continue;
                        }
                        let odd = super::symmetry::odd_axes_3d(f);
                        let g = signs[f] * s * 0.125 * d_fields[f * n + c];
                        for (r, &img) in images.iter().enumerate() {
                            d_raw[img * nf + f] += reflection_sign(&odd, r) * g;
                        }
                    }
                }
            }
            Symmetry::None if self.grid.dim() == 3 => {
                let (nf, d) = (fp::n_fields(3), 3);
                for c in 0..n {
                    for f in 0..nf {
                        let k = c * nf + f;
                        let scale = if (d..2 * d).contains(&f) { self.diffusion(raw[k]).1 } else { s };
                        d_raw[k] = scale * d_fields[f * n + c];
                    }
                }
            }
            Symmetry::None => {
                for c in 0..n {
                    let r = &raw[c * 5..c * 5 + 5];
                    let d = &mut d_raw[c * 5..c * 5 + 5];
                    d[0] = s * d_fields[fp::AX * n + c];
                    d[1] = s * d_fields[fp::AY * n + c];
                    d[2] = self.diffusion(r[2]).1 * d_fields[fp::DXX * n + c];
                    d[3] = self.diffusion(r[3]).1 * d_fields[fp::DYY * n + c];
                    d[4] = s * d_fields[fp::DXY * n + c];
                }
            }
            Symmetry::Mirror => {
                for i in 0..nx {
                    for j in 0..ny {
                        let (c, m) = (3 * (i * ny + j), 3 * ((nx - 1 - i) * ny + j));
                        let g_ax = d_fields[fp::AX * n + i * ny + j] + d_fields[fp::AY * n + j * ny + i];
                        let g_dxx = d_fields[fp::DXX * n + i * ny + j] + d_fields[fp::DYY * n + j * ny + i];
                        let g_dxy = d_fields[fp::DXY * n + i * ny + j];
                        let g_a = 0.5 * s * g_ax;
                        let g_d = 0.5 * self.diffusion(0.5 * (raw[c + 1] + raw[m + 1])).1 * g_dxx;
                        let g_c = 0.5 * s * g_dxy;
                        d_raw[c] += g_a;
                        d_raw[m] -= g_a;
                        d_raw[c + 1] += g_d;
                        d_raw[m + 1] += g_d;
                        d_raw[c + 2] += g_c;
                        d_raw[m + 2] -= g_c;
                    }
                }
            }
            Symmetry::Isotropic | Symmetry::Transposed => {
                let mut g = vec![0.0; 3 * n];
                let (g_a, rest) = g.split_at_mut(n);
                let (g_dp, g_dq) = rest.split_at_mut(n);
                angular::to_cartesian_vjp(&self.polar, d_fields, g_a, g_dp, g_dq);
                // Sum each group's cells in ascending cell order, then apply the output map's
                // derivative (the same for the whole group).
                let groups = self.speeds.as_ref().expect("isotropic models group cells by speed");
                let regular = self.grid.dim() == 3;
                for (c, &g) in groups.group_of_cell.iter().enumerate() {
                    let d = &mut d_raw[3 * g as usize..3 * g as usize + 3];
                    if regular && self.polar.speed[c] == 0.0 {
                        d[1] += g_dp[c] + g_dq[c];
                        continue;
                    }
                    d[0] += g_a[c];
                    d[1] += g_dp[c];
                    d[2] += g_dq[c];
                }
                for (d, r) in d_raw.chunks_exact_mut(3).zip(raw.chunks_exact(3)) {
                    d[0] *= s;
                    d[1] *= self.diffusion(r[1]).1;
                    d[2] *= self.diffusion(r[2]).1;
                }
            }
        }
    }
}

impl MlpModel {
    /// 3D mirror: the eight reflections of cell `c`'s canonical cell (every index in the upper
    /// half of its axis) (image r reflects the axes of the bits of r), and per field the
    /// sign of `c` relative to the canonical cell (0 where the field is odd along an axis whose
    /// centre plane holds `c`).
    fn mirror_images_3d(&self, c: usize) -> ([usize; 8], [f64; 9]) {
        let e = self.grid.extents();
        let idx = [c / (e[1] * e[2]), (c / e[2]) % e[1], c % e[2]];
        let canon: [usize; 3] = std::array::from_fn(|k| idx[k].max(e[k] - 1 - idx[k]));
        let flat = |v: [usize; 3]| (v[0] * e[1] + v[1]) * e[2] + v[2];
        let images = std::array::from_fn(|r| flat(std::array::from_fn(|k| if r >> k & 1 == 1 { e[k] - 1 - canon[k] } else { canon[k] })));
        let signs = std::array::from_fn(|f| {
            let odd = super::symmetry::odd_axes_3d(f);
            let mut s = 1.0;
            for k in 0..3 {
                if odd[k] {
                    if 2 * idx[k] + 1 == e[k] {
                        return 0.0;
                    }
                    if idx[k] != canon[k] {
                        s = -s;
                    }
                }
            }
            s
        });
        (images, signs)
    }
}

/// Sign of reflection image `r` (bit k: axis k reflected) for a field odd along `odd`.
fn reflection_sign(odd: &[bool; 3], r: usize) -> f64 {
    let flips = (0..3).filter(|&k| odd[k] && r >> k & 1 == 1).count();
    if flips % 2 == 0 {
        1.0
    } else {
        -1.0
    }
}

impl OperatorModel for MlpModel {
    fn kind(&self) -> &str {
        self.kind
    }
    fn grid(&self) -> &VelocityGrid {
        &self.grid
    }
    fn n_params(&self) -> usize {
        self.net.n_params()
    }
    fn init_params(&self, seed: u64) -> Vec<f64> {
        self.net.init(seed, LAST_LAYER_GAIN)
    }
    fn conditioners(&self) -> &[String] {
        &self.conditioners
    }

    fn node_fields(&self, theta: &[f64], cond: &[f64], _node: usize, out: &mut Fields) {
        self.with_buffers(cond, |b| {
            self.net.forward(theta, &b.x, &mut b.raw);
            self.outputs_to_fields(&b.raw, out.as_slice_mut().expect("fields in standard layout"));
        })
    }

    fn node_fields_vjp(&self, theta: &[f64], cond: &[f64], _node: usize, d_fields: &Fields, d_theta: &mut [f64]) {
        self.with_buffers(cond, |b| {
            if self.nonnegative_d {
                // Only the softplus derivative depends on the raw outputs.
                self.net.forward(theta, &b.x, &mut b.raw);
            }
            let d_fields = d_fields.as_standard_layout();
            self.fields_to_outputs_vjp(&b.raw, d_fields.as_slice().expect("standard layout"), &mut b.d_raw);
            self.net.vjp(theta, &b.x, &b.d_raw, d_theta);
        })
    }

    /// Isotropic models: radial profiles `v_radial`, `A_par`, `D_par`, `D_perp` on
    /// [`PROFILE_POINTS`] speeds over [0, |v|_corner]. Other symmetries: nothing (the fields say it all).
    fn exports(&self, theta: &[f64], cond: &[f64]) -> Vec<(String, ArrayD<f64>)> {
        if self.symmetry != Symmetry::Isotropic {
            return Vec::new();
        }
        let cond: &[f64] = if self.conditioners.is_empty() { &[] } else { cond };
        let v_max = self.grid.v_corner();
        let speeds: Vec<f64> = (0..PROFILE_POINTS).map(|p| v_max * p as f64 / (PROFILE_POINTS - 1) as f64).collect();
        let mut x = Vec::with_capacity(PROFILE_POINTS * self.net.n_in());
        for &v in &speeds {
            x.push(radial_coordinate(v, &self.grid));
            x.extend_from_slice(cond);
        }
        let mut raw = vec![0.0; PROFILE_POINTS * 3];
        self.net.forward(theta, &x, &mut raw);
        let column = |k: usize, f: &dyn Fn(f64) -> f64| -> ArrayD<f64> {
            ArrayD::from_shape_vec(IxDyn(&[PROFILE_POINTS]), (0..PROFILE_POINTS).map(|p| f(raw[3 * p + k])).collect())
                .expect("profile shape")
        };
        let vec1 = |v: Vec<f64>| ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).expect("profile shape");
        vec![
            ("v_radial".into(), vec1(speeds.clone())),
            ("A_par".into(), column(0, &|r| OUTPUT_SCALE * r)),
            ("D_par".into(), column(1, &|r| self.diffusion(r).0)),
            ("D_perp".into(), column(2, &|r| self.diffusion(r).0)),
        ]
    }
}

/// Network inputs of every cell, C order: `(x̂, ŷ)` (3D: `(x̂, ŷ, ẑ)`) followed by `extra` (the normalised
/// conditioners).
pub(crate) fn cell_inputs(grid: &VelocityGrid, extra: &[f64]) -> Vec<f64> {
    if grid.dim() == 3 {
        let e = grid.extents();
        let mut x = Vec::with_capacity(grid.n_cells() * (3 + extra.len()));
        for i in 0..e[0] {
            for j in 0..e[1] {
                for k in 0..e[2] {
                    x.extend([centred_coordinate(i, e[0]), centred_coordinate(j, e[1]), centred_coordinate(k, e[2])]);
                    x.extend_from_slice(extra);
                }
            }
        }
        return x;
    }
    let (nx, ny) = grid.shape();
    let mut x = Vec::with_capacity(nx * ny * (2 + extra.len()));
    for i in 0..nx {
        for j in 0..ny {
            x.extend([centred_coordinate(i, nx), centred_coordinate(j, ny)]);
            x.extend_from_slice(extra);
        }
    }
    x
}

/// `2|v|/|v|_corner − 1`: the isotropic network input.
fn radial_coordinate(speed: f64, grid: &VelocityGrid) -> f64 {
    2.0 * speed / grid.v_corner() - 1.0
}

/// Mirror and transposed symmetries need a square grid with the same range along both axes, the
/// mirror also a range symmetric about 0 (`centred`); the error says what is wrong.
pub fn require_square_grid(grid: &VelocityGrid, centred: bool) -> Result<(), String> {
    let [x0, x1, y0, y1] = grid.v_range;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()));
    if grid.nx != grid.ny {
        return Err(format!("needs a square grid, got {}×{}", grid.nx, grid.ny));
    }
    if !close(x0, y0) || !close(x1, y1) {
        return Err(format!("needs the same v_x and v_y range, got {:?}", grid.v_range));
    }
    if centred && !close(x0, -x1) {
        return Err(format!("needs a range symmetric about 0, got {:?}", grid.v_range));
    }
    Ok(())
}
