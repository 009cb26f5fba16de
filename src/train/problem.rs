//! The one gradient step: everything fixed during a stage, built once ([`StageProblem::new`]),
//! and [`StageProblem::step`], which takes θ, a batch and the communicator and returns the loss,
//! ∂L/∂θ and timings. Training, model selection and `colop bench --what epoch` all call it.
//!
//! # Where the model's VJP runs, and why results do not depend on the layout
//!
//! A sample's adjoint rollout yields ∂L/∂prepared — the gradient with respect to the solver's
//! prepared coefficients — accumulated in f64 inside the solver's own adjoint loop. The batch is
//! cut into *reduction blocks* of consecutive samples whose boundaries depend on the batch and
//! the model only ([`reduction_blocks`]), never on ranks or threads; ranks own whole blocks.
//! Within a block samples run in order on one thread and sum their ∂L/∂prepared in f64 (free:
//! the adjoint adds into the same buffer); the block then maps that sum once through the
//! scheme's `prepare_vjp` to ∂L/∂fields, and once more:
//!
//! * **θ-level** models (few parameters: `par-perp` has 78 against 13 005 field values) apply
//!   the model's transpose to the block's field gradient and add the short ∂L/∂θ exactly;
//! * **field-level** models (`tensor`, MLPs, kernels) add the field gradient exactly, and the
//!   model's transpose is applied *once per epoch*, after the allreduce, on every rank.
//!
//! Exact sums ([`ExactSum`]) are order-independent, so any assignment of blocks to ranks and
//! threads gives the same bits. The block count trades parallelism against the per-block cost
//! of `prepare_vjp` plus the transpose (θ-level) or the exact addition (field-level): it is the
//! largest "round" count (1, 2, 4, 6, 8, 12, 16, 24, …, so that 2, 3 or 4 workers share them
//! evenly), at least 4, whose per-block costs stay under [`BLOCK_OVERHEAD`] (5%) of the rollouts'
//! cost. For 90 unroll-1 windows of 51×51 that is 4 blocks (`par-perp`, `tensor`); 90 unroll-10
//! windows get 12 (`par-perp`) or 8 (`tensor`); long rollouts get one block per sample. Ranks
//! beyond the block count idle. (At 15% the unroll-10 epochs had 32 and 24 blocks: the per-block
//! work and the smaller bundles it forces — a bundle never spans blocks — made a `par-perp`
//! epoch ~10% slower.)
//!
//! Workers pull blocks from a shared counter into their own exact accumulators, which are merged
//! exactly; every buffer lives in the problem and is reused, so a steady-state epoch does not
//! allocate.
//!
//! # Bundles: one solver pass for several windows
//!
//! Inside a block, consecutive windows of the same run and length whose coefficients do not
//! change between intervals (static models on evenly spaced runs) form a *bundle* ([`bundles`]):
//! one rollout carries their states one after the other, so every solver pass reads the line's
//! coefficients once for all of them and adds their ∂L/∂prepared while that line is in cache.
//! A bundle holds at most [`MAX_BUNDLE`] windows, and no more than the memory budget allows
//! with the single window's checkpoint schedule ([`bundle_capacity`]), so bundling never adds
//! recomputation. Each window's loss terms are still summed on their own; the gradient is summed
//! per cell in (adjoint step, window) order instead of window by window. Bundles are cut from the
//! block alone, so results stay independent of ranks and threads.
//!
//! # Snapshots: held or streamed
//!
//! Workers read initial states and targets through their own [`SnapshotReader`]: straight from
//! the rank's shard when it is held, or, when the shard exceeds `data.cache_mb`, from the run
//! files in chunks (see [`crate::data::shard`]). A bundle's initial states are read first and the
//! chunk with its last targets is then read in the background during the forward pass; the
//! adjoint asks for targets from k = K down, each bundle's samples last to first, so the reader
//! walks the rows downwards and reads the next chunk ahead. Validation rollouts walk upwards. A
//! failed read ends the step with the file's error.

use crate::config::{LossKind, LossMode};
use crate::data::windows::{block_bounds, shard_blocks};
use crate::data::transitions::TransitionData;
use crate::data::{DataError, Sample, ShardData, SnapshotReader, Spacing, Walk};
use crate::train::loss::Loss;
use crate::dist::{Comm, ExactSum};
use crate::operator::{Fields, NodeWeight, OperatorModel};
use crate::solver::checkpoint::{bundle_capacity, Schedule};
use crate::solver::coefficients::{interpolate, run_substeps, RunCoefficients};
use crate::solver::rollout::{self, RolloutWorkspace};
use crate::solver::{Checkpoints, Scheme};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Largest share of a batch's rollout cost that per-block reduction work may take.
pub const BLOCK_OVERHEAD: f64 = 0.05;

/// Block counts that 1, 2, 3 or 4 workers share evenly (then doubling).
fn round_count(limit: usize) -> usize {
    const ROUND: [usize; 12] = [1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96];
    if limit >= 128 {
        return 1usize << limit.ilog2();
    }
    *ROUND.iter().rev().find(|&&c| c <= limit).unwrap_or(&1)
}

