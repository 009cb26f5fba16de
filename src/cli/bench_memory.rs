//! `colop bench --what memory`: peak memory of real training: `colop train` run as a child process on a whole-run rollout
//! (`unroll: all`), with every solver state stored (`checkpoints: all`) against the binomial
//! schedule sized from `memory_budget_mb` (`checkpoints: auto`), next to the same run keeping
//! only 2 states (40 kB) as the baseline: data, model and working buffers without stored states. The peak resident set of each child is read from `wait4(2)`; the target is met
//! when the peak above the baseline stays within the budget.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The benchmark's case: one 51×51 run of 96 snapshots rolled out whole (90 intervals) at 40
/// solver steps per interval, so storing every state takes ≈ 3600 × 20.8 kB ≈ 71 MiB per sample
/// against a 16 MiB budget.
pub const BUDGET_MB: f64 = 16.0;
const SUBSTEPS: usize = 40;
const EPOCHS: usize = 2;

const SYNTH: &str = "grid: { n: 51, v_max: 5.0 }
operator: { kind: radial, d_par: \"0.016*(1+v^2/4)^(-1.5)\", d_perp: \"0.016*(1+v^2/4)^(-0.5)\", a_par: stationary }
snapshots: 96
runs:
  - { name: bench, initial: [ { kind: normal, centre: [-2.0, 0.0], sigma: 0.4 } ] }
";

fn train_yaml(unroll: &str, checkpoints: &str) -> String {
    format!(
        "data: {{ train: [bench.h5], i_start: 5 }}
model: {{ kind: par-perp }}
solver: {{ substeps: {SUBSTEPS}, checkpoints: {checkpoints}, memory_budget_mb: {BUDGET_MB} }}
train: {{ seed: 1, checkpoint_every: 0, stages: [ {{ unroll: {unroll}, epochs: {EPOCHS}, lr: 1.0e-3 }} ] }}
"
    )
}

/// Run `exe train` on `cfg` with one thread and one process; wall seconds and peak RSS (MiB).
fn run_child(exe: &Path, cfg: &Path, out: &Path) -> anyhow::Result<(f64, f64)> {
    let log = out.with_extension("log");
    let t0 = Instant::now();
    let child = Command::new(exe)
        .args(["--threads", "1", "train"])
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

/// Train three times as a child of `exe` (the colop binary) and report peak RSS and time.
pub fn training_memory_benchmark(exe: &Path) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let synth: crate::synth::SynthConfig = serde_yaml::from_str(SYNTH)?;
    crate::synth::generate(&synth, d)?;
    let mut cases = Vec::new();
    let mut peaks = Vec::new();
    for (name, unroll, checkpoints) in [("baseline (unroll all, checkpoints 2)", "all", "2"), ("unroll all, checkpoints all", "all", "all"), ("unroll all, checkpoints auto", "all", "auto")] {
        let tag = format!("case{}", cases.len());
        let cfg = d.join(format!("{tag}.yaml"));
        std::fs::write(&cfg, train_yaml(unroll, checkpoints))?;
        let out = d.join(&tag);
        let (seconds, peak) = run_child(exe, &cfg, &out)?;
        tracing::info!("memory: {name}: peak RSS {peak:.1} MiB, {seconds:.2} s");
        peaks.push((peak, out));
        cases.push(json!({ "case": name, "unroll": unroll, "checkpoints": checkpoints, "peak_rss_mb": peak, "seconds": seconds, "seconds_per_epoch": seconds / EPOCHS as f64 }));
    }
    let base = peaks[0].0;
    let (all, auto) = (peaks[1].0 - base, peaks[2].0 - base);
    let grid_cells = 51 * 51;
    let steps = 90 * SUBSTEPS;
    let same = theta(&peaks[1].1)? == theta(&peaks[2].1)?;
    Ok(json!({
        "what": "peak RSS of `colop train` (one process, one thread), par-perp, 51×51 grid, one run rolled out whole",
        "solver_steps_per_sample": steps,
        "store_all_states_mb": (steps * grid_cells * 8) as f64 / (1024.0 * 1024.0),
        "memory_budget_mb": BUDGET_MB,
        "cases": cases,
        "above_baseline_mb": { "checkpoints_all": all, "checkpoints_auto": auto },
        "store_all_exceeds_budget": all > BUDGET_MB,
        "auto_meets_budget": auto <= BUDGET_MB,
        "same_model_bitwise": same,
    }))
}
