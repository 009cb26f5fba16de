//! The snapshots one rank's samples need, held in memory: one normalised hyperslab per run, so
//! memory scales with the shard and not with the campaign.

use super::windows::{snapshot_ranges, Sample};
use super::{normalise, DataError, RunFile};
use ndarray::{s, Array3, ArrayView3};
use std::collections::BTreeMap;

/// Per-run normalisations ([`RunFile::normalisation`]) of `files`, in order.
pub fn normalisations(files: &[RunFile], i_start: usize) -> Result<Vec<f64>, DataError> {
    files.iter().map(|f| f.normalisation(i_start)).collect()
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

    /// Bytes of snapshot data held.
    pub fn bytes(&self) -> usize {
        self.slabs.values().map(|(_, f)| f.len() * std::mem::size_of::<f64>()).sum()
    }
}
