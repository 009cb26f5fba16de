//! The training loop: a curriculum of stages, each a [`problem::StageProblem`] built once by
//! [`setup::Setup`]; every epoch is one or more calls of its gradient step followed by Adam, and
//! [`report::Report`] logs, shows progress and checkpoints.
//!
//! Every rank runs this same code; it only sees [`crate::dist::Comm`]. The global sample order,
//! the validation split, mini-batch shuffles and the reduction blocks depend on the config and seed
//! only, and partial sums cross ranks through an exact accumulator, so θ is bitwise identical for
//! any rank and thread count.
//!
//! Parts: [`setup`] (runs, model, scheme, up-front checks), [`problem`] (the per-stage problem
//! and its one gradient step), [`loss`], [`adam`], [`state`] (checkpoints), [`report`] (metrics,
//! progress, checkpoint cadence).

pub mod adam;
pub mod bench;
pub mod loss;
pub mod problem;
pub mod report;
pub mod setup;
pub mod state;

use crate::config::TrainConfig;
use crate::dist::Comm;
use crate::operator::OperatorModel;
use anyhow::Context as _;
use problem::{Batch, StageProblem};
use report::{EpochMetrics, Next, Report};
use setup::Setup;
use state::{Best, TrainState};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Exit code of a run that stopped on a signal after writing `checkpoint.h5`.
pub use crate::dist::signals::EXIT_CHECKPOINTED;

/// Why training ended early.
#[derive(Debug, thiserror::Error)]
#[error("stopped by signal after writing {0}; continue with `colop train --resume`")]
pub struct Interrupted(pub PathBuf);

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

/// Train as configured, writing into `out` (rank 0). `resume` continues from a checkpoint;
/// `stop_after` ends this invocation after that many epochs as a signal would.
///
/// Nothing is written before every stage has been checked against every run and the first
/// stage's data are loaded, so a config or data error leaves no run directory behind.
pub fn train(cfg: &TrainConfig, out: &Path, resume: Option<&Path>, stop_after: Option<usize>, comm: &dyn Comm) -> anyhow::Result<Outcome> {
    let setup = Setup::new(cfg)?;
    setup.check(cfg, comm)?;
    let n_stages = cfg.train.stages.len();
    let mut st = match resume {
        Some(p) => resumed_state(cfg, p, setup.model.n_params())?,
        None => TrainState::new(setup.model.init_params(cfg.train.seed), n_stages, cfg.train.seed),
    };
    tracing::info!(
        "model {} ({} parameters), scheme {}, {} training run(s), {} validation run(s), {} track run(s), {} rank(s) × {} thread(s)",
        setup.model.kind(),
        setup.model.n_params(),
        setup.scheme.name(),
        setup.n_train_runs,
        setup.n_histogram_runs - setup.n_train_runs,
        setup.runs.len() - setup.n_histogram_runs,
        comm.size(),
        rayon::current_num_threads()
    );
    let mut problem = setup.stage(cfg, st.stage.min(n_stages - 1), comm)?;
    let mut report = Report::start(cfg, out, &st, resume.is_some(), comm)?;
    let t_start = Instant::now() - std::time::Duration::from_secs_f64(st.seconds);
    let mut theta_before = st.theta.clone();
    let mut epochs_run = 0usize;
    while st.stage < n_stages {
        let stage = st.stage;
        if epochs_run > 0 && st.epoch == 0 {
            problem = setup.stage(cfg, stage, comm)?;
        }
        let epochs = cfg.train.stages[stage].epochs;
        let t_epoch = Instant::now();
        theta_before.copy_from_slice(&st.theta);
        let (train_loss, step) = epoch(&mut problem, &mut st, cfg, comm)?;
        // Best model of the stage: θ at the start of the epoch, judged by its losses.
        let select = step.valid_loss.unwrap_or(train_loss);
        if st.best[stage].as_ref().is_none_or(|b| select < b.loss) {
            st.best[stage] = Some(Best { loss: select, epoch: st.epoch, theta: theta_before.clone() });
        }
        let m = EpochMetrics {
            stage,
            epoch: st.epoch,
            unroll: cfg.train.stages[stage].unroll.to_string(),
            train_loss,
            valid_loss: step.valid_loss,
            lr: cfg.stage_lr(stage),
            seconds: 0.0,
            epoch_s: 0.0,
            compute_s: step.compute_s,
            compute_s_max: 0.0,
            compute_s_min: 0.0,
            comm_s: step.comm_s,
            comm_s_max: 0.0,
            comm_s_min: 0.0,
            n_train: problem.train.len(),
            n_valid: problem.valid.len(),
            substeps: step.substeps,
            ranks: comm.size(),
        };
        st.advance(epochs);
        st.seconds = t_start.elapsed().as_secs_f64();
        epochs_run += 1;
        let m = EpochMetrics { seconds: st.seconds, epoch_s: t_epoch.elapsed().as_secs_f64(), ..m };
        let stop_here = stop_after.is_some_and(|n| epochs_run >= n && st.stage < n_stages);
        if report.end_epoch(m, epochs, &st, stop_here, comm)? == Next::Stop {
            return Err(Interrupted(report.checkpoint_path().to_path_buf()).into());
        }
    }
    report.finish()?;
    // Overall best: each stage's best judged by the last stage's selection loss.
    let mut best: Option<(f64, usize, Vec<f64>)> = None;
    for (i, b) in st.best.iter().enumerate() {
        let Some(b) = b else { continue };
        let loss = problem.selection_loss(&b.theta, comm)?;
        tracing::info!("stage {i} best (epoch {}): final-stage selection loss {loss:.6e}", b.epoch);
        if best.as_ref().is_none_or(|(l, _, _)| loss <= *l) {
            best = Some((loss, i, b.theta.clone()));
        }
    }
    drop(problem);
    let (best_loss, best_stage, theta) = best.context("no stage ran")?;
    tracing::info!("best model: stage {best_stage}, loss {best_loss:.6e}");
    Ok(Outcome { model: setup.model, theta, cond_ranges: setup.cond_ranges, t_span: setup.t_span, best_stage, best_loss })
}

