//! Writing YAML that Synapse's reader (PyYAML's `safe_load`, YAML 1.1)
//! reads back as exactly the value that was checked.
//!
//! serde_yaml's emitter decides quoting by YAML 1.2 rules, so it writes
//! `yes`, `off`, `1:30`, `1_000`, `2001-01-01`, `<<` and `=` unquoted,
//! which PyYAML reads as a boolean, a sexagesimal or underscored integer,
//! a date, a merge key and a value-tag (an error). This emitter writes a
//! string plain only when it cannot be read as anything but that string
//! by any YAML reader (it starts with a letter, `/` or `_`, holds only
//! letters, digits and `_-./:@+=?~`, does not end with `:` and is not a
//! word YAML 1.1 reads as a boolean or null); every other string is
//! double-quoted with escapes for everything PyYAML would not read
//! literally (control characters, line breaks including U+0085, U+2028,
//! U+2029, and the byte-order mark). Floats are written with a `.` and a
//! signed exponent (`1.0e+300`), as PyYAML's float pattern needs.
//!
//! The layout is block style, as serde_yaml writes it (sequences at the
//! key's indentation), with `[]` and `{}` for empty collections. A key
//! longer than PyYAML reads as a simple key (1024 characters) is written
//! as an explicit key (`? key` / `: value`).

use serde_yaml::Value;

/// Words YAML 1.1 (PyYAML) reads as booleans or null when plain, in any
/// case (the YAML 1.1 spec also lists `y` and `n`).
const RESERVED_WORDS: [&str; 9] = ["yes", "no", "true", "false", "on", "off", "null", "y", "n"];

/// The longest key written as a simple key (`key: value`): PyYAML's
/// scanner refuses a simple key whose `:` is more than 1024 characters
/// after its start ("could not find expected ':'"), so Synapse would not
/// start. Longer keys are written as explicit keys (`? key`).
const MAX_SIMPLE_KEY: usize = 1000;

/// Emits `value` (a mapping at the top) as YAML for PyYAML. Fails for
/// what PyYAML would not read back as the same value: a key that is not a
/// string, or a tagged value.
pub fn to_string(value: &Value) -> Result<String, String> {
    let mut out = String::new();
    match value {
        Value::Mapping(map) if !map.is_empty() => emit_mapping(map, 0, "", &mut out)?,
        Value::Sequence(items) if !items.is_empty() => emit_sequence(items, 0, "", &mut out)?,
        other => {
            out.push_str(&scalar(other, "")?);
            out.push('\n');
        }
    }
    Ok(out)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn emit_mapping(
    map: &serde_yaml::Mapping,
    indent: usize,
    path: &str,
    out: &mut String,
) -> Result<(), String> {
    let pad = " ".repeat(indent);
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            return Err(format!(
                "{}: has a key that is not a string: PyYAML would read it as another type",
                if path.is_empty() { "." } else { path }
            ));
        };
        let sub = join(path, key);
        let written = string(key);
        out.push_str(&pad);
        if written.chars().count() > MAX_SIMPLE_KEY {
            // PyYAML looks for the `:` of a simple key only 1024
            // characters ahead: a longer key is written as an explicit
            // one (`? key` then `: value` on the next line).
            out.push_str("? ");
            out.push_str(&written);
            out.push('\n');
            out.push_str(&pad);
        } else {
            out.push_str(&written);
        }
        out.push(':');
        match v {
            Value::Mapping(m) if !m.is_empty() => {
                out.push('\n');
                emit_mapping(m, indent + 2, &sub, out)?;
            }
            Value::Sequence(items) if !items.is_empty() => {
                out.push('\n');
                emit_sequence(items, indent, &sub, out)?;
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other, &sub)?);
                out.push('\n');
            }
        }
    }
    Ok(())
}

fn emit_sequence(
    items: &[Value],
    indent: usize,
    path: &str,
    out: &mut String,
) -> Result<(), String> {
    let pad = " ".repeat(indent);
    for (i, item) in items.iter().enumerate() {
        let sub = format!("{path}[{i}]");
        match item {
            Value::Mapping(m) if !m.is_empty() => {
                let mut inner = String::new();
                emit_mapping(m, indent + 2, &sub, &mut inner)?;
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&inner[indent + 2..]);
            }
            Value::Sequence(s) if !s.is_empty() => {
                let mut inner = String::new();
                emit_sequence(s, indent + 2, &sub, &mut inner)?;
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&inner[indent + 2..]);
            }
            other => {
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&scalar(other, &sub)?);
                out.push('\n');
            }
        }
    }
    Ok(())
}

fn scalar(value: &Value, path: &str) -> Result<String, String> {
    Ok(match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => string(s),
        Value::Sequence(_) => "[]".to_owned(),
        Value::Mapping(_) => "{}".to_owned(),
        Value::Tagged(t) => {
            return Err(format!(
                "{}: holds a YAML tag ({}), which PyYAML would read differently",
                if path.is_empty() { "." } else { path },
                t.tag
            ))
        }
    })
}

