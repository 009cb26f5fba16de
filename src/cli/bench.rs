//! `colop bench`: solver, training-epoch, memory and reduction benchmarks, printed as JSON.
//!
//! These are measurements, not tests: run them on an otherwise idle machine.

use super::Context;
use crate::config::{LossKind, LossMode};
use crate::dist::ExactSum;
use crate::grid::VelocityGrid;
use crate::operator::spec::ModelKind;
use crate::operator::{self, BuildInfo, ModelSpec};
use crate::solver::{self, SolverSpec};
use crate::synth::{generate_run, GridSpec, Initial, RunSpec, SynthConfig, TruthSpec};
use crate::train::engine::{Problem, RunSlice, Sample};
use std::time::Instant;

/// Options of `colop bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = What::All)]
    pub what: What,
    /// Repetitions (the best time is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Write the JSON here as well as to stdout.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// Raw scheme throughput: forward and forward+adjoint cell-steps/s, 90 samples of 51×51.
    Solver,
    /// Training epochs: forward + adjoint + model VJP + exact reduction per epoch.
    Epoch,
    /// Peak memory and time of gradients for long rollouts, store-all vs checkpointed.
    Memory,
    /// Exact reduction cost and allreduce time.
    Reduction,
    /// PIC importers (openPMD HDF5, OSIRIS RAW): particles/s on 4 synthetic dumps of 2²² particles
    /// (about 0.8 GB of temporary files). Not part of `all`.
    Import,
    All,
}

/// The reference truth: the radial operator of the recovery tests (d0 = 0.016, stationary drag).
fn reference_truth() -> TruthSpec {
    TruthSpec::Radial {
        a_par: "stationary".into(),
        d_par: "0.016*(1+v^2/4)^(-1.5)".into(),
        d_perp: "0.016*(1+v^2/4)^(-0.5)".into(),
    }
}

/// The reference benchmark's data: one 51×51 run of 96 snapshots, noise-free, normalised as the
/// trainer does.
fn reference_run() -> anyhow::Result<(VelocityGrid, RunSlice)> {
    let cfg = SynthConfig {
        grid: GridSpec { n: 51, v_max: 5.0 },
        operator: reference_truth(),
        time_factor: None,
        snapshots: 96,
        dt: 1.0,
        substeps: 20,
        n_particles: 3e5,
        noise: None,
        runs: Vec::new(),
    };
    let run = RunSpec { name: "bench".into(), initial: vec![Initial::Normal { centre: [-2.0, 0.0], sigma: 0.4, weight: 1.0 }], params: Default::default() };
    let mut data = generate_run(&cfg, &run, 0)?;
    let norm = crate::data::particle_count(data.f.index_axis(ndarray::Axis(0), 5));
    crate::data::normalise(&mut data.f, norm);
    Ok((data.grid.clone(), RunSlice { first: 0, f: data.f, t: data.t, dt: data.dt, ctx: 0 }))
}

/// Seconds per training epoch and cell-steps/s for `windows` windows of `unroll` intervals.
pub fn epoch_benchmark(kind: ModelKind, solver_spec: &SolverSpec, unroll: usize, windows: usize, reps: usize) -> anyhow::Result<serde_json::Value> {
    let (grid, slice) = reference_run()?;
    let spec = ModelSpec { kind, ..ModelSpec::default() };
    let info = BuildInfo { grid: grid.clone(), cond_ranges: vec![], t_span: 95.0 };
    let model = operator::build(&spec, &info)?;
    let scheme = solver::build(solver_spec, &model.equation(), &grid)?;
    let rows = slice.t.len();
    let max_windows = rows - 5 - unroll;
    let windows = windows.min(max_windows);
    let samples: Vec<Sample> = (0..windows).map(|i| Sample { run: 0, start: 5 + i, intervals: unroll }).collect();
    let runs = vec![Some(slice)];
    let mut theta = model.init_params(1);
    let problem = Problem { model: model.as_ref(), scheme: scheme.as_ref(), loss: LossKind::Mae, mode: LossMode::Accumulated, cond: vec![vec![]], checkpoints: solver_spec.checkpoints, memory_budget_mb: solver_spec.memory_budget_mb };
    let block = crate::train::dataset::block_size(samples.len(), problem.acc_len());
    let mut adam = crate::train::adam::Adam::new(theta.len());
    let mut best = f64::INFINITY;
    let mut split = (0.0, 0.0, 0.0);
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        let coeffs = problem.coefficients(&theta, &[(0, 1.0)], &runs);
        let t1 = Instant::now();
        let mut acc = ExactSum::new(problem.acc_len());
        problem.accumulate_gradient(&coeffs, &runs, &samples, 0, samples.len(), block, &mut acc)?;
        let t2 = Instant::now();
        let g = acc.to_f64();
        let mut d = vec![0.0; theta.len()];
        problem.theta_gradient(&theta, &g[..g.len() - 1], &mut d);
        adam.update(&mut theta, &d, 1e-3);
        let t3 = Instant::now();
        let total = (t3 - t0).as_secs_f64();
        if total < best {
            best = total;
            split = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64(), (t3 - t2).as_secs_f64());
        }
    }
    let substeps = scheme.substeps(model.fields_at(&theta, &[], 0.0).view(), 1.0);
    let cell_steps = (windows * unroll * substeps * grid.n_cells()) as f64;
    Ok(serde_json::json!({
        "model": format!("{kind:?}"),
        "scheme": scheme.name(),
        "grid": [grid.nx, grid.ny],
        "windows": windows,
        "unroll": unroll,
        "substeps": substeps,
        "threads": rayon::current_num_threads(),
        "seconds_per_epoch": best,
        "fields_s": split.0,
        "rollouts_and_adjoint_s": split.1,
        "vjp_reduce_update_s": split.2,
        "cell_steps_per_s_forward_adjoint": cell_steps / split.1,
        "cell_steps_per_s_epoch": cell_steps / best,
    }))
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
        out.insert("memory".into(), crate::solver::membench::memory_benchmark(scheme.as_ref(), &fields, &opts));
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
        for kind in [ModelKind::Tensor, ModelKind::ParPerp] {
            for (unroll, windows) in [(1, 90), (10, 90)] {
                v.push(epoch_benchmark(kind, &central, unroll, windows, args.reps)?);
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
    println!("{json}");
    Ok(())
}
