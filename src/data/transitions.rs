//! Transition windows of tracked particles: the training samples that `/tracks` give.
//!
//! Particles are selected by the cell their velocity falls in at a *start* snapshot s. The
//! histograms at s + d, s + d + 1, …, s + d + K of the particles selected in one *start bin* (a
//! block of `start_bin`^dim grid cells) form a transition window: the state at s + d is its
//! initial state and the K later ones its targets, i.e. the empirical transition probability
//! p(v′, t + τ | v ∈ bin, t). With the delay d = 0 the initial state is the selection itself
//! (the particles' cells at s); see below for why the default is d = 5. Each window is normalised to unit mass at selection, so a
//! window's states are probabilities per cell; particles that leave the grid leave the window,
//! as they leave a rollout through its boundary.
//!
//! A window is a [`Sample`] like a (run, start) histogram window, with a non-zero
//! [`Sample::channel`]: it goes through the same rollout, adjoint, checkpointing, bundling,
//! exact reduction and sharding. Its run is the track run it came from (its coefficients,
//! spacing and conditioners are that run's).
//!
//! # Batching: many start bins in one solver pass
//!
//! The windows of one run with the same K share their coefficients, so consecutive ones form a
//! bundle ([`crate::train::problem`]): one rollout carries several start bins' states one after
//! the other, and every grid line's coefficients are read once for all of them. Windows are
//! enumerated start group by start group, bins ascending, so a bundle holds neighbouring
//! bins — states of similar support.
//!
//! # Pooling start snapshots
//!
//! By linearity of the Fokker–Planck equation, the sum over start snapshots of the windows of
//! one bin evolves like each of them when the operator does not change in time: with
//! `pool_starts` (the default) a bin's particles from every start snapshot form one window
//! (counts add up; the window is as cheap as one but carries all their statistics). Models
//! whose coefficients change in time, and runs with uneven snapshot spacing, need one window per
//! (start, bin): `pool_starts: false`.
//!
//! # The delay (default 5 snapshots)
//!
//! With d = 0 the initial state is the start bin itself: a point source, one bin wide, whose
//! first steps the discrete solver resolves poorly, and whose predicted probability is exactly 0
//! beyond the stencil's reach while particles already are there. The likelihood then meets the
//! floor in cells that carry no gradient and fits the operator badly: on synthetic tracks of a
//! known operator (10⁵ particles, K = 10, 300 epochs) d = 0 gave 67–79% relative L2 error
//! against 3–6% for d = 5; the mse loss was less hurt (13–15%). A delay of a few snapshots gives every window a
//! resolved initial state and costs nothing in principle: the evolution from s + d on is that of
//! the same Fokker–Planck operator.
//!
//! In a plasma a delay is needed for physics too. Every particle quivers in the thermal Langmuir
//! field: a reversible velocity oscillation at about ω_p that the selection at s is correlated
//! with. Seen from the selection it adds a spread of about 2⟨δv²⟩(1 − cos ω_pτ) to
//! p(v′, t+τ | v, t) that no Markovian operator produces, and a fit would read it as diffusion.
//! After a delay of several plasma periods the quiver has phase-mixed: the window's initial and
//! target states carry the same decorrelated quiver spread, which the evolution carries along.
//! On a thermal PIC plasma (nλ_D² = 16, dumps 1/ω_p apart, K = 20) d = 5 gave 8–9% and d = 10
//! 2–4% deviation from the PIC-aware theory (`scripts/tracks-learning.sh`).
//!
//! Counting is integer-valued, so the histograms do not depend on the thread count.

use super::windows::Sample;
use super::DataError;
use crate::grid::VelocityGrid;
use ndarray::ArrayView3;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Which transition windows a run's tracks give, with start rows resolved (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct TransitionSpec {
    /// Start snapshots (rows of the run's `/t`) at which particles are selected.
    pub starts: Vec<usize>,
    /// Rows between the selection and a window's initial state (d).
    pub delay: usize,
    /// Most snapshot intervals a window rolls (K); stages use K = min(unroll, lags).
    pub lags: usize,
    /// Fewest selected particles a window needs; bins with fewer are skipped.
    pub min_particles: usize,
    /// Grid cells per start bin along each axis.
    pub start_bin: usize,
    /// One window per bin over all starts (see the module doc).
    pub pool_starts: bool,
}

