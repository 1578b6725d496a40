//! The checks from the outside: what a client on the internet sees of the
//! host names, the sites behind Caddy and their privacy promises.

use std::net::IpAddr;

use ospw_matrix::components::element::ElementConfig;
use ospw_matrix::host::EncryptionDefault;

use super::report::{CheckId, Findings, Side, Status};
use super::{is_local_address, Ctx};
use crate::http::Response;
use crate::tls::{now_secs, CertInfo, CertProblem, HttpsError};
use ospw_matrix::backup::rfc3339;

/// A day in seconds.
const DAY: u64 = 86_400;

/// Runs the outside checks.
pub fn run(ctx: &Ctx, f: &mut Findings) {
    dns(ctx, f);
    tls(ctx, f);
    discovery(ctx, f);
    privacy(ctx, f);
}

fn add(
    f: &mut Findings,
    id: CheckId,
    target: Option<&str>,
    status: Status,
    message: impl Into<String>,
    hint: Option<String>,
) {
    f.add(id, Side::Outside, target, status, message, hint);
}

/// The host names the proxy serves: the Matrix host, the Element host and
/// (when it serves `.well-known` there) the base domain.
pub fn sites(ctx: &Ctx) -> Vec<String> {
    let h = &ctx.host;
    let mut out = vec![h.matrix_host.clone(), h.element_host.clone()];
    if h.delegates_from_base_domain() && h.proxy.serve_base_domain {
        out.push(h.base_domain.clone());
    }
    out.dedup();
    dedup(out)
}

