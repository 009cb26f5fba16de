//! `colop pic`: run the built-in PIC code from a config file into one run file.

use super::Context;
use anyhow::Context as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Options of `colop pic`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// PIC config (YAML, see configs/pic.yaml).
    pub config: PathBuf,
    /// Output run file (HDF5), written atomically.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args, _ctx: &Context) -> anyhow::Result<()> {
    let cfg = crate::pic::PicConfig::load(&args.config)?;
    run_config(&cfg, &args.out, &args.config.display().to_string())
}

/// Run one validated config into `out`, reporting progress (a bar on a terminal, log lines
/// otherwise). Shared with `colop campaign run`.
pub fn run_config(cfg: &crate::pic::PicConfig, out: &Path, label: &str) -> anyhow::Result<()> {
    // Whatever would stop the run file from being written is found before the first step.
    cfg.validate_for_run_file().with_context(|| label.to_string())?;
    crate::io::check_writable_file(out).context("--out")?;
    let steps = cfg.time.steps as u64;
    let started = std::time::Instant::now();
    tracing::info!(
        "pic {label}: {}×{} cells, ppc {}, shape {}, {} test particles, {steps} steps",
        cfg.grid.nx,
        cfg.grid.ny,
        cfg.plasma.ppc,
        cfg.shape.order,
        cfg.test_particles.n
    );
    let run = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(steps).with_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} steps, eta {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        let result = crate::pic::run(cfg, &mut |done, _| {
            if done % 16 == 0 || done as u64 == steps {
                bar.set_position(done as u64);
            }
        });
        bar.finish_and_clear();
        result?
    } else {
        let mut next_report = std::time::Instant::now() + std::time::Duration::from_secs(30);
        crate::pic::run(cfg, &mut |done, total| {
            let now = std::time::Instant::now();
            if now >= next_report {
                next_report = now + std::time::Duration::from_secs(30);
                tracing::info!("pic {label}: step {done}/{total} ({:.0}%)", 100.0 * done as f64 / total as f64);
            }
        })?
    };
    crate::data::write_run(out, &run).with_context(|| format!("writing {}", out.display()))?;
    let secs = started.elapsed().as_secs_f64();
    let drift = run.diagnostics["energy_drift"].iter().fold(0.0f64, |m, d| if d.abs() > m.abs() { *d } else { m });
    if drift.abs() > cfg.energy_check.warn_drift {
        tracing::warn!(
            "pic {label}: UNSTABLE? the total energy drifted by {:.1}% (above energy_check.warn_drift = {}%): check time.dt and the test-particle weight; energy_check.max_drift makes this an error",
            100.0 * drift,
            100.0 * cfg.energy_check.warn_drift
        );
    }
    tracing::info!(
        "pic {label}: wrote {} ({} dumps) in {secs:.1} s, {:.1} M particle-steps/s, largest energy drift {drift:.2e}",
        out.display(),
        run.t.len(),
        cfg.cost() / secs / 1e6
    );
    Ok(())
}
