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
        comm.barrier();
        let start = Instant::now();
        comm.allreduce_exact(&mut reduced);
        exact_samples.push(start.elapsed().as_secs_f64());
        plain_reduced.copy_from_slice(&plain);
        comm.barrier();
        let start = Instant::now();
        comm.allreduce_max_f64(&mut plain_reduced);
        plain_samples.push(start.elapsed().as_secs_f64());
        raw_reduced.copy_from_slice(&raw);
        comm.barrier();
        let start = Instant::now();
        comm.allreduce_sum_u64(&mut raw_reduced);
        raw_samples.push(start.elapsed().as_secs_f64());
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
