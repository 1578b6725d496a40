//! `materialize coturn`.
// STUB: owned by the coturn work.

use std::path::Path;

use ospw_matrix::Error;

/// Writes coturn's runtime configuration with the secret filled in.
pub fn coturn(_template: &Path, _secret_file: &Path, _out: &Path) -> Result<(), Error> {
    Err(Error::Other("materialize coturn: not built yet".into()))
}
