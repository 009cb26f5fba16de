//! `colop import`: bring data and operators from other layouts into colop's files.

use super::Context;
use crate::data::particles::{self, IterationRange, Settings};
use crate::grid::VelocityGrid;
use anyhow::{bail, Context as _};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Convert folders of NNNNNN.npy histograms plus args.yaml (the reference code's layout) into
    /// one run file <out>/<folder name>.h5 each.
    NpyFolder(NpyFolderArgs),
    /// Turn operator arrays in the reference code's grid units (A [2,Nx,Ny], D [3,Nx,Ny] in the
    /// order xx, yy, xy) into a `tensor` model on the grid of a run file.
    Operator(OperatorArgs),
    /// Histogram one species of an openPMD series (HDF5; WarpX, PIConGPU, fbpic, …) into a run
    /// file: velocities (relativistic, from momentum/{x,y,z} and mass) in units of v_th,
    /// weighted by `weighting`, times in 1/ω_p.
    Openpmd(OpenpmdArgs),
    /// Import OSIRIS HDF5 output (RAW particle dumps, or p1p2 phase spaces) of one species into
    /// a run file (normalised units: time 1/ω_p, momenta m c).
    Osiris(OsirisArgs),
}

/// Options shared by the PIC importers.
#[derive(clap::Args, Debug)]
pub struct ParticleArgs {
    /// The species to import.
    #[arg(long)]
    pub species: String,
    /// The run file to write (atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// The two velocity components of the histogram (first is v_x of the grid): ux,uy (openPMD
    /// x, y, z; OSIRIS p1, p2, p3). Default ux,uy / p1,p2. 3-D histograms are not supported yet.
    #[arg(long)]
    pub components: Option<String>,
    /// Cells per axis: N, or NX,NY.
    #[arg(long, default_value = "51")]
    pub bins: String,
    /// Velocity range in v_th: V (for [-V, V]²) or xmin,xmax,ymin,ymax.
    #[arg(long, default_value = "5", allow_hyphen_values = true)]
    pub v_range: String,
    /// The thermal speed, in units of c (e.g. 0.05).
    #[arg(long, conflicts_with = "v_th_from", required_unless_present = "v_th_from")]
    pub v_th: Option<f64>,
    /// Measure v_th on this (background) species at the first imported iteration: the weighted
    /// √(½(σ²_x + σ²_y)) of the two imported velocity components.
    #[arg(long)]
    pub v_th_from: Option<String>,
    /// Iterations to import, a:b:step (a ≤ i < b, every step-th number from a; parts optional).
    #[arg(long)]
    pub iterations: Option<String>,
    /// Track this many particles (/tracks): the lowest ids present at every imported iteration.
    #[arg(long, default_value_t = 0)]
    pub tracks: usize,
    /// Extra run parameters, k=v,k=v (numbers), stored in /params.
    #[arg(long)]
    pub params: Option<String>,
}

/// Options of `colop import openpmd`.
#[derive(clap::Args, Debug)]
pub struct OpenpmdArgs {
    /// The series: a file-based pattern (diags/hdf5/data%08T.h5), one of its files, a
    /// group-based file, or a folder holding one series.
    pub series: PathBuf,
    #[command(flatten)]
    pub common: ParticleArgs,
    /// Plasma frequency ω_p in rad/s (times become ω_p t).
    #[arg(long, conflicts_with = "density", required_unless_present = "density")]
    pub omega_p: Option<f64>,
    /// Electron density in m⁻³, for ω_p = √(n e²/(ε₀ m_e)).
    #[arg(long)]
    pub density: Option<f64>,
}

/// What OSIRIS diagnostic to read.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsirisDiagnostic {
    /// RAW particle dumps (p1, p2, p3, q, tag), binned here.
    Raw,
    /// p1p2 phase spaces, on their own grid (--bins and --v-range do not apply).
    P1p2,
    /// p1p2p3 phase spaces: refused until 3-D velocity space exists.
    P1p2p3,
}

/// Options of `colop import osiris`.
#[derive(clap::Args, Debug)]
pub struct OsirisArgs {
    /// The run folder (holding MS/), the MS folder, or a folder of dumps.
    pub dir: PathBuf,
    #[command(flatten)]
    pub common: ParticleArgs,
    /// The diagnostic to import.
    #[arg(long, value_enum, default_value_t = OsirisDiagnostic::Raw)]
    pub diagnostic: OsirisDiagnostic,
}

