//! Misuse of the `colop` binary as a new user meets it, on tiny data: every mistake is a one-line
//! error before any work, multi-output commands write all or nothing, and the figures show the
//! synthetic truth. PIC stability checks, synth formulas, eval/plot with `--params`, broken pipes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn colop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_colop")).args(args).env_remove("RUST_LOG").output().expect("run colop")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "colop failed: {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The error line of a failed run (asserts that it failed and did not panic).
fn fail(out: &Output) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "colop should have failed:\n{err}");
    assert!(!err.contains("panicked"), "panic instead of an error: {err}");
    err.lines().rfind(|l| l.contains("error")).unwrap_or_default().to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Names of the entries of `dir` (empty if it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

const SYNTH_RUNS: &str = "
runs:
  - { name: blob, initial: [ { kind: normal, centre: [-1.0, 0.5], sigma: 0.6 } ] }
  - { name: ring, initial: [ { kind: ring, radius: 1.5, width: 0.3 } ] }
";

fn synth_yaml(d_par: &str, runs: &str) -> String {
    format!(
        "grid: {{ n: 15, v_max: 4.0 }}\noperator: {{ kind: radial, d_par: \"{d_par}\", d_perp: \"0.05*(1+v^2/4)^(-0.5)\", a_par: stationary }}\nsnapshots: 16\ndt: 1.0\nsubsteps: 20\n{runs}"
    )
}

fn synth(dir: &Path, yaml: &str, out: &str) -> Output {
    let cfg = dir.join(format!("{out}.yaml"));
    std::fs::write(&cfg, yaml).unwrap();
    colop(&["synth", p(&cfg), "--out", p(&dir.join(out))])
}

fn pic_yaml(dt: f64, extra: &str) -> String {
    format!(
        "grid: {{ nx: 16, ny: 16, dx: 1.0 }}\nplasma: {{ ppc: 4 }}\nshape: {{ order: 2 }}\n\
         time: {{ dt: {dt}, steps: 40, dump_every: 10 }}\n\
         test_particles: {{ n: 200, mode: self_consistent, weight: 1.0, distribution: {{ kind: normal, center: [1.5, 0.0], sigma: 0.5 }} }}\n\
         histogram: {{ bins: [9, 9], v_range: [-4.0, 4.0, -4.0, 4.0] }}\nseed: 3\n{extra}"
    )
}

fn energy_drift_attr(path: &Path) -> f64 {
    let f = hdf5::File::open(path).unwrap();
    f.group("diagnostics").unwrap().attr("energy_drift").unwrap().read_scalar().unwrap()
}

/// Issue 6: an unstable PIC run warns, records its drift, and fails under `energy_check.max_drift`.
#[test]
fn pic_energy_drift_is_warned_recorded_and_can_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("stable.yaml"), pic_yaml(0.1, "")).unwrap();
    let out = colop(&["pic", p(&d.join("stable.yaml")), "--out", p(&d.join("stable.h5"))]);
    ok(&out);
    assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
    let stable = energy_drift_attr(&d.join("stable.h5"));
    assert!(stable.abs() < 0.05, "stable run drifts by {stable}");

    std::fs::write(d.join("unstable.yaml"), pic_yaml(1.9, "")).unwrap();
    let out = colop(&["pic", p(&d.join("unstable.yaml")), "--out", p(&d.join("unstable.h5"))]);
    ok(&out);
    let err = stderr(&out);
    assert!(err.lines().any(|l| l.contains("WARN") && l.contains("energy") && l.contains("drift")), "{err}");
    let drift = energy_drift_attr(&d.join("unstable.h5"));
    assert!(drift > 1.0, "dt 1.9 should be unstable: drift {drift}");
    let run = colop::data::RunFile::open(&d.join("unstable.h5")).unwrap();
    let diag = run.read_diagnostics().unwrap();
    let series = &diag["energy_drift"];
    assert_eq!(series.len(), diag["energy_total"].len());
    assert!((series[series.len() - 1] - drift).abs() <= 1e-12 * drift.abs(), "{} vs {drift}", series[series.len() - 1]);

    std::fs::write(d.join("strict.yaml"), pic_yaml(1.9, "energy_check: { max_drift: 0.5 }\n")).unwrap();
    let line = fail(&colop(&["pic", p(&d.join("strict.yaml")), "--out", p(&d.join("strict.h5"))]));
    assert!(line.contains("energy_check.max_drift"), "{line}");
    assert!(!d.join("strict.h5").exists());
    assert!(!entries(d).iter().any(|n| n.contains(".tmp-")), "{:?}", entries(d));
    // A bad threshold is a config error.
    std::fs::write(d.join("bad.yaml"), pic_yaml(0.1, "energy_check: { max_drift: -1 }\n")).unwrap();
    assert!(fail(&colop(&["pic", p(&d.join("bad.yaml")), "--out", p(&d.join("bad.h5"))])).contains("energy_check.max_drift"));
}

