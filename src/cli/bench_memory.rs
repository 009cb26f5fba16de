//! `colop bench --what memory`: peak memory of real training: `colop train` run as a child process on a whole-run rollout
//! (`unroll: all`), with every solver state stored (`checkpoints: all`) against the binomial
//! schedule sized from `memory_budget_mb` (`checkpoints: auto`), next to the same run keeping
//! only 2 states (40 kB) as the baseline: data, model and working buffers without stored states. The peak resident set of each child is read from `wait4(2)`; the target is met
//! when the peak above the baseline stays within the budget.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The benchmark's workload in `dim` dimensions.
///
/// - 2D: one 51×51 run of 96 snapshots rolled out whole (90 intervals) at 40 solver steps per
///   interval, so storing every state takes ≈ 3600 × 20.8 kB ≈ 71 MiB per sample against a
///   16 MiB budget; one thread.
/// - 3D (the reference's 3D memory case): four 51³ runs of 96 snapshots rolled out whole (95
///   intervals, one solver step each; every state stored takes 95 × 1.06 MB ≈ 96 MiB per run),
///   a 64 MiB budget, snapshots streamed with `data.cache_mb: 32`; 1 and 2 threads.
struct Workload {
    synth: String,
    i_start: usize,
    runs: usize,
    substeps: usize,
    budget_mb: f64,
    threads: &'static [usize],
    /// Extra `data:` keys of the training config.
    data_keys: &'static str,
}

impl Workload {
    fn new(dim: usize) -> Self {
        let truth = "operator: { kind: radial, d_par: \"0.016*(1+v^2/4)^(-1.5)\", d_perp: \"0.016*(1+v^2/4)^(-0.5)\", a_par: stationary }";
        if dim == 2 {
            return Self {
                synth: format!("grid: {{ n: 51, v_max: 5.0 }}\n{truth}\nsnapshots: 96\nruns:\n  - {{ name: bench0, initial: [ {{ kind: normal, centre: [-2.0, 0.0], sigma: 0.4 }} ] }}\n"),
                i_start: 5,
                runs: 1,
                substeps: 40,
                budget_mb: 16.0,
                threads: &[1],
                data_keys: "",
            };
        }
        let runs: String = (0..4)
            .map(|r| format!("  - {{ name: bench{r}, initial: [ {{ kind: normal, centre: [{:.1}, 0.0, 0.0], sigma: 0.5 }} ] }}\n", -2.0 + 0.5 * r as f64))
            .collect();
        Self {
            synth: format!("grid: {{ n: 51, v_max: 5.0, dim: 3 }}\n{truth}\nsnapshots: 96\nsubsteps: 4\nruns:\n{runs}"),
            i_start: 0,
            runs: 4,
            substeps: 1,
            budget_mb: 64.0,
            threads: &[1, 2],
            // The four runs' 400 MB of snapshots stream from the files (32 MiB resident).
            data_keys: ", cache_mb: 32",
        }
    }

    fn train_yaml(&self, unroll: &str, checkpoints: &str) -> String {
        let train: Vec<String> = (0..self.runs).map(|r| format!("bench{r}.h5")).collect();
        format!(
            "data: {{ train: [{}], i_start: {}{} }}
model: {{ kind: par-perp }}
solver: {{ substeps: {}, checkpoints: {checkpoints}, memory_budget_mb: {} }}
train: {{ seed: 1, checkpoint_every: 0, stages: [ {{ unroll: {unroll}, epochs: {EPOCHS}, lr: 1.0e-3 }} ] }}
",
            train.join(", "),
            self.i_start,
            self.data_keys,
            self.substeps,
            self.budget_mb
        )
    }
}

const EPOCHS: usize = 2;

/// Run `exe train` on `cfg` with `threads` threads and one process; wall seconds and peak RSS
/// (MiB).
fn run_child(exe: &Path, cfg: &Path, out: &Path, threads: usize) -> anyhow::Result<(f64, f64)> {
    let log = out.with_extension("log");
    let t0 = Instant::now();
    let child = Command::new(exe)
        .args(["--threads", &threads.to_string(), "train"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .arg("--no-plots")
        .env("COLOP_MPI", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, zero-initialised; wait4 fills it for our own child, which is
    // reaped here (the `Child` handle is never waited on afterwards).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    anyhow::ensure!(r == pid, "wait4 on the training child failed: {}", std::io::Error::last_os_error());
    let seconds = t0.elapsed().as_secs_f64();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        anyhow::bail!("memory benchmark: `colop train {}` failed: {}", cfg.display(), text.lines().last().unwrap_or(""));
    }
    // Linux reports ru_maxrss in KiB.
    Ok((seconds, usage.ru_maxrss as f64 / 1024.0))
}

fn theta(run: &Path) -> anyhow::Result<Vec<f64>> {
    let f = hdf5::File::open(run.join("model.h5"))?;
    Ok(f.dataset("theta")?.read_raw()?)
}

/// Train three times per thread count as a child of `exe` (the colop binary) on the workload
/// of `dim` dimensions and report peak RSS and time.
pub fn training_memory_benchmark(exe: &Path, dim: usize) -> anyhow::Result<Value> {
    let work = Workload::new(dim);
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let synth: crate::synth::SynthConfig = serde_yaml::from_str(&work.synth)?;
    crate::synth::generate(&synth, d)?;
    let run0 = crate::data::RunFile::open(&d.join("bench0.h5"))?;
    let grid_cells = run0.meta.grid.n_cells();
    let steps = (run0.meta.n_snapshots() - 1 - work.i_start) * work.substeps;
    let mut by_threads = Vec::new();
    for &threads in work.threads {
        let mut cases = Vec::new();
        let mut peaks = Vec::new();
        for (name, unroll, checkpoints) in [("baseline (unroll all, checkpoints 2)", "all", "2"), ("unroll all, checkpoints all", "all", "all"), ("unroll all, checkpoints auto", "all", "auto")] {
            let tag = format!("t{threads}-case{}", cases.len());
            let cfg = d.join(format!("{tag}.yaml"));
            std::fs::write(&cfg, work.train_yaml(unroll, checkpoints))?;
            let out = d.join(&tag);
            let (seconds, peak) = run_child(exe, &cfg, &out, threads)?;
            tracing::info!("memory {dim}D, {threads} thread(s): {name}: peak RSS {peak:.1} MiB, {seconds:.2} s");
            peaks.push((peak, out));
            cases.push(json!({ "case": name, "unroll": unroll, "checkpoints": checkpoints, "peak_rss_mb": peak, "seconds": seconds, "seconds_per_epoch": seconds / EPOCHS as f64 }));
        }
        let base = peaks[0].0;
        let (all, auto) = (peaks[1].0 - base, peaks[2].0 - base);
        let same = theta(&peaks[1].1)? == theta(&peaks[2].1)?;
        by_threads.push(json!({
            "threads": threads,
            "cases": cases,
            "above_baseline_mb": { "checkpoints_all": all, "checkpoints_auto": auto },
            "store_all_exceeds_budget": all > work.budget_mb,
            "auto_meets_budget": auto <= work.budget_mb,
            "same_model_bitwise": same,
        }));
    }
    Ok(json!({
        "what": format!("peak RSS of `colop train` (one process), par-perp, {} run(s) on {:?} rolled out whole", work.runs, run0.meta.grid.extents()),
        "solver_steps_per_sample": steps,
        "store_all_states_mb_per_sample": (steps * grid_cells * 8) as f64 / (1024.0 * 1024.0),
        "memory_budget_mb": work.budget_mb,
        "by_threads": by_threads,
    }))
}
