//! Thin HDF5 helpers for run files: typed attribute and dataset access with one-line errors that
//! name the file and item, and the raw writer behind [`super::write_run`].

use super::{DataError, RunData};
use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, Location};
use std::path::Path;

/// Open `path` read-only; a missing file, a directory or a non-HDF5 file is an error, never a panic.
pub(crate) fn open(path: &Path) -> Result<hdf5::File, DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !meta.is_file() {
        return Err(DataError::invalid(path, "not a file"));
    }
    crate::io::h5_open(path).map_err(|e| DataError::invalid(path, format!("not a readable HDF5 file ({e})")))
}

/// Whether values of this type convert to f64 (integers and floats).
fn is_numeric(desc: &TypeDescriptor) -> bool {
    matches!(desc, TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Float(_))
}

/// A numpy-like name of an HDF5 type for error messages (`int64`, `float32`, `string`, ...).
fn describe(desc: &TypeDescriptor) -> String {
    match desc {
        TypeDescriptor::Integer(size) => format!("int{}", 8 * *size as usize),
        TypeDescriptor::Unsigned(size) => format!("uint{}", 8 * *size as usize),
        TypeDescriptor::Float(size) => format!("float{}", 8 * *size as usize),
        TypeDescriptor::Boolean => "bool".into(),
        TypeDescriptor::Enum(_) => "enum".into(),
        TypeDescriptor::Compound(_) => "compound".into(),
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => format!("string ({n} bytes)"),
        TypeDescriptor::VarLenAscii | TypeDescriptor::VarLenUnicode => "string".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// An existing dataset of numeric type, or an error naming `item`.
pub(crate) fn numeric_dataset(path: &Path, group: &hdf5::Group, name: &str, item: &str) -> Result<Dataset, DataError> {
    if !group.link_exists(name) {
        return Err(DataError::item(path, item, "missing dataset"));
    }
    let ds = group.dataset(name).map_err(|e| DataError::item(path, item, format!("not a readable dataset ({e})")))?;
    let desc = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| DataError::item(path, item, format!("unreadable type ({e})")))?;
    if !is_numeric(&desc) {
        return Err(DataError::item(path, item, format!("type {} is not numeric (expected float64)", describe(&desc))));
    }
    Ok(ds)
}

/// Shape of a dataset with the expected rank, or an error naming `item`.
pub(crate) fn shape(path: &Path, ds: &Dataset, item: &str, rank: usize, layout: &str) -> Result<Vec<usize>, DataError> {
    let shape = ds.shape();
    if shape.len() != rank {
        return Err(DataError::item(path, item, format!("rank {} (shape {shape:?}), expected {layout}", shape.len())));
    }
    Ok(shape)
}

/// All values of a numeric attribute, converted to f64 (a scalar gives one value).
pub(crate) fn attr_f64s(path: &Path, loc: &Location, name: &str, item: &str) -> Result<Vec<f64>, DataError> {
    let attr = loc.attr(name).map_err(|_| DataError::item(path, item, "missing attribute"))?;
    let desc = attr
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| DataError::item(path, item, format!("unreadable type ({e})")))?;
    if !is_numeric(&desc) {
        return Err(DataError::item(path, item, format!("type {} is not numeric", describe(&desc))));
    }
    attr.read_raw::<f64>().map_err(|e| DataError::item(path, item, format!("unreadable ({e})")))
}

/// A numeric scalar attribute (a one-element array is accepted too).
pub(crate) fn attr_f64(path: &Path, loc: &Location, name: &str, item: &str) -> Result<f64, DataError> {
    match attr_f64s(path, loc, name, item)?.as_slice() {
        [x] => Ok(*x),
        v => Err(DataError::item(path, item, format!("has {} values, expected one number", v.len()))),
    }
}

/// Whether attribute `name` of `loc` holds a string (of any kind).
pub(crate) fn attr_is_string(loc: &Location, name: &str) -> bool {
    loc.attr(name).and_then(|a| a.dtype()).and_then(|t| t.to_descriptor()).is_ok_and(|d| {
        matches!(d, TypeDescriptor::VarLenUnicode | TypeDescriptor::VarLenAscii | TypeDescriptor::FixedAscii(_) | TypeDescriptor::FixedUnicode(_))
    })
}

