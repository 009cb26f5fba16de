//! Time nodes around any time-independent model (`tensor-time`, `par-perp-time`): one block of
//! the inner model's parameters per node, linear interpolation in time, and optional
//! smoothness penalties across nodes.
//!
//! θ = [θ_0, …, θ_{n_t−1}], each block the inner model's parameters; node s sits at
//! t_s = s·t_span/(n_t − 1) (time since the run's first snapshot, 1/ω_p). The fields at t are
//! (1 − w)·F(θ_k) + w·F(θ_{k+1}) with t = t_k + w·(t_{k+1} − t_k), clamped to the first/last node
//! outside [0, t_span]. The penalty, on the raw parameters (grid units, or softplus
//! pre-activations under `nonnegative_d`), with P the inner parameter count, is
//! `smooth_d1 · Σ_s ‖θ_{s+1} − θ_s‖² / P + smooth_d2 · Σ_s ‖θ_{s+1} − 2θ_s + θ_{s−1}‖² / P`.

use super::smoothness::{squared_difference, DIFFERENCES};
use super::{BuildInfo, Fields, ModelError, ModelSpec, NodeWeight, OperatorModel};
use crate::grid::VelocityGrid;
use ndarray::{ArrayD, Axis, IxDyn};

/// A time-independent model on `n_t` time nodes.
pub struct TimeNodes {
    kind: &'static str,
    inner: Box<dyn OperatorModel>,
    n_t: usize,
    t_span: f64,
    smooth_d1: f64,
    smooth_d2: f64,
}

impl TimeNodes {
    /// Wrap `inner` (which must have a single time node) with the spec's `n_t`, `smooth_d1`,
    /// `smooth_d2` and the build info's `t_span`; the wrapper's kind is the spec's.
    pub fn new(spec: &ModelSpec, info: &BuildInfo, inner: Box<dyn OperatorModel>) -> Result<Self, ModelError> {
        if inner.n_time_nodes() != 1 {
            return Err(ModelError::Invalid(format!("time nodes need a time-independent inner model, {} is not", inner.kind())));
        }
        if spec.n_t < 1 {
            return Err(ModelError::BadOption { key: "n_t", msg: "needs at least 1 time node, got 0".into() });
        }
        if spec.n_t > 1 && !(info.t_span.is_finite() && info.t_span > 0.0) {
            return Err(ModelError::BadOption {
                key: "n_t",
                msg: format!("{} time nodes need a positive time span of the training runs, got {}", spec.n_t, info.t_span),
            });
        }
        for (key, w) in [("smooth_d1", spec.smooth_d1), ("smooth_d2", spec.smooth_d2)] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(ModelError::BadOption { key, msg: format!("must be finite and >= 0, got {w}") });
            }
        }
        Ok(Self {
            kind: spec.kind.name(), inner, n_t: spec.n_t, t_span: info.t_span, smooth_d1: spec.smooth_d1, smooth_d2: spec.smooth_d2 })
    }

    /// The wrapped model.
    pub fn inner(&self) -> &dyn OperatorModel {
        self.inner.as_ref()
    }

    /// Node times, 1/ω_p since the run's first snapshot.
    pub fn node_times(&self) -> Vec<f64> {
        if self.n_t == 1 {
            return vec![0.0];
        }
        let h = self.t_span / (self.n_t - 1) as f64;
        (0..self.n_t).map(|s| s as f64 * h).collect()
    }

    fn block<'a>(&self, theta: &'a [f64], node: usize) -> &'a [f64] {
        let p = self.inner.n_params();
        assert_eq!(theta.len(), self.n_t * p, "{}: θ has the wrong length", self.kind);
        assert!(node < self.n_t, "{}: node {node} of {}", self.kind, self.n_t);
        &theta[node * p..(node + 1) * p]
    }
}

