//! Configuration files: serde structs for the training config (unknown keys rejected with their
//! path) and validation of impossible settings before any work starts.
//!
//! Paths in a config are relative to the directory of the config file; the resolved config written
//! to a run directory holds them as given and the directory they are resolved against.

pub use crate::data::Unroll;
use crate::operator::ModelSpec;
use crate::solver::SolverSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A whole training config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub data: DataSpec,
    #[serde(default)]
    pub model: ModelSpec,
    #[serde(default)]
    pub solver: SolverSpec,
    pub train: TrainSpec,
    /// Directory relative paths are resolved against (default: the config file's directory;
    /// generated configs written elsewhere set it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dir: Option<PathBuf>,
}

fn default_i_start() -> usize {
    5
}

/// `data:` — which runs train and validate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Run files (HDF5) to train on: their histograms `/f`.
    #[serde(default)]
    pub train: Vec<PathBuf>,
    /// Run files held out for validation (takes precedence over `valid_fraction`).
    #[serde(default)]
    pub valid: Vec<PathBuf>,
    /// Seeded random fraction of the training windows held out for validation (0 = none).
    #[serde(default)]
    pub valid_fraction: f64,
    /// First snapshot used, in each run's own numbering round(t/dt).
    #[serde(default = "default_i_start")]
    pub i_start: usize,
    /// Budget in MiB for the snapshots a rank holds (omit: unlimited). A shard larger than this
    /// is streamed from the run files window by window instead of loaded up front; the model is
    /// bitwise the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_mb: Option<f64>,
    /// Weight of the histogram windows' loss against the track sources' (`tracks[].weight`).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub histogram_weight: f64,
    /// Transition windows of tracked particles (see [`crate::data::transitions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TracksSpec>,
}

fn one() -> f64 {
    1.0
}
fn is_one(x: &f64) -> bool {
    *x == 1.0
}
fn default_delay() -> usize {
    5
}
fn default_min_particles() -> usize {
    100
}
/// Default probability floor of the likelihood loss (`data.tracks[].floor`).
pub const DEFAULT_LIKELIHOOD_FLOOR: f64 = 1e-10;

fn default_floor() -> f64 {
    DEFAULT_LIKELIHOOD_FLOOR
}
fn yes() -> bool {
    true
}

/// `data.tracks[]` — one source of transition windows: run files with `/tracks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracksSpec {
    /// Run files whose `/tracks` give the windows.
    pub runs: Vec<PathBuf>,
    /// Start snapshots, in each run's own numbering round(t/dt).
    #[serde(default)]
    pub starts: StartsSpec,
    /// Snapshots between the selection and a window's initial state (see
    /// [`crate::data::transitions`]: 0 makes the initial state the selected cells themselves).
    #[serde(default = "default_delay")]
    pub delay: usize,
    /// Most snapshot intervals a window rolls (K); a stage rolls min(unroll, lags), `all` lags.
    pub lags: usize,
    /// Fewest particles a start bin must select to give a window.
    #[serde(default = "default_min_particles")]
    pub min_particles: usize,
    /// Grid cells per start bin along each axis.
    #[serde(default = "one_usize")]
    pub start_bin: usize,
    /// One window per start bin over all start snapshots (static models on evenly spaced runs).
    #[serde(default = "yes")]
    pub pool_starts: bool,
    /// Loss of these windows: likelihood (default), mae or mse.
    #[serde(default = "likelihood")]
    pub loss: LossKind,
    /// Floor added to every predicted cell before the likelihood normalises the prediction.
    #[serde(default = "default_floor")]
    pub floor: f64,
    /// Weight of this source's loss (histogram windows: `data.histogram_weight`).
    #[serde(default = "one")]
    pub weight: f64,
}

fn one_usize() -> usize {
    1
}
fn likelihood() -> LossKind {
    LossKind::Likelihood
}

/// `data.tracks[].starts` — start snapshots `first, first + every, …` up to `last` (each run's
/// own numbering; default: from `data.i_start` to the last that leaves room for delay + lags).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartsSpec {
    #[serde(default)]
    pub first: Option<usize>,
    #[serde(default)]
    pub last: Option<usize>,
    #[serde(default)]
    pub every: Option<usize>,
}

impl DataSpec {
    /// `cache_mb` in bytes (`None`: unlimited).
    pub fn cache_bytes(&self) -> Option<usize> {
        self.cache_mb.filter(|mb| mb.is_finite()).map(|mb| (mb * 1024.0 * 1024.0) as usize)
    }
}

/// Loss between predicted and observed snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Mean absolute error.
    #[default]
    Mae,
    /// Mean squared error.
    Mse,
    /// Negative log-likelihood of the observed particles' cells under the predicted
    /// distribution, as the Kullback–Leibler divergence Σ obs·ln((obs/Σobs)/p) with
    /// p = q/Σq, q = max(pred, 0) + floor (see `train::loss`; for transition windows).
    Likelihood,
}

