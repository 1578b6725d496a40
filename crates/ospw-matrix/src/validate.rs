//! Validation of a host description: every problem is collected in one pass,
//! each naming its field path and the expected form.
//!
//! This module checks the host description's own fields. The component
//! builders in [`mod@crate::render`] check, in addition, that the free-form
//! `settings` of each component do not break the privacy invariants.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use crate::error::ValidationErrors;
use crate::host::{HostDescription, SecretKind, SynapseListen};
use crate::redact::quote;
use crate::values::{
    check_mailbox, is_loopback_host, parse_admin_listen, parse_claim_template, parse_duration_ms,
    parse_https_url, parse_lifetime_ms, parse_port_range, parse_size_bytes, parse_web_url,
    AdminListen, PortRange,
};

/// The largest TURN quota: more allocations than relay ports on every
/// address of a host cannot exist, and coturn reads quotas as a C `int`.
const MAX_TURN_QUOTA: u32 = 1_000_000;

/// Words that mark a value the user was meant to replace.
const PLACEHOLDERS: [&str; 6] = [
    "change_me",
    "changeme",
    "change-me",
    "replace_me",
    "replaceme",
    "your_domain",
];

/// Validates `host`, returning every problem found.
pub fn validate(host: &HostDescription) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    check_names(host, &mut errs);
    check_synapse(host, &mut errs);
    check_turn(host, &mut errs);
    check_element(host, &mut errs);
    check_proxy(host, &mut errs);
    check_secrets(host, &mut errs);
    check_sso(host, &mut errs);
    check_email(host, &mut errs);
    check_paths(host, &mut errs);
    check_settings_paths(host, &mut errs);
    check_metrics(host, &mut errs);
    check_ports(host, &mut errs);
    check_placeholders(host, &mut errs);
    errs.into_result(())
}

/// Whether `name` is a valid DNS host name (letters, digits and hyphens in
/// labels of 1 to 63 characters, no hyphen at either end, 253 at most).
pub fn is_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 || name.ends_with('.') {
        return false;
    }
    if name.parse::<IpAddr>().is_ok() {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }) && !name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
}

fn dns_name(errs: &mut ValidationErrors, path: &str, value: &str) {
    if !is_dns_name(value) {
        errs.push(
            path,
            format!(
                "{} is not a valid DNS name: expected labels of letters, digits and \
                 hyphens separated by dots, such as matrix.example.org",
                quote(value)
            ),
        );
    } else if value.chars().any(|c| c.is_ascii_uppercase()) {
        // Host names are compared as written (element_host must differ
        // from matrix_host, one Caddy site per name, user IDs carry the
        // server name): one spelling per name.
        errs.push(
            path,
            format!(
                "{} has upper-case letters: expected the name in lower case, {}",
                quote(value),
                quote(&value.to_ascii_lowercase())
            ),
        );
    }
}

fn ip(errs: &mut ValidationErrors, path: &str, value: &str) -> Option<IpAddr> {
    match value.parse::<IpAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errs.push(
                path,
                format!("{} is not an IP address: expected IPv4 such as 203.0.113.7 or IPv6 such as 2001:db8::7", quote(value)),
            );
            None
        }
    }
}

fn absolute(errs: &mut ValidationErrors, path: &str, value: &Path) {
    if !value.is_absolute() {
        errs.push(
            path,
            format!(
                "{} is not an absolute path: expected a path starting with /",
                quote(&value.display().to_string())
            ),
        );
    }
}

/// [`absolute`] for a field naming a secret's file, which may hold the
/// secret itself pasted by mistake: only a short prefix is quoted.
fn absolute_secret_file(errs: &mut ValidationErrors, path: &str, value: &Path) {
    if !value.is_absolute() {
        errs.push(
            path,
            format!(
                "{} is not an absolute path: expected the path of the file that holds the secret, \
                 starting with /",
                crate::redact::quote_secret_field(&value.display().to_string())
            ),
        );
    }
}

/// Directories that a data directory, media store, web root or secrets
/// directory may never be: the host's own system directories. On NixOS a
/// tmpfiles rule would hand such a directory to the service's user.
pub const SYSTEM_DIRS: [&str; 45] = [
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/etc/nixos",
    "/etc/ssl",
    "/home",
    "/lib",
    "/lib64",
    "/media",
    "/mnt",
    "/nix",
    "/nix/store",
    "/nix/var",
    "/nix/var/nix",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/run/credentials",
    "/run/current-system",
    "/run/user",
    "/run/wrappers",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/backup",
    "/var/cache",
    "/var/empty",
    "/var/lib",
    "/var/lib/private",
    "/var/log",
    "/var/run",
    "/var/spool",
    "/var/tmp",
    "/var/www",
];

/// Trees no data or secret may live in: the world-readable, read-only Nix
/// store and the kernel's file systems.
const FORBIDDEN_TREES: [&str; 4] = ["/nix/store", "/proc", "/sys", "/dev"];

/// `path` with `.`, repeated and trailing slashes removed, as `/a/b`;
/// `None` for a relative path or one with `..` (which cannot be resolved
/// without the file system: symbolic links).
pub fn normal_path(path: &Path) -> Option<String> {
    use std::path::Component;
    if !path.is_absolute() {
        return None;
    }
    let mut out = String::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => {
                out.push('/');
                out.push_str(&part.to_string_lossy());
            }
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// Whether `inner` is `outer` or lies inside it (both normal paths).
pub fn path_within(inner: &str, outer: &str) -> bool {
    inner == outer || outer == "/" || inner.starts_with(&format!("{outer}/"))
}

/// What a path holds, for the overlap rules: two areas of different kinds
/// may not contain one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// Synapse's data (data directory, media store).
    SynapseData,
    /// Element Web's files, served to anyone.
    WebRoot,
    /// Secrets (the secrets directory, secret and key files).
    Secrets,
}

/// One configured path, for [`check_paths`].
pub(crate) struct ConfiguredPath {
    /// The host-description field.
    pub field: String,
    /// The path, normalised.
    pub normal: String,
    area: Area,
    /// Whether the path is a directory the services own.
    is_dir: bool,
    /// Whether the field names a secret's file (quoted shortened).
    secret_file: bool,
}