/// One transition window of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Index of its start group: into [`TransitionSpec::starts`], or 0 when pooled.
    pub group: usize,
    /// Its start bin (C-order index over the bins).
    pub bin: usize,
    /// Particles selected (over every start of the group).
    pub count: usize,
}

/// The transition windows of one run and how many selections were left out.
#[derive(Clone, Debug, PartialEq)]
pub struct TransitionIndex {
    pub spec: TransitionSpec,
    pub windows: Vec<Window>,
    /// Particle selections in the windows used.
    pub used: usize,
    /// Selections in bins below `min_particles` (on the grid), and those bins (per group).
    pub skipped: usize,
    pub skipped_bins: usize,
    /// Selections whose velocity was off the grid at the start.
    pub off_grid: usize,
}

/// Start bins per axis for `start_bin` cells per bin.
fn bins_per_axis(grid: &VelocityGrid, start_bin: usize) -> Vec<usize> {
    grid.extents().iter().map(|&n| n.div_ceil(start_bin)).collect()
}

/// The start bin of a velocity `v` (one value per axis), if it is on the grid.
fn bin_of(grid: &VelocityGrid, bins: &[usize], start_bin: usize, v: &[f64]) -> Option<usize> {
    let mut flat = 0;
    for (a, &nb) in bins.iter().enumerate() {
        flat = flat * nb + grid.axis_cell(a, v[a])? / start_bin;
    }
    Some(flat)
}

impl TransitionSpec {
    /// Check the spec against a run of `n_rows` snapshots.
    pub fn check(&self, path: &str, n_rows: usize) -> Result<(), DataError> {
        let bad = |msg: String| Err(DataError::Invalid { path: path.into(), msg });
        if self.lags == 0 {
            return bad("data.tracks.lags must be ≥ 1".into());
        }
        if self.start_bin == 0 {
            return bad("data.tracks.start_bin must be ≥ 1".into());
        }
        if self.starts.is_empty() {
            return bad(format!(
                "data.tracks: no start snapshot leaves room for delay {} + lags {} before the run's last snapshot (it has {n_rows})",
                self.delay, self.lags
            ));
        }
        if let Some(&s) = self.starts.iter().find(|&&s| s + self.delay + self.lags >= n_rows) {
            return bad(format!("data.tracks: start row {s} + delay {} + lags {} is past the run's {n_rows} snapshots", self.delay, self.lags));
        }
        Ok(())
    }

    /// The start rows of window group `group`.
    pub fn group_starts(&self, group: usize) -> &[usize] {
        if self.pool_starts {
            &self.starts
        } else {
            &self.starts[group..group + 1]
        }
    }

    /// Row of the initial state of group `group`'s windows (of its first start when pooled).
    pub fn initial_row(&self, group: usize) -> usize {
        self.group_starts(group)[0] + self.delay
    }
}

/// Count the selections of `tracks` (`[T, n, dim]`) per start bin and list the windows with at
/// least `min_particles`, group by group, bins ascending.
pub fn index(path: &str, tracks: ArrayView3<f64>, grid: &VelocityGrid, spec: &TransitionSpec) -> Result<TransitionIndex, DataError> {
    let (n_rows, _, dim) = tracks.dim();
    spec.check(path, n_rows)?;
    if dim != grid.dim() {
        return Err(DataError::Invalid { path: path.into(), msg: format!("/tracks has {dim} components for a {}-D grid", grid.dim()) });
    }
    let bins = bins_per_axis(grid, spec.start_bin);
    let n_bins: usize = bins.iter().product();
    let n_groups = if spec.pool_starts { 1 } else { spec.starts.len() };
    let mut out = TransitionIndex { spec: spec.clone(), windows: Vec::new(), used: 0, skipped: 0, skipped_bins: 0, off_grid: 0 };
    for group in 0..n_groups {
        let mut counts = vec![0usize; n_bins];
        for &s in spec.group_starts(group) {
            for v in tracks.index_axis(ndarray::Axis(0), s).outer_iter() {
                let v = v.as_slice().expect("standard layout");
                match bin_of(grid, &bins, spec.start_bin, v) {
                    Some(b) => counts[b] += 1,
                    None => out.off_grid += 1,
                }
            }
        }
        for (bin, &count) in counts.iter().enumerate() {
            if count >= spec.min_particles.max(1) {
                out.windows.push(Window { group, bin, count });
                out.used += count;
            } else if count > 0 {
                out.skipped += count;
                out.skipped_bins += 1;
            }
        }
    }
    Ok(out)
}