/// A string attribute, variable- or fixed-length, ASCII or UTF-8, scalar or one-element array.
pub(crate) fn attr_string(path: &Path, loc: &Location, name: &str, item: &str) -> Result<String, DataError> {
    let attr = loc.attr(name).map_err(|_| DataError::item(path, item, "missing attribute"))?;
    let desc = attr
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| DataError::item(path, item, format!("unreadable type ({e})")))?;
    let err = |e: hdf5::Error| DataError::item(path, item, format!("unreadable string ({e})"));
    let values: Vec<String> = match desc {
        TypeDescriptor::VarLenUnicode => {
            attr.read_raw::<VarLenUnicode>().map_err(err)?.iter().map(|s| s.to_string()).collect()
        }
        TypeDescriptor::VarLenAscii => {
            attr.read_raw::<VarLenAscii>().map_err(err)?.iter().map(|s| s.to_string()).collect()
        }
        TypeDescriptor::FixedAscii(n) if n <= 256 => {
            attr.read_raw::<FixedAscii<256>>().map_err(err)?.iter().map(|s| s.to_string()).collect()
        }
        TypeDescriptor::FixedUnicode(n) if n <= 256 => {
            attr.read_raw::<FixedUnicode<256>>().map_err(err)?.iter().map(|s| s.to_string()).collect()
        }
        other => {
            return Err(DataError::item(
                path,
                item,
                format!("type {} is not a string (of at most 256 bytes)", describe(&other)),
            ))
        }
    };
    match values.as_slice() {
        [s] => Ok(s.trim_end_matches('\0').to_string()),
        v => Err(DataError::item(path, item, format!("has {} values, expected one string", v.len()))),
    }
}

/// Write `run` to a new HDF5 file at `path` (not atomic: the caller renames).
pub(crate) fn write_run_file(path: &Path, run: &RunData, extra: Option<super::ExtraWriter<'_>>) -> hdf5::Result<()> {
    let file = crate::io::h5_create(path)?;
    let (n_t, nx, ny) = run.f.dim();
    match run.grid.z {
        None => {
            file.new_dataset_builder().with_data(run.f.view()).chunk((1, nx, ny)).create("f")?;
        }
        Some(z) => {
            // In memory [T, Nx, Ny·Nz]; on disk [T, Nx, Ny, Nz].
            let ny = run.grid.ny;
            let f4 = run.f.view().into_shape_with_order((n_t, nx, ny, z.nz)).map_err(|e| hdf5::Error::from(format!("/f: {e}")))?;
            file.new_dataset_builder().with_data(f4).chunk((1, nx, ny, z.nz)).create("f")?;
        }
    }
    file.new_dataset_builder().with_data(run.t.as_slice()).create("t")?;
    file.new_attr_builder().with_data(run.grid.v_ranges().as_slice()).create("v_range")?;
    let units: VarLenUnicode = run.grid.units.parse().map_err(|e| hdf5::Error::from(format!("units: {e}")))?;
    file.new_attr::<VarLenUnicode>().shape(()).create("units")?.write_scalar(&units)?;
    file.new_attr::<f64>().shape(()).create("dt")?.write_scalar(&run.dt)?;
    file.new_attr::<f64>().shape(()).create("n_particles")?.write_scalar(&run.n_particles)?;
    let params = file.create_group("params")?;
    for (name, label) in &run.labels {
        let v: VarLenUnicode = label.parse().map_err(|e| hdf5::Error::from(format!("/params/{name}: {e}")))?;
        params.new_attr::<VarLenUnicode>().shape(()).create(name.as_str())?.write_scalar(&v)?;
    }
    for (name, value) in &run.params {
        params.new_attr::<f64>().shape(()).create(name.as_str())?.write_scalar(value)?;
    }
    if let Some(tracks) = &run.tracks {
        let (n_dumps, n_tracked, _) = tracks.dim();
        let builder = file.new_dataset_builder().with_data(tracks.view());
        if n_dumps > 0 && n_tracked > 0 {
            builder.chunk((1, n_tracked, run.grid.dim())).create("tracks")?;
        } else {
            builder.create("tracks")?;
        }
    }
    if !run.diagnostics.is_empty() {
        let group = file.create_group("diagnostics")?;
        for (name, values) in &run.diagnostics {
            group.new_dataset_builder().with_data(values.view()).create(name.as_str())?;
        }
        // The energy drift series summarised where h5ls and h5py's attrs show it at a glance.
        if let Some(drift) = run.diagnostics.get("energy_drift").filter(|d| !d.is_empty()) {
            let last = drift[drift.len() - 1];
            let max = drift.iter().fold(0.0f64, |m, d| m.max(d.abs()));
            group.new_attr::<f64>().shape(()).create("energy_drift")?.write_scalar(&last)?;
            group.new_attr::<f64>().shape(()).create("energy_drift_max")?.write_scalar(&max)?;
        }
    }
    if let Some(extra) = extra {
        extra(&file)?;
    }
    file.flush()?;
    Ok(())
}
