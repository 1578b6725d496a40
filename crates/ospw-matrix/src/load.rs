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
/// A type error or unknown key is reported with the field's path. When
/// there are several, all are reported ([`Error::Invalid`], one
/// [`crate::FieldError`] each); a single one is an [`Error::Parse`]. The
/// result is *not* validated yet: call [`crate::validate::validate`] (or
/// [`crate::render::render`], which validates first).
pub fn parse_host(text: &str, source_name: &str) -> Result<HostDescription> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let err = match serde_path_to_error::deserialize(deserializer) {
        Ok(host) => return Ok(host),
        Err(err) => err,
    };
    let path = err.path().to_string();
    let segments: Vec<Segment> = err.path().iter().map(Segment::from).collect();
    let message = readable_message(&path, &err.into_inner().to_string());
    let mut found = vec![crate::FieldError::new(path, message)];
    // Look for further problems: drop the offending key and parse again,
    // from the text's YAML value (the text parse gave the first error its
    // line and column).
    if let Ok(mut value) = serde_yaml::from_str::<serde_yaml::Value>(text) {
        let mut at = segments;
        // Each round removes one key or item, so this ends; the bound only
        // caps the work on a pathological input.
        for _ in 0..MAX_PARSE_ERRORS {
            if !remove_at(&mut value, &at) {
                break;
            }
            let err = match serde_path_to_error::deserialize::<_, HostDescription>(value.clone()) {
                Ok(_) => break,
                Err(err) => err,
            };
            let path = err.path().to_string();
            at = err.path().iter().map(Segment::from).collect();
            // An error at (or above) a field already reported is a
            // consequence of removing that field's bad value.
            let consequence = found.iter().any(|f| {
                path == "."
                    || f.path == path
                    || f.path.starts_with(&format!("{path}."))
                    || f.path.starts_with(&format!("{path}["))
            });
            if !consequence {
                let message = readable_message(&path, &err.into_inner().to_string());
                found.push(crate::FieldError::new(path, message));
            }
        }
    }
    if found.len() == 1 {
        let first = found.remove(0);
        return Err(Error::Parse {
            source_name: source_name.to_owned(),
            path: first.path,
            message: first.message,
        });
    }
    Err(Error::Invalid(crate::ValidationErrors { errors: found }))
}

/// The most parse errors reported at once.
const MAX_PARSE_ERRORS: usize = 64;

/// One step of an error's path.
enum Segment {
    Key(String),
    Index(usize),
    Other,
}

impl From<&serde_path_to_error::Segment> for Segment {
    fn from(s: &serde_path_to_error::Segment) -> Self {
        match s {
            serde_path_to_error::Segment::Map { key } => Segment::Key(key.clone()),
            serde_path_to_error::Segment::Seq { index } => Segment::Index(*index),
            _ => Segment::Other,
        }
    }
}

/// Removes the node at `path` from `value`; false if there is none.
fn remove_at(value: &mut serde_yaml::Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        let next = match (segment, node) {
            (Segment::Key(k), serde_yaml::Value::Mapping(map)) => map.get_mut(k.as_str()),
            (Segment::Index(i), serde_yaml::Value::Sequence(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last, node) {
        (Segment::Key(k), serde_yaml::Value::Mapping(map)) => map.remove(k.as_str()).is_some(),
        (Segment::Index(i), serde_yaml::Value::Sequence(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
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
    fn every_parse_error_is_reported_at_once() {
        let text = format!(
            "{NAMES}turn: {{port: 70000, allow_guests: true}}\nsynapse: {{presence: maybe}}\n\
             element: {{brand: x, colour: red}}\nfederation: true\n"
        );
        let Err(Error::Invalid(errs)) = parse_host(&text, "test") else {
            panic!("expected several problems")
        };
        let mut paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            vec![
                "element.colour",
                "federation",
                "synapse.presence",
                "turn.allow_guests",
                "turn.port"
            ],
            "{errs}"
        );
        // A consequence of removing a bad value is not reported again.
        let text = format!("{NAMES}synapse: {{listen: {{udp: {{}}}}}}\nturn: {{x: 1}}\n");
        let Err(Error::Invalid(errs)) = parse_host(&text, "test") else {
            panic!("expected two problems")
        };
        assert_eq!(errs.errors.len(), 2, "{errs}");
        // One problem keeps the single-error form, with its line.
        let (path, message) = parse_error(&format!("{NAMES}turn: {{port: x}}\n"));
        assert_eq!(path, "turn.port");
        assert!(message.contains("line"), "{message}");
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
