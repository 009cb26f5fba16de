//! Run-file format: exact round trips, hyperslab reads, and a clear one-line error (never a panic)
//! for every kind of bad file.

use colop::data::{check_compatible, read_run, write_run, RunData, RunFile};
use colop::grid::VelocityGrid;
use hdf5::types::{FixedAscii, VarLenUnicode};
use ndarray::{s, Array1, Array3};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DT: f64 = 0.5;

/// A valid run: `n_t` snapshots at t = (5 + k)·dt on an nx×ny grid, values not exactly representable
/// in decimal so a lossy path would show.
fn good_run(n_t: usize, nx: usize, ny: usize) -> RunData {
    let grid = VelocityGrid::new(nx, ny, [-5.0, 5.0, -4.0, 4.0], "v_th").unwrap();
    let f = Array3::from_shape_fn((n_t, nx, ny), |(k, i, j)| ((k * 31 + i * 7 + j * 3) as f64 / 3.0).sqrt() * 17.1);
    let params = BTreeMap::from([("ppc".to_string(), 100.0), ("v_th".to_string(), 0.05)]);
    let tracks = Array3::from_shape_fn((n_t, 3, 2), |(a, b, c)| (a + 2 * b) as f64 * 0.1 - c as f64);
    let diagnostics = BTreeMap::from([("energy_total".to_string(), Array1::linspace(1.0, 1.1, n_t))]);
    RunData {
        grid,
        t: (0..n_t).map(|k| (5 + k) as f64 * DT).collect(),
        n_particles: f.slice(s![0, .., ..]).sum(),
        f,
        dt: DT,
        params,
        tracks: Some(tracks),
        diagnostics,
        labels: BTreeMap::from([("software".to_string(), "colop-test".to_string())]),
    }
}

fn write_good(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    write_run(&path, &good_run(10, 6, 5)).unwrap();
    path
}

/// Edit a file in place with the raw HDF5 API (to make files the writer would refuse).
fn edit(path: &Path, change: impl FnOnce(&hdf5::File) -> hdf5::Result<()>) {
    let file = hdf5::File::open_rw(path).unwrap();
    change(&file).unwrap();
    file.flush().unwrap();
}

fn replace_attr_f64(file: &hdf5::File, name: &str, values: &[f64]) -> hdf5::Result<()> {
    file.delete_attr(name)?;
    if values.len() == 1 {
        file.new_attr::<f64>().shape(()).create(name)?.write_scalar(&values[0])
    } else {
        file.new_attr_builder().with_data(values).create(name).map(|_| ())
    }
}

fn replace_dataset(file: &hdf5::File, name: &str, data: ndarray::ArrayViewD<f64>) -> hdf5::Result<()> {
    file.unlink(name)?;
    file.new_dataset_builder().with_data(data).create(name).map(|_| ())
}

/// The error of opening `path` (and, if opening works, of reading all snapshots): one line,
/// naming the file and containing `expect`.
fn assert_error(path: &Path, expect: &str) {
    let err = match RunFile::open(path) {
        Err(e) => e,
        Ok(file) => match file.read_snapshots(0..file.meta.n_snapshots()) {
            Err(e) => e,
            Ok(_) => panic!("{} was accepted; expected an error containing {expect:?}", path.display()),
        },
    };
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "multi-line error: {msg}");
    assert!(msg.contains(&path.display().to_string()), "error does not name the file: {msg}");
    assert!(msg.contains(expect), "error {msg:?} does not contain {expect:?}");
    assert!(read_run(path).is_err());
}

#[test]
fn round_trip_is_exact_and_leaves_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("run.h5");
    let run = good_run(12, 7, 5);
    write_run(&path, &run).unwrap();
    let back = read_run(&path).unwrap();
    assert_eq!(back.grid, run.grid);
    assert_eq!(back.f, run.f); // bitwise: f64 equality on every value
    assert_eq!(back.t, run.t);
    assert_eq!(back.dt.to_bits(), run.dt.to_bits());
    assert_eq!(back.n_particles.to_bits(), run.n_particles.to_bits());
    assert_eq!(back.params, run.params);
    assert_eq!(back.labels, run.labels);
    assert_eq!(back.tracks, run.tracks);
    assert_eq!(back.diagnostics, run.diagnostics);
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("run.h5")]);

    // One snapshot per chunk, as the schema promises.
    let file = hdf5::File::open(&path).unwrap();
    assert_eq!(file.dataset("f").unwrap().chunk(), Some(vec![1, 7, 5]));

    // Overwriting replaces the file atomically.
    let mut other = good_run(3, 7, 5);
    other.tracks = None;
    other.diagnostics.clear();
    write_run(&path, &other).unwrap();
    let back = read_run(&path).unwrap();
    assert_eq!(back.f, other.f);
    assert!(back.tracks.is_none() && back.diagnostics.is_empty());
}