/// One epoch of the current stage: its batches, a gradient step and an Adam update each.
/// Returns the training loss (mean over the stage's samples) and the first batch's step, which
/// carries the validation loss at the epoch's starting θ.
fn epoch(problem: &mut StageProblem, st: &mut TrainState, cfg: &TrainConfig, comm: &dyn Comm) -> anyhow::Result<(f64, problem::StepOut)> {
    let (stage, ep) = (st.stage, st.epoch);
    let lr = cfg.stage_lr(stage);
    let n = problem.train.len();
    let mut first: Option<problem::StepOut> = None;
    let mut loss_sum = 0.0;
    let mut add = |problem: &mut StageProblem, st: &mut TrainState, batch: Batch, n_batch: usize, valid: bool| -> anyhow::Result<()> {
        let out = problem.step(&st.theta, batch, valid, comm)?;
        anyhow::ensure!(out.loss.is_finite(), "stage {stage} epoch {ep}: training loss became {}; lower the learning rate or check the data", out.loss);
        loss_sum += out.loss * n_batch as f64;
        st.adam.update(&mut st.theta, problem.d_theta(), lr);
        match &mut first {
            Some(f) => {
                f.compute_s += out.compute_s;
                f.comm_s += out.comm_s;
            }
            None => first = Some(out),
        }
        Ok(())
    };
    match cfg.train.batch_size {
        None => add(problem, st, Batch::Full, n, true)?,
        Some(size) => {
            for (i, b) in crate::data::windows::batches(n, size, cfg.train.seed, stage, ep).iter().enumerate() {
                add(problem, st, Batch::Indices(b), b.len(), i == 0)?;
            }
        }
    }
    Ok((loss_sum / n as f64, first.expect("at least one batch")))
}

/// The state in `ckpt`, checked against this config.
fn resumed_state(cfg: &TrainConfig, ckpt: &Path, n_params: usize) -> anyhow::Result<TrainState> {
    let st = TrainState::load(ckpt, n_params, cfg.train.stages.len())?;
    anyhow::ensure!(st.seed == cfg.train.seed, "{}: checkpoint was written with seed {} but the config has {}", ckpt.display(), st.seed, cfg.train.seed);
    let stages = &cfg.train.stages;
    if st.stage < stages.len() {
        anyhow::ensure!(
            st.epoch < stages[st.stage].epochs,
            "{}: checkpoint is at stage {} epoch {}, but train.stages[{}].epochs is {}",
            ckpt.display(),
            st.stage,
            st.epoch,
            st.stage,
            stages[st.stage].epochs
        );
    }
    let done: usize = stages[..st.stage.min(stages.len())].iter().map(|s| s.epochs).sum::<usize>() + st.epoch;
    let total: usize = stages.iter().map(|s| s.epochs).sum();
    tracing::info!("resuming at stage {} epoch {} ({done} of {total} epochs done) from {}", st.stage, st.epoch, ckpt.display());
    Ok(st)
}
