//! One pass over a rank's shard: per-sample rollouts with adjoints, block sums in sample order,
//! and the exact accumulation that makes the global gradient independent of the rank count.
//!
//! The gradient is accumulated at the level of *slot fields*: for each conditioning context
//! (one per run for conditioned models, else one) and each time node, ∂L/∂fields `[n_fields, nx, ny]`.
//! After the exact allreduce every rank maps the slot gradients to ∂L/∂θ with the model's VJP in a
//! fixed order, so θ stays bitwise identical everywhere.

use crate::config::{LossKind, LossMode};
use crate::dist::ExactSum;
use crate::operator::{Fields, OperatorModel};
use crate::solver::checkpoint::Schedule;
use crate::solver::rollout::{self, RolloutWorkspace};
use crate::solver::{Checkpoints, Scheme};
use std::collections::BTreeMap;
use ndarray::{Array3, ArrayView2};
use rayon::prelude::*;

pub use crate::data::Sample;

/// The snapshots of one run that this rank holds, normalised by the run's particle count.
#[derive(Clone, Debug)]
pub struct RunSlice {
    /// Row of the first held snapshot in the run file.
    pub first: usize,
    /// `[held, nx, ny]`.
    pub f: Array3<f64>,
    /// Times of all snapshots of the run (1/ω_p).
    pub t: Vec<f64>,
    /// Snapshot spacing.
    pub dt: f64,
    /// Conditioning context of the run.
    pub ctx: usize,
}

impl RunSlice {
    /// Snapshot row `row` of the run, flattened.
    pub fn snapshot(&self, row: usize) -> &[f64] {
        let i = row - self.first;
        let n = self.f.shape()[1] * self.f.shape()[2];
        let all = self.f.as_slice().expect("standard layout");
        &all[i * n..(i + 1) * n]
    }
    /// Time since the run's first snapshot at the middle of interval `row → row + 1`.
    pub fn t_mid(&self, row: usize) -> f64 {
        0.5 * (self.t[row] + self.t[row + 1]) - self.t[0]
    }
}

/// Field values of all contexts and time nodes.
fn field_values(model: &dyn OperatorModel, n_ctx: usize) -> usize {
    n_ctx * model.n_time_nodes() * model.n_fields() * model.grid().n_cells()
}

/// See [`Problem::theta_level`].
pub fn theta_level(model: &dyn OperatorModel, n_ctx: usize) -> bool {
    model.n_params() * 8 <= field_values(model, n_ctx)
}

/// Length of the exact accumulator of a model with `n_ctx` contexts (loss included).
pub fn accumulator_len(model: &dyn OperatorModel, n_ctx: usize) -> usize {
    1 + if theta_level(model, n_ctx) { model.n_params() } else { field_values(model, n_ctx) }
}

/// What stays fixed during a stage.
pub struct Problem<'a> {
    pub model: &'a dyn OperatorModel,
    pub scheme: &'a dyn Scheme,
    pub loss: LossKind,
    pub mode: LossMode,
    /// Normalised conditioner vector of each context.
    pub cond: Vec<Vec<f64>>,
    /// `solver.checkpoints` and `solver.memory_budget_mb`: states stored per sample in adjoint
    /// rollouts.
    pub checkpoints: Checkpoints,
    pub memory_budget_mb: f64,
}

/// Coefficients derived from θ for one epoch, shared by all samples.
pub struct EpochCoeffs {
    /// The parameters these coefficients were computed from.
    pub theta: Vec<f64>,
    /// `[ctx * n_nodes + node]`, physical units.
    pub node_fields: Vec<Fields>,
    /// Per run: solver steps per snapshot interval.
    pub substeps: Vec<usize>,
    /// Per run: prepared coefficients for static models (`None` for time-dependent models).
    pub prepared: Vec<Option<Fields>>,
    /// Per run and interval row: prepared coefficients of time-dependent models (held runs only).
    pub prepared_t: Vec<Vec<Fields>>,
}

