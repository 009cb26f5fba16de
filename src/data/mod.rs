//! Phase-space datasets: one HDF5 file per PIC run (read, validate, write atomically), importers
//! from other layouts, and the (run, window) samples that training shards across ranks —
//! histogram windows ([`windows`]) and transition windows of tracked particles ([`transitions`]).
//!
//! # File schema (h5py-readable)
//!
//! | object | type | meaning |
//! |---|---|---|
//! | `/f` | `[T, Nx, Ny]` float | counts or densities, first index v_x (C order); chunked one snapshot per chunk |
//! | `/t` | `[T]` float | snapshot times in 1/ω_p, strictly increasing (normally spaced by `dt`) |
//! | attribute `v_range` | `[4]` float | `vx_min, vx_max, vy_min, vy_max` (finite, min < max) |
//! | attribute `units` | string | velocity unit label, e.g. `v_th` |
//! | attribute `dt` | float scalar | snapshot spacing (the mean spacing if uneven), 1/ω_p, finite and > 0 |
//! | attribute `n_particles` | float scalar | particles in the run's histogram, finite and > 0 |
//! | group `/params` | scalar attributes | numeric: run parameters (ppc, v_th, shape, dx_over_lambda_D, ...), usable as conditioners; string: labels (e.g. an import's `software`, `softwareVersion`) |
//! | `/tracks` (optional) | `[n_dumps, n_tracked, d]` float | test-particle velocities (d = 2 or 3 components, as the grid) at the times `/t` |
//! | group `/diagnostics` (optional) | 1-D float datasets | energy histories and the like; PIC runs: `energy_drift` = (E−E₀)/E₀ per step, and group attributes `energy_drift` (final) and `energy_drift_max` (largest \|drift\|) |
//! | group `/truth` (optional) | datasets | the known operator of a synthetic run (written by `colop synth`, see [`crate::synth`]) |
//!
//! Values of `/f` must be finite and non-negative; `T ≥ 2`; `Nx, Ny ≥ 4`. Consecutive times
//! normally differ by `dt` (to 1e-6 relative); unevenly spaced times are accepted with a warning,
//! and then each snapshot interval is integrated over its own length (see
//! [`crate::solver::coefficients::Spacing`]). Snapshot *k* has the run's own number
//! `round(t_k / dt)`, so a run whose first snapshot is at `t = 5·dt` starts at number 5. Integer datasets and attributes are
//! accepted and converted to f64; strings may be variable- or fixed-length. Writing with h5py:
//!
//! ```python
//! with h5py.File("run.h5", "w") as h:
//!     h.create_dataset("f", data=f, chunks=(1, nx, ny))   # f: float64 [T, nx, ny]
//!     h["t"] = t
//!     h.attrs.update(v_range=[-5, 5, -5, 5], units="v_th", dt=1.0, n_particles=f[0].sum())
//!     h.create_group("params").attrs.update(ppc=100, v_th=0.05)
//! ```
//!
//! [`RunFile`] opens a file and validates its metadata only; [`RunFile::read_snapshots`] reads
//! (and validates) a hyperslab of `/f`. [`read_run`] / [`write_run`] move whole runs.
//! [`windows`] turns run metadata into samples and shards; [`ShardData`] loads exactly the
//! normalised snapshots a shard needs.

use crate::grid::VelocityGrid;
use ndarray::{Array1, Array3, ArrayView2};
use std::collections::BTreeMap;
use std::path::Path;

mod h5;
pub mod import;
pub mod import_bench;
pub mod openpmd;
pub mod osiris;
pub mod particles;
mod runfile;
pub mod shard;
pub mod transitions;
mod validate;
pub mod windows;

pub use import::{import_npy_folder, import_npy_folders};
pub use runfile::{check_compatible, open_runs, RunFile, RunMeta};
pub use runfile::Spacing;
pub use shard::{normalisations, open_runs_from, Run, ShardData, SnapshotReader, Walk};
pub use windows::{Sample, Unroll};

