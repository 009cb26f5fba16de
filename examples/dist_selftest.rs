//! MPI self-test of the distribution layer, run under `mpirun -n P`:
//! `exact [N_VECTORS LEN]` sums a fixed global set of vectors split over the ranks and prints a
//! digest of the result bits (identical for every P); `abort` makes rank 1 fail while the others
//! wait in a barrier (the job must end non-zero within seconds); `bench [N REPS]` prints the
//! reduction benchmark; `signal` waits until SIGUSR1/SIGTERM reaches any rank, agrees on it and
//! exits with the checkpointed code 75; `train CONFIG --out DIR [--resume DIR]` mimics
//! `colop train` for the job-script tests (see [`fake_train`]).

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
        "train" => fake_train(comm.as_ref(), &args[1..]),
        other => comm.fail(&format!("unknown mode {other:?}: exact | abort | bench | signal | train"), 2),
    }
    comm.finish();
}

/// A stand-in for `colop train` with the same command line, stop/checkpoint/resume protocol and
/// `metrics.jsonl` timing keys. CONFIG is `key: value` lines: `epochs` (default 20), `samples`
/// (global samples per epoch, default 8), `sample_ms` (compute time per sample, default 50).
/// Each epoch every rank "computes" its contiguous share of the samples (sleeps, and adds a
/// deterministic vector per sample), the exact allreduce sums them, and the parameters are
/// updated identically everywhere. On SIGUSR1/SIGTERM rank 0 writes `checkpoint.h5` (text) and
/// all ranks exit with 75; at the end rank 0 writes `model.h5` (text: digest of the
/// parameters), identical for any rank count and any interruptions.
fn fake_train(comm: &dyn dist::Comm, args: &[String]) {
    use std::time::Instant;
    let fail = |msg: String| -> ! { comm.fail(&msg, 1) };
    let config_path = args.first().unwrap_or_else(|| fail("usage: train CONFIG --out DIR [--resume DIR]".into()));
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(std::path::PathBuf::from);
    let out = flag("--out").unwrap_or_else(|| fail("train: --out DIR is required".into()));
    let config = std::fs::read_to_string(config_path).unwrap_or_else(|e| fail(format!("{config_path}: {e}")));
    let key = |name: &str, default: usize| {
        config
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().parse().unwrap_or_else(|_| fail(format!("{config_path}: bad value for {name}"))))
            .unwrap_or(default)
    };
    let (epochs, samples, sample_ms) = (key("epochs", 20), key("samples", 8), key("sample_ms", 50));
    signals::install().unwrap_or_else(|e| fail(e.to_string()));
    let len = 1000;
    let mut params = vec![0.0f64; len];
    let mut first_epoch = 0;
    let checkpoint = out.join("checkpoint.h5");
    if let Some(resume) = flag("--resume") {
        let mut bytes = if comm.is_root() {
            std::fs::read(resume.join("checkpoint.h5")).unwrap_or_else(|e| fail(format!("{}: {e}", resume.display())))
        } else {
            Vec::new()
        };
        comm.broadcast_bytes(0, &mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines();
        first_epoch = lines.next().and_then(|l| l.strip_prefix("epoch=")).and_then(|v| v.parse().ok()).unwrap_or_else(|| fail("bad checkpoint".into()));
        params = lines.map(|l| f64::from_bits(u64::from_str_radix(l, 16).unwrap_or_else(|_| fail("bad checkpoint".into())))).collect();
        if params.len() != len {
            fail("bad checkpoint length".into());
        }
    }
    if comm.is_root() {
        std::fs::create_dir_all(&out).unwrap_or_else(|e| fail(format!("{}: {e}", out.display())));
        println!("train: epochs {first_epoch}..{epochs} on {} ranks", comm.size());
    }
    let (rank, size) = (comm.rank(), comm.size());
    let (start, end) = (samples * rank / size, samples * (rank + 1) / size);
    for epoch in first_epoch..epochs {
        let t0 = Instant::now();
        let mut acc = ExactSum::new(len);
        for k in start..end {
            std::thread::sleep(std::time::Duration::from_millis(sample_ms as u64));
            acc.add(&global_vector(epoch * samples + k, len));
        }
        let compute_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        comm.allreduce_exact(&mut acc);
        let comm_s = t1.elapsed().as_secs_f64();
        for (p, g) in params.iter_mut().zip(acc.to_f64()) {
            *p = 0.5 * *p + g;
        }
        let (mut max, mut min) = ([compute_s], [compute_s]);
        comm.allreduce_max_f64(&mut max);
        comm.allreduce_min_f64(&mut min);
        if comm.is_root() {
            let line = serde_json::json!({"epoch": epoch, "ranks": size, "compute_s": compute_s, "comm_s": comm_s,
                "compute_s_max": max[0], "compute_s_min": min[0], "seconds": t0.elapsed().as_secs_f64()});
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(out.join("metrics.jsonl")).unwrap();
            writeln!(f, "{line}").unwrap();
        }
        if signals::stop_agreed(comm) && epoch + 1 < epochs {
            if comm.is_root() {
                let mut text = format!("epoch={}\n", epoch + 1);
                for p in &params {
                    text += &format!("{:016x}\n", p.to_bits());
                }
                colop::io::write_bytes_atomic(&checkpoint, text.as_bytes()).unwrap_or_else(|e| fail(e.to_string()));
                println!("train: stop requested, checkpoint written after epoch {epoch}");
            }
            comm.barrier();
            comm.finish();
            std::process::exit(signals::EXIT_CHECKPOINTED);
        }
    }
    if comm.is_root() {
        let text = format!("digest={:016x}\n", digest(&params));
        colop::io::write_bytes_atomic(&out.join("model.h5"), text.as_bytes()).unwrap_or_else(|e| fail(e.to_string()));
        let _ = std::fs::remove_file(&checkpoint);
        println!("train: done, {}", text.trim());
    }
}