#[test]
fn metadata_and_hyperslabs() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_good(dir.path(), "a.h5");
    let run = good_run(10, 6, 5);
    let file = RunFile::open(&path).unwrap();
    assert_eq!(file.meta.name, "a");
    assert_eq!(file.meta.n_snapshots(), 10);
    assert_eq!(file.meta.snapshot_number(0), 5);
    assert_eq!(file.meta.first_index(0), Some(0));
    assert_eq!(file.meta.first_index(5), Some(0));
    assert_eq!(file.meta.first_index(7), Some(2));
    assert_eq!(file.meta.first_index(15), None);
    assert_eq!(file.read_snapshots(2..5).unwrap(), run.f.slice(s![2..5, .., ..]));
    assert_eq!(file.read_snapshot(9).unwrap(), run.f.slice(s![9, .., ..]));
    assert_eq!(file.read_snapshots(4..4).unwrap().dim(), (0, 6, 5));
    let err = file.read_snapshots(8..11).unwrap_err().to_string();
    assert!(err.contains("outside 0..10") && err.contains("/f"), "{err}");

    // Normalisation: Σ of the first used snapshot, the same function the trainer uses.
    let norm = file.normalisation(7).unwrap();
    assert_eq!(norm, colop::data::particle_count(run.f.slice(s![2, .., ..])));
    let mut window = file.read_snapshots(2..4).unwrap();
    colop::data::normalise(&mut window, norm);
    assert!((window.slice(s![0, .., ..]).sum() - 1.0).abs() < 1e-14);
    assert!(file.normalisation(20).unwrap_err().to_string().contains("i_start = 20"));
}

#[test]
fn bad_values_are_found_where_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_good(dir.path(), "nan.h5");
    edit(&path, |file| {
        let ds = file.dataset("f")?;
        ds.write_slice(&ndarray::arr1(&[f64::NAN]), s![7, 3, 2..3])
    });
    let file = RunFile::open(&path).unwrap(); // metadata only: fine
    assert!(file.read_snapshots(0..7).is_ok()); // does not touch snapshot 7
    let err = file.read_snapshots(5..9).unwrap_err().to_string();
    assert!(
        err.contains("/f") && err.contains("snapshot 7") && err.contains("(3, 2)") && err.contains("not finite"),
        "{err}"
    );
    assert_error(&path, "snapshot 7");

    let path = write_good(dir.path(), "negative.h5");
    edit(&path, |file| file.dataset("f")?.write_slice(&ndarray::arr1(&[-1.0]), s![4, 0, 1..2]));
    assert_error(&path, "snapshot 4 (t = 4.5): cell (0, 1) = -1 is negative");
}

