//! `keygen` and `secrets init`.
// STUB: owned by the secrets work.

use std::path::Path;

use ospw_matrix::Error;

/// Prints one new signing key.
pub fn keygen() -> Result<(), Error> {
    Err(Error::Other("keygen: not built yet".into()))
}

/// Creates every missing secret in `dir`.
pub fn init(_dir: &Path) -> Result<(), Error> {
    Err(Error::Other("secrets init: not built yet".into()))
}
