//! What a training needs before its first epoch: the runs (opened and checked together), the
//! model and scheme, the conditioner ranges, and a check of every stage against every run and
//! of every snapshot's values — all before any output is written. Each stage's
//! [`StageProblem`] is built from here.

use super::problem::{LossSpec, StageInputs, StageProblem};
use crate::config::TrainConfig;
use crate::data::windows::{self, Sample};
use crate::data::{Run, ShardData};
use crate::dist::Comm;
use crate::operator::{self, BuildInfo, OperatorModel};
use crate::solver::{self, Scheme};
use anyhow::Context as _;

/// Runs, model and scheme of a config, shared by training, selection and benchmarks.
pub struct Setup {
    /// Training runs, then validation runs (sample `run` indices refer to this list).
    pub runs: Vec<Run>,
    pub n_train_runs: usize,
    pub model: Box<dyn OperatorModel>,
    pub scheme: Box<dyn Scheme>,
    /// Conditioner name, min and max over the training runs.
    pub cond_ranges: Vec<(String, f64, f64)>,
    pub t_span: f64,
}

impl Setup {
    /// Open every run (metadata and normalisation), check that they share one grid, build the
    /// model and the scheme.
    pub fn new(cfg: &TrainConfig) -> anyhow::Result<Self> {
        let files: Vec<_> = cfg.train_files().into_iter().chain(cfg.valid_files()).collect();
        let runs = crate::data::open_runs_from(&files, cfg.data.i_start)?;
        let n_train_runs = cfg.data.train.len();
        let (train_runs, valid_runs) = runs.split_at(n_train_runs);
        let mut cond_ranges = Vec::new();
        for name in &cfg.model.conditioners {
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            for r in train_runs {
                let v = *r.params().get(name).with_context(|| format!("{}: /params has no `{name}` (model.conditioners)", r.path().display()))?;
                lo = lo.min(v);
                hi = hi.max(v);
            }
            for r in valid_runs {
                anyhow::ensure!(r.params().contains_key(name), "{}: /params has no `{name}` (model.conditioners)", r.path().display());
            }
            cond_ranges.push((name.clone(), lo, hi));
        }
        let t_span = train_runs.iter().map(|r| r.t()[r.rows() - 1] - r.t()[0]).fold(0.0, f64::max);
        let grid = runs[0].grid().clone();
        let info = BuildInfo { grid: grid.clone(), cond_ranges: cond_ranges.iter().map(|c| (c.1, c.2)).collect(), t_span };
        let model = operator::build(&cfg.model, &info).context("model")?;
        let scheme = solver::build(&cfg.solver, &model.equation(), &grid).context("solver")?;
        Ok(Self { runs, n_train_runs, model, scheme, cond_ranges, t_span })
    }

    /// Normalised conditioner vector of a run: min–max to [−1, 1] over the training runs.
    pub fn cond_of(&self, run: &Run) -> Vec<f64> {
        let values: Vec<f64> = self.cond_ranges.iter().map(|(name, _, _)| run.params()[name]).collect();
        let ranges: Vec<(f64, f64)> = self.cond_ranges.iter().map(|c| (c.1, c.2)).collect();
        crate::operator::mlp::normalise_conditioners(&values, &ranges)
    }

    fn conditioned(&self) -> bool {
        !self.cond_ranges.is_empty()
    }

    /// Training and validation windows of stage `stage`, in the global order.
    pub fn windows(&self, cfg: &TrainConfig, stage: usize) -> anyhow::Result<(Vec<Sample>, Vec<Sample>)> {
        let unroll = cfg.train.stages[stage].unroll;
        let i_start = cfg.data.i_start;
        let (train_runs, valid_runs) = self.runs.split_at(self.n_train_runs);
        let key = |e: crate::data::DataError| anyhow::anyhow!("train.stages[{stage}].unroll: {e}");
        let all = windows::enumerate(train_runs.iter().map(|r| &r.file.meta), i_start, unroll).map_err(key)?;
        let (train, valid) = if !valid_runs.is_empty() {
            let valid = windows::enumerate(valid_runs.iter().map(|r| &r.file.meta), i_start, unroll)
                .map_err(key)?
                .into_iter()
                .map(|s| Sample { run: s.run + self.n_train_runs, ..s })
                .collect();
            (all, valid)
        } else {
            windows::split_validation(&all, cfg.data.valid_fraction, cfg.train.seed)?
        };
        anyhow::ensure!(!train.is_empty(), "train.stages[{stage}]: no training windows (every window went to validation)");
        Ok((train, valid))
    }