/// Options of `colop import operator`.
#[derive(clap::Args, Debug)]
pub struct OperatorArgs {
    /// Drag in grid units (A/Δv), `.npy` float64 [2, Nx, Ny].
    #[arg(long)]
    pub a: PathBuf,
    /// Diffusion in grid units (D/Δv²), `.npy` float64 [3, Nx, Ny], order xx, yy, xy.
    #[arg(long)]
    pub d: PathBuf,
    /// A run file whose velocity grid the arrays live on.
    #[arg(long)]
    pub like: PathBuf,
    /// The model file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Options of `colop import npy-folder`.
#[derive(clap::Args, Debug)]
pub struct NpyFolderArgs {
    /// Folders to import. Each holds NNNNNN.npy files (2-D float64 count histograms, first index
    /// v_x) and args.yaml with dt, i_start, i_end, v_range, v_range_units, n_bins. Files with
    /// index i_start..=i_end (i_end -1: to the last) are imported, file i at time i·dt; a missing
    /// index between two present ones is an error. Other numeric keys become run parameters.
    #[arg(required = true)]
    pub folders: Vec<PathBuf>,
    /// Directory for the .h5 files (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(cmd: Command, ctx: &Context) -> anyhow::Result<()> {
    match cmd {
        Command::NpyFolder(args) => npy_folder(args, ctx),
        Command::Openpmd(args) if ctx.comm.rank() == 0 => openpmd(args),
        Command::Osiris(args) if ctx.comm.rank() == 0 => osiris(args),
        Command::Openpmd(_) | Command::Osiris(_) => Ok(()),
        Command::Operator(args) => {
            if ctx.comm.rank() == 0 {
                let model = crate::model_file::import::import_operator(&args.a, &args.d, &args.like)?;
                crate::model_file::write_model(&args.out, &model)?;
                println!("{}", args.out.display());
            }
            Ok(())
        }
    }
}

fn npy_folder(args: NpyFolderArgs, ctx: &Context) -> anyhow::Result<()> {
    if ctx.comm.rank() != 0 {
        return Ok(());
    }
    for (folder, out) in args.folders.iter().zip(crate::data::import_npy_folders(&args.folders, &args.out)?) {
        tracing::info!("imported {} -> {}", folder.display(), out.display());
        println!("{}", out.display());
    }
    Ok(())
}

/// `--components`: two axis indices (0, 1, 2) from names such as ux, x, px, vx (openPMD) or p1
/// (OSIRIS).
fn parse_components(text: Option<&str>) -> anyhow::Result<[usize; 2]> {
    let Some(text) = text else { return Ok([0, 1]) };
    let axis = |s: &str| -> anyhow::Result<usize> {
        let s = s.trim().to_ascii_lowercase();
        Ok(match s.as_str() {
            "x" | "ux" | "px" | "vx" | "p1" | "1" => 0,
            "y" | "uy" | "py" | "vy" | "p2" | "2" => 1,
            "z" | "uz" | "pz" | "vz" | "p3" | "3" => 2,
            _ => bail!("--components: unknown component {s:?} (use ux, uy, uz or p1, p2, p3)"),
        })
    };
    let axes = text.split(',').map(axis).collect::<anyhow::Result<Vec<_>>>()?;
    match axes.as_slice() {
        [a, b] if a != b => Ok([*a, *b]),
        [_, _] => bail!("--components {text:?}: the two components must differ"),
        [_, _, _] => bail!("--components {text:?}: 3-D velocity histograms are not supported yet; choose two components"),
        _ => bail!("--components {text:?}: expected two components, e.g. ux,uy"),
    }
}

fn numbers(text: &str, what: &str) -> anyhow::Result<Vec<f64>> {
    text.split(',')
        .map(|s| s.trim().parse::<f64>().map_err(|_| anyhow::anyhow!("{what} {text:?}: {s:?} is not a number")))
        .collect()
}

/// The histogram grid from `--bins` and `--v-range`, in units of v_th.
fn grid(args: &ParticleArgs) -> anyhow::Result<VelocityGrid> {
    let bins: Vec<usize> = args
        .bins
        .split(',')
        .map(|s| s.trim().parse::<usize>().map_err(|_| anyhow::anyhow!("--bins {:?}: {s:?} is not a cell count", args.bins)))
        .collect::<anyhow::Result<_>>()?;
    let (nx, ny) = match bins.as_slice() {
        [n] => (*n, *n),
        [nx, ny] => (*nx, *ny),
        _ => bail!("--bins {:?}: expected N or NX,NY", args.bins),
    };
    let v = numbers(&args.v_range, "--v-range")?;
    let range = match v.as_slice() {
        [v] => [-v, *v, -v, *v],
        [a, b, c, d] => [*a, *b, *c, *d],
        _ => bail!("--v-range {:?}: expected V or xmin,xmax,ymin,ymax", args.v_range),
    };
    VelocityGrid::new(nx, ny, range, "v_th").map_err(|e| anyhow::anyhow!("--bins/--v-range: {e}"))
}

/// `--params k=v,…`.
fn user_params(text: Option<&str>) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for item in text.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| anyhow::anyhow!("--params: {item:?} is not k=v"))?;
        let x: f64 = v.trim().parse().map_err(|_| anyhow::anyhow!("--params: {k}={v:?} is not a number"))?;
        let k = k.trim();
        if k.is_empty() || k.contains('/') || !x.is_finite() {
            bail!("--params: {item:?} needs a name without '/' and a finite number");
        }
        out.insert(k.to_string(), x);
    }
    Ok(out)
}