/// Every data, web-root and secret path of `host`, normalised; a path
/// that cannot be normalised is reported (and left out).
pub(crate) fn configured_paths(
    host: &HostDescription,
    errs: &mut ValidationErrors,
) -> Vec<ConfiguredPath> {
    let mut list: Vec<(String, &Path, Area, bool, bool)> = vec![
        (
            "synapse.data_dir".into(),
            host.synapse.data_dir.as_path(),
            Area::SynapseData,
            true,
            false,
        ),
        (
            "element.webroot".into(),
            host.element.webroot.as_path(),
            Area::WebRoot,
            true,
            false,
        ),
        (
            "secrets.dir".into(),
            host.secrets.dir.as_path(),
            Area::Secrets,
            true,
            false,
        ),
    ];
    if let Some(media) = &host.synapse.media_store_path {
        list.push((
            "synapse.media_store_path".into(),
            media.as_path(),
            Area::SynapseData,
            true,
            false,
        ));
    }
    for kind in SecretKind::ALL {
        if let Some(file) = host.secrets.explicit_file(kind) {
            list.push((
                kind.field().into(),
                file.as_path(),
                Area::Secrets,
                false,
                true,
            ));
        }
    }
    if let Some(tls) = &host.turn.tls {
        list.push((
            "turn.tls.key_file".into(),
            tls.key_file.as_path(),
            Area::Secrets,
            false,
            false,
        ));
    }
    // Secrets of single sign-on and mail: files like the others.
    for (i, p) in host.sso.providers.iter().enumerate() {
        list.push((
            format!("sso.providers[{i}].client_secret_file"),
            p.client_secret_file.as_path(),
            Area::Secrets,
            false,
            true,
        ));
    }
    if let Some(file) = host.email.as_ref().and_then(|e| e.password_file.as_ref()) {
        list.push((
            "email.password_file".into(),
            file.as_path(),
            Area::Secrets,
            false,
            true,
        ));
    }
    let mut out = Vec::new();
    for (field, path, area, is_dir, secret_file) in list {
        if !path.is_absolute() {
            continue; // reported by `absolute`
        }
        match normal_path(path) {
            Some(normal) => out.push(ConfiguredPath {
                field,
                normal,
                area,
                is_dir,
                secret_file,
            }),
            None => errs.push(
                field,
                format!(
                    "{} holds `..`: expected the path written without it (it cannot be checked \
                     without resolving links)",
                    if secret_file {
                        crate::redact::quote_secret_field(&path.display().to_string())
                    } else {
                        quote(&path.display().to_string())
                    }
                ),
            ),
        }
    }
    out
}

impl ConfiguredPath {
    /// A path derived from others (a default), for the output-directory check.
    pub(crate) fn derived(field: &str, normal: String) -> Self {
        ConfiguredPath {
            field: field.to_owned(),
            normal,
            area: Area::SynapseData,
            is_dir: true,
            secret_file: false,
        }
    }

    fn quoted(&self) -> String {
        if self.secret_file {
            crate::redact::quote_secret_field(&self.normal)
        } else {
            quote(&self.normal)
        }
    }
}

/// Paths that would damage the host: a system directory used as a data,
/// web or secrets directory; data or secrets in the Nix store or a kernel
/// file system; one area (Synapse's data, Element's web root, the
/// secrets) containing another.
fn check_paths(host: &HostDescription, errs: &mut ValidationErrors) {
    let mut paths = configured_paths(host, errs);
    let mut refused = Vec::new();
    for p in &paths {
        if p.is_dir && SYSTEM_DIRS.contains(&p.normal.as_str()) {
            errs.push(
                p.field.clone(),
                format!(
                    "{} is a system directory: the service would own it (on NixOS a tmpfiles rule \
                     hands it to the service's user): expected a directory of its own, such as /var/lib/ospw-matrix/…",
                    p.quoted()
                ),
            );
            refused.push(p.field.clone());
            continue;
        }
        let forbidden = FORBIDDEN_TREES.iter().find(|t| {
            path_within(&p.normal, t) && !(p.area == Area::WebRoot && **t == "/nix/store")
        });
        if let Some(tree) = forbidden {
            let why = if *tree == "/nix/store" {
                "the Nix store is readable by every user and cannot be written"
            } else {
                "it is a kernel file system"
            };
            errs.push(
                p.field.clone(),
                format!(
                    "{} is inside {tree}: {why}; expected a path outside it",
                    p.quoted()
                ),
            );
        }
    }
    // One file, one secret: a second secret field naming a managed secret
    // (the generated ones in secrets.dir included) would hand it to another
    // program, e.g. the signing key as an SSO client secret sent to the
    // provider.
    let mut files: Vec<(String, String)> = SecretKind::ALL
        .iter()
        .filter(|k| host.secrets.explicit_file(**k).is_none())
        .filter_map(|k| {
            normal_path(&host.secrets.path(*k)).map(|n| (format!("{} (default)", k.field()), n))
        })
        .collect();
    for p in paths
        .iter()
        .filter(|p| p.area == Area::Secrets && !p.is_dir)
    {
        if let Some((first, _)) = files.iter().find(|(_, n)| *n == p.normal) {
            errs.push(
                p.field.clone(),
                format!(
                    "{} is the same file as {first}: each secret has a file of its own (one \
                     service would be handed another's secret)",
                    p.quoted()
                ),
            );
        } else {
            files.push((p.field.clone(), p.normal.clone()));
        }
    }
    // A system directory contains everything: reported once, above.
    paths.retain(|p| !refused.contains(&p.field));
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            if a.area == b.area {
                continue;
            }
            let (outer, inner) = if path_within(&b.normal, &a.normal) {
                (a, b)
            } else if path_within(&a.normal, &b.normal) {
                (b, a)
            } else {
                continue;
            };
            let danger = match (outer.area, inner.area) {
                (Area::WebRoot, _) => "the web root is served to anyone",
                (_, Area::Secrets) => {
                    "the secrets would be readable or replaceable by the service owning it"
                }
                _ => "each service owns its directory alone",
            };
            errs.push(
                outer.field.clone(),
                format!(
                    "{} {} {} ({}): {danger}; expected separate directories",
                    outer.quoted(),
                    if outer.normal == inner.normal {
                        "is the same as"
                    } else {
                        "contains"
                    },
                    inner.field,
                    inner.quoted()
                ),
            );
        }
    }
}

