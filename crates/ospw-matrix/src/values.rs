//! Parsers for the value forms the host description uses: sizes, durations
//! and port ranges. Each error message says what form was expected.

use std::fmt;

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (inclusive).
    pub last: u16,
}

impl PortRange {
    /// Whether the two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Parses `FIRST-LAST` (both 1 to 65535, first below last).
pub fn parse_port_range(text: &str) -> Result<PortRange, String> {
    let expected = "expected FIRST-LAST such as 49152-65535";
    let Some((a, b)) = text.split_once('-') else {
        return Err(format!(
            "{} is not a port range: {expected}",
            crate::redact::quote(text)
        ));
    };
    let parse = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p != 0);
    let (Some(first), Some(last)) = (parse(a), parse(b)) else {
        return Err(format!(
            "{} is not a port range of ports 1 to 65535: {expected}",
            crate::redact::quote(text)
        ));
    };
    if first > last {
        return Err(format!(
            "{text} is empty: the first port must be below the last"
        ));
    }
    if first == last {
        return Err(format!(
            "{text} is a single port: coturn gives every allocation a relay port of its own, so \
             one port would serve one call participant at a time; {expected}"
        ));
    }
    Ok(PortRange { first, last })
}

/// Parses a size such as `50M` into bytes. Suffixes K, M, G and T are powers
/// of 1024; a bare number is bytes.
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    let expected = "expected a number with an optional suffix K, M, G or T, such as 50M";
    let (digits, factor) = match text.char_indices().last() {
        Some((i, 'K')) => (&text[..i], 1u64 << 10),
        Some((i, 'M')) => (&text[..i], 1u64 << 20),
        Some((i, 'G')) => (&text[..i], 1u64 << 30),
        Some((i, 'T')) => (&text[..i], 1u64 << 40),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{} is not a size: {expected}",
            crate::redact::quote(text)
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{} is too large: {expected}", crate::redact::quote(text)))?;
    let bytes = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{} is too large: {expected}", crate::redact::quote(text)))?;
    if bytes == 0 {
        return Err(format!(
            "{} is zero: {expected}",
            crate::redact::quote(text)
        ));
    }
    Ok(bytes)
}

