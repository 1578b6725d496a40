//! Derives `/.well-known/matrix/client`.
// STUB: owned by the Caddy work.

use crate::host::HostDescription;

/// The client discovery document pointing at the Matrix host.
pub fn client(_host: &HostDescription) -> String {
    String::new()
}
