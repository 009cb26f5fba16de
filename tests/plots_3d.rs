//! Figures of three-dimensional velocity space: every figure set of small 3D models (tensor,
//! par-perp, time-dependent par-perp, gyrotropic, isotropic MLP) and of an evaluation on a 3D
//! run file is drawn without error, as PNGs of the expected sizes that are not blank; `colop eval`
//! reports the v_z moments; a 2D model and run still give exactly the 2D file set; `colop plot`,
//! `colop eval --plots` and the figures of `colop train` end to end on a 3D model and run.

use colop::eval::model::evaluate_saved;
use colop::eval::Moments;
mod common;

use colop::grid::VelocityGrid;
use colop::model_file::{write_model, SavedModel};
use colop::operator::{build, BuildInfo, ModelSpec, OperatorModel};
use colop::plot::sets::{eval_figures, model_figures};
use ndarray::Array3;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Pixels per heatmap panel and height of the title band (see `colop::plot`).
const PANEL: (u32, u32) = (440, 380);
const TITLE: u32 = 44;

fn grid3() -> VelocityGrid {
    VelocityGrid::new3(9, 8, 7, [-3.0, 3.0, -3.0, 3.0, -2.5, 2.5], "v_th").unwrap()
}

/// A model of `yaml` on `grid` at θ near its initial parameters, written to `path`.
fn saved_model(yaml: &str, grid: &VelocityGrid, path: &Path) -> SavedModel {
    let spec: ModelSpec = serde_yaml::from_str(yaml).unwrap();
    let m = build(&spec, &BuildInfo { grid: grid.clone(), cond_ranges: Vec::new(), t_span: 4.0 }).unwrap();
    // Initial θ plus a deterministic ripple, so drag and off-diagonal fields are not all zero.
    let theta: Vec<f64> = m.init_params(1).iter().enumerate().map(|(i, t)| t + 0.01 * ((i as f64) * 0.7).sin()).collect();
    save_model(spec, m.as_ref(), theta, grid, path)
}

/// `m` at `theta` written to `path` as a model file (fields and exports at t = 0).
fn save_model(spec: ModelSpec, m: &dyn OperatorModel, theta: Vec<f64>, grid: &VelocityGrid, path: &Path) -> SavedModel {
    let saved = SavedModel {
        spec,
        solver: Default::default(),
        grid: grid.clone(),
        fields: m.fields_at(&theta, &[], 0.0),
        exports: m.exports(&theta, &[]),
        theta,
        cond_ranges: Vec::new(),
        t_span: 4.0,
        notes: Vec::new(),
    };
    write_model(path, &saved).unwrap();
    saved
}

/// A drifting Gaussian of constant mass, spreading, on `grid` (2D or 3D), `n_t` snapshots 1/ω_p apart.
fn run_file(grid: &VelocityGrid, n_t: usize, path: &Path) {
    let d = grid.dim();
    let centres: Vec<Vec<f64>> = (0..d).map(|a| grid.centres(a)).collect();
    let n = grid.n_cells();
    let mut f = Array3::zeros((n_t, grid.nx, n / grid.nx));
    for t in 0..n_t {
        let s2 = 0.6 + 0.05 * t as f64;
        let snap = f.index_axis_mut(ndarray::Axis(0), t);
        let mut snap = snap.into_shape_with_order(n).unwrap();
        for (c, v) in snap.iter_mut().enumerate() {
            let r2: f64 = (0..d)
                .map(|a| {
                    let i = (c / grid.stride(a)) % grid.extent(a);
                    let drift = [0.4, -0.2, 0.3][a];
                    (centres[a][i] - drift) * (centres[a][i] - drift)
                })
                .sum();
            *v = 1e4 * (-r2 / (2.0 * s2)).exp() / s2.powf(0.5 * d as f64);
        }
    }
    common::write_snapshots(grid, f, path);
}

/// Width, height and RGB pixels of a PNG.
fn png_pixels(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    (info.width, info.height, buf[..info.buffer_size()].chunks(3).map(|c| [c[0], c[1], c[2]]).collect())
}