fn iterations(args: &ParticleArgs) -> anyhow::Result<IterationRange> {
    match &args.iterations {
        Some(t) => IterationRange::parse(t).map_err(anyhow::Error::msg),
        None => Ok(IterationRange::default()),
    }
}

fn check_v_th(v_th: f64, from: &str) -> anyhow::Result<f64> {
    if v_th.is_finite() && v_th > 0.0 && v_th < 1.0 {
        Ok(v_th)
    } else {
        bail!("{from}: v_th = {v_th} c must be in (0, 1)")
    }
}

fn report(out: &std::path::Path, run: &crate::data::RunData) {
    tracing::info!(
        "wrote {}: {} snapshots, t = {:.6}..{:.6} 1/ω_p, {} tracked",
        out.display(),
        run.t.len(),
        run.t[0],
        run.t[run.t.len() - 1],
        run.tracks.as_ref().map_or(0, |t| t.dim().1)
    );
    println!("{}", out.display());
}

fn openpmd(args: OpenpmdArgs) -> anyhow::Result<()> {
    let c = &args.common;
    let components = parse_components(c.components.as_deref())?;
    let grid = grid(c)?;
    let range = iterations(c)?;
    let omega_p = match (args.omega_p, args.density) {
        (Some(w), _) => w,
        (None, Some(n)) if n.is_finite() && n > 0.0 => particles::electron_plasma_frequency(n),
        (None, Some(n)) => bail!("--density {n} must be finite and > 0"),
        (None, None) => bail!("give --omega-p or --density"),
    };
    if !(omega_p.is_finite() && omega_p > 0.0) {
        bail!("--omega-p {omega_p} must be finite and > 0");
    }
    let mut series = crate::data::openpmd::Series::open(&args.series)?;
    series.retain(|i| range.contains(i)).map_err(|m| anyhow::anyhow!("{}: {m}", args.series.display()))?;
    for (k, v) in &series.string_attributes {
        tracing::info!("series {k}: {v}");
    }
    let v_th = match (&c.v_th, &c.v_th_from) {
        (Some(v), _) => check_v_th(*v, "--v-th")?,
        (None, Some(bg)) => {
            let src = series.species(bg, components, omega_p)?;
            let v = particles::thermal_speed(&src, 0)?;
            tracing::info!("v_th of {bg} at the first iteration: {v} c");
            check_v_th(v, &format!("--v-th-from {bg}"))?
        }
        (None, None) => bail!("give --v-th or --v-th-from"),
    };
    let src = series.species(&c.species, components, omega_p)?;
    let mut params = series.numeric_attributes.clone();
    params.insert("v_th".into(), v_th);
    params.insert("omega_p".into(), omega_p);
    params.extend(user_params(c.params.as_deref())?);
    // String series attributes are kept as labels; a number of the same name wins.
    let mut labels = series.string_attributes.clone();
    labels.retain(|k, _| !params.contains_key(k));
    let settings = Settings { grid, v_th, tracks: c.tracks, params, labels };
    let run = particles::import(&src, &settings, &c.out, &format!("import {}", c.species))
        .with_context(|| format!("importing {} into {}", args.series.display(), c.out.display()))?;
    report(&c.out, &run);
    Ok(())
}

fn osiris(args: OsirisArgs) -> anyhow::Result<()> {
    use crate::data::osiris;
    let c = &args.common;
    let components = parse_components(c.components.as_deref())?;
    let range = iterations(c)?;
    let v_th = match (&c.v_th, &c.v_th_from) {
        (Some(v), _) => check_v_th(*v, "--v-th")?,
        (None, Some(bg)) => {
            let src = osiris::RawDumps::open(&args.dir, bg, components, |i| range.contains(i))?;
            let v = particles::thermal_speed(&src, 0)?;
            tracing::info!("v_th of {bg} at the first dump: {v} c");
            check_v_th(v, &format!("--v-th-from {bg}"))?
        }
        (None, None) => bail!("give --v-th or --v-th-from"),
    };
    let mut params = BTreeMap::from([("v_th".to_string(), v_th)]);
    params.extend(user_params(c.params.as_deref())?);
    let run = match args.diagnostic {
        OsirisDiagnostic::Raw => {
            let src = osiris::RawDumps::open(&args.dir, &c.species, components, |i| range.contains(i))?;
            let settings = Settings { grid: grid(c)?, v_th, tracks: c.tracks, params, labels: BTreeMap::new() };
            particles::import(&src, &settings, &c.out, &format!("import {}", c.species))?
        }
        OsirisDiagnostic::P1p2 => {
            if c.tracks > 0 {
                bail!("--tracks needs RAW dumps (--diagnostic raw)");
            }
            osiris::import_phase_space(&args.dir, "p1p2", &c.species, v_th, |i| range.contains(i), params, &c.out)?
        }
        OsirisDiagnostic::P1p2p3 => {
            bail!("p1p2p3 phase spaces are 3-D velocity histograms, which colop does not support yet; import RAW dumps or p1p2")
        }
    };
    report(&c.out, &run);
    Ok(())
}
