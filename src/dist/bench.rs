//! The reduction benchmark of `colop bench`: cost of the exact accumulator against a plain f64
//! sum, and of its allreduce against a plain f64 allreduce of the same length.

use std::hint::black_box;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{Comm, ExactSum};

/// Median of `samples` (seconds).
fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(0.0)
}

/// Seconds per call of `f`, the median of `reps` timed calls.
fn time_median(reps: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..reps.max(1))
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Seconds of one collective call `f`, started together on every rank (after a barrier).
fn time_after_barrier(comm: &dyn Comm, f: impl FnOnce()) -> f64 {
    comm.barrier();
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// Benchmark on vectors of `n` elements, `reps` repetitions. Collective: every rank calls it.
/// Times are medians; allreduce times are the maximum over ranks. Keys: `plain_add_ns_per_element`,
/// `exact_add_ns_per_element`, `exact_merge_ns_per_element`, `to_f64_ns_per_element`,
/// `allreduce_exact_s`, `allreduce_exact_bytes_per_rank`, `allreduce_f64_s`,
/// `allreduce_f64_bytes_per_rank`, `allreduce_u64_same_bytes_s` (a bare integer allreduce of
/// the exact sum's size: the floor of the exact allreduce).
pub fn reduction_benchmark(comm: &dyn Comm, n: usize, reps: usize) -> serde_json::Value {
    let n = n.max(1);
    let reps = reps.max(1);
    // Gradient-like values: random signs, magnitudes over 12 decades.
    let mut rng = ChaCha8Rng::seed_from_u64(7 + comm.rank() as u64);
    let blocks: Vec<Vec<f64>> = (0..8)
        .map(|_| (0..n).map(|_| rng.gen_range(-1.0..1.0) * 10f64.powf(rng.gen_range(-8.0..4.0))).collect())
        .collect();
    let per_element = |seconds: f64| seconds / (blocks.len() * n) as f64 * 1e9;

    let mut plain = vec![0.0; n];
    let plain_s = time_median(reps, || {
        for block in &blocks {
            for (a, b) in plain.iter_mut().zip(block) {
                *a += b;
            }
        }
        black_box(&mut plain);
    });
    let mut exact = ExactSum::new(n);
    let exact_s = time_median(reps, || {
        exact.clear();
        for block in &blocks {
            exact.add(block);
        }
        black_box(&mut exact);
    });
    let mut merged = ExactSum::new(n);
    let merge_s = time_median(reps, || {
        merged.clear();
        merged.merge(&exact);
        black_box(&mut merged);
    });
    let to_f64_s = time_median(reps, || {
        black_box(exact.to_f64());
    });

    // Allreduce: time only the collective, after a barrier, on a fresh copy each time.
    let mut reduced = exact.clone();
    let mut exact_samples = Vec::with_capacity(reps);
    let mut plain_reduced = plain.clone();
    let mut plain_samples = Vec::with_capacity(reps);
    let raw = vec![1u64; exact.reduction_bytes() / 8];
    let mut raw_reduced = raw.clone();
    let mut raw_samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        reduced.clone_from(&exact);
        exact_samples.push(time_after_barrier(comm, || comm.allreduce_exact(&mut reduced)));
        plain_reduced.copy_from_slice(&plain);
        plain_samples.push(time_after_barrier(comm, || comm.allreduce_max_f64(&mut plain_reduced)));
        raw_reduced.copy_from_slice(&raw);
        raw_samples.push(time_after_barrier(comm, || comm.allreduce_sum_u64(&mut raw_reduced)));
    }
    black_box((&reduced, &plain_reduced));
    let (allreduce_exact_s, allreduce_f64_s) = (median(exact_samples), median(plain_samples));
    let mut worst = [allreduce_exact_s, allreduce_f64_s, median(raw_samples)];
    comm.allreduce_max_f64(&mut worst);

    json!({
        "n": n,
        "reps": reps,
        "ranks": comm.size(),
        "plain_add_ns_per_element": per_element(plain_s),
        "exact_add_ns_per_element": per_element(exact_s),
        "exact_merge_ns_per_element": merge_s / n as f64 * 1e9,
        "to_f64_ns_per_element": to_f64_s / n as f64 * 1e9,
        "allreduce_exact_s": worst[0],
        "allreduce_exact_bytes_per_rank": exact.reduction_bytes(),
        "allreduce_f64_s": worst[1],
        "allreduce_f64_bytes_per_rank": n * 8,
        "allreduce_u64_same_bytes_s": worst[2],
    })
}

