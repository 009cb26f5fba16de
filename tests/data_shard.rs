//! Loading a shard: each rank reads only its hyperslabs, normalised like the whole run would be.

use colop::data::windows::{enumerate, shard, Sample, Unroll};
use colop::data::{normalisations, normalise, particle_count, read_run, write_run, RunData, RunFile, ShardData};
use colop::grid::VelocityGrid;
use ndarray::{s, Array3};
use std::collections::BTreeMap;

fn run(first: usize, n: usize, scale: f64) -> RunData {
    let f = Array3::from_shape_fn((n, 5, 4), |(k, i, j)| scale * (1.0 + ((k * 5 + i * 3 + j) % 11) as f64) / 7.0);
    RunData {
        grid: VelocityGrid::new(5, 4, [-2.0, 2.0, -1.0, 1.0], "v_th").unwrap(),
        n_particles: f.slice(s![0, .., ..]).sum(),
        f,
        t: (first..first + n).map(|i| i as f64).collect(),
        dt: 1.0,
        params: BTreeMap::new(),
        tracks: None,
        diagnostics: BTreeMap::new(),
        labels: Default::default(),
    }
}

#[test]
fn shards_read_their_windows_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = [(0, 30, 1.0), (5, 20, 3.0), (2, 12, 0.5)]
        .iter()
        .enumerate()
        .map(|(i, &(first, n, scale))| {
            let p = dir.path().join(format!("r{i}.h5"));
            write_run(&p, &run(first, n, scale)).unwrap();
            p
        })
        .collect();
    let files: Vec<RunFile> = paths.iter().map(|p| RunFile::open(p).unwrap()).collect();
    let i_start = 5;
    let norms = normalisations(&files, i_start).unwrap();
    let samples = enumerate(files.iter().map(|f| &f.meta), i_start, Unroll::Intervals(4)).unwrap();
    let whole: Vec<RunData> = paths.iter().map(|p| read_run(p).unwrap()).collect();
    let total_bytes: usize = whole.iter().map(|r| r.f.len() * 8).sum();

    let ranges = shard(&samples, |s| s.intervals as u64, 3, 2);
    for range in ranges {
        let mine = &samples[range];
        let data = ShardData::load(&files, mine, &norms).unwrap();
        assert!(data.bytes() < total_bytes / 2, "a shard holds {} of {total_bytes} bytes", data.bytes());
        for sample in mine {
            let mut expected = whole[sample.run].f.slice(s![sample.snapshots(), .., ..]).to_owned();
            let first = files[sample.run].meta.first_index(i_start).unwrap();
            normalise(&mut expected, particle_count(whole[sample.run].f.slice(s![first, .., ..])));
            assert_eq!(data.window(sample).unwrap(), expected);
        }
        // The first used snapshot of each run sums to one after normalisation.
        let firsts: Vec<&Sample> =
            mine.iter().filter(|s| Some(s.start) == files[s.run].meta.first_index(i_start)).collect();
        for s in firsts {
            assert!((data.window(s).unwrap().slice(s![0, .., ..]).sum() - 1.0).abs() < 1e-14);
        }
        assert!(data.window(&Sample { run: 9, start: 0, intervals: 1, channel: 0 }).is_none());
    }
    let err = ShardData::load(&files[..1], &samples, &norms).unwrap_err().to_string();
    assert!(err.contains("run 1"), "{err}");
}