/// Width, height, distinct colours and the fraction of pixels that are not white.
fn png_stats(path: &Path) -> (u32, u32, usize, f64) {
    let (w, h, px) = png_pixels(path);
    let colours: BTreeSet<[u8; 3]> = px.iter().copied().collect();
    let non_white = px.iter().filter(|p| **p != [255, 255, 255]).count() as f64 / px.len() as f64;
    (w, h, colours.len(), non_white)
}

/// A `rows × cols` heatmap figure of that size in which at least half of the maps vary: a
/// 100×100-pixel box in the middle of each panel's map holds more than one colour.
fn assert_heatmaps(path: &Path, rows: u32, cols: u32) {
    let (w, h, px) = png_pixels(path);
    assert_eq!((w, h), (cols * PANEL.0, rows * PANEL.1 + TITLE), "{}", path.display());
    let mut varied = 0;
    for (r, c) in (0..rows).flat_map(|r| (0..cols).map(move |c| (r, c))) {
        let (x0, y0) = (c * PANEL.0 + 150, TITLE + r * PANEL.1 + 133);
        let colours: BTreeSet<[u8; 3]> =
            (y0..y0 + 100).flat_map(|y| (x0..x0 + 100).map(move |x| (x, y))).map(|(x, y)| px[(y * w + x) as usize]).collect();
        varied += usize::from(colours.len() > 1);
    }
    assert!(2 * varied >= (rows * cols) as usize, "{}: {varied} of {} maps vary", path.display(), rows * cols);
}

/// A line figure of that size that is not blank.
fn assert_lines(path: &Path, size: (u32, u32)) {
    let (w, h, colours, ink) = png_stats(path);
    assert_eq!((w, h), size, "{}", path.display());
    assert!(colours > 5 && ink > 0.02, "{}: {colours} colours, {ink:.3} non-white", path.display());
}

fn names(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

fn dir_listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn every_model_figure_set_of_3d_models() {
    let dir = tempfile::tempdir().unwrap();
    let g = grid3();
    let cases: [(&str, &str, &[&str]); 5] = [
        ("tensor", "{kind: tensor}", &["operator_A.png", "operator_D.png"]),
        ("par-perp", "{kind: par-perp}", &["operator_A.png", "operator_D.png", "profiles.png"]),
        ("mlp-iso", "{kind: mlp, symmetry: isotropic, width: 8, depth: 1}", &["operator_A.png", "operator_D.png", "profiles.png"]),
        ("gyro", "{kind: gyrotropic, axis: [0.0, 0.6, 0.8], n_par: 6, n_perp: 4}", &["operator_A.png", "operator_D.png", "gyrotropic.png"]),
        (
            "par-perp-time",
            "{kind: par-perp-time, n_t: 2}",
            &["operator_A_t0.png", "operator_D_t0.png", "operator_A_t2.png", "operator_D_t2.png", "operator_A_t4.png", "operator_D_t4.png", "profiles.png"],
        ),
    ];
    for (name, yaml, expected) in cases {
        let model = dir.path().join(format!("{name}.h5"));
        saved_model(yaml, &g, &model);
        let out = dir.path().join(name);
        let written = model_figures(&model, &out, Vec::new(), None).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(names(&written), expected, "{name}");
        for p in &written {
            match p.file_name().unwrap().to_str().unwrap() {
                // Rows: the fields (3 drag, 6 diffusion); columns: the planes v_z = 0, v_y = 0, v_x = 0.
                n if n.starts_with("operator_A") => assert_heatmaps(p, 3, 3),
                n if n.starts_with("operator_D") => assert_heatmaps(p, 6, 3),
                "gyrotropic.png" => assert_heatmaps(p, 2, 3),
                "profiles.png" => assert_lines(p, (3 * 520, 420 + TITLE)),
                other => panic!("unexpected {other}"),
            }
        }
        let mut listing: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        if expected.contains(&"profiles.png") {
            listing.insert("profiles.json".into());
        }
        assert_eq!(dir_listing(&out), listing, "{name}: only the figures (and profiles.json), no temporary files");
        if listing.contains("profiles.json") {
            // One curve per coefficient: of a time-dependent model, its first time node's.
            let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("profiles.json")).unwrap()).unwrap();
            let v: Vec<f64> = json["curves"][0]["v"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert!(v.len() > 3 && v[0] == 0.0 && v.windows(2).all(|w| w[0] < w[1]), "{name}: v = {v:?}");
        }
    }
}

