//! Derives coturn's configuration from the host description.
// STUB: owned by the coturn work.

use crate::components::coturn::TurnserverConf;
use crate::error::ValidationErrors;
use crate::host::HostDescription;

/// Derives `turnserver.conf` (without its secret), merges `turn.settings`
/// last, and checks the privacy invariants.
pub fn turnserver(_host: &HostDescription) -> Result<TurnserverConf, ValidationErrors> {
    Ok(TurnserverConf::default())
}
