//! `colop campaign`: plan a parameter sweep of PIC runs, then run it over ranks (resumable).

use super::Context;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Expand a campaign file into one PIC config per run and a manifest.
    Plan {
        /// Campaign file (YAML, see configs/campaign.yaml).
        campaign: PathBuf,
        /// Campaign directory to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run a planned campaign; ranks share the runs, finished runs are skipped.
    Run {
        /// Campaign directory (holds manifest.json).
        dir: PathBuf,
        /// Run only this run id (e.g. $SLURM_ARRAY_TASK_ID).
        #[arg(long)]
        only: Option<usize>,
    },
}

pub fn run(cmd: Command, ctx: &Context) -> anyhow::Result<()> {
    match cmd {
        Command::Plan { campaign, out } => {
            let cfg = crate::campaign::CampaignConfig::load(&campaign)?;
            if ctx.comm.rank() == 0 {
                let manifest = crate::campaign::plan(&cfg, &out)?;
                let cost: f64 = manifest.runs.iter().map(|r| r.cost).sum();
                tracing::info!(
                    "planned {} runs of campaign `{}` into {} ({:.2e} particle-steps); array: --array=0-{}",
                    manifest.runs.len(),
                    manifest.name,
                    out.display(),
                    cost,
                    manifest.runs.len().saturating_sub(1)
                );
            }
            ctx.comm.barrier();
            Ok(())
        }
        Command::Run { dir, only } => {
            let summary = crate::campaign::execute(&dir, ctx.comm.as_ref(), only, &mut |cfg, out, name| {
                super::pic::run_config(cfg, out, name)
            })?;
            if ctx.comm.rank() == 0 {
                tracing::info!("campaign {}: {} ran, {} skipped", dir.display(), summary.ran, summary.skipped);
            }
            Ok(())
        }
    }
}
