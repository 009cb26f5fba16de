//! The discretisation of a model on one run: solver steps per snapshot interval and the prepared
//! coefficients of every interval. Training, evaluation and benchmarks all build it here, so a
//! model is evaluated with exactly the discretisation it was trained with.
//!
//! Time-independent models have one prepared set for the whole run. Time-dependent ones are
//! evaluated at the middle of each snapshot interval (`t_mid`, from the run's first snapshot)
//! as the weighted sum of their node fields, and prepared per interval. `substeps: auto` picks
//! one count per run: the largest any time node needs. Node weights are non-negative and sum to
//! one, so that count bounds every interval.

use super::Scheme;
use crate::operator::{Fields, NodeWeight};

/// Solver steps per interval of length `dt` for a model with these node fields: the largest
/// count any node needs.
pub fn run_substeps(scheme: &dyn Scheme, node_fields: &[Fields], dt: f64) -> usize {
    node_fields.iter().map(|f| scheme.substeps(f.view(), dt)).max().unwrap_or(1)
}

/// Prepared coefficients of one run, reused from epoch to epoch (no allocation once sized).
#[derive(Clone, Debug, Default)]
pub struct RunCoefficients {
    /// Solver steps per snapshot interval.
    pub substeps: usize,
    /// Step length `dt / substeps`.
    pub h: f64,
    /// Static models: `[the set]`; time-dependent ones: one set per interval row.
    prepared: Vec<Fields>,
    time_dependent: bool,
}

impl RunCoefficients {
    /// The prepared coefficients of interval `row → row + 1`.
    #[inline]
    pub fn prepared(&self, row: usize) -> &Fields {
        if self.time_dependent {
            &self.prepared[row]
        } else {
            &self.prepared[0]
        }
    }

    /// Whether the coefficients differ per interval.
    pub fn time_dependent(&self) -> bool {
        self.time_dependent
    }

    /// Prepare for a static model with `fields` on a run of snapshot spacing `dt`.
    pub fn update_static(&mut self, scheme: &dyn Scheme, fields: &Fields, dt: f64) {
        self.substeps = run_substeps(scheme, std::slice::from_ref(fields), dt);
        self.h = dt / self.substeps as f64;
        self.time_dependent = false;
        self.resize(scheme, 1, fields);
        scheme.prepare(fields.view(), self.h, self.prepared[0].view_mut());
    }

    /// Prepare for a time-dependent model with `node_fields` on a run of spacing `dt`:
    /// interval rows `rows` (others are left as they were) of the run's `weights.len()`,
    /// `weights[row]` giving the node weights of interval `row`. `scratch` holds one field set.
    pub fn update_time_dependent(
        &mut self,
        scheme: &dyn Scheme,
        node_fields: &[Fields],
        dt: f64,
        rows: std::ops::Range<usize>,
        weights: &[Vec<NodeWeight>],
        scratch: &mut Fields,
    ) {
        self.substeps = run_substeps(scheme, node_fields, dt);
        self.h = dt / self.substeps as f64;
        self.time_dependent = true;
        self.resize(scheme, weights.len(), &node_fields[0]);
        for row in rows {
            interpolate(node_fields, &weights[row], scratch);
            scheme.prepare(scratch.view(), self.h, self.prepared[row].view_mut());
        }
    }

    fn resize(&mut self, scheme: &dyn Scheme, n: usize, like: &Fields) {
        let shape = (scheme.n_prepared(), like.shape()[1], like.shape()[2]);
        if self.prepared.len() != n || self.prepared.first().is_some_and(|p| p.dim() != shape) {
            self.prepared = vec![Fields::zeros(shape); n];
        }
    }
}

/// `out = Σ_w weight · node_fields[node]`.
pub fn interpolate(node_fields: &[Fields], weights: &[NodeWeight], out: &mut Fields) {
    out.fill(0.0);
    for nw in weights {
        out.scaled_add(nw.weight, &node_fields[nw.node]);
    }
}
