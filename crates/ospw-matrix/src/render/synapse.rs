//! Derives Synapse's configuration from the host description.
// STUB: owned by the Synapse work.

use crate::components::synapse::HomeserverConfig;
use crate::error::ValidationErrors;
use crate::host::HostDescription;
use crate::render::RenderContext;

/// Derives `homeserver.yaml`, merges `synapse.settings` last, and checks the
/// privacy invariants.
pub fn homeserver(
    _host: &HostDescription,
    _ctx: &RenderContext,
) -> Result<HomeserverConfig, ValidationErrors> {
    Ok(HomeserverConfig::default())
}

/// Synapse's logging configuration (to standard error, for the journal).
pub fn log_config(_host: &HostDescription) -> String {
    String::new()
}
