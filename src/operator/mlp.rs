//! mlp models (placeholder).

use super::{BuildInfo, ModelError, ModelSpec, OperatorModel};

pub fn build(_spec: &ModelSpec, _info: &BuildInfo) -> Result<Box<dyn OperatorModel>, ModelError> {
    Err(ModelError::Invalid("mlp models not implemented yet".into()))
}