/// Issue 7: settings that cannot give a run file fail before the first step.
#[test]
fn pic_hopeless_settings_fail_before_the_first_step() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Long enough (≈ 10⁹ particle-steps) that simulating first would take many minutes.
    let long = pic_yaml(0.1, "").replace("steps: 40", "steps: 200000").replace("nx: 16, ny: 16", "nx: 64, ny: 64");
    std::fs::write(d.join("long.yaml"), &long).unwrap();
    std::fs::write(d.join("no-tp.yaml"), long.replace("n: 200", "n: 0")).unwrap();
    std::fs::create_dir(d.join("a-dir")).unwrap();
    std::fs::write(d.join("a-file"), b"x").unwrap();
    let cases: [(&str, PathBuf, &str); 3] = [
        ("no-tp.yaml", d.join("out.h5"), "test_particles.n"),
        ("long.yaml", d.join("a-dir"), "a-dir"),
        ("long.yaml", d.join("a-file").join("run.h5"), "a-file"),
    ];
    for (cfg, out, needle) in &cases {
        let started = std::time::Instant::now();
        let line = fail(&colop(&["pic", p(&d.join(cfg)), "--out", p(out)]));
        let secs = started.elapsed().as_secs_f64();
        assert!(line.contains(needle), "`{line}` should name `{needle}`");
        assert!(secs < 15.0, "{cfg} → {}: failed only after {secs:.0} s", out.display());
    }
    assert!(!d.join("out.h5").exists());
    assert_eq!(entries(&d.join("a-dir")), Vec::<String>::new());
}

fn write_npy_folder(dir: &Path, name: &str, bad: bool) -> PathBuf {
    let f = dir.join(name);
    std::fs::create_dir_all(&f).unwrap();
    std::fs::write(f.join("args.yaml"), "dt: 1.0\ni_start: 0\ni_end: -1\nv_range: [-4, 4, -4, 4]\nv_range_units: v_th\nn_bins: 6\n").unwrap();
    for i in 0..3 {
        let mut h = ndarray::Array2::<f64>::from_elem((6, 6), 1.0 + i as f64);
        if bad && i == 2 {
            h[[1, 1]] = -1.0;
        }
        ndarray_npy::write_npy(f.join(format!("{i:06}.npy")), &h).unwrap();
    }
    f
}

