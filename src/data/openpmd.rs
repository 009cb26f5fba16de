//! Reader of openPMD 1.x particle series stored in HDF5 (WarpX, PIConGPU, fbpic, …), as a
//! [`DumpSource`] for [`super::particles::import`].
//!
//! Layout read (openPMD standard 1.1, `STANDARD.md` of openPMD/openPMD-standard, with the
//! weighting conventions of its `EXT_ED-PIC.md` / particle-weighting extension):
//!
//! * root attributes: `openPMD` (version, `1.x.y`), `iterationEncoding` (`fileBased` or
//!   `groupBased`; `variableBased` only exists in ADIOS2 and is refused), `iterationFormat`
//!   (file-based: the file name pattern with `%T` / `%0NT`), `basePath` (`/data/%T/`),
//!   `particlesPath` (`particles/`); string attributes such as `software`, `softwareVersion`,
//!   `author`, `date` go to `/params` as string labels, numeric scalar ones as numbers;
//! * iteration group `basePath` with `%T` replaced by the iteration number: attributes `time`,
//!   `dt`, `timeUnitSI` (time in s = `time · timeUnitSI`);
//! * species group `<iteration>/<particlesPath>/<species>/`, records:
//!   `momentum/{x,y,z}` (unit dimension `[1,1,-1,0,0,0,0]`, kg·m/s) or, without a momentum
//!   record, `velocity/{x,y,z}` (`[1,0,-1,0,0,0,0]`, m/s); `mass` (needed with momentum);
//!   `weighting`; `id` (only with `--tracks`). Record attributes `unitDimension`, `macroWeighted`
//!   and `weightingPower`; every component carries `unitSI`. A component (or a scalar record) is
//!   either a 1-D dataset or a *constant* group with attributes `value` and `shape`; a constant's
//!   `value` applies to every particle whatever its `shape` says (fbpic writes `shape = [1]`).
//!
//! Per particle, with SI values `q = raw · unitSI` and `q /= w^weightingPower` for records with
//! `macroWeighted = 1` (w = weighting): `u_c = p_c / (m · c)`, `γ = √(((1 + u_x²) + u_y²) + u_z²)`,
//! `β_c = u_c / γ` (from momentum; from velocity `β_c = v_c / c`). Histograms are of `β / v_th`
//! weighted by `w`; time in 1/ω_p is `(time · timeUnitSI) · ω_p`. Other backends (ADIOS2 `.bp`,
//! JSON, TOML) are refused.

use super::particles::{Chunk, DumpSource, Sink, C, CHUNK};
use super::{h5, DataError};
use hdf5::{Dataset, Group, LocationType};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MOMENTUM_DIM: [f64; 7] = [1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0];
const VELOCITY_DIM: [f64; 7] = [1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0];
const MASS_DIM: [f64; 7] = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
const AXES: [&str; 3] = ["x", "y", "z"];

/// `n iterations a, b, …, z` for messages.
pub(crate) fn describe_numbers(all: &[u64]) -> String {
    match all {
        [] => "no iterations".into(),
        [a] => format!("1 iteration ({a})"),
        [a, b] => format!("2 iterations ({a}, {b})"),
        [a, .., z] => format!("{} iterations ({a} … {z})", all.len()),
    }
}

/// One iteration of a series: where it lives.
#[derive(Clone, Debug)]
struct IterationLoc {
    number: u64,
    file: PathBuf,
    group: String,
}

/// An openPMD series in HDF5: its iterations (sorted by number) and root attributes.
#[derive(Clone, Debug)]
pub struct Series {
    iterations: Vec<IterationLoc>,
    particles_path: String,
    /// Numeric scalar root attributes.
    pub numeric_attributes: BTreeMap<String, f64>,
    /// String root attributes (software, softwareVersion, …).
    pub string_attributes: BTreeMap<String, String>,
}

