//! Parameter-space campaigns of PIC runs: expand a sweep into one PIC config per run and a
//! manifest ([`plan`]), then execute the runs spread over ranks and resume after interruption
//! ([`execute`]).

use crate::pic::PicConfig;
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod execute;
pub use execute::{assign, execute, output_is_current, run_and_write, Summary};

/// File name of the manifest inside a campaign directory.
pub const MANIFEST: &str = "manifest.json";

/// Why a campaign cannot be planned or run.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("campaign key `{key}`: {msg}")]
    Key { key: String, msg: String },
    #[error("--only {id}: the campaign has runs 0..{count}")]
    NoSuchRun { id: usize, count: usize },
    #[error("run {name}: {msg}")]
    Run { name: String, msg: String },
}

impl From<std::io::Error> for CampaignError {
    fn from(e: std::io::Error) -> Self {
        CampaignError::File { path: "(write)".into(), msg: e.to_string() }
    }
}

fn file_error(path: &Path, msg: impl std::fmt::Display) -> CampaignError {
    CampaignError::File { path: path.display().to_string(), msg: crate::pic::config::one_line(&msg.to_string()) }
}

/// A campaign file (`configs/campaign.yaml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    /// Label of the campaign, recorded in the manifest.
    #[serde(default = "default_name")]
    pub name: String,
    /// The PIC config every run starts from (same keys as `configs/pic.yaml`).
    #[serde(default)]
    pub base: Option<Value>,
    /// Alternatively a PIC config file, relative to the campaign file.
    #[serde(default)]
    pub base_file: Option<PathBuf>,
    /// Dotted PIC config keys → a list of values or a range; the runs are the Cartesian product
    /// (first key slowest).
    #[serde(default)]
    pub sweep: Mapping,
}

fn default_name() -> String {
    "campaign".into()
}

/// `{from, to, count}` (inclusive, evenly spaced) or `{from, to, step}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: Value,
    to: Value,
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    step: Option<Value>,
}

/// The swept values of one run: dotted key → value.
pub type SweptValues = BTreeMap<String, serde_json::Value>;

/// One planned run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    pub id: usize,
    pub name: String,
    /// Config file, relative to the campaign directory.
    pub config: String,
    /// Output run file, relative to the campaign directory.
    pub output: String,
    /// Cost estimate in particle-steps (cells × ppc + test particles) × steps.
    pub cost: f64,
    /// The swept values of this run (dotted key → value).
    pub sweep: BTreeMap<String, serde_json::Value>,
    /// The run's `/params`, for use as training conditioners.
    pub params: BTreeMap<String, f64>,
}

/// The run list of a planned campaign (`manifest.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub runs: Vec<PlannedRun>,
}

impl Manifest {
    /// Read `DIR/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self, CampaignError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
        serde_json::from_str(&text).map_err(|e| file_error(&path, e))
    }
}

impl CampaignConfig {
    /// Read a campaign file.
    pub fn load(path: &Path) -> Result<Self, CampaignError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        let mut cfg: Self = serde_yaml::from_str(&text).map_err(|e| file_error(path, e))?;
        if let Some(rel) = cfg.base_file.take() {
            if cfg.base.is_some() {
                return Err(CampaignError::Key {
                    key: "base_file".into(),
                    msg: "give either base or base_file".into(),
                });
            }
            let base_path = path.parent().unwrap_or(Path::new(".")).join(rel);
            let text = std::fs::read_to_string(&base_path).map_err(|e| file_error(&base_path, e))?;
            cfg.base = Some(serde_yaml::from_str(&text).map_err(|e| file_error(&base_path, e))?);
        }
        Ok(cfg)
    }

    /// Expand the sweep into validated PIC configs with their swept values.
    pub fn expand(&self) -> Result<Vec<(PicConfig, SweptValues)>, CampaignError> {
        let base = self
            .base
            .clone()
            .ok_or_else(|| CampaignError::Key { key: "base".into(), msg: "a base PIC config is required".into() })?;
        let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
        for (key, spec) in &self.sweep {
            let key = key.as_str().ok_or_else(|| CampaignError::Key {
                key: format!("{key:?}"),
                msg: "sweep keys are dotted strings".into(),
            })?;
            let values = sweep_values(key, spec)?;
            axes.push((key.to_string(), values));
        }
        let total: usize = axes.iter().map(|(_, v)| v.len()).product();
        let mut out = Vec::with_capacity(total);
        for index in 0..total {
            let mut doc = base.clone();
            let mut swept = BTreeMap::new();
            let mut rest = index;
            // Last axis fastest.
            let mut picks = vec![0; axes.len()];
            for (a, (_, values)) in axes.iter().enumerate().rev() {
                picks[a] = rest % values.len();
                rest /= values.len();
            }
            for ((key, values), &pick) in axes.iter().zip(&picks) {
                let value = &values[pick];
                set_dotted(&mut doc, key, value.clone())?;
                swept.insert(key.clone(), serde_json::to_value(value).unwrap_or(serde_json::Value::Null));
            }
            let text = serde_yaml::to_string(&doc).expect("a YAML value serialises");
            let cfg = PicConfig::from_yaml(&text, &format!("campaign run {index}"))
                .map_err(|e| CampaignError::Run { name: run_name(index), msg: e.to_string() })?;
            out.push((cfg, swept));
        }
        Ok(out)
    }
}

