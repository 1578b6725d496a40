//! Synapse's `homeserver.yaml`.
// STUB: owned by the Synapse work; replaced by the typed model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationErrors;

/// Synapse's `homeserver.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HomeserverConfig {
    /// Keys the model does not know, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_yaml::Value>,
}

impl HomeserverConfig {
    /// Emits YAML.
    pub fn to_yaml_string(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }

    /// Lists every way this configuration breaks the privacy invariants.
    pub fn privacy_violations(&self) -> ValidationErrors {
        ValidationErrors::new()
    }
}
