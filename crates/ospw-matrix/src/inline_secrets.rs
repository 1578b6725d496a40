//! Recognising secrets written inline, by shape: the one detector every
//! component's check calls (Synapse's `homeserver.yaml` at any depth,
//! `turn.settings`, `element.settings`), and that error messages use to
//! decide what they may quote ([`crate::redact`]).
//!
//! A value is an inline secret when its **key** names a secret (a word
//! such as `secret`, `password`, `pass`, `pwd`, `token`, `key`,
//! `credential`, `private` or `pepper`, unless another word says the value
//! is something else: `key_refresh_interval`, `signing_key_path`,
//! `client_secret_file`, `token_endpoint`, `recaptcha_public_key`), or
//! when the **value** looks like one whatever its key: a PEM block, a
//! Synapse signing key line, a URL with a password or a secret query
//! parameter, a JSON Web Token, a known token prefix (`syt_`), a
//! `password=` in a connection string, or a long random-looking string of
//! base64 or hexadecimal characters. Booleans, `null` and empty strings
//! are never secrets; a secret-named key holding a mapping or list is
//! searched inside.

use serde_json::Value;

/// Words that make a key name a secret.
const SECRET_WORDS: [&str; 17] = [
    "secret",
    "secrets",
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "pass",
    "pwd",
    "token",
    "tokens",
    "key",
    "credential",
    "credentials",
    "private",
    "privkey",
    "apikey",
    "pepper",
];

/// Words that say a secret-named key holds something else: a file or
/// where to find one, a time, a switch, a public value, a name.
const HARMLESS_WORDS: [&str; 47] = [
    "path",
    "paths",
    "file",
    "files",
    "dir",
    "directory",
    "url",
    "uri",
    "endpoint",
    "lifetime",
    "interval",
    "timeout",
    "validity",
    "period",
    "ttl",
    "expiry",
    "age",
    "enabled",
    "enable",
    "disable",
    "requires",
    "require",
    "required",
    "inhibit",
    "suppress",
    "server",
    "servers",
    "alg",
    "algorithm",
    "values",
    "supported",
    "public",
    "pub",
    "id",
    "name",
    "type",
    "format",
    "length",
    "size",
    "reset",
    "header",
    "prefix",
    "field",
    "attribute",
    "claim",
    "template",
    "count",
];

/// Keys whose values are public identifiers, whatever they look like: an
/// OAuth client ID is not a secret (RFC 6749, section 2.2), and identity
/// providers such as authentik generate them as 40 random characters.
const PUBLIC_IDENTIFIER_KEYS: [&str; 1] = ["client_id"];

/// Subtrees that hold public keys (`old_signing_keys`, a key server's
/// `verify_keys`), not secrets.
const PUBLIC_KEY_SUBTREES: [&str; 2] = ["old_signing_keys", "verify_keys"];

/// The words of a key: split at every character that is not a letter or
/// digit and at lower-to-upper case changes, lower-cased
/// (`clientSecret` and `client-secret` are `client`, `secret`).
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Whether `key` names a secret value (see the module documentation).
pub fn is_secret_key(key: &str) -> bool {
    let words = words(key);
    words.iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
        && !words.iter().any(|w| HARMLESS_WORDS.contains(&w.as_str()))
}

/// Whether `value` looks like a secret whatever key holds it (see the
/// module documentation).
pub fn looks_like_secret(value: &str) -> bool {
    let v = value.trim();
    if v.contains("-----BEGIN ") {
        return true;
    }
    if is_signing_key_line(v) || is_jwt(v) || has_token_prefix(v) {
        return true;
    }
    if v.contains("://") {
        return url_holds_secret(v);
    }
    if let Some(i) = v.to_ascii_lowercase().find("password=") {
        let rest = &v[i + "password=".len()..];
        if rest.chars().next().is_some_and(|c| !c.is_whitespace()) {
            return true;
        }
    }
    is_random_token(v)
}

/// `ed25519 a_XXXX <base64 seed>`: a Synapse signing key.
fn is_signing_key_line(v: &str) -> bool {
    let mut parts = v.split_whitespace();
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some("ed25519"), Some(_), Some(seed)) if seed.len() >= 40
    )
}

fn is_base64url(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '='
}

/// A JSON Web Token: `eyJ…` header, payload and signature in base64url.
fn is_jwt(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && v.starts_with("eyJ")
        && v.len() >= 30
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(is_base64url))
}

