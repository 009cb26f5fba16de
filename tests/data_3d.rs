//! Three-dimensional velocity space in the data layer: run files with `/f [T, Nx, Ny, Nz]` and a
//! 6-value `v_range` (written, read back bitwise, read by hyperslab, validated with errors that
//! name the cell by three indices), 3-D `.npy` folders, and 3-D operators in model files and
//! `import operator` arrays.

use colop::data::{import_npy_folder, read_run, write_run, RunData, RunFile};
use colop::grid::VelocityGrid;
use ndarray::{Array3, Array4, ArrayD, Axis};
use std::collections::BTreeMap;

fn grid() -> VelocityGrid {
    VelocityGrid::new3(5, 4, 6, [-2.0, 2.0, -1.5, 1.5, -3.0, 3.0], "v_th").unwrap()
}

/// Values only an exact copy reproduces, as `[T, Nx, Ny, Nz]`.
fn histograms(n_t: usize) -> Array4<f64> {
    Array4::from_shape_fn((n_t, 5, 4, 6), |(t, i, j, k)| ((t * 131 + i * 31 + j * 7 + k) as f64).sqrt() * 1.7 + 0.5)
}

fn run(n_t: usize) -> RunData {
    let f4 = histograms(n_t);
    let f = f4.into_shape_with_order((n_t, 5, 24)).unwrap();
    RunData {
        grid: grid(),
        n_particles: f.index_axis(Axis(0), 0).sum(),
        f,
        t: (0..n_t).map(|k| k as f64 * 0.5).collect(),
        dt: 0.5,
        params: BTreeMap::from([("ppc".to_string(), 64.0)]),
        labels: BTreeMap::new(),
        tracks: Some(Array3::from_shape_fn((n_t, 7, 3), |(a, b, c)| (a + b) as f64 * 0.1 - c as f64)),
        diagnostics: BTreeMap::new(),
    }
}

#[test]
fn a_3d_run_file_round_trips_bitwise_and_reads_by_hyperslab() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run3.h5");
    let data = run(6);
    write_run(&path, &data).unwrap();
    // On disk: the grid's axes, a 6-value v_range, one snapshot per chunk.
    let h = hdf5::File::open(&path).unwrap();
    assert_eq!(h.dataset("f").unwrap().shape(), vec![6, 5, 4, 6]);
    assert_eq!(h.dataset("f").unwrap().chunk(), Some(vec![1, 5, 4, 6]));
    let on_disk: Array4<f64> = h.dataset("f").unwrap().read().unwrap();
    assert_eq!(on_disk, histograms(6));
    assert_eq!(h.attr("v_range").unwrap().read_raw::<f64>().unwrap(), vec![-2.0, 2.0, -1.5, 1.5, -3.0, 3.0]);
    drop(h);
    let back = read_run(&path).unwrap();
    assert_eq!(back.grid, data.grid);
    assert_eq!(back.f, data.f);
    assert_eq!(back.tracks, data.tracks);
    let file = RunFile::open(&path).unwrap();
    let slab = file.read_snapshots(2..5).unwrap();
    assert_eq!(slab, data.f.slice(ndarray::s![2..5, .., ..]));
}

#[test]
fn bad_3d_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.h5");
    let mut data = run(4);
    // Cell (3, 2, 5) of snapshot 2 in the flattened layout.
    data.f[[2, 3, 2 * 6 + 5]] = -1.0;
    let msg = write_run(&path, &data).unwrap_err().to_string();
    assert!(msg.contains("snapshot 2") && msg.contains("cell (3, 2, 5)") && msg.contains("negative"), "{msg}");
    // Tracks of a 3-D run have three components.
    let mut data = run(4);
    data.tracks = Some(Array3::zeros((4, 7, 2)));
    let msg = write_run(&path, &data).unwrap_err().to_string();
    assert!(msg.contains("/tracks") && msg.contains("expected [n_dumps, n_tracked, 3]"), "{msg}");
    // A 4-D /f with a 4-value v_range.
    write_run(&path, &run(4)).unwrap();
    {
        let h = hdf5::File::open_rw(&path).unwrap();
        h.delete_attr("v_range").unwrap();
        h.new_attr_builder().with_data(&[-1.0, 1.0, -1.0, 1.0]).create("v_range").unwrap();
    }
    let msg = RunFile::open(&path).unwrap_err().to_string();
    assert!(msg.contains("v_range") && msg.contains("expected 6 for a 3-D grid") && !msg.contains('\n'), "{msg}");
}

