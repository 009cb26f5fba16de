//! Training samples and their distribution, as pure logic: (run, window) enumeration in one
//! global order, the validation split, seeded mini-batches, cost-balanced block-aligned sharding
//! over ranks, and the snapshot ranges a shard must read.
//!
//! Everything here depends only on the run metadata, the seed, the stage and the epoch — never
//! on the rank or thread count — so every rank computes the same lists and results do not
//! depend on how a job is laid out.
//!
//! Validation by *named runs* is done by the caller: enumerate the validation runs' files
//! separately (their [`Sample::run`] indices then refer to that list) and skip
//! [`split_validation`].

use super::{DataError, RunMeta};
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;

/// One training sample: from snapshot index `start` (into the run's `/t`) roll the solver
/// `intervals` snapshot intervals and compare with snapshots `start + 1 ..= start + intervals`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sample {
    /// Index of the run in the list given to [`enumerate`].
    pub run: usize,
    pub start: usize,
    pub intervals: usize,
    /// Which population of the run: 0 for its histograms `/f`, c ≥ 1 for transition window
    /// c − 1 of its tracks (see [`super::transitions`]).
    #[serde(default)]
    pub channel: u32,
}

impl Sample {
    /// The snapshot indices this sample reads: the initial state and its targets.
    pub fn snapshots(&self) -> Range<usize> {
        self.start..self.start + self.intervals + 1
    }

    /// Whether this is a transition window of the run's tracks (channel ≥ 1) rather than a
    /// window of its histograms.
    pub fn is_transition(&self) -> bool {
        self.channel > 0
    }
}

/// How many snapshot intervals each window rolls: a number K ≥ 1, or `all` (one window per run
/// from its first used snapshot to its end). In YAML: `unroll: 10` or `unroll: all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UnrollRepr", into = "UnrollRepr")]
pub enum Unroll {
    Intervals(usize),
    All,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum UnrollRepr {
    Number(usize),
    Word(String),
}

impl TryFrom<UnrollRepr> for Unroll {
    type Error = String;
    fn try_from(repr: UnrollRepr) -> Result<Self, String> {
        match repr {
            UnrollRepr::Number(0) => Err("unroll must be ≥ 1 or `all`".into()),
            UnrollRepr::Number(k) => Ok(Unroll::Intervals(k)),
            UnrollRepr::Word(w) if w == "all" => Ok(Unroll::All),
            UnrollRepr::Word(w) => Err(format!("unroll must be a number ≥ 1 or `all`, not {w:?}")),
        }
    }
}

impl From<Unroll> for UnrollRepr {
    fn from(u: Unroll) -> Self {
        match u {
            Unroll::Intervals(k) => UnrollRepr::Number(k),
            Unroll::All => UnrollRepr::Word("all".into()),
        }
    }
}

impl std::fmt::Display for Unroll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unroll::Intervals(k) => write!(f, "{k}"),
            Unroll::All => f.write_str("all"),
        }
    }
}

fn run_error(meta: &RunMeta, msg: String) -> DataError {
    DataError::Invalid { path: meta.path.display().to_string(), msg }
}

/// Every sample of `runs` for this `unroll`, run-major with `start` ascending. Windows start at
/// the first snapshot whose own number `round(t/dt)` is ≥ `i_start`. A run too short for the
/// unroll is an error naming it.
pub fn enumerate<'a>(
    runs: impl IntoIterator<Item = &'a RunMeta>,
    i_start: usize,
    unroll: Unroll,
) -> Result<Vec<Sample>, DataError> {
    let mut samples = Vec::new();
    for (run, meta) in runs.into_iter().enumerate() {
        let n = meta.n_snapshots();
        let first = meta.first_index(i_start).ok_or_else(|| {
            let last = if n > 0 { meta.snapshot_number(n - 1) } else { -1 };
            run_error(meta, format!("no snapshot at or after i_start = {i_start} (last is number {last})"))
        })?;
        let available = n - 1 - first; // intervals from the first used snapshot to the end
        let k = match unroll {
            Unroll::Intervals(k) => k,
            Unroll::All => available,
        };
        if k == 0 || k > available {
            return Err(run_error(
                meta,
                format!(
                    "unroll {unroll} needs {} snapshots from i_start = {i_start}, the run has {} (snapshots {first}..{n})",
                    k.max(1) + 1,
                    available + 1
                ),
            ));
        }
        samples.extend((first..=first + available - k).map(|start| Sample { run, start, intervals: k, channel: 0 }));
    }
    Ok(samples)
}

/// Tags separating the random streams of the validation split and the mini-batch shuffle.
const VALID_TAG: u64 = 0x7661_6c69_6400_0001;
const BATCH_TAG: u64 = 0x6261_7463_6800_0002;

