//! Synthetic datasets rolled out from a known operator: the quickstart's data and the tests'
//! ground truth, in two or three velocity dimensions (`grid.dim`, one code path).
//!
//! The truth is integrated with the conservative scheme and many sub-steps (at least the scheme's
//! positivity bound); optional sampling noise draws N particles per snapshot (multinomial counts,
//! seeded). Operators: `lenard-bernstein` (A = −ν v, D = 2ν v_th² I), `radial` (A = A_∥ v̂,
//! D = D_∥ v̂v̂ + D_⊥(I − v̂v̂) with A_∥, D_∥, D_⊥ formulas of `v` = |v|, the run's `/params` and `t`;
//! `a_par: stationary` makes a unit Maxwellian stationary: A_∥ = ½[dD_∥/dv + (d − 1)(D_∥ − D_⊥)/v]
//! − D_∥v/2 in d dimensions), or any `model.h5` on the same grid; an optional `time_factor`
//! formula of `t` multiplies A and D (time-dependent truth). Formulas take numbers in decimal or
//! scientific notation (`0.016`, `1.6e-2`). Initial components (`normal`, `ring` — a spherical
//! shell in 3D —, `maxwellian`) take vectors of one value per dimension.
//!
//! Each run file stores its truth in `/truth`: datasets `A` [d,Nx,Ny(,Nz)] (v_th·ω_p) and `D`
//! [d(d+1)/2,Nx,Ny(,Nz)] (v_th²·ω_p, order xx, yy, xy in 2D and xx, yy, zz, xy, xz, yz in 3D) at
//! the run's parameters (without the time factor); for isotropic truths (`radial`,
//! `lenard-bernstein`, models exporting profiles) the radial profiles `v_radial`, `A_par`,
//! `D_par`, `D_perp`; attributes `kind`, `spec` (the operator entry as YAML) and, for
//! time-dependent truths, `time_factor`. [`read_truth`] reads either dimension back.
//!
//! An optional `tracks: { n, substeps, seed }` section — at the top level for every run, or in a
//! run (which then replaces the top-level one for that run) — adds `/tracks [T, n, d]`: `n`
//! particles drawn from the run's initial histogram and advanced with the SDE of the same truth
//! (dv = A dt + σ dW, σσᵀ = D) by Euler–Maruyama with `substeps` (default 20) steps per snapshot
//! interval, seeded per chunk of particles (see [`tracks`]). `/params` of such a run also holds
//! `n_tracks` and `track_substeps`; runs without tracks are unchanged.
//!
//! All runs are written or none: they are generated into a staging directory beside `--out`
//! ([`crate::io::StagedDir`]). Run names must be distinct plain file names.

pub mod tracks;

use crate::config::{load_yaml, ConfigError};
use crate::data::RunData;
use crate::grid::VelocityGrid;
use crate::operator::angular::{self, Polar};
use crate::operator::{fp, Fields};
use crate::solver::{self, SchemeKind, SolverSpec, Substeps};
use anyhow::Context as _;
use exmex::prelude::*;
use exmex::FloatOpsFactory;
use ndarray::{Array1, Array3};
use rand::SeedableRng;
use rand_distr::Distribution;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tracks::TracksSpec;

/// Grid of a synthetic dataset.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    /// Cells per axis.
    pub n: usize,
    /// Half-width of the grid, v_th: cells cover [−v_max, v_max]^dim.
    pub v_max: f64,
    /// Velocity dimensions: 2 (v_x, v_y; the default) or 3 (v_x, v_y, v_z).
    #[serde(default = "two")]
    pub dim: usize,
}

fn two() -> usize {
    2
}

/// The known operator.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum TruthSpec {
    /// A = −ν v, D = 2ν v_th² I.
    LenardBernstein { nu: f64, #[serde(default = "one")] v_th: f64 },
    /// Radial profiles as formulas of `v` (and run parameters); `a_par` may be `stationary`.
    Radial { a_par: String, d_par: String, d_perp: String },
    /// A `model.h5` (its reference fields).
    Model { path: PathBuf },
}

fn one() -> f64 {
    1.0
}

