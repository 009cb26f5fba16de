//! Campaign planning and rank assignment (no run files needed).

use colop::campaign::{execute, plan, CampaignConfig, Manifest};
use colop::dist::SingleProcess;
use std::path::Path;

fn shipped() -> CampaignConfig {
    CampaignConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/campaign.yaml")).unwrap()
}

#[test]
fn shipped_campaign_expands_to_the_product() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = plan(&shipped(), dir.path()).unwrap();
    assert_eq!(manifest.runs.len(), 8);
    // First key slowest, last fastest.
    assert_eq!(manifest.runs[0].sweep["plasma.ppc"], 16);
    assert_eq!(manifest.runs[4].sweep["plasma.ppc"], 32);
    assert_eq!(manifest.runs[1].sweep["grid.dx"], 0.5);
    assert_eq!(manifest.runs[2].sweep["grid.dx"], 1.0);
    assert_eq!(manifest.runs[1].params["test_dist_ring"], 1.0);
    assert_eq!(manifest.runs[5].params["n_lambda_D2"], 128.0);
    assert_eq!(Manifest::load(dir.path()).unwrap(), manifest);
    for run in &manifest.runs {
        let cfg = colop::pic::PicConfig::load(&dir.path().join(&run.config)).unwrap();
        assert_eq!(cfg.cost(), run.cost);
    }
    // Same plan again: fine. A different plan into the same directory: refused.
    plan(&shipped(), dir.path()).unwrap();
    let mut other = shipped();
    other.name = "other".into();
    let e = plan(&other, dir.path()).unwrap_err().to_string();
    assert!(e.contains("different plan"), "{e}");
}

#[test]
fn bad_sweeps_name_their_key() {
    let mut c = shipped();
    c.sweep.insert("plasma.ppc".into(), serde_yaml::from_str("[16, -1]").unwrap());
    let e = c.expand().unwrap_err().to_string();
    assert!(e.contains("plasma.ppc") && e.contains("run-0004"), "{e}");
    let mut c = shipped();
    c.sweep.insert("grid.dx".into(), serde_yaml::from_str("{from: 1, to: 2}").unwrap());
    assert!(c.expand().unwrap_err().to_string().contains("sweep.grid.dx"));
    let mut c = shipped();
    c.sweep.insert("plasma.ppx".into(), serde_yaml::from_str("[1]").unwrap());
    assert!(c.expand().unwrap_err().to_string().contains("ppx"));
}

#[test]
fn execute_runs_every_run_once_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    plan(&shipped(), dir.path()).unwrap();
    let mut seen = Vec::new();
    let summary = execute(dir.path(), &SingleProcess, None, &mut |cfg, out, name| {
        seen.push((name.to_string(), out.to_path_buf(), cfg.seed));
        Ok::<(), String>(())
    })
    .unwrap();
    assert_eq!(summary.ran, 8);
    assert_eq!(seen.len(), 8);
    let mut only = Vec::new();
    execute(dir.path(), &SingleProcess, Some(3), &mut |_, _, name| {
        only.push(name.to_string());
        Ok::<(), String>(())
    })
    .unwrap();
    assert_eq!(only, ["run-0003"]);
    assert!(execute(dir.path(), &SingleProcess, Some(8), &mut |_, _, _| Ok::<(), String>(())).is_err());
    let e = execute(dir.path(), &SingleProcess, None, &mut |_, _, name| {
        if name == "run-0002" {
            Err("boom".to_string())
        } else {
            Ok(())
        }
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("1 run(s) failed"), "{e}");
}