/// Exact-allreduce time against message size on the current communicator, a latency–bandwidth
/// fit, and the cost model projected to larger rank counts.
///
/// The exact allreduce is two MPI allreduces: a MAX over the 4-byte tops, then a SUM over the
/// 32-byte bins of each element (36 B per element with the non-finite flags empty). For a
/// bandwidth-optimal (Rabenseifner or ring) allreduce of `M` bytes on `P` ranks,
/// `T(P, M) ≈ 2⌈log₂P⌉·α + 2·(P−1)/P·M·β`, so for a fixed gradient the cost grows with the
/// rank count only through the latency term. `α` and `β` are fitted (least squares, medians of
/// `reps` calls) from the sizes in `sizes` at this rank count; `projection` evaluates the model
/// for `model_ranks` with the fitted constants and with those of a typical cluster network
/// (`network_latency_s`, `network_bytes_per_s`). Collective: every rank calls it.
pub fn allreduce_scaling(comm: &dyn Comm, sizes: &[usize], reps: usize, model_elements: usize, model_ranks: &[usize]) -> serde_json::Value {
    let reps = reps.max(1);
    let mut rows = Vec::new();
    let mut points = Vec::new();
    for &n in sizes {
        let n = n.max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(11 + comm.rank() as u64);
        let values: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0) * 10f64.powf(rng.gen_range(-8.0..4.0))).collect();
        let mut acc = ExactSum::new(n);
        acc.add(&values);
        let mut work = acc.clone();
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            work.clone_from(&acc);
            samples.push(time_after_barrier(comm, || comm.allreduce_exact(&mut work)));
        }
        black_box(&work);
        let mut t = [median(samples)];
        comm.allreduce_max_f64(&mut t);
        let bytes = acc.reduction_bytes();
        points.push((bytes as f64, t[0]));
        rows.push(json!({ "elements": n, "bytes_per_rank": bytes, "allreduce_exact_s": t[0] }));
    }
    let p = comm.size();
    let log_steps = |ranks: usize| 2.0 * (ranks.max(1) as f64).log2().ceil();
    let bw_factor = |ranks: usize| if ranks > 1 { 2.0 * (ranks - 1) as f64 / ranks as f64 } else { 0.0 };
    // T = a + b·M at this P: α = a / (2⌈log₂P⌉) per message round, β = b / (2(P−1)/P).
    let (a, b) = least_squares(&points);
    let fitted = (p > 1).then(|| (a.max(0.0) / log_steps(p), b.max(0.0) / bw_factor(p)));
    let model_bytes = model_elements * 36;
    const NETWORK: (f64, f64) = (2.0e-6, 12.5e9);
    let projection: Vec<serde_json::Value> = model_ranks
        .iter()
        .map(|&ranks| {
            let model = |alpha: f64, beta: f64| log_steps(ranks) * alpha + bw_factor(ranks) * model_bytes as f64 * beta;
            json!({
                "ranks": ranks,
                "fitted_s": fitted.map(|(alpha, beta)| model(alpha, beta)),
                "network_s": model(NETWORK.0, 1.0 / NETWORK.1),
            })
        })
        .collect();
    json!({
        "ranks": p,
        "reps": reps,
        "sizes": rows,
        "fit": fitted.map(|(alpha, beta)| json!({ "latency_s": alpha, "seconds_per_byte": beta, "bytes_per_s": if beta > 0.0 { 1.0 / beta } else { f64::INFINITY } })),
        "model": "T(P, M) = 2·ceil(log2 P)·latency + 2·(P−1)/P·M/bandwidth, M = 36 B per gradient element",
        "model_elements": model_elements,
        "model_bytes_per_rank": model_bytes,
        "network_latency_s": NETWORK.0,
        "network_bytes_per_s": NETWORK.1,
        "projection": projection,
    })
}

/// Least-squares line `y = a + b·x` through `points`.
fn least_squares(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return (points.first().map_or(0.0, |p| p.1), 0.0);
    }
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
    let (mx, my) = (sx / n, sy / n);
    let (sxx, sxy) = points.iter().fold((0.0, 0.0), |(a, b), p| (a + (p.0 - mx).powi(2), b + (p.0 - mx) * (p.1 - my)));
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_a_line() {
        let pts: Vec<(f64, f64)> = (0..5).map(|i| (i as f64 * 1000.0, 2e-6 + 1e-10 * i as f64 * 1000.0)).collect();
        let (a, b) = least_squares(&pts);
        assert!((a - 2e-6).abs() < 1e-15 && (b - 1e-10).abs() < 1e-18, "{a} {b}");
    }

    #[test]
    fn one_rank_has_no_fit_but_a_network_projection() {
        let v = allreduce_scaling(&crate::dist::SingleProcess, &[8, 64], 3, 13005, &[1, 2, 1024]);
        assert!(v["fit"].is_null());
        let proj = v["projection"].as_array().unwrap();
        assert_eq!(proj[0]["network_s"].as_f64().unwrap(), 0.0);
        // 1024 ranks: 20 latency rounds + 2·1023/1024 of 468 kB at 12.5 GB/s.
        let want = 20.0 * 2e-6 + 2.0 * 1023.0 / 1024.0 * 468_180.0 / 12.5e9;
        assert!((proj[2]["network_s"].as_f64().unwrap() - want).abs() < 1e-12);
    }
}
