//! The training loop: windows → rollout + adjoint → exact gradient reduction → Adam, with a
//! curriculum of stages, validation, best-model tracking and checkpoint/resume.
//!
//! Every rank runs this same code; it only sees [`crate::dist::Comm`]. The global sample order,
//! the validation split, mini-batch shuffles and the reduction blocks depend on the config and seed
//! only, and partial sums cross ranks through an exact accumulator, so θ is bitwise identical for
//! any rank and thread count.

pub mod adam;
pub mod dataset;
pub mod engine;
pub mod loss;
pub mod state;

use crate::config::TrainConfig;
use crate::dist::{Comm, ExactSum};
use crate::operator::{self, BuildInfo, OperatorModel};
use crate::solver::{self, Scheme};
use adam::Adam;
use anyhow::Context as _;
use crate::data::windows::{self, shard, snapshot_ranges};
use dataset::{block_size, RunInfo};
use engine::{Problem, RunSlice, Sample};
use state::{Best, TrainState};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Exit code of a run that stopped on a signal after writing `checkpoint.h5`.
pub use crate::dist::signals::EXIT_CHECKPOINTED;

/// Why training ended early.
#[derive(Debug, thiserror::Error)]
#[error("stopped by signal after writing {0}; continue with `colop train --resume`")]
pub struct Interrupted(pub PathBuf);

/// One line of `metrics.jsonl`.
#[derive(Debug, serde::Serialize)]
pub struct EpochMetrics {
    pub stage: usize,
    pub epoch: usize,
    pub unroll: String,
    pub train_loss: f64,
    pub valid_loss: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
    pub epoch_s: f64,
    pub compute_s: f64,
    pub compute_s_max: f64,
    pub compute_s_min: f64,
    /// Seconds in collectives (this rank): the allreduces plus waiting for slower ranks.
    pub comm_s: f64,
    pub comm_s_max: f64,
    /// Least `comm_s` over ranks: the rank that arrives last waits for nobody, so this is the
    /// cost of the collectives themselves; `comm_s − comm_s_min` is waiting (imbalance).
    pub comm_s_min: f64,
    pub n_train: usize,
    pub n_valid: usize,
    pub substeps: usize,
    pub ranks: usize,
}

/// What a finished training produced.
pub struct Outcome {
    pub model: Box<dyn OperatorModel>,
    pub theta: Vec<f64>,
    pub cond_ranges: Vec<(String, f64, f64)>,
    pub t_span: f64,
    pub best_stage: usize,
    pub best_loss: f64,
}

impl Outcome {
    /// The best model as written to `model.h5`: fields at the reference context (conditioners
    /// at the middle of their training range, t = 0), raw θ, exports and provenance.
    pub fn saved_model(&self, cfg: &TrainConfig) -> crate::model_file::SavedModel {
        let model = self.model.as_ref();
        let cond = vec![0.0; self.cond_ranges.len()];
        crate::model_file::SavedModel {
            spec: cfg.model.clone(),
            solver: cfg.solver.clone(),
            grid: model.grid().clone(),
            theta: self.theta.clone(),
            fields: model.fields_at(&self.theta, &cond, 0.0),
            cond_ranges: self.cond_ranges.clone(),
            t_span: self.t_span,
            exports: model.exports(&self.theta, &cond),
            notes: vec![
                ("source".into(), "colop train".into()),
                ("best_stage".into(), self.best_stage.to_string()),
                ("best_loss".into(), format!("{:e}", self.best_loss)),
                ("version".into(), env!("CARGO_PKG_VERSION").into()),
            ],
        }
    }
}

/// Runs, model and scheme of a config, shared by training and its benchmarks.
pub struct Setup {
    pub train_runs: Vec<RunInfo>,
    pub valid_runs: Vec<RunInfo>,
    pub model: Box<dyn OperatorModel>,
    pub scheme: Box<dyn Scheme>,
    pub cond_ranges: Vec<(String, f64, f64)>,
    pub t_span: f64,
}

