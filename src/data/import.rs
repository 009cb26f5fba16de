//! Importers from other layouts into run files. The reference code's layout is a folder of
//! `NNNNNN.npy` count histograms (2-D or 3-D float64, C order, index order v_x, v_y[, v_z]) plus
//! `args.yaml`.
//!
//! `args.yaml` keys used: `dt` (snapshot spacing, > 0), `i_start`, `i_end` (the file indices to
//! import, inclusive; `i_end: -1` = up to the last file), `v_range` `[xmin, xmax, ymin, ymax]`
//! (or 6 values with `zmin, zmax` for 3-D histograms), `v_range_units`, `n_bins` (one number for
//! a square or cubic grid, or `[nx, ny]` / `[nx, ny, nz]`). Every other key with
//! a numeric scalar value goes into `/params`. File index *i* has time *i*·dt. Indices below the
//! first file are simply absent (folders often start at `000005.npy`); a missing index between
//! two present ones is an error, since windows assume equally spaced snapshots.

use super::{validate, write_run, DataError, RunData};
use crate::grid::VelocityGrid;
use ndarray::{Array2, Array3, Axis};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The keys of `args.yaml` that describe the layout rather than the run.
const LAYOUT_KEYS: [&str; 6] = ["dt", "i_start", "i_end", "v_range", "v_range_units", "n_bins"];

/// What `args.yaml` says about a folder.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyFolderArgs {
    pub dt: f64,
    pub i_start: u64,
    /// `None` for `i_end: -1` (all files).
    pub i_end: Option<u64>,
    /// 4 values, or 6 for 3-D histograms.
    pub v_range: Vec<f64>,
    pub units: String,
    /// Cells per axis: 2 or 3 values.
    pub n_bins: Vec<usize>,
    /// Other numeric scalar keys.
    pub params: BTreeMap<String, f64>,
}

fn key_err(path: &Path, key: &str, msg: impl Into<String>) -> DataError {
    DataError::item(path, format!("key {key}"), msg)
}

fn number(path: &Path, key: &str, v: &Value) -> Result<f64, DataError> {
    v.as_f64().ok_or_else(|| key_err(path, key, format!("expected a number, found {}", describe(v))))
}

fn integer(path: &Path, key: &str, v: &Value) -> Result<i64, DataError> {
    v.as_i64().ok_or_else(|| key_err(path, key, format!("expected an integer, found {}", describe(v))))
}

fn describe(v: &Value) -> String {
    serde_yaml::to_string(v).map(|s| super::one_line(&s)).unwrap_or_else(|_| "an unprintable value".into())
}

impl NpyFolderArgs {
    /// Parse and check `args.yaml` at `path`.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let doc: Value =
            serde_yaml::from_str(&text).map_err(|e| DataError::invalid(path, format!("not valid YAML ({e})")))?;
        let map = doc.as_mapping().ok_or_else(|| DataError::invalid(path, "expected a mapping of keys"))?;
        let get = |key: &str| map.get(key).ok_or_else(|| key_err(path, key, "missing"));

