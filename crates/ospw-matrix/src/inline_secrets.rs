//! Recognising secrets written inline, by shape: the one detector every
//! component's check calls (Synapse's `homeserver.yaml` at any depth,
//! `turn.settings`, `element.settings`), and that error messages use to
//! decide what they may quote ([`crate::redact`]).
//!
//! A value is an inline secret when its **key** names a secret (a word
//! such as `secret`, `password`, `pass`, `pwd`, `pw`, `token`, `key`,
//! `credential`, `private`, `psk`, `authorization` or `pepper`, also run
//! together with other words as in `clientsecret`, `dbPassword`,
//! `APIToken` or `accesskey`, unless another word says the value is
//! something else: `key_refresh_interval`, `signing_key_path`,
//! `client_secret_file`, `token_endpoint`, `recaptcha_public_key`), or
//! when the **value** looks like one whatever its key: a PEM block, a
//! Synapse signing key line, a URL with a password, a secret query
//! parameter or a random-looking token in its path (a webhook), a JSON
//! Web Token, a known token prefix (`syt_`), an HTTP `Authorization`
//! value (`Bearer …`, `Basic …`), a `password=` in a connection string,
//! or a long random-looking string of base64 or hexadecimal characters.
//! Booleans, `null` and empty strings are never secrets. The items of a
//! list under a secret-named key are secrets (`api_tokens: [a, b]`), and
//! so are the values of a mapping named like a collection of secrets
//! (`passwords: {alice: …}`); other secret-named mappings are searched
//! inside. A **key** that itself looks like a secret (a token used as a
//! map key, a URL with a password) is one too.

use serde_json::Value;

/// Words that make a key name a secret.
const SECRET_WORDS: [&str; 22] = [
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
    "keys",
    "pw",
    "psk",
    "authorization",
    "apikeys",
];

/// Words that name a secret when run together with others (`clientsecret`,
/// `dbpassword`, `apitoken`, `awssecretkey`): a word ending in one of
/// these is a secret word.
const SECRET_SUFFIXES: [&str; 18] = [
    "secret",
    "secrets",
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "pwd",
    "token",
    "tokens",
    "apikey",
    "apikeys",
    "privkey",
    "privatekey",
    "secretkey",
    "accesskey",
    "authkey",
    "credential",
    "credentials",
];

/// Secret words that name a collection of secrets: every value of a
/// mapping under such a key is a secret (`passwords: {alice: …}`).
const COLLECTION_WORDS: [&str; 6] = [
    "passwords",
    "secrets",
    "tokens",
    "credentials",
    "keys",
    "apikeys",
];

/// Words that say a secret-named key holds something else: a file or
/// where to find one, a time, a switch, a public value, a name.
const HARMLESS_WORDS: [&str; 49] = [
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
    "parameters",
    "params",
];

/// Keys whose values are public identifiers, whatever they look like: an
/// OAuth client ID is not a secret (RFC 6749, section 2.2), and identity
/// providers such as authentik generate them as 40 random characters.
const PUBLIC_IDENTIFIER_KEYS: [&str; 1] = ["client_id"];

/// Subtrees that hold public keys (`old_signing_keys`, a key server's
/// `verify_keys`), not secrets.
const PUBLIC_KEY_SUBTREES: [&str; 2] = ["old_signing_keys", "verify_keys"];

/// The words of a key: split at every character that is not a letter or
/// digit, at lower-to-upper case changes and before the last capital of
/// a run of capitals followed by a lower-case letter, lower-cased
/// (`clientSecret` and `client-secret` are `client`, `secret`;
/// `APIToken` is `api`, `token`).
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    let mut prev_upper = false;
    let chars: Vec<char> = key.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            prev_upper = false;
            continue;
        }
        let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
        if c.is_ascii_uppercase() && !word.is_empty() && (prev_lower || (prev_upper && next_lower))
        {
            out.push(std::mem::take(&mut word));
        }
        prev_upper = c.is_ascii_uppercase();
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The words of `key` as the detector splits them (lower case): `clientSecretPath`
/// is `client`, `secret`, `path`.
pub fn key_words(key: &str) -> Vec<String> {
    words(key)
}

