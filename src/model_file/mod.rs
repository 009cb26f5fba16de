//! `model.h5`: a trained, imported or estimated operator on disk, readable with h5py. It sits
//! above both `operator` and `solver`, since a model file records the operator's spec together
//! with the solver settings it was trained with.
//!
//! Layout: datasets `A` [2,Nx,Ny] (v_th·ω_p) and `D` [3,Nx,Ny] (v_th²·ω_p, order xx, yy, xy) at
//! the model's reference context (kernel models: `K` [2k²,Nx,Ny] instead), `theta` (raw
//! parameters), attributes `kind`, `spec` (the model spec as YAML), `solver` (solver spec as YAML),
//! `v_range`, `units`, `nx`, `ny`, `t_span`; extra datasets from
//! [`crate::operator::OperatorModel::exports`] (e.g. `v_radial`, `A_par`, `D_par`, `D_perp`) under
//! `/exports`; group `/conditioning` with one attribute `[min, max]` per conditioner (in the order
//! of the attribute `names`); free-form string attributes under `/notes`.

use crate::operator::{fp, Fields, ModelSpec};
use crate::grid::VelocityGrid;
use crate::solver::SolverSpec;
use hdf5::types::VarLenUnicode;
use ndarray::{s, Array1, ArrayD};
use std::path::Path;

pub mod import;

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
    pub exports: Vec<(String, ArrayD<f64>)>,
    /// Free-form string attributes (provenance, notes).
    pub notes: Vec<(String, String)>,
}

