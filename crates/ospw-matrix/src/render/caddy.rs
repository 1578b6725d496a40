//! Derives Caddy's configuration from the host description.
//!
//! Three sites:
//!
//! - **Matrix host**: only the client API (`/_matrix/*`) and Synapse's
//!   client pages (`/_synapse/client/*`) reach Synapse. Federation
//!   (`/_matrix/federation/*`) and server keys (`/_matrix/key/*`) answer 404
//!   at the proxy, so does the admin API (`/_synapse/admin/*`) and anything
//!   else. `/.well-known/matrix/client` is served here too (clients that
//!   start from the Matrix host); `/.well-known/matrix/server` never is.
//! - **Element host**: Element Web's files, with `config.json` (and
//!   `config.<element_host>.json`, which Element asks for first) served from
//!   the rendered output, never cached, and headers that keep Element from
//!   being framed or sniffed.
//! - **Base domain** (when the server name delegates from it and the proxy
//!   serves it): `/.well-known/matrix/client` for clients; `/.well-known/
//!   matrix/server` answers 404 (no federation); every other path redirects
//!   (302, temporary, so a web site can take the domain over later) to
//!   Element Web, the only thing users visit here.
//!
//! No access log is configured: Caddy logs no requests unless told to, and
//! who talks to whom stays unrecorded.

use crate::components::caddy::{
    has_placeholder, token_problem, CaddySites, Caddyfile, Directive, SiteBlock,
};
use crate::error::ValidationErrors;
use crate::host::{HostDescription, ProxyTls, SynapseListen, METRICS_ADDRESS};
use crate::render::RenderContext;

/// HSTS: one year. No `includeSubDomains`: the hosts' sub-domains are not
/// this product's to decide.
const HSTS: &str = "max-age=31536000";

/// Derives the site blocks for the Matrix host, the Element host and the base domain.
pub fn sites(host: &HostDescription, ctx: &RenderContext) -> Result<CaddySites, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let upstream = upstream(host, &mut errs);
    let webroot = path_text(&host.element.webroot, "element.webroot", &mut errs);
    let element_dir = path_text(
        &ctx.output_dir.join("element"),
        "render output directory",
        &mut errs,
    );
    if !errs.is_empty() {
        return Err(errs);
    }
    let serve_base = host.delegates_from_base_domain() && host.proxy.serve_base_domain;
    let logo = host
        .element
        .branding
        .logo_file
        .as_ref()
        .map(|f| logo_route(f, &mut errs));
    if !errs.is_empty() {
        return Err(errs);
    }
    let mut element = element_site(host, &webroot, &element_dir, logo.flatten());
    if serve_base && host.base_domain == host.element_host {
        // Element on the base domain itself: one site block serves both
        // (two blocks for one address would be ambiguous to Caddy).
        let at = element
            .directives
            .iter()
            .position(|d| d.name == "@config")
            .unwrap_or(element.directives.len());
        element
            .directives
            .insert(at, handle_404("/.well-known/matrix/server"));
        element.directives.insert(at, well_known_client(host));
    }
    let mut sites = vec![matrix_site(host, &upstream), element];
    if serve_base && host.base_domain != host.element_host {
        sites.push(base_domain_site(host));
    }
    if host.metrics.enable {
        sites.push(metrics_site(host.metrics.caddy_port));
    }
    let sites = CaddySites { sites };
    // Defence in depth: every value was checked where it came in.
    for e in sites.token_violations().errors {
        errs.push(format!("proxy (Caddyfile {})", e.path), e.message);
    }
    for e in sites
        .privacy_violations(&host.matrix_host, &host.element_host)
        .errors
    {
        errs.push(format!("proxy (Caddyfile {})", e.path), e.message);
    }
    errs.into_result(sites)
}

/// A complete Caddyfile: global options, then the sites. On a problem the
/// text holds only the errors, as comments (no half-right configuration);
/// [`render`](crate::render::render) never gets there, since [`sites`] fails
/// first. Use [`caddyfile`] for the typed result.
pub fn standalone_caddyfile(host: &HostDescription, ctx: &RenderContext) -> String {
    match caddyfile(host, ctx) {
        Ok(file) => file.to_caddyfile(),
        Err(errs) => {
            let mut text = String::from("# ospw-matrix could not derive this Caddyfile:\n");
            for e in errs.errors {
                text.push_str(&format!("# {e}\n"));
            }
            text
        }
    }
}