/// Parses a duration such as `1h` into milliseconds. Suffixes: ms, s, m, h,
/// d, w, y (as Synapse reads them); a bare number is milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let expected = "expected a number with a suffix ms, s, m, h, d, w or y, such as 1h";
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let factor: u64 = match suffix {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "y" => 365 * 86_400_000,
        _ => {
            return Err(format!(
                "{} is not a duration: {expected}",
                crate::redact::quote(text)
            ))
        }
    };
    if digits.is_empty() {
        return Err(format!(
            "{} is not a duration: {expected}",
            crate::redact::quote(text)
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{} is too long: {expected}", crate::redact::quote(text)))?;
    let ms = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{} is too long: {expected}", crate::redact::quote(text)))?;
    if ms == 0 {
        return Err(format!(
            "{} is zero: {expected}",
            crate::redact::quote(text)
        ));
    }
    Ok(ms)
}

/// The Jinja2 filters a claim template may use: Jinja's own string filters
/// and Synapse's `localpart_from_email`.
pub const TEMPLATE_FILTERS: [&str; 6] = [
    "lower",
    "upper",
    "title",
    "capitalize",
    "trim",
    "localpart_from_email",
];

/// Checks a claim template of Synapse's OpenID Connect mapping provider (a
/// Jinja2 template rendered with the provider's claims as `user`) and
/// returns the claims it reads.
///
/// Only a safe, well-formed subset of Jinja2 is accepted: literal text and
/// `{{ EXPR }}` blocks, where `EXPR` is `user.CLAIM` (or `user["CLAIM"]`,
/// nested access allowed) or a quoted string, followed by any of the
/// [`TEMPLATE_FILTERS`] (`{{ user.email | localpart_from_email }}`).
/// Statements (`{% %}`), comments (`{# #}`), unbalanced braces, function
/// calls and attribute names starting with `_` are refused.
pub fn parse_claim_template(text: &str) -> Result<Vec<String>, String> {
    let expected = "expected text with {{ user.CLAIM }} expressions, optionally with filters \
                    (such as {{ user.preferred_username | lower }})";
    if text.chars().any(char::is_control) {
        return Err(format!("{text:?} contains a control character: {expected}"));
    }
    let mut claims = Vec::new();
    let mut rest = text;
    loop {
        let open = ["{{", "{%", "{#"]
            .iter()
            .filter_map(|d| rest.find(d).map(|i| (i, *d)))
            .min();
        let literal_end = open.map_or(rest.len(), |(i, _)| i);
        if rest[..literal_end].contains("}}") || rest[..literal_end].contains("%}") {
            return Err(format!(
                "{text:?} closes a block that was never opened: {expected}"
            ));
        }
        let Some((i, delim)) = open else { break };
        if delim != "{{" {
            return Err(format!(
                "{text:?} uses a Jinja statement or comment ({delim}): only {{{{ }}}} \
                 expressions are supported; {expected}"
            ));
        }
        let after = &rest[i + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!("{text:?} has {{{{ without }}}}: {expected}"));
        };
        let expr = &after[..close];
        if expr.contains("{{") || expr.contains('{') {
            return Err(format!(
                "{text:?} nests braces inside {{{{ }}}}: {expected}"
            ));
        }
        let claim = parse_template_expression(expr.trim())
            .map_err(|why| format!("{text:?}: {{{{{expr}}}}} {why}: {expected}"))?;
        claims.extend(claim);
        rest = &after[close + 2..];
    }
    Ok(claims)
}

/// One `{{ }}` expression: a claim or a string, then filters. Returns the
/// top-level claim it reads, if any.
fn parse_template_expression(expr: &str) -> Result<Option<String>, &'static str> {
    let mut parts = expr.split('|');
    let term = parts.next().unwrap_or_default().trim();
    for filter in parts {
        let filter = filter.trim();
        if !TEMPLATE_FILTERS.contains(&filter) {
            return Err("uses a filter that is not one of lower, upper, title, capitalize, trim, localpart_from_email (without arguments)");
        }
    }
    if term.is_empty() {
        return Err("is empty");
    }
    if quoted(term).is_some() {
        return Ok(None);
    }
    let Some(mut access) = term.strip_prefix("user") else {
        return Err("reads neither a claim (user.CLAIM) nor a quoted string");
    };
    let mut first: Option<String> = None;
    while !access.is_empty() {
        let (name, next) = if let Some(r) = access.strip_prefix('.') {
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            let name = &r[..end];
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
            if !valid {
                return Err("names an attribute that does not start with a letter");
            }
            (name.to_owned(), &r[end..])
        } else if let Some(r) = access.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return Err("has [ without ]");
            };
            let Some(name) = quoted(r[..end].trim()) else {
                return Err("indexes with something other than a quoted claim name");
            };
            if name.is_empty() || name.starts_with('_') {
                return Err("indexes with an empty name or one starting with _");
            }
            (name.to_owned(), &r[end + 1..])
        } else {
            return Err(
                "has something after the claim that is neither .NAME, [\"NAME\"] nor a | filter",
            );
        };
        first.get_or_insert(name);
        access = next;
    }
    match first {
        Some(claim) => Ok(Some(claim)),
        None => Err("reads the whole claim set (user) instead of one claim (user.CLAIM)"),
    }
}

/// The contents of a single- or double-quoted Jinja string without escapes.
fn quoted(text: &str) -> Option<&str> {
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            if !inner.contains(q) && !inner.contains('\\') {
                return Some(inner);
            }
        }
    }
    None
}

/// Checks an e-mail address `local@domain` as the host description accepts
/// it: an ASCII local part of letters, digits and `.!#$&'*+/=?^_`{|}~-`
/// (no quotes, no `%`, no spaces) and a DNS domain.
pub fn check_email_address(addr: &str) -> Result<(), String> {
    let expected = "expected an address such as noreply@example.org";
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return Err(format!("{addr:?} has no @: {expected}"));
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".!#$&'*+/=?^_`{|}~-".contains(c));
    if !local_ok {
        return Err(format!(
            "{addr:?} has a local part with characters other than letters, digits and .!#$&'*+/=?^_`{{|}}~-: {expected}"
        ));
    }
    if !crate::validate::is_dns_name(domain) {
        return Err(format!(
            "{addr:?} has no valid DNS domain after @: {expected}"
        ));
    }
    Ok(())
}