impl TransitionIndex {
    /// The samples of these windows for K = `intervals` (≤ lags) on run `run`, in window order:
    /// channel = window index + 1.
    pub fn samples(&self, run: usize, intervals: usize) -> Vec<Sample> {
        self.windows
            .iter()
            .enumerate()
            .map(|(w, win)| Sample { run, start: self.spec.initial_row(win.group), intervals, channel: w as u32 + 1 })
            .collect()
    }

    /// The window of a sample's channel.
    pub fn window(&self, channel: u32) -> &Window {
        &self.windows[channel as usize - 1]
    }
}

/// The states of the transition windows a rank uses: per (run, channel) the K + 1 normalised
/// histograms, initial state first.
#[derive(Clone, Debug, Default)]
pub struct TransitionData {
    /// Per (run, channel): the window's loss weight and its states.
    states: BTreeMap<(usize, u32), (f64, Vec<f64>)>,
    n_cells: usize,
}

impl TransitionData {
    /// Bin the windows of `samples` (all of one run, whose windows are `index`) from `tracks`;
    /// `weight(channel)` is a window's factor on its loss weight.
    pub fn add_run(
        &mut self,
        index: &TransitionIndex,
        tracks: ArrayView3<f64>,
        grid: &VelocityGrid,
        samples: &[Sample],
        weight: impl Fn(u32) -> f64,
    ) {
        let n = grid.n_cells();
        self.n_cells = n;
        let spec = &index.spec;
        let bins = bins_per_axis(grid, spec.start_bin);
        let n_bins: usize = bins.iter().product();
        let n_particles = tracks.dim().1;
        let mut todo: Vec<(Sample, Vec<f64>)> = samples.iter().map(|s| (*s, vec![0.0; (s.intervals + 1) * n])).collect();
        let n_groups = if spec.pool_starts { 1 } else { spec.starts.len() };
        // Particles by start bin (counting sort), per start snapshot.
        let mut order = vec![0u32; n_particles];
        let mut offsets = vec![0usize; n_bins + 1];
        let mut bin_of_p = vec![usize::MAX; n_particles];
        for group in 0..n_groups {
            if !todo.iter().any(|(s, _)| index.window(s.channel).group == group) {
                continue;
            }
            for &s0 in spec.group_starts(group) {
                offsets.fill(0);
                for (p, v) in tracks.index_axis(ndarray::Axis(0), s0).outer_iter().enumerate() {
                    let b = bin_of(grid, &bins, spec.start_bin, v.as_slice().expect("standard layout")).unwrap_or(usize::MAX);
                    bin_of_p[p] = b;
                    if b != usize::MAX {
                        offsets[b + 1] += 1;
                    }
                }
                for b in 0..n_bins {
                    offsets[b + 1] += offsets[b];
                }
                let mut fill = offsets.clone();
                for (p, &b) in bin_of_p.iter().enumerate() {
                    if b != usize::MAX {
                        order[fill[b]] = p as u32;
                        fill[b] += 1;
                    }
                }
                let first = s0 + spec.delay;
                todo.par_iter_mut().for_each(|(s, hist)| {
                    let win = index.window(s.channel);
                    if win.group != group {
                        return;
                    }
                    for &p in &order[offsets[win.bin]..offsets[win.bin + 1]] {
                        for k in 0..=s.intervals {
                            let v = tracks.slice(ndarray::s![first + k, p as usize, ..]);
                            if let Some(c) = grid.flat_cell(v.as_slice().expect("standard layout")) {
                                hist[k * n + c] += 1.0;
                            }
                        }
                    }
                });
            }
        }
        for (s, mut hist) in todo {
            let norm = index.window(s.channel).count as f64;
            hist.iter_mut().for_each(|x| *x /= norm);
            self.states.insert((s.run, s.channel), (weight(s.channel), hist));
        }
    }