        let dt = number(path, "dt", get("dt")?)?;
        if !(dt.is_finite() && dt > 0.0) {
            return Err(key_err(path, "dt", format!("{dt} must be finite and > 0")));
        }
        let i_start = integer(path, "i_start", get("i_start")?)?;
        let i_start = u64::try_from(i_start).map_err(|_| key_err(path, "i_start", format!("{i_start} must be ≥ 0")))?;
        let i_end = match integer(path, "i_end", get("i_end")?)? {
            -1 => None,
            e if e >= 0 && e as u64 >= i_start => Some(e as u64),
            e => return Err(key_err(path, "i_end", format!("{e} must be -1 (all) or ≥ i_start = {i_start}"))),
        };
        let v_range: Vec<f64> = match get("v_range")? {
            Value::Sequence(items) => items.iter().map(|v| number(path, "v_range", v)).collect::<Result<_, _>>()?,
            other => {
                return Err(key_err(
                    path,
                    "v_range",
                    format!("expected [xmin, xmax, ymin, ymax(, zmin, zmax)], found {}", describe(other)),
                ))
            }
        };
        if !(v_range.len() == 4 || v_range.len() == 6) {
            return Err(key_err(
                path,
                "v_range",
                format!("has {} values, expected [xmin, xmax, ymin, ymax] or 6 with zmin, zmax", v_range.len()),
            ));
        }
        let dims = v_range.len() / 2;
        let units = match get("v_range_units")? {
            Value::String(s) => s.clone(),
            other => {
                return Err(key_err(path, "v_range_units", format!("expected a string, found {}", describe(other))))
            }
        };
        let bins = |v: &Value| -> Result<usize, DataError> {
            let n = integer(path, "n_bins", v)?;
            usize::try_from(n).map_err(|_| key_err(path, "n_bins", format!("{n} must be positive")))
        };
        let n_bins: Vec<usize> = match get("n_bins")? {
            Value::Sequence(items) if items.len() == dims => items.iter().map(bins).collect::<Result<_, _>>()?,
            Value::Sequence(items) => {
                let want = if dims == 2 { "n or [nx, ny]" } else { "n or [nx, ny, nz] (v_range has 6 values)" };
                return Err(key_err(path, "n_bins", format!("has {} values, expected {want}", items.len())));
            }
            v => vec![bins(v)?; dims],
        };
        VelocityGrid::from_parts(&n_bins, &v_range, units.clone())
            .map_err(|e| key_err(path, "v_range/n_bins", e.to_string()))?;

        let mut params = BTreeMap::new();
        for (key, value) in map {
            let (Some(key), Some(x)) = (key.as_str(), value.as_f64()) else { continue };
            if LAYOUT_KEYS.contains(&key) {
                continue;
            }
            if !x.is_finite() {
                return Err(key_err(path, key, format!("{x} is not finite")));
            }
            validate::param(path, key, x)?;
            params.insert(key.to_string(), x);
        }
        Ok(Self { dt, i_start, i_end, v_range, units, n_bins, params })
    }
}

/// The `NNNNNN.npy` files of `folder` within `[i_start, i_end]`, sorted by index, checked for
/// gaps and duplicates.
fn snapshot_files(folder: &Path, args: &NpyFolderArgs, args_path: &Path) -> Result<Vec<(u64, PathBuf)>, DataError> {
    let entries = std::fs::read_dir(folder).map_err(|e| DataError::io(folder, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(folder, e))?.path();
        let Some(stem) = path.extension().filter(|e| *e == "npy").and(path.file_stem()).and_then(|s| s.to_str()) else {
            continue;
        };
        if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(index) = stem.parse::<u64>() else { continue };
        if index >= args.i_start && args.i_end.is_none_or(|end| index <= end) {
            files.push((index, path));
        }
    }
    files.sort();
    if files.is_empty() {
        let range = match args.i_end {
            Some(end) => format!("{}..={end}", args.i_start),
            None => format!("≥ {}", args.i_start),
        };
        return Err(DataError::invalid(
            folder,
            format!("no NNNNNN.npy files with index {range} (from {})", args_path.display()),
        ));
    }
    if files.len() < 2 {
        return Err(DataError::invalid(folder, format!("only {} snapshot file; at least 2 are needed", files.len())));
    }
    for pair in files.windows(2) {
        let ((a, pa), (b, pb)) = (&pair[0], &pair[1]);
        if a == b {
            return Err(DataError::invalid(
                folder,
                format!("{} and {} have the same index {a}", pa.display(), pb.display()),
            ));
        }
        if b - a > 1 {
            return Err(DataError::invalid(
                folder,
                format!("snapshot {:06}.npy is missing between {} and {}", a + 1, name(pa), name(pb)),
            ));
        }
    }
    if let Some(end) = args.i_end {
        let last = files[files.len() - 1].0;
        if last < end {
            tracing::warn!("{}: files end at index {last}, before i_end = {end}", folder.display());
        }
    }
    Ok(files)
}