/// The standalone Caddyfile as a model: global options and the sites.
pub fn caddyfile(
    host: &HostDescription,
    ctx: &RenderContext,
) -> Result<Caddyfile, ValidationErrors> {
    let p = &host.proxy;
    let mut global = Vec::new();
    if let Some(email) = &p.acme_email {
        global.push(Directive::new("email", [email.as_str()]));
    }
    global.push(Directive::new("http_port", [p.http_port.to_string()]));
    global.push(Directive::new("https_port", [p.https_port.to_string()]));
    global.push(Directive::new("admin", [p.admin.as_str()]));
    if p.tls == ProxyTls::Internal {
        // Every certificate from Caddy's local CA, and never try to add that
        // CA to the system's trust store.
        global.push(Directive::new("local_certs", Vec::<String>::new()));
        global.push(Directive::new("skip_install_trust", Vec::<String>::new()));
    }
    let file = Caddyfile {
        global,
        sites: sites(host, ctx)?,
    };
    let mut errs = ValidationErrors::new();
    for e in file.token_violations().errors {
        errs.push(format!("proxy (Caddyfile {})", e.path), e.message);
    }
    errs.into_result(file)
}

/// Caddy's own Prometheus metrics, in a plain-HTTP site bound to loopback
/// only (a listener of its own: no public site routes there).
fn metrics_site(port: u16) -> SiteBlock {
    SiteBlock {
        addresses: vec![format!("http://{METRICS_ADDRESS}:{port}")],
        directives: vec![
            Directive::new("bind", [METRICS_ADDRESS]),
            Directive::new("metrics", Vec::<String>::new()),
        ],
    }
}

/// Synapse's listener as a `reverse_proxy` upstream.
fn upstream(host: &HostDescription, errs: &mut ValidationErrors) -> String {
    match &host.synapse.listen {
        SynapseListen::Tcp { address, port } => {
            if address.contains(':') {
                format!("[{address}]:{port}")
            } else {
                format!("{address}:{port}")
            }
        }
        SynapseListen::Unix { path } => {
            format!("unix/{}", path_text(path, "synapse.listen.unix.path", errs))
        }
    }
}

/// A path as text for the Caddyfile, read back by Caddy exactly as it is:
/// UTF-8, no control characters, no `{`/`}` (Caddy replaces placeholders in
/// `root`, `rewrite` and upstream addresses at run time, from the request
/// among others: `{header.X-Root}` would let a client pick the directory
/// served), nothing Caddy rewrites before reading the file (`{$VAR}`), and
/// no `|` (Caddy 2.8+ reads `unix/PATH|MODE` as socket permissions).
fn path_text(path: &std::path::Path, field: &str, errs: &mut ValidationErrors) -> String {
    let shown = path.display().to_string();
    let Some(s) = path.to_str() else {
        errs.push(
            field,
            format!("{shown:?} cannot be written into the Caddyfile: expected a UTF-8 path"),
        );
        return String::new();
    };
    let problem = if has_placeholder(s) {
        Some(
            "holds { or }, which Caddy reads as a placeholder and replaces at run time (from the \
             request, the environment, ...)"
                .to_owned(),
        )
    } else if s.contains('|') {
        Some("holds |, which Caddy reads as socket permissions in unix/ addresses".to_owned())
    } else {
        token_problem(s)
    };
    match problem {
        None => s.to_owned(),
        Some(p) => {
            errs.push(
                field,
                format!(
                    "{shown:?} cannot be written into the Caddyfile: it {p}; expected a plain path"
                ),
            );
            String::new()
        }
    }
}

/// The site address: the host name, with the HTTPS port when it is not 443.
fn address(host: &HostDescription, name: &str) -> String {
    if host.proxy.https_port == 443 {
        name.to_owned()
    } else {
        format!("{name}:{}", host.proxy.https_port)
    }
}

/// `bind` and `tls internal`, common to every site.
fn common(host: &HostDescription) -> Vec<Directive> {
    let mut out = Vec::new();
    if !host.proxy.bind.is_empty() {
        let addrs: Vec<String> = host
            .proxy
            .bind
            .iter()
            .map(|a| {
                if a.contains(':') {
                    format!("[{a}]")
                } else {
                    a.clone()
                }
            })
            .collect();
        out.push(Directive::new("bind", addrs));
    }
    if host.proxy.tls == ProxyTls::Internal {
        out.push(Directive::new("tls", ["internal"]));
    }
    out
}

fn not_found() -> Vec<Directive> {
    vec![Directive::new("respond", ["404"])]
}