#[test]
fn eval_figures_and_moments_of_a_3d_run() {
    let dir = tempfile::tempdir().unwrap();
    let g = grid3();
    let model = dir.path().join("model.h5");
    let saved = saved_model("{kind: par-perp}", &g, &model);
    let run = dir.path().join("drift.h5");
    run_file(&g, 6, &run);
    let runs = evaluate_saved(&saved, &model, std::slice::from_ref(&run), 1, Vec::new()).unwrap();
    let r = &runs[0];
    assert_eq!((r.steps, r.frames.len()), (4, 3));
    // The observed moments are those of the file's Gaussian: drift (0.4, -0.2, 0.3) (to the
    // grid's discretisation) and the variance grows with t in every component, z included.
    let json = serde_json::to_value(r).unwrap();
    let first = &json["moments_obs"][0];
    for key in ["mean_vx", "mean_vy", "mean_vz", "var_vx", "var_vy", "var_vz"] {
        assert!(first[key].is_f64(), "eval JSON lacks {key}: {first}");
    }
    let (m0, m3) = (r.moments_obs[0], r.moments_obs[3]);
    assert!((m0.mean_vz.unwrap() - 0.3).abs() < 0.05 && (m0.mean_vx - 0.4).abs() < 0.05, "{m0:?}");
    assert!(m3.var_vz.unwrap() > m0.var_vz.unwrap() + 0.05, "{m0:?} → {m3:?}");
    assert!(r.moments_pred.iter().all(|m| m.var_vz.is_some()));
    // A Gaussian along v_z only: the z moments are its own, x and y stay centred.
    let mut f = vec![0.0; g.n_cells()];
    let zc = g.centres(2);
    for (c, v) in f.iter_mut().enumerate() {
        let (i, j, k) = (c / g.stride(0), (c / g.stride(1)) % g.ny, c % g.nz());
        if i == 4 && (j == 3 || j == 4) {
            *v = (-(zc[k] + 0.5) * (zc[k] + 0.5)).exp();
        }
    }
    let m = Moments::of(&f, &g);
    let w: f64 = zc.iter().map(|z| (-(z + 0.5) * (z + 0.5)).exp()).sum();
    let mean = zc.iter().map(|z| z * (-(z + 0.5) * (z + 0.5)).exp()).sum::<f64>() / w;
    let var = zc.iter().map(|z| (z - mean) * (z - mean) * (-(z + 0.5) * (z + 0.5)).exp()).sum::<f64>() / w;
    assert!((m.mean_vz.unwrap() - mean).abs() < 1e-12 && (m.var_vz.unwrap() - var).abs() < 1e-12, "{m:?}");
    assert!(m.mean_vx.abs() < 1e-12 && m.mean_vy.abs() < 1e-12 && (m.var_vy - 0.140625).abs() < 1e-12, "{m:?}");

    let out = dir.path().join("plots");
    let written = eval_figures(&out, &saved, &runs).unwrap();
    assert_eq!(names(&written), ["rollout_drift.png", "rollout_slices_drift.png", "moments_drift.png", "l1_norm.png"]);
    // Three frames × three planes, each observed, predicted, difference.
    assert_heatmaps(&written[0], 9, 3);
    assert_heatmaps(&written[1], 9, 3);
    assert_lines(&written[2], (2 * 640, 460 + TITLE));
    assert_lines(&written[3], (900, 600));
    assert_eq!(dir_listing(&out), names(&written).into_iter().collect());
}

