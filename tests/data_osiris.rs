//! `colop import osiris` on files written here in OSIRIS's HDF5 layout, as OSIRIS's writers
//! produce it (source/dutil/os-diagfile-hdf5.f03 for the root attributes NAME/TYPE,
//! source/dutil/os-dutil-hdf5.f90 `add_iteration_info` (TIME, ITER, TIME UNITS),
//! `add_part_info` (QUANTS, LABELS, UNITS), `add_grid_info` (AXIS/AXISn = [min, max]) and
//! `add_sim_info` (SIMULATION/DT); strings fixed-length, 1-element arrays): the histograms,
//! times and tracks equal an independent computation from the same arrays, exactly.

use colop::data::read_run;
use hdf5::types::FixedAscii;
use ndarray::{Array1, Array2, Array3};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::Command;

const V_TH: f64 = 0.1;
const NX: usize = 20;
const NY: usize = 16;
const RANGE: [f64; 4] = [-4.0, 6.0, -4.0, 4.0];

fn str_attr(loc: &hdf5::Location, name: &str, value: &str) {
    let v = FixedAscii::<64>::from_ascii(value).unwrap();
    loc.new_attr::<FixedAscii<64>>().shape(1).create(name).unwrap().write(&[v]).unwrap();
}

fn f64_attr(loc: &hdf5::Location, name: &str, value: f64) {
    loc.new_attr::<f64>().shape(1).create(name).unwrap().write(&[value]).unwrap();
}

fn iteration_attrs(file: &hdf5::File, name: &str, kind: &str, iter: i32, time: f64) {
    str_attr(file, "NAME", name);
    str_attr(file, "TYPE", kind);
    file.new_attr::<i32>().shape(1).create("ITER").unwrap().write(&[iter]).unwrap();
    f64_attr(file, "TIME", time);
    str_attr(file, "TIME UNITS", "1 / \\omega_p");
    let sim = file.create_group("SIMULATION").unwrap();
    f64_attr(&sim, "DT", 0.05);
}

/// One RAW dump: (p1, p2, p3, q, tag) as written.
struct Raw {
    p: [Vec<f32>; 3],
    q: Vec<f32>,
    tag: Vec<[i32; 2]>,
}

fn raw_dump(rng: &mut rand_chacha::ChaCha8Rng, n0: usize) -> Raw {
    let mut idx: Vec<usize> = (0..n0).filter(|_| rng.gen::<f64>() > 0.05).collect();
    for i in (1..idx.len()).rev() {
        idx.swap(i, rng.gen_range(0..=i));
    }
    let normal = |rng: &mut rand_chacha::ChaCha8Rng| -> f64 {
        // Box–Muller, enough for test data.
        let (a, b): (f64, f64) = (rng.gen::<f64>().max(1e-12), rng.gen());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    };
    let mut p = [Vec::new(), Vec::new(), Vec::new()];
    let (mut q, mut tag) = (Vec::new(), Vec::new());
    for &i in &idx {
        p[0].push((0.15 + 0.12 * normal(rng)) as f32);
        p[1].push((0.12 * normal(rng)) as f32);
        p[2].push((0.12 * normal(rng)) as f32);
        q.push(-(0.5 + rng.gen::<f64>()) as f32 * 1e-3);
        tag.push([(i % 3 + 1) as i32, (i / 3 + 1) as i32]);
    }
    Raw { p, q, tag }
}

fn write_raw(path: &Path, iter: i32, time: f64, raw: &Raw) {
    let file = hdf5::File::create(path).unwrap();
    iteration_attrs(&file, "electrons", "particles", iter, time);
    let quants = ["x1", "p1", "p2", "p3", "q", "ene"].map(|s| FixedAscii::<8>::from_ascii(s).unwrap());
    file.new_attr::<FixedAscii<8>>().shape(quants.len()).create("QUANTS").unwrap().write(&quants).unwrap();
    let n = raw.q.len();
    for (c, name) in ["p1", "p2", "p3"].iter().enumerate() {
        let ds = file.new_dataset_builder().with_data(&raw.p[c]).create(*name).unwrap();
        str_attr(&ds, "UNITS", "m_e c");
    }
    file.new_dataset_builder().with_data(&raw.q).create("q").unwrap();
    file.new_dataset_builder().with_data(&vec![0.5f32; n]).create("x1").unwrap();
    let tag = Array2::from_shape_fn((n, 2), |(i, j)| raw.tag[i][j]);
    file.new_dataset_builder().with_data(tag.view()).create("tag").unwrap();
}