/// Whether blocks reduce ∂L/∂θ (one model transpose per block) rather than ∂L/∂fields: for
/// models with far fewer parameters than field values. Depends on the model only.
pub fn theta_level(model: &dyn OperatorModel, n_ctx: usize) -> bool {
    model.n_params() * 8 <= field_values(model, n_ctx)
}

fn field_values(model: &dyn OperatorModel, n_ctx: usize) -> usize {
    n_ctx * model.n_time_nodes() * model.n_fields() * model.grid().n_cells()
}

/// Boundaries of the reduction blocks of `samples` (see the module doc): a function of the
/// samples, the grid size and the reduction level alone.
pub fn reduction_blocks(samples: &[Sample], theta_level: bool) -> Vec<usize> {
    // Costs in units of one solver step's forward + adjoint per cell (≈ 5 ns), measured with
    // `colop bench --what epoch`: prepare_vjp and buffer zeroing ≈ 1,
    // the model transpose ≈ 2 (θ-level) or the exact addition ≈ 4 (field-level), per cell.
    let per_block = if theta_level { 3.0 } else { 5.0 };
    let work: f64 = samples.iter().map(|s| s.intervals as f64).sum();
    let limit = (BLOCK_OVERHEAD * work / per_block).floor().max(1.0) as usize;
    // At least 4 blocks where there are 4 samples, so that small problems still spread over a
    // few ranks.
    block_bounds(samples.len(), round_count(limit.max(4).min(samples.len().max(1))))
}

/// Most samples one rollout carries (see [`bundles`]).
pub const MAX_BUNDLE: usize = 8;

/// The block cut into *bundles*: runs of consecutive samples of one run and one window length,
/// at most `cap(first sample)` long, that one rollout advances together (their states one after
/// the other, see [`crate::solver::rollout`]). Samples whose coefficients change between
/// intervals get a cap of 1. Bundles depend on the block alone, so ranks and threads do not
/// change them.
pub fn bundles(block: &[Sample], cap: impl Fn(&Sample) -> usize) -> impl Iterator<Item = &[Sample]> {
    let mut rest = block;
    std::iter::from_fn(move || {
        let first = *rest.first()?;
        let cap = cap(&first).max(1);
        let len = rest.iter().take(cap).take_while(|s| s.run == first.run && s.intervals == first.intervals && s.is_transition() == first.is_transition()).count();
        let (bundle, tail) = rest.split_at(len);
        rest = tail;
        Some(bundle)
    })
}

/// The first sample of a bundle and the snapshot rows the bundle reads (its samples share the
/// run and the window length, and start in ascending order).
fn bundle_span(bundle: &[Sample]) -> (Sample, Range<usize>) {
    let (first, last) = (bundle[0], bundle[bundle.len() - 1]);
    (first, first.start..last.start + last.intervals + 1)
}

/// How a sample's cost is counted for sharding: its snapshot intervals.
pub fn sample_cost(s: &Sample) -> u64 {
    s.intervals as u64
}

/// What is fixed about one run during a stage.
#[derive(Clone, Debug)]
pub struct RunContext {
    /// Conditioning context (index into the contexts' conditioner vectors).
    pub ctx: usize,
    pub spacing: Spacing,
    /// Node weights per interval row (time-dependent models only).
    pub weights: Vec<Vec<NodeWeight>>,
    /// Interval rows of the run.
    pub n_rows: usize,
    /// Interval rows this rank holds data for (`0..0` if none).
    pub held_rows: Range<usize>,
    /// Distinct window lengths (intervals) of this rank's samples of the run.
    pub intervals: Vec<usize>,
    /// Loss of the run's samples and the factor on their weights (its source's share).
    pub loss: Loss,
    pub weight: f64,
}

/// What a stage needs to know about one run.
#[derive(Clone, Debug)]
pub struct RunInput {
    /// Conditioning context (index into [`StageInputs::cond`]).
    pub ctx: usize,
    pub spacing: Spacing,
    /// Time since the run's first snapshot at the middle of each interval row.
    pub t_mid: Vec<f64>,
    /// Loss of the run's samples, and the factor on their loss weights.
    pub loss: Loss,
    pub weight: f64,
}

/// The loss settings of a stage.
#[derive(Clone, Copy, Debug)]
pub struct LossSpec {
    pub kind: LossKind,
    pub mode: LossMode,
}

/// Which samples a step covers.
#[derive(Clone, Copy, Debug)]
pub enum Batch<'b> {
    /// Every training sample (this rank's blocks are planned once per stage).
    Full,
    /// These indices into the training samples (ascending).
    Indices(&'b [usize]),
}

/// What one step measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepOut {
    /// Training loss of the batch (penalty included).
    pub loss: f64,
    /// Validation loss at the same θ, when asked for.
    pub valid_loss: Option<f64>,
    /// Seconds of computation and of collectives on this rank.
    pub compute_s: f64,
    pub comm_s: f64,
    /// Largest solver-step count per interval over the runs.
    pub substeps: usize,
}