/// Words that make a free-form setting's key name a file or directory.
const PATH_WORDS: [&str; 7] = [
    "path",
    "paths",
    "file",
    "files",
    "dir",
    "directory",
    "folder",
];

/// Files under `/dev` a setting may name (a log written nowhere).
const DEVICE_FILES: [&str; 1] = ["/dev/null"];

/// Paths in free-form settings (`synapse.settings`, `turn.settings`; Element
/// reads no files), at any depth: every string that is an absolute
/// path or a `file://` URL, and every value of a key naming a file or
/// directory (`*_path`, `*_file`, `template_dir`, …). A program reads (and
/// may send elsewhere) or writes whatever such a setting names, so it may
/// not name:
/// - a path with `..` (resolved through links, relative ones from the
///   service's working directory: it cannot be checked);
/// - the secrets (`secrets.dir`, a `secrets.*_file`, the TURN TLS key):
///   only the typed fields hand them to the programs that need them, and a
///   setting such as an OIDC `client_secret_path` or `redis.password_path`
///   would send a managed secret to another server;
/// - a kernel file system (`/proc/self/environ`, `/sys`, `/dev` except
///   `/dev/null`);
/// - for a secret's file (a key such as `client_secret_path`), the Nix
///   store, which every user can read.
///
/// Keys derived from typed fields (`signing_key_path`, coturn's `cert`,
/// …) are checked where they are derived.
fn check_settings_paths(host: &HostDescription, errs: &mut ValidationErrors) {
    let mut ignore = ValidationErrors::new();
    let secrets: Vec<ConfiguredPath> = configured_paths(host, &mut ignore)
        .into_iter()
        .filter(|p| p.area == Area::Secrets)
        .collect();
    let synapse_derived: Vec<&str> = crate::render::synapse::DERIVED_KEYS
        .iter()
        .map(|(k, _)| *k)
        .collect();
    let coturn_derived: Vec<&str> = crate::render::coturn::DERIVED
        .iter()
        .map(|(k, _)| *k)
        .collect();
    for (field, map, derived) in [
        ("synapse.settings", &host.synapse.settings, synapse_derived),
        ("turn.settings", &host.turn.settings, coturn_derived),
    ] {
        for (key, value) in map {
            if derived.contains(&key.as_str()) {
                continue;
            }
            settings_paths(value, &format!("{field}.{key}"), key, false, &secrets, errs);
        }
    }
}

fn settings_paths(
    value: &serde_json::Value,
    path: &str,
    key: &str,
    path_key: bool,
    secrets: &[ConfiguredPath],
    errs: &mut ValidationErrors,
) {
    let words = crate::inline_secrets::key_words(key);
    let names_path = path_key || words.iter().any(|w| PATH_WORDS.contains(&w.as_str()));
    match value {
        serde_json::Value::String(s) => {
            let file = s.strip_prefix("file://").unwrap_or(s);
            if !(file.starts_with('/') || names_path) || file.is_empty() {
                return;
            }
            if let Some(message) = setting_path_problem(file, &words, secrets) {
                errs.push(path, message);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                settings_paths(
                    item,
                    &format!("{path}[{i}]"),
                    key,
                    names_path,
                    secrets,
                    errs,
                );
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                settings_paths(v, &format!("{path}.{k}"), k, false, secrets, errs);
            }
        }
        _ => {}
    }
}

/// What is wrong with a path `file` written in a setting whose key has
/// `words`, if anything (see [`check_settings_paths`]).
fn setting_path_problem(
    file: &str,
    words: &[String],
    secrets: &[ConfiguredPath],
) -> Option<String> {
    let shown = || quote(file);
    if Path::new(file)
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Some(format!(
            "{} holds `..`: expected the path written without it (it cannot be checked without \
             resolving links)",
            shown()
        ));
    }
    let normal = normal_path(Path::new(file))?;
    if let Some(secret) = secrets.iter().find(|p| path_within(&normal, &p.normal)) {
        return Some(format!(
            "{} is in the secrets ({}): a setting may not name them (it could hand a managed \
             secret to another program or server); only the typed fields do",
            shown(),
            secret.field
        ));
    }
    let kernel = ["/proc", "/sys", "/dev"]
        .into_iter()
        .find(|t| path_within(&normal, t) && !DEVICE_FILES.contains(&normal.as_str()));
    if let Some(tree) = kernel {
        return Some(format!(
            "{} is inside {tree}, a kernel file system (such as the process environment): \
             expected a file of its own",
            shown()
        ));
    }
    let secret_file = words.iter().any(|w| PATH_WORDS.contains(&w.as_str()))
        && crate::inline_secrets::is_secret_key(
            &words
                .iter()
                .filter(|w| !PATH_WORDS.contains(&w.as_str()))
                .cloned()
                .collect::<Vec<_>>()
                .join("_"),
        );
    if secret_file && path_within(&normal, "/nix/store") {
        return Some(format!(
            "{} is inside /nix/store: a secret there is readable by every user; expected a file \
             outside the Nix store, readable only by the service",
            shown()
        ));
    }
    None
}

fn nonzero_port(errs: &mut ValidationErrors, path: &str, port: u16) {
    if port == 0 {
        errs.push(path, "0 is not a usable port: expected 1 to 65535");
    }
}

fn check_names(host: &HostDescription, errs: &mut ValidationErrors) {
    dns_name(errs, "base_domain", &host.base_domain);
    dns_name(errs, "server_name", &host.server_name);
    dns_name(errs, "matrix_host", &host.matrix_host);
    dns_name(errs, "element_host", &host.element_host);
    if host.server_name != host.base_domain && host.server_name != host.matrix_host {
        errs.push(
            "server_name",
            format!(
                "{} must be either base_domain ({}, delegating with .well-known) or matrix_host ({})",
                quote(&host.server_name), quote(&host.base_domain), quote(&host.matrix_host)
            ),
        );
    }
    if host.element_host == host.matrix_host {
        errs.push(
            "element_host",
            format!(
                "{:?} must differ from matrix_host: Element Web must be served from its own host name so that \
                 content served by the homeserver cannot run script in the client's origin",
                quote(&host.element_host)
            ),
        );
    }
}