/// `handle <path> { respond 404 }`.
fn handle_404(path: &str) -> Directive {
    Directive::with_block("handle", [path], not_found())
}

/// `/.well-known/matrix/client`, served inline as JSON with CORS open (web
/// clients on other origins read it).
fn well_known_client(host: &HostDescription) -> Directive {
    let body = super::well_known::client_json(host).to_string();
    Directive::with_block(
        "handle",
        ["/.well-known/matrix/client"],
        vec![
            Directive::new("header", ["Content-Type", "application/json"]),
            Directive::new("header", ["Access-Control-Allow-Origin", "*"]),
            Directive::new("respond", [body, "200".to_owned()]),
        ],
    )
}

fn matrix_site(host: &HostDescription, upstream: &str) -> SiteBlock {
    let mut d = common(host);
    d.push(Directive::with_block(
        "header",
        Vec::<String>::new(),
        vec![
            Directive::new("Strict-Transport-Security", [HSTS]),
            Directive::new("X-Content-Type-Options", ["nosniff"]),
            Directive::new("-Server", Vec::<String>::new()),
        ],
    ));
    d.push(well_known_client(host));
    // `handle` blocks are exclusive and sorted by path specificity, so the
    // federation and key paths win over `/_matrix/*`.
    d.push(handle_404("/_matrix/federation/*"));
    d.push(handle_404("/_matrix/key/*"));
    d.extend(sign_in_and_mail_handles(host));
    for path in ["/_matrix/*", "/_synapse/client/*"] {
        d.push(Directive::with_block(
            "handle",
            [path],
            vec![Directive::new("reverse_proxy", [upstream])],
        ));
    }
    // Everything else, including /_synapse/admin/* and
    // /.well-known/matrix/server.
    d.push(Directive::with_block(
        "handle",
        Vec::<String>::new(),
        not_found(),
    ));
    SiteBlock {
        addresses: vec![address(host, &host.matrix_host)],
        directives: d,
    }
}

/// What `sso` and `email` add to the Matrix host (Synapse's own SSO pages,
/// the OpenID Connect callback and the password-reset pages are under the
/// proxied `/_synapse/client/*` already):
///
/// - each provider's icon, answered from its file at the media paths of the
///   `mxc://` URI Synapse hands to clients (a media ID Synapse never makes),
///   read-only, sandboxed and without reaching Synapse;
/// - with mail on but password resets off (or passwords off), the request
///   for a reset mail answers 403 here, since Synapse sends one whenever
///   it can send mail at all.
fn sign_in_and_mail_handles(host: &HostDescription) -> Vec<Directive> {
    let mut out = Vec::new();
    for p in &host.sso.providers {
        let Some(icon) = &p.icon_file else { continue };
        let (Some(dir), Some(file)) = (
            icon.parent().and_then(|d| d.to_str()),
            icon.file_name().and_then(|f| f.to_str()),
        ) else {
            continue;
        };
        let media = format!(
            "{}/{}",
            host.server_name,
            crate::components::synapse_auth::icon_media_id(&p.id)
        );
        let body = vec![
            Directive::new("header", ["Cache-Control", "public, max-age=86400"]),
            Directive::new("header", ["Access-Control-Allow-Origin", "*"]),
            Directive::new(
                "header",
                [
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; sandbox",
                ],
            ),
            Directive::new("root", ["*", if dir.is_empty() { "/" } else { dir }]),
            Directive::new("rewrite", ["*".to_owned(), format!("/{file}")]),
            Directive::new("file_server", Vec::<String>::new()),
        ];
        for pattern in [
            "/_matrix/media/*/thumbnail/{m}",
            "/_matrix/media/*/download/{m}",
            "/_matrix/media/*/download/{m}/*",
            "/_matrix/client/v1/media/thumbnail/{m}",
            "/_matrix/client/v1/media/download/{m}",
            "/_matrix/client/v1/media/download/{m}/*",
        ] {
            out.push(Directive::with_block(
                "handle",
                [pattern.replace("{m}", &media)],
                body.clone(),
            ));
        }
    }
    let resets = host.sso.password_login && host.email.as_ref().is_some_and(|e| e.password_reset);
    if host.email.is_some() && !resets {
        out.push(Directive::with_block(
            "handle",
            ["/_matrix/client/*/account/password/email/requestToken"],
            vec![
                Directive::new("header", ["Content-Type", "application/json"]),
                Directive::new(
                    "respond",
                    [
                        r#"{"errcode":"M_FORBIDDEN","error":"Password resets by e-mail are off on this server"}"#,
                        "403",
                    ],
                ),
            ],
        ));
    }
    out
}