/// One component of an initial distribution. Vectors have one value per velocity dimension.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum Initial {
    /// Gaussian blob at `centre` with standard deviation `sigma` (normalised to unit mass).
    Normal { centre: Vec<f64>, sigma: f64, #[serde(default = "one")] weight: f64 },
    /// Ring (2D) or spherical shell (3D) of `radius` and Gaussian radial `width`.
    Ring { radius: f64, width: f64, #[serde(default = "one")] weight: f64 },
    /// Maxwellian of thermal speed `v_th` (default 1) drifting at `drift` (default 0).
    Maxwellian { #[serde(default = "one")] v_th: f64, #[serde(default)] drift: Vec<f64>, #[serde(default = "one")] weight: f64 },
}

impl Initial {
    /// The component's vector (`centre`, `drift`) and its key, if it has one given.
    fn vector(&self) -> Option<(&'static str, &[f64])> {
        match self {
            Initial::Normal { centre, .. } => Some(("centre", centre)),
            Initial::Maxwellian { drift, .. } if !drift.is_empty() => Some(("drift", drift)),
            _ => None,
        }
    }
}

/// One synthetic run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Output file stem.
    pub name: String,
    /// Sum of components.
    pub initial: Vec<Initial>,
    /// Written to `/params`; also variables of the operator formulas.
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
    /// Tracked particles of this run (replaces the config's `tracks`).
    #[serde(default)]
    pub tracks: Option<TracksSpec>,
}

/// Multinomial sampling noise.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseSpec {
    pub particles: u64,
    #[serde(default)]
    pub seed: u64,
}

fn default_snapshots() -> usize {
    96
}
fn default_substeps() -> usize {
    100
}
fn default_particles() -> f64 {
    3e5
}

/// `colop synth` config.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    pub grid: GridSpec,
    pub operator: TruthSpec,
    /// Formula of `t` (1/ω_p) multiplying A and D, e.g. `1 + 0.5*t/95`.
    #[serde(default)]
    pub time_factor: Option<String>,
    #[serde(default = "default_snapshots")]
    pub snapshots: usize,
    /// Snapshot spacing, 1/ω_p.
    #[serde(default = "one")]
    pub dt: f64,
    /// Minimum sub-steps per snapshot of the truth solver (raised to the positivity bound).
    #[serde(default = "default_substeps")]
    pub substeps: usize,
    /// Total count of noise-free histograms (ignored with `noise`).
    #[serde(default = "default_particles")]
    pub n_particles: f64,
    #[serde(default)]
    pub noise: Option<NoiseSpec>,
    /// Tracked particles of every run (a run's own `tracks` replaces it).
    #[serde(default)]
    pub tracks: Option<TracksSpec>,
    pub runs: Vec<RunSpec>,
}

/// Number literals of the formulas: exmex's own matcher takes `1.6e-2` as `1.6`, `e`, `-2`; this
/// one reads decimal and scientific notation (`16`, `0.5`, `.5`, `1.6e-2`, `2E+3`).
#[derive(Clone, Debug)]
struct SciNumber;

impl exmex::MatchLiteral for SciNumber {
    fn is_literal(text: &str) -> Option<&str> {
        let b = text.as_bytes();
        let digits = |mut i: usize| {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            i
        };
        let int_end = digits(0);
        let mut end = int_end;
        if end < b.len() && b[end] == b'.' {
            end = digits(end + 1);
        }
        // At least one digit in the mantissa.
        if end == 0 || (end == 1 && b[0] == b'.') || (int_end == 0 && end == int_end) {
            return None;
        }
        if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
            let mut k = end + 1;
            if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
                k += 1;
            }
            let exp_end = digits(k);
            if exp_end > k {
                end = exp_end;
            }
        }
        Some(&text[..end])
    }
}

type Expr = FlatEx<f64, FloatOpsFactory<f64>, SciNumber>;

/// A parsed formula with its variable names.
struct Formula {
    text: String,
    expr: Expr,
}

impl Formula {
    fn parse(text: &str, key: &str) -> anyhow::Result<Self> {
        let expr = Expr::parse(text).map_err(|e| anyhow::anyhow!("operator.{key}: cannot parse `{text}`: {e}"))?;
        Ok(Self { text: text.to_string(), expr })
    }
    fn eval(&self, vars: &BTreeMap<String, f64>, key: &str) -> anyhow::Result<f64> {
        let vals = self
            .expr
            .var_names()
            .iter()
            .map(|n| vars.get(n).copied().with_context(|| format!("operator.{key}: `{}` uses unknown variable `{n}`", self.text)))
            .collect::<anyhow::Result<Vec<f64>>>()?;
        let v = self.expr.eval(&vals).map_err(|e| anyhow::anyhow!("operator.{key}: {e}"))?;
        anyhow::ensure!(v.is_finite(), "operator.{key}: `{}` is not finite at {vars:?}", self.text);
        Ok(v)
    }
}

