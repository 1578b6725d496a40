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
        Error::Parse {
            source_name: source_name.to_owned(),
            message: readable_message(&path, &inner.to_string()),
            path,
        }
    })
}

/// The parser's message for the field at `path`, without serde_yaml's own
/// path prefix (the field is named already) and with Rust type names
/// replaced by the form expected.
fn readable_message(path: &str, message: &str) -> String {
    // serde_yaml prefixes the path it knows, which may be the field's or
    // its parent's (for an unknown variant or field).
    let message = match message.split_once(": ") {
        Some((prefix, rest))
            if !prefix.is_empty()
                && (path == prefix
                    || path.starts_with(&format!("{prefix}."))
                    || path.starts_with(&format!("{prefix}["))) =>
        {
            rest
        }
        _ => message,
    };
    message
        .replace(
            "expected u16",
            "expected a whole number from 0 to 65535 (ports from 1)",
        )
        .replace(
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(text: &str) -> (String, String) {
        match parse_host(text, "test") {
            Err(Error::Parse { path, message, .. }) => (path, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    const NAMES: &str = "base_domain: example.org\nserver_name: example.org\n\
                         matrix_host: matrix.example.org\nelement_host: chat.example.org\n";

    #[test]
    fn type_errors_say_the_expected_form() {
        let (path, message) = parse_error(&format!("{NAMES}turn: {{port: 70000}}\n"));
        assert_eq!(path, "turn.port");
        assert!(message.contains("from 0 to 65535"), "{message}");
        assert!(!message.contains("u16"), "{message}");
        let (path, message) = parse_error(&format!("{NAMES}turn: {{user_quota: -1}}\n"));
        assert_eq!(path, "turn.user_quota");
        assert!(message.contains("from 0 to 4294967295"), "{message}");
    }

    #[test]
    fn the_path_is_not_repeated_in_the_message() {
        let (path, message) = parse_error(&format!("{NAMES}synapse: {{listen: {{udp: {{}}}}}}\n"));
        assert!(path.starts_with("synapse.listen"), "{path}");
        assert!(message.starts_with("unknown variant `udp`"), "{message}");
        let (path, message) = parse_error(&format!("{NAMES}secrets: {{signing_key: x}}\n"));
        assert_eq!(path, "secrets.signing_key");
        assert!(
            message.starts_with("unknown field `signing_key`"),
            "{message}"
        );
    }
}
