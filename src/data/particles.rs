//! Particle dumps → run file: the half of the PIC importers ([`super::openpmd`],
//! [`super::osiris`]) that does not depend on the file layout. A reader presents its dumps as a
//! [`DumpSource`] that streams, dump by dump and chunk by chunk, the two imported velocity
//! components (as v/c), the weights and optionally the ids; this module bins them on the
//! velocity grid, follows tracked ids, and writes the run file.
//!
//! Exactness: within one dump particles are binned in file order by one thread and weights are
//! added in that order, so the histograms are bitwise the same for any thread count (and equal to
//! numpy's `bincount(…, weights=w)` over the same particles). A particle with velocity `v`
//! (in v_th) goes to cell `floor((v − v_min) / Δv)` with `Δv = (v_max − v_min) / n`; particles
//! outside the grid are counted and reported, not binned.

use super::{write_run, DataError, RunData};
use crate::grid::VelocityGrid;
use ndarray::{Array2, Array3};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Particles read per HDF5 call: 2¹⁵ (256 KiB per f64 array), so memory stays bounded whatever the
/// dump size and the working set stays in cache.
pub(crate) const CHUNK: usize = 1 << 15;

/// Speed of light, m/s (exact).
pub const C: f64 = 299_792_458.0;
const ELEMENTARY_CHARGE: f64 = 1.602_176_634e-19;
const EPSILON_0: f64 = 8.854_187_812_8e-12;
const ELECTRON_MASS: f64 = 9.109_383_701_5e-31;

/// The electron plasma frequency ω_pe = √(n e² / (ε₀ m_e)), rad/s, of a density in m⁻³.
pub fn electron_plasma_frequency(density: f64) -> f64 {
    (density * ELEMENTARY_CHARGE * ELEMENTARY_CHARGE / (EPSILON_0 * ELECTRON_MASS)).sqrt()
}

/// One chunk of one dump: the two imported velocity components as v/c, the weights, and the
/// ids when they were asked for. All slices have the same length.
pub struct Chunk<'a> {
    pub v: [&'a [f64]; 2],
    pub w: &'a [f64],
    pub ids: Option<&'a [u64]>,
}

/// What sink a reader calls for each chunk.
pub type Sink<'s> = dyn FnMut(Chunk<'_>) -> Result<(), DataError> + 's;

/// A sequence of particle dumps of one species, in increasing time order. Implementations read
/// one dump at a time, in chunks of at most [`CHUNK`] particles, and may be called from several
/// threads at once (on different dumps).
pub trait DumpSource: Sync {
    /// Number of dumps.
    fn len(&self) -> usize;
    /// Whether there are no dumps.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// How messages name dump `k` (file and iteration).
    fn describe(&self, k: usize) -> String;
    /// Time of dump `k`, 1/ω_p.
    fn time(&self, k: usize) -> Result<f64, DataError>;
    /// The PIC time step at dump `k`, 1/ω_p, if the files record it.
    fn step(&self, k: usize) -> Result<Option<f64>, DataError>;
    /// Stream dump `k` through `sink` in file order; ids are read only if `with_ids`.
    fn read(&self, k: usize, with_ids: bool, sink: &mut Sink<'_>) -> Result<(), DataError>;
}

/// `--iterations a:b:step`: iteration numbers `i` with `a ≤ i < b` and `(i − a) mod step = 0`;
/// each part may be left out (`a` = 0, `b` = ∞, `step` = 1), and a bare `a` means `a` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IterationRange {
    pub start: u64,
    pub end: Option<u64>,
    pub step: u64,
}

impl Default for IterationRange {
    fn default() -> Self {
        Self { start: 0, end: None, step: 1 }
    }
}