fn check_synapse(host: &HostDescription, errs: &mut ValidationErrors) {
    let s = &host.synapse;
    match &s.listen {
        SynapseListen::Tcp { address, port } => {
            if let Some(addr) = ip(errs, "synapse.listen.tcp.address", address) {
                if !addr.is_loopback() {
                    errs.push(
                        "synapse.listen.tcp.address",
                        format!("{} is not a loopback address: Synapse is only reached through the proxy, expected 127.0.0.1 or ::1", quote(address)),
                    );
                }
            }
            nonzero_port(errs, "synapse.listen.tcp.port", *port);
        }
        SynapseListen::Unix { path } => absolute(errs, "synapse.listen.unix.path", path),
    }
    for (path, value) in [
        ("synapse.database.name", &s.database.name),
        ("synapse.database.user", &s.database.user),
    ] {
        let ok = value.len() <= 63
            && value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            errs.push(
                path,
                format!("{} is not a plain PostgreSQL identifier: expected lower-case letters, digits and _ (such as synapse)", quote(value)),
            );
        }
    }
    absolute(errs, "synapse.database.socket_dir", &s.database.socket_dir);
    nonzero_port(errs, "synapse.database.port", s.database.port);
    absolute(errs, "synapse.data_dir", &s.data_dir);
    if let Some(media) = &s.media_store_path {
        absolute(errs, "synapse.media_store_path", media);
    }
    match parse_size_bytes(&s.max_upload_size) {
        Err(message) => errs.push("synapse.max_upload_size", message),
        Ok(bytes) if bytes > MAX_UPLOAD_SIZE => errs.push(
            "synapse.max_upload_size",
            format!(
                "{} is above 100G: expected at most 100G (every upload is held whole in a \
                 temporary file and the media store before it is shared)",
                crate::redact::quote(&s.max_upload_size)
            ),
        ),
        Ok(_) => {}
    }
}

/// The largest `synapse.max_upload_size` accepted: 100 GiB.
pub const MAX_UPLOAD_SIZE: u64 = 100 << 30;

fn check_turn(host: &HostDescription, errs: &mut ValidationErrors) {
    let t = &host.turn;
    if let Some(h) = &t.host {
        dns_name(errs, "turn.host", h);
    }
    if let Some(realm) = &t.realm {
        dns_name(errs, "turn.realm", realm);
    }
    for (i, addr) in t.listening_ips.iter().enumerate() {
        ip(errs, &format!("turn.listening_ips[{i}]"), addr);
    }
    nonzero_port(errs, "turn.port", t.port);
    if let Some(tls) = &t.tls {
        nonzero_port(errs, "turn.tls.port", tls.port);
        absolute(errs, "turn.tls.cert_file", &tls.cert_file);
        absolute(errs, "turn.tls.key_file", &tls.key_file);
    }
    if let Err(message) = parse_port_range(&t.relay_ports) {
        errs.push("turn.relay_ports", message);
    }
    if let Some(external) = &t.external_ip {
        // coturn accepts `PUBLIC` or `PUBLIC/PRIVATE`.
        let mut parts = external.splitn(2, '/');
        if let Some(public) = parts.next() {
            ip(errs, "turn.external_ip", public);
        }
        if let Some(private) = parts.next() {
            ip(errs, "turn.external_ip", private);
        }
    }
    if let Some(relay) = &t.relay_ip {
        ip(errs, "turn.relay_ip", relay);
    }
    // coturn reads quotas with atoi into an int, and 0 as "no limit".
    for (path, quota, what) in [
        (
            "turn.user_quota",
            t.user_quota,
            "allocations one user may hold",
        ),
        (
            "turn.total_quota",
            t.total_quota,
            "allocations the server holds",
        ),
    ] {
        if quota == 0 {
            errs.push(
                path,
                format!(
                    "0 means no limit to coturn, not none: expected a positive number of {what} \
                     (12 per user and 1200 in all by default)"
                ),
            );
        } else if quota > MAX_TURN_QUOTA {
            errs.push(
                path,
                format!(
                    "{quota} is more than coturn could ever hold (each allocation takes a relay \
                     port): expected at most {MAX_TURN_QUOTA}"
                ),
            );
        }
    }
    if t.user_quota != 0 && t.total_quota != 0 && t.user_quota > t.total_quota {
        errs.push(
            "turn.user_quota",
            format!(
                "{} is above turn.total_quota ({}): expected at most the total quota",
                t.user_quota, t.total_quota
            ),
        );
    }
    if let Err(message) = parse_lifetime_ms(&t.credential_lifetime) {
        errs.push("turn.credential_lifetime", message);
    }
}