/// Checks a sender as a mail `From` header: `noreply@example.org` or
/// `Display Name <noreply@example.org>`. The display name may not hold
/// control characters (header injection), quotes, angle brackets,
/// backslashes or `%` (Synapse formats the sender with Python's `%`
/// operator, where a stray `%` would make every mail fail).
pub fn check_mailbox(text: &str) -> Result<(), String> {
    let expected = "expected noreply@example.org or Example Chat <noreply@example.org>";
    if text.chars().any(char::is_control) {
        return Err(format!(
            "{text:?} contains a control character (a line break would add mail headers): {expected}"
        ));
    }
    let addr = match text.strip_suffix('>') {
        Some(rest) => {
            let Some((name, addr)) = rest.rsplit_once('<') else {
                return Err(format!("{text:?} has > without <: {expected}"));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("{text:?} has an empty name before <: {expected}"));
            }
            if let Some(bad) = name.chars().find(|c| "<>\"\\%@,;:()[]".contains(*c)) {
                return Err(format!(
                    "{text:?} has {bad:?} in its name: use letters, digits, spaces and simple punctuation; {expected}"
                ));
            }
            addr
        }
        None => text,
    };
    check_email_address(addr).map_err(|e| format!("{e} ({expected})"))
}

/// Whether `host` names the local machine: `localhost`, an address in
/// 127.0.0.0/8 or `::1` (written bare or in brackets).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// An `http(s)://host[:port][/path]` URL as the host description accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUrl {
    /// `https` or `http`.
    pub scheme: String,
    /// The host: a DNS name, an IPv4 address or a bracketed IPv6 address.
    pub host: String,
    /// The port, if given.
    pub port: Option<u16>,
    /// The path (empty or starting with `/`).
    pub path: String,
}