impl OperatorModel for TimeNodes {
    fn kind(&self) -> &str {
        self.kind
    }
    fn grid(&self) -> &VelocityGrid {
        self.inner.grid()
    }
    fn equation(&self) -> super::Equation {
        self.inner.equation()
    }
    fn n_params(&self) -> usize {
        self.n_t * self.inner.n_params()
    }
    /// The inner model's initial parameters on every node.
    fn init_params(&self, seed: u64) -> Vec<f64> {
        self.inner.init_params(seed).repeat(self.n_t)
    }
    fn conditioners(&self) -> &[String] {
        self.inner.conditioners()
    }
    fn n_time_nodes(&self) -> usize {
        self.n_t
    }
    fn time_weights(&self, t: f64) -> Vec<NodeWeight> {
        if self.n_t == 1 {
            return vec![NodeWeight { node: 0, weight: 1.0 }];
        }
        let last = (self.n_t - 1) as f64;
        let x = t / self.t_span * last;
        let x = if x > 0.0 { x.min(last) } else { 0.0 }; // NaN → first node
        let k = (x.floor() as usize).min(self.n_t - 2);
        let w = x - k as f64;
        [NodeWeight { node: k, weight: 1.0 - w }, NodeWeight { node: k + 1, weight: w }]
            .into_iter()
            .filter(|nw| nw.weight != 0.0)
            .collect()
    }
    fn node_fields(&self, theta: &[f64], cond: &[f64], node: usize, out: &mut Fields) {
        self.inner.node_fields(self.block(theta, node), cond, 0, out);
    }
    fn node_fields_vjp(&self, theta: &[f64], cond: &[f64], node: usize, d_fields: &Fields, d_theta: &mut [f64]) {
        let p = self.inner.n_params();
        assert_eq!(d_theta.len(), theta.len(), "{}: d_theta has the wrong length", self.kind);
        let d_block = &mut d_theta[node * p..(node + 1) * p];
        self.inner.node_fields_vjp(self.block(theta, node), cond, 0, d_fields, d_block);
    }
    fn node_fields_jvp(&self, theta: &[f64], cond: &[f64], node: usize, d_theta: &[f64]) -> Option<Fields> {
        self.inner.node_fields_jvp(self.block(theta, node), cond, 0, self.block(d_theta, node))
    }
    fn penalty(&self, theta: &[f64], d_theta: &mut [f64]) -> f64 {
        let p = self.inner.n_params();
        assert_eq!(theta.len(), self.n_t * p, "{}: θ has the wrong length", self.kind);
        let mut total = 0.0;
        // First and second differences across consecutive nodes.
        for (weight, stencil) in [self.smooth_d1, self.smooth_d2].into_iter().zip(DIFFERENCES) {
            if weight == 0.0 || self.n_t < stencil.len() {
                continue;
            }
            let scale = weight / p as f64;
            for s in 0..=self.n_t - stencil.len() {
                for i in 0..p {
                    total += squared_difference(theta, d_theta, stencil, scale, |o| (s + o) * p + i);
                }
            }
        }
        total
    }
    /// `t_nodes` [n_t], `node_fields` [n_t, n_fields, nx, ny], and every inner export stacked
    /// along a new leading node axis (e.g. `A_par` [n_t, n_radial]).
    fn exports(&self, theta: &[f64], cond: &[f64]) -> Vec<(String, ArrayD<f64>)> {
        let times = ArrayD::from_shape_vec(IxDyn(&[self.n_t]), self.node_times()).expect("one time per node");
        let per_node: Vec<Vec<(String, ArrayD<f64>)>> =
            (0..self.n_t).map(|s| self.inner.exports(self.block(theta, s), cond)).collect();
        let fields: Vec<Fields> = (0..self.n_t)
            .map(|s| {
                let g = self.grid();
                let mut f = Fields::zeros(g.fields_shape(self.n_fields()));
                self.node_fields(theta, cond, s, &mut f);
                f
            })
            .collect();
        let stack = |views: Vec<ndarray::ArrayViewD<f64>>| ndarray::stack(Axis(0), &views).expect("same shape on every node");
        let mut out = vec![
            ("t_nodes".to_string(), times),
            ("node_fields".to_string(), stack(fields.iter().map(|f| f.view().into_dyn()).collect())),
        ];
        for (i, (name, _)) in per_node[0].iter().enumerate() {
            out.push((name.clone(), stack(per_node.iter().map(|e| e[i].1.view()).collect())));
        }
        out
    }
}
