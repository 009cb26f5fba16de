//! Windows, validation split, mini-batches, sharding and snapshot ranges (pure logic).

use colop::data::windows::{batches, enumerate, shard, snapshot_ranges, split_validation, Sample, Unroll};
use colop::data::RunMeta;
use colop::grid::VelocityGrid;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// Metadata of a run whose snapshots have own numbers `first..first + n`.
fn meta(name: &str, first: usize, n: usize) -> RunMeta {
    let dt = 0.5;
    RunMeta {
        path: format!("data/{name}.h5").into(),
        name: name.into(),
        grid: VelocityGrid::square(8, 4.0).unwrap(),
        t: (first..first + n).map(|i| i as f64 * dt).collect(),
        dt,
        uniform: true,
        n_particles: 1.0,
        params: BTreeMap::new(),
        labels: BTreeMap::new(),
        has_tracks: false,
    }
}

fn starts(samples: &[Sample], run: usize) -> Vec<usize> {
    samples.iter().filter(|s| s.run == run).map(|s| s.start).collect()
}

#[test]
fn enumerate_counts_in_each_runs_own_numbering() {
    // a: numbers 0..10; b: numbers 5..11 (imported from a folder starting at 000005.npy).
    let runs = [meta("a", 0, 10), meta("b", 5, 6)];
    let s = enumerate(&runs, 5, Unroll::Intervals(1)).unwrap();
    assert_eq!(starts(&s, 0), vec![5, 6, 7, 8]);
    assert_eq!(starts(&s, 1), vec![0, 1, 2, 3, 4]);
    assert!(s.iter().all(|x| x.intervals == 1));
    assert!(s.windows(2).all(|w| (w[0].run, w[0].start) < (w[1].run, w[1].start)), "run-major, start ascending");

    let s = enumerate(&runs, 5, Unroll::Intervals(4)).unwrap();
    assert_eq!(
        s,
        vec![
            Sample { run: 0, start: 5, intervals: 4, channel: 0 },
            Sample { run: 1, start: 0, intervals: 4, channel: 0 },
            Sample { run: 1, start: 1, intervals: 4, channel: 0 },
        ]
    );
    assert_eq!(s[2].snapshots(), 1..6);

    let s = enumerate(&runs, 5, Unroll::All).unwrap();
    assert_eq!(s, vec![Sample { run: 0, start: 5, intervals: 4, channel: 0 }, Sample { run: 1, start: 0, intervals: 5, channel: 0 }]);
    let s = enumerate(&runs, 0, Unroll::All).unwrap();
    assert_eq!(s[0], Sample { run: 0, start: 0, intervals: 9, channel: 0 });

    let msg = enumerate(&runs, 5, Unroll::Intervals(5)).unwrap_err().to_string();
    assert!(msg.starts_with("data/a.h5: unroll 5 needs 6 snapshots from i_start = 5, the run has 5"), "{msg}");
    let msg = enumerate(&runs, 9, Unroll::Intervals(1)).unwrap_err().to_string();
    assert!(msg.starts_with("data/a.h5: unroll 1 needs 2 snapshots from i_start = 9, the run has 1"), "{msg}");
    let msg = enumerate(&[meta("a", 0, 10), meta("b", 5, 3)], 5, Unroll::Intervals(3)).unwrap_err().to_string();
    assert!(msg.starts_with("data/b.h5: unroll 3 needs 4 snapshots"), "{msg}");
    let msg = enumerate(&runs, 11, Unroll::All).unwrap_err().to_string();
    assert!(msg.starts_with("data/a.h5: no snapshot at or after i_start = 11"), "{msg}");
    assert!(enumerate(&[], 5, Unroll::Intervals(3)).unwrap().is_empty());
}

#[test]
fn unroll_parses_from_yaml() {
    assert_eq!(serde_yaml::from_str::<Unroll>("10").unwrap(), Unroll::Intervals(10));
    assert_eq!(serde_yaml::from_str::<Unroll>("all").unwrap(), Unroll::All);
    assert!(serde_yaml::from_str::<Unroll>("0").is_err());
    assert!(serde_yaml::from_str::<Unroll>("every").is_err());
    assert_eq!(serde_yaml::to_string(&Unroll::All).unwrap().trim(), "all");
    assert_eq!(serde_yaml::to_string(&Unroll::Intervals(3)).unwrap().trim(), "3");
}