impl SynthConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let cfg: Self = load_yaml(path)?;
        let bad = |key: &str, msg: &str| ConfigError::Invalid { path: path.display().to_string(), key: key.into(), msg: msg.into() };
        if cfg.snapshots < 2 {
            return Err(bad("snapshots", "needs at least 2"));
        }
        if !(cfg.dt > 0.0 && cfg.dt.is_finite()) {
            return Err(bad("dt", "must be positive"));
        }
        if cfg.substeps == 0 {
            return Err(bad("substeps", "must be ≥ 1"));
        }
        if cfg.runs.is_empty() {
            return Err(bad("runs", "needs at least one run"));
        }
        if cfg.noise.as_ref().is_some_and(|n| n.particles == 0) {
            return Err(bad("noise.particles", "must be ≥ 1"));
        }
        if let Some(Err((key, msg))) = cfg.tracks.as_ref().map(TracksSpec::check) {
            return Err(bad(&format!("tracks.{key}"), &msg));
        }
        if !(2..=3).contains(&cfg.grid.dim) {
            return Err(bad("grid.dim", &format!("must be 2 or 3, got {}", cfg.grid.dim)));
        }
        for (i, r) in cfg.runs.iter().enumerate() {
            if r.initial.is_empty() {
                return Err(bad(&format!("runs[{i}].initial"), "needs at least one component"));
            }
            for (k, c) in r.initial.iter().enumerate() {
                if let Some((key, v)) = c.vector() {
                    if v.len() != cfg.grid.dim {
                        let msg = format!("needs {} values on a {}D grid, got {}", cfg.grid.dim, cfg.grid.dim, v.len());
                        return Err(bad(&format!("runs[{i}].initial[{k}].{key}"), &msg));
                    }
                }
            }
            if let Some(Err((key, msg))) = r.tracks.as_ref().map(TracksSpec::check) {
                return Err(bad(&format!("runs[{i}].tracks.{key}"), &msg));
            }
            crate::io::check_output_name(&r.name).map_err(|m| bad(&format!("runs[{i}].name"), &m))?;
            if let Some(j) = cfg.runs[..i].iter().position(|o| o.name == r.name) {
                return Err(bad(&format!("runs[{i}].name"), &format!("`{}` is also the name of runs[{j}]: both would write {}.h5", r.name, r.name)));
            }
        }
        Ok(cfg)
    }

    pub fn grid(&self) -> anyhow::Result<VelocityGrid> {
        anyhow::ensure!(self.grid.v_max > 0.0, "grid.v_max must be positive");
        match self.grid.dim {
            2 => VelocityGrid::square(self.grid.n, self.grid.v_max).context("grid"),
            3 => VelocityGrid::cube(self.grid.n, self.grid.v_max).context("grid"),
            d => anyhow::bail!("grid.dim must be 2 or 3, got {d}"),
        }
    }
}

/// The formulas of a `radial` truth in `dim` velocity dimensions.
struct RadialTruth {
    d_par: Formula,
    d_perp: Formula,
    /// `None` for `stationary`.
    a_par: Option<Formula>,
    dim: usize,
}

impl RadialTruth {
    fn parse(a_par: &str, d_par: &str, d_perp: &str, dim: usize) -> anyhow::Result<Self> {
        Ok(Self {
            d_par: Formula::parse(d_par, "d_par")?,
            d_perp: Formula::parse(d_perp, "d_perp")?,
            a_par: if a_par.trim() == "stationary" { None } else { Some(Formula::parse(a_par, "a_par")?) },
            dim,
        })
    }

    /// (A_∥, D_∥, D_⊥) at speed `v` for run parameters `params`. The stationary drag is the
    /// zero-flux condition for f ∝ exp(−v²/2): A = ½∇·D − ½D·v, and for the isotropic D
    /// ∇·D = [D_∥' + (d − 1)(D_∥ − D_⊥)/v] v̂ (∇·v̂ = (d − 1)/v).
    fn at(&self, v: f64, params: &BTreeMap<String, f64>) -> anyhow::Result<(f64, f64, f64)> {
        let mut vars = params.clone();
        let mut at = |key: &str, f: &Formula, v: f64| -> anyhow::Result<f64> {
            vars.insert("v".into(), v);
            f.eval(&vars, key)
        };
        let dp = at("d_par", &self.d_par, v)?;
        let dq = at("d_perp", &self.d_perp, v)?;
        let a = match &self.a_par {
            Some(f) => at("a_par", f, v)?,
            None => {
                let h = 1e-5;
                let lo = (v - h).max(0.0);
                let deriv = (at("d_par", &self.d_par, v + h)? - at("d_par", &self.d_par, lo)?) / (v + h - lo);
                let shear = if v > 1e-12 { (self.dim - 1) as f64 * (dp - dq) / v } else { 0.0 };
                0.5 * (deriv + shear) - 0.5 * dp * v
            }
        };
        Ok((a, dp, dq))
    }
}