fn refuse_backend(path: &Path) -> Result<(), DataError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let backend = match ext.as_str() {
        "bp" | "bp4" | "bp5" | "sst" | "ssc" => "ADIOS2",
        "json" => "JSON",
        "toml" => "TOML",
        _ => return Ok(()),
    };
    Err(DataError::invalid(
        path,
        format!("{backend} openPMD series are not supported, only HDF5 (.h5); convert with `openpmd-pipe --infile SERIES --outfile data_%T.h5`"),
    ))
}

/// Split a file-based name pattern at `%T` / `%0NT`: (prefix, suffix).
fn split_pattern(name: &str) -> Option<(String, String)> {
    let start = name.find('%')?;
    let rest = &name[start + 1..];
    let t = rest.find('T')?;
    if !rest[..t].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name[..start].to_string(), rest[t + 1..].to_string()))
}

/// Files of a file-based series `dir/prefix<digits>suffix`, with their iteration numbers.
fn pattern_files(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<(u64, PathBuf)>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(mid) = name.strip_prefix(prefix).and_then(|r| r.strip_suffix(suffix)) else { continue };
        if mid.is_empty() || !mid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = mid.parse::<u64>() {
            out.push((n, path));
        }
    }
    Ok(out)
}

fn opt_string(path: &Path, loc: &hdf5::Location, name: &str) -> Result<Option<String>, DataError> {
    if loc.attr(name).is_err() {
        return Ok(None);
    }
    h5::attr_string(path, loc, name, &format!("attribute {name}")).map(Some)
}