impl<'a> Problem<'a> {
    pub fn n_ctx(&self) -> usize {
        self.cond.len()
    }
    fn n_nodes(&self) -> usize {
        self.model.n_time_nodes()
    }
    /// Length of one context's gradient block (all nodes).
    pub fn ctx_len(&self) -> usize {
        let g = self.model.grid();
        self.n_nodes() * self.model.n_fields() * g.n_cells()
    }
    /// Whether blocks reduce ∂L/∂θ (one model VJP per block) rather than ∂L/∂fields: chosen for
    /// models with far fewer parameters than field values (e.g. par-perp: 78 against 13 005), where
    /// it shrinks both the exact additions and the allreduce. Depends on the model only.
    pub fn theta_level(&self) -> bool {
        theta_level(self.model, self.n_ctx())
    }
    /// Length of the exact accumulator: ∂L/∂θ or all contexts' field gradients, plus the loss.
    pub fn acc_len(&self) -> usize {
        accumulator_len(self.model, self.n_ctx())
    }

    /// Add one block's gradient of context `ctx` (`[n_nodes, n_fields, nx, ny]`) to `acc`, as
    /// field gradients or mapped to ∂L/∂θ (see [`Problem::theta_level`]).
    fn deposit(&self, c: &EpochCoeffs, ctx: usize, grad: &[f64], acc: &mut ExactSum) {
        if !self.theta_level() {
            acc.add_slice_at(ctx * self.ctx_len(), grad);
            return;
        }
        let shape = self.fields_shape();
        let flen = shape.0 * shape.1 * shape.2;
        let mut d_theta = vec![0.0; self.model.n_params()];
        for node in 0..self.n_nodes() {
            let g = &grad[node * flen..(node + 1) * flen];
            if g.iter().all(|v| *v == 0.0) {
                continue;
            }
            let df = Fields::from_shape_vec(shape, g.to_vec()).expect("shape");
            self.model.node_fields_vjp(&c.theta, &self.cond[ctx], node, &df, &mut d_theta);
        }
        acc.add_slice_at(0, &d_theta);
    }

    fn fields_shape(&self) -> (usize, usize, usize) {
        let g = self.model.grid();
        (self.model.n_fields(), g.nx, g.ny)
    }

    /// Fields of context `ctx` at time `t` from the epoch's node fields.
    fn fields_at(&self, c: &EpochCoeffs, ctx: usize, t: f64, out: &mut Fields) {
        out.fill(0.0);
        let nn = self.n_nodes();
        for nw in self.model.time_weights(t) {
            out.scaled_add(nw.weight, &c.node_fields[ctx * nn + nw.node]);
        }
    }

    /// Evaluate the model for this epoch. `runs[r] = Some(slice)` for runs this rank holds;
    /// `run_meta[r] = (ctx, dt)` for every run (so substeps agree on all ranks).
    pub fn coefficients(&self, theta: &[f64], run_meta: &[(usize, f64)], runs: &[Option<RunSlice>]) -> EpochCoeffs {
        let nn = self.n_nodes();
        let shape = self.fields_shape();
        let node_fields: Vec<Fields> = (0..self.n_ctx() * nn)
            .into_par_iter()
            .map(|slot| {
                let mut f = Fields::zeros(shape);
                self.model.node_fields(theta, &self.cond[slot / nn], slot % nn, &mut f);
                f
            })
            .collect();
        let substeps: Vec<usize> = run_meta
            .iter()
            .map(|&(ctx, dt)| (0..nn).map(|n| self.scheme.substeps(node_fields[ctx * nn + n].view(), dt)).max().unwrap_or(1))
            .collect();
        let g = self.model.grid();
        let pshape = (self.scheme.n_prepared(), g.nx, g.ny);
        let mut prepared = vec![None; run_meta.len()];
        let mut prepared_t = vec![Vec::new(); run_meta.len()];
        for (r, slice) in runs.iter().enumerate() {
            let Some(slice) = slice else { continue };
            let (ctx, dt) = run_meta[r];
            let h = dt / substeps[r] as f64;
            if nn == 1 {
                let mut p = Fields::zeros(pshape);
                self.scheme.prepare(node_fields[ctx].view(), h, p.view_mut());
                prepared[r] = Some(p);
            } else {
                let rows = slice.t.len() - 1;
                let tmp_coeffs = EpochCoeffs { theta: vec![], node_fields: node_fields.clone(), substeps: vec![], prepared: vec![], prepared_t: vec![] };
                prepared_t[r] = (0..rows)
                    .into_par_iter()
                    .map(|row| {
                        let mut f = Fields::zeros(shape);
                        self.fields_at(&tmp_coeffs, ctx, slice.t_mid(row), &mut f);
                        let mut p = Fields::zeros(pshape);
                        self.scheme.prepare(f.view(), h, p.view_mut());
                        p
                    })
                    .collect();
            }
        }
        EpochCoeffs { theta: theta.to_vec(), node_fields, substeps, prepared, prepared_t }
    }