    /// Everything that can be checked before training starts, on every rank alike: every
    /// stage's windows against every run, and every snapshot's values (each rank reads a share
    /// of the runs, one snapshot at a time; all fail if one does). Collective.
    pub fn check(&self, cfg: &TrainConfig, comm: &dyn Comm) -> anyhow::Result<()> {
        for stage in 0..cfg.train.stages.len() {
            self.windows(cfg, stage)?;
        }
        let mine = (0..self.runs.len()).filter(|r| r % comm.size() == comm.rank());
        let mut result = Ok(());
        'runs: for r in mine {
            let run = &self.runs[r];
            for row in run.first_row..run.rows() {
                if let Err(e) = run.file.read_snapshot(row) {
                    result = Err(anyhow::Error::from(e));
                    break 'runs;
                }
            }
        }
        let failed = comm.any(result.is_err());
        result?;
        anyhow::ensure!(!failed, "another rank rejected its share of the data (see its message)");
        Ok(())
    }

    /// The problem of stage `stage`: its windows, this rank's shard and snapshots, buffers.
    pub fn stage(&self, cfg: &TrainConfig, stage: usize, comm: &dyn Comm) -> anyhow::Result<StageProblem<'_>> {
        let (train, valid) = self.windows(cfg, stage)?;
        let conditioned = self.conditioned();
        let runs = self
            .runs
            .iter()
            .enumerate()
            .map(|(r, run)| (if conditioned { r } else { 0 }, run.spacing(), (0..run.rows() - 1).map(|row| run.t_mid(row)).collect()))
            .collect();
        let cond = if conditioned { self.runs.iter().map(|r| self.cond_of(r)).collect() } else { vec![Vec::new()] };
        let inputs = StageInputs {
            model: self.model.as_ref(),
            scheme: self.scheme.as_ref(),
            loss: LossSpec { kind: cfg.train.loss, mode: cfg.train.loss_mode },
            checkpoints: cfg.solver.checkpoints,
            memory_budget_mb: cfg.solver.memory_budget_mb,
            cond,
            runs,
            train,
            valid,
            mini_batches: cfg.train.batch_size.is_some(),
        };
        let budget = cfg.data.cache_bytes();
        let problem = StageProblem::new(inputs, comm, |held| Ok(ShardData::load_runs_within(&self.runs, held, budget)?))?;
        tracing::info!(
            "stage {stage}: unroll {}, {} epochs, lr {:e}, {} training and {} validation windows, {} reduction blocks ({}), {:.1} MB of snapshots on this rank",
            cfg.train.stages[stage].unroll,
            cfg.train.stages[stage].epochs,
            cfg.stage_lr(stage),
            problem.train.len(),
            problem.valid.len(),
            problem.n_blocks(),
            if problem.theta_level() { "θ-level" } else { "field-level" },
            problem.data_bytes() as f64 / 1e6
        );
        match problem.shard_bytes() {
            (bytes, Some(budget)) => tracing::info!(
                "stage {stage}: snapshots streamed from the run files: this rank's shard is {:.1} MB, over data.cache_mb = {:.1} MB",
                bytes as f64 / 1e6,
                budget as f64 / 1e6
            ),
            (bytes, None) => tracing::info!(
                "stage {stage}: snapshots cached: this rank's shard is {:.1} MB{}",
                bytes as f64 / 1e6,
                budget.map_or(String::new(), |b| format!(", within data.cache_mb = {:.1} MB", b as f64 / 1e6))
            ),
        }
        if problem.n_blocks() < comm.size() {
            tracing::warn!("stage {stage}: {} reduction blocks for {} ranks: {} rank(s) idle", problem.n_blocks(), comm.size(), comm.size() - problem.n_blocks());
        }
        Ok(problem)
    }
}
