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
    /// Epoch benchmark: only these unroll lengths (default 1 and 10).
    #[arg(long, value_delimiter = ',')]
    pub unrolls: Vec<usize>,
    /// Epoch and memory benchmarks: velocity dimensions (2: 51×51, 90 windows; 3: 51³, 8
    /// windows for epochs, 4 whole runs for memory, each with 1 and 2 threads).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub dim: u8,
    /// Write the JSON here as well as to stdout.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// Raw scheme throughput: forward and forward+adjoint cell-steps/s, 90 samples of 51×51, and
    /// the 3D central scheme on 51³ with 1 and 2 threads, one sample per rollout and in bundles.
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

/// Smooth 3D Fokker–Planck fields on `grid`: drag −0.1v, diffusion `0.1/(1+v²)` on the diagonal
/// and `0.02 v_iv_j/(1+v²)` off it.
fn fields_3d(grid: &VelocityGrid) -> crate::operator::Fields {
    use crate::operator::fp;
    let mut f = crate::operator::Fields::zeros(grid.fields_shape(fp::n_fields(3)));
    let flat = f.as_slice_mut().expect("contiguous");
    let n = grid.n_cells();
    for c in 0..n {
        let v: Vec<f64> = (0..3).map(|a| grid.centre(a, c / grid.stride(a) % grid.extent(a))).collect();
        let w = 1.0 / (1.0 + v.iter().map(|x| x * x).sum::<f64>());
        for i in 0..3 {
            flat[fp::a(i) * n + c] = -0.1 * v[i];
            for j in i..3 {
                flat[fp::d(3, i, j) * n + c] = if i == j { 0.1 * w } else { 0.02 * v[i] * v[j] * w };
            }
        }
    }
    f
}

/// The 3D central scheme's forward and forward+adjoint throughput on 51³ (guard edges, clamp,
/// `auto` substeps; 4 samples of 10 steps), on 1 and on 2 threads.
fn solver_3d(reps: usize) -> anyhow::Result<serde_json::Value> {
    let grid = VelocityGrid::cube(51, 5.0)?;
    let fields = fields_3d(&grid);
    let spec = SolverSpec { substeps: solver::Substeps::Auto(solver::AutoWord::Auto), ..SolverSpec::default() };
    let scheme = solver::build(&spec, &crate::operator::Equation::FokkerPlanck, &grid)?;
    let mut v = Vec::new();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
        // One sample per rollout, and bundles as training forms them.
        for bundle in [1, crate::train::problem::MAX_BUNDLE] {
            let j = pool.install(|| crate::solver::bench::throughput(scheme.as_ref(), &fields, 4, 10, reps, bundle));
            tracing::info!(
                "3D central 51³, {threads} thread(s), bundles of {}: forward {:.0} M cell-steps/s, forward+adjoint {:.0} M cell-steps/s",
                j["bundle"],
                j["forward_cell_steps_per_s"].as_f64().unwrap_or(0.0) / 1e6,
                j["forward_adjoint_cell_steps_per_s"].as_f64().unwrap_or(0.0) / 1e6
            );
            v.push(j);
        }
    }
    Ok(serde_json::Value::Array(v))
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
                    let mut j = crate::solver::bench::throughput(scheme.as_ref(), &fields, 90, steps, args.reps, crate::train::problem::MAX_BUNDLE);
                    if let Some(o) = j.as_object_mut() {
                        o.insert("clamp".into(), clamp.into());
                    }
                    v.push(j);
                }
            }
        }
        out.insert("solver".into(), serde_json::Value::Array(v));
        out.insert("solver_3d".into(), solver_3d(args.reps)?);
    }
    if ctx.comm.rank() == 0 && (all || args.what == What::Memory) {
        let (grid, fields) = reference_fields()?;
        let scheme = solver::build(&central, &crate::operator::Equation::FokkerPlanck, &grid)?;
        let opts = crate::solver::membench::MemBenchOptions { h: 0.25, repeats: args.reps.clamp(1, 3), ..Default::default() };
        // Real training first (child `colop train` processes), then the adjoint rollouts alone.
        let exe = std::env::current_exe()?;
        let training = super::bench_memory::training_memory_benchmark(&exe, args.dim as usize)?;
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
        anyhow::ensure!(args.unrolls.iter().all(|&u| u >= 1), "--unrolls: unroll lengths start at 1");
        let unrolls = if args.unrolls.is_empty() { vec![1, 10] } else { args.unrolls.clone() };
        let dim = args.dim as usize;
        // 2D: the reference workload on the command's threads; 3D: 8 windows of 51³ on 1 and 2
        // threads, fewer epochs per repetition (each is ~10⁴ times the work of a 2D window).
        let (windows, epochs_per_rep, threads): (usize, usize, Vec<usize>) =
            if dim == 2 { (90, 20, vec![rayon::current_num_threads()]) } else { (8, 2, vec![1, 2]) };
        for (_, model) in models.iter().filter(|(k, _)| args.models.is_empty() || args.models.iter().any(|m| m == k)) {
            for &unroll in &unrolls {
                for &t in &threads {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
                    let j = pool.install(|| epoch_benchmark(model, unroll, windows, args.reps, epochs_per_rep, dim, &crate::dist::SingleProcess))?;
                    tracing::info!(
                        "epoch {model} {dim}D unroll {unroll}, {t} thread(s): {:.3} ms, solver {:.3} ms, ratio {:.2}, {} allocations/epoch",
                        j["epoch_s"].as_f64().unwrap_or(0.0) * 1e3,
                        j["solver_forward_adjoint_s"].as_f64().unwrap_or(0.0) * 1e3,
                        j["ratio"].as_f64().unwrap_or(0.0),
                        j["allocations_per_epoch"]
                    );
                    v.push(j);
                }
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