/// This rank's part of one batch: the samples and the block boundaries (indices into them) of
/// the blocks it owns.
#[derive(Clone, Debug, Default)]
struct Plan {
    samples: Vec<Sample>,
    n_total: usize,
    bounds: Vec<usize>,
    mine: Range<usize>,
}

impl Plan {
    fn build(&mut self, samples: impl Iterator<Item = Sample>, theta_level: bool, comm: &dyn Comm) {
        self.samples.clear();
        self.samples.extend(samples);
        self.n_total = self.samples.len();
        self.bounds = reduction_blocks(&self.samples, theta_level);
        self.mine = shard_blocks(&self.samples, sample_cost, comm.size(), &self.bounds)[comm.rank()].clone();
    }
    fn n_blocks(&self) -> usize {
        self.mine.len()
    }
    fn block(&self, i: usize) -> &[Sample] {
        let b = self.mine.start + i;
        &self.samples[self.bounds[b]..self.bounds[b + 1]]
    }
}

/// One worker's buffers, reused from block to block and epoch to epoch.
struct Task {
    acc: ExactSum,
    ws: RolloutWorkspace,
    /// ∂L/∂prepared per (run, interval row) of the current block (row 0 for static models).
    prep: Vec<Fields>,
    prep_keys: Vec<(usize, usize)>,
    /// ∂L/∂fields per (context, time node) of the current block.
    fgrad: Vec<Fields>,
    fgrad_keys: Vec<(usize, usize)>,
    /// Gradient slot of each interval of the current sample.
    slot_of: Vec<usize>,
    /// The current bundle's initial states, one after the other, and its samples' losses.
    bundle_f0: Vec<f64>,
    bundle_loss: Vec<f64>,
    dfields: Fields,
    scratch: Fields,
    dtheta: Vec<f64>,
    /// This worker's access to the snapshots (its own buffers when the shard is streamed).
    reader: SnapshotReader,
    /// The first snapshot read that failed in this step.
    error: Option<DataError>,
}

/// Index of `key` in `keys`, appending it (with a zeroed buffer from the pool) if new.
fn slot(keys: &mut Vec<(usize, usize)>, bufs: &mut Vec<Fields>, key: (usize, usize), shape: (usize, usize, usize)) -> usize {
    if let Some(i) = keys.iter().position(|k| *k == key) {
        return i;
    }
    let i = keys.len();
    keys.push(key);
    if bufs.len() <= i {
        bufs.push(Fields::zeros(shape));
    } else {
        bufs[i].fill(0.0);
    }
    i
}

/// Everything of a stage that the parallel part reads.
struct Shared<'a> {
    model: &'a dyn OperatorModel,
    scheme: &'a dyn Scheme,
    loss: LossSpec,
    cond: Vec<Vec<f64>>,
    runs: Vec<RunContext>,
    data: ShardData,
    /// States of the transition windows this rank uses.
    transitions: TransitionData,
    theta_level: bool,
    /// Per epoch: node fields `[ctx · n_nodes + node]`, prepared coefficients per run, the θ they
    /// were computed from, and the checkpoint schedules by step count.
    node_fields: Vec<Fields>,
    coeffs: Vec<RunCoefficients>,
    coeff_theta: Option<Vec<f64>>,
    schedules: BTreeMap<usize, Schedule>,
    /// Most samples per bundle, by step count (see [`bundles`]).
    bundle_caps: BTreeMap<usize, usize>,
    checkpoints: Checkpoints,
    memory_budget_mb: f64,
    scratch: Fields,
}

/// The per-stage problem (see the module doc).
pub struct StageProblem<'a> {
    shared: Shared<'a>,
    /// Training and validation samples, in the global order.
    pub train: Vec<Sample>,
    pub valid: Vec<Sample>,
    full: Plan,
    batch: Plan,
    valid_mine: Range<usize>,
    tasks: Vec<Task>,
    acc: ExactSum,
    g: Vec<f64>,
    d_theta: Vec<f64>,
    vjp_buf: Fields,
}

/// Inputs of [`StageProblem::new`].
pub struct StageInputs<'a> {
    pub model: &'a dyn OperatorModel,
    pub scheme: &'a dyn Scheme,
    pub loss: LossSpec,
    pub checkpoints: Checkpoints,
    pub memory_budget_mb: f64,
    /// Normalised conditioner vector of each context (one empty vector if unconditioned).
    pub cond: Vec<Vec<f64>>,
    /// Per run (training runs, validation runs, track runs).
    pub runs: Vec<RunInput>,
    pub train: Vec<Sample>,
    pub valid: Vec<Sample>,
    /// Whether batches are mini-batches (every rank then holds every training sample).
    pub mini_batches: bool,
}