/// Whether `word` (lower case) names a secret, alone or run together
/// with other words.
fn is_secret_word(word: &str) -> bool {
    SECRET_WORDS.contains(&word) || SECRET_SUFFIXES.iter().any(|s| word.ends_with(s))
}

/// Whether `key` names a secret value (see the module documentation).
pub fn is_secret_key(key: &str) -> bool {
    let words = words(key);
    words.iter().any(|w| is_secret_word(w))
        && !words.iter().any(|w| HARMLESS_WORDS.contains(&w.as_str()))
}

/// Whether `key` names a collection of secrets (`passwords`,
/// `api_tokens`): every value of a mapping under it is a secret.
fn is_secret_collection(key: &str) -> bool {
    is_secret_key(key)
        && words(key)
            .last()
            .is_some_and(|w| COLLECTION_WORDS.iter().any(|c| w.ends_with(c)))
}

/// Whether `value` looks like a secret whatever key holds it (see the
/// module documentation).
pub fn looks_like_secret(value: &str) -> bool {
    let v = value.trim();
    if v.contains("-----BEGIN ") {
        return true;
    }
    if is_signing_key_line(v) || is_jwt(v) || has_token_prefix(v) || is_auth_header(v) {
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

/// An HTTP `Authorization` value: `Bearer`, `Basic`, `Token` or `Bot`
/// followed by credentials.
fn is_auth_header(v: &str) -> bool {
    let Some((scheme, rest)) = v.split_once(char::is_whitespace) else {
        return false;
    };
    let rest = rest.trim();
    AUTH_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str())
        && rest.len() >= 6
        && !rest.chars().any(char::is_whitespace)
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
    v.len() >= 20
        && !v.chars().any(char::is_whitespace)
        && TOKEN_PREFIXES.iter().any(|p| v.starts_with(p))
}

/// Prefixes of well-known access tokens (Synapse's own first).
const TOKEN_PREFIXES: [&str; 8] = [
    "syt_",
    "syr_",
    "ghp_",
    "gho_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
];

/// HTTP authentication schemes whose value carries a credential.
const AUTH_SCHEMES: [&str; 4] = ["bearer", "basic", "token", "bot"];

/// The word lists of this detector as JSON, for tools that must apply the
/// same rules without this crate (the NixOS module's evaluation-time
/// check, which reads the committed `schema/secret-rules.json`, written by
/// `ospw-matrix schema --secret-rules`).
pub fn rules() -> Value {
    serde_json::json!({
        "description": "The key-name rules of ospw-matrix's inline-secret detector (crate::inline_secrets), \
            generated by `ospw-matrix schema --secret-rules`: a key is a secret when one of its words \
            (split at non-alphanumeric characters and at case changes, lower-cased) is a secret word or \
            ends with a secret suffix, and none is a harmless word.",
        "secret_words": SECRET_WORDS.to_vec(),
        "secret_suffixes": SECRET_SUFFIXES.to_vec(),
        "collection_words": COLLECTION_WORDS.to_vec(),
        "harmless_words": HARMLESS_WORDS.to_vec(),
        "public_key_subtrees": PUBLIC_KEY_SUBTREES.to_vec(),
        "token_prefixes": TOKEN_PREFIXES.to_vec(),
        "auth_schemes": AUTH_SCHEMES.to_vec(),
        "example": {
            "settings": rules_example(),
            "found": example_findings(),
        },
    })
}

/// Settings whose secrets every implementation of these rules must find
/// alike (`found` in [`rules`]): names, nesting, lists, collections and
/// the value shapes other than the random-looking string.
fn rules_example() -> Value {
    serde_json::json!({
        "modules": [{"module": "bot.Module", "config": {
            "api_tokens": ["abc", "def"], "dbPassword": "x", "APIToken": "x", "clientsecret": "x",
            "smtp_pw": 1234, "bind_password": "x", "token_endpoint": "https://id.example.org/t",
            "key_id": "k1", "access_key_id": "AKIA", "secret_access_key": "x",
            "headers": {"X-Auth": "Bearer abcdef123", "Accept": "text/plain"},
            "hook": "https://bot:hunter2@hooks.example.org/x",
            "feed": "https://feeds.example.org/x?api_key=abc&page=2",
            "syt_YWxpY2U_XbQwVxYzABCDEFghijkl_1A2b3C": "@bot:example.org",
            "passthrough_authorization_parameters": ["login_hint"],
            "tokenizer": "simple", "keyboard": "qwerty", "bypass": false
        }}],
        "password_config": {"enabled": true, "pepper": "x", "policy": {"minimum_length": 8}},
        "passwords": {"alice": "x", "bob": {"pw": "y"}},
        "client_secret_jwt_key": {"key_file": "/run/k.pem", "jwt_header": {"alg": "ES256"}},
        "old_signing_keys": {"ed25519:a_old": {"key": "l/O9hxMW6AnO4WHHD1eEKe6CzZ2pY2Ru4JSEbCtaQZ0"}},
        "trusted_key_servers": [{"server_name": "example.org", "verify_keys": {"ed25519:a": "abc"}}],
        "notes": "ed25519 a_AbCd nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw",
        "pem": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2hlcmU",
        "dsn": "host=db user=x password=hunter2",
        "db": "postgres://synapse:hunter2@db.example.org/synapse",
        "media": "mxc://example.org/abc",
        "homeserver": "https://matrix.example.org",
        "brand": "Example Chat",
        "max_upload_size": "50M",
        "enable_registration": false,
        "empty_secret": "",
        "null_token": null
    })
}

/// What [`find`] reports in [`rules_example`], as paths (a key that looks
/// like a secret is shown as `<a key that looks like a secret>`), sorted.
fn example_findings() -> Vec<String> {
    let mut paths: Vec<String> = find(&rules_example(), "s", "")
        .into_iter()
        .map(|f| match f.reason {
            Reason::Name => format!(
                "{}.<a key that looks like a secret>",
                f.path
                    .strip_suffix(&format!(".{}", f.key))
                    .unwrap_or(&f.path)
            ),
            _ => f.path,
        })
        .collect();
    paths.sort();
    paths
}

/// A URL with a password (`scheme://user:password@host`), a query
/// parameter named like a secret (`?api_key=…`) or a random-looking
/// token in its path, query or fragment (a webhook such as
/// `https://hooks.example.com/services/T0/B0/<token>`). Media URIs
/// (`mxc://`) name content, not secrets.
fn url_holds_secret(v: &str) -> bool {
    let (scheme, after_scheme) = v.split_once("://").unwrap_or(("", v));
    if scheme.eq_ignore_ascii_case("mxc") {
        return false;
    }
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
    if query
        .split(['&', ';', '#'])
        .filter_map(|pair| pair.split_once('='))
        .any(|(name, value)| !value.is_empty() && is_secret_key(name))
    {
        return true;
    }
    let rest = after_scheme
        .find(['/', '?', '#'])
        .map_or("", |i| &after_scheme[i..]);
    rest.split(['/', '?', '#', '&', '=', ';'])
        .any(|part| is_random_token(part) && !part.contains('.'))
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
    /// The key itself looks like a secret (a token used as a map key).
    Name,
}

/// One inline secret found: its path (dotted keys, `[i]` for list items,
/// relative to the value searched) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Where it is.
    pub path: String,
    /// The last key on the path (the option's name); for a list item, the
    /// list's key.
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
    walk_inherited(value, path, key, false, out);
}