/// Radial profiles of a truth: (v, A_∥, D_∥, D_⊥).
pub type TruthProfiles = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// Nodes of the stored radial profiles: 0 to the grid's farthest corner.
const PROFILE_NODES: usize = 201;

/// The truth's radial profiles for a run with parameters `params`, for isotropic truths
/// (`radial`, `lenard-bernstein`, a model that exports `v_radial`, `A_par`, `D_par`, `D_perp`).
pub fn truth_profiles(spec: &TruthSpec, grid: &VelocityGrid, params: &BTreeMap<String, f64>) -> anyhow::Result<Option<TruthProfiles>> {
    let v: Vec<f64> = (0..PROFILE_NODES).map(|k| grid.v_corner() * k as f64 / (PROFILE_NODES - 1) as f64).collect();
    let mut out = (v.clone(), Vec::new(), Vec::new(), Vec::new());
    match spec {
        TruthSpec::LenardBernstein { nu, v_th } => {
            for &x in &v {
                out.1.push(-nu * x);
                out.2.push(2.0 * nu * v_th * v_th);
                out.3.push(2.0 * nu * v_th * v_th);
            }
        }
        TruthSpec::Radial { a_par, d_par, d_perp } => {
            let radial = RadialTruth::parse(a_par, d_par, d_perp, grid.dim())?;
            for &x in &v {
                let (a, dp, dq) = radial.at(x, params)?;
                out.1.push(a);
                out.2.push(dp);
                out.3.push(dq);
            }
        }
        TruthSpec::Model { path } => {
            let m = crate::model_file::read_model(path)?;
            let get = |n: &str| m.exports.iter().find(|e| e.0 == n).map(|e| e.1.iter().copied().collect::<Vec<f64>>());
            let (Some(v), Some(a), Some(dp), Some(dq)) = (get("v_radial"), get("A_par"), get("D_par"), get("D_perp")) else {
                return Ok(None);
            };
            let n = v.len();
            if a.len() < n || dp.len() < n || dq.len() < n {
                return Ok(None);
            }
            // Time-dependent models export every node; the first is the profile at t = 0.
            return Ok(Some((v, a[..n].to_vec(), dp[..n].to_vec(), dq[..n].to_vec())));
        }
    }
    Ok(Some(out))
}

/// The truth of a synthetic run, as stored in its `/truth` group.
#[derive(Clone, Debug)]
pub struct Truth {
    /// The Fokker–Planck fields at the run's parameters, physical units, in [`fp`] order:
    /// `[5, Nx, Ny]` in 2D, `[9, Nx, Ny·Nz]` in 3D (see [`VelocityGrid::fields_shape`]).
    pub fields: Fields,
    pub profiles: Option<TruthProfiles>,
    /// `kind` of the truth operator.
    pub kind: String,
    /// The `operator` entry of the config, as YAML.
    pub spec: String,
    pub time_factor: Option<String>,
}

/// An HDF5 error from a failed check (the reader and writer speak `hdf5::Result`).
fn h5_check(ok: bool, msg: &str) -> hdf5::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(hdf5::Error::from(msg))
    }
}

fn put_str(loc: &hdf5::Location, name: &str, value: &str) -> hdf5::Result<()> {
    let v: hdf5::types::VarLenUnicode = value.parse().map_err(|e| hdf5::Error::from(format!("{name}: {e:?}")))?;
    loc.new_attr::<hdf5::types::VarLenUnicode>().shape(()).create(name)?.write_scalar(&v)
}

impl Truth {
    /// Write the `/truth` group into an open run file whose grid is `grid`: `A` as
    /// `[d, Nx, Ny(, Nz)]` and `D` as `[d(d+1)/2, Nx, Ny(, Nz)]`.
    pub fn write(&self, file: &hdf5::File, grid: &VelocityGrid) -> hdf5::Result<()> {
        let g = file.create_group("truth")?;
        let dim = grid.dim();
        h5_check(self.fields.dim() == grid.fields_shape(fp::n_fields(dim)), "fields do not match the grid")?;
        for (name, range) in [("A", 0..dim), ("D", dim..fp::n_fields(dim))] {
            let shape: Vec<usize> = std::iter::once(range.len()).chain(grid.extents()).collect();
            let block = self.fields.slice(ndarray::s![range, .., ..]);
            let block = block.as_standard_layout();
            let block = block.view().into_shape_with_order(ndarray::IxDyn(&shape)).map_err(|e| hdf5::Error::from(format!("{name}: {e}")))?;
            g.new_dataset_builder().with_data(&block).create(name)?;
        }
        if let Some((v, a, dp, dq)) = &self.profiles {
            for (name, data) in [("v_radial", v), ("A_par", a), ("D_par", dp), ("D_perp", dq)] {
                g.new_dataset_builder().with_data(data.as_slice()).create(name)?;
            }
        }
        put_str(&g, "kind", &self.kind)?;
        put_str(&g, "spec", &self.spec)?;
        if let Some(t) = &self.time_factor {
            put_str(&g, "time_factor", t)?;
        }
        Ok(())
    }
}

