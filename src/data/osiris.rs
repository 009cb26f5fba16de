//! Reader of OSIRIS HDF5 output: RAW particle dumps (as a [`DumpSource`] for
//! [`super::particles::import`]) and 2-D momentum phase-space diagnostics (imported as they are).
//!
//! Layout read, as written by OSIRIS's diagnostic writers (`source/dutil/os-diagfile-hdf5.f03`,
//! root attributes; `source/dutil/os-dutil-hdf5.f90`, `add_iteration_info`, `add_part_info`,
//! `add_grid_info`, `add_sim_info`). Attributes are 1-element arrays, strings fixed-length:
//!
//! * RAW dumps `MS/RAW/<species>/RAW-<species>-<NNNNNN>.h5`: root attributes `TYPE` =
//!   `particles`, `NAME`, `ITER`, `TIME`, `TIME UNITS` (`1 / \omega_p`), `QUANTS`, `LABELS`,
//!   `UNITS`; group `SIMULATION` with `DT` (older versions: `DT` at the root). One 1-D dataset
//!   per quantity: `x1…`, `p1`, `p2`, `p3` (proper velocity u = γv/c, in units of m c), `ene`,
//!   `q` (macroparticle charge, normalised) and, when tags are on, `tag` (int32 `[N, 2]`:
//!   creating node, particle index).
//! * phase spaces `MS/PHA/<p1p2>/<species>/<p1p2>-<species>-<NNNNNN>.h5`: root attributes
//!   `TYPE` = `grid`, `ITER`, `TIME`, `TIME UNITS`, `LABEL`, `UNITS`; dataset `<p1p2>` of h5py
//!   shape `[n_p2, n_p1]` (Fortran order on disk); group `AXIS` with datasets `AXIS1`, `AXIS2`
//!   holding `[min, max]` of each axis (attributes `NAME`, `UNITS`, `LONG_NAME`).
//!
//! Units are OSIRIS's normalised ones: time in 1/ω_p, momenta in m c. A RAW particle has weight
//! `|q|` and velocity `β_c = p_c / γ`, `γ = √(((1 + p1²) + p2²) + p3²)`; its id (for tracks) is
//! `node · 2³² + index` from `tag`. Phase-space cells hold |charge| and their axes are momenta
//! u = γβ, taken as velocities (exact for v ≪ c; a warning is given past |u| = 0.1).
//! OSIRIS's ZDF format is not read.

use super::particles::{Chunk, DumpSource, Sink, CHUNK};
use super::{h5, write_run, DataError, RunData};
use crate::grid::VelocityGrid;
use ndarray::{s, Array2, Array3, Ix2};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MOMENTA: [&str; 3] = ["p1", "p2", "p3"];

/// The folder of one diagnostic of one species: `<dir>/MS/<kind>/<species>`, `<dir>/<kind>/<species>`
/// or `dir` itself when it already holds the files.
fn diagnostic_folder(dir: &Path, kind: &[&str], species: &str, prefix: &str) -> Result<PathBuf, DataError> {
    if !dir.is_dir() {
        return Err(DataError::invalid(dir, "not a folder"));
    }
    let mut tried = Vec::new();
    for root in [dir.join("MS"), dir.to_path_buf()] {
        let parent = kind.iter().fold(root, |p, k| p.join(k));
        let candidate = parent.join(species);
        if candidate.is_dir() {
            return Ok(candidate);
        }
        if parent.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&parent)
                .map_err(|e| DataError::io(&parent, e))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            return Err(DataError::invalid(
                &parent,
                format!("no species {species:?}; species present: {}", if names.is_empty() { "none".into() } else { names.join(", ") }),
            ));
        }
        tried.push(parent.display().to_string());
    }
    let own = list_dumps(dir, prefix)?;
    if !own.is_empty() {
        return Ok(dir.to_path_buf());
    }
    Err(DataError::invalid(dir, format!("no OSIRIS {} output for {species:?} (looked in {})", kind.join("/"), tried.join(", "))))
}

