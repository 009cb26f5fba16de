//! `colop bench`: solver, training-epoch, memory and reduction benchmarks, printed as JSON.
//!
//! These are measurements, not tests: run them on an otherwise idle machine.

use super::Context;
use crate::grid::VelocityGrid;
use crate::solver::{self, SolverSpec};
use crate::train::bench::{epoch_benchmark, reference_truth};

/// Options of `colop bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = What::All)]
    pub what: What,
    /// Repetitions (the best time is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Epoch benchmark: only these model kinds (tensor, par-perp, mlp; default all three).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Write the JSON here as well as to stdout.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// Raw scheme throughput: forward and forward+adjoint cell-steps/s, 90 samples of 51×51.
    Solver,
    /// Training epochs (gradient step + Adam) against the bare solver forward + adjoint on the
    /// same 90 windows of 51×51, per model kind, unroll 1 and 10, with allocations per epoch.
    Epoch,
    /// Peak RSS and time of `colop train` on a whole-run rollout, store-all vs checkpointed
    /// (child processes), and of the adjoint rollouts alone.
    Memory,
    /// Exact reduction cost and allreduce time.
    Reduction,
    /// PIC importers (openPMD HDF5, OSIRIS RAW): particles/s on 4 synthetic dumps of 2²² particles
    /// (about 0.8 GB of temporary files). Not part of `all`.
    Import,
    All,
}

/// The reference truth's fields on the 51×51 grid.
fn reference_fields() -> anyhow::Result<(VelocityGrid, crate::operator::Fields)> {
    let grid = VelocityGrid::square(51, 5.0)?;
    let f = crate::synth::truth_fields(&reference_truth(), &grid, &Default::default())?;
    Ok((grid, f))
}

pub fn run(args: Args, ctx: &Context) -> anyhow::Result<()> {
    let mut out = serde_json::Map::new();
    let central = SolverSpec::default();
    let all = args.what == What::All;
    if ctx.comm.rank() == 0 && (all || args.what == What::Solver) {
        let (grid, fields) = reference_fields()?;
        let mut v = Vec::new();
        for kind in [crate::solver::SchemeKind::Central, crate::solver::SchemeKind::Conservative] {
            for clamp in [false, true] {
                let spec = SolverSpec { scheme: kind, clamp_nonnegative: clamp, ..SolverSpec::default() };
                let scheme = solver::build(&spec, &crate::operator::Equation::FokkerPlanck, &grid)?;
                for steps in [1, 10] {
                    let mut j = crate::solver::bench::throughput(scheme.as_ref(), &fields, 90, steps, args.reps);
                    if let Some(o) = j.as_object_mut() {
                        o.insert("clamp".into(), clamp.into());
                    }
                    v.push(j);
                }
            }
        }
        out.insert("solver".into(), serde_json::Value::Array(v));
    }
    if ctx.comm.rank() == 0 && (all || args.what == What::Memory) {
        let (grid, fields) = reference_fields()?;
        let scheme = solver::build(&central, &crate::operator::Equation::FokkerPlanck, &grid)?;
        let opts = crate::solver::membench::MemBenchOptions { h: 0.25, repeats: args.reps.clamp(1, 3), ..Default::default() };
        // Real training first (child `colop train` processes), then the adjoint rollouts alone.
        let exe = std::env::current_exe()?;
        let training = super::bench_memory::training_memory_benchmark(&exe)?;
        let rollouts = crate::solver::membench::memory_benchmark(scheme.as_ref(), &fields, &opts);
        out.insert("memory".into(), serde_json::json!({ "training": training, "rollouts": rollouts }));
    }
    if all || args.what == What::Reduction {
        // Collective: every rank takes part; rank 0 prints.
        out.insert("reduction".into(), crate::dist::bench::reduction_benchmark(ctx.comm.as_ref(), 5 * 51 * 51, 50));
        out.insert(
            "allreduce_scaling".into(),
            crate::dist::bench::allreduce_scaling(ctx.comm.as_ref(), &[1, 64, 1024, 4096, 13005, 32768], 50, 5 * 51 * 51 + 1, &[2, 16, 128, 1024]),
        );
    }
    if ctx.comm.rank() != 0 {
        return Ok(());
    }
    if all || args.what == What::Epoch {
        let mut v = Vec::new();
        let models = [("tensor", "{ kind: tensor }"), ("par-perp", "{ kind: par-perp }"), ("mlp", "{ kind: mlp, symmetry: isotropic, width: 64, depth: 2 }")];
        for m in &args.models {
            anyhow::ensure!(models.iter().any(|(k, _)| k == m), "--models: unknown `{m}` (tensor, par-perp, mlp)");
        }
        for (_, model) in models.iter().filter(|(k, _)| args.models.is_empty() || args.models.iter().any(|m| m == k)) {
            for unroll in [1, 10] {
                let j = epoch_benchmark(model, unroll, 90, args.reps, &crate::dist::SingleProcess)?;
                let model = *model;
                tracing::info!(
                    "epoch {model} unroll {unroll}: {:.3} ms, solver {:.3} ms, ratio {:.2}, {} allocations/epoch",
                    j["epoch_s"].as_f64().unwrap_or(0.0) * 1e3,
                    j["solver_forward_adjoint_s"].as_f64().unwrap_or(0.0) * 1e3,
                    j["ratio"].as_f64().unwrap_or(0.0),
                    j["allocations_per_epoch"]
                );
                v.push(j);
            }
        }
        out.insert("epoch".into(), serde_json::Value::Array(v));
    }
    if args.what == What::Import {
        out.insert("import".into(), crate::data::import_bench::import_benchmark(4, 1 << 22, args.reps)?);
    }
    let _ = ctx;
    let json = serde_json::to_string_pretty(&serde_json::Value::Object(out))?;
    if let Some(p) = &args.out {
        crate::io::write_bytes_atomic(p, json.as_bytes())?;
    }
    super::print_out(&json)?;
    Ok(())
}