fn check_element(host: &HostDescription, errs: &mut ValidationErrors) {
    let e = &host.element;
    if e.brand.trim().is_empty() {
        errs.push(
            "element.brand",
            "is empty: expected the name shown to users, such as Example Chat",
        );
    }
    absolute(errs, "element.webroot", &e.webroot);
    if let Some(url) = &e.map_style_url {
        match parse_https_url(url) {
            Err(message) => errs.push("element.map_style_url", message),
            Ok(host) => public_service(errs, "element.map_style_url", &host, "tile server"),
        }
    }
    if let Some(domain) = &e.jitsi_domain {
        dns_name(errs, "element.jitsi_domain", domain);
        public_service(errs, "element.jitsi_domain", domain, "Jitsi server");
    }
    let b = &e.branding;
    for (path, url) in [
        ("element.branding.help_url", &b.help_url),
        (
            "element.branding.desktop_download_url",
            &b.desktop_download_url,
        ),
    ] {
        if let Some(Err(message)) = url.as_deref().map(parse_https_url) {
            errs.push(path, message);
        }
    }
    for (i, link) in b.footer_links.iter().enumerate() {
        let path = format!("element.branding.footer_links[{i}]");
        if link.text.trim().is_empty()
            || link.text.chars().count() > 100
            || link.text.chars().any(char::is_control)
        {
            errs.push(
                format!("{path}.text"),
                format!(
                    "{:?} is not a link text: expected one line of 1 to 100 characters",
                    link.text
                ),
            );
        }
        if let Err(message) = parse_https_url(&link.url) {
            errs.push(format!("{path}.url"), message);
        }
    }
    if let Some(text) = &b.welcome_text {
        if text.chars().count() > 4000 || text.chars().any(|c| c.is_control() && c != '\n') {
            errs.push(
                "element.branding.welcome_text",
                "is not plain text: expected at most 4000 characters, lines separated by line breaks, \
                 no other control characters",
            );
        }
    }
    if let Some(logo) = &b.logo_file {
        absolute(errs, "element.branding.logo_file", logo);
        let name = logo
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let ext = logo
            .extension()
            .and_then(|x| x.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let plain_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !plain_name || !["svg", "png", "jpg", "jpeg", "webp"].contains(&ext.as_str()) {
            errs.push(
                "element.branding.logo_file",
                format!(
                    "{:?} is not a logo file the proxy serves: expected a file name of letters, digits, \
                     ., _ and - ending in .svg, .png, .jpg, .jpeg or .webp",
                    logo.display().to_string()
                ),
            );
        }
    }
}

/// Domains of public services run by others (Element, matrix.org, the
/// public Jitsi and map services): a typed service field names a server
/// the operator hosts, so these are refused there.
pub const PUBLIC_SERVICE_DOMAINS: [&str; 9] = [
    "element.io",
    "matrix.org",
    "vector.im",
    "riot.im",
    "matrix.to",
    "jit.si",
    "maptiler.com",
    "openstreetmap.org",
    "mapbox.com",
];

fn public_service(errs: &mut ValidationErrors, path: &str, host: &str, what: &str) {
    let host = host.to_ascii_lowercase();
    if let Some(domain) = PUBLIC_SERVICE_DOMAINS
        .iter()
        .find(|d| host == **d || host.ends_with(&format!(".{d}")))
    {
        errs.push(
            path,
            format!(
                "{host} is a public service run by a third party ({domain}): expected a {what} you host, \
                 so that people's use of it stays on your servers"
            ),
        );
    }
}

fn check_proxy(host: &HostDescription, errs: &mut ValidationErrors) {
    let p = &host.proxy;
    if let Some(email) = &p.acme_email {
        // The address is written into the Caddyfile bare (NixOS's
        // services.caddy writes `email ADDRESS` unquoted): the local part
        // takes the RFC 5322 atext characters that are plain Caddyfile text
        // (no braces: placeholders; no #: a comment; no quotes).
        let local_ok = |local: &str| {
            !local.is_empty()
                && local.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(
                            c,
                            '.' | '!'
                                | '$'
                                | '%'
                                | '&'
                                | '\''
                                | '*'
                                | '+'
                                | '/'
                                | '='
                                | '?'
                                | '^'
                                | '_'
                                | '|'
                                | '~'
                                | '-'
                        )
                })
        };
        let valid = email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(local, domain)| local_ok(local) && is_dns_name(domain));
        if !valid {
            errs.push(
                "proxy.acme_email",
                format!(
                    "{} is not an e-mail address Caddy can be given: expected name@example.org \
                     (the name of letters, digits and . ! $ % & ' * + / = ? ^ _ | ~ -)",
                    quote(email)
                ),
            );
        }
    }
    nonzero_port(errs, "proxy.http_port", p.http_port);
    nonzero_port(errs, "proxy.https_port", p.https_port);
    for (i, addr) in p.bind.iter().enumerate() {
        ip(errs, &format!("proxy.bind[{i}]"), addr);
    }
    if let Err(message) = parse_admin_listen(&p.admin) {
        errs.push("proxy.admin", message);
    }
}

fn check_secrets(host: &HostDescription, errs: &mut ValidationErrors) {
    absolute(errs, "secrets.dir", &host.secrets.dir);
    for kind in SecretKind::ALL {
        if let Some(file) = host.secrets.explicit_file(kind) {
            absolute_secret_file(errs, kind.field(), file);
        }
    }
}

/// The icon file types Caddy serves for a provider's button.
pub const ICON_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "svg"];

/// Whether `id` is a provider identifier: 1 to 50 lower-case letters,
/// digits, `-` and `_`, starting with a letter or digit (it becomes part of
/// Synapse's `idp_id`, of URLs and of the icon's media ID).
pub fn is_provider_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 50
        && id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn plain_text(errs: &mut ValidationErrors, path: &str, value: &str, what: &str) {
    if value.trim().is_empty() {
        errs.push(path, format!("is empty: expected {what}"));
    } else if value.chars().any(char::is_control) || value.len() > 255 {
        errs.push(
            path,
            format!(
                "{value:?} has control characters or is longer than 255 bytes: expected {what}"
            ),
        );
    }
}

