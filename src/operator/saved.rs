//! `model.h5`: a trained (or imported, or estimated) operator on disk, readable with h5py.
//!
//! Layout: datasets `A` [2,Nx,Ny] (v_th·ω_p) and `D` [3,Nx,Ny] (v_th²·ω_p, order xx, yy, xy) at
//! the model's reference context, `theta` (raw parameters), attributes `kind`, `spec` (the model
//! spec as YAML), `solver` (solver spec as YAML), `v_range`, `units`, `nx`, `ny`; extra datasets
//! from [`super::OperatorModel::exports`] (e.g. `v_radial`, `A_par`, `D_par`, `D_perp`); group
//! `/conditioning` with the conditioner names and ranges for conditioned models.

use super::{Fields, ModelSpec};
use crate::grid::VelocityGrid;
use crate::solver::SolverSpec;
use std::path::Path;

/// Everything needed to rebuild and roll out a model.
#[derive(Clone, Debug)]
pub struct SavedModel {
    pub spec: ModelSpec,
    pub solver: SolverSpec,
    pub grid: VelocityGrid,
    pub theta: Vec<f64>,
    /// Fields at the reference context (`[n_fields, nx, ny]`, physical units).
    pub fields: Fields,
    /// Conditioner names and `(min, max)` ranges.
    pub cond_ranges: Vec<(String, f64, f64)>,
    /// Time span of the time nodes.
    pub t_span: f64,
    pub exports: Vec<(String, ndarray::ArrayD<f64>)>,
    /// Free-form string attributes (provenance, notes).
    pub notes: Vec<(String, String)>,
}

/// Error reading or writing a model file.
#[derive(Debug, thiserror::Error)]
pub enum SavedModelError {
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
}

pub fn write_model(path: &Path, model: &SavedModel) -> Result<(), SavedModelError> {
    let _ = model;
    Err(SavedModelError::Invalid { path: path.display().to_string(), msg: "not implemented yet".into() })
}

pub fn read_model(path: &Path) -> Result<SavedModel, SavedModelError> {
    Err(SavedModelError::Invalid { path: path.display().to_string(), msg: "not implemented yet".into() })
}
