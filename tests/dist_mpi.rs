//! MPI tests of the distribution layer through `examples/dist_selftest` under `mpirun`:
//! exact sums bitwise identical for 1–4 ranks, and a failing rank ends the whole job quickly
//! with its message and a non-zero status. `mpirun` must be installed (scripts/setup.sh does) and
//! the example built: `cargo test --all-targets` builds it; after `cargo test --test dist_mpi`
//! alone, build it first. Either missing is a failure, never a silent skip.
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

fn mpirun(ranks: usize, args: &[&str]) -> std::process::Output {
    assert!(
        Command::new("mpirun").arg("--version").output().is_ok(),
        "mpirun not found: install openmpi-bin (scripts/setup.sh does)"
    );
    let exe = selftest();
    assert!(exe.exists(), "{} not built: build the example with the profile of this test (`cargo test --all-targets` does)", exe.display());
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
        "stale example {}: rebuild it with the profile of this test (`cargo test --all-targets` does)",
        selftest().display()
    );
    output
}

#[test]
fn exact_sums_are_identical_for_1_to_4_ranks() {
    let mut digests = Vec::new();
    for ranks in 1..=4 {
        let out = mpirun(ranks, &["exact", "61", "600"]);
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
    let out = mpirun(3, &["abort"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("rank 1 of 3") && stderr.contains("bad.h5"), "{stderr}");
    assert!(!stderr.contains("barrier returned"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());
}

/// The stop protocol under mpirun: USR1 to the launcher mid-run → all ranks agree, checkpoint,
/// exit 75; resuming on another rank count gives the uninterrupted model.
#[test]
fn usr1_checkpoints_and_resume_on_other_rank_count_matches() {
    assert!(mpirun(1, &["exact", "1", "1"]).status.success());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.yaml");
    std::fs::write(&config, "epochs: 40\nsamples: 4\nsample_ms: 20\n").unwrap();
    let run = |ranks: usize, out: &std::path::Path, resume: bool| {
        let mut cmd = Command::new("mpirun");
        cmd.args(["-n", &ranks.to_string(), "--oversubscribe"])
            .arg(selftest())
            .arg("train")
            .arg(&config)
            .arg("--out")
            .arg(out)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if resume {
            cmd.arg("--resume").arg(out);
        }
        cmd
    };
    let plain = dir.path().join("plain");
    assert!(run(1, &plain, false).status().unwrap().success());

    let stopped = dir.path().join("stopped");
    let mut child = run(2, &stopped, false).spawn().unwrap();
    let metrics = stopped.join("metrics.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&metrics).map(|m| m.lines().count()).unwrap_or(0) < 3 {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    // mpirun forwards SIGUSR1 to every rank.
    let status = Command::new("kill").args(["-USR1", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(75), "expected the checkpointed exit code");
    assert!(stopped.join("checkpoint.h5").exists());
    assert!(run(3, &stopped, true).status().unwrap().success());
    assert_eq!(std::fs::read(plain.join("model.h5")).unwrap(), std::fs::read(stopped.join("model.h5")).unwrap());
    assert!(!stopped.join("checkpoint.h5").exists());
}