/// Parses an `http://` or `https://` URL without user information, query or
/// fragment; the host must be a DNS name or an IP address.
pub fn parse_web_url(text: &str) -> Result<WebUrl, String> {
    let expected = "expected a URL such as https://auth.example.org/application/o/matrix/";
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{text:?} contains spaces or control characters: {expected}"
        ));
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!("{text:?} is not a URL: {expected}"));
    };
    if scheme != "https" && scheme != "http" {
        return Err(format!("{text:?} does not start with https://: {expected}"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!("{text:?} has a query or fragment: {expected}"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(format!(
            "{text:?} holds user information (user@host): {expected}"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(format!("{text:?} has [ without ]: {expected}"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "{text:?} has no valid IPv6 address in brackets: {expected}"
            ));
        }
        (format!("[{addr}]"), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{text:?} has no valid port: {expected}"))?,
        ),
        None => None,
    };
    let host_ok = host.starts_with('[')
        || host.parse::<std::net::Ipv4Addr>().is_ok()
        || crate::validate::is_dns_name(&host);
    if !host_ok {
        return Err(format!("{text:?} has no valid host name: {expected}"));
    }
    Ok(WebUrl {
        scheme: scheme.to_owned(),
        host,
        port,
        path: path.to_owned(),
    })
}

/// The shortest and longest lifetime accepted for TURN credentials.
pub const TURN_LIFETIME_BOUNDS: (u64, u64) = (60_000, 7 * 86_400_000);

/// Parses a TURN credential lifetime such as `1h` into milliseconds: a
/// number with a unit (ms, s, m, h, d or w) between one minute and seven
/// days. A bare number is refused: Synapse would read it as milliseconds
/// (`86400` is 86 seconds, not a day).
pub fn parse_lifetime_ms(text: &str) -> Result<u64, String> {
    let expected = "expected a number with a unit s, m, h or d, such as 1h or 1d";
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs = text.parse::<u64>().map(|n| n / 1000).unwrap_or(0);
        return Err(format!(
            "{text:?} has no unit: Synapse would read it as milliseconds ({secs} s); {expected}"
        ));
    }
    let ms =
        parse_duration_ms(text).map_err(|_| format!("{text:?} is not a duration: {expected}"))?;
    let (min, max) = TURN_LIFETIME_BOUNDS;
    if ms < min {
        return Err(format!(
            "{text:?} is shorter than a minute: credentials would expire while a call is being \
             set up; {expected}"
        ));
    }
    if ms > max {
        return Err(format!(
            "{text:?} is longer than 7 days: a leaked credential would relay for that long; \
             expected at most 7d, such as 1h or 1d"
        ));
    }
    Ok(ms)
}

/// Parses an `https://` URL the operator wrote into a typed field and
/// returns its host (lower case). The host must be a DNS name; user info,
/// white space, control characters and characters that need quoting in
/// HTML or JSON are refused.
pub fn parse_https_url(text: &str) -> Result<String, String> {
    let expected = "expected an https:// URL such as https://chat.example.org/help";
    let Some(rest) = text.strip_prefix("https://") else {
        return Err(format!("{text:?} is not an https:// URL: {expected}"));
    };
    if text.len() > 2000 {
        return Err(format!(
            "is {} characters long: {expected} of at most 2000",
            text.len()
        ));
    }
    if let Some(c) = text.chars().find(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '"' | '<' | '>' | '\\' | '`' | '{' | '}' | '^' | '|')
    }) {
        return Err(format!("{text:?} contains {c:?}: {expected}"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err(format!(
            "{text:?} carries user info before @, which hides the real host: {expected}"
        ));
    }
    let host = match authority.rsplit_once(':') {
        Some((h, port)) => {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(format!("{text:?} has an invalid port: {expected}"));
            }
            h
        }
        None => authority,
    };
    if !crate::validate::is_dns_name(host) {
        return Err(format!(
            "{text:?} does not name a host by its DNS name: {expected}"
        ));
    }
    Ok(host.to_ascii_lowercase())
}

/// Where Caddy's admin endpoint listens, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminListen {
    /// `off`: no admin endpoint.
    Off,
    /// A loopback TCP address (`localhost`, `127.0.0.0/8` or `[::1]`) and port.
    Loopback {
        /// The port.
        port: u16,
    },
    /// `unix/PATH`: a Unix socket (file permissions decide who reaches it).
    Unix {
        /// The socket's absolute path.
        path: String,
    },
}

