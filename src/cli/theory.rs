//! `colop theory`: Lenard–Balescu drag and diffusion of finite-size 2D particles to CSV, JSON and a
//! `par-perp` `model.h5` (on a 3D `--like` grid a `tensor` one: the in-plane coefficients at every
//! v_z, zero z components); with `--pic CONFIG`, of the discretised plasma of that `colop pic` run
//! (aliasing, the field solver, interpolation; [`crate::theory::pic`]).

use super::Context;
use crate::grid::VelocityGrid;
use crate::theory::{self, output, pic, Accuracy, Plasma, RadialPoint};
use anyhow::Context as _;
use std::path::PathBuf;

/// Options of `colop theory`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// n·λ_D² of the plasma (area density times Debye length squared; = ppc·(λ_D/Δx)² in a PIC run).
    /// Required unless --pic is given.
    #[arg(long, allow_hyphen_values = true, required_unless_present = "pic", conflicts_with = "pic")]
    pub n_lambda_d2: Option<f64>,
    /// PIC-aware theory of this `colop pic` config: its shape (order, Gaussian width), cell size,
    /// density (thermal self-consistent test particles count as plasma) and the field solver as
    /// implemented, with alias sums grown until converged (--alias-tol). Writes the continuum
    /// theory of the same plasma beside it (continuum.csv) and replaces --n-lambda-d2, --shape,
    /// --dx and --gaussian-width.
    #[arg(long, conflicts_with_all = ["shape", "dx", "gaussian_width"])]
    pub pic: Option<PathBuf>,
    /// With --pic: grow the alias order M until A_∥, D_∥ and D_⊥ at 1 and 2 v_th change by
    /// less than this (relative) from M − 1 to M.
    #[arg(long, default_value_t = 1e-3)]
    pub alias_tol: f64,
    /// With --pic: use this alias order M instead of converging it.
    #[arg(long)]
    pub aliases: Option<u32>,
    /// With --pic: the theory sums over the modes of a periodic box of at least this many cells
    /// per side (default: the run's box). A box larger than the run's smooths the narrow aliased
    /// resonances the way velocity bins do.
    #[arg(long, default_value_t = 0)]
    pub box_cells: usize,
    /// B-spline order of the particle shape: 1 linear, 2 quadratic, 3 cubic, 4 quartic.
    #[arg(long, default_value_t = 2)]
    pub shape: u32,
    /// Mesh spacing Δx in Debye lengths.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub dx: f64,
    /// Width a (Debye lengths) of an extra Gaussian form factor e^(−k²a²/2); 0 for none.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub gaussian_width: f64,
    /// Output directory (coefficients.csv, theory.json, model.h5).
    #[arg(long)]
    pub out: PathBuf,
    /// Put model.h5 on the velocity grid of this run file instead of 51×51 over ±5 v_th. A 3-D
    /// (v_x, v_y, v_z) grid gets the 2-D plasma's coefficients on the (v_x, v_y) plane at every
    /// v_z, with A_z = D_zz = D_xz = D_yz = 0 (a `tensor` model.h5).
    #[arg(long)]
    pub like: Option<PathBuf>,
    /// Spacing of the radial speeds of coefficients.csv, v_th.
    #[arg(long, default_value_t = 0.05)]
    pub dv: f64,
    /// Largest speed of coefficients.csv, v_th (without --pic raised to the model grid's corner if smaller).
    #[arg(long, default_value_t = 8.0)]
    pub v_max: f64,
    /// Relative tolerance of the adaptive quadratures (without --pic; --pic sums over modes).
    #[arg(long, default_value_t = 1e-9)]
    pub rel_tol: f64,
}

/// The plasma of a PIC config in the units of its own mean electron density, and the factors
/// back to the config's units.
struct PicPlasma {
    plasma: Plasma,
    /// √(1 + f): ω_p of the whole electron density over the config's ω_p (f = test charge fraction).
    omega_ratio: f64,
    /// Polarisation-drag factor of the tracked test particles: their weight, 0 for tracers.
    drag_weight: f64,
    /// Charge fraction f of the test particles counted as plasma.
    test_fraction: f64,
}

