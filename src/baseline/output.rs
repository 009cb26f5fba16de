//! Track estimates on disk: the estimates file (counts, errors, radial projection) and the
//! `tensor` `model.h5` used for rollouts.

use super::TrackEstimate;
use crate::model_file::SavedModel;
use crate::operator::spec::ModelKind;
use crate::operator::ModelSpec;
use crate::solver::SolverSpec;
use ndarray::Array1;
use std::path::Path;

/// Error writing an estimates file.
#[derive(Debug, thiserror::Error)]
pub enum EstimatesWriteError {
    #[error("{path}: {source}")]
    Hdf5 { path: String, source: hdf5::Error },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// A `tensor` model whose θ is its fields in physical units, flattened `[n_fields, nx, ny·nz]`;
/// exports the radial profiles (and `D_zz` in 3D).
pub fn tensor_model(est: &TrackEstimate, min_count: u64, source: &str) -> SavedModel {
    let (fields, filled) = est.model_fields(min_count);
    let n_filled = filled.iter().filter(|&&f| f).count();
    let r = &est.radial;
    let mut exports = vec![
        ("v_radial".into(), Array1::from(r.v.clone()).into_dyn()),
        ("A_par".into(), Array1::from(r.a_par.clone()).into_dyn()),
        ("D_par".into(), Array1::from(r.d_par.clone()).into_dyn()),
        ("D_perp".into(), Array1::from(r.d_perp.clone()).into_dyn()),
    ];
    if est.grid.dim() == 3 {
        exports.push(("D_zz".into(), Array1::from(r.d_zz.clone()).into_dyn()));
    }
    let fill = if est.grid.dim() == 3 {
        "cells with fewer than min_count samples take the projection about v_z at their v_perp = |(v_x, v_y)| (A_par, D_par, D_perp in plane, D_zz; A_z = D_xz = D_yz = 0), or 0 where that radial bin is unpopulated"
    } else {
        "cells with fewer than min_count samples take the isotropic projection at their |v|, or 0 where that radial bin is unpopulated"
    };
    SavedModel {
        spec: ModelSpec { kind: ModelKind::Tensor, ..ModelSpec::default() },
        solver: SolverSpec::default(),
        grid: est.grid.clone(),
        theta: fields.iter().copied().collect(),
        fields,
        cond_ranges: Vec::new(),
        t_span: 0.0,
        exports,
        notes: vec![
            ("source".into(), format!("particle-track estimate from {source}")),
            ("tau".into(), est.tau.to_string()),
            ("lag_dumps".into(), est.lag_dumps.to_string()),
            ("min_count".into(), min_count.to_string()),
            ("filled_cells".into(), n_filled.to_string()),
            ("fill".into(), fill.into()),
        ],
    }
}

/// The estimates file: `counts` [nx,ny] (u64), `A`, `A_err` [2,nx,ny], `D`, `D_err` [3,nx,ny]
/// (order xx, yy, xy; NaN where empty), `filled` [nx,ny] (u8, cells replaced in the model), group
/// `radial` with `v`, `counts`, `A_par`, `D_par`, `D_perp` and their `_err`; attributes `tau`,
/// `lag_dumps`, `stride`, `min_count`, `n_samples`, `n_skipped`, `v_range`. On a 3D grid the cells
/// are [nx,ny,nz], `A` has 3 components and `D` 6 (order xx, yy, zz, xy, xz, yz), and `radial`
/// (about the v_z axis, see [`super::RadialEstimate`]) adds `D_zz`, `D_zz_err`. Written atomically.
pub fn write_estimates(path: &Path, est: &TrackEstimate, min_count: u64) -> Result<(), EstimatesWriteError> {
    let name = path.display().to_string();
    let h5 = |source| EstimatesWriteError::Hdf5 { path: name.clone(), source };
    let (_, filled) = est.model_fields(min_count);
    let result = crate::io::write_atomic(path, |tmp| -> Result<(), WriteFailure> {
        let file = crate::io::h5_create(tmp)?;
        let grid = &est.grid;
        let dim = grid.dim();
        // The cells as the grid's axes, after `lead` leading axes of `shape`.
        let cells = |lead: &[usize]| -> Vec<usize> { lead.iter().copied().chain(grid.extents()).collect() };
        let reshape = |e: ndarray::ShapeError| hdf5::Error::from(format!("estimate shape: {e}"));
        file.new_dataset_builder().with_data(&est.counts.to_shape(cells(&[])).map_err(reshape)?).create("counts")?;
        let nf = est.fields.shape()[0];
        for (name, values, range) in [
            ("A", &est.fields, 0..dim),
            ("A_err", &est.errors, 0..dim),
            ("D", &est.fields, dim..nf),
            ("D_err", &est.errors, dim..nf),
        ] {
            let part = values.slice(ndarray::s![range.clone(), .., ..]);
            file.new_dataset_builder().with_data(&part.to_shape(cells(&[range.len()])).map_err(reshape)?).create(name)?;
        }
        file.new_dataset_builder().with_data(&filled.mapv(u8::from).to_shape(cells(&[])).map_err(reshape)?).create("filled")?;
        let r = &est.radial;
        let g = file.create_group("radial")?;
        let mut profiles = vec![
            ("v", &r.v),
            ("A_par", &r.a_par),
            ("A_par_err", &r.a_par_err),
            ("D_par", &r.d_par),
            ("D_par_err", &r.d_par_err),
            ("D_perp", &r.d_perp),
            ("D_perp_err", &r.d_perp_err),
        ];
        if dim == 3 {
            profiles.extend([("D_zz", &r.d_zz), ("D_zz_err", &r.d_zz_err)]);
        }
        for (key, values) in profiles {
            g.new_dataset_builder().with_data(values.as_slice()).create(key)?;
        }
        g.new_dataset_builder().with_data(r.counts.as_slice()).create("counts")?;
        for (key, value) in [("tau", est.tau), ("bin_width", r.dv)] {
            file.new_attr::<f64>().create(key)?.write_scalar(&value)?;
        }
        for (key, value) in [
            ("lag_dumps", est.lag_dumps as u64),
            ("stride", est.stride as u64),
            ("min_count", min_count),
            ("n_samples", est.n_samples),
            ("n_skipped", est.n_skipped),
        ] {
            file.new_attr::<u64>().create(key)?.write_scalar(&value)?;
        }
        file.new_attr_builder().with_data(grid.v_ranges().as_slice()).create("v_range")?;
        file.close()?;
        Ok(())
    });
    result.map_err(|e| match e {
        WriteFailure::Hdf5(source) => h5(source),
        WriteFailure::Io(source) => EstimatesWriteError::Io { path: name.clone(), source },
    })
}

/// Internal error of the atomic write closure.
enum WriteFailure {
    Hdf5(hdf5::Error),
    Io(std::io::Error),
}

impl From<hdf5::Error> for WriteFailure {
    fn from(e: hdf5::Error) -> Self {
        Self::Hdf5(e)
    }
}

impl From<std::io::Error> for WriteFailure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}