/// Prefixes of well-known access tokens (Synapse's own first).
fn has_token_prefix(v: &str) -> bool {
    const PREFIXES: [&str; 8] = [
        "syt_",
        "syr_",
        "ghp_",
        "gho_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "xoxp-",
    ];
    v.len() >= 20
        && !v.chars().any(char::is_whitespace)
        && PREFIXES.iter().any(|p| v.starts_with(p))
}

/// A URL with a password (`scheme://user:password@host`) or a query
/// parameter named like a secret (`?api_key=…`).
fn url_holds_secret(v: &str) -> bool {
    let after_scheme = v.split_once("://").map_or(v, |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if userinfo
            .split_once(':')
            .is_some_and(|(_, password)| !password.is_empty())
        {
            return true;
        }
    }
    let query = v.split_once('?').map_or("", |(_, q)| q);
    query
        .split(['&', ';', '#'])
        .filter_map(|pair| pair.split_once('='))
        .any(|(name, value)| !value.is_empty() && is_secret_key(name))
}

/// A long string of base64 or hexadecimal characters that looks random:
/// at least 24 characters, upper and lower case letters and digits mixed
/// (or 32 hexadecimal digits), and no long runs of one class as in words.
fn is_random_token(v: &str) -> bool {
    let n = v.chars().count();
    if n < 24 || v.starts_with('/') {
        return false;
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+/=_-.~".contains(c))
    {
        return false;
    }
    let upper = v.chars().filter(char::is_ascii_uppercase).count();
    let lower = v.chars().filter(char::is_ascii_lowercase).count();
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let hex = v.len() >= 32 && v.chars().all(|c| c.is_ascii_hexdigit()) && digits > 0 && digits < n;
    let mixed = upper > 0 && lower > 0 && digits > 0 && wordy_share(v) * 2 < n;
    (hex || mixed) && entropy_bits_per_char(v) >= 3.0
}

/// How many characters of `v` are in runs of five or more letters of one
/// case: words (`StorageProvider`), which random strings rarely have.
fn wordy_share(v: &str) -> usize {
    let mut total = 0;
    let mut run = 0;
    let mut run_upper = false;
    for c in v.chars().chain(std::iter::once(' ')) {
        let same = c.is_ascii_alphabetic() && run > 0 && c.is_ascii_uppercase() == run_upper;
        if same {
            run += 1;
        } else {
            if run >= 5 {
                total += run;
            }
            run = usize::from(c.is_ascii_alphabetic());
            run_upper = c.is_ascii_uppercase();
        }
    }
    total
}

/// The Shannon entropy of the first 4096 characters of `v`.
fn entropy_bits_per_char(v: &str) -> f64 {
    let mut counts = std::collections::BTreeMap::new();
    let mut total = 0u32;
    for c in v.chars().take(4096) {
        *counts.entry(c).or_insert(0u32) += 1;
        total += 1;
    }
    let n = f64::from(total.max(1));
    counts
        .values()
        .map(|&k| {
            let p = f64::from(k) / n;
            -p * p.log2()
        })
        .sum()
}

/// Why a value was taken for a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its key names a secret.
    Key,
    /// The value itself looks like a secret.
    Value,
}

/// One inline secret found: its path (dotted keys, `[i]` for list items,
/// relative to the value searched) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Where it is.
    pub path: String,
    /// The last key on the path (the option's name), empty for list items.
    pub key: String,
    /// Why it was taken for a secret.
    pub reason: Reason,
}

/// Every inline secret in `value`, whose own path is `path` (and whose key
/// is `key`, empty when `value` is a whole document or list item).
pub fn find(value: &Value, path: &str, key: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    walk(value, path, key, &mut out);
    out
}