impl<'a> StageProblem<'a> {
    /// Plan the stage: shard the samples, read this rank's snapshots and transition windows
    /// through `load`, size every buffer.
    pub fn new(
        inp: StageInputs<'a>,
        comm: &dyn Comm,
        load: impl FnOnce(&[Sample]) -> anyhow::Result<(ShardData, TransitionData)>,
    ) -> anyhow::Result<Self> {
        let model = inp.model;
        let n_ctx = inp.cond.len();
        let theta_level = theta_level(model, n_ctx);
        let mut full = Plan::default();
        full.build(inp.train.iter().copied(), theta_level, comm);
        let valid_bounds = block_bounds(inp.valid.len(), inp.valid.len());
        let valid_mine = if inp.valid.is_empty() {
            0..0
        } else {
            shard_blocks(&inp.valid, sample_cost, comm.size(), &valid_bounds)[comm.rank()].clone()
        };
        let mut held: Vec<Sample> = if inp.mini_batches {
            inp.train.clone()
        } else {
            (0..full.n_blocks()).flat_map(|b| full.block(b).iter().copied()).collect()
        };
        held.extend_from_slice(&inp.valid[valid_mine.clone()]);
        let (data, transitions) = load(&held)?;
        tracing::info!("this rank holds {} training and {} validation windows", held.len() - valid_mine.len(), valid_mine.len());
        let rows = crate::data::windows::snapshot_ranges(&held);
        let nn = model.n_time_nodes();
        let runs: Vec<RunContext> = inp
            .runs
            .iter()
            .enumerate()
            .map(|(r, run)| RunContext {
                ctx: run.ctx,
                spacing: run.spacing.clone(),
                n_rows: run.t_mid.len(),
                weights: if nn > 1 { run.t_mid.iter().map(|&t| model.time_weights(t)).collect() } else { Vec::new() },
                loss: run.loss,
                weight: run.weight,
                held_rows: rows.get(&r).map_or(0..0, |rg| rg.start..rg.end - 1),
                intervals: {
                    let mut k: Vec<usize> = held.iter().filter(|s| s.run == r).map(|s| s.intervals).collect();
                    k.sort_unstable();
                    k.dedup();
                    k
                },
            })
            .collect();
        let g = model.grid();
        let fshape = g.fields_shape(model.n_fields());
        let acc_len = 1 + 1 + if theta_level { model.n_params() } else { field_values(model, n_ctx) };
        let threads = rayon::current_num_threads().max(1);
        let tasks = (0..threads)
            .map(|_| Task {
                acc: ExactSum::new(acc_len),
                ws: RolloutWorkspace::new(inp.scheme),
                prep: Vec::new(),
                prep_keys: Vec::new(),
                fgrad: Vec::new(),
                fgrad_keys: Vec::new(),
                slot_of: Vec::new(),
                bundle_f0: Vec::new(),
                bundle_loss: Vec::new(),
                dfields: Fields::zeros(fshape),
                scratch: Fields::zeros(fshape),
                dtheta: vec![0.0; model.n_params()],
                reader: data.reader(threads),
                error: None,
            })
            .collect();
        let shared = Shared {
            model,
            scheme: inp.scheme,
            loss: inp.loss,
            cond: inp.cond,
            node_fields: vec![Fields::zeros(fshape); n_ctx * nn],
            coeffs: vec![RunCoefficients::default(); runs.len()],
            runs,
            data,
            transitions,
            theta_level,
            coeff_theta: None,
            schedules: BTreeMap::new(),
            bundle_caps: BTreeMap::new(),
            checkpoints: inp.checkpoints,
            memory_budget_mb: inp.memory_budget_mb,
            scratch: Fields::zeros(fshape),
        };
        let n_params = model.n_params();
        Ok(Self {
            shared,
            train: inp.train,
            valid: inp.valid,
            full,
            batch: Plan::default(),
            valid_mine,
            tasks,
            acc: ExactSum::new(acc_len),
            g: vec![0.0; acc_len],
            d_theta: vec![0.0; n_params],
            vjp_buf: Fields::zeros(fshape),
        })
    }

    /// ∂L/∂θ of the last [`StageProblem::step`].
    pub fn d_theta(&self) -> &[f64] {
        &self.d_theta
    }

    /// Reduction blocks of the full batch, over all ranks.
    pub fn n_blocks(&self) -> usize {
        self.full.bounds.len() - 1
    }

    /// Whether gradients are reduced at θ level (see the module doc).
    pub fn theta_level(&self) -> bool {
        self.shared.theta_level
    }

    /// Bytes of snapshot data this rank holds: the shard, or when it is streamed, the workers'
    /// buffers (their capacities, i.e. the most they have held).
    pub fn data_bytes(&self) -> usize {
        self.shared.data.bytes() + self.tasks.iter().map(|t| t.reader.bytes()).sum::<usize>() + self.shared.transitions.bytes()
    }

    /// Transition windows this rank holds, and their bytes.
    pub fn transition_windows(&self) -> usize {
        self.shared.transitions.len()
    }
    pub fn transition_bytes(&self) -> usize {
        self.shared.transitions.bytes()
    }