fn check_sso(host: &HostDescription, errs: &mut ValidationErrors) {
    let sso = &host.sso;
    if sso.providers.is_empty() && !sso.password_login {
        errs.push(
            "sso.password_login",
            "is false but sso.providers is empty: nobody could sign in; expected true, or at least one provider",
        );
    }
    for (i, p) in sso.providers.iter().enumerate() {
        let at = |field: &str| format!("sso.providers[{i}].{field}");
        if !is_provider_id(&p.id) {
            errs.push(
                at("id"),
                format!(
                    "{:?} is not a provider id: expected 1 to 50 lower-case letters, digits, - and _ (such as authentik)",
                    p.id
                ),
            );
        } else if let Some(j) = sso.providers[..i].iter().position(|q| q.id == p.id) {
            errs.push(
                at("id"),
                format!(
                    "{:?} is also the id of sso.providers[{j}]: expected a unique id",
                    p.id
                ),
            );
        }
        plain_text(
            errs,
            &at("name"),
            &p.name,
            "the name on the sign-in button, such as Example SSO",
        );
        if let Some(brand) = &p.brand {
            let ok = brand.len() <= 255
                && brand.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && brand
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
            if !ok {
                errs.push(
                    at("brand"),
                    format!("{brand:?} is not a brand identifier: expected lower-case letters, digits, _ . - starting with a letter (such as authentik)"),
                );
            }
        }
        if let Some(icon) = &p.icon_file {
            absolute(errs, &at("icon_file"), icon);
            let text = icon.to_str().unwrap_or_default();
            let ext = icon
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            if !ICON_EXTENSIONS.contains(&ext) {
                errs.push(
                    at("icon_file"),
                    format!("{text:?} is not a PNG, JPEG, WebP or SVG file: expected a name ending in .png, .jpg, .jpeg, .webp or .svg"),
                );
            } else if text.is_empty()
                || !text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
            {
                errs.push(
                    at("icon_file"),
                    format!("{:?} cannot be served as written: expected a path of letters, digits and / . _ - +", icon.display().to_string()),
                );
            }
        }
        match parse_web_url(&p.issuer) {
            Err(message) => errs.push(at("issuer"), message),
            Ok(url) if url.scheme == "http" && !is_loopback_host(&url.host) => errs.push(
                at("issuer"),
                format!(
                    "{:?} uses http:// to a host that is not this machine: tokens and claims would cross the network unencrypted; expected https:// (http:// only for a test provider on localhost, 127.0.0.1 or ::1)",
                    p.issuer
                ),
            ),
            Ok(_) => {}
        }
        plain_text(
            errs,
            &at("client_id"),
            &p.client_id,
            "the client ID registered at the provider",
        );
        absolute(errs, &at("client_secret_file"), &p.client_secret_file);
        if !p.scopes.iter().any(|s| s == "openid") {
            errs.push(
                at("scopes"),
                format!("{:?} lacks openid: expected a list with openid (such as [openid, profile, email])", p.scopes),
            );
        }
        for (k, scope) in p.scopes.iter().enumerate() {
            let ok = !scope.is_empty()
                && scope
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\');
            if !ok {
                errs.push(
                    format!("sso.providers[{i}].scopes[{k}]"),
                    format!("{scope:?} is not a scope: expected printable ASCII without spaces, quotes or backslashes (such as email)"),
                );
            } else if p.scopes[..k].contains(scope) {
                errs.push(
                    format!("sso.providers[{i}].scopes[{k}]"),
                    format!("{scope:?} is listed twice"),
                );
            }
        }
        let m = &p.user_mapping;
        let ident = m
            .subject_claim
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && m.subject_claim
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            errs.push(
                at("user_mapping.subject_claim"),
                format!("{:?} is not a claim name: expected letters, digits and _ starting with a letter (such as sub)", m.subject_claim),
            );
        }
        let templates = [
            ("localpart", Some(&m.localpart)),
            ("display_name", m.display_name.as_ref()),
            ("email", m.email.as_ref()),
        ];
        for (field, template) in templates {
            let Some(template) = template else { continue };
            match parse_claim_template(template) {
                Err(message) => errs.push(at(&format!("user_mapping.{field}")), message),
                Ok(claims) if claims.is_empty() => errs.push(
                    at(&format!("user_mapping.{field}")),
                    format!("{template:?} reads no claim, so every person would get the same value: expected a template reading a claim, such as {{{{ user.preferred_username }}}}"),
                ),
                Ok(_) => {}
            }
        }
        for (k, r) in p.require.iter().enumerate() {
            let at = |field: &str| format!("sso.providers[{i}].require[{k}].{field}");
            plain_text(
                errs,
                &at("attribute"),
                &r.attribute,
                "a claim name such as groups",
            );
            match (&r.value, r.one_of.is_empty()) {
                (Some(_), false) => errs.push(
                    at("one_of"),
                    "is given together with value: expected one of them",
                ),
                (None, true) => errs.push(
                    format!("sso.providers[{i}].require[{k}]"),
                    "has neither value nor one_of, so any value of the claim would do: expected value: VALUE or one_of: [VALUES]",
                ),
                _ => {}
            }
            for (n, v) in r.value.iter().chain(r.one_of.iter()).enumerate() {
                if v.is_empty() || v.chars().any(char::is_control) {
                    let field = if r.value.is_some() {
                        "value".to_owned()
                    } else {
                        format!("one_of[{n}]")
                    };
                    errs.push(at(&field), format!("{v:?} is empty or has control characters: expected the claim's value, such as chat-users"));
                }
            }
        }
        if p.auto_create && !p.require.is_empty() {
            errs.push(
                at("auto_create"),
                "is true while require limits who may sign in: expected one answer to who may get an account (require, or auto_create for everyone the provider authenticates)",
            );
        }
    }
}

fn check_email(host: &HostDescription, errs: &mut ValidationErrors) {
    let Some(email) = &host.email else { return };
    let smtp_host_ok = email.smtp_host.parse::<IpAddr>().is_ok() || is_dns_name(&email.smtp_host);
    if !smtp_host_ok {
        errs.push(
            "email.smtp_host",
            format!(
                "{:?} is not a host name or IP address: expected such as mail.example.org",
                email.smtp_host
            ),
        );
    } else if email.tls == crate::host::SmtpTls::Off && !is_loopback_host(&email.smtp_host) {
        errs.push(
            "email.tls",
            format!(
                "is off for {:?}, which is not this machine: mails, links that reset passwords and the SMTP password would cross the network in plaintext; expected implicit or starttls (off only for a relay on localhost)",
                email.smtp_host
            ),
        );
    }
    if let Some(port) = email.smtp_port {
        nonzero_port(errs, "email.smtp_port", port);
    }
    match (&email.user, &email.password_file) {
        (Some(user), password) => {
            plain_text(errs, "email.user", user, "the SMTP user name");
            match password {
                Some(file) => absolute(errs, "email.password_file", file),
                None => errs.push(
                    "email.password_file",
                    "is missing while email.user is set: expected the file holding the SMTP password",
                ),
            }
        }
        (None, Some(_)) => errs.push(
            "email.user",
            "is missing while email.password_file is set: expected the SMTP user name",
        ),
        (None, None) => {}
    }
    if let Err(message) = check_mailbox(&email.from) {
        errs.push("email.from", message);
    }
    if let Err(message) = parse_duration_ms(&email.notification_delay) {
        errs.push("email.notification_delay", message);
    }
    if email.password_reset && !host.sso.password_login {
        errs.push(
            "email.password_reset",
            "is true while sso.password_login is false: a reset password could not be used; expected false",
        );
    }
    if !email.password_reset && !email.notifications {
        errs.push(
            "email",
            "turns on no mail (password_reset and notifications are both false), so nothing would be sent: turn one on, or remove email",
        );
    }
}