fn number(n: &serde_yaml::Number) -> String {
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f.is_nan() {
        return ".nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    // Rust's shortest round-trip form, made to match PyYAML's float
    // pattern: a `.` in the mantissa, a sign on the exponent.
    let text = format!("{f:?}");
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m.to_owned(), Some(e.to_owned())),
        None => (text, None),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa
    } else {
        format!("{mantissa}.0")
    };
    match exponent {
        None => mantissa,
        Some(e) if e.starts_with('-') => format!("{mantissa}e{e}"),
        Some(e) => format!("{mantissa}e+{e}"),
    }
}

/// Whether `s` may be written plain: nothing but a string to any reader.
fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/' || first == '_')
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@+=?~".contains(c))
        && !s.ends_with(':')
        && !RESERVED_WORDS.contains(&s.to_ascii_lowercase().as_str())
}

/// `s` as a YAML scalar PyYAML reads back as the string `s`.
pub fn string(s: &str) -> String {
    if plain_is_safe(s) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            ' '..='~' => out.push(c),
            '\u{A0}'..='\u{2027}' | '\u{202A}'..='\u{D7FF}' | '\u{E000}'..='\u{FEFE}' => {
                out.push(c)
            }
            '\u{FF00}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}' => out.push(c),
            c if u32::from(c) <= 0xFF => out.push_str(&format!("\\x{:02X}", u32::from(c))),
            c if u32::from(c) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08X}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// What YAML 1.1 (Synapse's PyYAML) makes of `s` written plain, when
/// that is not the string serde_yaml (YAML 1.2) reads: `yes`/`no`/`on`/`off`
/// are booleans, `0660` is octal, `0b101` binary, `1:30` sexagesimal, and
/// `1_000` (or `1_0.5`) a number. `None` when both read the same.
///
/// A host description is read as YAML 1.2, so `enable_media_repo: off` in
/// `synapse.settings` arrives as the string `"off"`, which Synapse then
/// takes for true: such values are refused with what to write instead.
pub fn yaml11_reading(s: &str) -> Option<String> {
    let bools = [
        ("yes", true),
        ("Yes", true),
        ("YES", true),
        ("on", true),
        ("On", true),
        ("ON", true),
        ("no", false),
        ("No", false),
        ("NO", false),
        ("off", false),
        ("Off", false),
        ("OFF", false),
    ];
    if let Some((_, b)) = bools.iter().find(|(w, _)| *w == s) {
        return Some(format!("the boolean {b}: write {b}"));
    }
    let (sign, body) = match s.strip_prefix(['-', '+']) {
        Some(rest) => (&s[..1], rest),
        None => ("", s),
    };
    let minus = if sign == "-" { "-" } else { "" };
    let digits =
        |t: &str, ok: fn(char) -> bool| !t.is_empty() && t.chars().all(|c| ok(c) || c == '_');
    if let Some(bin) = body.strip_prefix("0b") {
        if digits(bin, |c| c == '0' || c == '1') {
            let n = i128::from_str_radix(&bin.replace('_', ""), 2).ok()?;
            return Some(format!("the binary number {minus}{n}: write {minus}{n}"));
        }
    }
    if body.len() > 1 && body.starts_with('0') && digits(&body[1..], |c| ('0'..='7').contains(&c)) {
        let n = i128::from_str_radix(&body.replace('_', ""), 8).ok()?;
        return Some(format!(
            "the octal number {minus}{n}: write {minus}{n}, or {minus}0o{} (octal in YAML 1.2)",
            &body[1..].replace('_', "")
        ));
    }
    if body.contains(':') && body.starts_with(|c: char| c.is_ascii_digit()) {
        let mut parts = body.split(':');
        let first = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        let (last, mid) = rest.split_last()?;
        let whole = |t: &str| digits(t, |c| c.is_ascii_digit());
        // PyYAML: `[0-5]?[0-9]` after each colon.
        let small = |t: &str| {
            let b = t.as_bytes();
            match b {
                [d] => d.is_ascii_digit(),
                [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
                _ => false,
            }
        };
        // An integer starts with 1-9; a float has a `.` in its last part.
        let int_form = small(last) && !first.starts_with('0');
        let float_form = last
            .split_once('.')
            .is_some_and(|(a, b)| small(a) && (b.is_empty() || whole(b)));
        if whole(first) && mid.iter().all(|m| small(m)) && (int_form || float_form) {
            return Some(format!(
                "a sexagesimal (base 60) number, {s} being read as {}: write the number you mean",
                sexagesimal(first, &rest)
                    .map_or_else(|| "something else".to_owned(), |v| format!("{minus}{v}"))
            ));
        }
    }
    if body.contains('_') && body.starts_with(|c: char| c.is_ascii_digit()) {
        let plain = body.replace('_', "");
        let number = plain.chars().all(|c| c.is_ascii_digit())
            || plain
                .strip_prefix("0x")
                .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || plain.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && a.chars().all(|c| c.is_ascii_digit())
                    && b.chars().all(|c| c.is_ascii_digit())
            });
        if number {
            return Some(format!(
                "the number {minus}{plain} (YAML 1.1 ignores the underscores): write {minus}{plain}"
            ));
        }
    }
    None
}

