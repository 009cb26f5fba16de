//! MPI self-test of the distribution layer, run under `mpirun -n P`:
//! `exact [N_VECTORS LEN]` sums a fixed global set of vectors split over the ranks and prints a
//! digest of the result bits (identical for every P); `abort` makes rank 1 fail while the others
//! wait in a barrier (the job must end non-zero within seconds); `bench [N REPS]` prints the
//! reduction benchmark; `signal` waits until SIGUSR1/SIGTERM reaches any rank, agrees on it and
//! exits with the checkpointed code 75.

use colop::dist::{self, signals, ExactSum};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Vector `k` of the global set: values over 40 decades with cancelling pairs.
fn global_vector(k: usize, len: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(k as u64 / 2);
    let v: Vec<f64> = (0..len)
        .map(|i| {
            let scale = 10f64.powi((i % 41) as i32 - 20);
            rng.gen_range(-1.0..1.0) * scale * 10f64.powf(rng.gen_range(-10.0..10.0))
        })
        .collect();
    // Odd k: nearly the negation of k − 1, so columns cancel to a tiny remainder.
    if k % 2 == 1 {
        v.iter().map(|x| -x * (1.0 + 1e-12)).collect()
    } else {
        v
    }
}

fn digest(values: &[f64]) -> u64 {
    // FNV-1a over the bits.
    values.iter().fold(0xcbf29ce484222325u64, |h, x| {
        x.to_bits().to_le_bytes().iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
    })
}

fn main() {
    let comm = dist::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (rank, size) = (comm.rank(), comm.size());
    match args.first().map(String::as_str).unwrap_or("exact") {
        "exact" => {
            let (count, len) = (arg(1, 97), arg(2, 1000));
            // Contiguous block of vectors per rank, uneven on purpose.
            let (start, end) = (count * rank / size, count * (rank + 1) / size);
            let mut acc = ExactSum::new(len);
            for k in start..end {
                acc.add(&global_vector(k, len));
            }
            comm.allreduce_exact(&mut acc);
            let sum = acc.to_f64();
            let mut check = [(digest(&sum) >> 11) as f64]; // 53 bits: exact in f64
            let mut low = check;
            comm.allreduce_max_f64(&mut check);
            comm.allreduce_min_f64(&mut low);
            assert_eq!(check, low, "ranks disagree on the reduced sum");
            let mut bytes = if rank == 0 { b"hello from rank 0".to_vec() } else { Vec::new() };
            comm.broadcast_bytes(0, &mut bytes);
            assert_eq!(bytes, b"hello from rank 0");
            let mut counts = [1u64];
            comm.allreduce_sum_u64(&mut counts);
            assert_eq!(counts[0], size as u64);
            if rank == 0 {
                println!("exact ranks={size} vectors={count} len={len} digest={:016x} sum[0]={:e}", digest(&sum), sum[0]);
            }
        }
        "abort" => {
            if rank == 1 || size == 1 {
                std::thread::sleep(std::time::Duration::from_millis(300));
                comm.fail("selftest: rank 1 could not read bad.h5 (simulated)", 3);
            }
            comm.barrier(); // never completes: rank 1 aborts the job
            eprintln!("rank {rank}: barrier returned after an abort");
            std::process::exit(0);
        }
        "bench" => {
            let report = dist::reduction_benchmark(comm.as_ref(), arg(1, 13_005), arg(2, 50));
            if rank == 0 {
                println!("{}", serde_json::to_string_pretty(&report).unwrap());
            }
        }
        "signal" => {
            signals::install().unwrap_or_else(|e| comm.fail(&e.to_string(), 1));
            if rank == 0 {
                println!("waiting for SIGUSR1/SIGTERM");
            }
            let mut epoch = 0u64;
            loop {
                std::thread::sleep(std::time::Duration::from_millis(100));
                epoch += 1;
                if signals::stop_agreed(comm.as_ref()) {
                    break;
                }
            }
            if rank == 0 {
                println!("stop agreed after {epoch} epochs ({:?} here)", signals::last_signal());
            }
            comm.finish();
            std::process::exit(signals::EXIT_CHECKPOINTED);
        }
        other => comm.fail(&format!("unknown mode {other:?}: exact | abort | bench | signal"), 2),
    }
    comm.finish();
}