fn name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// One histogram: a float64 array of the grid's shape (`n_bins`), finite and non-negative, as
/// `[nx, ny·nz]` (C order).
fn read_histogram(path: &Path, n_bins: &[usize]) -> Result<Array2<f64>, DataError> {
    let d = n_bins.len();
    let h: ndarray::ArrayD<f64> = ndarray_npy::read_npy(path)
        .map_err(|e| DataError::invalid(path, format!("cannot read as a {d}-D float64 .npy array ({e})")))?;
    if h.shape() != n_bins {
        return Err(DataError::invalid(path, format!("shape {:?} differs from n_bins = {n_bins:?} in args.yaml", h.shape())));
    }
    let rest: usize = n_bins[1..].iter().product();
    let h = h.as_standard_layout().into_owned().into_shape_with_order((n_bins[0], rest)).expect("C-order histogram");
    if let Some(((i, j), v)) = validate::first_bad_value(h.view()) {
        let cell = if d == 3 { format!("({i}, {}, {})", j / n_bins[2], j % n_bins[2]) } else { format!("({i}, {j})") };
        return Err(DataError::invalid(path, format!("cell {cell} = {v} must be finite and ≥ 0")));
    }
    Ok(h)
}

/// The name of a folder's run file: `<folder name>.h5`.
fn output_name(folder: &Path) -> Result<String, DataError> {
    if !folder.is_dir() {
        return Err(DataError::invalid(folder, "not a folder"));
    }
    let folder_name = std::path::absolute(folder)
        .ok()
        .and_then(|p| p.components().next_back().map(|c| c.as_os_str().to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .ok_or_else(|| DataError::invalid(folder, "cannot name the output after this folder"))?;
    Ok(format!("{folder_name}.h5"))
}

/// Import several folders into `out_dir`, all or nothing: the run files are built in a staging
/// directory beside `out_dir` and moved in only when every folder has imported. Two folders of
/// the same name (which would write the same file) are refused before any work.
pub fn import_npy_folders(folders: &[PathBuf], out_dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut names: Vec<(String, &PathBuf)> = Vec::new();
    for folder in folders {
        let name = output_name(folder)?;
        if let Some((_, other)) = names.iter().find(|(n, _)| *n == name) {
            return Err(DataError::invalid(
                folder,
                format!("both this folder and {} would be imported as {name}; rename one", other.display()),
            ));
        }
        names.push((name, folder));
    }
    let staged = crate::io::StagedDir::new(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    let mut written = Vec::new();
    for folder in folders {
        let path = import_npy_folder(folder, staged.path())?;
        written.push(staged.final_path(&path));
    }
    staged.commit().map_err(|e| DataError::io(out_dir, e))?;
    Ok(written)
}

/// Import one folder of the reference layout into `<out_dir>/<folder name>.h5` (written
/// atomically) and return that path. Values are copied bit for bit; `/t` holds index × dt.
pub fn import_npy_folder(folder: &Path, out_dir: &Path) -> Result<PathBuf, DataError> {
    let out_name = output_name(folder)?;
    let args_path = folder.join("args.yaml");
    let args = NpyFolderArgs::read(&args_path)?;
    let files = snapshot_files(folder, &args, &args_path)?;

    let (nx, rest) = (args.n_bins[0], args.n_bins[1..].iter().product());
    let mut f = Array3::<f64>::zeros((files.len(), nx, rest));
    for ((_, path), mut slot) in files.iter().zip(f.axis_iter_mut(Axis(0))) {
        slot.assign(&read_histogram(path, &args.n_bins)?);
    }
    let n_particles = super::particle_count(f.index_axis(Axis(0), 0));
    if n_particles <= 0.0 {
        return Err(DataError::invalid(&files[0].1, "first snapshot is empty (Σ counts = 0)"));
    }
    let grid = VelocityGrid::from_parts(&args.n_bins, &args.v_range, args.units.clone())
        .map_err(|e| key_err(&args_path, "v_range/n_bins", e.to_string()))?;
    let run = RunData {
        grid,
        f,
        t: files.iter().map(|(i, _)| *i as f64 * args.dt).collect(),
        dt: args.dt,
        n_particles,
        params: args.params,
        tracks: None,
        diagnostics: BTreeMap::new(),
        labels: Default::default(),
    };
    let out = out_dir.join(out_name);
    write_run(&out, &run)?;
    Ok(out)
}