impl Setup {
    /// Open every run (metadata only), check grids, build model and scheme.
    pub fn new(cfg: &TrainConfig) -> anyhow::Result<Self> {
        let i_start = cfg.data.i_start;
        let open = |p: &PathBuf| RunInfo::open(p, i_start);
        let train_runs = cfg.train_files().iter().map(open).collect::<anyhow::Result<Vec<_>>>()?;
        let valid_runs = cfg.valid_files().iter().map(open).collect::<anyhow::Result<Vec<_>>>()?;
        let grid = train_runs[0].grid().clone();
        for r in train_runs.iter().chain(&valid_runs) {
            anyhow::ensure!(
                r.grid().compatible(&grid),
                "{}: velocity grid {}×{} over {:?} differs from {} ({}×{} over {:?})",
                r.path().display(),
                r.grid().nx,
                r.grid().ny,
                r.grid().v_range,
                train_runs[0].path().display(),
                grid.nx,
                grid.ny,
                grid.v_range
            );
        }
        let mut cond_ranges = Vec::new();
        for name in &cfg.model.conditioners {
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            for r in &train_runs {
                let v = *r.params().get(name).with_context(|| format!("{}: /params has no `{name}` (model.conditioners)", r.path().display()))?;
                lo = lo.min(v);
                hi = hi.max(v);
            }
            for r in &valid_runs {
                anyhow::ensure!(r.params().contains_key(name), "{}: /params has no `{name}` (model.conditioners)", r.path().display());
            }
            cond_ranges.push((name.clone(), lo, hi));
        }
        let t_span = train_runs.iter().map(|r| r.t()[r.rows() - 1] - r.t()[0]).fold(0.0, f64::max);
        let info = BuildInfo { grid: grid.clone(), cond_ranges: cond_ranges.iter().map(|c| (c.1, c.2)).collect(), t_span };
        let model = operator::build(&cfg.model, &info).context("model")?;
        let scheme = solver::build(&cfg.solver, &model.equation(), &grid).context("solver")?;
        Ok(Self { train_runs, valid_runs, model, scheme, cond_ranges, t_span })
    }

    /// Normalised conditioner vector of a run: min–max to [−1, 1] over the training runs.
    pub fn cond_of(&self, run: &RunInfo) -> Vec<f64> {
        let values: Vec<f64> = self.cond_ranges.iter().map(|(name, _, _)| run.params()[name]).collect();
        let ranges: Vec<(f64, f64)> = self.cond_ranges.iter().map(|c| (c.1, c.2)).collect();
        crate::operator::mlp::normalise_conditioners(&values, &ranges)
    }

    /// Exact-accumulator length for `n_ctx` conditioning contexts.
    fn acc_len(&self, n_ctx: usize) -> usize {
        engine::accumulator_len(self.model.as_ref(), n_ctx)
    }

    /// All runs (train then valid) with their contexts.
    fn all_runs(&self) -> Vec<&RunInfo> {
        self.train_runs.iter().chain(&self.valid_runs).collect()
    }
}

/// Samples of one stage and the rows this rank holds.
struct StageData {
    train: Vec<Sample>,
    valid: Vec<Sample>,
    slices: Vec<Option<RunSlice>>,
    run_meta: Vec<(usize, f64)>,
    cond: Vec<Vec<f64>>,
}

/// Cost of a sample for sharding: its snapshot intervals (solver steps are proportional).
fn cost(s: &Sample) -> u64 {
    s.intervals as u64
}

fn load_stage(cfg: &TrainConfig, setup: &Setup, stage: usize, comm: &dyn Comm) -> anyhow::Result<StageData> {
    let unroll = cfg.train.stages[stage].unroll;
    let runs = setup.all_runs();
    let n_train_runs = setup.train_runs.len();
    let i_start = cfg.data.i_start;
    let all = windows::enumerate(setup.train_runs.iter().map(|r| &r.file.meta), i_start, unroll)?;
    let (train, valid) = if !setup.valid_runs.is_empty() {
        let valid = windows::enumerate(setup.valid_runs.iter().map(|r| &r.file.meta), i_start, unroll)?
            .into_iter()
            .map(|s| Sample { run: s.run + n_train_runs, ..s })
            .collect();
        (all, valid)
    } else {
        windows::split_validation(&all, cfg.data.valid_fraction, cfg.train.seed)?
    };
    let (rank, size) = (comm.rank(), comm.size());
    let cond_len = if setup.cond_ranges.is_empty() { 1 } else { runs.len() };
    let mine_train: Vec<Sample> = if cfg.train.batch_size.is_some() {
        train.clone()
    } else {
        train[shard(&train, cost, size, block_size(train.len(), setup.acc_len(cond_len)))[rank].clone()].to_vec()
    };
    let mine_valid = if valid.is_empty() { Vec::new() } else { valid[shard(&valid, cost, size, 1)[rank].clone()].to_vec() };
    let mut held: Vec<Sample> = mine_train;
    held.extend_from_slice(&mine_valid);
    let rows = snapshot_ranges(&held);
    let conditioned = !setup.cond_ranges.is_empty();
    let ctx_of = |r: usize| if conditioned { r } else { 0 };
    let mut slices = Vec::with_capacity(runs.len());
    for (r, run) in runs.iter().enumerate() {
        slices.push(match rows.get(&r) {
            Some(range) => Some(run.read_slice(range.clone(), ctx_of(r))?),
            None => None,
        });
    }
    tracing::info!("stage {stage}: this rank holds {} training and {} validation windows", held.len() - mine_valid.len(), mine_valid.len());
    let run_meta = runs.iter().enumerate().map(|(r, ri)| (ctx_of(r), ri.dt())).collect();
    let cond = if conditioned { runs.iter().map(|r| setup.cond_of(r)).collect() } else { vec![Vec::new()] };
    Ok(StageData { train, valid, slices, run_meta, cond })
}

