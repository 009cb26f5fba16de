//! MPI tests of the distribution layer through `examples/dist_selftest` under `mpirun`:
//! exact sums bitwise identical for 1–4 ranks, and a failing rank ends the whole job quickly
//! with its message and a non-zero status. Skipped (with a note) when `mpirun` is missing.
//! `cargo test` builds the example; after `cargo test --test dist_mpi` alone, build it first.
#![cfg(feature = "mpi")]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The selftest example, built by `cargo test` next to this test binary.
fn selftest() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("examples").join("dist_selftest")
}

fn mpirun(ranks: usize, args: &[&str]) -> Option<std::process::Output> {
    if Command::new("mpirun").arg("--version").output().is_err() {
        eprintln!("skipped: mpirun not found");
        return None;
    }
    let exe = selftest();
    if !exe.exists() {
        eprintln!("skipped: {} not built", exe.display());
        return None;
    }
    let output = Command::new("timeout")
        .args(["120", "mpirun", "-n", &ranks.to_string(), "--oversubscribe"])
        .arg(exe)
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("without the `mpi` feature"),
        "stale example {}: rebuild it with `cargo build --release --example dist_selftest`",
        selftest().display()
    );
    Some(output)
}

#[test]
fn exact_sums_are_identical_for_1_to_4_ranks() {
    let mut digests = Vec::new();
    for ranks in 1..=4 {
        let Some(out) = mpirun(ranks, &["exact", "61", "600"]) else { return };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{ranks} ranks: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(&format!("ranks={ranks} ")), "{stdout}");
        let digest = stdout.split("digest=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
        digests.push(digest);
    }
    assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");
}

#[test]
fn a_failing_rank_ends_the_job_with_its_message() {
    let start = Instant::now();
    let Some(out) = mpirun(3, &["abort"]) else { return };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("rank 1 of 3") && stderr.contains("bad.h5"), "{stderr}");
    assert!(!stderr.contains("barrier returned"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());
}