#[test]
fn validation_split_is_seeded_exact_and_stable_across_stages() {
    let runs = [meta("a", 0, 50), meta("b", 5, 40), meta("c", 0, 30)];
    let k1 = enumerate(&runs, 5, Unroll::Intervals(1)).unwrap();
    let n = k1.len();
    let (train, valid) = split_validation(&k1, 0.2, 42).unwrap();
    assert_eq!(valid.len(), (0.2 * n as f64).round() as usize);
    assert_eq!(train.len() + valid.len(), n);
    let mut all: Vec<Sample> = train.iter().chain(&valid).copied().collect();
    all.sort();
    assert_eq!(all, k1, "a partition of the samples");
    assert!(train.windows(2).all(|w| w[0] < w[1]) && valid.windows(2).all(|w| w[0] < w[1]), "global order kept");
    assert_eq!(split_validation(&k1, 0.2, 42).unwrap(), (train.clone(), valid.clone()), "deterministic");
    assert_ne!(split_validation(&k1, 0.2, 43).unwrap().1, valid, "seeded");
    // Validation windows come from every run, not a block of one.
    assert!((0..3).all(|r| valid.iter().any(|s| s.run == r)));

    // The same starts stay in validation when the unroll grows.
    let k10 = enumerate(&runs, 5, Unroll::Intervals(10)).unwrap();
    let (_, valid10) = split_validation(&k10, 0.2, 42).unwrap();
    let key = |s: &Sample| (s.run, s.start);
    let kept = valid10.iter().filter(|s| valid.iter().any(|v| key(v) == key(s))).count();
    assert!(kept as f64 >= 0.7 * valid10.len() as f64, "{kept} of {} kept", valid10.len());

    assert!(split_validation(&k1, 0.0, 1).unwrap().1.is_empty());
    assert_eq!(split_validation(&k1[..2], 0.01, 1).unwrap().1.len(), 1, "a positive fraction gives at least one");
    assert_eq!(split_validation(&k1[..2], 0.9, 1).unwrap().0.len(), 1, "and keeps at least one for training");
    for bad in [-0.1, 1.0, f64::NAN] {
        let msg = split_validation(&k1, bad, 1).unwrap_err().to_string();
        assert!(msg.starts_with("data.valid_fraction:"), "{msg}");
    }
}

#[test]
fn mini_batches_are_seeded_per_stage_and_epoch() {
    let full = batches(30, 0, 1, 0, 0);
    assert_eq!(full, vec![(0..30).collect::<Vec<_>>()]);
    assert_eq!(batches(30, 30, 1, 0, 0), full);
    let b = batches(30, 7, 1, 0, 0);
    assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![7, 7, 7, 7, 2]);
    assert!(b.iter().all(|x| x.windows(2).all(|w| w[0] < w[1])), "each batch sorted");
    let mut all: Vec<usize> = b.concat();
    all.sort();
    assert_eq!(all, (0..30).collect::<Vec<_>>(), "every sample once per epoch");
    assert_eq!(batches(30, 7, 1, 0, 0), b);
    assert_ne!(batches(30, 7, 1, 0, 1), b);
    assert_ne!(batches(30, 7, 1, 1, 0), b);
    assert_ne!(batches(30, 7, 2, 0, 0), b);
    assert_ne!(batches(30, 7, 1, 1, 0), batches(30, 7, 1, 0, 1), "stage and epoch are not interchangeable");
    // Golden values: the shuffle must not change silently between versions (same seed → same model).
    assert_eq!(batches(10, 4, 42, 0, 0), golden_batches());
}

fn golden_batches() -> Vec<Vec<usize>> {
    // Recorded from this implementation (ChaCha8, rand 0.8 shuffle).
    GOLDEN.iter().map(|b| b.to_vec()).collect()
}
const GOLDEN: [&[usize]; 3] = [&[0, 2, 4, 6], &[3, 5, 7, 8], &[1, 9]];

