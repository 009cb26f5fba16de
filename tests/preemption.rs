//! Preemption of the real `colop train`: Ctrl-C (SIGINT) checkpoints at the end of the epoch and
//! exits 75, a second Ctrl-C exits at once; under `mpirun -n 2`, SIGUSR1 and SIGTERM sent to
//! mpirun mid-run do the same, and a resume on 3 ranks ends with the uninterrupted model, bit for
//! bit; a checkpoint of another format version is refused with one line.
//!
//! "Mid-run" is made deterministic: the signal is sent only once `metrics.jsonl` holds a few
//! epochs, and the run is sized so that it cannot finish within many times the signal's latency.
//! `mpirun` must be installed (scripts/setup.sh does): without it the MPI tests fail, never skip.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SYNTH: &str = "
grid: { n: 13, v_max: 4.0 }
operator: { kind: radial, d_par: \"0.05*(1+v^2/4)^(-1.5)\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: stationary }
snapshots: 14
substeps: 20
runs:
  - { name: a, initial: [ { kind: normal, centre: [-1.0, 0.5], sigma: 0.6 } ] }
  - { name: b, initial: [ { kind: ring, radius: 1.5, width: 0.3 } ] }
  - { name: c, initial: [ { kind: normal, centre: [1.0, 1.0], sigma: 0.5 } ] }
";

/// A par-perp run of `epochs` epochs in two stages; `substeps` sets the cost of an epoch.
fn train_yaml(epochs: usize, substeps: usize) -> String {
    format!(
        "data: {{ train: [data/a.h5, data/b.h5, data/c.h5], valid_fraction: 0.1, i_start: 2 }}
model: {{ kind: par-perp }}
solver: {{ substeps: {substeps} }}
train:
  seed: 5
  checkpoint_every: 0
  log_every: 1
  stages: [ {{unroll: 1, epochs: {}, lr: 1.0e-2}}, {{unroll: 3, epochs: {}}} ]
",
        epochs / 2,
        epochs - epochs / 2
    )
}

fn colop() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_colop"));
    c.env("RAYON_NUM_THREADS", "1").env_remove("RUST_LOG");
    c
}

fn mpirun(n: usize) -> Command {
    mpirun_with(n, &[])
}

