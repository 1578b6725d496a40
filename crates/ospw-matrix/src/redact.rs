//! Quoting values in error messages without echoing a secret or a whole
//! file: every message of this crate that quotes a value the user wrote
//! goes through [`quote`] (or [`quote_secret_field`] for fields that name a
//! secret's file), and messages from the parsers through [`message`].
//!
//! A value is quoted whole only when it is short (at most [`MAX_QUOTED`]
//! characters) and does not look like a secret
//! ([`crate::inline_secrets::looks_like_secret`]); otherwise only a short
//! prefix is shown, with the value's length.

/// The longest value quoted whole.
pub const MAX_QUOTED: usize = 40;

/// How much of a long value that does not look like a secret is shown.
const LONG_PREFIX: usize = 16;

/// How much of a value that may be a secret is shown.
const SECRET_PREFIX: usize = 3;

fn prefix(value: &str, n: usize) -> String {
    value.chars().take(n).collect()
}

/// `value`, quoted for an error message: whole when short and not
/// secret-like, otherwise a short prefix and the length.
pub fn quote(value: &str) -> String {
    let n = value.chars().count();
    if crate::inline_secrets::looks_like_secret(value) {
        format!(
            "{:?}… ({n} characters, not shown: it looks like a secret)",
            prefix(value, SECRET_PREFIX)
        )
    } else if n > MAX_QUOTED {
        format!("{:?}… ({n} characters)", prefix(value, LONG_PREFIX))
    } else {
        format!("{value:?}")
    }
}

/// `value` of a field that names a secret's *file* (`secrets.*_file`,
/// a TLS key file), which may hold the secret itself pasted by mistake:
/// at most a three-character prefix and the length.
pub fn quote_secret_field(value: &str) -> String {
    let n = value.chars().count();
    if n <= SECRET_PREFIX {
        format!("{value:?}")
    } else {
        format!("{:?}… ({n} characters)", prefix(value, SECRET_PREFIX))
    }
}

/// A parser's message with every quoted part (`"…"` or `` `…` ``) that is
/// long or secret-like shortened as [`quote`] does.
pub fn message(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    let mut rest = text;
    while let Some(start) = rest.find(['"', '`']) {
        let quote_char = rest[start..].chars().next().unwrap_or('"');
        // A quote character shown as a character (`'"'`), not a quoted value.
        if rest[..start].ends_with('\'') && rest[start + 1..].starts_with('\'') {
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let body_start = start + 1;
        // The closing quote: the next one not escaped by a backslash.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest[body_start..].char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' && quote_char == '"' {
                escaped = true;
            } else if c == quote_char {
                end = Some(body_start + i);
                break;
            }
        }
        let Some(end) = end else {
            // No closing quote: treat the rest as one quoted value.
            let (body, note) = shorten(&rest[body_start..]);
            out.push(quote_char);
            out.push_str(&body);
            out.push_str(&note);
            return out;
        };
        let (body, note) = shorten(&rest[body_start..end]);
        out.push(quote_char);
        out.push_str(&body);
        out.push(quote_char);
        out.push_str(&note);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The longest key (one step of a path) shown whole in a path.
const MAX_PATH_KEY: usize = 64;

/// A field path (`synapse.settings.users.<key>`) as it may be printed:
/// keys come from the input and may themselves be secrets (a token used
/// as a map key, a URL with a password) or huge. Each run of dotted steps
/// that looks like a secret ([`crate::inline_secrets::looks_like_secret`],
/// also across the dots a URL or a token holds) is replaced by a
/// three-character prefix, and a step longer than 64 characters by its
/// first 16; the rest of the path stays as it is.
pub fn path(path: &str) -> String {
    let steps: Vec<&str> = path.split('.').collect();
    // A step's key, without list indexes (`tokens[0]` is `tokens`).
    let key = |s: &str| -> usize { s.split('[').next().unwrap_or_default().chars().count() };
    let long = |s: &str| key(s) > MAX_PATH_KEY;
    let mut hidden = vec![false; steps.len()];
    // The shortest runs first, so a secret hides only its own steps (a
    // secret spans at most a few dots: a URL's host, a JWT).
    for size in 1..=steps.len().min(8) {
        for i in 0..=steps.len() - size {
            let run = &steps[i..i + size];
            if run.iter().any(|s| long(s)) || hidden[i..i + size].contains(&true) {
                continue;
            }
            let joined = run.join(".");
            let bare = joined.split('[').next().unwrap_or_default();
            if crate::inline_secrets::looks_like_secret(&joined)
                || crate::inline_secrets::looks_like_secret(bare)
            {
                hidden[i..i + size].iter_mut().for_each(|h| *h = true);
            }
        }
    }
    if !hidden.contains(&true) && !steps.iter().any(|s| long(s)) {
        return path.to_owned();
    }
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        if hidden[i] {
            let start = i;
            while i < steps.len() && hidden[i] {
                i += 1;
            }
            let run = steps[start..i].join(".");
            out.push(format!(
                "{:?}…({} characters, not shown)",
                prefix(&run, SECRET_PREFIX),
                run.chars().count()
            ));
        } else {
            let step = steps[i];
            out.push(if long(step) {
                let name = step.split('[').next().unwrap_or_default();
                format!(
                    "{:?}…({} characters){}",
                    prefix(name, LONG_PREFIX),
                    name.chars().count(),
                    &step[name.len()..]
                )
            } else {
                step.to_owned()
            });
            i += 1;
        }
    }
    out.join(".")
}

