//! `colop train`: learn an operator from run files.

use super::Context;
use crate::config::TrainConfig;
use crate::model_file::write_model;
use anyhow::Context as _;
use std::path::PathBuf;

/// Options of `colop train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training config (YAML). Optional with --resume, which reuses the run directory's config.yaml.
    pub config: Option<PathBuf>,
    /// Run directory to write (config.yaml, metrics.jsonl, model.h5, checkpoint.h5, plots/).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its checkpoint.h5 (any rank count).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after this many epochs of this invocation, as on SIGTERM: write checkpoint.h5 and
    /// exit with code 75 (for time-sliced jobs and tests).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Skip the figures.
    #[arg(long)]
    pub no_plots: bool,
    /// Start over in a run directory that already holds a checkpoint or model (they are
    /// replaced once the new run has passed its checks).
    #[arg(long, conflicts_with = "resume")]
    pub restart: bool,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<()> {
    let (cfg_path, out, ckpt) = match (&args.resume, &args.config) {
        (Some(dir), cfg) => {
            let ckpt = dir.join("checkpoint.h5");
            anyhow::ensure!(ckpt.is_file(), "{}: no checkpoint.h5 to resume from", dir.display());
            (cfg.clone().unwrap_or_else(|| dir.join("config.yaml")), dir.clone(), Some(ckpt))
        }
        (None, Some(cfg)) => {
            let out = args.out.clone().context("--out DIR is required (where the run directory goes)")?;
            (cfg.clone(), out, None)
        }
        (None, None) => anyhow::bail!("give a config file, or --resume RUN_DIR"),
    };
    if let (Some(o), Some(_)) = (&args.out, &args.resume) {
        anyhow::ensure!(o == &out, "--out and --resume name different directories");
    }
    let cfg = TrainConfig::load(&cfg_path)?;
    if ckpt.is_none() {
        let existing: Vec<&str> = ["checkpoint.h5", "model.h5"].into_iter().filter(|f| out.join(f).exists()).collect();
        anyhow::ensure!(
            existing.is_empty() || args.restart,
            "{}: already holds {}; continue it with `colop train --resume {}`, or start over with --restart",
            out.display(),
            existing.join(" and "),
            out.display()
        );
    } else if args.config.is_some() {
        // A new config for a resumed run may only extend the curriculum.
        let old_path = out.join("config.yaml");
        let old = TrainConfig::load(&old_path).with_context(|| format!("{}: the run's own config", old_path.display()))?;
        crate::config::check_resume_compatible(&old, &cfg).with_context(|| format!("{} cannot resume {}", cfg_path.display(), out.display()))?;
    }
    // SIGTERM/SIGUSR1 (Slurm's warning before a time limit or preemption) now checkpoint and
    // exit with code 75 instead of killing the run.
    crate::dist::signals::install()?;
    let outcome = crate::train::train(&cfg, &out, ckpt.as_deref(), args.stop_after, ctx.comm.as_ref())?;
    if ctx.comm.rank() == 0 {
        let saved = outcome.saved_model(&cfg);
        let model_path = out.join("model.h5");
        write_model(&model_path, &saved)?;
        // The run is complete: a checkpoint would only invite a pointless resume.
        let _ = std::fs::remove_file(out.join("checkpoint.h5"));
        if !args.no_plots {
            crate::plot::sets::run_dir_figures(&out)?;
        }
        println!("model: {}", model_path.display());
        println!("best: stage {} loss {:.6e}", outcome.best_stage, outcome.best_loss);
    }
    Ok(())
}
