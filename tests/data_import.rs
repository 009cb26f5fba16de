//! Importing the reference layout (NNNNNN.npy + args.yaml): exact round trip, times, parameters,
//! and one-line errors naming the file and key.

use colop::data::{import_npy_folder, read_run, RunFile};
use ndarray::{Array2, Axis};
use ndarray_npy::write_npy;
use std::path::{Path, PathBuf};

const ARGS: &str = "dt: 0.25\ni_start: 0\ni_end: -1\nv_range: [-5.0, 5.0, -3.0, 3.0]\nv_range_units: v_th\n\
n_bins: [6, 4]\nppc: 400\nv_th: 0.05\nshape: quadratic\nseed: 7\nflag: true\n";

/// A histogram with values that only an exact copy reproduces.
fn histogram(index: usize, nx: usize, ny: usize) -> Array2<f64> {
    Array2::from_shape_fn((nx, ny), |(i, j)| ((index * 97 + i * 13 + j) as f64).sqrt() * 3.3 + (i as f64) * 1e-9)
}

fn make_folder(root: &Path, name: &str, indices: impl IntoIterator<Item = usize>, args: &str) -> PathBuf {
    let folder = root.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("args.yaml"), args).unwrap();
    for i in indices {
        write_npy(folder.join(format!("{i:06}.npy")), &histogram(i, 6, 4)).unwrap();
    }
    folder
}

fn import_err(folder: &Path, out: &Path) -> String {
    let msg = import_npy_folder(folder, out).unwrap_err().to_string();
    assert!(!msg.contains('\n'), "{msg}");
    msg
}

#[test]
fn round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let folder = make_folder(dir.path(), "run_a", 5..17, ARGS);
    std::fs::write(folder.join("notes.txt"), "ignored").unwrap();
    write_npy(folder.join("f_extra.npy"), &histogram(0, 6, 4)).unwrap(); // not NNNNNN.npy: ignored
                                                                         // A Fortran-ordered file (numpy's fortran_order: True) holds the same logical array.
    let fortran = histogram(9, 6, 4).reversed_axes().as_standard_layout().reversed_axes().to_owned();
    assert!(!fortran.is_standard_layout() && fortran == histogram(9, 6, 4));
    write_npy(folder.join("000009.npy"), &fortran).unwrap();
    let header = std::fs::read(folder.join("000009.npy")).unwrap();
    assert!(String::from_utf8_lossy(&header[..128]).contains("'fortran_order': True"));
    let out_dir = dir.path().join("out");
    let out = import_npy_folder(&folder, &out_dir).unwrap();
    assert_eq!(out, out_dir.join("run_a.h5"));

    let run = read_run(&out).unwrap();
    assert_eq!(run.f.dim(), (12, 6, 4));
    for (k, snap) in run.f.axis_iter(Axis(0)).enumerate() {
        let expected: Array2<f64> = ndarray_npy::read_npy(folder.join(format!("{:06}.npy", k + 5))).unwrap();
        assert_eq!(snap, expected, "snapshot {k} differs from its .npy file");
    }
    assert_eq!(run.t, (5..17).map(|i| i as f64 * 0.25).collect::<Vec<_>>());
    assert_eq!(run.dt, 0.25);
    assert_eq!(run.grid.v_range, [-5.0, 5.0, -3.0, 3.0]);
    assert_eq!(run.grid.units, "v_th");
    assert_eq!((run.grid.nx, run.grid.ny), (6, 4));
    assert_eq!(run.n_particles, colop::data::particle_count(run.f.index_axis(Axis(0), 0)));
    // Numeric scalars only; layout keys, strings and booleans stay out.
    let params: Vec<(&str, f64)> = run.params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(params, vec![("ppc", 400.0), ("seed", 7.0), ("v_th", 0.05)]);

    // The run's own numbering starts at 5, so i_start = 5 is its first snapshot.
    let file = RunFile::open(&out).unwrap();
    assert_eq!(file.meta.first_index(5), Some(0));
    assert_eq!(file.meta.first_index(6), Some(1));
}

#[test]
fn index_range_from_args_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let args = ARGS.replace("i_start: 0", "i_start: 3").replace("i_end: -1", "i_end: 8");
    let folder = make_folder(dir.path(), "ranged", 0..12, &args);
    let run = read_run(&import_npy_folder(&folder, dir.path()).unwrap()).unwrap();
    assert_eq!(run.t, (3..=8).map(|i| i as f64 * 0.25).collect::<Vec<_>>());
    assert_eq!(run.f.index_axis(Axis(0), 0), histogram(3, 6, 4));
    // A square grid given as one number.
    let args = ARGS.replace("n_bins: [6, 4]", "n_bins: 6");
    let folder = make_folder(dir.path(), "square", 0..3, &args);
    let msg = import_err(&folder, dir.path());
    assert!(msg.contains("000000.npy") && msg.contains("shape [6, 4] differs from n_bins = [6, 6]"), "{msg}");
}