/// The documented computation: β = p/γ, γ = √(((1 + p1²) + p2²) + p3²), weight |q|.
fn beta(raw: &Raw, i: usize) -> [f64; 3] {
    let p = [raw.p[0][i] as f64, raw.p[1][i] as f64, raw.p[2][i] as f64];
    let g = (((1.0 + p[0] * p[0]) + p[1] * p[1]) + p[2] * p[2]).sqrt();
    [p[0] / g, p[1] / g, p[2] / g]
}

fn histogram(raw: &Raw, comps: [usize; 2]) -> Array2<f64> {
    let mut h = Array2::zeros((NX, NY));
    let (dx, dy) = ((RANGE[1] - RANGE[0]) / NX as f64, (RANGE[3] - RANGE[2]) / NY as f64);
    for i in 0..raw.q.len() {
        let b = beta(raw, i);
        let (vx, vy) = (b[comps[0]] / V_TH, b[comps[1]] / V_TH);
        let (ci, cj) = (((vx - RANGE[0]) / dx).floor(), ((vy - RANGE[2]) / dy).floor());
        if ci >= 0.0 && ci < NX as f64 && cj >= 0.0 && cj < NY as f64 {
            h[[ci as usize, cj as usize]] += (raw.q[i] as f64).abs();
        }
    }
    h
}

fn id(tag: [i32; 2]) -> u64 {
    ((tag[0] as u32 as u64) << 32) | tag[1] as u32 as u64
}

fn colop(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_colop")).arg("-q").args(args).output().unwrap()
}

fn args<'a>(dir: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["import", "osiris", dir, "--species", "electrons", "--v-th", "0.1", "--bins", "20,16", "--v-range", "-4,6,-4,4", "--out", out];
    v.extend_from_slice(extra);
    v
}

