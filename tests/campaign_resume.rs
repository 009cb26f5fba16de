//! File-level campaign test: run a small campaign, lose one output, resume. Needs
//! `data::write_run`/`read_run`.

use colop::campaign::{execute, plan, run_and_write, CampaignConfig};
use colop::dist::SingleProcess;

const CAMPAIGN: &str = "name: tiny
base:
  grid: {nx: 8, ny: 8, dx: 1.0}
  plasma: {ppc: 4}
  time: {dt: 0.2, steps: 20, dump_every: 5}
  test_particles: {n: 200, distribution: {kind: normal, center: [1.5, 0.0], sigma: 0.4}, tracks: 10}
sweep:
  shape.order: [1, 2]
  seed: {from: 1, to: 2, step: 1}
";

#[test]
fn interrupted_campaign_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("campaign.yaml");
    std::fs::write(&file, CAMPAIGN).unwrap();
    let out = dir.path().join("c");
    let manifest = plan(&CampaignConfig::load(&file).unwrap(), &out).unwrap();
    assert_eq!(manifest.runs.len(), 4);
    let first = execute(&out, &SingleProcess, None, &mut run_and_write).unwrap();
    assert_eq!((first.ran, first.skipped), (4, 0));
    let run = colop::data::read_run(&out.join(&manifest.runs[3].output)).unwrap();
    assert_eq!(run.params["shape"], 2.0);
    assert_eq!(run.params["seed"], 2.0);
    assert_eq!(run.t.len(), 5);
    // Lose one output and corrupt another (an interrupted write): both are redone.
    std::fs::remove_file(out.join(&manifest.runs[1].output)).unwrap();
    std::fs::write(out.join(&manifest.runs[2].output), b"truncated").unwrap();
    let second = execute(&out, &SingleProcess, None, &mut run_and_write).unwrap();
    assert_eq!((second.ran, second.skipped), (2, 2));
    let third = execute(&out, &SingleProcess, None, &mut run_and_write).unwrap();
    assert_eq!((third.ran, third.skipped), (0, 4));
}

/// The CLI under `mpirun -n 2`: plan, run, lose an output, run again (only it is redone), then
/// train an operator on the campaign's runs, also on 2 ranks.
#[test]
fn campaign_cli_under_mpirun_resumes_and_trains() {
    assert!(
        std::process::Command::new("mpirun").arg("--version").output().is_ok(),
        "mpirun not found: install openmpi-bin (scripts/setup.sh does)"
    );
    let colop = env!("CARGO_BIN_EXE_colop");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("campaign.yaml");
    std::fs::write(&file, CAMPAIGN).unwrap();
    let out = dir.path().join("c");
    let status = std::process::Command::new(colop)
        .args(["campaign", "plan"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let mpirun = |args: &[&str]| {
        let output = std::process::Command::new("mpirun")
            .args(["-n", "2", "--oversubscribe"])
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("RAYON_NUM_THREADS", "1")
            .arg(colop)
            .args(args)
            .arg(&out)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{log}");
        log
    };
    mpirun(&["campaign", "run"]);
    let manifest = colop::campaign::Manifest::load(&out).unwrap();
    for run in &manifest.runs {
        colop::data::read_run(&out.join(&run.output)).unwrap();
    }
    std::fs::remove_file(out.join(&manifest.runs[0].output)).unwrap();
    let log = mpirun(&["campaign", "run"]);
    assert_eq!(log.matches("skipping").count(), 3, "{log}");
    assert!(log.contains("1 ran, 3 skipped"), "{log}");
    // Train on the campaign's runs, conditioned on the shape order.
    let files: Vec<String> = manifest.runs.iter().map(|r| format!("c/{}", r.output)).collect();
    let cfg = dir.path().join("train.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data: {{ train: [{}], i_start: 0 }}\nmodel: {{ kind: mlp-conditioned, conditioners: [shape], width: 8, depth: 1 }}\ntrain: {{ stages: [ {{unroll: 1, epochs: 3}} ] }}\n",
            files.join(", ")
        ),
    )
    .unwrap();
    let run_dir = dir.path().join("trained");
    let output = std::process::Command::new("mpirun")
        .args(["-n", "2", "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .arg(colop)
        .args(["train", cfg.to_str().unwrap(), "--out", run_dir.to_str().unwrap(), "--no-plots"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(run_dir.join("model.h5").is_file());
}