/// The value of a sexagesimal number (`1:30` is 90), when it is whole.
fn sexagesimal(first: &str, rest: &[&str]) -> Option<u128> {
    let mut n: u128 = first.replace('_', "").parse().ok()?;
    for part in rest {
        n = n.checked_mul(60)?.checked_add(part.parse().ok()?)?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_yaml_1_1_reads_as_something_else() {
        for s in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "true",
            "NULL",
            "~",
            "",
            "0660",
            "1:30",
            "1_000",
            "2001-01-01",
            "<<",
            "=",
            ".inf",
            "1e3",
            "+1",
            "-",
            "a b",
            "a: b",
            "x #y",
            "tab\t",
            "line\nbreak",
            "\u{2028}",
            "\u{85}",
            "\u{feff}",
            "10.0.0.0/8",
            "::1/128",
            "key:",
            "!tag",
            "&a",
            "*a",
            "%x",
            "@x",
            "`x",
        ] {
            assert!(string(s).starts_with('"'), "{s:?} -> {}", string(s));
        }
        for s in [
            "example.org",
            "https://matrix.example.org",
            "/var/lib/ospw-matrix/synapse",
            "turn:turn.example.org:3478?transport=udp",
            "psycopg2",
            "yesterday",
            "_x",
        ] {
            assert_eq!(string(s), s);
        }
        assert_eq!(
            string("a\"b\\c\u{1}é😀\u{2028}"),
            "\"a\\\"b\\\\c\\x01é😀\\u2028\""
        );
    }

    #[test]
    fn yaml_1_1_readings() {
        for (s, needle) in [
            ("on", "boolean true"),
            ("OFF", "boolean false"),
            ("No", "boolean false"),
            ("0660", "octal number 432"),
            ("-017", "octal number -15"),
            ("0b101", "binary number 5"),
            ("1:30", "read as 90"),
            ("190:20:30", "read as 685230"),
            ("1:30.5", "sexagesimal"),
            ("1:7", "read as 67"),
            ("0:30.5", "sexagesimal"),
            ("1_000", "number 1000"),
            ("0x_1F", "number 0x1F"),
            ("1_0.5", "number 10.5"),
        ] {
            let got = yaml11_reading(s).unwrap_or_default();
            assert!(got.contains(needle), "{s}: {got}");
        }
        for s in [
            "true",
            "o",
            "0",
            "07x",
            "1:60",
            "12:30 pm",
            "10.0.0.0/8",
            "::1",
            "a_b",
            "2024-01-01",
            "1.5",
            "08",
            "untracked",
        ] {
            assert_eq!(yaml11_reading(s), None, "{s}");
        }
    }

    #[test]
    fn floats_have_a_dot_and_a_signed_exponent() {
        let f = |x: f64| number(&serde_yaml::Number::from(x));
        assert_eq!(f(1e300), "1.0e+300");
        assert_eq!(f(1.5e-7), "1.5e-7");
        assert_eq!(f(0.2), "0.2");
        assert_eq!(f(3.0), "3.0");
        assert_eq!(f(f64::INFINITY), ".inf");
        assert_eq!(f(f64::NEG_INFINITY), "-.inf");
        assert_eq!(f(f64::NAN), ".nan");
    }

    #[test]
    fn layout_round_trips_through_serde_yaml() {
        let text = "a: 1\nb:\n- x\n- k: v\n  l:\n  - 1\n  - []\n- - n\n  - m\nc: {}\nd:\n  e: null\n  f: [yes, '1:30', 2.5, -3]\n";
        let value: Value = serde_yaml::from_str(text).expect("yaml");
        let emitted = to_string(&value).expect("emits");
        let again: Value = serde_yaml::from_str(&emitted).expect("re-reads");
        assert_eq!(value, again, "{emitted}");
        assert!(emitted.contains("- \"yes\"\n"), "{emitted}");
    }

    #[test]
    fn refuses_what_pyyaml_would_read_differently() {
        let value: Value = serde_yaml::from_str("a: {1: x}").expect("yaml");
        assert!(to_string(&value).unwrap_err().starts_with("a:"));
        let value: Value = serde_yaml::from_str("a: [!t x]").expect("yaml");
        assert!(to_string(&value).unwrap_err().starts_with("a[0]:"));
    }
}