/// The `/truth` of a run file, if it has one (read leniently: a figure overlay, not data).
pub fn read_truth(path: &Path) -> anyhow::Result<Option<Truth>> {
    let file = crate::io::h5_open(path).with_context(|| path.display().to_string())?;
    if !file.link_exists("truth") {
        return Ok(None);
    }
    let read = || -> hdf5::Result<Truth> {
        let g = file.group("truth")?;
        // 2D `[k, Nx, Ny]` or 3D `[k, Nx, Ny, Nz]`, as fields `[k, Nx, Ny·Nz]`.
        let block = |name: &str, components: &dyn Fn(usize) -> usize| -> hdf5::Result<Array3<f64>> {
            let a: ndarray::ArrayD<f64> = g.dataset(name)?.read_dyn()?;
            let s = a.shape().to_vec();
            let dim = s.len().saturating_sub(1);
            h5_check((dim == 2 || dim == 3) && s[0] == components(dim), &format!("{name}: shape {s:?} is not [{}, Nx, Ny] or [{}, Nx, Ny, Nz]", components(2), components(3)))?;
            let cells: usize = s[2..].iter().product();
            a.into_shape_with_order((s[0], s[1], cells)).map_err(|e| hdf5::Error::from(format!("{name}: {e}")))
        };
        let (a, d) = (block("A", &|d| d)?, block("D", &|d| d * (d + 1) / 2)?);
        let fields = ndarray::concatenate(ndarray::Axis(0), &[a.view(), d.view()]).map_err(|e| hdf5::Error::from(format!("A and D: {e}")))?;
        let vec = |n: &str| -> hdf5::Result<Vec<f64>> { g.dataset(n)?.read_raw() };
        let profiles = if g.link_exists("v_radial") { Some((vec("v_radial")?, vec("A_par")?, vec("D_par")?, vec("D_perp")?)) } else { None };
        let text = |n: &str| -> Option<String> { g.attr(n).and_then(|a| a.read_scalar::<hdf5::types::VarLenUnicode>()).ok().map(|s| s.as_str().to_owned()) };
        Ok(Truth { fields, profiles, kind: text("kind").unwrap_or_default(), spec: text("spec").unwrap_or_default(), time_factor: text("time_factor") })
    };
    read().map(Some).map_err(|e| anyhow::anyhow!("{}: /truth: {e}", path.display()))
}

/// The truth of run `run` of `cfg`.
pub fn truth_of(cfg: &SynthConfig, run: &RunSpec) -> anyhow::Result<Truth> {
    let grid = cfg.grid()?;
    let kind = serde_yaml::to_value(&cfg.operator).ok().and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned)).unwrap_or_default();
    Ok(Truth {
        fields: truth_fields(&cfg.operator, &grid, &run.params)?,
        profiles: truth_profiles(&cfg.operator, &grid, &run.params)?,
        kind,
        spec: serde_yaml::to_string(&cfg.operator)?,
        time_factor: cfg.time_factor.clone(),
    })
}

/// The operator's fields for a run with parameters `params`.
pub fn truth_fields(spec: &TruthSpec, grid: &VelocityGrid, params: &BTreeMap<String, f64>) -> anyhow::Result<Fields> {
    let polar = Polar::new(grid);
    let n = grid.n_cells();
    let n_fields = fp::n_fields(grid.dim());
    let mut out = Fields::zeros(grid.fields_shape(n_fields));
    match spec {
        TruthSpec::LenardBernstein { nu, v_th } => {
            let (mut a, mut d) = (vec![0.0; n], vec![0.0; n]);
            for c in 0..n {
                a[c] = -nu * polar.speed[c];
                d[c] = 2.0 * nu * v_th * v_th;
            }
            angular::to_cartesian(&polar, &a, &d, &d, out.as_slice_mut().expect("layout"));
        }
        TruthSpec::Radial { a_par, d_par, d_perp } => {
            let radial = RadialTruth::parse(a_par, d_par, d_perp, grid.dim())?;
            let (mut a, mut dp, mut dq) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            for c in 0..n {
                (a[c], dp[c], dq[c]) = radial.at(polar.speed[c], params)?;
            }
            angular::to_cartesian(&polar, &a, &dp, &dq, out.as_slice_mut().expect("layout"));
        }
        TruthSpec::Model { path } => {
            let m = crate::model_file::read_model(path)?;
            anyhow::ensure!(m.grid.compatible(grid), "operator.path: {} has a different grid than `grid`", path.display());
            anyhow::ensure!(m.fields.shape()[0] == n_fields, "operator.path: {} is not a Fokker–Planck model", path.display());
            out = m.fields;
        }
    }
    Ok(out)
}