impl Series {
    /// Open a series given as a file-based pattern (`diags/hdf5/data%08T.h5`), one file of a
    /// series (a file-based one is expanded to all its files through `iterationFormat`), or a
    /// directory holding one series.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        refuse_backend(path)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        if let Some((prefix, suffix)) = split_pattern(name) {
            let files = pattern_files(&dir, &prefix, &suffix)?;
            if files.is_empty() {
                return Err(DataError::invalid(path, "no file matches this pattern"));
            }
            return Self::file_based(path, files);
        }
        if path.is_dir() {
            let (mut h5s, mut others): (Vec<PathBuf>, Vec<PathBuf>) = (Vec::new(), Vec::new());
            for entry in std::fs::read_dir(path).map_err(|e| DataError::io(path, e))? {
                let p = entry.map_err(|e| DataError::io(path, e))?.path();
                if p.extension().is_some_and(|e| e == "h5") {
                    h5s.push(p);
                } else {
                    others.push(p);
                }
            }
            h5s.sort();
            let Some(first) = h5s.first() else {
                others.sort();
                for p in &others {
                    refuse_backend(p)?;
                }
                return Err(DataError::invalid(path, "no .h5 files in this folder"));
            };
            let file = h5::open(first)?;
            if opt_string(first, &file, "iterationEncoding")?.as_deref() == Some("fileBased") || h5s.len() == 1 {
                drop(file);
                return Self::open(first);
            }
            return Err(DataError::invalid(path, format!("{} .h5 files that are not one file-based series; name the series", h5s.len())));
        }
        let file = h5::open(path)?;
        let encoding = opt_string(path, &file, "iterationEncoding")?
            .ok_or_else(|| DataError::item(path, "attribute iterationEncoding", "missing: not an openPMD file"))?;
        match encoding.as_str() {
            "fileBased" => {
                let format = h5::attr_string(path, &file, "iterationFormat", "attribute iterationFormat")?;
                let fname = Path::new(&format).file_name().and_then(|n| n.to_str()).unwrap_or(&format).to_string();
                let (prefix, suffix) = split_pattern(&fname).ok_or_else(|| {
                    DataError::item(path, "attribute iterationFormat", format!("{format:?} has no %T"))
                })?;
                // openPMD-api writes the pattern without the extension (`data_%06T`).
                let ext = path.extension().and_then(|e| e.to_str()).map(|e| format!(".{e}")).unwrap_or_default();
                let suffix = if suffix.ends_with(&ext) { suffix } else { suffix + &ext };
                drop(file);
                Self::file_based(path, pattern_files(&dir, &prefix, &suffix)?)
            }
            "groupBased" => {
                let (base, _) = Self::root(path, &file)?;
                let (parent, _) = base.split_once("%T").unwrap_or((&base, ""));
                let parent = parent.trim_end_matches('/');
                let group = file
                    .group(if parent.is_empty() { "/" } else { parent })
                    .map_err(|_| DataError::item(path, parent, "missing iterations group"))?;
                let names = group.member_names().map_err(|e| DataError::item(path, parent, format!("unreadable ({e})")))?;
                let mut its = Vec::new();
                for n in names {
                    if let Ok(number) = n.parse::<u64>() {
                        its.push(IterationLoc { number, file: path.to_path_buf(), group: base.replace("%T", &n) });
                    }
                }
                Self::finish(path, &file, its)
            }
            other => Err(DataError::item(
                path,
                "attribute iterationEncoding",
                format!("{other:?} is not supported (only fileBased and groupBased HDF5 series)"),
            )),
        }
    }

    /// basePath and particlesPath of an open file; checks the openPMD version.
    fn root(path: &Path, file: &hdf5::File) -> Result<(String, String), DataError> {
        let version = h5::attr_string(path, file, "openPMD", "attribute openPMD")
            .map_err(|e| DataError::invalid(path, format!("not an openPMD file ({e})")))?;
        if !version.starts_with("1.") {
            return Err(DataError::item(path, "attribute openPMD", format!("version {version} is not supported (openPMD 1.x)")));
        }
        let base = h5::attr_string(path, file, "basePath", "attribute basePath")?;
        let particles = opt_string(path, file, "particlesPath")?.unwrap_or_else(|| "particles/".into());
        Ok((base, particles))
    }

    fn file_based(path: &Path, files: Vec<(u64, PathBuf)>) -> Result<Self, DataError> {
        let Some((_, first)) = files.iter().min() else {
            return Err(DataError::invalid(path, "no files in this file-based series"));
        };
        let file = h5::open(first)?;
        let (base, _) = Self::root(first, &file)?;
        let its = files
            .iter()
            .map(|(n, f)| IterationLoc { number: *n, file: f.clone(), group: base.replace("%T", &n.to_string()) })
            .collect();
        Self::finish(first, &file, its)
    }

    fn finish(path: &Path, file: &hdf5::File, mut iterations: Vec<IterationLoc>) -> Result<Self, DataError> {
        let (_, particles_path) = Self::root(path, file)?;
        iterations.sort_by_key(|i| i.number);
        if let Some(w) = iterations.windows(2).find(|w| w[0].number == w[1].number) {
            return Err(DataError::invalid(&w[1].file, format!("iteration {} appears twice ({})", w[1].number, w[0].file.display())));
        }
        let mut numeric_attributes = BTreeMap::new();
        let mut string_attributes = BTreeMap::new();
        for name in file.attr_names().unwrap_or_default() {
            let item = format!("attribute {name}");
            if let Ok(x) = h5::attr_f64(path, file, &name, &item) {
                if x.is_finite() {
                    numeric_attributes.insert(name, x);
                }
            } else if let Ok(s) = h5::attr_string(path, file, &name, &item) {
                string_attributes.insert(name, s);
            }
        }
        Ok(Self { iterations, particles_path, numeric_attributes, string_attributes })
    }

    /// The iteration numbers, ascending.
    pub fn iteration_numbers(&self) -> Vec<u64> {
        self.iterations.iter().map(|i| i.number).collect()
    }

    /// Keep the iterations `keep` says yes to; none left is an error naming those there are.
    pub fn retain(&mut self, keep: impl Fn(u64) -> bool) -> Result<(), String> {
        let all = self.iteration_numbers();
        self.iterations.retain(|i| keep(i.number));
        if self.iterations.is_empty() {
            return Err(format!("no iteration selected by --iterations; the series has {}", describe_numbers(&all)));
        }
        Ok(())
    }

    /// The dumps of one species: velocity components `components` (indices into x, y, z),
    /// times scaled by `omega_p` (rad/s).
    pub fn species(&self, name: &str, components: [usize; 2], omega_p: f64) -> Result<Species<'_>, DataError> {
        let s = Species { series: self, name: name.to_string(), components, omega_p, warned_mass: Default::default() };
        if let Some(k) = (0..self.iterations.len()).next() {
            // Check the layout on the first dump, so errors come before any work.
            let (file, it) = s.open_iteration(k)?;
            s.records(&file, &it, k)?;
        }
        Ok(s)
    }
}