/// Error reading or writing a model file.
#[derive(Debug, thiserror::Error)]
pub enum SavedModelError {
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl From<std::io::Error> for SavedModelError {
    fn from(e: std::io::Error) -> Self {
        SavedModelError::Io { path: String::new(), source: e }
    }
}

fn str_attr(loc: &hdf5::Location, name: &str, value: &str) -> hdf5::Result<()> {
    let v: VarLenUnicode = value.parse().map_err(|e| hdf5::Error::from(format!("{e:?}")))?;
    loc.new_attr::<VarLenUnicode>().shape(()).create(name)?.write_scalar(&v)
}

fn read_str_attr(loc: &hdf5::Location, name: &str) -> hdf5::Result<String> {
    let v: VarLenUnicode = loc.attr(name)?.read_scalar()?;
    Ok(v.as_str().to_owned())
}

fn write_inner(path: &Path, m: &SavedModel) -> hdf5::Result<()> {
    let file = crate::io::h5_create(path)?;
    let g = &m.grid;
    let dim = g.dim();
    if m.fields.shape()[0] == fp::n_fields(dim) {
        // A [d, cells...] and D [d(d+1)/2, cells...], the cells as the grid's axes.
        let write = |name: &str, range: std::ops::Range<usize>| -> hdf5::Result<()> {
            let part = m.fields.slice(s![range.clone(), .., ..]);
            let mut shape = vec![range.len()];
            shape.extend(g.extents());
            let part = part.to_shape(shape).map_err(|e| hdf5::Error::from(format!("{name}: {e}")))?;
            file.new_dataset_builder().with_data(&part).create(name)?;
            Ok(())
        };
        write("A", 0..dim)?;
        write("D", dim..fp::n_fields(dim))?;
    } else {
        file.new_dataset_builder().with_data(&m.fields).create("K")?;
    }
    file.new_dataset_builder().with_data(&Array1::from(m.theta.clone())).create("theta")?;
    let spec = serde_yaml::to_string(&m.spec).map_err(|e| hdf5::Error::from(e.to_string()))?;
    let solver = serde_yaml::to_string(&m.solver).map_err(|e| hdf5::Error::from(e.to_string()))?;
    let kind = serde_yaml::to_string(&m.spec.kind).map_err(|e| hdf5::Error::from(e.to_string()))?;
    str_attr(&file, "kind", kind.trim())?;
    str_attr(&file, "spec", &spec)?;
    str_attr(&file, "solver", &solver)?;
    str_attr(&file, "units", &g.units)?;
    file.new_attr_builder().with_data(&g.v_ranges()).create("v_range")?;
    file.new_attr::<u64>().shape(()).create("nx")?.write_scalar(&(g.nx as u64))?;
    file.new_attr::<u64>().shape(()).create("ny")?.write_scalar(&(g.ny as u64))?;
    if let Some(z) = g.z {
        file.new_attr::<u64>().shape(()).create("nz")?.write_scalar(&(z.nz as u64))?;
    }
    file.new_attr::<f64>().shape(()).create("t_span")?.write_scalar(&m.t_span)?;
    let ex = file.create_group("exports")?;
    for (name, arr) in &m.exports {
        ex.new_dataset_builder().with_data(arr).create(name.as_str())?;
    }
    let cond = file.create_group("conditioning")?;
    let names: Vec<&str> = m.cond_ranges.iter().map(|c| c.0.as_str()).collect();
    str_attr(&cond, "names", &names.join(","))?;
    for (name, lo, hi) in &m.cond_ranges {
        cond.new_attr_builder().with_data(&[*lo, *hi]).create(name.as_str())?;
    }
    let notes = file.create_group("notes")?;
    for (k, v) in &m.notes {
        str_attr(&notes, k, v)?;
    }
    file.flush()?;
    Ok(())
}

/// Write `model` to `path` atomically.
pub fn write_model(path: &Path, model: &SavedModel) -> Result<(), SavedModelError> {
    let p = path.display().to_string();
    crate::io::write_atomic(path, |tmp| {
        write_inner(tmp, model).map_err(|e| SavedModelError::Invalid { path: p.clone(), msg: e.to_string() })
    })
    .map_err(|e| match e {
        SavedModelError::Io { source, .. } => SavedModelError::Io { path: p.clone(), source },
        other => other,
    })
}

fn read_inner(path: &Path) -> Result<SavedModel, String> {
    let file = crate::io::h5_open(path).map_err(|e| format!("not a readable HDF5 file ({e})"))?;
    if !file.attr_names().unwrap_or_default().iter().any(|n| n == "spec") && file.link_exists("f") && file.link_exists("t") {
        return Err("this is a run file (histograms /f, /t), not a model: give a model.h5 or a training run directory".into());
    }
    let attr = |n: &str| read_str_attr(&file, n).map_err(|e| format!("attribute `{n}`: {e}"));
    let spec: ModelSpec = serde_yaml::from_str(&attr("spec")?).map_err(|e| format!("attribute `spec`: {e}"))?;
    let solver: SolverSpec = serde_yaml::from_str(&attr("solver")?).map_err(|e| format!("attribute `solver`: {e}"))?;
    let units = attr("units")?;
    let v_range: Vec<f64> = file
        .attr("v_range")
        .and_then(|a| a.read_raw())
        .map_err(|e| format!("attribute `v_range`: {e}"))?;
    let count = |n: &str| -> Result<usize, String> {
        file.attr(n).and_then(|a| a.read_scalar::<u64>()).map(|v| v as usize).map_err(|e| format!("attribute `{n}`: {e}"))
    };
    let mut cells = vec![count("nx")?, count("ny")?];
    if file.attr_names().unwrap_or_default().iter().any(|n| n == "nz") {
        cells.push(count("nz")?);
    }
    let t_span: f64 = file.attr("t_span").and_then(|a| a.read_scalar()).map_err(|e| format!("attribute `t_span`: {e}"))?;
    let grid = VelocityGrid::from_parts(&cells, &v_range, units).map_err(|e| format!("attribute `v_range`/`nx`/`ny`: {e}"))?;
    let read3 = |n: &str| -> Result<ndarray::Array3<f64>, String> {
        file.dataset(n).and_then(|d| d.read()).map_err(|e| format!("dataset `{n}`: {e}"))
    };
    let fields = if file.link_exists("K") {
        read3("K")?
    } else {
        let dim = grid.dim();
        let read_part = |n: &str, parts: usize| -> Result<ndarray::Array3<f64>, String> {
            let x: ndarray::ArrayD<f64> = file.dataset(n).and_then(|d| d.read()).map_err(|e| format!("dataset `{n}`: {e}"))?;
            let mut want = vec![parts];
            want.extend(grid.extents());
            if x.shape() != want.as_slice() {
                return Err(format!("dataset `{n}` {:?} does not match the grid {} (expected {want:?})", x.shape(), grid.describe()));
            }
            Ok(x.into_shape_with_order(grid.fields_shape(parts)).expect("C-order dataset"))
        };
        let a = read_part("A", dim)?;
        let d = read_part("D", fp::n_fields(dim) - dim)?;
        ndarray::concatenate(ndarray::Axis(0), &[a.view(), d.view()]).map_err(|e| e.to_string())?
    };
    if fields.iter().any(|v| !v.is_finite()) {
        return Err("coefficient fields contain non-finite values".into());
    }
    let theta: Vec<f64> = file.dataset("theta").and_then(|d| d.read_raw()).map_err(|e| format!("dataset `theta`: {e}"))?;
    if theta.iter().any(|v| !v.is_finite()) {
        return Err("dataset `theta` contains non-finite values".into());
    }
    let mut exports = Vec::new();
    if let Ok(ex) = file.group("exports") {
        for name in ex.member_names().map_err(|e| e.to_string())? {
            let a: ArrayD<f64> = ex.dataset(&name).and_then(|d| d.read_dyn()).map_err(|e| format!("exports/{name}: {e}"))?;
            exports.push((name, a));
        }
    }
    let mut cond_ranges = Vec::new();
    if let Ok(c) = file.group("conditioning") {
        let names = read_str_attr(&c, "names").unwrap_or_default();
        for name in names.split(',').filter(|n| !n.is_empty()) {
            let r: Vec<f64> = c.attr(name).and_then(|a| a.read_raw()).map_err(|e| format!("conditioning/{name}: {e}"))?;
            if r.len() != 2 {
                return Err(format!("conditioning/{name}: expected [min, max]"));
            }
            cond_ranges.push((name.to_string(), r[0], r[1]));
        }
    }
    let mut notes = Vec::new();
    if let Ok(n) = file.group("notes") {
        for name in n.attr_names().unwrap_or_default() {
            if let Ok(v) = read_str_attr(&n, &name) {
                notes.push((name, v));
            }
        }
    }
    Ok(SavedModel { spec, solver, grid, theta, fields, cond_ranges, t_span, exports, notes })
}

/// Read a model file, validating what it holds.
pub fn read_model(path: &Path) -> Result<SavedModel, SavedModelError> {
    read_inner(path).map_err(|msg| SavedModelError::Invalid { path: path.display().to_string(), msg })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let grid = VelocityGrid::square(6, 2.0).unwrap();
        let fields = Fields::from_shape_fn((5, 6, 6), |(k, i, j)| (k * 100 + i * 10 + j) as f64 * 0.01);
        let m = SavedModel {
            spec: ModelSpec::default(),
            solver: SolverSpec::default(),
            grid: grid.clone(),
            theta: vec![1.0, -2.5, 3.25],
            fields: fields.clone(),
            cond_ranges: vec![("ppc".into(), 16.0, 64.0)],
            t_span: 95.0,
            exports: vec![("v_radial".into(), ndarray::arr1(&[0.0, 1.0, 2.0]).into_dyn())],
            notes: vec![("source".into(), "test".into())],
        };
        let p = dir.path().join("model.h5");
        write_model(&p, &m).unwrap();
        let r = read_model(&p).unwrap();
        assert_eq!(r.fields, fields);
        assert_eq!(r.theta, m.theta);
        assert_eq!(r.grid, grid);
        assert_eq!(r.cond_ranges, m.cond_ranges);
        assert_eq!(r.exports[0].1, m.exports[0].1);
        assert_eq!(r.notes, m.notes);
        std::fs::write(&p, b"not hdf5 at all").unwrap();
        let e = read_model(&p).unwrap_err().to_string();
        assert!(e.contains("model.h5") && e.contains("HDF5"), "{e}");
    }
}