/// Check the structural promises of `shard` and return the ranks' costs.
fn check_shard(samples: &[Sample], cost: &dyn Fn(&Sample) -> u64, n_ranks: usize, block: usize) -> Vec<u64> {
    let ranges = shard(samples, cost, n_ranks, block);
    assert_eq!(ranges.len(), n_ranks);
    let n = samples.len();
    let n_blocks = n.div_ceil(block);
    let mut expected_start = 0;
    for (r, range) in ranges.iter().enumerate() {
        assert_eq!(range.start, expected_start, "contiguous");
        assert!(range.end >= range.start && range.end <= n);
        let aligned = |i: usize| i % block == 0 || i == n;
        assert!(aligned(range.start) && aligned(range.end), "block-aligned: {range:?}");
        if n_blocks >= n_ranks {
            assert!(!range.is_empty(), "rank {r} idle with {n_blocks} blocks on {n_ranks} ranks");
        } else {
            assert_eq!(range.is_empty(), r >= n_blocks);
        }
        expected_start = range.end;
    }
    assert_eq!(expected_start, n, "covers every sample");
    ranges.iter().map(|r| samples[r.clone()].iter().map(|s| cost(s).max(1)).sum()).collect()
}

/// The least possible maximal part cost of a contiguous partition of `costs` into ≤ k parts.
fn optimal_bottleneck(costs: &[u64], k: usize) -> u64 {
    let n = costs.len();
    let prefix: Vec<u64> = std::iter::once(0)
        .chain(costs.iter().scan(0, |s, c| {
            *s += c;
            Some(*s)
        }))
        .collect();
    let mut best = vec![u64::MAX; n + 1]; // best[i]: first i blocks in the parts so far
    best[0] = 0;
    for _ in 0..k {
        let mut next = best.clone();
        for i in 1..=n {
            for j in 0..i {
                if best[j] != u64::MAX {
                    next[i] = next[i].min(best[j].max(prefix[i] - prefix[j]));
                }
            }
        }
        best = next;
    }
    best[n]
}

#[test]
fn shard_is_block_aligned_complete_and_bottleneck_optimal() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for case in 0..400 {
        let n = rng.gen_range(0..40);
        let samples: Vec<Sample> =
            (0..n).map(|i| Sample { run: i / 7, start: i % 7, intervals: rng.gen_range(1..12), channel: 0 }).collect();
        let n_ranks = rng.gen_range(1..10);
        let block = rng.gen_range(1..5);
        let cost = |s: &Sample| s.intervals as u64;
        let loads = check_shard(&samples, &cost, n_ranks, block);
        let block_costs: Vec<u64> = samples.chunks(block).map(|c| c.iter().map(cost).sum()).collect();
        let optimum = optimal_bottleneck(&block_costs, n_ranks);
        if !block_costs.is_empty() {
            assert_eq!(loads.iter().max().copied().unwrap(), optimum, "case {case}: not bottleneck-optimal");
        }
        assert_eq!(shard(&samples, cost, n_ranks, block), shard(&samples, cost, n_ranks, block));
    }
    assert!(shard(&[], |_| 1, 0, 1).is_empty());
    assert_eq!(shard(&[], |_| 1, 3, 2), vec![0..0, 0..0, 0..0]);
    // block 0 counts as 1; zero costs count as 1.
    let s: Vec<Sample> = (0..4).map(|i| Sample { run: 0, start: i, intervals: 1, channel: 0 }).collect();
    assert_eq!(shard(&s, |_| 0, 2, 0), vec![0..2, 2..4]);
}

