//! What a training needs before its first epoch: the runs (opened and checked together), the
//! model and scheme, the conditioner ranges, and a check of every stage against every run and
//! of every snapshot's values — all before any output is written. Each stage's
//! [`StageProblem`] is built from here.

use super::loss::Loss;
use super::problem::{LossSpec, RunInput, StageInputs, StageProblem};
use crate::config::{TrainConfig, TracksSpec, Unroll};
use crate::data::transitions::{self, TransitionData, TransitionIndex, TransitionSpec};
use crate::data::windows::{self, Sample};
use crate::data::{Run, ShardData};
use crate::dist::Comm;
use crate::operator::{self, BuildInfo, OperatorModel};
use crate::solver::{self, Scheme};
use anyhow::Context as _;

/// Runs, model and scheme of a config, shared by training, selection and benchmarks.
pub struct Setup {
    /// Training runs, then validation runs, then track runs (sample `run` indices refer to
    /// this list).
    pub runs: Vec<Run>,
    pub n_train_runs: usize,
    /// Histogram runs (training and validation): the track runs follow them.
    pub n_histogram_runs: usize,
    /// The transition windows of each track run.
    pub tracks: Vec<TrackRun>,
    pub model: Box<dyn OperatorModel>,
    pub scheme: Box<dyn Scheme>,
    /// Conditioner name, min and max over the training runs.
    pub cond_ranges: Vec<(String, f64, f64)>,
    pub t_span: f64,
}

/// One run of a `data.tracks` source and its transition windows.
#[derive(Clone, Debug)]
pub struct TrackRun {
    /// Index into [`Setup::runs`].
    pub run: usize,
    /// Index into `data.tracks`.
    pub source: usize,
    pub index: TransitionIndex,
}

/// The start rows of `spec` on `run`: snapshot numbers `first, first + every, …` up to `last`,
/// at most the last row that leaves room for the delay and the lags.
fn start_rows(spec: &TracksSpec, run: &Run) -> Vec<usize> {
    let meta = &run.file.meta;
    let n = meta.n_snapshots();
    let first = spec.starts.first.map_or(run.first_row, |f| meta.first_index(f).unwrap_or(n));
    let room = n.saturating_sub(1 + spec.delay + spec.lags);
    let last = spec.starts.last.map_or(room, |l| (0..n).rev().find(|&k| meta.snapshot_number(k) <= l as i64).unwrap_or(0));
    let every = spec.starts.every.unwrap_or(1).max(1);
    if first > last {
        return Vec::new();
    }
    (first..=last).step_by(every).collect()
}

impl Setup {
    /// Open every run (metadata and normalisation), check that they share one grid, index the
    /// track sources' transition windows, build the model and the scheme.
    pub fn new(cfg: &TrainConfig) -> anyhow::Result<Self> {
        let files: Vec<_> = cfg.train_files().into_iter().chain(cfg.valid_files()).chain(cfg.track_files()).collect();
        let runs = crate::data::open_runs_from(&files, cfg.data.i_start)?;
        let n_train_runs = cfg.data.train.len();
        let n_histogram_runs = n_train_runs + cfg.data.valid.len();
        let (train_runs, valid_runs) = runs[..n_histogram_runs].split_at(n_train_runs);
        let track_runs = &runs[n_histogram_runs..];
        let mut cond_ranges = Vec::new();
        for name in &cfg.model.conditioners {
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            // Track runs are training data too: the ranges span them.
            for r in train_runs.iter().chain(track_runs) {
                let v = *r.params().get(name).with_context(|| format!("{}: /params has no `{name}` (model.conditioners)", r.path().display()))?;
                lo = lo.min(v);
                hi = hi.max(v);
            }
            for r in valid_runs {
                anyhow::ensure!(r.params().contains_key(name), "{}: /params has no `{name}` (model.conditioners)", r.path().display());
            }
            cond_ranges.push((name.clone(), lo, hi));
        }
        let t_span = train_runs.iter().chain(track_runs).map(|r| r.t()[r.rows() - 1] - r.t()[0]).fold(0.0, f64::max);
        let grid = runs[0].grid().clone();
        let info = BuildInfo { grid: grid.clone(), cond_ranges: cond_ranges.iter().map(|c| (c.1, c.2)).collect(), t_span };
        let model = operator::build(&cfg.model, &info).context("model")?;
        let scheme = solver::build(&cfg.solver, &model.equation(), &grid).context("solver")?;
        let mut tracks = Vec::new();
        let mut r = n_histogram_runs;
        for (source, spec) in cfg.data.tracks.iter().enumerate() {
            for _ in &spec.runs {
                let run = &runs[r];
                let path = run.path().display().to_string();
                let key = format!("data.tracks[{source}]");
                anyhow::ensure!(run.file.meta.has_tracks, "{path}: no /tracks in this run file ({key}.runs)");
                if spec.pool_starts {
                    anyhow::ensure!(
                        model.n_time_nodes() == 1 && run.spacing().is_uniform(),
                        "{path}: {key}.pool_starts: pooling start snapshots needs a static model on evenly spaced snapshots; set pool_starts: false"
                    );
                }
                let tspec = TransitionSpec {
                    starts: start_rows(spec, run),
                    delay: spec.delay,
                    lags: spec.lags,
                    min_particles: spec.min_particles,
                    start_bin: spec.start_bin,
                    pool_starts: spec.pool_starts,
                };
                let data = run.file.read_tracks()?.expect("checked above");
                let index = transitions::index(&path, data.view(), &grid, &tspec).with_context(|| key.clone())?;
                anyhow::ensure!(!index.windows.is_empty(), "{path}: {key}: no start bin selects min_particles = {} particles", spec.min_particles);
                tracing::info!(
                    "{key}: {}: {} transition windows from {} starts ({} particle selections used; {} in {} bins below min_particles = {} skipped; {} off the grid)",
                    run.file.meta.name,
                    index.windows.len(),
                    tspec.starts.len(),
                    index.used,
                    index.skipped,
                    index.skipped_bins,
                    spec.min_particles,
                    index.off_grid
                );
                tracks.push(TrackRun { run: r, source, index });
                r += 1;
            }
        }
        Ok(Self { runs, n_train_runs, n_histogram_runs, tracks, model, scheme, cond_ranges, t_span })
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
        let (train_runs, valid_runs) = self.runs[..self.n_histogram_runs].split_at(self.n_train_runs);
        let key = |e: crate::data::DataError| anyhow::anyhow!("train.stages[{stage}].unroll: {e}");
        let mut all = windows::enumerate(train_runs.iter().map(|r| &r.file.meta), i_start, unroll).map_err(key)?;
        for t in &self.tracks {
            let k = match unroll {
                Unroll::Intervals(k) => k.min(t.index.spec.lags),
                Unroll::All => t.index.spec.lags,
            };
            all.extend(t.index.samples(t.run, k));
        }
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
        // Histogram runs: every snapshot; track runs were read whole (and checked) by `new`.
        let mine = (0..self.n_histogram_runs).filter(|r| r % comm.size() == comm.rank());
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
        let weights = self.source_weights(cfg, &train);
        let runs = self
            .runs
            .iter()
            .enumerate()
            .map(|(r, run)| {
                let source = self.tracks.iter().find(|t| t.run == r).map(|t| &cfg.data.tracks[t.source]);
                RunInput {
                    ctx: if conditioned { r } else { 0 },
                    spacing: run.spacing(),
                    t_mid: (0..run.rows() - 1).map(|row| run.t_mid(row)).collect(),
                    loss: source.map_or(Loss::from(cfg.train.loss), |t| Loss { kind: t.loss, floor: t.floor }),
                    weight: weights[r],
                }
            })
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
        let problem = StageProblem::new(inputs, comm, |held| self.load(held, budget, cfg))?;
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
        if !self.tracks.is_empty() {
            tracing::info!("stage {stage}: {} transition windows on this rank, {:.1} MB", problem.transition_windows(), problem.transition_bytes() as f64 / 1e6);
        }
        if problem.n_blocks() < comm.size() {
            tracing::warn!("stage {stage}: {} reduction blocks for {} ranks: {} rank(s) idle", problem.n_blocks(), comm.size(), comm.size() - problem.n_blocks());
        }
        Ok(problem)
    }