/// mpirun running `launcher…` then colop on every rank.
fn mpirun_with(n: usize, launcher: &[&str]) -> Command {
    assert!(Command::new("mpirun").arg("--version").output().is_ok(), "mpirun not found: install openmpi-bin (scripts/setup.sh does)");
    let mut c = Command::new("mpirun");
    c.args(["-n", &n.to_string(), "--oversubscribe", "--bind-to", "none"])
        .args(launcher)
        .arg(env!("CARGO_BIN_EXE_colop"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("RUST_LOG");
    c
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed ({:?}): {}\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn setup(d: &Path, epochs: usize, substeps: usize) -> std::path::PathBuf {
    std::fs::write(d.join("synth.yaml"), SYNTH).unwrap();
    ok(&colop().args(["synth", d.join("synth.yaml").to_str().unwrap(), "--out", d.join("data").to_str().unwrap()]).output().unwrap());
    let cfg = d.join("train.yaml");
    std::fs::write(&cfg, train_yaml(epochs, substeps)).unwrap();
    cfg
}

/// θ, A and D of a run directory's model.h5.
fn model_values(run: &Path) -> Vec<f64> {
    let f = hdf5::File::open(run.join("model.h5")).unwrap();
    let mut v: Vec<f64> = f.dataset("theta").unwrap().read_raw().unwrap();
    v.extend(f.dataset("A").unwrap().read_raw::<f64>().unwrap());
    v.extend(f.dataset("D").unwrap().read_raw::<f64>().unwrap());
    v
}

fn metrics_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl")).map(|m| m.lines().count()).unwrap_or(0)
}

/// Spawn with stderr collected line by line on a channel (and kept for the failure message).
fn spawn(mut cmd: Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_for_epochs(run: &Path, n: usize, child: &mut Child) {
    let start = Instant::now();
    while metrics_lines(run) < n {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before {n} epochs were logged");
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(pid: u32, signal: &str) {
    assert!(Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap().success());
}

/// Wait for the child, returning its exit code and the stderr collected so far.
fn finish(mut child: Child, rx: &mpsc::Receiver<String>) -> (Option<i32>, String) {
    let status = child.wait().unwrap();
    // The reader thread ends at EOF, after the child (and mpirun's forwarding) closed stderr.
    let mut log = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        log.push_str(&line);
        log.push('\n');
    }
    (status.code(), log)
}

/// The checkpoint opens, has the current format version and names a position inside the run.
fn assert_readable_checkpoint(run: &Path, total_epochs: usize) {
    let f = hdf5::File::open(run.join("checkpoint.h5")).expect("checkpoint.h5 readable");
    assert_eq!(f.attr("format_version").unwrap().read_scalar::<u64>().unwrap(), 1);
    let theta: Vec<f64> = f.dataset("theta").unwrap().read_raw().unwrap();
    assert!(!theta.is_empty() && theta.iter().all(|x| x.is_finite()));
    let (stage, epoch): (u64, u64) = (f.attr("stage").unwrap().read_scalar().unwrap(), f.attr("epoch").unwrap().read_scalar().unwrap());
    let done = stage as usize * (total_epochs / 2) + epoch as usize;
    assert!(done > 0 && done < total_epochs, "checkpoint at stage {stage} epoch {epoch}");
    assert_eq!(done, metrics_lines(run), "checkpoint position and metrics.jsonl disagree");
}

#[test]
fn ctrl_c_checkpoints_at_the_end_of_the_epoch_and_the_resume_matches() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let epochs = MPI_EPOCHS;
    let cfg = setup(d, epochs, 40);
    let cfg = cfg.to_str().unwrap();
    let plain = d.join("plain");
    let t0 = Instant::now();
    ok(&colop().args(["train", cfg, "--out", plain.to_str().unwrap(), "--no-plots"]).output().unwrap());
    eprintln!("uninterrupted: {:.2} s for {epochs} epochs", t0.elapsed().as_secs_f64());

    let run = d.join("interrupted");
    let (mut child, rx) = spawn({
        let mut c = colop();
        c.args(["train", cfg, "--out", run.to_str().unwrap(), "--no-plots"]);
        c
    });
    wait_for_epochs(&run, 5, &mut child);
    kill(child.id(), "INT");
    let (code, log) = finish(child, &rx);
    assert_eq!(code, Some(75), "{log}");
    assert!(log.contains("SIGINT") && log.contains("Ctrl-C again"), "{log}");
    assert!(log.contains("--resume"), "{log}");
    assert_readable_checkpoint(&run, epochs);
    assert!(!run.join("model.h5").exists());
    ok(&colop().args(["train", "--resume", run.to_str().unwrap(), "--no-plots"]).output().unwrap());
    assert!(model_values(&plain) == model_values(&run), "resumed after Ctrl-C differs from the uninterrupted run");
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Epochs of ~2–3 s (30000 solver steps per interval): both Ctrl-Cs land inside the
    // first epoch, long before it could end.
    let cfg = setup(d, 20, 30000);
    let run = d.join("run");
    let (child, rx) = spawn({
        let mut c = colop();
        c.args(["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--no-plots"]);
        c
    });
    let wait_for = |what: &str| loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no log line with {what:?}"));
        if line.contains(what) {
            break;
        }
    };
    wait_for("stage 0: unroll");
    let start = Instant::now();
    kill(child.id(), "INT");
    // Wait until the first one was seen (two signals in flight at once may merge into one).
    wait_for("SIGINT");
    kill(child.id(), "INT");
    let (code, log) = finish(child, &rx);
    let took = start.elapsed();
    assert_eq!(code, Some(130), "{log}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(metrics_lines(&run), 0, "an epoch finished before the second Ctrl-C took effect");
    assert!(!run.join("checkpoint.h5").exists() && !run.join("model.h5").exists());
}

/// Uninterrupted single-process run and the config of the MPI tests, in `d`.
fn mpi_case(d: &Path) -> (String, std::path::PathBuf) {
    let cfg = setup(d, MPI_EPOCHS, 40);
    let plain = d.join("plain");
    ok(&colop().args(["train", cfg.to_str().unwrap(), "--out", plain.to_str().unwrap(), "--no-plots"]).output().unwrap());
    (cfg.to_str().unwrap().to_string(), plain)
}

/// 600 epochs of ~4 ms: after the 5th, the run has seconds left when the signal arrives.
const MPI_EPOCHS: usize = 600;

/// After the stop: a readable checkpoint, and a resume on 3 ranks equal to the uninterrupted run.
fn resume_on_three_ranks_matches(run: &Path, plain: &Path, signal: &str) {
    assert_readable_checkpoint(run, MPI_EPOCHS);
    assert!(!run.join("model.h5").exists());
    ok(&mpirun(3).args(["train", "--resume", run.to_str().unwrap(), "--no-plots"]).output().unwrap());
    assert!(model_values(plain) == model_values(run), "SIG{signal} + resume on 3 ranks differs from the uninterrupted run");
    assert!(!run.join("checkpoint.h5").exists());
}

/// USR1 to mpirun (2 ranks) mid-run: mpirun forwards it, every rank checkpoints at the same epoch
/// and mpirun exits 75.
#[test]
fn usr1_to_mpirun_checkpoints_and_the_resume_on_three_ranks_matches() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cfg, plain) = mpi_case(d);
    let run = d.join("interrupted");
    let (mut child, rx) = spawn({
        let mut c = mpirun(2);
        c.args(["train", &cfg, "--out", run.to_str().unwrap(), "--no-plots"]);
        c
    });
    wait_for_epochs(&run, 5, &mut child);
    kill(child.id(), "USR1");
    let (code, log) = finish(child, &rx);
    assert_eq!(code, Some(75), "{log}");
    for rank in 0..2 {
        assert!(log.contains(&format!("[rank {rank}] SIGUSR1")), "rank {rank} did not see SIGUSR1:\n{log}");
        assert!(log.lines().any(|l| l.contains(&format!("[rank {rank}] stopped by signal"))), "{log}");
    }
    resume_on_three_ranks_matches(&run, &plain, "USR1");
}

/// TERM to mpirun (2 ranks) mid-run. Open MPI's mpirun (4.1) answers TERM by ending the job: it
/// passes the TERM to each rank but then exits at once with its own status 1, whatever the ranks
/// return, and stops forwarding their output. So the exit code 75 cannot be seen through mpirun
/// here; each rank's own log (colop exec'd by a shell that sends its stderr to a file) must show
/// the SIGTERM and the checkpointed stop (the path that exits with 75), and the checkpoint must
/// resume on 3 ranks to the uninterrupted model. Under Slurm, jobs/train.sbatch turns TERM into
/// USR1 for the step, which mpirun forwards without ending the job (the test above).
#[test]
fn term_to_mpirun_checkpoints_every_rank_and_the_resume_on_three_ranks_matches() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cfg, plain) = mpi_case(d);
    let run = d.join("interrupted");
    let rec = d.join("rank");
    let wrapper = format!(r#"exec "$0" "$@" 2>{}$OMPI_COMM_WORLD_RANK.log"#, rec.display());
    let (mut child, rx) = spawn({
        let mut c = mpirun_with(2, &["sh", "-c", &wrapper]);
        c.args(["train", &cfg, "--out", run.to_str().unwrap(), "--no-plots"]);
        c
    });
    wait_for_epochs(&run, 5, &mut child);
    kill(child.id(), "TERM");
    let (code, log) = finish(child, &rx);
    assert_ne!(code, Some(0), "mpirun: {log}");
    let start = Instant::now();
    for r in 0..2 {
        let path = d.join(format!("rank{r}.log"));
        loop {
            let rank_log = std::fs::read_to_string(&path).unwrap_or_default();
            if rank_log.contains("stopped by signal after writing") {
                assert!(rank_log.contains(&format!("[rank {r}] SIGTERM")), "rank {r}: {rank_log}");
                assert!(!rank_log.contains("model:"), "rank {r} finished the run: {rank_log}");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "rank {r} did not stop on SIGTERM: {rank_log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    resume_on_three_ranks_matches(&run, &plain, "TERM");
}

#[test]
fn a_checkpoint_of_another_format_version_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = setup(d, 6, 1);
    let run = d.join("run");
    let out = colop().args(["train", cfg.to_str().unwrap(), "--out", run.to_str().unwrap(), "--stop-after", "2", "--no-plots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    {
        let f = hdf5::File::open_rw(run.join("checkpoint.h5")).unwrap();
        f.delete_attr("format_version").unwrap();
        f.new_attr::<u64>().shape(()).create("format_version").unwrap().write_scalar(&99u64).unwrap();
    }
    let out = colop().args(["train", "--resume", run.to_str().unwrap(), "--no-plots"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line: Vec<&str> = err.lines().filter(|l| l.contains("format version")).collect();
    assert_eq!(line.len(), 1, "{err}");
    assert!(line[0].contains("checkpoint.h5") && line[0].contains("version 99"), "{err}");
    assert!(!run.join("model.h5").exists());
}