/// Name of run `id`: `run-0007`.
pub fn run_name(id: usize) -> String {
    format!("run-{id:04}")
}

fn sweep_values(key: &str, spec: &Value) -> Result<Vec<Value>, CampaignError> {
    let bad = |msg: String| CampaignError::Key { key: format!("sweep.{key}"), msg };
    let values = match spec {
        Value::Sequence(list) => list.clone(),
        Value::Mapping(_) => {
            let range: Range =
                serde_yaml::from_value(spec.clone()).map_err(|e| bad(crate::pic::config::one_line(&e.to_string())))?;
            let num = |v: &Value| v.as_f64().ok_or_else(|| bad("range bounds must be numbers".into()));
            let (from, to) = (num(&range.from)?, num(&range.to)?);
            let integral = range.from.is_i64() && range.to.is_i64() && range.step.as_ref().is_none_or(|s| s.is_i64());
            let floats: Vec<f64> = match (range.count, &range.step) {
                (Some(count), None) if count >= 1 => {
                    if count == 1 {
                        vec![from]
                    } else {
                        (0..count).map(|i| from + (to - from) * i as f64 / (count - 1) as f64).collect()
                    }
                }
                (None, Some(step)) => {
                    let step = num(step)?;
                    if step.is_nan() || step <= 0.0 || to < from {
                        return Err(bad("a step range needs step > 0 and from ≤ to".into()));
                    }
                    let n = ((to - from) / step + 1e-9).floor() as usize + 1;
                    if n > 100_000 {
                        return Err(bad(format!("{n} values is too many")));
                    }
                    (0..n).map(|i| from + step * i as f64).collect()
                }
                _ => return Err(bad("a range needs exactly one of count (≥ 1) or step".into())),
            };
            floats
                .into_iter()
                .map(|v| if integral && v.fract() == 0.0 { Value::from(v as i64) } else { Value::from(v) })
                .collect()
        }
        single => vec![single.clone()],
    };
    if values.is_empty() {
        return Err(bad("needs at least one value".into()));
    }
    Ok(values)
}

/// Set `a.b.c` in a YAML mapping, creating intermediate mappings.
fn set_dotted(doc: &mut Value, key: &str, value: Value) -> Result<(), CampaignError> {
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let map = match node {
            Value::Mapping(m) => m,
            Value::Null => {
                *node = Value::Mapping(Mapping::new());
                match node {
                    Value::Mapping(m) => m,
                    _ => unreachable!(),
                }
            }
            _ => {
                return Err(CampaignError::Key {
                    key: format!("sweep.{key}"),
                    msg: format!("`{}` is not a section of the PIC config", parts[..i].join(".")),
                })
            }
        };
        let k = Value::from(*part);
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        node = map.entry(k).or_insert(Value::Null);
    }
    Ok(())
}

/// Expand `campaign` into `dir`: `runs/run-NNNN.yaml` per run and `manifest.json`, written
/// atomically. Re-planning the same campaign into the same directory is a no-op; a different
/// plan over an existing one is refused (its outputs would no longer match).
pub fn plan(campaign: &CampaignConfig, dir: &Path) -> Result<Manifest, CampaignError> {
    let expanded = campaign.expand()?;
    let runs = expanded
        .iter()
        .enumerate()
        .map(|(id, (cfg, sweep))| PlannedRun {
            id,
            name: run_name(id),
            config: format!("runs/{}.yaml", run_name(id)),
            output: format!("runs/{}.h5", run_name(id)),
            cost: cfg.cost(),
            sweep: sweep.clone(),
            params: crate::pic::params(cfg),
        })
        .collect();
    let manifest = Manifest { name: campaign.name.clone(), runs };
    if dir.join(MANIFEST).exists() {
        let old = Manifest::load(dir)?;
        if old != manifest {
            return Err(file_error(&dir.join(MANIFEST), "already holds a different plan; plan into a new directory"));
        }
    }
    for (run, (cfg, _)) in manifest.runs.iter().zip(&expanded) {
        let path = dir.join(&run.config);
        crate::io::write_bytes_atomic(&path, cfg.to_yaml().as_bytes()).map_err(|e| file_error(&path, e))?;
    }
    let path = dir.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    crate::io::write_bytes_atomic(&path, json.as_bytes()).map_err(|e| file_error(&path, e))?;
    Ok(manifest)
}
