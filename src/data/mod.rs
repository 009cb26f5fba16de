//! Phase-space datasets: one HDF5 file per PIC run (read, validate, write atomically), importers
//! from other layouts, and the (run, window) samples that training shards across ranks.
//!
//! File schema (h5py-readable):
//! - `/f` `[T, Nx, Ny]` f64, chunked one snapshot per chunk: counts or densities, first index v_x;
//! - `/t` `[T]` f64: snapshot times in 1/ω_p, strictly increasing;
//! - attributes `v_range` `[4]` (`vx_min, vx_max, vy_min, vy_max`), `units` (string), `dt`
//!   (snapshot spacing, 1/ω_p), `n_particles`;
//! - group `/params`: free-form numeric scalar attributes (ppc, v_th, shape, dx_over_lambda_D, ...);
//! - optional `/tracks` `[n_dumps, n_tracked, 2]` test-particle velocities at the times `/t`;
//! - optional group `/diagnostics` of 1-D f64 datasets (energy histories and the like).

use crate::grid::VelocityGrid;
use ndarray::{Array1, Array3};
use std::collections::BTreeMap;

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
    /// `[n_dumps, n_tracked, 2]` tracked test-particle velocities, if recorded.
    pub tracks: Option<Array3<f64>>,
    /// Named 1-D diagnostics (e.g. `energy_total`).
    pub diagnostics: BTreeMap<String, Array1<f64>>,
}

/// Error reading, validating or writing run data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
}

/// Read a whole run file (validated).
pub fn read_run(path: &std::path::Path) -> Result<RunData, DataError> {
    Err(DataError::Invalid { path: path.display().to_string(), msg: "not implemented yet".into() })
}

/// Write a run file atomically.
pub fn write_run(path: &std::path::Path, run: &RunData) -> Result<(), DataError> {
    let _ = run;
    Err(DataError::Invalid { path: path.display().to_string(), msg: "not implemented yet".into() })
}

/// Placeholder reader (replaced by the data module's implementation).
pub struct RunFile {
    run: RunData,
}
impl RunFile {
    pub fn open(path: &std::path::Path) -> Result<Self, DataError> {
        Ok(Self { run: read_run(path)? })
    }
    pub fn times(&self) -> &[f64] {
        &self.run.t
    }
    pub fn dt(&self) -> f64 {
        self.run.dt
    }
    pub fn grid(&self) -> &VelocityGrid {
        &self.run.grid
    }
    pub fn params(&self) -> &BTreeMap<String, f64> {
        &self.run.params
    }
    pub fn read_snapshots(&self, range: std::ops::Range<usize>) -> Result<Array3<f64>, DataError> {
        Ok(self.run.f.slice(ndarray::s![range, .., ..]).to_owned())
    }
}
