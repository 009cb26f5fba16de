//! The data a rank trains or evaluates on: the runs as used ([`Run`]: validated file, first used
//! snapshot, normalisation) and the snapshots its samples need ([`ShardData`]: one normalised
//! hyperslab per run, so memory scales with the shard and not with the campaign). Training,
//! evaluation and benchmarks all load data through this one stack.
//!
//! # Streaming (`data.cache_mb`)
//!
//! With a byte budget smaller than the shard ([`ShardData::load_runs_within`]) nothing is loaded
//! up front: each worker reads the snapshots through its own [`SnapshotReader`], a reusable
//! buffer of consecutive rows of one run, filled from the run file (the same validated hyperslab
//! read, divided by the same normalisation, so the values are bitwise those of a cached shard)
//! when a window or bundle asks for a row it does not hold. A window (or bundle) longer than the
//! buffer is read in chunks, in the direction it is walked (targets from the last snapshot down
//! during the adjoint, up during a forward-only evaluation); one that fits is read whole. Each
//! reader has a second buffer and a background thread that reads the chunk the walk will ask
//! for next while the worker computes (HDF5 itself is serialised by a global lock, but the
//! solver is not). The budget is shared evenly by the workers' two buffers, each at least one
//! snapshot: a rank holds at most max(budget, 2 · workers snapshots). Buffers are reused and
//! never grow past their share, so steady-state epochs do not grow.

use super::windows::{snapshot_ranges, Sample};
use super::{normalise, DataError, RunFile};
use ndarray::{s, Array3, ArrayView3};
use crate::grid::VelocityGrid;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::{mpsc, Arc};

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

/// Normalised snapshots of the runs a set of samples touches: held (one slab per run), or, over
/// a budget, streamed through per-worker [`SnapshotReader`]s.
#[derive(Clone, Debug, Default)]
pub struct ShardData {
    /// Run index → (index of the first snapshot held, snapshots `[len, Nx, Ny]`).
    slabs: BTreeMap<usize, (usize, Array3<f64>)>,
    /// A streamed shard: where to read, and the budget in bytes.
    stream: Option<(Arc<Source>, usize)>,
    /// Bytes of every snapshot the samples need.
    shard_bytes: usize,
}

/// What a streamed shard reads from: every run's file and normalisation (by run index).
#[derive(Debug)]
struct Source {
    files: Vec<RunFile>,
    norms: Vec<f64>,
}

impl Source {
    /// Rows `rows` of run `run`, normalised, into `buf` (kept allocated).
    fn read(&self, run: usize, rows: Range<usize>, buf: &mut Vec<f64>) -> Result<(), DataError> {
        let f = self.files[run].read_snapshots(rows)?;
        let norm = self.norms[run];
        buf.clear();
        buf.reserve_exact(f.len());
        // As [`normalise`]: each value divided by the run's normalisation.
        buf.extend(f.iter().map(|x| x / norm));
        Ok(())
    }
}

impl ShardData {
    /// Read, for every run `samples` touch, the contiguous snapshot range they need (one
    /// hyperslab per run) and divide it by that run's normalisation `norms[run]`.
    pub fn load(files: &[RunFile], samples: &[Sample], norms: &[f64]) -> Result<Self, DataError> {
        Self::load_within(files, samples, norms, None)
    }

    /// [`ShardData::load`] if the snapshots the samples need take at most `budget` bytes (or
    /// there is no budget); otherwise a streamed shard that loads nothing now (see the module
    /// doc).
    pub fn load_within(files: &[RunFile], samples: &[Sample], norms: &[f64], budget: Option<usize>) -> Result<Self, DataError> {
        let ranges = snapshot_ranges(samples);
        let mut shard_bytes = 0;
        for (&run, range) in &ranges {
            let (Some(file), Some(_)) = (files.get(run), norms.get(run)) else {
                return Err(DataError::Invalid {
                    path: format!("run {run}"),
                    msg: format!(
                        "sample refers to run {run} but only {} files / {} norms are given",
                        files.len(),
                        norms.len()
                    ),
                });
            };
            shard_bytes += range.len() * file.meta.grid.n_cells() * std::mem::size_of::<f64>();
        }
        if let Some(budget) = budget.filter(|&b| shard_bytes > b) {
            let source = Source { files: files.to_vec(), norms: norms.to_vec() };
            return Ok(Self { slabs: BTreeMap::new(), stream: Some((Arc::new(source), budget)), shard_bytes });
        }
        let mut slabs = BTreeMap::new();
        for (run, range) in ranges {
            let mut f = files[run].read_snapshots(range.clone())?;
            normalise(&mut f, norms[run]);
            slabs.insert(run, (range.start, f));
        }
        Ok(Self { slabs, stream: None, shard_bytes })
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
        Self::load_runs_within(runs, samples, None)
    }