    /// Per run, the factor on its samples' loss weights: each source (the histogram runs, each
    /// `data.tracks` entry) enters with its weight times the mean over its training samples,
    /// i.e. w_source · N / N_source for N training samples in all. A training with one source
    /// of weight 1 gets exactly 1.
    fn source_weights(&self, cfg: &TrainConfig, train: &[Sample]) -> Vec<f64> {
        let source_of = |run: usize| -> Option<usize> { self.tracks.iter().find(|t| t.run == run).map(|t| t.source) };
        let mut counts = vec![0usize; cfg.data.tracks.len() + 1];
        for s in train {
            counts[source_of(s.run).map_or(0, |i| i + 1)] += 1;
        }
        // With one source N / N_source is exactly 1, so a lone source of weight 1 weighs 1.
        (0..self.runs.len())
            .map(|r| {
                let (src, w) = match source_of(r) {
                    Some(i) => (i + 1, cfg.data.tracks[i].weight),
                    None => (0, cfg.data.histogram_weight),
                };
                if counts[src] == 0 {
                    w
                } else {
                    w * train.len() as f64 / counts[src] as f64
                }
            })
            .collect()
    }

    /// The data of `held` samples: the histogram windows' snapshots (held or streamed within
    /// `budget`) and the transition windows' states, binned from their runs' tracks.
    fn load(&self, held: &[Sample], budget: Option<usize>, cfg: &TrainConfig) -> anyhow::Result<(ShardData, TransitionData)> {
        let histogram: Vec<Sample> = held.iter().copied().filter(|s| !s.is_transition()).collect();
        let snapshots = ShardData::load_runs_within(&self.runs, &histogram, budget)?;
        let mut states = TransitionData::default();
        for t in &self.tracks {
            let mine: Vec<Sample> = held.iter().copied().filter(|s| s.is_transition() && s.run == t.run).collect();
            if mine.is_empty() {
                continue;
            }
            let run = &self.runs[t.run];
            let tracks = run.file.read_tracks()?.expect("track runs have /tracks");
            // Likelihood windows count each particle once: weight ∝ selections (mean 1 over the
            // run's windows); histogram losses weigh windows equally.
            let spec = &cfg.data.tracks[t.source];
            let mean = t.index.used as f64 / t.index.windows.len() as f64;
            let weight = |channel: u32| if spec.loss == crate::config::LossKind::Likelihood { t.index.window(channel).count as f64 / mean } else { 1.0 };
            states.add_run(&t.index, tracks.view(), run.grid(), &mine, weight);
        }
        Ok((snapshots, states))
    }
}
