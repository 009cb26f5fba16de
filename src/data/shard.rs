//! The data a rank trains or evaluates on: the runs as used ([`Run`]: validated file, first used
//! snapshot, normalisation) and the snapshots its samples need ([`ShardData`]: one normalised
//! hyperslab per run, so memory scales with the shard and not with the campaign). Training,
//! evaluation and benchmarks all load data through this one stack.

use super::windows::{snapshot_ranges, Sample};
use super::{normalise, DataError, RunFile};
use ndarray::{s, Array3, ArrayView3};
use crate::grid::VelocityGrid;
use std::collections::BTreeMap;
use std::path::Path;

/// Per-run normalisations ([`RunFile::normalisation`]) of `files`, in order.
pub fn normalisations(files: &[RunFile], i_start: usize) -> Result<Vec<f64>, DataError> {
    files.iter().map(|f| f.normalisation(i_start)).collect()
}

/// A run file as used from snapshot number `i_start` on: its validated metadata, the row of its
/// first used snapshot and its normalisation (the particle count there).
#[derive(Clone, Debug)]
pub struct Run {
    pub file: RunFile,
    /// First row used (first with round(t/dt) ≥ i_start).
    pub first_row: usize,
    pub i_start: usize,
    /// Σf of the first used snapshot: every snapshot of the run is divided by it.
    pub norm: f64,
}

impl Run {
    /// Open `path` (metadata and the first used snapshot only).
    pub fn open(path: &Path, i_start: usize) -> Result<Self, DataError> {
        let file = RunFile::open(path)?;
        let first_row = file.first_index_checked(i_start)?;
        let norm = file.normalisation(i_start)?;
        Ok(Self { file, first_row, i_start, norm })
    }
    pub fn path(&self) -> &Path {
        self.file.path()
    }
    pub fn grid(&self) -> &VelocityGrid {
        &self.file.meta.grid
    }
    pub fn t(&self) -> &[f64] {
        &self.file.meta.t
    }
    pub fn dt(&self) -> f64 {
        self.file.meta.dt
    }
    /// The snapshot spacing (`dt`, or each interval's length if uneven).
    pub fn spacing(&self) -> super::Spacing {
        self.file.meta.spacing()
    }
    pub fn params(&self) -> &BTreeMap<String, f64> {
        &self.file.meta.params
    }
    pub fn rows(&self) -> usize {
        self.file.meta.n_snapshots()
    }
    /// Snapshot intervals available from `first_row` to the end.
    pub fn usable_intervals(&self) -> usize {
        self.rows() - 1 - self.first_row
    }
    /// Time since the run's first snapshot at the middle of interval `row → row + 1`: where
    /// time-dependent models are evaluated for that interval.
    pub fn t_mid(&self, row: usize) -> f64 {
        let t = self.t();
        0.5 * (t[row] + t[row + 1]) - t[0]
    }
}

/// Open every run (metadata and normalisation) and check that all share one grid — the single
/// place where runs used together are checked for compatibility.
pub fn open_runs_from<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>, i_start: usize) -> Result<Vec<Run>, DataError> {
    let runs = paths.into_iter().map(|p| Run::open(p.as_ref(), i_start)).collect::<Result<Vec<_>, _>>()?;
    let files: Vec<RunFile> = runs.iter().map(|r| r.file.clone()).collect();
    super::check_compatible(&files)?;
    Ok(runs)
}

/// Normalised snapshots of the runs a set of samples touches.
#[derive(Clone, Debug, Default)]
pub struct ShardData {
    /// Run index → (index of the first snapshot held, snapshots `[len, Nx, Ny]`).
    slabs: BTreeMap<usize, (usize, Array3<f64>)>,
}

impl ShardData {
    /// Read, for every run `samples` touch, the contiguous snapshot range they need (one
    /// hyperslab per run) and divide it by that run's normalisation `norms[run]`.
    pub fn load(files: &[RunFile], samples: &[Sample], norms: &[f64]) -> Result<Self, DataError> {
        let mut slabs = BTreeMap::new();
        for (run, range) in snapshot_ranges(samples) {
            let (Some(file), Some(&norm)) = (files.get(run), norms.get(run)) else {
                return Err(DataError::Invalid {
                    path: format!("run {run}"),
                    msg: format!(
                        "sample refers to run {run} but only {} files / {} norms are given",
                        files.len(),
                        norms.len()
                    ),
                });
            };
            let mut f = file.read_snapshots(range.clone())?;
            normalise(&mut f, norm);
            slabs.insert(run, (range.start, f));
        }
        Ok(Self { slabs })
    }

    /// The snapshots of `sample`, `[intervals + 1, Nx, Ny]`: its initial state then its targets.
    /// `None` if the sample was not among those loaded.
    pub fn window(&self, sample: &Sample) -> Option<ArrayView3<'_, f64>> {
        let (first, f) = self.slabs.get(&sample.run)?;
        let start = sample.start.checked_sub(*first)?;
        let end = start + sample.intervals + 1;
        (end <= f.len_of(ndarray::Axis(0))).then(|| f.slice(s![start..end, .., ..]))
    }

    /// Snapshot `row` (index into the run's `/t`) of run `run`, flattened in C order, if held.
    pub fn snapshot(&self, run: usize, row: usize) -> Option<&[f64]> {
        let (first, f) = self.slabs.get(&run)?;
        let i = row.checked_sub(*first)?;
        let n = f.shape()[1] * f.shape()[2];
        f.as_slice()?.get(i * n..(i + 1) * n)
    }

    /// [`ShardData::load`] for used runs: each run's own normalisation.
    pub fn load_runs(runs: &[Run], samples: &[Sample]) -> Result<Self, DataError> {
        let files: Vec<RunFile> = runs.iter().map(|r| r.file.clone()).collect();
        let norms: Vec<f64> = runs.iter().map(|r| r.norm).collect();
        Self::load(&files, samples, &norms)
    }

    /// Bytes of snapshot data held.
    pub fn bytes(&self) -> usize {
        self.slabs.values().map(|(_, f)| f.len() * std::mem::size_of::<f64>()).sum()
    }
}