/// Which predicted snapshots enter the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LossMode {
    /// Mean over all K predicted snapshots.
    #[default]
    Accumulated,
    /// The last predicted snapshot only.
    Last,
}

/// One curriculum stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub unroll: Unroll,
    pub epochs: usize,
    /// Learning rate; defaults to the previous stage's (1e-3 for the first).
    #[serde(default)]
    pub lr: Option<f64>,
}

fn default_seed() -> u64 {
    42
}
fn default_log_every() -> usize {
    10
}

/// `train:` — optimisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub loss: LossKind,
    #[serde(default)]
    pub loss_mode: LossMode,
    pub stages: Vec<Stage>,
    /// Global mini-batch size in samples (omit for full batch).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Write `checkpoint.h5` every this many epochs (0 = only on SIGTERM/SIGUSR1).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Log a progress line every this many epochs when not on a terminal.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
}

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("{path}: {key}: {msg}")]
    Invalid { path: String, key: String, msg: String },
}

/// Parse YAML into `T`, rejecting unknown keys with the key's path in the message.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    serde_yaml::from_str(text).map_err(|e| ConfigError::Parse { path: path.display().to_string(), msg: e.to_string() })
}

/// Read and parse a YAML file into `T`.
pub fn load_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.display().to_string(), source: e })?;
    parse_yaml(&text, path)
}

impl TrainConfig {
    /// Load, resolve paths against the file's directory, and validate.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: TrainConfig = load_yaml(path)?;
        if cfg.base_dir.is_none() {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
            // Absolute, so the copy written to a run directory resolves from anywhere (resume).
            cfg.base_dir = Some(std::fs::canonicalize(&dir).unwrap_or(dir));
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// A path of the config resolved against its base directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        match &self.base_dir {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        }
    }

    pub fn train_files(&self) -> Vec<PathBuf> {
        self.data.train.iter().map(|p| self.resolve(p)).collect()
    }

    pub fn valid_files(&self) -> Vec<PathBuf> {
        self.data.valid.iter().map(|p| self.resolve(p)).collect()
    }

    /// The run files of the track sources, source by source.
    pub fn track_files(&self) -> Vec<PathBuf> {
        self.data.tracks.iter().flat_map(|t| t.runs.iter().map(|p| self.resolve(p))).collect()
    }

    /// Learning rate of stage `i` (inherited from earlier stages when omitted).
    pub fn stage_lr(&self, i: usize) -> f64 {
        self.train.stages[..=i].iter().rev().find_map(|s| s.lr).unwrap_or(1e-3)
    }

    /// Checks that need no data: every impossible setting named by its key.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, msg: String| ConfigError::Invalid { path: path.display().to_string(), key: key.into(), msg };
        if self.data.train.is_empty() && self.data.tracks.is_empty() {
            return Err(bad("data.train", "needs at least one run file (or a data.tracks source)".into()));
        }
        if !(self.data.histogram_weight >= 0.0 && self.data.histogram_weight.is_finite()) {
            return Err(bad("data.histogram_weight", format!("must be finite and ≥ 0, got {}", self.data.histogram_weight)));
        }
        if self.train.loss == LossKind::Likelihood {
            return Err(bad("train.loss", "likelihood is for transition windows (data.tracks[].loss); histograms use mae or mse".into()));
        }
        for (i, t) in self.data.tracks.iter().enumerate() {
            let key = |k: &str| format!("data.tracks[{i}].{k}");
            if t.runs.is_empty() {
                return Err(bad(&key("runs"), "needs at least one run file with /tracks".into()));
            }
            if t.lags == 0 {
                return Err(bad(&key("lags"), "must be ≥ 1".into()));
            }
            if t.start_bin == 0 {
                return Err(bad(&key("start_bin"), "must be ≥ 1".into()));
            }
            if t.starts.every == Some(0) {
                return Err(bad(&key("starts.every"), "must be ≥ 1".into()));
            }
            if let (Some(a), Some(b)) = (t.starts.first, t.starts.last) {
                if b < a {
                    return Err(bad(&key("starts.last"), format!("{b} is before starts.first = {a}")));
                }
            }
            if !(t.weight >= 0.0 && t.weight.is_finite()) {
                return Err(bad(&key("weight"), format!("must be finite and ≥ 0, got {}", t.weight)));
            }
            if !(t.floor > 0.0 && t.floor < 1.0) {
                return Err(bad(&key("floor"), format!("must be in (0, 1), got {}", t.floor)));
            }
        }
        let vf = self.data.valid_fraction;
        if !(0.0..1.0).contains(&vf) {
            return Err(bad("data.valid_fraction", format!("must be in [0, 1), got {vf}")));
        }
        if let Some(mb) = self.data.cache_mb {
            if mb.is_nan() || mb <= 0.0 {
                return Err(bad("data.cache_mb", format!("must be a positive number of MiB (omit it for no limit), got {mb}")));
            }
        }
        if self.train.stages.is_empty() {
            return Err(bad("train.stages", "needs at least one stage".into()));
        }
        for (i, s) in self.train.stages.iter().enumerate() {
            if s.epochs == 0 {
                return Err(bad(&format!("train.stages[{i}].epochs"), "must be ≥ 1 (remove the stage to skip it)".into()));
            }
            if let Some(lr) = s.lr {
                if !(lr > 0.0 && lr.is_finite()) {
                    return Err(bad(&format!("train.stages[{i}].lr"), format!("must be a positive number, got {lr}")));
                }
            }
        }
        if self.train.batch_size == Some(0) {
            return Err(bad("train.batch_size", "must be ≥ 1 (omit it for full batch)".into()));
        }
        if let crate::solver::Substeps::Fixed(0) = self.solver.substeps {
            return Err(bad("solver.substeps", "must be ≥ 1 or `auto`".into()));
        }
        if let crate::solver::Checkpoints::Count(0) = self.solver.checkpoints {
            return Err(bad("solver.checkpoints", "must be ≥ 1, `auto` or `all`".into()));
        }
        if self.solver.memory_budget_mb.is_nan() || self.solver.memory_budget_mb <= 0.0 {
            return Err(bad("solver.memory_budget_mb", "must be positive".into()));
        }
        Ok(())
    }
}

