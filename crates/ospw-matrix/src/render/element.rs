//! Derives Element Web's configuration from the host description.
// STUB: owned by the Element work.

use crate::components::element::ElementConfig;
use crate::error::ValidationErrors;
use crate::host::HostDescription;

/// Derives `config.json`, merges `element.settings` last, and checks the
/// privacy invariants.
pub fn config(_host: &HostDescription) -> Result<ElementConfig, ValidationErrors> {
    Ok(ElementConfig::default())
}
