//! The isotropic `par-perp` parameterisation: A_∥, D_∥, D_⊥ as functions of |v| on radial
//! nodes, linearly interpolated to cell centres and mapped to Cartesian fields by
//! [`super::angular`], in 2 or 3 dimensions.
//!
//! Nodes r_k = k·v_max/(n−1), k = 0..n (default n = ⌈max(Nx, Ny, Nz)/2⌉, v_max the grid corner,
//! so every cell lies inside). Cells beyond v_max (a user-set `v_radial_max` below the corner)
//! take the last node's value. Coefficients are in grid units of Δv = (Π_i Δv_i)^(1/d)
//! (A = Δv·q, D = Δv²·q).
//!
//! **2D layout** (unchanged): A_∥ nodes, then D_∥ nodes, then D_⊥ nodes, 3n coefficients.
//!
//! **3D layout: regular at v = 0 by construction.** A_∥(0) = 0 and D_∥(0) = D_⊥(0), so the
//! fields at and near the origin do not depend on the (undefined) direction v̂ there: A_∥ nodes
//! 1..n (n − 1 coefficients), then D_∥ nodes 0..n (n), then D_⊥ nodes 1..n (n − 1), node 0 of
//! D_⊥ being node 0 of D_∥; 3n − 2 coefficients. The full node profiles are this layout
//! expanded (a fixed 0/1 matrix), so the map and its transpose are the 2D ones composed with it.
//!
//! Linear interpolation has non-negative weights, so non-negative D_∥, D_⊥ nodes give D_∥, D_⊥
//! ≥ 0 at every cell, which are the eigenvalues of D: D is positive semi-definite in 2D and 3D.

use super::angular::{to_cartesian, Polar};
use super::fp;
use super::fp_model::{CoefficientMap, FpModel, INITIAL_DIFFUSION};
use super::{BuildInfo, ModelError, ModelSpec};
use crate::grid::VelocityGrid;
use ndarray::{ArrayD, IxDyn};
use std::ops::Range;

/// Radial nodes → Cartesian fields.
#[derive(Clone, Debug)]
pub struct RadialMap {
    polar: Polar,
    n_nodes: usize,
    v_max: f64,
    /// Per cell: lower node index and weight of the upper node.
    lower: Vec<usize>,
    upper_weight: Vec<f64>,
    /// The transpose's traversal: cells grouped by lower node (ascending, C order within a
    /// group), `by_node[k]..by_node[k + 1]` indexing `cell_order` for node k.
    cell_order: Vec<u32>,
    by_node: Vec<usize>,
    a_scale: f64,
    d_scale: f64,
    /// 3D: A_∥(0) = 0 and D_⊥(0) = D_∥(0) are built in (the reduced coefficient layout).
    regular: bool,
}

impl RadialMap {
    /// `n_nodes ≥ 2` nodes over `[0, v_max]`, `v_max > 0`.
    pub fn new(grid: &VelocityGrid, n_nodes: usize, v_max: f64) -> Result<Self, ModelError> {
        if n_nodes < 2 {
            return Err(ModelError::BadOption { key: "n_radial", msg: format!("needs at least 2 nodes, got {n_nodes}") });
        }
        if !(v_max.is_finite() && v_max > 0.0) {
            return Err(ModelError::BadOption { key: "v_radial_max", msg: format!("must be finite and > 0, got {v_max}") });
        }
        let polar = Polar::new(grid);
        let spacing = v_max / (n_nodes - 1) as f64;
        let last = n_nodes - 2;
        let (lower, upper_weight): (Vec<usize>, Vec<f64>) = polar
            .speed
            .iter()
            .map(|&v| {
                let x = v / spacing;
                if x >= (n_nodes - 1) as f64 {
                    (last, 1.0)
                } else {
                    let k = (x.floor() as usize).min(last);
                    (k, x - k as f64)
                }
            })
            .unzip();
        let dv = if grid.dim() == 3 {
            (grid.dv(0) * grid.dv(1) * grid.dv(2)).cbrt()
        } else {
            (grid.dvx() * grid.dvy()).sqrt()
        };
        let mut cell_order: Vec<u32> = (0..lower.len() as u32).collect();
        cell_order.sort_by_key(|&c| lower[c as usize]);
        let by_node = (0..n_nodes).map(|k| cell_order.partition_point(|&c| lower[c as usize] < k)).collect();
        Ok(Self { polar, n_nodes, v_max, lower, upper_weight, cell_order, by_node, a_scale: dv, d_scale: dv * dv, regular: grid.dim() == 3 })
    }