    /// Weight of snapshot k (1-based) of a sample with `k_max` intervals in a batch of `batch` samples.
    fn snapshot_weight(&self, k: usize, k_max: usize, batch: usize) -> f64 {
        let n = self.model.grid().n_cells() as f64;
        match self.mode {
            LossMode::Accumulated => 1.0 / (batch as f64 * n * k_max as f64),
            LossMode::Last => {
                if k == k_max {
                    1.0 / (batch as f64 * n)
                } else {
                    0.0
                }
            }
        }
    }

    /// Adjoint rollout of one sample: adds ∂L/∂prepared into `d_prepared` (one buffer for static
    /// models, one per interval for time-dependent ones) and returns the sample's loss.
    #[allow(clippy::too_many_arguments)]
    fn sample_adjoint(
        &self,
        c: &EpochCoeffs,
        runs: &[Option<RunSlice>],
        s: Sample,
        batch: usize,
        schedules: &BTreeMap<usize, Schedule>,
        d_prepared: &mut [Fields],
        ws: &mut RolloutWorkspace,
    ) -> f64 {
        let slice = runs[s.run].as_ref().expect("rank holds the runs of its samples");
        let k_max = s.intervals;
        let (prepared, grad_slot): (Vec<&Fields>, Vec<usize>) = if self.n_nodes() == 1 {
            (vec![c.prepared[s.run].as_ref().expect("prepared"); k_max], vec![0; k_max])
        } else {
            let pt = &c.prepared_t[s.run];
            ((0..k_max).map(|k| &pt[s.start + k]).collect(), (0..k_max).collect())
        };
        let loss_kind = self.loss;
        let loss = |k: usize, state: &[f64], lam: &mut [f64]| -> f64 {
            let w = self.snapshot_weight(k, k_max, batch);
            if w == 0.0 {
                return 0.0;
            }
            crate::train::loss::add_loss(loss_kind, state, slice.snapshot(s.start + k), w, lam)
        };
        let schedule = &schedules[&(k_max * c.substeps[s.run])];
        rollout::gradient(self.scheme, &prepared, &grad_slot, d_prepared, c.substeps[s.run], slice.snapshot(s.start), schedule, ws, loss).loss
    }

