//! Reading YAML and JSON input strictly, so that the document this crate
//! checks is the document the programs read.
//!
//! serde_yaml reads YAML 1.2 and keeps things other readers treat
//! differently: Synapse's PyYAML applies `<<` as a *merge key* where
//! serde_yaml keeps an ordinary key named `<<`; a duplicate key is silently
//! last-wins inside a free-form map; YAML tags (`!!python/name:…`,
//! `!custom`) are dropped or turned into something else; `.inf`/`.nan`
//! become `null` in a JSON value. [`read_tree`] reads the whole document
//! first and refuses all of these, naming the path:
//!
//! - a key `<<` (a merge key: write the keys out; anchors `&a` and
//!   aliases `*a` are fine, both readers expand them alike);
//! - a key written twice in one mapping;
//! - a key that is not a string (`1:`, `true:`, `[a]:`);
//! - a tag (`!…`) anywhere;
//! - a number that is not finite (`.inf`, `.nan`);
//! - nesting deeper than [`MAX_DEPTH`].
//!
//! JSON is read as JSON ([`Format::Json`], by serde_json: surrogate-pair
//! escapes such as Python's `json.dump` writes for an emoji are fine),
//! with the same rules (no duplicate keys, depth).
//!
//! Deep nesting: YAML flow collections (`[[[…`) cost the YAML scanner time
//! quadratic in their depth, so a YAML text with more than
//! [`MAX_FLOW_OPENINGS`] `[` and `{` characters is refused before it is
//! parsed at all; the work is then bounded whatever the nesting.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::FieldError;

/// The deepest nesting accepted (mappings and sequences), counting the
/// document itself as level 1. A host description needs about 10.
pub const MAX_DEPTH: usize = 64;

/// The most `[` and `{` characters a YAML text may hold (in any context;
/// empty `[]` and `{}` are not counted). This bounds the YAML scanner's
/// work, which grows with the square of the flow nesting depth.
pub const MAX_FLOW_OPENINGS: usize = 1024;

/// How a text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (serde_yaml), with the rules of this module.
    Yaml,
    /// JSON (serde_json), with the rules of this module.
    Json,
}

impl Format {
    /// The format of a text named `source_name`: JSON for a name ending in
    /// `.json`, YAML for `.yaml` and `.yml`; otherwise JSON when the text's
    /// first character (after white space and a byte-order mark) is `{`,
    /// else YAML.
    pub fn detect(source_name: &str, text: &str) -> Format {
        let lower = source_name.to_ascii_lowercase();
        if lower.ends_with(".json") {
            return Format::Json;
        }
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            return Format::Yaml;
        }
        if text
            .trim_start_matches(|c: char| c == '\u{feff}' || c.is_whitespace())
            .starts_with('{')
        {
            Format::Json
        } else {
            Format::Yaml
        }
    }

    /// The format's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

/// Reads `text` as `format` into a JSON value, refusing everything listed
/// in the [module documentation](self). The error names the path
/// (`synapse.settings.x`, `.` for the document) and, where the parser knows
/// it, the line.
pub fn read_tree(text: &str, format: Format) -> Result<serde_json::Value, FieldError> {
    match format {
        Format::Json => read_json(text),
        Format::Yaml => read_yaml(text),
    }
}

fn read_json(text: &str) -> Result<serde_json::Value, FieldError> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    // Depth is capped by the seed (below serde_json's own limit of 128).
    let result = Node::root(&found).deserialize(&mut de).and_then(|v| {
        de.end()?;
        Ok(v)
    });
    result.map_err(|e| {
        let at = format!(" at line {} column {}", e.line(), e.column());
        match found.into_inner() {
            Some(mut f) => {
                f.message.push_str(&at);
                f
            }
            None => FieldError::new(".", crate::redact::message(&e.to_string())),
        }
    })
}

fn read_yaml(text: &str) -> Result<serde_json::Value, FieldError> {
    let openings = flow_openings(text);
    if openings > MAX_FLOW_OPENINGS {
        return Err(FieldError::new(
            ".",
            format!(
                "holds {openings} `[` and `{{` characters: expected at most {MAX_FLOW_OPENINGS} \
                 (deeply nested YAML takes the parser a long time); write lists and maps in block style"
            ),
        ));
    }
    let tree = read_yaml_tree(text)?;
    if text.contains('!') {
        find_tags(text, &tree)?;
    }
    Ok(tree)
}