fn walk(value: &Value, path: &str, key: &str, out: &mut Vec<Finding>) {
    if PUBLIC_KEY_SUBTREES.contains(&key) {
        return;
    }
    let finding = |reason| Finding {
        path: path.to_owned(),
        key: key.to_owned(),
        reason,
    };
    match value {
        Value::String(s) if !s.is_empty() => {
            if !key.is_empty() && is_secret_key(key) {
                out.push(finding(Reason::Key));
            } else if !PUBLIC_IDENTIFIER_KEYS.contains(&key) && looks_like_secret(s) {
                out.push(finding(Reason::Value));
            }
        }
        Value::Number(_) if !key.is_empty() && is_secret_key(key) => {
            out.push(finding(Reason::Key));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), "", out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(v, &sub, k, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oauth_client_id_is_public_whatever_it_looks_like() {
        let id = "FSCuR9e4hQmvTnL0Zx2Ks7bYpWdA1oJqE3gHi5uV";
        assert!(looks_like_secret(id));
        let tree = serde_json::json!({"oidc_providers": [{"client_id": id, "other": id}]});
        let found: Vec<String> = find(&tree, "", "").into_iter().map(|f| f.path).collect();
        assert_eq!(found, vec!["oidc_providers[0].other"]);
    }

    #[test]
    fn secret_keys_by_shape() {
        for key in [
            "password",
            "secret",
            "client_secret",
            "smtp_pass",
            "pepper",
            "access_token",
            "token",
            "private_key",
            "secret_access_key",
            "aws_secret_access_key",
            "secretAccessKey",
            "api-key",
            "apikey",
            "clientSecret",
            "macaroon_secret_key",
            "recaptcha_private_key",
            "static-auth-secret",
            "cli-password",
            "pkey-pwd",
            "admin_token",
            "credentials",
            "key",
            "project_api_key",
            "db_passwd",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "key_refresh_interval",
            "signing_key_path",
            "macaroon_secret_key_path",
            "client_secret_path",
            "key_file",
            "private_key_file",
            "token_endpoint",
            "recaptcha_public_key",
            "refresh_token_lifetime",
            "registration_requires_token",
            "trusted_key_servers",
            "suppress_key_server_warning",
            "validation_token_lifetime",
            "token_timeout",
            "password_reset",
            "id_token_signing_alg_values_supported",
            "passthrough_authorization_parameters",
            "keyword",
            "monkey",
            "tokenizer",
            "bypass",
            "session_lifetime",
            "jwt_header",
            "key_id",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn secret_values_by_shape() {
        for v in [
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "ed25519 a_AbCd nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw",
            "postgres://synapse:hunter2@db.example.org/synapse",
            "redis://:hunter2@127.0.0.1:6379",
            "https://api.example.com/tiles/style.json?key=AbCd1234",
            "https://x.example.org/?access_token=abc",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2hlcmU",
            "syt_YWxpY2U_XbQwVxYzABCDEFghijkl_1A2b3C",
            "ip=127.0.0.1 dbname=coturn user=turn password=hunter2",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "3f1c9a7be2d84c6f9a0b1e2d3c4f5a6b7c8d9e0f",
            "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbA==",
        ] {
            assert!(looks_like_secret(v), "{v}");
        }
        for v in [
            "",
            "hunter2",
            "/var/lib/ospw-matrix/secrets/signing_key",
            "/run/agenix/ospw-matrix-turn-secret-9f8e7d6c5b4a",
            "https://matrix.example.org",
            "https://user@example.org/path",
            "turn:turn.example.org:3478?transport=udp",
            "UIFeature.urlPreviews",
            "synapse.storage.SQL",
            "@alice:example.org",
            "!roomid:example.org",
            "mxc://example.org/abc",
            "2001:db8::/32",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "1234567890123456789012345678901234567890",
            "this_is_a_long_option_value_name_2",
            "Europe/Amsterdam",
            "%(name)s - %(lineno)d - %(levelname)s",
            "s3_storage_provider.S3StorageProviderBackend",
            "synapse.handlers.oidc.JinjaOidcMappingProvider2",
        ] {
            assert!(!looks_like_secret(v), "{v}");
        }
    }

    #[test]
    fn finds_nested_secrets_and_skips_public_keys() {
        let value = serde_json::json!({
            "media_storage_providers": [{"module": "s3_storage_provider.S3StorageProviderBackend",
                "config": {"bucket": "b", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "x"}}],
            "email": {"smtp_pass": "hunter2", "smtp_port": 587, "notif_for_new_users": true},
            "old_signing_keys": {"ed25519:a_old": {"key": "l/O9hxMW6AnO4WHHD1eEKe6CzZ2pY2Ru4JSEbCtaQZ0", "expired_ts": 1}},
            "password_config": {"enabled": true, "pepper": null},
            "notes": "ed25519 a_AbCd nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw",
            "listeners": [{"port": 8008}],
        });
        let found = find(&value, "s", "");
        let paths: Vec<(&str, Reason)> =
            found.iter().map(|f| (f.path.as_str(), f.reason)).collect();
        assert_eq!(
            paths,
            vec![
                (
                    "s.media_storage_providers[0].config.secret_access_key",
                    Reason::Key
                ),
                ("s.email.smtp_pass", Reason::Key),
                ("s.notes", Reason::Value),
            ]
        );
    }
}
