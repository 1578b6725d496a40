//! Reading a host description from YAML or JSON text or a file.

use std::path::Path;

use crate::error::{Error, Result};
use crate::host::HostDescription;

/// The documented example host (example.org), embedded in the library. It is
/// what `ospw-matrix render` uses when no `--config` is given.
pub const EXAMPLE_HOST_YAML: &str = include_str!("../../../examples/host.yaml");

/// Parses a host description from YAML or JSON text (JSON is read as YAML,
/// which it is a subset of). `source_name` names the input in errors.
///
/// A type error or unknown key is reported with the field's path. The result
/// is *not* validated yet: call [`crate::validate::validate`] (or
/// [`crate::render::render`], which validates first).
pub fn parse_host(text: &str, source_name: &str) -> Result<HostDescription> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let mut message = inner.to_string();
        // serde_yaml prefixes its own path; keep the message but drop a
        // duplicated "path: " prefix.
        if let Some(rest) = message.strip_prefix(&format!("{path}: ")) {
            message = rest.to_owned();
        }
        Error::Parse {
            source_name: source_name.to_owned(),
            path,
            message,
        }
    })
}

/// Reads and parses a host description file.
pub fn load_host(path: &Path) -> Result<HostDescription> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
    parse_host(&text, &path.display().to_string())
}

/// The embedded example host, parsed.
pub fn example_host() -> Result<HostDescription> {
    parse_host(EXAMPLE_HOST_YAML, "embedded example host")
}
