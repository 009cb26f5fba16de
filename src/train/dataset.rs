//! The training view of run files: metadata of every run and the normalised snapshot rows a
//! rank holds. Windows, splits, batches and shards come from [`crate::data::windows`].

use crate::data::{normalise, RunFile};
use crate::grid::VelocityGrid;
use crate::train::engine::RunSlice;
use std::collections::BTreeMap;
use std::path::Path;

/// A run used in training or evaluation: its validated file and first used row.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub file: RunFile,
    /// First row used (first with round(t/dt) ≥ i_start).
    pub first_row: usize,
    pub i_start: usize,
}

impl RunInfo {
    pub fn open(path: &Path, i_start: usize) -> anyhow::Result<Self> {
        let file = RunFile::open(path)?;
        let first_row = file.first_index_checked(i_start)?;
        Ok(Self { file, first_row, i_start })
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
    /// Read rows `range` as one hyperslab, normalised by the particle count of `first_row`.
    pub fn read_slice(&self, range: std::ops::Range<usize>, ctx: usize) -> anyhow::Result<RunSlice> {
        let norm = self.file.normalisation(self.i_start)?;
        let mut f = self.file.read_snapshots(range.clone())?;
        normalise(&mut f, norm);
        Ok(RunSlice { first: range.start, f, t: self.t().to_vec(), dt: self.dt(), ctx })
    }
}

/// Block size of the exact reduction for a batch of `n` samples with an accumulator of
/// `acc_len` values: depends on these only (never on the rank count), so the reduction is the
/// same for every layout. Small accumulators (θ-level models such as par-perp) are cheap to add
/// exactly: one block per sample, perfect balance over ranks. Large ones (field-level, e.g. a
/// 51×51 tensor: 13 006 values, ~45 µs an addition) sum ⌈n/16⌉ samples in f64 first; at least 16
/// blocks leave work for 16 ranks, and ranks beyond the number of blocks idle.
pub fn block_size(n: usize, acc_len: usize) -> usize {
    if acc_len <= 4096 {
        1
    } else {
        (n / 16).clamp(1, 64)
    }
}