/// The `[` and `{` characters of `text`, in any context (quoted or not,
/// so nothing can hide one), except those written as an empty `[]` or
/// `{}`, which never nest.
fn flow_openings(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut count = 0;
    for (i, b) in bytes.iter().enumerate() {
        let closer = match b {
            b'[' => b']',
            b'{' => b'}',
            _ => continue,
        };
        let next = bytes[i + 1..].iter().find(|c| **c != b' ');
        if next != Some(&closer) {
            count += 1;
        }
    }
    count
}

fn read_yaml_tree(text: &str) -> Result<serde_json::Value, FieldError> {
    let found = RefCell::new(None);
    let mut docs = serde_yaml::Deserializer::from_str(text);
    let Some(first) = docs.next() else {
        return Ok(serde_json::Value::Null);
    };
    let value = Node::root(&found).deserialize(first).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or_default();
        match found.borrow_mut().take() {
            Some(mut f) => {
                f.message.push_str(&at);
                f
            }
            None => FieldError::new(".", crate::redact::message(&e.to_string())),
        }
    })?;
    if docs.next().is_some() {
        return Err(FieldError::new(
            ".",
            "holds more than one YAML document (a second `---`): expected one",
        ));
    }
    Ok(value)
}

/// Tags: serde_yaml drops `!!…` tags silently, so they are found by
/// reading the text again with every `!` replaced by a stand-in. In a
/// document without tags a `!` is content of a scalar (or a comment), so
/// the second reading equals the first with the same replacement in every
/// string; a tag changes the structure or a value.
fn find_tags(text: &str, tree: &serde_json::Value) -> Result<(), FieldError> {
    let message = "is written with a YAML tag (`!…`): tags are read differently by each program \
                   (this one drops most of them, Synapse's PyYAML refuses or converts them): \
                   write the plain value";
    // The stand-in: a private-use character (printable, allowed in plain
    // scalars, never an indicator) that the text does not hold, so no two
    // keys become one.
    let Some(stand_in) = ('\u{E000}'..='\u{F8FF}').find(|c| !text.contains(*c)) else {
        return Err(FieldError::new(".", message));
    };
    let replaced = text.replace('!', &stand_in.to_string());
    let Ok(other) = read_yaml_tree(&replaced) else {
        return Err(FieldError::new(".", message));
    };
    let expected = stand_in_bangs(tree, stand_in);
    match first_difference(&expected, &other, "", stand_in) {
        None => Ok(()),
        Some(path) => Err(FieldError::new(
            if path.is_empty() {
                ".".to_owned()
            } else {
                path
            },
            message,
        )),
    }
}

fn stand_in_bangs(value: &serde_json::Value, stand_in: char) -> serde_json::Value {
    let swap = |s: &str| s.replace('!', &stand_in.to_string());
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(swap(s)),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|v| stand_in_bangs(v, stand_in)).collect())
        }
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| (swap(k), stand_in_bangs(v, stand_in)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The path of the first place where `a` and `b` differ ("" for the root).
fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
    stand_in: char,
) -> Option<String> {
    use serde_json::Value as V;
    match (a, b) {
        (V::Array(x), V::Array(y)) => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(p, q, &format!("{path}[{i}]"), stand_in) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| path.to_owned())
        }
        (V::Object(x), V::Object(y)) => {
            for (k, p) in x {
                let sub = join(path, &k.replace(stand_in, "!"));
                match y.get(k) {
                    Some(q) => {
                        if let Some(d) = first_difference(p, q, &sub, stand_in) {
                            return Some(d);
                        }
                    }
                    None => return Some(sub),
                }
            }
            (x.len() != y.len()).then(|| path.to_owned())
        }
        (p, q) => (p != q).then(|| path.to_owned()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The seed that reads one node, checking it.
struct Node<'a> {
    depth: usize,
    path: String,
    found: &'a RefCell<Option<FieldError>>,
}