impl IterationRange {
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').map(str::trim).collect();
        let num = |s: &str, what: &str| -> Result<Option<u64>, String> {
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse::<u64>().map(Some).map_err(|_| format!("--iterations {text:?}: {what} {s:?} is not a non-negative integer"))
            }
        };
        let r = match parts.as_slice() {
            [a] => {
                let a = num(a, "iteration")?.ok_or_else(|| format!("--iterations {text:?} is empty"))?;
                Self { start: a, end: Some(a + 1), step: 1 }
            }
            [a, b] => Self { start: num(a, "start")?.unwrap_or(0), end: num(b, "end")?, step: 1 },
            [a, b, c] => Self { start: num(a, "start")?.unwrap_or(0), end: num(b, "end")?, step: num(c, "step")?.unwrap_or(1) },
            _ => return Err(format!("--iterations {text:?}: expected a:b:step")),
        };
        if r.step == 0 {
            return Err(format!("--iterations {text:?}: step must be ≥ 1"));
        }
        if r.end.is_some_and(|e| e <= r.start) {
            return Err(format!("--iterations {text:?}: end must be after start"));
        }
        Ok(r)
    }

    pub fn contains(&self, i: u64) -> bool {
        i >= self.start && self.end.is_none_or(|e| i < e) && (i - self.start) % self.step == 0
    }
}

/// How dumps become a run file.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The histogram grid, in units of v_th.
    pub grid: VelocityGrid,
    /// The thermal speed, in units of c.
    pub v_th: f64,
    /// Number of tracked particles (`/tracks`): the first ids present in every dump.
    pub tracks: usize,
    /// `/params` of the run file: numbers, and string labels.
    pub params: BTreeMap<String, f64>,
    pub labels: BTreeMap<String, String>,
}

/// Progress of a long import: an indicatif bar on a terminal, a log line every 30 s otherwise.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    done: AtomicUsize,
    total: usize,
    what: String,
    next_log: Mutex<Instant>,
}

impl Progress {
    pub(crate) fn new(total: usize, what: &str) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total as u64).with_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} dumps, eta {eta}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_message(what.to_string());
            b
        });
        let next_log = Mutex::new(Instant::now() + Duration::from_secs(30));
        Self { bar, done: AtomicUsize::new(0), total, what: what.into(), next_log }
    }

    pub(crate) fn inc(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            return;
        }
        let mut next = self.next_log.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now >= *next {
            *next = now + Duration::from_secs(30);
            tracing::info!("{}: dump {done}/{} ({:.0}%)", self.what, self.total, 100.0 * done as f64 / self.total as f64);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Bins velocities (in v_th) on the grid.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Binner {
    v_th: f64,
    x0: f64,
    y0: f64,
    dx: f64,
    dy: f64,
    nx: usize,
    ny: usize,
}

impl Binner {
    pub(crate) fn new(grid: &VelocityGrid, v_th: f64) -> Self {
        Self {
            v_th,
            x0: grid.v_range[0],
            y0: grid.v_range[2],
            dx: grid.dvx(),
            dy: grid.dvy(),
            nx: grid.nx,
            ny: grid.ny,
        }
    }

    /// The cell (C-order index) of a particle with velocity (vx, vy) in v_th, if on the grid.
    #[inline]
    fn cell(&self, vx: f64, vy: f64) -> Option<usize> {
        // floor(x) ∈ [0, n) exactly when x ∈ [0, n), and there floor = truncation (`as`).
        let i = (vx - self.x0) / self.dx;
        let j = (vy - self.y0) / self.dy;
        if i >= 0.0 && i < self.nx as f64 && j >= 0.0 && j < self.ny as f64 {
            Some(i as usize * self.ny + j as usize)
        } else {
            None
        }
    }
}

/// What one dump gives: its histogram, tracked velocities and the weight that fell off the grid.
struct DumpResult {
    hist: Vec<f64>,
    tracks: Vec<[f64; 2]>,
    off_grid: f64,
    total: f64,
}

fn bad_value(src: &dyn DumpSource, k: usize, what: &str, i: usize, value: f64) -> DataError {
    DataError::Invalid { path: src.describe(k), msg: format!("particle {i}: {what} {value} is not finite{}", if what == "weight" { " and ≥ 0" } else { "" }) }
}

/// Histogram (and tracked velocities) of dump `k`.
fn bin_dump(
    src: &dyn DumpSource,
    k: usize,
    binner: &Binner,
    tracked: &HashMap<u64, usize>,
    max_tracked: u64,
) -> Result<DumpResult, DataError> {
    let (nx, ny) = (binner.nx, binner.ny);
    let mut hist = vec![0.0; nx * ny];
    let mut tracks = vec![[f64::NAN; 2]; tracked.len()];
    let (mut off_grid, mut total, mut index) = (0.0, 0.0, 0usize);
    let with_ids = !tracked.is_empty();
    src.read(k, with_ids, &mut |c: Chunk<'_>| {
        let [vx, vy] = c.v;
        for (p, ((&bx, &by), &w)) in vx.iter().zip(vy).zip(c.w).enumerate() {
            let (x, y) = (bx / binner.v_th, by / binner.v_th);
            if !(w.is_finite() && w >= 0.0) {
                return Err(bad_value(src, k, "weight", index + p, w));
            }
            if !x.is_finite() || !y.is_finite() {
                return Err(bad_value(src, k, "velocity", index + p, if x.is_finite() { y } else { x }));
            }
            total += w;
            match binner.cell(x, y) {
                Some(cell) => hist[cell] += w,
                None => off_grid += w,
            }
        }
        if let Some(ids) = c.ids.filter(|_| with_ids) {
            for (p, &id) in ids.iter().enumerate() {
                if id > max_tracked {
                    continue;
                }
                if let Some(&slot) = tracked.get(&id) {
                    if !tracks[slot][0].is_nan() {
                        return Err(DataError::Invalid {
                            path: src.describe(k),
                            msg: format!("particle id {id} appears twice"),
                        });
                    }
                    tracks[slot] = [vx[p] / binner.v_th, vy[p] / binner.v_th];
                }
            }
        }
        index += c.w.len();
        Ok(())
    })?;
    if let Some((id, _)) = tracked.iter().find(|(_, &slot)| tracks[slot][0].is_nan()) {
        return Err(DataError::Invalid { path: src.describe(k), msg: format!("tracked particle id {id} is missing") });
    }
    Ok(DumpResult { hist, tracks, off_grid, total })
}