    /// Loss and slot gradients of one block of consecutive samples, summed in sample order and
    /// added to `acc` exactly. Static models sum ∂L/∂prepared over the block and map it to
    /// ∂L/∂fields once per run; time-dependent models map each interval to its time nodes.
    #[allow(clippy::too_many_arguments)]
    fn block_gradient(
        &self,
        c: &EpochCoeffs,
        runs: &[Option<RunSlice>],
        block: &[Sample],
        batch: usize,
        schedules: &BTreeMap<usize, Schedule>,
        ws: &mut RolloutWorkspace,
        acc: &mut ExactSum,
    ) {
        let nn = self.n_nodes();
        let shape = self.fields_shape();
        let flen = shape.0 * shape.1 * shape.2;
        let g = self.model.grid();
        let pshape = (self.scheme.n_prepared(), g.nx, g.ny);
        let ctx_len = self.ctx_len();
        let mut loss = 0.0;
        let mut d = Fields::zeros(shape);
        if nn == 1 {
            // One ∂L/∂prepared per run in the block, in order of first appearance.
            let mut per_run: Vec<(usize, Vec<Fields>)> = Vec::new();
            for &s in block {
                let idx = match per_run.iter().position(|(r, _)| *r == s.run) {
                    Some(i) => i,
                    None => {
                        per_run.push((s.run, vec![Fields::zeros(pshape)]));
                        per_run.len() - 1
                    }
                };
                loss += self.sample_adjoint(c, runs, s, batch, schedules, &mut per_run[idx].1, ws);
            }
            for (r, dp) in &per_run {
                let slice = runs[*r].as_ref().expect("held");
                let h = slice.dt / c.substeps[*r] as f64;
                d.fill(0.0);
                self.scheme.prepare_vjp(c.node_fields[slice.ctx].view(), h, dp[0].view(), d.view_mut());
                self.deposit(c, slice.ctx, d.as_slice().expect("standard layout"), acc);
            }
        } else {
            let mut sums: Vec<(usize, Vec<f64>)> = Vec::new();
            let mut f = Fields::zeros(shape);
            for &s in block {
                let slice = runs[s.run].as_ref().expect("held");
                let h = slice.dt / c.substeps[s.run] as f64;
                let mut d_prepared = vec![Fields::zeros(pshape); s.intervals];
                loss += self.sample_adjoint(c, runs, s, batch, schedules, &mut d_prepared, ws);
                let grad = match sums.iter().position(|(ctx, _)| *ctx == slice.ctx) {
                    Some(i) => &mut sums[i].1,
                    None => {
                        sums.push((slice.ctx, vec![0.0; ctx_len]));
                        &mut sums.last_mut().expect("pushed").1
                    }
                };
                for (k, dp) in d_prepared.iter().enumerate() {
                    let t = slice.t_mid(s.start + k);
                    self.fields_at(c, slice.ctx, t, &mut f);
                    d.fill(0.0);
                    self.scheme.prepare_vjp(f.view(), h, dp.view(), d.view_mut());
                    let ds = d.as_slice().expect("standard layout");
                    for nw in self.model.time_weights(t) {
                        let dst = &mut grad[nw.node * flen..(nw.node + 1) * flen];
                        for (a, b) in dst.iter_mut().zip(ds) {
                            *a += nw.weight * b;
                        }
                    }
                }
            }
            for (ctx, v) in &sums {
                self.deposit(c, *ctx, v, acc);
            }
        }
        acc.add_at(acc.len() - 1, loss);
    }

    /// Loss of one sample without gradient.
    fn sample_loss(&self, c: &EpochCoeffs, runs: &[Option<RunSlice>], s: Sample, batch: usize, ws: &mut RolloutWorkspace) -> f64 {
        let slice = runs[s.run].as_ref().expect("rank holds the runs of its samples");
        let k_max = s.intervals;
        let prepared: Vec<&Fields> = if self.n_nodes() == 1 {
            vec![c.prepared[s.run].as_ref().expect("prepared"); k_max]
        } else {
            (0..k_max).map(|k| &c.prepared_t[s.run][s.start + k]).collect()
        };
        let mut total = 0.0;
        rollout::forward(self.scheme, &prepared, c.substeps[s.run], slice.snapshot(s.start), ws, |k, state| {
            let w = self.snapshot_weight(k, k_max, batch);
            if w != 0.0 {
                total += crate::train::loss::loss_value(self.loss, state, slice.snapshot(s.start + k), w);
            }
        });
        total
    }

