//! `materialize coturn`: the runtime `turnserver.conf`, with the shared
//! secret filled in, written atomically with mode 0600.

use std::path::Path;

use ospw_matrix::components::coturn;
use ospw_matrix::fsutil::write_file_atomically;
use ospw_matrix::host::SecretKind;
use ospw_matrix::secrets::read_shared_secret;
use ospw_matrix::Error;

/// Reads the template and the secret, checks the template again (a
/// tampered template is refused), and writes coturn's runtime configuration
/// to `out` with mode 0600.
pub fn coturn(template: &Path, secret_file: &Path, out: &Path) -> Result<(), Error> {
    let template_text = std::fs::read_to_string(template)
        .map_err(|e| Error::io(template, "read the coturn template", e))?;
    // Read and checked as Synapse reads it (trimmed, one line, long enough),
    // so both sides hold the same secret.
    let secret = read_shared_secret(secret_file, SecretKind::TurnSharedSecret)?;
    let text = coturn::materialize(&template_text, &template.display().to_string(), &secret)?;
    write_file_atomically(out, text.as_bytes(), 0o600)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