/// The sorted, distinct ids of dump `k`.
fn dump_ids(src: &dyn DumpSource, k: usize) -> Result<Vec<u64>, DataError> {
    let mut ids = Vec::new();
    src.read(k, true, &mut |c: Chunk<'_>| {
        let got = c.ids.ok_or_else(|| DataError::Invalid { path: src.describe(k), msg: "no particle ids to track".into() })?;
        ids.extend_from_slice(got);
        Ok(())
    })?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Elements of two sorted, distinct lists present in both.
fn intersect(a: Vec<u64>, b: Vec<u64>) -> Vec<u64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len().min(b.len())));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The first `n` ids (ascending) present in every dump. Holds one dump's ids per thread plus
/// the running intersection.
fn tracked_ids(src: &dyn DumpSource, n: usize) -> Result<Vec<u64>, DataError> {
    let progress = Progress::new(src.len(), "reading ids");
    let common = (0..src.len())
        .into_par_iter()
        .map(|k| {
            let ids = dump_ids(src, k);
            progress.inc();
            ids.map(Some)
        })
        .try_reduce(
            || None,
            |a, b| {
                Ok(match (a, b) {
                    (Some(a), Some(b)) => Some(intersect(a, b)),
                    (a, None) => a,
                    (None, b) => b,
                })
            },
        )?
        .unwrap_or_default();
    progress.finish();
    if common.len() < n {
        tracing::warn!("only {} particle ids are present in every dump; tracking those instead of {n}", common.len());
    }
    Ok(common.into_iter().take(n).collect())
}

