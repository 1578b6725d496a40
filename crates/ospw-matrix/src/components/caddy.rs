//! Caddy's configuration: a small typed model of Caddyfile site blocks,
//! directives and global options, with an emitter.
//!
//! Only what this product writes is modelled; there is no parser. Arguments
//! are quoted as the Caddyfile lexer expects: bare when they hold no white
//! space, quotes or braces, otherwise in backticks (when they hold double
//! quotes, as JSON bodies do) or in double quotes with escapes.

use std::fmt::Write as _;

use crate::error::ValidationErrors;

/// One Caddyfile directive (or global option, or sub-directive): a name,
/// its arguments and an optional block of nested directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive's name, e.g. `reverse_proxy`, `handle`, `header`.
    pub name: String,
    /// Its arguments, unquoted (the emitter quotes them).
    pub args: Vec<String>,
    /// Nested directives; emitted as a `{ ... }` block when not empty.
    pub block: Vec<Directive>,
}

impl Directive {
    /// A directive without a block.
    pub fn new<I, S>(name: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.to_owned(),
            args: args.into_iter().map(Into::into).collect(),
            block: Vec::new(),
        }
    }

    /// A directive with a block of nested directives.
    pub fn with_block<I, S>(name: &str, args: I, block: Vec<Directive>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            block,
            ..Self::new(name, args)
        }
    }

    fn emit(&self, out: &mut String, depth: usize) {
        let indent = "\t".repeat(depth);
        out.push_str(&indent);
        out.push_str(&quote(&self.name));
        for a in &self.args {
            out.push(' ');
            out.push_str(&quote(a));
        }
        if self.block.is_empty() {
            out.push('\n');
        } else {
            out.push_str(" {\n");
            for d in &self.block {
                d.emit(out, depth + 1);
            }
            out.push_str(&indent);
            out.push_str("}\n");
        }
    }

    /// Every directive below this one (depth first), itself included.
    pub fn walk(&self) -> Vec<&Directive> {
        let mut out = vec![self];
        for d in &self.block {
            out.extend(d.walk());
        }
        out
    }
}

/// Quotes one token for the Caddyfile lexer (Caddy 2.6 and 2.10,
/// `caddyfile/lexer.go`):
///
/// - bare when it holds no white space (Go's `unicode.IsSpace`), no quote,
///   backtick or backslash, no `#` (a comment where a token starts), is not
///   a lone brace (a block) and does not start with `<<` (a heredoc, 2.7+);
/// - otherwise in double quotes when it holds neither a double quote nor a
///   backslash, else in backticks, inside which everything is literal;
/// - a token holding a backtick and a quote or backslash in double quotes,
///   where only `\"` is an escape (a backslash before any other character
///   stays as it is: Caddy would read `\\` as two backslashes).
///
/// What no quoting can express (a backtick together with a backslash that
/// precedes a quote or ends the token) and what Caddy rewrites whatever the
/// quoting (`{$VAR}`) is reported by [`token_problem`].
pub fn quote(token: &str) -> String {
    let plain = !token.is_empty()
        && token != "{"
        && token != "}"
        && !token.starts_with("<<")
        && !token
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '`' | '\\' | '#'));
    if plain {
        token.to_owned()
    } else if !token.contains(['"', '\\']) {
        format!("\"{token}\"")
    } else if !token.contains('`') {
        format!("`{token}`")
    } else {
        format!("\"{}\"", token.replace('"', "\\\""))
    }
}

/// What Caddy would make of `token` other than the token itself, whatever
/// the quoting, or `None` when [`quote`] writes it so that Caddy reads it
/// back unchanged:
///
/// - `{$NAME}` is replaced with an environment variable before the file is
///   even split into tokens (inside quotes too);
/// - control characters (line breaks among them) are refused: the file is
///   line-oriented and they have no place in a value;
/// - a token with a backtick and a backslash before a double quote or at
///   its end cannot be quoted.
pub fn token_problem(token: &str) -> Option<String> {
    if token.contains("{$") {
        return Some(
            "contains {$: Caddy replaces {$NAME} with an environment variable when it reads the file"
                .to_owned(),
        );
    }
    if let Some(c) = token.chars().find(|c| c.is_control()) {
        return Some(format!("contains the control character {c:?}"));
    }
    if token.contains('`') && (token.contains("\\\"") || token.ends_with('\\')) {
        return Some(
            "cannot be quoted for Caddy: it holds a backtick and a backslash before a quote or at its end"
                .to_owned(),
        );
    }
    None
}