/// Initial distribution on the grid (cell-centre values, unnormalised), `[1, Nx, Ny·Nz]` (see
/// [`VelocityGrid::fields_shape`]). Vectors of the components must have one value per velocity
/// dimension ([`SynthConfig::load`] checks; an empty `drift` is zero).
pub fn initial_density(init: &[Initial], grid: &VelocityGrid) -> anyhow::Result<Array3<f64>> {
    let dim = grid.dim();
    let nz = grid.nz();
    let mut f: Array3<f64> = Array3::zeros(grid.fields_shape(1));
    // Normalisation of an isotropic Gaussian of standard deviation `s`: (2πs²)^(d/2).
    let gauss_norm = |s: f64| {
        let n2 = 2.0 * std::f64::consts::PI * s * s;
        if dim == 3 {
            n2 * n2.sqrt()
        } else {
            n2
        }
    };
    // Σ_a (v_a − c_a)² over the grid's axes (`c` empty: the origin).
    let dist2 = |v: &[f64; 3], c: &[f64]| (0..dim).fold(0.0, |acc, a| acc + (v[a] - c.get(a).copied().unwrap_or(0.0)).powi(2));
    for (k, c) in init.iter().enumerate() {
        if let Some((key, v)) = c.vector() {
            anyhow::ensure!(v.len() == dim, "initial[{k}].{key} needs {dim} values on a {dim}D grid, got {}", v.len());
        }
        for i in 0..grid.nx {
            for j in 0..grid.ny {
                for kz in 0..nz {
                    let v = [grid.vx(i), grid.vy(j), if dim == 3 { grid.centre(2, kz) } else { 0.0 }];
                    let val = match c {
                        Initial::Normal { centre, sigma, weight } => {
                            anyhow::ensure!(*sigma > 0.0, "initial[{k}].sigma must be positive");
                            let r2 = dist2(&v, centre);
                            weight * (-r2 / (2.0 * sigma * sigma)).exp() / gauss_norm(*sigma)
                        }
                        Initial::Ring { radius, width, weight } => {
                            anyhow::ensure!(*width > 0.0 && *radius >= 0.0, "initial[{k}]: ring needs radius ≥ 0 and width > 0");
                            let r = if dim == 3 { v[0].hypot(v[1]).hypot(v[2]) } else { v[0].hypot(v[1]) };
                            weight * (-(r - radius).powi(2) / (2.0 * width * width)).exp()
                        }
                        Initial::Maxwellian { v_th, drift, weight } => {
                            anyhow::ensure!(*v_th > 0.0, "initial[{k}].v_th must be positive");
                            let r2 = dist2(&v, drift);
                            weight * (-r2 / (2.0 * v_th * v_th)).exp() / gauss_norm(*v_th)
                        }
                    };
                    f[[0, i, j * nz + kz]] += val;
                }
            }
        }
    }
    let total = f.sum();
    anyhow::ensure!(total > 0.0 && total.is_finite(), "initial distribution has no mass on the grid");
    Ok(f)
}

