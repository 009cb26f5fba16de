//! The `model:` section of a config: which operator model and its options.

use serde::{Deserialize, Serialize};

/// Model configuration (`model:` in YAML). Filled in by the operator module.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub kind: String,
}