/// Whether `value` holds a Caddy placeholder (`{...}`), which directives
/// such as `root`, `rewrite` and `reverse_proxy` replace at run time, from
/// the request among other sources (`{header.X-Root}`).
pub fn has_placeholder(value: &str) -> bool {
    value.contains('{') || value.contains('}')
}

/// One site block: its addresses and its directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteBlock {
    /// The site addresses, e.g. `matrix.example.org` or `chat.example.org:8443`.
    pub addresses: Vec<String>,
    /// The directives inside the block.
    pub directives: Vec<Directive>,
}

impl SiteBlock {
    fn emit(&self, out: &mut String) {
        let addrs: Vec<String> = self.addresses.iter().map(|a| quote(a)).collect();
        let _ = writeln!(out, "{} {{", addrs.join(", "));
        for d in &self.directives {
            d.emit(out, 1);
        }
        out.push_str("}\n");
    }

    /// Every directive in this block (depth first).
    pub fn walk(&self) -> Vec<&Directive> {
        self.directives.iter().flat_map(Directive::walk).collect()
    }
}

/// The Caddyfile site blocks for the Matrix host, the Element host and the
/// base domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaddySites {
    /// The site blocks, in order.
    pub sites: Vec<SiteBlock>,
}

impl CaddySites {
    /// Emits the site blocks as Caddyfile text.
    pub fn to_caddyfile(&self) -> String {
        let mut out = String::new();
        for (i, site) in self.sites.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            site.emit(&mut out);
        }
        out
    }

    /// The site block whose first address starts with `host` (followed by
    /// the end or a port).
    pub fn site(&self, host: &str) -> Option<&SiteBlock> {
        self.sites.iter().find(|s| {
            s.addresses.first().is_some_and(|a| {
                a == host
                    || a.strip_prefix(host)
                        .is_some_and(|rest| rest.starts_with(':'))
            })
        })
    }
}

impl CaddySites {
    /// Every token Caddy would not read back as written (see
    /// [`token_problem`]), naming the site and directive.
    pub fn token_violations(&self) -> ValidationErrors {
        let mut errs = ValidationErrors::new();
        for site in &self.sites {
            let name = site.addresses.first().map_or("", String::as_str);
            for a in &site.addresses {
                if let Some(p) = token_problem(a) {
                    errs.push(format!("{name}: address {a:?}"), p);
                }
            }
            for d in site.walk() {
                directive_tokens(name, d, &mut errs);
            }
        }
        errs
    }
}

fn directive_tokens(site: &str, d: &Directive, errs: &mut ValidationErrors) {
    for t in std::iter::once(&d.name).chain(&d.args) {
        if let Some(p) = token_problem(t) {
            errs.push(format!("{site}: {} {t:?}", d.name), p);
        }
    }
}

/// The paths of the Matrix host that may reach Synapse.
pub const PROXIED_PATHS: [&str; 2] = ["/_matrix/*", "/_synapse/client/*"];

/// The paths under [`PROXIED_PATHS`] that must answer 404 at the proxy:
/// federation and server keys.
pub const BLOCKED_PATHS: [&str; 2] = ["/_matrix/federation/*", "/_matrix/key/*"];

impl CaddySites {
    /// Lists every way these sites break the privacy invariants, each
    /// naming the site and the directive at fault:
    ///
    /// - on `matrix_host`, only `handle` blocks for [`PROXIED_PATHS`]
    ///   reach Synapse (`reverse_proxy` nowhere else), and
    ///   [`BLOCKED_PATHS`] have their own `handle` answering 404, so
    ///   neither federation nor `/_synapse/admin` is reachable from outside;
    /// - no site serves `/.well-known/matrix/server` (a `handle` for it
    ///   may only answer 404);
    /// - metrics (Caddy's `metrics` handler) are served only by a site
    ///   whose every address is plain HTTP on loopback and that binds
    ///   loopback addresses only, never by a public site;
    /// - on `element_host`, Element is served with `X-Frame-Options`,
    ///   `X-Content-Type-Options: nosniff` and a `frame-ancestors` CSP, and
    ///   `config.json` with `Cache-Control: no-cache` (or `no-store`).
    pub fn privacy_violations(&self, matrix_host: &str, element_host: &str) -> ValidationErrors {
        let mut errs = ValidationErrors::new();
        match self.site(matrix_host) {
            None => errs.push(
                matrix_host,
                "has no site block: expected one that proxies only the client API",
            ),
            Some(site) => check_matrix_site(matrix_host, site, &mut errs),
        }
        for site in &self.sites {
            check_server_well_known(site, &mut errs);
            check_metrics(site, &mut errs);
        }
        match self.site(element_host) {
            None => errs.push(
                element_host,
                "has no site block: expected one that serves Element Web with its security headers",
            ),
            Some(site) => check_element_site(element_host, site, &mut errs),
        }
        errs
    }
}