/// Draw `n` particles from the distribution `p` (≥ 0): multinomial counts by conditional binomials.
pub fn multinomial(p: &[f64], n: u64, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f64> {
    let mut rest: f64 = p.iter().sum();
    let mut left = n;
    let mut out = vec![0.0; p.len()];
    for (o, &pc) in out.iter_mut().zip(p) {
        if left == 0 || rest <= 0.0 {
            break;
        }
        let q = (pc / rest).clamp(0.0, 1.0);
        let k = if q >= 1.0 { left } else { rand_distr::Binomial::new(left, q).map(|b| b.sample(rng)).unwrap_or(0) };
        *o = k as f64;
        left -= k;
        rest -= pc;
    }
    out
}

/// Generate one run.
pub fn generate_run(cfg: &SynthConfig, run: &RunSpec, run_index: usize) -> anyhow::Result<RunData> {
    let grid = cfg.grid()?;
    let base = truth_fields(&cfg.operator, &grid, &run.params).with_context(|| format!("run {}", run.name))?;
    let time_factor = cfg.time_factor.as_deref().map(|t| Formula::parse(t, "time_factor")).transpose()?;
    let spec = SolverSpec { scheme: SchemeKind::Conservative, clamp_nonnegative: false, substeps: Substeps::Auto(solver::AutoWord::Auto), ..SolverSpec::default() };
    let scheme = solver::build(&spec, &crate::operator::Equation::FokkerPlanck, &grid)?;
    let max_factor = match &time_factor {
        None => 1.0,
        Some(f) => {
            let mut m: f64 = 0.0;
            for k in 0..=cfg.snapshots {
                let mut vars = run.params.clone();
                vars.insert("t".into(), k as f64 * cfg.dt);
                let v = f.eval(&vars, "time_factor")?;
                anyhow::ensure!(v >= 0.0, "time_factor: must be ≥ 0, got {v} at t = {}", k as f64 * cfg.dt);
                m = m.max(v);
            }
            m
        }
    };
    let bound = scheme.substeps((&base * max_factor).view(), cfg.dt);
    let substeps = cfg.substeps.max(bound);
    let h = cfg.dt / substeps as f64;
    let f0 = initial_density(&run.initial, &grid)?;
    let total0 = f0.sum();
    let scale = cfg.n_particles / total0;
    let f: Vec<f64> = f0.iter().map(|v| v * scale).collect();
    let (_, nx, cells) = grid.fields_shape(1);
    let mut out = Array3::zeros((cfg.snapshots, nx, cells));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.noise.as_ref().map_or(0, |n| n.seed) ^ ((run_index as u64 + 1) << 32));
    let mut record = |k: usize, f: &[f64]| {
        let snap: Vec<f64> = match &cfg.noise {
            Some(nz) => multinomial(f, nz.particles, &mut rng),
            None => f.to_vec(),
        };
        out.index_axis_mut(ndarray::Axis(0), k).as_slice_mut().expect("layout").copy_from_slice(&snap);
    };
    record(0, &f);
    // The truth rolls out through the solver's rollout code, with a prepared set per step for a
    // time factor (evaluated at each step's midpoint, all before the rollout).
    let mut prepared = Fields::zeros(scheme.prepared_shape());
    let mut ws = crate::solver::rollout::RolloutWorkspace::new(scheme.as_ref());
    let intervals = cfg.snapshots - 1;
    match &time_factor {
        None => {
            scheme.prepare(base.view(), h, prepared.view_mut());
            crate::solver::rollout::forward_by(scheme.as_ref(), intervals, |_| &prepared, substeps, &f, &mut ws, &mut record);
        }
        Some(tf) => {
            let mut factors = Vec::with_capacity(intervals * substeps);
            for k in 0..intervals {
                for s in 0..substeps {
                    let mut vars = run.params.clone();
                    vars.insert("t".into(), (k as f64 + (s as f64 + 0.5) / substeps as f64) * cfg.dt);
                    factors.push(tf.eval(&vars, "time_factor")?);
                }
            }
            let mut coeffs = base.clone();
            let with_prepared = |k: usize, s: usize, step: &mut dyn FnMut(&Fields)| {
                coeffs.assign(&base);
                coeffs *= factors[k * substeps + s];
                scheme.prepare(coeffs.view(), h, prepared.view_mut());
                step(&prepared);
            };
            crate::solver::rollout::forward_by_step(scheme.as_ref(), intervals, with_prepared, substeps, &f, &mut ws, &mut record);
        }
    }
    let mut params = run.params.clone();
    params.insert("synthetic".into(), 1.0);
    params.insert("truth_substeps".into(), substeps as f64);
    let t: Vec<f64> = (0..cfg.snapshots).map(|k| k as f64 * cfg.dt).collect();
    let tracks = match run.tracks.as_ref().or(cfg.tracks.as_ref()) {
        None => None,
        Some(spec) => {
            // The time factor at the start of every Euler–Maruyama sub-step.
            let factors = time_factor
                .as_ref()
                .map(|tf| {
                    let mut vars = run.params.clone();
                    (0..intervals * spec.substeps)
                        .map(|i| {
                            let time = (i as f64 / spec.substeps as f64) * cfg.dt;
                            vars.insert("t".into(), time);
                            let v = tf.eval(&vars, "time_factor")?;
                            anyhow::ensure!(v >= 0.0, "time_factor: must be ≥ 0, got {v} at t = {time}");
                            Ok(v)
                        })
                        .collect::<anyhow::Result<Vec<f64>>>()
                })
                .transpose()?;
            let f0 = f0.as_slice().expect("standard layout");
            params.insert("n_tracks".into(), spec.n as f64);
            params.insert("track_substeps".into(), spec.substeps as f64);
            Some(tracks::sample_tracks(&grid, &base, f0, &t, factors.as_deref(), spec, run_index)?)
        }
    };
    let n_particles = cfg.noise.as_ref().map_or(cfg.n_particles, |n| n.particles as f64);
    let mut diagnostics = BTreeMap::new();
    diagnostics.insert("total".into(), Array1::from_iter(out.outer_iter().map(|s| s.sum())));
    Ok(RunData {
        grid,
        f: out,
        t,
        dt: cfg.dt,
        n_particles,
        params,
        tracks,
        diagnostics,
        labels: Default::default(),
    })
}