/// The 2D figure sets write what they always wrote.
#[test]
fn a_2d_figure_set_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let g = VelocityGrid::square(12, 4.0).unwrap();
    let model = dir.path().join("model.h5");
    let saved = saved_model("{kind: par-perp}", &g, &model);
    let out = dir.path().join("model-plots");
    let written = model_figures(&model, &out, Vec::new(), None).unwrap();
    assert_eq!(names(&written), ["operator.png", "profiles.png"]);
    assert_heatmaps(&written[0], 2, 3);
    assert_eq!(dir_listing(&out), ["operator.png", "profiles.json", "profiles.png"].map(String::from).into());
    let run = dir.path().join("blob.h5");
    run_file(&g, 6, &run);
    let runs = evaluate_saved(&saved, &model, std::slice::from_ref(&run), 1, Vec::new()).unwrap();
    let json = serde_json::to_value(&runs[0]).unwrap();
    assert!(json["moments_obs"][0].get("mean_vz").is_none(), "2D moments have no v_z");
    let out = dir.path().join("eval-plots");
    let written = eval_figures(&out, &saved, &runs).unwrap();
    assert_eq!(names(&written), ["rollout_blob.png", "moments_blob.png", "l1_norm.png"]);
    assert_heatmaps(&written[0], 3, 3);
    assert_eq!(dir_listing(&out), names(&written).into_iter().collect());
}

fn colop(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_colop")).args(args).env_remove("RUST_LOG").output().unwrap();
    assert!(out.status.success(), "colop {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colop_plot_and_eval_plots_on_3d_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let g = grid3();
    saved_model("{kind: par-perp}", &g, &dir.path().join("model.h5"));
    run_file(&g, 5, &dir.path().join("drift.h5"));
    let listed = colop(&["-q", "--threads", "1", "plot", &p("model.h5"), "--out", &p("plots")]);
    let listed: Vec<&str> = listed.lines().map(|l| l.rsplit('/').next().unwrap()).collect();
    assert_eq!(listed, ["operator_A.png", "operator_D.png", "profiles.png"]);
    assert_heatmaps(&dir.path().join("plots/operator_D.png"), 6, 3);
    colop(&["-q", "--threads", "1", "eval", &p("model.h5"), "--data", &p("drift.h5"), "--i-start", "1", "--out", &p("eval.json"), "--plots", &p("eval")]);
    let ev: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p("eval.json")).unwrap()).unwrap();
    let last = &ev["runs"][0]["moments_pred"][2];
    assert!(last["mean_vz"].as_f64().unwrap().is_finite() && last["var_vz"].as_f64().unwrap() > 0.0, "{last}");
    assert_eq!(
        dir_listing(&dir.path().join("eval")),
        ["l1_norm.png", "moments_drift.png", "rollout_drift.png", "rollout_slices_drift.png"].map(String::from).into()
    );
    assert_heatmaps(&dir.path().join("eval/rollout_slices_drift.png"), 9, 3);
    // `colop train` on 3D data draws the run directory's figures at the end, the loss included.
    std::fs::write(
        p("train.yaml"),
        "data: { train: [drift.h5], i_start: 1 }\nmodel: { kind: par-perp }\nsolver: { scheme: central, substeps: 1 }\n\
         train: { seed: 7, stages: [ {unroll: 1, epochs: 2, lr: 1.0e-2} ] }\n",
    )
    .unwrap();
    colop(&["-q", "--threads", "1", "train", &p("train.yaml"), "--out", &p("run")]);
    assert_eq!(
        dir_listing(&dir.path().join("run/plots")),
        ["loss.png", "operator_A.png", "operator_D.png", "profiles.json", "profiles.png"].map(String::from).into()
    );
    // (Two epochs from uniform initial fields may leave the best model's fields uniform: sizes only.)
    assert_eq!(png_stats(&dir.path().join("run/plots/operator_A.png")).0, 3 * PANEL.0);
    assert_eq!(png_stats(&dir.path().join("run/plots/operator_D.png")).1, 6 * PANEL.1 + TITLE);
    assert_lines(&dir.path().join("run/plots/loss.png"), (900, 600));
}