#[test]
fn every_bad_file_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    type Edit = Box<dyn FnOnce(&hdf5::File) -> hdf5::Result<()>>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("no_f", Box::new(|h| h.unlink("f")), "/f: missing dataset"),
        (
            "f_rank2",
            Box::new(|h| replace_dataset(h, "f", ndarray::Array2::<f64>::zeros((4, 4)).into_dyn().view())),
            "/f: rank 2",
        ),
        ("no_t", Box::new(|h| h.unlink("t")), "/t: missing dataset"),
        (
            "t_short",
            Box::new(|h| replace_dataset(h, "t", Array1::linspace(2.5, 6.5, 9).into_dyn().view())),
            "/t: has 9 times but /f has 10",
        ),
        (
            "t_decreasing",
            Box::new(|h| h.dataset("t")?.write_slice(&ndarray::arr1(&[3.0]), s![4..5])),
            "/t: not increasing at snapshot 4",
        ),
        (
            "t_nan",
            Box::new(|h| h.dataset("t")?.write_slice(&ndarray::arr1(&[f64::NAN]), s![3..4])),
            "/t: time 3 is NaN",
        ),
        ("dt_zero", Box::new(|h| replace_attr_f64(h, "dt", &[0.0])), "attribute dt: 0 must be finite and > 0"),
        ("dt_nan", Box::new(|h| replace_attr_f64(h, "dt", &[f64::NAN])), "attribute dt: NaN"),
        ("dt_missing", Box::new(|h| h.delete_attr("dt")), "attribute dt: missing attribute"),
        ("dt_vector", Box::new(|h| replace_attr_f64(h, "dt", &[0.5, 0.5])), "attribute dt: has 2 values"),
        (
            "dt_string",
            Box::new(|h| {
                h.delete_attr("dt")?;
                let s: VarLenUnicode = "half".parse().unwrap();
                h.new_attr::<VarLenUnicode>().shape(()).create("dt")?.write_scalar(&s)
            }),
            "attribute dt: type string is not numeric",
        ),
        ("n_missing", Box::new(|h| h.delete_attr("n_particles")), "attribute n_particles: missing"),
        ("n_negative", Box::new(|h| replace_attr_f64(h, "n_particles", &[-3.0])), "attribute n_particles: -3"),
        (
            "vr_short",
            Box::new(|h| replace_attr_f64(h, "v_range", &[-5.0, 5.0, -4.0])),
            "attribute v_range: has 3 values",
        ),
        (
            "vr_reversed",
            Box::new(|h| replace_attr_f64(h, "v_range", &[5.0, -5.0, -4.0, 4.0])),
            "attribute v_range: [5.0, -5.0",
        ),
        (
            "vr_inf",
            Box::new(|h| replace_attr_f64(h, "v_range", &[-5.0, f64::INFINITY, -4.0, 4.0])),
            "attribute v_range",
        ),
        ("units_missing", Box::new(|h| h.delete_attr("units")), "attribute units: missing"),
        (
            "units_number",
            Box::new(|h| {
                h.delete_attr("units")?;
                h.new_attr::<f64>().shape(()).create("units")?.write_scalar(&1.0)
            }),
            "attribute units: type float64 is not a string",
        ),
        (
            "one_snapshot",
            Box::new(|h| {
                replace_dataset(h, "f", Array3::<f64>::ones((1, 6, 5)).into_dyn().view())?;
                replace_dataset(h, "t", ndarray::arr1(&[2.5]).into_dyn().view())
            }),
            "/t: 1 snapshot(s); at least 2",
        ),
        (
            "grid_3x3",
            Box::new(|h| replace_dataset(h, "f", Array3::<f64>::ones((10, 3, 3)).into_dyn().view())),
            "/f: grid needs at least 4×4 cells, got 3×3",
        ),
        (
            "f_strings",
            Box::new(|h| {
                h.unlink("f")?;
                let s: FixedAscii<8> = FixedAscii::from_ascii("abc").unwrap();
                h.new_dataset_builder().with_data(&Array3::from_elem((10, 6, 5), s)).create("f").map(|_| ())
            }),
            "/f: type string (8 bytes) is not numeric (expected float64)",
        ),
        (
            "param_nan",
            Box::new(|h| h.group("params")?.new_attr::<f64>().shape(()).create("ppc2")?.write_scalar(&f64::NAN)),
            "/params/ppc2: NaN is not finite",
        ),
        (
            "tracks_shape",
            Box::new(|h| replace_dataset(h, "tracks", Array3::<f64>::zeros((10, 3, 3)).into_dyn().view())),
            "/tracks: shape [10, 3, 3]",
        ),
    ];
    for (name, change, expect) in cases {
        let path = write_good(d, &format!("{name}.h5"));
        edit(&path, change);
        let result = std::panic::catch_unwind(|| {
            if name == "tracks_shape" {
                let file = RunFile::open(&path).unwrap();
                let msg = file.read_tracks().unwrap_err().to_string();
                assert!(msg.contains(expect) && msg.contains(&path.display().to_string()), "{msg}");
                assert!(read_run(&path).is_err());
            } else {
                assert_error(&path, expect);
            }
        });
        assert!(result.is_ok(), "case {name} failed");
    }
}