    pub fn n_nodes(&self) -> usize {
        self.n_nodes
    }

    /// Node radii.
    pub fn node_radii(&self) -> Vec<f64> {
        let spacing = self.v_max / (self.n_nodes - 1) as f64;
        (0..self.n_nodes).map(|k| k as f64 * spacing).collect()
    }

    /// Coefficients for node profiles given in physical units (A_∥ in v_th·ω_p, D in v_th²·ω_p).
    /// In 3D the built-in node-0 values are used: A_∥(0) = 0 and D_⊥(0) = D_∥(0) (the given
    /// `a_par[0]`, `d_perp[0]` are ignored).
    pub fn coefficients_from_profiles(&self, a_par: &[f64], d_par: &[f64], d_perp: &[f64]) -> Vec<f64> {
        assert!([a_par.len(), d_par.len(), d_perp.len()].iter().all(|&l| l == self.n_nodes), "one value per node");
        let skip = usize::from(self.regular);
        let a = a_par[skip..].iter().map(|v| v / self.a_scale);
        let d = d_par.iter().chain(&d_perp[skip..]).map(|v| v / self.d_scale);
        a.chain(d).collect()
    }

    /// Whether the 3D layout with A_∥(0) = 0 and D_⊥(0) = D_∥(0) built in is used.
    pub fn is_regular(&self) -> bool {
        self.regular
    }

    /// The full node profiles (A_∥, D_∥, D_⊥ nodes, 3n values) of coefficients `q`.
    fn expand<'a>(&self, q: &'a [f64]) -> std::borrow::Cow<'a, [f64]> {
        if !self.regular {
            return std::borrow::Cow::Borrowed(q);
        }
        let n = self.n_nodes;
        let mut full = Vec::with_capacity(3 * n);
        full.push(0.0);
        full.extend_from_slice(&q[..2 * n - 1]);
        full.push(q[n - 1]);
        full.extend_from_slice(&q[2 * n - 1..3 * n - 2]);
        std::borrow::Cow::Owned(full)
    }

    fn interpolate(&self, nodes: &[f64], scale: f64) -> Vec<f64> {
        self.lower
            .iter()
            .zip(&self.upper_weight)
            .map(|(&k, &w)| scale * ((1.0 - w) * nodes[k] + w * nodes[k + 1]))
            .collect()
    }

    fn blocks<'a>(&self, q: &'a [f64]) -> (&'a [f64], &'a [f64], &'a [f64]) {
        let n = self.n_nodes;
        (&q[..n], &q[n..2 * n], &q[2 * n..3 * n])
    }
}