/// The logo file as (directory, file name) for a `handle` that serves
/// that one file.
fn logo_route(file: &std::path::Path, errs: &mut ValidationErrors) -> Option<(String, String)> {
    let dir = file.parent()?;
    let name = file.file_name()?.to_str()?.to_owned();
    let dir = path_text(dir, "element.branding.logo_file", errs);
    Some((dir, name))
}

fn element_site(
    host: &HostDescription,
    webroot: &str,
    element_dir: &str,
    logo: Option<(String, String)>,
) -> SiteBlock {
    let mut d = common(host);
    d.push(Directive::with_block(
        "header",
        Vec::<String>::new(),
        vec![
            // Element must not be framed by other sites (click-jacking).
            Directive::new("X-Frame-Options", ["SAMEORIGIN"]),
            Directive::new("X-Content-Type-Options", ["nosniff"]),
            // Links followed from Element tell nothing about where they
            // were posted.
            Directive::new("Referrer-Policy", ["no-referrer"]),
            Directive::new("Content-Security-Policy", ["frame-ancestors 'self'"]),
            Directive::new("Strict-Transport-Security", [HSTS]),
            Directive::new("-Server", Vec::<String>::new()),
        ],
    ));
    // Element asks for config.<host>.json first, then config.json: both are
    // the rendered file, never the one in the webroot, never cached.
    let config_matcher = Directive::new(
        "@config",
        [
            "path".to_owned(),
            "/config.json".to_owned(),
            format!("/config.{}.json", host.element_host),
        ],
    );
    d.push(config_matcher);
    d.push(Directive::with_block(
        "handle",
        ["@config"],
        vec![
            Directive::new("header", ["Cache-Control", "no-cache"]),
            Directive::new("root", ["*", element_dir]),
            Directive::new("rewrite", ["*", "/config.json"]),
            Directive::new("file_server", Vec::<String>::new()),
        ],
    ));
    // The welcome page, rendered beside config.json (Element's own
    // welcome.html in the webroot links to element.io and others).
    d.push(Directive::with_block(
        "handle",
        [format!("/{}", super::element::WELCOME_URL)],
        vec![
            Directive::new("header", ["Cache-Control", "no-cache"]),
            Directive::new("root", ["*", element_dir]),
            Directive::new("file_server", Vec::<String>::new()),
        ],
    ));
    // The logo: this one file, nothing else of its directory.
    if let (Some((dir, name)), Some(url)) = (logo, super::element::logo_url(host)) {
        d.push(Directive::with_block(
            "handle",
            [format!("/{url}")],
            vec![
                Directive::new("root", ["*", dir.as_str()]),
                Directive::new("rewrite", ["*".to_owned(), format!("/{name}")]),
                Directive::new("file_server", Vec::<String>::new()),
            ],
        ));
    }
    d.push(Directive::with_block(
        "handle",
        Vec::<String>::new(),
        vec![
            Directive::new("root", ["*", webroot]),
            Directive::new("@index", ["path", "/", "/index.html"]),
            Directive::new("header", ["@index", "Cache-Control", "no-cache"]),
            Directive::new("file_server", Vec::<String>::new()),
        ],
    ));
    SiteBlock {
        addresses: vec![address(host, &host.element_host)],
        directives: d,
    }
}