    /// Snapshot chunks the workers have read from the run files (streamed shards): on their own
    /// thread, and ahead of need in the background.
    pub fn snapshot_reads(&self) -> (usize, usize) {
        self.tasks.iter().map(|t| t.reader.reads()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// This rank's shard: bytes of all snapshots its samples need, and the budget if the shard
    /// is streamed rather than held (`data.cache_mb`).
    pub fn shard_bytes(&self) -> (usize, Option<usize>) {
        (self.shared.data.shard_bytes(), self.shared.data.stream_budget())
    }

    /// Loss, ∂L/∂θ (see [`StageProblem::d_theta`]) and timings of `batch` at `theta`, and the
    /// validation loss at the same θ if `with_valid`. Collective: every rank calls it with the
    /// same arguments.
    pub fn step(&mut self, theta: &[f64], batch: Batch, with_valid: bool, comm: &dyn Comm) -> anyhow::Result<StepOut> {
        let t0 = Instant::now();
        self.shared.update_coefficients(theta)?;
        let plan = match batch {
            Batch::Full => &self.full,
            Batch::Indices(idx) => {
                let train = &self.train;
                self.batch.build(idx.iter().map(|&i| train[i]), self.shared.theta_level, comm);
                &self.batch
            }
        };
        let shared = &self.shared;
        let n_total = plan.n_total;
        let n_valid = self.valid.len();
        let valid = &self.valid[self.valid_mine.clone()];
        let with_valid = with_valid && n_valid > 0;
        let next = AtomicUsize::new(0);
        let n_items = plan.n_blocks() + if with_valid { valid.len() } else { 0 };
        let workers = self.tasks.len().min(n_items.max(1));
        self.tasks[..workers].par_iter_mut().for_each(|task| {
            task.acc.clear();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n_items {
                    break;
                }
                if i < plan.n_blocks() {
                    shared.block_gradient(task, theta, plan.block(i), n_total);
                } else {
                    let s = valid[i - plan.n_blocks()];
                    let l = shared.sample_loss(task, s, n_valid);
                    let at = task.acc.len() - 1;
                    task.acc.add_at(at, l);
                }
            }
        });
        for task in &mut self.tasks[..workers] {
            if let Some(e) = task.error.take() {
                return Err(e.into());
            }
        }
        // The first worker's sum becomes the step's (no copy; its accumulator is cleared at the
        // next step), the others merge into it.
        std::mem::swap(&mut self.acc, &mut self.tasks[0].acc);
        for task in &self.tasks[1..workers] {
            self.acc.merge(&task.acc);
        }
        let compute_1 = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        comm.allreduce_exact(&mut self.acc);
        let comm_s = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        self.acc.to_f64_into(&mut self.g);
        self.theta_gradient(theta);
        let penalty = self.shared.model.penalty(theta, &mut self.d_theta);
        let n = self.g.len();
        let loss = self.g[n - 2] + penalty;
        let substeps = self.shared.coeffs.iter().map(|c| c.substeps).max().unwrap_or(1);
        Ok(StepOut {
            loss,
            valid_loss: with_valid.then(|| self.g[n - 1]),
            compute_s: compute_1 + t2.elapsed().as_secs_f64(),
            comm_s,
            substeps,
        })
    }

    /// The benchmark's reference: the bare forward + adjoint rollouts of this rank's training
    /// samples at `theta` (same coefficients, schedules, threads and workspaces as [`step`](Self::step)),
    /// without loss, model, reduction or update: the adjoint is seeded with the final state and
    /// ∂L/∂prepared is accumulated per worker. Returns the seconds taken.
    pub fn solver_only(&mut self, theta: &[f64]) -> anyhow::Result<f64> {
        self.shared.update_coefficients(theta)?;
        let t0 = Instant::now();
        let shared = &self.shared;
        let plan = &self.full;
        let next = AtomicUsize::new(0);
        let workers = self.tasks.len().min(plan.n_blocks().max(1));
        let pshape = shared.scheme.prepared_shape();
        self.tasks[..workers].par_iter_mut().for_each(|task| {
            if task.prep.is_empty() {
                task.prep.push(Fields::zeros(pshape));
            }
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.n_blocks() {
                    break;
                }
                for bundle in shared.bundles(plan.block(i)) {
                    let s = bundle[0];
                    let c = &shared.coeffs[s.run];
                    let n_steps = s.intervals * c.substeps;
                    if let Err(e) = shared.bundle_initial(&mut task.reader, bundle, &mut task.bundle_f0) {
                        task.error.get_or_insert(e);
                        continue;
                    }
                    rollout::gradient_by(
                        shared.scheme,
                        s.intervals,
                        |k| c.prepared(s.start + k),
                        |_| 0,
                        &mut task.prep[..1],
                        c.substeps,
                        &task.bundle_f0,
                        shared.schedule(n_steps),
                        &mut task.ws,
                        |k, state, lam| {
                            if k == s.intervals {
                                lam.copy_from_slice(state);
                            }
                            0.0
                        },
                    );
                }
            }
        });
        if let Some(e) = self.tasks.iter_mut().find_map(|t| t.error.take()) {
            return Err(e.into());
        }
        Ok(t0.elapsed().as_secs_f64())
    }