/// Generate every run of `cfg` into `out_dir`, each with its `/truth`, returning the written
/// paths. All or nothing: the runs are built in a staging directory and moved into `out_dir`
/// once every one has succeeded.
pub fn generate(cfg: &SynthConfig, out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let staged = crate::io::StagedDir::new(out_dir)?;
    let mut written = Vec::new();
    for (i, run) in cfg.runs.iter().enumerate() {
        let context = || format!("runs[{i}] ({})", run.name);
        let data = generate_run(cfg, run, i).with_context(context)?;
        let truth = truth_of(cfg, run).with_context(context)?;
        let path = staged.path().join(format!("{}.h5", run.name));
        crate::data::write_run_with(&path, &data, &|f| truth.write(f, &data.grid))?;
        let path = staged.final_path(&path);
        tracing::info!("generated {} ({} snapshots, truth sub-steps {})", path.display(), data.t.len(), data.params["truth_substeps"]);
        written.push(path);
    }
    staged.commit()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multinomial_preserves_count_and_mean() {
        let p = vec![0.1, 0.0, 0.3, 0.6];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let c = multinomial(&p, 100_000, &mut rng);
        assert_eq!(c.iter().sum::<f64>(), 100_000.0);
        assert_eq!(c[1], 0.0);
        assert!((c[3] / 1e5 - 0.6).abs() < 0.01, "{c:?}");
    }

    #[test]
    fn formulas_read_scientific_notation() {
        let vars: BTreeMap<String, f64> = [("v".to_string(), 2.0), ("e2".to_string(), 10.0)].into();
        let f = |text: &str| Formula::parse(text, "test").unwrap().eval(&vars, "test").unwrap();
        assert_eq!(f("1.6e-2*v"), 0.016 * 2.0);
        assert_eq!(f("2E+1 - .5 + 3.e0"), 20.0 - 0.5 + 3.0);
        assert_eq!(f("1e3*exp(0)"), 1000.0);
        // A variable that starts with `e` after a number is still a variable.
        assert_eq!(f("3*e2"), 30.0);
        assert!(Formula::parse("1.6e-", "test").is_err());
    }

    #[test]
    fn stationary_drag_matches_formula() {
        let grid = VelocityGrid::square(11, 4.0).unwrap();
        let spec = TruthSpec::Radial {
            a_par: "stationary".into(),
            d_par: "0.016*(1+v^2/4)^(-1.5)".into(),
            d_perp: "0.016*(1+v^2/4)^(-0.5)".into(),
        };
        let f = truth_fields(&spec, &grid, &BTreeMap::new()).unwrap();
        // Closed form: A_par = -3 d0 v/8 (1+v²/4)^(-5/2) - d0 v/8 (1+v²/4)^(-3/2) - d0 v/2 (1+v²/4)^(-3/2).
        let d0 = 0.016;
        for (i, j) in [(7, 5), (9, 2), (10, 10)] {
            let (vx, vy) = (grid.vx(i), grid.vy(j));
            let v = vx.hypot(vy);
            let u = 1.0 + v * v / 4.0;
            let a = -3.0 * d0 * v / 8.0 * u.powf(-2.5) - d0 * v / 8.0 * u.powf(-1.5) - d0 * v / 2.0 * u.powf(-1.5);
            assert!((f[[fp::AX, i, j]] - a * vx / v).abs() < 1e-8, "{} vs {}", f[[fp::AX, i, j]], a * vx / v);
        }
        let bad = TruthSpec::Radial { a_par: "stationary".into(), d_par: "q*v".into(), d_perp: "1".into() };
        assert!(truth_fields(&bad, &grid, &BTreeMap::new()).unwrap_err().to_string().contains("unknown variable `q`"));
    }
}