/// `<prefix><digits>.h5` files of a folder, by number.
fn list_dumps(folder: &Path, prefix: &str) -> Result<Vec<(u64, PathBuf)>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(|e| DataError::io(folder, e))? {
        let path = entry.map_err(|e| DataError::io(folder, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(mid) = name.strip_prefix(prefix).and_then(|r| r.strip_suffix(".h5")) else { continue };
        if !mid.is_empty() && mid.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = mid.parse() {
                out.push((n, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `TIME` of a file, checking that `TIME UNITS` are 1/ω_p.
fn file_time(path: &Path, file: &hdf5::File) -> Result<f64, DataError> {
    let t = h5::attr_f64(path, file, "TIME", "attribute TIME")?;
    if let Ok(units) = h5::attr_string(path, file, "TIME UNITS", "attribute TIME UNITS") {
        if !units.contains("omega_p") {
            return Err(DataError::item(path, "attribute TIME UNITS", format!("{units:?}: only normalised units (1/ω_p) are supported")));
        }
    }
    Ok(t)
}

/// `DT` from the `SIMULATION` group or the root, if present.
fn file_step(path: &Path, file: &hdf5::File) -> Result<Option<f64>, DataError> {
    if let Ok(sim) = file.group("SIMULATION") {
        if sim.attr("DT").is_ok() {
            return h5::attr_f64(path, &sim, "DT", "SIMULATION attribute DT").map(Some);
        }
    }
    if file.attr("DT").is_ok() {
        return h5::attr_f64(path, file, "DT", "attribute DT").map(Some);
    }
    Ok(None)
}

/// RAW dumps of one species.
pub struct RawDumps {
    files: Vec<(u64, PathBuf)>,
    components: [usize; 2],
}

impl RawDumps {
    /// The RAW dumps of `species` under `dir` whose iteration `keep` accepts; `components` are
    /// indices into p1, p2, p3.
    pub fn open(dir: &Path, species: &str, components: [usize; 2], keep: impl Fn(u64) -> bool) -> Result<Self, DataError> {
        let prefix = format!("RAW-{species}-");
        let folder = diagnostic_folder(dir, &["RAW"], species, &prefix)?;
        let mut files = list_dumps(&folder, &prefix)?;
        if files.is_empty() {
            return Err(DataError::invalid(&folder, format!("no {prefix}NNNNNN.h5 files")));
        }
        let all: Vec<u64> = files.iter().map(|(n, _)| *n).collect();
        files.retain(|(n, _)| keep(*n));
        if files.is_empty() {
            return Err(DataError::invalid(&folder, format!("no dump selected by --iterations; there are {}", super::openpmd::describe_numbers(&all))));
        }
        let dumps = Self { files, components };
        if let Some((_, first)) = dumps.files.first() {
            let file = h5::open(first)?;
            dumps.check(first, &file)?;
        }
        Ok(dumps)
    }

    fn check(&self, path: &Path, file: &hdf5::File) -> Result<usize, DataError> {
        if let Ok(t) = h5::attr_string(path, file, "TYPE", "attribute TYPE") {
            if t != "particles" {
                return Err(DataError::item(path, "attribute TYPE", format!("{t:?}, expected \"particles\" (a RAW dump)")));
            }
        }
        let mut n = None;
        for name in MOMENTA.iter().chain(["q"].iter()) {
            if !file.link_exists(name) {
                let present = file.member_names().unwrap_or_default().join(", ");
                return Err(DataError::item(path, format!("/{name}"), format!("missing dataset; datasets present: {present}")));
            }
            let ds = h5::numeric_dataset(path, file, name, &format!("/{name}"))?;
            let shape = h5::shape(path, &ds, &format!("/{name}"), 1, "[N]")?;
            match n {
                None => n = Some(shape[0]),
                Some(m) if m != shape[0] => {
                    return Err(DataError::item(path, format!("/{name}"), format!("{} particles but /p1 has {m}", shape[0])))
                }
                _ => {}
            }
        }
        Ok(n.unwrap_or(0))
    }
}

impl DumpSource for RawDumps {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn describe(&self, k: usize) -> String {
        self.files[k].1.display().to_string()
    }

    fn time(&self, k: usize) -> Result<f64, DataError> {
        let path = &self.files[k].1;
        file_time(path, &h5::open(path)?)
    }

    fn step(&self, k: usize) -> Result<Option<f64>, DataError> {
        let path = &self.files[k].1;
        file_step(path, &h5::open(path)?)
    }

    fn read(&self, k: usize, with_ids: bool, sink: &mut Sink<'_>) -> Result<(), DataError> {
        let path = &self.files[k].1;
        let file = h5::open(path)?;
        let n = self.check(path, &file)?;
        let open = |name: &str| h5::numeric_dataset(path, &file, name, &format!("/{name}"));
        let p = [open("p1")?, open("p2")?, open("p3")?];
        let q = open("q")?;
        let tag = if with_ids {
            let ds = open("tag").map_err(|_| DataError::item(path, "/tag", "missing: enable particle tags in OSIRIS to track particles"))?;
            let shape = ds.shape();
            if shape != [n, 2] {
                return Err(DataError::item(path, "/tag", format!("shape {shape:?}, expected [{n}, 2]")));
            }
            Some(ds)
        } else {
            None
        };
        let (mut u, mut w, mut ids) = ([Vec::new(), Vec::new(), Vec::new()], Vec::new(), Vec::new());
        let (mut bx, mut by) = (Vec::new(), Vec::new());
        let mut start = 0;
        while start < n {
            let m = CHUNK.min(n - start);
            let err = |name: &str, e: hdf5::Error| DataError::item(path, format!("/{name}"), format!("cannot read particles {start}..{} ({e})", start + m));
            for (c, ds) in p.iter().enumerate() {
                u[c] = ds.read_slice_1d::<f64, _>(start..start + m).map_err(|e| err(MOMENTA[c], e))?.into_raw_vec_and_offset().0;
            }
            w.clear();
            w.extend(q.read_slice_1d::<f64, _>(start..start + m).map_err(|e| err("q", e))?.iter().map(|q| q.abs()));
            let [a, b] = self.components;
            bx.resize(m, 0.0);
            by.resize(m, 0.0);
            let [p1, p2, p3] = &u;
            for i in 0..m {
                let g = (((1.0 + p1[i] * p1[i]) + p2[i] * p2[i]) + p3[i] * p3[i]).sqrt();
                bx[i] = u[a][i] / g;
                by[i] = u[b][i] / g;
            }
            let id_slice = match &tag {
                Some(ds) => {
                    let t = ds.read_slice::<i64, _, Ix2>(s![start..start + m, ..]).map_err(|e| err("tag", e))?;
                    ids.clear();
                    ids.extend(t.outer_iter().map(|r| ((r[0] as u32 as u64) << 32) | (r[1] as u32 as u64)));
                    Some(ids.as_slice())
                }
                None => None,
            };
            sink(Chunk { v: [&bx, &by], w: &w, ids: id_slice })?;
            start += m;
        }
        Ok(())
    }
}

/// One 2-D phase space: |values| as `[n_p1, n_p2]` and the axis ranges.
fn read_phase_space(path: &Path, name: &str) -> Result<(Array2<f64>, [f64; 4], f64), DataError> {
    let file = h5::open(path)?;
    if let Ok(t) = h5::attr_string(path, &file, "TYPE", "attribute TYPE") {
        if t != "grid" {
            return Err(DataError::item(path, "attribute TYPE", format!("{t:?}, expected \"grid\" (a phase space)")));
        }
    }
    let item = format!("/{name}");
    let ds = h5::numeric_dataset(path, &file, name, &item)?;
    h5::shape(path, &ds, &item, 2, "[n_p2, n_p1]")?;
    let data = ds.read::<f64, Ix2>().map_err(|e| DataError::item(path, &item, format!("unreadable ({e})")))?;
    let axis = file.group("AXIS").map_err(|_| DataError::item(path, "/AXIS", "missing group"))?;
    let mut range = [0.0; 4];
    for a in 0..2 {
        let aname = format!("AXIS{}", a + 1);
        let aitem = format!("/AXIS/{aname}");
        let ads = h5::numeric_dataset(path, &axis, &aname, &aitem)?;
        let v = ads.read_raw::<f64>().map_err(|e| DataError::item(path, &aitem, format!("unreadable ({e})")))?;
        let [lo, hi]: [f64; 2] = v.as_slice().try_into().map_err(|_| DataError::item(path, &aitem, format!("has {} values, expected [min, max]", v.len())))?;
        range[2 * a] = lo;
        range[2 * a + 1] = hi;
    }
    let f = data.t().mapv(f64::abs);
    if let Some(v) = f.iter().find(|v| !v.is_finite()) {
        return Err(DataError::item(path, &item, format!("value {v} is not finite")));
    }
    Ok((f, range, file_time(path, &file)?))
}

/// Import the 2-D phase spaces `name` (`p1p2`, `p1p3`, `p2p3`) of `species` under `dir` into
/// the run file `out`: the diagnostic's own grid with its momentum axes divided by `v_th` (c).
pub fn import_phase_space(
    dir: &Path,
    name: &str,
    species: &str,
    v_th: f64,
    keep: impl Fn(u64) -> bool,
    params: BTreeMap<String, f64>,
    out: &Path,
) -> Result<RunData, DataError> {
    let prefix = format!("{name}-{species}-");
    let folder = diagnostic_folder(dir, &["PHA", name], species, &prefix)?;
    let mut files = list_dumps(&folder, &prefix)?;
    files.retain(|(n, _)| keep(*n));
    if files.len() < 2 {
        return Err(DataError::invalid(&folder, format!("{} {prefix}NNNNNN.h5 file(s) selected; at least 2 are needed", files.len())));
    }
    let progress = super::particles::Progress::new(files.len(), "phase spaces");
    let dumps = files
        .par_iter()
        .map(|(_, p)| {
            let r = read_phase_space(p, name);
            progress.inc();
            r
        })
        .collect::<Result<Vec<_>, _>>()?;
    progress.finish();
    let (first, range, _) = &dumps[0];
    let (nx, ny) = first.dim();
    for ((f, r, _), (_, p)) in dumps.iter().zip(&files) {
        if f.dim() != (nx, ny) || r != range {
            return Err(DataError::invalid(p, format!("grid {:?} over {r:?} differs from the first file's {:?} over {range:?}", f.dim(), (nx, ny))));
        }
    }
    let u_max = range.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    if u_max > 0.1 {
        tracing::warn!("phase-space axes reach |u| = {u_max} c: momenta are taken as velocities, which is off by γ = {:.4} there", (1.0 + u_max * u_max).sqrt());
    }
    let v_range = range.map(|x| x / v_th);
    let grid = VelocityGrid::new(nx, ny, v_range, "v_th").map_err(|e| DataError::invalid(&files[0].1, e.to_string()))?;
    let mut f = Array3::zeros((dumps.len(), nx, ny));
    for (mut slot, (d, _, _)) in f.outer_iter_mut().zip(&dumps) {
        slot.assign(d);
    }
    let t: Vec<f64> = dumps.iter().map(|d| d.2).collect();
    let n = t.len();
    let dt = (t[n - 1] - t[0]) / (n - 1) as f64;
    let n_particles = super::particle_count(f.index_axis(ndarray::Axis(0), 0));
    let run = RunData { grid, f, t, dt, n_particles, params, labels: BTreeMap::new(), tracks: None, diagnostics: BTreeMap::new() };
    write_run(out, &run)?;
    Ok(run)
}