/// Values of one record component: a dataset or a constant.
enum Values {
    Const(f64),
    Data(Dataset),
}

/// A record component with its unit factor.
struct Component {
    values: Values,
    unit_si: f64,
    item: String,
}

impl Component {
    /// Open `name` in `parent` (a dataset or a constant group).
    fn open(path: &Path, parent: &Group, name: &str, item: &str, need_unit: bool) -> Result<Self, DataError> {
        let kind = parent.loc_type_by_name(name).map_err(|_| DataError::item(path, item, "missing"))?;
        let (values, unit_loc): (Values, hdf5::Location) = match kind {
            LocationType::Dataset => {
                let ds = h5::numeric_dataset(path, parent, name, item)?;
                if ds.ndim() != 1 {
                    return Err(DataError::item(path, item, format!("rank {} (shape {:?}), expected a 1-D particle record", ds.ndim(), ds.shape())));
                }
                let loc = (**ds).clone();
                (Values::Data(ds), loc)
            }
            _ => {
                let g = parent.group(name).map_err(|e| DataError::item(path, item, format!("unreadable ({e})")))?;
                let value = h5::attr_f64(path, &g, "value", &format!("{item}/value"))?;
                let loc = (*g).clone();
                (Values::Const(value), loc)
            }
        };
        let unit_si = if need_unit || unit_loc.attr("unitSI").is_ok() {
            h5::attr_f64(path, &unit_loc, "unitSI", &format!("{item} attribute unitSI"))?
        } else {
            1.0
        };
        if !(unit_si.is_finite() && unit_si != 0.0) {
            return Err(DataError::item(path, item, format!("unitSI = {unit_si} is unusable")));
        }
        Ok(Self { values, unit_si, item: item.to_string() })
    }

    fn len(&self) -> Option<usize> {
        match &self.values {
            Values::Const(_) => None,
            Values::Data(ds) => Some(ds.shape()[0]),
        }
    }

    /// SI values `raw · unitSI` of particles `start..start + n` into `buf`.
    fn read(&self, path: &Path, start: usize, n: usize, buf: &mut Vec<f64>) -> Result<(), DataError> {
        buf.clear();
        match &self.values {
            Values::Const(v) => buf.resize(n, v * self.unit_si),
            Values::Data(ds) => {
                let a = ds
                    .read_slice_1d::<f64, _>(start..start + n)
                    .map_err(|e| DataError::item(path, &self.item, format!("cannot read particles {start}..{} ({e})", start + n)))?;
                *buf = a.into_raw_vec_and_offset().0;
                let u = self.unit_si;
                if u != 1.0 {
                    // x · 1 = x exactly, so skipping is exact.
                    buf.iter_mut().for_each(|x| *x *= u);
                }
            }
        }
        Ok(())
    }
}

/// A record's weighting attributes: `q /= w^power` when `macro_weighted`.
#[derive(Clone, Copy)]
struct Weighting {
    macro_weighted: bool,
    power: f64,
}

impl Weighting {
    fn read(path: &Path, loc: &hdf5::Location, item: &str) -> Result<Self, DataError> {
        let macro_weighted = if loc.attr("macroWeighted").is_ok() {
            h5::attr_f64(path, loc, "macroWeighted", &format!("{item} attribute macroWeighted"))? != 0.0
        } else {
            false
        };
        let power = if macro_weighted { h5::attr_f64(path, loc, "weightingPower", &format!("{item} attribute weightingPower"))? } else { 0.0 };
        Ok(Self { macro_weighted, power })
    }

