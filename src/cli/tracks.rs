//! `colop tracks`: drag and diffusion estimated from tracked test particles, one model per lag.
//! On a 3-D run (tracks `[T, n, 3]`) the estimate has A_x, A_y, A_z and D_xx, D_yy, D_zz, D_xy,
//! D_xz, D_yz per (v_x, v_y, v_z) cell and radial profiles about v_z ([`crate::baseline`]).

use super::Context;
use crate::baseline::{self, output};
use anyhow::Context as _;
use std::path::PathBuf;

/// Options of `colop tracks`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run file with `/tracks` (velocities of tracked test particles at every dump; 2 or 3
    /// components, as the run's grid).
    pub run: PathBuf,
    /// Lags τ in 1/ω_p, whole multiples of the dump spacing; one model per lag.
    #[arg(long, num_args = 1.., required = true)]
    pub lag: Vec<f64>,
    /// Output directory: `tau_<τ>/model.h5`, `tau_<τ>/estimates.h5` and `summary.json`, written
    /// all or nothing (every lag is checked before the first estimate).
    #[arg(long)]
    pub out: PathBuf,
    /// Start-dump stride in dumps (default: the lag, so one particle's samples never overlap).
    #[arg(long)]
    pub stride: Option<usize>,
    /// Cells with fewer samples are filled in the model from the isotropic projection.
    #[arg(long, default_value_t = 10)]
    pub min_count: u64,
}

pub fn run(args: Args, _ctx: &Context) -> anyhow::Result<()> {
    let path = args.run.display().to_string();
    let run = crate::data::read_run(&args.run)?;
    let tracks = run.tracks.as_ref().ok_or_else(|| baseline::BaselineError::NoTracks { path: path.clone() })?;
    let track_bytes = tracks.len() * std::mem::size_of::<f64>();
    let histogram_bytes = run.f.len() * std::mem::size_of::<f64>();
    anyhow::ensure!(args.stride != Some(0), "--stride must be at least 1");
    // Every lag is checked (a whole number of dumps, no lag twice) before any estimate.
    let mut lag_dumps = Vec::new();
    for (i, &tau) in args.lag.iter().enumerate() {
        if let Some(j) = args.lag[..i].iter().position(|&t| t == tau) {
            anyhow::bail!("--lag: τ = {tau} is given twice (values {} and {}), which would write tau_{tau} twice", j + 1, i + 1);
        }
        let dumps = baseline::lag_in_dumps(tau, run.dt, &path)?;
        anyhow::ensure!(
            dumps < tracks.shape()[0],
            "--lag {tau}: {dumps} dump intervals, but {path} has only {} dumps ({} intervals)",
            tracks.shape()[0],
            tracks.shape()[0].saturating_sub(1)
        );
        lag_dumps.push(dumps);
    }
    let staged = crate::io::StagedDir::new(&args.out)?;
    let mut lags = Vec::new();
    for (&tau, &lag_dumps) in args.lag.iter().zip(&lag_dumps) {
        let est = baseline::estimate(&run, &path, lag_dumps, args.stride)?;
        let dir = staged.path().join(format!("tau_{tau}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        output::write_estimates(&dir.join("estimates.h5"), &est, args.min_count)?;
        let model = output::tensor_model(&est, args.min_count, &path);
        crate::model_file::write_model(&dir.join("model.h5"), &model)?;
        let populated = est.counts.iter().filter(|&&c| c >= args.min_count.max(1)).count();
        let empty = est.counts.iter().filter(|&&c| c == 0).count();
        tracing::info!(tau, lag_dumps, samples = est.n_samples, populated, empty, "track estimate for {}", staged.final_path(&dir).display());
        lags.push(serde_json::json!({
            "tau": est.tau,
            "lag_dumps": lag_dumps,
            "stride": est.stride,
            "n_samples": est.n_samples,
            "n_skipped": est.n_skipped,
            "populated_cells": populated,
            "empty_cells": empty,
            "dir": format!("tau_{tau}"),
        }));
    }
    let summary = serde_json::json!({
        "run": path,
        "n_tracked": tracks.shape()[1],
        "n_dumps": tracks.shape()[0],
        "track_bytes": track_bytes,
        "histogram_bytes": histogram_bytes,
        "track_to_histogram_ratio": track_bytes as f64 / histogram_bytes.max(1) as f64,
        "min_count": args.min_count,
        "lags": lags,
    });
    let json = staged.path().join("summary.json");
    crate::io::write_bytes_atomic(&json, serde_json::to_string_pretty(&summary)?.as_bytes())
        .with_context(|| format!("writing {}", staged.final_path(&json).display()))?;
    staged.commit()?;
    Ok(())
}
