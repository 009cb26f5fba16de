//! The validation rules of a run file, shared by the reader, the writer and the importers.

use super::{DataError, RunData};
use crate::grid::VelocityGrid;
use ndarray::{ArrayView2, ArrayView3};
use std::path::Path;

/// Relative tolerance of the snapshot spacing against `dt`.
pub(crate) const SPACING_RTOL: f64 = 1e-6;

/// The velocity grid from the `v_range` and `units` attributes and the cell counts of `/f`
/// (`[Nx, Ny]` or `[Nx, Ny, Nz]`; `v_range` then has 4 or 6 values).
pub(crate) fn grid(path: &Path, v_range: &[f64], units: &str, cells: &[usize]) -> Result<VelocityGrid, DataError> {
    let want = 2 * cells.len();
    if v_range.len() != want {
        return Err(DataError::item(
            path,
            "attribute v_range",
            format!("has {} values, expected {want} for a {}-D grid", v_range.len(), cells.len()),
        ));
    }
    let names = ["vx", "vy", "vz"];
    for (a, pair) in v_range.chunks_exact(2).enumerate() {
        if !(pair[0].is_finite() && pair[1].is_finite() && pair[0] < pair[1]) {
            return Err(DataError::item(
                path,
                "attribute v_range",
                format!("{v_range:?} must be finite with {0}_min < {0}_max", names[a]),
            ));
        }
    }
    VelocityGrid::from_parts(cells, v_range, units).map_err(|e| DataError::item(path, "/f", e.to_string()))
}

/// The snapshot spacing: finite and positive.
pub(crate) fn dt(path: &Path, dt: f64) -> Result<(), DataError> {
    if dt.is_finite() && dt > 0.0 {
        Ok(())
    } else {
        Err(DataError::item(path, "attribute dt", format!("{dt} must be finite and > 0")))
    }
}

/// The particle count attribute: finite and positive.
pub(crate) fn n_particles(path: &Path, n: f64) -> Result<(), DataError> {
    if n.is_finite() && n > 0.0 {
        Ok(())
    } else {
        Err(DataError::item(path, "attribute n_particles", format!("{n} must be finite and > 0")))
    }
}

/// Snapshot times: `n_snapshots ≥ 2` of them, finite, strictly increasing. Returns whether they
/// are evenly spaced by `dt` (uneven spacing is allowed: each interval is integrated over its own
/// length).
pub(crate) fn times(path: &Path, t: &[f64], n_snapshots: usize, dt: f64) -> Result<bool, DataError> {
    let bad = |msg: String| Err(DataError::item(path, "/t", msg));
    if t.len() != n_snapshots {
        return bad(format!("has {} times but /f has {n_snapshots} snapshots", t.len()));
    }
    if n_snapshots < 2 {
        return bad(format!("{n_snapshots} snapshot(s); at least 2 are needed"));
    }
    if let Some(k) = t.iter().position(|x| !x.is_finite()) {
        return bad(format!("time {k} is {}, not finite", t[k]));
    }
    let mut uniform = true;
    for k in 1..t.len() {
        let step = t[k] - t[k - 1];
        if step <= 0.0 {
            return bad(format!("not increasing at snapshot {k}: t = {} after {}", t[k], t[k - 1]));
        }
        uniform &= (step - dt).abs() <= SPACING_RTOL * dt;
    }
    Ok(uniform)
}

/// Warn, once per file and process, that `path`'s snapshots are unevenly spaced.
pub(crate) fn warn_uneven(path: &Path, t: &[f64]) {
    static WARNED: std::sync::Mutex<std::collections::BTreeSet<std::path::PathBuf>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.insert(path.to_path_buf()) {
        let steps = t.windows(2).map(|w| w[1] - w[0]);
        let (lo, hi) = steps.fold((f64::INFINITY, 0.0f64), |(lo, hi), s| (lo.min(s), hi.max(s)));
        tracing::warn!(
            "{}: snapshots are unevenly spaced (intervals {lo:.6} to {hi:.6} 1/ω_p); each interval is integrated over its own length",
            path.display()
        );
    }
}

/// Values of snapshots `first..first + f.len_of(0)` (`[len, Nx, Ny·Nz]`, `nz` = 1 in 2D): finite
/// and non-negative; the error names the cell by its 2 or 3 indices.
pub(crate) fn snapshots(path: &Path, f: ArrayView3<f64>, first: usize, t: &[f64], nz: Option<usize>) -> Result<(), DataError> {
    for (k, snap) in f.outer_iter().enumerate() {
        if let Some(((i, j), v)) = first_bad_value(snap) {
            let index = first + k;
            let time = t.get(index).map(|t| format!(" (t = {t})")).unwrap_or_default();
            let what = if v.is_finite() { "negative" } else { "not finite" };
            let cell = match nz {
                Some(nz) => format!("({i}, {}, {})", j / nz, j % nz),
                None => format!("({i}, {j})"),
            };
            return Err(DataError::item(path, "/f", format!("snapshot {index}{time}: cell {cell} = {v} is {what}")));
        }
    }
    Ok(())
}

/// The first value (C order) that is not finite or is negative, with its cell.
pub(crate) fn first_bad_value(snapshot: ArrayView2<f64>) -> Option<((usize, usize), f64)> {
    snapshot.indexed_iter().find(|(_, v)| !(v.is_finite() && **v >= 0.0)).map(|(ij, v)| (ij, *v))
}

/// A `/params` entry: a usable name and a finite value.
pub(crate) fn param(path: &Path, name: &str, value: f64) -> Result<(), DataError> {
    if name.is_empty() || name.contains('/') {
        return Err(DataError::item(path, "/params", format!("invalid parameter name {name:?}")));
    }
    if !value.is_finite() {
        return Err(DataError::item(path, format!("/params/{name}"), format!("{value} is not finite")));
    }
    Ok(())
}

/// Everything the reader checks, on in-memory data about to be written to `path`.
pub(crate) fn run_data(path: &Path, run: &RunData) -> Result<(), DataError> {
    let (n_snapshots, nx, nyz) = run.f.dim();
    let g = &run.grid;
    grid(path, &g.v_ranges(), &g.units, &g.extents())?;
    if (nx, nyz) != (g.nx, g.ny * g.nz()) {
        return Err(DataError::item(path, "/f", format!("snapshots are {nx}×{nyz} cells but the grid is {}", g.describe())));
    }
    dt(path, run.dt)?;
    n_particles(path, run.n_particles)?;
    times(path, &run.t, n_snapshots, run.dt)?;
    snapshots(path, run.f.view(), 0, &run.t, run.grid.z.map(|z| z.nz))?;
    for (name, value) in &run.params {
        param(path, name, *value)?;
    }
    for name in run.labels.keys() {
        param(path, name, 0.0)?;
        if run.params.contains_key(name) {
            return Err(DataError::item(path, format!("/params/{name}"), "is both a number and a label"));
        }
    }
    if let Some(tracks) = &run.tracks {
        let d = run.grid.dim();
        if tracks.len_of(ndarray::Axis(2)) != d {
            return Err(DataError::item(
                path,
                "/tracks",
                format!("shape {:?}, expected [n_dumps, n_tracked, {d}] for a {d}-D grid", tracks.shape()),
            ));
        }
    }
    for name in run.diagnostics.keys() {
        if name.is_empty() || name.contains('/') {
            return Err(DataError::item(path, "/diagnostics", format!("invalid dataset name {name:?}")));
        }
    }
    Ok(())
}