    /// The per-particle value of a macroparticle value `v` of weight `w`.
    #[inline(always)]
    fn one(&self, v: f64, w: f64) -> f64 {
        if !self.macro_weighted || self.power == 0.0 {
            v
        } else if self.power == 1.0 {
            v / w
        } else {
            v / w.powf(self.power)
        }
    }
}

fn unit_dimension(path: &Path, loc: &hdf5::Location, item: &str) -> Result<[f64; 7], DataError> {
    let d = h5::attr_f64s(path, loc, "unitDimension", &format!("{item} attribute unitDimension"))?;
    d.as_slice().try_into().map_err(|_| DataError::item(path, item, format!("unitDimension has {} values, expected 7", d.len())))
}

fn same_dim(a: &[f64; 7], b: &[f64; 7]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
}

/// Whether the momentum comes as momentum (needs mass) or velocity.
enum Kind {
    Momentum { mass: Component, mass_w: Weighting },
    Velocity,
}

/// The opened records of one species at one iteration.
struct Records {
    /// Components present, in x, y, z order, with their axis index.
    comps: Vec<(usize, Component)>,
    comp_w: Weighting,
    kind: Kind,
    weighting: Component,
    id: Option<Component>,
    n: usize,
}

/// The dumps of one species of a [`Series`].
pub struct Species<'a> {
    series: &'a Series,
    name: String,
    components: [usize; 2],
    omega_p: f64,
    warned_mass: std::sync::atomic::AtomicBool,
}

fn list(names: Vec<String>) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