/// Whether `addr` (a site address) is plain HTTP on a loopback address:
/// `http://127.0.0.1:PORT`, `http://[::1]:PORT`, `http://localhost:PORT`.
fn is_loopback_http_address(addr: &str) -> bool {
    let Some(rest) = addr.strip_prefix("http://") else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(h, _)| h),
        None => rest.split([':', '/']).next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Metrics only in a site on loopback (its addresses and its `bind`).
fn check_metrics(site: &SiteBlock, errs: &mut ValidationErrors) {
    if !site.walk().iter().any(|d| d.name == "metrics") {
        return;
    }
    let name = site.addresses.join(", ");
    let addresses_ok =
        !site.addresses.is_empty() && site.addresses.iter().all(|a| is_loopback_http_address(a));
    let binds: Vec<&Directive> = site
        .directives
        .iter()
        .filter(|d| d.name == "bind")
        .collect();
    let bind_ok = !binds.is_empty()
        && binds.iter().all(|b| {
            !b.args.is_empty()
                && b.args.iter().all(|a| {
                    a.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
                })
        });
    if !(addresses_ok && bind_ok) {
        errs.push(
            format!("{name}: metrics"),
            "serves metrics outside loopback: expected the metrics handler only in a site addressed \
             http://127.0.0.1:PORT with `bind 127.0.0.1` (metrics are never routed through a public site)",
        );
    }
}

/// Whether `d`'s block is exactly `respond 404`.
fn responds_404_only(d: &Directive) -> bool {
    d.block.len() == 1 && d.block[0].name == "respond" && d.block[0].args == ["404"]
}

/// Whether the `handle` path pattern `pattern` matches `path`.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// `/.well-known/matrix/server` may only answer 404: a site's `handle` for
/// a pattern matching it must answer 404 unless an exact `handle` for it
/// does (the most specific `handle` wins), and a site serving
/// `/.well-known/matrix/client` must answer 404 for it explicitly (an exact
/// `handle`, or a catch-all `handle` answering 404).
fn check_server_well_known(site: &SiteBlock, errs: &mut ValidationErrors) {
    const SERVER: &str = "/.well-known/matrix/server";
    let name = site.addresses.first().map_or("", String::as_str);
    let handles: Vec<&Directive> = site
        .directives
        .iter()
        .filter(|d| d.name == "handle")
        .collect();
    let exact: Vec<&&Directive> = handles
        .iter()
        .filter(|d| d.args.first().map(String::as_str) == Some(SERVER))
        .collect();
    for d in &exact {
        if !responds_404_only(d) {
            errs.push(
                format!("{name}: handle {SERVER}"),
                "serves federation discovery: expected only `respond 404` (this server does not federate)",
            );
        }
    }
    if exact.is_empty() {
        for d in &handles {
            if let Some(pattern) = d.args.first() {
                if pattern_matches(pattern, SERVER) && !responds_404_only(d) {
                    errs.push(
                        format!("{name}: handle {pattern}"),
                        format!(
                            "would serve {SERVER}: expected a `handle {SERVER}` answering `respond 404` \
                             (this server does not federate)"
                        ),
                    );
                }
            }
        }
        let serves_client = handles
            .iter()
            .any(|d| d.args.first().map(String::as_str) == Some("/.well-known/matrix/client"));
        let catch_all_404 = handles
            .iter()
            .any(|d| d.args.is_empty() && responds_404_only(d));
        if serves_client && !catch_all_404 {
            errs.push(
                format!("{name}: handle {SERVER}"),
                "is missing beside /.well-known/matrix/client: expected it to answer `respond 404` \
                 (this server does not federate)",
            );
        }
    }
}

