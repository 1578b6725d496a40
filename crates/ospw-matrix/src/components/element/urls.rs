//! Which host a string in Element's `config.json` makes a browser contact
//! (or send people to), read the way a browser's URL parser (WHATWG URL)
//! reads it, so that another spelling cannot slip a third-party host past
//! the check.
//!
//! The parser is deliberately conservative: whatever it cannot place on one
//! of this server's hosts is reported, never assumed harmless.

/// What a string in the configuration is, as a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlTarget {
    /// Not a URL, or a path relative to Element's own origin.
    Local,
    /// A URL that contacts no host: `mailto:` or a `data:image/` URL.
    NoHost,
    /// A URL on this host (lower case, without port).
    Host(String),
    /// Something a browser could read as a URL this check cannot place:
    /// another scheme, user info, an encoded host.
    Unclear(String),
}

/// Special schemes: the WHATWG parser reads their authority after any
/// number of `/` or `\`.
const SPECIAL_SCHEMES: [&str; 6] = ["http", "https", "ws", "wss", "ftp", "file"];

/// What the browser makes of `raw`: leading and trailing C0 controls and
/// spaces are dropped and tabs and newlines removed before parsing, as the
/// WHATWG URL parser does.
fn browser_normalised(raw: &str) -> String {
    raw.trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// The scheme of `s` (`[A-Za-z][A-Za-z0-9+.-]*:`), lower case.
fn scheme_of(s: &str) -> Option<(String, &str)> {
    let colon = s.find(':')?;
    let scheme = &s[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
    {
        return None;
    }
    Some((scheme.to_ascii_lowercase(), &s[colon + 1..]))
}

/// The host of an authority (`user@host:port/...`), lower case.
fn authority_host(rest: &str) -> UrlTarget {
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return UrlTarget::Unclear(
            "the URL carries user info (`name@`, perhaps a password, not shown): the host is what \
             follows the @"
                .to_owned(),
        );
    }
    if authority.contains('%') {
        return UrlTarget::Unclear(format!(
            "{authority:?} has a percent-encoded host, which the browser decodes"
        ));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    if host.is_empty() {
        return UrlTarget::Unclear(format!("{authority:?} has no host"));
    }
    UrlTarget::Host(host.to_ascii_lowercase())
}

/// Reads `raw` as a browser would read it as a link or resource URL.
pub fn target(raw: &str) -> UrlTarget {
    let s = browser_normalised(raw);
    let mut chars = s.chars();
    let (a, b) = (chars.next(), chars.next());
    if matches!(a, Some('/' | '\\')) && matches!(b, Some('/' | '\\')) {
        // Scheme-relative: `//host/...` (and the backslash spellings).
        return authority_host(s.trim_start_matches(['/', '\\']));
    }
    let Some((scheme, rest)) = scheme_of(&s) else {
        return UrlTarget::Local;
    };
    if SPECIAL_SCHEMES.contains(&scheme.as_str()) {
        return authority_host(rest.trim_start_matches(['/', '\\']));
    }
    if scheme.contains('.') {
        // `host.example:443`: a host and port without a scheme.
        return authority_host(&s);
    }
    match scheme.as_str() {
        "mailto" => UrlTarget::NoHost,
        "data" if rest.to_ascii_lowercase().starts_with("image/") => UrlTarget::NoHost,
        _ => UrlTarget::Unclear(format!(
            "is a {scheme}: URL: expected an https:// URL on this server's hosts or a relative path"
        )),
    }
}

/// Whether `s` reads as a URL with a scheme or authority at its start.
pub fn looks_like_url(s: &str) -> bool {
    let n = browser_normalised(s);
    if n.chars().any(char::is_whitespace) {
        return n.contains("://");
    }
    n.starts_with("//")
        || n.starts_with("\\\\")
        || n.starts_with("/\\")
        || n.starts_with("\\/")
        || scheme_of(&n).is_some()
        || n.contains("://")
}

/// Every URL in `s`: the whole string when it is one word, otherwise each
/// word that carries a scheme and authority (`scheme://`, `//`).
pub fn targets_in(s: &str) -> Vec<UrlTarget> {
    let n = browser_normalised(s);
    if !n.chars().any(char::is_whitespace) {
        return vec![target(&n)];
    }
    n.split_whitespace()
        .filter(|w| w.contains("://") || w.starts_with("//"))
        .map(target)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> UrlTarget {
        UrlTarget::Host(s.to_owned())
    }

    #[test]
    fn spellings_of_a_host() {
        for (raw, expected) in [
            (
                "https://tiles.example.org/style.json",
                host("tiles.example.org"),
            ),
            (
                "HTTPS://Tiles.Example.ORG:8443/x",
                host("tiles.example.org"),
            ),
            ("//evil.example/x.png", host("evil.example")),
            ("\\\\evil.example/x.png", host("evil.example")),
            ("/\\evil.example/x.png", host("evil.example")),
            ("https:evil.example/x", host("evil.example")),
            ("https:\\\\evil.example", host("evil.example")),
            ("http:/evil.example", host("evil.example")),
            (" \thttps://evil.example", host("evil.example")),
            ("ht\ntps://evil.example", host("evil.example")),
            ("https:/\t/evil.example", host("evil.example")),
            ("wss://evil.example/socket", host("evil.example")),
            (
                "https://chat.example.org\\@evil.example",
                host("chat.example.org"),
            ),
            ("https://[::1]:8448/", host("::1")),
            ("evil.example:443", host("evil.example")),
        ] {
            assert_eq!(target(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn local_and_hostless() {
        for raw in [
            "welcome.html",
            "themes/element/img/logos/element-logo.svg",
            "/branding/logo.svg",
            "#/login",
            "light",
            "@bot:example.org",
            "!room:example.org",
        ] {
            assert_eq!(target(raw), UrlTarget::Local, "{raw:?}");
        }
        assert_eq!(target("mailto:admin@example.org"), UrlTarget::NoHost);
        assert_eq!(target("data:image/png;base64,AAAA"), UrlTarget::NoHost);
    }

    #[test]
    fn unclear_spellings_are_reported() {
        for raw in [
            "javascript:alert(1)",
            "data:text/html,<script>",
            "https://user@evil.example/",
            "https://chat%2eexample.org/",
            "blob:https://evil.example/x",
            "https:///",
        ] {
            assert!(matches!(target(raw), UrlTarget::Unclear(_)), "{raw:?}");
        }
    }

    #[test]
    fn urls_inside_text() {
        assert_eq!(
            targets_in("see https://evil.example/x and //other"),
            vec![host("evil.example"), host("other")]
        );
        assert!(looks_like_url("https://x"));
        assert!(looks_like_url("javascript:x"));
        assert!(!looks_like_url("Example Chat"));
        assert!(!looks_like_url("Chat: the place"));
    }
}