fn pic_plasma(cfg: &crate::pic::PicConfig) -> anyhow::Result<PicPlasma> {
    let tp = &cfg.test_particles;
    let electrons = (cfg.grid.nx * cfg.grid.ny * cfg.ppc()) as f64;
    let thermal = matches!(tp.distribution, crate::pic::Distribution::Maxwellian { v_th } if v_th == 1.0);
    let self_consistent = tp.mode == crate::pic::TestMode::SelfConsistent;
    let (f_d, f_s) = if self_consistent && thermal {
        (tp.n as f64 * tp.weight / electrons, tp.n as f64 * tp.weight * tp.weight / electrons)
    } else {
        let f = if self_consistent { tp.n as f64 * tp.weight / electrons } else { 0.0 };
        if f > 0.01 {
            tracing::warn!("test particles are not thermal but carry {:.1}% of the electron charge: the theory leaves them out of the plasma", 100.0 * f);
        }
        (0.0, 0.0)
    };
    // Units of the total density: λ_D′ = λ_D/√(1+f_d), ω_p′ = ω_p√(1+f_d); the fluctuation source
    // carries Σ n q² and the response Σ n q²/m, hence N′ = (ppc/Δx²)(1+f_d)/(1+f_s).
    let r = (1.0 + f_d).sqrt();
    let plasma = Plasma::new(
        cfg.n_lambda_d2() * (1.0 + f_d) / (1.0 + f_s),
        cfg.order() as u32,
        cfg.grid.dx * r,
        cfg.shape.gaussian_width * r,
    )?;
    Ok(PicPlasma { plasma, omega_ratio: r, drag_weight: if self_consistent { tp.weight } else { 0.0 }, test_fraction: f_d })
}

/// Coefficients of the plasma's own units in the config's: D, ½∂D and F scale with ω_p′/ω_p, F
/// also with the test particles' weight.
fn to_config_units(points: &[RadialPoint], p: &PicPlasma) -> Vec<RadialPoint> {
    points
        .iter()
        .map(|q| {
            let (half_div_d, f_par) = (q.half_div_d * p.omega_ratio, q.f_par * p.omega_ratio * p.drag_weight);
            RadialPoint {
                v: q.v,
                a_par: half_div_d + f_par,
                d_par: q.d_par * p.omega_ratio,
                d_perp: q.d_perp * p.omega_ratio,
                f_par,
                half_div_d,
            }
        })
        .collect()
}

/// ½ d⟨v²⟩/dt of a unit 2D Maxwellian under the radial coefficients (v_th²ω_p): its relative
/// heating rate d ln T/dt, zero when the Maxwellian is stationary.
fn heating_rate(points: &[RadialPoint]) -> f64 {
    // ⟨tr D + 2v·A⟩ = ∫₀^∞ v e^(−v²/2) (D_∥ + D_⊥ + 2vA_∥) dv, trapezoid on the profile's nodes.
    let h = |p: &RadialPoint| p.v * (-0.5 * p.v * p.v).exp() * (p.d_par + p.d_perp + 2.0 * p.v * p.a_par);
    let integral: f64 = points.windows(2).map(|w| 0.5 * (w[1].v - w[0].v) * (h(&w[0]) + h(&w[1]))).sum();
    0.5 * integral
}