#[test]
fn raw_dumps_import_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("MS/RAW/electrons");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::create_dir_all(dir.path().join("MS/RAW/ions")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let iters = [0, 20, 40, 60, 80];
    let dumps: Vec<Raw> = iters.iter().map(|_| raw_dump(&mut rng, 6000)).collect();
    for (raw, &it) in dumps.iter().zip(&iters) {
        write_raw(&folder.join(format!("RAW-electrons-{it:06}.h5")), it, it as f64 * 0.05, raw);
    }
    let d = dir.path().to_str().unwrap();
    let out = dir.path().join("run.h5");
    let o = out.to_str().unwrap();

    let r = colop(&args(d, o, &["--tracks", "25", "--params", "ppc=64", "--iterations", "20:"]));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let run = read_run(&out).unwrap();
    let used = &dumps[1..];
    assert_eq!(run.f.dim(), (4, NX, NY));
    for (k, raw) in used.iter().enumerate() {
        assert_eq!(run.f.index_axis(ndarray::Axis(0), k), histogram(raw, [0, 1]), "dump {k}");
    }
    assert_eq!(run.t, iters[1..].iter().map(|&i| i as f64 * 0.05).collect::<Vec<_>>());
    assert_eq!(run.grid.v_range, RANGE);
    assert_eq!(run.params.get("ppc"), Some(&64.0));
    assert_eq!(run.params.get("v_th"), Some(&V_TH));

    // Tracks: the 25 lowest ids present in every imported dump, in ascending order.
    let mut common: Vec<u64> = used[0].tag.iter().map(|&t| id(t)).collect();
    common.sort();
    for raw in &used[1..] {
        let ids: std::collections::HashSet<u64> = raw.tag.iter().map(|&t| id(t)).collect();
        common.retain(|i| ids.contains(i));
    }
    let chosen = &common[..25];
    let tracks = run.tracks.as_ref().expect("tracks");
    let mut want = Array3::zeros((4, 25, 2));
    for (k, raw) in used.iter().enumerate() {
        for (s, c) in chosen.iter().enumerate() {
            let i = raw.tag.iter().position(|&t| id(t) == *c).unwrap();
            let b = beta(raw, i);
            want[[k, s, 0]] = b[0] / V_TH;
            want[[k, s, 1]] = b[1] / V_TH;
        }
    }
    assert_eq!(tracks, &want);

    // Other components; thread count does not change a bit.
    let out2 = dir.path().join("run_p1p3.h5");
    let r = colop(&[&["--threads", "1"][..], &args(d, out2.to_str().unwrap(), &["--components", "p1,p3"])].concat());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let run13 = read_run(&out2).unwrap();
    for (k, raw) in dumps.iter().enumerate() {
        assert_eq!(run13.f.index_axis(ndarray::Axis(0), k), histogram(raw, [0, 2]));
    }

    // v_th measured on a species: the weighted √(½(σ²₁ + σ²₂)).
    let out3 = dir.path().join("run_vth.h5");
    let o3 = out3.to_str().unwrap();
    let r = colop(&["import", "osiris", d, "--species", "electrons", "--v-th-from", "electrons", "--out", o3]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let raw = &dumps[0];
    let (mut sw, mut m) = (0.0, [0.0; 2]);
    for i in 0..raw.q.len() {
        let (b, w) = (beta(raw, i), (raw.q[i] as f64).abs());
        sw += w;
        m[0] += w * b[0];
        m[1] += w * b[1];
    }
    let mean = [m[0] / sw, m[1] / sw];
    let var: f64 = (0..raw.q.len())
        .map(|i| {
            let (b, w) = (beta(raw, i), (raw.q[i] as f64).abs());
            w * ((b[0] - mean[0]).powi(2) + (b[1] - mean[1]).powi(2))
        })
        .sum();
    let v_th = read_run(&out3).unwrap().params["v_th"];
    assert!((v_th / (0.5 * var / sw).sqrt() - 1.0).abs() < 1e-12, "{v_th}");

    // Errors: one line naming what is there.
    let bad = dir.path().join("bad.h5");
    let b = bad.to_str().unwrap();
    let fail = |a: Vec<&str>, text: &str| {
        let r = colop(&a);
        let err = String::from_utf8_lossy(&r.stderr).trim().to_string();
        assert!(!r.status.success() && err.contains(text) && err.lines().count() == 1, "{err:?} lacks {text:?}");
    };
    let mut a = args(d, b, &[]);
    a[4] = "positrons";
    fail(a, "species present: electrons, ions");
    fail(args(d, b, &["--components", "p1,p2,p3"]), "3-D velocity histograms are not supported yet");
    fail(args(d, b, &["--diagnostic", "p1p2p3"]), "3-D velocity histograms, which colop does not support yet");
    fail(args(d, b, &["--iterations", "80:"]), "at least 2 are needed");
    assert!(!bad.exists());
}

#[test]
fn phase_spaces_import_on_their_own_grid() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("MS/PHA/p1p2/electrons");
    std::fs::create_dir_all(&folder).unwrap();
    let (n1, n2) = (12, 10);
    let mut expected = Vec::new();
    for k in 0..3 {
        let file = hdf5::File::create(folder.join(format!("p1p2-electrons-{:06}.h5", k * 10))).unwrap();
        iteration_attrs(&file, "p1p2", "grid", k * 10, k as f64 * 0.5);
        // h5py shape [n_p2, n_p1] (Fortran order on disk); charge density, negative.
        let data = Array2::from_shape_fn((n2, n1), |(j, i)| -((k as usize * 7 + i * 3 + j) as f64).sqrt());
        file.new_dataset_builder().with_data(data.view()).create("p1p2").unwrap();
        let axis = file.create_group("AXIS").unwrap();
        for (a, r) in [[-0.3, 0.5], [-0.4, 0.4]].iter().enumerate() {
            let ds = axis.new_dataset_builder().with_data(&Array1::from(r.to_vec())).create(format!("AXIS{}", a + 1).as_str()).unwrap();
            str_attr(&ds, "NAME", if a == 0 { "p1" } else { "p2" });
            str_attr(&ds, "UNITS", "m_e c");
        }
        expected.push(data.t().mapv(f64::abs));
    }
    let out = dir.path().join("pha.h5");
    let d = dir.path().join("MS");
    let r = colop(&["import", "osiris", d.to_str().unwrap(), "--species", "electrons", "--diagnostic", "p1p2", "--v-th", "0.1", "--out", out.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let run = read_run(&out).unwrap();
    assert_eq!(run.f.dim(), (3, n1, n2));
    for (k, e) in expected.iter().enumerate() {
        assert_eq!(run.f.index_axis(ndarray::Axis(0), k), e);
    }
    assert_eq!(run.t, vec![0.0, 0.5, 1.0]);
    assert_eq!(run.grid.v_range, [-0.3 / 0.1, 0.5 / 0.1, -0.4 / 0.1, 0.4 / 0.1]);
}
