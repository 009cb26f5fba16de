//! [`RunFile`]: a validated handle on one run file that reads metadata up front and snapshots
//! on demand, as hyperslabs, so a rank holds only the snapshots its windows need.

use super::{h5, validate, DataError};
use crate::grid::VelocityGrid;
use ndarray::{s, Array1, Array2, Array3, Ix1, Ix3, Ix4};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A run's metadata: everything but the snapshot values, tracks and diagnostics.
#[derive(Clone, Debug, PartialEq)]
pub struct RunMeta {
    /// The file the run was read from.
    pub path: PathBuf,
    /// Short name of the run: the file stem (`runs/a.h5` → `a`).
    pub name: String,
    pub grid: VelocityGrid,
    /// Snapshot times, 1/ω_p.
    pub t: Vec<f64>,
    /// Snapshot spacing, 1/ω_p (the mean spacing if uneven).
    pub dt: f64,
    /// Whether every interval of `t` is `dt` (to 1e-6 relative).
    pub uniform: bool,
    pub n_particles: f64,
    pub params: BTreeMap<String, f64>,
    /// String attributes of `/params`.
    pub labels: BTreeMap<String, String>,
    /// Whether the file has a `/tracks` dataset.
    pub has_tracks: bool,
}

impl RunMeta {
    /// The snapshot spacing: `dt`, or every interval's length if uneven.
    pub fn spacing(&self) -> Spacing {
        if self.uniform {
            Spacing::Uniform(self.dt)
        } else {
            Spacing::per_interval(&self.t)
        }
    }

    pub fn n_snapshots(&self) -> usize {
        self.t.len()
    }

    /// The run's own number of snapshot `k`: `round(t_k / dt)`.
    pub fn snapshot_number(&self, k: usize) -> i64 {
        (self.t[k] / self.dt).round() as i64
    }

    /// Index of the first snapshot whose own number is at least `i_start`, if any: where
    /// training and evaluation start. A run imported from a folder starting at `000005.npy` has
    /// index 0 for `i_start` ≤ 5.
    pub fn first_index(&self, i_start: usize) -> Option<usize> {
        let i_start = i64::try_from(i_start).unwrap_or(i64::MAX);
        (0..self.n_snapshots()).find(|&k| self.snapshot_number(k) >= i_start)
    }
}

/// The snapshot spacing of a run: one Δt, or one length per interval (unevenly spaced dumps).
#[derive(Clone, Debug, PartialEq)]
pub enum Spacing {
    Uniform(f64),
    /// `t[row + 1] − t[row]` of every interval row.
    PerInterval(Vec<f64>),
}

impl Spacing {
    /// The interval lengths of snapshot times `t`.
    pub fn per_interval(t: &[f64]) -> Self {
        Spacing::PerInterval(t.windows(2).map(|w| w[1] - w[0]).collect())
    }
    pub fn is_uniform(&self) -> bool {
        matches!(self, Spacing::Uniform(_))
    }
    /// The longest interval (what `substeps: auto` must bound).
    pub fn longest(&self) -> f64 {
        match self {
            Spacing::Uniform(dt) => *dt,
            Spacing::PerInterval(d) => d.iter().copied().fold(0.0, f64::max),
        }
    }
    /// Length of interval `row → row + 1`.
    pub fn interval(&self, row: usize) -> f64 {
        match self {
            Spacing::Uniform(dt) => *dt,
            Spacing::PerInterval(d) => d[row],
        }
    }
}

/// A run file whose metadata have been read and validated. Holds no open HDF5 handle: each read
/// reopens the file, so a `RunFile` is cheap to clone and to share between threads.
#[derive(Clone, Debug)]
pub struct RunFile {
    pub meta: RunMeta,
}

impl RunFile {
    /// Open `path` and validate its metadata (schema in the [module docs](super)); no snapshot
    /// values are read.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let file = h5::open(path)?;
        let ds = h5::numeric_dataset(path, &file, "f", "/f")?;
        let shape = ds.shape();
        if !(shape.len() == 3 || shape.len() == 4) {
            return Err(DataError::item(
                path,
                "/f",
                format!("rank {} (shape {shape:?}), expected [T, Nx, Ny] or [T, Nx, Ny, Nz]", shape.len()),
            ));
        }
        let n_snapshots = shape[0];