impl Species<'_> {
    fn open_iteration(&self, k: usize) -> Result<(hdf5::File, Group), DataError> {
        let loc = &self.series.iterations[k];
        let file = h5::open(&loc.file)?;
        let g = file
            .group(loc.group.trim_end_matches('/'))
            .map_err(|_| DataError::item(&loc.file, &loc.group, format!("missing iteration group of iteration {}", loc.number)))?;
        Ok((file, g))
    }

    fn species_group(&self, it: &Group, k: usize) -> Result<Group, DataError> {
        let loc = &self.series.iterations[k];
        let pp = self.series.particles_path.trim_end_matches('/');
        let particles = it
            .group(pp)
            .map_err(|_| DataError::item(&loc.file, &loc.group, format!("iteration {} has no {pp}/ group", loc.number)))?;
        if !particles.link_exists(&self.name) {
            let names = particles.member_names().unwrap_or_default();
            return Err(DataError::item(
                &loc.file,
                format!("{}{pp}/", loc.group),
                format!("no species {:?} at iteration {}; species present: {}", self.name, loc.number, list(names)),
            ));
        }
        particles.group(&self.name).map_err(|e| DataError::item(&loc.file, &self.name, format!("not a species group ({e})")))
    }

    fn records(&self, _file: &hdf5::File, it: &Group, k: usize) -> Result<Records, DataError> {
        let loc = &self.series.iterations[k];
        let path = loc.file.as_path();
        let sp = self.species_group(it, k)?;
        let prefix = format!("{}{}/{}", loc.group, self.series.particles_path.trim_end_matches('/'), self.name);
        let names = sp.member_names().unwrap_or_default();
        let missing = |what: &str| {
            DataError::item(path, &prefix, format!("no {what} record at iteration {}; records present: {}", loc.number, list(names.clone())))
        };
        let record_name = if sp.link_exists("momentum") {
            "momentum"
        } else if sp.link_exists("velocity") {
            "velocity"
        } else {
            return Err(missing("momentum (or velocity)"));
        };
        let item = format!("{prefix}/{record_name}");
        let record = sp.group(record_name).map_err(|e| DataError::item(path, &item, format!("not a record group ({e})")))?;
        let dim = unit_dimension(path, &record, &item)?;
        let is_momentum = same_dim(&dim, &MOMENTUM_DIM);
        if !is_momentum && !same_dim(&dim, &VELOCITY_DIM) {
            return Err(DataError::item(
                path,
                &item,
                format!("unitDimension {dim:?} is neither a momentum {MOMENTUM_DIM:?} nor a velocity {VELOCITY_DIM:?}"),
            ));
        }
        let comp_w = Weighting::read(path, &record, &item)?;
        let mut comps = Vec::new();
        for (a, axis) in AXES.iter().enumerate() {
            if record.link_exists(axis) {
                comps.push((a, Component::open(path, &record, axis, &format!("{item}/{axis}"), true)?));
            }
        }
        for &c in &self.components {
            if !comps.iter().any(|(a, _)| *a == c) {
                let present: Vec<String> = record.member_names().unwrap_or_default();
                return Err(DataError::item(path, &item, format!("no component {} (components present: {})", AXES[c], list(present))));
            }
        }
        let kind = if is_momentum {
            if !sp.link_exists("mass") {
                return Err(missing("mass (needed to turn momenta into velocities)"));
            }
            let mitem = format!("{prefix}/mass");
            let mass = Component::open(path, &sp, "mass", &mitem, true)?;
            let mloc: hdf5::Location = match &mass.values {
                Values::Data(ds) => (***ds).clone(),
                Values::Const(_) => (*sp.group("mass").map_err(|e| DataError::item(path, &mitem, e.to_string()))?).clone(),
            };
            let mdim = unit_dimension(path, &mloc, &mitem)?;
            // fbpic (0.27) labels its mass record [1,0,0,0,0,0,0] (a length); unitSI still gives
            // kg, so a wrong label is reported, not refused.
            if !same_dim(&mdim, &MASS_DIM) && !self.warned_mass.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!("{}: {mitem}: unitDimension {mdim:?} is not a mass {MASS_DIM:?}; taking value × unitSI as kg", path.display());
            }
            let mass_w = Weighting::read(path, &mloc, &mitem)?;
            Kind::Momentum { mass, mass_w }
        } else {
            Kind::Velocity
        };
        if !sp.link_exists("weighting") {
            return Err(missing("weighting"));
        }
        let weighting = Component::open(path, &sp, "weighting", &format!("{prefix}/weighting"), false)?;
        let id = if sp.link_exists("id") { Some(Component::open(path, &sp, "id", &format!("{prefix}/id"), false)?) } else { None };

        // The particle count: every dataset agrees; constants follow it.
        let mut n: Option<(usize, String)> = None;
        let all = comps.iter().map(|(_, c)| c).chain([&weighting]).chain(match &kind {
            Kind::Momentum { mass, .. } => Some(mass),
            Kind::Velocity => None,
        });
        for c in all.chain(id.iter()) {
            if let Some(len) = c.len() {
                match &n {
                    None => n = Some((len, c.item.clone())),
                    Some((m, other)) if *m != len => {
                        return Err(DataError::item(path, &c.item, format!("{len} particles but {other} has {m}")));
                    }
                    _ => {}
                }
            }
        }
        let n = match n {
            Some((n, _)) => n,
            None => {
                // Every record constant: the count is the `shape` of a component.
                let g = record.group(AXES[comps[0].0]).map_err(|e| DataError::item(path, &item, e.to_string()))?;
                let shape = h5::attr_f64s(path, &g, "shape", &format!("{item}/{} attribute shape", AXES[comps[0].0]))?;
                shape.first().copied().unwrap_or(0.0) as usize
            }
        };
        Ok(Records { comps, comp_w, kind, weighting, id, n })
    }
}

/// Per-thread buffers of one dump.
#[derive(Default)]
struct Buffers {
    u: [Vec<f64>; 3],
    bx: Vec<f64>,
    by: Vec<f64>,
    w: Vec<f64>,
    m: Vec<f64>,
    ids: Vec<u64>,
}