fn check_matrix_site(name: &str, site: &SiteBlock, errs: &mut ValidationErrors) {
    for d in &site.directives {
        let allowed =
            d.name == "handle" && d.args.len() == 1 && PROXIED_PATHS.contains(&d.args[0].as_str());
        for inner in d.walk() {
            if inner.name == "reverse_proxy" && !(allowed && d.block.contains(inner)) {
                errs.push(
                    format!("{name}: {} {}", d.name, d.args.join(" ")),
                    format!(
                        "forwards to Synapse outside the client API: expected reverse_proxy only \
                         directly in `handle {}` blocks",
                        PROXIED_PATHS.join("` and `handle ")
                    ),
                );
            }
        }
    }
    let proxies_matrix = site.directives.iter().any(|d| {
        d.name == "handle"
            && d.args == ["/_matrix/*"]
            && d.block.iter().any(|b| b.name == "reverse_proxy")
    });
    if proxies_matrix {
        for path in BLOCKED_PATHS {
            let blocked = site
                .directives
                .iter()
                .any(|d| d.name == "handle" && d.args == [path] && responds_404_only(d));
            if !blocked {
                errs.push(
                    format!("{name}: handle {path}"),
                    "is missing: /_matrix/* would forward federation to Synapse; expected \
                     `handle` for it answering `respond 404`",
                );
            }
        }
    }
}

/// A response header, a test of its value, and the expected form.
type HeaderCheck = (&'static str, fn(&str) -> bool, &'static str);

fn check_element_site(name: &str, site: &SiteBlock, errs: &mut ValidationErrors) {
    let all = site.walk();
    let header = |key: &str| -> Option<String> {
        all.iter().filter(|d| d.name == "header").find_map(|d| {
            if d.args.first().map(String::as_str) == Some(key) {
                return Some(d.args[1..].join(" "));
            }
            d.block
                .iter()
                .find(|b| b.name == key)
                .map(|b| b.args.join(" "))
        })
    };
    let checks: [HeaderCheck; 3] = [
        (
            "X-Frame-Options",
            |v| {
                let v = v.to_ascii_uppercase();
                v == "SAMEORIGIN" || v == "DENY"
            },
            "SAMEORIGIN or DENY, so other sites cannot frame Element",
        ),
        (
            "X-Content-Type-Options",
            |v| v.eq_ignore_ascii_case("nosniff"),
            "nosniff",
        ),
        (
            "Content-Security-Policy",
            |v| v.contains("frame-ancestors"),
            "a policy with frame-ancestors",
        ),
    ];
    for (key, ok, expected) in checks {
        if !header(key).is_some_and(|v| ok(&v)) {
            errs.push(
                format!("{name}: header {key}"),
                format!("is missing or wrong: expected {expected}"),
            );
        }
    }
    // The handle serving config.json (by path or by a matcher naming it)
    // must keep browsers from caching it.
    let matchers: Vec<&str> = site
        .directives
        .iter()
        .filter(|d| d.name.starts_with('@') && d.args.iter().any(|a| a == "/config.json"))
        .map(|d| d.name.as_str())
        .collect();
    let config_handle = site.directives.iter().find(|d| {
        d.name == "handle"
            && d.args
                .first()
                .is_some_and(|a| a == "/config.json" || matchers.contains(&a.as_str()))
    });
    let no_cache = config_handle.is_some_and(|h| {
        h.walk().iter().any(|d| {
            d.name == "header"
                && d.args.len() >= 2
                && d.args[d.args.len() - 2] == "Cache-Control"
                && d.args[d.args.len() - 1]
                    .split(',')
                    .any(|v| matches!(v.trim(), "no-cache" | "no-store"))
        })
    });
    if !no_cache {
        errs.push(
            format!("{name}: handle /config.json"),
            "does not set Cache-Control: no-cache: browsers could keep a stale config.json",
        );
    }
}

/// A complete Caddyfile: the global options block, then the sites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caddyfile {
    /// The global options (`email`, `http_port`, `admin`, ...).
    pub global: Vec<Directive>,
    /// The site blocks.
    pub sites: CaddySites,
}

impl Caddyfile {
    /// Every token of the global options and sites Caddy would not read
    /// back as written.
    pub fn token_violations(&self) -> ValidationErrors {
        let mut errs = self.sites.token_violations();
        for g in &self.global {
            for d in g.walk() {
                directive_tokens("global options", d, &mut errs);
            }
        }
        errs
    }