/// `metrics.jsonl`, appended by rank 0 through a buffer flushed every quarter second and before
/// any checkpoint or exit, so writing it costs the epoch loop nothing measurable.
struct MetricsLog {
    path: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    last_flush: Instant,
}

impl MetricsLog {
    fn new(path: PathBuf, enabled: bool) -> anyhow::Result<Self> {
        let out = if enabled {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| path.display().to_string())?;
            Some(std::io::BufWriter::new(f))
        } else {
            None
        };
        Ok(Self { path, out, last_flush: Instant::now() })
    }
    fn push(&mut self, m: &EpochMetrics) -> anyhow::Result<()> {
        if let Some(out) = &mut self.out {
            writeln!(out, "{}", serde_json::to_string(m)?).with_context(|| self.path.display().to_string())?;
            if self.last_flush.elapsed().as_secs_f64() > 0.25 {
                self.flush()?;
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(out) = &mut self.out {
            out.flush().with_context(|| self.path.display().to_string())?;
        }
        self.last_flush = Instant::now();
        Ok(())
    }
}

/// Keep only the metrics lines before (stage, epoch) — used when resuming.
fn truncate_metrics(path: &Path, stage: usize, epoch: usize) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| Some((v.get("stage")?.as_u64()? as usize, v.get("epoch")?.as_u64()? as usize)))
                .is_some_and(|se| se < (stage, epoch))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    crate::io::write_bytes_atomic(path, kept.as_bytes())?;
    Ok(())
}

/// Progress display: a bar on a terminal, log lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    log_every: usize,
}