    /// State `k` (0 = initial) of the window of `sample`, if held.
    pub fn state(&self, sample: &Sample, k: usize) -> Option<&[f64]> {
        let n = self.n_cells;
        self.states.get(&(sample.run, sample.channel)).and_then(|(_, h)| h.get(k * n..(k + 1) * n))
    }

    /// The loss-weight factor of the window of `sample` (1 if not held).
    pub fn weight(&self, sample: &Sample) -> f64 {
        self.states.get(&(sample.run, sample.channel)).map_or(1.0, |(w, _)| *w)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.states.values().map(|(_, h)| h.len() * std::mem::size_of::<f64>()).sum()
    }

    /// Windows held.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn spec(pool: bool) -> TransitionSpec {
        TransitionSpec { starts: vec![0, 1], delay: 0, lags: 2, min_particles: 2, start_bin: 1, pool_starts: pool }
    }

    /// Three particles on a 4×4 grid over [−2, 2]²: two stay in cell (1, 1), one walks right.
    fn tracks() -> Array3<f64> {
        let mut t = Array3::zeros((4, 3, 2));
        for row in 0..4 {
            t[[row, 0, 0]] = -0.5;
            t[[row, 0, 1]] = -0.5;
            t[[row, 1, 0]] = -0.4;
            t[[row, 1, 1]] = -0.6;
            t[[row, 2, 0]] = -0.5 + row as f64;
            t[[row, 2, 1]] = -0.5;
        }
        t
    }

    #[test]
    fn windows_count_select_and_normalise() {
        let grid = VelocityGrid::square(4, 2.0).unwrap();
        let t = tracks();
        let idx = index("run", t.view(), &grid, &spec(true)).unwrap();
        // Pooled over starts 0 and 1: bin (1,1) = 5 holds 3 + 2 selections, bin (2,1) = 9 one.
        assert_eq!(idx.windows, vec![Window { group: 0, bin: 5, count: 5 }]);
        assert_eq!((idx.used, idx.skipped, idx.skipped_bins, idx.off_grid), (5, 1, 1, 0));
        let samples = idx.samples(3, 2);
        assert_eq!(samples, vec![Sample { run: 3, start: 0, intervals: 2, channel: 1 }]);
        let mut data = TransitionData::default();
        data.add_run(&idx, t.view(), &grid, &samples, |_| 1.0);
        // k = 1: from start 0 the walker is in (2,1), from start 1 it was not selected... it was:
        // at row 1 it sits in (2,1), so only start 0 selects it.
        let s = &samples[0];
        let at = |k: usize, c: usize| data.state(s, k).unwrap()[c];
        assert_eq!(at(0, 5), 1.0);
        assert_eq!(at(1, 5), 0.8);
        assert_eq!(at(1, 9), 0.2);
        assert_eq!(at(2, 13), 0.2);
        assert!(data.state(s, 3).is_none());
        let unpooled = index("run", t.view(), &grid, &spec(false)).unwrap();
        assert_eq!(unpooled.windows, vec![Window { group: 0, bin: 5, count: 3 }, Window { group: 1, bin: 5, count: 2 }]);
        assert_eq!(unpooled.samples(0, 1)[1].start, 1);
    }

    #[test]
    fn bad_specs_are_errors() {
        let grid = VelocityGrid::square(4, 2.0).unwrap();
        let t = tracks();
        let mut s = spec(true);
        s.lags = 3;
        assert!(index("run", t.view(), &grid, &s).unwrap_err().to_string().contains("past the run"));
        s.lags = 0;
        assert!(index("run", t.view(), &grid, &s).is_err());
        let grid3 = VelocityGrid::cube(4, 2.0).unwrap();
        assert!(index("run", t.view(), &grid3, &spec(true)).unwrap_err().to_string().contains("components"));
    }
}
