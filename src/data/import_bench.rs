//! Throughput of the PIC importers (`colop bench --what import`): writes a synthetic file-based
//! openPMD series and OSIRIS RAW dumps (warm plasma, uniform weights, in the page cache once
//! written) into a temporary folder and times `import` on them, in particles per second.

use super::particles::{self, Settings, C};
use crate::grid::VelocityGrid;
use hdf5::types::VarLenUnicode;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

const M_E: f64 = 9.109_383_701_5e-31;

fn text(loc: &hdf5::Location, name: &str, value: &str) -> hdf5::Result<()> {
    let v: VarLenUnicode = value.parse().map_err(|e| hdf5::Error::from(format!("{e}")))?;
    loc.new_attr::<VarLenUnicode>().shape(()).create(name)?.write_scalar(&v)
}

fn scalar(loc: &hdf5::Location, name: &str, value: f64) -> hdf5::Result<()> {
    loc.new_attr::<f64>().shape(()).create(name)?.write_scalar(&value)
}

/// Normal momenta u (units of m c), σ = 0.05, three components.
fn momenta(seed: u64, n: usize) -> [Vec<f64>; 3] {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = rand_distr::Normal::new(0.0, 0.05).expect("σ > 0");
    std::array::from_fn(|_| (0..n).map(|_| rng.sample(normal)).collect())
}

fn write_openpmd(dir: &Path, dumps: usize, n: usize) -> hdf5::Result<()> {
    for k in 0..dumps {
        let it = k * 10;
        let file = crate::io::h5_create(&dir.join(format!("data_{it:06}.h5")))?;
        text(&file, "openPMD", "1.1.0")?;
        text(&file, "iterationEncoding", "fileBased")?;
        text(&file, "iterationFormat", "data_%06T.h5")?;
        text(&file, "basePath", "/data/%T/")?;
        text(&file, "particlesPath", "particles/")?;
        let g = file.create_group(&format!("data/{it}"))?;
        scalar(&g, "time", it as f64 * 1e-16)?;
        scalar(&g, "dt", 1e-16)?;
        scalar(&g, "timeUnitSI", 1.0)?;
        let sp = g.create_group("particles/e")?;
        let mom = sp.create_group("momentum")?;
        mom.new_attr::<f64>().shape(7).create("unitDimension")?.write(&[1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0])?;
        mom.new_attr::<u32>().shape(()).create("macroWeighted")?.write_scalar(&0)?;
        scalar(&mom, "weightingPower", 1.0)?;
        let u = momenta(k as u64, n);
        for (c, axis) in ["x", "y", "z"].iter().enumerate() {
            let ds = mom.new_dataset_builder().with_data(u[c].as_slice()).create(*axis)?;
            scalar(&ds, "unitSI", M_E * C)?;
        }
        let mass = sp.create_group("mass")?;
        scalar(&mass, "value", M_E)?;
        scalar(&mass, "unitSI", 1.0)?;
        mass.new_attr::<u64>().shape(1).create("shape")?.write(&[n as u64])?;
        mass.new_attr::<f64>().shape(7).create("unitDimension")?.write(&[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])?;
        let w = sp.new_dataset_builder().with_data(vec![1.0f64; n].as_slice()).create("weighting")?;
        scalar(&w, "unitSI", 1.0)?;
    }
    Ok(())
}

fn write_osiris(dir: &Path, dumps: usize, n: usize) -> hdf5::Result<()> {
    for k in 0..dumps {
        let file = crate::io::h5_create(&dir.join(format!("RAW-e-{:06}.h5", k * 10)))?;
        text(&file, "TYPE", "particles")?;
        scalar(&file, "TIME", k as f64 * 0.5)?;
        text(&file, "TIME UNITS", "1 / \\omega_p")?;
        let u = momenta(k as u64, n);
        for (c, name) in ["p1", "p2", "p3"].iter().enumerate() {
            let v: Vec<f32> = u[c].iter().map(|&x| x as f32).collect();
            file.new_dataset_builder().with_data(v.as_slice()).create(*name)?;
        }
        file.new_dataset_builder().with_data(vec![-1.0f32; n].as_slice()).create("q")?;
    }
    Ok(())
}

fn time_import(src: &dyn particles::DumpSource, out: &Path, reps: usize) -> anyhow::Result<f64> {
    let settings = Settings {
        grid: VelocityGrid::square(64, 5.0)?,
        v_th: 0.05,
        tracks: 0,
        params: BTreeMap::new(),
        labels: BTreeMap::new(),
    };
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        particles::import(src, &settings, out, "bench import")?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Import throughput of both importers on `dumps` dumps of `n` particles: JSON with seconds and
/// particles/s (best of `reps`).
pub fn import_benchmark(dumps: usize, n: usize, reps: usize) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let (pmd, osiris) = (dir.path().join("openpmd"), dir.path().join("MS/RAW/e"));
    std::fs::create_dir_all(&pmd)?;
    std::fs::create_dir_all(&osiris)?;
    write_openpmd(&pmd, dumps, n)?;
    write_osiris(&osiris, dumps, n)?;
    let total = (dumps * n) as f64;
    let out = dir.path().join("run.h5");
    let series = super::openpmd::Series::open(&pmd.join("data_%06T.h5"))?;
    let omega_p = particles::electron_plasma_frequency(1e24);
    let pmd_s = time_import(&series.species("e", [0, 1], omega_p)?, &out, reps)?;
    let raw = super::osiris::RawDumps::open(dir.path(), "e", [0, 1], |_| true)?;
    let osiris_s = time_import(&raw, &out, reps)?;
    Ok(serde_json::json!({
        "dumps": dumps,
        "particles_per_dump": n,
        "threads": rayon::current_num_threads(),
        "grid": [64, 64],
        "openpmd_hdf5_f64": { "seconds": pmd_s, "particles_per_s": total / pmd_s },
        "osiris_raw_f32": { "seconds": osiris_s, "particles_per_s": total / osiris_s },
        "note": "files in the page cache (written just before); momenta and weights read, no ids",
    }))
}
