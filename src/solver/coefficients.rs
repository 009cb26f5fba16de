//! The discretisation of a model on one run: solver steps per snapshot interval and the prepared
//! coefficients of every interval. Training, evaluation and benchmarks all build it here, so a
//! model is evaluated with exactly the discretisation it was trained with.
//!
//! Time-independent models on evenly spaced runs have one prepared set for the whole run.
//! Time-dependent ones are evaluated at the middle of each snapshot interval (`t_mid`, from the
//! run's first snapshot) as the weighted sum of their node fields, and prepared per interval.
//! Runs with unevenly spaced snapshots ([`Spacing::PerInterval`](crate::data::Spacing)) are prepared per interval too,
//! each for its own step length. `substeps: auto` picks one count per run: the largest any time
//! node needs over the longest interval.

use super::Scheme;
use crate::data::Spacing;
use crate::operator::{Fields, NodeWeight};

/// Solver steps per interval of length `dt` for a model with these node fields: the largest
/// count any node needs.
pub fn run_substeps(scheme: &dyn Scheme, node_fields: &[Fields], dt: f64) -> usize {
    node_fields.iter().map(|f| scheme.substeps(f.view(), dt)).max().unwrap_or(1)
}

/// Prepared coefficients of one run, reused from epoch to epoch (no allocation once sized).
#[derive(Clone, Debug, Default)]
pub struct RunCoefficients {
    /// Solver steps per snapshot interval (the same for every interval of the run).
    pub substeps: usize,
    /// Step length of each prepared set: `Δt / substeps`.
    h: Vec<f64>,
    /// One set for the whole run, or one per interval row.
    prepared: Vec<Fields>,
    per_interval: bool,
}

impl RunCoefficients {
    /// The prepared coefficients of interval `row → row + 1`.
    #[inline]
    pub fn prepared(&self, row: usize) -> &Fields {
        &self.prepared[if self.per_interval { row } else { 0 }]
    }

    /// The solver step length of interval `row → row + 1`.
    #[inline]
    pub fn h(&self, row: usize) -> f64 {
        self.h[if self.per_interval { row } else { 0 }]
    }

    /// Whether the coefficients differ per interval: a time-dependent model, or a run whose
    /// snapshots are unevenly spaced (each interval is integrated over its own length, with the
    /// run's one sub-step count).
    pub fn per_interval(&self) -> bool {
        self.per_interval
    }

    /// Prepare a model with `node_fields` on a run of `spacing`.
    ///
    /// - One node and uniform spacing: one prepared set (interval rows are irrelevant).
    /// - Otherwise one set per interval: interval rows `rows` are prepared (others are left as
    ///   they were) of the run's `n_rows`; `weights[row]` gives the node weights of interval `row`
    ///   (`None`: the first node, for single-node models). `scratch` holds one field set.
    ///
    /// `substeps: auto` picks one count per run: the largest any time node needs over the
    /// longest interval. Node weights are non-negative and sum to one, so that count bounds every
    /// interval.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        scheme: &dyn Scheme,
        node_fields: &[Fields],
        spacing: &Spacing,
        rows: std::ops::Range<usize>,
        n_rows: usize,
        weights: Option<&[Vec<NodeWeight>]>,
        scratch: &mut Fields,
    ) {
        self.substeps = run_substeps(scheme, node_fields, spacing.longest());
        self.per_interval = node_fields.len() > 1 || !spacing.is_uniform();
        if !self.per_interval {
            self.resize(scheme, 1);
            self.h[0] = spacing.longest() / self.substeps as f64;
            scheme.prepare(node_fields[0].view(), self.h[0], self.prepared[0].view_mut());
            return;
        }
        self.resize(scheme, n_rows);
        for row in rows {
            let h = spacing.interval(row) / self.substeps as f64;
            self.h[row] = h;
            let fields = match weights {
                Some(w) => {
                    interpolate(node_fields, &w[row], scratch);
                    &*scratch
                }
                None => &node_fields[0],
            };
            scheme.prepare(fields.view(), h, self.prepared[row].view_mut());
        }
    }

    fn resize(&mut self, scheme: &dyn Scheme, n: usize) {
        let shape = scheme.prepared_shape();
        if self.prepared.len() != n || self.prepared.first().is_some_and(|p| p.dim() != shape) {
            self.prepared = vec![Fields::zeros(shape); n];
        }
        self.h.resize(n, 0.0);
    }
}

/// `out = Σ_w weight · node_fields[node]`.
pub fn interpolate(node_fields: &[Fields], weights: &[NodeWeight], out: &mut Fields) {
    out.fill(0.0);
    for nw in weights {
        out.scaled_add(nw.weight, &node_fields[nw.node]);
    }
}