    /// ∂L/∂θ from the reduced gradient (every rank, fixed order) into `d_theta`.
    fn theta_gradient(&mut self, theta: &[f64]) {
        let sh = &self.shared;
        self.d_theta.fill(0.0);
        if sh.theta_level {
            let n = self.d_theta.len();
            self.d_theta.copy_from_slice(&self.g[..n]);
            return;
        }
        let nn = sh.model.n_time_nodes();
        let flen = self.vjp_buf.len();
        for slot in 0..sh.cond.len() * nn {
            let d = &self.g[slot * flen..(slot + 1) * flen];
            if d.iter().all(|v| *v == 0.0) {
                continue;
            }
            self.vjp_buf.as_slice_mut().expect("standard layout").copy_from_slice(d);
            sh.model.node_fields_vjp(theta, &sh.cond[slot / nn], slot % nn, &self.vjp_buf, &mut self.d_theta);
        }
    }

    /// Loss of the validation samples (or, without any, of the training samples) at `theta`:
    /// the selection loss of a stage's best model. Collective.
    pub fn selection_loss(&mut self, theta: &[f64], comm: &dyn Comm) -> anyhow::Result<f64> {
        if self.valid.is_empty() {
            return Ok(self.step(theta, Batch::Full, false, comm)?.loss);
        }
        Ok(self.step(theta, Batch::Indices(&[]), true, comm)?.valid_loss.expect("validation samples"))
    }
}