    /// [`ShardData::load_within`] for used runs: each run's own normalisation.
    pub fn load_runs_within(runs: &[Run], samples: &[Sample], budget: Option<usize>) -> Result<Self, DataError> {
        let files: Vec<RunFile> = runs.iter().map(|r| r.file.clone()).collect();
        let norms: Vec<f64> = runs.iter().map(|r| r.norm).collect();
        Self::load_within(&files, samples, &norms, budget)
    }

    /// Bytes of snapshot data held by the shard itself (0 when streamed: the readers hold them).
    pub fn bytes(&self) -> usize {
        self.slabs.values().map(|(_, f)| f.len() * std::mem::size_of::<f64>()).sum()
    }

    /// Bytes of every snapshot the shard's samples need.
    pub fn shard_bytes(&self) -> usize {
        self.shard_bytes
    }

    /// The byte budget, if the shard is streamed.
    pub fn stream_budget(&self) -> Option<usize> {
        self.stream.as_ref().map(|(_, b)| *b)
    }

    /// A reader for one of `workers` workers: reads through the shard when it is held; when
    /// streamed, owns a share of the budget (see the module doc).
    pub fn reader(&self, workers: usize) -> SnapshotReader {
        let Some((source, budget)) = &self.stream else {
            return SnapshotReader::default();
        };
        let n_cells = source.files.first().map_or(1, |f| f.meta.grid.n_cells()).max(1);
        let snapshot_bytes = n_cells * std::mem::size_of::<f64>();
        let cap_rows = (budget / (2 * workers.max(1) * snapshot_bytes)).max(1);
        // Both buffers at their full size now, so that no read grows them.
        SnapshotReader {
            run: usize::MAX,
            rows: 0..0,
            buf: Vec::with_capacity(cap_rows * n_cells),
            n_cells,
            cap_rows,
            prefetch: Some(Prefetcher::spawn(source.clone(), cap_rows * n_cells)),
            reads: 0,
            reads_ahead: 0,
        }
    }
}

/// One worker's access to a shard's snapshots (see the module doc): through the shard when it is
/// held, or through its own buffer of consecutive rows of one run when streamed.
/// [`SnapshotReader::fetch`] makes rows available; [`SnapshotReader::snapshot`] returns one.
#[derive(Debug, Default)]
pub struct SnapshotReader {
    run: usize,
    rows: Range<usize>,
    buf: Vec<f64>,
    n_cells: usize,
    /// Rows a buffer holds (more if one request needs more).
    cap_rows: usize,
    /// The second buffer and its reader thread (streamed shards only).
    prefetch: Option<Prefetcher>,
    /// Chunks read on the worker's thread, and chunks taken ready from the background read.
    reads: usize,
    reads_ahead: usize,
}

/// Which way a window's snapshots are walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// From the first snapshot up (forward evaluation).
    Up,
    /// From the last snapshot down (the adjoint's targets).
    Down,
}

impl SnapshotReader {
    /// Make snapshot `row` of run `run` available, where the current window or bundle reads rows
    /// within `span`, walked in direction `walk`. A held shard has it already; a streamed one
    /// reads, on a miss, the chunk of `span` that holds `row` and extends in the walk's
    /// direction (the whole span if it fits), then starts reading the chunk the walk will miss
    /// on next.
    pub fn fetch(&mut self, run: usize, row: usize, span: Range<usize>, walk: Walk) -> Result<(), DataError> {
        if self.prefetch.is_none() || self.holds(run, row) {
            return Ok(());
        }
        let chunk = self.chunk(row, &span, walk);
        let p = self.prefetch.as_mut().expect("streamed");
        match p.wait() {
            Some((r, rows, buf, Ok(()))) if r == run && rows == chunk => {
                p.spare = Some(std::mem::replace(&mut self.buf, buf));
                self.reads_ahead += 1;
            }
            other => {
                // Not the chunk read ahead (or its read failed: read again, and report that).
                if let Some((_, _, buf, _)) = other {
                    p.spare = Some(buf);
                }
                self.rows = 0..0;
                p.source.read(run, chunk.clone(), &mut self.buf)?;
                self.reads += 1;
            }
        }
        self.run = run;
        self.rows = chunk.clone();
        // The chunk the walk misses on next, read while the worker computes.
        match walk {
            Walk::Down if chunk.start > span.start => self.prefetch(run, chunk.start - 1, span, walk),
            Walk::Up if chunk.end < span.end => self.prefetch(run, chunk.end, span, walk),
            _ => {}
        }
        Ok(())
    }