impl DumpSource for Species<'_> {
    fn len(&self) -> usize {
        self.series.iterations.len()
    }

    fn describe(&self, k: usize) -> String {
        let loc = &self.series.iterations[k];
        format!("{}: iteration {}", loc.file.display(), loc.number)
    }

    fn time(&self, k: usize) -> Result<f64, DataError> {
        let (_f, it) = self.open_iteration(k)?;
        let path = &self.series.iterations[k].file;
        let item = &self.series.iterations[k].group;
        let time = h5::attr_f64(path, &it, "time", &format!("{item} attribute time"))?;
        let unit = h5::attr_f64(path, &it, "timeUnitSI", &format!("{item} attribute timeUnitSI"))?;
        let t = time * unit * self.omega_p;
        if !t.is_finite() {
            return Err(DataError::item(path, item, format!("time {time} × timeUnitSI {unit} is not finite")));
        }
        Ok(t)
    }

    fn step(&self, k: usize) -> Result<Option<f64>, DataError> {
        let (_f, it) = self.open_iteration(k)?;
        let path = &self.series.iterations[k].file;
        if it.attr("dt").is_err() {
            return Ok(None);
        }
        let item = &self.series.iterations[k].group;
        let dt = h5::attr_f64(path, &it, "dt", &format!("{item} attribute dt"))?;
        let unit = h5::attr_f64(path, &it, "timeUnitSI", &format!("{item} attribute timeUnitSI"))?;
        Ok(Some(dt * unit * self.omega_p))
    }

    fn read(&self, k: usize, with_ids: bool, sink: &mut Sink<'_>) -> Result<(), DataError> {
        let (file, it) = self.open_iteration(k)?;
        let r = self.records(&file, &it, k)?;
        let path = self.series.iterations[k].file.as_path();
        if with_ids && r.id.is_none() {
            return Err(DataError::item(path, &self.name, format!("no id record at iteration {}: cannot track particles", self.series.iterations[k].number)));
        }
        let mut b = Buffers::default();
        let [cx, cy] = self.components;
        let present: [bool; 3] = std::array::from_fn(|a| r.comps.iter().any(|(c, _)| *c == a));
        let mut start = 0;
        while start < r.n {
            let n = CHUNK.min(r.n - start);
            r.weighting.read(path, start, n, &mut b.w)?;
            for (a, c) in &r.comps {
                c.read(path, start, n, &mut b.u[*a])?;
            }
            for a in (0..3).filter(|&a| !present[a]) {
                // A missing component adds exactly nothing to γ.
                b.u[a].clear();
                b.u[a].resize(n, 0.0);
            }
            b.bx.resize(n, 0.0);
            b.by.resize(n, 0.0);
            let [ux, uy, uz] = &b.u;
            let (w, cw) = (&b.w[..n], r.comp_w);
            match &r.kind {
                Kind::Momentum { mass, mass_w } => {
                    mass.read(path, start, n, &mut b.m)?;
                    let m = &b.m[..n];
                    // One pass per particle: per-particle values, u = p / (m c), β = u / γ.
                    for i in 0..n {
                        let mc = mass_w.one(m[i], w[i]) * C;
                        let u = [cw.one(ux[i], w[i]) / mc, cw.one(uy[i], w[i]) / mc, cw.one(uz[i], w[i]) / mc];
                        let g = (((1.0 + u[0] * u[0]) + u[1] * u[1]) + u[2] * u[2]).sqrt();
                        b.bx[i] = u[cx] / g;
                        b.by[i] = u[cy] / g;
                    }
                }
                Kind::Velocity => {
                    let u = [ux, uy, uz];
                    for i in 0..n {
                        b.bx[i] = cw.one(u[cx][i], w[i]) / C;
                        b.by[i] = cw.one(u[cy][i], w[i]) / C;
                    }
                }
            }
            let ids = if with_ids {
                let id = r.id.as_ref().expect("checked above");
                match &id.values {
                    Values::Data(ds) => {
                        let a = ds
                            .read_slice_1d::<u64, _>(start..start + n)
                            .map_err(|e| DataError::item(path, &id.item, format!("cannot read ids ({e})")))?;
                        b.ids.clear();
                        b.ids.extend(a.iter());
                    }
                    Values::Const(_) => {
                        return Err(DataError::item(path, &id.item, "is constant: particles cannot be told apart"));
                    }
                }
                Some(b.ids.as_slice())
            } else {
                None
            };
            sink(Chunk { v: [&b.bx, &b.by], w: &b.w, ids })?;
            start += n;
        }
        Ok(())
    }
}
