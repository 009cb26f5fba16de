//! The isotropic `par-perp` parameterisation: A_∥, D_∥, D_⊥ as functions of |v| on radial
//! nodes, linearly interpolated to cell centres and mapped to Cartesian fields by
//! [`super::angular`].
//!
//! Nodes r_k = k·v_max/(n−1), k = 0..n (default n = ⌈max(Nx, Ny)/2⌉, v_max the grid corner, so
//! every cell lies inside). Cells beyond v_max (a user-set `v_radial_max` below the corner) take
//! the last node's value. Coefficients: A_∥ nodes, then D_∥ nodes, then D_⊥ nodes, in grid units
//! of Δv = √(Δv_xΔv_y) (A = Δv·q, D = Δv²·q). Linear interpolation has non-negative weights, so
//! non-negative D_∥, D_⊥ nodes give non-negative D_xx, D_yy.

use super::angular::{to_cartesian, to_cartesian_vjp, Polar};
use super::fp::N_FIELDS;
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
    a_scale: f64,
    d_scale: f64,
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
        let (lower, upper_weight) = polar
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
        let dv = (grid.dvx() * grid.dvy()).sqrt();
        Ok(Self { polar, n_nodes, v_max, lower, upper_weight, a_scale: dv, d_scale: dv * dv })
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
    pub fn coefficients_from_profiles(&self, a_par: &[f64], d_par: &[f64], d_perp: &[f64]) -> Vec<f64> {
        assert!([a_par.len(), d_par.len(), d_perp.len()].iter().all(|&l| l == self.n_nodes), "one value per node");
        let a = a_par.iter().map(|v| v / self.a_scale);
        let d = d_par.iter().chain(d_perp).map(|v| v / self.d_scale);
        a.chain(d).collect()
    }

    fn interpolate(&self, nodes: &[f64], scale: f64) -> Vec<f64> {
        self.lower
            .iter()
            .zip(&self.upper_weight)
            .map(|(&k, &w)| scale * ((1.0 - w) * nodes[k] + w * nodes[k + 1]))
            .collect()
    }

    fn interpolate_transpose(&self, d_cells: &[f64], scale: f64, d_nodes: &mut [f64]) {
        for ((&k, &w), &d) in self.lower.iter().zip(&self.upper_weight).zip(d_cells) {
            d_nodes[k] += scale * (1.0 - w) * d;
            d_nodes[k + 1] += scale * w * d;
        }
    }

    fn blocks<'a>(&self, q: &'a [f64]) -> (&'a [f64], &'a [f64], &'a [f64]) {
        let n = self.n_nodes;
        (&q[..n], &q[n..2 * n], &q[2 * n..3 * n])
    }
}

impl CoefficientMap for RadialMap {
    fn n_coefficients(&self) -> usize {
        3 * self.n_nodes
    }
    fn apply(&self, q: &[f64], out: &mut [f64]) {
        assert_eq!(out.len(), N_FIELDS * self.lower.len());
        let (a, dp, dq) = self.blocks(q);
        let (a, dp, dq) = (self.interpolate(a, self.a_scale), self.interpolate(dp, self.d_scale), self.interpolate(dq, self.d_scale));
        to_cartesian(&self.polar, &a, &dp, &dq, out);
    }
    fn apply_transpose(&self, d_out: &[f64], d_q: &mut [f64]) {
        let cells = self.lower.len();
        let (mut ga, mut gp, mut gq) = (vec![0.0; cells], vec![0.0; cells], vec![0.0; cells]);
        to_cartesian_vjp(&self.polar, d_out, &mut ga, &mut gp, &mut gq);
        let n = self.n_nodes;
        let (qa, rest) = d_q.split_at_mut(n);
        let (qp, qq) = rest.split_at_mut(n);
        self.interpolate_transpose(&ga, self.a_scale, qa);
        self.interpolate_transpose(&gp, self.d_scale, qp);
        self.interpolate_transpose(&gq, self.d_scale, qq);
    }
    fn diffusion_range(&self) -> Range<usize> {
        self.n_nodes..3 * self.n_nodes
    }
    fn initial_coefficients(&self) -> Vec<f64> {
        let mut q = vec![INITIAL_DIFFUSION; 3 * self.n_nodes];
        q[..self.n_nodes].fill(0.0);
        q
    }
    fn exports(&self, q: &[f64]) -> Vec<(String, ArrayD<f64>)> {
        let (a, dp, dq) = self.blocks(q);
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

/// The radial map a spec asks for on this grid (defaults: ⌈max(Nx, Ny)/2⌉ nodes up to the corner).
pub fn radial_map(spec: &ModelSpec, grid: &VelocityGrid) -> Result<RadialMap, ModelError> {
    let n = spec.n_radial.unwrap_or(grid.nx.max(grid.ny).div_ceil(2));
    let v_max = spec.v_radial_max.unwrap_or(grid.v_corner());
    RadialMap::new(grid, n, v_max)
}

/// The `par-perp` model.
pub fn build(spec: &ModelSpec, info: &BuildInfo) -> Result<FpModel<RadialMap>, ModelError> {
    Ok(FpModel::new("par-perp", info.grid.clone(), radial_map(spec, &info.grid)?, spec.nonnegative_d))
}