/// A random key of a (run, start, channel) triple under `seed`, independent of the unroll and of the list
/// the pair appears in.
fn window_key(seed: u64, run: usize, start: usize, channel: u32) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ VALID_TAG);
    rng.set_stream(run as u64 | (channel as u64) << 32);
    rng.set_word_pos(2 * start as u128);
    rng.next_u64()
}

/// Split `samples` into (train, valid): `round(valid_fraction · n)` windows (at least one and at
/// most n − 1 when the fraction is positive and n ≥ 2) chosen by a seeded random key of their
/// (run, start). Both lists keep the global order. Since keys do not depend on the unroll, a
/// start chosen for validation in one stage tends to stay in validation in the next.
pub fn split_validation(
    samples: &[Sample],
    valid_fraction: f64,
    seed: u64,
) -> Result<(Vec<Sample>, Vec<Sample>), DataError> {
    if !(valid_fraction.is_finite() && (0.0..1.0).contains(&valid_fraction)) {
        return Err(DataError::Invalid {
            path: "data.valid_fraction".into(),
            msg: format!("{valid_fraction} must be in [0, 1)"),
        });
    }
    let n = samples.len();
    let mut n_valid = (valid_fraction * n as f64).round() as usize;
    if valid_fraction > 0.0 && n >= 2 {
        n_valid = n_valid.clamp(1, n - 1);
    } else if n < 2 {
        n_valid = 0;
    }
    let mut order: Vec<(u64, usize)> =
        samples.iter().enumerate().map(|(i, s)| (window_key(seed, s.run, s.start, s.channel), i)).collect();
    order.sort_unstable();
    let mut is_valid = vec![false; n];
    for &(_, i) in &order[..n_valid] {
        is_valid[i] = true;
    }
    let pick = |want: bool| samples.iter().zip(&is_valid).filter(|(_, v)| **v == want).map(|(s, _)| *s).collect();
    Ok((pick(false), pick(true)))
}

/// The mini-batches of one epoch: indices into a sample list of length `n_samples`, shuffled by
/// a generator seeded from (`seed`, `stage`, `epoch`) alone, cut into batches of `batch_size`
/// (the last may be smaller), each batch sorted ascending so a shard reads contiguous snapshots.
/// `batch_size` 0 or ≥ `n_samples` gives one full batch in order.
pub fn batches(n_samples: usize, batch_size: usize, seed: u64, stage: usize, epoch: usize) -> Vec<Vec<usize>> {
    let mut indices: Vec<usize> = (0..n_samples).collect();
    if batch_size == 0 || batch_size >= n_samples {
        return vec![indices];
    }
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(stage as u64).to_le_bytes());
    key[16..24].copy_from_slice(&(epoch as u64).to_le_bytes());
    key[24..].copy_from_slice(&BATCH_TAG.to_le_bytes());
    indices.shuffle(&mut ChaCha8Rng::from_seed(key));
    indices
        .chunks(batch_size)
        .map(|chunk| {
            let mut batch = chunk.to_vec();
            batch.sort_unstable();
            batch
        })
        .collect()
}

/// Split `samples` into `n_ranks` contiguous ranges with balanced total cost.
///
/// Range boundaries fall on multiples of `block` samples (blocks are the unit of the exact
/// gradient reduction and never straddle ranks). Every rank gets at least one block when there
/// are at least `n_ranks` blocks; otherwise the first ranks get one block each and the rest are
/// empty. Among partitions with the least maximal rank cost, one with a large minimal cost is
/// preferred. `cost_of` gives a sample's cost (e.g. its solver steps); 0 counts as 1. `block` 0
/// counts as 1. The result depends only on the arguments.
pub fn shard(samples: &[Sample], cost_of: impl Fn(&Sample) -> u64, n_ranks: usize, block: usize) -> Vec<Range<usize>> {
    if n_ranks == 0 {
        return Vec::new();
    }
    let block = block.max(1);
    let block_costs: Vec<u64> =
        samples.chunks(block).map(|chunk| chunk.iter().map(|s| cost_of(s).max(1)).sum()).collect();
    let bounds = block_partition(&block_costs, n_ranks);
    bounds.windows(2).map(|w| (w[0] * block).min(samples.len())..(w[1] * block).min(samples.len())).collect()
}

/// Boundaries of `n_blocks` contiguous blocks of `n` samples as even as possible (sizes differ by
/// at most one): `b_i = ⌊i·n / n_blocks⌋`. Depends on its arguments only.
pub fn block_bounds(n: usize, n_blocks: usize) -> Vec<usize> {
    let k = n_blocks.clamp(1, n.max(1));
    (0..=k).map(|i| (i * n) / k).collect()
}

