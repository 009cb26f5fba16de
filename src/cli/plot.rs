//! `colop plot`: draw the figures of a run directory, a model file or a scaling study.

use super::Context;
use crate::plot::figures;
use anyhow::Context as _;
use std::path::PathBuf;

/// Options of `colop plot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run directory (model.h5 + metrics.jsonl), a model file, a `scaling_summary.csv` of
    /// `scripts/scaling.sh` or a `pic-theory-study.csv` of `scripts/pic-theory-study.sh`.
    pub target: PathBuf,
    /// Output directory (default: `<run dir>/plots`, or beside the model file); for a scaling
    /// CSV, the PNG file (default: the CSV path with `.png`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Conditioner values for conditioned models, e.g. `ppc=32` (default: mid-range).
    #[arg(long, value_parser = super::parse_param, value_delimiter = ',')]
    pub params: Vec<(String, f64)>,
    /// Times (1/ω_p) at which to draw time-dependent models, e.g. `0,50,95`.
    #[arg(long, value_delimiter = ',')]
    pub times: Option<Vec<f64>>,
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<()> {
    if ctx.comm.rank() != 0 {
        return Ok(());
    }
    let out = args.out.clone().unwrap_or_else(|| {
        if args.target.is_dir() {
            args.target.join("plots")
        } else {
            args.target.parent().map(|p| p.join("plots")).unwrap_or_else(|| PathBuf::from("plots"))
        }
    });
    if args.target.extension().is_some_and(|e| e == "csv") {
        let text = std::fs::read_to_string(&args.target).with_context(|| args.target.display().to_string())?;
        let png = args.out.clone().unwrap_or_else(|| args.target.with_extension("png"));
        if text.lines().next().is_some_and(|h| h.trim() == figures::PIC_THEORY_HEADER || h.trim() == format!("{},{}", figures::PIC_THEORY_HEADER, figures::PIC_THEORY_LEARNED)) {
            figures::pic_theory_study(&png, &text)?;
        } else {
            figures::scaling(&png, &text)?;
        }
        super::print_out(&png.display().to_string())?;
        return Ok(());
    }
    for p in crate::plot::sets::model_figures(&args.target, &out, args.params, args.times)? {
        super::print_out(&p.display().to_string())?;
    }
    Ok(())
}