impl CoefficientMap for RadialMap {
    fn n_coefficients(&self) -> usize {
        3 * self.n_nodes - 2 * usize::from(self.regular)
    }
    fn apply(&self, q: &[f64], out: &mut [f64]) {
        assert_eq!(out.len(), fp::n_fields(self.polar.dim()) * self.lower.len());
        let q = self.expand(q);
        let (a, dp, dq) = self.blocks(&q);
        let (a, dp, dq) = (self.interpolate(a, self.a_scale), self.interpolate(dp, self.d_scale), self.interpolate(dq, self.d_scale));
        to_cartesian(&self.polar, &a, &dp, &dq, out);
    }
    /// One pass over the cells grouped by radial node, the per-node sums kept in registers:
    /// the angular transpose ([`to_cartesian_vjp`]'s formulas) and the interpolation's
    /// transpose fused, with no scratch buffers.
    fn apply_transpose(&self, d_out: &[f64], d_q: &mut [f64]) {
        let cells = self.lower.len();
        assert_eq!(d_out.len(), fp::n_fields(self.polar.dim()) * cells);
        let n = self.n_nodes;
        if self.regular {
            // Through the full profiles, then the expansion's transpose.
            let mut full = vec![0.0; 3 * n];
            self.transpose_full(d_out, &mut full);
            let (a, p, q) = (&full[..n], &full[n..2 * n], &full[2 * n..]);
            for k in 1..n {
                d_q[k - 1] += a[k];
                d_q[2 * n - 1 + k - 1] += q[k];
            }
            for k in 0..n {
                d_q[n - 1 + k] += p[k];
            }
            d_q[n - 1] += q[0];
            return;
        }
        self.transpose_full(d_out, d_q);
    }
    fn diffusion_range(&self) -> Range<usize> {
        if self.regular {
            self.n_nodes - 1..3 * self.n_nodes - 2
        } else {
            self.n_nodes..3 * self.n_nodes
        }
    }
    fn initial_coefficients(&self) -> Vec<f64> {
        let mut q = vec![INITIAL_DIFFUSION; self.n_coefficients()];
        q[..self.n_nodes - usize::from(self.regular)].fill(0.0);
        q
    }
    fn exports(&self, q: &[f64]) -> Vec<(String, ArrayD<f64>)> {
        let q = self.expand(q);
        let (a, dp, dq) = self.blocks(&q);
        let vec1 = |v: Vec<f64>| ArrayD::from_shape_vec(IxDyn(&[self.n_nodes]), v).expect("one value per node");
        let scaled = |v: &[f64], s: f64| vec1(v.iter().map(|x| x * s).collect());
        vec![
            ("v_radial".into(), vec1(self.node_radii())),
            ("A_par".into(), scaled(a, self.a_scale)),
            ("D_par".into(), scaled(dp, self.d_scale)),
            ("D_perp".into(), scaled(dq, self.d_scale)),
        ]
    }
}

impl RadialMap {
    /// The transpose onto the full node profiles (3n values, accumulated).
    fn transpose_full(&self, d_out: &[f64], d_q: &mut [f64]) {
        let n = self.n_nodes;
        let (qa, rest) = d_q.split_at_mut(n);
        let (qp, qq) = rest.split_at_mut(n);
        for k in 0..n - 1 {
            let end = self.by_node[k + 1];
            // Sums of (1 − w)·g (to node k) and w·g (to node k + 1).
            let mut lo = [0.0f64; 3];
            let mut hi = [0.0f64; 3];
            for &c in &self.cell_order[self.by_node[k]..end] {
                let c = c as usize;
                let w = self.upper_weight[c];
                let [ga, gp, gq] = self.polar.project(d_out, c);
                for (i, g) in [ga, gp, gq].into_iter().enumerate() {
                    lo[i] += (1.0 - w) * g;
                    hi[i] += w * g;
                }
            }
            qa[k] += self.a_scale * lo[0];
            qa[k + 1] += self.a_scale * hi[0];
            qp[k] += self.d_scale * lo[1];
            qp[k + 1] += self.d_scale * hi[1];
            qq[k] += self.d_scale * lo[2];
            qq[k + 1] += self.d_scale * hi[2];
        }
    }
}

/// The radial map a spec asks for on this grid (defaults: ⌈max(Nx, Ny, Nz)/2⌉ nodes up to the corner).
pub fn radial_map(spec: &ModelSpec, grid: &VelocityGrid) -> Result<RadialMap, ModelError> {
    let n = spec.n_radial.unwrap_or(grid.extents().into_iter().max().unwrap_or(grid.nx).div_ceil(2));
    let v_max = spec.v_radial_max.unwrap_or(grid.v_corner());
    RadialMap::new(grid, n, v_max)
}

/// The `par-perp` model.
pub fn build(spec: &ModelSpec, info: &BuildInfo) -> Result<FpModel<RadialMap>, ModelError> {
    Ok(FpModel::new("par-perp", info.grid.clone(), radial_map(spec, &info.grid)?, spec.nonnegative_d))
}