fn base_domain_site(host: &HostDescription) -> SiteBlock {
    let mut d = common(host);
    d.push(well_known_client(host));
    // No federation: servers looking for delegation get nothing.
    d.push(handle_404("/.well-known/matrix/server"));
    // Anyone else is after the chat: send them to Element Web (temporary,
    // so that a web site can take the domain over later).
    d.push(Directive::with_block(
        "handle",
        Vec::<String>::new(),
        vec![Directive::new(
            "redir",
            [format!("{}/", host.element_url()), "302".to_owned()],
        )],
    ));
    SiteBlock {
        addresses: vec![address(host, &host.base_domain)],
        directives: d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::caddy::SiteBlock;

    fn host() -> HostDescription {
        crate::load::example_host().unwrap()
    }

    fn ctx() -> RenderContext {
        RenderContext {
            output_dir: "/etc/ospw-matrix".into(),
        }
    }

    /// The `handle` block for `path` (its argument), if any.
    fn handle<'a>(site: &'a SiteBlock, path: &str) -> Option<&'a Directive> {
        site.directives
            .iter()
            .find(|d| d.name == "handle" && d.args.first().map(String::as_str) == Some(path))
    }

    fn responds_404(d: &Directive) -> bool {
        d.block
            .iter()
            .any(|b| b.name == "respond" && b.args == ["404"])
    }

    #[test]
    fn metrics_get_a_loopback_site_of_their_own() {
        let s = sites(&host(), &ctx()).unwrap();
        assert!(!s.to_caddyfile().contains("metrics"), "off by default");
        let mut h = host();
        h.metrics.enable = true;
        h.metrics.caddy_port = 9190;
        let s = sites(&h, &ctx()).unwrap();
        let m = s.site("http://127.0.0.1").expect("metrics site");
        assert_eq!(m.addresses, vec!["http://127.0.0.1:9190"]);
        assert_eq!(m.directives[0], Directive::new("bind", ["127.0.0.1"]));
        assert!(m.directives.iter().any(|d| d.name == "metrics"));
        // No public site serves metrics.
        for site in s.sites.iter().filter(|x| x.addresses != m.addresses) {
            assert!(site.walk().iter().all(|d| d.name != "metrics"));
        }
        assert!(s
            .to_caddyfile()
            .contains("http://127.0.0.1:9190 {\n\tbind 127.0.0.1\n\tmetrics\n}\n"));
    }

    #[test]
    fn matrix_site_routes() {
        let s = sites(&host(), &ctx()).unwrap();
        let m = s.site("matrix.example.org").unwrap();
        assert_eq!(m.addresses, vec!["matrix.example.org"]);
        for path in ["/_matrix/federation/*", "/_matrix/key/*"] {
            assert!(responds_404(handle(m, path).unwrap()), "{path}");
        }
        for path in ["/_matrix/*", "/_synapse/client/*"] {
            let h = handle(m, path).unwrap();
            assert_eq!(h.block[0].name, "reverse_proxy");
            assert_eq!(h.block[0].args, vec!["127.0.0.1:8008"]);
        }
        // Only those two reach Synapse.
        let proxies = m
            .walk()
            .into_iter()
            .filter(|d| d.name == "reverse_proxy")
            .count();
        assert_eq!(proxies, 2);
        let catch_all = m
            .directives
            .iter()
            .find(|d| d.name == "handle" && d.args.is_empty())
            .unwrap();
        assert!(responds_404(catch_all));
        assert!(handle(m, "/.well-known/matrix/client").is_some());
        assert!(handle(m, "/.well-known/matrix/server").is_none());
        assert!(!s.to_caddyfile().contains("_synapse/admin"));
    }

    #[test]
    fn element_site() {
        let s = sites(&host(), &ctx()).unwrap();
        let e = s.site("chat.example.org").unwrap();
        let text = s.to_caddyfile();
        assert!(
            text.contains("@config path /config.json /config.chat.example.org.json"),
            "{text}"
        );
        assert!(text.contains("root * /etc/ospw-matrix/element"), "{text}");
        assert!(
            text.contains("root * /var/lib/ospw-matrix/element-web"),
            "{text}"
        );
        assert!(
            text.contains("Content-Security-Policy \"frame-ancestors 'self'\""),
            "{text}"
        );
        let headers: Vec<&str> = e.walk().into_iter().map(|d| d.name.as_str()).collect();
        for h in [
            "X-Frame-Options",
            "X-Content-Type-Options",
            "Referrer-Policy",
            "Strict-Transport-Security",
        ] {
            assert!(headers.contains(&h), "{h}");
        }
        let no_cache = e
            .walk()
            .into_iter()
            .filter(|d| {
                d.name == "header"
                    && d.args
                        .ends_with(&["Cache-Control".into(), "no-cache".into()])
            })
            .count();
        // config.json, index.html and the welcome page.
        assert_eq!(no_cache, 3);
    }

    #[test]
    fn base_domain_site() {
        let s = sites(&host(), &ctx()).unwrap();
        let b = s.site("example.org").unwrap();
        let client = handle(b, "/.well-known/matrix/client").unwrap();
        assert!(client
            .block
            .iter()
            .any(|d| d.args == ["Content-Type", "application/json"]));
        assert!(client
            .block
            .iter()
            .any(|d| d.args == ["Access-Control-Allow-Origin", "*"]));
        let body = &client
            .block
            .iter()
            .find(|d| d.name == "respond")
            .unwrap()
            .args[0];
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["m.homeserver"]["base_url"], "https://matrix.example.org");
        assert!(responds_404(
            handle(b, "/.well-known/matrix/server").unwrap()
        ));
        assert!(s
            .to_caddyfile()
            .contains("redir https://chat.example.org/ 302"));

        let mut h = host();
        h.proxy.serve_base_domain = false;
        assert_eq!(sites(&h, &ctx()).unwrap().sites.len(), 2);
        // Element on the base domain: one block serves both.
        let mut h = host();
        h.element_host = "example.org".into();
        let s = sites(&h, &ctx()).unwrap();
        assert_eq!(s.sites.len(), 2);
        let e = s.site("example.org").unwrap();
        assert!(handle(e, "/.well-known/matrix/client").is_some());
        assert!(responds_404(
            handle(e, "/.well-known/matrix/server").unwrap()
        ));
        assert!(e.walk().iter().any(|d| d.name == "file_server"));
        let mut h = host();
        h.server_name = "matrix.example.org".into();
        h.base_domain = "matrix.example.org".into();
        assert_eq!(sites(&h, &ctx()).unwrap().sites.len(), 2);
    }

    #[test]
    fn ports_tls_bind_and_socket() {
        let mut h = host();
        h.proxy.https_port = 8443;
        h.proxy.http_port = 8080;
        h.proxy.tls = ProxyTls::Internal;
        h.proxy.bind = vec!["127.0.0.1".into(), "::1".into()];
        h.proxy.admin = "off".into();
        h.synapse.listen = SynapseListen::Unix {
            path: "/run/synapse/synapse.sock".into(),
        };
        let s = sites(&h, &ctx()).unwrap();
        for site in &s.sites {
            assert!(site.addresses[0].ends_with(":8443"), "{:?}", site.addresses);
            assert!(site
                .directives
                .contains(&Directive::new("tls", ["internal"])));
            assert!(site
                .directives
                .contains(&Directive::new("bind", ["127.0.0.1", "[::1]"])));
        }
        assert!(s
            .to_caddyfile()
            .contains("reverse_proxy unix//run/synapse/synapse.sock"));
        assert!(s
            .to_caddyfile()
            .contains("redir https://chat.example.org:8443/ 302"));
        let full = standalone_caddyfile(&h, &ctx());
        for line in [
            "\thttp_port 8080",
            "\thttps_port 8443",
            "\tadmin off",
            "\tlocal_certs",
            "\tskip_install_trust",
            "\temail admin@example.org",
        ] {
            assert!(full.lines().any(|l| l == line), "{line} in {full}");
        }
        // The sites are inline, after the global block.
        assert!(full.contains(&s.to_caddyfile()));
        // ACME: no local CA.
        let full = standalone_caddyfile(&host(), &ctx());
        assert!(!full.contains("local_certs") && !full.contains("tls internal"));
        assert!(full.lines().any(|l| l == "\tadmin localhost:2019"));
        assert!(
            !s.to_caddyfile().contains("http_port"),
            "sites carry no global options"
        );

        h.synapse.listen = SynapseListen::Tcp {
            address: "::1".into(),
            port: 8448,
        };
        assert!(sites(&h, &ctx())
            .unwrap()
            .to_caddyfile()
            .contains("reverse_proxy [::1]:8448"));
    }

    #[test]
    fn bad_paths_name_the_field() {
        for bad in [
            "/var/lib/el\nement",
            "/srv/{header.X-Root}",
            "/srv/{$HOME}/element",
            "/srv/{env.ROOT}",
            "/srv/a}b",
        ] {
            let mut h = host();
            h.element.webroot = bad.into();
            let err = sites(&h, &ctx()).unwrap_err();
            assert!(err.mentions("element.webroot"), "{bad}: {err}");
        }
        let mut h = host();
        h.synapse.listen = SynapseListen::Unix {
            path: "/run/synapse/client.sock|0777".into(),
        };
        assert!(sites(&h, &ctx())
            .unwrap_err()
            .mentions("synapse.listen.unix.path"));
        let err = sites(
            &host(),
            &RenderContext {
                output_dir: "/srv/out{path}".into(),
            },
        )
        .unwrap_err();
        assert!(err.mentions("render output directory"), "{err}");
        // Odd but plain paths are written so that Caddy reads them back.
        let mut h = host();
        h.element.webroot = "/srv/it's #1 \"element\" web\\root".into();
        let text = sites(&h, &ctx()).unwrap().to_caddyfile();
        assert!(
            text.contains("root * `/srv/it's #1 \"element\" web\\root`"),
            "{text}"
        );
    }
}
