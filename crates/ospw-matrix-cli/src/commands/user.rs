//! `user add`.
// STUB: owned by the accounts work.

use ospw_matrix::Error;

/// Arguments of `user add`.
#[derive(clap::Args)]
pub struct AddArgs {
    /// The localpart of the new account (`alice` for `@alice:example.org`).
    pub name: String,
}

/// Creates an account.
pub fn add(_args: AddArgs) -> Result<(), Error> {
    Err(Error::Other("user add: not built yet".into()))
}