/// Whether `new` may continue a run made with `old`: only the curriculum may grow — stages
/// appended, more epochs in a stage — and the reporting cadence (`log_every`,
/// `checkpoint_every`) may change. Anything that changes the data, model, solver, loss,
/// batches, seed or an existing stage's unroll or learning rate would make the resumed run a
/// different training, and is refused, naming the key.
pub fn check_resume_compatible(old: &TrainConfig, new: &TrainConfig) -> anyhow::Result<()> {
    let same = |key: &str, a: bool| -> anyhow::Result<()> {
        anyhow::ensure!(a, "`{key}` differs from the run's config.yaml (only stages appended, more epochs, log_every, checkpoint_every and data.cache_mb may change)");
        Ok(())
    };
    same("data", old.train_files() == new.train_files() && old.valid_files() == new.valid_files() && old.data.valid_fraction == new.data.valid_fraction && old.data.i_start == new.data.i_start)?;
    same("data.tracks", old.data.tracks.len() == new.data.tracks.len() && old.track_files() == new.track_files() && old.data.tracks.iter().zip(&new.data.tracks).all(|(a, b)| TracksSpec { runs: Vec::new(), ..a.clone() } == TracksSpec { runs: Vec::new(), ..b.clone() }))?;
    same("data.histogram_weight", old.data.histogram_weight == new.data.histogram_weight)?;
    same("model", old.model == new.model)?;
    same("solver", old.solver == new.solver)?;
    same("train.seed", old.train.seed == new.train.seed)?;
    same("train.loss", old.train.loss == new.train.loss)?;
    same("train.loss_mode", old.train.loss_mode == new.train.loss_mode)?;
    same("train.batch_size", old.train.batch_size == new.train.batch_size)?;
    anyhow::ensure!(
        new.train.stages.len() >= old.train.stages.len(),
        "`train.stages` has {} stages, the run's config.yaml {}: stages may be appended, not removed",
        new.train.stages.len(),
        old.train.stages.len()
    );
    for (i, (o, n)) in old.train.stages.iter().zip(&new.train.stages).enumerate() {
        same(&format!("train.stages[{i}].unroll"), o.unroll == n.unroll)?;
        same(&format!("train.stages[{i}].lr"), old.stage_lr(i) == new.stage_lr(i))?;
        anyhow::ensure!(n.epochs >= o.epochs, "`train.stages[{i}].epochs` is {}, the run's config.yaml has {}: epochs may grow, not shrink", n.epochs, o.epochs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
data: { train: [a.h5, b.h5], valid_fraction: 0.05 }
model: { kind: par-perp, n_radial: 26 }
solver: { scheme: central, boundary: guard, clamp_nonnegative: true, substeps: 1 }
train:
  seed: 42
  stages: [ {unroll: 1, epochs: 10, lr: 1.0e-3}, {unroll: 10, epochs: 5}, {unroll: all, epochs: 2, lr: 1.0e-4} ]
";

    /// `text` parses but fails validation with an error naming `key`.
    fn assert_rejected(text: &str, key: &str) {
        let cfg: TrainConfig = parse_yaml(text, Path::new("c.yaml")).unwrap();
        let e = cfg.validate(Path::new("c.yaml")).unwrap_err().to_string();
        assert!(e.contains(key), "{e} should name {key}");
    }

    #[test]
    fn parses_and_inherits_lr() {
        let cfg: TrainConfig = parse_yaml(GOOD, Path::new("c.yaml")).unwrap();
        cfg.validate(Path::new("c.yaml")).unwrap();
        assert_eq!(cfg.data.i_start, 5);
        assert_eq!(cfg.stage_lr(1), 1e-3);
        assert_eq!(cfg.stage_lr(2), 1e-4);
        assert_eq!(cfg.train.stages[2].unroll, Unroll::All);
        assert_eq!(cfg.data.cache_bytes(), None, "no budget by default");
        let with: TrainConfig = parse_yaml(&GOOD.replace("valid_fraction:", "cache_mb: 1.5, valid_fraction:"), Path::new("c.yaml")).unwrap();
        with.validate(Path::new("c.yaml")).unwrap();
        assert_eq!(with.data.cache_bytes(), Some(1_572_864));
    }

    #[test]
    fn unknown_key_names_its_path() {
        let text = GOOD.replace("n_radial: 26", "n_radial: 26, n_radiall: 3");
        let e = parse_yaml::<TrainConfig>(&text, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(e.contains("c.yaml") && e.contains("model") && e.contains("n_radiall"), "{e}");
        let text = GOOD.replace("seed: 42", "seed: 42\n  sede: 1");
        let e = parse_yaml::<TrainConfig>(&text, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(e.contains("train") && e.contains("sede"), "{e}");
    }

    #[test]
    fn zero_unroll_is_rejected_while_parsing() {
        let e = parse_yaml::<TrainConfig>(&GOOD.replace("{unroll: 1,", "{unroll: 0,"), Path::new("c.yaml")).unwrap_err().to_string();
        assert!(e.contains("unroll") && e.contains("c.yaml"), "{e}");
    }

    #[test]
    fn track_sources_parse_with_defaults_and_reject_bad_values() {
        let text = GOOD.replace("valid_fraction: 0.05 }", "valid_fraction: 0.05, tracks: [ { runs: [t.h5], lags: 8 } ] }");
        let cfg: TrainConfig = parse_yaml(&text, Path::new("c.yaml")).unwrap();
        cfg.validate(Path::new("c.yaml")).unwrap();
        let t = &cfg.data.tracks[0];
        assert_eq!((t.delay, t.start_bin, t.min_particles, t.pool_starts, t.loss, t.weight), (5, 1, 100, true, LossKind::Likelihood, 1.0));
        // Tracks alone are a data source.
        let alone: TrainConfig = parse_yaml(&text.replace("train: [a.h5, b.h5], ", ""), Path::new("c.yaml")).unwrap();
        alone.validate(Path::new("c.yaml")).unwrap();
        let e = parse_yaml::<TrainConfig>(&text.replace("lags: 8", "lags: 8, lag: 2"), Path::new("c.yaml")).unwrap_err().to_string();
        assert!(e.contains("lag"), "{e}");
        for (from, to, key) in [
            ("lags: 8", "lags: 0", "data.tracks[0].lags"),
            ("lags: 8", "lags: 8, start_bin: 0", "data.tracks[0].start_bin"),
            ("lags: 8", "lags: 8, floor: 0", "data.tracks[0].floor"),
            ("lags: 8", "lags: 8, weight: -1", "data.tracks[0].weight"),
            ("lags: 8", "lags: 8, starts: { every: 0 }", "data.tracks[0].starts.every"),
            ("lags: 8", "lags: 8, starts: { first: 9, last: 3 }", "data.tracks[0].starts.last"),
            ("runs: [t.h5]", "runs: []", "data.tracks[0].runs"),
            ("seed: 42", "seed: 42\n  loss: likelihood", "train.loss"),
        ] {
            assert_rejected(&text.replace(from, to), key);
        }
    }

    #[test]
    fn impossible_settings() {
        for (from, to, key) in [
            ("lr: 1.0e-3", "lr: -1.0", "train.stages[0].lr"),
            ("[a.h5, b.h5]", "[]", "data.train"),
            ("valid_fraction: 0.05", "valid_fraction: 1.5", "data.valid_fraction"),
            ("substeps: 1", "substeps: 0", "solver.substeps"),
            ("valid_fraction: 0.05", "cache_mb: 0, valid_fraction: 0.05", "data.cache_mb"),
            ("valid_fraction: 0.05", "cache_mb: -2.5, valid_fraction: 0.05", "data.cache_mb"),
            ("valid_fraction: 0.05", "cache_mb: .nan, valid_fraction: 0.05", "data.cache_mb"),
        ] {
            assert_rejected(&GOOD.replace(from, to), key);
        }
    }
}