fn check_metrics(host: &HostDescription, errs: &mut ValidationErrors) {
    let m = &host.metrics;
    nonzero_port(errs, "metrics.synapse_port", m.synapse_port);
    nonzero_port(errs, "metrics.coturn_port", m.coturn_port);
    nonzero_port(errs, "metrics.caddy_port", m.caddy_port);
}

/// A port claimed by one service, for collision checks.
struct Claim {
    field: String,
    range: PortRange,
}

fn check_ports(host: &HostDescription, errs: &mut ValidationErrors) {
    let mut tcp: Vec<Claim> = Vec::new();
    let mut udp: Vec<Claim> = Vec::new();
    let single = |field: &str, port: u16| Claim {
        field: field.to_owned(),
        range: PortRange {
            first: port,
            last: port,
        },
    };
    // The standalone Caddyfile's admin endpoint (`host:port`) is a TCP
    // listener too.
    if let Some(port) = admin_port(&host.proxy.admin) {
        tcp.push(single("proxy.admin", port));
    }
    if let SynapseListen::Tcp { port, .. } = host.synapse.listen {
        tcp.push(single("synapse.listen.tcp.port", port));
    }
    tcp.push(single("proxy.http_port", host.proxy.http_port));
    tcp.push(single("proxy.https_port", host.proxy.https_port));
    // Caddy serves HTTP/3 (QUIC) on the HTTPS port over UDP as well.
    udp.push(single("proxy.https_port", host.proxy.https_port));
    tcp.push(single("turn.port", host.turn.port));
    udp.push(single("turn.port", host.turn.port));
    if let Some(tls) = &host.turn.tls {
        tcp.push(single("turn.tls.port", tls.port));
        udp.push(single("turn.tls.port", tls.port));
    }
    if host.metrics.enable {
        for (field, port) in [
            ("metrics.synapse_port", host.metrics.synapse_port),
            ("metrics.coturn_port", host.metrics.coturn_port),
            ("metrics.caddy_port", host.metrics.caddy_port),
        ] {
            tcp.push(single(field, port));
        }
    }
    if let Ok(range) = parse_port_range(&host.turn.relay_ports) {
        udp.push(Claim {
            field: "turn.relay_ports".to_owned(),
            range,
        });
    }
    let mut reported: BTreeMap<(String, String), ()> = BTreeMap::new();
    for (proto, claims) in [("TCP", &tcp), ("UDP", &udp)] {
        for (i, a) in claims.iter().enumerate() {
            for b in &claims[i + 1..] {
                if a.range.overlaps(&b.range)
                    && reported
                        .insert((a.field.clone(), b.field.clone()), ())
                        .is_none()
                {
                    errs.push(
                        b.field.clone(),
                        format!(
                            "{} collides with {} ({}) on {proto}: expected a port no other service uses",
                            b.range, a.field, a.range
                        ),
                    );
                }
            }
        }
    }
}

/// The port of Caddy's admin endpoint (`host:port`), unless it is `off` or
/// not an address (reported by [`check_proxy`]).
fn admin_port(admin: &str) -> Option<u16> {
    match parse_admin_listen(admin) {
        Ok(AdminListen::Loopback { port }) => Some(port),
        _ => None,
    }
}

fn check_placeholders(host: &HostDescription, errs: &mut ValidationErrors) {
    let Ok(value) = serde_json::to_value(host) else {
        return;
    };
    walk_strings(&value, "", &mut |path, s| {
        let lower = s.to_ascii_lowercase();
        if let Some(word) = PLACEHOLDERS.iter().find(|w| lower.contains(*w)) {
            errs.push(
                path,
                format!(
                    "{} still holds the placeholder {}: replace it with the real value",
                    quote(s),
                    word.to_ascii_uppercase()
                ),
            );
        }
    });
}