/// Issue 8: npy import, synth and tracks write all of their outputs or none, and refuse output
/// names that collide or leave `--out`.
#[test]
fn multi_output_commands_write_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // npy import: one good and one bad folder → nothing; two folders of one name → refused.
    let good = write_npy_folder(d, "good", false);
    let bad = write_npy_folder(d, "bad", true);
    let line = fail(&colop(&["import", "npy-folder", p(&good), p(&bad), "--out", p(&d.join("imported"))]));
    assert!(line.contains("000002.npy"), "{line}");
    assert_eq!(entries(&d.join("imported")), Vec::<String>::new(), "partial import left behind");
    let twin = write_npy_folder(&d.join("other"), "good", false);
    let line = fail(&colop(&["import", "npy-folder", p(&good), p(&twin), "--out", p(&d.join("imported"))]));
    assert!(line.contains("good.h5") && line.contains("both"), "{line}");
    assert_eq!(entries(&d.join("imported")), Vec::<String>::new());
    // Into an existing directory: other files stay, both runs arrive.
    std::fs::create_dir_all(d.join("existing")).unwrap();
    std::fs::write(d.join("existing/keep.txt"), b"keep").unwrap();
    ok(&colop(&["import", "npy-folder", p(&good), p(&write_npy_folder(d, "good2", false)), "--out", p(&d.join("existing"))]));
    assert_eq!(entries(&d.join("existing")), ["good.h5", "good2.h5", "keep.txt"]);

    // synth: a bad second run → nothing; duplicate names and escaping names → refused up front.
    let bad_run = SYNTH_RUNS.replace("width: 0.3", "width: -0.3");
    let line = fail(&synth(d, &synth_yaml("0.05", &bad_run), "synth-bad"));
    assert!(line.contains("runs[1]") && line.contains("width"), "{line}");
    assert_eq!(entries(&d.join("synth-bad")), Vec::<String>::new(), "partial synth left behind");
    let dup = SYNTH_RUNS.replace("name: ring", "name: blob");
    let line = fail(&synth(d, &synth_yaml("0.05", &dup), "synth-dup"));
    assert!(line.contains("blob") && line.contains("runs[1].name"), "{line}");
    for name in ["../../x", "/tmp/x", "a/b", "..", ""] {
        let runs = SYNTH_RUNS.replace("name: ring", &format!("name: \"{name}\""));
        let line = fail(&synth(d, &synth_yaml("0.05", &runs), "synth-esc"));
        assert!(line.contains("runs[1].name"), "{name}: {line}");
    }
    assert!(!d.join("x").exists() && !d.parent().unwrap().join("x.h5").exists());
    assert_eq!(entries(&d.join("synth-esc")), Vec::<String>::new());

    // tracks: one impossible lag → nothing; a repeated lag → refused.
    std::fs::write(
        d.join("pic.yaml"),
        pic_yaml(0.1, "").replace("mode: self_consistent", "mode: tracer").replace("sigma: 0.5 }", "sigma: 0.5 }, tracks: 50"),
    )
    .unwrap();
    ok(&colop(&["-q", "pic", p(&d.join("pic.yaml")), "--out", p(&d.join("run.h5"))]));
    let line = fail(&colop(&["tracks", p(&d.join("run.h5")), "--lag", "1", "2.5", "--out", p(&d.join("tracks"))]));
    assert!(line.contains("2.5"), "{line}");
    assert_eq!(entries(&d.join("tracks")), Vec::<String>::new(), "partial tracks left behind");
    let line = fail(&colop(&["tracks", p(&d.join("run.h5")), "--lag", "1", "1.0", "--out", p(&d.join("tracks"))]));
    assert!(line.contains("--lag"), "{line}");
    ok(&colop(&["tracks", p(&d.join("run.h5")), "--lag", "1", "2", "--out", p(&d.join("tracks"))]));
    assert_eq!(entries(&d.join("tracks")), ["summary.json", "tau_1", "tau_2"]);
    assert!(!entries(d).iter().any(|n| n.contains(".tmp-")), "{:?}", entries(d));
}

/// Issue 9: scientific notation in synth formulas; no ANSI escapes in logs to a pipe or file.
#[test]
fn synth_accepts_scientific_notation_and_logs_are_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = synth(d, &synth_yaml("0.016*(1+v^2/4)^(-1.5)", SYNTH_RUNS), "plain");
    ok(&plain);
    let sci = synth(d, &synth_yaml("1.6e-2*(1+v^2/4)^(-1.5)", SYNTH_RUNS), "sci");
    ok(&sci);
    let read = |p: &Path| -> Vec<f64> { hdf5::File::open(p).unwrap().dataset("f").unwrap().read_raw().unwrap() };
    assert_eq!(read(&d.join("plain/ring.h5")), read(&d.join("sci/ring.h5")), "1.6e-2 and 0.016 differ");
    let upper = synth(d, &synth_yaml("16E-3*(1+v^2/4)^(-1.5)+0.0e+0", SYNTH_RUNS), "upper");
    ok(&upper);
    assert_eq!(read(&d.join("plain/ring.h5")), read(&d.join("upper/ring.h5")));
    // Log lines with fields (`tau=1.0 samples=…`) are where the formatter added escapes.
    std::fs::write(
        d.join("pic.yaml"),
        pic_yaml(0.1, "").replace("mode: self_consistent", "mode: tracer").replace("sigma: 0.5 }", "sigma: 0.5 }, tracks: 50"),
    )
    .unwrap();
    ok(&colop(&["-q", "pic", p(&d.join("pic.yaml")), "--out", p(&d.join("run.h5"))]));
    let tracks = colop(&["tracks", p(&d.join("run.h5")), "--lag", "1", "--out", p(&d.join("tracks"))]);
    ok(&tracks);
    assert!(stderr(&tracks).contains("samples"), "{}", stderr(&tracks));
    for out in [&plain, &sci, &tracks] {
        let err = stderr(out);
        assert!(err.contains("INFO"), "no log lines: {err}");
        assert!(!err.contains('\u{1b}'), "ANSI escape codes in a non-terminal log: {err:?}");
    }
}