        let v_range = h5::attr_f64s(path, &file, "v_range", "attribute v_range")?;
        let units = h5::attr_string(path, &file, "units", "attribute units")?;
        let grid = validate::grid(path, &v_range, &units, &shape[1..])?;
        let dt = h5::attr_f64(path, &file, "dt", "attribute dt")?;
        validate::dt(path, dt)?;
        let n_particles = h5::attr_f64(path, &file, "n_particles", "attribute n_particles")?;
        validate::n_particles(path, n_particles)?;

        let t_ds = h5::numeric_dataset(path, &file, "t", "/t")?;
        h5::shape(path, &t_ds, "/t", 1, "[T]")?;
        let t = t_ds.read_raw::<f64>().map_err(|e| DataError::item(path, "/t", format!("unreadable ({e})")))?;
        let uniform = validate::times(path, &t, n_snapshots, dt)?;
        if !uniform {
            validate::warn_uneven(path, &t);
        }

        let (mut params, mut labels) = (BTreeMap::new(), BTreeMap::new());
        if file.link_exists("params") {
            let group =
                file.group("params").map_err(|e| DataError::item(path, "/params", format!("not a group ({e})")))?;
            let names =
                group.attr_names().map_err(|e| DataError::item(path, "/params", format!("unreadable ({e})")))?;
            for name in names {
                if h5::attr_is_string(&group, &name) {
                    let label = h5::attr_string(path, &group, &name, &format!("/params/{name}"))?;
                    labels.insert(name, label);
                    continue;
                }
                let value = h5::attr_f64(path, &group, &name, &format!("/params/{name}"))?;
                validate::param(path, &name, value)?;
                params.insert(name, value);
            }
        }