#[test]
fn a_3d_npy_folder_imports_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("cube");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("args.yaml"),
        "dt: 0.5\ni_start: 0\ni_end: -1\nv_range: [-2, 2, -1.5, 1.5, -3, 3]\nv_range_units: v_th\nn_bins: [5, 4, 6]\nppc: 9\n",
    )
    .unwrap();
    let h = histograms(3);
    for k in 0..3 {
        ndarray_npy::write_npy(folder.join(format!("{k:06}.npy")), &h.index_axis(Axis(0), k).to_owned()).unwrap();
    }
    let out = import_npy_folder(&folder, &dir.path().join("out")).unwrap();
    let back = read_run(&out).unwrap();
    assert_eq!(back.grid, grid());
    assert_eq!(back.f.clone().into_shape_with_order((3, 5, 4, 6)).unwrap(), h);
    // A 2-D histogram in a 3-D folder names the shapes.
    ndarray_npy::write_npy(folder.join("000003.npy"), &ndarray::Array2::<f64>::zeros((5, 4))).unwrap();
    let msg = import_npy_folder(&folder, &dir.path().join("out2")).unwrap_err().to_string();
    assert!(msg.contains("000003.npy"), "{msg}");
    // n_bins must have three values when v_range has six.
    std::fs::remove_file(folder.join("000003.npy")).unwrap();
    std::fs::write(
        folder.join("args.yaml"),
        "dt: 0.5\ni_start: 0\ni_end: -1\nv_range: [-2, 2, -1.5, 1.5, -3, 3]\nv_range_units: v_th\nn_bins: [5, 4]\n",
    )
    .unwrap();
    let msg = import_npy_folder(&folder, &dir.path().join("out3")).unwrap_err().to_string();
    assert!(msg.contains("n_bins") && msg.contains("[nx, ny, nz]"), "{msg}");
}

#[test]
fn a_3d_operator_round_trips_through_a_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let g = grid();
    let dv = [0.8, 0.75, 1.0];
    // Grid-unit arrays in the reference order: A x, y, z; D xx, yy, zz, xy, xz, yz.
    let a = ArrayD::from_shape_fn(vec![3, 5, 4, 6], |ix| (ix[0] + 1) as f64 * 0.01 * (1 + ix[1] + ix[3]) as f64);
    let d = ArrayD::from_shape_fn(vec![6, 5, 4, 6], |ix| (ix[0] + 1) as f64 * 0.02 + ix[2] as f64 * 1e-3);
    let a_path = dir.path().join("A.npy");
    let d_path = dir.path().join("D.npy");
    ndarray_npy::write_npy(&a_path, &a).unwrap();
    ndarray_npy::write_npy(&d_path, &d).unwrap();
    let like = dir.path().join("like.h5");
    write_run(&like, &run(2)).unwrap();
    let model = colop::model_file::import::import_operator(&a_path, &d_path, &like).unwrap();
    assert_eq!(model.fields.shape(), &[9, 5, 24]);
    // D_xz (field 7) = D̂_xz · Δv_x Δv_z at cell (1, 2, 3).
    let c = 2 * 6 + 3;
    assert_eq!(model.fields[[7, 1, c]], d[[4, 1, 2, 3]] * dv[0] * dv[2]);
    assert_eq!(model.fields[[2, 1, c]], a[[2, 1, 2, 3]] * dv[2]);
    let path = dir.path().join("model.h5");
    colop::model_file::write_model(&path, &model).unwrap();
    let h = hdf5::File::open(&path).unwrap();
    assert_eq!(h.dataset("A").unwrap().shape(), vec![3, 5, 4, 6]);
    assert_eq!(h.dataset("D").unwrap().shape(), vec![6, 5, 4, 6]);
    drop(h);
    let back = colop::model_file::read_model(&path).unwrap();
    assert_eq!(back.grid, g);
    assert_eq!(back.fields, model.fields);
}