    /// Start reading, in the background, the chunk a later [`fetch`](Self::fetch) of `row` will
    /// read (no-op for a held shard, or if the row is held or already being read).
    pub fn prefetch(&mut self, run: usize, row: usize, span: Range<usize>, walk: Walk) {
        if self.prefetch.is_none() || self.holds(run, row) {
            return;
        }
        let chunk = self.chunk(row, &span, walk);
        let p = self.prefetch.as_mut().expect("streamed");
        if p.pending.as_ref() != Some(&(run, chunk.clone())) {
            p.start(run, chunk);
        }
    }

    fn holds(&self, run: usize, row: usize) -> bool {
        self.run == run && self.rows.contains(&row)
    }

    /// The rows read on a miss of `row` (see [`fetch`](Self::fetch)): at most `cap_rows`.
    fn chunk(&self, row: usize, span: &Range<usize>, walk: Walk) -> Range<usize> {
        let cap = self.cap_rows;
        if span.len() <= cap && span.contains(&row) {
            return span.clone();
        }
        match walk {
            Walk::Down => (row + 1).saturating_sub(cap).max(span.start).min(row)..row + 1,
            Walk::Up => row..(row + cap).min(span.end).max(row + 1),
        }
    }

    /// Snapshot `row` of run `run`, flattened in C order: from `data` if it holds the shard,
    /// else from the buffer (after a [`fetch`](Self::fetch) that covered it).
    pub fn snapshot<'s>(&'s self, data: &'s ShardData, run: usize, row: usize) -> Option<&'s [f64]> {
        if self.prefetch.is_none() {
            return data.snapshot(run, row);
        }
        if run != self.run || !self.rows.contains(&row) {
            return None;
        }
        let i = row - self.rows.start;
        self.buf.get(i * self.n_cells..(i + 1) * self.n_cells)
    }

    /// Chunks read so far: on the worker's thread, and read ahead in the background (and used).
    pub fn reads(&self) -> (usize, usize) {
        (self.reads, self.reads_ahead)
    }

    /// Bytes of the buffers (their capacity: the most this reader has held).
    pub fn bytes(&self) -> usize {
        let spare = self.prefetch.as_ref().map_or(0, |p| p.capacity());
        (self.buf.capacity() + spare) * std::mem::size_of::<f64>()
    }
}

/// A background read: run, rows, and the buffer to read into.
type Job = (usize, Range<usize>, Vec<f64>);

/// A finished background read: run, rows, buffer, outcome.
type Done = (usize, Range<usize>, Vec<f64>, Result<(), DataError>);

/// The second buffer of a [`SnapshotReader`] and the thread that fills it.
#[derive(Debug)]
struct Prefetcher {
    source: Arc<Source>,
    /// The buffer when no read is in flight.
    spare: Option<Vec<f64>>,
    /// Capacity of the second buffer when it was last sent to the thread.
    spare_capacity: usize,
    /// The read in flight.
    pending: Option<(usize, Range<usize>)>,
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prefetcher {
    fn spawn(source: Arc<Source>, capacity: usize) -> Self {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        let src = source.clone();
        let thread = std::thread::Builder::new()
            .name("snapshot-prefetch".into())
            .spawn(move || {
                for (run, rows, mut buf) in job_rx {
                    let result = src.read(run, rows.clone(), &mut buf);
                    if done_tx.send((run, rows, buf, result)).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn the snapshot prefetch thread");
        Self { source, spare: Some(Vec::with_capacity(capacity)), spare_capacity: capacity, pending: None, jobs: Some(jobs), done, thread: Some(thread) }
    }

    /// Wait for the read in flight, if any: `Some` its result (the buffer comes with it).
    fn wait(&mut self) -> Option<Done> {
        self.pending.take()?;
        Some(self.done.recv().expect("the prefetch thread lives as long as its reader"))
    }

    /// Read `rows` of `run` into the spare buffer in the background (after the read in flight).
    fn start(&mut self, run: usize, rows: Range<usize>) {
        if let Some((_, _, buf, _)) = self.wait() {
            self.spare = Some(buf);
        }
        let buf = self.spare.take().expect("spare buffer");
        self.spare_capacity = buf.capacity();
        self.jobs.as_ref().expect("running").send((run, rows.clone(), buf)).expect("the prefetch thread lives as long as its reader");
        self.pending = Some((run, rows));
    }

    fn capacity(&self) -> usize {
        self.spare.as_ref().map_or(self.spare_capacity, Vec::capacity)
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