        let has_tracks = file.link_exists("tracks");
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let meta = RunMeta { path: path.to_path_buf(), name, grid, t, dt, uniform, n_particles, params, labels, has_tracks };
        Ok(Self { meta })
    }

    pub fn path(&self) -> &Path {
        &self.meta.path
    }

    /// Snapshots `range` (indices into `/t`) as `[len, Nx, Ny·Nz]` (`Nz` = 1 in 2D: the cells in
    /// C order, as in [`crate::operator::Fields`]), read as one hyperslab and validated (finite,
    /// non-negative; errors name the snapshot and cell).
    pub fn read_snapshots(&self, range: Range<usize>) -> Result<Array3<f64>, DataError> {
        let path = &self.meta.path;
        let grid = &self.meta.grid;
        let n = self.meta.n_snapshots();
        if range.start > range.end || range.end > n {
            return Err(DataError::item(path, "/f", format!("snapshots {range:?} are outside 0..{n}")));
        }
        let file = h5::open(path)?;
        let ds = h5::numeric_dataset(path, &file, "f", "/f")?;
        let shape = ds.shape();
        let mut expected = vec![n];
        expected.extend(grid.extents());
        if shape != expected {
            return Err(DataError::item(
                path,
                "/f",
                format!("shape {shape:?} changed since opening (was {expected:?})"),
            ));
        }
        let unreadable = |e: hdf5::Error| DataError::item(path, "/f", format!("cannot read snapshots {range:?} ({e})"));
        let f = match grid.z {
            None => ds.read_slice::<f64, _, Ix3>(s![range.start..range.end, .., ..]).map_err(unreadable)?,
            Some(z) => {
                let f4 = ds.read_slice::<f64, _, Ix4>(s![range.start..range.end, .., .., ..]).map_err(unreadable)?;
                let len = f4.len_of(ndarray::Axis(0));
                f4.into_shape_with_order((len, grid.nx, grid.ny * z.nz)).expect("C-order hyperslab")
            }
        };
        validate::snapshots(path, f.view(), range.start, &self.meta.t, grid.z.map(|z| z.nz))?;
        Ok(f)
    }

    /// One snapshot `[Nx, Ny·Nz]`.
    pub fn read_snapshot(&self, k: usize) -> Result<Array2<f64>, DataError> {
        let f = self.read_snapshots(k..k + 1)?;
        Ok(f.index_axis_move(ndarray::Axis(0), 0))
    }

    /// The run's normalisation: the particle count (Σ f) of its first used snapshot, the first
    /// at or after `i_start` in the run's own numbering (see [`RunMeta::first_index`]). Reads that
    /// one snapshot, so every rank gets the same value whatever its shard.
    pub fn normalisation(&self, i_start: usize) -> Result<f64, DataError> {
        let k = self.first_index_checked(i_start)?;
        let count = super::particle_count(self.read_snapshot(k)?.view());
        if count > 0.0 && count.is_finite() {
            Ok(count)
        } else {
            Err(DataError::item(
                &self.meta.path,
                "/f",
                format!("snapshot {k} (first used, i_start = {i_start}) is empty: Σf = {count}"),
            ))
        }
    }

    /// [`RunMeta::first_index`], or an error naming the file when every snapshot is before `i_start`.
    pub fn first_index_checked(&self, i_start: usize) -> Result<usize, DataError> {
        self.meta.first_index(i_start).ok_or_else(|| {
            let last = self.meta.snapshot_number(self.meta.n_snapshots() - 1);
            DataError::invalid(
                &self.meta.path,
                format!("no snapshot at or after i_start = {i_start} (last is number {last})"),
            )
        })
    }

    /// `/tracks` `[n_dumps, n_tracked, d]` for a d-dimensional grid, if present (values must be
    /// finite).
    pub fn read_tracks(&self) -> Result<Option<Array3<f64>>, DataError> {
        if !self.meta.has_tracks {
            return Ok(None);
        }
        let path = &self.meta.path;
        let file = h5::open(path)?;
        let ds = h5::numeric_dataset(path, &file, "tracks", "/tracks")?;
        let d = self.meta.grid.dim();
        let shape = h5::shape(path, &ds, "/tracks", 3, &format!("[n_dumps, n_tracked, {d}]"))?;
        if shape[2] != d {
            return Err(DataError::item(path, "/tracks", format!("shape {shape:?}, expected [n_dumps, n_tracked, {d}] for a {d}-D grid")));
        }
        let tracks =
            ds.read::<f64, Ix3>().map_err(|e| DataError::item(path, "/tracks", format!("unreadable ({e})")))?;
        if let Some(((d, p, c), v)) = tracks.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(DataError::item(path, "/tracks", format!("value [{d}, {p}, {c}] = {v} is not finite")));
        }
        Ok(Some(tracks))
    }

    /// The 1-D datasets of `/diagnostics` (empty if the group is absent).
    pub fn read_diagnostics(&self) -> Result<BTreeMap<String, Array1<f64>>, DataError> {
        let path = &self.meta.path;
        let file = h5::open(path)?;
        let mut out = BTreeMap::new();
        if !file.link_exists("diagnostics") {
            return Ok(out);
        }
        let group = file
            .group("diagnostics")
            .map_err(|e| DataError::item(path, "/diagnostics", format!("not a group ({e})")))?;
        let names =
            group.member_names().map_err(|e| DataError::item(path, "/diagnostics", format!("unreadable ({e})")))?;
        for name in names {
            let item = format!("/diagnostics/{name}");
            let ds = h5::numeric_dataset(path, &group, &name, &item)?;
            h5::shape(path, &ds, &item, 1, "1-D")?;
            let values =
                ds.read::<f64, Ix1>().map_err(|e| DataError::item(path, &item, format!("unreadable ({e})")))?;
            out.insert(name, values);
        }
        Ok(out)
    }
}

/// All runs used together must share one grid (cells, range, units); the error names the first
/// file that differs from the first file.
pub fn check_compatible(files: &[RunFile]) -> Result<(), DataError> {
    let Some(first) = files.first() else { return Ok(()) };
    for other in &files[1..] {
        if !first.meta.grid.compatible(&other.meta.grid) {
            return Err(DataError::invalid(
                other.path(),
                format!(
                    "grid {} differs from {} in {}",
                    other.meta.grid.describe(),
                    first.meta.grid.describe(),
                    first.path().display()
                ),
            ));
        }
    }
    Ok(())
}

/// Open every run file (metadata only) and check that their grids agree: what training and
/// evaluation do first, before any work starts.
pub fn open_runs<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<Vec<RunFile>, DataError> {
    let files = paths.into_iter().map(|p| RunFile::open(p.as_ref())).collect::<Result<Vec<_>, _>>()?;
    check_compatible(&files)?;
    Ok(files)
}
