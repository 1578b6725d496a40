//! Element Web's `config.json`.
// STUB: owned by the Element work; replaced by the typed model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Element Web's `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ElementConfig {
    /// Keys the model does not know, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ElementConfig {
    /// Emits pretty-printed JSON.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
