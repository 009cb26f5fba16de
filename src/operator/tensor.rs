//! The `tensor` model (free A [d,…] and D [d(d+1)/2,…] on a d-dimensional grid, one grid-unit
//! coefficient per field value) and [`SignedGather`], the linear map it shares with the
//! mirror-symmetric model.

use super::fp;
use super::fp::{AX, AY, DXX, DXY, DYY, N_FIELDS};
use super::constraint::Block3;
use super::fp_model::{CoefficientMap, FpModel, INITIAL_DIFFUSION};
use super::{BuildInfo, ModelError, ModelSpec};
use crate::grid::VelocityGrid;
use std::ops::Range;

/// Grid-unit → physical factor of each field: Δv_x, Δv_y, Δv_x², Δv_y², Δv_xΔv_y.
pub fn grid_unit_scales(grid: &VelocityGrid) -> [f64; N_FIELDS] {
    let (hx, hy) = (grid.dvx(), grid.dvy());
    let mut s = [0.0; N_FIELDS];
    s[AX] = hx;
    s[AY] = hy;
    s[DXX] = hx * hx;
    s[DYY] = hy * hy;
    s[DXY] = hx * hy;
    s
}

/// Grid-unit → physical factor of each field in any dimension: Δv_i for A_i, Δv_iΔv_j for D_ij
/// (in 2D exactly [`grid_unit_scales`]).
pub fn grid_unit_scales_nd(grid: &VelocityGrid) -> Vec<f64> {
    let d = grid.dim();
    if d == 2 {
        return grid_unit_scales(grid).to_vec();
    }
    let h: Vec<f64> = (0..d).map(|a| grid.dv(a)).collect();
    let mut s = vec![0.0; fp::n_fields(d)];
    for i in 0..d {
        s[fp::a(i)] = h[i];
        for j in i..d {
            s[fp::d(d, i, j)] = h[i] * h[j];
        }
    }
    s
}

/// `out[k] = weight[k] · q[source[k]]` (a zero weight gives a zero output): every field value is
/// a signed, scaled copy of one coefficient. Its transpose scatters back in output order, so
/// results are deterministic.
#[derive(Clone, Debug)]
pub struct SignedGather {
    source: Vec<usize>,
    weight: Vec<f64>,
    n_coefficients: usize,
    diffusion: Range<usize>,
    initial: Vec<f64>,
    psd: Option<Vec<Block3>>,
}

impl SignedGather {
    /// A gather with `n_out` outputs; `entry(k)` gives output k's `(source, weight)` or `None`
    /// for a structural zero. `diffusion` is the coefficient range of D_xx/D_yy, set to
    /// [`INITIAL_DIFFUSION`] initially (everything else starts at zero).
    pub fn new(
        n_out: usize,
        n_coefficients: usize,
        diffusion: Range<usize>,
        entry: impl Fn(usize) -> Option<(usize, f64)>,
    ) -> Self {
        let (mut source, mut weight) = (Vec::with_capacity(n_out), Vec::with_capacity(n_out));
        for k in 0..n_out {
            let (s, w) = entry(k).unwrap_or((0, 0.0));
            assert!(s < n_coefficients, "gather source {s} out of range {n_coefficients}");
            source.push(s);
            weight.push(w);
        }
        let mut initial = vec![0.0; n_coefficients];
        initial[diffusion.clone()].fill(INITIAL_DIFFUSION);
        Self { source, weight, n_coefficients, diffusion, initial, psd: None }
    }

    /// Declare the 3×3 diffusion blocks of a 3D map (see [`CoefficientMap::psd_blocks`]); the
    /// caller guarantees each block maps to the fields as H S D̂ S H (positive scales H, signs S).
    pub fn with_psd_blocks(mut self, blocks: Vec<Block3>) -> Self {
        self.psd = Some(blocks);
        self
    }

    /// For each coefficient, the first output that copies it with a positive weight (its
    /// representative cell), or `None` if it is never used that way.
    pub fn representatives(&self) -> Vec<Option<usize>> {
        let mut rep = vec![None; self.n_coefficients];
        for (k, (&s, &w)) in self.source.iter().zip(&self.weight).enumerate() {
            if w > 0.0 && rep[s].is_none() {
                rep[s] = Some(k);
            }
        }
        rep
    }

    /// Coefficients read off fields at the representative outputs (a left inverse of
    /// [`CoefficientMap::apply`] on fields in the map's range).
    pub fn restrict(&self, fields: &[f64]) -> Vec<f64> {
        self.representatives()
            .into_iter()
            .map(|r| r.map_or(0.0, |k| fields[k] / self.weight[k]))
            .collect()
    }
}

impl CoefficientMap for SignedGather {
    fn n_coefficients(&self) -> usize {
        self.n_coefficients
    }
    fn apply(&self, q: &[f64], out: &mut [f64]) {
        assert_eq!(out.len(), self.source.len());
        for ((o, &s), &w) in out.iter_mut().zip(&self.source).zip(&self.weight) {
            *o = if w == 0.0 { 0.0 } else { w * q[s] };
        }
    }
    fn apply_transpose(&self, d_out: &[f64], d_q: &mut [f64]) {
        assert_eq!(d_out.len(), self.source.len());
        for ((&d, &s), &w) in d_out.iter().zip(&self.source).zip(&self.weight) {
            if w != 0.0 {
                d_q[s] += w * d;
            }
        }
    }
    fn diffusion_range(&self) -> Range<usize> {
        self.diffusion.clone()
    }
    fn initial_coefficients(&self) -> Vec<f64> {
        self.initial.clone()
    }
    fn psd_blocks(&self) -> Option<Vec<Block3>> {
        self.psd.clone()
    }
}

/// The free-tensor map: coefficient k is field value k in grid units.
pub fn free_tensor_map(grid: &VelocityGrid) -> SignedGather {
    let (n, d) = (grid.n_cells(), grid.dim());
    let scales = grid_unit_scales_nd(grid);
    let nf = fp::n_fields(d);
    // The diagonal D_ii are the fields d..2d (DXX..=DYY in 2D).
    let map = SignedGather::new(nf * n, nf * n, fp::d(d, 0, 0) * n..(fp::d(d, d - 1, d - 1) + 1) * n, |k| Some((k, scales[k / n])));
    if d != 3 {
        return map;
    }
    // D = H D̂ H per cell, H = diag(Δv): a PSD D̂ gives a PSD D.
    map.with_psd_blocks((0..n).map(|c| D_SLOTS_3D.map(|(i, j)| Some(fp::d(3, i, j) * n + c))).collect())
}

/// The (i, j) of the six slots of a [`Block3`]: xx, yy, zz, xy, xz, yz.
pub const D_SLOTS_3D: [(usize, usize); 6] = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)];

/// The `tensor` model.
pub fn build(spec: &ModelSpec, info: &BuildInfo) -> Result<FpModel<SignedGather>, ModelError> {
    Ok(FpModel::new("tensor", info.grid.clone(), free_tensor_map(&info.grid), spec.nonnegative_d))
}