    /// Emits the whole Caddyfile.
    pub fn to_caddyfile(&self) -> String {
        let mut out = String::new();
        if !self.global.is_empty() {
            out.push_str("{\n");
            for d in &self.global {
                d.emit(&mut out, 1);
            }
            out.push_str("}\n\n");
        }
        out.push_str(&self.sites.to_caddyfile());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("reverse_proxy"), "reverse_proxy");
        assert_eq!(
            quote("https://chat.example.org{uri}"),
            "https://chat.example.org{uri}"
        );
        assert_eq!(
            quote("frame-ancestors 'self'"),
            "\"frame-ancestors 'self'\""
        );
        assert_eq!(quote(r#"{"a":"b"}"#), r#"`{"a":"b"}`"#);
        assert_eq!(quote(r#"a "b" `c`"#), r#""a \"b\" `c`""#);
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("{"), "\"{\"");
        assert_eq!(quote("/path with space"), "\"/path with space\"");
        // A backslash is literal in backticks (in double quotes Caddy would
        // keep both of an escaped pair).
        assert_eq!(quote(r"/srv/a\b"), r"`/srv/a\b`");
        assert_eq!(quote(r"a\b`c"), r#""a\b`c""#);
        assert_eq!(quote("<<EOF"), "\"<<EOF\"");
        assert_eq!(quote("#x"), "\"#x\"");
        assert_eq!(token_problem("/srv/{$HOME}"), token_problem("{$X}"));
        assert!(token_problem("/srv/{$HOME}").is_some());
        assert!(token_problem("a\nb").is_some());
        assert!(token_problem("a`\\\"").is_some());
        assert!(token_problem("a`\\").is_some());
        assert_eq!(token_problem("/srv/it's #1 `x` \"y\""), None);
    }

    /// The derived sites of the example host.
    fn example_sites() -> CaddySites {
        let host = crate::load::example_host().expect("example");
        let ctx = crate::render::RenderContext {
            output_dir: "/etc/ospw-matrix".into(),
        };
        crate::render::caddy::sites(&host, &ctx).expect("derives")
    }

    fn violations(sites: &CaddySites) -> Vec<String> {
        sites
            .privacy_violations("matrix.example.org", "chat.example.org")
            .errors
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    fn site_mut<'a>(sites: &'a mut CaddySites, host: &str) -> &'a mut SiteBlock {
        sites
            .sites
            .iter_mut()
            .find(|s| s.addresses[0] == host)
            .expect("site")
    }

    fn remove_handle(site: &mut SiteBlock, path: &str) {
        site.directives
            .retain(|d| !(d.name == "handle" && d.args.first().map(String::as_str) == Some(path)));
    }

    #[test]
    fn metrics_only_in_a_loopback_bound_plain_http_site() {
        let metrics_site = |addr: &str, bind: Option<Vec<&str>>| {
            let mut directives = Vec::new();
            if let Some(b) = bind {
                directives.push(Directive::new("bind", b));
            }
            directives.push(Directive::new("metrics", Vec::<String>::new()));
            SiteBlock {
                addresses: vec![addr.to_owned()],
                directives,
            }
        };
        let check = |site: SiteBlock| {
            let mut sites = example_sites();
            sites.sites.push(site);
            violations(&sites)
        };
        for (addr, bind) in [
            ("http://127.0.0.1:9180", vec!["127.0.0.1"]),
            ("http://[::1]:9180", vec!["[::1]"]),
            ("http://localhost:9180", vec!["127.0.0.1", "::1"]),
        ] {
            assert_eq!(
                check(metrics_site(addr, Some(bind))),
                Vec::<String>::new(),
                "{addr}"
            );
        }
        for (addr, bind) in [
            ("http://127.0.0.1:9180", None),
            ("http://127.0.0.1:9180", Some(vec!["0.0.0.0"])),
            (
                "http://127.0.0.1:9180",
                Some(vec!["127.0.0.1", "192.0.2.7"]),
            ),
            ("http://:9180", Some(vec!["127.0.0.1"])),
            ("127.0.0.1:9180", Some(vec!["127.0.0.1"])),
            ("https://127.0.0.1:9180", Some(vec!["127.0.0.1"])),
            ("http://metrics.example.org:9180", Some(vec!["127.0.0.1"])),
        ] {
            let got = check(metrics_site(addr, bind.clone()));
            assert_eq!(got, vec![format!("{addr}: metrics")], "{addr} {bind:?}");
        }
        // In a public site, even nested in a handle.
        let mut sites = example_sites();
        sites.sites[0].directives.insert(
            0,
            Directive::with_block(
                "handle",
                ["/metrics"],
                vec![Directive::new("metrics", Vec::<String>::new())],
            ),
        );
        assert_eq!(
            violations(&sites),
            vec![format!("{}: metrics", sites.sites[0].addresses[0])]
        );
    }

    #[test]
    fn derived_sites_keep_every_invariant() {
        assert_eq!(violations(&example_sites()), Vec::<String>::new());
    }

    #[test]
    fn each_caddy_violation_is_detected() {
        type Change = fn(&mut CaddySites);
        let cases: [(Change, &str); 9] = [
            (
                |s| {
                    site_mut(s, "matrix.example.org").directives.insert(
                        0,
                        Directive::with_block(
                            "handle",
                            ["/_synapse/admin/*"],
                            vec![Directive::new("reverse_proxy", ["127.0.0.1:8008"])],
                        ),
                    )
                },
                "matrix.example.org: handle /_synapse/admin/*",
            ),
            (
                |s| {
                    site_mut(s, "matrix.example.org")
                        .directives
                        .push(Directive::new("reverse_proxy", ["127.0.0.1:8008"]))
                },
                "matrix.example.org: reverse_proxy 127.0.0.1:8008",
            ),
            (
                |s| remove_handle(site_mut(s, "matrix.example.org"), "/_matrix/federation/*"),
                "matrix.example.org: handle /_matrix/federation/*",
            ),
            (
                |s| remove_handle(site_mut(s, "matrix.example.org"), "/_matrix/key/*"),
                "matrix.example.org: handle /_matrix/key/*",
            ),
            (
                |s| remove_handle(site_mut(s, "example.org"), "/.well-known/matrix/server"),
                "example.org: handle /.well-known/matrix/server",
            ),
            (
                |s| {
                    let site = site_mut(s, "example.org");
                    remove_handle(site, "/.well-known/matrix/server");
                    site.directives.insert(
                        0,
                        Directive::with_block(
                            "handle",
                            ["/.well-known/matrix/server"],
                            vec![Directive::new(
                                "respond",
                                [r#"{"m.server":"matrix.example.org:443"}"#, "200"],
                            )],
                        ),
                    );
                },
                "example.org: handle /.well-known/matrix/server",
            ),
            (
                |s| {
                    for d in site_mut(s, "chat.example.org").directives.iter_mut() {
                        d.block.retain(|b| b.name != "X-Frame-Options");
                    }
                },
                "chat.example.org: header X-Frame-Options",
            ),
            (
                |s| {
                    for d in site_mut(s, "chat.example.org").directives.iter_mut() {
                        d.block.retain(|b| b.name != "Content-Security-Policy");
                    }
                },
                "chat.example.org: header Content-Security-Policy",
            ),
            (
                |s| {
                    for d in site_mut(s, "chat.example.org").directives.iter_mut() {
                        if d.args == ["@config"] {
                            d.block.retain(|b| b.name != "header");
                        }
                    }
                },
                "chat.example.org: handle /config.json",
            ),
        ];
        for (change, path) in cases {
            let mut sites = example_sites();
            change(&mut sites);
            assert_eq!(violations(&sites), vec![path.to_owned()], "{path}");
        }
        let mut sites = example_sites();
        sites.sites.retain(|s| s.addresses[0] != "chat.example.org");
        assert_eq!(violations(&sites), vec!["chat.example.org".to_owned()]);
    }

    #[test]
    fn emits_nested_blocks() {
        let sites = CaddySites {
            sites: vec![SiteBlock {
                addresses: vec!["a.example.org:8443".into()],
                directives: vec![
                    Directive::new("tls", ["internal"]),
                    Directive::with_block(
                        "handle",
                        ["/x/*"],
                        vec![Directive::new("respond", ["404"])],
                    ),
                ],
            }],
        };
        assert_eq!(
            sites.to_caddyfile(),
            "a.example.org:8443 {\n\ttls internal\n\thandle /x/* {\n\t\trespond 404\n\t}\n}\n"
        );
        assert!(sites.site("a.example.org").is_some());
        assert!(sites.site("a.example").is_none());
        let file = Caddyfile {
            global: vec![Directive::new("admin", ["off"])],
            sites,
        };
        assert!(file
            .to_caddyfile()
            .starts_with("{\n\tadmin off\n}\n\na.example.org:8443 {"));
    }
}
