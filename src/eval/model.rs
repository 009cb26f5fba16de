//! A model file evaluated on run files, as `colop eval` and `colop compare` do: read the model,
//! check every run against it before any rollout (grid, a snapshot interval after `i_start`),
//! then roll out.

use super::{evaluate_run, model_path, Rollable, RunEval};
use crate::model_file::{read_model, SavedModel};
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// The model of a run directory (its `model.h5`) or a model file.
pub fn load(model: &Path) -> anyhow::Result<SavedModel> {
    Ok(read_model(&model_path(model))?)
}

/// Check that every run can be evaluated with `model` from `i_start`: the same velocity grid
/// (the error names both) and at least one snapshot interval after `i_start`.
pub fn check_runs(model: &SavedModel, data: &[PathBuf], i_start: usize) -> anyhow::Result<()> {
    for path in data {
        let run = crate::data::RunFile::open(path)?;
        let meta = &run.meta;
        anyhow::ensure!(
            meta.grid.compatible(&model.grid),
            "{}: the run's grid {} differs from the model's grid {}",
            path.display(),
            meta.grid.describe(),
            model.grid.describe()
        );
        let first = run.first_index_checked(i_start).map_err(|e| anyhow::anyhow!("--i-start {i_start}: {e}"))?;
        let last = meta.n_snapshots() - 1;
        anyhow::ensure!(
            first < last,
            "{}: --i-start {i_start} starts at the run's last snapshot (number {}): no snapshot is left to predict",
            path.display(),
            meta.snapshot_number(last)
        );
    }
    Ok(())
}

/// Evaluate the model of `model` (run directory or model file) on `data` from `i_start`, with
/// conditioner overrides `params`; every run is checked before the first rollout.
pub fn evaluate(model: &Path, data: &[PathBuf], i_start: usize, params: Vec<(String, f64)>) -> anyhow::Result<Vec<RunEval>> {
    let path = model_path(model);
    evaluate_saved(&read_model(&path)?, &path, data, i_start, params)
}

/// [`evaluate`] for a model already read from `path` (named in errors).
pub fn evaluate_saved(saved: &SavedModel, path: &Path, data: &[PathBuf], i_start: usize, params: Vec<(String, f64)>) -> anyhow::Result<Vec<RunEval>> {
    let op = Rollable::new(saved, params).with_context(|| path.display().to_string())?;
    check_runs(saved, data, i_start)?;
    data.iter().map(|d| evaluate_run(&op, d, i_start, 3)).collect()
}