/// Train a tiny conditioned model on two synthetic runs with parameter `p`.
fn conditioned_model(d: &Path) -> PathBuf {
    let runs = "runs:\n  - { name: p1, params: { p: 1.0 }, initial: [ { kind: normal, centre: [-1.0, 0.5], sigma: 0.6 } ] }\n  - { name: p2, params: { p: 2.0 }, initial: [ { kind: ring, radius: 1.5, width: 0.3 } ] }\n";
    ok(&synth(d, &synth_yaml("0.02*p*(1+v^2/4)^(-1.5)", runs), "data"));
    std::fs::write(
        d.join("train.yaml"),
        "data: { train: [data/p1.h5, data/p2.h5], i_start: 2 }\nmodel: { kind: mlp-conditioned, conditioners: [p], width: 8, depth: 1 }\nsolver: { scheme: central, substeps: 1 }\ntrain: { seed: 3, stages: [ { unroll: 1, epochs: 3, lr: 1.0e-3 } ] }\n",
    )
    .unwrap();
    let run = d.join("cond");
    ok(&colop(&["-q", "train", p(&d.join("train.yaml")), "--out", p(&run), "--no-plots"]));
    run
}

/// Issue 10: `--params` of `colop eval` and `colop plot` on a conditioned model, end to end.
#[test]
fn eval_and_plot_take_params_for_conditioned_models() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = conditioned_model(d);
    let data = d.join("data/p2.h5");
    let eval = |params: &[&str], out: &str| {
        let mut args = vec!["eval", p(&run), "--data", p(&data), "--i-start", "2", "--out"];
        let out = d.join(out);
        let out_s = out.to_str().unwrap().to_string();
        args.push(&out_s);
        args.extend_from_slice(params);
        let o = colop(&args);
        (o, out)
    };
    let (o, own) = eval(&[], "own.json");
    ok(&o);
    let (o, given) = eval(&["--params", "p=2"], "given.json");
    ok(&o);
    let (o, other) = eval(&["--params", "p=1.5"], "other.json");
    ok(&o);
    let l1 = |f: &Path| -> f64 {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        v["runs"][0]["mean_l1_norm"].as_f64().unwrap()
    };
    assert_eq!(l1(&own), l1(&given), "--params p=2 on a p = 2 run must equal the run's own value");
    assert_ne!(l1(&own), l1(&other), "--params p=1.5 had no effect");
    let (o, _) = eval(&["--params", "q=1"], "bad.json");
    assert!(fail(&o).contains("`q`"));
    let (o, _) = eval(&["--params", "p"], "bad.json");
    assert!(fail(&o).contains("key=value"));

    let plots = d.join("plots");
    let listed = ok(&colop(&["plot", p(&run), "--out", p(&plots), "--params", "p=1.5"]));
    assert!(listed.contains("operator.png"), "{listed}");
    assert!(plots.join("operator.png").is_file());
    assert!(fail(&colop(&["plot", p(&run), "--out", p(&plots), "--params", "q=1"])).contains("`q`"));
}

fn quick_model(d: &Path) -> PathBuf {
    ok(&synth(d, &synth_yaml("0.05*(1+v^2/4)^(-1.5)", SYNTH_RUNS), "data"));
    std::fs::write(
        d.join("train.yaml"),
        "data: { train: [data/blob.h5], i_start: 2 }\nmodel: { kind: par-perp, n_radial: 8 }\nsolver: { scheme: central, substeps: 1 }\ntrain: { seed: 1, stages: [ { unroll: 1, epochs: 3, lr: 1.0e-3 } ] }\n",
    )
    .unwrap();
    let run = d.join("learned");
    ok(&colop(&["-q", "train", p(&d.join("train.yaml")), "--out", p(&run), "--no-plots"]));
    run
}