/// θ of `model` whose exports match `target(name, node)` (exports linear in θ, one node per θ
/// entry): each θ entry is probed for the export entry it sets.
fn theta_matching(m: &dyn colop::operator::OperatorModel, target: impl Fn(&str, usize) -> f64) -> Vec<f64> {
    let n = m.n_params();
    (0..n)
        .map(|i| {
            let mut e = vec![0.0; n];
            e[i] = 1.0;
            let ex = m.exports(&e, &[]);
            let (name, k, r) = ex
                .iter()
                .filter(|(name, _)| !name.starts_with('v') && name != "axis")
                .find_map(|(name, a)| a.iter().position(|x| *x != 0.0).map(|k| (name.clone(), k, a.as_slice().unwrap()[k])))
                .expect("every θ entry sets an exported coefficient");
            target(&name, k) / r
        })
        .collect()
}

/// Figures of physically shaped 3D operators for eyeballing:
/// `cargo test --profile ci --test plots_3d -- --ignored` writes them to
/// `$TMPDIR/colop-plot-examples-3d`.
#[test]
#[ignore]
fn examples() {
    let dir = std::env::temp_dir().join("colop-plot-examples-3d");
    std::fs::create_dir_all(&dir).unwrap();
    let g = VelocityGrid::cube(21, 4.0).unwrap();
    let s = |v2: f64| 1.0 + v2 / 4.0;
    let models = [
        ("par-perp", "{kind: par-perp}"),
        ("gyrotropic", "{kind: gyrotropic, n_par: 11, n_perp: 6}"),
        ("gyrotropic-tilted", "{kind: gyrotropic, axis: [0.0, 0.6, 0.8], n_par: 11, n_perp: 6}"),
    ];
    for (name, yaml) in models {
        let spec: ModelSpec = serde_yaml::from_str(yaml).unwrap();
        let m = build(&spec, &BuildInfo { grid: g.clone(), cond_ranges: Vec::new(), t_span: 4.0 }).unwrap();
        let ex = m.exports(&m.init_params(1), &[]);
        let get = |n: &str| ex.iter().find(|e| e.0 == n).map(|e| e.1.iter().copied().collect::<Vec<f64>>()).unwrap_or_default();
        let (vr, vp, vq) = (get("v_radial"), get("v_par_nodes"), get("v_perp_nodes"));
        let theta = theta_matching(m.as_ref(), |field, k| {
            if !vr.is_empty() {
                let v = vr[k];
                match field {
                    "A_par" => -0.01 * v / s(v * v),
                    "D_par" => 0.016 * s(v * v).powf(-1.5),
                    _ => 0.016 * s(v * v).powf(-0.5),
                }
            } else {
                let (a, b) = (vp[k / vq.len()], vq[k % vq.len()]);
                let v2 = a * a + b * b;
                match field {
                    "A_b" => -0.01 * a / s(v2),
                    "A_e" => -0.02 * b / s(v2),
                    "D_be" => 0.004 * a * b / s(v2).powi(2),
                    "D_bb" => 0.016 * s(v2).powf(-1.5),
                    "D_ee" => 0.016 * s(v2).powf(-0.5),
                    _ => 0.016 * s(v2).powf(-0.5) * (1.0 + 0.5 * b * b / (1.0 + b * b)),
                }
            }
        });
        let path = dir.join(format!("{name}.h5"));
        let saved = save_model(spec, m.as_ref(), theta, &g, &path);
        model_figures(&path, &dir.join(name), Vec::new(), None).unwrap();
        if name == "par-perp" {
            let run = dir.join("drift.h5");
            run_file(&g, 8, &run);
            let runs = evaluate_saved(&saved, &path, std::slice::from_ref(&run), 1, Vec::new()).unwrap();
            eval_figures(&dir.join("eval"), &saved, &runs).unwrap();
        }
    }
}