/// Weighted thermal speed of dump `k`, in units of c: √(½ Σ_c Σw (v_c − v̄_c)² / Σw) over the two
/// imported components. Two passes over the dump, summed in file order (deterministic).
pub fn thermal_speed(src: &dyn DumpSource, k: usize) -> Result<f64, DataError> {
    let (mut sw, mut s) = (0.0, [0.0; 2]);
    src.read(k, false, &mut |c: Chunk<'_>| {
        for ((&x, &y), &w) in c.v[0].iter().zip(c.v[1]).zip(c.w) {
            sw += w;
            s[0] += w * x;
            s[1] += w * y;
        }
        Ok(())
    })?;
    if !(sw > 0.0 && sw.is_finite()) {
        return Err(DataError::Invalid { path: src.describe(k), msg: format!("total weight {sw}: cannot measure a thermal speed") });
    }
    let mean = [s[0] / sw, s[1] / sw];
    let mut var = 0.0;
    src.read(k, false, &mut |c: Chunk<'_>| {
        for ((&x, &y), &w) in c.v[0].iter().zip(c.v[1]).zip(c.w) {
            var += w * ((x - mean[0]).powi(2) + (y - mean[1]).powi(2));
        }
        Ok(())
    })?;
    let v_th = (0.5 * var / sw).sqrt();
    if !(v_th > 0.0 && v_th.is_finite()) {
        return Err(DataError::Invalid { path: src.describe(k), msg: format!("measured thermal speed {v_th} c is unusable") });
    }
    Ok(v_th)
}

/// Snapshot times and their mean spacing. Unevenly spaced dumps, and a PIC time step that varies
/// between dumps, are accepted with a warning.
fn times(src: &dyn DumpSource) -> Result<(Vec<f64>, f64), DataError> {
    let n = src.len();
    let t = (0..n).map(|k| src.time(k)).collect::<Result<Vec<_>, _>>()?;
    if n < 2 {
        let path = if n == 0 { "import".to_string() } else { src.describe(0) };
        let what = if n == 0 { "no dumps" } else { "the only dump selected" };
        return Err(DataError::Invalid { path, msg: format!("{what}; at least 2 are needed") });
    }
    for k in 1..n {
        if t[k].partial_cmp(&t[k - 1]) != Some(std::cmp::Ordering::Greater) {
            return Err(DataError::Invalid {
                path: src.describe(k),
                msg: format!("time {} 1/ω_p is not after the previous dump's {}", t[k], t[k - 1]),
            });
        }
    }
    // The mean spacing; uneven dumps are accepted (every interval is integrated over its own
    // length when training and evaluating), with a warning.
    let dt = (t[n - 1] - t[0]) / (n - 1) as f64;
    let uneven = t.windows(2).map(|w| w[1] - w[0]).find(|step| (step - dt).abs() > super::validate::SPACING_RTOL * dt);
    if let Some(step) = uneven {
        tracing::warn!(
            "{}: dumps are not evenly spaced in time (an interval of {step} 1/ω_p, mean spacing {dt}); imported with their own times /t",
            src.describe(0)
        );
    }
    let steps = (0..n).map(|k| src.step(k)).collect::<Result<Vec<_>, _>>()?;
    let known: Vec<f64> = steps.into_iter().flatten().collect();
    if let (Some(lo), Some(hi)) = (known.iter().copied().reduce(f64::min), known.iter().copied().reduce(f64::max)) {
        if hi - lo > 1e-9 * hi.abs() {
            tracing::warn!("the PIC time step varies between dumps ({lo} to {hi} 1/ω_p)");
        }
    }
    Ok((t, dt))
}