fn dedup(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The public address coturn announces (`turn.external_ip`, the part
/// before a `/`), which may be a NAT router's.
fn external_ip(ctx: &Ctx) -> Option<IpAddr> {
    let text = ctx.host.turn.external_ip.as_deref()?;
    text.split('/').next()?.parse().ok()
}

fn dns(ctx: &Ctx, f: &mut Findings) {
    let mut names = sites(ctx);
    names.push(ctx.host.turn_host().to_owned());
    let external = external_ip(ctx);
    for name in dedup(names) {
        let hint = Some(format!(
            "give {name} A/AAAA records pointing at this host's public address (when the host is behind NAT, \
             set turn.external_ip to the router's public address)"
        ));
        match ctx.resolver.lookup(&name) {
            Err(e) => add(f, CheckId::DnsResolves, Some(&name), Status::Fail, e, hint),
            Ok(addrs) => {
                let (ours, other): (Vec<IpAddr>, Vec<IpAddr>) = addrs
                    .iter()
                    .partition(|a| is_local_address(**a) || Some(**a) == external);
                let list = |v: &[IpAddr]| {
                    v.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if other.is_empty() {
                    add(
                        f,
                        CheckId::DnsResolves,
                        Some(&name),
                        Status::Pass,
                        format!("{} (this host)", list(&ours)),
                        None,
                    );
                } else if ours.is_empty() {
                    add(
                        f,
                        CheckId::DnsResolves,
                        Some(&name),
                        Status::Fail,
                        format!("resolves to {}, not an address of this host", list(&other)),
                        hint,
                    );
                } else {
                    add(
                        f,
                        CheckId::DnsResolves,
                        Some(&name),
                        Status::Warn,
                        format!(
                            "resolves to {} (this host) but also to {}, which is not",
                            list(&ours),
                            list(&other)
                        ),
                        Some(format!("remove the stale A/AAAA records of {name}")),
                    );
                }
            }
        }
    }
}

/// One request to `https://name{path}` through the proxy, trying each of
/// the name's addresses until one connects.
pub fn fetch(
    ctx: &Ctx,
    name: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Response, HttpsError> {
    if let Some(e) = ctx.unreachable.borrow().get(name) {
        return Err(HttpsError::Connect(e.clone()));
    }
    let port = ctx.host.proxy.https_port;
    let addrs = ctx
        .resolver
        .socket_addrs(name, port)
        .map_err(|e| HttpsError::Connect(format!("{name} {e}")))?;
    let mut last = String::new();
    for addr in addrs {
        match ctx.https.request(addr, name, port, method, path, &[], body) {
            Err(HttpsError::Connect(e)) => last = e,
            other => return other,
        }
    }
    ctx.unreachable
        .borrow_mut()
        .insert(name.to_owned(), last.clone());
    Err(HttpsError::Connect(last))
}

fn certificate(ctx: &Ctx, name: &str) -> Result<CertInfo, String> {
    let port = ctx.host.proxy.https_port;
    let addrs = ctx
        .resolver
        .socket_addrs(name, port)
        .map_err(|e| format!("{name} {e}"))?;
    let mut last = String::new();
    for addr in addrs {
        match ctx.https.certificate(addr, name) {
            Ok(info) => return Ok(info),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// The expiry thresholds for a certificate of `lifetime` seconds:
/// (warning, failure) remaining seconds. 14 and 3 days, scaled down to a
/// quarter and an eighth of the lifetime for short-lived certificates
/// (Caddy's internal CA issues 12-hour ones and renews them when a third
/// is left).
pub fn expiry_thresholds(lifetime: u64) -> (u64, u64) {
    ((14 * DAY).min(lifetime / 4), (3 * DAY).min(lifetime / 8))
}

fn in_words(secs: u64) -> String {
    if secs >= 2 * DAY {
        format!("{} days", secs / DAY)
    } else if secs >= 7200 {
        format!("{} hours", secs / 3600)
    } else {
        format!("{} minutes", secs / 60)
    }
}

fn tls(ctx: &Ctx, f: &mut Findings) {
    for name in sites(ctx) {
        let name = name.as_str();
        let info = match certificate(ctx, name) {
            Ok(info) => info,
            Err(e) => {
                add(
                    f,
                    CheckId::TlsCertificate,
                    Some(name),
                    Status::Fail,
                    format!("no TLS connection: {e}"),
                    Some(format!(
                        "is Caddy running and listening on port {} (systemctl status caddy), and does {name} resolve to this host?",
                        ctx.host.proxy.https_port
                    )),
                );
                for id in [CheckId::TlsExpiry, CheckId::TlsHsts] {
                    add(
                        f,
                        id,
                        Some(name),
                        Status::Warn,
                        "not checked: no TLS connection",
                        None,
                    );
                }
                continue;
            }
        };
        match &info.problem {
            Some(problem) => {
                let hint = match problem {
                    CertProblem::Untrusted(_) => format!(
                        "the certificate must come from a CA clients trust: with proxy.tls acme, Caddy must reach the ACME CA and be reached on ports {} and {} (look at Caddy's log: journalctl -u caddy)",
                        ctx.host.proxy.http_port, ctx.host.proxy.https_port
                    ),
                    CertProblem::WrongName(_) => format!(
                        "Caddy presents another site's certificate: make sure {name} is a site of the running Caddy configuration (the rendered sites.caddy) and that no other server answers on this address"
                    ),
                    CertProblem::Expired(_) | CertProblem::NotYetValid(_) => {
                        "renewal failed or the clock is wrong: check the time (timedatectl) and Caddy's log (journalctl -u caddy), then restart Caddy".to_owned()
                    }
                    CertProblem::Other(_) => "look at Caddy's log (journalctl -u caddy)".to_owned(),
                };
                add(
                    f,
                    CheckId::TlsCertificate,
                    Some(name),
                    Status::Fail,
                    format!("the certificate {problem}"),
                    Some(hint),
                );
                let (expiry_status, expiry_message) = match problem {
                    CertProblem::Expired(_) | CertProblem::NotYetValid(_) => {
                        (Status::Fail, format!("the certificate {problem}"))
                    }
                    _ => (
                        Status::Warn,
                        "not checked: the certificate is refused".to_owned(),
                    ),
                };
                add(
                    f,
                    CheckId::TlsExpiry,
                    Some(name),
                    expiry_status,
                    expiry_message,
                    Some("see tls.certificate".into()),
                );
            }
            None => {
                add(
                    f,
                    CheckId::TlsCertificate,
                    Some(name),
                    Status::Pass,
                    format!(
                        "trusted ({}) and valid for {name}",
                        ctx.https.trust_source()
                    ),
                    None,
                );
                expiry(f, name, &info);
            }
        }
        hsts(ctx, f, name);
    }
}

fn expiry(f: &mut Findings, name: &str, info: &CertInfo) {
    let (Some(not_before), Some(not_after)) = (info.not_before, info.not_after) else {
        add(
            f,
            CheckId::TlsExpiry,
            Some(name),
            Status::Warn,
            "the certificate's validity period could not be read",
            None,
        );
        return;
    };
    let now = now_secs();
    let left = not_after.saturating_sub(now);
    let (warn_at, fail_at) = expiry_thresholds(not_after.saturating_sub(not_before));
    let message = format!(
        "valid until {} ({} left)",
        rfc3339(not_after),
        in_words(left)
    );
    let hint = Some(
        "Caddy renews certificates by itself: look at its log (journalctl -u caddy) for renewal errors (DNS, ports 80/443, the ACME CA's rate limits)"
            .to_owned(),
    );
    let status = if left < fail_at {
        Status::Fail
    } else if left < warn_at {
        Status::Warn
    } else {
        Status::Pass
    };
    add(f, CheckId::TlsExpiry, Some(name), status, message, hint);
}

/// The value of `max-age` in a Strict-Transport-Security header.
pub fn hsts_max_age(value: &str) -> Option<u64> {
    value.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().trim_matches('"').parse().ok())?
    })
}

fn hsts(ctx: &Ctx, f: &mut Findings, name: &str) {
    let hint = Some(format!(
        "the proxy must send Strict-Transport-Security on {name}: render the configuration again and reload Caddy"
    ));
    // The base domain may be a web site of its own: HSTS there is the
    // site's decision (and this proxy only redirects it to Element).
    let required = name == ctx.host.matrix_host || name == ctx.host.element_host;
    match fetch(ctx, name, "GET", "/", None) {
        Err(e) => add(
            f,
            CheckId::TlsHsts,
            Some(name),
            Status::Warn,
            format!("not checked: {e}"),
            None,
        ),
        Ok(r) => match r.header("strict-transport-security").map(hsts_max_age) {
            Some(Some(age)) if age > 0 => add(
                f,
                CheckId::TlsHsts,
                Some(name),
                Status::Pass,
                format!("Strict-Transport-Security max-age={age}"),
                None,
            ),
            _ if !required => add(
                f,
                CheckId::TlsHsts,
                Some(name),
                Status::Pass,
                "no Strict-Transport-Security (not required on the base domain)",
                None,
            ),
            other => add(
                f,
                CheckId::TlsHsts,
                Some(name),
                Status::Fail,
                match other {
                    Some(_) => "Strict-Transport-Security has no positive max-age",
                    None => "no Strict-Transport-Security header",
                },
                hint,
            ),
        },
    }
}

/// `base_url` without a trailing slash.
fn trim_url(url: &str) -> &str {
    url.trim_end_matches('/')
}

fn discovery(ctx: &Ctx, f: &mut Findings) {
    let h = &ctx.host;
    let expected = h.homeserver_url();
    let name = h.server_name.as_str();
    let url = format!("https://{name}/.well-known/matrix/client");
    let hint = Some(format!(
        "https://{name}/.well-known/matrix/client must answer 200 with {{\"m.homeserver\":{{\"base_url\":\"{expected}\"}}}} and Access-Control-Allow-Origin: * (the rendered well-known/matrix/client; with proxy.serve_base_domain off, publish it on the base domain's web site)"
    ));
    match fetch(ctx, name, "GET", "/.well-known/matrix/client", None) {
        Err(e) => add(
            f,
            CheckId::DiscoveryClient,
            Some(name),
            not_checked_status(ctx, name, &e),
            format!("{url}: {e}"),
            hint,
        ),
        Ok(r) => {
            let body: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
            let base_url = body
                .as_ref()
                .and_then(|v| v.get("m.homeserver"))
                .and_then(|v| v.get("base_url"))
                .and_then(|v| v.as_str());
            let cors = r.header("access-control-allow-origin");
            let problem = if r.status != 200 {
                Some(format!("answered HTTP {}", r.status))
            } else if body.is_none() {
                Some("is not JSON".to_owned())
            } else if base_url.map(trim_url) != Some(trim_url(&expected)) {
                Some(format!(
                    "points clients at {}, not at {expected}",
                    base_url.map_or_else(|| "nothing".to_owned(), |u| format!("{u:?}"))
                ))
            } else if cors != Some("*") {
                Some(format!(
                    "lacks Access-Control-Allow-Origin: * (got {cors:?}): web clients on other origins cannot read it"
                ))
            } else {
                None
            };
            match problem {
                None => add(
                    f,
                    CheckId::DiscoveryClient,
                    Some(name),
                    Status::Pass,
                    format!("points at {expected}, with CORS"),
                    None,
                ),
                Some(p) => add(
                    f,
                    CheckId::DiscoveryClient,
                    Some(name),
                    Status::Fail,
                    format!("{url} {p}"),
                    hint,
                ),
            }
        }
    }
    let mut hosts = vec![name.to_owned(), h.matrix_host.clone()];
    hosts.dedup();
    closed_everywhere(
        ctx,
        f,
        CheckId::DiscoveryServer,
        &hosts,
        &["/.well-known/matrix/server"],
        "federation discovery",
        "/.well-known/matrix/server must answer 404 (this server does not federate): render the configuration again and reload the proxy or the base domain's web site",
    );
}

/// A check on `host` that could not run: a warning when a failure of its
/// own already names the cause (a site this proxy serves fails
/// `tls.certificate` then), a failure otherwise (the base domain's web site
/// elsewhere, or an answer that is not HTTP).
/// The hint of a check that could not reach its site.
const NOT_CHECKED_HINT: &str = "see tls.certificate and services.listening";

/// Reports check `id` on `host` as not checked because of `e`.
fn not_checked(ctx: &Ctx, f: &mut Findings, id: CheckId, host: &str, e: &HttpsError) {
    add(
        f,
        id,
        Some(host),
        not_checked_status(ctx, host, e),
        format!("not checked: {e}"),
        Some(NOT_CHECKED_HINT.into()),
    );
}

fn not_checked_status(ctx: &Ctx, host: &str, e: &HttpsError) -> Status {
    let covered = sites(ctx).iter().any(|s| s == host);
    match e {
        HttpsError::Certificate(_) | HttpsError::Connect(_) if covered => Status::Warn,
        _ => Status::Fail,
    }
}

/// Whether an answer keeps a path closed: 404, or (on the base domain,
/// which sends every other path to Element) a redirect to Element.
fn is_closed(ctx: &Ctx, host: &str, r: &Response) -> bool {
    if r.status == 404 {
        return true;
    }
    host == ctx.host.base_domain
        && host != ctx.host.matrix_host
        && host != ctx.host.element_host
        && (300..400).contains(&r.status)
        && r.header("location")
            .is_some_and(|l| l.starts_with(&ctx.host.element_url()))
}

/// Every path of `paths` must be closed on each of `hosts` (see
/// [`is_closed`]); one finding per host.
#[allow(clippy::too_many_arguments)]
fn closed_everywhere(
    ctx: &Ctx,
    f: &mut Findings,
    id: CheckId,
    hosts: &[String],
    paths: &[&str],
    what: &str,
    hint: &str,
) {
    for host in hosts {
        let mut open = Vec::new();
        let mut unchecked: Option<(Status, String)> = None;
        for path in paths {
            match fetch(ctx, host, "GET", path, None) {
                Ok(r) if is_closed(ctx, host, &r) => {}
                Ok(r) => open.push(format!("https://{host}{path} answered HTTP {}", r.status)),
                Err(e) => {
                    unchecked = Some((not_checked_status(ctx, host, &e), e.to_string()));
                    break;
                }
            }
        }
        let is_base = ctx.host.base_domain == *host && ctx.host.delegates_from_base_domain();
        let host = Some(host.as_str());
        if !open.is_empty() {
            add(
                f,
                id,
                host,
                Status::Fail,
                format!("{what} is reachable from outside: {}", open.join("; ")),
                Some(hint.to_owned()),
            );
        } else if let Some((status, e)) = unchecked {
            add(
                f,
                id,
                host,
                status,
                format!("not checked: {e}"),
                Some(NOT_CHECKED_HINT.into()),
            );
        } else {
            add(
                f,
                id,
                host,
                Status::Pass,
                format!(
                    "{} answer{} 404{}",
                    paths.join(", "),
                    if paths.len() == 1 { "s" } else { "" },
                    if is_base {
                        " (or redirect to Element)"
                    } else {
                        ""
                    }
                ),
                None,
            );
        }
    }
}

fn privacy(ctx: &Ctx, f: &mut Findings) {
    let h = &ctx.host;
    let all_sites = sites(ctx);
    let mut api_hosts = vec![h.matrix_host.clone(), h.server_name.clone()];
    api_hosts.dedup();
    let api_hosts = dedup(api_hosts);
    let probe_user = format!("%40doctor%3A{}", h.server_name);
    let profile = format!("/_matrix/federation/v1/query/profile?user_id={probe_user}");
    closed_everywhere(
        ctx,
        f,
        CheckId::PrivacyFederation,
        &api_hosts,
        &[
            "/_matrix/federation/v1/version",
            profile.as_str(),
            "/_matrix/key/v2/server",
            "/_matrix/key/v2/query/example.org",
        ],
        "the federation API",
        "federation and key endpoints must answer 404 at the proxy: render the configuration again, reload Caddy, and never proxy /_matrix/federation or /_matrix/key",
    );
    closed_everywhere(
        ctx,
        f,
        CheckId::PrivacyAdminApi,
        &all_sites,
        &[
            "/_synapse/admin/v1/server_version",
            "/_synapse/admin/v2/users",
        ],
        "Synapse's admin API",
        "only /_matrix/* and /_synapse/client/* may reach Synapse through the proxy: remove the route to /_synapse/admin (use `ospw-matrix user ...` on the host instead) and reload Caddy",
    );
    closed_everywhere(
        ctx,
        f,
        CheckId::PrivacyMetrics,
        &all_sites,
        &["/metrics", "/_synapse/metrics"],
        "a metrics endpoint",
        "metrics stay on loopback: remove the route to the metrics endpoint from the public site and reload Caddy (scrape 127.0.0.1 instead)",
    );
    registration(ctx, f);
    encryption(ctx, f);
    element_config(ctx, f);
}

fn registration(ctx: &Ctx, f: &mut Findings) {
    let name = ctx.host.matrix_host.as_str();
    for (id, path, what, hint) in [
        (
            CheckId::PrivacyRegistration,
            "/_matrix/client/v3/register",
            "public registration",
            "enable_registration must be false (it is unless synapse.settings overrides it): render the configuration again and restart Synapse; accounts are created with `ospw-matrix user add`",
        ),
        (
            CheckId::PrivacyGuestAccess,
            "/_matrix/client/v3/register?kind=guest",
            "guest registration",
            "allow_guest_access must be false: render the configuration again and restart Synapse",
        ),
    ] {
        match fetch(ctx, name, "POST", path, Some(b"{}")) {
            Err(e) => not_checked(ctx, f, id, name, &e),
            Ok(r) if r.status == 403 => add(
                f,
                id,
                Some(name),
                Status::Pass,
                format!("{what} refused (403)"),
                None,
            ),
            Ok(r) => add(
                f,
                id,
                Some(name),
                Status::Fail,
                format!("POST https://{name}{path} answered HTTP {}: {what} is not refused", r.status),
                Some(hint.to_owned()),
            ),
        }
    }
}

/// The `unstable_features` flags Synapse advertises for each default.
pub fn expected_forced_encryption(default: EncryptionDefault) -> [(&'static str, bool); 3] {
    let (public, private) = match default {
        EncryptionDefault::All => (true, true),
        EncryptionDefault::Invite => (false, true),
        EncryptionDefault::Off => (false, false),
    };
    [
        ("io.element.e2ee_forced.public", public),
        ("io.element.e2ee_forced.private", private),
        ("io.element.e2ee_forced.trusted_private", private),
    ]
}

fn encryption(ctx: &Ctx, f: &mut Findings) {
    let name = ctx.host.matrix_host.as_str();
    let default = ctx.host.synapse.encryption_by_default;
    let r = match fetch(ctx, name, "GET", "/_matrix/client/versions", None) {
        Err(e) => {
            not_checked(ctx, f, CheckId::PrivacyEncryption, name, &e);
            return;
        }
        Ok(r) => r,
    };
    let features = serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v.get("unstable_features").cloned());
    let Some(features) = features.filter(|_| r.status == 200) else {
        add(
            f,
            CheckId::PrivacyEncryption,
            Some(name),
            Status::Fail,
            format!(
                "/_matrix/client/versions answered HTTP {} without unstable_features",
                r.status
            ),
            Some("is Synapse behind the proxy? see services.listening".into()),
        );
        return;
    };
    let wrong: Vec<String> = expected_forced_encryption(default)
        .iter()
        .filter(|(k, want)| features.get(*k).and_then(|v| v.as_bool()).unwrap_or(false) != *want)
        .map(|(k, want)| format!("{k} is not {want}"))
        .collect();
    let setting = serde_json::to_value(default)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    if !wrong.is_empty() {
        add(
            f,
            CheckId::PrivacyEncryption,
            Some(name),
            Status::Fail,
            format!("/versions does not advertise encryption_by_default {setting}: {}", wrong.join(", ")),
            Some("encryption_enabled_by_default_for_room_type comes from synapse.encryption_by_default: render the configuration again and restart Synapse".into()),
        );
    } else if default == EncryptionDefault::Off {
        add(
            f,
            CheckId::PrivacyEncryption,
            Some(name),
            Status::Warn,
            "new rooms are not end-to-end encrypted by default (synapse.encryption_by_default: off)",
            Some("set synapse.encryption_by_default to all".into()),
        );
    } else {
        add(
            f,
            CheckId::PrivacyEncryption,
            Some(name),
            Status::Pass,
            format!("/versions advertises forced encryption ({setting})"),
            None,
        );
    }
}

fn element_config(ctx: &Ctx, f: &mut Findings) {
    let h = &ctx.host;
    let name = h.element_host.as_str();
    // Element asks for config.<its host>.json first, then config.json.
    let specific = format!("/config.{name}.json");
    let mut problems = Vec::new();
    let mut served = Vec::new();
    for path in [specific.as_str(), "/config.json"] {
        let r = match fetch(ctx, name, "GET", path, None) {
            Err(e) => {
                not_checked(ctx, f, CheckId::PrivacyElementConfig, name, &e);
                return;
            }
            Ok(r) => r,
        };
        if r.status == 404 && path != "/config.json" {
            continue;
        }
        if r.status != 200 {
            problems.push(format!("{path} answered HTTP {}", r.status));
            continue;
        }
        served.push(path.to_owned());
        let text = String::from_utf8_lossy(&r.body);
        let config = match ElementConfig::parse(&text) {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("{path} is not a valid config.json: {e}"));
                continue;
            }
        };
        for e in config.privacy_violations().errors {
            problems.push(format!("{path}: {}: {}", e.path, e.message));
        }
        let base_url = config
            .default_server_config
            .as_ref()
            .map(|d| d.homeserver.base_url.clone())
            .unwrap_or_default();
        if trim_url(&base_url) != trim_url(&h.homeserver_url()) {
            problems.push(format!(
                "{path}: default_server_config.m.homeserver.base_url is {base_url:?}, not {}",
                h.homeserver_url()
            ));
        }
        if config.server_name() != Some(h.server_name.as_str()) {
            problems.push(format!(
                "{path}: default_server_config.m.homeserver.server_name is {:?}, not {:?}",
                config.server_name().unwrap_or_default(),
                h.server_name
            ));
        }
    }
    if problems.is_empty() {
        add(
            f,
            CheckId::PrivacyElementConfig,
            Some(name),
            Status::Pass,
            format!(
                "{} keeps every privacy invariant and names this server",
                served.join(" and ")
            ),
            None,
        );
    } else {
        add(
            f,
            CheckId::PrivacyElementConfig,
            Some(name),
            Status::Fail,
            problems.join("; "),
            Some("serve the rendered element/config.json unchanged (change element.settings in the host description and render again, which refuses what breaks privacy)".into()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_thresholds_scale_for_short_lived_certificates() {
        // A 90-day ACME certificate: 14 and 3 days.
        assert_eq!(expiry_thresholds(90 * DAY), (14 * DAY, 3 * DAY));
        // Caddy's internal CA: 12 hours; renewed with 4 hours left.
        assert_eq!(expiry_thresholds(12 * 3600), (3 * 3600, 3 * 1800));
        let (warn, fail) = expiry_thresholds(12 * 3600);
        assert!(warn < 4 * 3600 && fail < warn);
    }

    #[test]
    fn hsts_max_age_is_read_like_browsers_do() {
        assert_eq!(hsts_max_age("max-age=31536000"), Some(31_536_000));
        assert_eq!(
            hsts_max_age("includeSubDomains; Max-Age=\"600\"; preload"),
            Some(600)
        );
        assert_eq!(hsts_max_age("max-age=abc"), None);
        assert_eq!(hsts_max_age("includeSubDomains"), None);
    }

    #[test]
    fn forced_encryption_follows_the_setting() {
        assert!(expected_forced_encryption(EncryptionDefault::All)
            .iter()
            .all(|(_, v)| *v));
        assert_eq!(
            expected_forced_encryption(EncryptionDefault::Invite),
            [
                ("io.element.e2ee_forced.public", false),
                ("io.element.e2ee_forced.private", true),
                ("io.element.e2ee_forced.trusted_private", true),
            ]
        );
        assert!(expected_forced_encryption(EncryptionDefault::Off)
            .iter()
            .all(|(_, v)| !*v));
    }
}
