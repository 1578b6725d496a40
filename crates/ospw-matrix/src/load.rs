//! Reading a host description from YAML or JSON text or a file.

use std::path::Path;

use crate::error::{Error, Result};
use crate::host::HostDescription;
use crate::input::Format;
use serde::Deserialize;

/// The documented example host (example.org), embedded in the library. It is
/// what `ospw-matrix render` uses when no `--config` is given.
pub const EXAMPLE_HOST_YAML: &str = include_str!("../../../examples/host.yaml");

/// Parses a host description from YAML or JSON text. `source_name` names
/// the input in errors and decides the format: a name ending in `.json` is
/// read as JSON, `.yaml` or `.yml` as YAML, anything else as JSON when the
/// text starts with `{` and as YAML otherwise ([`Format::detect`]).
///
/// The text is read strictly first ([`crate::input::read_tree`]): merge
/// keys (`<<`), duplicate keys, YAML tags, keys that are not strings,
/// non-finite numbers and nesting deeper than
/// [`crate::input::MAX_DEPTH`] are refused, so that what is checked is
/// what the programs read.
///
/// A type error or unknown key is reported with the field's path. When
/// there are several, all are reported ([`Error::Invalid`], one
/// [`crate::FieldError`] each); a single one is an [`Error::Parse`]. The
/// result is *not* validated yet: call [`crate::validate::validate`] (or
/// [`crate::render::render`], which validates first). Values quoted in
/// messages are shortened ([`crate::redact`]).
pub fn parse_host(text: &str, source_name: &str) -> Result<HostDescription> {
    // A byte-order mark (which serde_json does not skip) is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = Format::detect(source_name, text);
    let tree = crate::input::read_tree(text, format).map_err(|e| Error::Parse {
        source_name: source_name.to_owned(),
        path: e.path,
        message: e.message,
    })?;
    if let Ok(host) = HostDescription::deserialize(&tree) {
        return Ok(host);
    }
    // The first error comes from the text, which gives it its line and column.
    let err = match format {
        Format::Yaml => {
            match serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)) {
                Ok(host) => return Ok(host),
                Err(err) => first_error(err),
            }
        }
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            match serde_path_to_error::deserialize(&mut de) {
                Ok(host) => return Ok(host),
                Err(err) => first_error(err),
            }
        }
    };
    let (path, segments, message) = err;
    let mut found = vec![crate::FieldError::new(path, message)];
    // Look for further problems: drop the offending key and parse again,
    // from the strictly read tree.
    let mut value = tree;
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

/// The path, its segments and the readable message of a first parse error.
fn first_error<E: std::fmt::Display>(
    err: serde_path_to_error::Error<E>,
) -> (String, Vec<Segment>, String) {
    let path = err.path().to_string();
    let segments: Vec<Segment> = err.path().iter().map(Segment::from).collect();
    let message = readable_message(&path, &err.into_inner().to_string());
    (path, segments, message)
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
fn remove_at(value: &mut serde_json::Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        let next = match (segment, node) {
            (Segment::Key(k), serde_json::Value::Object(map)) => map.get_mut(k.as_str()),
            (Segment::Index(i), serde_json::Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last, node) {
        (Segment::Key(k), serde_json::Value::Object(map)) => map.remove(k.as_str()).is_some(),
        (Segment::Index(i), serde_json::Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

/// The parser's message for the field at `path`, without serde_yaml's own
/// path prefix (the field is named already) and with Rust type names
/// replaced by the form expected, and quoted values shortened
/// ([`crate::redact::message`]).
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
    crate::redact::message(
        &message
            .replace(
                "expected u16",
                "expected a whole number from 0 to 65535 (ports from 1)",
            )
            .replace(
                "expected u32",
                "expected a whole number from 0 to 4294967295",
            ),
    )
}

/// Reads and parses a host description file (its name decides between
/// JSON and YAML as in [`parse_host`]).
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

    #[test]
    fn json_is_parsed_as_json() {
        // Python's json.dump escapes an emoji as a surrogate pair, which
        // YAML readers refuse.
        let text = r#"{"base_domain": "example.org", "server_name": "example.org",
            "matrix_host": "matrix.example.org", "element_host": "chat.example.org",
            "element": {"brand": "Chat \ud83d\ude00"}}"#;
        for name in ["host.json", "host-description"] {
            let host = parse_host(text, name).expect("parses");
            let with_bom = parse_host(&format!("\u{feff}{text}"), name).expect("parses");
            assert_eq!(host, with_bom);
            assert_eq!(host.element.brand, "Chat \u{1F600}");
        }
        let (path, message) = parse_error(r#"{"base_domain": 1}"#);
        assert_eq!(path, "base_domain");
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn free_form_settings_are_read_as_synapse_reads_them() {
        for (settings, path, needle) in [
            (
                "synapse:\n  settings:\n    <<: {ip_range_whitelist: ['127.0.0.1']}\n",
                "synapse.settings.<<",
                "merge key",
            ),
            (
                "synapse:\n  settings:\n    report_stats: false\n    report_stats: true\n",
                "synapse.settings.report_stats",
                "twice",
            ),
            (
                "element:\n  settings:\n    x: !!python/name:os.system y\n",
                "element.settings.x",
                "tag",
            ),
            (
                "turn:\n  settings:\n    1: x\n",
                "turn.settings",
                "the number 1",
            ),
        ] {
            let (p, m) = parse_error(&format!("{NAMES}{settings}"));
            assert_eq!(p, path, "{settings}");
            assert!(m.contains(needle), "{settings}: {m}");
        }
        let json = r#"{"base_domain": "example.org", "synapse": {"settings": {"a": 1, "a": 2}}}"#;
        let err = parse_host(json, "host.json").expect_err("duplicate");
        assert!(err.to_string().contains("synapse.settings.a"), "{err}");
        // Anchors and aliases are read alike by every reader: fine.
        let text = format!("{NAMES}synapse:\n  settings:\n    auto_join_rooms: &r ['#a:example.org']\nelement:\n  settings:\n    rooms: *r\n");
        assert!(parse_host(&text, "test").is_ok());
    }

    #[test]
    fn deep_documents_are_refused_quickly() {
        for n in [100, 100_000] {
            let text = format!(
                "{NAMES}synapse:\n  settings:\n    x: {}{}\n",
                "[".repeat(n),
                "]".repeat(n)
            );
            let (path, message) = parse_error(&text);
            assert!(
                path.starts_with(if n == 100 {
                    "synapse.settings.x[0]"
                } else {
                    "."
                }),
                "{path}"
            );
            assert!(
                message.contains("nested more than") || message.contains("at most 1024"),
                "{message}"
            );
        }
    }

    #[test]
    fn values_are_not_printed_back_whole() {
        let key = "ed25519 a_AbCd nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw\n";
        let err = parse_host(key, "signing.key").expect_err("not a host");
        assert!(!err.to_string().contains("nJ3a"), "{err}");
        let big = "y".repeat(1 << 20);
        let err = parse_host(&big, "big").expect_err("not a host");
        assert!(
            err.to_string().len() < 300,
            "{} bytes",
            err.to_string().len()
        );
    }
}