/// The quoted `body` to keep, and a note to put after the closing quote.
fn shorten(body: &str) -> (String, String) {
    let n = body.chars().count();
    let unescaped = body.replace("\\n", "\n").replace("\\\"", "\"");
    if crate::inline_secrets::looks_like_secret(&unescaped) {
        (
            format!("{}…", prefix(body, SECRET_PREFIX)),
            format!(" ({n} characters, not shown: it looks like a secret)"),
        )
    } else if n > MAX_QUOTED {
        (
            format!("{}…", prefix(body, LONG_PREFIX)),
            format!(" ({n} characters)"),
        )
    } else {
        (body.to_owned(), String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quote("matrix..example.org"), "\"matrix..example.org\"");
        assert_eq!(quote_secret_field("ab"), "\"ab\"");
    }

    #[test]
    fn long_and_secret_values_are_cut() {
        let key = "ed25519 a_AbCd nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw";
        let q = quote(key);
        assert!(!q.contains("nJ3a"), "{q}");
        assert!(q.starts_with("\"ed2\"…"), "{q}");
        let big = "x".repeat(1 << 20);
        assert!(quote(&big).len() < 60);
        assert_eq!(quote_secret_field("hunter2"), "\"hun\"… (7 characters)");
    }

    #[test]
    fn paths_do_not_show_secret_or_huge_keys() {
        assert_eq!(
            path("synapse.settings.ip_range_whitelist[0]"),
            "synapse.settings.ip_range_whitelist[0]"
        );
        assert_eq!(
            path("element.settings.enable_presence_by_hs_url.https://matrix.example.org"),
            "element.settings.enable_presence_by_hs_url.https://matrix.example.org"
        );
        for (p, secret) in [
            (
                "element.settings.x.https://u:hunter2@matrix.example.org",
                "hunter2",
            ),
            (
                "synapse.settings.users.syt_YWxpY2U_XbQwVxYzABCDEFghijkl_1A2b3C.name",
                "XbQw",
            ),
            (
                "a.eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2hlcmU.b",
                "eyJzdWIi",
            ),
            (
                "a.ed25519 a_AbCd nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw[0]",
                "nJ3a",
            ),
        ] {
            let shown = path(p);
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.starts_with(&p[..2]), "{shown}");
        }
        let shown = path(&format!("synapse.settings.{}.x", "k".repeat(100_000)));
        assert!(
            shown.len() < 80 && shown.ends_with("characters).x"),
            "{shown}"
        );
    }

    #[test]
    fn parser_messages_are_cut() {
        let key = "ed25519 a_AbCd nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw";
        let m = message(&format!(
            "invalid type: string {key:?}, expected struct HostDescription at line 1 column 1"
        ));
        assert!(!m.contains("nJ3a"), "{m}");
        assert!(
            m.ends_with("expected struct HostDescription at line 1 column 1"),
            "{m}"
        );
        let big = format!(
            "invalid type: string \"{}\", expected x",
            "y".repeat(1_000_000)
        );
        assert!(message(&big).len() < 100, "{}", message(&big));
        let m = message(&format!(
            "unknown field `{}`, expected one of `a`, `b`",
            "k".repeat(500)
        ));
        assert!(
            m.len() < 120 && m.ends_with("expected one of `a`, `b`"),
            "{m}"
        );
        assert_eq!(
            message("unknown variant `udp`, expected `tcp` or `unix`"),
            "unknown variant `udp`, expected `tcp` or `unix`"
        );
        assert_eq!(message("a \"b\\\"c\" d"), "a \"b\\\"c\" d");
        // Shortening twice changes nothing more.
        let once = message(&format!("string {key:?}, expected x"));
        assert_eq!(message(&once), once);
        assert!(message("unterminated \"abc").starts_with("unterminated \"abc"));
        // A quote character named as a character opens no quoted value.
        let m = format!("\"a\\\"b\" contains '\"': expected {}", "x".repeat(60));
        assert_eq!(message(&m), m);
    }
}