/// Issue 11: empty rollouts, grid mismatches, a run file for a model, and a closed stdout.
#[test]
fn eval_misuse_gives_clear_errors_and_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = quick_model(d);
    let ring = d.join("data/ring.h5");
    // 16 snapshots, numbered 0..=15: starting at the last leaves nothing to predict.
    let line = fail(&colop(&["eval", p(&run), "--data", p(&ring), "--i-start", "15"]));
    assert!(line.contains("--i-start") && line.contains("15") && line.contains("ring.h5"), "{line}");
    ok(&colop(&["eval", p(&run), "--data", p(&ring), "--i-start", "14", "--out", p(&d.join("one.json"))]));
    // Another grid.
    let other = synth_yaml("0.05", SYNTH_RUNS).replace("n: 15", "n: 11");
    ok(&synth(d, &other, "coarse"));
    let line = fail(&colop(&["eval", p(&run), "--data", p(&d.join("coarse/ring.h5")), "--i-start", "2"]));
    assert!(line.contains("15×15") && line.contains("11×11"), "{line}");
    // A run file where a model is expected.
    let x = d.join("x");
    for cmd in ["eval", "plot"] {
        let mut args = vec![cmd, p(&ring)];
        if cmd == "eval" {
            args.extend(["--data", p(&ring)]);
        } else {
            args.extend(["--out", p(&x)]);
        }
        let line = fail(&colop(&args));
        assert!(line.contains("ring.h5") && line.contains("run file"), "{cmd}: {line}");
    }
    // stdout closed before colop writes (as `colop eval … | head` does): no panic, exit 0,
    // figures still drawn.
    let closed_stdout = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_colop")).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(out.status.success() && !err.contains("panicked"), "{args:?}: {err}");
    };
    let plots = d.join("eval-plots");
    closed_stdout(&["eval", p(&run), "--data", p(&ring), "--i-start", "2", "--plots", p(&plots)]);
    assert!(plots.join("l1_norm.png").is_file() && plots.join("profiles.png").is_file());
    closed_stdout(&["plot", p(&run), "--out", p(&d.join("plot-plots"))]);
    assert!(d.join("plot-plots/profiles.png").is_file());
}

/// Issue 12: synth stores its truth; `plot` and `eval` overlay it on the radial profiles.
#[test]
fn synth_stores_the_truth_and_figures_overlay_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = quick_model(d);
    let ring = d.join("data/ring.h5");
    let f = hdf5::File::open(&ring).unwrap();
    let truth = f.group("truth").unwrap();
    let a: ndarray::Array3<f64> = truth.dataset("A").unwrap().read().unwrap();
    let dd: ndarray::Array3<f64> = truth.dataset("D").unwrap().read().unwrap();
    assert_eq!((a.shape(), dd.shape()), (&[2, 15, 15][..], &[3, 15, 15][..]));
    let v: Vec<f64> = truth.dataset("v_radial").unwrap().read_raw().unwrap();
    let d_par: Vec<f64> = truth.dataset("D_par").unwrap().read_raw().unwrap();
    assert_eq!(v.len(), d_par.len());
    for (x, y) in v.iter().zip(&d_par) {
        let want = 0.05 * (1.0 + x * x / 4.0f64).powf(-1.5);
        assert!((y - want).abs() <= 1e-12, "D_par({x}) = {y}, want {want}");
    }
    // The truth's fields roll out like the synthetic data: D_xx at the centre cell is D_par(0).
    assert!((dd[[0, 7, 7]] - 0.05).abs() < 1e-3, "{}", dd[[0, 7, 7]]);
    drop(f);
    // The learned model's run directory knows its training data, so `plot` overlays their truth.
    let listed = ok(&colop(&["plot", p(&run), "--out", p(&d.join("plots"))]));
    assert!(listed.contains("profiles.png"), "{listed}");
    let json = std::fs::read_to_string(d.join("plots/profiles.json")).unwrap();
    assert!(json.contains("truth (blob.h5)"), "{json}");
    let _ = ok(&colop(&["eval", p(&run), "--data", p(&ring), "--i-start", "2", "--plots", p(&d.join("eval")), "--out", p(&d.join("e.json"))]));
    let json = std::fs::read_to_string(d.join("eval/profiles.json")).unwrap();
    assert!(json.contains("truth (ring.h5)") && json.contains("par-perp"), "{json}");
    assert!(d.join("eval/profiles.png").is_file());
}
