//! The training view of run files: metadata of every run, windows per stage, and the normalised
//! snapshot rows a rank holds.

use crate::config::Unroll;
use crate::grid::VelocityGrid;
use crate::train::engine::{RunSlice, Sample};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Metadata of one run used in training.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub path: PathBuf,
    pub grid: VelocityGrid,
    pub t: Vec<f64>,
    pub dt: f64,
    pub params: BTreeMap<String, f64>,
    /// First row used (first with round(t/dt) ≥ i_start).
    pub first_row: usize,
}

impl RunInfo {
    pub fn open(path: &Path, i_start: usize) -> anyhow::Result<Self> {
        let rf = crate::data::RunFile::open(path)?;
        let t = rf.times().to_vec();
        let dt = rf.dt();
        let first_row = t
            .iter()
            .position(|&ti| (ti / dt).round() >= i_start as f64)
            .with_context(|| format!("{}: no snapshot at or after i_start = {i_start} (last is {})", path.display(), (t[t.len() - 1] / dt).round()))?;
        Ok(Self { path: path.to_path_buf(), grid: rf.grid().clone(), t, dt, params: rf.params().clone(), first_row })
    }

    pub fn rows(&self) -> usize {
        self.t.len()
    }

    /// Snapshot intervals available from `first_row` to the end.
    pub fn usable_intervals(&self) -> usize {
        self.rows() - 1 - self.first_row
    }

    /// Read rows `range`, normalised by the particle count of `first_row`.
    pub fn read_slice(&self, range: std::ops::Range<usize>, ctx: usize) -> anyhow::Result<RunSlice> {
        let rf = crate::data::RunFile::open(&self.path)?;
        let norm_rows = rf.read_snapshots(self.first_row..self.first_row + 1)?;
        let total: f64 = norm_rows.sum();
        anyhow::ensure!(total > 0.0, "{}: dataset /f: snapshot {} is empty (sum 0), cannot normalise", self.path.display(), self.first_row);
        let mut f = rf.read_snapshots(range.clone())?;
        f.mapv_inplace(|v| v / total);
        Ok(RunSlice { first: range.start, f, t: self.t.clone(), dt: self.dt, ctx })
    }
}

/// Every window of `runs` for `unroll`, in the global order (run-major, start ascending).
pub fn enumerate_windows(runs: &[RunInfo], unroll: Unroll) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::new();
    for (r, run) in runs.iter().enumerate() {
        let avail = run.usable_intervals();
        match unroll {
            Unroll::Intervals(k) => {
                anyhow::ensure!(
                    k <= avail,
                    "{}: unroll {k} is longer than the run ({avail} snapshot intervals after i_start)",
                    run.path.display()
                );
                for start in run.first_row..=run.rows() - 1 - k {
                    out.push(Sample { run: r, start, intervals: k });
                }
            }
            Unroll::Whole(_) => {
                anyhow::ensure!(avail >= 1, "{}: no snapshot interval after i_start", run.path.display());
                out.push(Sample { run: r, start: run.first_row, intervals: avail });
            }
        }
    }
    Ok(out)
}

/// Rows each run needs for `samples` (`None` for runs with no sample).
pub fn needed_rows(n_runs: usize, samples: &[Sample]) -> Vec<Option<std::ops::Range<usize>>> {
    let mut r: Vec<Option<std::ops::Range<usize>>> = vec![None; n_runs];
    for s in samples {
        let need = s.start..s.start + s.intervals + 1;
        r[s.run] = Some(match r[s.run].take() {
            None => need,
            Some(old) => old.start.min(need.start)..old.end.max(need.end),
        });
    }
    r
}

/// Split `n` samples of uniform or given cost into `ranks` contiguous ranges aligned to multiples
/// of `block`, balancing the total cost. Every rank gets at least one block when there are enough.
pub fn shard(costs: &[f64], ranks: usize, block: usize) -> Vec<std::ops::Range<usize>> {
    let n = costs.len();
    let n_blocks = n.div_ceil(block);
    let block_cost: Vec<f64> = (0..n_blocks).map(|b| costs[b * block..((b + 1) * block).min(n)].iter().sum()).collect();
    let total: f64 = block_cost.iter().sum();
    let mut bounds = vec![0usize];
    let mut acc = 0.0;
    let mut b = 0;
    for r in 1..ranks {
        let target = total * r as f64 / ranks as f64;
        // Leave at least one block for every remaining rank when possible.
        let max_b = n_blocks.saturating_sub(ranks - r);
        while b < max_b && (acc + block_cost[b] * 0.5 < target || b < bounds[r - 1] + usize::from(n_blocks >= ranks)) {
            acc += block_cost[b];
            b += 1;
        }
        bounds.push(b);
    }
    bounds.push(n_blocks);
    (0..ranks).map(|r| (bounds[r] * block).min(n)..(bounds[r + 1] * block).min(n)).collect()
}

/// Block size of the exact reduction for a batch of `n` samples: independent of the rank count.
pub fn block_size(n: usize) -> usize {
    (n / 64).clamp(1, 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_contiguous_aligned_and_balanced() {
        for (n, ranks, block) in [(270, 4, 4), (270, 8, 4), (3, 4, 1), (90, 2, 1), (1000, 3, 16), (5, 8, 1)] {
            let costs = vec![1.0; n];
            let s = shard(&costs, ranks, block);
            assert_eq!(s.len(), ranks);
            assert_eq!(s[0].start, 0);
            assert_eq!(s[ranks - 1].end, n);
            for w in s.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert!(w[0].end % block == 0 || w[0].end == n);
            }
            let n_blocks = n.div_ceil(block);
            if n_blocks >= ranks {
                assert!(s.iter().all(|r| !r.is_empty()), "{n} {ranks} {block}: {s:?}");
                let sizes: Vec<usize> = s.iter().map(|r| r.len()).collect();
                let (mx, mn) = (*sizes.iter().max().unwrap(), *sizes.iter().min().unwrap());
                assert!(mx - mn <= 2 * block, "{n} {ranks} {block}: {sizes:?}");
            }
        }
    }

    #[test]
    fn uneven_costs_balance() {
        let costs: Vec<f64> = (0..40).map(|i| if i < 10 { 10.0 } else { 1.0 }).collect();
        let s = shard(&costs, 2, 1);
        let c0: f64 = costs[s[0].clone()].iter().sum();
        let c1: f64 = costs[s[1].clone()].iter().sum();
        assert!((c0 - c1).abs() <= 10.0, "{c0} {c1}");
    }
}