/// Calls `f(path, string)` for every string (keys of maps excluded) in `value`.
pub(crate) fn walk_strings(value: &serde_json::Value, path: &str, f: &mut dyn FnMut(&str, &str)) {
    match value {
        serde_json::Value::String(s) => f(path, s),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_strings(item, &format!("{path}[{i}]"), f);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk_strings(item, &sub, f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_errors(change: impl Fn(&mut HostDescription)) -> Vec<String> {
        let mut host = crate::load::example_host().expect("example");
        change(&mut host);
        validate(&host).err().map_or_else(Vec::new, |e| {
            e.errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect()
        })
    }

    #[test]
    fn system_directories_and_their_spellings_are_refused() {
        for dir in [
            "/",
            "/var",
            "/var/lib",
            "/var/lib/",
            "/var//lib",
            "/var/./lib",
            "//",
            "/etc",
            "/usr",
            "/home",
            "/nix/store",
            "/run",
            "/tmp",
            "/boot",
            "/root",
            "/srv",
            "/var/lib/private",
        ] {
            for field in [
                "synapse.data_dir",
                "synapse.media_store_path",
                "element.webroot",
                "secrets.dir",
            ] {
                let errs = path_errors(|h| match field {
                    "synapse.data_dir" => h.synapse.data_dir = dir.into(),
                    "synapse.media_store_path" => h.synapse.media_store_path = Some(dir.into()),
                    "element.webroot" => h.element.webroot = dir.into(),
                    _ => h.secrets.dir = dir.into(),
                });
                assert!(
                    errs.iter()
                        .any(|e| e.starts_with(&format!("{field}: "))
                            && e.contains("system directory")),
                    "{field} = {dir}: {errs:?}"
                );
            }
        }
        let errs = path_errors(|h| h.synapse.data_dir = "/var/lib/x/../y".into());
        assert!(
            errs.iter()
                .any(|e| e.starts_with("synapse.data_dir: ") && e.contains("`..`")),
            "{errs:?}"
        );
    }

    #[test]
    fn secrets_and_data_in_the_store_and_overlaps_are_refused() {
        for (change, field, needle) in [
            (
                (|h: &mut HostDescription| {
                    h.secrets.signing_key_file = Some("/nix/store/abc-key".into())
                }) as fn(&mut HostDescription),
                "secrets.signing_key_file",
                "/nix/store",
            ),
            (
                |h| h.synapse.data_dir = "/nix/store/abc-data".into(),
                "synapse.data_dir",
                "/nix/store",
            ),
            (
                |h| h.secrets.dir = "/proc/self".into(),
                "secrets.dir",
                "/proc",
            ),
            (
                |h| {
                    h.turn.tls = Some(crate::host::TurnTls {
                        port: 5349,
                        cert_file: "/nix/store/x-cert.pem".into(),
                        key_file: "/nix/store/x-key.pem".into(),
                    })
                },
                "turn.tls.key_file",
                "/nix/store",
            ),
            (
                |h| h.secrets.dir = "/var/lib/ospw-matrix/synapse/secrets".into(),
                "synapse.data_dir",
                "contains secrets.dir",
            ),
            (
                |h| h.synapse.data_dir = "/var/lib/ospw-matrix".into(),
                "synapse.data_dir",
                "contains element.webroot",
            ),
            (
                |h| h.element.webroot = "/var/lib/ospw-matrix".into(),
                "element.webroot",
                "served to anyone",
            ),
            (
                |h| h.element.webroot = "/var/lib/ospw-matrix/secrets".into(),
                "element.webroot",
                "is the same as secrets.dir",
            ),
            (
                |h| {
                    h.secrets.form_secret_file =
                        Some("/var/lib/ospw-matrix/element-web/form".into())
                },
                "element.webroot",
                "contains secrets.form_secret_file",
            ),
            (
                |h| {
                    h.synapse.media_store_path =
                        Some("/var/lib/ospw-matrix/element-web/media".into())
                },
                "element.webroot",
                "contains synapse.media_store_path",
            ),
        ] {
            let errs = path_errors(change);
            assert!(
                errs.iter()
                    .any(|e| e.starts_with(&format!("{field}: ")) && e.contains(needle)),
                "{field}: {errs:?}"
            );
        }
        // Element Web from the Nix store, media beside or inside the data
        // directory, a secret file in the secrets directory: fine.
        assert_eq!(
            path_errors(|h| {
                h.element.webroot = "/nix/store/abc-element-web-1.12.7".into();
                h.synapse.media_store_path = Some("/var/lib/ospw-matrix/synapse/media".into());
                h.secrets.form_secret_file = Some("/var/lib/ospw-matrix/secrets/form".into());
                h.secrets.signing_key_file = Some("/run/agenix/signing-key".into());
                h.synapse.data_dir = "/var/lib/ospw-matrix/synapse/".into();
            }),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_secret_pasted_into_a_file_field_is_not_echoed() {
        let errs = path_errors(|h| {
            h.secrets.macaroon_secret_key_file = Some("hunter2-s3cret-value".into())
        });
        assert!(
            errs.iter()
                .any(|e| e.starts_with("secrets.macaroon_secret_key_file")),
            "{errs:?}"
        );
        assert!(errs.iter().all(|e| !e.contains("hunter2-s3")), "{errs:?}");
    }

    #[test]
    fn dns_names() {
        for good in [
            "example.org",
            "matrix.example.org",
            "localhost",
            "a-b.c9.test",
            "xn--bcher-kva.example",
        ] {
            assert!(is_dns_name(good), "{good}");
        }
        for bad in [
            "",
            "-a.org",
            "a-.org",
            "a..org",
            "a.org.",
            "exa mple.org",
            "1.2.3.4",
            "a_b.org",
            "a.123",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
        assert!(!is_dns_name(&"a".repeat(64)));
    }

    fn collision_paths(change: impl FnOnce(&mut HostDescription)) -> Vec<String> {
        let mut host = crate::load::example_host().expect("example parses");
        change(&mut host);
        validate(&host)
            .err()
            .map(|e| e.errors.into_iter().map(|e| e.path).collect())
            .unwrap_or_default()
    }

    #[test]
    fn relay_range_over_the_https_port_collides_with_http3() {
        // Caddy listens on UDP 443 for HTTP/3: relayed media cannot use it.
        assert_eq!(
            collision_paths(|h| h.turn.relay_ports = "400-500".into()),
            vec!["turn.relay_ports"]
        );
        let mut host = crate::load::example_host().expect("example parses");
        host.turn.relay_ports = "400-500".into();
        let errs = validate(&host).expect_err("collision");
        assert!(
            errs.errors[0].message.contains("proxy.https_port")
                && errs.errors[0].message.contains("UDP"),
            "{errs}"
        );
        // Reported once when TCP and UDP both collide.
        assert_eq!(collision_paths(|h| h.turn.port = 443), vec!["turn.port"]);
    }

    #[test]
    fn synapse_port_on_the_caddy_admin_port_collides() {
        assert_eq!(
            collision_paths(|h| h.synapse.listen = SynapseListen::Tcp {
                address: "127.0.0.1".into(),
                port: 2019
            }),
            vec!["synapse.listen.tcp.port"]
        );
        assert!(collision_paths(|h| {
            h.proxy.admin = "off".into();
            h.synapse.listen = SynapseListen::Tcp {
                address: "127.0.0.1".into(),
                port: 2019,
            };
        })
        .is_empty());
    }

    #[test]
    fn host_names_must_be_lower_case() {
        // Otherwise CHAT.example.org and chat.example.org pass as different
        // hosts and become two Caddy sites for one name.
        assert_eq!(
            collision_paths(|h| h.element_host = "MATRIX.example.org".into()),
            vec!["element_host"]
        );
        let mut host = crate::load::example_host().expect("example parses");
        host.turn.host = Some("Turn.example.org".into());
        let errs = validate(&host).expect_err("upper case");
        assert_eq!(errs.errors[0].path, "turn.host");
        assert!(
            errs.errors[0].message.contains("\"turn.example.org\""),
            "{errs}"
        );
    }

    #[test]
    fn example_is_valid() {
        let host = crate::load::example_host().expect("example parses");
        assert_eq!(validate(&host), Ok(()));
    }
}