/// Parses Caddy's `admin` global option the way Caddy (2.6 and 2.10,
/// `parseAdminListenAddr`) reads it, and accepts only what keeps the
/// endpoint, which has no authentication, off the network: `off`, a
/// loopback address with one port, or `unix/` and an absolute path.
pub fn parse_admin_listen(text: &str) -> Result<AdminListen, String> {
    let expected =
        "expected off, localhost:PORT, 127.0.0.1:PORT, [::1]:PORT or unix//PATH/TO/SOCKET";
    if text == "off" {
        return Ok(AdminListen::Off);
    }
    if text.contains(['{', '}']) {
        return Err(format!(
            "{text:?} holds a placeholder: Caddy replaces {{...}} in the admin address (from the \
             environment and its own values) when it starts, so the address would not be the one \
             checked here: {expected}"
        ));
    }
    if let Some(c) = text.chars().find(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '`' | '\\' | '#' | '|')
    }) {
        return Err(format!("{text:?} contains {c:?}: {expected}"));
    }
    if let Some((network, rest)) = text.split_once('/') {
        // Caddy lower-cases and trims the network name.
        let network = network.trim().to_ascii_lowercase();
        if network == "unix" {
            if !rest.starts_with('/') || rest.contains("/../") || rest.ends_with("/..") {
                return Err(format!(
                    "{text:?} does not name an absolute socket path after unix/: {expected}"
                ));
            }
            return Ok(AdminListen::Unix {
                path: rest.to_owned(),
            });
        }
        return Err(format!(
            "{text:?} uses the network {network:?}: the admin endpoint listens on loopback TCP or a \
             Unix socket only ({expected})"
        ));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((h, p)) => (h, p),
            None => return Err(format!("{text:?} is not [IPV6]:PORT: {expected}")),
        }
    } else {
        match text.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, p),
            _ => {
                return Err(format!(
                    "{text:?} is not HOST:PORT (an IPv6 address goes in brackets, [::1]:2019): {expected}"
                ))
            }
        }
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 && port.chars().all(|c| c.is_ascii_digit()) => p,
        _ => {
            return Err(format!(
                "{text:?} does not end in one port from 1 to 65535 (no range): {expected}"
            ))
        }
    };
    if host.is_empty() {
        return Err(format!(
            "{text:?} listens on every interface: the admin endpoint has no authentication, so anyone \
             who reaches it controls Caddy; {expected}"
        ));
    }
    if host == "localhost" {
        return Ok(AdminListen::Loopback { port });
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(AdminListen::Loopback { port }),
        Ok(ip) if ip.is_unspecified() => Err(format!(
            "{text:?} listens on every interface ({ip}): the admin endpoint has no authentication, so \
             anyone who reaches it controls Caddy; {expected}"
        )),
        Ok(ip) => Err(format!(
            "{text:?} is not a loopback address ({ip} is reachable from the network): the admin \
             endpoint has no authentication; {expected}"
        )),
        Err(_) => Err(format!(
            "{text:?} names the host {host:?}, which may resolve to any address: {expected}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            parse_port_range("49152-65535"),
            Ok(PortRange {
                first: 49152,
                last: 65535
            })
        );
        assert_eq!(
            parse_port_range("60000-50000").unwrap_err(),
            "60000-50000 is empty: the first port must be below the last"
        );
        assert!(parse_port_range("5000").is_err());
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("1-70000").is_err());
        assert_eq!(
            parse_port_range("10-10").unwrap_err(),
            "10-10 is a single port: coturn gives every allocation a relay port of its own, so \
             one port would serve one call participant at a time; expected FIRST-LAST such as \
             49152-65535"
        );
    }

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_lifetime_ms("1d"), Ok(86_400_000));
        assert_eq!(parse_lifetime_ms("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_lifetime_ms("60s"), Ok(60_000));
        assert!(parse_lifetime_ms("86400").unwrap_err().contains("86 s"));
        for bad in [
            "", "0", "3600000", "59s", "8d", "2w", "1y", "1 h", "1.5h", "-1h",
        ] {
            assert!(parse_lifetime_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_bytes("50M"), Ok(50 * 1024 * 1024));
        assert_eq!(parse_size_bytes("1024"), Ok(1024));
        assert_eq!(parse_size_bytes("2G"), Ok(2 << 30));
        for bad in [
            "",
            "M",
            "50 M",
            "50MB",
            "-1",
            "0",
            "1.5M",
            "99999999999999T",
        ] {
            assert!(parse_size_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn https_urls() {
        assert_eq!(
            parse_https_url("https://Tiles.example.org:8443/style.json?key=1").as_deref(),
            Ok("tiles.example.org")
        );
        assert_eq!(
            parse_https_url("https://chat.example.org").as_deref(),
            Ok("chat.example.org")
        );
        for bad in [
            "http://chat.example.org",
            "//chat.example.org",
            "javascript:alert(1)",
            "https://chat.example.org@evil.example/",
            "https://evil.example\\@chat.example.org/",
            "https://chat.example.org/a b",
            "https://chat.example.org/\n",
            "https://192.0.2.1/",
            "https://chat.example.org:0/",
            "https://chat.example.org/\"onmouseover=x",
            "https:///x",
        ] {
            assert!(parse_https_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn caddy_admin_addresses() {
        for (good, expected) in [
            ("off", AdminListen::Off),
            ("localhost:2019", AdminListen::Loopback { port: 2019 }),
            ("127.0.0.1:2019", AdminListen::Loopback { port: 2019 }),
            ("127.0.0.53:8000", AdminListen::Loopback { port: 8000 }),
            ("[::1]:2019", AdminListen::Loopback { port: 2019 }),
            (
                "unix//run/caddy/admin.sock",
                AdminListen::Unix {
                    path: "/run/caddy/admin.sock".into(),
                },
            ),
        ] {
            assert_eq!(parse_admin_listen(good), Ok(expected), "{good}");
        }
        for bad in [
            ":2019",
            "0.0.0.0:2019",
            "[::]:2019",
            "192.0.2.7:2019",
            "[2001:db8::1]:2019",
            "::1:2019",
            "example.org:2019",
            "LOCALHOST.:2019",
            "localhost",
            "localhost:2019-2030",
            "localhost:0",
            "localhost:+2019",
            "OFF",
            "Off",
            "tcp/localhost:2019",
            "tcp4/127.0.0.1:2019",
            "udp/127.0.0.1:2019",
            "fd/3",
            "unixgram//run/caddy.sock",
            "unix/relative.sock",
            "unix//run/caddy.sock|0222",
            "{env.CADDY_ADMIN}",
            "{$CADDY_ADMIN}",
            "127.0.0.1:{env.PORT}",
            "127.1:2019",
            "0177.0.0.1:2019",
            "[::ffff:192.0.2.7]:2019",
            "localhost:2019 # comment",
            "",
        ] {
            assert!(parse_admin_listen(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        for bad in ["", "h", "1 h", "1hour", "0s", "-1s", "1.5h"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn claim_templates() {
        for (good, claims) in [
            ("{{ user.preferred_username }}", vec!["preferred_username"]),
            ("{{user.email|localpart_from_email}}", vec!["email"]),
            (
                "{{ user.given_name }} {{ user.family_name | upper }}",
                vec!["given_name", "family_name"],
            ),
            (
                "{{ user['https://example.org/name'] | lower | trim }}",
                vec!["https://example.org/name"],
            ),
            ("{{ user.address.locality }}", vec!["address"]),
            ("chat-{{ user.sub }}", vec!["sub"]),
            ("{{ 'x' }}", vec![]),
            ("plain text", vec![]),
        ] {
            assert_eq!(
                parse_claim_template(good),
                Ok(claims.iter().map(|c| (*c).to_owned()).collect()),
                "{good}"
            );
        }
        for bad in [
            "{{ user.name",
            "user.name }}",
            "{{ }}",
            "{{ user }}",
            "{{ user.name | shout }}",
            "{{ user.name | default('x') }}",
            "{{ user.__class__ }}",
            "{{ user['_x'] }}",
            "{{ user.name() }}",
            "{{ user.name + 'x' }}",
            "{% if user.name %}x{% endif %}",
            "{# comment #}",
            "{{ name }}",
            "{{ user[name] }}",
            "{{ user.name }\n}",
            "{{ {{ user.name }} }}",
            "{{ user.name }}%}",
        ] {
            assert!(parse_claim_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mailboxes() {
        for good in [
            "noreply@example.org",
            "Example Chat <noreply@example.org>",
            "Chat - Example.org <no-reply+matrix@mail.example.org>",
        ] {
            assert_eq!(check_mailbox(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "noreply",
            "noreply@",
            "@example.org",
            "no reply@example.org",
            "Chat <noreply@example.org",
            "<noreply@example.org>",
            "Chat\r\nBcc: victim@example.com <noreply@example.org>",
            "100% Chat <noreply@example.org>",
            "%(app)s <noreply@example.org>",
            "\"Chat\" <noreply@example.org>",
            "noreply%example.org@example.org",
            "a..b@example.org",
            "noreply@exa mple.org",
        ] {
            assert!(check_mailbox(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn web_urls_and_loopback_hosts() {
        let u = parse_web_url("https://auth.example.org:8443/application/o/matrix/").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port, u.path.as_str()),
            (
                "https",
                "auth.example.org",
                Some(8443),
                "/application/o/matrix/"
            )
        );
        assert_eq!(parse_web_url("http://[::1]:9000").unwrap().host, "[::1]");
        for bad in [
            "auth.example.org",
            "ftp://auth.example.org/",
            "https://user:pw@auth.example.org/",
            "https://auth.example.org/?x=1",
            "https://auth.example.org/#x",
            "https://auth example.org/",
            "https://auth.example.org:0/",
            "https://auth.example.org:99999/",
            "https://[::g]/",
            "https://-bad.example.org/",
            "https://",
        ] {
            assert!(parse_web_url(bad).is_err(), "{bad}");
        }
        for lo in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.5.6.7",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(lo), "{lo}");
        }
        for not in [
            "localhost.example.org",
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "example.org",
        ] {
            assert!(!is_loopback_host(not), "{not}");
        }
    }
}