impl Progress {
    fn new(show: bool, total: u64, log_every: usize) -> Self {
        use std::io::IsTerminal;
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} epochs  {msg}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            b
        });
        Self { bar, log_every: log_every.max(1) }
    }
    fn epoch(&self, m: &EpochMetrics, epochs: usize) {
        let msg = match m.valid_loss {
            Some(v) => format!("stage {} unroll {}: train {:.4e} valid {:.4e}", m.stage, m.unroll, m.train_loss, v),
            None => format!("stage {} unroll {}: train {:.4e}", m.stage, m.unroll, m.train_loss),
        };
        match &self.bar {
            Some(b) => {
                b.inc(1);
                b.set_message(msg);
            }
            None => {
                if (m.epoch + 1) % self.log_every == 0 || m.epoch + 1 == epochs || m.epoch == 0 {
                    tracing::info!("epoch {}/{} {msg} ({:.3} s/epoch)", m.epoch + 1, epochs, m.epoch_s);
                }
            }
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Train as configured, writing into `out` (rank 0). `resume` continues from a checkpoint;
/// `stop_after` ends this invocation after that many epochs as a signal would.
pub fn train(cfg: &TrainConfig, out: &Path, resume: Option<&Path>, stop_after: Option<usize>, comm: &dyn Comm) -> anyhow::Result<Outcome> {
    let setup = Setup::new(cfg)?;
    let rank0 = comm.rank() == 0;
    let n_stages = cfg.train.stages.len();
    let n_params = setup.model.n_params();
    let mut st = match resume {
        Some(p) => TrainState::load(p, n_params, n_stages)?,
        None => {
            let theta = setup.model.init_params(cfg.train.seed);
            TrainState { adam: Adam::new(theta.len()), theta, stage: 0, epoch: 0, best: vec![None; n_stages], seconds: 0.0, seed: cfg.train.seed }
        }
    };
    anyhow::ensure!(st.seed == cfg.train.seed, "checkpoint was written with seed {} but the config has {}", st.seed, cfg.train.seed);
    let metrics_path = out.join("metrics.jsonl");
    let ckpt_path = out.join("checkpoint.h5");
    if rank0 {
        std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
        let yaml = serde_yaml::to_string(cfg)?;
        crate::io::write_bytes_atomic(&out.join("config.yaml"), yaml.as_bytes())?;
        if resume.is_some() {
            truncate_metrics(&metrics_path, st.stage, st.epoch)?;
        } else {
            let _ = std::fs::remove_file(&metrics_path);
        }
    }
    tracing::info!(
        "model {} ({} parameters), scheme {}, {} training run(s), {} validation run(s), {} rank(s) × {} thread(s)",
        setup.model.kind(),
        n_params,
        setup.scheme.name(),
        setup.train_runs.len(),
        setup.valid_runs.len(),
        comm.size(),
        rayon::current_num_threads()
    );
    let total_epochs: usize = cfg.train.stages.iter().map(|s| s.epochs).sum();
    let done_epochs: usize = cfg.train.stages[..st.stage.min(n_stages)].iter().map(|s| s.epochs).sum::<usize>() + st.epoch;
    let progress = Progress::new(rank0, total_epochs as u64, cfg.train.log_every);
    if let Some(b) = &progress.bar {
        b.set_position(done_epochs as u64);
    }
    let t_start = Instant::now() - std::time::Duration::from_secs_f64(st.seconds);
    let mut metrics = MetricsLog::new(metrics_path, rank0)?;
    let mut last_data: Option<StageData> = None;
    let mut epochs_run = 0usize;
    while st.stage < n_stages {
        let stage = st.stage;
        let spec = &cfg.train.stages[stage];
        let lr = cfg.stage_lr(stage);
        let data = load_stage(cfg, &setup, stage, comm)?;
        anyhow::ensure!(!data.train.is_empty(), "stage {stage}: no training windows");
        tracing::info!(
            "stage {stage}: unroll {}, {} epochs, lr {lr:e}, {} training and {} validation windows",
            spec.unroll.to_string(),
            spec.epochs,
            data.train.len(),
            data.valid.len()
        );
        while st.epoch < spec.epochs {
            let epoch = st.epoch;
            let t_epoch = Instant::now();
            let mut compute = 0.0;
            let mut comm_s = 0.0;
            let mut train_loss_sum = 0.0;
            let batches = windows::batches(data.train.len(), cfg.train.batch_size.unwrap_or(0), cfg.train.seed, stage, epoch);
            let mut valid_loss = None;
            let mut substeps = 1;
            let theta_before = st.theta.clone();
            for (bi, batch) in batches.iter().enumerate() {
                let t0 = Instant::now();
                let c = setup_problem_coeffs(&setup, &data, cfg, &st.theta);
                let (problem, coeffs) = (&c.0, &c.1);
                substeps = coeffs.substeps.iter().copied().max().unwrap_or(1);
                let batch_samples: Vec<Sample> = batch.iter().map(|&i| data.train[i]).collect();
                let n = batch_samples.len();
                let block = block_size(n, problem.acc_len());
                let range = if cfg.train.batch_size.is_some() {
                    shard(&batch_samples, cost, comm.size(), block)[comm.rank()].clone()
                } else {
                    // Full batch: this rank holds exactly its shard.
                    shard(&data.train, cost, comm.size(), block)[comm.rank()].clone()
                };
                let mut acc = ExactSum::new(problem.acc_len());
                problem.accumulate_gradient(coeffs, &data.slices, &batch_samples[range.clone()], range.start, n, block, &mut acc)?;
                let mut vacc = ExactSum::new(1);
                let do_valid = bi == 0 && !data.valid.is_empty();
                if do_valid {
                    let vr = shard(&data.valid, cost, comm.size(), 1)[comm.rank()].clone();
                    problem.accumulate_loss(coeffs, &data.slices, &data.valid[vr], data.valid.len(), &mut vacc);
                }
                compute += t0.elapsed().as_secs_f64();
                let t1 = Instant::now();
                comm.allreduce_exact(&mut acc);
                if do_valid {
                    comm.allreduce_exact(&mut vacc);
                    valid_loss = Some(vacc.to_f64()[0]);
                }
                comm_s += t1.elapsed().as_secs_f64();
                let t2 = Instant::now();
                let g = acc.to_f64();
                let mut d_theta = vec![0.0; n_params];
                let penalty = problem.theta_gradient(&st.theta, &g[..g.len() - 1], &mut d_theta);
                let loss = g[g.len() - 1] + penalty;
                anyhow::ensure!(loss.is_finite(), "stage {stage} epoch {epoch}: training loss became {loss}; lower the learning rate or check the data");
                train_loss_sum += loss * n as f64;
                st.adam.update(&mut st.theta, &d_theta, lr);
                compute += t2.elapsed().as_secs_f64();
            }
            let train_loss = train_loss_sum / data.train.len() as f64;
            // Best model of the stage: θ at the start of the epoch, judged by its losses.
            let select = valid_loss.unwrap_or(train_loss);
            if st.best[stage].as_ref().is_none_or(|b| select < b.loss) {
                st.best[stage] = Some(Best { loss: select, epoch, theta: theta_before });
            }
            let mut mx = [compute, comm_s, f64::from(u8::from(crate::dist::signals::stop_requested()))];
            let mut mn = [compute, comm_s];
            comm.allreduce_max_f64(&mut mx);
            comm.allreduce_min_f64(&mut mn);
            st.epoch += 1;
            if st.epoch == spec.epochs {
                st.stage += 1;
                st.epoch = 0;
            }
            st.seconds = t_start.elapsed().as_secs_f64();
            let m = EpochMetrics {
                stage,
                epoch,
                unroll: spec.unroll.to_string(),
                train_loss,
                valid_loss,
                lr,
                seconds: st.seconds,
                epoch_s: t_epoch.elapsed().as_secs_f64(),
                compute_s: compute,
                compute_s_max: mx[0],
                compute_s_min: mn[0],
                comm_s,
                comm_s_max: mx[1],
                comm_s_min: mn[1],
                n_train: data.train.len(),
                n_valid: data.valid.len(),
                substeps,
                ranks: comm.size(),
            };
            metrics.push(&m)?;
            progress.epoch(&m, spec.epochs);
            epochs_run += 1;
            let stop = mx[2] > 0.0 || stop_after.is_some_and(|n| epochs_run >= n && st.stage < n_stages);
            let periodic = cfg.train.checkpoint_every > 0 && (epoch + 1) % cfg.train.checkpoint_every == 0;
            if stop || periodic {
                metrics.flush()?;
                if rank0 {
                    st.save(&ckpt_path)?;
                }
            }
            if stop {
                comm.barrier();
                progress.finish();
                return Err(Interrupted(ckpt_path).into());
            }
            if st.stage != stage {
                break;
            }
        }
        last_data = Some(data);
    }
    metrics.flush()?;
    progress.finish();
    // Overall best: each stage's best judged by the last stage's selection loss.
    let data = match last_data {
        Some(d) => d,
        None => load_stage(cfg, &setup, n_stages - 1, comm)?,
    };
    let mut best: Option<(f64, usize, Vec<f64>)> = None;
    for (i, b) in st.best.iter().enumerate() {
        let Some(b) = b else { continue };
        let (problem, coeffs) = setup_problem_coeffs(&setup, &data, cfg, &b.theta);
        let (samples, n) = if data.valid.is_empty() { (&data.train, data.train.len()) } else { (&data.valid, data.valid.len()) };
        let blk = if data.valid.is_empty() { block_size(n, problem.acc_len()) } else { 1 };
        let r = shard(samples, cost, comm.size(), blk)[comm.rank()].clone();
        let mut acc = ExactSum::new(1);
        problem.accumulate_loss(&coeffs, &data.slices, &samples[r], n, &mut acc);
        comm.allreduce_exact(&mut acc);
        let loss = acc.to_f64()[0];
        tracing::info!("stage {i} best (epoch {}): final-stage selection loss {loss:.6e}", b.epoch);
        if best.as_ref().is_none_or(|(l, _, _)| loss <= *l) {
            best = Some((loss, i, b.theta.clone()));
        }
    }
    let (best_loss, best_stage, theta) = best.context("no stage ran")?;
    tracing::info!("best model: stage {best_stage}, loss {best_loss:.6e}");
    Ok(Outcome { model: setup.model, theta, cond_ranges: setup.cond_ranges, t_span: setup.t_span, best_stage, best_loss })
}

fn setup_problem_coeffs<'a>(
    setup: &'a Setup,
    data: &StageData,
    cfg: &TrainConfig,
    theta: &[f64],
) -> (Problem<'a>, engine::EpochCoeffs) {
    let problem = Problem {
        model: setup.model.as_ref(),
        scheme: setup.scheme.as_ref(),
        loss: cfg.train.loss,
        mode: cfg.train.loss_mode,
        cond: data.cond.clone(),
        checkpoints: cfg.solver.checkpoints,
        memory_budget_mb: cfg.solver.memory_budget_mb,
    };
    let coeffs = problem.coefficients(theta, &data.run_meta, &data.slices);
    (problem, coeffs)
}