/// Everything one run file holds, in memory.
#[derive(Clone, Debug)]
pub struct RunData {
    pub grid: VelocityGrid,
    /// `[T, Nx, Ny]`.
    pub f: Array3<f64>,
    /// `[T]`, 1/ω_p.
    pub t: Vec<f64>,
    /// Snapshot spacing, 1/ω_p.
    pub dt: f64,
    pub n_particles: f64,
    pub params: BTreeMap<String, f64>,
    /// String attributes of `/params` (labels such as `software`; never conditioners).
    pub labels: BTreeMap<String, String>,
    /// `[n_dumps, n_tracked, 2]` tracked test-particle velocities, if recorded.
    pub tracks: Option<Array3<f64>>,
    /// Named 1-D diagnostics (e.g. `energy_total`).
    pub diagnostics: BTreeMap<String, Array1<f64>>,
}

/// Error reading, validating or writing run data. Every message is one line that names the file
/// (or run) and, where there is one, the dataset, attribute or configuration key.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
    /// A problem with one named item of a file: dataset, attribute or key.
    #[error("{path}: {item}: {msg}")]
    Item { path: String, item: String, msg: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl DataError {
    pub(crate) fn invalid(path: &Path, msg: impl Into<String>) -> Self {
        DataError::Invalid { path: path.display().to_string(), msg: one_line(&msg.into()) }
    }
    pub(crate) fn item(path: &Path, item: impl Into<String>, msg: impl Into<String>) -> Self {
        DataError::Item { path: path.display().to_string(), item: item.into(), msg: one_line(&msg.into()) }
    }
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.display().to_string(), source }
    }
}

/// Collapse a possibly multi-line message (HDF5 error stacks) onto one line.
pub(crate) fn one_line(msg: &str) -> String {
    msg.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Read a whole run file (validated).
pub fn read_run(path: &Path) -> Result<RunData, DataError> {
    let file = RunFile::open(path)?;
    let f = file.read_snapshots(0..file.meta.n_snapshots())?;
    let meta = file.meta.clone();
    Ok(RunData {
        grid: meta.grid,
        f,
        t: meta.t,
        dt: meta.dt,
        n_particles: meta.n_particles,
        params: meta.params,
        labels: meta.labels,
        tracks: file.read_tracks()?,
        diagnostics: file.read_diagnostics()?,
    })
}

/// Write a run file atomically (temporary file beside `path`, then rename). The data are
/// validated first with the same rules as the reader, so a written file always reads back.
pub fn write_run(path: &Path, run: &RunData) -> Result<(), DataError> {
    write_run_impl(path, run, None)
}

/// Writes extra objects (groups, attributes) into a run file before it is closed.
pub type ExtraWriter<'a> = &'a dyn Fn(&hdf5::File) -> hdf5::Result<()>;

/// [`write_run`], with `extra` adding objects to the file in the same atomic write (synth's
/// `/truth`).
pub fn write_run_with(path: &Path, run: &RunData, extra: ExtraWriter<'_>) -> Result<(), DataError> {
    write_run_impl(path, run, Some(extra))
}

fn write_run_impl(path: &Path, run: &RunData, extra: Option<ExtraWriter<'_>>) -> Result<(), DataError> {
    validate::run_data(path, run)?;
    crate::io::write_atomic(path, |tmp| h5::write_run_file(tmp, run, extra).map_err(std::io::Error::other))
        .map_err(|e| DataError::invalid(path, format!("cannot write run file: {e}")))
}

/// Particle count of a snapshot: Σ f over the grid, summed in C order (deterministic).
pub fn particle_count(snapshot: ArrayView2<f64>) -> f64 {
    snapshot.iter().sum()
}

/// Divide `f` (one or many snapshots) by a run's normalisation `norm` (its [`particle_count`] at
/// the first used snapshot; see [`RunFile::normalisation`]). Trainer and evaluation share this,
/// so both see the same bits.
pub fn normalise<D: ndarray::Dimension>(f: &mut ndarray::Array<f64, D>, norm: f64) {
    f.mapv_inplace(|x| x / norm);
}