#[test]
fn gaps_and_bad_folders_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out");
    let folder = make_folder(d, "gap", (5..9).chain(10..12), ARGS);
    let msg = import_err(&folder, &out);
    assert!(msg.contains("gap") && msg.contains("000009.npy is missing between 000008.npy and 000010.npy"), "{msg}");

    let folder = make_folder(d, "single", 5..6, ARGS);
    assert!(import_err(&folder, &out).contains("only 1 snapshot file"));
    let folder = make_folder(d, "none", 0..0, ARGS);
    assert!(import_err(&folder, &out).contains("no NNNNNN.npy files"));
    assert!(import_err(&d.join("absent"), &out).contains("not a folder"));

    // Bad histograms: wrong dtype, wrong rank, negative, NaN, not .npy at all.
    let folder = make_folder(d, "int", 0..3, ARGS);
    write_npy(folder.join("000001.npy"), &Array2::<i64>::zeros((6, 4))).unwrap();
    let msg = import_err(&folder, &out);
    assert!(msg.contains("000001.npy") && msg.contains("cannot read as a 2-D float64"), "{msg}");
    let folder = make_folder(d, "rank1", 0..3, ARGS);
    write_npy(folder.join("000002.npy"), &ndarray::Array1::<f64>::zeros(24)).unwrap();
    assert!(import_err(&folder, &out).contains("000002.npy"));
    let folder = make_folder(d, "negative", 0..3, ARGS);
    let mut h = histogram(1, 6, 4);
    h[[2, 3]] = -1.0;
    write_npy(folder.join("000001.npy"), &h).unwrap();
    assert!(import_err(&folder, &out).contains("000001.npy: cell (2, 3) = -1 must be finite and ≥ 0"));
    let folder = make_folder(d, "nan", 0..3, ARGS);
    h[[2, 3]] = f64::NAN;
    write_npy(folder.join("000001.npy"), &h).unwrap();
    assert!(import_err(&folder, &out).contains("cell (2, 3) = NaN"));
    let folder = make_folder(d, "garbage", 0..3, ARGS);
    std::fs::write(folder.join("000001.npy"), b"\x93NUMPY garbage").unwrap();
    assert!(import_err(&folder, &out).contains("000001.npy"));
    let folder = make_folder(d, "empty_first", 0..3, ARGS);
    write_npy(folder.join("000000.npy"), &Array2::<f64>::zeros((6, 4))).unwrap();
    assert!(import_err(&folder, &out).contains("first snapshot is empty"));

    // Nothing half-written.
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
}

#[test]
fn args_yaml_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("dt: 0.25\n", "", "key dt: missing"),
        ("dt: 0.25", "dt: -1.0", "key dt: -1 must be finite and > 0"),
        ("dt: 0.25", "dt: fast", "key dt: expected a number, found fast"),
        ("i_start: 0", "i_start: -2", "key i_start: -2 must be ≥ 0"),
        ("i_start: 0", "i_start: 1.5", "key i_start: expected an integer"),
        ("i_end: -1", "i_end: -5", "key i_end: -5 must be -1 (all)"),
        ("v_range: [-5.0, 5.0, -3.0, 3.0]", "v_range: [-5.0, 5.0, -3.0]", "key v_range: has 3 values"),
        ("v_range: [-5.0, 5.0, -3.0, 3.0]", "v_range: [5.0, -5.0, -3.0, 3.0]", "key v_range/n_bins: v_range"),
        ("v_range: [-5.0, 5.0, -3.0, 3.0]", "v_range: 5", "key v_range: expected [xmin, xmax, ymin, ymax"),
        ("v_range_units: v_th", "v_range_units: [1]", "key v_range_units: expected a string"),
        ("n_bins: [6, 4]", "n_bins: [6, 4, 2]", "key n_bins: has 3 values"),
        ("n_bins: [6, 4]", "n_bins: [2, 2]", "key v_range/n_bins: grid needs at least 4×4"),
        ("ppc: 400", "ppc: .nan", "key ppc: NaN is not finite"),
        ("dt: 0.25", "dt: [0.25", "not valid YAML"),
    ];
    for (i, (from, to, expect)) in cases.iter().enumerate() {
        let folder = make_folder(dir.path(), &format!("case{i}"), 0..3, &ARGS.replace(from, to));
        let msg = import_err(&folder, dir.path());
        assert!(msg.contains("args.yaml") && msg.contains(expect), "case {i}: {msg:?} lacks {expect:?}");
    }
    let folder = make_folder(dir.path(), "list", 0..3, "- 1\n- 2\n");
    assert!(import_err(&folder, dir.path()).contains("expected a mapping"));
    let folder = dir.path().join("no_args");
    std::fs::create_dir(&folder).unwrap();
    assert!(import_err(&folder, dir.path()).contains("args.yaml"));
}

#[test]
fn command_line_imports_several_folders() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_folder(dir.path(), "a", 5..8, ARGS);
    let b = make_folder(dir.path(), "b", 0..4, ARGS);
    let out = dir.path().join("h5");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_colop"))
        .args(["-q", "import", "npy-folder"])
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert_eq!(read_run(&out.join("a.h5")).unwrap().t.len(), 3);
    assert_eq!(read_run(&out.join("b.h5")).unwrap().t.len(), 4);

    let bad = make_folder(dir.path(), "bad", 0..1, ARGS);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_colop"))
        .args(["-q", "import", "npy-folder"])
        .arg(&bad)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!status.status.success());
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("only 1 snapshot file"), "{stderr}");
    assert!(!out.join("bad.h5").exists());
}
