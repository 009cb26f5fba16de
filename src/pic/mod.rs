//! A 2D3V electrostatic particle-in-cell code with finite-size particles that writes colop datasets.
//!
//! Periodic square-cell box, immobile neutralising ions, Maxwellian electrons, B-spline shapes of
//! order 1–4 (+ optional Gaussian), FFT Poisson, leapfrog. The scheme is *momentum-conserving*:
//! the same shape deposits charge and interpolates the field and the field is the spectral
//! gradient of the potential, so there is no self-force; energy is conserved only approximately
//! (grid heating, small for Δx ≲ λ_D and order ≥ 2; see the energy test).
//!
//! Start from [`PicConfig`] (YAML, `configs/pic.yaml`), then [`run`] gives a [`crate::data::RunData`].

pub mod config;
pub mod field;
pub mod shape;
pub mod sim;

pub use config::{Distribution, PicConfig, TestMode};
pub use sim::{params, run, Energy, Simulation};

/// Why a PIC run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PicError {
    /// A config value is impossible; `key` is its dotted path.
    #[error("config key `{key}`: {msg}")]
    Config { key: String, msg: String },
    /// The total energy drifted beyond `energy_check.max_drift`: the run is unstable.
    #[error("config key `energy_check.max_drift`: the total energy drifted by {drift:.3e} (relative) by t = {time:.1}/ω_p, above the limit {max:.3e}; the run is unstable (reduce time.dt or the test-particle weight)")]
    EnergyDrift { drift: f64, max: f64, time: f64 },
    /// The config file could not be read or parsed.
    #[error("{origin}: {msg}")]
    Parse { origin: String, msg: String },
}

/// Throughput of the fused push (gather, push, deposit) plus field solve, for shape orders 1–4 on
/// the current rayon pool: particle-steps per second. `cells` is the box side, `ppc` the
/// particles per cell, `steps` the timed steps (after one warm-up step).
pub fn benchmark(cells: usize, ppc: usize, steps: usize) -> serde_json::Value {
    let mut results = Vec::new();
    for order in 1..=config::MAX_ORDER {
        let cfg = PicConfig {
            grid: config::SpaceGrid { nx: cells, ny: cells, dx: 1.0 },
            plasma: config::Plasma { ppc: ppc as i64, ..Default::default() },
            shape: config::Shape { order: order as i64, gaussian_width: 0.0 },
            time: config::Time { dt: 0.1, steps, dump_every: steps },
            test_particles: Default::default(),
            histogram: Default::default(),
            seed: 1,
            energy_check: Default::default(),
        };
        let mut sim = Simulation::new(&cfg).expect("benchmark config is valid");
        sim.step();
        let (start, cpu_start) = (std::time::Instant::now(), process_cpu_seconds());
        for _ in 0..steps {
            sim.step();
        }
        let secs = start.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds().zip(cpu_start).map(|(b, a)| b - a);
        let particle_steps = (cells * cells * ppc * steps) as f64;
        results.push(serde_json::json!({
            "shape_order": order,
            "particles": cells * cells * ppc,
            "steps": steps,
            "seconds": secs,
            "particle_steps_per_second": particle_steps / secs,
            "cpu_seconds": cpu,
            "particle_steps_per_cpu_second": cpu.filter(|&c| c > 0.0).map(|c| particle_steps / c),
        }));
    }
    serde_json::json!({
        "benchmark": "pic_push",
        "threads": rayon::current_num_threads(),
        "grid": [cells, cells],
        "ppc": ppc,
        "results": results,
    })
}

/// User + system CPU time of this process (Linux `/proc/self/stat`, 100 Hz ticks), if available:
/// a load-independent denominator on a shared machine.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