/// Bin every dump of `src` and write the run file `out` (atomically). Dumps are processed in
/// parallel, one per thread at a time; the result does not depend on the thread count.
pub fn import(src: &dyn DumpSource, settings: &Settings, out: &Path, what: &str) -> Result<RunData, DataError> {
    let (t, dt) = times(src)?;
    let ids = if settings.tracks > 0 { tracked_ids(src, settings.tracks)? } else { Vec::new() };
    let tracked: HashMap<u64, usize> = ids.iter().enumerate().map(|(slot, &id)| (id, slot)).collect();
    let max_tracked = ids.last().copied().unwrap_or(0);
    let binner = Binner::new(&settings.grid, settings.v_th);
    let progress = Progress::new(src.len(), what);
    let results = (0..src.len())
        .into_par_iter()
        .map(|k| {
            let r = bin_dump(src, k, &binner, &tracked, max_tracked);
            progress.inc();
            r
        })
        .collect::<Result<Vec<_>, _>>()?;
    progress.finish();
    let (nx, ny) = settings.grid.shape();
    let mut f = Array3::zeros((results.len(), nx, ny));
    for (mut slot, r) in f.outer_iter_mut().zip(&results) {
        slot.assign(&Array2::from_shape_vec((nx, ny), r.hist.clone()).expect("histogram shape"));
    }
    let worst = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.total > 0.0)
        .map(|(k, r)| (k, r.off_grid / r.total))
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    if worst.1 > 0.0 {
        tracing::warn!(
            "up to {:.3e} of the weight lies outside the velocity grid ({}); widen --v-range to keep it",
            worst.1,
            src.describe(worst.0)
        );
    }
    let tracks = (!ids.is_empty()).then(|| {
        let mut a = Array3::zeros((results.len(), ids.len(), 2));
        for (k, r) in results.iter().enumerate() {
            for (p, v) in r.tracks.iter().enumerate() {
                a[[k, p, 0]] = v[0];
                a[[k, p, 1]] = v[1];
            }
        }
        a
    });
    let n_particles = super::particle_count(f.index_axis(ndarray::Axis(0), 0));
    if n_particles.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(DataError::Invalid { path: src.describe(0), msg: "no weight on the velocity grid in the first dump (Σ counts = 0); check --v-range and --v-th".into() });
    }
    let run = RunData {
        grid: settings.grid.clone(),
        f,
        t,
        dt,
        n_particles,
        params: settings.params.clone(),
        tracks,
        diagnostics: BTreeMap::new(),
        labels: settings.labels.clone(),
    };
    write_run(out, &run)?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iteration_ranges() {
        let r = IterationRange::parse("100:500:200").unwrap();
        assert_eq!((0..700).filter(|&i| r.contains(i)).collect::<Vec<_>>(), vec![100, 300]);
        assert!(IterationRange::parse("::3").unwrap().contains(9));
        assert!(!IterationRange::parse("::3").unwrap().contains(10));
        assert_eq!(IterationRange::parse("7").unwrap(), IterationRange { start: 7, end: Some(8), step: 1 });
        assert!(IterationRange::parse("5:2").is_err());
        assert!(IterationRange::parse("::0").is_err());
        assert!(IterationRange::parse("a:b").is_err());
    }

    #[test]
    fn intersection_of_sorted_lists() {
        assert_eq!(intersect(vec![1, 3, 5, 7], vec![0, 3, 4, 7, 9]), vec![3, 7]);
        assert_eq!(intersect(vec![], vec![1]), Vec::<u64>::new());
    }

    #[test]
    fn cells_follow_the_documented_rule() {
        let grid = VelocityGrid::new(4, 5, [-2.0, 2.0, -1.0, 4.0], "v_th").unwrap();
        let b = Binner::new(&grid, 1.0);
        assert_eq!(b.cell(-2.0, -1.0), Some(0));
        assert_eq!(b.cell(1.999, 3.999), Some(3 * 5 + 4));
        assert_eq!(b.cell(2.0, 0.0), None);
        assert_eq!(b.cell(0.0, -1.0001), None);
        assert_eq!(b.cell(-0.5, 0.5), Some(5 + 1));
    }

    #[test]
    fn plasma_frequency_of_a_known_density() {
        // n = 1e24 m⁻³ → ω_pe ≈ 5.64e13 rad/s.
        let w = electron_plasma_frequency(1e24);
        assert!((w / 5.641_460e13 - 1.0).abs() < 1e-5, "{w}");
    }
}
