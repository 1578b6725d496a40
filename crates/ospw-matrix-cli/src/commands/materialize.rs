//! `materialize coturn`: the runtime `turnserver.conf`, with the shared
//! secret filled in, written atomically with mode 0600.
//!
//! `materialize synapse-secrets`: the second configuration file Synapse
//! reads after `homeserver.yaml` (`--config-path`), holding the secrets
//! Synapse has no file form for (the SMTP password, `email.smtp_pass`),
//! written atomically with mode 0600 by (and so owned by) Synapse's user.

use std::path::Path;

use ospw_matrix::components::coturn;
use ospw_matrix::fsutil::write_file_atomically;
use ospw_matrix::host::SecretKind;
use ospw_matrix::secrets::read_shared_secret;
use ospw_matrix::{load_host, Error, RenderContext};

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

/// Reads and validates the host description at `config` (as `render`
/// does: an invalid one is refused), reads the secret files Synapse cannot
/// read itself, and writes Synapse's runtime secrets file to `out` with mode
/// 0600. Without such a secret the file is `{}` (an empty section list,
/// which Synapse accepts), so the service can always pass it.
pub fn synapse_secrets(config: &Path, out: &Path) -> Result<(), Error> {
    let host = load_host(config)?;
    let ctx = RenderContext {
        output_dir: "/nonexistent".into(),
    };
    ospw_matrix::render(&host, &ctx)?;
    let text = ospw_matrix::render::synapse_auth::secrets_file(&host)?;
    write_file_atomically(out, text.as_bytes(), 0o600)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