impl<'a> Node<'a> {
    fn root(found: &'a RefCell<Option<FieldError>>) -> Self {
        Node {
            depth: 1,
            path: String::new(),
            found,
        }
    }

    fn fail<E: de::Error>(&self, message: impl Into<String>) -> E {
        let path = if self.path.is_empty() {
            ".".to_owned()
        } else {
            self.path.clone()
        };
        let message = message.into();
        let text = format!("{path}: {message}");
        self.found
            .borrow_mut()
            .get_or_insert_with(|| FieldError::new(path, message));
        E::custom(text)
    }

    fn child(&self, path: String) -> Node<'a> {
        Node {
            depth: self.depth + 1,
            path,
            found: self.found,
        }
    }

    /// Refuses a mapping or sequence nested deeper than [`MAX_DEPTH`].
    fn check_depth<E: de::Error>(&self) -> Result<(), E> {
        if self.depth > MAX_DEPTH {
            return Err(self.fail(format!(
                "is nested more than {MAX_DEPTH} levels deep: expected a flatter document"
            )));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .ok_or_else(|| {
                self.fail(format!(
                    "is {v}, not a finite number: expected a number such as 1.5"
                ))
            })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.check_depth()?;
        let mut items = Vec::new();
        loop {
            let child = self.child(format!("{}[{}]", self.path, items.len()));
            match seq.next_element_seed(child)? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.check_depth()?;
        let mut out = serde_json::Map::new();
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key_seed(Key { parent: &self })? {
            let path = join(&self.path, &key);
            if key == "<<" {
                return Err(Node {
                    depth: self.depth,
                    path,
                    found: self.found,
                }
                .fail(
                    "is a YAML merge key, which Synapse's YAML reader applies and this one does \
                     not: write the keys out (anchors `&name` and aliases `*name` are fine)",
                ));
            }
            if !seen.insert(key.clone()) {
                return Err(Node {
                    depth: self.depth,
                    path,
                    found: self.found,
                }
                .fail(
                    "is written twice in the same mapping: expected each key once (one reader \
                     would take the first value, another the last)",
                ));
            }
            let value = map.next_value_seed(self.child(path))?;
            out.insert(key, value);
        }
        Ok(serde_json::Value::Object(out))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Self::Value, A::Error> {
        Err(self.fail(
            "is written with a YAML tag (`!…`): tags are read differently by each program \
             (this one drops most of them, Synapse's PyYAML refuses or converts them): \
             write the plain value",
        ))
    }
}

/// The seed that reads a mapping key: a string.
struct Key<'p, 'a> {
    parent: &'p Node<'a>,
}

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Key<'_, '_> {
    fn not_a_string<E: de::Error>(&self, what: &str) -> E {
        self.parent.fail(format!(
            "has a key that is {what}: expected every key to be a string (quote it: '1')"
        ))
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Err(self.not_a_string(&format!("the boolean {v}")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Err(self.not_a_string(&format!("the number {v}")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Err(self.not_a_string(&format!("the number {v}")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Err(self.not_a_string(&format!("the number {v}")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(self.not_a_string("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        Err(self.not_a_string("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<String, A::Error> {
        Err(self.not_a_string("a sequence"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<String, A::Error> {
        Err(self.not_a_string("a mapping"))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<String, A::Error> {
        Err(self
            .parent
            .fail("has a key written with a YAML tag (`!…`): write the plain key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml_err(text: &str) -> FieldError {
        read_tree(text, Format::Yaml).expect_err(text)
    }

    #[test]
    fn plain_documents_read_as_before() {
        let text = "a: 1\nb: [x, 'y!', \"z\"]\nc: {d: null, e: true, f: 1.5}\nn: hello!\n\
                    g: &anchor {h: 1}\ni: *anchor\n# a comment!\nj: |\n  !not a tag\n";
        let tree = read_tree(text, Format::Yaml).expect("reads");
        assert_eq!(
            tree,
            serde_json::json!({"a": 1, "b": ["x", "y!", "z"], "c": {"d": null, "e": true, "f": 1.5},
                "n": "hello!", "g": {"h": 1}, "i": {"h": 1}, "j": "!not a tag\n"})
        );
    }

    #[test]
    fn merge_keys_duplicates_tags_and_odd_keys_are_refused() {
        for (text, path, needle) in [
            ("a: {<<: {b: 1}}\n", "a.<<", "merge key"),
            ("base: &b {x: 1}\nc:\n  <<: *b\n", "c.<<", "merge key"),
            ("a: {'<<': {b: 1}}\n", "a.<<", "merge key"),
            ("a: {b: 1, b: 2}\n", "a.b", "twice"),
            ("a: 1\na: 2\n", "a", "twice"),
            ("a: {x: !!python/name:os.system x}\n", "a.x", "tag"),
            ("a: !custom {b: 1}\n", "a", "tag"),
            ("a: [!!binary aGVsbG8=]\n", "a[0]", "tag"),
            ("\u{e000}: 1\n'!': 2\nb: !!str x\n", "b", "tag"),
            ("a: !!str 123\n", "a", "tag"),
            ("a: !!set {x, y}\n", "a", "tag"),
            (
                "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n",
                ".",
                "tag",
            ),
            ("a: {1: x}\n", "a", "number 1"),
            ("a: {true: x}\n", "a", "boolean"),
            ("a: {? [x]\n    : y}\n", "a", "sequence"),
            ("a: {~: y}\n", "a", "null"),
            ("a: .inf\n", "a", "finite"),
            ("a: [.NaN]\n", "a[0]", "finite"),
            ("a: 1\n---\nb: 2\n", ".", "more than one"),
        ] {
            let e = yaml_err(text);
            assert_eq!(e.path, path, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn json_is_read_as_json() {
        // Python's json.dump writes an emoji as a surrogate pair.
        let text = r#"{"brand": "Chat \ud83d\ude00", "n": [1, 2.5, null]}"#;
        let tree = read_tree(text, Format::Json).expect("reads");
        assert_eq!(tree["brand"], "Chat \u{1F600}");
        let e = read_tree(r#"{"a": {"b": 1, "b": 2}}"#, Format::Json).expect_err("duplicate");
        assert_eq!(e.path, "a.b");
        assert!(e.message.contains("line 1"), "{e}");
        assert!(read_tree("{\"a\": 1} x", Format::Json).is_err());
    }

    #[test]
    fn format_by_extension_then_content() {
        assert_eq!(Format::detect("host.json", "a: 1"), Format::Json);
        assert_eq!(Format::detect("HOST.JSON", ""), Format::Json);
        assert_eq!(Format::detect("host.yaml", "{}"), Format::Yaml);
        assert_eq!(Format::detect("host.yml", "{}"), Format::Yaml);
        assert_eq!(
            Format::detect("host", "\u{feff}\n  {\"a\": 1}"),
            Format::Json
        );
        assert_eq!(Format::detect("host", "a: 1"), Format::Yaml);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = |n: usize| format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
        assert!(read_tree(&deep(MAX_DEPTH - 1), Format::Yaml).is_ok());
        let e = yaml_err(&deep(MAX_DEPTH));
        assert!(e.message.contains("nested more than"), "{e}");
        assert!(e.path.starts_with("a[0][0]"), "{e}");
        let e = yaml_err(&deep(100_000));
        assert!(e.message.contains("at most 1024"), "{e}");
        // Empty collections never nest: many of them are fine.
        let many: String = (0..5000)
            .map(|i| format!("k{i}: [] \nm{i}: {{ }}\n"))
            .collect();
        assert!(read_tree(&many, Format::Yaml).is_ok());
        let e = yaml_err(&"[".repeat(1025));
        assert!(e.message.contains("holds 1025"), "{e}");
        let block: String = (0..MAX_DEPTH + 1)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert!(
            yaml_err(&format!("{block}{}x\n", " ".repeat(MAX_DEPTH + 2)))
                .message
                .contains("nested more than")
        );
        let json = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let e = read_tree(&json, Format::Json).expect_err("deep");
        assert!(e.message.contains("nested more than"), "{e}");
    }
}
