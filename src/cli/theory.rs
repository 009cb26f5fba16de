//! `colop theory`: Lenard–Balescu drag and diffusion of finite-size 2D particles to CSV, JSON and a
//! `par-perp` `model.h5`.

use super::Context;
use crate::grid::VelocityGrid;
use crate::theory::{self, output, Accuracy, Plasma};
use anyhow::Context as _;
use std::path::PathBuf;

/// Options of `colop theory`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// n·λ_D² of the plasma (area density times Debye length squared; = ppc·(λ_D/Δx)² in a PIC run).
    #[arg(long, allow_hyphen_values = true)]
    pub n_lambda_d2: f64,
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
    /// Put model.h5 on the velocity grid of this run file instead of 51×51 over ±5 v_th.
    #[arg(long)]
    pub like: Option<PathBuf>,
    /// Spacing of the radial speeds of coefficients.csv, v_th.
    #[arg(long, default_value_t = 0.05)]
    pub dv: f64,
    /// Largest speed of coefficients.csv, v_th (raised to the model grid's corner if smaller).
    #[arg(long, default_value_t = 8.0)]
    pub v_max: f64,
    /// Relative tolerance of the adaptive quadratures.
    #[arg(long, default_value_t = 1e-9)]
    pub rel_tol: f64,
}

pub fn run(args: Args, _ctx: &Context) -> anyhow::Result<()> {
    let plasma = Plasma::new(args.n_lambda_d2, args.shape, args.dx, args.gaussian_width)?;
    anyhow::ensure!(args.dv.is_finite() && args.dv > 0.0, "--dv must be finite and > 0, got {}", args.dv);
    anyhow::ensure!(args.v_max.is_finite() && args.v_max > 0.0, "--v-max must be finite and > 0, got {}", args.v_max);
    anyhow::ensure!((1e-13..=1e-2).contains(&args.rel_tol), "--rel-tol must be in [1e-13, 1e-2], got {}", args.rel_tol);
    let grid = match &args.like {
        Some(path) => {
            let grid = crate::data::read_run(path)?.grid;
            anyhow::ensure!(grid.units == "v_th", "{}: velocity units are {:?}; the theory needs a grid in v_th", path.display(), grid.units);
            grid
        }
        None => VelocityGrid::square(51, 5.0)?,
    };
    let v_max = args.v_max.max(grid.v_corner());
    let n = (v_max / args.dv).ceil() as usize;
    anyhow::ensure!(n <= 100_000, "--v-max / --dv gives {n} radial speeds; at most 100000");
    let speeds: Vec<f64> = (0..=n).map(|i| (i as f64 * args.dv).min(v_max)).collect();
    let accuracy = Accuracy { rel: args.rel_tol };
    tracing::info!(n_speeds = speeds.len(), ?plasma, "computing Lenard–Balescu coefficients");
    let points = theory::radial_profile(&plasma, &speeds, accuracy)?;

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let csv = args.out.join("coefficients.csv");
    output::write_csv(&csv, &points).with_context(|| format!("writing {}", csv.display()))?;
    let at = |v: f64| {
        let column = |f: fn(&theory::RadialPoint) -> f64| {
            output::interpolate(&speeds, &points.iter().map(f).collect::<Vec<_>>(), v)
        };
        serde_json::json!({"v": v, "A_par": column(|p| p.a_par), "D_par": column(|p| p.d_par), "D_perp": column(|p| p.d_perp)})
    };
    let worst_residual = points.iter().map(|p| p.stationarity_residual().abs()).fold(0.0, f64::max);
    let summary = serde_json::json!({
        "n_lambda_d2": plasma.n_lambda_d2,
        "shape_order": plasma.shape_order,
        "dx_over_lambda_d": plasma.dx,
        "gaussian_width": plasma.gaussian_width,
        "direction": "v along x",
        "rel_tol": args.rel_tol,
        "max_abs_stationarity_residual": worst_residual,
        "samples": [at(0.5), at(1.0), at(2.0), at(3.0)],
    });
    let json = args.out.join("theory.json");
    crate::io::write_bytes_atomic(&json, serde_json::to_string_pretty(&summary)?.as_bytes())
        .with_context(|| format!("writing {}", json.display()))?;
    let model = output::par_perp_model(&grid, &points, &plasma, &format!("colop theory {}", env!("CARGO_PKG_VERSION")));
    crate::model_file::write_model(&args.out.join("model.h5"), &model)?;
    tracing::info!(out = %args.out.display(), "wrote coefficients.csv, theory.json, model.h5");
    Ok(())
}
