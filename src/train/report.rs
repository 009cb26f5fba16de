//! Reporting of a training: the `metrics.jsonl` log, the progress display (a bar on a terminal,
//! periodic log lines otherwise) and the checkpoint cadence, including the collective agreement
//! on stop requests (signals) at the end of each epoch.

use super::state::TrainState;
use crate::dist::Comm;
use anyhow::Context as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
                    // Epochs count from 0 within a stage, as in metrics.jsonl and checkpoints.
                    tracing::info!("epoch {}/{} {msg} ({:.3} s/epoch)", m.epoch, epochs - 1, m.epoch_s);
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


/// What happens at the end of an epoch: metrics, progress, periodic and stop-request
/// checkpoints. Rank 0 writes; every rank takes part in the collectives.
pub struct Report {
    metrics: MetricsLog,
    progress: Progress,
    ckpt_path: PathBuf,
    checkpoint_every: usize,
    rank0: bool,
}

/// Whether training goes on after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// A checkpoint was written on a stop request (signal or `--stop-after`).
    Stop,
}

impl Report {
    /// Create the run directory (rank 0) with the resolved `config.yaml`, and the metrics log:
    /// continued up to the checkpoint's position when resuming, new otherwise.
    pub fn start(cfg: &crate::config::TrainConfig, out: &Path, st: &TrainState, resumed: bool, comm: &dyn Comm) -> anyhow::Result<Self> {
        let rank0 = comm.rank() == 0;
        let metrics_path = out.join("metrics.jsonl");
        if rank0 {
            std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
            let yaml = serde_yaml::to_string(cfg)?;
            crate::io::write_bytes_atomic(&out.join("config.yaml"), yaml.as_bytes())?;
            if resumed {
                truncate_metrics(&metrics_path, st.stage, st.epoch)?;
            } else {
                // A new run (`--restart`): nothing of an earlier one may be mistaken for its own.
                for old in [metrics_path.clone(), out.join("checkpoint.h5"), out.join("model.h5")] {
                    let _ = std::fs::remove_file(old);
                }
            }
        }
        let stages = &cfg.train.stages;
        let total: usize = stages.iter().map(|s| s.epochs).sum();
        let done: usize = stages[..st.stage.min(stages.len())].iter().map(|s| s.epochs).sum::<usize>() + st.epoch;
        let progress = Progress::new(rank0, total as u64, cfg.train.log_every);
        if let Some(b) = &progress.bar {
            b.set_position(done as u64);
        }
        Ok(Self {
            metrics: MetricsLog::new(metrics_path, rank0)?,
            progress,
            ckpt_path: out.join("checkpoint.h5"),
            checkpoint_every: cfg.train.checkpoint_every,
            rank0,
        })
    }

    /// Path of the checkpoint file.
    pub fn checkpoint_path(&self) -> &Path {
        &self.ckpt_path
    }

    /// Record epoch `m` (already counted in `st`), agree with the other ranks on a stop request
    /// (`stop_here`: this invocation's own limit), and write the checkpoint when one is due.
    /// Collective.
    pub fn end_epoch(&mut self, mut m: EpochMetrics, epochs_in_stage: usize, st: &TrainState, stop_here: bool, comm: &dyn Comm) -> anyhow::Result<Next> {
        let mut mx = [m.compute_s, m.comm_s, f64::from(u8::from(crate::dist::signals::stop_requested()))];
        let mut mn = [m.compute_s, m.comm_s];
        comm.allreduce_max_f64(&mut mx);
        comm.allreduce_min_f64(&mut mn);
        (m.compute_s_max, m.comm_s_max, m.compute_s_min, m.comm_s_min) = (mx[0], mx[1], mn[0], mn[1]);
        self.metrics.push(&m)?;
        self.progress.epoch(&m, epochs_in_stage);
        let stop = mx[2] > 0.0 || stop_here;
        let periodic = self.checkpoint_every > 0 && (m.epoch + 1) % self.checkpoint_every == 0;
        if stop || periodic {
            self.metrics.flush()?;
            if self.rank0 {
                st.save(&self.ckpt_path)?;
            }
        }
        if stop {
            comm.barrier();
            crate::dist::signals::wait_announced();
            self.progress.finish();
            return Ok(Next::Stop);
        }
        Ok(Next::Continue)
    }

    /// Flush the log and clear the progress bar.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.metrics.flush()?;
        self.progress.finish();
        Ok(())
    }
}