/// `secret_parent`: `value` is an item of a list under a secret-named key,
/// or a value of a mapping named like a collection of secrets.
fn walk_inherited(
    value: &Value,
    path: &str,
    key: &str,
    secret_parent: bool,
    out: &mut Vec<Finding>,
) {
    if PUBLIC_KEY_SUBTREES.contains(&key) {
        return;
    }
    let finding = |reason| Finding {
        path: path.to_owned(),
        key: key.to_owned(),
        reason,
    };
    if !key.is_empty() && looks_like_secret(key) {
        out.push(finding(Reason::Name));
        return;
    }
    let named = secret_parent || (!key.is_empty() && is_secret_key(key));
    match value {
        Value::String(s) if !s.is_empty() => {
            if named {
                out.push(finding(Reason::Key));
            } else if !PUBLIC_IDENTIFIER_KEYS.contains(&key) && looks_like_secret(s) {
                out.push(finding(Reason::Value));
            }
        }
        Value::Number(_) if named => {
            out.push(finding(Reason::Key));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_inherited(item, &format!("{path}[{i}]"), key, named, out);
            }
        }
        Value::Object(map) => {
            let collection = secret_parent || is_secret_collection(key);
            for (k, v) in map {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let harmless = words(k)
                    .iter()
                    .any(|w| HARMLESS_WORDS.contains(&w.as_str()));
                walk_inherited(v, &sub, k, collection && !harmless, out);
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
            // Words run together, acronyms, other names for a secret.
            "clientsecret",
            "dbpassword",
            "smtpPassword",
            "APIToken",
            "APIKey",
            "DBPassword",
            "accesstoken",
            "awsSecretAccessKey",
            "secretkey",
            "api_keys",
            "smtp_pw",
            "wifi_psk",
            "Authorization",
            "bot_credentials",
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
            "passthrough_authorization_parameters",
            "use_appservice_legacy_authorization_enabled",
            "tokenizer",
            "bypass",
            "compass",
            "keyboard",
            "turkey",
            "access_key_id",
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
            // HTTP Authorization values and webhook URLs.
            "Bearer abc123def",
            "Basic dXNlcjpodW50ZXIy",
            "https://hooks.slack.com/services/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",
            "https://discord.com/api/webhooks/1234567890/Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-Dc",
            "https://example.org/hook#k=q8GzTdW3kP5rXvN2mL7yHc4J",
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
            "Bearer",
            "token based",
            "mxc://example.org/VFVaHTRUFOyMTXVMBaUlsWNa",
            "https://example.org/rules/house-rules-2024.html",
            "https://chat.example.org/#/room/#general:example.org",
        ] {
            assert!(!looks_like_secret(v), "{v}");
        }
    }

    #[test]
    fn lists_collections_and_keys_that_are_secrets() {
        let value = serde_json::json!({
            "api_tokens": ["abc", "def"],
            "passwords": {"alice": "hunter2", "bob": {"pw": "x"}},
            "password_config": {"enabled": true, "policy": {"minimum_length": 8, "require_digit": true}},
            "client_secret_jwt_key": {"key_file": "/run/k.pem", "jwt_header": {"alg": "ES256"}},
            "tokens_enabled": true,
            "users": {"syt_YWxpY2U_XbQwVxYzABCDEFghijkl_1A2b3C": "@alice:example.org"},
            "homeservers": {"https://u:hunter2@matrix.example.org": true},
        });
        let found: Vec<(String, Reason)> = find(&value, "", "")
            .into_iter()
            .map(|f| (f.path, f.reason))
            .collect();
        assert_eq!(
            found,
            vec![
                ("api_tokens[0]".into(), Reason::Key),
                ("api_tokens[1]".into(), Reason::Key),
                ("passwords.alice".into(), Reason::Key),
                ("passwords.bob.pw".into(), Reason::Key),
                (
                    "users.syt_YWxpY2U_XbQwVxYzABCDEFghijkl_1A2b3C".into(),
                    Reason::Name
                ),
                (
                    "homeservers.https://u:hunter2@matrix.example.org".into(),
                    Reason::Name
                ),
            ]
        );
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