pub fn run(args: Args, _ctx: &Context) -> anyhow::Result<()> {
    anyhow::ensure!(args.dv.is_finite() && args.dv > 0.0, "--dv must be finite and > 0, got {}", args.dv);
    anyhow::ensure!(args.v_max.is_finite() && args.v_max > 0.0, "--v-max must be finite and > 0, got {}", args.v_max);
    let rel_tol = args.rel_tol;
    anyhow::ensure!((1e-13..=1e-2).contains(&rel_tol), "--rel-tol must be in [1e-13, 1e-2], got {rel_tol}");
    anyhow::ensure!(args.alias_tol.is_finite() && (1e-8..=0.1).contains(&args.alias_tol), "--alias-tol must be in [1e-8, 0.1], got {}", args.alias_tol);
    anyhow::ensure!(args.aliases.is_none_or(|m| m <= pic::MAX_ALIASES), "--aliases must be at most {}", pic::MAX_ALIASES);
    let pic_cfg = match &args.pic {
        Some(path) => Some(crate::pic::PicConfig::load(path)?),
        None => None,
    };
    let pic_plasma = pic_cfg.as_ref().map(pic_plasma).transpose()?;
    let plasma = match &pic_plasma {
        Some(p) => p.plasma,
        None => Plasma::new(args.n_lambda_d2.unwrap_or(f64::NAN), args.shape, args.dx, args.gaussian_width)?,
    };
    let grid = match &args.like {
        Some(path) => {
            let grid = crate::data::read_run(path)?.grid;
            anyhow::ensure!(grid.units == "v_th", "{}: velocity units are {:?}; the theory needs a grid in v_th", path.display(), grid.units);
            grid
        }
        None => VelocityGrid::square(51, 5.0)?,
    };
    // The continuum theory covers the model grid; --pic (costlier) stops at --v-max, and its
    // model.h5 holds the last speed's coefficients beyond.
    let v_max = if args.pic.is_some() { args.v_max } else { args.v_max.max(grid.plane().v_corner()) };
    let n = (v_max / args.dv).ceil() as usize;
    anyhow::ensure!(n <= 100_000, "--v-max / --dv gives {n} radial speeds; at most 100000");
    let speeds: Vec<f64> = (0..=n).map(|i| (i as f64 * args.dv).min(v_max)).collect();
    let accuracy = Accuracy { rel: rel_tol };
    let mut pic_summary = serde_json::Value::Null;
    let points = match (&pic_plasma, &pic_cfg) {
        (Some(pp), Some(cfg)) => {
            // Speeds are in the config's v_th, which the unit change leaves alone.
            let modes = pic::BoxModes { nx: cfg.grid.nx.max(args.box_cells), ny: cfg.grid.ny.max(args.box_cells) };
            anyhow::ensure!(modes.nx * modes.ny <= 1 << 20, "{}×{} modes (--box-cells {}); at most 2^20", modes.nx, modes.ny, args.box_cells);
            let (m, history) = match args.aliases {
                Some(m) => (m, Vec::new()),
                None => {
                    tracing::info!(?plasma, alias_tol = args.alias_tol, "converging the alias order");
                    pic::converge_aliases(|m| Ok(pic::Scheme::pic(plasma, m).box_radial_profile(modes, &[1.0, 2.0])), args.alias_tol)?
                }
            };
            tracing::info!(aliases = m, n_speeds = speeds.len(), "computing PIC-aware coefficients");
            let scheme = pic::Scheme::pic(plasma, m);
            let points = to_config_units(&scheme.box_radial_profile(modes, &speeds), pp);
            tracing::info!("computing the continuum theory of the same plasma on the same modes");
            let continuum = to_config_units(&pic::Scheme::continuum(plasma).with_aliases(m).box_radial_profile(modes, &speeds), pp);
            std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
            let csv = args.out.join("continuum.csv");
            output::write_csv(&csv, &continuum).with_context(|| format!("writing {}", csv.display()))?;
            let dt = cfg.time.dt * pp.omega_ratio;
            pic_summary = serde_json::json!({
                "config": args.pic.as_ref().map(|p| p.display().to_string()),
                "operators": "grid: spline deposit and interpolation, spectral Poisson e^(-k²a²)/k² and gradient ik on the zone wavenumber",
                "aliases": m,
                "box_modes": [modes.nx, modes.ny],
                "alias_tol": args.alias_tol,
                "alias_history": history.iter().map(|h| serde_json::json!({"aliases": h.aliases, "max_rel_change": h.max_rel_change})).collect::<Vec<_>>(),
                "test_charge_fraction_in_plasma": pp.test_fraction,
                "omega_p_ratio": pp.omega_ratio,
                "drag_weight": pp.drag_weight,
                "plasma_units": {"n_lambda_d2": plasma.n_lambda_d2, "dx_over_lambda_d": plasma.dx, "gaussian_width": plasma.gaussian_width},
                "time_step": pic::time_step_effects(&plasma, dt, 3.0),
                "heating_rate_dlnT_dt": heating_rate(&points),
                "continuum_heating_rate_dlnT_dt": heating_rate(&continuum),
                "continuum_samples": samples(&speeds, &continuum),
            });
            points
        }
        _ => {
            tracing::info!(n_speeds = speeds.len(), ?plasma, "computing Lenard–Balescu coefficients");
            theory::radial_profile(&plasma, &speeds, accuracy)?
        }
    };

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let csv = args.out.join("coefficients.csv");
    output::write_csv(&csv, &points).with_context(|| format!("writing {}", csv.display()))?;
    let worst_residual = points.iter().map(|p| p.stationarity_residual().abs()).fold(0.0, f64::max);
    let summary = serde_json::json!({
        "n_lambda_d2": plasma.n_lambda_d2,
        "shape_order": plasma.shape_order,
        "dx_over_lambda_d": plasma.dx,
        "gaussian_width": plasma.gaussian_width,
        "direction": "v along x",
        "rel_tol": rel_tol,
        "max_abs_stationarity_residual": worst_residual,
        "samples": samples(&speeds, &points),
        "pic": pic_summary,
    });
    let json = args.out.join("theory.json");
    crate::io::write_bytes_atomic(&json, serde_json::to_string_pretty(&summary)?.as_bytes())
        .with_context(|| format!("writing {}", json.display()))?;
    let source = if args.pic.is_some() { "PIC-aware colop theory --pic" } else { "colop theory" };
    let model = output::par_perp_model(&grid, &points, &plasma, &format!("{source} {}", env!("CARGO_PKG_VERSION")));
    crate::model_file::write_model(&args.out.join("model.h5"), &model)?;
    tracing::info!(out = %args.out.display(), "wrote coefficients.csv, theory.json, model.h5");
    Ok(())
}

/// The profile at 0.5, 1, 2 and 3 v_th (linear interpolation).
fn samples(speeds: &[f64], points: &[RadialPoint]) -> serde_json::Value {
    let at = |v: f64| {
        let column = |f: fn(&RadialPoint) -> f64| output::interpolate(speeds, &points.iter().map(f).collect::<Vec<_>>(), v);
        serde_json::json!({"v": v, "A_par": column(|p| p.a_par), "D_par": column(|p| p.d_par), "D_perp": column(|p| p.d_perp)})
    };
    serde_json::json!([at(0.5), at(1.0), at(2.0), at(3.0)])
}