/// [`shard`] for blocks given by their boundaries (see [`block_bounds`]): each rank gets a
/// contiguous run of whole blocks, balanced by cost. Returns, per rank, the range of *block*
/// indices it owns.
pub fn shard_blocks(samples: &[Sample], cost_of: impl Fn(&Sample) -> u64, n_ranks: usize, bounds: &[usize]) -> Vec<Range<usize>> {
    if n_ranks == 0 {
        return Vec::new();
    }
    let block_costs: Vec<u64> =
        bounds.windows(2).map(|w| samples[w[0]..w[1]].iter().map(|s| cost_of(s).max(1)).sum()).collect();
    block_partition(&block_costs, n_ranks).windows(2).map(|w| w[0]..w[1]).collect()
}

/// Boundaries `b_0 = 0 ≤ b_1 ≤ … ≤ b_k = n` of a contiguous partition of `costs` into `k` parts,
/// every part non-empty when `n ≥ k`: the better (smaller maximum, then larger minimum) of the
/// bottleneck-optimal greedy partition and the prefix-rounding partition.
fn block_partition(costs: &[u64], k: usize) -> Vec<usize> {
    let n = costs.len();
    if n <= k {
        return (0..=k).map(|r| r.min(n)).collect();
    }
    let candidates = [bottleneck_partition(costs, k), prefix_partition(costs, k)];
    let score = |bounds: &Vec<usize>| {
        let loads = part_costs(costs, bounds);
        (*loads.iter().max().unwrap_or(&0), std::cmp::Reverse(*loads.iter().min().unwrap_or(&0)))
    };
    candidates.into_iter().min_by_key(score).expect("two candidates")
}

fn part_costs(costs: &[u64], bounds: &[usize]) -> Vec<u64> {
    bounds.windows(2).map(|w| costs[w[0]..w[1]].iter().sum()).collect()
}

/// Least `B` such that a greedy left-to-right packing with parts of cost ≤ `B` needs ≤ `k`
/// parts, then that packing, stopping early where needed so that every part is non-empty.
fn bottleneck_partition(costs: &[u64], k: usize) -> Vec<usize> {
    let parts_needed = |cap: u64| {
        let (mut parts, mut load) = (1usize, 0u64);
        for &c in costs {
            if load + c > cap {
                parts += 1;
                load = 0;
            }
            load += c;
        }
        parts
    };
    let (mut lo, mut hi) = (*costs.iter().max().unwrap_or(&0), costs.iter().sum::<u64>());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if parts_needed(mid) <= k {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let cap = lo;
    let n = costs.len();
    let mut bounds = vec![0];
    let mut b = 0;
    for r in 0..k {
        let ranks_after = k - r - 1;
        let (first, mut load) = (b, 0u64);
        while b < n {
            let must_stop = b > first && (load + costs[b] > cap || n - b <= ranks_after);
            if must_stop && ranks_after > 0 {
                break;
            }
            load += costs[b];
            b += 1;
        }
        bounds.push(b);
    }
    bounds
}

/// Boundary `r` at the block whose prefix cost is nearest `r/k` of the total (ties to the
/// earlier block), clamped so that every part keeps at least one block.
fn prefix_partition(costs: &[u64], k: usize) -> Vec<usize> {
    let n = costs.len();
    let mut prefix = vec![0u128; n + 1];
    for (i, &c) in costs.iter().enumerate() {
        prefix[i + 1] = prefix[i] + c as u128;
    }
    let total = prefix[n];
    let mut bounds = vec![0usize; k + 1];
    bounds[k] = n;
    for r in 1..k {
        let target = total * r as u128; // compare prefix·k with total·r, exactly
        let above = prefix.partition_point(|&p| p * (k as u128) < target).min(n);
        let below = above.saturating_sub(1);
        let distance = |i: usize| (prefix[i] * k as u128).abs_diff(target);
        let nearest = if distance(below) <= distance(above) { below } else { above };
        bounds[r] = nearest.clamp(bounds[r - 1] + 1, n - (k - r));
    }
    bounds
}

/// Per run, the contiguous snapshot range the given samples need (the hyperslab a rank reads).
pub fn snapshot_ranges(samples: &[Sample]) -> BTreeMap<usize, Range<usize>> {
    let mut ranges: BTreeMap<usize, Range<usize>> = BTreeMap::new();
    for s in samples {
        let need = s.snapshots();
        ranges.entry(s.run).and_modify(|r| *r = r.start.min(need.start)..r.end.max(need.end)).or_insert(need);
    }
    ranges
}