    /// Accumulate the loss and slot gradients of `samples` (this rank's part of a batch of
    /// `batch` samples; `first_index` is the global index of `samples[0]`) into `acc`. Blocks of
    /// `block` consecutive global indices are summed in f64 in sample order, each block sum is
    /// added exactly; blocks run in parallel into per-task exact sums merged exactly, so the
    /// result depends neither on the thread count nor on the rank layout.
    #[allow(clippy::too_many_arguments)]
    pub fn accumulate_gradient(
        &self,
        c: &EpochCoeffs,
        runs: &[Option<RunSlice>],
        samples: &[Sample],
        first_index: usize,
        batch: usize,
        block: usize,
        acc: &mut ExactSum,
    ) -> anyhow::Result<()> {
        let state_bytes = self.model.grid().n_cells() * std::mem::size_of::<f64>();
        let mut schedules = BTreeMap::new();
        for s in samples {
            let n = s.intervals * c.substeps[s.run];
            if let std::collections::btree_map::Entry::Vacant(e) = schedules.entry(n) {
                e.insert(Schedule::from_config(self.checkpoints, self.memory_budget_mb, state_bytes, rayon::current_num_threads(), n)?);
            }
        }
        // Block boundaries in the global numbering.
        let mut blocks: Vec<&[Sample]> = Vec::new();
        let mut i = 0;
        while i < samples.len() {
            let g = first_index + i;
            let end = ((g / block + 1) * block - first_index).min(samples.len());
            blocks.push(&samples[i..end]);
            i = end;
        }
        let threads = rayon::current_num_threads();
        let len = acc.len();
        let partial = blocks
            .par_iter()
            .with_min_len(blocks.len().div_ceil(2 * threads).max(1))
            .fold(
                || (ExactSum::new(len), RolloutWorkspace::new(self.scheme)),
                |(mut part, mut ws), b| {
                    self.block_gradient(c, runs, b, batch, &schedules, &mut ws, &mut part);
                    (part, ws)
                },
            )
            .map(|(part, _)| part)
            .reduce_with(|mut a, b| {
                a.merge(&b);
                a
            });
        if let Some(p) = partial {
            acc.merge(&p);
        }
        Ok(())
    }

    /// Sum of the losses of `samples` (forward only), exact.
    pub fn accumulate_loss(&self, c: &EpochCoeffs, runs: &[Option<RunSlice>], samples: &[Sample], batch: usize, acc: &mut ExactSum) {
        let losses: Vec<f64> = samples
            .par_iter()
            .map_init(|| RolloutWorkspace::new(self.scheme), |ws, &s| self.sample_loss(c, runs, s, batch, ws))
            .collect();
        for l in losses {
            acc.add_at(0, l);
        }
    }

    /// ∂L/∂θ from the reduced slot gradients (every rank, fixed order), plus the model's penalty.
    /// Returns the penalty value.
    pub fn theta_gradient(&self, theta: &[f64], slots: &[f64], d_theta: &mut [f64]) -> f64 {
        if self.theta_level() {
            for (d, g) in d_theta.iter_mut().zip(slots) {
                *d += g;
            }
            return self.model.penalty(theta, d_theta);
        }
        let nn = self.n_nodes();
        let shape = self.fields_shape();
        let flen = shape.0 * shape.1 * shape.2;
        let ctx_len = self.ctx_len();
        for ctx in 0..self.n_ctx() {
            for node in 0..nn {
                let off = ctx * ctx_len + node * flen;
                let d = &slots[off..off + flen];
                if d.iter().all(|v| *v == 0.0) {
                    continue;
                }
                let df = ArrayView2::from_shape((shape.0, shape.1 * shape.2), d)
                    .expect("shape")
                    .to_owned()
                    .into_shape_with_order(shape)
                    .expect("shape");
                self.model.node_fields_vjp(theta, &self.cond[ctx], node, &df, d_theta);
            }
        }
        self.model.penalty(theta, d_theta)
    }
}