#[test]
fn garbage_truncated_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let garbage = d.join("garbage.h5");
    std::fs::write(&garbage, (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>())
        .unwrap();
    assert_error(&garbage, "not a readable HDF5 file");
    let empty = d.join("empty.h5");
    std::fs::write(&empty, b"").unwrap();
    assert_error(&empty, "not a readable HDF5 file");
    assert_error(&d.join("absent.h5"), "No such file");
    assert_error(d, "not a file");

    // Truncate a valid file at many lengths: every one is an error, none a panic.
    let good = write_good(d, "good.h5");
    let bytes = std::fs::read(&good).unwrap();
    let len = bytes.len();
    for cut in [8, 100, 512, 1024, 2048, len / 3, len / 2, 2 * len / 3, len - 200, len - 8, len - 1] {
        let path = d.join(format!("cut{cut}.h5"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let result = RunFile::open(&path).and_then(|f| f.read_snapshots(0..f.meta.n_snapshots()));
        let err = result.expect_err(&format!("truncated at {cut} of {len} bytes was accepted"));
        let msg = err.to_string();
        assert!(!msg.contains('\n') && msg.contains(&path.display().to_string()), "{msg}");
    }
}

#[test]
fn writer_refuses_invalid_data_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.h5");
    let mut run = good_run(4, 5, 5);
    run.f[[2, 1, 1]] = f64::NAN;
    let msg = write_run(&path, &run).unwrap_err().to_string();
    assert!(msg.contains("snapshot 2") && msg.contains("bad.h5"), "{msg}");
    let mut run = good_run(4, 5, 5);
    run.t[2] = run.t[1];
    assert!(write_run(&path, &run).unwrap_err().to_string().contains("not increasing"));
    let mut run = good_run(4, 5, 5);
    run.dt = -1.0;
    assert!(write_run(&path, &run).unwrap_err().to_string().contains("dt"));
    let mut run = good_run(4, 5, 5);
    run.params.insert("a/b".into(), 1.0);
    assert!(write_run(&path, &run).unwrap_err().to_string().contains("invalid parameter name"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn h5py_style_files_are_accepted() {
    // Integer counts, integer scalars, a fixed-length ASCII units string, no /params group.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("py.h5");
    {
        let h = hdf5::File::create(&path).unwrap();
        let f = Array3::from_shape_fn((3, 4, 4), |(k, i, j)| (k + i * j) as i64);
        h.new_dataset_builder().with_data(&f).create("f").unwrap();
        h.new_dataset_builder().with_data(&[0i64, 2, 4]).create("t").unwrap();
        h.new_attr_builder().with_data(&[-2i64, 2, -2, 2]).create("v_range").unwrap();
        let units: FixedAscii<4> = FixedAscii::from_ascii("v_th").unwrap();
        h.new_attr::<FixedAscii<4>>().shape(()).create("units").unwrap().write_scalar(&units).unwrap();
        h.new_attr::<i64>().shape(()).create("dt").unwrap().write_scalar(&2).unwrap();
        h.new_attr::<i64>().shape(()).create("n_particles").unwrap().write_scalar(&4).unwrap();
    }
    let run = read_run(&path).unwrap();
    assert_eq!(run.grid, VelocityGrid::new(4, 4, [-2.0, 2.0, -2.0, 2.0], "v_th").unwrap());
    assert_eq!(run.f[[2, 3, 3]], 11.0);
    assert_eq!(run.t, vec![0.0, 2.0, 4.0]);
    assert_eq!((run.dt, run.n_particles), (2.0, 4.0));
    assert!(run.params.is_empty() && run.tracks.is_none() && run.diagnostics.is_empty());
}

#[test]
fn grids_of_runs_used_together_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_good(dir.path(), "a.h5");
    let b = write_good(dir.path(), "b.h5");
    let c = dir.path().join("c.h5");
    write_run(&c, &good_run(4, 6, 6)).unwrap();
    let files: Vec<RunFile> = [&a, &b, &c].iter().map(|p| RunFile::open(p).unwrap()).collect();
    check_compatible(&files[..2]).unwrap();
    check_compatible(&[]).unwrap();
    let msg = check_compatible(&files).unwrap_err().to_string();
    assert!(msg.starts_with(&c.display().to_string()) && msg.contains("6×6") && msg.contains("6×5"), "{msg}");
    assert!(msg.contains("a.h5"), "{msg}");
    assert_eq!(colop::data::open_runs([&a, &b]).unwrap().len(), 2);
    assert_eq!(colop::data::open_runs([&a, &b, &c]).unwrap_err().to_string(), msg);
    assert!(colop::data::open_runs([a, dir.path().join("absent.h5")]).is_err());
}

/// Unevenly spaced snapshots (a gap, a short interval) are read, flagged as uneven and give their
/// own interval lengths; string attributes of /params are labels, not parameters.
#[test]
fn uneven_times_and_string_params_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.h5");
    write_run(&path, &good_run(10, 6, 5)).unwrap();
    {
        let h = hdf5::File::open_rw(&path).unwrap();
        h.dataset("t").unwrap().write_slice(&ndarray::arr1(&[100.0]), s![9..10]).unwrap();
        h.dataset("t").unwrap().write_slice(&ndarray::arr1(&[5.1 * DT]), s![0..1]).unwrap();
        let s: VarLenUnicode = "quadratic".parse().unwrap();
        h.group("params").unwrap().new_attr::<VarLenUnicode>().shape(()).create("shape").unwrap().write_scalar(&s).unwrap();
    }
    let file = colop::data::RunFile::open(&path).unwrap();
    assert!(!file.meta.uniform);
    let colop::data::Spacing::PerInterval(steps) = file.meta.spacing() else { panic!("uneven spacing expected") };
    let t = &file.meta.t;
    assert_eq!(steps.len(), 9);
    for (k, step) in steps.iter().enumerate() {
        assert_eq!(step.to_bits(), (t[k + 1] - t[k]).to_bits());
    }
    assert_eq!(file.meta.labels.get("shape").map(String::as_str), Some("quadratic"));
    assert!(!file.meta.params.contains_key("shape"));
    // An evenly spaced file is uniform with its dt.
    write_run(&path, &good_run(10, 6, 5)).unwrap();
    let file = colop::data::RunFile::open(&path).unwrap();
    assert_eq!(file.meta.spacing(), colop::data::Spacing::Uniform(DT));
}