impl Shared<'_> {
    /// Node fields, substeps, prepared coefficients and schedules for `theta` (skipped when θ
    /// is bitwise the one of the last call).
    fn update_coefficients(&mut self, theta: &[f64]) -> anyhow::Result<()> {
        if self.coeff_theta.as_deref() == Some(theta) {
            return Ok(());
        }
        let model = self.model;
        let nn = model.n_time_nodes();
        let cond = &self.cond;
        self.node_fields.par_iter_mut().enumerate().for_each(|(slot, f)| model.node_fields(theta, &cond[slot / nn], slot % nn, f));
        for (r, run) in self.runs.iter().enumerate() {
            let nodes = &self.node_fields[run.ctx * nn..(run.ctx + 1) * nn];
            let c = &mut self.coeffs[r];
            if run.held_rows.is_empty() {
                c.substeps = run_substeps(self.scheme, nodes, run.spacing.longest());
            } else {
                let weights = (nn > 1).then_some(&run.weights[..]);
                c.update(self.scheme, nodes, &run.spacing, run.held_rows.clone(), run.n_rows, weights, &mut self.scratch);
            }
            let state_bytes = model.grid().n_cells() * std::mem::size_of::<f64>();
            for &k in &run.intervals {
                let n = k * c.substeps;
                if let std::collections::btree_map::Entry::Vacant(e) = self.schedules.entry(n) {
                    let threads = rayon::current_num_threads();
                    let schedule = e.insert(Schedule::from_config(self.checkpoints, self.memory_budget_mb, state_bytes, threads, n)?);
                    let cap = bundle_capacity(self.memory_budget_mb, state_bytes, threads, schedule.slots(), MAX_BUNDLE);
                    self.bundle_caps.insert(n, cap);
                }
            }
        }
        match &mut self.coeff_theta {
            Some(t) => t.copy_from_slice(theta),
            None => self.coeff_theta = Some(theta.to_vec()),
        }
        Ok(())
    }

    /// The checkpoint schedule for `n` solver steps (built on first use).
    fn schedule(&self, n: usize) -> &Schedule {
        &self.schedules[&n]
    }

    /// The bundles of `block` (see [`bundles`]).
    fn bundles<'b>(&'b self, block: &'b [Sample]) -> impl Iterator<Item = &'b [Sample]> + 'b {
        bundles(block, move |s| {
            let c = &self.coeffs[s.run];
            if c.per_interval() {
                1
            } else {
                self.bundle_caps[&(s.intervals * c.substeps)]
            }
        })
    }

    /// Copy the initial states of `bundle` one after the other into `f0`, and have `reader`
    /// start on the targets of its last interval (the adjoint walks them down from there).
    /// (Transition windows' states are held: the reader is not involved; a bundle is of one
    /// kind, see [`bundles`].)
    fn bundle_initial(&self, reader: &mut SnapshotReader, bundle: &[Sample], f0: &mut Vec<f64>) -> Result<(), DataError> {
        let (first, span) = bundle_span(bundle);
        let read = !first.is_transition();
        if read {
            // The last initial state first: walking down from it reads them all in one chunk
            // if they fit.
            reader.fetch(first.run, span.end - 1 - first.intervals, span.clone(), Walk::Down)?;
        }
        f0.clear();
        for s in bundle {
            f0.extend_from_slice(self.state(reader, s, 0, span.clone(), Walk::Down)?);
        }
        if read {
            reader.prefetch(first.run, span.end - 1, span, Walk::Down);
        }
        Ok(())
    }

    /// Weight of snapshot `k` (1-based) of sample `s` with `k_max` intervals in a batch of
    /// `batch`: the mean over samples, cells and snapshots, times the sample's source and window
    /// factors (1 for a histogram-only training). The likelihood of a transition window is not
    /// divided by the cell count: its terms are per particle, not per cell.
    fn snapshot_weight(&self, s: &Sample, k: usize, k_max: usize, batch: usize) -> f64 {
        let run = &self.runs[s.run];
        let n = if run.loss.kind == crate::config::LossKind::Likelihood { 1.0 } else { self.model.grid().n_cells() as f64 };
        let w = match self.loss.mode {
            LossMode::Accumulated => 1.0 / (batch as f64 * n * k_max as f64),
            LossMode::Last if k == k_max => 1.0 / (batch as f64 * n),
            LossMode::Last => 0.0,
        };
        // Both factors are 1 in a histogram-only training, and w·1 is w exactly.
        w * (run.weight * self.transitions.weight(s))
    }

    /// State `k` of sample `s` (0: its initial state, then its targets): a held transition
    /// state, or a snapshot the reader fetches (rows `span`, walked `walk`).
    fn state<'s>(&'s self, reader: &'s mut SnapshotReader, s: &Sample, k: usize, span: Range<usize>, walk: Walk) -> Result<&'s [f64], DataError> {
        if s.is_transition() {
            return Ok(self.transitions.state(s, k).expect("a rank holds the transition windows of its samples"));
        }
        reader.fetch(s.run, s.start + k, span, walk)?;
        Ok(self.snapshot(reader, s.run, s.start + k))
    }

    /// Snapshot `row` of run `run`, held by the shard or fetched by `reader`.
    fn snapshot<'s>(&'s self, reader: &'s SnapshotReader, run: usize, row: usize) -> &'s [f64] {
        reader.snapshot(&self.data, run, row).expect("a rank holds (or has fetched) the snapshots of its samples")
    }

    /// Gradient of one reduction block (samples in order) into `task.acc`.
    fn block_gradient(&self, task: &mut Task, theta: &[f64], block: &[Sample], batch: usize) {
        let shape = task.dfields.dim();
        let pshape = self.scheme.prepared_shape();
        let nn = self.model.n_time_nodes();
        task.prep_keys.clear();
        task.fgrad_keys.clear();
        let mut loss = 0.0;
        let n_cells = self.model.grid().n_cells();
        for bundle in self.bundles(block) {
            // A bundle's samples share the run, the window length and (static) coefficients.
            let s = bundle[0];
            let c = &self.coeffs[s.run];
            let td = c.per_interval();
            task.slot_of.clear();
            for k in 0..s.intervals {
                let key = (s.run, if td { s.start + k } else { 0 });
                let i = slot(&mut task.prep_keys, &mut task.prep, key, pshape);
                task.slot_of.push(i);
            }
            if let Err(e) = self.bundle_initial(&mut task.reader, bundle, &mut task.bundle_f0) {
                task.error.get_or_insert(e);
                continue;
            }
            task.bundle_loss.clear();
            task.bundle_loss.resize(bundle.len(), 0.0);
            let loss_of = self.runs[s.run].loss;
            let (_, span) = bundle_span(bundle);
            let Task { prep, prep_keys, slot_of, ws, bundle_f0, bundle_loss, reader, error, .. } = &mut *task;
            // Each sample's loss terms are summed on their own (k = K down to 1), as a sample
            // rolled out alone would sum them.
            let loss_fn = |k: usize, states: &[f64], lams: &mut [f64]| -> f64 {
                if error.is_some() {
                    return 0.0;
                }
                // Samples last to first (each one's terms are its own), so that a streamed
                // reader walks the rows down.
                let parts = states.chunks_exact(n_cells).zip(lams.chunks_exact_mut(n_cells));
                for ((b, (state, lam)), q) in parts.enumerate().zip(bundle).rev() {
                    let w = self.snapshot_weight(q, k, s.intervals, batch);
                    if w == 0.0 {
                        continue;
                    }
                    match self.state(reader, q, k, span.clone(), Walk::Down) {
                        Ok(obs) => bundle_loss[b] += crate::train::loss::add_loss(loss_of, state, obs, w, lam),
                        Err(e) => {
                            *error = Some(e);
                            return 0.0;
                        }
                    }
                }
                0.0
            };
            let n_steps = s.intervals * c.substeps;
            let used = prep_keys.len();
            rollout::gradient_by(
                self.scheme,
                s.intervals,
                |k| c.prepared(s.start + k),
                |k| slot_of[k],
                &mut prep[..used],
                c.substeps,
                bundle_f0,
                self.schedule(n_steps),
                ws,
                loss_fn,
            );
            for l in bundle_loss.iter() {
                loss += l;
            }
        }
        // ∂L/∂prepared → ∂L/∂fields per (context, node), once per (run, row) of the block.
        for i in 0..task.prep_keys.len() {
            let (run, row) = task.prep_keys[i];
            let rc = &self.runs[run];
            let c = &self.coeffs[run];
            let nodes = &self.node_fields[rc.ctx * nn..(rc.ctx + 1) * nn];
            let fields = if nn > 1 {
                interpolate(nodes, &rc.weights[row], &mut task.scratch);
                &task.scratch
            } else {
                &nodes[0]
            };
            if nn == 1 {
                // One node: its field gradient takes ∂L/∂prepared mapped back directly
                // (`prepare_vjp` adds; the same sums as through a zeroed buffer with weight 1,
                // up to the sign of zeros, which the exact reduction does not keep).
                let j = slot(&mut task.fgrad_keys, &mut task.fgrad, (rc.ctx, 0), shape);
                self.scheme.prepare_vjp(fields.view(), c.h(row), task.prep[i].view(), task.fgrad[j].view_mut());
                continue;
            }
            task.dfields.fill(0.0);
            self.scheme.prepare_vjp(fields.view(), c.h(row), task.prep[i].view(), task.dfields.view_mut());
            for nw in &rc.weights[row] {
                let j = slot(&mut task.fgrad_keys, &mut task.fgrad, (rc.ctx, nw.node), shape);
                task.fgrad[j].scaled_add(nw.weight, &task.dfields);
            }
        }
        // The block's contribution: ∂L/∂θ (θ-level) or the field gradients, exactly.
        if self.theta_level {
            task.dtheta.fill(0.0);
            for (j, &(ctx, node)) in task.fgrad_keys.iter().enumerate() {
                self.model.node_fields_vjp(theta, &self.cond[ctx], node, &task.fgrad[j], &mut task.dtheta);
            }
            task.acc.add_slice_at(0, &task.dtheta);
        } else {
            let flen = task.dfields.len();
            for (j, &(ctx, node)) in task.fgrad_keys.iter().enumerate() {
                task.acc.add_slice_at((ctx * nn + node) * flen, task.fgrad[j].as_slice().expect("standard layout"));
            }
        }
        let at = task.acc.len() - 2;
        task.acc.add_at(at, loss);
    }

    /// Loss of one sample without gradient (its weight within a set of `batch` samples).
    fn sample_loss(&self, task: &mut Task, s: Sample, batch: usize) -> f64 {
        let c = &self.coeffs[s.run];
        let span = s.snapshots();
        let Task { ws, reader, error, bundle_f0, .. } = task;
        // The initial state is copied: the reader's buffer moves on as the walk goes up.
        bundle_f0.clear();
        match self.state(reader, &s, 0, span.clone(), Walk::Up) {
            Ok(f0) => bundle_f0.extend_from_slice(f0),
            Err(e) => {
                error.get_or_insert(e);
                return 0.0;
            }
        }
        let loss = self.runs[s.run].loss;
        let mut total = 0.0;
        rollout::forward_by(self.scheme, s.intervals, |k| c.prepared(s.start + k), c.substeps, bundle_f0, ws, |k, state| {
            let w = self.snapshot_weight(&s, k, s.intervals, batch);
            if w != 0.0 && error.is_none() {
                match self.state(reader, &s, k, span.clone(), Walk::Up) {
                    Ok(obs) => total += crate::train::loss::loss_value(loss, state, obs, w),
                    Err(e) => *error = Some(e),
                }
            }
        });
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(run: usize, start: usize, intervals: usize) -> Sample {
        Sample { run, start, intervals, channel: 0 }
    }

    #[test]
    fn bundles_group_consecutive_windows_of_one_run_and_length() {
        let block = [
            sample(0, 0, 2),
            sample(0, 1, 2),
            sample(0, 2, 2),
            sample(0, 3, 1),
            sample(1, 0, 1),
            sample(1, 1, 1),
            sample(1, 2, 1),
            sample(0, 4, 1),
        ];
        let cut = |cap: usize| bundles(&block, |_| cap).map(|b| b.len()).collect::<Vec<_>>();
        assert_eq!(cut(8), [3, 1, 3, 1]);
        assert_eq!(cut(2), [2, 1, 1, 2, 1, 1]);
        assert_eq!(cut(1), [1; 8]);
        assert_eq!(cut(0), [1; 8], "a cap of 0 still makes progress");
        // Per-sample caps: run 1 may not bundle (e.g. time-dependent coefficients).
        let by_run: Vec<usize> = bundles(&block, |s| if s.run == 1 { 1 } else { 8 }).map(|b| b.len()).collect();
        assert_eq!(by_run, [3, 1, 1, 1, 1, 1]);
        assert_eq!(bundles(&[], |_| 8).count(), 0);
        // Every sample once, in order.
        let flat: Vec<Sample> = bundles(&block, |_| 3).flatten().copied().collect();
        assert_eq!(flat, block);
    }
}