/// Cost balance on realistic layouts, printed for the report.
#[test]
fn shard_balance_on_realistic_layouts() {
    struct Case {
        name: &'static str,
        runs: Vec<RunMeta>,
        unroll: usize,
        n_ranks: usize,
        block: usize,
        /// Solver sub-steps per interval of each run.
        substeps: Vec<u64>,
        max_over_min: f64,
    }
    let ninety = |name: &str| meta(name, 0, 96); // 96 snapshots, i_start 5: 90 windows of unroll 1
    let cases = [
        Case {
            name: "3 runs x 90 windows, unroll 1, 8 ranks",
            runs: vec![ninety("a"), ninety("b"), ninety("c")],
            unroll: 1,
            n_ranks: 8,
            block: 1,
            substeps: vec![1, 1, 1],
            max_over_min: 1.04,
        },
        Case {
            name: "3 runs, unroll 10, 8 ranks, block 4",
            runs: vec![ninety("a"), ninety("b"), ninety("c")],
            unroll: 10,
            n_ranks: 8,
            block: 4,
            substeps: vec![1, 1, 1],
            max_over_min: 1.15,
        },
        Case {
            name: "3 runs, unroll 10, 4 ranks, mixed substeps 1/3/8",
            runs: vec![ninety("a"), ninety("b"), ninety("c")],
            unroll: 10,
            n_ranks: 4,
            block: 2,
            substeps: vec![1, 3, 8],
            max_over_min: 1.10,
        },
        Case {
            name: "1 run, unroll 1, 2 ranks",
            runs: vec![ninety("a")],
            unroll: 1,
            n_ranks: 2,
            block: 1,
            substeps: vec![1],
            max_over_min: 1.0,
        },
        Case {
            name: "1 run, unroll 1, 3 ranks, block 8",
            runs: vec![ninety("a")],
            unroll: 1,
            n_ranks: 3,
            block: 8,
            substeps: vec![1],
            max_over_min: 1.34,
        },
        Case {
            name: "100 runs of varied length, unroll 5, 64 ranks, block 4",
            runs: (0..100).map(|i| meta("r", i % 3, 40 + (i * 37) % 60)).collect(),
            unroll: 5,
            n_ranks: 64,
            block: 4,
            substeps: (0..100).map(|i| 1 + (i % 4) as u64).collect(),
            max_over_min: 1.25,
        },
    ];
    for c in &cases {
        let samples = enumerate(&c.runs, 5, Unroll::Intervals(c.unroll)).unwrap();
        let cost = |s: &Sample| s.intervals as u64 * c.substeps[s.run];
        let loads = check_shard(&samples, &cost, c.n_ranks, c.block);
        let (max, min) = (*loads.iter().max().unwrap(), *loads.iter().min().unwrap());
        let ratio = max as f64 / min as f64;
        println!("{}: {} samples, rank costs {min}..{max}, max/min = {ratio:.3}", c.name, samples.len());
        assert!(ratio <= c.max_over_min, "{}: max/min {ratio:.3} > {}", c.name, c.max_over_min);
        assert!(loads.iter().all(|&l| l > 0), "{}: an idle rank", c.name);
    }
}

#[test]
fn snapshot_ranges_cover_exactly_what_a_shard_needs() {
    let runs = [meta("a", 0, 30), meta("b", 5, 20), meta("c", 0, 25)];
    let samples = enumerate(&runs, 5, Unroll::Intervals(3)).unwrap();
    let ranges = shard(&samples, |s| s.intervals as u64, 4, 2);
    let mut needed_reads = 0;
    for range in &ranges {
        let shard_samples = &samples[range.clone()];
        let snaps = snapshot_ranges(shard_samples);
        for s in shard_samples {
            let r = &snaps[&s.run];
            assert!(r.start <= s.start && s.start + s.intervals < r.end);
        }
        for (run, r) in &snaps {
            let mine: Vec<&Sample> = shard_samples.iter().filter(|s| s.run == *run).collect();
            assert_eq!(r.start, mine.iter().map(|s| s.start).min().unwrap());
            assert_eq!(r.end, mine.iter().map(|s| s.start + s.intervals + 1).max().unwrap());
            needed_reads += r.len();
        }
    }
    // Each rank reads only its part: far less than every rank reading every run.
    let whole: usize = runs.iter().map(|m| m.n_snapshots()).sum();
    assert!(needed_reads < whole + 4 * 2 * 3 * 2, "{needed_reads} snapshots read for {whole}");
    assert_eq!(
        snapshot_ranges(&[Sample { run: 2, start: 4, intervals: 2, channel: 0 }, Sample { run: 0, start: 9, intervals: 1, channel: 0 }]),
        BTreeMap::from([(0, 9..11), (2, 4..7)])
    );
    assert!(snapshot_ranges(&[]).is_empty());
}
