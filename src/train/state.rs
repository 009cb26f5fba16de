//! Resumable training state (`checkpoint.h5`): parameters, Adam moments, position in the
//! curriculum and the best models so far. Written atomically by rank 0.
//!
//! The file carries a `format_version` attribute ([`FORMAT_VERSION`]); a checkpoint without it, or
//! with another version, is refused with one line instead of being misread.

use crate::train::adam::Adam;
use hdf5::types::VarLenUnicode;
use ndarray::Array1;
use std::path::Path;

/// Version of the checkpoint layout written and read here. Raise it whenever a dataset or
/// attribute changes meaning, is added that a resume needs, or is removed.
pub const FORMAT_VERSION: u64 = 1;

/// Best model of one stage: its selection loss and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Best {
    pub loss: f64,
    pub epoch: usize,
    pub theta: Vec<f64>,
}

/// Everything needed to continue training bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    pub theta: Vec<f64>,
    pub adam: Adam,
    /// Stage and epoch to run next.
    pub stage: usize,
    pub epoch: usize,
    /// Best model per stage (`None` for stages not started).
    pub best: Vec<Option<Best>>,
    /// Wall-clock seconds spent before this checkpoint.
    pub seconds: f64,
    pub seed: u64,
}

fn h5err(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", path.display())
}

impl TrainState {
    /// The state before the first epoch.
    pub fn new(theta: Vec<f64>, n_stages: usize, seed: u64) -> Self {
        Self { adam: Adam::new(theta.len()), theta, stage: 0, epoch: 0, best: vec![None; n_stages], seconds: 0.0, seed }
    }

    /// Count one finished epoch of the current stage, which has `epochs` epochs.
    pub fn advance(&mut self, epochs: usize) {
        self.epoch += 1;
        if self.epoch >= epochs {
            self.stage += 1;
            self.epoch = 0;
        }
    }

    /// Write atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::io::write_atomic(path, |tmp| -> anyhow::Result<()> {
            let f = crate::io::h5_create(tmp).map_err(|e| h5err(path, e))?;
            let w = |name: &str, v: &[f64]| -> hdf5::Result<()> {
                f.new_dataset_builder().with_data(&Array1::from(v.to_vec())).create(name).map(|_| ())
            };
            w("theta", &self.theta).map_err(|e| h5err(path, e))?;
            w("adam_m", &self.adam.m).map_err(|e| h5err(path, e))?;
            w("adam_v", &self.adam.v).map_err(|e| h5err(path, e))?;
            let scalars: [(&str, u64); 5] =
                [("format_version", FORMAT_VERSION), ("adam_step", self.adam.step), ("stage", self.stage as u64), ("epoch", self.epoch as u64), ("seed", self.seed)];
            for (k, v) in scalars {
                f.new_attr::<u64>().shape(()).create(k).and_then(|a| a.write_scalar(&v)).map_err(|e| h5err(path, e))?;
            }
            f.new_attr::<f64>().shape(()).create("seconds").and_then(|a| a.write_scalar(&self.seconds)).map_err(|e| h5err(path, e))?;
            let g = f.create_group("best").map_err(|e| h5err(path, e))?;
            for (i, b) in self.best.iter().enumerate() {
                if let Some(b) = b {
                    let ds = g
                        .new_dataset_builder()
                        .with_data(&Array1::from(b.theta.clone()))
                        .create(format!("stage{i}").as_str())
                        .map_err(|e| h5err(path, e))?;
                    ds.new_attr::<f64>().shape(()).create("loss").and_then(|a| a.write_scalar(&b.loss)).map_err(|e| h5err(path, e))?;
                    ds.new_attr::<u64>()
                        .shape(())
                        .create("epoch")
                        .and_then(|a| a.write_scalar(&(b.epoch as u64)))
                        .map_err(|e| h5err(path, e))?;
                }
            }
            let note: VarLenUnicode = "colop training checkpoint".parse().expect("ascii");
            f.new_attr::<VarLenUnicode>().shape(()).create("format").and_then(|a| a.write_scalar(&note)).map_err(|e| h5err(path, e))?;
            f.flush().map_err(|e| h5err(path, e))?;
            Ok(())
        })
    }

    /// Read and check against the expected parameter count and number of stages.
    pub fn load(path: &Path, n_params: usize, n_stages: usize) -> anyhow::Result<Self> {
        let f = crate::io::h5_open(path).map_err(|e| h5err(path, format!("not a readable checkpoint ({e})")))?;
        let r = |name: &str| -> anyhow::Result<Vec<f64>> {
            let v: Vec<f64> = f.dataset(name).and_then(|d| d.read_raw()).map_err(|e| h5err(path, format!("dataset `{name}`: {e}")))?;
            anyhow::ensure!(v.len() == n_params, "{}: dataset `{name}` has {} values, the model has {n_params} parameters", path.display(), v.len());
            Ok(v)
        };
        let u = |name: &str| -> anyhow::Result<u64> { f.attr(name).and_then(|a| a.read_scalar()).map_err(|e| h5err(path, format!("attribute `{name}`: {e}"))) };
        match f.attr("format_version").and_then(|a| a.read_scalar::<u64>()) {
            Ok(FORMAT_VERSION) => {}
            Ok(v) => anyhow::bail!(
                "{}: checkpoint format version {v}, this colop reads version {FORMAT_VERSION}; resume it with the colop that wrote it, or start the run over",
                path.display()
            ),
            Err(_) => anyhow::bail!(
                "{}: checkpoint has no format version (written by an older colop, or not a colop checkpoint); this colop reads version {FORMAT_VERSION}; start the run over",
                path.display()
            ),
        }
        let theta = r("theta")?;
        let mut adam = Adam::new(n_params);
        adam.m = r("adam_m")?;
        adam.v = r("adam_v")?;
        adam.step = u("adam_step")?;
        let stage = u("stage")? as usize;
        anyhow::ensure!(stage <= n_stages, "{}: checkpoint is at stage {stage}, the config has {n_stages}", path.display());
        let mut best = vec![None; n_stages];
        if let Ok(g) = f.group("best") {
            for (i, slot) in best.iter_mut().enumerate() {
                if let Ok(ds) = g.dataset(&format!("stage{i}")) {
                    let theta: Vec<f64> = ds.read_raw().map_err(|e| h5err(path, e))?;
                    anyhow::ensure!(theta.len() == n_params, "{}: best/stage{i} has the wrong length", path.display());
                    let loss: f64 = ds.attr("loss").and_then(|a| a.read_scalar()).map_err(|e| h5err(path, e))?;
                    let epoch: u64 = ds.attr("epoch").and_then(|a| a.read_scalar()).map_err(|e| h5err(path, e))?;
                    *slot = Some(Best { loss, epoch: epoch as usize, theta });
                }
            }
        }
        let seconds: f64 = f.attr("seconds").and_then(|a| a.read_scalar()).unwrap_or(0.0);
        Ok(TrainState { theta, adam, stage, epoch: u("epoch")? as usize, best, seconds, seed: u("seed")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint.h5");
        let mut adam = Adam::new(3);
        adam.update(&mut [0.0; 3], &[1.0, 2.0, 3.0], 0.1);
        let s = TrainState {
            theta: vec![0.1, 0.2, f64::MIN_POSITIVE],
            adam,
            stage: 1,
            epoch: 7,
            best: vec![Some(Best { loss: 0.5, epoch: 3, theta: vec![1.0, 2.0, 3.0] }), None],
            seconds: 12.5,
            seed: 42,
        };
        s.save(&p).unwrap();
        assert_eq!(TrainState::load(&p, 3, 2).unwrap(), s);
        assert!(TrainState::load(&p, 4, 2).unwrap_err().to_string().contains("theta"));
    }

    fn set_version(p: &Path, v: Option<u64>) {
        let f = hdf5::File::open_rw(p).unwrap();
        if f.attr("format_version").is_ok() {
            f.delete_attr("format_version").unwrap();
        }
        if let Some(v) = v {
            f.new_attr::<u64>().shape(()).create("format_version").unwrap().write_scalar(&v).unwrap();
        }
    }

    #[test]
    fn other_or_missing_format_versions_are_refused_with_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint.h5");
        let s = TrainState { theta: vec![1.0], adam: Adam::new(1), stage: 0, epoch: 1, best: vec![None], seconds: 0.0, seed: 1 };
        s.save(&p).unwrap();
        let f = hdf5::File::open(&p).unwrap();
        assert_eq!(f.attr("format_version").unwrap().read_scalar::<u64>().unwrap(), FORMAT_VERSION);
        drop(f);
        set_version(&p, Some(FORMAT_VERSION + 1));
        let msg = TrainState::load(&p, 1, 1).unwrap_err().to_string();
        assert!(msg.contains("checkpoint.h5") && msg.contains(&format!("version {}", FORMAT_VERSION + 1)) && !msg.contains('\n'), "{msg}");
        set_version(&p, None);
        let msg = TrainState::load(&p, 1, 1).unwrap_err().to_string();
        assert!(msg.contains("no format version") && !msg.contains('\n'), "{msg}");
        set_version(&p, Some(FORMAT_VERSION));
        assert_eq!(TrainState::load(&p, 1, 1).unwrap(), s);
    }
}
